/*
 * bench_floor: what this machine charges for the kernel work a logged
 * close cannot do without, for tests/bench/floor.py.
 *
 *   bench_floor calls N     a system call (getppid), getsockopt(TCP_INFO)
 *                           and getsockname() on a connected loopback
 *                           socket, N of each
 *   bench_floor lookups N   sock_diag lookups of N TIME_WAIT 4-tuples, 32
 *                           to a sendto() and their answers in one
 *                           recvmmsg(), as the library's flusher asks them
 *   bench_floor cow K N     N fork()s whose child writes K pages its
 *                           parent wrote (a copy-on-write fault each), and
 *                           N whose child writes none
 *   bench_floor forks N     with a listener open, as a fork-per-connection
 *                           server has: N cycles of fork(), the child's
 *                           _exit() and waitpid(), one at a time, and the
 *                           process's mappings (run bare and preloaded:
 *                           what a library costs every fork of its host)
 *
 * Each figure is the best of 5 rounds (the least disturbed: a figure for
 * what the kernel's path costs, not for the machine's noise), in
 * nanoseconds, as one JSON line.  Run as root in a network namespace of
 * its own (the lookups make N TIME_WAIT entries).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg, statx */
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

#define ROUNDS 5

static int die(const char *what)
{
	perror(what);
	return 1;
}

/* A listener on 127.0.0.1 (port chosen by the kernel), its address in
 * *sa; -1 on failure. */
static int listener(struct sockaddr_in *sa)
{
	int port = 0, fd = host_listen(&port);

	*sa = host_loopback(port);
	return fd;
}

enum { C_SYSCALL, C_TCP_INFO, C_GETSOCKNAME, C_PROC_STAT, C_TASK_STATX, C_KINDS };

/* n calls of one kind on fd: the time of the whole, in ns. */
static int64_t calls_of(int kind, int fd, long n)
{
	struct tcp_info ti;
	struct sockaddr_in sa;
	struct statx stx;
	char buf[512];
	socklen_t len;
	int pfd;
	int64_t t0 = host_now_ns(CLOCK_MONOTONIC);

	for (long i = 0; i < n; i++) {
		switch (kind) {
		case C_SYSCALL:
			(void)getppid();
			break;
		case C_TCP_INFO:
			len = sizeof(ti);
			(void)getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
			break;
		case C_GETSOCKNAME:
			len = sizeof(sa);
			(void)getsockname(fd, (struct sockaddr *)&sa, &len);
			break;
		case C_PROC_STAT:
			/* the thread count as the library read it before */
			if ((pfd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC)) >= 0) {
				(void)!read(pfd, buf, sizeof(buf));
				close(pfd);
			}
			break;
		default:
			/* and as it reads it now (init.c, td__threads()) */
			(void)statx(AT_FDCWD, "/proc/self/task", AT_STATX_SYNC_AS_STAT, STATX_NLINK,
				    &stx);
			break;
		}
	}
	return host_now_ns(CLOCK_MONOTONIC) - t0;
}

static int calls(long n)
{
	struct sockaddr_in sa;
	int lfd = listener(&sa), c, s;
	double best[C_KINDS] = {1e18, 1e18, 1e18, 1e18, 1e18};

	if (lfd < 0)
		return die("bench_floor: listen");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (s = accept(lfd, NULL, NULL)) < 0)
		return die("bench_floor: connect");
	for (int r = 0; r < ROUNDS; r++)
		for (int k = 0; k < C_KINDS; k++) {
			/* (the /proc reads are slow: an eighth as many) */
			long m = k >= C_PROC_STAT ? n / 8 : n;
			double t = (double)calls_of(k, s, m) / (double)m;

			if (t < best[k])
				best[k] = t;
		}
	printf("{\"syscall_ns\": %.1f, \"tcp_info_ns\": %.1f, \"getsockname_ns\": %.1f, "
	       "\"proc_stat_ns\": %.1f, \"task_statx_ns\": %.1f}\n",
	       best[C_SYSCALL], best[C_TCP_INFO], best[C_GETSOCKNAME], best[C_PROC_STAT],
	       best[C_TASK_STATX]);
	return 0;
}

struct req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

#define BATCH 32

static int lookups(long n)
{
	struct sockaddr_in sa, l, p;
	socklen_t len;
	struct req *q = calloc((size_t)n, sizeof(*q));
	static char ans[BATCH][512];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	int lfd = listener(&sa), nl;
	long found = 0, asked = 0;
	double best = 1e18;

	if (q == NULL || lfd < 0)
		return die("bench_floor: listen");
	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), s;
		char b;

		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    (s = accept(lfd, NULL, NULL)) < 0)
			return die("bench_floor: connect");
		len = sizeof(l);
		getsockname(s, (struct sockaddr *)&l, &len);
		len = sizeof(p);
		getpeername(s, (struct sockaddr *)&p, &len);
		/* the server closes first: its side holds TIME_WAIT */
		close(s);
		(void)read(c, &b, 1);
		close(c);
		q[i].nlh.nlmsg_len = sizeof(q[i]);
		q[i].nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
		q[i].nlh.nlmsg_flags = NLM_F_REQUEST;
		q[i].nlh.nlmsg_seq = (uint32_t)i;
		q[i].r.sdiag_family = AF_INET;
		q[i].r.sdiag_protocol = IPPROTO_TCP;
		q[i].r.idiag_states = ~0u;
		q[i].r.id.idiag_sport = l.sin_port;
		q[i].r.id.idiag_dport = p.sin_port;
		memcpy(q[i].r.id.idiag_src, &l.sin_addr, 4);
		memcpy(q[i].r.id.idiag_dst, &p.sin_addr, 4);
		q[i].r.id.idiag_cookie[0] = q[i].r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	}
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return die("bench_floor: sock_diag");
	for (int r = 0; r < ROUNDS; r++) {
		int64_t t0 = host_now_ns(CLOCK_MONOTONIC);
		long k;

		found = asked = 0;
		for (k = 0; k + BATCH <= n; k += BATCH) {
			int got;

			if (send(nl, &q[k], BATCH * sizeof(*q), 0) < 0)
				return die("bench_floor: sendto");
			memset(mm, 0, sizeof(mm));
			for (int j = 0; j < BATCH; j++) {
				iov[j].iov_base = ans[j];
				iov[j].iov_len = sizeof(ans[j]);
				mm[j].msg_hdr.msg_iov = &iov[j];
				mm[j].msg_hdr.msg_iovlen = 1;
			}
			got = recvmmsg(nl, mm, BATCH, MSG_DONTWAIT, NULL);
			for (int j = 0; j < got; j++)
				if (((struct nlmsghdr *)ans[j])->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
				    ((struct inet_diag_msg *)NLMSG_DATA(ans[j]))->idiag_state ==
					    TCP_TIME_WAIT)
					found++;
			asked += BATCH;
		}
		if (asked > 0 && (double)(host_now_ns(CLOCK_MONOTONIC) - t0) / (double)asked < best)
			best = (double)(host_now_ns(CLOCK_MONOTONIC) - t0) / (double)asked;
	}
	printf("{\"lookup_ns\": %.1f, \"asked\": %ld, \"time_wait_found\": %ld}\n", best, asked,
	       found);
	return 0;
}

#define COW_PAGES 256
static char pages[COW_PAGES * 4096];

/* n forks whose child writes k pages and leaves: the time of the whole. */
static int64_t forks(int k, long n)
{
	int64_t t0 = host_now_ns(CLOCK_MONOTONIC);

	for (long i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			for (int j = 0; j < k; j++)
				pages[(size_t)j * 4096] = 2;
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			return -1;
	}
	return host_now_ns(CLOCK_MONOTONIC) - t0;
}

static int cow(int k, long n)
{
	double best0 = 1e18, bestk = 1e18;

	if (k < 1 || k > COW_PAGES)
		return die("bench_floor: cow K");
	memset(pages, 1, sizeof(pages));
	for (int r = 0; r < ROUNDS; r++) {
		int64_t t0 = forks(0, n), tk = forks(k, n);

		if (t0 < 0 || tk < 0)
			return die("bench_floor: fork");
		if ((double)t0 / (double)n < best0)
			best0 = (double)t0 / (double)n;
		if ((double)tk / (double)n < bestk)
			bestk = (double)tk / (double)n;
	}
	printf("{\"fork_ns\": %.1f, \"cow_fault_ns\": %.1f}\n", best0, (bestk - best0) / k);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Lines of /proc/self/maps: the process's mappings, or -1. */
static int mappings(void)
{
	char buf[4096];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), n = 0;
	ssize_t got;

	if (fd < 0)
		return -1;
	while ((got = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < got; i++)
			n += buf[i] == '\n';
	close(fd);
	return n;
}

/*
 * The median of n single cycles (fork, the child's _exit(), waitpid()),
 * each timed alone: a median of cycles moves less with the machine's
 * noise than a mean of the loop, and one cycle is what a fork-per-
 * connection server's request pays.  The listener stays open in parent
 * and child, as a server's does.
 */
static int fork_cycles(long n)
{
	struct sockaddr_in sa;
	int lfd = listener(&sa);
	int64_t *t;

	if (lfd < 0 || n < 1 || (t = calloc((size_t)n, sizeof(*t))) == NULL)
		return die("bench_floor: forks");
	for (long i = 0; i < n; i++) {
		int64_t t0 = host_now_ns(CLOCK_MONOTONIC);
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, NULL, 0) != pid)
			return die("bench_floor: fork");
		t[i] = host_now_ns(CLOCK_MONOTONIC) - t0;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_i64);
	printf("{\"cycle_ns\": %lld, \"mappings\": %d}\n", (long long)t[n / 2], mappings());
	free(t);
	close(lfd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "calls") == 0)
		return calls(atol(argv[2]));
	if (argc == 3 && strcmp(argv[1], "lookups") == 0)
		return lookups(atol(argv[2]));
	if (argc == 4 && strcmp(argv[1], "cow") == 0)
		return cow(atoi(argv[2]), atol(argv[3]));
	if (argc == 3 && strcmp(argv[1], "forks") == 0)
		return fork_cycles(atol(argv[2]));
	fprintf(stderr, "usage: bench_floor calls N | lookups N | cow K N | forks N\n");
	return 2;
}
