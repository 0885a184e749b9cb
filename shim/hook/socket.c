/* teardown: socket() — start tracking TCP sockets (no extra system call):
 * a TCP socket's entry is born, and published at its first use. */
#include <netinet/in.h>

#include "../rt/rt.h"

static inline bool td__inet(int domain)
{
	return domain == AF_INET || domain == AF_INET6;
}

static inline bool td__tcp(int domain, int type, int protocol)
{
	return td__inet(domain) && (type & 0xf) == SOCK_STREAM &&
	       (protocol == 0 || protocol == IPPROTO_TCP);
}

/*
 * Every socket but an IPv4/IPv6 TCP one, out of line so that the TCP path
 * below keeps almost nothing in registers across the real call.
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
		/* a stale entry, live or born, must not follow the number
		 * (unless it is a vfork()ed parent's, see td_fdtab_publish);
		 * td_fdtab_forget() drops either */
		if (td_init_in_own_process())
			td_fdtab_forget(fd);
	} else {
		/* UDP, SCTP, MPTCP: remembered as "not ours", so that its
		 * connect() and bind() need no system call to find that out */
		(void)td_decide_new(fd, domain, TD_SF_BARE | TD_SF_NOT_TCP);
	}
	td_errno_set(saved);
	return fd;
}

/*
 * td_real_socket() before the real socket() is bound, which is before
 * start-up (the entry's fallback, calls.h): an IPv4/IPv6 TCP socket
 * starts the library first, as td_init_active_tcp() says, so that the
 * socket another library's constructor makes gets the policy and the
 * real call goes through the objects after ours; anything else, or a
 * start that did not bind the symbol (another thread is starting, a
 * thread inside the library's own work), is the raw system call.
 */
int td_socket_unbound(int domain, int type, int protocol)
{
	if (td__tcp(domain, type, protocol) && td_init_active_tcp() != NULL &&
	    td_real_bound(socket))
		return td_real.socket(domain, type, protocol);
	return (int)td_real_sys3(SYS_socket, domain, type, protocol);
}

/*
 * The common case, an IPv4/IPv6 TCP socket: the real call and its born
 * entry, two stores (td_decide_born()); no system call, errno untouched
 * (the birth's slow path keeps it).  No test before the call: the
 * birth's gate stays shut until the library acts (td_fdtab_born_below),
 * so every socket before start-up, without a policy, in a thread inside
 * the library's own work, or failed, takes the slow path after the call,
 * which asks td_init_active(); and before start-up the real call is the
 * fallback above, which starts the library first.  Only domain lives
 * across the real call, and the birth ends in a tail call: one register
 * saved, no frame.
 */
TD_EXPORT int socket(int domain, int type, int protocol)
{
	if (td_unlikely(!td__tcp(domain, type, protocol)))
		return td__socket_other(domain, type, protocol);
	return td_decide_born(td_real_socket(domain, type, protocol), domain);
}
