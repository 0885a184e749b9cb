/*
 * teardown runtime: clocks (clock.c).
 */
#ifndef TD_RT_CLOCK_H
#define TD_RT_CLOCK_H

#include "base.h"

int64_t td_clock_now_us(void) TD_HIDDEN;	 /* CLOCK_REALTIME */
int64_t td_clock_mono_us(void) TD_HIDDEN;	 /* CLOCK_MONOTONIC */
uint64_t td_clock_mono_ns(void) TD_HIDDEN; /* CLOCK_MONOTONIC */
void td_clock_sleep_ms(uint32_t ms) TD_HIDDEN; /* restarts on EINTR */

#endif
