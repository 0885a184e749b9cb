/*
 * teardown: fork() — the parent learns its child's pid, so that a socket
 * it closes later can be checked against the children that inherited it
 * (see shim/rt/holders.c).  The epoch bookkeeping itself, and counting
 * the child's copies of the sockets, happen in the pthread_atfork
 * handlers, which also run for daemon()'s internal fork; a fork that
 * failed gives those counts back here.
 */
#include <unistd.h>

#include "../rt/rt.h"

TD_CHILD_RUNS
TD_EXPORT pid_t fork(void)
{
	const struct td_policy *p = td_init_active();
	pid_t pid;

	pid = td_real_fork();
	if (p == NULL || pid == 0)
		return pid;
	if (pid > 0)
		td_holders_child_record(pid, td_holders_fork_epoch());
	else
		td_holders_fork_failed();
	td_fdtab_hrec_forked(pid);
	if (pid > 0 && td_unlikely(td_fdtab_hrec_full()))
		td_closing_sweep();
	return pid;
}
