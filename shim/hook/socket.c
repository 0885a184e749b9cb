/* teardown: socket() — start tracking TCP sockets (no extra system call). */
#include <netinet/in.h>

#include "../rt/rt.h"

TD_EXPORT int socket(int domain, int type, int protocol)
{
	const struct td_policy *p;
	int fd, saved;

	/* only an IPv4/IPv6 socket may start the library early */
	p = domain == AF_INET || domain == AF_INET6 ? td_init_active_tcp() : td_init_active();
	fd = td_real_socket(domain, type, protocol);
	if (p == NULL || fd < 0)
		return fd;
	saved = errno;
	if (domain != AF_INET && domain != AF_INET6) {
		/* a stale entry must not follow the number (unless it is a
		 * vfork()ed parent's, see td_fdtab_publish) */
		if (td_fdtab_live(fd) != NULL && td_init_in_own_process())
			td_fdtab_forget(fd);
	} else if ((type & 0xf) == SOCK_STREAM &&
		   (protocol == 0 || protocol == IPPROTO_TCP)) {
		(void)td_decide_new(fd, domain, TD_SOCK_UNKNOWN);
	} else {
		/* UDP, SCTP, MPTCP: remembered as "not ours", so that its
		 * connect() and bind() need no system call to find that out */
		struct td_sock *s = td_decide_new(fd, domain, TD_SOCK_UNKNOWN);

		if (s != NULL)
			atomic_fetch_or(&s->flags, TD_SF_NOT_TCP);
	}
	errno = saved;
	return fd;
}
