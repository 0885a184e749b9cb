/*
 * libcore_mark.so: a preloadable marker for the end-to-end tests of the
 * teardown command (tests/e2e/test_cli.py).
 *
 * Loaded into a process, it appends one line to the file named by
 * $CORE_MARK_FILE: "core_mark PID PROGRAM PATH", PATH being where this
 * library was loaded from.  A test can then prove that a library was
 * loaded (an LD_PRELOAD entry the command must keep) or that it never
 * was (a libteardown.so planted in the current directory, which the
 * command must never pick up).  Without $CORE_MARK_FILE it does nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void core_mark(void)
{
	const char *path = getenv("CORE_MARK_FILE");
	const char *self = "?";
	char line[1024];
	Dl_info info;
	int fd, n;

	if (path == NULL || *path == '\0')
		return;
	if (dladdr((void *)core_mark, &info) != 0 && info.dli_fname != NULL)
		self = info.dli_fname;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	n = snprintf(line, sizeof(line), "core_mark %d %s %s\n", (int)getpid(),
		     program_invocation_short_name, self);
	/* One write, so lines from several processes never interleave. */
	if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) < 0)
		n = -1;
	close(fd);
}
