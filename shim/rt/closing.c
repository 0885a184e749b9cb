/*
 * teardown: the one close path, whichever call closes a tracked socket
 * (close, fclose, dup2/dup3 over it, close_range, closefrom,
 * syscall(SYS_close)), and the same work for sockets still open at exit.
 *
 * A hook reads as: td_closing_begin(), its own real call, td_closing_end().
 *
 * begin: decide whether the library has anything to do; if so take the
 *        fd's entry, read the facts (state, unread and unsent bytes,
 *        linger), find out whether this close drops the last reference,
 *        and do what must happen before the fd goes: discard queued input
 *        ("graceful"), keep a private reference ("drain"), send a logged
 *        active close's FIN first to see who was first;
 * the real call, made by the hook, exactly once;
 * end:   a drain's shutdown(SHUT_WR) and background read to EOF, what the
 *        kernel says after the close where it could still change its
 *        mind, and the close event.  What the event says (wire, why,
 *        closer, time_wait, lost) is decided by shim/core/predict.c alone,
 *        from the facts and from what was learned after them.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/predict.h"

static int td__rst_cause(const struct td_sock *s, const struct td_rule *r)
{
	if (atomic_load(&s->flags) & TD_SF_FAULT_RST)
		return TD_RST_BY_FAULT;
	if (r != NULL && r->close == TD_CLOSE_ABORT)
		return TD_RST_BY_POLICY;
	return TD_RST_BY_APP;
}

/* The prediction's facts from the kernel's (f) and the entry's. */
TD_CHILD_RUNS
static void td__facts(struct td_close_facts *cf, const struct td_sock *s,
		      const struct td_rule *r, const struct td_facts *f, bool last,
		      bool policy_changed)
{
	uint32_t flags = atomic_load(&s->flags);
	/* a shutdown() another holder made (fork-per-connection: the child's) */
	unsigned fin = td_fdtab_share_fin(atomic_load(&s->share));

	td_close_facts_init(cf);
	cf->state = f->state;
	cf->unread = f->unread;
	cf->unsent = f->unsent;
	cf->notsent = f->notsent;
	cf->backlog = f->backlog;
	cf->linger_on = f->linger_on;
	cf->linger_secs = f->linger_secs;
	cf->last = last;
	cf->connected = (flags & TD_SF_CONNECTED) != 0;
	cf->passive_first = (flags & TD_SF_PASSIVE) != 0 || (fin & TD_SHARE_FIN_PASSIVE) ||
			    f->state == TD_TCP_CLOSE_WAIT || f->state == TD_TCP_LAST_ACK;
	cf->our_fin_sent = (flags & TD_SF_SHUT_WR) != 0 || (fin & TD_SHARE_FIN_SENT);
	cf->timed_out = (flags & TD_SF_TIMED_OUT) != 0;
	cf->fin_before_end = f->fin_before_end;
	cf->rst_cause = td__rst_cause(s, r);
	cf->policy_changed = policy_changed;
	cf->reset_sent = (flags & TD_SF_RESET_SENT) != 0;
	cf->reset_lost = s->reset_lost;
	cf->reset_in_flight = s->reset_in_flight;
	cf->bytes_received = f->bytes_received;
	cf->bytes_out = f->bytes_out;
	cf->reset_bytes_in = s->reset_bytes_in;
	cf->reset_bytes_out = s->reset_bytes_out;
}

/*
 * A connection already CLOSE that no read or write saw time out: whether
 * the kernel's pending error says it did (ETIMEDOUT: retransmissions,
 * keepalive probes or TCP_USER_TIMEOUT ran out; a reset leaves
 * ECONNRESET or EPIPE).  Reading SO_ERROR clears it, so only at the last
 * close, where no one can read it after.  One system call, only there.
 */
TD_CHILD_RUNS
static void td__timeout_check(struct td_close_facts *cf, int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (cf->state == TD_TCP_CLOSE && cf->last && cf->connected && !cf->timed_out &&
	    !cf->passive_first && !cf->our_fin_sent &&
	    td_real_sys_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0)
		cf->timed_out = err == ETIMEDOUT;
}

/* A connection's age in ms, from its opening (0: not known). */
static int64_t td__age_ms(int64_t t_open_mono_us)
{
	return t_open_mono_us != 0 ? (td_clock_mono_us() - t_open_mono_us) / 1000 : 0;
}

TD_CHILD_RUNS
void td_closing_outcome(struct td_event *ev, const struct td_close_facts *cf,
			int64_t t_open_mono_us)
{
	struct td_close_outcome o;

	td_predict_close(cf, &o);
	ev->state = (int8_t)cf->state;
	ev->wire = (uint8_t)o.wire;
	ev->why = (uint8_t)o.why;
	ev->closer = (uint8_t)o.closer;
	ev->time_wait = (int8_t)o.time_wait;
	ev->lost = o.lost;
	ev->lost_in_flight = o.lost_in_flight;
	ev->unsent = cf->unsent;
	ev->bytes_in = o.bytes_in;
	ev->bytes_out = o.bytes_out;
	ev->age_ms = td__age_ms(t_open_mono_us);
}

/*
 * Whether the rule has work to do at close for this socket: graceful and
 * drain act on connections only (not listeners, not never-connected).
 */
static bool td__needs_work(const struct td_rule *r, const struct td_facts *f)
{
	if (r->close != TD_CLOSE_GRACEFUL && r->close != TD_CLOSE_DRAIN)
		return false;
	switch (f->state) {
	case TD_TCP_ESTABLISHED:
	case TD_TCP_SYN_RECV:
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
	case TD_TCP_CLOSE_WAIT:
	case TD_TCP_LAST_ACK:
	case TD_TCP_CLOSING:
		return true;
	default:
		return false;
	}
}

/*
 * Whether a close needs anything beyond the real call: an event to write,
 * graceful/drain work, a close delay, an armed byte budget, a share count
 * to drop.  An "abort" or "pass" rule without logging needs none: its
 * SO_LINGER was set at connect/accept time.
 */
static bool td__close_has_work(const struct td_rule *r, const struct td_fdent *s)
{
	return r->log || r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN ||
	       s->share != 0 ||
	       (atomic_load(&s->flags) & (TD_SF_BYTES_FAULT | TD_SF_BYTES_IN_FAULT)) ||
	       (r->has_fault && r->fault.close_delay_ms);
}

/*
 * A drain waits for the peer's FIN.  Once that is in (CLOSE_WAIT; LAST_ACK
 * or CLOSING after the program's own shutdown()), nothing but an RST can
 * come, and the drain is a graceful close: queued input discarded, the
 * program's close sends the FIN.  No private fd, no shutdown(), no read
 * to EOF: three system calls fewer for a server whose client closes first
 * (redis).  Not where the close would reset anyway (an injected fault's
 * zero linger): that keeps the drain's own FIN first.
 */
TD_CHILD_RUNS
static bool td__fin_in(const struct td_facts *f, uint32_t flags)
{
	return !f->linger_on && ((flags & TD_SF_PASSIVE) || td_state_fin_in(f->state));
}

/*
 * For a socket whose holders are not counted (fdtab.c's share slots: one
 * that never crossed a counted fork, or whose count is inexact), whether
 * another process holds the socket too is asked of the kernel
 * after the close (td_diag_after_close(): the 4-tuple's socket still has
 * a file, or it is an orphan now), not of /proc before it, where that
 * answer changes only the event: a rule with no work at close (pass,
 * abort) on a connection.  A fork-per-connection server's parent closes
 * every connection right after forking its child: /proc/<child>/fd
 * would cost it a readlink that makes the kernel build the new child's
 * /proc entries, and the child's exit then tears them down again (busybox
 * httpd: 3% of its CPU in readlinkat).  The lookup costs what fstat()
 * and readlinkat() did, two system calls, and one lookup also answers
 * who sent the first FIN.  Once a lookup fails (no sock_diag here) the
 * process asks /proc again, as before.
 */
static _Atomic bool td__holder_after_off;

/*
 * A logged connection another process may hold, which a lookup can find:
 * one that crossed a fork or an exec, or one marked shared for good (sent
 * in an SCM_RIGHTS message, handed to a vfork()ed or spawned child, got
 * from outside), where /proc cannot say (td_holders_sole() answers "held"
 * for those): node's cluster primary sends each connection to a worker
 * and closes its copy, and when the worker had closed its own first,
 * each close said "shared" and no end was logged.  The lookup after the
 * close is exact whoever the other holders are.
 */
TD_CHILD_RUNS
static bool td__may_ask_after(const struct td_rule *r, const struct td_sock *s)
{
	return r->log &&
	       (td_holders_needs_ino(s) || (atomic_load(&s->flags) & TD_SF_STICKY_SHARED)) &&
	       s->local.family != 0 && s->remote.family == s->local.family &&
	       s->remote.port != 0 &&
	       !atomic_load_explicit(&td__holder_after_off, memory_order_relaxed);
}

TD_CHILD_RUNS
static bool td__holder_after(const struct td_rule *r, const struct td_sock *s)
{
	return r->close != TD_CLOSE_GRACEFUL && r->close != TD_CLOSE_DRAIN &&
	       td__may_ask_after(r, s);
}

/* The lookup after s's close (td_diag_after_close()); a failed one turns
 * this process back to /proc. */
TD_CHILD_RUNS
static int td__ask_after(const struct td_sock *s, bool *held)
{
	int state = td_diag_after_close(&s->local, &s->remote, held);

	if (state < 0)
		atomic_store_explicit(&td__holder_after_off, true, memory_order_relaxed);
	return state;
}

/*
 * What the kernel is asked after a last close that the facts read before
 * it cannot settle:
 *  - first_fin: a FIN predicted as the first one may meet a peer's FIN
 *    arriving just before the real close.  Nothing is left unread and no
 *    zero linger is set, so the close sends exactly a FIN, and afterwards
 *    the kernel still knows who was first: a sock_diag lookup of the
 *    4-tuple (FIN_WAIT or TIME_WAIT: we were; LAST_ACK or gone: the peer
 *    was; CLOSING: the FINs crossed).
 *  - state: an RST predicted after our FIN went out (FIN_WAIT1, FIN_WAIT2:
 *    the program shut down first, then closed with a zero linger or unread
 *    input) goes only if the peer's FIN has not come back meanwhile; once
 *    it has, the socket is in TIME_WAIT and the close sends nothing.
 *    Likewise a zero linger's close of a socket whose FIN crossed the
 *    peer's (CLOSING) drops it, with no TIME_WAIT, only if the peer's
 *    acknowledgement of our FIN has not come meanwhile; once it has, the
 *    4-tuple sits in TIME_WAIT (a CI run caught it: python3's http.server
 *    under abort, the log said no TIME_WAIT where ss showed one).
 */
TD_CHILD_RUNS
static void td__checks_after(const struct td_event *ev, int state, bool *first_fin,
			     bool *state_after)
{
	*first_fin = ev->wire == TD_WIRE_FIN && ev->closer == TD_CLOSER_ACTIVE;
	*state_after = (ev->wire == TD_WIRE_RST &&
		(state == TD_TCP_FIN_WAIT1 || state == TD_TCP_FIN_WAIT2)) ||
	       (state == TD_TCP_CLOSING && ev->time_wait == 0);
}

/*
 * An RST predicted on an ESTABLISHED socket (a zero linger: abort, a
 * fault, the program's) leaves nothing to ask after the close: the reset
 * destroys the socket.  A peer's FIN that arrives after the facts were
 * read makes that RST the answer to it (passive), so the state must be
 * read with no system call between it and the real close.  Where the
 * facts made one after their state read (SIOCINQ, SO_LINGER, fstat), or
 * /proc was read, or the close had work to do, it is read once more as
 * the very last thing; the race left is the time between that read and
 * the close, the library's own bookkeeping in memory (a CI run caught
 * the wider one: curl under --rst 1, nginx's FIN 87 us before the RST,
 * the log said active).  One getsockopt, only for such a close.
 */
TD_CHILD_RUNS
static void td__recheck_state(int fd, struct td_close_facts *cf, struct td_event *ev,
			    int64_t t_open_mono_us)
{
	int st;

	if (ev->wire != TD_WIRE_RST || cf->state != TD_TCP_ESTABLISHED)
		return;
	ev->ts_us = td_clock_now_us();
	st = td_info_state(fd);
	if (st == TD_TCP_CLOSE_WAIT || st == TD_TCP_LAST_ACK) {
		cf->state = st;
		cf->passive_first = true;
		td_closing_outcome(ev, cf, t_open_mono_us);
	}
}

/*
 * What the lookup after a close (td__ask_after()) says of it: the last
 * reference (the other holder may have let go first after all), whose
 * state then answers td__checks_after() (the outcome heeds each only where
 * the close sent what it asks about): true; or not the last (held
 * elsewhere, or the lookup failed: shared, nothing was sent, what a /proc
 * check that cannot be made also says).
 */
TD_CHILD_RUNS
static bool td__after_says_last(struct td_close_facts *cf, int state, bool held)
{
	cf->last = state >= 0 && !held;
	if (cf->last) {
		cf->first_fin = td_predict_closer_of(state);
		cf->after_state = state;
	}
	return cf->last;
}

/* What an event asks (td_predict_settle()), asked now: a line its own
 * thread makes (logw.c), or one past a flusher's batch (spool.c). */
TD_CHILD_RUNS
void td_closing_settle_now(struct td_event *ev)
{
	if (ev->ask == TD_ASK_FIRST_FIN)
		td_predict_settle(ev, td_diag_first_fin(&ev->local, &ev->remote), 0);
}

/* The lookups td__checks_after() asked for, after the close. */
TD_CHILD_RUNS
static void td__settle_after(struct td_close_facts *cf, const struct td_sock *s, bool first_fin,
			     bool state_after)
{
	if (first_fin)
		cf->first_fin = td_diag_closer(-1, &s->local, &s->remote, NULL);
	if (state_after)
		cf->after_state = td_diag_state(&s->local, &s->remote);
}

/* An event of fd's socket s that reports the facts f: stamped just before
 * their state read (README, the ts key). */
TD_CHILD_RUNS
static void td__facts_event(struct td_event *ev, const struct td_policy *p,
			    const struct td_sock *s, int fd, int type, const struct td_facts *f)
{
	td_logw_event_from_sock(ev, p, s, fd, type);
	ev->ts_us = f->look_us;
}

/*
 * A close that leaves another copy open, whatever the other holders do
 * meanwhile: one more fd of this process, or a counted copy elsewhere
 * that stays counted after this one left (td_fdtab_share_leave_held():
 * the count was above one when this copy left it, so whichever copy goes
 * last is another's, which reads the facts for the end).  It sends
 * nothing and has no work: the line says wire=none, why=shared, and the
 * kernel is not asked what it would only describe (TCP_INFO and SIOCINQ,
 * and the state read again before the close): state, unread, unsent and
 * the byte counts are null.  A fork-per-connection server's parent closes
 * every connection so, and each child the listener and the connection's
 * first fd once dup2()ed onto 0 and 1: seven system calls a connection
 * in busybox httpd.
 */
TD_CHILD_RUNS
static void td__shared(const struct td_policy *p, struct td_closing *c)
{
	c->log = c->rule->log;
	if (!c->log)
		return;
	td_close_facts_init(&c->cf);
	c->cf.state = -1;
	c->cf.last = false;
	c->cf.connected = (atomic_load(&c->s.flags) & TD_SF_CONNECTED) != 0;
	td_logw_event_from_sock(&c->ev, p, &c->s, c->fd, TD_EV_CLOSE);
	td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
	c->unread_before = -1;
	c->ev.unread = c->ev.unsent = c->ev.bytes_in = c->ev.bytes_out = -1;
	c->ev.tid = td_init_tid();
}

TD_CHILD_RUNS
static void td__prepare_facts(const struct td_policy *p, struct td_closing *c, bool counted,
			      int origin);
TD_CHILD_RUNS
static void td__leave_now(const struct td_policy *p, struct td_closing *c, int origin);

/*
 * What must happen before the fd goes: a shared copy's line
 * (td__shared()), or the facts and the work (td__prepare_facts()).
 * c->s is the claimed entry, c->rule its rule.
 */
TD_CHILD_RUNS
static void td__prepare(const struct td_policy *p, struct td_closing *c)
{
	const struct td_sock *s = &c->s;
	bool in_proc_shared = false, counted;
	/* (read before any leave, which may free the slot) */
	int origin = td_fdtab_share_origin(s->share, c->fd);
	/*
	 * Counted holders (fdtab.c's share slots: this process's dups, and
	 * the copies of the processes forked since): the count alone says
	 * whether this close is the last reference, no /proc and no look-up.
	 * Where the close has no work to decide (pass, abort), the count is
	 * dropped after the real close (td_closing_end()): the process that
	 * takes it to zero then knows every other copy is closed already, and
	 * what it asks the kernel afterwards is the connection's end.  Work
	 * (graceful, drain) must be decided before the close: there the count
	 * is dropped first, and the holders that dropped it before are about
	 * to close theirs.
	 */
	counted = td_holders_counted(atomic_load(&s->flags), atomic_load(&s->share));
	c->leave_after = counted && c->rule->log && c->rule->close != TD_CLOSE_GRACEFUL &&
			 c->rule->close != TD_CLOSE_DRAIN;
	if (!c->leave_after)
		in_proc_shared = td_fdtab_share_leave(s->share);
	if (c->rule->has_fault && c->rule->fault.close_delay_ms)
		td_clock_sleep_ms(c->rule->fault.close_delay_ms);
	if (atomic_load(&s->flags) & TD_SF_BYTES_FAULT)
		atomic_fetch_sub(&td_faults_bytes_live, 1);
	if (atomic_load(&s->flags) & TD_SF_BYTES_IN_FAULT)
		atomic_fetch_sub(&td_faults_bytes_in_live, 1);
	/*
	 * Only the share count or a byte budget brought a silent pass or
	 * abort here: nothing to read, nothing to write (a fork-per-connection
	 * server dup2()s every connection onto 0 and 1).
	 */
	if (!c->rule->log && c->rule->close != TD_CLOSE_GRACEFUL &&
	    c->rule->close != TD_CLOSE_DRAIN)
		return;
	if (in_proc_shared) {
		td__shared(p, c);
		return;
	}
	/*
	 * A counted copy that another counted copy outlives, as the count
	 * says now: shared, with no facts; it leaves the count as the last
	 * thing before the real close (td__leave_now(); what is left of
	 * td_closing_begin() touches neither), where the count may say
	 * otherwise after all.
	 */
	if (c->leave_after && td_fdtab_share_held(s->share)) {
		td__shared(p, c);
		td__leave_now(p, c, origin);
		return;
	}
	td__prepare_facts(p, c, counted, origin);
}

/*
 * The last thing before the real close of a copy that the count showed
 * was not the last (td__prepare()): leave the count, if another copy
 * stays counted (td_fdtab_share_leave_held()); then this close ends
 * nothing, whatever the other holders do meanwhile.  A holder that left
 * in between may have made this copy the last after all: then its facts
 * are read as for any counted close, and the count is left after the
 * close.  If what stays counted is only a killed root's copy, this close
 * is the end, as td_closing_end() finds after a close.
 */
TD_CHILD_RUNS
static void td__leave_now(const struct td_policy *p, struct td_closing *c, int origin)
{
	if (td_fdtab_share_leave_held(c->s.share)) {
		c->leave_after = false;
		if (!((atomic_load(&c->s.flags) & TD_SF_CONNECTED) &&
		      td_fdtab_share_root_gone(c->s.share)))
			return;
	}
	td__prepare_facts(p, c, true, origin);
}

/*
 * Read the facts and do what must happen before the fd goes (a close
 * that may be the last, or has work).  counted: the share count says
 * whether it is the last; origin: td_fdtab_share_origin(), read before any
 * leave.
 */
TD_CHILD_RUNS
static void td__prepare_facts(const struct td_policy *p, struct td_closing *c, bool counted,
			      int origin)
{
	const struct td_sock *s = &c->s;
	struct td_facts f;
	bool last, changed = false, work;
	int fd = c->fd;

	c->holder_after = !counted && td__holder_after(c->rule, s);
	if (td_info_facts_sock(fd, &f, s, c->rule,
			       !counted && !c->holder_after &&
				       td_holders_needs_ino(s)) < 0) {
		/* not this socket any more (closed behind our back): hands off */
		c->stale = true;
		return;
	}
	/*
	 * A connection already CLOSE (ended by the peer's reset, or its FINs
	 * exchanged) is in no table a lookup reads, or only as a TIME_WAIT
	 * entry without a file: after the close, a lookup could not tell
	 * whether another process still holds it.  So /proc is asked, before.
	 */
	if (c->holder_after && f.state == TD_TCP_CLOSE) {
		c->holder_after = false;
		f.ino = td_info_ino(fd);
	}
	c->log = c->rule->log;
	c->unread_before = f.unread;
	/* (asked after the close: predicted as the last until then) */
	last = counted || c->holder_after || td_holders_sole(fd, origin, s, f.ino);
	/*
	 * Work to decide (graceful, drain), and /proc says another process
	 * still holds it, or cannot say (a socket sent or received in an
	 * SCM_RIGHTS message, handed to a spawned child): none of the work,
	 * which must not touch a socket someone else may still use, but the
	 * other holder may let go before the real close (node's cluster: the
	 * worker and the primary close at once), and then it would report
	 * shared too, and no one the end.  So the kernel is asked after the
	 * close, as for a close with no work: the end, with what that close
	 * did, if it was the last after all.
	 */
	if (!last && !counted && td__may_ask_after(c->rule, s) &&
	    f.state != TD_TCP_CLOSE)
		c->holder_after = true;
	work = last && td__needs_work(c->rule, &f);
	if (work) {
		/* graceful changes the outcome only when it undoes something */
		changed = c->rule->close == TD_CLOSE_DRAIN || f.unread > 0 ||
			  td_sock_linger_on(&c->s);
		if (c->rule->close == TD_CLOSE_DRAIN && !td__fin_in(&f, atomic_load(&s->flags))) {
			int pfd = td_real_sys_dupfd(fd, td_init_proc.fd_base);

			if (pfd >= 0)
				c->pfd = td_ownfd_mark(pfd, TD_OWN_DRAIN);
		}
		/* the facts again only when the discard changed them */
		if (f.unread > 0) {
			(void)td_info_discard_input(fd, NULL);
			(void)td_info_facts(fd, &f, false);
		}
		if (c->pfd >= 0) {
			/* what the drain will do: FIN behind the data, no RST */
			f.unread = 0;
			f.linger_on = false;
		}
	} else if (last && c->rule->close == TD_CLOSE_GRACEFUL) {
		changed = td_sock_linger_on(&c->s);
	}
	td__facts(&c->cf, s, c->rule, &f, last, changed);
	td__timeout_check(&c->cf, fd);
	td__facts_event(&c->ev, p, s, fd, TD_EV_CLOSE, &f);
	td_closing_outcome(&c->ev, &c->cf, s->d.t_open_mono_us);
	c->ev.unread = c->unread_before;
	/* a drain's line is stamped at its end */
	if (c->pfd >= 0)
		c->ev.ts_us = 0;
	/*
	 * Asked after the close (td__checks_after()).  The library never
	 * sends a first FIN itself to see who was first (an observer must not
	 * change the program's close sequence), and an fclose() still has its
	 * buffer to flush.
	 */
	td__checks_after(&c->ev, f.state, &c->check_after, &c->check_state);
	c->check_state = c->check_state && c->log;
	c->check_after = c->check_after && c->pfd < 0 && last && c->log;
	/* the closing thread, even when the worker writes the event later */
	c->ev.tid = td_init_tid();
	/* last before the real close (the caller's next call), where a
	 * system call came after the facts' state read (td__recheck_state()) */
	if (c->log && (f.calls_after_state > 0 || f.ino != 0 || work))
		td__recheck_state(c->fd, &c->cf, &c->ev, c->s.d.t_open_mono_us);
}

TD_CHILD_RUNS
bool td_closing_begin(const struct td_policy *p, struct td_closing *c, int fd)
{
	struct td_fdent *e = td_fdtab_live(fd);
	const struct td_rule *r;

	if (e == NULL) {
		/* a born entry has nothing to do at close: its born bit
		 * goes, as close() drops a bare entry (not in a vfork()ed
		 * child: see below) */
		if (td_init_in_own_process())
			td_fdtab_forget(fd);
		return false;
	}
	/*
	 * In a vfork()ed child the table is the parent's, and the parent's fd
	 * stays open: hands off, before any branch below drops the entry
	 * (that would strip the parent's socket of its rule, or one of the
	 * library's own fds of its mark).
	 */
	if (!td_init_in_own_process())
		return false;
	r = td_decide_rule(p, &e->d);
	if ((atomic_load(&e->flags) & TD_SF_OWN) || r == NULL || !td__close_has_work(r, e)) {
		/* one of ours closed by the program, a socket no rule wants, or
		 * one whose options already say everything: just close */
		if (atomic_load(&e->flags) & TD_SF_OWN)
			td_spool_fd_closing(fd);
		td_fdtab_forget(fd);
		return false;
	}
	memset(c, 0, sizeof(*c));
	c->saved_errno = errno;
	c->fd = fd;
	c->pfd = -1;
	if (!td_fdtab_claim(fd, &c->s))
		return false;
	c->rule = td_decide_rule(p, &c->s.d);
	if (c->rule == NULL) {
		c->stale = true;
		(void)td_fdtab_share_leave(c->s.share);
	} else
		td__prepare(p, c);
	td_errno_set(c->saved_errno);
	return true;
}

/* Hand a drain to the worker; false when it must end here instead. */
TD_CHILD_RUNS
static bool td__drain(const struct td_policy *p, struct td_closing *c)
{
	struct td_drain_req req;
	bool eof = false;
	int seen = -1;

	td_real_shutdown(c->pfd, SHUT_WR);
	/*
	 * The facts read before the close already showed the peer's FIN in
	 * (CLOSE_WAIT): ours came second, nothing to ask.  (A server whose
	 * client closes as soon as it has the reply drains this way most of
	 * the time: three system calls fewer.)  Else the state after our FIN
	 * says who was first (td_predict_closer_of()), but for CLOSE: the
	 * peer answered ours at once (TIME_WAIT: we were first) or its FIN
	 * had come just before ours (gone: it was), or it reset.  Then the
	 * connection is over: nothing to wait for and nothing a close could
	 * still reset, so no read; and who was first is asked of the 4-tuple
	 * by whoever writes the line (td_predict_settle(); the spool's
	 * flusher, for a batch at once), as for a plain close.
	 */
	if (c->cf.passive_first) {
		c->cf.first_fin = TD_CLOSER_PASSIVE;
	} else if ((seen = td_info_state(c->pfd)) == TD_TCP_CLOSE) {
		td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
		c->ev.ask = TD_ASK_FIRST_FIN;
		return false;
	} else {
		c->cf.first_fin = td_predict_closer_of(seen);
	}
	td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
	/*
	 * The peer may have closed already: then nothing to wait for.  While
	 * the socket is still in FIN_WAIT1 or FIN_WAIT2 its FIN had not come
	 * when the state was read, and the worker's epoll (level-triggered)
	 * reports input or an EOF that comes after: no read here, it would
	 * only say EAGAIN.
	 */
	if (c->cf.passive_first && td_info_sock_read_to_end(&c->s))
		eof = true; /* the program read the peer's EOF itself: done */
	else if (seen != TD_TCP_FIN_WAIT1 && seen != TD_TCP_FIN_WAIT2)
		(void)td_info_discard_input(c->pfd, &eof);
	if (eof)
		return false;
	memset(&req, 0, sizeof(req));
	req.pfd = c->pfd;
	req.p = p;
	req.ev = c->ev;
	req.cf = c->cf;
	req.log = c->log;
	req.t_open_mono_us = c->s.d.t_open_mono_us;
	req.deadline_mono_us = td_clock_mono_us() + (int64_t)c->rule->drain_timeout_ms * 1000;
	return td_worker_drain(&req) == 0;
}

/*
 * The close a moment ago, when it may not have been the last reference
 * (td__holder_after()): one lookup answers both that and what check_after
 * and check_state would have asked (td__after_says_last()).
 */
static void td__holders_after_close(struct td_closing *c)
{
	bool held;
	int state = td__ask_after(&c->s, &held);

	(void)td__after_says_last(&c->cf, state, held);
	c->check_after = c->check_state = false;
	td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
}

TD_CHILD_RUNS
void td_closing_end(const struct td_policy *p, struct td_closing *c, bool ok)
{
	int err = errno;

	/* (the fd is gone even when close() failed: its copy leaves the count;
	 * a connection's copies left only by a root killed meanwhile are no
	 * one's: a listener's root, its server's parent, is not asked about
	 * at every child's close) */
	if (c->leave_after && td_fdtab_share_leave(c->s.share) && !c->stale &&
	    !((atomic_load(&c->s.flags) & TD_SF_CONNECTED) &&
	      td_fdtab_share_root_gone(c->s.share))) {
		/* another holder still has it: this close sent nothing */
		c->cf.last = false;
		c->check_after = c->check_state = false;
		td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
	}
	if (c->stale) {
		td_errno_set(ok ? c->saved_errno : err);
		return;
	}
	c->ev.err = ok ? 0 : err;
	if (c->pfd >= 0) {
		if (td__drain(p, c))
			goto out; /* the worker writes the event when done */
		td_ownfd_close(c->pfd, TD_OWN_DRAIN);
		c->pfd = -1;
	}
	if (c->log) {
		if (c->holder_after && ok)
			td__holders_after_close(c);
		if (c->check_after && !c->check_state && ok) {
			/* who was first: asked by whoever writes the line, the
			 * spool's flusher for a batch at once
			 * (td_predict_settle()) */
			c->ev.ask = TD_ASK_FIRST_FIN;
		} else if ((c->check_after || c->check_state) && ok) {
			td__settle_after(&c->cf, &c->s, c->check_after, c->check_state);
			td_closing_outcome(&c->ev, &c->cf, c->s.d.t_open_mono_us);
		}
		td_logw_event(p, &c->ev);
	}
out:
	td_errno_set(ok ? c->saved_errno : err);
}

/*
 * A zero linger's close of a socket whose FIN is out and not yet
 * acknowledged (FIN_WAIT1: the program shut down first) resets it only if
 * the peer's FIN has not come since the facts were read.  Once it has
 * (CLOSING: the FINs crossed), Linux's tcp_disconnect() drops the socket
 * with nothing sent; after the close the 4-tuple is gone either way, and
 * the log would say RST where none went (a CI run caught it: python3's
 * http.server under abort, its FIN and curl's crossed 11 us before the
 * close).  So the abort is made here, as the last thing before the real
 * close, by the same kernel function the close would call (connect() to
 * AF_UNSPEC), and the socket then says which it did: SO_ERROR ECONNRESET,
 * which tcp_disconnect() sets only where it sent the RST.  The real close
 * finds the socket CLOSE and sends nothing more.  True where the RST
 * went (nothing left to ask after the close); where none went,
 * cf->abort_quiet, and the lookup after the close still tells a socket
 * the peer's ACK took to TIME_WAIT first from one the abort dropped.
 *
 * Only for a close the library or the program makes with close() (an
 * fclose() flushes its buffer first, a dup2() may still fail), of the
 * last reference as the facts found it (counted, or the only holder
 * /proc knows of; never where the lookup after the close is to say
 * whether it was), with no input unread (that close resets in CLOSING
 * too), nor under a seccomp filter the library did not see installed
 * (td_init_filtered(): one that allows close() may still kill at a
 * connect()).  A pending error (the peer reset meanwhile) leaves it to
 * the close, as before.  The kernel counts such an RST in TcpOutRsts, not in
 * TcpExtTCPAbortOnData (README, Limits).
 */
__attribute__((noinline, cold))
static bool td__abort_told(int fd, struct td_close_facts *cf, const struct td_event *ev)
{
	struct sockaddr sa = { .sa_family = AF_UNSPEC };
	int saved = errno, err = 0;
	socklen_t len = sizeof(err);
	bool sent = false;

	if (!cf->last || ev->wire != TD_WIRE_RST || cf->state != TD_TCP_FIN_WAIT1 ||
	    cf->unread > 0 || cf->reset_sent || td_init_filtered())
		return false;
	if (td_real_sys_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 &&
	    td_real_sys3(SYS_connect, fd, &sa, sizeof(sa)) == 0) {
		len = sizeof(err);
		if (td_real_sys_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0) {
			sent = err == ECONNRESET;
			cf->abort_quiet = !sent;
		}
	}
	td_errno_set(saved);
	return sent;
}

TD_CHILD_RUNS
int td_closing_fd(const struct td_policy *p, int fd)
{
	struct td_closing c;
	int rc;

	if (!td_closing_begin(p, &c, fd))
		return td_real_close(fd);
	/* (check_state: a logged RST or CLOSING close; td__abort_told()) */
	if (c.check_state && !c.holder_after && c.pfd < 0 && td__abort_told(fd, &c.cf, &c.ev))
		c.check_state = false;
	rc = td_real_close(fd);
	td_closing_end(p, &c, rc == 0);
	return rc;
}

/*
 * Whether a stdio stream of the program on fd still holds output:
 * glibc's list of open streams, walked without its lock (only called
 * where no other thread of the program runs, with signals blocked).
 * exit() flushes every stream after all the destructors, the library's
 * included, and that flush writes only what a buffer holds (its
 * unbuffering only seeks, which a socket refuses): a socket under a
 * stream with output pending (an fdopen()ed connection whose reply is
 * still in its buffer) stays open until the kernel's close.  A
 * wide-oriented stream's buffer is not visible here, nor anything
 * without the list: yes.
 */
TD_CHILD_RUNS
static bool td__stdio_output_on(int fd)
{
	int n = 0;

	if (td_real_stdio_list == NULL)
		return true;
	for (FILE *f = *td_real_stdio_list; f != NULL; f = f->_chain) {
		if (++n > 65536)
			return true;
		if (f->_fileno == fd && (f->_mode > 0 || f->_IO_write_ptr > f->_IO_write_base))
			return true;
	}
	return false;
}

/* What the exit path may do to the program's fds itself: asked once
 * (td_init_exit_drop()), at the first fd that needs to know. */
struct td_exit_ctx {
	bool now;
	int drop; /* enum td_exit_drop, -1 not asked yet */
	bool blocked;
	sigset_t old;
};

/*
 * Whether nothing of the program can touch fd any more: the library may
 * close it, or send drain's FIN on it, itself.  A stdio stream on fd (an
 * inetd-style child's stdin and stdout, an fdopen()ed connection) is in
 * the way only with output still in its buffer: stdio's final flush
 * writes nothing else.
 */
TD_CHILD_RUNS
static bool td__exit_may_touch(struct td_exit_ctx *x, int fd)
{
	if (x->drop < 0)
		x->drop = (int)td_init_exit_drop(x->now, &x->old, &x->blocked);
	return x->drop == TD_DROP_ANY ||
	       (x->drop == TD_DROP_NO_STDIO && !td__stdio_output_on(fd));
}

/*
 * The other fds of this process on fd's socket (its share): whether each
 * may be closed by the exit path (check), or close them (claimed first,
 * as the close path does): a socket held on several fds (busybox httpd's
 * and git daemon's children: the connection on 0 and 1).
 */
TD_CHILD_RUNS
static bool td__exit_dups(struct td_exit_ctx *x, int fd, uint32_t share, bool close_them)
{
	for (int d = td_fdtab_prog_high(); d >= 0; d--) {
		struct td_sock o;

		if (d == fd || !td_fdtab_read(d, &o, NULL) || o.share != share ||
		    (atomic_load(&o.flags) & TD_SF_OWN))
			continue;
		if (!close_them) {
			if (!td__exit_may_touch(x, d))
				return false;
		} else if (td_fdtab_claim(d, &o)) {
			(void)td_real_close(d);
		}
	}
	return true;
}

/*
 * Whether the exit path may close fd itself for its event: nothing of
 * the program can touch it, it is not CLOSE already (in no table a
 * lookup reads), and its close would not wait.  A positive linger (the
 * program's SO_LINGER {1, N}) makes close() block until the peer has
 * acknowledged everything or N seconds pass, while the kernel's close
 * in the exit ignores it (inet_release(): not for an exiting task): the
 * library's close would hold the exit up to N seconds.
 */
TD_CHILD_RUNS
static bool td__exit_may_close(struct td_exit_ctx *x, int fd, const struct td_facts *f)
{
	return f->state != TD_TCP_CLOSE && !(f->linger_on && f->linger_secs > 0) &&
	       td__exit_may_touch(x, fd);
}

/*
 * At exit, sockets still open are closed by the kernel.  A graceful or
 * drain socket's unread input is discarded first, so that this close is
 * a FIN and not the kernel's unread-data RST; each gets an "exit" event.
 * In a forked child, inherited sockets the parent still holds are left
 * out: the child's exit does not end them.
 */
enum {
	TD_XS_KNOWN = 1,   /* met in td__exit_leave() */
	TD_XS_COUNTED = 2, /* its count had every holder */
	TD_XS_ENDED = 4,   /* this process's copies were the last */
	TD_XS_MULTI = 8,   /* more than one fd here */
	TD_XS_SEEN = 16,   /* its event decided (its highest fd) */
};

/*
 * What the exit path notes per share slot (TD_XS_*): for the few shares
 * a process usually holds, a short list on the stack, searched in turn;
 * past TD_XS_SMALL of them, a byte per slot in the bss, to which the
 * list moves when it fills.  Five bitsets of every slot on the stack
 * took 5 KiB of it, a page more that every exiting child of a
 * fork-per-connection server faulted in; the bss array is touched only
 * by a process that needs it, once (the exit path runs once,
 * td_init_at_exit()).
 */
#define TD_XS_SMALL 64
struct td__xset {
	unsigned n;
	uint16_t idx[TD_XS_SMALL];
	uint8_t fl[TD_XS_SMALL];
	uint8_t *all;
};
static uint8_t td__xs_all[TD_SHARE_MAX];

/*
 * The flags of slot i (i < TD_SHARE_MAX), added with none set when first
 * asked for: one search of the list per fd, never NULL.
 */
TD_CHILD_RUNS
static uint8_t *td__xs_at(struct td__xset *xs, uint32_t i)
{
	if (xs->all != NULL)
		return &xs->all[i];
	for (unsigned k = 0; k < xs->n; k++)
		if (xs->idx[k] == i)
			return &xs->fl[k];
	if (xs->n == TD_XS_SMALL) {
		/* the list is full: every slot's byte in the bss from now on */
		memset(td__xs_all, 0, sizeof(td__xs_all));
		for (unsigned k = 0; k < xs->n; k++)
			td__xs_all[xs->idx[k]] = xs->fl[k];
		xs->all = td__xs_all;
		return &xs->all[i];
	}
	xs->idx[xs->n] = (uint16_t)i;
	xs->fl[xs->n] = 0;
	return &xs->fl[xs->n++];
}

/* The flags of the slot of share (a socket of one fd: none, NULL). */
TD_CHILD_RUNS
static inline uint8_t *td__xs_of(struct td__xset *xs, uint32_t share)
{
	uint32_t i = share != 0 ? td_share_idx(share) : TD_SHARE_MAX;

	return i < TD_SHARE_MAX ? td__xs_at(xs, i) : NULL;
}

/*
 * Of a socket's dups (dup2() onto 0 and 1, say), the first met here (the
 * highest fd) speaks for all of them: false for the others, whose share
 * (xf: td__xs_of()) is already spoken for.
 */
TD_CHILD_RUNS
static inline bool td__xs_first(uint8_t *xf)
{
	if (xf == NULL)
		return true;
	if (*xf & TD_XS_SEEN)
		return false;
	*xf |= TD_XS_SEEN;
	return true;
}

/*
 * At exit every fd of this process goes: each copy leaves its share's
 * count now, all of them before any event is decided.  Per share slot:
 * whether it counted every holder (counted), whether this process's
 * copies were the last (ended), and whether it has more than one
 * (multi).  Fds closed behind the library's back
 * still have their entries, and leave the count here too.
 */
TD_CHILD_RUNS
static void td__exit_leave(struct td__xset *xs)
{
	for (int fd = td_fdtab_prog_high(); fd >= 0; fd--) {
		struct td_fdent *e = td_fdtab_live(fd);
		uint32_t share, flags;
		uint8_t *f;

		if (e == NULL)
			continue;
		flags = atomic_load(&e->flags);
		share = atomic_load(&e->share);
		if ((flags & TD_SF_OWN) || (f = td__xs_of(xs, share)) == NULL)
			continue;
		if (!(*f & TD_XS_KNOWN)) {
			*f |= TD_XS_KNOWN;
			if (td_holders_counted(flags, share))
				*f |= TD_XS_COUNTED;
		} else {
			*f |= TD_XS_MULTI;
		}
		if (td_fdtab_share_drop(share) == 0 ||
		    ((flags & TD_SF_CONNECTED) && td_fdtab_share_root_gone(share)))
			*f |= TD_XS_ENDED;
	}
}

TD_CHILD_RUNS
void td_closing_at_exit(const struct td_policy *p, bool now)
{
	struct td_exit_ctx x = {.now = now, .drop = -1};
	struct td__xset xs = {.n = 0, .all = NULL};

	td__exit_leave(&xs);

	for (int fd = td_fdtab_prog_high(); fd >= 0; fd--) {
		struct td_close_facts cf;
		struct td_sock s;
		const struct td_rule *r;
		struct td_facts f;
		struct td_event ev;
		int64_t unread;
		int origin;
		uint8_t *xf;
		bool last, work, after, ask, work_rule, by_count, single, mine;

		if (!td_fdtab_read(fd, &s, NULL))
			continue;
		if (atomic_load(&s.flags) & TD_SF_OWN)
			continue;
		r = td_decide_rule(p, &s.d);
		if (r == NULL)
			continue;
		/*
		 * Every fd of this process goes now: of a socket's dups
		 * (dup2() onto 0 and 1, say) the highest one speaks for the
		 * process.  Where the share counts every holder, the count
		 * (dropped for all of them first, td__exit_leave()) says
		 * whether it held the last reference; elsewhere, whether no
		 * other process holds it is asked.
		 */
		xf = td__xs_of(&xs, s.share);
		if (!td__xs_first(xf))
			continue;
		/*
		 * Nothing to write and no work to do (a rule that neither logs
		 * nor closes gracefully or drains: its linger was set when the
		 * socket was made): no facts to read, the kernel's close at
		 * exit is all there is.  Its count was left above.
		 */
		work_rule = r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN;
		if (!r->log && !work_rule)
			continue;
		/* counted holders: this process's copies took the count to zero */
		by_count = xf != NULL && (*xf & TD_XS_COUNTED);
		/*
		 * Counted, another process still holds it, and it came from
		 * before this process (a forked child's copy of its server's
		 * listener): no event below, so no facts to read.  A state
		 * read and, in a child that read no clock yet, a page fault
		 * fewer in every child that exits with its parent's listener
		 * open (Python's ForkingMixIn, a pre-forked worker's end).
		 */
		if (by_count && !(*xf & TD_XS_ENDED) && s.d.epoch < td_holders_birth_epoch)
			continue;
		/* the process's only fd of the socket now (its dups closed) */
		single = xf == NULL || !(*xf & TD_XS_MULTI);
		/*
		 * The process lets go of a logged socket itself, now rather
		 * than a moment later in the kernel's exit, so that the event
		 * says what that close did, as on the close path:
		 *  - code of the program may still run after this destructor
		 *    (other libraries' destructors, stdio's final flush, a
		 *    cookie stream's write), and a peer's FIN arriving
		 *    meanwhile would make the predicted first FIN (or an RST
		 *    on an ESTABLISHED socket) the second: an sshd under abort,
		 *    its peer closing as the session ended, was logged active;
		 *  - another process may let go of the socket at the same
		 *    moment (a forked child exits while its parent closes its
		 *    copy): asked before, each could see the other still
		 *    holding it, and neither would report the end.
		 * So it closes the fd, then asks the kernel what the close did
		 * (td__checks_after()) and, where another process may hold the
		 * socket and no count says whether one does (after), that
		 * too, in the same lookup: exact.  The work of
		 * graceful and drain (which must not touch a socket someone
		 * else still reads) is still decided by asking /proc before;
		 * in that race it is skipped, and the event says what the
		 * close then did.  A socket with other fds here (an
		 * inetd-style child's 0 and 1) has them closed with it.  Not
		 * one already CLOSE (in no table a lookup reads, as on the
		 * close path), nor one whose close would wait
		 * (td__exit_may_close()).  And only where the program can no
		 * longer touch the fds: no other thread of it runs, and (in
		 * exit(), whose destructors come before stdio's final flush)
		 * no stdio stream on them holds output.  Elsewhere the event
		 * is decided before the kernel's close, and the races above
		 * remain (README, Limits).
		 */
		after = single && !by_count && td__may_ask_after(r, &s);
		origin = td_fdtab_share_origin(s.share, fd);
		if (td_info_facts_sock(fd, &f, &s, r, !by_count && (!after || work_rule) && td_holders_needs_ino(&s)) !=
		    0)
			continue;
		after = after && td__exit_may_close(&x, fd, &f);
		ask = !by_count && (!after || work_rule);
		if (ask && f.ino == 0 && td_holders_needs_ino(&s))
			f.ino = td_info_ino(fd);
		unread = f.unread;
		if (by_count)
			last = (*xf & TD_XS_ENDED) != 0;
		else
			last = !ask || td_holders_sole(fd, origin, &s, f.ino);
		if (!last && !after && s.d.epoch < td_holders_birth_epoch)
			continue;
		/* the last (counted, asked, or held nowhere else): closed here,
		 * with its other fds here, the holders need no asking after */
		mine = !after && last && r->log && td__exit_may_close(&x, fd, &f) &&
		       (single || td__exit_dups(&x, fd, s.share, false));
		work = last && td__needs_work(r, &f);
		if (work) {
			if (f.unread > 0) {
				(void)td_info_discard_input(fd, NULL);
				(void)td_info_facts(fd, &f, false);
			}
			/*
			 * A drain's FIN goes out after the facts are read: read
			 * after it, they could show the peer's answering FIN
			 * already in (state CLOSE), which the event would then
			 * report as a reset instead of the FIN we sent.  Only
			 * where nothing of the program can write to the fd any
			 * more (the same test as for closing it, above): stdio
			 * writes a stream's buffered reply after every
			 * destructor, another thread may be writing its own.
			 * Elsewhere the kernel's close at exit sends that FIN,
			 * behind whatever they write.
			 */
			if (r->close == TD_CLOSE_DRAIN && td__exit_may_touch(&x, fd))
				td_real_shutdown(fd, SHUT_WR);
		}
		if (!r->log)
			continue;
		td__facts_event(&ev, p, &s, fd, TD_EV_EXIT, &f);
		td__facts(&cf, &s, r, &f, last, work);
		td__timeout_check(&cf, fd);
		if (after) {
			struct td_sock gone;
			bool held = true;
			int state = -1;

			/* (another thread's close meanwhile: no lookup, shared) */
			if (td_fdtab_claim(fd, &gone) && td_real_close(fd) == 0)
				state = td__ask_after(&s, &held);
			if (!td__after_says_last(&cf, state, held) &&
			    s.d.epoch < td_holders_birth_epoch)
				continue;
		} else if (mine) {
			struct td_sock gone;
			bool first_fin, state_after;

			td_closing_outcome(&ev, &cf, s.d.t_open_mono_us);
			td__checks_after(&ev, cf.state, &first_fin, &state_after);
			if (!single)
				(void)td__exit_dups(&x, fd, s.share, true);
			/* last before the real close, as on the close path */
			td__recheck_state(fd, &cf, &ev, s.d.t_open_mono_us);
			if (td_fdtab_claim(fd, &gone)) {
				if (state_after && td__abort_told(fd, &cf, &ev))
					state_after = false;
				if (td_real_close(fd) == 0)
					td__settle_after(&cf, &s, first_fin, state_after);
			}
		}
		td_closing_outcome(&ev, &cf, s.d.t_open_mono_us);
		ev.unread = unread;
		td_logw_event(p, &ev);
	}
	td_init_exit_undrop(now, &x.old, x.blocked);
}

struct td__reap {
	const struct td_policy *p;
	bool killed;
};

/*
 * The end of a connection whose last holder died without its exit hook:
 * the kernel closed it at the death, and the state it is in now says
 * what went on the wire (an orphan in FIN_WAIT or TIME_WAIT sent its FIN
 * first; LAST_ACK, second; one that is gone was reset, or its FINs are
 * done, and the event says unknown).  Not where the count missed a
 * holder and the dead process may have exited through a library of its
 * own (an exec()ed program: it reported its sockets itself), nor where
 * the kernel still finds a file on the socket: someone nobody counted
 * holds it.
 */
static void td__reaped_end(const struct td_share_end *end, bool exact, pid_t pid, void *arg)
{
	const struct td__reap *x = arg;
	const struct td_rule *r = td_decide_rule(x->p, &end->d);
	struct td_event ev;
	struct td_sock s;
	bool held = false;
	int state = -1;

	if (r == NULL || !r->log || !(x->killed || exact))
		return;
	memset(&s, 0, sizeof(s));
	s.d = end->d;
	s.local = end->local;
	s.remote = end->remote;
	atomic_store(&s.flags, end->flags);
	if (s.local.family != 0 && s.remote.family == s.local.family && s.remote.port != 0) {
		state = td__ask_after(&s, &held);
		if (state > 0 && held)
			return;
	}
	td_logw_event_from_sock(&ev, x->p, &s, -1, TD_EV_EXIT);
	ev.pid = ev.tid = pid;
	ev.why = TD_WHY_DIED;
	ev.wire = TD_WIRE_UNKNOWN;
	ev.closer = TD_CLOSER_NONE;
	ev.time_wait = -1;
	switch (state) {
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
	case TD_TCP_TIME_WAIT:
	case TD_TCP_CLOSING:
	case TD_TCP_LAST_ACK:
		ev.wire = TD_WIRE_FIN;
		ev.closer = (uint8_t)td_predict_closer_of(state);
		ev.time_wait = state != TD_TCP_LAST_ACK;
		break;
	case 0:
		/* gone: a zero linger (the rule's abort, the program's own)
		 * made the death's close an RST */
		if (r->close == TD_CLOSE_ABORT || end->linger0)
			ev.wire = TD_WIRE_RST;
		break;
	default:
		break;
	}
	ev.age_ms = td__age_ms(s.d.t_open_mono_us);
	td_logw_event(x->p, &ev);
}

/* A reaped child's records (pid), or with pid 0 the sweep's. */
static void td__reap(pid_t pid, bool killed)
{
	int saved = errno;
	struct td__reap x = {.p = td_init_active(), .killed = killed};

	if (x.p != NULL && td_init_in_own_process()) {
		if (pid > 0)
			td_fdtab_hrec_reaped(pid, td__reaped_end, &x);
		else
			td_fdtab_hrec_sweep(td__reaped_end, &x);
	}
	td_errno_set(saved);
}

/*
 * Whether a successful exec() ends fd's socket: close-on-exec, and no
 * copy left anywhere, as the share counts every holder (its close-on-exec
 * copies already left it), or as a socket that never left this fd (no
 * dup, no fork since it was made here).  Anything less sure logs nothing
 * (README, Limits).
 */
static bool td__exec_ends(int fd, const struct td_sock *s)
{
	int fl = td_real_sys_fcntl(fd, F_GETFD, 0);

	if (fl < 0 || !(fl & FD_CLOEXEC) || (atomic_load(&s->flags) & TD_SF_STICKY_SHARED))
		return false;
	if (s->share != 0)
		return td_fdtab_share_none_left(s->share);
	return td_holders_sole(fd, 0, s, 0);
}

/*
 * The kernel closes every close-on-exec fd inside a successful exec(),
 * after which nothing of this program runs, and the new program never held
 * them: so each logged connection it ends gets its "exec" event now, with
 * the facts read now (what a close would send, as for an exit event), into
 * the exec file, which the log gets only once the call succeeded
 * (spool.c).  The spool is written out first, so that a connection's
 * earlier lines come before its end.  A file target only: a datagram or
 * stderr cannot be taken back when the call fails.  Several fds of one
 * socket (dups, all close-on-exec): one event, for the highest.
 */
static void td__exec_event(const struct td_policy *p, int fd, const struct td_sock *s,
			   const struct td_rule *r, bool *flushed)
{
	struct td_close_facts cf;
	struct td_facts f;
	struct td_event ev;

	if (td_info_facts_sock(fd, &f, s, r, false) != 0)
		return;
	if (!*flushed && td_spool_exists())
		td_spool_flush();
	*flushed = true;
	td__facts_event(&ev, p, s, fd, TD_EV_EXEC, &f);
	td__facts(&cf, s, r, &f, true, false);
	td__timeout_check(&cf, fd);
	td_closing_outcome(&ev, &cf, s->d.t_open_mono_us);
	ev.unread = f.unread;
	td_logw_exec_event(p, &ev);
}

void td_closing_exec_prepare(void)
{
	const struct td_policy *p = td_init_active();
	struct td__xset xs = {.n = 0, .all = NULL};
	bool flushed = false;
	int saved = errno;

	/* the close-on-exec copies leave the counts first: what is left
	 * says which sockets the exec ends (td__exec_ends()) */
	td_holders_exec_prepare();
	if (p == NULL || p->log_target != TD_LOG_FILE || !td_init_in_own_process())
		return;
	for (int fd = td_fdtab_prog_high(); fd >= 0; fd--) {
		const struct td_rule *r;
		struct td_sock s;

		if (!td_fdtab_read(fd, &s, NULL) || (atomic_load(&s.flags) & TD_SF_OWN))
			continue;
		r = td_decide_rule(p, &s.d);
		/* (the dups already spoken for, as at exit) */
		if (r == NULL || !r->log || !td__exec_ends(fd, &s) ||
		    !td__xs_first(td__xs_of(&xs, s.share)))
			continue;
		td__exec_event(p, fd, &s, r, &flushed);
	}
	td_errno_set(saved);
}

void td_closing_exec_failed(void)
{
	td_spool_exec_failed();
	td_holders_exec_failed();
}

void td_closing_reaped(pid_t pid, bool killed)
{
	if (pid > 0)
		td__reap(pid, killed);
}

/*
 * The children nobody reaps through a hook (SIGCHLD ignored, so the
 * kernel reaps them): a record whose process is gone is released, its
 * ends reported as for a reaped child that exited (where the count was
 * exact: how it died is not known).  Each record's pid is the one its
 * parent's fork hook named; the pid is the event's.
 */
void td_closing_sweep(void)
{
	td__reap(0, false);
}
