/*
 * teardown runtime: the one close path (closing.c).
 */
#ifndef TD_RT_CLOSING_H
#define TD_RT_CLOSING_H

#include "fdtab.h"

struct td_closing {
	struct td_sock s;	/* the claimed entry */
	const struct td_rule *rule;
	int fd;
	int pfd;		/* private dup kept for a drain, or -1 */
	int saved_errno;	/* the program's errno, given back at the end */
	bool stale;		/* the fd was no longer this socket */
	bool log;
	bool check_after;	/* who sent the first FIN: ask after the close */
	bool check_state;	/* the 4-tuple's state after the close: did the
				 * predicted RST go, or the drop of a CLOSING
				 * socket? (td__checks_after()) */
	bool holder_after;	/* was it the last reference? ask after the close */
	bool leave_after;	/* counted holders: drop the count after the close */
	int64_t unread_before;
	struct td_close_facts cf; /* what the event's outcome is predicted from */
	struct td_event ev;
};

/*
 * The one close path (closing.c).  A hook that closes fd calls
 * td_closing_begin(); when it returns false the library has nothing to do
 * and the hook just makes its real call.  Otherwise the hook makes its
 * real call (once) and then td_closing_end() with whether it succeeded;
 * errno is the program's again after each of the two.
 */
bool td_closing_begin(const struct td_policy *p, struct td_closing *c, int fd) TD_HIDDEN;
void td_closing_end(const struct td_policy *p, struct td_closing *c, bool ok) TD_HIDDEN;
/* begin, the real close(), end. */
int td_closing_fd(const struct td_policy *p, int fd) TD_HIDDEN;
/* At exit: close-time work and an "exit" event for sockets still open.
 * now: nothing of the program runs after (_exit() and the like), not
 * exit(). */
void td_closing_at_exit(const struct td_policy *p, bool now) TD_HIDDEN;
/*
 * exec() (its hooks, just before the call): the close-on-exec copies
 * leave the holder counts (td_holders_exec_prepare()), and an "exec"
 * event goes out for each logged connection whose last copy is
 * close-on-exec, which the log gets only once the call succeeded;
 * td_closing_exec_failed() when it returned: the events dropped, the
 * counts given back.  Both keep errno.
 */
void td_closing_exec_prepare(void) TD_HIDDEN;
void td_closing_exec_failed(void) TD_HIDDEN;
/*
 * A forked child of this process was reaped (the wait hooks): the copies
 * it still held leave the counts (its holder record, fdtab.c), and each
 * connection it held last gets its "exit" event, on its behalf (pid),
 * why "died".  killed: it ended by a signal.  Keeps errno.
 */
void td_closing_reaped(pid_t pid, bool killed) TD_HIDDEN;
/* The same for the children reaped behind the library's back (SIGCHLD
 * ignored), found gone by kill(pid, 0): after a fork that found no free
 * record, and at exit.  Keeps errno. */
void td_closing_sweep(void) TD_HIDDEN;
/* What an event asks the kernel (ev->ask, td_predict_settle()), asked now. */
void td_closing_settle_now(struct td_event *ev) TD_HIDDEN;
/* Predict from cf and fill ev's outcome fields (also for the worker). */
void td_closing_outcome(struct td_event *ev, const struct td_close_facts *cf,
			int64_t t_open_mono_us) TD_HIDDEN;

#endif
