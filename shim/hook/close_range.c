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

/* Close [first, last] except the library's own fds; 0 or -1 with errno. */
static int td__close_span(const struct td_policy *p, unsigned first,
			  unsigned last, int flags)
{
	unsigned high = (unsigned)td_fd_high(), start = first;
	int rc = 0;

	for (unsigned fd = first; fd <= last && fd <= high && fd < TD_FD_MAX; fd++) {
		struct td_sock *e = td_fd_live((int)fd);

		if (e == NULL)
			continue;
		if (atomic_load(&e->flags) & TD_SF_OWN) {
			if (fd > start && td_real_close_range(start, fd - 1, flags) != 0)
				rc = -1;
			start = fd + 1;
			continue;
		}
		if (td_sock_rule(p, e) != NULL)
			(void)td_close_fd(p, (int)fd, TD_PATH_CLOSE_RANGE);
		else
			td_fd_forget((int)fd);
	}
	if (start <= last && start >= first && td_real_close_range(start, last, flags) != 0)
		rc = -1;
	return rc;
}

TD_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	const struct td_policy *p = td_active();
	int saved, rc;

	/* CLOEXEC closes nothing now; UNSHARE acts on a copy we cannot see */
	if (p == NULL || first > last ||
	    (flags & (CLOSE_RANGE_CLOEXEC | CLOSE_RANGE_UNSHARE)) ||
	    (int)first > td_fd_high() || !td_in_own_process())
		return td_real_close_range(first, last, flags);
	saved = errno;
	rc = td__close_span(p, first, last, flags);
	if (rc == 0)
		errno = saved;
	return rc;
}

TD_EXPORT void closefrom(int lowfd)
{
	const struct td_policy *p = td_active();
	int saved = errno;

	if (td_unlikely(td_real.closefrom == NULL))
		td_real_bind();
	if (p == NULL || lowfd < 0 || lowfd > td_fd_high() || !td_in_own_process()) {
		if (td_real.closefrom)
			td_real.closefrom(lowfd);
		else
			(void)td_real_close_range((unsigned)lowfd, UINT_MAX, 0);
		return;
	}
	if (td__close_span(p, (unsigned)lowfd, UINT_MAX, 0) != 0 && td_real.closefrom)
		td_real.closefrom(lowfd); /* the kernel refused: libc's fallback */
	errno = saved;
}
