/*
 * host_churn: many short connections to an in-process listener, to check
 * that a long-running program under the library keeps its descriptors
 * and memory: both must come back to where they were once the
 * connections (and, for "drain", the background drains) are over.
 *
 *   host_churn WARMUP N
 *
 * Each connection: the client sends a 10-byte request, the server reads
 * it and answers 10 bytes, the client reads them and closes first, the
 * server reads to the end (EOF, or ECONNRESET after an abort) and
 * closes.  WARMUP connections come first; N more follow.  Then it waits
 * (up to 20 s) until the library holds no TCP socket (the private
 * references of pending drains).
 *
 * Prints one JSON line: VmRSS (kB) at start, after the warm-up and at
 * the end; the program's fd count (below the library's range) at start
 * and end; the library's fds (number and what they point at, sockets as
 * socket:tcp, socket:netlink or socket:other) at start, after the
 * warm-up and at the end.  The test judges them.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

/* VmRSS in kB, read with plain system calls (no stdio buffers). */
static long rss_kb(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/self/status", 0);
	char *p;

	if (fd < 0)
		host_die("open status");
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		host_die("read status");
	buf[n] = '\0';
	p = strstr(buf, "VmRSS:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/*
 * What kind of socket fd is: "tcp" (a connection: the library holds one
 * only for a pending drain), "netlink" (the library keeps a few
 * sock_diag sockets for its lookups), or "other".
 */
static const char *socket_kind(int fd)
{
	int domain = 0, proto = 0;
	socklen_t len = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
		return "other";
	len = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) != 0)
		return "other";
	if ((domain == AF_INET || domain == AF_INET6) && proto == IPPROTO_TCP)
		return "tcp";
	return domain == AF_NETLINK ? "netlink" : "other";
}

/*
 * Count the program's fds (below base) and describe the library's (at or
 * above base) into out as a JSON array of "fd=target" strings.
 */
static int scan_fds(int base, char *out, size_t cap, int *lib_count)
{
	int prog = 0, libn = 0;
	size_t used = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (d == NULL)
		host_die("opendir");
	out[used++] = '[';
	while ((e = readdir(d)) != NULL) {
		char path[64], target[256];
		ssize_t n;
		int fd;

		if (e->d_name[0] == '.')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(d))
			continue;
		if (fd < base) {
			prog++;
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		if (strncmp(target, "socket:", 7) == 0)
			snprintf(target, sizeof(target), "socket:%s", socket_kind(fd));
		{
			/* whole entries only, and room left for the "]" */
			char entry[320];
			int len = snprintf(entry, sizeof(entry), "%s\"%d=%s\"", libn ? ", " : "",
					   fd, target);

			if (len > 0 && used + (size_t)len + 2 < cap) {
				memcpy(out + used, entry, (size_t)len);
				used += (size_t)len;
			}
		}
		libn++;
	}
	closedir(d);
	out[used++] = ']';
	out[used] = '\0';
	*lib_count = libn;
	return prog;
}

static int wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms);
}

static void one(int l, const struct sockaddr_in *a)
{
	char buf[64];
	int c = socket(AF_INET, SOCK_STREAM, 0), s;
	ssize_t n;

	if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof(*a)) != 0)
		host_die("connect");
	s = accept(l, NULL, NULL);
	if (s < 0)
		host_die("accept");
	if (send(c, "0123456789", 10, MSG_NOSIGNAL) != 10 || wait_in(s, 5000) != 1 ||
	    recv(s, buf, sizeof(buf), 0) != 10)
		host_die("request");
	if (send(s, "abcdefghij", 10, MSG_NOSIGNAL) != 10 || wait_in(c, 5000) != 1 ||
	    recv(c, buf, sizeof(buf), 0) != 10)
		host_die("reply");
	if (close(c) != 0)
		host_die("close client");
	if (wait_in(s, 5000) != 1)
		host_die("server wait");
	do
		n = recv(s, buf, sizeof(buf), 0);
	while (n > 0);
	if (close(s) != 0)
		host_die("close server");
}

int main(int argc, char **argv)
{
	struct sockaddr_in a;
	int warm, n, l, port = 0, base = host_lib_fd_base();
	int prog0, prog1, prog2, lib0, lib1, lib2;
	long rss0, rss1, rss2;
	char fds0[1024], fds1[1024], fds2[1024];

	if (argc != 3)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	warm = atoi(argv[1]);
	n = atoi(argv[2]);
	rss0 = rss_kb();
	prog0 = scan_fds(base, fds0, sizeof(fds0), &lib0);
	l = host_listen(&port);
	if (l < 0)
		host_die("listen");
	a = host_loopback(port);
	for (int i = 0; i < warm; i++)
		one(l, &a);
	rss1 = rss_kb();
	prog1 = scan_fds(base, fds1, sizeof(fds1), &lib1);
	for (int i = 0; i < n; i++)
		one(l, &a);
	close(l);
	/*
	 * The drains end in the background: wait until the library holds no
	 * TCP socket any more (its private references of pending drains).
	 */
	for (int i = 0; i < 2000; i++) {
		struct timespec ms10 = {0, 10 * 1000 * 1000};

		prog2 = scan_fds(base, fds2, sizeof(fds2), &lib2);
		if (strstr(fds2, "socket:tcp") == NULL)
			break;
		nanosleep(&ms10, NULL);
	}
	rss2 = rss_kb();
	prog2 = scan_fds(base, fds2, sizeof(fds2), &lib2);
	printf("{\"ok\": true, \"port\": %d, \"connections\": %d, \"rss_start\": %ld, "
	       "\"rss_warm\": %ld, \"rss_end\": %ld, \"prog_fds_start\": %d, "
	       "\"prog_fds_warm\": %d, \"prog_fds_end\": %d, \"lib_fds_start\": %s, "
	       "\"lib_fds_warm\": %s, \"lib_fds_end\": %s}\n",
	       ntohs(a.sin_port), warm + n, rss0, rss1, rss2, prog0, prog1, prog2, fds0, fds1,
	       fds2);
	return 0;
}
