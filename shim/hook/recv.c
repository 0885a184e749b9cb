/*
 * teardown: read(), readv(), recv(), recvfrom(), recvmsg() — only for
 * rst_after_bytes_in (reset once the program has read N bytes), and off
 * unless needed: one relaxed load, zero whenever no live connection is
 * armed, and the call goes straight to libc.  An armed read is cut so the
 * count stops exactly at N; the reset follows the read that reached it.
 * A read that only peeks (MSG_PEEK) is not counted.
 */
#include <string.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

#define TD_IOV_MAX 64

static inline bool td__armed_any(void)
{
	return atomic_load_explicit(&td_faults_bytes_in_live, memory_order_relaxed) != 0;
}

TD_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td_real_read(fd, buf, n);
	allow = td_faults_bytes_in_allow(fd, n, &armed);
	r = td_real_read(fd, buf, armed ? allow : n);
	if (armed)
		td_faults_bytes_read(fd, r);
	return r;
}

TD_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || td_init_active() == NULL)
		return td_real_recv(fd, buf, n, flags);
	allow = td_faults_bytes_in_allow(fd, n, &armed);
	r = td_real_recv(fd, buf, armed ? allow : n, flags);
	if (armed)
		td_faults_bytes_read(fd, r);
	return r;
}

TD_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
			   socklen_t *fl)
{
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || td_init_active() == NULL)
		return td_real_recvfrom(fd, buf, n, flags, from, fl);
	allow = td_faults_bytes_in_allow(fd, n, &armed);
	r = td_real_recvfrom(fd, buf, armed ? allow : n, flags, from, fl);
	if (armed)
		td_faults_bytes_read(fd, r);
	return r;
}

/* Copy iov into out, cut to at most limit bytes; returns the count. */
static int td__cut_iov(struct iovec *out, const struct iovec *iov, int cnt, size_t limit)
{
	int k = 0;

	for (int i = 0; i < cnt && k < TD_IOV_MAX && limit > 0; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > limit)
			out[k].iov_len = limit;
		limit -= out[k].iov_len;
		k++;
	}
	return k;
}

static size_t td__iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;

	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

TD_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	struct iovec cut[TD_IOV_MAX];
	size_t allow;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL || cnt <= 0 || iov == NULL)
		return td_real_readv(fd, iov, cnt);
	allow = td_faults_bytes_in_allow(fd, td__iov_total(iov, cnt), &armed);
	if (!armed)
		return td_real_readv(fd, iov, cnt);
	r = td_real_readv(fd, cut, td__cut_iov(cut, iov, cnt, allow));
	td_faults_bytes_read(fd, r);
	return r;
}

TD_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct iovec cut[TD_IOV_MAX], *orig;
	size_t allow, olen;
	bool armed;
	ssize_t r;

	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || m == NULL ||
	    m->msg_iovlen == 0 || td_init_active() == NULL)
		return td_real_recvmsg(fd, m, flags);
	allow = td_faults_bytes_in_allow(fd, td__iov_total(m->msg_iov, (int)m->msg_iovlen), &armed);
	if (!armed)
		return td_real_recvmsg(fd, m, flags);
	/* the program's msghdr, with a cut iovec for the call (its own is
	 * put back, the kernel's other outputs are kept) */
	orig = m->msg_iov;
	olen = m->msg_iovlen;
	m->msg_iov = cut;
	m->msg_iovlen = (size_t)td__cut_iov(cut, orig, (int)olen, allow);
	r = td_real_recvmsg(fd, m, flags);
	m->msg_iov = orig;
	m->msg_iovlen = olen;
	td_faults_bytes_read(fd, r);
	return r;
}
