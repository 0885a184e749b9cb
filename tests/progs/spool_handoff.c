/*
 * spool_handoff: connections opened on one CPU and closed on another, for
 * the spool's lanes (tests/e2e/test_spool.py): each line goes into the
 * lane of the CPU its thread runs on, and the log must still hold every
 * connection's lines in the order they happened.
 *
 *   spool_handoff CYCLES [exit|kill]
 *
 * Two threads, each pinned to one of the first two CPUs this process may
 * use, each with a loopback listener of its own.  In each of CYCLES
 * rounds each thread connects to its listener and accepts (a connect and
 * an accept line, in its CPU's lane), hands both descriptors to the other
 * thread over a pipe, and closes at once the two the other handed it (two
 * close lines, in its own lane): each close is caused by an accept just
 * before it on the other CPU, both ways.  Then each closes its listener
 * (with its bind, two lines): the log must hold 8 * CYCLES + 4 lines.  It
 * prints {"cycles": C, "cpus": [A, B], "failed": F} and exits, or
 * SIGKILLs itself (no flush: the lines stay in the spool for the next
 * start).  Exit 3: fewer than two CPUs to use.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostutil.h"

static int cpus[2];
static int pipes[2][2]; /* pipes[i]: to thread i */
static long cycles;
static _Atomic long failed;

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		host_die("pthread_setaffinity_np");
}

static void *run(void *arg)
{
	int me = (int)(long)arg, port = 0, lfd;
	struct sockaddr_in sa;

	pin(cpus[me]);
	lfd = host_listen(&port);
	if (lfd < 0)
		host_die("listen");
	sa = host_loopback(port);
	for (long i = 0; i < cycles; i++) {
		int fds[2];

		fds[1] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[1] < 0 || connect(fds[1], (struct sockaddr *)&sa, sizeof(sa)) != 0)
			host_die("connect");
		fds[0] = accept(lfd, NULL, NULL);
		if (fds[0] < 0)
			host_die("accept");
		if (write(pipes[!me][1], fds, sizeof(fds)) != (ssize_t)sizeof(fds))
			host_die("write");
		if (read(pipes[me][0], fds, sizeof(fds)) != (ssize_t)sizeof(fds))
			host_die("read");
		if (close(fds[0]) != 0 || close(fds[1]) != 0)
			failed++;
	}
	close(lfd);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *end = argc > 2 ? argv[2] : "exit";
	pthread_t th[2];
	cpu_set_t set;
	int n = 0;

	if (argc < 2 || (cycles = atol(argv[1])) <= 0) {
		fputs("usage: spool_handoff CYCLES [exit|kill]\n", stderr);
		return 2;
	}
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		host_die("sched_getaffinity");
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	if (n < 2) {
		printf("{\"ok\": false, \"error\": \"fewer than two CPUs\"}\n");
		return 3;
	}
	if (pipe(pipes[0]) != 0 || pipe(pipes[1]) != 0)
		host_die("pipe");
	for (long i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, run, (void *)i) != 0)
			host_die("pthread_create");
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("{\"cycles\": %ld, \"cpus\": [%d, %d], \"failed\": %ld}\n", cycles, cpus[0], cpus[1],
	       atomic_load(&failed));
	fflush(stdout);
	if (strcmp(end, "kill") == 0)
		raise(SIGKILL);
	return atomic_load(&failed) ? 1 : 0;
}
