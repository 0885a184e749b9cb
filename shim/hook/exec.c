/*
 * teardown: the exec() family — the kernel closes every close-on-exec fd
 * at exec without a close the library sees.  A socket's holders are
 * counted across fork() (shim/rt/fdtab.c's share slots), so before the
 * call those copies leave the counts, the fds the new program keeps mark
 * their counts inexact, and the connections the call ends get their
 * events (td_closing_exec_prepare()); when the call fails and returns,
 * the events are dropped and the copies counted again.  execl(), execlp()
 * and execle() take their arguments as a list: gathered into an array on
 * the stack (no malloc) and passed to execv(), execvp() and execve(), as
 * glibc itself does.
 */
#include <stdarg.h>
#include <unistd.h>

#include "../rt/rt.h"

/* The call's result (it returned: it failed), its events dropped and the
 * counts given back; errno is the call's. */
static int td__exec_failed(int rc)
{
	td_closing_exec_failed();
	return rc;
}

TD_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_execve(path, argv, envp));
}

TD_EXPORT int execv(const char *path, char *const argv[])
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_execv(path, argv));
}

TD_EXPORT int execvp(const char *file, char *const argv[])
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_execvp(file, argv));
}

TD_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_execvpe(file, argv, envp));
}

TD_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_fexecve(fd, argv, envp));
}

TD_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	td_closing_exec_prepare();
	return td__exec_failed(td_real_execveat(dirfd, path, argv, envp, flags));
}

/* The list's length, the terminating NULL excluded (E2BIG past a bound
 * that keeps the array on the stack small enough). */
#define TD_EXEC_ARGS_MAX 65536

static long td__count(const char *arg, va_list ap)
{
	long n = 0;

	for (const char *a = arg; a != NULL; a = va_arg(ap, const char *))
		if (++n > TD_EXEC_ARGS_MAX)
			return -1;
	return n;
}

/*
 * The body of execl(), execlp() and execle(): the list after arg gathered
 * into argv, then stmt (with the list still open: execle() reads envp
 * after its NULL); E2BIG for a list too long for the stack.
 */
#define TD_WITH_ARGV(arg, argv, ap, stmt)                                 \
	do {                                                              \
		long n_;                                                  \
		va_start(ap, arg);                                        \
		n_ = td__count(arg, ap);                                  \
		va_end(ap);                                               \
		if (n_ < 0) {                                             \
			errno = E2BIG;                                    \
			rc = -1;                                          \
			break;                                            \
		}                                                         \
		char *argv[n_ + 1];                                       \
		va_start(ap, arg);                                        \
		argv[0] = (char *)(arg);                                  \
		for (long i_ = 1; i_ <= n_; i_++)                         \
			argv[i_] = va_arg(ap, char *);                    \
		stmt;                                                     \
		va_end(ap);                                               \
	} while (0)

TD_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	int rc;

	TD_WITH_ARGV(arg, argv, ap, rc = execv(path, argv));
	return rc;
}

TD_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	int rc;

	TD_WITH_ARGV(arg, argv, ap, rc = execvp(file, argv));
	return rc;
}

TD_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	int rc;

	TD_WITH_ARGV(arg, argv, ap, rc = execve(path, argv, va_arg(ap, char *const *)));
	return rc;
}
