/*
 * teardown runtime: what every module of shim/rt/ and every hook needs:
 * the system headers, the export and branch-hint macros, and the real
 * libc functions (real.h).
 */
#ifndef TD_RT_BASE_H
#define TD_RT_BASE_H

#include <errno.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "teardown/layout.h"
#include "teardown/event.h"
#include "teardown/policy.h"
#include "teardown/predict.h"
#include "real.h"

/*
 * errno, through a pointer this thread keeps in its static TLS.  glibc's
 * errno is a call to __errno_location() in libc's text, on a page a
 * fork-per-connection server's child would otherwise fault in at its
 * first hook: fork() copies no page table entries of a file's text, so
 * each page of it a child runs costs a fault.  The address is the
 * thread's own: a forked child (its one thread a copy of the forking one)
 * and a vfork()ed child (which runs on the parent's thread) keep it.
 */
extern __thread int *td_errno_p TD_HIDDEN __attribute__((tls_model("initial-exec")));
static inline int *td_errno_loc(void)
{
	int *p = td_errno_p;

	if (__builtin_expect(p == NULL, 0))
		td_errno_p = p = __errno_location();
	return p;
}
#undef errno
#define errno (*td_errno_loc())
/*
 * Put errno back, writing it only when it changed: after fork() every
 * page of the process is shared copy-on-write, and a store of the value
 * errno already holds would still copy the page it is on (a fault in a
 * fork-per-connection server's parent and child, per connection).
 */
static inline void td_errno_set(int v)
{
	int *p = td_errno_loc();

	if (*p != v)
		*p = v;
}

#define TD_EXPORT __attribute__((visibility("default")))
#define td_likely(x) __builtin_expect(!!(x), 1)
#define td_unlikely(x) __builtin_expect(!!(x), 0)
/*
 * Store v into the atomic *p only when it holds something else.  After
 * fork() the process's pages are shared copy-on-write with the other
 * side: storing the value a page already holds still copies the page (a
 * page fault, and a dear one under virtualisation), so the fork handlers
 * write only what changes.
 */
#define td_store_changed(p, v)                                                \
	do {                                                                  \
		__typeof__(atomic_load_explicit((p), memory_order_relaxed)) td_sc_v_ = (v); \
		if (atomic_load_explicit((p), memory_order_relaxed) != td_sc_v_) \
			atomic_store((p), td_sc_v_);                          \
	} while (0)
/*
 * The few variables a forked child writes in its handlers or first lines
 * (its pid, fork epochs and generation, its line count, the log's check
 * times), and those its parent writes at every fork: one section, so
 * they share a page and a fork-per-connection server's child copies that
 * one page for them, not one page each.  The fd table's first entries
 * follow them on that page (TD_CHILD_FD, fdtab.c): a fork-per-connection
 * server's parent, which writes its connection's entry at accept() and
 * at its close() of it, and its child, which closes and dup2()s its
 * inherited fds, then copy one page of ours per fork each, not two.
 * Packed, so that the entries of fds 0 to 15 and more fit beside them;
 * a variable every thread writes at every event (TD_CHILD_WRITTEN_LINE:
 * the line count, the connection counter) has a cache line of its own.
 * shim/td_child.ld starts the section on a page;
 * tests/e2e/test_host_calls.py checks, on the built library, what shares
 * that page.  Some are read there first, not written: a page the parent
 * never touched costs a child a fault even to read.
 */
#define TD_CHILD_WRITTEN __attribute__((section("td_child")))
#define TD_CHILD_WRITTEN_LINE __attribute__((section("td_child"), aligned(64)))
#define TD_CHILD_FD __attribute__((section("td_child.fd"), aligned(64)))
/*
 * The variables every close, line and exit reads but that change only at
 * start-up, a reload, a new log file or a new highest fd (the policy, the
 * real calls, the log's identity, the share map's address, the fd
 * table's watermarks): one section, so a forked child reads one page of
 * them rather than six spread over the bss.  On this project's virtual
 * machine a child's first read of a page its parent wrote costs about
 * 7 us (README, Tests and benchmarks), more than a system call.  Nothing
 * the parent writes between two forks goes here: that would copy the
 * page at every fork.  The fd table's directory (TD_CHILD_DIR) follows
 * them, its first entries (fds 0 to 1023, and more) on their page.
 * tests/e2e/test_host_calls.py checks that the variables and the first
 * entry share the section's first page.
 */
#define TD_CHILD_READ __attribute__((section("td_child_ro")))
#define TD_CHILD_DIR __attribute__((section("td_child_ro.dir"), aligned(64)))
#define TD_STR_(x) #x
#define TD_STR(x) TD_STR_(x)

#endif
