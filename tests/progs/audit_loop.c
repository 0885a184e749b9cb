/*
 * audit_loop: N connect/close cycles against a listener of its own, for
 * tests/bench/loop.py.
 *
 *   audit_loop N [limit]
 *
 * Each cycle is what a short-lived connection costs a program: socket(),
 * connect() to the in-process listener, accept(), then both ends closed
 * (the accepted end first, so the TIME_WAIT sits on the listener's port
 * and repeated runs never run out of ephemeral ports).  The cycles run
 * inside audit_loop_phase(), so that callgrind can count exactly them
 * (--toggle-collect=audit_loop_phase), and are timed with CLOCK_MONOTONIC
 * from inside, so process start-up (and strace's or the library's) is
 * left out.  Output: one JSON line, {"n": N, "loop_ns": T, "cpu_ns": C},
 * C the CPU time of the loop's own thread (the library's worker left out).
 *
 * "limit" runs, with no library, what a close event cannot do without
 * (the physical limit, as LTTng-UST meets it): the system calls
 * its facts need, getsockname() after the connect (the connect line's
 * local port; accept() returns the peer's address itself) and
 * getsockopt(TCP_INFO) before each close, and a record of each of the
 * four events (its stamp, addresses and TCP_INFO) copied into a ring in
 * a shared file mapping, which a SIGKILL does not lose.  No consumer
 * reads it: that the line is formatted and written out elsewhere, off
 * the program's thread, is the limit's assumption.  loop.py sets the
 * library's cycle against this one.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

__attribute__((noinline)) int audit_loop_phase(int lfd, const struct sockaddr_in *sa, long n);

/* The limit's record of one event: what its line says, unformatted. */
struct limit_rec {
	int64_t ts_ns;
	int32_t fd, event;
	struct sockaddr_in local, remote;
	struct tcp_info ti;
};

#define LIMIT_RING (1u << 18) /* 256 KiB, the library's spool ring */

static char *limit_ring;
static size_t limit_pos;

/* One event's record into the shared ring (the limit's "line"). */
static void limit_put(int fd, int event, const struct sockaddr_in *local,
		      const struct sockaddr_in *remote, const struct tcp_info *ti)
{
	struct limit_rec *r;

	if (limit_pos + sizeof(*r) > LIMIT_RING)
		limit_pos = 0;
	r = (struct limit_rec *)(limit_ring + limit_pos);
	r->ts_ns = host_now_ns(CLOCK_MONOTONIC);
	r->fd = fd;
	r->event = event;
	r->local = *local;
	r->remote = *remote;
	if (ti != NULL)
		r->ti = *ti;
	limit_pos += (sizeof(*r) + 63) & ~(size_t)63;
}

/* A close event's facts (TCP_INFO) and record, then the close. */
static void limit_close(int fd, int event, const struct sockaddr_in *local,
			const struct sockaddr_in *remote)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	(void)getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	limit_put(fd, event, local, remote, &ti);
	close(fd);
}

/* host_cycle() with the limit's work. */
static int limit_cycle(int lfd, const struct sockaddr_in *sa)
{
	int c = socket(AF_INET, SOCK_STREAM, 0), a;
	struct sockaddr_in local = {0}, peer = {0};
	socklen_t len = sizeof(local);

	if (c < 0 || connect(c, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		if (c >= 0)
			close(c);
		return -1;
	}
	(void)getsockname(c, (struct sockaddr *)&local, &len);
	limit_put(c, 1, &local, sa, NULL);
	len = sizeof(peer);
	a = accept(lfd, (struct sockaddr *)&peer, &len);
	if (a >= 0) {
		limit_put(a, 2, sa, &peer, NULL);
		limit_close(a, 3, sa, &peer);
	}
	limit_close(c, 3, &local, sa);
	return a < 0 ? -1 : 0;
}

/* The ring: a file unlinked at once, mapped shared and touched whole
 * before the timing (its first-touch faults are start-up; a run wraps
 * it many times over, as the library's ring). */
static int limit_setup(void)
{
	char path[] = "/tmp/audit_loop_limit.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	unlink(path);
	if (ftruncate(fd, LIMIT_RING) != 0) {
		close(fd);
		return -1;
	}
	limit_ring = mmap(NULL, LIMIT_RING, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (limit_ring == MAP_FAILED)
		return -1;
	memset(limit_ring, 0, LIMIT_RING);
	return 0;
}

/* The measured cycles; returns the number that failed. */
__attribute__((noinline)) int audit_loop_phase(int lfd, const struct sockaddr_in *sa, long n)
{
	int failed = 0;

	for (long i = 0; i < n; i++) {
		if ((limit_ring ? limit_cycle(lfd, sa) : host_cycle(lfd, sa)) != 0)
			failed++;
	}
	return failed;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), failed;
	int64_t t0, t1, c0, c1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (argc > 2 && strcmp(argv[2], "limit") == 0 && limit_setup() != 0) {
		perror("audit_loop: limit ring");
		return 1;
	}
	if (n < 1 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("audit_loop: listen");
		return 1;
	}
	c0 = host_now_ns(CLOCK_THREAD_CPUTIME_ID);
	t0 = host_now_ns(CLOCK_MONOTONIC);
	failed = audit_loop_phase(lfd, &sa, n);
	t1 = host_now_ns(CLOCK_MONOTONIC);
	c1 = host_now_ns(CLOCK_THREAD_CPUTIME_ID);
	close(lfd);
	printf("{\"n\": %ld, \"loop_ns\": %lld, \"cpu_ns\": %lld, \"failed\": %d}\n", n,
	       (long long)(t1 - t0), (long long)(c1 - c0), failed);
	return failed ? 1 : 0;
}
