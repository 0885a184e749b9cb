/*
 * teardown: shutdown() — "half" turns the program's SHUT_RD/SHUT_RDWR
 * into SHUT_WR (half-close, keep reading); "skip" sends nothing, so that
 * with "abort" the hangup is a pure RST; a connection fated to reset
 * (fault.rst) resets here instead of sending its FIN.
 */
#include "../rt/rt.h"
#include "teardown/predict.h"

/*
 * What shutdown() would have returned, without doing it: EINVAL for a bad
 * how, the socket's own error for a bad fd, ENOTCONN when closed.
 */
static int td__validate(int fd, int how)
{
	int state;

	if (how < SHUT_RD || how > SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	if ((state = td_info_state(fd)) < 0)
		return -1;
	if (state == TD_TCP_CLOSE) {
		errno = ENOTCONN;
		return -1;
	}
	return 0;
}

/*
 * A connection fated to reset (fault.rst) whose program shuts down first:
 * its FIN would reach the peer before the close's RST could, and once both
 * FINs are exchanged there is nothing left to reset.  So the RST goes now,
 * in place of the FIN; the program's shutdown() succeeds, and its next
 * calls fail as after a real reset.
 */
static bool td__fated_to_reset(const struct td_fdent *s)
{
	uint32_t flags = atomic_load(&s->flags);

	return (flags & TD_SF_FAULT_RST) && !(flags & TD_SF_RESET_SENT);
}

static bool td__reset_instead(const struct td_fdent *s, int state)
{
	return td__fated_to_reset(s) && (state == TD_TCP_ESTABLISHED ||
					 state == TD_TCP_CLOSE_WAIT || state == TD_TCP_SYN_RECV);
}

/*
 * Who was first, read after the call alone or before it too (see
 * shutdown() below).  After alone costs one read where our FIN was first,
 * and three where the peer's was (the socket reads CLOSE: a lookup tells
 * LAST_ACK's end from TIME_WAIT); before too costs two and one.  So each
 * thread keeps its last answers (halved every 64) and reads before too
 * while more than a third had the peer first.  Both ways are exact; this
 * only picks the cheaper for what the program does (a server that shuts
 * down after its reply: ours first; one whose clients half-close first:
 * theirs).  Thread-local: no write shared between threads.
 *
 * While a thread reads before the call, what those reads found is what
 * it counts, not who the lookup after the call found first: a peer's FIN
 * that came after the read was no reason to make it (under wrk, whose FIN
 * meets busybox httpd's own, the read delayed ours, more of wrk's came
 * first, and counted they kept the reads going for nothing).
 *
 * A thread with no answers yet asks its family instead
 * (td_fdtab_family_peer_first(), shared with forked children): a
 * fork-per-connection server's child shuts down one connection in its
 * life, and in a child that made no lookup before, the lookup also opens
 * and closes a netlink socket: five system calls where the read before
 * the call is one, for a server whose clients half-close first.
 */
static __thread uint8_t td__asked __attribute__((tls_model("initial-exec")));
static __thread uint8_t td__peer_first __attribute__((tls_model("initial-exec")));

static bool td__read_before(void)
{
	if (td__asked == 0)
		return td_fdtab_family_peer_first();
	return td__peer_first * 3u > td__asked;
}

static void td__answered(bool peer_first, bool before)
{
	if (td__asked == 0 && before)
		td_fdtab_family_note_probe(peer_first);
	td__asked++;
	td__peer_first += peer_first;
	if (td__asked >= 64) {
		td__asked /= 2;
		td__peer_first /= 2;
	}
}

TD_CHILD_RUNS
TD_EXPORT int shutdown(int fd, int how)
{
	const struct td_policy *p = td_init_active();
	const struct td_rule *r;
	struct td_fdent *s;
	struct td_sock c;
	struct td_event ev;
	int saved, rc, err, done = how, state;
	uint32_t flags;
	bool reset = false, fin, fated, asked = false, before = false, found = false;

	/* from now on a read's 0 is no proof of the peer's FIN (before the
	 * call: a read in another thread may see the shut at once) */
	if (how == SHUT_RD || how == SHUT_RDWR)
		td_fdtab_mark_shut_rd(fd);
	if (p == NULL || (s = td_fdtab_live(fd)) == NULL || !s->d.decided ||
	    (r = td_decide_rule(p, &s->d)) == NULL)
		return td_real_shutdown(fd, how);
	saved = errno;
	if (r->shutdown == TD_SHUT_HALF && (how == SHUT_RD || how == SHUT_RDWR))
		done = SHUT_WR;
	else if (r->shutdown == TD_SHUT_SKIP)
		done = TD_HOW_NONE;
	fin = done == SHUT_WR || done == SHUT_RDWR;
	/*
	 * Who sent the first FIN matters only to the events (a rule's own,
	 * fixed for the connection: see td_decide_rule).  A logged one whose
	 * program has read the peer's FIN knows: the peer was first.
	 * Otherwise the state after the call says (below): FIN_WAIT1 or
	 * FIN_WAIT2, ours was first (a peer's FIN already in would have made
	 * it LAST_ACK); LAST_ACK, the peer's.  Only a socket read CLOSE after
	 * it (on loopback, the peer's answer or its acknowledgement comes at
	 * once) takes a sock_diag lookup.  A server shuts down after its
	 * reply, before its client can have closed: one read, where a read
	 * before the call too took two.  Where the peer is often first, the
	 * state is read before the call too (td__read_before()): CLOSE_WAIT
	 * settles it, with no lookup.  A connection fated to reset always
	 * reads it before: it must know.
	 */
	fated = fin && td__fated_to_reset(s);
	flags = atomic_load(&s->flags);
	if (fin && r->log && !fated && !(flags & TD_SF_SHUT_WR) &&
	    td_info_read_to_end(flags, atomic_load(&s->share), s->d.epoch)) {
		atomic_fetch_or(&s->flags, TD_SF_PASSIVE);
	} else if ((fated || (fin && r->log && !(flags & TD_SF_SHUT_WR) && td__read_before())) &&
		   (state = td_info_state(fd)) >= 0) {
		found = state == TD_TCP_CLOSE_WAIT || state == TD_TCP_LAST_ACK;
		if (found)
			atomic_fetch_or(&s->flags, TD_SF_PASSIVE);
		reset = td__reset_instead(s, state);
		asked = before = !fated;
	}
	td_errno_set(saved);
	if (reset && td_faults_reset_now(fd, fd, s) == 0) {
		rc = 0;
		err = saved;
		done = TD_HOW_RST;
	} else {
		rc = done == TD_HOW_NONE ? td__validate(fd, how) : td_real_shutdown(fd, done);
		err = errno;
	}
	if (rc == 0 && (done == SHUT_WR || done == SHUT_RDWR)) {
		uint32_t was = atomic_fetch_or(&s->flags, TD_SF_SHUT_WR);
		bool fin_in = false;

		/* who was first (above); a state that proves the peer's FIN
		 * in (it answered ours at once: TIME_WAIT) spares the close a
		 * SIOCINQ */
		if (r->log && !(was & (TD_SF_SHUT_WR | TD_SF_PASSIVE)) &&
		    td_fdtab_read(fd, &c, NULL)) {
			if (td_diag_closer(fd, &c.local, &c.remote, &fin_in) ==
			    TD_CLOSER_PASSIVE)
				atomic_fetch_or(&s->flags, TD_SF_PASSIVE);
			if (fin_in)
				atomic_fetch_or(&s->flags, TD_SF_FIN_IN);
			asked = !fated;
		}
		/* (what a read before the call found, where one was made:
		 * see the comment above td__asked) */
		if (asked)
			td__answered(before ? found
					    : (atomic_load(&s->flags) & TD_SF_PASSIVE) != 0,
				     before);
		td_fdtab_share_note_fin(atomic_load(&s->share),
					(atomic_load(&s->flags) & TD_SF_PASSIVE) != 0);
	}
	if (r->log && td_fdtab_read(fd, &c, NULL)) {
		td_logw_event_from_sock(&ev, p, &c, fd, TD_EV_SHUTDOWN);
		ev.how = (int8_t)how;
		ev.how_done = (int8_t)(rc == 0 ? done : TD_HOW_NONE);
		td_logw_event(p, &ev);
	}
	td_errno_set(rc == 0 ? saved : err);
	return rc;
}
