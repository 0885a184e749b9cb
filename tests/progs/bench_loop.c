/*
 * bench_loop: a client doing N request/response connections, one after the
 * other, against a server in another process; for tests/bench/loop.py.
 *
 *   bench_loop PORT N [REQUEST_BYTES [REPLY_BYTES]]
 *
 * Each connection is what a short-lived client does: socket(), connect()
 * to 127.0.0.1:PORT, write the request, read the whole reply, close().
 * The connections run inside bench_loop_phase(), so that callgrind can
 * count exactly them (--toggle-collect=bench_loop_phase), and are timed
 * from inside, so process start-up (and the library's, which reads the
 * policy) is left out: wall clock (CLOCK_MONOTONIC) and the process's CPU
 * time, user and system, all threads (CLOCK_PROCESS_CPUTIME_ID).
 * Output: one JSON line, {"n": N, "loop_ns": T, "cpu_ns": C, "failed": F};
 * the exit status is 1 if any connection failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

#define BUF_MAX 65536

__attribute__((noinline)) long bench_loop_phase(const struct sockaddr_in *sa, long n,
						size_t req, size_t reply);

static unsigned char buf[BUF_MAX];

/* Writes len bytes of the request; 0 or -1. */
static int send_all(int fd, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len < BUF_MAX ? len : BUF_MAX);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		len -= (size_t)w;
	}
	return 0;
}

/* Reads exactly len bytes of the reply; 0, or -1 on an early end. */
static int recv_all(int fd, size_t len)
{
	while (len > 0) {
		ssize_t r = read(fd, buf, len < BUF_MAX ? len : BUF_MAX);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		len -= (size_t)r;
	}
	return 0;
}

/* The measured connections; returns the number that failed. */
__attribute__((noinline)) long bench_loop_phase(const struct sockaddr_in *sa, long n,
						size_t req, size_t reply)
{
	long failed = 0;

	for (long i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
		    send_all(fd, req) != 0 || recv_all(fd, reply) != 0)
			failed++;
		if (fd >= 0)
			close(fd);
	}
	return failed;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	long port = argc > 1 ? atol(argv[1]) : 0;
	long n = argc > 2 ? atol(argv[2]) : 1000;
	long req = argc > 3 ? atol(argv[3]) : 100;
	long reply = argc > 4 ? atol(argv[4]) : 100;
	int64_t t0, t1, c0, c1;
	long failed;

	if (port < 1 || port > 65535 || n < 1 || req < 0 || reply < 0) {
		fprintf(stderr, "usage: bench_loop PORT N [REQUEST_BYTES [REPLY_BYTES]]\n");
		return 2;
	}
	memset(buf, 'x', sizeof(buf));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	c0 = host_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	t0 = host_now_ns(CLOCK_MONOTONIC);
	failed = bench_loop_phase(&sa, n, (size_t)req, (size_t)reply);
	t1 = host_now_ns(CLOCK_MONOTONIC);
	c1 = host_now_ns(CLOCK_PROCESS_CPUTIME_ID);
	printf("{\"n\": %ld, \"loop_ns\": %lld, \"cpu_ns\": %lld, \"failed\": %ld}\n", n,
	       (long long)(t1 - t0), (long long)(c1 - c0), failed);
	return failed ? 1 : 0;
}
