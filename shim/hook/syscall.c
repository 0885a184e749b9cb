/*
 * teardown: syscall() — a program that closes a socket with
 * syscall(SYS_close, fd) (or close_range/dup/dup2/dup3, or fcntl's F_DUPFD, the same way) gets the
 * same treatment as through the libc calls; syscall(SYS_exit_group)
 * writes the exit events and the spool out first, as _exit() does; syscall(SYS_shutdown) with
 * SHUT_RD is remembered as shutdown() does (then passed on); SYS_execve and
 * SYS_execveat count the holders as exec() does (shim/hook/exec.c); SYS_seccomp
 * and SYS_prctl(PR_SET_SECCOMP) enter a sandbox as prctl() does
 * (shim/hook/prctl.c).  Every other number goes straight to libc's syscall().
 */
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../rt/rt.h"

TD_EXPORT long syscall(long n, ...)
{
	const struct td_policy *p;
	long a[6];
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	p = td_init_active();
	if (p != NULL) {
		switch (n) {
		case SYS_close:
			return td_closing_fd(p, (int)a[0]);
		case SYS_close_range:
			return close_range((unsigned)a[0], (unsigned)a[1], (int)a[2]);
#ifdef SYS_dup2
		case SYS_dup2:
			return dup2((int)a[0], (int)a[1]);
#endif
		case SYS_dup3:
			return dup3((int)a[0], (int)a[1], (int)a[2]);
		case SYS_dup:
			return dup((int)a[0]);
		case SYS_fcntl:
			/* F_DUPFD and F_DUPFD_CLOEXEC are dups; the rest passes */
			if ((int)a[1] == F_DUPFD || (int)a[1] == F_DUPFD_CLOEXEC)
				return fcntl((int)a[0], (int)a[1], (int)a[2]);
			break;
		case SYS_shutdown:
			/* passed on as it is; only what shutdown() remembers */
			if ((int)a[1] == SHUT_RD || (int)a[1] == SHUT_RDWR)
				td_fdtab_mark_shut_rd((int)a[0]);
			break;
		case SYS_execve:
		case SYS_execveat: {
			long rc;

			td_closing_exec_prepare();
			rc = td_real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
			td_closing_exec_failed();
			return rc;
		}
		case SYS_prctl:
			if ((int)a[0] == PR_SET_SECCOMP)
				td_init_sandbox(false);
			break;
		case SYS_seccomp:
			if ((unsigned)a[0] == SECCOMP_SET_MODE_STRICT ||
			    (unsigned)a[0] == SECCOMP_SET_MODE_FILTER)
				td_init_sandbox(((unsigned long)a[1] & SECCOMP_FILTER_FLAG_TSYNC) != 0);
			break;
		case SYS_exit_group:
			/* the exit events and the spool's lines first, as
			 * _exit() does */
			td_init_at_exit(true);
			break;
		default:
			break;
		}
	}
	return td_real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
