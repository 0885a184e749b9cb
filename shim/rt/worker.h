/*
 * teardown runtime: the background thread (worker.c): drains, timers,
 * the CLOSE_WAIT watcher, policy file changes.
 */
#ifndef TD_RT_WORKER_H
#define TD_RT_WORKER_H

#include "base.h"

struct td_drain_req {
	int pfd;
	int64_t deadline_mono_us;
	struct td_event ev; /* the close event to finish and write */
	struct td_close_facts cf; /* its facts, completed when the drain ends */
	int64_t t_open_mono_us;
	const struct td_policy *p;
	bool log;
};
/* Hand a drain to the worker; 0 or a negative errno (then do it inline). */
int td_worker_drain(const struct td_drain_req *req) TD_HIDDEN;
/* Reset fd (tag must still match) at when_mono_us: rst_after_ms. */
int td_worker_timer(int fd, uint32_t tag, int64_t when_mono_us) TD_HIDDEN;
/* Make sure the CLOSE_WAIT watcher runs. */
void td_worker_watch_leaks(void) TD_HIDDEN;
void td_worker_after_fork_child(void) TD_HIDDEN;
/* The library's allocator (shim/rt/mem.c): a lock a fork() left held goes. */
void td_mem_after_fork_child(void) TD_HIDDEN;
/* At exit: discard input of pending drains and write their events. */
void td_worker_flush_at_exit(void) TD_HIDDEN;
/* Whether this process has the worker thread (started, or starting). */
bool td_worker_exists(void) TD_HIDDEN;
/* Start the worker now if it is not running: 0, or a negative errno. */
int td_worker_start(void) TD_HIDDEN;
/* Wake the running worker (one eventfd write). */
void td_worker_wake(void) TD_HIDDEN;

/* Make sure the worker runs and looks at the policy file now. */
void td_worker_watch_policy(void) TD_HIDDEN;

#endif
