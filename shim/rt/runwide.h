/*
 * teardown runtime: numbers shared by every process of a run (runwide.c).
 */
#ifndef TD_RT_RUNWIDE_H
#define TD_RT_RUNWIDE_H

#include "base.h"

/* Map the run's counters file named by TEARDOWN_RUN (start-up only). */
void td_runwide_attach(const char *path) TD_HIDDEN;
/* The next run-wide connection number, or 0 outside a run. */
uint64_t td_runwide_conn(void) TD_HIDDEN;
/* Rule's next position among its matched connections (run-wide when in
 * a run, else this process's), 1-based; 0 when it cannot be counted. */
uint64_t td_runwide_position(const struct td_policy *p, int rule) TD_HIDDEN;

#endif
