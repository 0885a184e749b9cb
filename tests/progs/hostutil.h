/*
 * Helpers shared by the host-safety test programs (tests/progs/host_*.c):
 * failing setup, where the library's own descriptors start, counting open
 * descriptors, a loopback address, the benchmarks' clock.  Header-only
 * (static inline), so each program stays one file to build.
 */
#ifndef TD_TESTS_HOSTUTIL_H
#define TD_TESTS_HOSTUTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A setup step failed: one JSON line saying which, then exit 2. */
static inline void host_die(const char *what)
{
	printf("{\"ok\": false, \"error\": \"%s: %s\"}\n", what, strerror(errno));
	fflush(stdout);
	_exit(2);
}

/* The lowest fd number the library uses for its own (shim/rt/init.c). */
static inline int host_lib_fd_base(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		if (rl.rlim_cur >= 2048)
			return 1024;
		if (rl.rlim_cur >= 64)
			return (int)(rl.rlim_cur * 3 / 4);
	}
	return 768;
}

/* Open fds below max, the directory's own left out. */
static inline int host_count_fds_below(int max)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		host_die("opendir /proc/self/fd");
	while ((e = readdir(d)) != NULL) {
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd != dirfd(d) && fd < max)
			n++;
	}
	closedir(d);
	return n;
}

/* The program's own open fds: those below the library's range. */
static inline int host_count_program_fds(void)
{
	return host_count_fds_below(host_lib_fd_base());
}

/* Whether fd is a TCP socket (not, say, the library's netlink sockets). */
static inline int host_is_tcp(int fd)
{
	int proto = 0;
	socklen_t len = sizeof(proto);

	return getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
	       proto == IPPROTO_TCP;
}

/* TCP sockets the library holds (at or above base): a pending drain's
 * private reference. */
static inline int host_lib_sockets(int base)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		host_die("opendir");
	while ((e = readdir(d)) != NULL) {
		char path[64], target[64];
		ssize_t len;
		int fd = atoi(e->d_name);

		if (e->d_name[0] == '.' || fd < base)
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len > 0 && strncmp(target, "socket:", 7) == 0 && host_is_tcp(fd))
			n++;
	}
	closedir(d);
	return n;
}

/* clock_gettime() of clock, in nanoseconds (the benchmarks' timer). */
static inline int64_t host_now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline struct sockaddr_in host_loopback(int port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/*
 * A listener on 127.0.0.1:*port with SO_REUSEADDR (port 0: any; *port
 * gets the real one).  -1 with errno when it cannot be made.
 */
static inline int host_listen(int *port)
{
	struct sockaddr_in a = host_loopback(*port);
	socklen_t len = sizeof(a);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0)
		return -1;
	if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4096) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) != 0) {
		int saved = errno;

		close(l);
		errno = saved;
		return -1;
	}
	*port = ntohs(a.sin_port);
	return l;
}

/*
 * One connect/accept/close cycle against the listener lfd at sa: the
 * client connects, the server end is accepted and closed first, then the
 * client end.  0, or -1 when a step failed (every fd still closed).
 */
static inline int host_cycle(int lfd, const struct sockaddr_in *sa)
{
	int c = socket(AF_INET, SOCK_STREAM, 0), a;

	if (c < 0 || connect(c, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		if (c >= 0)
			close(c);
		return -1;
	}
	a = accept(lfd, NULL, NULL);
	if (a >= 0)
		close(a);
	close(c);
	return a < 0 ? -1 : 0;
}

#endif
