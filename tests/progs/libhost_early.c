/*
 * libhost_early: a library whose constructor uses sockets.  Linked into
 * a program as an ordinary dependency (DT_NEEDED), its constructor runs
 * before the constructor of a preloaded libteardown.so (the dynamic
 * loader initialises dependencies in reverse load order, and preloaded
 * objects load first), so its calls are the first the library sees,
 * before its own start-up ran.
 *
 * With HOST_EARLY_PORT=P in the environment the constructor listens on
 * 127.0.0.1:P, makes two connections to itself, closes the first with
 * close() and the second with fclose() of an fdopen()ed stream, and
 * prints one JSON line with every return value and errno it saw.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return -1;
	return ntohs(a.sin_port);
}

__attribute__((constructor)) static void host_early_ctor(void)
{
	const char *env = getenv("HOST_EARLY_PORT");
	struct sockaddr_in a;
	int one = 1, l, c1, c2, s1, s2, rc_bind, rc_c1, rc_c2, rc_close, rc_fclose;
	int err_close, err_fclose, port1, port2;
	FILE *fp;

	if (env == NULL)
		return;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)atoi(env));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	rc_bind = bind(l, (struct sockaddr *)&a, sizeof(a));
	if (rc_bind == 0)
		rc_bind = listen(l, 8);
	c1 = socket(AF_INET, SOCK_STREAM, 0);
	rc_c1 = connect(c1, (struct sockaddr *)&a, sizeof(a));
	s1 = accept(l, NULL, NULL);
	port1 = local_port(c1);
	/* a successful close must leave errno as it was */
	errno = EXDEV;
	rc_close = close(c1);
	err_close = errno;
	c2 = socket(AF_INET, SOCK_STREAM, 0);
	rc_c2 = connect(c2, (struct sockaddr *)&a, sizeof(a));
	s2 = accept(l, NULL, NULL);
	port2 = local_port(c2);
	fp = fdopen(c2, "r+");
	errno = EXDEV;
	rc_fclose = fp ? fclose(fp) : -2;
	err_fclose = errno;
	close(s1);
	close(s2);
	close(l);
	printf("{\"early\": true, \"listener\": %d, \"bind\": %d, \"c1\": %d, \"connect1\": %d, "
	       "\"s1\": %d, \"port1\": %d, \"close\": %d, \"close_errno\": %d, \"c2\": %d, "
	       "\"connect2\": %d, \"s2\": %d, \"port2\": %d, \"fclose\": %d, "
	       "\"fclose_errno\": %d, \"exdev\": %d}\n",
	       l, rc_bind, c1, rc_c1, s1, port1, rc_close, err_close, c2, rc_c2, s2, port2,
	       rc_fclose, err_fclose, EXDEV);
	fflush(stdout);
}
