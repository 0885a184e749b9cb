/*
 * teardown: fork() — the parent learns its child's pid, so that a socket
 * it closes later can be checked against the children that inherited it
 * (see shim/rt/holders.c).  The epoch bookkeeping itself happens in the
 * pthread_atfork handlers, which also run for daemon()'s internal fork.
 */
#include <unistd.h>

#include "../rt/rt.h"

TD_EXPORT pid_t fork(void)
{
	const struct td_policy *p = td_init_active();
	pid_t pid;

	pid = td_real_fork();
	if (p != NULL && pid > 0)
		td_holders_child_record(pid, td_holders_fork_epoch());
	return pid;
}
