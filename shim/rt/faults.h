/*
 * teardown runtime: faults at run time (faults.c).
 */
#ifndef TD_RT_FAULTS_H
#define TD_RT_FAULTS_H

#include "fdtab.h"

/* Send an RST now, through fd, on a connection the program still holds
 * at efd (its entry e, and efd's extension: where to keep the byte counts
 * the reset wipes; e may be NULL).  fd is efd, or the worker's dup of it. */
int td_faults_reset_now(int fd, int efd, struct td_fdent *e) TD_HIDDEN;
/* A read on fd failed with ENOTCONN or EPIPE: true when that came from
 * another thread's reset, now finished here, so the read is to be made
 * again. */
bool td_faults_read_gap(int fd) TD_HIDDEN;
/* A loopback address that refuses (refuse) or never answers (timeout). */
int td_faults_target(int family, int kind, struct sockaddr_storage *out,
		    socklen_t *len) TD_HIDDEN;
/* The send-side hook for rst_after_bytes and fin_after_bytes: how much of
 * len may go; then what went. */
size_t td_faults_bytes_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_sent(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_live TD_HIDDEN;
/* The same on the read side, for rst_after_bytes_in. */
size_t td_faults_bytes_in_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_read(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_in_live TD_HIDDEN;

/* The most iovec entries a cut read or write passes on. */
#define TD_FAULTS_IOV_MAX 64

/* Copy iov into out (TD_FAULTS_IOV_MAX entries), cut to at most limit
 * bytes; returns the count: an armed readv/writev/recvmsg/sendmsg makes
 * its real call with the cut copy, so the byte budget ends exactly. */
static inline int td_faults_iov_cut(struct iovec *out, const struct iovec *iov, int cnt,
				    size_t limit)
{
	int k = 0;

	for (int i = 0; i < cnt && k < TD_FAULTS_IOV_MAX && limit > 0; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > limit)
			out[k].iov_len = limit;
		limit -= out[k].iov_len;
		k++;
	}
	return k;
}

static inline size_t td_faults_iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;

	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

#endif
