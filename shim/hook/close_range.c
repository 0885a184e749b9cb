/*
 * teardown: close_range() and closefrom() — used by OpenSSH, systemd and
 * many daemons at start-up.  Tracked sockets in the range get the close
 * path one by one; the library's own descriptors are stepped over (the
 * program never opened them), and the rest goes to the kernel in as few
 * calls as possible.
 */
#include <limits.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

/*
 * Close [first, last] except the library's own fds; 0 or -1 with errno.
 *
 * Each number is closed once: a tracked socket goes through the close
 * path alone, after the untracked numbers below it went to the kernel,
 * and is never part of a later close_range() (which, should another
 * thread have been handed that number meanwhile, would close its fd).
 * td_fdtab_high() is read again at every step: a socket's close may open a
 * descriptor of the library's (a drain's private reference, the
 * worker's) above the highest number seen so far, and the final
 * close_range() must step over it too.
 */
static int td__close_span(const struct td_policy *p, unsigned first,
			  unsigned last, int flags)
{
	unsigned start = first;
	int rc = 0;

	for (unsigned fd = first; fd <= last && fd < TD_FDTAB_MAX && (int)fd <= td_fdtab_high();
	     fd++) {
		struct td_fdent *e = td_fdtab_live((int)fd);
		bool own;

		if (e == NULL) {
			/* a born entry: its born bit goes (before the real
			 * call below), as a bare entry would */
			td_fdtab_unborn((int)fd);
			continue;
		}
		own = (atomic_load(&e->flags) & TD_SF_OWN) != 0;
		if (!own && td_decide_rule(p, &e->d) == NULL) {
			td_fdtab_forget((int)fd);
			continue;
		}
		if (fd > start && td_real_close_range(start, fd - 1, flags) != 0)
			rc = -1;
		start = fd + 1;
		if (!own)
			(void)td_closing_fd(p, (int)fd);
	}
	if (start <= last && start >= first && td_real_close_range(start, last, flags) != 0)
		rc = -1;
	return rc;
}

TD_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	const struct td_policy *p = td_init_active();
	int saved, rc;

	/* CLOEXEC closes nothing now; UNSHARE acts on a copy we cannot see */
	if (p == NULL || first > last ||
	    (flags & (CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) ||
	    (int)first > td_fdtab_high() || !td_init_in_own_process())
		return td_real_close_range(first, last, flags);
	saved = errno;
	rc = td__close_span(p, first, last, flags);
	if (rc == 0)
		td_errno_set(saved);
	return rc;
}

TD_EXPORT void closefrom(int lowfd)
{
	const struct td_policy *p = td_init_active();
	int saved = errno;

	if (p == NULL || lowfd < 0 || lowfd > td_fdtab_high() || !td_init_in_own_process()) {
		td_real_closefrom(lowfd);
		return;
	}
	if (td__close_span(p, (unsigned)lowfd, UINT_MAX, 0) != 0)
		td_real_closefrom(lowfd); /* the kernel refused: libc's fallback */
	td_errno_set(saved);
}
