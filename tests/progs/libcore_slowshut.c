/*
 * libcore_slowshut.so: a preloadable test double that makes shutdown()
 * slow, for tests/e2e/test_actions.py.
 *
 * Preloaded after libteardown.so (LD_PRELOAD="libteardown.so
 * libcore_slowshut.so"), it is the "next" shutdown() the library's hook
 * calls, so it sleeps between the hook's look at the socket and the real
 * system call.  A peer's FIN that arrives in that pause reproduces, every
 * time, a race that otherwise needs microsecond timing.  The pause is
 * $CORE_SLOWSHUT_MS milliseconds (nothing without it).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int shutdown(int fd, int how)
{
	static int (*next)(int, int);
	const char *ms = getenv("CORE_SLOWSHUT_MS");

	if (ms != NULL && *ms != '\0') {
		long v = strtol(ms, NULL, 10);
		struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (next == NULL)
		next = (int (*)(int, int))dlsym(RTLD_NEXT, "shutdown");
	if (next == NULL)
		return (int)syscall(SYS_shutdown, fd, how);
	return next(fd, how);
}
