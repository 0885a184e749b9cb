/*
 * teardown runtime: what the interposed calls (shim/hook/) share.
 *
 * Rules for everything reachable from a hook: no malloc, no stdio, no
 * locks (signal handlers call close(); forked children of threaded
 * programs may too), errno preserved, and the program's own call made
 * exactly once.  State is published with atomics; the policy is
 * immutable once loaded.
 */
#ifndef TD_RT_H
#define TD_RT_H

#include <errno.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "teardown/event.h"
#include "teardown/policy.h"
#include "teardown/predict.h"

#define TD_EXPORT __attribute__((visibility("default")))
#define td_likely(x) __builtin_expect(!!(x), 1)
#define td_unlikely(x) __builtin_expect(!!(x), 0)

#include "real.h"

/* ---- process state (init.c) ------------------------------------------ */

enum { TD_INIT_NONE = 0, TD_INIT_RUNNING, TD_INIT_DONE };

extern _Atomic int td_init_state TD_HIDDEN;
/*
 * The policy in force, or NULL: then every hook is a plain pass-through.
 * A live reload replaces it (reload.c); a socket keeps the policy it was
 * decided under (td_reload_policy_of()).
 */
extern _Atomic(const struct td_policy *) td_init_policy TD_HIDDEN;
/* Per-thread guard: the library's own work calls straight through. */
extern __thread volatile int td_init_guard TD_HIDDEN
	__attribute__((tls_model("initial-exec")));

const struct td_policy *td_init_slow(void) TD_HIDDEN;

/*
 * The policy for a hook, or NULL for "pass straight through".  It never
 * initialises the library: any wrapped call may come from inside someone
 * else's critical section (a malloc implementation holding its lock while
 * it calls syscall(SYS_open), a signal handler), where reading a policy
 * (which allocates) could deadlock.  Before the library's constructor ran,
 * and in a thread inside the library's own work, every call passes
 * through; see td_init_active_tcp() for the one exception.
 */
static inline const struct td_policy *td_init_active(void)
{
	if (td_unlikely(td_init_guard))
		return NULL;
	if (td_likely(atomic_load_explicit(&td_init_state, memory_order_acquire) ==
		      TD_INIT_DONE))
		return atomic_load_explicit(&td_init_policy, memory_order_acquire);
	return NULL;
}

/*
 * td_init_active() for the calls that make, bind, connect or accept an
 * IPv4/IPv6 TCP socket.  Another library's constructor runs before ours,
 * and a socket it opens there must still get the policy: such a call
 * initialises the library first.  No malloc implementation makes those
 * calls inside its locks, and a caller that finds another thread
 * initialising passes through (never waits: it may be a signal handler).
 */
static inline const struct td_policy *td_init_active_tcp(void)
{
	if (td_unlikely(td_init_guard))
		return NULL;
	if (td_likely(atomic_load_explicit(&td_init_state, memory_order_acquire) ==
		      TD_INIT_DONE))
		return atomic_load_explicit(&td_init_policy, memory_order_acquire);
	return td_init_slow();
}

/* Whether start-up has finished (with or without a policy). */
static inline bool td_init_done(void)
{
	return atomic_load_explicit(&td_init_state, memory_order_acquire) == TD_INIT_DONE;
}

struct td_init_proc {
	char prog[128];	 /* argv[0]'s basename as the program sees it */
	_Atomic int pid; /* this process (updated in a forked child) */
	uint64_t seed;	 /* fault seed for rules without one */
	bool secure;	 /* AT_SECURE: environment ignored */
	int fd_base;	 /* lowest fd number the library uses for its own */
};
extern struct td_init_proc td_init_proc TD_HIDDEN;

/*
 * Whether the caller runs in this process (false in a vfork()ed child):
 * on x86-64 a flag our vfork() sets (shim/hook/vfork.c), no system call;
 * elsewhere getpid().
 */
#if defined(__x86_64__)
extern __thread volatile int td_in_vfork TD_HIDDEN __attribute__((tls_model("initial-exec")));
static inline bool td_init_in_own_process(void)
{
	return !td_in_vfork;
}
#else
bool td_init_in_own_process(void) TD_HIDDEN;
#endif
#define TD_STR_(x) #x
#define TD_STR(x) TD_STR_(x)

/* ---- time ------------------------------------------------------------ */
int64_t td_clock_now_us(void) TD_HIDDEN;	 /* CLOCK_REALTIME */
int32_t td_init_tid(void) TD_HIDDEN;	 /* cached per thread */
int64_t td_clock_mono_us(void) TD_HIDDEN;	 /* CLOCK_MONOTONIC */
void td_clock_sleep_ms(uint32_t ms) TD_HIDDEN; /* restarts on EINTR */

/* ---- per-socket state (sock.c) ----------------------------------------- */

enum td_sock_flag {
	TD_SF_APP_LINGER = 1u << 0,	/* the program set SO_LINGER */
	TD_SF_SHUT_WR = 1u << 1,	/* our side's FIN is out (shutdown) */
	TD_SF_PASSIVE = 1u << 2,	/* the peer's FIN came first */
	TD_SF_STICKY_SHARED = 1u << 3,	/* another process may hold it */
	TD_SF_FAULT_RST = 1u << 4,	/* fault: close becomes RST */
	TD_SF_LEAK_DONE = 1u << 5,	/* leak event written */
	TD_SF_OWN = 1u << 6,		/* one of the library's own fds */
	TD_SF_CONNECTED = 1u << 7,	/* connect or accept succeeded */
	TD_SF_BYTES_FAULT = 1u << 8,	/* rst_after_bytes armed */
	TD_SF_BYTES_DONE = 1u << 9,	/* rst_after_bytes fired */
	TD_SF_LISTENER = 1u << 10,	/* accept() was called on it */
	TD_SF_ADOPTED = 1u << 11,	/* first seen after its creation */
	TD_SF_NOT_TCP = 1u << 12,	/* an AF_INET/AF_INET6 socket, not TCP */
	TD_SF_LINGER_KNOWN = 1u << 13,	/* every SO_LINGER it got went through us */
	TD_SF_RESET_SENT = 1u << 14,	/* the library reset it (a fault) */
	TD_SF_BYTES_FIN = 1u << 15,	/* the byte limit ends with a FIN (fin_after_bytes) */
	TD_SF_BYTES_IN_FAULT = 1u << 16, /* rst_after_bytes_in armed */
	TD_SF_BYTES_IN_DONE = 1u << 17, /* rst_after_bytes_in fired */
	TD_SF_TIMER_FAULT = 1u << 18,	/* rst_after_ms armed (its position is one when names) */
	/* made by socket() and nothing decided since: no rule, no bind rule;
	 * its close just drops the entry (cleared by every td_fdtab_update()) */
	TD_SF_BARE = 1u << 19,
};

/* The plain part of an entry: written only while it is unpublished. */
struct td_sock_data {
	int32_t rule;		/* matched rule, -1 none */
	int32_t bind_rule;	/* rule matched at bind (listeners), -1 */
	uint8_t role;		/* enum td_sock_role */
	uint8_t decided;	/* rule is final */
	uint8_t family;
	uint8_t gen;		/* the policy generation it was decided under */
	uint32_t epoch;		/* fork epoch when it entered this process */
	uint64_t conn;		/* per-process connection number, 0 none */
	int64_t t_open_mono_us;
	struct td_addr local, remote;
};

/*
 * What the library knows about one open fd that is a TCP socket.
 *
 * tag is the publication word: 0 = no entry; otherwise a generation
 * number, new each time the entry is published.  The plain data (d) is
 * written only by td_fdtab_publish() and td_fdtab_update(), while the tag is 0,
 * and copied out by assignment; a reader (td_fdtab_read(), td_fdtab_claim())
 * checks the tag around its copy, so it never uses a half-written entry.
 *
 * The other fields change while the entry is published, each on its own,
 * so each is atomic:
 *   flags    bits set by any hook or the worker (enum td_sock_flag);
 *   share    the dup share slot + 1 (dup() sets it on the source entry);
 *   linger   the program's own SO_LINGER (setsockopt), onoff and seconds
 *            packed in one word so they are read together;
 *   cw_seen  when the worker first saw the socket in CLOSE_WAIT;
 *   written  bytes written (rst_after_bytes, fin_after_bytes);
 *   read_in  bytes read (rst_after_bytes_in);
 *   reset_*  what a library reset saw: stored before TD_SF_RESET_SENT is
 *            set, read only after it is seen.
 */
struct td_sock {
	_Atomic uint32_t tag;
	_Atomic uint32_t flags;
	_Atomic uint32_t share;
	_Atomic uint64_t linger;
	_Atomic int64_t cw_seen_mono_us;
	_Atomic uint64_t written;
	_Atomic uint64_t read_in; /* bytes read (rst_after_bytes_in) */
	/* byte counts kept from before an injected reset, which zeroes them,
	 * and what that reset threw away (never sent; sent, unacknowledged) */
	_Atomic int64_t reset_bytes_in, reset_bytes_out;
	_Atomic int64_t reset_lost, reset_in_flight;
	struct td_sock_data d;
};

/* The program's SO_LINGER as recorded in an entry. */
static inline void td_sock_linger_set(struct td_sock *s, int onoff, int secs)
{
	atomic_store(&s->linger, (uint64_t)(onoff != 0) << 32 | (uint32_t)secs);
}
static inline bool td_sock_linger_on(const struct td_sock *s)
{
	return (atomic_load(&s->linger) >> 32) != 0;
}
static inline int td_sock_linger_secs(const struct td_sock *s)
{
	return (int)(uint32_t)atomic_load(&s->linger);
}

#define TD_FDTAB_MAX (1 << 20)
#define TD_FDTAB_PAGE_SHIFT 10
#define TD_FDTAB_PAGE (1 << TD_FDTAB_PAGE_SHIFT)
#define TD_FDTAB_NPAGES (TD_FDTAB_MAX / TD_FDTAB_PAGE)

/* The table's pages, mapped on first use (fdtab.c). */
extern _Atomic(struct td_sock *) td_fdtab_pages[TD_FDTAB_NPAGES] TD_HIDDEN;

/*
 * Entry for fd, or NULL (no page, out of range). Never allocates.  Inline,
 * with td_fdtab_live(): every close() asks it first, and for an fd the
 * library does not track the answer must cost next to nothing.
 */
static inline struct td_sock *td_fdtab_peek(int fd)
{
	struct td_sock *page;

	if (td_unlikely((unsigned)fd >= TD_FDTAB_MAX))
		return NULL;
	page = atomic_load_explicit(&td_fdtab_pages[fd >> TD_FDTAB_PAGE_SHIFT], memory_order_acquire);
	return page ? &page[fd & (TD_FDTAB_PAGE - 1)] : NULL;
}
/* Entry for fd, allocating its page; NULL when out of memory or range. */
struct td_sock *td_fdtab_slot(int fd) TD_HIDDEN;
/* Publish a fresh entry for fd (fields from init). Returns the entry. */
struct td_sock *td_fdtab_publish(int fd, const struct td_sock *init) TD_HIDDEN;
/* The same with data d, flags, and every other field zero (socket()). */
struct td_sock *td_fdtab_publish_data(int fd, const struct td_sock_data *d,
				   uint32_t flags) TD_HIDDEN;
/*
 * Give the live entry of fd, published under tag, new plain data; its
 * atomic fields stay.  Returns the entry, or NULL when it was replaced
 * or claimed meanwhile (then nothing is written).
 */
struct td_sock *td_fdtab_update(int fd, uint32_t tag, const struct td_sock_data *d) TD_HIDDEN;
/*
 * Take fd's entry away (it is being closed): copies it into *out and
 * returns true when there was one.  Done before the real close, so a
 * thread that gets the fd number next starts from nothing.
 */
bool td_fdtab_claim(int fd, struct td_sock *out) TD_HIDDEN;
/* Copy a live entry consistently; false when none or replaced. */
bool td_fdtab_read(int fd, struct td_sock *out, uint32_t *tag) TD_HIDDEN;
/* Drop fd's entry, if any (the fd is now something untracked). */
void td_fdtab_forget(int fd) TD_HIDDEN;
/* The live entry for fd, or NULL. */
static inline struct td_sock *td_fdtab_live(int fd)
{
	struct td_sock *e = td_fdtab_peek(fd);

	if (e == NULL || atomic_load_explicit(&e->tag, memory_order_acquire) == 0)
		return NULL;
	return e;
}
/* Highest fd that ever had an entry (a bound for scans). */
int td_fdtab_high(void) TD_HIDDEN;

/* Fork epochs: see sock.c's td_holders_sole(). */
extern _Atomic uint32_t td_holders_epoch TD_HIDDEN;
extern uint32_t td_holders_birth_epoch TD_HIDDEN;

/* dup share slots */
uint32_t td_fdtab_share_join(struct td_sock *src) TD_HIDDEN; /* for the new fd */
/* Drop one fd's share; true when other fds of this process remain. */
bool td_fdtab_share_leave(uint32_t share) TD_HIDDEN;

/* Children forked by this process (fork hook) */
void td_holders_child_record(pid_t pid, uint32_t epoch) TD_HIDDEN;
void td_holders_fork_child_reset(void) TD_HIDDEN;
extern __thread uint32_t td_holders_tls_fork_epoch TD_HIDDEN
	__attribute__((tls_model("initial-exec")));

/* Is fd a TCP socket of AF_INET/AF_INET6? (one getsockopt) */
bool td_info_is_tcp(int fd, int *family) TD_HIDDEN;
/* Start tracking a TCP socket the library did not see created. */
struct td_sock *td_decide_adopt(int fd, int family) TD_HIDDEN;
/* Entry for a new TCP socket from socket()/accept(). */
struct td_sock *td_decide_new(int fd, int family, uint8_t role) TD_HIDDEN;

/*
 * Decisions and the options they put into the socket (decide.c).  Each
 * reads fd's entry, decides, and publishes the result as new plain data
 * (td_fdtab_update()); none writes a published entry's plain fields.
 */
void td_decide_bind(const struct td_policy *p, int fd, const struct sockaddr *sa,
		    socklen_t len) TD_HIDDEN;
void td_decide_after_bind(const struct td_policy *p, int fd) TD_HIDDEN;
/* Before the real connect; may redirect it (fault). The plan says what to
 * connect to (sa itself, or a library-owned address in alt). */
struct td_connect_plan {
	const struct sockaddr *sa;
	socklen_t len;
	struct sockaddr_storage alt;
	uint32_t delay_ms;
	int fault;		/* 0, or TD_FK_CONNECT_REFUSE/TIMEOUT */
	bool restore_uto;	/* put TCP_USER_TIMEOUT back after */
	int old_uto;
};
/* The matched rule's index, or -1 (no rule: the caller forgets fd). */
int td_decide_connect(const struct td_policy *p, int fd, const struct sockaddr *sa,
		      socklen_t len, struct td_connect_plan *plan) TD_HIDDEN;
void td_decide_after_connect(const struct td_policy *p, int fd,
		      const struct td_connect_plan *plan, int rc, int err) TD_HIDDEN;
void td_decide_accept(const struct td_policy *p, int lfd, int fd,
		      const struct sockaddr *peer, socklen_t plen) TD_HIDDEN;
/* The rule of a live entry, or NULL. */
const struct td_rule *td_decide_rule(const struct td_policy *p,
				   const struct td_sock *s) TD_HIDDEN;

/* ---- closing (close.c in rt) ------------------------------------------ */

enum td_close_path {
	TD_PATH_CLOSE = 0,
	TD_PATH_FCLOSE,
	TD_PATH_DUP2,
	TD_PATH_CLOSE_RANGE,
	TD_PATH_SYSCALL,
	TD_PATH_EXIT,
};

struct td_closing {
	struct td_sock s;	/* the claimed entry */
	const struct td_rule *rule;
	int fd, path;
	int pfd;		/* private dup kept for a drain, or -1 */
	int saved_errno;	/* the program's errno, given back at the end */
	bool stale;		/* the fd was no longer this socket */
	bool log;
	bool check_after;	/* who sent the first FIN: ask after the close */
	bool check_rst;		/* did the predicted RST go? ask after the close */
	int64_t unread_before;
	struct td_close_facts cf; /* what the event's outcome is predicted from */
	struct td_event ev;
};

/*
 * The one close path (closing.c).  A hook that closes fd calls
 * td_closing_begin(); when it returns false the library has nothing to do
 * and the hook just makes its real call.  Otherwise the hook makes its
 * real call (once) and then td_closing_end() with whether it succeeded;
 * errno is the program's again after each of the two.
 */
bool td_closing_begin(const struct td_policy *p, struct td_closing *c, int fd,
		      int path) TD_HIDDEN;
void td_closing_end(const struct td_policy *p, struct td_closing *c, bool ok) TD_HIDDEN;
/* begin, the real close(), end. */
int td_closing_fd(const struct td_policy *p, int fd, int path) TD_HIDDEN;
/* At exit: close-time work and an "exit" event for sockets still open. */
void td_closing_at_exit(const struct td_policy *p) TD_HIDDEN;
/* Predict from cf and fill ev's outcome fields (also for the worker). */
void td_closing_outcome(struct td_event *ev, const struct td_close_facts *cf,
			int64_t t_open_mono_us) TD_HIDDEN;

/* Close-time facts read from the kernel (info.c). */
struct td_facts {
	int state;		/* kernel TCP state, -1 unknown */
	int64_t unread, unsent, notsent;
	int64_t bytes_received;	/* tcpi_bytes_received: a FIN in counts one */
	int64_t bytes_out;
	int backlog;		/* listeners: queued connections */
	bool linger_on;
	int linger_secs;
	uint64_t ino;
};
/* 0, or a negative errno (-ENOTSOCK/-EBADF: not our socket any more). */
int td_info_facts(int fd, struct td_facts *f, bool want_ino) TD_HIDDEN;
/* The same, taking SO_LINGER from s when the library saw all of it. */
int td_info_facts_sock(int fd, struct td_facts *f, const struct td_sock *s,
		       const struct td_rule *r, bool want_ino) TD_HIDDEN;
/* Throw away queued input without copying it; returns bytes dropped. */
int64_t td_info_discard_input(int fd) TD_HIDDEN;

/* ---- other processes holding a socket (holders.c) ------------------------ */
bool td_holders_sole(int fd, const struct td_sock *s, uint64_t ino) TD_HIDDEN;
/* Whether the sole-holder check will need the socket's inode (forks). */
bool td_holders_needs_ino(const struct td_sock *s) TD_HIDDEN;

/* ---- the kernel's view after the fact (diag.c) ------------------------- */
int td_diag_state(const struct td_addr *local, const struct td_addr *remote) TD_HIDDEN;
/* After our FIN: an enum td_closer (TD_CLOSER_NONE: cannot tell). */
int td_diag_closer(int fd, const struct td_addr *local,
		   const struct td_addr *remote) TD_HIDDEN;

/* ---- the library's own fds (ownfd.c) ----------------------------------- */
/* Move fd to the library's high range (CLOEXEC), mark it, return it. */
int td_ownfd_mark(int fd) TD_HIDDEN;
bool td_ownfd_is(int fd) TD_HIDDEN;
void td_ownfd_close(int fd) TD_HIDDEN;

/* ---- log (logw.c) ------------------------------------------------------- */
/* Fill the common fields (ts, pid, tid, prog) and write one line. */
void td_logw_event(const struct td_policy *p, struct td_event *ev) TD_HIDDEN;
void td_logw_open(const struct td_policy *p) TD_HIDDEN;
/* At exit: the count of lines that could not be written ("dropped"). */
void td_logw_at_exit(const struct td_policy *p) TD_HIDDEN;
/* Fill an event's socket fields from an entry. */
void td_logw_event_from_sock(struct td_event *ev, const struct td_policy *p,
			const struct td_sock *s, int fd, int type) TD_HIDDEN;
/* A batch of whole lines from the spool: one writev(), losses counted. */
void td_logw_batch(const struct iovec *iov, int n) TD_HIDDEN;
/*
 * One warning line, "teardown: msg": on stderr unless it is closed, a
 * network socket or cannot take the line now; then to journald or syslog.
 */
void td_logw_warn(const char *msg) TD_HIDDEN;

/* ---- background worker (worker.c) --------------------------------------- */
struct td_drain_req {
	int pfd;
	int64_t deadline_mono_us;
	struct td_event ev; /* the close event to finish and write */
	struct td_close_facts cf; /* its facts, completed when the drain ends */
	int64_t t_open_mono_us;
	const struct td_policy *p;
	bool log;
};
/* Hand a drain to the worker; 0 or a negative errno (then do it inline). */
int td_worker_drain(const struct td_drain_req *req) TD_HIDDEN;
/* Reset fd (tag must still match) at when_mono_us: rst_after_ms. */
int td_worker_timer(int fd, uint32_t tag, int64_t when_mono_us) TD_HIDDEN;
/* Make sure the CLOSE_WAIT watcher runs. */
void td_worker_watch_leaks(void) TD_HIDDEN;
void td_worker_after_fork_child(void) TD_HIDDEN;
/* At exit: discard input of pending drains and write their events. */
void td_worker_flush_at_exit(void) TD_HIDDEN;

/* Start the worker now if it is not running: 0, or a negative errno. */
int td_worker_start(void) TD_HIDDEN;
/* Wake the running worker (one eventfd write). */
void td_worker_wake(void) TD_HIDDEN;

/* ---- the spool: a file target's lines, written out in batches (spool.c) ---- */
/* Whether this process has a spool (lines may wait in it). */
bool td_spool_exists(void) TD_HIDDEN;
/* Put one finished line in: 0, or -1 when it must be written directly. */
int td_spool_line(const char *line, size_t len) TD_HIDDEN;
/* A line was written directly to the regular file log_fd: after a few,
 * make the spool. */
void td_spool_count_line(const char *log_path, int log_fd) TD_HIDDEN;
/* The flush claim (false: this thread's own flush was interrupted). */
bool td_spool_claim(void) TD_HIDDEN;
void td_spool_release(void) TD_HIDDEN;
/* With the claim held: write out what the spool holds. */
void td_spool_flush_claimed(void) TD_HIDDEN;
/* Claim, write out, release. */
void td_spool_flush(void) TD_HIDDEN;
/* The worker's round: write out when due; returns the next due time. */
int64_t td_spool_tick(int64_t now_mono_us) TD_HIDDEN;
void td_spool_before_fork(void) TD_HIDDEN;
void td_spool_after_fork_child(void) TD_HIDDEN;
void td_spool_at_exit(void) TD_HIDDEN;
/* The program closes fd, one of ours: if it is the spool's, keep its lock. */
void td_spool_fd_closing(int fd) TD_HIDDEN;
/* TEARDOWN_SPOOL_FLUSH_MS (tests), or NULL. */
void td_spool_configure(const char *flush_ms) TD_HIDDEN;
/* Append the lines dead processes left in spools of this log. */
void td_spool_recover(const char *log_path) TD_HIDDEN;

/* ---- run-wide numbers (runwide.c) ----------------------------------------- */
/* Map the run's counters file named by TEARDOWN_RUN (start-up only). */
void td_runwide_attach(const char *path) TD_HIDDEN;
/* The next run-wide connection number, or 0 outside a run. */
uint64_t td_runwide_conn(void) TD_HIDDEN;
/* Rule's next position among its matched connections (run-wide when in
 * a run, else this process's), 1-based; 0 when it cannot be counted. */
uint64_t td_runwide_position(const struct td_policy *p, int rule) TD_HIDDEN;

/* ---- live policy changes (reload.c) --------------------------------------- */
/* Make p generation 0, and watch path (NULL: text from the environment). */
void td_reload_start(struct td_policy *p, const char *path, bool privileged,
		     bool explicit_path) TD_HIDDEN;
/* On connect/accept: at most once a second, has the file changed? */
void td_reload_poll(void) TD_HIDDEN;
/* In the worker: read a changed file and apply it, or say why not. */
void td_reload_tick(void) TD_HIDDEN;
bool td_reload_watching(void) TD_HIDDEN;
/* The policy a socket was decided under. */
const struct td_policy *td_reload_policy_of(const struct td_sock *s) TD_HIDDEN;
/* Bind the rules' program globs to this process and index them. */
void td_init_prepare_policy(struct td_policy *p) TD_HIDDEN;
/* After a reload: reset the open connections its fault.reset_open rules match. */
void td_reload_reset_open(const struct td_policy *p) TD_HIDDEN;
/* Make sure the worker runs and looks at the policy file now. */
void td_worker_watch_policy(void) TD_HIDDEN;

/* ---- faults at run time (faults.c) ------------------------------------- */
/* Send an RST now on a connection the program still holds (entry e:
 * where to keep the byte counts the reset wipes; may be NULL). */
int td_faults_reset_now(int fd, struct td_sock *e) TD_HIDDEN;
/* A loopback address that refuses (refuse) or never answers (timeout). */
int td_faults_target(int family, int kind, struct sockaddr_storage *out,
		    socklen_t *len) TD_HIDDEN;
/* The send-side hook for rst_after_bytes and fin_after_bytes: how much of
 * len may go; then what went. */
size_t td_faults_bytes_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_sent(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_live TD_HIDDEN;
/* The same on the read side, for rst_after_bytes_in. */
size_t td_faults_bytes_in_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_read(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_in_live TD_HIDDEN;

#endif
