/*
 * teardown: the background worker, one thread per process, started on
 * first need.  It does what must outlive the program's call:
 *  - drains: after a "drain" close returned, read and discard until the
 *    peer's FIN or drain_timeout_ms, then close and write the event;
 *  - rst_after_ms: reset a connection the program still holds;
 *  - leak_after_s: notice sockets left in CLOSE_WAIT;
 *  - the spool: write a file target's waiting lines out (spool.c).
 *
 * Requests reach it through fixed slot arrays claimed with compare-and-
 * swap, and an eventfd to wake it: a request is a few atomic stores and
 * one system call, safe in a signal handler.  A drain's one call puts its
 * private fd into the worker's epoll set itself (td_worker_drain()), so
 * the worker first wakes when the peer's FIN comes, not once to be told
 * and again for the FIN; under a stream of drains it wakes once a round
 * for all the FINs that came (td__round_wait()), and takes drains handed
 * over unwatched, reading each first (td__adopt()).  Starting the thread
 * is not signal-safe (pthread_create allocates), so it happens at the
 * first request; a request made before the thread could start is done
 * inline instead.
 * The thread blocks every signal, so program handlers never run on it.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "slots.h"
#include "teardown/predict.h"

#define TD_DRAINS 4096
#define TD_TIMERS 4096

/*
 * A drain slot: FREE, FILLING (the closing thread's alone), READY (handed
 * over unwatched: the worker adopts it), ACTIVE (watched, the worker's),
 * DONE (being finished).  FIRED: its epoll event came while it was still
 * FILLING; the closing thread arms it again (td_worker_drain()).
 */
enum { TD_SLOT_FREE = 0, TD_SLOT_FILLING, TD_SLOT_READY, TD_SLOT_ACTIVE, TD_SLOT_DONE,
       TD_SLOT_FIRED };
enum { TD_W_NONE = 0, TD_W_STARTING, TD_W_RUNNING };

struct td_dslot {
	_Atomic int state;
	/* the thread finishing it (state TD_SLOT_DONE), see flush_at_exit */
	_Atomic int32_t finisher;
	struct td_drain_req req;
};

struct td_tslot {
	_Atomic int state;
	int fd;
	uint32_t tag;
	int64_t when;
};

static struct td_dslot *td__drains;
static struct td_tslot td__timers[TD_TIMERS];
/*
 * One past the highest drain and timer slot ever claimed: every scan stops
 * there.  A claim takes the lowest free slot, so these stay small, and a
 * scan (or a forked child's reset) never touches the megabytes of slots
 * no connection used: in a fork-per-connection server that would be page
 * faults by the hundred in every child.
 */
/* read by a forked child first: on the page it writes anyway */
TD_CHILD_WRITTEN static _Atomic int td__drains_hi;
TD_CHILD_WRITTEN static _Atomic int td__timers_hi;

static void td__raise(_Atomic int *hi, int i)
{
	int h = atomic_load_explicit(hi, memory_order_relaxed);

	while (i + 1 > h && !atomic_compare_exchange_weak(hi, &h, i + 1))
		;
}
TD_CHILD_WRITTEN static _Atomic int td__wstate;
TD_CHILD_READ static _Atomic int td__efd = -1;
TD_CHILD_READ static _Atomic int td__epfd = -1;
/*
 * The latest time the worker looks at the slots' deadlines again (0: not
 * said yet), and a count of drains handed over, bumped once each is
 * watched or handed over unwatched (in rounds, or where it could not be
 * watched): a drain whose deadline comes sooner kicks the worker, and a
 * drain handed over while the worker was computing its wait makes it
 * compute again (td__main).  A drain times out after drain_timeout_ms,
 * 5 s unless set, so the worker, which looks at least once a second,
 * is almost never kicked for one.
 */
static _Atomic int64_t td__wake_at;
/* the worker works in rounds (td__round_wait()): drains are handed over
 * unwatched, and its next round reads them first */
static _Atomic bool td__in_rounds;
static _Atomic uint32_t td__drains_handed;
/* drain slots not FREE (td__drain_claim()) */
static _Atomic int td__drains_busy;
TD_CHILD_WRITTEN static _Atomic int td__leaks;
/* a drain or a timer was ever asked for: until then a round need not
 * walk their slot arrays (the spool wakes the worker often) */
static _Atomic int td__slots_used;

/* epoll_ctl as a system call: see td_real_sys_open() in real.h */
static int td__epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	return (int)td_real_sys(SYS_epoll_ctl, epfd, op, fd, (long)ev, 0, 0);
}

static void td__kick(void)
{
	uint64_t one = 1;
	int efd = atomic_load(&td__efd);

	/*
	 * Only while the number is still ours: a program that closed it, or
	 * dup2()ed its own file onto it, would get our 8 bytes in its data.
	 * Unkicked, the worker still wakes within a second (td__main).
	 */
	if (efd >= 0 && td_ownfd_is(efd, TD_OWN_WAKE))
		(void)td_real_sys3(__NR_write, efd, &one, sizeof(one));
}

/* ---- drains ---- */

/*
 * Finish a drain once: final facts, close the private fd, the event.
 * False when another thread took it first (or it moved on from
 * from_state).  With discard, its input is thrown away first (exit).
 */
static bool td__drain_finish(struct td_dslot *d, int from_state, bool eof, bool discard)
{
	/* an EOF is read after its one-shot event: nothing armed is left */
	bool armed = !eof;
	struct td_drain_req *r = &d->req;
	struct td_facts f;
	int expect = from_state;

	if (!atomic_compare_exchange_strong(&d->state, &expect, TD_SLOT_DONE))
		return false;
	atomic_store(&d->finisher, td_init_tid());
	/* only now: once another thread finished it, the fd is not ours */
	if (discard)
		(void)td_info_discard_input(r->pfd, NULL);
	/* read to the peer's EOF: nothing unread to ask about */
	if (td_info_facts_drained(r->pfd, &f, eof) == 0) {
		/* timed out with input still arriving: the close resets */
		r->cf.drain_cut = f.unread > 0 && f.state != TD_TCP_CLOSE;
		if (r->cf.drain_cut) {
			r->cf.unsent = f.unsent;
			r->cf.notsent = f.notsent;
		}
		if (f.bytes_received > r->cf.bytes_received)
			r->cf.bytes_received = f.bytes_received;
		if (f.bytes_out > r->cf.bytes_out)
			r->cf.bytes_out = f.bytes_out;
	}
	r->cf.eof_seen = eof;
	td_closing_outcome(&r->ev, &r->cf, r->t_open_mono_us);
	if (armed && atomic_load(&td__epfd) >= 0)
		(void)td__epoll_ctl(atomic_load(&td__epfd), EPOLL_CTL_DEL, r->pfd, NULL);
	td_ownfd_close(r->pfd, TD_OWN_DRAIN);
	if (r->log)
		td_logw_event(r->p, &r->ev);
	atomic_store(&d->finisher, 0);
	atomic_fetch_sub(&td__drains_busy, 1);
	atomic_store(&d->state, TD_SLOT_FREE);
	return true;
}

/*
 * A drain's private fd in the worker's epoll set: one-shot, so that the
 * event that reports the peer's FIN leaves it disarmed, and the drain's
 * end needs no EPOLL_CTL_DEL before its close (a registration outlives
 * the fd when another process still holds the socket; disarmed, it never
 * fires again).  op is EPOLL_CTL_ADD, or EPOLL_CTL_MOD to arm it again.
 */
static int td__arm(int epfd, int op, int pfd, int i)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
				 .data.u32 = (uint32_t)i};

	if (epfd < 0 || !td_ownfd_is(epfd, TD_OWN_EPOLL) || !td_ownfd_is(pfd, TD_OWN_DRAIN))
		return -EBADF;
	if (td__epoll_ctl(epfd, op, pfd, &ev) == 0)
		return 0;
	/* already there (its one-shot may have fired): arm it again */
	if (op == EPOLL_CTL_ADD && errno == EEXIST && td__epoll_ctl(epfd, EPOLL_CTL_MOD, pfd, &ev) == 0)
		return 0;
	return -errno;
}

/*
 * Read and drop what a drain's peer sent; finish it at EOF or on an
 * error.  True when it is finished (or no longer ACTIVE: not ours).  A
 * private fd the program took over (closed, or dup2()ed its own file
 * onto: the hooks dropped our mark) is never read: its input would be
 * the program's, thrown away.
 */
static bool td__drain_try(struct td_dslot *d)
{
	if (!td_ownfd_is(d->req.pfd, TD_OWN_DRAIN)) {
		(void)td__drain_finish(d, TD_SLOT_ACTIVE, false, false);
		return true;
	}
	for (int k = 0; k < 256; k++) {
		ssize_t n = td_real_recv(d->req.pfd, NULL, 1 << 30, MSG_TRUNC | MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		(void)td__drain_finish(d, TD_SLOT_ACTIVE, n == 0, false);
		return true;
	}
	return false;
}

/*
 * A drain's one-shot event fired: read (td__drain_try()), and arm it again
 * while the drain goes on.
 */
static void td__drain_read(int epfd, struct td_dslot *d, int i)
{
	if (td__drain_try(d))
		return;
	if (td__arm(epfd, EPOLL_CTL_MOD, d->req.pfd, i) != 0)
		(void)td__drain_finish(d, TD_SLOT_ACTIVE, false, false);
}

/* ---- timers (rst_after_ms) ---- */

/*
 * Reset the connection on fd if fd still holds the same socket.  The fd
 * is duplicated first and the entry's tag checked after: if the program
 * closed the socket and the number was reused meanwhile, the tag differs
 * and the new socket is left alone.
 */
static void td__fire(struct td_tslot *t)
{
	struct td_fdent *e = td_fdtab_peek(t->fd);
	int dfd;

	if (e == NULL || atomic_load(&e->tag) != t->tag)
		return;
	dfd = td_real_sys_dupfd(t->fd, td_init_proc.fd_base);
	if (dfd < 0)
		return;
	if (atomic_load(&e->tag) == t->tag)
		(void)td_faults_reset_now(dfd, t->fd, e);
	td_real_close(dfd);
}

/* ---- leaks ---- */

/*
 * Sockets left in CLOSE_WAIT.  The time is read per socket, after its
 * facts: a connection accepted while the scan runs must not be stamped
 * with a time from before it existed.
 */
static void td__leak_scan(void)
{
	const struct td_policy *p = atomic_load(&td_init_policy);
	int high = td_fdtab_prog_high();

	for (int fd = 0; fd <= high; fd++) {
		struct td_sock s;
		struct td_fdent *e;
		struct td_fdext *x;
		const struct td_rule *r;
		struct td_facts f;
		struct td_event ev;
		uint32_t tag;
		int64_t now;

		if (!td_fdtab_read(fd, &s, &tag))
			continue;
		if (atomic_load(&s.flags) & (TD_SF_OWN | TD_SF_LEAK_DONE))
			continue;
		r = td_decide_rule(p, &s.d);
		if (r == NULL || r->leak_after_s == 0 || !s.d.decided)
			continue;
		if (td_info_facts(fd, &f, false) != 0)
			continue;
		e = td_fdtab_peek(fd);
		if (e == NULL || atomic_load(&e->tag) != tag)
			continue; /* closed and reused while we looked */
		if (f.state != TD_TCP_CLOSE_WAIT)
			continue;
		now = td_clock_mono_us();
		if (s.cw_seen_mono_us == 0) {
			if ((x = td_fdtab_ext(fd)) != NULL)
				x->cw_seen_mono_us = now;
			continue;
		}
		if (now - s.cw_seen_mono_us < (int64_t)r->leak_after_s * 1000000)
			continue;
		atomic_fetch_or(&e->flags, TD_SF_LEAK_DONE);
		if (!r->log)
			continue;
		td_logw_event_from_sock(&ev, p, &s, fd, TD_EV_LEAK);
		ev.state = (int8_t)f.state;
		ev.age_ms = (now - s.d.t_open_mono_us) / 1000;
		ev.close_wait_ms = (now - s.cw_seen_mono_us) / 1000;
		td_logw_event(p, &ev);
	}
}

static int64_t td__leak_period(void)
{
	const struct td_policy *p = atomic_load(&td_init_policy);
	int64_t best = 1000000;

	for (uint32_t i = 0; p && i < p->n_rules; i++) {
		int64_t q = (int64_t)p->rules[i].leak_after_s * 1000000 / 4;

		if (p->rules[i].leak_after_s && q < best)
			best = q;
	}
	return best < 50000 ? 50000 : best;
}

/* ---- the thread ---- */

/*
 * Register drain slot i's private fd with epfd; true when watched, else
 * the drain is finished here.  A private fd the program took over (closed,
 * or dup2()ed its own file onto) is not ours to read from.
 */
static bool td__watch(int epfd, int i)
{
	struct td_dslot *d = &td__drains[i];

	if (td__arm(epfd, EPOLL_CTL_ADD, d->req.pfd, i) == 0)
		return true;
	(void)td__drain_finish(d, TD_SLOT_ACTIVE, false, false);
	return false;
}

/*
 * Take and watch drains handed over unwatched (td_worker_drain()).  In
 * rounds they come unwatched on purpose, a round after their FIN went
 * out: most peers' FINs are in by then, so a read ends them, and the
 * epoll_ctl() each would have cost is saved; the rest are watched.  Out
 * of rounds, no read first: epoll is level-triggered, so input or an EOF
 * already queued makes the next epoll_wait return it at once, and a read
 * now would most often just say EAGAIN.
 */
static void td__adopt(int epfd, bool read_first)
{
	for (int i = 0; td__drains != NULL && i < atomic_load(&td__drains_hi); i++) {
		i = td_slots_claim(&td__drains[0].state, sizeof(td__drains[0]), i,
				   atomic_load(&td__drains_hi),
				   TD_SLOT_READY, TD_SLOT_ACTIVE);
		if (i < 0)
			break;
		if (read_first && td__drain_try(&td__drains[i]))
			continue;
		(void)td__watch(epfd, i);
	}
	for (int i = 0; i < atomic_load(&td__timers_hi); i++) {
		i = td_slots_claim(&td__timers[0].state, sizeof(td__timers[0]), i,
				   atomic_load(&td__timers_hi),
				   TD_SLOT_READY, TD_SLOT_ACTIVE);
		if (i < 0)
			break;
	}
}

/* Expire drains and timers due by now; returns the next deadline. */
static int64_t td__expire(int64_t now)
{
	int64_t next = INT64_MAX;

	for (int i = 0; i < atomic_load(&td__drains_hi) && td__drains; i++) {
		struct td_dslot *d = &td__drains[i];

		/* acquire: the thread that handed it over made it ACTIVE
		 * (td_worker_drain()), after writing its request */
		if (atomic_load_explicit(&d->state, memory_order_acquire) != TD_SLOT_ACTIVE)
			continue;
		if (d->req.deadline_mono_us <= now)
			(void)td__drain_finish(d, TD_SLOT_ACTIVE, false, false);
		else if (d->req.deadline_mono_us < next)
			next = d->req.deadline_mono_us;
	}
	for (int i = 0; i < atomic_load(&td__timers_hi); i++) {
		struct td_tslot *t = &td__timers[i];

		if (atomic_load_explicit(&t->state, memory_order_relaxed) != TD_SLOT_ACTIVE)
			continue;
		if (t->when <= now) {
			td__fire(t);
			atomic_store(&t->state, TD_SLOT_FREE);
		} else if (t->when < next) {
			next = t->when;
		}
	}
	return next;
}

/*
 * New epoll and eventfd descriptors, with the live drains registered
 * again, for when the program closed or dup2()ed over ours (a close()
 * loop over every number, a dup2 onto a number it picked): epoll_wait()
 * on a number that is no longer our epoll fails at once, every time, and
 * the thread would spin.  Returns the new epoll fd (*efd: the new
 * eventfd), or -1 when none can be made now.
 */
static int td__rearm(int *efd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	int nefd = (int)td_real_sys2(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
	int nepfd = (int)td_real_sys1(SYS_epoll_create1, EPOLL_CLOEXEC);

	if (nefd < 0 || nepfd < 0) {
		if (nefd >= 0)
			td_real_close(nefd);
		if (nepfd >= 0)
			td_real_close(nepfd);
		return -1;
	}
	nefd = td_ownfd_mark(nefd, TD_OWN_WAKE);
	nepfd = td_ownfd_mark(nepfd, TD_OWN_EPOLL);
	(void)td__epoll_ctl(nepfd, EPOLL_CTL_ADD, nefd, &ev);
	/* the old ones are closed only if they are still ours */
	td_ownfd_close(atomic_exchange(&td__efd, nefd), TD_OWN_WAKE);
	td_ownfd_close(atomic_exchange(&td__epfd, nepfd), TD_OWN_EPOLL);
	for (int i = 0; i < atomic_load(&td__drains_hi) && td__drains; i++)
		if (atomic_load(&td__drains[i].state) == TD_SLOT_ACTIVE)
			(void)td__watch(nepfd, i);
	*efd = nefd;
	return nepfd;
}

/*
 * Rounds, under a stream of drains.  Blocked in epoll_wait(), the worker
 * wakes for every peer's FIN: nginx under "drain", ending some 25,000
 * connections a second, paid one and a half thread switches per request
 * for it.  When drains are handed over at TD_ROUND_MIN or more per
 * TD_ROUND_US, the worker waits for its eventfd alone (a kick: a sooner
 * deadline, the spool) or the end of the round, then takes every FIN that
 * came meanwhile with one epoll_wait() that does not block: one wake per
 * round, however many drains it ends.  The price: a drain then ends up to
 * TD_ROUND_US after its peer's FIN (its private fd stays open that long,
 * and its event's age_ms counts it).  Below that rate it blocks in
 * epoll_wait() and ends each drain as its FIN comes.
 */
#define TD_ROUND_US 1000
#define TD_ROUND_MIN 2

/*
 * Wait for the eventfd (a kick) at most wait_us; read it if it fired.  An
 * eventfd closed behind every hook (a raw system call) answers POLLNVAL at
 * once, every time: its mark is dropped (not closed: the number may be
 * the program's now), so that the next round makes new descriptors
 * (td__rearm()) instead of spinning.
 */
static void td__round_wait(int efd, int64_t wait_us)
{
	struct pollfd pf = {.fd = efd, .events = POLLIN};
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_us * 1000};
	uint64_t v;

	if (td_real_sys(SYS_ppoll, (long)&pf, 1, (long)&ts, 0, 8, 0) <= 0)
		return;
	if (pf.revents & POLLNVAL)
		td_fdtab_forget(efd);
	else
		(void)td_real_read(efd, &v, sizeof(v));
}

/* What epoll_wait() returned: the eventfd, or drains' one-shot events. */
static void td__events(int epfd, int efd, const struct epoll_event *evs, int n)
{
	for (int i = 0; i < n; i++) {
		uint32_t k = evs[i].data.u32;

		if (k == UINT32_MAX) {
			uint64_t v;

			/* the eventfd only wakes us: its count does not matter */
			(void)td_real_read(efd, &v, sizeof(v));
		} else if (k < TD_DRAINS) {
			struct td_dslot *d = &td__drains[k];
			int st = TD_SLOT_FILLING;

			/* still being handed over: its thread arms it again */
			if (atomic_compare_exchange_strong(&d->state, &st, TD_SLOT_FIRED))
				continue;
			if (st == TD_SLOT_ACTIVE)
				td__drain_read(epfd, d, (int)k);
		}
	}
}

static void *td__main(void *arg)
{
	int epfd = atomic_load(&td__epfd), efd = atomic_load(&td__efd);
	struct epoll_event evs[64];
	int64_t next_leak = 0, win_t = 0;
	uint32_t win_h = 0;
	bool rounds = false, more = false;

	(void)arg;
	td_init_guard = 1;
	{
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};

		(void)td__epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev);
	}
	for (;;) {
		int64_t now = td_clock_mono_us(), next, wait_ms;
		uint32_t handed = atomic_load(&td__drains_handed);
		int n;

		td_reload_tick();
		next = INT64_MAX;
		if (atomic_load_explicit(&td__slots_used, memory_order_acquire)) {
			td__adopt(epfd, rounds);
			next = td__expire(now);
		}
		{
			int64_t due = td_spool_tick(now);

			if (due < next)
				next = due;
		}
		if (atomic_load(&td__leaks)) {
			if (now >= next_leak) {
				td__leak_scan();
				next_leak = now + td__leak_period();
			}
			if (next_leak < next)
				next = next_leak;
		}
		wait_ms = next == INT64_MAX ? -1 : (next - now + 999) / 1000;
		/* at least once a second: see td__kick() and td__rearm() */
		if (wait_ms > 1000 || wait_ms < 0)
			wait_ms = 1000;
		/* rounds or not: the rate of drains over the last round or more */
		if (now - win_t >= TD_ROUND_US) {
			rounds = handed - win_h >=
				 TD_ROUND_MIN * (uint32_t)((now - win_t) / TD_ROUND_US);
			win_t = now;
			win_h = handed;
		}
		if (rounds && wait_ms > TD_ROUND_US / 1000)
			wait_ms = TD_ROUND_US / 1000;
		td_store_changed(&td__in_rounds, rounds);
		if (!td_ownfd_is(epfd, TD_OWN_EPOLL) || !td_ownfd_is(efd, TD_OWN_WAKE)) {
			int fresh = td__rearm(&efd);

			if (fresh < 0) {
				td_clock_sleep_ms(100);
				continue;
			}
			epfd = fresh;
		}
		/*
		 * Say when we look again, then check that no drain was handed
		 * over while next was computed: one that was may have a sooner
		 * deadline that the scan missed.  A drain handed over after
		 * this check compares its deadline with wake_at itself.
		 */
		atomic_store(&td__wake_at, now + wait_ms * 1000);
		/* (in rounds the next look is a round away at most: no need) */
		if (!rounds && atomic_load(&td__drains_handed) != handed)
			continue;
		if (rounds && !more)
			td__round_wait(efd, wait_ms * 1000);
		n = (int)td_real_sys(SYS_epoll_pwait, epfd, (long)evs, 64, rounds ? 0 : (int)wait_ms,
				     0, 8);
		more = n == 64;
		if (n < 0 && errno != EINTR) {
			/* still marked ours, yet no epoll: closed behind every
			 * hook (a raw system call).  Drop the mark without
			 * closing (the number may be the program's now) and
			 * start over with new descriptors. */
			td_fdtab_forget(epfd);
			continue;
		}
		td__events(epfd, efd, evs, n);
	}
	return NULL;
}

/*
 * Start the thread if this process has none.  Returns 0 when it runs, or
 * a negative errno when it does not (yet): the caller then does its work
 * inline.
 */
static int td__ensure(void)
{
	int expect = TD_W_NONE, efd, epfd, rc;
	pthread_attr_t attr;
	pthread_t th;
	sigset_t all, old;

	if (atomic_load(&td__wstate) == TD_W_RUNNING)
		return 0;
	if (!atomic_compare_exchange_strong(&td__wstate, &expect, TD_W_STARTING))
		return expect == TD_W_RUNNING ? 0 : -EAGAIN;
	if (td__drains == NULL) {
		void *m = mmap(NULL, sizeof(struct td_dslot) * TD_DRAINS,
			       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			goto fail;
		td__drains = m;
	}
	/* system calls, not libc: nothing interposed on the program's side
	 * (a sanitizer's fd bookkeeping) may see fds that only we use */
	efd = (int)td_real_sys2(SYS_eventfd2, 0, EFD_CLOEXEC | EFD_NONBLOCK);
	epfd = (int)td_real_sys1(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (efd < 0 || epfd < 0) {
		if (efd >= 0)
			td_real_close(efd);
		if (epfd >= 0)
			td_real_close(epfd);
		goto fail;
	}
	atomic_store(&td__efd, td_ownfd_mark(efd, TD_OWN_WAKE));
	atomic_store(&td__epfd, td_ownfd_mark(epfd, TD_OWN_EPOLL));
	/* (a forked child's copy is its parent's worker's) */
	atomic_store(&td__wake_at, 0);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&th, &attr, td__main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		td_ownfd_close_slot(&td__efd, TD_OWN_WAKE);
		td_ownfd_close_slot(&td__epfd, TD_OWN_EPOLL);
		goto fail;
	}
	atomic_store(&td__wstate, TD_W_RUNNING);
	return 0;
fail:
	atomic_store(&td__wstate, TD_W_NONE);
	return -EAGAIN;
}

/*
 * A free drain slot, FILLING now, or -1.  Next fit: from just past the
 * last one claimed round to it, and above the highest ever used only
 * when every slot below is taken (so the slots in use stay as few as
 * before); when the count of busy slots says so, at once.  Drains end
 * roughly in the order they began, so the slot past the last claim is
 * the likely free one.  Lowest-first walked past every pending drain: a
 * server whose slow clients keep a thousand drains pending paid a
 * thousand slots a close (make bench BENCH=calls holds N drains pending
 * by design: 5,500 instructions a close at N = 1,000 against 3,100 at 300).
 */
static int td__drain_claim(void)
{
	static _Atomic int next;
	int hi = atomic_load(&td__drains_hi), h = atomic_load_explicit(&next, memory_order_relaxed);
	int i = -1;

	if (h > hi)
		h = 0;
	if (atomic_load(&td__drains_busy) < hi) {
		i = td_slots_claim(&td__drains[0].state, sizeof(td__drains[0]), h, hi, TD_SLOT_FREE,
				   TD_SLOT_FILLING);
		if (i < 0)
			i = td_slots_claim(&td__drains[0].state, sizeof(td__drains[0]), 0, h,
					   TD_SLOT_FREE, TD_SLOT_FILLING);
	}
	if (i < 0)
		i = td_slots_claim(&td__drains[0].state, sizeof(td__drains[0]), hi, TD_DRAINS,
				   TD_SLOT_FREE, TD_SLOT_FILLING);
	if (i < 0)   /* (a count read while slots were being freed) */
		i = td_slots_claim(&td__drains[0].state, sizeof(td__drains[0]), 0, hi,
				   TD_SLOT_FREE, TD_SLOT_FILLING);
	if (i >= 0) {
		atomic_fetch_add(&td__drains_busy, 1);
		atomic_store_explicit(&next, i + 1, memory_order_relaxed);
	}
	return i;
}

int td_worker_drain(const struct td_drain_req *req)
{
	int saved = errno, i;

	if (td__ensure() != 0) {
		td_errno_set(saved);
		return -EAGAIN;
	}
	i = td__drain_claim();
	if (i >= 0) {
		struct td_dslot *d = &td__drains[i];
		int st = TD_SLOT_FILLING, epfd;
		bool kick = false, unwatched = false;
		int64_t at;

		td__raise(&td__drains_hi, i);
		d->req = *req;
		atomic_store_explicit(&td__slots_used, 1, memory_order_release);
		/*
		 * Watched from here, while the slot is still ours alone
		 * (FILLING: no scan of the worker's touches it, so nobody can
		 * have finished it and closed the fd meanwhile): the worker's
		 * next wake is the peer's FIN, or its next look at the
		 * deadlines.  Past FILLING this thread touches epoll no more
		 * (the slot may be finished and reused any time): where it is
		 * not watched as it should be, it goes to the worker READY, to
		 * be adopted and watched (again) when kicked.  That is when
		 *  - it is not watched at all (our epoll fd was taken over);
		 *  - its one-shot event came before it was ACTIVE (FIRED);
		 *  - the worker replaced its epoll fd meanwhile (td__rearm(),
		 *    whose scan for active slots may have come first).
		 * (Making a slot READY that the worker already watches, or took
		 * over and finished and another drain reused, only makes the
		 * worker watch it again: harmless.)
		 */
		epfd = atomic_load(&td__epfd);
		if (atomic_load(&td__in_rounds)) {
			/* the worker's next round reads it, then watches it if
			 * its peer's FIN is not in yet (td__adopt()) */
			atomic_store_explicit(&d->state, TD_SLOT_READY, memory_order_release);
			unwatched = true;
		} else if (td__arm(epfd, EPOLL_CTL_ADD, req->pfd, i) != 0) {
			atomic_store_explicit(&d->state, TD_SLOT_READY, memory_order_release);
			kick = true;
		} else if (!atomic_compare_exchange_strong(&d->state, &st, TD_SLOT_ACTIVE)) {
			/* FIRED: only this thread moves it on from there */
			atomic_store_explicit(&d->state, TD_SLOT_READY, memory_order_release);
			kick = true;
		} else if (atomic_load(&td__epfd) != epfd) {
			st = TD_SLOT_ACTIVE;
			kick = atomic_compare_exchange_strong(&d->state, &st, TD_SLOT_READY);
		}
		atomic_fetch_add(&td__drains_handed, 1);
		/*
		 * Handed over unwatched for a round that the worker, leaving
		 * rounds meanwhile, will not make: it blocks in epoll_wait()
		 * next, and this drain would wait for its timeout.  The worker
		 * clears td__in_rounds, then looks at the count of drains
		 * handed over; this thread bumped it, then looks at the flag
		 * (all seq_cst): one of the two sees the other, and the worker
		 * goes round again or is kicked.
		 */
		if (unwatched && !atomic_load(&td__in_rounds))
			kick = true;
		at = atomic_load(&td__wake_at);
		if (kick || at == 0 || req->deadline_mono_us < at)
			td__kick();
	}
	td_errno_set(saved);
	return i >= 0 ? 0 : -ENOSPC;
}

int td_worker_timer(int fd, uint32_t tag, int64_t when_mono_us)
{
	int saved = errno, i;

	if (td__ensure() != 0) {
		td_errno_set(saved);
		return -EAGAIN;
	}
	i = td_slots_claim(&td__timers[0].state, sizeof(td__timers[0]), 0, TD_TIMERS,
			   TD_SLOT_FREE, TD_SLOT_FILLING);
	if (i >= 0) {
		td__raise(&td__timers_hi, i);
		td__timers[i].fd = fd;
		td__timers[i].tag = tag;
		td__timers[i].when = when_mono_us;
		atomic_store_explicit(&td__timers[i].state, TD_SLOT_READY, memory_order_release);
		atomic_store_explicit(&td__slots_used, 1, memory_order_release);
		td__kick();
	}
	td_errno_set(saved);
	return i >= 0 ? 0 : -ENOSPC;
}

bool td_worker_exists(void)
{
	return atomic_load(&td__wstate) != TD_W_NONE;
}

int td_worker_start(void)
{
	int saved = errno, rc = td__ensure();

	td_errno_set(saved);
	return rc;
}

void td_worker_wake(void)
{
	int saved = errno;

	td__kick();
	td_errno_set(saved);
}

void td_worker_watch_policy(void)
{
	int saved = errno;

	if (td__ensure() == 0)
		td__kick();
	td_errno_set(saved);
}

void td_worker_watch_leaks(void)
{
	int saved = errno;

	if (!atomic_exchange(&td__leaks, 1) || atomic_load(&td__wstate) != TD_W_RUNNING) {
		(void)td__ensure();
		td__kick();
	}
	td_errno_set(saved);
}

/*
 * In a forked child there is no worker thread.  The private descriptors
 * of the parent's drains were copied into the child: closed here, or the
 * child would keep those connections alive after the parent's drain ends.
 */
TD_CHILD_RUNS
void td_worker_after_fork_child(void)
{
	/* what already holds its value is not written (td_store_changed);
	 * the loops read the count of slots first, on a page the parent
	 * touches, not td__drains, on one a child would fault in to read */
	if (atomic_load(&td__wstate) == TD_W_NONE && atomic_load(&td__drains_hi) == 0 &&
	    atomic_load(&td__timers_hi) == 0 && atomic_load(&td__efd) < 0 &&
	    atomic_load(&td__epfd) < 0 && atomic_load(&td__leaks) == 0)
		return; /* the parent never used the worker: nothing to undo */
	td_store_changed(&td__wstate, TD_W_NONE);
	td_store_changed(&td__in_rounds, false);
	td_ownfd_close_slot(&td__efd, TD_OWN_WAKE);
	td_ownfd_close_slot(&td__epfd, TD_OWN_EPOLL);
	for (int i = 0; i < atomic_load(&td__drains_hi) && td__drains; i++) {
		int st = atomic_load(&td__drains[i].state);

		if (st == TD_SLOT_READY || st == TD_SLOT_ACTIVE)
			td_ownfd_close(td__drains[i].req.pfd, TD_OWN_DRAIN);
		td_store_changed(&td__drains[i].state, TD_SLOT_FREE);
	}
	td_store_changed(&td__drains_busy, 0);
	for (int i = 0; i < atomic_load(&td__timers_hi); i++)
		td_store_changed(&td__timers[i].state, TD_SLOT_FREE);
	td_store_changed(&td__leaks, 0);
}

/*
 * Why it waits: the worker may be finishing a drain at this very moment
 * (its peer's FIN came as the program exited).  Passing over that slot,
 * the process went on to exit_group() while the worker was between
 * taking the drain and writing its event, and the line was lost (a CI
 * run of test_paths::test_drain_on_every_path caught it: the FIN on the
 * wire and TIME_WAIT in ss, no close event).  A slot that moves on under
 * us (the worker took a ready one) is looked at again.  The wait is
 * bounded (a second), and never for a drain this thread is finishing
 * itself (an exit() from a signal handler that interrupted it).
 */
TD_CHILD_RUNS
void td_worker_flush_at_exit(void)
{
	int32_t me = td_init_tid();

	for (int i = 0; i < atomic_load(&td__drains_hi) && td__drains; i++) {
		struct td_dslot *d = &td__drains[i];

		for (int waited_ms = 0;;) {
			int st = atomic_load(&d->state);

			if (st == TD_SLOT_READY || st == TD_SLOT_ACTIVE) {
				if (td__drain_finish(d, st, false, true))
					break;
				continue;
			}
			if (st != TD_SLOT_DONE || atomic_load(&d->finisher) == me ||
			    waited_ms >= 1000)
				break;
			td_clock_sleep_ms(1);
			waited_ms++;
		}
	}
}
