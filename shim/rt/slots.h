/*
 * teardown runtime: claiming one slot of a fixed array without a lock.
 *
 * The worker's drain and timer queues, the dup share counters and the
 * netlink socket pool are fixed arrays whose slots carry an atomic state
 * word; a hook (maybe in a signal handler) claims a free one with one
 * compare-and-swap, never waits, and on a full array does the safe thing
 * itself.  One way to do it, here.
 */
#ifndef TD_RT_SLOTS_H
#define TD_RT_SLOTS_H

#include <stdatomic.h>
#include <stddef.h>

/*
 * The first slot at or after start, of n, whose state word was from and is
 * now to (this caller's); -1 when none.  state is the first slot's word,
 * stride the bytes from one slot to the next.
 */
static inline int td_slots_claim(_Atomic int *state, size_t stride, int start, int n, int from,
				 int to)
{
	for (int i = start; i < n; i++) {
		_Atomic int *st = (_Atomic int *)(void *)((char *)state + (size_t)i * stride);
		int expect = from;

		if (atomic_load_explicit(st, memory_order_relaxed) == from &&
		    atomic_compare_exchange_strong(st, &expect, to))
			return i;
	}
	return -1;
}

#endif
