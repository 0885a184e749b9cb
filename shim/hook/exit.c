/*
 * teardown: _exit() and _Exit() — a process that ends without exit() (a
 * forked child's usual way out, Python's os._exit()) runs no destructor,
 * so what the destructor does is done here first (td_init_at_exit()): an
 * "exit" event for each socket still open, the drains still pending, the
 * lines waiting in its spool (its siblings and parent go on, and its lines
 * must not wait for the next program that opens the log).  A vfork()ed
 * child's _exit() leaves the parent's state alone.  errno untouched.
 */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../rt/rt.h"

TD_CHILD_RUNS
TD_EXPORT void _exit(int status)
{
	td_init_at_exit(true);
	td_real__exit(status);
	for (;;)
		(void)td_real_sys1(SYS_exit_group, status);
}

TD_CHILD_RUNS
TD_EXPORT void _Exit(int status)
{
	td_init_at_exit(true);
	td_real__Exit(status);
	for (;;)
		(void)td_real_sys1(SYS_exit_group, status);
}
