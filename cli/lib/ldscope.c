/*
 * teardown: the loader's global scope, rebuilt from the files, and the
 * library references a program takes over.  See ldscope.h.
 *
 * Everything read here may be hostile (a program's DT_NEEDED names and
 * DT_RUNPATH, the cache): every file goes through the bounded ELF reader,
 * and the cache through td_ldcache_find, which checks each offset.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ldscope.h"

/*
 * Caps on the work a hostile file can ask for: directories tried per
 * search list, and DT_NEEDED names that are not found (each costs a full
 * search) before the rest are no longer looked up.
 */
#define TD__MAX_LIST_ENTRIES 64
#define TD__MAX_MISSING 64

/* ---- this platform ------------------------------------------------------ */

#if defined(__x86_64__)
#define TD__TRIPLET "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define TD__TRIPLET "aarch64-linux-gnu"
#elif defined(__i386__)
#define TD__TRIPLET "i386-linux-gnu"
#elif defined(__arm__)
#define TD__TRIPLET "arm-linux-gnueabihf"
#elif defined(__riscv) && __riscv_xlen == 64
#define TD__TRIPLET "riscv64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define TD__TRIPLET "powerpc64le-linux-gnu"
#elif defined(__s390x__)
#define TD__TRIPLET "s390x-linux-gnu"
#endif

static const char *const td__host_dirs[] = {
#ifdef TD__TRIPLET
	"/lib/" TD__TRIPLET,
	"/usr/lib/" TD__TRIPLET,
#endif
#if defined(__LP64__)
	"/lib64",
	"/usr/lib64",
#endif
	"/lib",
	"/usr/lib",
	NULL,
};

void td_ld_env_host(struct td_ld_env *env, const char *library_path)
{
	env->cache = "/etc/ld.so.cache";
	env->library_path = library_path;
	env->dirs = td__host_dirs;
}

/* ---- /etc/ld.so.cache --------------------------------------------------- */

#define TD__CACHE_OLD "ld.so-1.7.0"
#define TD__CACHE_NEW "glibc-ld.so.cache1.1"
#define TD__CACHE_NEW_HDR 48   /* struct cache_file_new */
#define TD__CACHE_NEW_ENT 24   /* struct file_entry_new */
#define TD__CACHE_OLD_HDR 16   /* magic, padding, nlibs */
#define TD__CACHE_OLD_ENT 12   /* struct file_entry */
#define TD__FLAG_TYPE_MASK 0x00ff
#define TD__FLAG_ELF_LIBC6 0x0003

static uint32_t td__le32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v)); /* the cache is in this host's byte order */
	return v;
}

/* The NUL-terminated string at off, or NULL when it runs off the end. */
static const char *td__cache_str(const unsigned char *base, size_t len, uint32_t off)
{
	if (off >= len || memchr(base + off, '\0', len - off) == NULL)
		return NULL;
	return (const char *)base + off;
}

int td_ldcache_find(const void *data, size_t len, const char *name, size_t *pos, char *out,
		    size_t cap)
{
	const unsigned char *c = data, *hdr;
	size_t start = 0, hlen;
	uint32_t nlibs;

	if (c == NULL || cap == 0)
		return -EINVAL;
	out[0] = '\0';
	if (len >= TD__CACHE_OLD_HDR && memcmp(c, TD__CACHE_OLD, strlen(TD__CACHE_OLD)) == 0) {
		/* the libc5 table first; the new one follows, 8-aligned */
		uint32_t nold = td__le32(c + 12);

		if (nold > (len - TD__CACHE_OLD_HDR) / TD__CACHE_OLD_ENT)
			return -EINVAL;
		start = TD__CACHE_OLD_HDR + (size_t)nold * TD__CACHE_OLD_ENT;
		start = (start + 7) & ~(size_t)7;
	}
	if (start > len || len - start < TD__CACHE_NEW_HDR ||
	    memcmp(c + start, TD__CACHE_NEW, strlen(TD__CACHE_NEW)) != 0)
		return -EINVAL;
	hdr = c + start;
	hlen = len - start; /* string offsets count from the new header */
	nlibs = td__le32(hdr + 20);
	if (nlibs > (hlen - TD__CACHE_NEW_HDR) / TD__CACHE_NEW_ENT)
		return -EINVAL;
	for (size_t k = *pos; k < nlibs; k++) {
		const unsigned char *e = hdr + TD__CACHE_NEW_HDR + k * TD__CACHE_NEW_ENT;
		const char *key, *value;

		if ((td__le32(e) & TD__FLAG_TYPE_MASK) != TD__FLAG_ELF_LIBC6)
			continue;
		key = td__cache_str(hdr, hlen, td__le32(e + 4));
		value = td__cache_str(hdr, hlen, td__le32(e + 8));
		if (key == NULL || value == NULL || strcmp(key, name) != 0)
			continue;
		*pos = k + 1;
		if (strlen(value) >= cap)
			continue;
		memcpy(out, value, strlen(value) + 1);
		return 0;
	}
	*pos = nlibs;
	return -ENOENT;
}

/* Read the cache whole (bounded); none when absent or unreadable. */
static void td__load_cache(struct td_ld_scope *sc, const char *path)
{
	struct stat st;
	size_t got = 0;
	int fd;

	if (path == NULL)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > TD_LD_MAX_CACHE) {
		close(fd);
		return;
	}
	sc->cache = malloc((size_t)st.st_size);
	while (sc->cache != NULL && got < (size_t)st.st_size) {
		ssize_t n = read(fd, sc->cache + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	sc->cache_len = got;
}

/* ---- the scope ---------------------------------------------------------- */

static int td__name_cmp(const void *a, const void *b, void *arg)
{
	const struct td_elf_dyn *d = arg;

	return strcmp(d->syms[*(const size_t *)a].name, d->syms[*(const size_t *)b].name);
}

/* Index the definitions the loader can bind to, sorted by name. */
static int td__index(struct td_ld_obj *o)
{
	o->defs = malloc((o->dyn.n_syms ? o->dyn.n_syms : 1) * sizeof(*o->defs));
	if (o->defs == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < o->dyn.n_syms; k++)
		if (td_elf_sym_exported(&o->dyn.syms[k]) && o->dyn.syms[k].name[0] != '\0')
			o->defs[o->n_defs++] = k;
	qsort_r(o->defs, o->n_defs, sizeof(*o->defs), td__name_cmp, &o->dyn);
	return 0;
}

/*
 * The file at path, when the loader would take it: a shared object of
 * this machine's class and architecture.  0 with *o filled (dyn, info,
 * dev, ino), -ENOENT to keep searching, or -ENOMEM.
 */
static int td__open_obj(const char *path, bool is_root, struct td_ld_obj *o)
{
	struct stat st;
	int rc;

	memset(o, 0, sizeof(*o));
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -ENOENT;
	o->info = calloc(1, sizeof(*o->info));
	if (o->info == NULL)
		return -ENOMEM;
	rc = td_elf_dynamic(path, o->info, &o->dyn);
	if (rc == -ENOMEM)
		goto fail;
	if (rc != 0 || o->info->foreign ||
	    (o->info->type != ET_DYN && !(is_root && o->info->type == ET_EXEC)) ||
	    o->info->kind == TD_ELF_NOT_ELF || o->info->kind == TD_ELF_SCRIPT ||
	    o->info->kind == TD_ELF_OBJECT) {
		rc = -ENOENT;
		goto fail;
	}
	o->dev = st.st_dev;
	o->ino = st.st_ino;
	o->path = strdup(path);
	if (o->path == NULL || td__index(o) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	td_elf_dyn_free(&o->dyn);
	free(o->info);
	free(o->path);
	free(o->defs);
	memset(o, 0, sizeof(*o));
	return rc;
}

static void td__free_obj(struct td_ld_obj *o)
{
	td_elf_dyn_free(&o->dyn);
	free(o->info);
	free(o->path);
	free(o->name);
	free(o->defs);
}

/* Where $ORIGIN points for object i: its directory (the program's, resolved). */
static void td__origin(const struct td_ld_scope *sc, int i, char *out, size_t cap)
{
	char real[PATH_MAX];
	const char *path = sc->obj[i].path;
	const char *slash;

	if (i == 0 && realpath(path, real) != NULL)
		path = real;
	slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(out, cap, ".");
	else if (slash == path)
		snprintf(out, cap, "/");
	else
		snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/*
 * One search-path entry, $ORIGIN expanded (origin may be NULL: not
 * known), into out.  -1 for an entry with another token, which is
 * skipped.  An empty entry is the current directory, as for the loader.
 */
static int td__expand(const char *ent, size_t n, const char *origin, char *out, size_t cap)
{
	size_t len = 0;

	if (n == 0)
		ent = ".", n = 1;
	for (size_t k = 0; k < n;) {
		const char *add = NULL;
		size_t alen = 0, skip = 1;

		if (ent[k] == '$') {
			if (n - k >= 7 && memcmp(ent + k, "$ORIGIN", 7) == 0 &&
			    (n - k == 7 || !(ent[k + 7] == '_' || (ent[k + 7] >= 'A' && ent[k + 7] <= 'Z') ||
					     (ent[k + 7] >= 'a' && ent[k + 7] <= 'z') ||
					     (ent[k + 7] >= '0' && ent[k + 7] <= '9'))))
				skip = 7;
			else if (n - k >= 9 && memcmp(ent + k, "${ORIGIN}", 9) == 0)
				skip = 9;
			else
				return -1;
			if (origin == NULL)
				return -1;
			add = origin;
			alen = strlen(origin);
		} else {
			add = ent + k;
			alen = 1;
		}
		if (len + alen + 1 > cap)
			return -1;
		memcpy(out + len, add, alen);
		len += alen;
		k += skip;
	}
	out[len] = '\0';
	return 0;
}

/*
 * Try name in each directory of a ':'-separated list (also ';' for
 * LD_LIBRARY_PATH, as the loader accepts).  0 with *o filled, -ENOENT,
 * or -ENOMEM.
 */
static int td__search_list(const char *list, const char *seps, const char *origin,
			   const char *name, struct td_ld_obj *o, char *path, size_t cap)
{
	const char *p = list;

	for (int tried = 0; tried < TD__MAX_LIST_ENTRIES; tried++) {
		size_t n = strcspn(p, seps);
		char dir[PATH_MAX];

		if (td__expand(p, n, origin, dir, sizeof(dir)) == 0 &&
		    (size_t)snprintf(path, cap, "%s/%s", dir, name) < cap) {
			int rc = td__open_obj(path, false, o);

			if (rc != -ENOENT)
				return rc;
		}
		if (p[n] == '\0')
			return -ENOENT;
		p += n + 1;
	}
	return -ENOENT;
}

/* Find a library by name for the object at index loader (-1: a root). */
static int td__find(struct td_ld_scope *sc, const struct td_ld_env *env, int loader,
		    const char *name, struct td_ld_obj *o)
{
	char path[PATH_MAX], origin[PATH_MAX];
	const struct td_ld_obj *req = loader >= 0 ? &sc->obj[loader] : NULL;
	bool did_main = false;
	int rc;

	if (strchr(name, '/') != NULL) {
		if (strchr(name, '$') != NULL) {
			if (req == NULL)
				return -ENOENT;
			td__origin(sc, loader, origin, sizeof(origin));
			if (td__expand(name, strlen(name), origin, path, sizeof(path)) != 0)
				return -ENOENT;
			return td__open_obj(path, false, o);
		}
		return td__open_obj(name, false, o);
	}
	/* DT_RPATH of the requester and up its chain, unless it has DT_RUNPATH */
	if (req == NULL || req->dyn.runpath == NULL) {
		for (int l = loader; l >= 0; l = sc->obj[l].loader) {
			const struct td_ld_obj *lo = &sc->obj[l];

			if (lo->dyn.rpath == NULL || lo->dyn.runpath != NULL)
				continue;
			td__origin(sc, l, origin, sizeof(origin));
			rc = td__search_list(lo->dyn.rpath, ":", origin, name, o, path, sizeof(path));
			if (rc != -ENOENT)
				return rc;
			did_main |= l == 0;
		}
		if (!did_main && sc->n > 0 && sc->obj[0].dyn.rpath != NULL &&
		    sc->obj[0].dyn.runpath == NULL) {
			td__origin(sc, 0, origin, sizeof(origin));
			rc = td__search_list(sc->obj[0].dyn.rpath, ":", origin, name, o, path,
					     sizeof(path));
			if (rc != -ENOENT)
				return rc;
		}
	}
	if (env->library_path != NULL && env->library_path[0] != '\0') {
		if (sc->n > 0)
			td__origin(sc, 0, origin, sizeof(origin));
		rc = td__search_list(env->library_path, ":;", sc->n > 0 ? origin : NULL, name, o,
				     path, sizeof(path));
		if (rc != -ENOENT)
			return rc;
	}
	if (req != NULL && req->dyn.runpath != NULL) {
		td__origin(sc, loader, origin, sizeof(origin));
		rc = td__search_list(req->dyn.runpath, ":", origin, name, o, path, sizeof(path));
		if (rc != -ENOENT)
			return rc;
	}
	if (req != NULL && req->dyn.nodeflib)
		return -ENOENT;
	for (size_t pos = 0; sc->cache != NULL &&
	     td_ldcache_find(sc->cache, sc->cache_len, name, &pos, path, sizeof(path)) == 0;) {
		rc = td__open_obj(path, false, o);
		if (rc != -ENOENT)
			return rc;
	}
	for (int k = 0; env->dirs != NULL && env->dirs[k] != NULL; k++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", env->dirs[k], name) >= sizeof(path))
			continue;
		rc = td__open_obj(path, false, o);
		if (rc != -ENOENT)
			return rc;
	}
	return -ENOENT;
}

/* Already in the scope: the same name asked for, its soname, or the same file. */
static int td__loaded_by_name(const struct td_ld_scope *sc, const char *name)
{
	for (size_t k = 0; k < sc->n; k++)
		if (strcmp(sc->obj[k].name, name) == 0 || strcmp(sc->obj[k].info->soname, name) == 0)
			return (int)k;
	return -1;
}

static int td__loaded_file(const struct td_ld_scope *sc, dev_t dev, ino_t ino)
{
	for (size_t k = 0; k < sc->n; k++)
		if (sc->obj[k].dev == dev && sc->obj[k].ino == ino)
			return (int)k;
	return -1;
}

static int td__add_missing(struct td_ld_scope *sc, const char *name, int loader)
{
	for (size_t k = 0; k < sc->n_missing; k++)
		if (strcmp(sc->missing[k].name, name) == 0)
			return 0;
	if (sc->n_missing == sc->cap_missing) {
		size_t cap = sc->cap_missing ? sc->cap_missing * 2 : 8;
		struct td_ld_missing *m = realloc(sc->missing, cap * sizeof(*m));

		if (m == NULL)
			return -ENOMEM;
		sc->missing = m;
		sc->cap_missing = cap;
	}
	sc->missing[sc->n_missing].name = strdup(name);
	if (sc->missing[sc->n_missing].name == NULL)
		return -ENOMEM;
	sc->missing[sc->n_missing++].loader = loader;
	return 0;
}

/* Append o (taking it over) unless its file is already there. */
static int td__append(struct td_ld_scope *sc, struct td_ld_obj *o, const char *name, int loader)
{
	if (td__loaded_file(sc, o->dev, o->ino) >= 0) {
		td__free_obj(o);
		return 0;
	}
	if (sc->n >= TD_LD_MAX_OBJS) {
		sc->cut = true;
		td__free_obj(o);
		return 0;
	}
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 16;
		struct td_ld_obj *v = realloc(sc->obj, cap * sizeof(*v));

		if (v == NULL) {
			td__free_obj(o);
			return -ENOMEM;
		}
		sc->obj = v;
		sc->cap = cap;
	}
	o->name = strdup(name);
	o->loader = loader;
	if (o->name == NULL) {
		td__free_obj(o);
		return -ENOMEM;
	}
	sc->obj[sc->n++] = *o;
	return 0;
}

int td_ld_scope_build(struct td_ld_scope *sc, const char *const *roots, size_t n_roots,
		      const struct td_ld_env *env)
{
	int rc;

	memset(sc, 0, sizeof(*sc));
	td__load_cache(sc, env->cache);
	for (size_t r = 0; r < n_roots; r++) {
		struct td_ld_obj o;

		if (strchr(roots[r], '/') != NULL)
			rc = td__open_obj(roots[r], r == 0, &o);
		else if (strchr(roots[r], '$') != NULL)
			rc = -ENOENT;
		else
			rc = td__find(sc, env, r == 0 ? -1 : 0, roots[r], &o);
		if (rc == -ENOMEM || (rc != 0 && r == 0))
			return rc == -ENOENT && r == 0 ? -ENOEXEC : rc;
		if (rc != 0)
			continue;
		rc = td__append(sc, &o, roots[r], -1);
		if (rc != 0)
			return rc;
	}
	/* breadth first: sc->n grows while we walk */
	for (size_t i = 0; i < sc->n; i++) {
		for (size_t k = 0; k < sc->obj[i].dyn.n_needed; k++) {
			const char *name = sc->obj[i].dyn.needed[k];
			struct td_ld_obj o;

			if (name[0] == '\0' || td__loaded_by_name(sc, name) >= 0)
				continue;
			if (sc->n_missing >= TD__MAX_MISSING) {
				sc->cut = true;
				break;
			}
			rc = td__find(sc, env, (int)i, name, &o);
			if (rc == -ENOENT)
				rc = td__add_missing(sc, name, (int)i);
			else if (rc == 0)
				rc = td__append(sc, &o, name, (int)i);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}

void td_ld_scope_free(struct td_ld_scope *sc)
{
	for (size_t k = 0; k < sc->n; k++)
		td__free_obj(&sc->obj[k]);
	for (size_t k = 0; k < sc->n_missing; k++)
		free(sc->missing[k].name);
	free(sc->obj);
	free(sc->missing);
	free(sc->cache);
	memset(sc, 0, sizeof(*sc));
}

/* ---- lookups ------------------------------------------------------------ */

/* The definition of name in object o that a reference at want binds to. */
static const struct td_elf_sym *td__obj_lookup(const struct td_ld_obj *o, const char *name,
					       const char *want)
{
	size_t lo = 0, hi = o->n_defs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(o->dyn.syms[o->defs[mid]].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < o->n_defs; lo++) {
		const struct td_elf_sym *y = &o->dyn.syms[o->defs[lo]];

		if (strcmp(y->name, name) != 0)
			break;
		if (td_elf_sym_matches(y, o->dyn.has_versym, want))
			return y;
	}
	return NULL;
}

int td_ld_lookup(const struct td_ld_scope *sc, const char *name, const char *want,
		 const struct td_elf_sym **sym)
{
	for (size_t k = 0; k < sc->n; k++) {
		const struct td_elf_sym *y = td__obj_lookup(&sc->obj[k], name, want);

		if (y != NULL) {
			if (sym != NULL)
				*sym = y;
			return (int)k;
		}
	}
	return -1;
}

/* Is object k of sc one of own's files? */
static bool td__is_own(const struct td_ld_scope *sc, size_t k, const struct td_ld_scope *own)
{
	return td__loaded_file(own, sc->obj[k].dev, sc->obj[k].ino) >= 0;
}

/* Is name (a DT_NEEDED or soname) one of own's files? */
static bool td__own_name(const struct td_ld_scope *own, const char *name)
{
	return name != NULL && td__loaded_by_name(own, name) >= 0;
}

static const char *const td__core_alloc[] = {"malloc", "free", "calloc", "realloc"};

/*
 * The rest of the allocator's interface: libc's versions of these work
 * only on memory libc's malloc handed out, so with a replacement malloc
 * they must come from the replacement too.
 */
static const char *const td__alloc_family[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
	"aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree",
};

static bool td__in(const char *name, const char *const *set, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (strcmp(name, set[k]) == 0)
			return true;
	return false;
}

/* Which allocator object k is, by what it exports. */
static const char *td__alloc_name(const struct td_ld_obj *o)
{
	static const struct { const char *mark, *name; } marks[] = {
		{"mallctl", "jemalloc"}, {"je_mallctl", "jemalloc"},
		{"tc_malloc", "tcmalloc"}, {"mi_malloc", "mimalloc"},
	};
	const char *base = strrchr(o->path, '/');

	for (size_t k = 0; k < sizeof(marks) / sizeof(marks[0]); k++)
		if (td__obj_lookup(o, marks[k].mark, NULL) != NULL)
			return marks[k].name;
	base = base ? base + 1 : o->path;
	if (strstr(base, "jemalloc") != NULL)
		return "jemalloc";
	if (strstr(base, "tcmalloc") != NULL)
		return "tcmalloc";
	if (strstr(base, "mimalloc") != NULL)
		return "mimalloc";
	return NULL;
}

/* The version the library asks for name at, when it imports it. */
static const char *td__import_version(const struct td_ld_scope *sc, size_t lib, const char *name)
{
	if (lib >= sc->n)
		return NULL;
	for (size_t k = 0; k < sc->obj[lib].dyn.n_syms; k++) {
		const struct td_elf_sym *y = &sc->obj[lib].dyn.syms[k];

		if (y->shndx == SHN_UNDEF && strcmp(y->name, name) == 0)
			return y->version;
	}
	return NULL;
}

/*
 * The object a reference binds to, seen from the library: -1 when it is
 * one of own's (or unbound), else its index.  A copy relocation in the
 * program is the file it copies from.
 */
static int td__binds_outside(const struct td_ld_scope *sc, const struct td_ld_scope *own,
			     const char *name, const char *want)
{
	const struct td_elf_sym *y = NULL;
	int k = td_ld_lookup(sc, name, want, &y);

	if (k < 0 || td__is_own(sc, (size_t)k, own))
		return -1;
	if (y->version_file != NULL && td__own_name(own, y->version_file))
		return -1;
	return k;
}

/* Hits by object (scope order), then by name: stable messages. */
static int td__hit_cmp(const void *a, const void *b)
{
	const struct td_ld_hit *x = a, *y = b;

	if (x->obj != y->obj)
		return x->obj < y->obj ? -1 : 1;
	return strcmp(x->symbol, y->symbol);
}

static int td__add_hit(struct td_ld_hit **v, size_t *n, const char *symbol, size_t obj)
{
	struct td_ld_hit *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	nv[*n].symbol = symbol;
	nv[*n].obj = obj;
	nv[*n].allocator = false;
	(*n)++;
	return 0;
}

/* The replacement allocator, if any; fills r->alloc*. */
static void td__check_alloc(const struct td_ld_scope *sc, size_t lib, const struct td_ld_scope *own,
			    struct td_ld_report *r)
{
	int where[4], no = 0;

	r->alloc = -1;
	for (int k = 0; k < 4; k++) {
		where[k] = td__binds_outside(sc, own, td__core_alloc[k],
					     td__import_version(sc, lib, td__core_alloc[k]));
		if (where[k] >= 0 && r->alloc < 0)
			r->alloc = where[k];
	}
	if (r->alloc < 0)
		return;
	r->alloc_name = td__alloc_name(&sc->obj[r->alloc]);
	for (int k = 0; k < 4; k++)
		if (where[k] != r->alloc)
			r->alloc_other[no++] = td__core_alloc[k];
	r->alloc_other[no] = NULL;
	r->alloc_complete = no == 0;
}

int td_ld_check(const struct td_ld_scope *sc, size_t lib, const struct td_ld_scope *own,
		struct td_ld_report *r)
{
	const struct td_ld_obj *lo = lib < sc->n ? &sc->obj[lib] : NULL;

	memset(r, 0, sizeof(*r));
	td__check_alloc(sc, lib, own, r);
	for (size_t k = 0; lo != NULL && k < lo->dyn.n_syms; k++) {
		const struct td_elf_sym *y = &lo->dyn.syms[k];
		int where;

		if (!td_ld_is_import(y))
			continue;
		r->n_imports++;
		where = td__binds_outside(sc, own, y->name, y->version);
		if (where < 0)
			continue;
		if (td__add_hit(&r->taken, &r->n_taken, y->name, (size_t)where) != 0)
			return -ENOMEM;
		if (r->alloc_complete && where == r->alloc && td_ld_alloc_family(y->name))
			r->taken[r->n_taken - 1].allocator = true;
		else
			r->n_warn++;
	}
	if (r->n_taken > 1)
		qsort(r->taken, r->n_taken, sizeof(*r->taken), td__hit_cmp);
	/* the names the library wraps, defined by what the loader searches first */
	for (size_t k = 0; lo != NULL && k < lo->n_defs; k++) {
		const struct td_elf_sym *y = &lo->dyn.syms[lo->defs[k]];

		for (size_t o = 0; o < lib; o++) {
			if (td__obj_lookup(&sc->obj[o], y->name, NULL) == NULL)
				continue;
			if (td__add_hit(&r->shadowed, &r->n_shadowed, y->name, o) != 0)
				return -ENOMEM;
			break;
		}
	}
	if (r->n_shadowed > 1)
		qsort(r->shadowed, r->n_shadowed, sizeof(*r->shadowed), td__hit_cmp);
	return 0;
}

void td_ld_report_free(struct td_ld_report *r)
{
	free(r->taken);
	free(r->shadowed);
	memset(r, 0, sizeof(*r));
}

bool td_ld_is_import(const struct td_elf_sym *y)
{
	if (y->shndx != SHN_UNDEF || y->name[0] == '\0' ||
	    (y->bind != STB_GLOBAL && y->bind != STB_WEAK))
		return false;
	/* __gmon_start__, _ITM_*: hooks the toolchain leaves unbound on purpose */
	return !(y->bind == STB_WEAK && y->version == NULL);
}

bool td_ld_alloc_family(const char *name)
{
	return td__in(name, td__alloc_family, sizeof(td__alloc_family) / sizeof(td__alloc_family[0]));
}
