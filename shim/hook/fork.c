/*
 * teardown: fork() — the parent learns its child's pid, so that a socket
 * it closes later can be checked against the children that inherited it
 * (see shim/rt/holders.c).  The epoch bookkeeping itself, and counting
 * the child's copies of the sockets, happen in the pthread_atfork
 * handlers, which also run for daemon()'s internal fork; a fork that
 * failed gives those counts back here.  _Fork(), which runs no handler,
 * runs the library's itself.
 */
#include <errno.h>
#include <unistd.h>

#include "../rt/rt.h"

/* In the parent, after the handlers: the child recorded, or the counts
 * of a fork that failed given back (errno, the fork's, kept; put back
 * only where it changed: a store to the TLS page, write-protected by the
 * fork, would cost a fork-per-connection server's parent a page fault per
 * connection). */
static void td__forked(pid_t pid)
{
	int err = errno;

	if (pid > 0)
		td_holders_child_record(pid, td_holders_fork_epoch());
	else
		td_holders_fork_failed();
	td_fdtab_hrec_forked(pid);
	if (pid > 0 && td_unlikely(td_fdtab_hrec_full()))
		td_closing_sweep();
	td_errno_set(err);
}

TD_CHILD_RUNS
TD_EXPORT pid_t fork(void)
{
	const struct td_policy *p = td_init_active();
	pid_t pid;

	pid = td_real_fork();
	if (p == NULL || pid == 0)
		return pid;
	td__forked(pid);
	return pid;
}

/*
 * _Fork() (glibc 2.34): fork() without the pthread_atfork handlers, the
 * fork a signal handler may call.  The library's own handlers run around
 * it all the same (td_init_fork_run()): without them the child would log
 * under its parent's pid and tid and put its lines into its parent's
 * spool ring, and the parent would count no copy for the child, so its
 * close of a socket the child still holds would say FIN where nothing
 * went out.  They take no lock and allocate nothing.
 */
TD_CHILD_RUNS
TD_EXPORT pid_t _Fork(void)
{
	const struct td_policy *p = td_init_active();
	pid_t pid;
	int err;

	if (p == NULL)
		return td_real__Fork();
	td_init_fork_run(TD_FORK_PREPARE);
	pid = td_real__Fork();
	err = errno;
	if (pid == 0) {
		td_init_fork_run(TD_FORK_CHILD);
		td_errno_set(err);
		return 0;
	}
	td_init_fork_run(TD_FORK_PARENT);
	td_errno_set(err);
	td__forked(pid);
	return pid;
}
