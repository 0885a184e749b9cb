/*
 * teardown: accept() and accept4() — a server socket's rule is decided as
 * soon as the connection is accepted, from its peer and local address.
 */
#include <string.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

static int td__real_accept(int lfd, struct sockaddr *a, socklen_t *al, int flags,
			   bool four)
{
	return four ? td_real_accept4(lfd, a, al, flags) : td_real_accept(lfd, a, al);
}

/* A listener created through our socket() is known; others are asked. */
static bool td__tcp_listener(int lfd, int fd)
{
	struct td_fdent *l = td_fdtab_live_or_born(lfd);

	if (l != NULL)
		return !(atomic_load(&l->flags) & (TD_SF_NOT_TCP | TD_SF_OWN));
	return td_info_is_tcp(fd, NULL);
}

/*
 * The program's own address buffer is passed to the kernel unchanged
 * (so EFAULT and truncation behave exactly as without us); the library
 * reads the peer from it, or asks getpeername() when the program passed
 * none or a buffer too small.
 */
static int td__accept(int lfd, struct sockaddr *addr, socklen_t *alen, int flags,
		      bool four)
{
	const struct td_policy *p = td_init_active(), *now;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss), given = 0;
	int fd, saved;

	/* before start-up, only a TCP listener may start the library early */
	if (td_unlikely(p == NULL && !td_init_done()) && td_info_is_tcp(lfd, NULL))
		p = td_init_active_tcp();
	if (p == NULL || (addr != NULL && alen == NULL))
		return td__real_accept(lfd, addr, alen, flags, four);
	if (addr != NULL)
		given = *alen;
	fd = td__real_accept(lfd, addr ? addr : (struct sockaddr *)&ss,
			     addr ? alen : &sl, flags, four);
	if (fd < 0)
		return fd;
	saved = errno;
	/* accept() may have waited long: a policy changed meanwhile decides */
	td_reload_poll();
	if ((now = td_init_active()) != NULL)
		p = now;
	if (addr != NULL) {
		if (*alen <= given && *alen <= sizeof(ss)) {
			memcpy(&ss, addr, *alen);
			sl = *alen;
		} else if (td_real_sys_getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
			sl = 0;
		}
	}
	if (sl >= sizeof(sa_family_t) &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
	    td__tcp_listener(lfd, fd))
		td_decide_accept(p, lfd, fd, (struct sockaddr *)&ss, sl);
	else
		td_fdtab_forget(fd);
	td_errno_set(saved);
	return fd;
}

TD_EXPORT int accept(int lfd, struct sockaddr *addr, socklen_t *alen)
{
	return td__accept(lfd, addr, alen, 0, false);
}

TD_EXPORT int accept4(int lfd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	return td__accept(lfd, addr, alen, flags, true);
}
