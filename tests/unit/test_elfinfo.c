/* teardown: unit tests for the ELF inspection behind `teardown doctor`. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../cli/lib/elfinfo.h"

#include "elftest.h"

TestSuite(elf, .init = td_t_mkdir, .fini = td_t_rmdir);

/* ---- helpers --------------------------------------------------------- */

static void td_t_inspect(const char *path, struct td_elf_info *i)
{
	int rc = td_elf_inspect(path, i);

	cr_assert(eq(int, rc, 0), "td_elf_inspect(%s) = %d", path, rc);
}

static bool td_t_has_needed(const struct td_elf_info *i, const char *name)
{
	for (int k = 0; k < i->n_needed; k++)
		if (strcmp(i->needed[k], name) == 0)
			return true;
	return false;
}

/* The verdict, with its ok, asserting that it mentions every phrase given. */
static int td_t_verdict(const struct td_elf_info *i, const char *p1, const char *p2)
{
	char buf[1024];
	int ok = -1;

	td_elf_verdict(i, buf, sizeof(buf), &ok);
	cr_assert(eq(int, ok == 0 || ok == 1, 1));
	cr_assert(ne(ptr, strstr(buf, p1), NULL), "verdict \"%s\" lacks \"%s\"", buf, p1);
	if (p2 != NULL)
		cr_assert(ne(ptr, strstr(buf, p2), NULL), "verdict \"%s\" lacks \"%s\"", buf, p2);
	return ok;
}

/* xorshift64: the same "random" bytes on every run. */
static uint64_t td_t_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---- hand-built ELF files ------------------------------------------- */

/*
 * A small ELF image written field by field, in either class and byte
 * order, so that the tests do not depend on a cross toolchain and can
 * say exactly what the file contains.
 */
struct td_t_spec {
	int cls; /* ELFCLASS32 / ELFCLASS64 */
	int be;	 /* big-endian */
	int machine, type;
	uint64_t entry;
	const char *interp;		/* NULL: no PT_INTERP */
	const char *needed[48];
	int n_needed;
	const char *soname;
	uint64_t flags_1;
	const char *versions[8]; /* needed from libc.so.6: version indices 2, 3... */
	bool no_dynamic;
	bool strtab_unmapped; /* DT_STRTAB pointing nowhere */
	/* dynamic symbols, counted through DT_HASH (there are no sections) */
	struct td_t_sym {
		const char *name;
		bool defined;
		int bind, type;
		uint16_t versym; /* the .gnu.version entry (bit 15: hidden) */
	} syms[12];
	int n_syms;
	const char *verdefs[4]; /* defined versions: indices 10, 11... */
	const char *runpath, *rpath;
};

#define TD_T_BASE 0x10000u
#define TD_T_IMAGE 8192u

static void td_t_put(unsigned char *b, size_t off, uint64_t v, int size, int be)
{
	for (int k = 0; k < size; k++) {
		int shift = 8 * (be ? size - 1 - k : k);

		b[off + (size_t)k] = (unsigned char)(v >> shift);
	}
}

static size_t td_t_mkelf(const struct td_t_spec *sp, unsigned char *b)
{
	bool is64 = sp->cls == ELFCLASS64;
	int a = is64 ? 8 : 4; /* address size */
	int be = sp->be;
	size_t phoff = 64, ph = is64 ? 56 : 32, str = 1024, vn = 3072, dyn = 4096;
	size_t symtab = 2560, versym = 2944, hash = 2976, verdef = 3584;
	size_t strlen_ = 1, interp_off = 512, d = dyn, syment = is64 ? 24 : 16;
	uint32_t needed_idx[48], soname_idx = 0, libc_idx, ver_idx[8], sym_idx[12], def_idx[4];
	uint32_t runpath_idx = 0, rpath_idx = 0, base_idx;
	int n_ver = 0, n_def = 0, phnum = 0;

	memset(b, 0, TD_T_IMAGE);
	memcpy(b, ELFMAG, SELFMAG);
	b[EI_CLASS] = (unsigned char)sp->cls;
	b[EI_DATA] = be ? ELFDATA2MSB : ELFDATA2LSB;
	b[EI_VERSION] = EV_CURRENT;
	td_t_put(b, 16, (uint64_t)sp->type, 2, be);
	td_t_put(b, 18, (uint64_t)sp->machine, 2, be);
	td_t_put(b, 20, EV_CURRENT, 4, be);
	td_t_put(b, 24, sp->entry, a, be);
	td_t_put(b, is64 ? 32 : 28, phoff, a, be);
	td_t_put(b, is64 ? 52 : 40, is64 ? 64 : 52, 2, be);
	td_t_put(b, is64 ? 54 : 42, ph, 2, be);

	/* strings */
	for (int k = 0; k < sp->n_needed; k++) {
		needed_idx[k] = (uint32_t)strlen_;
		strcpy((char *)b + str + strlen_, sp->needed[k]);
		strlen_ += strlen(sp->needed[k]) + 1;
	}
	if (sp->soname) {
		soname_idx = (uint32_t)strlen_;
		strcpy((char *)b + str + strlen_, sp->soname);
		strlen_ += strlen(sp->soname) + 1;
	}
	libc_idx = (uint32_t)strlen_;
	strcpy((char *)b + str + strlen_, "libc.so.6");
	strlen_ += 10;
	for (; n_ver < 8 && sp->versions[n_ver]; n_ver++) {
		ver_idx[n_ver] = (uint32_t)strlen_;
		strcpy((char *)b + str + strlen_, sp->versions[n_ver]);
		strlen_ += strlen(sp->versions[n_ver]) + 1;
	}
#define TD_T_STR(var, text)                                      \
	do {                                                     \
		(var) = (uint32_t)strlen_;                       \
		strcpy((char *)b + str + strlen_, (text));       \
		strlen_ += strlen(text) + 1;                     \
	} while (0)
	for (int k = 0; k < sp->n_syms; k++)
		TD_T_STR(sym_idx[k], sp->syms[k].name);
	for (; n_def < 4 && sp->verdefs[n_def]; n_def++)
		TD_T_STR(def_idx[n_def], sp->verdefs[n_def]);
	TD_T_STR(base_idx, "libbase.so");
	if (sp->runpath)
		TD_T_STR(runpath_idx, sp->runpath);
	if (sp->rpath)
		TD_T_STR(rpath_idx, sp->rpath);
#undef TD_T_STR
	cr_assert(lt(sz, str + strlen_, symtab));

	/* symbols: entry 0 is the null symbol; versym and a DT_HASH beside */
	for (int k = 0; k < sp->n_syms; k++) {
		size_t y = symtab + syment * (size_t)(k + 1);
		const struct td_t_sym *ts = &sp->syms[k];
		unsigned char info = (unsigned char)(ts->bind << 4 | ts->type);

		td_t_put(b, y, sym_idx[k], 4, be);
		if (is64) {
			b[y + 4] = info;
			td_t_put(b, y + 6, ts->defined ? 7 : SHN_UNDEF, 2, be);
			td_t_put(b, y + 8, ts->defined ? TD_T_BASE + 64 : 0, 8, be);
		} else {
			td_t_put(b, y + 4, ts->defined ? TD_T_BASE + 64 : 0, 4, be);
			b[y + 12] = info;
			td_t_put(b, y + 14, ts->defined ? 7 : SHN_UNDEF, 2, be);
		}
		td_t_put(b, versym + 2 * (size_t)(k + 1), ts->versym, 2, be);
	}
	td_t_put(b, hash, 1, 4, be);				  /* nbucket */
	td_t_put(b, hash + 4, (uint64_t)sp->n_syms + 1, 4, be); /* nchain */
	cr_assert(le(sz, symtab + syment * 13, versym));
	cr_assert(lt(sz, hash + 8 + 4 * 14, vn));

	/* version definitions: the base (index 1), then 10, 11... */
	for (int k = 0; n_def > 0 && k <= n_def; k++) {
		size_t x = verdef + 28 * (size_t)k;

		td_t_put(b, x, 1, 2, be);
		td_t_put(b, x + 2, k == 0 ? VER_FLG_BASE : 0, 2, be);
		td_t_put(b, x + 4, k == 0 ? 1 : 9 + (unsigned)k, 2, be);
		td_t_put(b, x + 6, 1, 2, be);
		td_t_put(b, x + 12, 20, 4, be);
		td_t_put(b, x + 16, k < n_def ? 28 : 0, 4, be);
		td_t_put(b, x + 20, k == 0 ? base_idx : def_idx[k - 1], 4, be);
	}

	/* version needs: one file, n_ver versions */
	if (n_ver > 0) {
		td_t_put(b, vn, 1, 2, be);
		td_t_put(b, vn + 2, (uint64_t)n_ver, 2, be);
		td_t_put(b, vn + 4, libc_idx, 4, be);
		td_t_put(b, vn + 8, 16, 4, be);
		for (int k = 0; k < n_ver; k++) {
			size_t x = vn + 16 + 16 * (size_t)k;

			td_t_put(b, x + 6, (uint64_t)k + 2, 2, be); /* vna_other */
			td_t_put(b, x + 8, ver_idx[k], 4, be);
			td_t_put(b, x + 12, k + 1 < n_ver ? 16 : 0, 4, be);
		}
	}

	/* dynamic: DT_NEEDED first, DT_STRTAB after, as linkers write it */
#define TD_T_DYN(tag, val)                                \
	do {                                              \
		td_t_put(b, d, (uint64_t)(tag), a, be);   \
		td_t_put(b, d + (size_t)a, (val), a, be); \
		d += 2 * (size_t)a;                       \
	} while (0)
	for (int k = 0; k < sp->n_needed; k++)
		TD_T_DYN(DT_NEEDED, needed_idx[k]);
	if (sp->soname)
		TD_T_DYN(DT_SONAME, soname_idx);
	if (sp->flags_1)
		TD_T_DYN(DT_FLAGS_1, sp->flags_1);
	if (n_ver > 0) {
		TD_T_DYN(DT_VERNEED, TD_T_BASE + vn);
		TD_T_DYN(DT_VERNEEDNUM, 1);
	}
	if (sp->n_syms > 0) {
		TD_T_DYN(DT_SYMTAB, TD_T_BASE + symtab);
		TD_T_DYN(DT_SYMENT, syment);
		TD_T_DYN(DT_HASH, TD_T_BASE + hash);
		TD_T_DYN(DT_VERSYM, TD_T_BASE + versym);
	}
	if (n_def > 0) {
		TD_T_DYN(DT_VERDEF, TD_T_BASE + verdef);
		TD_T_DYN(DT_VERDEFNUM, (uint64_t)n_def + 1);
	}
	if (sp->runpath)
		TD_T_DYN(DT_RUNPATH, runpath_idx);
	if (sp->rpath)
		TD_T_DYN(DT_RPATH, rpath_idx);
	TD_T_DYN(DT_STRTAB, sp->strtab_unmapped ? 0x7fff0000u : TD_T_BASE + str);
	TD_T_DYN(DT_STRSZ, strlen_);
	TD_T_DYN(DT_NULL, 0);
#undef TD_T_DYN
	cr_assert(le(sz, d, (size_t)TD_T_IMAGE));

	/* program headers: PT_LOAD over everything, PT_INTERP, PT_DYNAMIC */
#define TD_T_PH(type, flags, off, vaddr, size)                                     \
	do {                                                                       \
		size_t p = phoff + ph * (size_t)phnum++;                           \
		td_t_put(b, p, (type), 4, be);                                     \
		if (is64) {                                                        \
			td_t_put(b, p + 4, (flags), 4, be);                        \
			td_t_put(b, p + 8, (off), 8, be);                          \
			td_t_put(b, p + 16, (vaddr), 8, be);                       \
			td_t_put(b, p + 32, (size), 8, be);                        \
			td_t_put(b, p + 40, (size), 8, be);                        \
		} else {                                                           \
			td_t_put(b, p + 4, (off), 4, be);                          \
			td_t_put(b, p + 8, (vaddr), 4, be);                        \
			td_t_put(b, p + 16, (size), 4, be);                        \
			td_t_put(b, p + 20, (size), 4, be);                        \
			td_t_put(b, p + 24, (flags), 4, be);                       \
		}                                                                  \
	} while (0)
	TD_T_PH(PT_LOAD, PF_R, 0, TD_T_BASE, d);
	if (sp->interp) {
		strcpy((char *)b + interp_off, sp->interp);
		TD_T_PH(PT_INTERP, PF_R, interp_off, TD_T_BASE + interp_off,
			strlen(sp->interp) + 1);
	}
	if (!sp->no_dynamic)
		TD_T_PH(PT_DYNAMIC, PF_R | PF_W, dyn, TD_T_BASE + dyn, d - dyn);
#undef TD_T_PH
	td_t_put(b, is64 ? 56 : 44, (uint64_t)phnum, 2, be);
	return d;
}

static const struct td_t_spec td_t_glibc64 = {
	.cls = ELFCLASS64, .machine = EM_X86_64, .type = ET_DYN, .entry = TD_T_BASE + 64,
	.interp = "/lib64/ld-linux-x86-64.so.2",
	.needed = {"libm.so.6", "libc.so.6"}, .n_needed = 2, .flags_1 = DF_1_PIE,
};

/*
 * What td_elf_dynamic promises on any input: counts within their caps,
 * and every string it hands out inside its own copy of the string table.
 */
static void td_t_check_dyn(const struct td_elf_dyn *d)
{
#define TD_T_IN_TABLE(p) \
	((p) == NULL || (p)[0] == '\0' || ((p) >= d->strtab && (p) < d->strtab + d->strtab_size))
	cr_assert(le(sz, d->n_syms, (size_t)TD_ELF_MAX_SYMS));
	cr_assert(le(sz, d->n_needed, (size_t)TD_ELF_MAX_DYN_NEEDED));
	cr_assert(eq(int, TD_T_IN_TABLE(d->runpath) && TD_T_IN_TABLE(d->rpath), 1));
	for (size_t k = 0; k < d->n_needed; k++)
		cr_assert(eq(int, TD_T_IN_TABLE(d->needed[k]), 1));
	for (size_t k = 0; k < d->n_syms; k++) {
		const struct td_elf_sym *y = &d->syms[k];

		cr_assert(ne(ptr, (void *)y->name, NULL));
		cr_assert(eq(int, TD_T_IN_TABLE(y->name) && TD_T_IN_TABLE(y->version) &&
					  TD_T_IN_TABLE(y->version_file), 1));
		cr_assert(le(int, y->ver_index, 0x7fff));
		(void)td_elf_sym_exported(y);
	}
#undef TD_T_IN_TABLE
}

/* Inspect an image with its symbols (dyn released by the caller). */
static void td_t_mem_dyn(const struct td_t_spec *sp, struct td_elf_info *i, struct td_elf_dyn *d)
{
	static unsigned char img[TD_T_IMAGE];
	size_t n = td_t_mkelf(sp, img);

	cr_assert(eq(int, td_elf_dynamic_mem(img, n, i, d), 0));
	td_t_check_dyn(d);
}

static void td_t_mem(const struct td_t_spec *sp, struct td_elf_info *i)
{
	static unsigned char img[TD_T_IMAGE];
	size_t n = td_t_mkelf(sp, img);

	cr_assert(eq(int, td_elf_inspect_mem(img, n, i), 0));
}

/* ---- real programs, built here --------------------------------------- */

Test(elf, dynamic_program_needs_libc)
{
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("dyn", td_t_hello, NULL, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "dynamic"));
	cr_assert(eq(int, i.has_interp, 1));
	cr_assert(ne(ptr, strstr(i.interp, "ld-linux"), NULL), "interp %s", i.interp);
	cr_assert(eq(int, i.needs_libc, 1));
	cr_assert(eq(int, td_t_has_needed(&i, "libc.so.6"), 1));
	cr_assert(eq(int, i.foreign, 0));
	cr_assert(eq(int, i.go, 0));
	cr_assert(eq(int, i.setuid || i.setgid || i.caps, 0));
	cr_assert(eq(int, i.glibc_major, 2));
	cr_assert(eq(int, td_t_verdict(&i, "dynamically linked against libc.so.6", "can interpose"), 1));
}

Test(elf, static_program)
{
	const char *flags[] = {"-static", NULL};
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("st", td_t_hello, flags, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.kind, TD_ELF_STATIC));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "static"));
	cr_assert(eq(int, i.has_interp, 0));
	cr_assert(eq(int, i.n_needed_total, 0));
	cr_assert(eq(int, td_t_verdict(&i, "static binary", "LD_PRELOAD never runs"), 0));
}

Test(elf, static_pie_program)
{
	const char *flags[] = {"-static-pie", NULL};
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("sp", td_t_hello, flags, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.kind, TD_ELF_STATIC_PIE));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "static-pie"));
	cr_assert(eq(int, i.type, ET_DYN));
	cr_assert(eq(int, i.has_interp, 0));
	cr_assert(eq(int, i.pie, 1));
	cr_assert(eq(int, td_t_verdict(&i, "static-pie", "LD_PRELOAD never runs"), 0));
}

/*
 * A real 32-bit program when this machine has the 32-bit libc; if not, a
 * 32-bit PIE without libc that needs a stand-in "libc.so.6", which is
 * all the headers are about.
 */
Test(elf, thirty_two_bit_program)
{
	const char *full[] = {"-m32", NULL};
	const char *lib[] = {"-m32", "-nostdlib", "-shared", "-fPIC", "-Wl,-soname,libc.so.6", NULL};
	char exe[PATH_MAX], so[PATH_MAX], so_flag[PATH_MAX + 8];
	const char *bare[] = {"-m32", "-nostdlib", "-fPIE", "-pie", "-Wl,-e,_start",
			      "-Wl,--no-as-needed", so_flag, NULL};
	struct td_elf_info i;

	if (td_t_cc("m32", td_t_hello, full, exe, sizeof(exe)) != 0) {
		cr_log_info("cc -m32 cannot link against a 32-bit libc here; using a stand-in libc.so.6");
		if (td_t_cc("libc.so.6", "int td_t_x;\n", lib, so, sizeof(so)) != 0)
			cr_skip_test("cc -m32 does not work here");
		snprintf(so_flag, sizeof(so_flag), "%s", so);
		if (td_t_cc("m32", "void _start(void) { for (;;); }\n", bare, exe, sizeof(exe)) != 0)
			cr_skip_test("cc -m32 -nostdlib does not work here");
	}
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.elf_class, ELFCLASS32));
	cr_assert(eq(int, i.machine, EM_386));
	cr_assert(eq(int, i.foreign, 1));
	cr_assert(eq(int, i.needs_libc, 1));
	cr_assert(eq(str, i.interp, "/lib/ld-linux.so.2"));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "foreign-arch"));
	cr_assert(eq(int, td_t_verdict(&i, "32-bit program", "64-bit library"), 0));
}

/* Copy a fresh dynamic program to name with mode; its path in out. */
static void td_t_dyn_copy(const char *name, mode_t mode, char *out, size_t cap)
{
	char exe[PATH_MAX];
	struct statvfs vfs;

	td_t_build("dyn", td_t_hello, NULL, exe, sizeof(exe));
	if (statvfs(td_t_dir, &vfs) == 0 && (vfs.f_flag & ST_NOSUID))
		cr_skip_test("%s is on a nosuid mount", td_t_dir);
	td_t_path(out, cap, name);
	cr_assert(eq(int, rename(exe, out), 0));
	cr_assert(eq(int, chmod(out, mode), 0));
}

Test(elf, setuid_program)
{
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_dyn_copy("suid", 04755, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.setuid, 1));
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "setuid"));
	cr_assert(eq(int, td_t_verdict(&i, "set-user-ID", "secure mode"), 0));
	td_t_verdict(&i, "/etc/ld.so.preload", "/etc/teardown.conf");
	/* the kernel only uses secure mode when the ids really change */
	cr_assert(eq(int, td_elf_secure_for_caller(&i), i.uid != getuid()));
}

Test(elf, setgid_program)
{
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_dyn_copy("sgid", 02755, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.setgid, 1));
	cr_assert(eq(int, i.setuid, 0));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "setuid"));
	cr_assert(eq(int, td_t_verdict(&i, "set-group-ID", "ignores LD_PRELOAD"), 0));
}

/* Set-group-ID without group execute is mandatory locking, not privilege. */
Test(elf, setgid_bit_without_group_exec)
{
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_dyn_copy("lock", 02705, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.setgid, 0));
	cr_assert(eq(int, td_t_verdict(&i, "dynamically linked", NULL), 1));
}

Test(elf, file_capabilities)
{
	char exe[PATH_MAX];
	char *argv[] = {"setcap", "cap_net_raw+ep", exe, NULL};
	char *argv2[] = {"/usr/sbin/setcap", "cap_net_raw+ep", exe, NULL};
	/* struct vfs_cap_data, revision 2, effective: CAP_NET_RAW (13) */
	const uint32_t cap[5] = {0x02000001u, 1u << 13, 0, 0, 0};
	struct td_elf_info i;

	td_t_dyn_copy("capped", 0755, exe, sizeof(exe));
	if (td_t_run(argv) != 0 && td_t_run(argv2) != 0 &&
	    setxattr(exe, "security.capability", cap, sizeof(cap), 0) != 0)
		cr_skip_test("cannot give a file capabilities here: %s", strerror(errno));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.caps, 1));
	cr_assert(eq(int, i.setuid, 0));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "setuid"));
	cr_assert(eq(int, td_t_verdict(&i, "file capabilities", "secure mode"), 0));
}

Test(elf, go_buildinfo_section)
{
	static const char src[] =
		"#include <stdio.h>\n"
		"__attribute__((used, aligned(16), section(\".go.buildinfo\")))\n"
		"const char td_t_bi[32] = \"\\xff Go buildinf:\\x08\\x02\";\n"
		"int main(void) { puts(\"hi\"); return 0; }\n";
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("gobi", src, NULL, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.go, 1));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "go"));
	/* it links libc, as a cgo binary does */
	cr_assert(eq(int, td_t_verdict(&i, "Go binary", "only calls made through cgo"), 0));
}

Test(elf, go_static_buildinfo)
{
	static const char src[] =
		"__attribute__((used, aligned(16), section(\".go.buildinfo\")))\n"
		"const char td_t_bi[32] = \"\\xff Go buildinf:\\x08\\x02\";\n"
		"int main(void) { return 0; }\n";
	const char *flags[] = {"-static", NULL};
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("gost", src, flags, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.go, 1));
	cr_assert(eq(int, i.kind, TD_ELF_STATIC));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "go"));
	cr_assert(eq(int, td_t_verdict(&i, "Go binary", "system calls directly"), 0));
}

Test(elf, go_buildid_note)
{
	static const char src[] =
		"struct n { unsigned namesz, descsz, type; char name[4]; char desc[8]; };\n"
		"__attribute__((used, aligned(4), section(\".note.go.buildid\")))\n"
		"static const struct n td_t_note = {4, 8, 4, \"Go\", \"abcdefg\"};\n"
		"int main(void) { return 0; }\n";
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("gonote", src, NULL, exe, sizeof(exe));
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.go, 1));
}

/* Wipe the section header table, as a stripped-down loader-only file. */
static void td_t_drop_sections(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	unsigned char zero[8] = {0};

	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, (int)pwrite(fd, zero, 8, 40), 8));	/* e_shoff */
	cr_assert(eq(int, (int)pwrite(fd, zero, 4, 60), 4));	/* e_shnum, e_shstrndx */
	close(fd);
}

/* Without section names, the build-info magic in writable data still tells. */
Test(elf, go_magic_without_sections)
{
	static const char src[] =
		"#include <stdio.h>\n"
		"__attribute__((used, aligned(16)))\n"
		"char td_t_bi[32] = \"\\xff Go buildinf:\\x08\\x02\";\n"
		"int main(void) { puts(td_t_bi + 1); return 0; }\n";
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("gomagic", src, NULL, exe, sizeof(exe));
	td_t_drop_sections(exe);
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(int, i.needs_libc, 1)); /* PT_LOAD mapping found .dynstr */
	cr_assert(eq(int, i.go, 1));
}

/* The same bytes in read-only data are a C program talking about Go. */
Test(elf, go_magic_in_rodata_is_not_go)
{
	static const char src[] =
		"#include <stdio.h>\n"
		"__attribute__((used, aligned(16)))\n"
		"const char td_t_bi[32] = \"\\xff Go buildinf:\\x08\\x02\";\n"
		"int main(void) { puts(td_t_bi + 1); return 0; }\n";
	char exe[PATH_MAX];
	struct td_elf_info i;

	td_t_build("gorodata", src, NULL, exe, sizeof(exe));
	td_t_drop_sections(exe);
	td_t_inspect(exe, &i);
	cr_assert(eq(int, i.go, 0));
	cr_assert(eq(int, td_t_verdict(&i, "dynamically linked", NULL), 1));
}

Test(elf, shell_script)
{
	static const char sh[] = "#!/bin/sh\necho hi\n";
	char path[PATH_MAX];
	struct td_elf_info i;

	td_t_path(path, sizeof(path), "script.sh");
	td_t_write(path, sh, sizeof(sh) - 1, 0755);
	td_t_inspect(path, &i);
	cr_assert(eq(int, i.kind, TD_ELF_SCRIPT));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "script"));
	cr_assert(eq(str, i.script_interp, "/bin/sh"));
	cr_assert(eq(str, i.script_arg, ""));
	td_t_verdict(&i, "script run by /bin/sh", "checked separately");
}

/* "#!" parsing as the kernel does it: one interpreter, one argument. */
Test(elf, script_with_env_and_argument)
{
	static const char sh[] = "#!  /usr/bin/env   -S python3 -u \t\r\nprint(1)\n";
	struct td_elf_info i;

	cr_assert(eq(int, td_elf_inspect_mem(sh, sizeof(sh) - 1, &i), 0));
	cr_assert(eq(int, i.kind, TD_ELF_SCRIPT));
	cr_assert(eq(str, i.script_interp, "/usr/bin/env"));
	cr_assert(eq(str, i.script_arg, "-S python3 -u"));
}

/* The verdict speaks for the interpreter once the caller has inspected it. */
Test(elf, script_interpreter_verdict)
{
	static const char sh[] = "#!/bin/busybox sh\n";
	struct td_elf_info i, bb, dyn;
	int ok;

	cr_assert(eq(int, td_elf_inspect_mem(sh, sizeof(sh) - 1, &i), 0));
	memset(&bb, 0, sizeof(bb));
	bb.kind = TD_ELF_STATIC;
	bb.elf_class = ELFCLASS64;
	bb.machine = EM_X86_64;
	i.interp_info = &bb;
	ok = td_t_verdict(&i, "/bin/busybox sh", "cannot interpose");
	cr_assert(eq(int, ok, 0));
	td_t_verdict(&i, "static binary", NULL);
	td_t_mem(&td_t_glibc64, &dyn);
	i.interp_info = &dyn;
	cr_assert(eq(int, td_t_verdict(&i, "can interpose", NULL), 1));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "script"));
}

Test(elf, truncated_elf)
{
	char exe[PATH_MAX], cut[PATH_MAX];
	unsigned char head[100];
	struct td_elf_info i;
	int fd;

	td_t_build("dyn", td_t_hello, NULL, exe, sizeof(exe));
	fd = open(exe, O_RDONLY | O_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, (int)read(fd, head, sizeof(head)), (int)sizeof(head)));
	close(fd);
	td_t_path(cut, sizeof(cut), "cut");
	td_t_write(cut, head, sizeof(head), 0755);
	td_t_inspect(cut, &i);
	cr_assert(eq(int, i.kind, TD_ELF_NOT_ELF));
	cr_assert(eq(int, i.damaged, 1));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "not-elf"));
	cr_assert(eq(int, td_t_verdict(&i, "damaged ELF file", "program headers"), 0));
}

/* Every prefix of a real program: never a crash, never an error. */
Test(elf, every_prefix_of_a_program)
{
	char exe[PATH_MAX];
	unsigned char *img;
	struct td_elf_info i;
	struct stat st;
	int fd;

	td_t_build("dyn", td_t_hello, NULL, exe, sizeof(exe));
	fd = open(exe, O_RDONLY | O_CLOEXEC);
	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, fstat(fd, &st), 0));
	img = malloc((size_t)st.st_size);
	cr_assert(ne(ptr, img, NULL));
	cr_assert(eq(sz, (size_t)read(fd, img, (size_t)st.st_size), (size_t)st.st_size));
	close(fd);
	for (size_t n = 0; n <= (size_t)st.st_size; n += n < 4096 ? 1 : 61) {
		struct td_elf_dyn d;
		char v[256];
		int ok;

		cr_assert(eq(int, td_elf_inspect_mem(img, n, &i), 0), "prefix %zu", n);
		td_elf_verdict(&i, v, sizeof(v), &ok);
		cr_assert(gt(sz, strlen(v), 0));
		/* the symbol reader on the same prefix: bounded, names in its table */
		cr_assert(eq(int, td_elf_dynamic_mem(img, n, &i, &d), 0), "prefix %zu", n);
		td_t_check_dyn(&d);
		td_elf_dyn_free(&d);
	}
	cr_assert(eq(int, td_elf_inspect_mem(img, (size_t)st.st_size, &i), 0));
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	free(img);
}

Test(elf, random_garbage)
{
	unsigned char junk[65536];
	char path[PATH_MAX];
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	struct td_elf_info i;

	for (size_t k = 0; k < sizeof(junk); k++)
		junk[k] = (unsigned char)td_t_rand(&seed);
	junk[0] = 'X'; /* not "#!", not "\177ELF" */
	td_t_path(path, sizeof(path), "junk");
	td_t_write(path, junk, sizeof(junk), 0755);
	td_t_inspect(path, &i);
	cr_assert(eq(int, i.kind, TD_ELF_NOT_ELF));
	cr_assert(eq(int, i.damaged, 0));
	cr_assert(eq(int, td_t_verdict(&i, "not an ELF file", NULL), 0));
}

Test(elf, empty_file)
{
	char path[PATH_MAX];
	struct td_elf_info i;

	td_t_path(path, sizeof(path), "empty");
	td_t_write(path, "", 0, 0755);
	td_t_inspect(path, &i);
	cr_assert(eq(int, i.kind, TD_ELF_NOT_ELF));
	cr_assert(eq(int, td_t_verdict(&i, "not an ELF file", NULL), 0));
	cr_assert(eq(int, td_elf_inspect_mem(NULL, 0, &i), 0));
	cr_assert(eq(int, i.kind, TD_ELF_NOT_ELF));
}

/* The ELF magic followed by anything at all: inspected, never trusted. */
Test(elf, garbage_after_elf_magic)
{
	static unsigned char img[TD_T_IMAGE];
	uint64_t seed = 42;
	struct td_elf_info i;

	for (int round = 0; round < 3000; round++) {
		size_t n = 16 + td_t_rand(&seed) % (sizeof(img) - 16);

		for (size_t k = 0; k < n; k++)
			img[k] = (unsigned char)td_t_rand(&seed);
		memcpy(img, ELFMAG, SELFMAG);
		img[EI_CLASS] = (unsigned char)(1 + round % 2);
		img[EI_DATA] = (unsigned char)(1 + (round / 2) % 2);
		img[EI_VERSION] = EV_CURRENT;
		/* mostly executables, so that the program headers get read */
		img[16] = (unsigned char)(round % 5 ? ET_DYN : td_t_rand(&seed));
		img[17] = 0;
		cr_assert(eq(int, td_elf_inspect_mem(img, n, &i), 0), "round %d", round);
		if (round % 4 == 0) {
			struct td_elf_dyn d;

			cr_assert(eq(int, td_elf_dynamic_mem(img, n, &i, &d), 0), "round %d", round);
			td_t_check_dyn(&d);
			td_elf_dyn_free(&d);
		}
	}
}

/* A valid image with bytes flipped: every field is hostile sometime. */
Test(elf, mutated_images)
{
	static unsigned char base[TD_T_IMAGE], img[TD_T_IMAGE];
	struct td_t_spec sp = td_t_glibc64;
	uint64_t seed = 7;
	struct td_elf_info i;
	size_t n;

	sp.versions[0] = "GLIBC_2.34";
	sp.versions[1] = "GLIBC_2.2.5";
	sp.soname = "libx.so";
	sp.runpath = "$ORIGIN/lib";
	sp.verdefs[0] = "X_1";
	sp.syms[0] = (struct td_t_sym){"strlen", false, STB_GLOBAL, STT_FUNC, 3};
	sp.syms[1] = (struct td_t_sym){"malloc", true, STB_GLOBAL, STT_FUNC, 1};
	sp.syms[2] = (struct td_t_sym){"x_old", true, STB_GLOBAL, STT_FUNC, 0x800a};
	sp.n_syms = 3;
	for (int round = 0; round < 20000; round++) {
		struct td_elf_dyn d;
		char v[512];
		int ok;

		sp.cls = round % 2 ? ELFCLASS32 : ELFCLASS64;
		sp.be = (round / 2) % 2;
		n = td_t_mkelf(&sp, base);
		memcpy(img, base, n);
		for (int f = 0; f < 1 + round % 8; f++)
			img[td_t_rand(&seed) % n] = (unsigned char)td_t_rand(&seed);
		cr_assert(eq(int, td_elf_inspect_mem(img, n, &i), 0), "round %d", round);
		td_elf_verdict(&i, v, sizeof(v), &ok);
		cr_assert(le(int, i.n_needed, TD_ELF_MAX_NEEDED));
		cr_assert(eq(int, td_elf_dynamic_mem(img, n, &i, &d), 0), "round %d", round);
		td_t_check_dyn(&d);
		td_elf_dyn_free(&d);
	}
}

Test(elf, library_itself_needs_only_libc)
{
	char exe[PATH_MAX], lib[PATH_MAX + 32];
	struct td_elf_info i;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	cr_assert(gt(int, (int)n, 0));
	exe[n] = '\0';
	slash = strrchr(exe, '/'); /* build/tests/unit_tests -> build/tests */
	*slash = '\0';
	snprintf(lib, sizeof(lib), "%s/../libteardown.so", exe);
	if (access(lib, R_OK) != 0)
		snprintf(lib, sizeof(lib), "build/libteardown.so");
	if (access(lib, R_OK) != 0)
		cr_skip_test("libteardown.so is not built");
	td_t_inspect(lib, &i);
	cr_assert(eq(int, i.kind, TD_ELF_LIBRARY));
	cr_assert(eq(str, i.soname, "libteardown.so"));
	cr_assert(eq(int, i.needs_libc, 1));
	cr_assert(eq(int, i.glibc_major, 2));
	if (i.n_needed != 1) {
		/* a sanitizer build needs its runtimes: fine for tests, never for
		 * /etc/ld.so.preload, which `teardown doctor --system` says */
		for (int k = 0; k < i.n_needed; k++)
			cr_assert(eq(int, strcmp(i.needed[k], "libc.so.6") == 0 ||
						  strncmp(i.needed[k], "libasan", 7) == 0 ||
						  strncmp(i.needed[k], "libubsan", 8) == 0,
				     1), "unexpected dependency %s", i.needed[k]);
		cr_log_info("%s is a sanitizer build: %d dependencies", lib, i.n_needed);
		return;
	}
	cr_assert(eq(str, i.needed[0], "libc.so.6"));
	cr_assert(eq(int, td_t_verdict(&i, "shared library", NULL), 0));
}

/* ---- hand-built images ---------------------------------------------- */

Test(elf, glibc_version_is_the_highest)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.versions[0] = "GLIBC_2.2.5";
	sp.versions[1] = "GLIBC_2.34";
	sp.versions[2] = "GLIBC_PRIVATE";
	sp.versions[3] = "GLIBC_2.3.4";
	sp.versions[4] = "GLIBC_ABI_DT_RELR";
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(int, i.glibc_major, 2));
	cr_assert(eq(int, i.glibc_minor, 34));
	cr_assert(eq(int, i.glibc_patch, 0));
	cr_assert(eq(int, i.n_needed, 2));
	cr_assert(eq(str, i.needed[0], "libm.so.6"));
	cr_assert(eq(str, i.needed[1], "libc.so.6"));
	cr_assert(eq(int, td_t_verdict(&i, "can interpose", NULL), 1));
}

Test(elf, thirty_two_bit_image)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.cls = ELFCLASS32;
	sp.machine = EM_386;
	sp.interp = "/lib/ld-linux.so.2";
	sp.versions[0] = "GLIBC_2.1.3";
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.elf_class, ELFCLASS32));
	cr_assert(eq(str, i.interp, "/lib/ld-linux.so.2"));
	cr_assert(eq(int, i.needs_libc, 1));
	cr_assert(eq(int, i.glibc_minor, 1));
	cr_assert(eq(int, i.glibc_patch, 3));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "foreign-arch"));
	cr_assert(eq(int, td_t_verdict(&i, "32-bit program (i386)", "64-bit library"), 0));
}

/* Big-endian fields are read as such: a 64-bit s390x program. */
Test(elf, big_endian_foreign_machine)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.be = 1;
	sp.machine = EM_S390;
	sp.interp = "/lib/ld64.so.1";
	sp.versions[0] = "GLIBC_2.17";
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.elf_data, ELFDATA2MSB));
	cr_assert(eq(int, i.machine, EM_S390));
	cr_assert(eq(str, i.interp, "/lib/ld64.so.1"));
	cr_assert(eq(int, i.n_needed, 2));
	cr_assert(eq(str, i.needed[1], "libc.so.6"));
	cr_assert(eq(int, i.glibc_minor, 17));
	cr_assert(eq(int, i.pie, 1));
	cr_assert(eq(int, td_t_verdict(&i, "another machine (s390)", NULL), 0));
}

Test(elf, no_libc_dependency)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.needed[0] = "libfoo.so.1";
	sp.needed[1] = "libbar.so.2";
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.needs_libc, 0));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "dynamic"));
	cr_assert(eq(int, td_t_verdict(&i, "does not use libc.so.6 directly",
				       "(needs: libfoo.so.1, libbar.so.2)"), 0));
	sp.n_needed = 0;
	td_t_mem(&sp, &i);
	td_t_verdict(&i, "(needs: nothing)", NULL);
}

Test(elf, musl_program)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.interp = "/lib/ld-musl-x86_64.so.1";
	sp.needed[0] = "libc.so";
	sp.n_needed = 1;
	td_t_mem(&sp, &i);
	cr_assert(eq(int, td_t_verdict(&i, "musl", "glibc"), 0));
}

Test(elf, static_pie_image_and_library_image)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.interp = NULL;
	sp.n_needed = 0;
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_STATIC_PIE));
	/* no DF_1_PIE, as older linkers wrote: nameless, no dependencies, an entry */
	sp.flags_1 = 0;
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_STATIC_PIE));
	/* a name or dependencies make it a library */
	sp.soname = "libfoo.so.1";
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_LIBRARY));
	cr_assert(eq(str, i.soname, "libfoo.so.1"));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "library"));
	cr_assert(eq(int, td_t_verdict(&i, "shared library, not a program", NULL), 0));
}

Test(elf, relocatable_object)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.type = ET_REL;
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_OBJECT));
	cr_assert(eq(str, (char *)td_elf_kind_name(&i), "object"));
	cr_assert(eq(int, td_t_verdict(&i, "relocatable object", "not a program"), 0));
}

Test(elf, many_dependencies_are_capped)
{
	static char names[40][24];
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;
	char v[2048];
	int ok;

	sp.n_needed = 40;
	for (int k = 0; k < 40; k++) {
		snprintf(names[k], sizeof(names[k]), "libn%d.so", k);
		sp.needed[k] = names[k];
	}
	sp.needed[39] = "libc.so.6"; /* past the kept ones, still seen */
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.n_needed, TD_ELF_MAX_NEEDED));
	cr_assert(eq(int, i.n_needed_total, 40));
	cr_assert(eq(int, i.needs_libc, 1));
	sp.needed[39] = names[39];
	td_t_mem(&sp, &i);
	td_elf_verdict(&i, v, sizeof(v), &ok);
	cr_assert(ne(ptr, strstr(v, "and 8 more"), NULL), "%s", v);
}

/* Names from the file never reach a terminal as control bytes. */
Test(elf, hostile_names_are_made_printable)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.needed[0] = "lib\x1b[31mred.so";
	sp.interp = "/lib64/ld\x07.so";
	td_t_mem(&sp, &i);
	cr_assert(eq(str, i.needed[0], "lib?[31mred.so"));
	cr_assert(eq(str, i.interp, "/lib64/ld?.so"));
}

/* A string table that maps nowhere: the names are unknown, not invented. */
Test(elf, unmapped_string_table)
{
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;

	sp.strtab_unmapped = true;
	td_t_mem(&sp, &i);
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(int, i.n_needed, 2));
	cr_assert(eq(str, i.needed[0], "?"));
	cr_assert(eq(int, i.needs_libc, 0));
}

Test(elf, errors_are_negative_errno)
{
	struct td_elf_info i;

	cr_assert(eq(int, td_elf_inspect("/nonexistent/teardown", &i), -ENOENT));
	cr_assert(eq(int, td_elf_inspect(td_t_dir, &i), -EISDIR));
	cr_assert(eq(int, td_elf_inspect("/dev/null", &i), -EINVAL));
	cr_assert(eq(int, td_elf_inspect("", &i), -ENOENT));
}

Test(elf, verdict_fits_any_buffer)
{
	struct td_elf_info i;
	char small[8];
	int ok = -1;

	td_t_mem(&td_t_glibc64, &i);
	memset(small, 'x', sizeof(small));
	td_elf_verdict(&i, small, sizeof(small), &ok);
	cr_assert(eq(int, ok, 1));
	cr_assert(eq(sz, strlen(small), sizeof(small) - 1));
	td_elf_verdict(&i, small, 1, &ok);
	cr_assert(eq(str, small, ""));
	td_elf_verdict(&i, NULL, 0, &ok);
	cr_assert(eq(int, ok, 1));
}

Test(elf, which_follows_path)
{
	char path[PATH_MAX], found[PATH_MAX], env[PATH_MAX + 16];

	td_t_path(path, sizeof(path), "td-tool");
	td_t_write(path, "#!/bin/sh\n", 10, 0755);
	td_t_path(path, sizeof(path), "td-noexec");
	td_t_write(path, "#!/bin/sh\n", 10, 0644);
	snprintf(env, sizeof(env), "/nonexistent:%s:/usr/bin:/bin", td_t_dir);
	cr_assert(eq(int, setenv("PATH", env, 1), 0));

	cr_assert(eq(int, td_elf_which("td-tool", found, sizeof(found)), 0));
	td_t_path(path, sizeof(path), "td-tool");
	cr_assert(eq(str, found, path));
	cr_assert(eq(int, td_elf_which("td-noexec", found, sizeof(found)), -EACCES));
	cr_assert(eq(int, td_elf_which("td-no-such-tool", found, sizeof(found)), -ENOENT));
	cr_assert(eq(int, td_elf_which("sh", found, sizeof(found)), 0));
	cr_assert(ne(ptr, strstr(found, "/sh"), NULL));
	/* a name with a slash is taken as is, executable or not */
	td_t_path(path, sizeof(path), "td-noexec");
	cr_assert(eq(int, td_elf_which(path, found, sizeof(found)), 0));
	cr_assert(eq(str, found, path));
	cr_assert(eq(int, td_elf_which("td-tool", found, 4), -ENAMETOOLONG));
}

/* ---- dynamic symbols (td_elf_dynamic) ------------------------------- */

static const struct td_elf_sym *td_t_sym(const struct td_elf_dyn *d, const char *name,
					 bool defined)
{
	for (size_t k = 0; k < d->n_syms; k++)
		if (strcmp(d->syms[k].name, name) == 0 &&
		    (d->syms[k].shndx != SHN_UNDEF) == defined)
			return &d->syms[k];
	return NULL;
}

/* A spec with every kind of dynamic symbol the doctor cares about. */
static struct td_t_spec td_t_symbol_spec(int cls, int be)
{
	struct td_t_spec sp = td_t_glibc64;

	sp.cls = cls;
	sp.be = be;
	if (cls == ELFCLASS32) {
		sp.machine = EM_386;
		sp.interp = "/lib/ld-linux.so.2";
	}
	sp.versions[0] = "GLIBC_2.2.5"; /* index 2 */
	sp.versions[1] = "GLIBC_2.34";	/* index 3 */
	sp.verdefs[0] = "LIBX_1";	/* index 10 */
	sp.verdefs[1] = "LIBX_2";	/* index 11 */
	sp.runpath = "$ORIGIN/../lib";
	sp.rpath = "/opt/x/lib";
	sp.syms[0] = (struct td_t_sym){"strlen", false, STB_GLOBAL, STT_FUNC, 2};
	sp.syms[1] = (struct td_t_sym){"__gmon_start__", false, STB_WEAK, STT_NOTYPE, 0};
	sp.syms[2] = (struct td_t_sym){"getsockopt", true, STB_GLOBAL, STT_FUNC, 1};
	sp.syms[3] = (struct td_t_sym){"x_new", true, STB_GLOBAL, STT_FUNC, 11};
	sp.syms[4] = (struct td_t_sym){"x_old", true, STB_GLOBAL, STT_FUNC, 0x8000 | 10};
	sp.syms[5] = (struct td_t_sym){"__progname", true, STB_GLOBAL, STT_OBJECT, 2};
	sp.syms[6] = (struct td_t_sym){"td_local", true, STB_LOCAL, STT_FUNC, 0};
	sp.syms[7] = (struct td_t_sym){"td_section", true, STB_GLOBAL, STT_SECTION, 1};
	sp.syms[8] = (struct td_t_sym){"td_weak", true, STB_WEAK, STT_OBJECT, 1};
	sp.n_syms = 9;
	return sp;
}

/* Definitions vs references, versions, version files, both classes and byte orders. */
Test(elf, dynamic_symbols_hand_built)
{
	for (int v = 0; v < 4; v++) {
		struct td_t_spec sp = td_t_symbol_spec(v % 2 ? ELFCLASS32 : ELFCLASS64, v / 2);
		const struct td_elf_sym *y;
		struct td_elf_info i;
		struct td_elf_dyn d;

		td_t_mem_dyn(&sp, &i, &d);
		cr_assert(eq(sz, d.n_syms, 10), "variant %d", v); /* with the null symbol */
		cr_assert(eq(int, d.has_versym, 1));
		cr_assert(eq(sz, d.n_needed, 2));
		cr_assert(eq(str, (char *)d.needed[0], "libm.so.6"));
		cr_assert(eq(str, (char *)d.needed[1], "libc.so.6"));
		cr_assert(eq(str, (char *)d.runpath, "$ORIGIN/../lib"));
		cr_assert(eq(str, (char *)d.rpath, "/opt/x/lib"));

		/* a reference: not a definition, with the version and the file it needs */
		y = td_t_sym(&d, "strlen", false);
		cr_assert(ne(ptr, (void *)y, NULL));
		cr_assert(eq(int, td_elf_sym_exported(y), 0));
		cr_assert(eq(str, (char *)y->version, "GLIBC_2.2.5"));
		cr_assert(eq(str, (char *)y->version_file, "libc.so.6"));
		y = td_t_sym(&d, "__gmon_start__", false);
		cr_assert(ne(ptr, (void *)y, NULL));
		cr_assert(eq(int, y->bind, STB_WEAK));
		cr_assert(eq(ptr, (void *)y->version, NULL));

		/* definitions: unversioned, own versions (default and hidden) */
		y = td_t_sym(&d, "getsockopt", true);
		cr_assert(eq(int, td_elf_sym_exported(y), 1));
		cr_assert(eq(ptr, (void *)y->version, NULL));
		y = td_t_sym(&d, "x_new", true);
		cr_assert(eq(int, td_elf_sym_exported(y), 1));
		cr_assert(eq(str, (char *)y->version, "LIBX_2"));
		cr_assert(eq(ptr, (void *)y->version_file, NULL));
		cr_assert(eq(int, y->hidden, 0));
		y = td_t_sym(&d, "x_old", true);
		cr_assert(eq(str, (char *)y->version, "LIBX_1"));
		cr_assert(eq(int, y->hidden, 1));
		/* a definition with a version needed from libc: a copy relocation */
		y = td_t_sym(&d, "__progname", true);
		cr_assert(eq(int, td_elf_sym_exported(y), 1));
		cr_assert(eq(str, (char *)y->version_file, "libc.so.6"));
		/* what the loader never binds to */
		cr_assert(eq(int, td_elf_sym_exported(td_t_sym(&d, "td_local", true)), 0));
		cr_assert(eq(int, td_elf_sym_exported(td_t_sym(&d, "td_section", true)), 0));
		cr_assert(eq(int, td_elf_sym_exported(td_t_sym(&d, "td_weak", true)), 1));
		td_elf_dyn_free(&d);
	}
}

/* glibc's matching of a reference's version against a definition. */
Test(elf, symbol_version_matching)
{
	struct td_t_spec sp = td_t_symbol_spec(ELFCLASS64, 0);
	const struct td_elf_sym *plain, *newer, *old;
	struct td_elf_info i;
	struct td_elf_dyn d;

	td_t_mem_dyn(&sp, &i, &d);
	plain = td_t_sym(&d, "getsockopt", true);
	newer = td_t_sym(&d, "x_new", true);
	old = td_t_sym(&d, "x_old", true);
	/* an unversioned definition serves any versioned reference */
	cr_assert(eq(int, td_elf_sym_matches(plain, true, "GLIBC_2.2.5"), 1));
	cr_assert(eq(int, td_elf_sym_matches(plain, true, NULL), 1));
	/* a versioned one only its own version, or an unversioned reference */
	cr_assert(eq(int, td_elf_sym_matches(newer, true, "LIBX_2"), 1));
	cr_assert(eq(int, td_elf_sym_matches(newer, true, "GLIBC_2.2.5"), 0));
	cr_assert(eq(int, td_elf_sym_matches(newer, true, NULL), 1));
	/* a hidden (non-default) version past the oldest: only when asked for by name */
	cr_assert(eq(int, td_elf_sym_matches(old, true, "LIBX_1"), 1));
	cr_assert(eq(int, td_elf_sym_matches(old, true, NULL), 0));
	/* a file without versions: anything goes */
	cr_assert(eq(int, td_elf_sym_matches(old, false, "GLIBC_2.2.5"), 1));
	td_elf_dyn_free(&d);
}

/* Every DT_NEEDED is kept for the loader's search, past td_elf_info's cap. */
Test(elf, dynamic_keeps_every_needed)
{
	static char names[40][24];
	struct td_t_spec sp = td_t_glibc64;
	struct td_elf_info i;
	struct td_elf_dyn d;

	sp.n_needed = 40;
	for (int k = 0; k < 40; k++) {
		snprintf(names[k], sizeof(names[k]), "libn%d.so", k);
		sp.needed[k] = names[k];
	}
	td_t_mem_dyn(&sp, &i, &d);
	cr_assert(eq(int, i.n_needed, TD_ELF_MAX_NEEDED));
	cr_assert(eq(sz, d.n_needed, 40));
	cr_assert(eq(str, (char *)d.needed[39], "libn39.so"));
	cr_assert(eq(sz, d.n_syms, 0)); /* no symbol table: none */
	cr_assert(eq(ptr, (void *)d.runpath, NULL));
	td_elf_dyn_free(&d);
}

/* A string table that maps nowhere: names are "", never invented. */
Test(elf, dynamic_unmapped_strings)
{
	struct td_t_spec sp = td_t_symbol_spec(ELFCLASS64, 0);
	struct td_elf_info i;
	struct td_elf_dyn d;

	sp.strtab_unmapped = true;
	td_t_mem_dyn(&sp, &i, &d);
	cr_assert(eq(sz, d.n_needed, 2));
	cr_assert(eq(str, (char *)d.needed[0], ""));
	for (size_t k = 0; k < d.n_syms; k++)
		cr_assert(eq(str, (char *)d.syms[k].name, ""));
	td_elf_dyn_free(&d);
}

/* A real program built with -rdynamic: its own definitions are exported. */
Test(elf, dynamic_symbols_of_a_real_program)
{
	static const char src[] =
		"#include <stdio.h>\n"
		"#include <stddef.h>\n"
		"__attribute__((noinline, optimize(\"no-tree-loop-distribute-patterns\")))\n"
		"size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }\n"
		"static int td_t_private(int x) { return x + 1; }\n"
		"int main(int argc, char **argv) { puts(argv[0]); return td_t_private(argc); }\n";
	const char *flags[] = {"-rdynamic", NULL};
	const struct td_elf_sym *y;
	char exe[PATH_MAX];
	struct td_elf_info i;
	struct td_elf_dyn d;

	td_t_build("rdyn", src, flags, exe, sizeof(exe));
	cr_assert(eq(int, td_elf_dynamic(exe, &i, &d), 0));
	td_t_check_dyn(&d);
	cr_assert(eq(int, i.kind, TD_ELF_DYNAMIC));
	cr_assert(eq(int, d.has_versym, 1));
	y = td_t_sym(&d, "strlen", true);
	cr_assert(ne(ptr, (void *)y, NULL), "strlen is not exported");
	cr_assert(eq(int, td_elf_sym_exported(y), 1));
	cr_assert(eq(ptr, (void *)y->version, NULL));
	cr_assert(eq(int, td_elf_sym_exported(td_t_sym(&d, "main", true)), 1));
	cr_assert(eq(ptr, (void *)td_t_sym(&d, "td_t_private", true), NULL));
	y = td_t_sym(&d, "puts", false);
	cr_assert(ne(ptr, (void *)y, NULL));
	cr_assert(eq(int, td_elf_sym_exported(y), 0));
	cr_assert(eq(str, (char *)y->version, "GLIBC_2.2.5"));
	cr_assert(eq(str, (char *)y->version_file, "libc.so.6"));
	cr_assert(eq(sz, d.n_needed, 1));
	cr_assert(eq(str, (char *)d.needed[0], "libc.so.6"));
	td_elf_dyn_free(&d);
}

/* DT_RUNPATH (the default of new linkers) and DT_RPATH (--disable-new-dtags). */
Test(elf, runpath_and_rpath)
{
	const char *runpath[] = {"-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN/lib:/opt/td", NULL};
	const char *rpath[] = {"-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/old", NULL};
	char exe[PATH_MAX];
	struct td_elf_info i;
	struct td_elf_dyn d;

	td_t_build("runpath", td_t_hello, runpath, exe, sizeof(exe));
	cr_assert(eq(int, td_elf_dynamic(exe, &i, &d), 0));
	cr_assert(eq(str, (char *)d.runpath, "$ORIGIN/lib:/opt/td"));
	cr_assert(eq(ptr, (void *)d.rpath, NULL));
	cr_assert(eq(int, d.nodeflib, 0));
	td_elf_dyn_free(&d);
	td_t_build("rpath", td_t_hello, rpath, exe, sizeof(exe));
	cr_assert(eq(int, td_elf_dynamic(exe, &i, &d), 0));
	cr_assert(eq(str, (char *)d.rpath, "/opt/old"));
	cr_assert(eq(ptr, (void *)d.runpath, NULL));
	td_elf_dyn_free(&d);
}

/*
 * Without section headers the symbol count comes from the hash tables:
 * DT_GNU_HASH walked to its last chain, or DT_HASH's nchain.  Either way
 * the same symbols as with the .dynsym section header.
 */
Test(elf, symbol_count_without_sections)
{
	static const char src[] =
		"int td_t_a(void) { return 1; }\n"
		"int td_t_b(void) { return 2; }\n"
		"int td_t_c = 3;\n"
		"extern int puts(const char *);\n"
		"void td_t_d(void) { puts(\"d\"); }\n";
	const char *gnu[] = {"-shared", "-fPIC", "-Wl,--hash-style=gnu", NULL};
	const char *sysv[] = {"-shared", "-fPIC", "-Wl,--hash-style=sysv", NULL};
	const char *const *styles[] = {gnu, sysv};

	for (int k = 0; k < 2; k++) {
		char so[PATH_MAX];
		struct td_elf_info i;
		struct td_elf_dyn d;
		size_t with;

		td_t_build(k ? "libsysv.so" : "libgnu.so", src, styles[k], so, sizeof(so));
		cr_assert(eq(int, td_elf_dynamic(so, &i, &d), 0));
		with = d.n_syms;
		cr_assert(ne(ptr, (void *)td_t_sym(&d, "td_t_c", true), NULL));
		td_elf_dyn_free(&d);
		td_t_drop_sections(so);
		cr_assert(eq(int, td_elf_dynamic(so, &i, &d), 0));
		td_t_check_dyn(&d);
		cr_assert(eq(sz, d.n_syms, with), "%s hash: %zu symbols, %zu with sections",
			  k ? "sysv" : "gnu", d.n_syms, with);
		cr_assert(ne(ptr, (void *)td_t_sym(&d, "td_t_b", true), NULL));
		cr_assert(ne(ptr, (void *)td_t_sym(&d, "puts", false), NULL));
		td_elf_dyn_free(&d);
	}
}

/* A library's own versions: default (@@), hidden compat (@), base. */
Test(elf, versioned_library)
{
	static const char src[] =
		"int td_t_new(void) { return 2; }\n"
		"int td_t_old1(void) { return 1; }\n"
		"__asm__(\".symver td_t_old1,td_t_old@TDX_1\");\n"
		"int td_t_old2(void) { return 2; }\n"
		"__asm__(\".symver td_t_old2,td_t_old@@TDX_2\");\n";
	static const char map[] =
		"TDX_1 { global: td_t_old; local: *; };\nTDX_2 { global: td_t_new; } TDX_1;\n";
	char so[PATH_MAX], mapfile[PATH_MAX], mapflag[PATH_MAX + 32];
	const char *flags[] = {"-shared", "-fPIC", mapflag, NULL};
	const struct td_elf_sym *hid = NULL, *def = NULL, *y;
	struct td_elf_info i;
	struct td_elf_dyn d;

	td_t_path(mapfile, sizeof(mapfile), "tdx.map");
	td_t_write(mapfile, map, sizeof(map) - 1, 0644);
	snprintf(mapflag, sizeof(mapflag), "-Wl,--version-script=%s", mapfile);
	td_t_build("libtdx.so", src, flags, so, sizeof(so));
	cr_assert(eq(int, td_elf_dynamic(so, &i, &d), 0));
	for (size_t k = 0; k < d.n_syms; k++) {
		if (strcmp(d.syms[k].name, "td_t_old") != 0)
			continue;
		if (d.syms[k].hidden)
			hid = &d.syms[k];
		else
			def = &d.syms[k];
	}
	cr_assert(ne(ptr, (void *)hid, NULL));
	cr_assert(ne(ptr, (void *)def, NULL));
	cr_assert(eq(str, (char *)hid->version, "TDX_1"));
	cr_assert(eq(str, (char *)def->version, "TDX_2"));
	/* an unversioned reference gets the oldest version (index 2), hidden or not */
	cr_assert(eq(int, hid->ver_index, 2));
	cr_assert(eq(int, td_elf_sym_matches(hid, true, NULL), 1));
	cr_assert(eq(int, td_elf_sym_matches(def, true, NULL), 1));
	cr_assert(eq(int, td_elf_sym_matches(def, true, "TDX_1"), 0));
	cr_assert(eq(int, td_elf_sym_matches(hid, true, "TDX_1"), 1));
	y = td_t_sym(&d, "td_t_new", true);
	cr_assert(eq(str, (char *)y->version, "TDX_2"));
	cr_assert(eq(ptr, (void *)td_t_sym(&d, "td_t_old1", true), NULL)); /* local */
	td_elf_dyn_free(&d);
}

/* The symbol reader refuses nothing it cannot read: it reads less. */
Test(elf, dynamic_on_files_that_are_not_programs)
{
	struct td_elf_info i;
	struct td_elf_dyn d;
	static const char sh[] = "#!/bin/sh\n";

	cr_assert(eq(int, td_elf_dynamic_mem(sh, sizeof(sh) - 1, &i, &d), 0));
	cr_assert(eq(int, i.kind, TD_ELF_SCRIPT));
	cr_assert(eq(sz, d.n_syms + d.n_needed, 0));
	td_elf_dyn_free(&d);
	cr_assert(eq(int, td_elf_dynamic_mem(NULL, 0, &i, &d), 0));
	td_elf_dyn_free(&d);
	td_elf_dyn_free(NULL);
	cr_assert(eq(int, td_elf_dynamic("/nonexistent/teardown", &i, &d), -ENOENT));
	td_elf_dyn_free(&d);
}
