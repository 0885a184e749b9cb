/*
 * teardown: the work around every close of a tracked socket, whichever
 * call closes it (close, fclose, dup2/dup3 over it, close_range,
 * closefrom, syscall(SYS_close), exit).
 *
 * prepare: read the facts (state, unread and unsent bytes, linger), find
 *          out whether this close drops the last reference, and do what
 *          must happen before the fd goes: discard queued input
 *          ("graceful"), keep a private reference ("drain");
 * the real call, made by the hook, exactly once;
 * finish:  a drain's shutdown(SHUT_WR) and background read to EOF, and
 *          the close event, whose wire/why/closer/time_wait are predicted
 *          from the facts (shim/core/predict.c).
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

/* Fill the close-time fields of ev from facts and the predicted outcome. */
static void td__outcome(struct td_event *ev, const struct td_sock *s,
			const struct td_rule *r, const struct td_facts *f,
			int64_t unread_before, bool last, bool policy_changed)
{
	struct td_close_facts cf;
	struct td_close_outcome o;
	uint32_t flags = atomic_load(&s->flags);
	int64_t in = f->bytes_in;

	memset(&cf, 0, sizeof(cf));
	cf.state = f->state;
	cf.unread = f->unread;
	cf.unsent = f->unsent;
	cf.notsent = f->notsent;
	cf.backlog = f->backlog;
	cf.linger_on = f->linger_on;
	cf.linger_secs = f->linger_secs;
	cf.last = last;
	cf.connected = (flags & TD_SF_CONNECTED) != 0;
	cf.passive_first = (flags & TD_SF_PASSIVE) != 0 ||
			   f->state == TD_TCP_CLOSE_WAIT || f->state == TD_TCP_LAST_ACK;
	cf.our_fin_sent = (flags & TD_SF_SHUT_WR) != 0;
	cf.rst_cause = td__rst_cause(s, r);
	cf.policy_changed = policy_changed;
	cf.reset_sent = (flags & TD_SF_RESET_SENT) != 0;
	cf.reset_lost = s->reset_lost;
	cf.reset_in_flight = s->reset_in_flight;
	td_predict_close(&cf, &o);
	ev->state = (int8_t)f->state;
	ev->wire = (uint8_t)o.wire;
	ev->why = (uint8_t)o.why;
	ev->closer = (uint8_t)o.closer;
	ev->time_wait = (int8_t)o.time_wait;
	ev->lost = o.lost;
	ev->lost_in_flight = o.lost_in_flight;
	ev->unread = unread_before;
	ev->unsent = f->unsent;
	/*
	 * Closed after both FINs: tcpi_bytes_received still counts the peer's
	 * FIN as a byte.  info.c takes it off only in the states that prove a
	 * FIN came in, since a CLOSE may also follow a reset, which has none;
	 * the prediction tells the two apart.
	 */
	if (f->state == TD_TCP_CLOSE && o.why == TD_WHY_FIN_SENT && in > 0 &&
	    !cf.reset_sent)
		in--;
	ev->bytes_in = in > s->reset_bytes_in ? in : s->reset_bytes_in;
	ev->bytes_out = f->bytes_out > s->reset_bytes_out ? f->bytes_out : s->reset_bytes_out;
	ev->age_ms = (td_mono_us() - s->t_open_mono_us) / 1000;
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
static bool td__close_has_work(const struct td_policy *p, const struct td_sock *s)
{
	const struct td_rule *r = td_sock_rule(p, s);

	return r != NULL &&
	       (r->log || r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN ||
		s->share != 0 ||
		(atomic_load(&s->flags) & TD_SF_BYTES_FAULT) ||
		(r->has_fault && r->fault.close_delay_ms));
}

/*
 * A FIN predicted as the first one (the state was ESTABLISHED when read)
 * may have become the answer to a peer's FIN that arrived just before the
 * real call.  The kernel's view of the connection afterwards settles it;
 * only worth the round trip when the event is written.
 */
static void td__check_first_fin(struct td_closing *c, int fd)
{
	int closer;

	if (!c->log || c->ev.wire != TD_WIRE_FIN || c->ev.closer != TD_CLOSER_ACTIVE)
		return;
	closer = td_diag_closer(fd, &c->s.local, &c->s.remote);
	if (closer == TD_CLOSER_PASSIVE) {
		c->ev.closer = TD_CLOSER_PASSIVE;
		c->ev.time_wait = 0;
	} else if (closer == TD_CLOSER_SIMULTANEOUS) {
		c->ev.closer = TD_CLOSER_SIMULTANEOUS;
	}
}

/*
 * An RST predicted after our FIN went out (FIN_WAIT1, FIN_WAIT2: the
 * program shut down first, then closed with a zero linger or unread
 * input) goes only if the peer's FIN has not come back meanwhile: once it
 * has, the socket is already in TIME_WAIT and the close sends nothing.
 * Afterwards the kernel says which: the 4-tuple in TIME_WAIT (no RST, we
 * hold it) or gone (the RST went).
 */
static void td__check_rst(struct td_closing *c)
{
	if (td_diag_state(&c->s.local, &c->s.remote) != TD_TCP_TIME_WAIT)
		return;
	c->ev.wire = TD_WIRE_NONE;
	c->ev.why = TD_WHY_FIN_SENT;
	c->ev.closer = TD_CLOSER_ACTIVE;
	c->ev.time_wait = 1;
	c->ev.lost = c->ev.lost_in_flight = 0;
}

void td_close_prepare(const struct td_policy *p, struct td_closing *c, int fd,
		      const struct td_sock *s, int path)
{
	struct td_facts f;
	bool in_proc_shared, last, changed = false;
	int rc;

	memset(c, 0, sizeof(*c));
	c->s = *s;
	c->fd = fd;
	c->pfd = -1;
	c->rule = td_sock_rule(p, s);
	in_proc_shared = td_share_leave(s->share);
	if (c->rule == NULL)
		return;
	if (c->rule->has_fault && c->rule->fault.close_delay_ms)
		td_sleep_ms(c->rule->fault.close_delay_ms);
	if (atomic_load(&s->flags) & TD_SF_BYTES_FAULT)
		atomic_fetch_sub(&td_bytes_faults_live, 1);
	rc = td_facts_read_sock(fd, &f, s, c->rule, td_sock_needs_ino(s));
	if (rc < 0) {
		/* not this socket any more (closed behind our back): hands off */
		c->stale = true;
		return;
	}
	c->log = c->rule->log;
	c->unread_before = f.unread;
	last = !in_proc_shared && td_sock_sole_holder(fd, s, f.ino);
	if (last && td__needs_work(c->rule, &f)) {
		/* graceful changes the outcome only when it undoes something */
		changed = c->rule->close == TD_CLOSE_DRAIN || f.unread > 0 ||
			  c->s.app_linger_onoff != 0;
		if (c->rule->close == TD_CLOSE_DRAIN) {
			int pfd = fcntl(fd, F_DUPFD_CLOEXEC, td_proc.fd_base);

			if (pfd >= 0)
				c->pfd = td_own_fd(pfd);
		}
		if (f.unread > 0)
			(void)td_discard_input(fd);
		if (c->pfd < 0 || f.unread > 0)
			(void)td_facts_read(fd, &f, false);
		if (c->pfd >= 0) {
			/* what the drain will do: FIN behind the data, no RST */
			f.unread = 0;
			f.linger_on = false;
		}
	} else if (last && c->rule->close == TD_CLOSE_GRACEFUL) {
		changed = c->s.app_linger_onoff != 0;
	}
	td_event_from_sock(&c->ev, p, s, fd, TD_EV_CLOSE);
	td__outcome(&c->ev, s, c->rule, &f, c->unread_before, last, changed);
	c->check_rst = c->log && c->ev.wire == TD_WIRE_RST &&
		       (f.state == TD_TCP_FIN_WAIT1 || f.state == TD_TCP_FIN_WAIT2);
	/*
	 * A FIN predicted as the first one may meet a peer's FIN arriving just
	 * before the real close.  This is the last reference, nothing is left
	 * unread and no zero linger is set, so the close would send exactly a
	 * FIN: sending it now with shutdown(SHUT_WR) lets the state that
	 * follows say who was first (FIN_WAIT1: we were; LAST_ACK: the peer
	 * was), for the price of two cheap calls.
	 */
	if (c->pfd < 0 && last && c->log && c->ev.wire == TD_WIRE_FIN &&
	    c->ev.closer == TD_CLOSER_ACTIVE) {
		/* fclose() still has the stream's buffer to flush: its FIN must
		 * wait, and the kernel is asked afterwards instead */
		if (path == TD_PATH_FCLOSE)
			c->check_after = true;
		else if (td_real_shutdown(fd, SHUT_WR) == 0)
			td__check_first_fin(c, fd);
	}

	/* the closing thread, even when the worker writes the event later */
	c->ev.tid = td_gettid();
}

void td_close_finish(const struct td_policy *p, struct td_closing *c, int rc,
		     int err)
{
	if (c->rule == NULL || c->stale)
		return;
	c->ev.err = rc == 0 ? 0 : err;
	if (c->pfd >= 0) {
		struct td_drain_req req;
		char probe;

		td_real_shutdown(c->pfd, SHUT_WR);
		td__check_first_fin(c, c->pfd);
		(void)td_discard_input(c->pfd);
		/* The peer may have closed already: then nothing to wait for. */
		if (recv(c->pfd, &probe, 1, MSG_DONTWAIT | MSG_PEEK) != 0) {
			memset(&req, 0, sizeof(req));
			req.pfd = c->pfd;
			req.p = p;
			req.ev = c->ev;
			req.log = c->log;
			req.t_open_mono_us = c->s.t_open_mono_us;
			req.deadline_mono_us =
				td_mono_us() + (int64_t)c->rule->drain_timeout_ms * 1000;
			if (td_worker_drain(&req) == 0)
				return; /* the worker writes the event when done */
		}
		td_own_close(c->pfd);
		c->pfd = -1;
	}
	if (c->log) {
		if (c->check_after)
			td__check_first_fin(c, -1);
		if (c->check_rst && rc == 0)
			td__check_rst(c);
		td_log(p, &c->ev);
	}
}

int td_close_fd(const struct td_policy *p, int fd, int path)
{
	struct td_sock *e = td_fd_live(fd);
	struct td_closing c;
	struct td_sock s;
	int saved, rc, err;

	if (e == NULL)
		return td_real_close(fd);
	/*
	 * In a vfork()ed child the table is the parent's, and the parent's fd
	 * stays open: hands off, before any branch below drops the entry
	 * (that would strip the parent's socket of its rule, or one of the
	 * library's own fds of its mark).
	 */
	if (!td_in_own_process())
		return td_real_close(fd);
	if ((atomic_load(&e->flags) & TD_SF_OWN) || td_sock_rule(p, e) == NULL) {
		/* one of ours closed by the program, or a socket no rule wants */
		td_fd_forget(fd);
		return td_real_close(fd);
	}
	if (!td__close_has_work(p, e)) {
		/* the socket's options already say everything: just close */
		td_fd_forget(fd);
		return td_real_close(fd);
	}
	saved = errno;
	if (!td_fd_claim(fd, &s))
		return td_real_close(fd);
	td_close_prepare(p, &c, fd, &s, path);
	errno = saved;
	rc = td_real_close(fd);
	err = errno;
	td_close_finish(p, &c, rc, err);
	errno = rc == 0 ? saved : err;
	return rc;
}

/*
 * At exit, sockets still open are closed by the kernel.  A graceful or
 * drain socket's unread input is discarded first, so that this close is
 * a FIN and not the kernel's unread-data RST; each gets an "exit" event.
 * In a forked child, inherited sockets the parent still holds are left
 * out: the child's exit does not end them.
 */
void td_exit_scan(const struct td_policy *p) TD_HIDDEN;
void td_exit_scan(const struct td_policy *p)
{
	int high = td_fd_high();

	for (int fd = 0; fd <= high; fd++) {
		struct td_sock s;
		const struct td_rule *r;
		struct td_facts f;
		struct td_event ev;
		bool last;

		if (!td_fd_read(fd, &s, NULL))
			continue;
		if (atomic_load(&s.flags) & TD_SF_OWN)
			continue;
		r = td_sock_rule(p, &s);
		if (r == NULL || td_facts_read(fd, &f, td_sock_needs_ino(&s)) != 0)
			continue;
		int64_t unread = f.unread;
		bool work;

		last = s.share == 0 && td_sock_sole_holder(fd, &s, f.ino);
		if (!last && s.epoch < td_birth_epoch)
			continue;
		work = last && td__needs_work(r, &f);
		if (work) {
			if (f.unread > 0) {
				(void)td_discard_input(fd);
				(void)td_facts_read(fd, &f, false);
			}
			/*
			 * A drain's FIN goes out after the facts are read: read
			 * after it, they could show the peer's answering FIN
			 * already in (state CLOSE), which the event would then
			 * report as a reset instead of the FIN we sent.
			 */
			if (r->close == TD_CLOSE_DRAIN)
				td_real_shutdown(fd, SHUT_WR);
		}
		if (!r->log)
			continue;
		td_event_from_sock(&ev, p, &s, fd, TD_EV_EXIT);
		td__outcome(&ev, &s, r, &f, unread, last, work);
		td_log(p, &ev);
	}
}
