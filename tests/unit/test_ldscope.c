/*
 * teardown: unit tests for the loader's scope as `teardown doctor`
 * rebuilds it (cli/lib/ldscope.c): ld.so.cache, the library search order
 * (DT_RPATH, LD_LIBRARY_PATH, DT_RUNPATH, $ORIGIN), breadth-first
 * loading, and which of a library's references a program takes over.
 *
 * Programs and libraries are built here with cc; nothing is preloaded
 * into this process.
 */
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../cli/lib/elfinfo.h"
#include "../../cli/lib/ldscope.h"

#include "elftest.h"

TestSuite(ldscope, .init = td_t_mkdir, .fini = td_t_rmdir);

/* ---- ld.so.cache ------------------------------------------------------ */

static void td_t_le32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/*
 * A cache in the glibc 2.32+ format at b + at (string offsets count from
 * there): n entries of (flags, key, value); returns the bytes used.
 */
static size_t td_t_cache(unsigned char *b, size_t at, const uint32_t *flags,
			 const char *const *keys, const char *const *values, int n)
{
	unsigned char *h = b + at;
	size_t str = 48 + 24 * (size_t)n;

	memcpy(h, "glibc-ld.so.cache1.1", 20);
	td_t_le32(h + 20, (uint32_t)n);
	for (int k = 0; k < n; k++) {
		unsigned char *e = h + 48 + 24 * (size_t)k;

		td_t_le32(e, flags[k]);
		td_t_le32(e + 4, (uint32_t)str);
		strcpy((char *)h + str, keys[k]);
		str += strlen(keys[k]) + 1;
		if (values[k] == NULL) {
			td_t_le32(e + 8, 0xfffffff0u); /* past the end */
			continue;
		}
		td_t_le32(e + 8, (uint32_t)str);
		strcpy((char *)h + str, values[k]);
		str += strlen(values[k]) + 1;
	}
	td_t_le32(h + 24, (uint32_t)(str - 48 - 24 * (size_t)n));
	return at + str;
}

static const uint32_t td_t_flags[] = {0x0303, 0x0001, 0x0003, 0x0303, 0x0303};
static const char *const td_t_keys[] = {"libfoo.so.1", "libfoo.so.1", "libfoo.so.1",
					"libbar.so", "libbaz.so"};
static const char *const td_t_values[] = {"/lib/a/libfoo.so.1", "/bad/libfoo.so.1",
					  "/lib32/libfoo.so.1", NULL, "/lib/libbaz.so"};

/* Every entry of name, in order, as one string "p1;p2;" (or the error). */
static void td_t_cache_all(const unsigned char *c, size_t len, const char *name, char *out,
			   size_t cap)
{
	char path[PATH_MAX];
	size_t pos = 0;
	int rc;

	out[0] = '\0';
	while ((rc = td_ldcache_find(c, len, name, &pos, path, sizeof(path))) == 0)
		snprintf(out + strlen(out), cap - strlen(out), "%s;", path);
	if (rc != -ENOENT)
		snprintf(out, cap, "error %d", rc);
}

Test(ldscope, cache_entries_in_order)
{
	static unsigned char img[4096];
	char got[512];
	size_t n = td_t_cache(img, 0, td_t_flags, td_t_keys, td_t_values, 5);

	/* libc6 entries only (the 0x0001 one is libc5), in the cache's order */
	td_t_cache_all(img, n, "libfoo.so.1", got, sizeof(got));
	cr_assert(eq(str, got, "/lib/a/libfoo.so.1;/lib32/libfoo.so.1;"));
	/* a value outside the string table is skipped, not read */
	td_t_cache_all(img, n, "libbar.so", got, sizeof(got));
	cr_assert(eq(str, got, ""));
	td_t_cache_all(img, n, "libbaz.so", got, sizeof(got));
	cr_assert(eq(str, got, "/lib/libbaz.so;"));
	td_t_cache_all(img, n, "libnone.so", got, sizeof(got));
	cr_assert(eq(str, got, ""));
}

/* The new table after the libc5 one: found, strings counted from it. */
Test(ldscope, cache_after_old_format)
{
	static unsigned char img[4096];
	char got[512];
	size_t n;

	memcpy(img, "ld.so-1.7.0", 11);
	td_t_le32(img + 12, 2); /* two 12-byte libc5 entries: the new table at 40 */
	n = td_t_cache(img, 40, td_t_flags, td_t_keys, td_t_values, 5);
	td_t_cache_all(img, n, "libbaz.so", got, sizeof(got));
	cr_assert(eq(str, got, "/lib/libbaz.so;"));
}

Test(ldscope, cache_refuses_what_it_cannot_read)
{
	static unsigned char img[4096];
	char path[64];
	size_t pos = 0, n = td_t_cache(img, 0, td_t_flags, td_t_keys, td_t_values, 5);

	cr_assert(eq(int, td_ldcache_find(img, 20, "libfoo.so.1", &pos, path, sizeof(path)), -EINVAL));
	cr_assert(eq(int, td_ldcache_find("junk", 4, "libfoo.so.1", &pos, path, sizeof(path)), -EINVAL));
	/* more entries than bytes */
	td_t_le32(img + 20, 1000);
	cr_assert(eq(int, td_ldcache_find(img, n, "libfoo.so.1", &pos, path, sizeof(path)), -EINVAL));
	td_t_le32(img + 20, 5);
	/* a path longer than the buffer is passed over */
	cr_assert(eq(int, td_ldcache_find(img, n, "libfoo.so.1", &pos, path, 8), -ENOENT));
}

/* Mutated caches: never a read past the image, always a terminated path. */
Test(ldscope, cache_mutations)
{
	static unsigned char base[4096], img[4096];
	uint64_t seed = 99;
	size_t n = td_t_cache(base, 0, td_t_flags, td_t_keys, td_t_values, 5);

	for (int round = 0; round < 20000; round++) {
		unsigned char *copy;
		size_t len = round % 7 ? n : seed % n;

		memcpy(img, base, n);
		for (int f = 0; f < 1 + round % 6; f++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			img[seed % n] = (unsigned char)(seed >> 32);
		}
		copy = malloc(len ? len : 1); /* exactly len bytes: overreads are caught */
		cr_assert(ne(ptr, copy, NULL));
		memcpy(copy, img, len);
		for (int k = 0; k < 3; k++) {
			char path[PATH_MAX];
			size_t pos = 0;

			while (td_ldcache_find(copy, len, td_t_keys[k * 2], &pos, path, sizeof(path)) == 0)
				cr_assert(lt(sz, strlen(path), sizeof(path)));
		}
		free(copy);
	}
}

/* This host's cache finds libc.so.6 where the loader does. */
Test(ldscope, host_cache_finds_libc)
{
	struct td_ld_env env;
	struct td_ld_scope sc;
	const char *root = "libc.so.6";

	td_ld_env_host(&env, NULL);
	cr_assert(eq(int, td_ld_scope_build(&sc, &root, 1, &env), 0));
	cr_assert(ge(sz, sc.n, 1));
	cr_assert(ne(ptr, strstr(sc.obj[0].path, "libc.so.6"), NULL), "%s", sc.obj[0].path);
	cr_assert(ge(int, td_ld_lookup(&sc, "malloc", "GLIBC_2.2.5", NULL), 0));
	cr_assert(eq(int, td_ld_lookup(&sc, "td_no_such_symbol", NULL, NULL), -1));
	td_ld_scope_free(&sc);
}

/* ---- the search order --------------------------------------------------- */

/* Build lib NAME (soname NAME) into subdir dir, defining marker(). */
static void td_t_lib(const char *dir, const char *name, const char *marker, const char *extra)
{
	char src[2048], sub[PATH_MAX], rel[256], out[PATH_MAX], soflag[300];
	const char *flags[] = {"-shared", "-fPIC", soflag, NULL};

	td_t_path(sub, sizeof(sub), dir);
	mkdir(sub, 0755);
	snprintf(soflag, sizeof(soflag), "-Wl,-soname,%s", name);
	snprintf(src, sizeof(src), "int %s(void) { return 7; }\nint tdq(void) { return 1; }\n%s\n",
		 marker, extra ? extra : "");
	snprintf(rel, sizeof(rel), "%s/%s", dir, name);
	td_t_build(rel, src, flags, out, sizeof(out));
}

/*
 * Build a program needing libtdq.so (linked against the copy in link_dir)
 * with search path flags; its path in out.
 */
static void td_t_prog_needing(const char *name, const char *link_dir, const char *dtags,
			      const char *rpath, const char *src, char *out, size_t cap)
{
	char ldir[PATH_MAX + 8], rflag[PATH_MAX + 16];
	const char *flags[] = {"-Wl,--no-as-needed", dtags, rflag, ldir, "-ltdq", NULL};

	snprintf(ldir, sizeof(ldir), "-L%s/%s", td_t_dir, link_dir);
	snprintf(rflag, sizeof(rflag), "-Wl,-rpath,%s", rpath);
	td_t_build(name, src ? src : "int tdq(void);\nint main(void) { return tdq(); }\n", flags,
		   out, cap);
}

static int td_t_index_of(const struct td_ld_scope *sc, const char *suffix)
{
	for (size_t k = 0; k < sc->n; k++) {
		size_t n = strlen(sc->obj[k].path), m = strlen(suffix);

		if (n >= m && strcmp(sc->obj[k].path + n - m, suffix) == 0)
			return (int)k;
	}
	return -1;
}

static void td_t_scope(struct td_ld_scope *sc, const char *prog, const char *ld_path)
{
	struct td_ld_env env;
	const char *roots[] = {prog};

	td_ld_env_host(&env, ld_path);
	cr_assert(eq(int, td_ld_scope_build(sc, roots, 1, &env), 0));
}

/*
 * DT_RUNPATH: $ORIGIN is the program's directory, LD_LIBRARY_PATH comes
 * first; DT_RPATH comes before LD_LIBRARY_PATH.  The copies in a/ and b/
 * tell which one the search found.
 */
Test(ldscope, runpath_rpath_and_library_path)
{
	char prog[PATH_MAX], lp[PATH_MAX];
	struct td_ld_scope sc;
	int k;

	td_t_lib("a", "libtdq.so", "tdq_in_a", NULL);
	td_t_lib("b", "libtdq.so", "tdq_in_b", NULL);
	snprintf(lp, sizeof(lp), "%s/b", td_t_dir);

	td_t_prog_needing("new", "a", "-Wl,--enable-new-dtags", "$ORIGIN/a", NULL, prog, sizeof(prog));
	td_t_scope(&sc, prog, NULL);
	cr_assert(eq(int, td_t_index_of(&sc, "/a/libtdq.so"), 1), "scope[1] %s", sc.obj[1].path);
	cr_assert(eq(sz, sc.n_missing, 0));
	cr_assert(ge(int, td_ld_lookup(&sc, "tdq_in_a", NULL, NULL), 1));
	/* then libc.so.6 (and what it needs: the loader), each file once */
	cr_assert(eq(int, td_t_index_of(&sc, "/libc.so.6"), 2));
	for (size_t i = 0; i < sc.n; i++)
		for (size_t j = i + 1; j < sc.n; j++)
			cr_assert(not(eq(int, sc.obj[i].dev == sc.obj[j].dev &&
						   sc.obj[i].ino == sc.obj[j].ino, 1)));
	td_ld_scope_free(&sc);
	td_t_scope(&sc, prog, lp); /* LD_LIBRARY_PATH before DT_RUNPATH */
	cr_assert(eq(int, td_t_index_of(&sc, "/b/libtdq.so"), 1));
	td_ld_scope_free(&sc);

	td_t_prog_needing("old", "a", "-Wl,--disable-new-dtags", "$ORIGIN/a", NULL, prog, sizeof(prog));
	td_t_scope(&sc, prog, lp); /* DT_RPATH before LD_LIBRARY_PATH */
	cr_assert(eq(int, td_t_index_of(&sc, "/a/libtdq.so"), 1));
	td_ld_scope_free(&sc);

	/* nowhere to be found: missing, named with who needs it */
	td_t_prog_needing("lost", "a", "-Wl,--enable-new-dtags", "$ORIGIN/nowhere", NULL, prog,
			  sizeof(prog));
	td_t_scope(&sc, prog, NULL);
	cr_assert(eq(sz, sc.n_missing, 1));
	cr_assert(eq(str, sc.missing[0].name, "libtdq.so"));
	cr_assert(eq(int, sc.missing[0].loader, 0));
	k = td_t_index_of(&sc, "/libc.so.6");
	cr_assert(eq(int, k, 1));
	td_ld_scope_free(&sc);
}

/* A library of the wrong class is passed over, as the loader does. */
Test(ldscope, wrong_class_is_passed_over)
{
	char prog[PATH_MAX], sub[PATH_MAX], bad[PATH_MAX + 16];
	struct td_ld_scope sc;
	FILE *f;

	td_t_lib("a", "libtdq.so", "tdq_in_a", NULL);
	td_t_path(sub, sizeof(sub), "first");
	mkdir(sub, 0755);
	snprintf(bad, sizeof(bad), "%s/libtdq.so", sub);
	f = fopen(bad, "w");
	cr_assert(ne(ptr, f, NULL));
	fputs("\177ELF\001\001\001", f); /* 32-bit, and cut short */
	fclose(f);
	td_t_prog_needing("skip", "a", "-Wl,--enable-new-dtags", "$ORIGIN/first:$ORIGIN/a", NULL,
			  prog, sizeof(prog));
	td_t_scope(&sc, prog, NULL);
	cr_assert(eq(int, td_t_index_of(&sc, "/a/libtdq.so"), 1));
	td_ld_scope_free(&sc);
}

/* ---- what the program takes from the library ----------------------------- */

/* A stand-in for libteardown.so: calls libc, and wraps close and connect. */
static const char td_t_fakelib[] =
	"#define _GNU_SOURCE\n"
	"#include <errno.h>\n"
	"#include <stdlib.h>\n"
	"#include <string.h>\n"
	"#include <sys/socket.h>\n"
	"int close(int fd) { (void)fd; return 0; }\n"
	"int connect(int fd, const struct sockaddr *a, socklen_t n) { (void)fd; (void)a; (void)n; return 0; }\n"
	"size_t td_fake(const char *s, int fd) {\n"
	"  socklen_t n = 4; int v; void *p = malloc(8), *q = calloc(1, 8);\n"
	"  p = realloc(p, 16); free(p); free(q);\n"
	"  getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &n);\n"
	"  return strlen(s) + strlen(getenv(\"X\")) + strlen(program_invocation_short_name);\n"
	"}\n";

static void td_t_fake(char *out, size_t cap)
{
	const char *flags[] = {"-shared", "-fPIC", "-fno-builtin", "-Wl,-soname,libtdfake.so", NULL};

	td_t_build("libtdfake.so", td_t_fakelib, flags, out, cap);
}

struct td_t_checked {
	struct td_ld_scope sc, own;
	struct td_ld_report r;
};

/* The scope of prog with lib preloaded, lib's own, and the check. */
static void td_t_check(const char *prog, const char *lib, struct td_t_checked *c)
{
	struct td_ld_env env;
	const char *roots[] = {prog, lib};
	const char *own = lib ? lib : "libc.so.6";

	td_ld_env_host(&env, NULL);
	cr_assert(eq(int, td_ld_scope_build(&c->sc, roots, lib ? 2 : 1, &env), 0));
	cr_assert(eq(int, td_ld_scope_build(&c->own, &own, 1, &env), 0));
	cr_assert(eq(int, td_ld_check(&c->sc, lib ? 1 : (size_t)-1, &c->own, &c->r), 0));
}

static void td_t_checked_free(struct td_t_checked *c)
{
	td_ld_report_free(&c->r);
	td_ld_scope_free(&c->sc);
	td_ld_scope_free(&c->own);
}

static const struct td_ld_hit *td_t_hit(const struct td_ld_hit *v, size_t n, const char *name)
{
	for (size_t k = 0; k < n; k++)
		if (strcmp(v[k].symbol, name) == 0)
			return &v[k];
	return NULL;
}

/*
 * A program exporting strlen (a libc name the library calls) and close (a
 * name the library wraps): strlen is taken, close is shadowed; getenv,
 * getsockopt and malloc stay libc's; the program's copy of
 * program_invocation_short_name is libc's own variable.
 */
Test(ldscope, program_takes_a_libc_name)
{
	static const char src[] =
		"#define _GNU_SOURCE\n"
		"#include <errno.h>\n"
		"#include <stdio.h>\n"
		"#include <stddef.h>\n"
		"__attribute__((noinline, optimize(\"no-tree-loop-distribute-patterns\")))\n"
		"size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }\n"
		"int close(int fd) { (void)fd; return 0; }\n"
		"int main(void) { puts(program_invocation_short_name); return 0; }\n";
	const char *flags[] = {"-rdynamic", NULL};
	char lib[PATH_MAX], prog[PATH_MAX];
	struct td_t_checked c;
	const struct td_ld_hit *h;
	size_t imports = 0;

	td_t_fake(lib, sizeof(lib));
	td_t_build("takes", src, flags, prog, sizeof(prog));
	td_t_check(prog, lib, &c);
	for (size_t k = 0; k < c.sc.obj[1].dyn.n_syms; k++)
		imports += td_ld_is_import(&c.sc.obj[1].dyn.syms[k]);
	cr_assert(eq(sz, c.r.n_imports, imports));
	cr_assert(eq(ptr, (void *)td_t_hit(c.r.taken, c.r.n_taken, "__gmon_start__"), NULL));
	h = td_t_hit(c.r.taken, c.r.n_taken, "strlen");
	cr_assert(ne(ptr, (void *)h, NULL));
	cr_assert(eq(sz, h->obj, 0));
	cr_assert(eq(int, h->allocator, 0));
	cr_assert(eq(sz, c.r.n_taken, 1), "taken: %zu", c.r.n_taken);
	/* the program holds a copy of libc's variable (x86-64 PIE: a copy relocation) */
	for (size_t k = 0; k < c.sc.obj[0].dyn.n_syms; k++) {
		const struct td_elf_sym *y = &c.sc.obj[0].dyn.syms[k];

		if (strcmp(y->name, "program_invocation_short_name") == 0 && td_elf_sym_exported(y))
			cr_assert(eq(str, (char *)y->version_file, "libc.so.6"));
	}
	cr_assert(eq(sz, c.r.n_warn, 1));
	h = td_t_hit(c.r.shadowed, c.r.n_shadowed, "close");
	cr_assert(ne(ptr, (void *)h, NULL));
	cr_assert(eq(sz, h->obj, 0));
	cr_assert(eq(sz, c.r.n_shadowed, 1));
	cr_assert(eq(int, c.r.alloc, -1));
	td_t_checked_free(&c);
}

/* Programs needing a library that replaces malloc, wholly or in part. */
#define TD_T_LIBC_ALLOC                                                              \
	"#include <stddef.h>\n"                                                      \
	"extern void *__libc_malloc(size_t); extern void __libc_free(void *);\n"     \
	"extern void *__libc_calloc(size_t, size_t);\n"                              \
	"extern void *__libc_realloc(void *, size_t);\n"

Test(ldscope, complete_replacement_allocator)
{
	static const char defs[] = TD_T_LIBC_ALLOC
		"void *malloc(size_t n) { return __libc_malloc(n); }\n"
		"void free(void *p) { __libc_free(p); }\n"
		"void *calloc(size_t n, size_t s) { return __libc_calloc(n, s); }\n"
		"void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }\n"
		"void *tc_malloc(size_t n) { return __libc_malloc(n); }\n";
	char lib[PATH_MAX], prog[PATH_MAX], dir[PATH_MAX], rp[PATH_MAX + 16];
	struct td_t_checked c;

	td_t_fake(lib, sizeof(lib));
	td_t_lib("tc", "libtdq.so", "tdq_alloc", defs);
	snprintf(dir, sizeof(dir), "tc");
	snprintf(rp, sizeof(rp), "$ORIGIN/tc");
	td_t_prog_needing("tcprog", dir, "-Wl,--enable-new-dtags", rp, NULL, prog, sizeof(prog));
	td_t_check(prog, lib, &c);
	cr_assert(eq(int, c.r.alloc, td_t_index_of(&c.sc, "/tc/libtdq.so")));
	cr_assert(eq(int, c.r.alloc_complete, 1));
	cr_assert(eq(str, (char *)c.r.alloc_name, "tcmalloc"));
	cr_assert(eq(ptr, (void *)c.r.alloc_other[0], NULL));
	cr_assert(eq(sz, c.r.n_taken, 4));
	for (size_t k = 0; k < c.r.n_taken; k++)
		cr_assert(eq(int, c.r.taken[k].allocator, 1), "%s", c.r.taken[k].symbol);
	cr_assert(eq(sz, c.r.n_warn, 0));
	td_t_checked_free(&c);

	/* the library unknown: the allocator is still named */
	td_t_check(prog, NULL, &c);
	cr_assert(eq(int, c.r.alloc_complete, 1));
	cr_assert(eq(sz, c.r.n_imports + c.r.n_taken + c.r.n_shadowed, 0));
	td_t_checked_free(&c);
}

Test(ldscope, partial_replacement_allocator)
{
	static const char defs[] = TD_T_LIBC_ALLOC "void *malloc(size_t n) { return __libc_malloc(n); }\n";
	char lib[PATH_MAX], prog[PATH_MAX];
	struct td_t_checked c;
	const struct td_ld_hit *h;

	td_t_fake(lib, sizeof(lib));
	td_t_lib("half", "libtdq.so", "tdq_alloc", defs);
	td_t_prog_needing("halfprog", "half", "-Wl,--enable-new-dtags", "$ORIGIN/half", NULL, prog,
			  sizeof(prog));
	td_t_check(prog, lib, &c);
	cr_assert(ge(int, c.r.alloc, 1));
	cr_assert(eq(int, c.r.alloc_complete, 0));
	cr_assert(eq(ptr, (void *)c.r.alloc_name, NULL));
	cr_assert(eq(str, (char *)c.r.alloc_other[0], "free"));
	cr_assert(eq(str, (char *)c.r.alloc_other[1], "calloc"));
	cr_assert(eq(str, (char *)c.r.alloc_other[2], "realloc"));
	cr_assert(eq(ptr, (void *)c.r.alloc_other[3], NULL));
	h = td_t_hit(c.r.taken, c.r.n_taken, "malloc");
	cr_assert(ne(ptr, (void *)h, NULL));
	cr_assert(eq(int, h->allocator, 0));
	cr_assert(eq(sz, c.r.n_warn, 1));
	td_t_checked_free(&c);
}

/* Real programs here: /bin/true takes nothing from the library stand-in. */
Test(ldscope, plain_program_takes_nothing)
{
	char lib[PATH_MAX];
	struct td_t_checked c;

	if (access("/bin/true", X_OK) != 0)
		cr_skip_test("no /bin/true here");
	td_t_fake(lib, sizeof(lib));
	td_t_check("/bin/true", lib, &c);
	cr_assert(eq(sz, c.r.n_taken + c.r.n_shadowed, 0));
	cr_assert(eq(int, c.r.alloc, -1));
	cr_assert(eq(sz, c.sc.n_missing, 0));
	cr_assert(gt(sz, c.r.n_imports, 5));
	td_t_checked_free(&c);
}
