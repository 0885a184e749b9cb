/*
 * teardown: live policy changes.
 *
 * A policy read from a file (TEARDOWN_CONFIG, /etc/teardown.conf) is
 * watched: on the connect and accept paths, at most once a second, the
 * file's identity (device, inode, size, modification time) is compared
 * with the one last read; the background worker does the same on its own
 * rounds.  A change is read by the worker, never in the program's call (a
 * policy is read with malloc, and a connect may come from a signal
 * handler).  A valid new policy applies to connections decided from then
 * on; a connection keeps the rule, and the policy, it was decided under.
 * A broken one leaves the policy in force, with one warning naming file
 * and line.  Each switch (or refusal) is a "policy" event with the text's
 * hash.  Log settings (target, format, facility) stay as the process
 * started with them: the log is not reopened behind running writers.
 *
 * Policies are kept in generations; an entry of the fd table names the
 * generation it was decided under.  A generation no live entry names, and
 * that stopped being current a minute ago (no hook can still hold it), is
 * freed and its slot reused.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rt.h"
#include "teardown/mem.h"
#include "teardown/config.h"
#include "teardown/fmt.h"

#define TD_GENS 256
#define TD_CHECK_US 1000000
#define TD_RETIRE_US (60 * 1000000LL)

TD_CHILD_READ _Atomic(const struct td_policy *) td_init_policy;

TD_CHILD_READ static const struct td_policy *td__gens[TD_GENS];
static int64_t td__retired_us[TD_GENS]; /* worker only */

struct td__sig {
	uint64_t dev, ino, size, mtime_ns;
};

static char td__path[PATH_MAX];
static bool td__watch, td__privileged, td__explicit;
static _Atomic int td__worker_asked;
/* the fork epoch at the last connect or accept that looked (0: none yet);
 * on the page a forking parent writes after every fork anyway */
TD_CHILD_WRITTEN static _Atomic uint32_t td__looked_epoch;
static struct td__sig td__seen;		   /* worker only after start */
static _Atomic int64_t td__next_check_us;
static _Atomic int td__pending;

static bool td__stat(struct td__sig *s)
{
	struct stat st;

	/* lstat: the file is opened with O_NOFOLLOW; a symlink is refused there */
	if (lstat(td__path, &st) != 0)
		return false;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = (uint64_t)st.st_size;
	s->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	return true;
}

static bool td__same(const struct td__sig *a, const struct td__sig *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

void td_reload_start(struct td_policy *p, const char *path, bool privileged,
		     bool explicit_path)
{
	td__explicit = explicit_path;
	p->gen = 0;
	td__gens[0] = p;
	atomic_store(&td_init_policy, p);
	if (path == NULL || strlen(path) >= sizeof(td__path))
		return;
	memcpy(td__path, path, strlen(path) + 1);
	td__privileged = privileged;
	td__watch = td__stat(&td__seen);
	atomic_store(&td__next_check_us, td_clock_mono_us() + TD_CHECK_US);
}

TD_CHILD_RUNS
const struct td_policy *td_reload_policy_of(const struct td_sock_data *d)
{
	const struct td_policy *q = td__gens[d->gen];

	return q != NULL ? q : atomic_load_explicit(&td_init_policy, memory_order_acquire);
}

/*
 * A file this process was pointed at (TEARDOWN_CONFIG) is watched by the
 * worker too, so that a change lands while the program sits in a
 * blocking call (a server waiting in accept()): started at its second
 * connect or accept, when it forked no child since the first, not at
 * start-up.  A fork-per-connection server forks between any two accepts
 * and keeps a single thread: each fork of a process with a second
 * thread, idle or not, cost this VM 160 to 400 us more (a child that
 * writes 20 pages, a parent 10; 1,100 to 1,340 us single-threaded), and
 * busybox httpd served 0.68 of bare under a policy file against 0.80
 * under the same text in TEARDOWN_POLICY.  Its changes land at its next
 * connect or accept instead (td_reload_poll() looks there, at most once
 * a second, and starts the worker to read a changed file).
 */
static void td__watcher(void)
{
	uint32_t e = atomic_load_explicit(&td_holders_epoch, memory_order_relaxed);

	if (atomic_load_explicit(&td__looked_epoch, memory_order_relaxed) != e) {
		atomic_store_explicit(&td__looked_epoch, e, memory_order_relaxed);
		return;
	}
	if (!atomic_exchange(&td__worker_asked, 1))
		td_worker_watch_policy();
}

void td_reload_poll(void)
{
	struct td__sig now;
	int64_t t, next;

	if (!td__watch)
		return;
	if (td__explicit && !atomic_load_explicit(&td__worker_asked, memory_order_relaxed))
		td__watcher();
	t = td_clock_mono_us();
	next = atomic_load_explicit(&td__next_check_us, memory_order_relaxed);
	if (t < next ||
	    !atomic_compare_exchange_strong(&td__next_check_us, &next, t + TD_CHECK_US))
		return;
	/* the worker compares with what it last read; a cheap look here */
	if (td__stat(&now) && td__same(&now, &td__seen))
		return;
	atomic_store(&td__pending, 1);
	td_worker_watch_policy();
}

/* A generation slot for a new policy: a free one, or one long retired. */
static int td__slot(int64_t now)
{
	uint8_t used[TD_GENS];
	int cur = atomic_load(&td_init_policy)->gen;
	int high = td_fdtab_high();

	for (int i = 0; i < TD_GENS; i++)
		if (td__gens[i] == NULL)
			return i;
	/* every slot has been used: which generations do live entries name? */
	memset(used, 0, sizeof(used));
	for (int fd = 0; fd <= high; fd++) {
		struct td_sock s;

		if (td_fdtab_read(fd, &s, NULL))
			used[s.d.gen] = 1;
	}
	for (int i = 0; i < TD_GENS; i++) {
		if (i == cur || used[i] || now - td__retired_us[i] < TD_RETIRE_US)
			continue;
		td_policy_free((struct td_policy *)td__gens[i]);
		td_mem_free((void *)td__gens[i]);
		td__gens[i] = NULL;
		return i;
	}
	return -1;
}

static void td__event(const struct td_policy *p, uint64_t hash, uint32_t rules, bool applied,
		      const char *problem)
{
	struct td_event ev;

	td_event_init(&ev, TD_EV_POLICY);
	ev.source = td__path;
	ev.hash = hash;
	ev.rules = rules;
	ev.applied = applied;
	ev.problem = problem;
	td_logw_event(p, &ev);
}

/* Read the file, check it, and make it the policy in force. */
static void td__apply(struct td__sig *sig)
{
	const struct td_policy *old = atomic_load(&td_init_policy), *expect;
	struct td_cfg_error err;
	struct td_policy *p;
	char *text = NULL, msg[1400];
	size_t len = 0;
	uint64_t hash;
	int rc, slot;

	rc = td_policy_read_file(td__path, td__privileged, &text, &len, &err);
	/* FNV-1a 64 of the text: the "hash" of policy events */
	hash = rc == 0 ? td_fnv64(text, len) : 0;
	p = rc == 0 ? td_mem_calloc(1, sizeof(*p)) : NULL;
	if (rc == 0 && p == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = td_policy_parse_text(p, text, len, td__path, &err);
	td_mem_free(text);
	if (rc != 0) {
		struct td_buf b;

		td_mem_free(p);
		td_cfg_error_format(&err, msg, sizeof(msg) - 40);
		td__event(old, hash, 0, false, msg);
		td_buf_init(&b, msg + strlen(msg), 40);
		td_buf_puts(&b, "; keeping the policy in force");
		td_logw_warn(msg);
		return;
	}
	td_init_prepare_policy(p);
	/* the log stays as it started: no reopening behind running writers */
	p->log_target = old->log_target;
	p->log_format = old->log_format;
	p->log_facility = old->log_facility;
	memcpy(p->log_path, old->log_path, sizeof(p->log_path));
	slot = td__slot(td_clock_mono_us());
	if (slot < 0) {
		td_policy_free(p);
		td_mem_free(p);
		td__event(old, hash, 0, false, "too many policies still in use; keeping the one in force");
		return;
	}
	p->gen = (uint8_t)slot;
	td__gens[slot] = p;
	td__retired_us[old->gen] = td_clock_mono_us();
	atomic_store_explicit(&td_init_policy, p, memory_order_release);
	/* the hooks' copy follows, unless a sandbox turned them off (NULL) */
	expect = old;
	(void)atomic_compare_exchange_strong(&td_init_acting, &expect, p);
	td__seen = *sig;
	td__event(p, hash, p->n_rules, true, NULL);
	td_reload_reset_open(p);
}

void td_reload_tick(void)
{
	struct td__sig now;
	int64_t t = td_clock_mono_us(), next;

	if (!td__watch)
		return;
	next = atomic_load(&td__next_check_us);
	if (!atomic_exchange(&td__pending, 0)) {
		if (t < next)
			return;
		atomic_store(&td__next_check_us, t + TD_CHECK_US);
	}
	if (!td__stat(&now) || td__same(&now, &td__seen))
		return;
	/* tried once per state of the file: a broken one is reported once */
	td__seen = now;
	td__apply(&now);
}

/*
 * A new policy with fault.reset_open: every open connection its matching
 * rule has reset_open reset now, once, each with a fault event.  The way a
 * test engineer makes clients reconnect without root (ss -K needs it, and
 * a kernel option).  Run by the worker, like rst_after_ms: the fd is
 * duplicated and its entry's tag checked after, so a number the program
 * reused meanwhile is left alone.
 */
void td_reload_reset_open(const struct td_policy *p)
{
	int high = td_fdtab_high();
	bool any = false;

	for (uint32_t i = 0; i < p->n_rules && !any; i++)
		any = p->rules[i].has_fault && p->rules[i].fault.reset_open &&
		      p->rules[i].program_ok;
	if (!any)
		return;
	for (int fd = 0; fd <= high; fd++) {
		struct td_match_ctx ctx;
		struct td_sock s;
		struct td_fdent *e;
		const struct td_rule *r;
		uint32_t tag, flags;
		int ri, dfd;

		if (!td_fdtab_read(fd, &s, &tag))
			continue;
		flags = atomic_load(&s.flags);
		/* (one only observed, never acted on: not reset either) */
		if ((flags & (TD_SF_OWN | TD_SF_NOT_TCP | TD_SF_RESET_SENT)) ||
		    !(flags & TD_SF_CONNECTED) || !s.d.decided || td_decide_observed(p, &s.d))
			continue;
		memset(&ctx, 0, sizeof(ctx));
		ctx.known = TD_K_ROLE | TD_K_REMOTE | TD_K_LOCAL;
		ctx.role = s.d.role == TD_SOCK_CLIENT ? TD_ROLE_CLIENT : TD_ROLE_SERVER;
		ctx.remote = s.remote;
		ctx.local = s.local;
		ri = td_policy_decide(p, &ctx);
		if (ri < 0 || !p->rules[ri].has_fault || !p->rules[ri].fault.reset_open)
			continue;
		r = &p->rules[ri];
		e = td_fdtab_peek(fd);
		dfd = td_real_sys_dupfd(fd, td_init_proc.fd_base);
		if (dfd < 0)
			continue;
		if (e != NULL && atomic_load(&e->tag) == tag) {
			struct td_event ev;

			if (r->log) {
				td_logw_event_from_sock(&ev, p, &s, fd, TD_EV_FAULT);
				ev.rule = r->name;
				ev.fault = "reset_open";
				ev.seed = r->fault.has_seed ? r->fault.seed : td_init_proc.seed;
				td_logw_event(p, &ev);
			}
			(void)td_faults_reset_now(dfd, fd, e);
		}
		td_real_close(dfd);
	}
}
