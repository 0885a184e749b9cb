/*
 * teardown: wait(), waitpid(), wait3(), wait4(), waitid() — a child this
 * process forked was reaped.  One that died without its exit hook (killed
 * by a signal, a crash) never gave back its copies of the sockets it
 * inherited: its parent takes them back here, from the child's holder
 * record (shim/rt/fdtab.c), and reports the end of each connection the
 * dead child held last (td_closing_reaped(), shim/rt/closing.c).  A
 * process that never counted a forked child's copies goes straight to
 * libc, as does a call that reaped nothing.  The status reaches the
 * caller unchanged, errno too; a caller that passed no status pointer
 * gets none, while the hook reads the status through one of its own.
 */
#include <signal.h>
#include <sys/wait.h>

#include "../rt/rt.h"

/* pid was reaped with status (waitpid's encoding). */
static void td__reaped(pid_t pid, int status)
{
	if (pid > 0 && (WIFEXITED(status) || WIFSIGNALED(status)))
		td_closing_reaped(pid, WIFSIGNALED(status));
}

static pid_t td__wait4(pid_t p, int *s, int o, struct rusage *u)
{
	int st = 0;
	pid_t pid;

	if (td_likely(!td_fdtab_hrec_any()) || td_init_sandboxed())
		return td_real_wait4(p, s, o, u);
	pid = td_real_wait4(p, &st, o, u);
	if (pid > 0) {
		if (s != NULL)
			*s = st;
		td__reaped(pid, st);
	}
	return pid;
}

TD_EXPORT pid_t wait4(pid_t p, int *s, int o, struct rusage *u)
{
	return td__wait4(p, s, o, u);
}

TD_EXPORT pid_t waitpid(pid_t p, int *s, int o)
{
	return td__wait4(p, s, o, NULL);
}

TD_EXPORT pid_t wait(int *s)
{
	return td__wait4(-1, s, 0, NULL);
}

TD_EXPORT pid_t wait3(int *s, int o, struct rusage *u)
{
	return td__wait4(-1, s, o, u);
}

TD_EXPORT int waitid(idtype_t t, id_t i, siginfo_t *f, int o)
{
	siginfo_t own, *in = f != NULL ? f : &own;
	int rc;

	if (td_likely(!td_fdtab_hrec_any()) || td_init_sandboxed())
		return td_real_waitid(t, i, f, o);
	own.si_pid = 0;
	rc = td_real_waitid(t, i, in, o);
	/* (WNOWAIT leaves the child to be reaped again: the status is read then) */
	if (rc == 0 && !(o & WNOWAIT) && in->si_pid > 0 &&
	    (in->si_code == CLD_EXITED || in->si_code == CLD_KILLED ||
	     in->si_code == CLD_DUMPED))
		td_closing_reaped(in->si_pid, in->si_code != CLD_EXITED);
	return rc;
}
