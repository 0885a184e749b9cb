/*
 * teardown runtime: descriptors passed in SCM_RIGHTS messages.
 *
 * Sent: the socket now has a holder in another process (or will have,
 * once the message is received), which no fd table of ours counts and
 * /proc cannot name while the descriptor is in flight; so a close with
 * work (drain's shutdown, abort's RST) must not act on it, and the kernel
 * is asked after each close whether it was the last (td_closing_*).
 *
 * Received: connections that came this way (vsftpd's privileged process
 * hands each data connection to its worker; node's cluster primary hands
 * each accepted one to a worker) were never accepted or connected by the
 * receiver, so without this their closes went straight to the kernel and
 * their ends were never logged.  Each TCP socket among them is taken as a
 * handed-over connection (td_decide_inherited()).
 *
 * Who else holds a received one: the sender, at a number of its own.
 * Where the sender (the Unix socket's peer, SO_PEERCRED) is this
 * process's parent its whole fd table is asked at a close with work to
 * decide (TD_SF_FROM_PARENT); from anyone else, the holders are unknown
 * to /proc (TD_SF_STICKY_SHARED: a close with work does none of it, and
 * the kernel is asked after each close whether it was the last).
 */
#include <string.h>
#include <sys/syscall.h>

#include "rt.h"

/* Each descriptor m's SCM_RIGHTS parts carry, in order. */
#define TD__RIGHTS_EACH(m, fdvar, body)                                                   \
	for (struct cmsghdr *c_ = CMSG_FIRSTHDR(m); c_ != NULL;                           \
	     c_ = CMSG_NXTHDR((struct msghdr *)(m), c_)) {                                \
		if (c_->cmsg_level != SOL_SOCKET || c_->cmsg_type != SCM_RIGHTS ||        \
		    c_->cmsg_len < CMSG_LEN(0))                                           \
			continue;                                                         \
		for (size_t i_ = 0; i_ < (c_->cmsg_len - CMSG_LEN(0)) / sizeof(int); i_++) { \
			int fdvar;                                                        \
			memcpy(&fdvar, CMSG_DATA(c_) + i_ * sizeof(int), sizeof(int));   \
			body                                                              \
		}                                                                         \
	}

void td_rights_sent(const struct msghdr *m)
{
	if (td_init_active() == NULL)
		return;
	TD__RIGHTS_EACH(m, fd, {
		struct td_fdent *e = td_fdtab_live_or_born(fd);

		if (e != NULL)
			atomic_fetch_or(&e->flags, TD_SF_STICKY_SHARED);
	})
}

/* The flags a socket received on ufd gets: from the parent, or shared
 * with holders unknown. */
static uint32_t td__sender_flags(int ufd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int pp = atomic_load(&td_init_proc.ppid), none = 0;

	/* an exec()ed image knows no parent yet: the one it has now (node
	 * starts its cluster workers that way) */
	if (pp == 0)
		pp = (int)td_real_sys0(SYS_getppid);
	if (pp > 1 && td_real_sys_getsockopt(ufd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 &&
	    cr.pid == pp) {
		(void)atomic_compare_exchange_strong(&td_init_proc.ppid, &none, pp);
		if (atomic_load(&td_init_proc.ppid) == pp)
			return TD_SF_FROM_PARENT;
	}
	return TD_SF_STICKY_SHARED;
}

void td_rights_received(int ufd, const struct msghdr *m)
{
	const struct td_policy *p = td_init_active();
	int saved = errno, family;
	uint32_t from = 0;

	if (p == NULL || !td_init_in_own_process())
		return;
	TD__RIGHTS_EACH(m, got, {
		if (got < 0 || !td_info_is_tcp(got, &family))
			continue;
		if (from == 0)
			from = td__sender_flags(ufd);
		td_decide_inherited(p, got, family, true, from);
	})
	td_errno_set(saved);
}
