/*
 * teardown runtime: process state and start-up (init.c): the policy in
 * force, the per-thread guard, what the process is, and the one test
 * every hook makes first (td_init_active()).
 */
#ifndef TD_RT_INIT_H
#define TD_RT_INIT_H

#include "base.h"

/* TD_INIT_SANDBOXED: every thread entered a seccomp sandbox (td_init_sandbox()) */
enum { TD_INIT_NONE = 0, TD_INIT_RUNNING, TD_INIT_DONE, TD_INIT_SANDBOXED };
/* td_init_guard's value in a thread that entered a seccomp sandbox */
#define TD_GUARD_SANDBOX 2

extern _Atomic int td_init_state TD_HIDDEN;
/*
 * The policy in force, or NULL: then every hook is a plain pass-through.
 * A live reload replaces it (reload.c); a socket keeps the policy it was
 * decided under (td_reload_policy_of()).
 */
extern _Atomic(const struct td_policy *) td_init_policy TD_HIDDEN;
/*
 * What td_init_active() reads, so that a hook's test is one load: the
 * policy in force once start-up is done (td_init_policy, kept equal by a
 * reload), NULL before, without a policy, and for good once a sandbox
 * covers every thread (td_init_sandbox()).
 */
extern _Atomic(const struct td_policy *) td_init_acting TD_HIDDEN;
/* Per-thread guard: the library's own work calls straight through. */
extern __thread volatile int td_init_guard TD_HIDDEN
	__attribute__((tls_model("initial-exec")));

const struct td_policy *td_init_slow(void) TD_HIDDEN;
/* The calling thread (all: every thread) enters a seccomp sandbox. */
void td_init_sandbox(bool all) TD_HIDDEN;
/* Whether this thread is in one: the library makes no system call here. */
bool td_init_sandboxed(void) TD_HIDDEN;

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
	return atomic_load_explicit(&td_init_acting, memory_order_acquire);
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
	const struct td_policy *p;

	if (td_unlikely(td_init_guard))
		return NULL;
	p = atomic_load_explicit(&td_init_acting, memory_order_acquire);
	if (td_likely(p != NULL))
		return p;
	/* no policy, or start-up not done; read again after the state, which
	 * start-up stores after td_init_acting */
	if (atomic_load_explicit(&td_init_state, memory_order_acquire) == TD_INIT_DONE)
		return atomic_load_explicit(&td_init_acting, memory_order_acquire);
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
	_Atomic int ppid; /* in a forked child: the process that forked it */
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
/* This thread's id, cached (a fork makes new ones). */
int32_t td_init_tid(void) TD_HIDDEN;
/* The process ends (exit(), _exit(), _Exit(), exit_group): exit events,
 * pending drains, the spool, the lost-line count; once.  now: nothing of
 * the program runs after this (_exit() and the like, not exit()). */
void td_init_at_exit(bool now) TD_HIDDEN;
/* Which sockets the exit path may close itself, to ask after: */
enum td_exit_drop {
	TD_DROP_NONE,	  /* another thread of the program may use any fd */
	TD_DROP_NO_STDIO, /* exit(): all but those under a stdio stream */
	TD_DROP_ANY,	  /* _exit() and the like: nothing runs after */
};
/* Asked once, at the first socket that could go (signals blocked from
 * then on: *blocked, *old the mask td_init_exit_undrop() puts back). */
/* No thread of the program but the calling one (the library's worker
 * aside): glibc's __libc_single_threaded, else the thread count. */
bool td_init_program_alone(void) TD_HIDDEN;
/* A seccomp filter binds this process that no hook saw installed (one
 * inherited across exec); true where that cannot be read. */
bool td_init_filtered(void) TD_HIDDEN;
enum td_exit_drop td_init_exit_drop(bool now, sigset_t *old, bool *blocked) TD_HIDDEN;
void td_init_exit_undrop(bool now, const sigset_t *old, bool blocked) TD_HIDDEN;
/* Bind the rules' program globs to this process and index them. */
void td_init_prepare_policy(struct td_policy *p) TD_HIDDEN;
/* pthread_atfork(), and kept for td_init_fork_run() */
void td_init_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) TD_HIDDEN;
enum td_fork_stage { TD_FORK_PREPARE, TD_FORK_PARENT, TD_FORK_CHILD };
/* The library's fork handlers of one stage, as fork() runs them (_Fork()) */
void td_init_fork_run(enum td_fork_stage stage) TD_HIDDEN;

#endif
