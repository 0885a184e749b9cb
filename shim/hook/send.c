/*
 * teardown: write(), writev(), send(), sendto(), sendmsg().
 *
 * Two jobs, both off unless needed: rst_after_bytes (the first
 * rst_after_bytes bytes of an armed connection go out, then it is reset),
 * guarded by one relaxed load that is zero whenever no live connection is
 * armed; and SCM_RIGHTS, which hands a socket to another process: a
 * tracked socket passed that way is shared from then on.
 */
#include <string.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

static inline bool td__armed_any(void)
{
	return atomic_load_explicit(&td_faults_bytes_live, memory_order_relaxed) != 0;
}

TD_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td_real_write(fd, buf, n);
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_write(fd, buf, armed ? allow : n);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return r;
}

TD_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td_real_send(fd, buf, n, flags);
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_send(fd, buf, armed ? allow : n, flags);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return r;
}

TD_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
			 const struct sockaddr *to, socklen_t tl)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td_real_sendto(fd, buf, n, flags, to, tl);
	allow = td_faults_bytes_allow(fd, n, &armed);
	r = td_real_sendto(fd, buf, armed ? allow : n, flags, to, tl);
	if (armed)
		td_faults_bytes_sent(fd, r);
	return r;
}

TD_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct iovec cut[TD_FAULTS_IOV_MAX];
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL || cnt <= 0 ||
	    iov == NULL)
		return td_real_writev(fd, iov, cnt);
	allow = td_faults_bytes_allow(fd, td_faults_iov_total(iov, cnt), &armed);
	if (!armed)
		return td_real_writev(fd, iov, cnt);
	r = td_real_writev(fd, cut, td_faults_iov_cut(cut, iov, cnt, allow));
	td_faults_bytes_sent(fd, r);
	return r;
}

/* Mark tracked sockets passed in SCM_RIGHTS as held elsewhere too. */
static void td__passed_fds(const struct msghdr *m)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
	     c = CMSG_NXTHDR((struct msghdr *)m, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			struct td_fdent *e;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if ((e = td_fdtab_live_or_born(fd)) != NULL)
				atomic_fetch_or(&e->flags, TD_SF_STICKY_SHARED);
		}
	}
}

TD_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct iovec cut[TD_FAULTS_IOV_MAX];
	struct msghdr mc;
	size_t allow;
	bool armed;
	ssize_t r;

	if (m != NULL && m->msg_control != NULL && m->msg_controllen > 0 &&
	    td_init_active() != NULL)
		td__passed_fds(m);
	if (td_likely(!td__armed_any()) || m == NULL || td_init_active() == NULL ||
	    m->msg_iovlen == 0)
		return td_real_sendmsg(fd, m, flags);
	allow = td_faults_bytes_allow(fd, td_faults_iov_total(m->msg_iov, (int)m->msg_iovlen), &armed);
	if (!armed)
		return td_real_sendmsg(fd, m, flags);
	mc = *m;
	mc.msg_iov = cut;
	mc.msg_iovlen = (size_t)td_faults_iov_cut(cut, m->msg_iov, (int)m->msg_iovlen, allow);
	r = td_real_sendmsg(fd, &mc, flags);
	td_faults_bytes_sent(fd, r);
	return r;
}
