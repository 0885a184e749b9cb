/*
 * teardown: bind() — SO_REUSEADDR must be on before bind(), and on Linux
 * on the old listener as well as the new one, so a matching rule sets it
 * on every bind, first instance included.
 */
#include <sys/syscall.h>

#include "../rt/rt.h"

TD_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	const struct td_policy *p;
	struct td_fdent *s;
	int saved, family, rc;

	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (p = td_init_active_tcp()) == NULL)
		return td_real_bind(fd, sa, len);
	saved = errno;
	s = td_fdtab_live_or_born(fd);
	if (s == NULL && td_info_is_tcp(fd, &family))
		s = td_decide_adopt(fd, family);
	if (s == NULL || s->d.decided ||
	    (atomic_load(&s->flags) & (TD_SF_OWN | TD_SF_NOT_TCP))) {
		td_errno_set(saved);
		return td_real_bind(fd, sa, len);
	}
	td_decide_bind(p, fd, sa, len);
	td_errno_set(saved);
	rc = td_real_bind(fd, sa, len);
	if (rc == 0) {
		td_decide_after_bind(p, fd);
		td_errno_set(saved);
	}
	return rc;
}
