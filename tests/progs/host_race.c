/*
 * host_race: threads racing close() and socket() on the same fd numbers.
 *
 *   host_race PORT_X PORT_Y SECONDS
 *
 * "A" threads connect to port X (the policy's rule for X: abort, with
 * reuseaddr, fin_timeout_s and rst_after_ms), hold the socket for a few
 * microseconds and close it.  "B" threads connect to port Y, which no
 * rule matches, and check each socket right before closing it: no
 * SO_LINGER, no SO_REUSEADDR, the system's TCP_LINGER2, and no reset
 * (the server's one-byte greeting, then nothing to read and no error
 * pending; the server sees a clean EOF).  The kernel hands the number an A
 * thread just closed to the next socket() of any thread, so B sockets
 * keep landing on numbers whose old socket had A's rule: any state of an
 * old socket applied to a new one shows up here.  In-process servers on
 * X and Y read each connection to its end and close it.
 *
 * Prints one JSON line and exits 0 when every check held, 1 otherwise.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

#define NA 2
#define NB 2
#define MAXFD 4096

static int g_port_x, g_port_y, g_default_linger2, g_listen_y = -1;
static _Atomic int g_stop, g_stop_servers;
/* Which fd numbers an A thread has used (so B can count reuses). */
static _Atomic unsigned char g_a_used[MAXFD];
static _Atomic long g_a_conns, g_a_errors, g_b_conns, g_b_errors, g_reuse;
static _Atomic long g_linger_bad, g_reuseaddr_bad, g_linger2_bad, g_b_reset;

static int listen_on(int port)
{
	int l = host_listen(&port);

	if (l < 0)
		host_die("listen");
	return l;
}

static int connect_to(int fd, int port)
{
	struct sockaddr_in a = host_loopback(port);

	return connect(fd, (struct sockaddr *)&a, sizeof(a));
}

static int getint(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) != 0)
		return -2;
	return v;
}

/*
 * One connection at a time: read to the client's EOF (or reset), then
 * close.  The client closes first, so TIME_WAIT stays on the client's
 * side, where the kernel reuses it cleanly for the next connect; with
 * TIME_WAIT on the server's side instead, a new SYN from a reused port
 * can meet the old TIME_WAIT and draw a (legitimate) RST from the client.
 */
/* Greet one accepted connection, read it to its end, then close it. */
static void serve(int l, int s)
{
	char buf[64];
	ssize_t n;

	(void)send(s, "h", 1, MSG_NOSIGNAL);
	do
		n = recv(s, buf, sizeof(buf), 0);
	while (n > 0);
	if (n < 0 && errno == ECONNRESET && l == g_listen_y)
		atomic_fetch_add(&g_b_reset, 1);
	close(s);
}

/*
 * One connection at a time: read to the client's EOF (or reset), then
 * close.  The client closes first, so TIME_WAIT stays on the client's
 * side, where the kernel reuses it cleanly for the next connect; with
 * TIME_WAIT on the server's side instead, a new SYN from a reused port
 * can meet the old TIME_WAIT and draw a (legitimate) RST from the client.
 * At the end the queue is emptied before the listener closes: closing a
 * listener resets the connections still queued in it.
 */
static void *server(void *arg)
{
	int l = *(int *)arg, s;

	while (!atomic_load(&g_stop_servers)) {
		s = accept(l, NULL, NULL);
		if (s >= 0)
			serve(l, s);
	}
	fcntl(l, F_SETFL, O_NONBLOCK);
	while ((s = accept(l, NULL, NULL)) >= 0)
		serve(l, s);
	return NULL;
}

static void *thread_a(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&g_stop)) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		struct timespec hold = {0, (long)(rand_r(&seed) % 50) * 1000};

		if (c < 0) {
			atomic_fetch_add(&g_a_errors, 1);
			continue;
		}
		if (c < MAXFD)
			atomic_store(&g_a_used[c], 1);
		if (connect_to(c, g_port_x) != 0)
			atomic_fetch_add(&g_a_errors, 1);
		else
			atomic_fetch_add(&g_a_conns, 1);
		if (hold.tv_nsec)
			nanosleep(&hold, NULL);
		if (close(c) != 0)
			atomic_fetch_add(&g_a_errors, 1);
	}
	return NULL;
}

/* The checks on a B socket; called right after connect and before close. */
static void check_b(int c)
{
	struct linger lg = {-1, -1};
	socklen_t len = sizeof(lg);

	if (getsockopt(c, SOL_SOCKET, SO_LINGER, &lg, &len) != 0 || lg.l_onoff != 0)
		atomic_fetch_add(&g_linger_bad, 1);
	if (getint(c, SOL_SOCKET, SO_REUSEADDR) != 0)
		atomic_fetch_add(&g_reuseaddr_bad, 1);
	if (getint(c, IPPROTO_TCP, TCP_LINGER2) != g_default_linger2)
		atomic_fetch_add(&g_linger2_bad, 1);
}

static void *thread_b(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_stop)) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		struct pollfd p;
		char byte;
		ssize_t n;

		if (c < 0) {
			atomic_fetch_add(&g_b_errors, 1);
			continue;
		}
		if (c < MAXFD && atomic_load(&g_a_used[c]))
			atomic_fetch_add(&g_reuse, 1);
		check_b(c);
		if (connect_to(c, g_port_y) != 0) {
			atomic_fetch_add(&g_b_errors, 1);
			close(c);
			continue;
		}
		check_b(c);
		/*
		 * The server's greeting: it has accepted us (so each B thread
		 * has at most one connection in Y's accept queue, which never
		 * overflows: an overflowing queue makes TCP itself send
		 * resets, whatever the library does).  Then nothing more to
		 * read and no error pending: still connected, not reset.
		 */
		p.fd = c;
		p.events = POLLIN;
		n = poll(&p, 1, 10000) == 1 ? recv(c, &byte, 1, 0) : -1;
		if (n < 0 && errno == ECONNRESET)
			atomic_fetch_add(&g_b_reset, 1);
		else if (n != 1)
			atomic_fetch_add(&g_b_errors, 1);
		if (poll(&p, 1, 0) != 0) {
			n = recv(c, &byte, 1, MSG_DONTWAIT);
			if (n < 0 && errno == ECONNRESET)
				atomic_fetch_add(&g_b_reset, 1);
			else
				atomic_fetch_add(&g_b_errors, 1);
		}
		check_b(c);
		if (close(c) != 0)
			atomic_fetch_add(&g_b_errors, 1);
		else
			atomic_fetch_add(&g_b_conns, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t a[NA], b[NB], sx, sy;
	int lx, ly, seconds, start, end, probe;
	struct timespec run;
	long bad;

	if (argc != 4)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	g_port_x = atoi(argv[1]);
	g_port_y = atoi(argv[2]);
	seconds = atoi(argv[3]);
	/* the system default, as a socket no rule touched reports it */
	probe = socket(AF_INET, SOCK_STREAM, 0);
	g_default_linger2 = getint(probe, IPPROTO_TCP, TCP_LINGER2);
	close(probe);
	lx = listen_on(g_port_x);
	ly = listen_on(g_port_y);
	g_listen_y = ly;
	start = host_count_program_fds();
	pthread_create(&sx, NULL, server, &lx);
	pthread_create(&sy, NULL, server, &ly);
	for (int i = 0; i < NA; i++)
		pthread_create(&a[i], NULL, thread_a, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < NB; i++)
		pthread_create(&b[i], NULL, thread_b, NULL);
	run.tv_sec = seconds;
	run.tv_nsec = 0;
	while (nanosleep(&run, &run) != 0 && errno == EINTR)
		;
	atomic_store(&g_stop, 1);
	for (int i = 0; i < NA; i++)
		pthread_join(a[i], NULL);
	for (int i = 0; i < NB; i++)
		pthread_join(b[i], NULL);
	/* wake the servers out of accept() */
	atomic_store(&g_stop_servers, 1);
	for (int i = 0; i < 2; i++) {
		int w = socket(AF_INET, SOCK_STREAM, 0);
		struct pollfd p = {.fd = w, .events = POLLIN};
		char byte;

		/* take the greeting first: data for a closed socket draws an RST */
		if (connect_to(w, i ? g_port_y : g_port_x) == 0 && poll(&p, 1, 5000) == 1)
			(void)recv(w, &byte, 1, 0);
		close(w);
	}
	pthread_join(sx, NULL);
	pthread_join(sy, NULL);
	end = host_count_program_fds();
	close(lx);
	close(ly);
	bad = atomic_load(&g_linger_bad) + atomic_load(&g_reuseaddr_bad) +
	      atomic_load(&g_linger2_bad) + atomic_load(&g_b_reset) +
	      atomic_load(&g_a_errors) + atomic_load(&g_b_errors);
	printf("{\"ok\": %s, \"a_conns\": %ld, \"b_conns\": %ld, \"reuse\": %ld, "
	       "\"linger_bad\": %ld, \"reuseaddr_bad\": %ld, \"linger2_bad\": %ld, "
	       "\"b_reset\": %ld, \"a_errors\": %ld, \"b_errors\": %ld, "
	       "\"default_linger2\": %d, \"fds_start\": %d, \"fds_end\": %d}\n",
	       bad == 0 && start == end ? "true" : "false", atomic_load(&g_a_conns),
	       atomic_load(&g_b_conns), atomic_load(&g_reuse), atomic_load(&g_linger_bad),
	       atomic_load(&g_reuseaddr_bad), atomic_load(&g_linger2_bad),
	       atomic_load(&g_b_reset), atomic_load(&g_a_errors), atomic_load(&g_b_errors),
	       g_default_linger2, start, end);
	return bad == 0 && start == end ? 0 : 1;
}
