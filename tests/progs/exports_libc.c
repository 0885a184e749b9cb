/*
 * exports_libc: a program that defines, and exports (built with
 * -rdynamic), two libc functions the library calls: strlen and
 * getsockopt, as counting wrappers around libc's.  Programs do this
 * (their own string routines, a getsockopt shim); the loader then binds
 * the library's calls to these instead of libc's, which `teardown doctor`
 * must say.
 *
 * It makes one TCP connection over loopback to itself and closes both
 * ends, then prints one JSON line: how often each wrapper was called,
 * {"strlen": N, "getsockopt": M}.  The program itself never calls either,
 * so every call counted came from another object: under the library, the
 * library's own reads of the socket's state at close.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostutil.h"

static _Atomic long g_strlen, g_getsockopt;

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

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	static int (*real)(int, int, int, void *, socklen_t *);

	atomic_fetch_add(&g_getsockopt, 1);
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "getsockopt");
	return real(fd, level, name, val, len);
}

int main(void)
{
	int port = 0, l = host_listen(&port), c, a;
	struct sockaddr_in to = host_loopback(port);

	if (l < 0)
		host_die("listen");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&to, sizeof(to)) != 0)
		host_die("connect");
	a = accept(l, NULL, NULL);
	if (a < 0)
		host_die("accept");
	close(c);
	close(a);
	close(l);
	printf("{\"strlen\": %ld, \"getsockopt\": %ld}\n", atomic_load(&g_strlen),
	       atomic_load(&g_getsockopt));
	return 0;
}
