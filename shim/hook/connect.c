/*
 * teardown: connect() — a client socket's rule is decided here, before
 * the real call, so that SO_LINGER, SO_REUSEADDR and TCP_LINGER2 are in
 * the socket however it later ends, and connect faults (refuse, time out,
 * delay) happen in the kernel for real.
 */
#include <string.h>

#include "../rt/rt.h"

TD_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	const struct td_policy *p;
	struct td_connect_plan plan;
	struct td_fdent *s;
	int saved, rc, err, family;

	/* a disconnect (the socket may connect again): a read's 0 from before
	 * it says nothing of a later connection (td_fdtab_mark_eof()) */
	if (td_unlikely(sa != NULL && len >= (socklen_t)sizeof(sa_family_t) &&
			sa->sa_family == AF_UNSPEC))
		td_fdtab_mark_shut_rd(fd);
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (p = td_init_active_tcp()) == NULL)
		return td_real_connect(fd, sa, len);
	saved = errno;
	td_reload_poll();
	s = td_fdtab_live_or_born(fd);
	if (s == NULL) {
		/* created before us, inherited, or by a path we do not see */
		if (!td_info_is_tcp(fd, &family) || (s = td_decide_adopt(fd, family)) == NULL) {
			td_errno_set(saved);
			return td_real_connect(fd, sa, len);
		}
	}
	if (s->d.decided || (atomic_load(&s->flags) & (TD_SF_OWN | TD_SF_NOT_TCP))) {
		/* a repeated connect (EALREADY/EISCONN polling): decided already */
		td_errno_set(saved);
		return td_real_connect(fd, sa, len);
	}
	memset(&plan, 0, sizeof(plan));
	if (td_decide_connect(p, fd, sa, len, &plan) < 0) {
		/* no rule: forget it, so its close costs nothing */
		td_fdtab_forget(fd);
		td_errno_set(saved);
		return td_real_connect(fd, sa, len);
	}
	if (plan.delay_ms)
		td_clock_sleep_ms(plan.delay_ms);
	td_errno_set(saved);
	rc = td_real_connect(fd, plan.sa, plan.len);
	err = errno;
	td_decide_after_connect(p, fd, &plan, rc, err);
	td_errno_set(rc == 0 ? saved : err);
	return rc;
}
