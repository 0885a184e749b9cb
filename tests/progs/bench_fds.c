/*
 * bench_fds: a process holding N connected TCP sockets, for
 * tests/bench/fds.py: how much memory the library adds per open fd.
 *
 *   bench_fds N
 *
 * RLIMIT_NOFILE is raised to fit N (as far as the hard limit allows when
 * the process may not raise that: then it says so and exits 3).  The
 * process makes N sockets with socket(AF_INET, SOCK_STREAM) and connects
 * each to a loopback listener of its own, as a real client does, so each
 * is a TCP socket the library tracks and decides.  The listeners never
 * accept: the connections wait, established, in their accept queues
 * (enough listeners that no queue fills: net.core.somaxconn / 2 each), so
 * only the N client sockets take fds.  VmRSS (this process's resident
 * memory, from /proc/self/status) is read before the first socket, after
 * half of them, and after the last.
 * Output: one JSON line, {"n": N, "rss_before_kb": B, "rss_half_kb": H,
 * "rss_after_kb": A};
 * the process then leaves with _exit(), its sockets closed by the kernel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static long rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	fclose(f);
	return kb;
}

static long somaxconn(void)
{
	long v = 4096;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");

	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 4096;
		fclose(f);
	}
	return v < 128 ? 128 : v > 65535 ? 65535 : v;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000, before, half = -1, after, per, nl;
	struct sockaddr_in *sa;
	struct rlimit rl;

	if (n < 1) {
		fprintf(stderr, "usage: bench_fds N\n");
		return 2;
	}
	per = somaxconn() / 2;
	nl = n / per + 1;
	rl.rlim_cur = rl.rlim_max = (rlim_t)(n + nl + 64);
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < (rlim_t)(n + nl + 64)) {
			fprintf(stderr, "bench_fds: RLIMIT_NOFILE cannot go to %ld (hard limit %llu)\n",
				n + nl + 64, (unsigned long long)rl.rlim_max);
			return 3;
		}
		rl.rlim_cur = (rlim_t)(n + nl + 64);
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			perror("bench_fds: setrlimit");
			return 1;
		}
	}
	sa = calloc((size_t)nl, sizeof(*sa));
	if (sa == NULL)
		return 1;
	for (long i = 0; i < nl; i++) {
		socklen_t len = sizeof(sa[i]);
		int l = socket(AF_INET, SOCK_STREAM, 0);

		sa[i].sin_family = AF_INET;
		sa[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, (struct sockaddr *)&sa[i], sizeof(sa[i])) != 0 ||
		    listen(l, (int)(2 * per)) != 0 ||
		    getsockname(l, (struct sockaddr *)&sa[i], &len) != 0) {
			perror("bench_fds: listen");
			return 1;
		}
	}
	before = rss_kb();
	for (long i = 0; i < n; i++) {
		const struct sockaddr_in *to = &sa[i / per];
		int fd;

		if (i == n / 2)
			half = rss_kb();
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
			fprintf(stderr, "bench_fds: socket %ld: %s\n", i, strerror(errno));
			_exit(1);
		}
	}
	after = rss_kb();
	printf("{\"n\": %ld, \"rss_before_kb\": %ld, \"rss_half_kb\": %ld, \"rss_after_kb\": %ld}\n",
	       n, before, half, after);
	fflush(stdout);
	_exit(0);
}
