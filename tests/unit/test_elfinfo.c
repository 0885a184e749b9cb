/* teardown: unit tests for the ELF inspection behind `teardown doctor`. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../cli/lib/elfinfo.h"

/* ---- helpers --------------------------------------------------------- */

static char td_t_dir[64]; /* "/tmp/td_elfinfo_XXXXXX" */

static int td_t_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void td_t_mkdir(void)
{
	snprintf(td_t_dir, sizeof(td_t_dir), "/tmp/td_elfinfo_XXXXXX");
	cr_assert(ne(ptr, mkdtemp(td_t_dir), NULL), "mkdtemp: %s", strerror(errno));
}

static void td_t_rmdir(void)
{
	if (td_t_dir[0] != '\0')
		nftw(td_t_dir, td_t_rm, 16, FTW_DEPTH | FTW_PHYS);
	td_t_dir[0] = '\0';
}

TestSuite(elf, .init = td_t_mkdir, .fini = td_t_rmdir);

static void td_t_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", td_t_dir, name);
}

static void td_t_write(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert(ge(int, fd, 0), "open %s: %s", path, strerror(errno));
	cr_assert(eq(sz, (size_t)write(fd, data, len), len));
	close(fd);
	cr_assert(eq(int, chmod(path, mode), 0));
}

/* Run argv (looked up in PATH) quietly; the exit status, or -1. */
static int td_t_run(char *const argv[])
{
	pid_t pid = fork();
	int st;

	cr_assert(ge(int, pid, 0));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/*
 * Compile src into the temp dir as name with cc and the given flags
 * (NULL-terminated).  Returns cc's exit status, so that a test can skip
 * what the toolchain here cannot build.
 */
static int td_t_cc(const char *name, const char *src, const char *const *flags, char *out,
		   size_t cap)
{
	char srcpath[PATH_MAX + 8];
	const char *argv[24];
	int n = 0;

	td_t_path(out, cap, name);
	snprintf(srcpath, sizeof(srcpath), "%s.c", out);
	td_t_write(srcpath, src, strlen(src), 0644);
	argv[n++] = "cc";
	for (int i = 0; flags != NULL && flags[i] != NULL && n < 18; i++)
		argv[n++] = flags[i];
	argv[n++] = "-o";
	argv[n++] = out;
	argv[n++] = srcpath;
	argv[n] = NULL;
	return td_t_run((char *const *)argv);
}

static const char td_t_hello[] =
	"#include <stdio.h>\n"
	"int main(void) { puts(\"hi\"); return 0; }\n";

/* Build a program or fail the test: for what every Debian toolchain does. */
static void td_t_build(const char *name, const char *src, const char *const *flags,
		       char *out, size_t cap)
{
	int rc = td_t_cc(name, src, flags, out, cap);

	if (rc == 127)
		cr_skip_test("there is no cc to build test programs with");
	cr_assert(eq(int, rc, 0), "cc could not build %s", name);
}

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
	const char *versions[8]; /* needed from libc.so.6 */
	bool no_dynamic;
	bool strtab_unmapped; /* DT_STRTAB pointing nowhere */
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
	size_t strlen_ = 1, interp_off = 512, d = dyn;
	uint32_t needed_idx[48], soname_idx = 0, libc_idx, ver_idx[8];
	int n_ver = 0, phnum = 0;

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
	cr_assert(lt(sz, str + strlen_, vn));

	/* version needs: one file, n_ver versions */
	if (n_ver > 0) {
		td_t_put(b, vn, 1, 2, be);
		td_t_put(b, vn + 2, (uint64_t)n_ver, 2, be);
		td_t_put(b, vn + 4, libc_idx, 4, be);
		td_t_put(b, vn + 8, 16, 4, be);
		for (int k = 0; k < n_ver; k++) {
			size_t x = vn + 16 + 16 * (size_t)k;

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
		char v[256];
		int ok;

		cr_assert(eq(int, td_elf_inspect_mem(img, n, &i), 0), "prefix %zu", n);
		td_elf_verdict(&i, v, sizeof(v), &ok);
		cr_assert(gt(sz, strlen(v), 0));
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
	sp.soname = "libx.so";
	for (int round = 0; round < 20000; round++) {
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
