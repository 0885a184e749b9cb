/*
 * teardown: fcntl(), fcntl64() — F_DUPFD and F_DUPFD_CLOEXEC make a dup,
 * as dup() does (CPython's os.dup() and socket.dup(), libuv's uv__dup()
 * and many event loops make theirs this way): the new fd shares the
 * socket (td_decide_dup()), so the close of either copy is not taken for
 * the connection's last.  Every other command is the real call alone,
 * with the program's argument passed on as it came.
 *
 * fcntl64 is the name a program built with _FILE_OFFSET_BITS=64 calls
 * (glibc 2.28 and later); both are libc's one function.
 */
#include <fcntl.h>
#include <stdarg.h>

#include "../rt/rt.h"

static inline int td__fcntl_after(int fd, int cmd, int rc)
{
	if (td_unlikely(cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && rc >= 0 &&
	    td_init_active() != NULL)
		td_decide_dup(fd, rc);
	return rc;
}

TD_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	/* as libc's own fcntl does: one word, whatever the command */
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return td__fcntl_after(fd, cmd, td_real_fcntl(fd, cmd, arg));
}

TD_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return td__fcntl_after(fd, cmd, td_real_fcntl64(fd, cmd, arg));
}
