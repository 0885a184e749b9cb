/* teardown: socket() — start tracking TCP sockets (no extra system call). */
#include <netinet/in.h>

#include "../rt/rt.h"

static inline bool td__inet(int domain)
{
	return domain == AF_INET || domain == AF_INET6;
}

/*
 * Every socket but IPv4/IPv6 TCP, out of line so that the TCP path below
 * keeps almost nothing in registers across the real call.
 */
__attribute__((noinline, cold)) static int td__socket_other(int domain, int type, int protocol)
{
	bool inet = td__inet(domain);
	const struct td_policy *p;
	int fd, saved;

	/* only an IPv4/IPv6 socket may start the library early */
	p = inet ? td_init_active_tcp() : td_init_active();
	fd = td_real_socket(domain, type, protocol);
	if (p == NULL || fd < 0)
		return fd;
	saved = errno;
	if (!inet) {
		/* a stale entry must not follow the number (unless it is a
		 * vfork()ed parent's, see td_fdtab_publish) */
		if (td_fdtab_live(fd) != NULL && td_init_in_own_process())
			td_fdtab_forget(fd);
	} else {
		/* UDP, SCTP, MPTCP: remembered as "not ours", so that its
		 * connect() and bind() need no system call to find that out */
		struct td_fdent *s = td_decide_new(fd, domain);

		if (s != NULL)
			atomic_fetch_or(&s->flags, TD_SF_NOT_TCP);
	}
	td_errno_set(saved);
	return fd;
}

/*
 * The common case, a TCP socket: the real call and an entry published in
 * a few plain stores; no system call, errno untouched (the publish's slow
 * path keeps it).
 */
TD_EXPORT int socket(int domain, int type, int protocol)
{
	const struct td_policy *p;
	int fd;

	if (td_unlikely(!td__inet(domain) || (type & 0xf) != SOCK_STREAM ||
			(protocol != 0 && protocol != IPPROTO_TCP)))
		return td__socket_other(domain, type, protocol);
	p = td_init_active_tcp();
	fd = td_real_socket(domain, type, protocol);
	if (td_likely(p != NULL && fd >= 0))
		(void)td_decide_new(fd, domain);
	return fd;
}
