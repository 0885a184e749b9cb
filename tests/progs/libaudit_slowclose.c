/*
 * libaudit_slowclose.so: a preloadable test double that makes close() of
 * an established TCP connection slow, for tests/e2e/test_audit.py.
 *
 * Preloaded after libteardown.so (LD_PRELOAD="libteardown.so
 * libaudit_slowclose.so"), it is the "next" close() the library calls
 * once it has read the socket's facts and predicted the close event.  It
 * sleeps $AUDIT_SLOWCLOSE_MS milliseconds (nothing without it) before the
 * real close, but only for a TCP socket still ESTABLISHED, so that a
 * peer's FIN arriving in the pause lands, every time, in the window that
 * otherwise lasts microseconds: between the library's look at the socket
 * and the close that ends it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int established_tcp(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int saved = errno, ok;

	ok = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
	     ti.tcpi_state == TCP_ESTABLISHED;
	errno = saved;
	return ok;
}

int close(int fd)
{
	static int (*next)(int);
	const char *ms = getenv("AUDIT_SLOWCLOSE_MS");

	if (ms != NULL && *ms != '\0' && established_tcp(fd)) {
		long v = strtol(ms, NULL, 10);
		struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (next == NULL)
		next = (int (*)(int))dlsym(RTLD_NEXT, "close");
	if (next == NULL)
		return (int)syscall(SYS_close, fd);
	return next(fd);
}
