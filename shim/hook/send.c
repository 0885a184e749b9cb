/*
 * teardown: write(), writev(), send(), sendto(), sendmsg(), sendmmsg().
 *
 * Three jobs, all off unless needed: rst_after_bytes (the first
 * rst_after_bytes bytes of an armed connection go out, then it is reset),
 * guarded by one relaxed load that is zero whenever no live connection is
 * armed; SCM_RIGHTS, which hands a socket to another process: a tracked
 * socket passed that way is shared from then on; and MSG_FASTOPEN to an
 * address, TCP Fast Open's connect.
 */
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "../rt/rt.h"

static inline bool td__armed_any(void)
{
	return atomic_load_explicit(&td_faults_bytes_live, memory_order_relaxed) != 0;
}

/*
 * A write that failed with ETIMEDOUT took the kernel's pending error
 * with it: the connection timed out, which its close could then no
 * longer tell from a reset (td_fdtab_mark_timed_out()).  A compare on the
 * result; a table lookup only on that failure.  errno untouched.  Every
 * write path ends in it, a byte budget's (rst_after_bytes) included.
 */
static inline ssize_t td__wrote(int fd, ssize_t r)
{
	if (td_unlikely(r < 0) && errno == ETIMEDOUT)
		td_fdtab_mark_timed_out(fd);
	return r;
}

TD_CHILD_RUNS
TD_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td__wrote(fd, td_real_write(fd, buf, n));
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_write(fd, buf, armed ? allow : n);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return td__wrote(fd, r);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td__wrote(fd, td_real_send(fd, buf, n, flags));
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_send(fd, buf, armed ? allow : n, flags);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return td__wrote(fd, r);
}

/* TCP Fast Open's connect, a send with MSG_FASTOPEN to an address. */
static inline bool td__fastopen(int flags, const struct sockaddr *to, socklen_t tl)
{
	return td_unlikely(flags & MSG_FASTOPEN) && to != NULL &&
	       tl >= (socklen_t)sizeof(sa_family_t) &&
	       (to->sa_family == AF_INET || to->sa_family == AF_INET6);
}

/*
 * A send that connects (MSG_FASTOPEN): decided as connect() is, its
 * rule's options in the socket before the SYN, a connect fault or delay
 * applied, the connect event written after (its outcome: the send's).
 * The data goes out with the SYN, or after the handshake.  No byte
 * budget can be armed yet: the socket had no rule.
 */
__attribute__((noinline, cold)) static ssize_t td__fastopen_send(int fd, const void *buf, size_t n,
								 int flags, const struct msghdr *m,
								 const struct sockaddr *to,
								 socklen_t tl)
{
	const struct td_policy *p = td_init_active_tcp();
	struct td_connect_plan plan;
	struct msghdr mc;
	int saved = errno, err;
	ssize_t r;

	if (p == NULL || !td_decide_connecting(p, fd, to, tl, &plan)) {
		td_errno_set(saved);
		return m != NULL ? td_real_sendmsg(fd, m, flags) : td_real_sendto(fd, buf, n, flags, to, tl);
	}
	td_errno_set(saved);
	if (m != NULL) {
		mc = *m;
		mc.msg_name = (void *)plan.sa;
		mc.msg_namelen = plan.len;
		r = td_real_sendmsg(fd, &mc, flags);
	} else {
		r = td_real_sendto(fd, buf, n, flags, plan.sa, plan.len);
	}
	err = errno;
	td_decide_after_connect(p, fd, &plan, r >= 0 ? 0 : -1, err);
	td_errno_set(r >= 0 ? saved : err);
	return r;
}

TD_CHILD_RUNS
TD_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *to, socklen_t tl)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td__fastopen(flags, to, tl))
		return td__fastopen_send(fd, buf, n, flags, NULL, to, tl);
	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td__wrote(fd, td_real_sendto(fd, buf, n, flags, to, tl));
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_sendto(fd, buf, armed ? allow : n, flags, to, tl);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return td__wrote(fd, r);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct iovec cut[TD_FAULTS_IOV_MAX];
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL || cnt <= 0 ||
	    iov == NULL)
		return td__wrote(fd, td_real_writev(fd, iov, cnt));
	allow = td_faults_bytes_allow(fd, td_faults_iov_total(iov, cnt), &armed);
	if (!armed)
		return td__wrote(fd, td_real_writev(fd, iov, cnt));
	r = td_real_writev(fd, cut, td_faults_iov_cut(cut, iov, cnt, allow));
	td_faults_bytes_sent(fd, r);
	return td__wrote(fd, r);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct iovec cut[TD_FAULTS_IOV_MAX];
	struct msghdr mc;
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_unlikely(td_rights_maybe(m)))
		td_rights_sent(m);
	if (m != NULL && td__fastopen(flags, m->msg_name, m->msg_namelen))
		return td__fastopen_send(fd, NULL, 0, flags, m, m->msg_name, m->msg_namelen);
	if (td_likely(!td__armed_any()) || m == NULL || td_init_active() == NULL ||
	    m->msg_iovlen == 0)
		return td__wrote(fd, td_real_sendmsg(fd, m, flags));
	allow = td_faults_bytes_allow(fd, td_faults_iov_total(m->msg_iov, (int)m->msg_iovlen), &armed);
	if (!armed)
		return td__wrote(fd, td_real_sendmsg(fd, m, flags));
	mc = *m;
	mc.msg_iov = cut;
	mc.msg_iovlen = (size_t)td_faults_iov_cut(cut, m->msg_iov, (int)m->msg_iovlen, allow);
	r = td_real_sendmsg(fd, &mc, flags);
	td_faults_bytes_sent(fd, r);
	return td__wrote(fd, r);
}

/*
 * sendmmsg(): the descriptors its messages carry, as sendmsg() (see
 * shim/rt/rights.c), marked before the call, and a timeout, as every
 * write.  No byte budget (rst_after_bytes) counts or cuts it, and
 * MSG_FASTOPEN here is not taken for a connect.  At most UIO_MAXIOV
 * messages are looked at, as the kernel sends at most that many.
 */
TD_EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	unsigned int k = n < UIO_MAXIOV ? n : UIO_MAXIOV;

	for (unsigned int i = 0; v != NULL && i < k; i++)
		if (td_unlikely(td_rights_maybe(&v[i].msg_hdr)))
			td_rights_sent(&v[i].msg_hdr);
	return (int)td__wrote(fd, td_real_sendmmsg(fd, v, n, flags));
}
