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
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/fault.h"

static _Atomic uint64_t td__conn_seq;

const struct td_rule *td_sock_rule(const struct td_policy *p,
				   const struct td_sock *s)
{
	int r = s->decided ? s->rule : s->bind_rule;

	return r >= 0 && (uint32_t)r < p->n_rules ? &p->rules[r] : NULL;
}

struct td_sock *td_sock_new(int fd, int family, uint8_t role)
{
	struct td_sock init;

	memset(&init, 0, sizeof(init));
	init.rule = -1;
	init.bind_rule = -1;
	init.role = role;
	init.family = (uint8_t)family;
	init.epoch = atomic_load(&td_epoch);
	init.t_open_mono_us = td_mono_us();
	return td_fd_publish(fd, &init);
}

struct td_sock *td_sock_adopt(int fd, int family)
{
	struct td_sock *s = td_sock_new(fd, family, TD_SOCK_UNKNOWN);

	if (s != NULL) {
		/* Not seen created: it may be inherited across exec or passed
		 * in with SCM_RIGHTS, so another process may hold it too. */
		atomic_fetch_or(&s->flags, TD_SF_ADOPTED | TD_SF_STICKY_SHARED);
	}
	return s;
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
	return r->fault.has_seed ? r->fault.seed : td_proc.seed;
}

static void td__fault_event(const struct td_policy *p, const struct td_sock *s,
			    int fd, const struct td_rule *r, const char *what)
{
	struct td_event ev;

	if (!r->log)
		return;
	td_event_from_sock(&ev, p, s, fd, TD_EV_FAULT);
	ev.fault = what;
	ev.seed = td__seed(r);
	td_log(p, &ev);
}

/*
 * The options every matched connection gets (client before connect,
 * server right after accept), and the connection's fate under the rule's
 * fault group, drawn from (seed, connection number) and logged before it
 * takes effect.
 */
static void td__apply_rule(const struct td_policy *p, int fd, struct td_sock *s,
			   const struct td_rule *r)
{
	bool rst = false;

	s->conn = atomic_fetch_add(&td__conn_seq, 1) + 1;
	if (r->reuseaddr)
		td__set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	if (r->fin_timeout_s > 0)
		td__set_int(fd, IPPROTO_TCP, TCP_LINGER2, r->fin_timeout_s);
	if (r->has_fault) {
		rst = td_fault_draw(&r->fault.rst, td__seed(r), s->conn, TD_FK_RST);
		if (rst) {
			atomic_fetch_or(&s->flags, TD_SF_FAULT_RST);
			td__fault_event(p, s, fd, r, "rst");
		}
		if (r->fault.rst_after_bytes) {
			atomic_fetch_or(&s->flags, TD_SF_BYTES_FAULT);
			atomic_fetch_add(&td_bytes_faults_live, 1);
			td__fault_event(p, s, fd, r, "rst_after_bytes");
		}
		if (r->fault.rst_after_ms) {
			td__fault_event(p, s, fd, r, "rst_after_ms");
		}
	}
	if (rst || r->close == TD_CLOSE_ABORT)
		td__set_linger(fd, 1, 0);
	else if ((r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN) &&
		 (atomic_load(&s->flags) & TD_SF_APP_LINGER) &&
		 s->app_linger_onoff)
		td__set_linger(fd, 0, 0);
}

/* Arm what needs the background worker, once the connection exists. */
static void td__arm_worker(const struct td_rule *r, int fd, struct td_sock *s)
{
	if (r->has_fault && r->fault.rst_after_ms)
		(void)td_worker_timer(fd, atomic_load(&s->tag),
				      s->t_open_mono_us +
					      (int64_t)r->fault.rst_after_ms * 1000);
	if (r->leak_after_s)
		td_worker_watch_leaks();
}

void td_decide_bind(const struct td_policy *p, int fd, struct td_sock *s,
		    const struct sockaddr *sa, socklen_t len)
{
	struct td_match_ctx ctx;
	int r;

	(void)fd;
	memset(&ctx, 0, sizeof(ctx));
	if (td_addr_from_sockaddr(&ctx.local, sa, len) != 0)
		return;
	s->local = ctx.local;
	/* Role and peers are not known yet: match on program and local only. */
	ctx.known = TD_K_LOCAL;
	r = td_policy_decide(p, &ctx);
	s->bind_rule = r;
	if (r >= 0 && p->rules[r].reuseaddr)
		td__set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
}

void td_after_bind(const struct td_policy *p, int fd, struct td_sock *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const struct td_rule *r;
	struct td_event ev;

	if (s->bind_rule < 0)
		return;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		(void)td_addr_from_sockaddr(&s->local, (struct sockaddr *)&ss, sl);
	r = &p->rules[s->bind_rule];
	if (!r->log)
		return;
	td_event_from_sock(&ev, p, s, fd, TD_EV_BIND);
	td_log(p, &ev);
}

void td_decide_connect(const struct td_policy *p, int fd, struct td_sock *s,
		       const struct sockaddr *sa, socklen_t len,
		       struct td_connect_plan *plan)
{
	struct td_match_ctx ctx;
	const struct td_rule *r;
	int ri;

	memset(&ctx, 0, sizeof(ctx));
	plan->sa = sa;
	plan->len = len;
	if (td_addr_from_sockaddr(&ctx.remote, sa, len) != 0)
		return;
	ctx.known = TD_K_ROLE | TD_K_REMOTE;
	ctx.role = TD_ROLE_CLIENT;
	if (p->uses_local) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
		    td_addr_from_sockaddr(&ctx.local, (struct sockaddr *)&ss, sl) == 0 &&
		    ctx.local.port != 0)
			ctx.known |= TD_K_LOCAL;
	}
	ri = td_policy_decide(p, &ctx);
	if (!(atomic_load(&s->flags) & TD_SF_ADOPTED))
		atomic_fetch_or(&s->flags, TD_SF_LINGER_KNOWN);
	s->role = TD_SOCK_CLIENT;
	s->remote = ctx.remote;
	s->rule = ri;
	s->decided = 1;
	if (ri < 0)
		return;
	r = &p->rules[ri];
	s->t_open_mono_us = td_mono_us();
	td__apply_rule(p, fd, s, r);
	if (!r->has_fault)
		return;
	plan->delay_ms = r->fault.connect_delay_ms;
	{
		uint64_t h = td_fault_hash(td__seed(r), s->conn, TD_FK_CONNECT_REFUSE);
		const struct td_prob *ref = &r->fault.connect_refuse;
		const struct td_prob *tmo = &r->fault.connect_timeout;
		bool refuse = ref->always || (ref->thr && h < ref->thr);
		bool timeout = !refuse &&
			       (tmo->always || (tmo->thr && h - ref->thr < tmo->thr));

		if (refuse)
			plan->fault = TD_FK_CONNECT_REFUSE;
		else if (timeout)
			plan->fault = TD_FK_CONNECT_TIMEOUT;
	}
	if (plan->fault == 0)
		return;
	if (td_fault_target(s->family, plan->fault, &plan->alt, &plan->len) != 0) {
		plan->fault = 0;
		plan->len = len;
		return;
	}
	td__fault_event(p, s, fd, r,
			plan->fault == TD_FK_CONNECT_REFUSE ? "connect_refuse"
							    : "connect_timeout");
	plan->sa = (const struct sockaddr *)&plan->alt;
	if (plan->fault == TD_FK_CONNECT_TIMEOUT) {
		/* The kernel itself gives up after the user timeout: a real
		 * ETIMEDOUT, blocking or not. */
		socklen_t ol = sizeof(plan->old_uto);

		if (getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &plan->old_uto,
			       &ol) == 0)
			plan->restore_uto = true;
		td__set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
			    (int)r->fault.connect_timeout_ms);
	}
}

void td_after_connect(const struct td_policy *p, int fd, struct td_sock *s,
		      const struct td_connect_plan *plan, int rc, int err)
{
	const struct td_rule *r = td_sock_rule(p, s);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (r == NULL)
		return;
	if (plan->restore_uto && !(rc != 0 && err == EINPROGRESS))
		td__set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, plan->old_uto);
	/* the local address is for the log (and leak events) only */
	if ((r->log || r->leak_after_s) &&
	    getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		(void)td_addr_from_sockaddr(&s->local, (struct sockaddr *)&ss, sl);
	if (rc == 0 || err == EINPROGRESS) {
		if (plan->fault == 0) {
			atomic_fetch_or(&s->flags, TD_SF_CONNECTED);
			td__arm_worker(r, fd, s);
		}
	}
	if (r->log) {
		struct td_event ev;

		td_event_from_sock(&ev, p, s, fd, TD_EV_CONNECT);
		ev.err = rc == 0 ? 0 : err;
		td_log(p, &ev);
	}
}

/*
 * An accepted socket's local address is its listener's, when the listener
 * is bound to one address (not a wildcard): no getsockname() needed.
 */
static bool td__listener_local(const struct td_sock *ls, struct td_addr *out)
{
	static const uint8_t zero[16];

	if (ls == NULL || atomic_load(&ls->tag) == 0 || ls->local.port == 0 ||
	    (ls->local.family != AF_INET && ls->local.family != AF_INET6) ||
	    memcmp(ls->local.addr, zero, ls->local.family == AF_INET ? 4 : 16) == 0)
		return false;
	*out = ls->local;
	return true;
}

void td_decide_accept(const struct td_policy *p, int lfd, int fd,
		      const struct sockaddr *peer, socklen_t plen)
{
	struct td_match_ctx ctx;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct td_sock *ls = td_fd_peek(lfd), *s;
	const struct td_rule *r;
	int family = peer->sa_family == AF_INET6 ? AF_INET6 : AF_INET;
	int ri;

	memset(&ctx, 0, sizeof(ctx));
	if (td_addr_from_sockaddr(&ctx.remote, peer, plen) != 0)
		return;
	if (td__listener_local(ls, &ctx.local) ||
	    (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	     td_addr_from_sockaddr(&ctx.local, (struct sockaddr *)&ss, sl) == 0))
		ctx.known |= TD_K_LOCAL;
	ctx.known |= TD_K_ROLE | TD_K_REMOTE;
	ctx.role = TD_ROLE_SERVER;
	ri = td_policy_decide(p, &ctx);
	if (ri < 0) {
		/* unmatched: a stale entry for this number must not survive */
		struct td_sock gone;

		(void)td_fd_claim(fd, &gone);
		return;
	}
	s = td_sock_new(fd, family, TD_SOCK_SERVER);
	if (s == NULL)
		return;
	r = &p->rules[ri];
	s->remote = ctx.remote;
	s->local = ctx.local;
	s->rule = ri;
	s->decided = 1;
	atomic_fetch_or(&s->flags, TD_SF_CONNECTED);
	/* The accepted socket inherits SO_LINGER from its listener. */
	if (ls != NULL && atomic_load(&ls->tag) != 0 &&
	    (atomic_load(&ls->flags) & TD_SF_APP_LINGER)) {
		s->app_linger_onoff = ls->app_linger_onoff;
		s->app_linger_secs = ls->app_linger_secs;
		atomic_fetch_or(&s->flags, TD_SF_APP_LINGER);
	}
	if (ls != NULL && atomic_load(&ls->tag) != 0) {
		atomic_fetch_or(&ls->flags, TD_SF_LISTENER);
		/* the listener's SO_LINGER, inherited, went through us too */
		if (!(atomic_load(&ls->flags) & TD_SF_ADOPTED))
			atomic_fetch_or(&s->flags, TD_SF_LINGER_KNOWN);
	}
	td__apply_rule(p, fd, s, r);
	td__arm_worker(r, fd, s);
	if (r->log) {
		struct td_event ev;

		td_event_from_sock(&ev, p, s, fd, TD_EV_ACCEPT);
		td_log(p, &ev);
	}
}
