/*
 * teardown: _exit() and _Exit() — a process that ends without exit() (a
 * forked child's usual way out, Python's os._exit()) runs no destructor,
 * so the lines waiting in its spool (shim/rt/spool.c) are written out
 * here first: its siblings and parent go on, and its lines must not wait
 * for the next program that opens the log.  A vfork()ed child's _exit()
 * leaves the parent's spool alone.  Nothing else happens here: no exit
 * events (that is exit()'s work), errno untouched.
 */
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../rt/rt.h"

static void td__before_exit(void)
{
	if (td_init_done())
		td_spool_at_exit();
}

TD_EXPORT void _exit(int status)
{
	td__before_exit();
	td_real__exit(status);
	for (;;)
		(void)td_real_sys1(SYS_exit_group, status);
}

TD_EXPORT void _Exit(int status)
{
	td__before_exit();
	td_real__Exit(status);
	for (;;)
		(void)td_real_sys1(SYS_exit_group, status);
}
