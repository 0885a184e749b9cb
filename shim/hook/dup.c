/*
 * teardown: dup(), dup2(), dup3() (and fcntl()'s F_DUPFD, fcntl.c, through
 * td_decide_dup()).  dup2/dup3 over a tracked socket close
 * it implicitly (JVMs close sockets exactly this way), so it gets the same
 * close-time work as close(); the new fd of a tracked socket shares the
 * socket, and only the last of them does that work.
 */
#include <fcntl.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

/*
 * The shared body of dup2 and dup3: when newfd is a tracked socket, the
 * close path runs around the real call, which replaces newfd atomically
 * (no window in which another thread could take the number).
 */
TD_CHILD_RUNS
static int td__dup23(int oldfd, int newfd, int flags, bool three)
{
	const struct td_policy *p = td_init_active();
	struct td_fdent *oe, *ne;
	struct td_closing c;
	bool closing = false;
	int saved, rc;

	if (p == NULL || oldfd == newfd)
		goto plain;
	/* (a born entry is taken as the bare entry it stands for: the
	 * paths below are the same for both) */
	oe = td_fdtab_live_or_born(oldfd);
	ne = td_fdtab_live_or_born(newfd);
	if (ne == NULL && oe == NULL)
		goto plain;
	if (!td_init_in_own_process()) {
		/* a vfork()ed child sharing our memory hands the socket on:
		 * from now on another process may hold it */
		if (oe != NULL)
			atomic_fetch_or(&oe->flags, TD_SF_STICKY_SHARED);
		goto plain;
	}
	/*
	 * Only a tracked newfd has a close to run around the real call, and
	 * only then must oldfd be known valid first: with a bad oldfd the
	 * real call fails with EBADF and closes nothing.  (A fork-per-
	 * connection server's child moves its socket onto 0 and 1, numbers
	 * the library does not track: no fcntl() for those.)
	 */
	if (ne != NULL) {
		saved = errno;
		if (td_real_sys_fcntl(oldfd, F_GETFD, 0) < 0) {
			td_errno_set(saved);
			goto plain;
		}
		closing = td_closing_begin(p, &c, newfd);
	}
	rc = three ? td_real_dup3(oldfd, newfd, flags) : td_real_dup2(oldfd, newfd);
	if (closing)
		td_closing_end(p, &c, rc >= 0);
	if (rc >= 0) {
		saved = errno;
		td_decide_copy(oldfd, newfd);
		td_errno_set(saved);
	}
	return rc;
plain:
	return three ? td_real_dup3(oldfd, newfd, flags) : td_real_dup2(oldfd, newfd);
}

TD_CHILD_RUNS
TD_EXPORT int dup2(int oldfd, int newfd)
{
	return td__dup23(oldfd, newfd, 0, false);
}

TD_CHILD_RUNS
TD_EXPORT int dup3(int oldfd, int newfd, int flags)
{
	return td__dup23(oldfd, newfd, flags, true);
}

TD_CHILD_RUNS
TD_EXPORT int dup(int oldfd)
{
	const struct td_policy *p = td_init_active();
	int fd = td_real_dup(oldfd);

	if (p != NULL && fd >= 0)
		td_decide_dup(oldfd, fd);
	return fd;
}
