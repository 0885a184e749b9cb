/*
 * teardown: deciding a socket's rule and writing the decision into the
 * socket itself.
 *
 * The decision is made once, at bind (for SO_REUSEADDR), connect or
 * accept, and kept in the fd table; close() then costs a lookup.  The
 * actions are put into the socket as early as the kernel allows, because
 * many ways of ending a socket never reach a close() hook (fclose's
 * internal close, dup2 over it, close_range, exit): SO_LINGER {1,0} for
 * "abort" and for a faulted RST, SO_LINGER off for "graceful"/"drain",
 * SO_REUSEADDR, TCP_LINGER2.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/mem.h"
#include "teardown/fault.h"
#include "teardown/fmt.h"

/* the parent of a fork-per-connection server writes it at every accept:
 * on the page it writes after every fork anyway */
TD_CHILD_WRITTEN_LINE static _Atomic uint64_t td__conn_seq;

/*
 * The policy an entry was decided under (a live reload applies to
 * connections decided after it).  p, the policy in force, is what the
 * caller holds; the entry's own generation wins.
 */
static const struct td_policy *td__policy_of(const struct td_policy *p,
					     const struct td_sock_data *d)
{
	const struct td_policy *q = td_reload_policy_of(d);

	return q != NULL ? q : p;
}

/*
 * The rule of an entry, in the policy it was decided under.  Its index
 * names either a rule of that policy (0 to n_rules - 1) or that rule's
 * observing twin (n_rules + the rule's index): the rule as the log sees
 * it, with close "pass" and nothing put into the socket
 * (td_decide_make_observers()).  A socket the library may watch but must
 * not act on (one inherited without being handed over: its parent may
 * still use it) gets the twin, and every path (close, exit, shutdown,
 * setsockopt, the worker) then treats it as observed, with no test of its
 * own.
 */
TD_CHILD_RUNS
const struct td_rule *td_decide_rule(const struct td_policy *p,
				   const struct td_sock_data *d)
{
	int r = d->decided ? d->rule : d->bind_rule;
	const struct td_policy *q = td__policy_of(p, d);

	if (q == NULL || r < 0)
		return NULL;
	if ((uint32_t)r < q->n_rules)
		return &q->rules[r];
	if (q->observe != NULL && (uint32_t)r - q->n_rules < q->n_rules &&
	    q->observe[r - q->n_rules].log)
		return &q->observe[r - q->n_rules];
	return NULL;
}

bool td_decide_observed(const struct td_policy *p, const struct td_sock_data *d)
{
	const struct td_policy *q = td__policy_of(p, d);

	return q != NULL && d->decided && d->rule >= 0 && (uint32_t)d->rule >= q->n_rules;
}

/* Whether rule r puts anything into a socket beyond what "pass" does. */
static bool td__acts(const struct td_rule *r)
{
	return r->close != TD_CLOSE_PASS || r->shutdown != TD_SHUT_PASS || r->has_fault ||
	       r->reuseaddr || r->fin_timeout_s > 0 || r->leak_after_s;
}

void td_decide_make_observers(struct td_policy *p)
{
	bool any = false;

	for (uint32_t i = 0; i < p->n_rules && !any; i++)
		any = p->rules[i].log && td__acts(&p->rules[i]);
	if (!any || p->n_rules > INT32_MAX / 2)
		return;
	p->observe = td_mem_calloc(p->n_rules, sizeof(*p->observe));
	if (p->observe == NULL)
		return; /* such sockets are left alone, as before */
	for (uint32_t i = 0; i < p->n_rules; i++) {
		struct td_rule *o = &p->observe[i];

		if (!p->rules[i].log || !td__acts(&p->rules[i]))
			continue; /* log false: never used */
		*o = p->rules[i];
		o->close = TD_CLOSE_PASS;
		o->shutdown = TD_SHUT_PASS;
		o->has_fault = false;
		memset(&o->fault, 0, sizeof(o->fault));
		o->reuseaddr = false;
		o->fin_timeout_s = -1;
		o->leak_after_s = 0;
	}
}

struct td_fdent *td_decide_adopt(int fd, int family)
{
	/* Not seen created: it may be inherited across exec or passed in
	 * with SCM_RIGHTS, so another process may hold it too. */
	return td_decide_new(fd, family, TD_SF_BARE | TD_SF_ADOPTED | TD_SF_STICKY_SHARED);
}

/*
 * socket()'s birth where the gate or the entry sent it here (decide.h).
 * Not born: a failed socket(); one without a policy; one in a thread
 * inside the library's own work or a sandbox, where the birth's slow
 * path, which may map a page, must not run.  One before start-up starts
 * the library here when socket() was bound early (a fork() before the
 * constructor binds every call) and its fallback could not
 * (td_init_active_tcp()).
 */
int td_decide_born_slow(int fd, int family, uint32_t epoch)
{
	if (fd < 0 || td_init_active_tcp() == NULL)
		return fd;
	return td_fdtab_bear_slow(fd, (uint8_t)family, epoch);
}

static void td__set_linger(int fd, int onoff, int secs)
{
	struct linger lg = {.l_onoff = onoff, .l_linger = secs};

	(void)td_real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void td__set_int(int fd, int level, int name, int v)
{
	(void)td_real_setsockopt(fd, level, name, &v, sizeof(v));
}

/* The seed a rule's faults draw from. */
static uint64_t td__seed(const struct td_rule *r)
{
	return r->fault.has_seed ? r->fault.seed : td_init_proc.seed;
}

/*
 * A connection's place among the faults: the number its draws use (the
 * run-wide one in a run, else the process's) and whether its position
 * among the rule's matches is one fault.when names.
 */
struct td__fate {
	uint64_t num, run_conn;
	bool hit;
};

static void td__fault_event(const struct td_policy *p, const struct td_sock *s,
			    int fd, const struct td_rule *r, const struct td__fate *fate,
			    const char *what)
{
	struct td_event ev;

	if (!r->log)
		return;
	td_logw_event_from_sock(&ev, p, s, fd, TD_EV_FAULT);
	ev.fault = what;
	ev.seed = td__seed(r);
	ev.run_conn = fate->run_conn;
	td_logw_event(p, &ev);
}

/*
 * The options every matched connection gets (client before connect,
 * server right after accept), and the connection's fate under the rule's
 * fault group, drawn from (seed, connection number), aimed by position,
 * and logged before it takes effect.  s is the caller's copy of the
 * entry, not yet published: its number and flags are filled in here.
 */
static void td__apply_rule(const struct td_policy *p, int fd, struct td_sock *s,
			   int ri, struct td__fate *fate)
{
	const struct td_rule *r = &p->rules[ri];
	const struct td_fault *f = &r->fault;
	bool rst = false;

	s->d.conn = atomic_fetch_add(&td__conn_seq, 1) + 1;
	memset(fate, 0, sizeof(*fate));
	fate->num = s->d.conn;
	if (r->reuseaddr)
		td__set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (r->fin_timeout_s > 0)
		td__set_int(fd, IPPROTO_TCP, TCP_LINGER2, r->fin_timeout_s);
	if (r->has_fault) {
		fate->run_conn = td_runwide_conn();
		if (fate->run_conn)
			fate->num = fate->run_conn;
		fate->hit = !f->when.set || td_when_match(&f->when, td_runwide_position(p, ri));
	}
	if (fate->hit) {
		rst = td_fault_draw(&f->rst, td__seed(r), fate->num, TD_FK_RST);
		if (rst) {
			atomic_fetch_or(&s->flags, TD_SF_FAULT_RST);
			td__fault_event(p, s, fd, r, fate, "rst");
		}
		if (f->rst_after_bytes || f->fin_after_bytes) {
			atomic_fetch_or(&s->flags, TD_SF_BYTES_FAULT |
						   (f->fin_after_bytes ? TD_SF_BYTES_FIN : 0));
			atomic_fetch_add(&td_faults_bytes_live, 1);
			td__fault_event(p, s, fd, r, fate,
					f->fin_after_bytes ? "fin_after_bytes" : "rst_after_bytes");
		}
		if (f->rst_after_bytes_in) {
			atomic_fetch_or(&s->flags, TD_SF_BYTES_IN_FAULT);
			atomic_fetch_add(&td_faults_bytes_in_live, 1);
			td__fault_event(p, s, fd, r, fate, "rst_after_bytes_in");
		}
		if (f->rst_after_ms) {
			atomic_fetch_or(&s->flags, TD_SF_TIMER_FAULT);
			td__fault_event(p, s, fd, r, fate, "rst_after_ms");
		}
	}
	if (rst || r->close == TD_CLOSE_ABORT)
		td__set_linger(fd, 1, 0);
	else if ((r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN) &&
		 (atomic_load(&s->flags) & TD_SF_APP_LINGER) && td_sock_linger_on(s))
		td__set_linger(fd, 0, 0);
}

/* Arm what needs the background worker, once the connection exists. */
static void td__arm_worker(const struct td_rule *r, int fd, const struct td_sock *s)
{
	if (atomic_load(&s->flags) & TD_SF_TIMER_FAULT)
		(void)td_worker_timer(fd, atomic_load(&s->tag),
				      s->d.t_open_mono_us +
					      (int64_t)r->fault.rst_after_ms * 1000);
	if (r->leak_after_s)
		td_worker_watch_leaks();
}

/*
 * Publish the plain data of the copy cp (read from fd's live entry under
 * tag) and the flags it gained since; returns the live entry or NULL.
 */
static struct td_fdent *td__republish(int fd, uint32_t tag, const struct td_sock *cp,
				     uint32_t flags_before)
{
	struct td_fdent *e = td_fdtab_update(fd, tag, cp);

	if (e != NULL)
		atomic_fetch_or(&e->flags, atomic_load(&cp->flags) & ~flags_before);
	return e;
}

/* The local address the kernel gave fd, into a; false when none. */
static bool td__local_of(int fd, struct td_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	return td_real_sys_getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	       td_addr_from_sockaddr(a, (struct sockaddr *)&ss, sl) == 0;
}

void td_decide_bind(const struct td_policy *p, int fd, const struct sockaddr *sa,
		    socklen_t len)
{
	struct td_match_ctx ctx;
	struct td_sock cp;
	uint32_t tag;
	int r;

	memset(&ctx, 0, sizeof(ctx));
	if (td_addr_from_sockaddr(&ctx.local, sa, len) != 0 || !td_fdtab_read(fd, &cp, &tag))
		return;
	/* Role and peers are not known yet: match on program and local only. */
	ctx.known = TD_K_LOCAL;
	r = td_policy_decide(p, &ctx);
	cp.local = ctx.local;
	cp.d.bind_rule = r;
	cp.d.gen = p->gen;
	if (cp.d.t_open_mono_us == 0)
		cp.d.t_open_mono_us = td_clock_mono_us();
	if (r >= 0 && p->rules[r].reuseaddr)
		td__set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	(void)td_fdtab_update(fd, tag, &cp);
}

void td_decide_after_bind(const struct td_policy *p, int fd)
{
	const struct td_rule *r;
	struct td_event ev;
	struct td_sock cp;
	uint32_t tag;

	if (!td_fdtab_read(fd, &cp, &tag) || cp.d.bind_rule < 0)
		return;
	/* the port the kernel chose, for the log and for accepted sockets */
	if (td__local_of(fd, &cp.local))
		(void)td_fdtab_update(fd, tag, &cp);
	r = &p->rules[cp.d.bind_rule];
	if (!r->log)
		return;
	td_logw_event_from_sock(&ev, p, &cp, fd, TD_EV_BIND);
	td_logw_event(p, &ev);
}

/*
 * Before a real call that connects fd to sa: connect(), or a send with
 * MSG_FASTOPEN to an unconnected socket (TCP Fast Open's client, which
 * never calls connect(): its connection went unlogged, its rule
 * unapplied).  A socket made before the library or behind its back is
 * adopted; one decided already (a repeated connect, EALREADY/EISCONN
 * polling) or not TCP goes straight through, and so does one no rule
 * wants (forgotten, so that its close costs nothing).  Otherwise the
 * rule is decided, its options are in the socket, a connect delay has
 * been slept, and plan says where the call goes: true.  errno is left
 * as it was only by the straight-through path's caller.
 */
bool td_decide_connecting(const struct td_policy *p, int fd, const struct sockaddr *sa,
			  socklen_t len, struct td_connect_plan *plan)
{
	struct td_fdent *s;
	int family;

	td_reload_poll();
	s = td_fdtab_live_or_born(fd);
	if (s == NULL) {
		/* created before us, inherited, or by a path we do not see */
		if (!td_info_is_tcp(fd, &family) || (s = td_decide_adopt(fd, family)) == NULL)
			return false;
	}
	if (s->d.decided || (atomic_load(&s->flags) & (TD_SF_OWN | TD_SF_NOT_TCP)))
		return false;
	memset(plan, 0, sizeof(*plan));
	if (td_decide_connect(p, fd, sa, len, plan) < 0) {
		td_fdtab_forget(fd);
		return false;
	}
	if (plan->delay_ms)
		td_clock_sleep_ms(plan->delay_ms);
	return true;
}

int td_decide_connect(const struct td_policy *p, int fd, const struct sockaddr *sa,
		      socklen_t len, struct td_connect_plan *plan)
{
	struct td_match_ctx ctx;
	const struct td_rule *r;
	struct td__fate fate;
	struct td_sock cp;
	uint32_t tag, before;
	int ri;

	memset(&ctx, 0, sizeof(ctx));
	plan->sa = sa;
	plan->len = len;
	if (td_addr_from_sockaddr(&ctx.remote, sa, len) != 0 || !td_fdtab_read(fd, &cp, &tag))
		return -1;
	ctx.known = TD_K_ROLE | TD_K_REMOTE;
	ctx.role = TD_ROLE_CLIENT;
	if (p->uses_local && td__local_of(fd, &ctx.local) && ctx.local.port != 0)
		ctx.known |= TD_K_LOCAL;
	ri = td_policy_decide(p, &ctx);
	if (ri < 0)
		return -1;
	before = atomic_load(&cp.flags);
	if (!(before & TD_SF_ADOPTED))
		atomic_fetch_or(&cp.flags, TD_SF_LINGER_KNOWN);
	cp.d.role = TD_SOCK_CLIENT;
	cp.remote = ctx.remote;
	cp.d.gen = p->gen;
	cp.d.rule = ri;
	cp.d.decided = 1;
	cp.d.t_open_mono_us = td_clock_mono_us();
	r = &p->rules[ri];
	td__apply_rule(p, fd, &cp, ri, &fate);
	if (td__republish(fd, tag, &cp, before) == NULL)
		return -1;
	if (!r->has_fault)
		return ri;
	plan->delay_ms = r->fault.connect_delay_ms;
	if (fate.hit)
		plan->fault = td_fault_connect_fate(&r->fault, td__seed(r), fate.num);
	if (plan->fault == 0)
		return ri;
	if (td_faults_target(cp.d.family, plan->fault, &plan->alt, &plan->len) != 0) {
		plan->fault = 0;
		plan->len = len;
		return ri;
	}
	td__fault_event(p, &cp, fd, r, &fate,
			plan->fault == TD_FK_CONNECT_REFUSE ? "connect_refuse"
							    : "connect_timeout");
	plan->sa = (const struct sockaddr *)&plan->alt;
	if (plan->fault == TD_FK_CONNECT_TIMEOUT) {
		/* The kernel itself gives up after the user timeout: a real
		 * ETIMEDOUT, blocking or not. */
		socklen_t ol = sizeof(plan->old_uto);

		if (td_real_sys_getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &plan->old_uto,
			       &ol) == 0)
			plan->restore_uto = true;
		td__set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
			    (int)r->fault.connect_timeout_ms);
	}
	return ri;
}

void td_decide_after_connect(const struct td_policy *p, int fd,
		      const struct td_connect_plan *plan, int rc, int err)
{
	const struct td_rule *r;
	struct td_sock cp;
	struct td_fdent *e;
	uint32_t tag, before;

	if (!td_fdtab_read(fd, &cp, &tag) || (r = td_decide_rule(p, &cp.d)) == NULL)
		return;
	if (plan->restore_uto && !(rc != 0 && err == EINPROGRESS))
		td__set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, plan->old_uto);
	before = atomic_load(&cp.flags);
	if ((rc == 0 || err == EINPROGRESS) && plan->fault == 0)
		atomic_fetch_or(&cp.flags, TD_SF_CONNECTED);
	/* the local address is for the log (and leak events) only */
	if (r->log || r->leak_after_s)
		(void)td__local_of(fd, &cp.local);
	e = td__republish(fd, tag, &cp, before);
	if (e != NULL && (atomic_load(&cp.flags) & TD_SF_CONNECTED)) {
		/* the timer is armed with the tag the entry has now */
		atomic_store(&cp.tag, atomic_load(&e->tag));
		td__arm_worker(r, fd, &cp);
	}
	if (r->log) {
		struct td_event ev;

		td_logw_event_from_sock(&ev, p, &cp, fd, TD_EV_CONNECT);
		ev.err = rc == 0 ? 0 : err;
		td_logw_event(p, &ev);
	}
}

/*
 * An accepted socket's local address is its listener's, when the listener
 * is bound to one address (not a wildcard): no getsockname() needed.
 */
static bool td__listener_local(const struct td_sock *ls, struct td_addr *out)
{
	static const uint8_t zero[16];

	if (ls->local.port == 0 ||
	    (ls->local.family != AF_INET && ls->local.family != AF_INET6) ||
	    memcmp(ls->local.addr, zero, ls->local.family == AF_INET ? 4 : 16) == 0)
		return false;
	*out = ls->local;
	return true;
}

/* Make newfd track the same socket as the entry of oldfd (a born entry
 * is published first: its dups are counted). */
TD_CHILD_RUNS
void td_decide_copy(int oldfd, int newfd)
{
	struct td_fdent *o = td_fdtab_live_or_born(oldfd);
	struct td_sock copy;
	uint32_t share;

	if (o == NULL || (atomic_load(&o->flags) & TD_SF_OWN)) {
		td_fdtab_forget(newfd);
		return;
	}
	share = td_fdtab_share_join(o, oldfd);
	if (!td_fdtab_read(oldfd, &copy, NULL)) {
		td_fdtab_forget(newfd);
		return;
	}
	copy.share = share;
	if (share == 0)
		atomic_fetch_or(&copy.flags, TD_SF_STICKY_SHARED);
	(void)td_fdtab_publish(newfd, &copy);
}

/*
 * After a dup that made fd from oldfd (dup(), fcntl(F_DUPFD*)): fd shares
 * oldfd's socket, or, when oldfd is not tracked, forgets a stale entry
 * its number may carry.  In a vfork()ed child the table is the parent's,
 * where the number fd may still be a live socket of the parent's: its
 * entry is left alone, and oldfd's socket is only noted as maybe held
 * elsewhere from now on.  errno untouched.
 */
void td_decide_dup(int oldfd, int fd)
{
	int saved = errno;
	struct td_fdent *o = td_fdtab_live_or_born(oldfd);

	if (!td_init_in_own_process()) {
		if (o != NULL)
			atomic_fetch_or(&o->flags, TD_SF_STICKY_SHARED);
	} else if (o == NULL) {
		td_fdtab_forget(fd);
	} else {
		td_decide_copy(oldfd, fd);
	}
	td_errno_set(saved);
}

/*
 * Whether a connection whose listener is gone (a passive-mode FTP data
 * connection, handed over after its listener closed) was still accepted:
 * its local port outside the kernel's range for outgoing connections
 * (net.ipv4.ip_local_port_range, read once), its peer's inside.
 */
static bool td__ephemeral_peer(uint16_t local, uint16_t remote)
{
	static _Atomic uint32_t range; /* lo << 16 | hi, 0 not read yet */
	uint32_t r = atomic_load_explicit(&range, memory_order_relaxed);
	uint16_t lo, hi;

	if (r == 0) {
		char buf[64] = "";
		uint64_t a, b;
		char *sp;
		int fd = td_real_sys_open("/proc/sys/net/ipv4/ip_local_port_range",
					  O_RDONLY | O_CLOEXEC, 0);
		ssize_t n = fd >= 0 ? (ssize_t)td_real_sys3(SYS_read, fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			(void)td_real_sys1(SYS_close, fd);
		buf[n > 0 ? n : 0] = '\0';
		sp = strpbrk(buf, " \t");
		r = 32768u << 16 | 60999u; /* Linux's default */
		if (sp != NULL) {
			*sp++ = '\0';
			while (*sp == ' ' || *sp == '\t')
				sp++;
			sp[strcspn(sp, " \t\n")] = '\0';
			if (td_parse_u64(buf, &a) == 0 && td_parse_u64(sp, &b) == 0 && a <= b &&
			    b <= 65535 && a > 0)
				r = (uint32_t)a << 16 | (uint32_t)b;
		}
		atomic_store_explicit(&range, r, memory_order_relaxed);
	}
	lo = (uint16_t)(r >> 16);
	hi = (uint16_t)r;
	return (local < lo || local > hi) && remote >= lo && remote <= hi;
}

/*
 * The entry data of a connection decided now under rule ri (accepted, or
 * got already open): what every such entry starts with, before the
 * caller's own flags and options; not yet published.
 */
static void td__conn_init(struct td_sock *init, const struct td_policy *p, int ri,
			  uint8_t role, int family, uint32_t epoch,
			  const struct td_match_ctx *ctx, uint32_t flags)
{
	memset(init, 0, sizeof(*init));
	init->d.role = role;
	init->d.family = (uint8_t)(family == AF_INET6 ? AF_INET6 : AF_INET);
	init->d.epoch = epoch;
	init->d.t_open_mono_us = td_clock_mono_us();
	init->remote = ctx->remote;
	init->local = ctx->local;
	init->d.rule = ri;
	init->d.gen = p->gen;
	init->d.bind_rule = -1;
	init->d.decided = 1;
	atomic_store(&init->flags, flags);
}

/*
 * A connection this process got already open: across exec() (an
 * inetd-style child's on 0 and 1, sshd's re-executed child's, a service's
 * socket-activated by systemd with Accept=yes), or in an SCM_RIGHTS
 * message (vsftpd's privileged process hands each data connection over).  Never accepted or
 * connected here, it had no entry: its closes went straight to the kernel
 * and its end was never logged.  Decided at start-up (td_init_slow()) as
 * the server's when something listens on its local address and port (how
 * it was accepted), else the client's.
 *
 * handed: it came the way a connection is handed to a program (fd 0 or 1,
 * one of the fds systemd names in LISTEN_FDS for this process, an
 * SCM_RIGHTS message), so it is the program's, and its rule applies in
 * full.  Any other inherited
 * socket may be one its parent still uses (a leaked fd looks the same):
 * any rule that logs takes it, as its observing twin, and nothing is put
 * into it (a zero linger, a discard or a drain's shutdown would act on
 * the parent's connection), though its end is logged (ncat --exec leaks
 * each connection into the program it runs, whose exit is the end).
 * Either way it entered before this process's
 * birth (epoch), so its close asks the kernel whether another process
 * still holds it, and the end is logged once.  More fds on the same
 * socket are its dups (td_decide_copy()).  Its age counts from this
 * process's start.  No event of its own: its close or exit says what it
 * was.
 */
void td_decide_inherited(const struct td_policy *p, int fd, int family, bool handed,
			 uint32_t flags)
{
	struct td_match_ctx ctx;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct td_rule *r;
	struct td__fate fate;
	struct td_sock init;
	struct td_fdent *e;
	int ri;

	memset(&ctx, 0, sizeof(ctx));
	if (td_real_sys_getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    td_addr_from_sockaddr(&ctx.remote, (struct sockaddr *)&ss, sl) != 0 ||
	    !td__local_of(fd, &ctx.local) || ctx.local.family != ctx.remote.family)
		return; /* a listener, or not connected: its use decides */
	ctx.known = TD_K_ROLE | TD_K_REMOTE | TD_K_LOCAL;
	ctx.role = td_diag_listening(&ctx.local) ||
				   td__ephemeral_peer(ctx.local.port, ctx.remote.port)
			   ? TD_ROLE_SERVER
			   : TD_ROLE_CLIENT;
	ri = td_policy_decide(p, &ctx);
	if (ri < 0)
		return;
	r = &p->rules[ri];
	if (!handed && !r->log)
		return;
	if (!handed && td__acts(r)) {
		/* watched, never acted on: the rule's observing twin */
		if (p->observe == NULL)
			return;
		ri += (int)p->n_rules;
	}
	td__conn_init(&init, p, ri, ctx.role == TD_ROLE_SERVER ? TD_SOCK_SERVER : TD_SOCK_CLIENT,
		      family, td_holders_birth_epoch - 1, &ctx,
		      TD_SF_CONNECTED | TD_SF_ADOPTED | flags);
	if (handed)
		td__apply_rule(p, fd, &init, ri, &fate);
	else
		init.d.conn = atomic_fetch_add(&td__conn_seq, 1) + 1;
	e = td_fdtab_publish(fd, &init);
	if (e == NULL || !handed)
		return;
	atomic_store(&init.tag, atomic_load(&e->tag));
	td__arm_worker(r, fd, &init);
}

void td_decide_accept(const struct td_policy *p, int lfd, int fd,
		      const struct sockaddr *peer, socklen_t plen)
{
	struct td_match_ctx ctx;
	struct td_fdent *live = td_fdtab_live_or_born(lfd), *s;
	struct td_sock ls, init;
	bool have_ls = live != NULL && td_fdtab_read(lfd, &ls, NULL);
	const struct td_rule *r;
	struct td__fate fate;
	int ri;

	memset(&ctx, 0, sizeof(ctx));
	if (td_addr_from_sockaddr(&ctx.remote, peer, plen) != 0)
		return;
	if ((have_ls && td__listener_local(&ls, &ctx.local)) || td__local_of(fd, &ctx.local))
		ctx.known |= TD_K_LOCAL;
	ctx.known |= TD_K_ROLE | TD_K_REMOTE;
	ctx.role = TD_ROLE_SERVER;
	ri = td_policy_decide(p, &ctx);
	if (ri < 0) {
		/* unmatched: a stale entry for this number must not survive */
		struct td_sock gone;

		(void)td_fdtab_claim(fd, &gone);
		return;
	}
	r = &p->rules[ri];
	td__conn_init(&init, p, ri, TD_SOCK_SERVER, peer->sa_family, atomic_load(&td_holders_epoch),
		      &ctx, TD_SF_CONNECTED);
	if (have_ls) {
		uint32_t lflags = atomic_fetch_or(&live->flags, TD_SF_LISTENER);

		/* The accepted socket inherits SO_LINGER from its listener,
		 * whose SO_LINGER went through us too (unless it was adopted). */
		if (lflags & TD_SF_APP_LINGER) {
			atomic_store(&init.linger, atomic_load(&ls.linger));
			atomic_fetch_or(&init.flags, TD_SF_APP_LINGER);
		}
		if (!(lflags & TD_SF_ADOPTED))
			atomic_fetch_or(&init.flags, TD_SF_LINGER_KNOWN);
	}
	td__apply_rule(p, fd, &init, ri, &fate);
	s = td_fdtab_publish(fd, &init);
	if (s == NULL)
		return;
	atomic_store(&init.tag, atomic_load(&s->tag));
	td__arm_worker(r, fd, &init);
	if (r->log) {
		struct td_event ev;

		td_logw_event_from_sock(&ev, p, &init, fd, TD_EV_ACCEPT);
		td_logw_event(p, &ev);
	}
	/* rst_on_accept: reset before the program reads anything */
	if (fate.hit &&
	    td_fault_draw(&r->fault.rst_on_accept, td__seed(r), fate.num, TD_FK_RST_ON_ACCEPT)) {
		td__fault_event(p, &init, fd, r, &fate, "rst_on_accept");
		(void)td_faults_reset_now(fd, fd, s);
	}
}
