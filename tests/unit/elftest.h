/*
 * teardown: helpers shared by the unit tests that build and inspect real
 * programs (test_elfinfo.c, test_ldscope.c): a private temporary
 * directory per test, writing files, and compiling test programs with cc.
 */
#ifndef TD_TESTS_UNIT_ELFTEST_H
#define TD_TESTS_UNIT_ELFTEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

static char td_t_dir[64]; /* "/tmp/td_elfinfo_XXXXXX" */

static inline int td_t_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static inline void td_t_mkdir(void)
{
	snprintf(td_t_dir, sizeof(td_t_dir), "/tmp/td_elfinfo_XXXXXX");
	cr_assert(ne(ptr, mkdtemp(td_t_dir), NULL), "mkdtemp: %s", strerror(errno));
}

static inline void td_t_rmdir(void)
{
	if (td_t_dir[0] != '\0')
		nftw(td_t_dir, td_t_rm, 16, FTW_DEPTH | FTW_PHYS);
	td_t_dir[0] = '\0';
}

static inline void td_t_path(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", td_t_dir, name);
}

static inline void td_t_write(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	cr_assert(ge(int, fd, 0), "open %s: %s", path, strerror(errno));
	cr_assert(eq(sz, (size_t)write(fd, data, len), len));
	close(fd);
	cr_assert(eq(int, chmod(path, mode), 0));
}

/* Run argv (looked up in PATH) quietly; the exit status, or -1. */
static inline int td_t_run(char *const argv[])
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
static inline int td_t_cc(const char *name, const char *src, const char *const *flags, char *out,
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

__attribute__((unused)) static const char td_t_hello[] =
	"#include <stdio.h>\n"
	"int main(void) { puts(\"hi\"); return 0; }\n";

/* Build a program or fail the test: for what every Debian toolchain does. */
static inline void td_t_build(const char *name, const char *src, const char *const *flags,
		       char *out, size_t cap)
{
	int rc = td_t_cc(name, src, flags, out, cap);

	if (rc == 127)
		cr_skip_test("there is no cc to build test programs with");
	cr_assert(eq(int, rc, 0), "cc could not build %s", name);
}

#endif
