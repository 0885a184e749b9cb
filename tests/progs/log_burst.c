/*
 * log_burst: many threads making audit events at once, then an ending
 * chosen by the test, for the spool tests (tests/e2e/test_spool.py).
 *
 *   log_burst THREADS CYCLES [exit|kill|abort|exec PROG ARGV0 [ARG...]]
 *
 * With LOG_BURST_UID=N in its environment it first gives up root, as a
 * server's worker does: setgid(N), then setuid(N).
 *
 * Each thread binds a listener of its own, then makes CYCLES
 * connect/accept/close cycles against it (four events each: connect,
 * accept, the close of the accepted end, the close of the client end),
 * and closes its listener (a bind and a close event): the log must hold
 * THREADS * (4 * CYCLES + 2) lines from this process.  Once every thread
 * is done it prints {"threads": T, "cycles": C, "failed": F} and ends:
 * exit() (the default), SIGKILL to itself (no destructor, no flush),
 * abort(), or execv(PROG, {ARGV0, ARG...}) (the spool's descriptor is
 * close-on-exec: its lock goes with the old image; ARGV0 names the new
 * image in its log lines).
 */
#include <grp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostutil.h"

static long cycles;
static long failed_total;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *run(void *arg)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	long failed = 0;

	(void)arg;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("log_burst: listen");
		exit(1);
	}
	for (long i = 0; i < cycles; i++) {
		if (host_cycle(lfd, &sa) != 0)
			failed++;
	}
	close(lfd);
	pthread_mutex_lock(&mu);
	failed_total += failed;
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	long nthreads;
	pthread_t *th;
	const char *end = argc > 3 ? argv[3] : "exit";

	if (argc < 3 || (nthreads = atol(argv[1])) <= 0 || (cycles = atol(argv[2])) < 0 ||
	    (strcmp(end, "exec") == 0 && argc < 6)) {
		fputs("usage: log_burst THREADS CYCLES [exit|kill|abort|exec PROG ARGV0 [ARG...]]\n",
		      stderr);
		return 2;
	}
	if (getenv("LOG_BURST_UID") != NULL) {
		uid_t uid = (uid_t)atol(getenv("LOG_BURST_UID"));

		if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0) {
			perror("log_burst: giving up root");
			return 1;
		}
	}
	th = calloc((size_t)nthreads, sizeof(*th));
	if (th == NULL)
		return 1;
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, run, NULL) != 0) {
			perror("log_burst: pthread_create");
			return 1;
		}
	for (long i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("{\"threads\": %ld, \"cycles\": %ld, \"failed\": %ld}\n", nthreads, cycles,
	       failed_total);
	fflush(stdout);
	if (strcmp(end, "kill") == 0)
		raise(SIGKILL);
	if (strcmp(end, "abort") == 0)
		abort();
	if (strcmp(end, "exec") == 0) {
		execv(argv[4], argv + 5);
		perror("log_burst: execv");
		return 1;
	}
	return failed_total ? 1 : 0;
}
