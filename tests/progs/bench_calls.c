/*
 * bench_calls: one kind of call, N times, inside one function, for
 * tests/bench/calls.py (callgrind counts the instructions of that
 * function with --toggle-collect=bench_calls_phase; strace counts the
 * system calls between two access("/td-bench-phase-marker") markers
 * around it).
 *
 *   bench_calls eventfd N     close() of N eventfds (a non-socket fd)
 *   bench_calls socket N      N x socket(AF_INET, SOCK_STREAM) + close(),
 *                             never connected
 *   bench_calls unconnected N close() of N TCP sockets made before, never
 *                             connected
 *   bench_calls connected N   close() of N TCP sockets connected to a
 *                             listener of this process (the accepted ends
 *                             are closed after the phase)
 *   bench_calls connect N     N x socket() + connect() to that listener
 *                             (the phase is the connects; their decision)
 *   bench_calls accept N      N x accept() of connections already queued
 *                             (the phase is the accepts; their decision)
 *
 * Setup (the fds to close, the listener and the connections) happens
 * before the phase, teardown of what is left after it.  After the
 * accepted ends are closed the program waits up to 200 ms for a
 * background drain to see their FIN, so a drain's work is done before
 * exit.  Output: "N" on stdout; exit status 1 if a call failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXN 20000

enum kind { K_EVENTFD, K_SOCKET, K_UNCONNECTED, K_CONNECTED, K_CONNECT, K_ACCEPT };

static int fds[MAXN], acc[MAXN];
static int lfd = -1;
static struct sockaddr_in sa = {.sin_family = AF_INET};

__attribute__((noinline)) int bench_calls_phase(enum kind k, int n);

/* The marker strace finds around the phase: a system call no wrapped
 * call makes, with an argument nothing else has. */
static void marker(void)
{
	(void)access("/td-bench-phase-marker", F_OK);
}

__attribute__((noinline)) int bench_calls_phase(enum kind k, int n)
{
	int failed = 0;

	switch (k) {
	case K_EVENTFD:
	case K_UNCONNECTED:
	case K_CONNECTED:
		for (int i = 0; i < n; i++)
			failed += close(fds[i]) != 0;
		break;
	case K_SOCKET:
		for (int i = 0; i < n; i++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			failed += fd < 0 || close(fd) != 0;
		}
		break;
	case K_CONNECT:
		for (int i = 0; i < n; i++)
			failed += connect(fds[i], (const struct sockaddr *)&sa, sizeof(sa)) != 0;
		break;
	case K_ACCEPT:
		for (int i = 0; i < n; i++) {
			acc[i] = accept(lfd, NULL, NULL);
			failed += acc[i] < 0;
		}
		break;
	}
	return failed;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void listener(int n)
{
	socklen_t len = sizeof(sa);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, n) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
		die("bench_calls: listen");
}

static void sockets(int n)
{
	for (int i = 0; i < n; i++)
		if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			die("bench_calls: socket");
}

static void connect_all(int n)
{
	for (int i = 0; i < n; i++)
		if (connect(fds[i], (const struct sockaddr *)&sa, sizeof(sa)) != 0)
			die("bench_calls: connect");
}

static void accept_all(int n)
{
	for (int i = 0; i < n; i++)
		if ((acc[i] = accept(lfd, NULL, NULL)) < 0)
			die("bench_calls: accept");
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int n = argc > 2 ? atoi(argv[2]) : 1000, failed;
	struct rlimit rl;
	enum kind k;

	if (strcmp(what, "eventfd") == 0)
		k = K_EVENTFD;
	else if (strcmp(what, "socket") == 0)
		k = K_SOCKET;
	else if (strcmp(what, "unconnected") == 0)
		k = K_UNCONNECTED;
	else if (strcmp(what, "connected") == 0)
		k = K_CONNECTED;
	else if (strcmp(what, "connect") == 0)
		k = K_CONNECT;
	else if (strcmp(what, "accept") == 0)
		k = K_ACCEPT;
	else {
		fprintf(stderr, "usage: bench_calls eventfd|socket|unconnected|connected|connect|accept N\n");
		return 2;
	}
	if (n < 1 || n > MAXN / 2) {
		fprintf(stderr, "bench_calls: N must be 1..%d\n", MAXN / 2);
		return 2;
	}
	/* room for 2N sockets (and the listener, the log, stdio) */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(2 * n + 64)) {
		rl.rlim_cur = 2 * n + 64 <= (int)rl.rlim_max ? (rlim_t)(2 * n + 64) : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	switch (k) {
	case K_EVENTFD:
		for (int i = 0; i < n; i++)
			if ((fds[i] = eventfd(0, 0)) < 0)
				die("bench_calls: eventfd");
		break;
	case K_SOCKET:
		break;
	case K_UNCONNECTED:
		sockets(n);
		break;
	case K_CONNECTED:
		listener(n);
		sockets(n);
		connect_all(n);
		accept_all(n);
		break;
	case K_CONNECT:
		listener(n);
		sockets(n);
		break;
	case K_ACCEPT:
		listener(n);
		sockets(n);
		connect_all(n);
		break;
	}
	marker();
	failed = bench_calls_phase(k, n);
	marker();
	switch (k) {
	case K_CONNECTED:
	case K_CONNECT:
	case K_ACCEPT: {
		struct timespec ts = {0, 200 * 1000 * 1000};

		if (k == K_CONNECT)
			accept_all(n);
		for (int i = 0; i < n; i++)
			close(acc[i]);
		if (k != K_CONNECTED)
			for (int i = 0; i < n; i++)
				close(fds[i]);
		close(lfd);
		if (k == K_CONNECTED)
			nanosleep(&ts, NULL);
		break;
	}
	default:
		break;
	}
	printf("%d\n", n);
	return failed ? 1 : 0;
}
