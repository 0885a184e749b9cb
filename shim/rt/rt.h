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

#define TD_HIDDEN __attribute__((visibility("hidden")))
#define TD_EXPORT __attribute__((visibility("default")))
#define td_likely(x) __builtin_expect(!!(x), 1)
#define td_unlikely(x) __builtin_expect(!!(x), 0)

/* ---- real symbols (real.c) ------------------------------------------ */

struct td_real_fns {
	__typeof__(socket) *socket;
	__typeof__(accept) *accept;
	__typeof__(accept4) *accept4;
	__typeof__(connect) *connect;
	__typeof__(bind) *bind;
	__typeof__(setsockopt) *setsockopt;
	__typeof__(shutdown) *shutdown;
	__typeof__(close) *close;
	__typeof__(fclose) *fclose;
	int (*close_range)(unsigned int, unsigned int, int);
	void (*closefrom)(int);
	__typeof__(dup) *dup;
	__typeof__(dup2) *dup2;
	__typeof__(dup3) *dup3;
	__typeof__(fork) *fork;
	long (*syscall)(long, ...);
	__typeof__(write) *write;
	__typeof__(writev) *writev;
	__typeof__(send) *send;
	__typeof__(sendto) *sendto;
	__typeof__(sendmsg) *sendmsg;
	__typeof__(posix_spawn) *posix_spawn;
	__typeof__(posix_spawnp) *posix_spawnp;
	__typeof__(posix_spawn_file_actions_adddup2) *posix_spawn_file_actions_adddup2;
};

extern struct td_real_fns td_real TD_HIDDEN;

/* Resolve every real symbol once (dlsym RTLD_NEXT); safe to call often. */
void td_real_bind(void) TD_HIDDEN;

/* A system call without libc's syscall() (which this library wraps). */
long td_sys(long n, long a, long b, long c, long d, long e, long f) TD_HIDDEN;
#define td_sys0(n) td_sys((n), 0, 0, 0, 0, 0, 0)
#define td_sys1(n, a) td_sys((n), (long)(a), 0, 0, 0, 0, 0)
#define td_sys2(n, a, b) td_sys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define td_sys3(n, a, b, c) td_sys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* The real calls, falling back to raw system calls before binding. */
int td_real_close(int fd) TD_HIDDEN;
int td_real_dup2(int oldfd, int newfd) TD_HIDDEN;
int td_real_dup3(int oldfd, int newfd, int flags) TD_HIDDEN;
int td_real_close_range(unsigned first, unsigned last, int flags) TD_HIDDEN;
int td_real_shutdown(int fd, int how) TD_HIDDEN;
int td_real_setsockopt(int fd, int level, int name, const void *v,
		       socklen_t len) TD_HIDDEN;
int td_real_connect(int fd, const struct sockaddr *sa, socklen_t len) TD_HIDDEN;
ssize_t td_real_write(int fd, const void *buf, size_t len) TD_HIDDEN;
ssize_t td_real_send(int fd, const void *buf, size_t len, int flags) TD_HIDDEN;
int td_real_socket(int domain, int type, int protocol) TD_HIDDEN;
int td_real_bind_addr(int fd, const struct sockaddr *sa, socklen_t len) TD_HIDDEN;

/* ---- process state (init.c) ------------------------------------------ */

enum { TD_INIT_NONE = 0, TD_INIT_RUNNING, TD_INIT_DONE };

extern _Atomic int td_init_state TD_HIDDEN;
/* The policy in force, or NULL: then every hook is a plain pass-through. */
extern const struct td_policy *td_policy_ptr TD_HIDDEN;
/* Per-thread guard: the library's own work calls straight through. */
extern __thread volatile int td_guard TD_HIDDEN
	__attribute__((tls_model("initial-exec")));

const struct td_policy *td_init_slow(void) TD_HIDDEN;

/*
 * The policy for a hook, or NULL for "pass straight through".  The first
 * call initialises; a thread already inside the library's own work, and
 * every thread while another one initialises, passes through (never
 * waits: a signal handler may be the caller).
 */
static inline const struct td_policy *td_active(void)
{
	if (td_unlikely(td_guard))
		return NULL;
	if (td_likely(atomic_load_explicit(&td_init_state, memory_order_acquire) ==
		      TD_INIT_DONE))
		return td_policy_ptr;
	return td_init_slow();
}

struct td_proc {
	char prog[128];	 /* argv[0]'s basename as the program sees it */
	_Atomic int pid; /* this process (updated in a forked child) */
	uint64_t seed;	 /* fault seed for rules without one */
	bool secure;	 /* AT_SECURE: environment ignored */
	int fd_base;	 /* lowest fd number the library uses for its own */
};
extern struct td_proc td_proc TD_HIDDEN;

/* Whether the caller runs in this process (false in a vfork()ed child). */
bool td_in_own_process(void) TD_HIDDEN;

/* ---- time ------------------------------------------------------------ */
int64_t td_now_us(void) TD_HIDDEN;	 /* CLOCK_REALTIME */
int32_t td_gettid(void) TD_HIDDEN;	 /* cached per thread */
int64_t td_mono_us(void) TD_HIDDEN;	 /* CLOCK_MONOTONIC */
void td_sleep_ms(uint32_t ms) TD_HIDDEN; /* restarts on EINTR */

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
};

/*
 * What the library knows about one open fd that is a TCP socket.  tag is
 * the publication word: 0 = no entry; otherwise a generation number that
 * changes whenever the entry is claimed (closed) or republished, so a
 * reader that copied the fields can check they were not replaced meanwhile.
 */
struct td_sock {
	_Atomic uint32_t tag;
	_Atomic uint32_t flags; /* enum td_sock_flag */
	int32_t rule;		/* matched rule, -1 none */
	int32_t bind_rule;	/* rule matched at bind (listeners), -1 */
	uint8_t role;		/* enum td_sock_role */
	uint8_t decided;	/* rule is final */
	uint8_t family;
	uint8_t pad;
	uint32_t epoch;		/* fork epoch when it entered this process */
	uint32_t share;		/* in-process dup share slot + 1, 0 none */
	int32_t app_linger_onoff, app_linger_secs;
	uint64_t conn;		/* per-process connection number, 0 none */
	int64_t t_open_mono_us;
	int64_t cw_seen_mono_us; /* first seen in CLOSE_WAIT (leak watch) */
	_Atomic uint64_t written; /* bytes written (rst_after_bytes only) */
	/* byte counts kept from before an injected reset, which zeroes them */
	int64_t reset_bytes_in, reset_bytes_out;
	struct td_addr local, remote;
};

#define TD_FD_MAX (1 << 20)

/* Entry for fd, or NULL (no page, out of range). Never allocates. */
struct td_sock *td_fd_peek(int fd) TD_HIDDEN;
/* Entry for fd, allocating its page; NULL when out of memory or range. */
struct td_sock *td_fd_slot(int fd) TD_HIDDEN;
/* Publish a fresh entry for fd (fields from init). Returns the entry. */
struct td_sock *td_fd_publish(int fd, const struct td_sock *init) TD_HIDDEN;
/*
 * Take fd's entry away (it is being closed): copies it into *out and
 * returns true when there was one.  Done before the real close, so a
 * thread that gets the fd number next starts from nothing.
 */
bool td_fd_claim(int fd, struct td_sock *out) TD_HIDDEN;
/* Copy a live entry consistently; false when none or replaced. */
bool td_fd_read(int fd, struct td_sock *out, uint32_t *tag) TD_HIDDEN;
/* Drop fd's entry, if any (the fd is now something untracked). */
void td_fd_forget(int fd) TD_HIDDEN;
/* The live entry for fd, or NULL. */
struct td_sock *td_fd_live(int fd) TD_HIDDEN;
/* Highest fd that ever had an entry (a bound for scans). */
int td_fd_high(void) TD_HIDDEN;

/* Fork epochs: see sock.c's td_sock_sole_holder(). */
extern _Atomic uint32_t td_epoch TD_HIDDEN;
extern uint32_t td_birth_epoch TD_HIDDEN;

/* dup share slots */
uint32_t td_share_join(struct td_sock *src) TD_HIDDEN; /* for the new fd */
/* Drop one fd's share; true when other fds of this process remain. */
bool td_share_leave(uint32_t share) TD_HIDDEN;

/* Children forked by this process (fork hook) */
void td_child_record(pid_t pid, uint32_t epoch) TD_HIDDEN;
void td_fork_child_reset(void) TD_HIDDEN;
extern __thread uint32_t td_tls_fork_epoch TD_HIDDEN
	__attribute__((tls_model("initial-exec")));

/* Is fd a TCP socket of AF_INET/AF_INET6? (one getsockopt) */
bool td_is_tcp(int fd, int *family) TD_HIDDEN;
/* Start tracking a TCP socket the library did not see created. */
struct td_sock *td_sock_adopt(int fd, int family) TD_HIDDEN;
/* Entry for a new TCP socket from socket()/accept(). */
struct td_sock *td_sock_new(int fd, int family, uint8_t role) TD_HIDDEN;

/* Decisions and the options they put into the socket (decide.c). */
void td_decide_bind(const struct td_policy *p, int fd, struct td_sock *s,
		    const struct sockaddr *sa, socklen_t len) TD_HIDDEN;
void td_after_bind(const struct td_policy *p, int fd, struct td_sock *s) TD_HIDDEN;
/* Before the real connect; may redirect it (fault). Returns the sockaddr
 * to connect to (sa itself, or a library-owned one in *alt). */
struct td_connect_plan {
	const struct sockaddr *sa;
	socklen_t len;
	struct sockaddr_storage alt;
	uint32_t delay_ms;
	int fault;		/* 0, or TD_FK_CONNECT_REFUSE/TIMEOUT */
	bool restore_uto;	/* put TCP_USER_TIMEOUT back after */
	int old_uto;
};
void td_decide_connect(const struct td_policy *p, int fd, struct td_sock *s,
		       const struct sockaddr *sa, socklen_t len,
		       struct td_connect_plan *plan) TD_HIDDEN;
void td_after_connect(const struct td_policy *p, int fd, struct td_sock *s,
		      const struct td_connect_plan *plan, int rc,
		      int err) TD_HIDDEN;
void td_decide_accept(const struct td_policy *p, int lfd, int fd,
		      const struct sockaddr *peer, socklen_t plen) TD_HIDDEN;
/* The rule of a live entry, or NULL. */
const struct td_rule *td_sock_rule(const struct td_policy *p,
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
	int fd;
	int pfd;		/* private dup kept for a drain, or -1 */
	bool stale;		/* the fd was no longer this socket */
	bool check_after;	/* who sent the first FIN: ask after the close */
	bool log;
	struct td_event ev;
	int64_t unread_before;
	int32_t tid;
};

/*
 * The three steps every close path takes: prepare (before the program's
 * fd goes: gather facts, discard input, keep a private reference for a
 * drain), the real call (by the hook), finish (shut down and drain in the
 * background, write the event).
 */
void td_close_prepare(const struct td_policy *p, struct td_closing *c, int fd,
		      const struct td_sock *s, int path) TD_HIDDEN;
void td_close_finish(const struct td_policy *p, struct td_closing *c, int rc,
		     int err) TD_HIDDEN;
/* A whole close of one tracked fd through the real close(). */
int td_close_fd(const struct td_policy *p, int fd, int path) TD_HIDDEN;

/* Close-time facts read from the kernel (info.c). */
struct td_facts {
	int state;		/* kernel TCP state, -1 unknown */
	int64_t unread, unsent, notsent;
	int64_t bytes_in, bytes_out;
	int backlog;		/* listeners: queued connections */
	bool linger_on;
	int linger_secs;
	uint64_t ino;
};
/* 0, or a negative errno (-ENOTSOCK/-EBADF: not our socket any more). */
int td_facts_read(int fd, struct td_facts *f, bool want_ino) TD_HIDDEN;
/* The same, taking SO_LINGER from s when the library saw all of it. */
int td_facts_read_sock(int fd, struct td_facts *f, const struct td_sock *s,
		       const struct td_rule *r, bool want_ino) TD_HIDDEN;
/* Throw away queued input without copying it; returns bytes dropped. */
int64_t td_discard_input(int fd) TD_HIDDEN;

/* ---- other processes holding a socket (holders.c) ------------------------ */
bool td_sock_sole_holder(int fd, const struct td_sock *s, uint64_t ino) TD_HIDDEN;
/* Whether the sole-holder check will need the socket's inode (forks). */
bool td_sock_needs_ino(const struct td_sock *s) TD_HIDDEN;

/* ---- the kernel's view after the fact (diag.c) ------------------------- */
int td_diag_state(const struct td_addr *local, const struct td_addr *remote) TD_HIDDEN;
int td_diag_we_closed_first(int fd, const struct td_addr *local,
			    const struct td_addr *remote) TD_HIDDEN;

/* ---- the library's own fds (ownfd.c) ----------------------------------- */
/* Move fd to the library's high range (CLOEXEC), mark it, return it. */
int td_own_fd(int fd) TD_HIDDEN;
bool td_own_is(int fd) TD_HIDDEN;
void td_own_close(int fd) TD_HIDDEN;

/* ---- log (logw.c) ------------------------------------------------------- */
/* Fill the common fields (ts, pid, tid, prog) and write one line. */
void td_log(const struct td_policy *p, struct td_event *ev) TD_HIDDEN;
void td_log_open(const struct td_policy *p) TD_HIDDEN;
/* At exit: the count of lines that could not be written ("dropped"). */
void td_log_at_exit(const struct td_policy *p) TD_HIDDEN;
/* Fill an event's socket fields from an entry. */
void td_event_from_sock(struct td_event *ev, const struct td_policy *p,
			const struct td_sock *s, int fd, int type) TD_HIDDEN;
/*
 * One warning line, "teardown: msg": on stderr unless it is closed, a
 * network socket or cannot take the line now; then to journald or syslog.
 */
void td_warn(const char *msg) TD_HIDDEN;

/* ---- background worker (worker.c) --------------------------------------- */
struct td_drain_req {
	int pfd;
	int64_t deadline_mono_us;
	struct td_event ev; /* the close event to finish and write */
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

/* ---- faults at run time (faults.c) ------------------------------------- */
/* Send an RST now on a connection the program still holds (entry e:
 * where to keep the byte counts the reset wipes; may be NULL). */
int td_reset_now(int fd, struct td_sock *e) TD_HIDDEN;
/* A loopback address that refuses (refuse) or never answers (timeout). */
int td_fault_target(int family, int kind, struct sockaddr_storage *out,
		    socklen_t *len) TD_HIDDEN;
/* The send-side hook for rst_after_bytes: how much of len may go. */
size_t td_bytes_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_bytes_sent(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_bytes_faults_live TD_HIDDEN;

#endif
