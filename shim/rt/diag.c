/*
 * teardown: asking the kernel about a connection after the fact.
 *
 * Who sent the first FIN decides who holds TIME_WAIT, and the peer's FIN
 * can land between the moment the library reads the state and the moment
 * the program's close() or shutdown() runs.  Afterwards the kernel still
 * knows: a sock_diag lookup of the 4-tuple finds the connection in
 * FIN_WAIT1/FIN_WAIT2/CLOSING/TIME_WAIT (our FIN came first), in
 * LAST_ACK (the peer's did), or nowhere (the peer's FIN came first and
 * our FIN is already acknowledged).  One netlink round trip, unprivileged,
 * async-signal-safe system calls only.
 */
#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "rt.h"
#include "teardown/predict.h"

/*
 * A few netlink sockets kept for these lookups, checked out and back with
 * atomic exchanges (no lock: close() may run in a signal handler).  A
 * thread that finds none free opens one for itself.
 *
 * Each slot holds the fd and the pid of the process that opened it (0:
 * empty).  A forked child inherits the descriptors, and one socket shared
 * with its parent would hand each the other's answers: their sequence
 * numbers are the same after the fork, so nothing tells the answers
 * apart.  A child that takes its parent's socket from the pool closes its
 * own copy of it (the parent's stays open) and looks further.
 */
#define TD_NL_POOL 8
/* (on the page a forked child writes anyway: a child's first lookup
 * writes the pool and the sequence number below, which on a page of their
 * own cost it one more page fault; each on a cache line of its own there,
 * off the connection counter's, which every thread's every open moves) */
TD_CHILD_WRITTEN_LINE static _Atomic uint64_t td__nl_pool[TD_NL_POOL];

TD_CHILD_RUNS
static uint64_t td__nl_slot(int fd)
{
	return (uint64_t)(uint32_t)atomic_load(&td_init_proc.pid) << 32 | (uint32_t)(fd + 1);
}

/*
 * The pid of the process that made its first lookup (its socket was not
 * kept).  A forked child of a fork-per-connection server asks at most
 * once or twice in its life: a socket moved up to the library's numbers
 * and marked in the fd table (td_ownfd_mark(): an fstat() before and
 * after, a dup and a close) would cost it four system calls and two
 * copied pages (the table's high page and its watermark), to be thrown
 * away at its exit.  So a process's first lookup opens a socket, uses it
 * and closes it, at the low number the kernel gave (held no longer than
 * the two calls of the lookup, as the mark's dup would hold it); from
 * the second on, one is kept in the pool.  The parent's pooled sockets
 * the child inherited are left alone until then (close-on-exec).
 */
TD_CHILD_WRITTEN_LINE static _Atomic int32_t td__nl_first_pid;

/* A socket for one lookup: *once, one to close after it (td__nl_put(),
 * td__nl_drop()). */
TD_CHILD_RUNS
static int td__nl_get(bool *once)
{
	uint32_t me = (uint32_t)atomic_load(&td_init_proc.pid);
	int fd;

	*once = false;
	if (atomic_load_explicit(&td__nl_first_pid, memory_order_relaxed) != (int32_t)me &&
	    atomic_exchange(&td__nl_first_pid, (int32_t)me) != (int32_t)me &&
	    (fd = td_real_socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) >= 0) {
		*once = true;
		return fd;
	}
	for (int i = 0; i < TD_NL_POOL; i++) {
		uint64_t v = atomic_exchange(&td__nl_pool[i], 0);

		fd = (int)(uint32_t)v - 1;
		if (v == 0)
			continue;
		if ((uint32_t)(v >> 32) != me)
			td_ownfd_close(fd, TD_OWN_DIAG);
		/* the program may have closed it (closefrom at start-up) */
		else if (td_ownfd_is(fd, TD_OWN_DIAG))
			return fd;
	}
	return td_ownfd_mark(td_real_socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
					NETLINK_SOCK_DIAG), TD_OWN_DIAG);
}

/* A socket that must not go back to the pool (a stray answer may wait),
 * or has no room there. */
TD_CHILD_RUNS
static void td__nl_drop(int fd, bool once)
{
	if (once)
		td_real_close(fd);
	else
		td_ownfd_close(fd, TD_OWN_DIAG);
}

/* A socket after its lookup: back to the pool, unless it was the once
 * one or the pool is full. */
TD_CHILD_RUNS
static void td__nl_put(int fd, bool once)
{
	for (int i = 0; i < TD_NL_POOL && !once; i++) {
		uint64_t empty = 0;

		if (atomic_load_explicit(&td__nl_pool[i], memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&td__nl_pool[i], &empty, td__nl_slot(fd)))
			return;
	}
	td__nl_drop(fd, once);
}

/* Close the sockets kept for lookups (after start-up's: a program that
 * counts its fds at start finds none of ours but the log's). */
void td_diag_close_pool(void)
{
	for (int i = 0; i < TD_NL_POOL; i++) {
		uint64_t v = atomic_exchange(&td__nl_pool[i], 0);

		if (v != 0)
			td_ownfd_close((int)(uint32_t)v - 1, TD_OWN_DIAG);
	}
}

/*
 * Whether the answer's peer is remote.  A dual-stack IPv6 socket (Java,
 * node and Go listen and connect on one by default, nginx on
 * [::]:80 ipv6only=off) carrying an IPv4 connection has its addresses
 * recorded as IPv4 (addr.c), and the IPv4 lookup finds it, but the kernel
 * answers for it as it is: AF_INET6, the addresses v4-mapped
 * (::ffff:a.b.c.d).  Compared as they were, they never matched, the
 * answer read as "gone", and every active close of such a socket was
 * logged passive, without its TIME_WAIT.
 */
TD_CHILD_RUNS
static bool td__peer_is(const struct inet_diag_msg *m, const struct td_addr *remote)
{
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (remote->family == AF_INET && m->idiag_family == AF_INET6)
		return memcmp(m->id.idiag_dst, v4mapped, 12) == 0 &&
		       memcmp((const uint8_t *)m->id.idiag_dst + 12, remote->addr, 4) == 0;
	return memcmp(m->id.idiag_dst, remote->addr, remote->family == AF_INET ? 4 : 16) == 0;
}

/* A lookup's request (td__req()). */
struct td__diag_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

TD_CHILD_WRITTEN_LINE static _Atomic uint32_t td__seq;

/* req for the 4-tuple, every state, sequence number seq; false for a pair
 * that cannot be asked (no family, or two). */
TD_CHILD_RUNS
static bool td__req(struct td__diag_req *req, const struct td_addr *local,
		    const struct td_addr *remote, uint32_t seq)
{
	if (local->family == 0 || local->family != remote->family)
		return false;
	memset(req, 0, sizeof(*req));
	req->nlh.nlmsg_len = sizeof(*req);
	req->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req->nlh.nlmsg_flags = NLM_F_REQUEST;
	req->nlh.nlmsg_seq = seq;
	req->r.sdiag_family = local->family;
	req->r.sdiag_protocol = IPPROTO_TCP;
	req->r.idiag_states = ~0u;
	req->r.id.idiag_sport = htons(local->port);
	req->r.id.idiag_dport = htons(remote->port);
	memcpy(req->r.id.idiag_src, local->addr, local->family == AF_INET ? 4 : 16);
	memcpy(req->r.id.idiag_dst, remote->addr, remote->family == AF_INET ? 4 : 16);
	req->r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req->r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	return true;
}

/*
 * The state an answer of n bytes gives for remote: 0 none, -1 error; with
 * ino, the inode of the socket's file.
 */
TD_CHILD_RUNS
static int td__answer(const struct nlmsghdr *nlh, size_t n, const struct td_addr *remote,
		      uint32_t *ino)
{
	int state = -1;

	if (nlh->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(nlh);

		state = (n >= NLMSG_LENGTH(sizeof(*e)) && e->error == -ENOENT) ? 0 : -1;
	} else if (nlh->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
		   n >= NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
		const struct inet_diag_msg *m = NLMSG_DATA(nlh);

		/* the lookup falls back to a listener on the local port: that
		 * is not this connection, which is then gone (unless the
		 * listener is what was asked: remote port 0) */
		state = remote->port == 0 ||
				(m->id.idiag_dport == htons(remote->port) && td__peer_is(m, remote))
			? m->idiag_state : 0;
		if (state > 0 && ino != NULL)
			*ino = m->idiag_inode;
	}
	return state;
}

/*
 * One sock_diag lookup of the 4-tuple: its state, 0 none, -1 error.  With
 * ino, also the inode of the socket's file: 0 once no process holds it
 * (an orphan after the last close, a TIME_WAIT entry).
 */
TD_CHILD_RUNS
static int td__lookup_ino(const struct td_addr *local, const struct td_addr *remote,
			  uint32_t *ino)
{
	struct td__diag_req req;
	union {
		struct nlmsghdr nlh;
		char buf[512];
	} ans;
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	int fd, state;
	bool once;
	ssize_t n;

	if (!td__req(&req, local, remote, atomic_fetch_add(&td__seq, 1) + 1))
		return -1;
	fd = td__nl_get(&once);
	if (fd < 0)
		return -1;
	if (td_real_sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		td__nl_drop(fd, once);
		return -1;
	}
	/* the kernel answers a lookup before sendto() returns */
	n = td_real_recv(fd, &ans, sizeof(ans), MSG_DONTWAIT);
	if (n < (ssize_t)sizeof(struct nlmsghdr) || ans.nlh.nlmsg_seq != req.nlh.nlmsg_seq) {
		/* out of step: do not hand a socket with a stray answer back */
		td__nl_drop(fd, once);
		return -1;
	}
	state = td__answer(&ans.nlh, (size_t)n, remote, ino);
	td__nl_put(fd, once);
	return state;
}

/*
 * "None" is asked twice: a socket turning into its TIME_WAIT entry (after
 * crossing FINs, CLOSING to TIME_WAIT) can be missed by a lookup made at
 * that very moment, and one miss would turn a simultaneous close into a
 * passive one, or a close that sent nothing into an RST (a CI run under
 * ASan caught the first: the log said passive and no TIME_WAIT, ss showed
 * the client's TIME_WAIT).  A truly gone socket (LAST_ACK acknowledged,
 * reset) is gone the second time too.
 */
TD_CHILD_RUNS
static int td__lookup_twice(const struct td_addr *local, const struct td_addr *remote,
			    uint32_t *ino)
{
	int state = td__lookup_ino(local, remote, ino);

	return state == 0 ? td__lookup_ino(local, remote, ino) : state;
}

/*
 * Lookups of many 4-tuples in two system calls: every request in one
 * sendto(), every answer in one recvmmsg() (the kernel answers each
 * before sendto() returns).  q[i].state is set as td__lookup_ino() would
 * (-1 for a pair it cannot ask, or an answer that did not come).  Uses
 * static buffers: one caller at a time (the spool's flusher, which holds
 * the flush claim).
 */
static struct td__diag_req td__breq[TD_DIAG_BATCH];
static union {
	struct nlmsghdr nlh;
	char buf[512];
} td__bans[TD_DIAG_BATCH];

static void td__lookup_batch(struct td_diag_q *q, int n)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	struct mmsghdr mm[TD_DIAG_BATCH];
	struct iovec iov[TD_DIAG_BATCH];
	int at[TD_DIAG_BATCH], k = 0, fd, got;
	bool once;
	uint32_t base = atomic_fetch_add(&td__seq, (uint32_t)n) + 1;

	for (int i = 0; i < n; i++) {
		q[i].state = -1;
		if (td__req(&td__breq[k], &q[i].local, &q[i].remote, base + (uint32_t)k))
			at[k++] = i;
	}
	if (k == 0 || (fd = td__nl_get(&once)) < 0)
		return;
	if (td_real_sendto(fd, td__breq, (size_t)k * sizeof(td__breq[0]), 0,
			   (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		td__nl_drop(fd, once);
		return;
	}
	memset(mm, 0, sizeof(mm[0]) * (size_t)k);
	for (int j = 0; j < k; j++) {
		iov[j].iov_base = &td__bans[j];
		iov[j].iov_len = sizeof(td__bans[j]);
		mm[j].msg_hdr.msg_iov = &iov[j];
		mm[j].msg_hdr.msg_iovlen = 1;
	}
	got = td_real_recvmmsg(fd, mm, (unsigned)k, MSG_DONTWAIT, NULL);
	for (int j = 0; j < got; j++) {
		const struct nlmsghdr *h = &td__bans[j].nlh;
		uint32_t off = h->nlmsg_seq - base;

		if (mm[j].msg_len >= sizeof(*h) && off < (uint32_t)k)
			q[at[off]].state = td__answer(h, mm[j].msg_len, &q[at[off]].remote, NULL);
	}
	/* a short or failed read leaves answers queued: not a socket to
	 * hand back, whose next lookup would read a stray one */
	if (got != k)
		td__nl_drop(fd, once);
	else
		td__nl_put(fd, once);
}

/* Whether a is a loopback address (127/8, ::1, ::ffff:127/104): a peer
 * there is in this network namespace, whose tables a lookup reads. */
TD_CHILD_RUNS
static bool td__is_loopback(const struct td_addr *a)
{
	static const uint8_t v6one[16] = {[15] = 1};
	static const uint8_t v4mapped[12] = {[10] = 0xff, [11] = 0xff};

	if (a->family == AF_INET)
		return a->addr[0] == 127;
	return a->family == AF_INET6 &&
	       (memcmp(a->addr, v6one, 16) == 0 ||
		(memcmp(a->addr, v4mapped, 12) == 0 && a->addr[12] == 127));
}

/* The other end of q's connection, looked up the other way round. */
static void td__reversed(const struct td_diag_q *q, struct td_diag_q *r)
{
	r->local = q->remote;
	r->remote = q->local;
	r->state = -1;
}

void td_diag_states(struct td_diag_q *q, int n)
{
	struct td_diag_q again[TD_DIAG_BATCH];
	int at[TD_DIAG_BATCH], m = 0; /* again[j] asks for q[at[j]] */

	if (n <= 0)
		return;
	if (n > TD_DIAG_BATCH)
		n = TD_DIAG_BATCH;
	td__lookup_batch(q, n);
	/* "none" asked twice, as td__lookup_twice() does */
	for (int i = 0; i < n; i++)
		if (q[i].state == 0) {
			at[m] = i;
			again[m++] = q[i];
		}
	if (m == 0)
		return;
	td__lookup_batch(again, m);
	for (int j = 0; j < m; j++)
		q[at[j]].state = again[j].state;
	/* gone, a loopback peer: which FIN went first (td_diag_first_fin) */
	m = 0;
	for (int i = 0; i < n; i++)
		if (q[i].state == 0 && td__is_loopback(&q[i].remote)) {
			at[m] = i;
			td__reversed(&q[i], &again[m++]);
		}
	if (m == 0)
		return;
	td__lookup_batch(again, m);
	for (int j = 0; j < m; j++)
		if (again[j].state != TD_TCP_TIME_WAIT)
			q[at[j]].state = -1;
}

/* Whether something listens on local (its address or the wildcard, its
 * port): the lookup's fallback to a listener, asked for on its own.  Once:
 * a listener is never caught in a change of tables. */
bool td_diag_listening(const struct td_addr *local)
{
	struct td_addr none;

	memset(&none, 0, sizeof(none));
	none.family = local->family;
	return td__lookup_ino(local, &none, NULL) == TD_TCP_LISTEN;
}

TD_CHILD_RUNS
int td_diag_state(const struct td_addr *local, const struct td_addr *remote)
{
	return td__lookup_twice(local, remote, NULL);
}

/*
 * The state after an active close, for who sent the first FIN: gone (0)
 * is read as the peer's FIN first (CLOSE_WAIT, LAST_ACK, done), but a
 * socket is gone as well when a reset followed our own FIN (a client that
 * exits with our reply unread).  A loopback peer tells them apart: the
 * side whose FIN went first holds TIME_WAIT, so the peer's socket, looked
 * up the other way round, is in TIME_WAIT only when its FIN was first;
 * anything else there, and the answer is -1 (cannot tell: the facts read
 * before the close stand).  Another host's peer cannot be asked: gone
 * stays the peer's FIN, which a FIN racing the close makes of most.
 */
TD_CHILD_RUNS
int td_diag_first_fin(const struct td_addr *local, const struct td_addr *remote)
{
	int state = td__lookup_twice(local, remote, NULL);

	if (state == 0 && td__is_loopback(remote) &&
	    td__lookup_ino(remote, local, NULL) != TD_TCP_TIME_WAIT)
		return -1;
	return state;
}

/*
 * After the program's close of a connection that another process may
 * still hold: the state, as td_diag_state() (asked twice the same way),
 * and in *held whether some process still holds the socket (its file's
 * inode is not 0: an orphan, what the last close leaves, has none).  A
 * connection not found is not held (reset, or ended since).
 */
TD_CHILD_RUNS
int td_diag_after_close(const struct td_addr *local, const struct td_addr *remote, bool *held)
{
	uint32_t ino = 0;
	int state = td__lookup_twice(local, remote, &ino);

	*held = state > 0 && ino != 0;
	return state;
}

/*
 * After our FIN went out (shutdown or close): who came first, as an enum
 * td_closer (TD_CLOSER_NONE when it cannot be told).  fd is a descriptor
 * still open on the socket, or -1 when the program's close already
 * released it.
 */
TD_CHILD_RUNS
int td_diag_closer(int fd, const struct td_addr *local, const struct td_addr *remote, bool *fin_in)
{
	int state = -1;

	if (fd >= 0) {
		state = td_info_state(fd);
		/*
		 * Our own socket is CLOSE both after TIME_WAIT and after
		 * LAST_ACK: only the 4-tuple's TIME_WAIT entry tells them apart.
		 * One lookup: the kernel hashes that entry in before it sets
		 * the socket CLOSE (tcp_time_wait(), then tcp_done()), so a
		 * socket read as CLOSE is past the moment a lookup can miss.
		 */
		if (state == TD_TCP_CLOSE)
			state = td__lookup_ino(local, remote, NULL);
	} else {
		state = td_diag_state(local, remote);
	}
	if (fin_in != NULL)
		*fin_in = td_state_fin_in(state);
	return td_predict_closer_of(state);
}
