/*
 * teardown: what the kernel says about a socket at close time.  All of it
 * comes from getsockopt() and ioctl(), which are async-signal-safe.
 */
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "rt.h"
#include "teardown/predict.h"

bool td_info_is_tcp(int fd, int *family)
{
	int v = 0;
	socklen_t len = sizeof(v);

	if (td_real_sys_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) != 0 ||
	    v != IPPROTO_TCP)
		return false;
	len = sizeof(v);
	if (td_real_sys_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 ||
	    (v != AF_INET && v != AF_INET6))
		return false;
	if (family)
		*family = v;
	return true;
}

/* what td__facts() knows of the reads: their EOF, their count (16 bytes:
 * passed in two registers) */
struct td__reads {
	/* the entry: whether count is every read of the socket, asked only
	 * of a socket already CLOSE (td__fin_before_end()); NULL: none */
	const struct td_sock *s;
	int32_t count;	/* the entry's read16, -1 none (td_fdtab_read_end()) */
	bool eof;	/* read to the peer's EOF: td_info_read_to_end(), or our drain */
	bool fin;	/* the peer's FIN is known to have come in (its byte counted) */
};
_Static_assert(sizeof(struct td__reads) <= 16, "two registers");
#define TD__NO_READS ((struct td__reads){NULL, -1, false, false})

TD_CHILD_RUNS
static int td__facts(int fd, struct td_facts *f, bool want_ino, bool want_linger,
		     struct td__reads rd);

int td_info_facts(int fd, struct td_facts *f, bool want_ino)
{
	return td__facts(fd, f, want_ino, true, TD__NO_READS);
}

int td_info_facts_drained(int fd, struct td_facts *f, bool eof)
{
	return td__facts(fd, f, false, false, (struct td__reads){NULL, -1, eof, false});
}

/*
 * Every read of the socket went through this entry's hooks: no other fd
 * (no dup share) or process (no fork since it came in, never passed on)
 * holds it.
 */
TD_CHILD_RUNS
static bool td__sole_reader(uint32_t flags, uint32_t share, uint32_t epoch)
{
	return !(flags & TD_SF_STICKY_SHARED) && share == 0 && !td_holders_maybe_elsewhere(epoch);
}

/*
 * Nothing can be unread: the program read this socket to its end
 * (TD_SF_EOF_READ), and nothing but the peer's FIN or the socket's end
 * (reset, closed) can have made that read return 0.  TCP returns 0 only
 * with no byte left before the FIN, and no byte comes in after a FIN or
 * once closed; what else returns 0 is ruled out: its reading side was
 * never shut, nor the socket disconnected, through this process
 * (TD_SF_SHUT_RD), and no other fd or process holds it (no dup share, no
 * fork since it came in, never passed on) to shut it behind our back.
 */
TD_CHILD_RUNS
bool td_info_read_to_end(uint32_t flags, uint32_t share, uint32_t epoch)
{
	return (flags & (TD_SF_EOF_READ | TD_SF_SHUT_RD)) == TD_SF_EOF_READ &&
	       td__sole_reader(flags, share, epoch);
}

/*
 * SO_LINGER as the library left it: it set {1,0} for abort and faulted
 * connections, cleared it for graceful and drain, and recorded every
 * SO_LINGER the program set (and what an accepted socket inherited from
 * its listener).  One system call fewer per close.
 */
TD_CHILD_RUNS
int td_info_facts_sock(int fd, struct td_facts *f, const struct td_sock *s,
		       const struct td_rule *r, bool want_ino)
{
	uint32_t flags = atomic_load(&s->flags);
	struct td__reads rd = {s, s->read16, td_info_sock_read_to_end(s),
			       (flags & (TD_SF_PASSIVE | TD_SF_FIN_IN)) != 0};
	int rc;

	if (!(flags & TD_SF_LINGER_KNOWN) || r == NULL)
		return td__facts(fd, f, want_ino, true, rd);
	rc = td__facts(fd, f, want_ino, false, rd);
	if ((flags & TD_SF_FAULT_RST) || r->close == TD_CLOSE_ABORT) {
		f->linger_on = true;
		f->linger_secs = 0;
	} else if (r->close == TD_CLOSE_PASS && (flags & TD_SF_APP_LINGER)) {
		f->linger_on = td_sock_linger_on(s);
		f->linger_secs = td_sock_linger_secs(s);
	}
	return rc;
}

/*
 * Nothing left unread, known without SIOCINQ: the input was read to its
 * EOF (our drain's or the program's), or every byte that came in, the
 * peer's FIN aside, was read through the hooks (fewer than 2^16 bytes, so
 * the count modulo 2^16 is the count; never too high, see
 * td_fdtab_read_end()), or none ever came in (a health check, a refused
 * or reset connect).  A kernel whose TCP_INFO is too short to say is asked.
 */
static bool td__read_all(const struct tcp_info *ti, socklen_t len, struct td__reads rd)
{
	int64_t in;

	if (rd.eof)
		return true;
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti->tcpi_bytes_received))
		return false;
	in = td_payload_in(ti->tcpi_state, (int64_t)ti->tcpi_bytes_received, rd.fin);
	return in == 0 || (in < 65536 && in == rd.count);
}

/*
 * A socket already CLOSE: its end was a reset or a timeout (or both FINs,
 * which rd.fin knows from our shutdown), and Linux keeps no sign of
 * whether the peer's FIN had come before it (a reset sets every shutdown
 * bit).  The byte count does: tcpi_bytes_received counts the FIN as one,
 * and an RST nothing.  Where nothing is left unread and every read of the
 * socket went through this entry's hooks (td__sole_reader()), the count
 * of what was read (fewer than 2^16 bytes: exact) is what came in, less
 * the FIN: one less than the kernel's count, the peer's FIN had come, so
 * the peer closed first and then reset (a TLS server's close_notify, an
 * SMTP server's 421, written after the client's FIN and answered by the
 * client's RST); equal, it had not.  The hooks' count is never too high
 * (td_fdtab_read_end()); too low by exactly one byte (a one-byte read
 * through a call with no hook, splice() or recvmmsg(), and no FIN) it
 * would pass for a FIN.  No system call: SIOCINQ was asked already where
 * the counts differ.
 */
static bool td__fin_before_end(const struct tcp_info *ti, struct td__reads rd, int64_t unread)
{
	int64_t raw = (int64_t)ti->tcpi_bytes_received;

	return ti->tcpi_state == TD_TCP_CLOSE && rd.s != NULL && !rd.fin && rd.count >= 0 &&
	       unread == 0 && raw >= 1 && raw - 1 < 65536 && raw - 1 == rd.count &&
	       td__sole_reader(atomic_load(&rd.s->flags), atomic_load(&rd.s->share),
			       rd.s->d.epoch);
}

/* Counts a system call about to be made after the state was read: true. */
static bool td__call_after(struct td_facts *f)
{
	f->calls_after_state++;
	return true;
}

static int td__facts(int fd, struct td_facts *f, bool want_ino, bool want_linger,
		     struct td__reads rd)
{
	struct tcp_info ti;
	struct linger lg;
	socklen_t len = sizeof(ti);
	int v;

	memset(f, 0, sizeof(*f));
	f->state = -1;
	memset(&ti, 0, sizeof(ti));
	f->look_us = td_clock_now_us();
	if (td_real_sys_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return errno == ENOPROTOOPT || errno == EOPNOTSUPP ? -ENOTSOCK : -errno;
	f->state = ti.tcpi_state;
	/* raw: the peer's FIN counts as a byte (td_payload_in() knows) */
	f->bytes_received = (int64_t)ti.tcpi_bytes_received;
	/* payload only: bytes_acked would count the SYN and FIN too */
	f->bytes_out = (int64_t)(ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans);
	f->notsent = ti.tcpi_notsent_bytes;
	if (ti.tcpi_state == TD_TCP_LISTEN) {
		/* for a listener the kernel reports its accept queue here */
		f->backlog = (int)ti.tcpi_unacked;
	} else {
		bool unread_known = true;

		if (td__read_all(&ti, len, rd))
			f->unread = 0;
		else if (td__call_after(f) && td_real_sys_ioctl(fd, SIOCINQ, &v) == 0)
			f->unread = v;
		else
			unread_known = false;
		/* once closed (reset, refused), nothing is waiting to be sent:
		 * the kernel's counter still holds the SYN and the purged queue.
		 * With no segment in flight (tcpi_unacked counts them), what is
		 * unacknowledged is exactly what was never sent: no ioctl. */
		if (ti.tcpi_state == TD_TCP_CLOSE || ti.tcpi_state == TD_TCP_SYN_SENT) {
			f->unsent = 0;
			f->fin_before_end = unread_known && td__fin_before_end(&ti, rd, f->unread);
		} else if (ti.tcpi_unacked == 0)
			f->unsent = ti.tcpi_notsent_bytes;
		else if (td__call_after(f) && td_real_sys_ioctl(fd, SIOCOUTQ, &v) == 0)
			f->unsent = v;
		/*
		 * Our FIN takes a sequence number: once queued (FIN_WAIT1,
		 * CLOSING, LAST_ACK) it is counted as unacknowledged, and as not
		 * sent while data before it still waits.  It is no byte.
		 */
		if (ti.tcpi_state == TD_TCP_FIN_WAIT1 || ti.tcpi_state == TD_TCP_CLOSING ||
		    ti.tcpi_state == TD_TCP_LAST_ACK) {
			if (f->unsent > 0)
				f->unsent--;
			if (f->notsent > 0)
				f->notsent--;
		}
	}
	len = sizeof(lg);
	/* a listener's close resets its queue whatever its linger says */
	if (want_linger && ti.tcpi_state != TD_TCP_LISTEN &&
	    td__call_after(f) && td_real_sys_getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0) {
		f->linger_on = lg.l_onoff != 0;
		f->linger_secs = lg.l_linger;
	}
	if (want_ino && td__call_after(f))
		f->ino = td_info_ino(fd);
	return 0;
}

uint64_t td_info_ino(int fd)
{
	struct stat st;

	return td_real_sys_fstat(fd, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

TD_CHILD_RUNS
int td_info_state(int fd)
{
	uint8_t st;
	socklen_t len = sizeof(st);

	if (td_real_sys_getsockopt(fd, IPPROTO_TCP, TCP_INFO, &st, &len) != 0)
		return -1;
	return len >= 1 ? st : -1;
}

/*
 * MSG_TRUNC on a TCP socket drops queued bytes without copying them, so
 * no buffer is needed (a signal handler's stack may be small).
 */
int64_t td_info_discard_input(int fd, bool *eof)
{
	int64_t total = 0;

	if (eof != NULL)
		*eof = false;
	for (int i = 0; i < 64; i++) {
		ssize_t n = td_real_recv(fd, NULL, 1 << 30, MSG_TRUNC | MSG_DONTWAIT);

		if (n == 0 && eof != NULL)
			*eof = true;
		if (n <= 0)
			break;
		total += n;
	}
	return total;
}
