/*
 * bench_spool: the spool's writers alone (shim/core/spool.c, linked in),
 * for tests/bench/threads.py: THREADS threads, each pinned to its own CPU
 * (round robin over those this process may use), put PUTS records each
 * (a reservation with its CLOCK_MONOTONIC key, a 48-byte copy, a commit,
 * as the library's writers do) into one spool of LANES lanes: 1, the
 * single ring whose head every writer moves, or one lane per CPU, each
 * writer in its CPU's lane.  Nothing is read back: the spool is large
 * enough for every record of a round.  Best of ROUNDS, each on a fresh
 * spool.  Output: one JSON line,
 * {"threads": T, "lanes": L, "puts": P, "ns_per_put": X}, X the round's
 * wall time over the puts of one thread (time for all of them to finish).
 * With "nokey", records are keyed by position (no clock read): what the
 * key costs a writer.
 *
 *   bench_spool THREADS LANES PUTS ROUNDS [nokey]
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "teardown/spool.h"

static struct td_spool_file file;
static long puts_each;
static int nthreads, cpus[TD_SPOOL_MAX_LANES * 16], ncpus;
static _Atomic int ready, go;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *writer(void *arg)
{
	int me = (int)(long)arg;
	char rec[48];
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpus[me % ncpus], &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	memset(rec, 'r', sizeof(rec));
	atomic_fetch_add(&ready, 1);
	while (!atomic_load(&go))
		;
	for (long i = 0; i < puts_each; i++) {
		const struct td_spool_view *v = &file.lane[td_spool_lane_of(&file, sched_getcpu())];

		if (td_spool_put(v, rec, sizeof(rec), NULL) != 0) {
			fputs("bench_spool: a lane filled\n", stderr);
			exit(1);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint32_t lanes, nslots = 1;
	long rounds;
	double best = 0;
	cpu_set_t set;
	void *mem;

	bool nokey = argc == 6 && strcmp(argv[5], "nokey") == 0;

	if ((argc != 5 && !nokey) || (nthreads = atoi(argv[1])) <= 0 || nthreads > 256 ||
	    (lanes = (uint32_t)atoi(argv[2])) == 0 || lanes > TD_SPOOL_MAX_LANES ||
	    (lanes & (lanes - 1)) != 0 || (puts_each = atol(argv[3])) <= 0 ||
	    (rounds = atol(argv[4])) <= 0) {
		fputs("usage: bench_spool THREADS LANES(1,2,4,8) PUTS ROUNDS [nokey]\n", stderr);
		return 2;
	}
	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return 1;
	for (int c = 0; c < CPU_SETSIZE && ncpus < (int)(sizeof(cpus) / sizeof(cpus[0])); c++)
		if (CPU_ISSET(c, &set))
			cpus[ncpus++] = c;
	/* every record of a round fits, whichever lanes the threads share */
	while ((uint64_t)nslots < (uint64_t)nthreads * (uint64_t)puts_each * lanes)
		nslots <<= 1;
	if (nslots > TD_SPOOL_MAX_SLOTS) {
		fputs("bench_spool: too many puts for one spool\n", stderr);
		return 2;
	}
	mem = aligned_alloc(4096, td_spool_file_size(nslots));
	if (mem == NULL)
		return 1;
	for (long r = 0; r < rounds; r++) {
		pthread_t th[256];
		uint64_t t0, t1;
		double ns;

		memset(mem, 0, td_spool_file_size(nslots)); /* pages in before the clock */
		td_spool_init_file(mem, nslots, lanes, 1, &file);
		for (uint32_t l = 0; l < lanes; l++)
			file.lane[l].key = nokey ? NULL : mono_ns;
		atomic_store(&ready, 0);
		atomic_store(&go, 0);
		for (long i = 0; i < nthreads; i++)
			if (pthread_create(&th[i], NULL, writer, (void *)i) != 0)
				return 1;
		while (atomic_load(&ready) != nthreads)
			;
		t0 = mono_ns();
		atomic_store(&go, 1);
		for (int i = 0; i < nthreads; i++)
			pthread_join(th[i], NULL);
		t1 = mono_ns();
		ns = (double)(t1 - t0) / (double)puts_each;
		if (r == 0 || ns < best)
			best = ns;
	}
	printf("{\"threads\": %d, \"lanes\": %u, \"puts\": %ld, \"key\": %s, \"ns_per_put\": %.1f}\n",
	       nthreads, lanes, puts_each, nokey ? "false" : "true", best);
	free(mem);
	return 0;
}
