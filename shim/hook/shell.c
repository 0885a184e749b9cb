/*
 * teardown: system(), popen() — libc starts /bin/sh itself, inside these
 * calls, where no hook of ours sees the child (glibc spawns it with an
 * internal posix_spawn: neither posix_spawn() nor a fork handler runs).
 * The shell, and anything it leaves running ("cmd &"), holds every
 * socket the program did not mark close-on-exec, so the program's close
 * of such a socket is no longer the connection's end: each is shared for
 * good from here on (td_holders_shell_child()), and the log's spool goes
 * out first, so that the shell's lines never come before the program's.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../rt/rt.h"

static void td__shell(void)
{
	if (td_init_active() == NULL)
		return;
	td_spool_flush();
	td_holders_shell_child();
}

TD_EXPORT int system(const char *cmd)
{
	td__shell();
	return td_real_system(cmd);
}

TD_EXPORT FILE *popen(const char *cmd, const char *mode)
{
	td__shell();
	return td_real_popen(cmd, mode);
}
