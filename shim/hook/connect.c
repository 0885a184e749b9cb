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
	int saved, rc, err;

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
	if (!td_decide_connecting(p, fd, sa, len, &plan)) {
		td_errno_set(saved);
		return td_real_connect(fd, sa, len);
	}
	td_errno_set(saved);
	rc = td_real_connect(fd, plan.sa, plan.len);
	err = errno;
	td_decide_after_connect(p, fd, &plan, rc, err);
	td_errno_set(rc == 0 ? saved : err);
	return rc;
}
