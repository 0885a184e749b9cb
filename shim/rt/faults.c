/*
 * teardown: faults that are real TCP.
 *
 * A refused connect is refused by the kernel: the connect is pointed at a
 * loopback port the library holds bound but not listening, so the SYN
 * draws an RST and the program sees ECONNREFUSED through every interface
 * (blocking connect, or poll + SO_ERROR).  A timed-out connect goes to a
 * loopback listener whose accept queue the library keeps full, so the
 * SYN is dropped, and TCP_USER_TIMEOUT makes the kernel give up with
 * ETIMEDOUT.  A mid-stream reset is connect(AF_UNSPEC) on the live
 * socket: the kernel sends an RST and the program's next call fails as
 * after a real reset (ECONNRESET, then EPIPE).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/fault.h"
#include "teardown/predict.h"

TD_CHILD_READ _Atomic int td_faults_bytes_live;
TD_CHILD_READ _Atomic int td_faults_bytes_in_live;

int td_faults_reset_now(int fd, int efd, struct td_fdent *e)
{
	struct td_fdext *x = e != NULL ? td_fdtab_ext(efd) : NULL;
	struct sockaddr sa;
	struct td_facts f;
	int rc, saved;

	/* tcp_disconnect() zeroes TCP_INFO's byte counters: keep them, with
	 * what the reset throws away and whether the peer's FIN came first */
	if (x != NULL && td_info_facts(fd, &f, false) == 0) {
		int64_t lost = f.notsent < f.unsent ? f.notsent : f.unsent;

		x->reset_bytes_in = td_payload_in(f.state, f.bytes_received, false);
		x->reset_bytes_out = f.bytes_out;
		x->reset_lost = lost;
		x->reset_in_flight = f.unsent - lost;
		if (f.state == TD_TCP_CLOSE_WAIT || f.state == TD_TCP_LAST_ACK)
			atomic_fetch_or(&e->flags, TD_SF_PASSIVE);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNSPEC;
	if (e != NULL)
		atomic_fetch_or(&e->flags, TD_SF_RESETTING);
	rc = td_real_connect(fd, &sa, sizeof(sa));
	saved = errno;
	if (rc == 0 && e != NULL)
		atomic_fetch_or(&e->flags, TD_SF_RESET_SENT);
	else if (e != NULL) /* nothing was reset: a read's failure is its own */
		atomic_fetch_and(&e->flags, ~(uint32_t)TD_SF_RESETTING);
	/*
	 * tcp_disconnect() sends the RST but also clears sk_shutdown, so a
	 * read after the pending ECONNRESET would fail with ENOTCONN, where
	 * after a real reset (tcp_done() sets SHUTDOWN_MASK) it returns 0.
	 * Shutting the closed socket down marks both directions shut without
	 * sending anything (the kernel answers ENOTCONN, ignored), so the
	 * program's next calls go exactly as after a peer's RST.  A program
	 * thread can still read between the two calls when this runs in the
	 * worker or a reload; TD_SF_RESETTING, set above, lets its read see
	 * that ENOTCONN and shut the socket itself (td_faults_read_gap()).
	 */
	(void)td_real_shutdown(fd, SHUT_RDWR);
	td_errno_set(saved);
	return rc;
}

/*
 * A read on fd failed with ENOTCONN or EPIPE.  If the library is resetting
 * that socket from another thread, the read was waiting when the reset ran
 * (EPIPE), or fell between the reset and the shut that follows it
 * (ENOTCONN: td_faults_reset_now()).  Neither happens after a real reset.
 * Shut the socket here (sends nothing: it is closed) and say so, so the
 * caller reads again and gets what a real reset gives.  errno is kept.
 */
bool td_faults_read_gap(int fd)
{
	struct td_fdent *e = td_fdtab_live(fd);
	int saved = errno;

	if (e == NULL || !(atomic_load_explicit(&e->flags, memory_order_relaxed) & TD_SF_RESETTING))
		return false;
	(void)td_real_shutdown(fd, SHUT_RDWR);
	td_errno_set(saved);
	return true;
}

struct td_target {
	_Atomic int fd;		/* refuser, or the blackhole listener */
	_Atomic int filler;	/* blackhole: the connection filling the queue */
	struct sockaddr_storage addr;
	socklen_t len;
};

/* [family index][0 refuse, 1 timeout] */
static struct td_target td__targets[2][2] = {
	{{-1, -1, {0}, 0}, {-1, -1, {0}, 0}},
	{{-1, -1, {0}, 0}, {-1, -1, {0}, 0}},
};

static void td__loopback(int family, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*a);
	}
}

/* Still ours? The program may have closed it (closefrom at start-up). */
static bool td__alive(const struct td_target *t)
{
	int fd = atomic_load(&t->fd);

	return fd >= 0 && td_ownfd_is(fd, TD_OWN_FAULT) &&
	       (atomic_load(&t->filler) < 0 || td_ownfd_is(atomic_load(&t->filler), TD_OWN_FILLER));
}

/* Build the refusing port or the black hole for one family. */
static int td__make(struct td_target *t, int family, bool blackhole)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, filler = -1;

	td__loopback(family, &ss, &len);
	fd = td_real_socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (td_real_bind(fd, (struct sockaddr *)&ss, len) != 0 ||
	    td_real_sys_getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    (blackhole && td_real_sys_listen(fd, 0) != 0)) {
		td_real_close(fd);
		return -1;
	}
	if (blackhole) {
		/* one queued connection fills a backlog of 0: later SYNs drop */
		filler = td_real_socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (filler < 0 || td_real_connect(filler, (struct sockaddr *)&ss, len) != 0) {
			if (filler >= 0)
				td_real_close(filler);
			td_real_close(fd);
			return -1;
		}
		filler = td_ownfd_mark(filler, TD_OWN_FILLER);
	}
	fd = td_ownfd_mark(fd, TD_OWN_FAULT);
	t->addr = ss;
	t->len = len;
	atomic_store(&t->filler, filler);
	atomic_store(&t->fd, fd);
	return 0;
}

int td_faults_target(int family, int kind, struct sockaddr_storage *out,
		    socklen_t *len)
{
	int fi = family == AF_INET6 ? 1 : 0;
	int ki = kind == TD_FK_CONNECT_TIMEOUT ? 1 : 0;
	struct td_target *t = &td__targets[fi][ki];
	int saved = errno;

	if (!td__alive(t) && td__make(t, family, ki == 1) != 0) {
		if (family != AF_INET6) {
			td_errno_set(saved);
			return -1;
		}
		/* no IPv6 loopback: an IPv4-mapped address on a dual-stack socket */
		struct td_target *v4 = &td__targets[0][ki];
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
		const struct sockaddr_in *in;

		if (!td__alive(v4) && td__make(v4, AF_INET, ki == 1) != 0) {
			td_errno_set(saved);
			return -1;
		}
		in = (const struct sockaddr_in *)&v4->addr;
		memset(out, 0, sizeof(*out));
		a->sin6_family = AF_INET6;
		a->sin6_port = in->sin_port;
		a->sin6_addr.s6_addr[10] = 0xff;
		a->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&a->sin6_addr.s6_addr[12], &in->sin_addr, 4);
		*len = sizeof(*a);
		td_errno_set(saved);
		return 0;
	}
	*out = t->addr;
	*len = t->len;
	td_errno_set(saved);
	return 0;
}

/*
 * An armed byte limit of fd's connection: the entry, its limit and the
 * count so far; NULL when none is armed (or it fired already).
 */
static struct td_fdent *td__limit(int fd, bool in, uint64_t *limit)
{
	const struct td_policy *p = atomic_load(&td_init_policy);
	struct td_fdent *e = td_fdtab_peek(fd);
	const struct td_rule *r;
	uint32_t flags, armed = in ? TD_SF_BYTES_IN_FAULT : TD_SF_BYTES_FAULT;
	uint32_t done = in ? TD_SF_BYTES_IN_DONE : TD_SF_BYTES_DONE;

	if (e == NULL || !td_tag_live(atomic_load(&e->tag)))
		return NULL;
	flags = atomic_load(&e->flags);
	if (!(flags & armed) || (flags & done) || (r = td_decide_rule(p, &e->d)) == NULL)
		return NULL;
	*limit = in ? r->fault.rst_after_bytes_in
		    : (flags & TD_SF_BYTES_FIN) ? r->fault.fin_after_bytes : r->fault.rst_after_bytes;
	return *limit ? e : NULL;
}

/*
 * The byte count of fd's armed limit, in its extension (mapped when the
 * fault was armed); NULL only when that mapping failed: nothing counts.
 */
static _Atomic uint64_t *td__count(int fd, bool in)
{
	struct td_fdext *x = td_fdtab_ext(fd);

	return x == NULL ? NULL : in ? &x->read_in : &x->written;
}

/* How much of len may move so that the count stops exactly at the limit. */
static size_t td__allow(int fd, bool in, uint64_t limit, size_t len, bool *armed)
{
	_Atomic uint64_t *count = td__count(fd, in);
	uint64_t done = count ? atomic_load(count) : 0;

	*armed = true;
	if (done >= limit)
		return len;
	return len < limit - done ? len : (size_t)(limit - done);
}

size_t td_faults_bytes_allow(int fd, size_t len, bool *armed)
{
	uint64_t limit;

	*armed = false;
	return td__limit(fd, false, &limit) ? td__allow(fd, false, limit, len, armed) : len;
}

size_t td_faults_bytes_in_allow(int fd, size_t len, bool *armed)
{
	uint64_t limit;

	*armed = false;
	return td__limit(fd, true, &limit) ? td__allow(fd, true, limit, len, armed) : len;
}

/*
 * After a write on an armed socket: once the limit is reached, the
 * connection ends.  rst_after_bytes: wait (a bounded second) for the peer
 * to acknowledge those bytes, so that they are delivered and only then
 * cut, and reset it.  fin_after_bytes: a FIN behind them (shutdown), so
 * the peer reads exactly N bytes and then EOF, and the program's later
 * writes fail with EPIPE.
 */
void td_faults_bytes_sent(int fd, ssize_t n)
{
	uint64_t limit, total;
	_Atomic uint64_t *count;
	struct td_fdent *e;
	int saved = errno;

	if (n <= 0 || (e = td__limit(fd, false, &limit)) == NULL ||
	    (count = td__count(fd, false)) == NULL)
		return;
	total = atomic_fetch_add(count, (uint64_t)n) + (uint64_t)n;
	if (total < limit || (atomic_fetch_or(&e->flags, TD_SF_BYTES_DONE) & TD_SF_BYTES_DONE))
		return;
	if (atomic_load(&e->flags) & TD_SF_BYTES_FIN) {
		if (td_real_shutdown(fd, SHUT_WR) == 0)
			atomic_fetch_or(&e->flags, TD_SF_SHUT_WR);
		td_errno_set(saved);
		return;
	}
	for (int i = 0; i < 1000; i++) {
		int outq = 0;

		if (td_real_sys_ioctl(fd, SIOCOUTQ, &outq) != 0 || outq == 0)
			break;
		td_clock_sleep_ms(1);
	}
	(void)td_faults_reset_now(fd, fd, e);
	td_errno_set(saved);
}

/*
 * After a read on a socket armed with rst_after_bytes_in: once the
 * program has read the limit, reset the connection (a server that dies
 * after reading the request).  Its next call fails as after a real reset.
 */
void td_faults_bytes_read(int fd, ssize_t n)
{
	uint64_t limit, total;
	_Atomic uint64_t *count;
	struct td_fdent *e;
	int saved = errno;

	if (n <= 0 || (e = td__limit(fd, true, &limit)) == NULL ||
	    (count = td__count(fd, true)) == NULL)
		return;
	total = atomic_fetch_add(count, (uint64_t)n) + (uint64_t)n;
	if (total < limit ||
	    (atomic_fetch_or(&e->flags, TD_SF_BYTES_IN_DONE) & TD_SF_BYTES_IN_DONE))
		return;
	(void)td_faults_reset_now(fd, fd, e);
	td_errno_set(saved);
}
