/*
 * teardown: read(), readv(), recv(), recvfrom(), recvmsg(), recvmmsg() — for
 * rst_after_bytes_in (reset once the program has read N bytes), and off
 * unless needed: one relaxed load, zero whenever no live connection is
 * armed, and the call goes straight to libc.  An armed read is cut so the
 * count stops exactly at N; the reset follows the read that reached it.
 * A read that only peeks (MSG_PEEK) is not counted.
 *
 * Every read also hides two marks of an injected reset made by another
 * thread (rst_after_ms, reset_open) that a real reset never leaves:
 *   - a thread blocked in the read when the reset runs wakes with EPIPE
 *     (Linux 6.6 and later: the wait saw sk_disconnects change), where a
 *     real reset wakes it with ECONNRESET;
 *   - the RST and the shut that follows are two system calls, and a read
 *     between them fails with ENOTCONN where it would return 0.
 * TD_READ() sees either failure (compares on a path already failing);
 * td_faults_read_gap() checks the socket is being reset by us, finishes
 * the shut, and the read is made again: the pending ECONNRESET, or 0.
 * It also sees ETIMEDOUT, which takes the kernel's pending error with it
 * (the close could no longer tell a timeout from a reset):
 * td_fdtab_mark_timed_out().
 *
 * And a read that returns 0 where bytes were asked marks a tracked TCP
 * socket as read to its end (td_fdtab_mark_eof(): nothing is left unread
 * there once the peer's FIN is in, so its close asks no SIOCINQ); a
 * compare on the result, and a table lookup only for a 0.  Every other
 * read is counted in the socket's entry (td_fdtab_read_end(): a close
 * whose socket's every byte was read asks no SIOCINQ either): a table
 * lookup before the call and an add after, none of it for a peek.
 */
#include <string.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

#define TD_READ(fd, call)                                                          \
	({                                                                         \
		ssize_t r_ = (call);                                               \
		if (td_unlikely(r_ < 0) && (errno == ENOTCONN || errno == EPIPE) &&      \
		    td_faults_read_gap(fd))                                         \
			r_ = (call);                                               \
		if (td_unlikely(r_ < 0) && errno == ETIMEDOUT)                     \
			td_fdtab_mark_timed_out(fd);                               \
		r_;                                                                \
	})

/* call, counted in fd's entry unless counts is false (see above) */
#define TD_COUNTED(fd, counts, call)                                               \
	({                                                                         \
		struct td_fdent *e_ = NULL;                                        \
		uint32_t t_ = (counts) ? td_fdtab_read_begin(fd, &e_) : 0;         \
		ssize_t n_ = (call);                                               \
		td_fdtab_read_end(e_, t_, n_);                                     \
		n_;                                                                \
	})

/* what a recv*() with flags takes out of the socket (not a peek, not the
 * error queue) */
static inline bool td__consumes(int flags)
{
	return !(flags & (MSG_PEEK | MSG_ERRQUEUE));
}

static inline bool td__armed_any(void)
{
	return atomic_load_explicit(&td_faults_bytes_in_live, memory_order_relaxed) != 0;
}

/* A read of want bytes returned r (see above). */
static inline ssize_t td__eof(int fd, ssize_t r, size_t want)
{
	if (td_unlikely(r == 0) && want > 0)
		td_fdtab_mark_eof(fd);
	return r;
}

/*
 * The armed halves (a live connection with a byte budget: fault
 * injection) are functions of their own outside the window a forked
 * child runs in (include/teardown/layout.h): a child of a server with no
 * such fault never runs them, and the window keeps room for what it
 * does run.
 */
#define TD__COLD __attribute__((noinline, cold))

TD__COLD static ssize_t td__read_armed(int fd, void *buf, size_t n)
{
	bool armed;
	size_t allow = td_faults_bytes_in_allow(fd, n, &armed);
	ssize_t r = TD_COUNTED(fd, true, TD_READ(fd, td_real_read(fd, buf, armed ? allow : n)));

	if (armed)
		td_faults_bytes_read(fd, r);
	return td__eof(fd, r, armed ? allow : n);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	if (td_likely(!td__armed_any()) || td_init_active() == NULL)
		return td__eof(fd, TD_COUNTED(fd, true, TD_READ(fd, td_real_read(fd, buf, n))), n);
	return td__read_armed(fd, buf, n);
}

TD__COLD static ssize_t td__recv_armed(int fd, void *buf, size_t n, int flags)
{
	bool armed;
	size_t allow = td_faults_bytes_in_allow(fd, n, &armed);
	ssize_t r = TD_COUNTED(fd, td__consumes(flags),
			       TD_READ(fd, td_real_recv(fd, buf, armed ? allow : n, flags)));

	if (armed)
		td_faults_bytes_read(fd, r);
	return td__eof(fd, r, armed ? allow : n);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || td_init_active() == NULL)
		return td__eof(fd, TD_COUNTED(fd, td__consumes(flags),
					      TD_READ(fd, td_real_recv(fd, buf, n, flags))), n);
	return td__recv_armed(fd, buf, n, flags);
}

TD__COLD static ssize_t td__recvfrom_armed(int fd, void *buf, size_t n, int flags,
					   struct sockaddr *from, socklen_t *fl)
{
	bool armed;
	size_t allow = td_faults_bytes_in_allow(fd, n, &armed);
	ssize_t r = TD_COUNTED(fd, td__consumes(flags),
			       TD_READ(fd, td_real_recvfrom(fd, buf, armed ? allow : n, flags,
							    from, fl)));

	if (armed)
		td_faults_bytes_read(fd, r);
	return td__eof(fd, r, armed ? allow : n);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
			   socklen_t *fl)
{
	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || td_init_active() == NULL)
		return td__eof(fd, TD_COUNTED(fd, td__consumes(flags),
					      TD_READ(fd, td_real_recvfrom(fd, buf, n, flags, from,
									  fl))), n);
	return td__recvfrom_armed(fd, buf, n, flags, from, fl);
}

TD__COLD static ssize_t td__readv_armed(int fd, const struct iovec *iov, int cnt)
{
	struct iovec cut[TD_FAULTS_IOV_MAX];
	size_t allow, total = td_faults_iov_total(iov, cnt);
	bool armed;
	ssize_t r;

	allow = td_faults_bytes_in_allow(fd, total, &armed);
	if (!armed)
		return td__eof(fd, TD_COUNTED(fd, true, TD_READ(fd, td_real_readv(fd, iov, cnt))),
			       total);
	r = TD_COUNTED(fd, true,
		       TD_READ(fd, td_real_readv(fd, cut, td_faults_iov_cut(cut, iov, cnt, allow))));
	td_faults_bytes_read(fd, r);
	return td__eof(fd, r, allow);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	ssize_t r;

	if (td_likely(!td__armed_any()) || td_init_active() == NULL || cnt <= 0 || iov == NULL) {
		r = TD_COUNTED(fd, true, TD_READ(fd, td_real_readv(fd, iov, cnt)));
		/* the iovec is the program's and may be bad: only summed once
		 * the kernel has read it (a 0, so cnt iovecs at iov) */
		return td_unlikely(r == 0) ? td__eof(fd, r, td_faults_iov_total(iov, cnt)) : r;
	}
	return td__readv_armed(fd, iov, cnt);
}

TD__COLD static ssize_t td__recvmsg_armed(int fd, struct msghdr *m, int flags)
{
	struct iovec cut[TD_FAULTS_IOV_MAX], *orig;
	size_t allow, olen, total = td_faults_iov_total(m->msg_iov, (int)m->msg_iovlen);
	bool armed;
	ssize_t r;

	allow = td_faults_bytes_in_allow(fd, total, &armed);
	if (!armed) {
		r = TD_COUNTED(fd, td__consumes(flags), TD_READ(fd, td_real_recvmsg(fd, m, flags)));
		if (td_unlikely(r >= 0 && td_rights_maybe(m)))
			td_rights_received(fd, m);
		return td__eof(fd, r, total);
	}
	/* the program's msghdr, with a cut iovec for the call (its own is
	 * put back, the kernel's other outputs are kept) */
	orig = m->msg_iov;
	olen = m->msg_iovlen;
	m->msg_iov = cut;
	m->msg_iovlen = (size_t)td_faults_iov_cut(cut, orig, (int)olen, allow);
	r = TD_COUNTED(fd, td__consumes(flags), TD_READ(fd, td_real_recvmsg(fd, m, flags)));
	m->msg_iov = orig;
	m->msg_iovlen = olen;
	if (td_unlikely(r >= 0 && td_rights_maybe(m)))
		td_rights_received(fd, m);
	td_faults_bytes_read(fd, r);
	return td__eof(fd, r, allow);
}

TD_CHILD_RUNS
TD_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	ssize_t r;

	if (td_likely(!td__armed_any()) || (flags & MSG_PEEK) || m == NULL ||
	    m->msg_iovlen == 0 || td_init_active() == NULL) {
		r = TD_COUNTED(fd, td__consumes(flags), TD_READ(fd, td_real_recvmsg(fd, m, flags)));
		if (td_unlikely(r >= 0 && td_rights_maybe(m)))
			td_rights_received(fd, m);
		/* as readv() above: a 0 means the kernel read m and its iovecs */
		return td_unlikely(r == 0) ? td__eof(fd, r, td_faults_iov_total(m->msg_iov,
									       (int)m->msg_iovlen))
					   : r;
	}
	return td__recvmsg_armed(fd, m, flags);
}

/*
 * recvmmsg(): for the descriptors its messages bring, as recvmsg() (see
 * shim/rt/rights.c), and an injected reset's marks and a timeout, as
 * every read (TD_READ).  Its bytes are not counted
 * (td_fdtab_read_end()): a count too low only costs the close a SIOCINQ,
 * it never hides unread input; and no byte budget (rst_after_bytes_in)
 * cuts it.
 */
TD_EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags,
		       struct timespec *t)
{
	int r = (int)TD_READ(fd, td_real_recvmmsg(fd, v, n, flags, t));

	for (int i = 0; i < r; i++)
		if (td_unlikely(td_rights_maybe(&v[i].msg_hdr)))
			td_rights_received(fd, &v[i].msg_hdr);
	return r;
}
