/*
 * teardown: the run-wide counters file, shared by the `teardown` command
 * (which names it in TEARDOWN_RUN, and makes it for a run with a fault) and the
 * library (which maps it in every process of the run): see
 * shim/rt/runwide.c.
 */
#ifndef TEARDOWN_RUN_H
#define TEARDOWN_RUN_H

#include <stdatomic.h>
#include <stdint.h>

#define TD_RUN_MAGIC 0x74645f72756e3031ull /* "td_run01" */
#define TD_RUN_RULES 500

struct td_run_shm {
	uint64_t magic;
	_Atomic uint64_t conns;			/* connections decided in the run */
	_Atomic uint64_t matched[TD_RUN_RULES]; /* per rule index: its matches */
	uint64_t pad[10];			/* to 4096 bytes */
};

_Static_assert(sizeof(struct td_run_shm) == 4096, "one page");

#endif
