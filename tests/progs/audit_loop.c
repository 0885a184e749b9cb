/*
 * audit_loop: N connect/close cycles against a listener of its own, for
 * tests/bench/loop.py.
 *
 *   audit_loop N
 *
 * Each cycle is what a short-lived connection costs a program: socket(),
 * connect() to the in-process listener, accept(), then both ends closed
 * (the accepted end first, so the TIME_WAIT sits on the listener's port
 * and repeated runs never run out of ephemeral ports).  The cycles run
 * inside audit_loop_phase(), so that callgrind can count exactly them
 * (--toggle-collect=audit_loop_phase), and are timed with CLOCK_MONOTONIC
 * from inside, so process start-up (and strace's or the library's) is
 * left out.  Output: one JSON line, {"n": N, "loop_ns": T}.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

__attribute__((noinline)) int audit_loop_phase(int lfd, const struct sockaddr_in *sa, long n);

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The measured cycles; returns the number that failed. */
__attribute__((noinline)) int audit_loop_phase(int lfd, const struct sockaddr_in *sa, long n)
{
	int failed = 0;

	for (long i = 0; i < n; i++) {
		if (host_cycle(lfd, sa) != 0)
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
	int64_t t0, t1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (n < 1 || lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("audit_loop: listen");
		return 1;
	}
	t0 = now_ns();
	failed = audit_loop_phase(lfd, &sa, n);
	t1 = now_ns();
	close(lfd);
	printf("{\"n\": %ld, \"loop_ns\": %lld, \"failed\": %d}\n", n, (long long)(t1 - t0),
	       failed);
	return failed ? 1 : 0;
}
