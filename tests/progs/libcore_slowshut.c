/*
 * libcore_slowshut.so: a preloadable test double that makes shutdown()
 * and close() slow, for tests/e2e/test_actions.py and test_audit.py.
 *
 * Preloaded after libteardown.so (LD_PRELOAD="libteardown.so
 * libcore_slowshut.so"), it is the "next" shutdown() and close() the
 * library's hooks call, so it sleeps between the hook's look at the socket
 * and the real system call.  A peer's FIN that arrives in that pause
 * reproduces, every time, a race that otherwise needs microsecond timing.
 * The pauses are $CORE_SLOWSHUT_MS and $CORE_SLOWCLOSE_MS milliseconds
 * (nothing without them).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void pause_for(const char *var)
{
	const char *ms = getenv(var);

	if (ms != NULL && *ms != '\0') {
		long v = strtol(ms, NULL, 10);
		struct timespec ts = {.tv_sec = v / 1000, .tv_nsec = (v % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

int close(int fd)
{
	static int (*next)(int);
	int saved = errno;

	pause_for("CORE_SLOWCLOSE_MS");
	errno = saved;
	if (next == NULL)
		next = (int (*)(int))dlsym(RTLD_NEXT, "close");
	if (next == NULL)
		return (int)syscall(SYS_close, fd);
	return next(fd);
}

int shutdown(int fd, int how)
{
	static int (*next)(int, int);

	pause_for("CORE_SLOWSHUT_MS");
	if (next == NULL)
		next = (int (*)(int, int))dlsym(RTLD_NEXT, "shutdown");
	if (next == NULL)
		return (int)syscall(SYS_shutdown, fd, how);
	return next(fd, how);
}
