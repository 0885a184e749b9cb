/*
 * exports_libc: a program that defines, and exports (built with
 * -rdynamic), two libc functions the library calls: strlen and
 * clock_gettime, as counting wrappers around libc's.  Programs do this
 * (their own string routines, a clock shim); the loader then binds
 * the library's calls to these instead of libc's, which `teardown doctor`
 * must say.
 *
 * It makes one TCP connection over loopback to itself and closes both
 * ends, then prints one JSON line: how often each wrapper was called,
 * {"strlen": N, "clock_gettime": M}.  The program itself never calls
 * either, so every call counted came from another object: under the
 * library, the library's own clock reads for its events.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

static _Atomic long g_strlen, g_clock;

/* A plain loop the compiler must not turn back into a call to strlen. */
__attribute__((optimize("no-tree-loop-distribute-patterns"), noinline))
size_t strlen(const char *s)
{
	const char *p = s;

	atomic_fetch_add(&g_strlen, 1);
	while (*p)
		p++;
	return (size_t)(p - s);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);

	atomic_fetch_add(&g_clock, 1);
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "clock_gettime");
	return real(id, ts);
}

int main(void)
{
	int port = 0, l = host_listen(&port);
	struct sockaddr_in to = host_loopback(port);

	if (l < 0)
		host_die("listen");
	if (host_cycle(l, &to) != 0)
		host_die("connect/accept");
	close(l);
	printf("{\"strlen\": %ld, \"clock_gettime\": %ld}\n", atomic_load(&g_strlen),
	       atomic_load(&g_clock));
	return 0;
}
