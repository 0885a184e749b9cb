/*
 * teardown: clocks.  clock_gettime() is a vDSO call (no system call) on
 * Linux; CLOCK_REALTIME stamps events, CLOCK_MONOTONIC measures ages,
 * intervals and deadlines.
 */
#include <errno.h>
#include <time.h>

#include "clock.h"

TD_CHILD_RUNS
int64_t td_clock_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

TD_CHILD_RUNS
int64_t td_clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the spool's record keys (a vDSO read: no system call, no lock, safe in
 * a signal handler) */
uint64_t td_clock_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void td_clock_sleep_ms(uint32_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
