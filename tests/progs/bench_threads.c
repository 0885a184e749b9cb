/*
 * bench_threads: T threads opening and closing TCP connections at once,
 * for tests/bench/threads.py.
 *
 *   bench_threads T MILLISECONDS
 *
 * Each thread has a listener of its own on 127.0.0.1 and runs cycles of
 * socket(), connect() to it, accept(), and two close()s (the accepted
 * end first, so the TIME_WAIT sits on the listener's port), as fast as it
 * can.  The threads start together (a barrier) and stop when the main
 * thread, after MILLISECONDS, raises a flag; the time measured runs from
 * the barrier to the last thread's stop, so thread start-up (and the
 * process's, and the library's) is left out.
 * Output: one JSON line, {"threads": T, "cycles": C, "ns": NS, "failed": F};
 * the exit status is 1 if any cycle failed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

#define MAXT 1024

struct worker {
	pthread_t th;
	int lfd;
	struct sockaddr_in sa;
	long cycles, failed;
};

static struct worker workers[MAXT];
static pthread_barrier_t start;
static atomic_int stop;

static void *run(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(&start);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (host_cycle(w->lfd, &w->sa) != 0)
			w->failed++;
		else
			w->cycles++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int t = argc > 1 ? atoi(argv[1]) : 1;
	long ms = argc > 2 ? atol(argv[2]) : 1000;
	long cycles = 0, failed = 0;
	struct timespec d;
	int64_t t0, t1;

	if (t < 1 || t > MAXT || ms < 1) {
		fprintf(stderr, "usage: bench_threads THREADS(1..%d) MILLISECONDS\n", MAXT);
		return 2;
	}
	for (int i = 0; i < t; i++) {
		struct worker *w = &workers[i];
		socklen_t len = sizeof(w->sa);

		w->sa.sin_family = AF_INET;
		w->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		w->lfd = socket(AF_INET, SOCK_STREAM, 0);
		if (w->lfd < 0 || bind(w->lfd, (struct sockaddr *)&w->sa, sizeof(w->sa)) != 0 ||
		    listen(w->lfd, 128) != 0 ||
		    getsockname(w->lfd, (struct sockaddr *)&w->sa, &len) != 0) {
			perror("bench_threads: listen");
			return 1;
		}
	}
	pthread_barrier_init(&start, NULL, (unsigned)t + 1);
	for (int i = 0; i < t; i++)
		if (pthread_create(&workers[i].th, NULL, run, &workers[i]) != 0) {
			perror("bench_threads: pthread_create");
			return 1;
		}
	pthread_barrier_wait(&start);
	t0 = host_now_ns(CLOCK_MONOTONIC);
	d.tv_sec = ms / 1000;
	d.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&d, &d) != 0)
		;
	atomic_store(&stop, 1);
	for (int i = 0; i < t; i++) {
		pthread_join(workers[i].th, NULL);
		cycles += workers[i].cycles;
		failed += workers[i].failed;
	}
	t1 = host_now_ns(CLOCK_MONOTONIC);
	for (int i = 0; i < t; i++)
		close(workers[i].lfd);
	printf("{\"threads\": %d, \"cycles\": %ld, \"ns\": %lld, \"failed\": %ld}\n", t, cycles,
	       (long long)(t1 - t0), failed);
	return failed ? 1 : 0;
}
