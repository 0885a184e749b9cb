/*
 * teardown: start-up.  Where the policy comes from, secure execution,
 * when the library may initialise at all, and what happens at exit.
 *
 * The library must never stop a program from starting: an unreadable or
 * invalid policy ends in "run unchanged" with one warning, unless the
 * policy itself asks for on_error = "exit".
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/mem.h"
#include "teardown/config.h"
#include "teardown/fmt.h"

TD_CHILD_READ _Atomic int td_init_state;
TD_CHILD_READ _Atomic(const struct td_policy *) td_init_acting;
__thread volatile int td_init_guard __attribute__((tls_model("initial-exec")));
TD_CHILD_WRITTEN struct td_init_proc td_init_proc;
__thread int *td_errno_p __attribute__((tls_model("initial-exec")));

#define TD_SYSTEM_POLICY "/etc/teardown.conf"

/* Thread ids, cached per thread; a fork (new ids) invalidates the cache. */
TD_CHILD_WRITTEN static _Atomic uint32_t td__fork_gen;
static __thread int32_t td__tid __attribute__((tls_model("initial-exec")));
static __thread uint32_t td__tid_gen __attribute__((tls_model("initial-exec")));

TD_CHILD_RUNS
int32_t td_init_tid(void)
{
	uint32_t g = atomic_load_explicit(&td__fork_gen, memory_order_relaxed);

	if (td__tid == 0) {
		td__tid = (int32_t)td_real_sys0(SYS_gettid);
		td__tid_gen = g;
	} else if (td__tid_gen != g) {
		/* cached before a fork: this is the child's one thread, whose
		 * id is its pid (the fork handler has it already) */
		td__tid = atomic_load(&td_init_proc.pid);
		td__tid_gen = g;
	}
	return td__tid;
}

#if !defined(__x86_64__)
bool td_init_in_own_process(void)
{
	return (pid_t)td_real_sys0(SYS_getpid) == atomic_load(&td_init_proc.pid);
}
#endif

/* Copy the basename of path into out. */
static void td__basename(char *out, size_t cap, const char *path)
{
	const char *b = strrchr(path, '/');
	size_t n;

	b = b ? b + 1 : path;
	n = strnlen(b, cap - 1);
	memcpy(out, b, n);
	out[n] = '\0';
}

/*
 * getenv() without calling getenv(): bash and other shells export their
 * own getenv, which would then run inside the library (the loader binds
 * our call to the program's definition).  The environment at start-up is
 * libc's environ, which the program's copy relocation shares.
 */
static const char *td__env(const char *name)
{
	size_t n = strlen(name);

	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* A policy error: warn once and run unchanged, or stop as the policy asks. */
static void td__policy_error(const struct td_cfg_error *e, int on_error)
{
	char line[1200];
	struct td_buf b;
	char msg[1024];

	td_cfg_error_format(e, msg, sizeof(msg));
	td_buf_init(&b, line, sizeof(line));
	td_buf_puts(&b, msg);
	td_buf_puts(&b, on_error == TD_ONERR_EXIT ? "; exiting (on_error = \"exit\")"
						  : "; running unchanged");
	td_logw_warn(td_buf_cstr(&b));
	if (on_error == TD_ONERR_EXIT)
		_exit(78); /* EX_CONFIG */
}

/*
 * Find and parse the policy: TEARDOWN_CONFIG (a path), TEARDOWN_POLICY
 * (the text), /etc/teardown.conf; the first found wins.  In a secure
 * (setuid, setgid, capability) process the environment is not read at
 * all.  Nothing found: NULL, silently (the library may be preloaded
 * system-wide).
 */
static const char *td__config_env; /* TEARDOWN_CONFIG, when it named the policy */

static struct td_policy *td__load_policy(const char **pathp)
{
	const char *path = NULL, *text = NULL;
	char *filetext = NULL;
	size_t len = 0;
	bool privileged = td_init_proc.secure || geteuid() == 0;
	struct td_cfg_error err;
	struct td_policy *p;
	int rc;

	memset(&err, 0, sizeof(err));
	if (!td_init_proc.secure) {
		path = td__env("TEARDOWN_CONFIG");
		if (path != NULL && *path == '\0')
			path = NULL;
		td__config_env = path;
		if (path == NULL) {
			text = td__env("TEARDOWN_POLICY");
			if (text != NULL && *text == '\0')
				text = NULL;
		}
	}
	if (path == NULL && text == NULL) {
		if (access(TD_SYSTEM_POLICY, F_OK) != 0)
			return NULL;
		path = TD_SYSTEM_POLICY;
	}
	if (path != NULL) {
		rc = td_policy_read_file(path, privileged, &filetext, &len, &err);
		if (rc != 0) {
			td__policy_error(&err, TD_ONERR_PASS);
			return NULL;
		}
		text = filetext;
	} else {
		len = strlen(text);
	}
	p = td_mem_calloc(1, sizeof(*p));
	if (p == NULL) {
		td_mem_free(filetext);
		return NULL;
	}
	rc = td_policy_parse_text(p, text, len, path ? path : "TEARDOWN_POLICY", &err);
	td_mem_free(filetext);
	if (rc != 0) {
		int on_error = p->on_error;

		td_mem_free(p);
		if (rc == -EINVAL)
			td__policy_error(&err, on_error);
		return NULL;
	}
	*pathp = path;
	return p;
}

static void td__proc_init(void)
{
	struct rlimit rl;

	atomic_store(&td_init_proc.pid, (pid_t)td_real_sys0(SYS_getpid));
	td_init_proc.secure = getauxval(AT_SECURE) != 0;
	td__basename(td_init_proc.prog, sizeof(td_init_proc.prog),
		     program_invocation_short_name ? program_invocation_short_name : "?");
	if (getrandom(&td_init_proc.seed, sizeof(td_init_proc.seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(td_init_proc.seed))
		td_init_proc.seed = (uint64_t)td_clock_now_us() ^ ((uint64_t)getpid() << 32);
	/* keep seeds printable and exact in any JSON reader: 53 bits */
	td_init_proc.seed &= (1ull << 53) - 1;
	/*
	 * The library's own fds live high, out of the way of programs that
	 * expect the lowest free number, below select()'s 1024 when the
	 * limit is the usual 1024.
	 */
	td_init_proc.fd_base = 768;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		if (rl.rlim_cur >= 2048)
			td_init_proc.fd_base = 1024;
		else if (rl.rlim_cur >= 64)
			td_init_proc.fd_base = (int)(rl.rlim_cur * 3 / 4);
	}
}

/*
 * Evaluate the rules' program globs for this executable, once, and index
 * the rules (without an index decisions scan: fine for a handful).
 */
void td_init_prepare_policy(struct td_policy *p)
{
	char exe[PATH_MAX], base[128];
	ssize_t n = td_real_sys_readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = '\0';
	td__basename(base, sizeof(base), exe);
	td_policy_bind_program(p, td_init_proc.prog, n > 0 ? base : NULL);
	if (p->n_rules >= 32)
		(void)td_policy_build_index(p);
	/* per-rule match counts for faults aimed by position (this process) */
	if (p->any_fault && p->n_rules > 0)
		p->matched = td_mem_calloc(p->n_rules, sizeof(*p->matched));
	td_decide_make_observers(p);
}

/* Whether any rule can match in this program: if none, stay out of the way. */
static bool td__applies(const struct td_policy *p)
{
	for (uint32_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].program_ok)
			return true;
	return false;
}

/*
 * Why a seccomp sandbox turns the library off for good: a thread that
 * entered one (OpenSSH's pre-authentication child, Chromium's renderers,
 * a service under a filter of its own) is killed by any system call its
 * filter does not list, and the library's own calls (TCP_INFO at a close,
 * the log's write, a sock_diag lookup, getpid() after fork) are not on
 * the program's list: sshd's child died of SIGSYS at its first close.
 * From then on every hook in that thread goes straight to libc, as in a
 * thread inside the library's own work (td_init_guard), and its exit does
 * nothing of ours; a filter synchronised to every thread (TSYNC) turns
 * the whole process off.  A forked child inherits the thread's filter and
 * its guard.  What is left unlogged is said in README "Limits".
 */
void td_init_sandbox(bool all)
{
	td_init_guard = TD_GUARD_SANDBOX;
	if (all) {
		atomic_store(&td_init_state, TD_INIT_SANDBOXED);
		atomic_store(&td_init_acting, NULL);
	}
}

bool td_init_sandboxed(void)
{
	return td_init_guard == TD_GUARD_SANDBOX ||
	       atomic_load_explicit(&td_init_state, memory_order_relaxed) == TD_INIT_SANDBOXED;
}

/*
 * In the child of fork() (also daemon()'s internal fork, which the fork
 * hook never sees): new pid, new fork epoch, no worker thread, and the
 * parent's children are not ours.
 */
TD_CHILD_RUNS
static void td__atfork_child(void)
{
	int saved = errno;

	if (td_init_sandboxed())
		return;
	/* the process that forked this one, for the holders of what it
	 * inherited: no getppid() later (a reparented child's old parent is
	 * gone, and its /proc entry with it) */
	atomic_store(&td_init_proc.ppid, atomic_load(&td_init_proc.pid));
	atomic_store(&td_init_proc.pid, (pid_t)td_real_sys0(SYS_getpid));
	atomic_fetch_add(&td__fork_gen, 1);
	td_holders_fork_child_reset();
	td_fdtab_hrec_child(atomic_load(&td_init_proc.ppid));
	td_worker_after_fork_child();
	td_mem_after_fork_child();
	td_errno_set(saved);
}

/*
 * The library's fork handlers, in the order they were given to
 * pthread_atfork(), for a fork that runs none: _Fork() (glibc 2.34, the
 * fork a signal handler may call) runs them itself (shim/hook/fork.c), in
 * fork()'s order: the prepare handlers last registered first, the others
 * first registered first.  Filled at start-up; an entry is published by
 * the count that follows it.
 */
#define TD_ATFORK_MAX 8
struct td__atfork {
	void (*prepare)(void), (*parent)(void), (*child)(void);
};
static struct td__atfork td__atforks[TD_ATFORK_MAX];
static _Atomic int td__n_atforks;

void td_init_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	int n = atomic_load(&td__n_atforks);

	/* (three registrations in all: a full table would be this file's bug) */
	if (n < TD_ATFORK_MAX) {
		td__atforks[n] = (struct td__atfork){prepare, parent, child};
		atomic_store(&td__n_atforks, n + 1);
	}
	pthread_atfork(prepare, parent, child);
}

TD_CHILD_RUNS
void td_init_fork_run(enum td_fork_stage stage)
{
	int n = atomic_load(&td__n_atforks);

	if (stage == TD_FORK_PREPARE) {
		for (int i = n - 1; i >= 0; i--)
			if (td__atforks[i].prepare != NULL)
				td__atforks[i].prepare();
		return;
	}
	for (int i = 0; i < n; i++) {
		void (*fn)(void) = stage == TD_FORK_CHILD ? td__atforks[i].child : td__atforks[i].parent;

		if (fn != NULL)
			fn();
	}
}

/* The inherited sockets met so far, to tell a second fd on one of them;
 * the fds systemd handed this process (LISTEN_FDS, for LISTEN_PID). */
struct td__inherited {
	int n;
	int fd[16];
	uint64_t ino[16];
	int listen_fds;
};

/* systemd's socket passing: LISTEN_FDS fds from 3 on, when LISTEN_PID is
 * this process (not in secure execution: the environment is ignored). */
static int td__listen_fds(void)
{
	const char *pid = td_init_proc.secure ? NULL : td__env("LISTEN_PID");
	const char *n = td_init_proc.secure ? NULL : td__env("LISTEN_FDS");
	uint64_t v, w;

	if (pid == NULL || n == NULL || td_parse_u64(pid, &v) != 0 ||
	    v != (uint64_t)atomic_load(&td_init_proc.pid) || td_parse_u64(n, &w) != 0 ||
	    w > 1024)
		return 0;
	return (int)w;
}

/* fd, unless the library knows it already (its own, a socket seen made),
 * when it is a TCP socket: an inherited connection, or a dup of one. */
static void td__adopt_one(const struct td_policy *p, int fd, struct td__inherited *seen)
{
	struct stat st;
	bool known;
	int family;

	if (td_fdtab_live(fd) != NULL || !td_info_is_tcp(fd, &family))
		return;
	known = td_real_sys_fstat(fd, &st) == 0;
	for (int i = 0; known && i < seen->n; i++)
		if (seen->ino[i] == (uint64_t)st.st_ino) {
			if (td_fdtab_live(seen->fd[i]) != NULL)
				td_decide_copy(seen->fd[i], fd);
			return;
		}
	td_decide_inherited(p, fd, family,
			    fd == 0 || fd == 1 || (fd >= 3 && fd < 3 + seen->listen_fds), 0);
	if (known && seen->n < 16 && td_fdtab_live(fd) != NULL) {
		seen->fd[seen->n] = fd;
		seen->ino[seen->n++] = (uint64_t)st.st_ino;
	}
}

/*
 * The connections the program got open across exec() (an inetd-style
 * child's on 0 and 1, a socket-activated service's): every fd it holds at
 * start-up, read from /proc/self/fd, or fds 0 to 2 where /proc cannot be
 * read.  One system call for each fd that is not a socket (SO_PROTOCOL:
 * ENOTSOCK); usually there are three.
 */
static void td__adopt_inherited(const struct td_policy *p)
{
	struct td__inherited seen = {.n = 0, .listen_fds = td__listen_fds()};
	char dents[2048];
	int dfd = td_real_sys_open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	long n;

	if (dfd < 0) {
		for (int fd = 0; fd <= 2; fd++)
			td__adopt_one(p, fd, &seen);
		return;
	}
	while ((n = td_real_sys3(SYS_getdents64, dfd, dents, sizeof(dents))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);
			uint64_t v;

			off += d->d_reclen;
			if (td_parse_u64(d->d_name, &v) == 0 && v <= INT_MAX && (int)v != dfd)
				td__adopt_one(p, (int)v, &seen);
		}
	}
	(void)td_real_sys1(SYS_close, dfd);
}

/*
 * Start-up: bind the real symbols, read the policy, open the log.  Runs
 * once, from the constructor, or earlier from the first TCP socket call
 * another library's constructor makes (td_init_active_tcp()).  Lock-free: a
 * caller that finds another thread initialising passes through instead
 * of waiting.
 */
const struct td_policy *td_init_slow(void)
{
	int expect = TD_INIT_NONE;
	int saved = errno;
	const char *path = NULL;
	struct td_policy *p;
	bool watched;

	if (!atomic_compare_exchange_strong(&td_init_state, &expect,
					    TD_INIT_RUNNING))
		return expect == TD_INIT_DONE ? atomic_load(&td_init_policy) : NULL;
	td_init_guard = 1;
	td_real_bind_all();
	td__proc_init();
	if (!td_init_proc.secure)
		td_runwide_attach(td__env("TEARDOWN_RUN"));
	p = td__load_policy(&path);
	if (p != NULL)
		td_init_prepare_policy(p);
	/*
	 * A policy with no rule for this program stays out of its way, unless
	 * it came from a file this process was pointed at (TEARDOWN_CONFIG):
	 * a changed file may bring rules for it later.
	 */
	watched = path != NULL && path == td__config_env;
	if (p != NULL && (td__applies(p) || watched)) {
		td_reload_start(p, path, td_init_proc.secure || geteuid() == 0, watched);
		td_spool_configure(td_init_proc.secure ? NULL : td__env("TEARDOWN_SPOOL_FLUSH_MS"));
		td_logw_open(p);
		td_init_atfork(td_holders_fork_prepare, td_holders_fork_parent, td__atfork_child);
		if (td__applies(p)) {
			td__adopt_inherited(p);
			td_diag_close_pool();
		}
	}
	td_init_guard = 0;
	/* before the state: see td_init_active_tcp() */
	atomic_store_explicit(&td_init_acting, atomic_load(&td_init_policy), memory_order_release);
	atomic_store_explicit(&td_init_state, TD_INIT_DONE, memory_order_release);
	td_errno_set(saved);
	return atomic_load(&td_init_policy);
}

__attribute__((constructor)) static void td__ctor(void)
{
	if (!td_init_done())
		(void)td_init_slow();
}

/*
 * At the end of the process, by exit() (the destructor) or by _exit(),
 * _Exit() or syscall(SYS_exit_group) (their hooks): sockets still open
 * get their close-time work (a graceful socket's unread input is
 * discarded so the kernel's exit-time close sends FIN, not RST) and an
 * "exit" event, pending drains write theirs, the spool is written out,
 * and the count of lines that could not be written is reported.  A
 * fork-per-connection server's child usually leaves by _exit() with its
 * connection still open: that connection ends there.  Once per process
 * (a destructor may call _exit() after ours ran); never in a vfork()ed
 * child, whose memory is its parent's.
 */
/* (on the page a forked child writes anyway: every child exits) */
TD_CHILD_WRITTEN static _Atomic bool td__exited;

/*
 * Threads in this process, or -1.  procfs gives /proc/self/task a link
 * count of 2 plus the threads (proc_task_getattr(), since Linux 2.6): one
 * statx(), where /proc/self/stat's 20th field takes an open, a read the
 * kernel fills with some fifty fields, and a close (2.6 us against 10.8
 * here; a forking server whose parent has a thread, the library's worker
 * after a drain, asks before every fork, and each child at its exit).
 * The read stays for where statx() is refused (a seccomp filter, a
 * kernel before 4.11).
 */
static int td__threads(void)
{
	char buf[512], *p, *end;
	struct statx stx;
	int fd, field = 2;
	uint64_t v;
	ssize_t n;

	if (td_real_sys(SYS_statx, AT_FDCWD, (long)"/proc/self/task", AT_STATX_SYNC_AS_STAT,
			STATX_NLINK, (long)&stx, 0) == 0 &&
	    (stx.stx_mask & STATX_NLINK) && stx.stx_nlink > 2 && stx.stx_nlink - 2 <= INT_MAX)
		return (int)(stx.stx_nlink - 2);
	if ((fd = td_real_sys_open("/proc/self/stat", O_RDONLY | O_CLOEXEC, 0)) < 0)
		return -1;
	n = (ssize_t)td_real_sys3(SYS_read, fd, buf, sizeof(buf) - 1);
	(void)td_real_sys1(SYS_close, fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* the name in parentheses may hold anything: after the last ')' */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	for (p++; *p != '\0' && field < 20; p++)
		if (*p == ' ')
			field++;
	if (field != 20)
		return -1;
	if ((end = strchr(p, ' ')) != NULL)
		*end = '\0';
	return td_parse_u64(p, &v) == 0 && v <= INT_MAX ? (int)v : -1;
}

/*
 * Whether a seccomp filter binds this process that the library never saw
 * installed (one inherited across exec: systemd's SystemCallFilter=, a
 * container's profile; a filter installed here sandboxes the thread, see
 * td_init_sandbox()).  Such a filter may kill at a system call the
 * program itself never makes, so the library makes none of its own there
 * that a close does not need (closing.c, td__abort_told(): a connect()).
 * /proc/self/status's "Seccomp:" field (2: a filter; not
 * prctl(PR_GET_SECCOMP), at which the filter may kill too), read once a
 * process on first need, in pieces (a signal handler's stack may be
 * small); a forked child inherits the filter and the answer.  Unreadable:
 * yes.
 */
static _Atomic int8_t td__filtered = -1;

bool td_init_filtered(void)
{
	static const char key[] = "\nSeccomp:\t";
	char buf[256 + sizeof(key)], *p;
	size_t keep = 0;
	int8_t v = atomic_load_explicit(&td__filtered, memory_order_relaxed);
	int fd;
	ssize_t n;

	if (v >= 0)
		return v != 0;
	v = 1;
	if ((fd = td_real_sys_open("/proc/self/status", O_RDONLY | O_CLOEXEC, 0)) >= 0) {
		while ((n = (ssize_t)td_real_sys3(SYS_read, fd, buf + keep,
						  sizeof(buf) - 1 - keep)) > 0) {
			buf[keep + (size_t)n] = '\0';
			if ((p = strstr(buf, key)) != NULL &&
			    p[sizeof(key) - 1] != '\0') {
				v = p[sizeof(key) - 1] != '0';
				break;
			}
			/* a key cut at the piece's end: its start comes again */
			keep = keep + (size_t)n < sizeof(key) ? keep + (size_t)n : sizeof(key);
			memmove(buf, buf + strlen(buf) - keep, keep);
		}
		(void)td_real_sys1(SYS_close, fd);
	}
	atomic_store_explicit(&td__filtered, v, memory_order_relaxed);
	return v != 0;
}

bool td_init_program_alone(void)
{
	int threads;

	/* (a process that never made a thread, as most forked children of
	 * single-threaded servers: no /proc read) */
	if (td_real_single_threaded != NULL && *td_real_single_threaded)
		return true;
	threads = td__threads();
	return threads > 0 && threads - (td_worker_exists() ? 1 : 0) == 1;
}

/*
 * Which sockets the exit path may close itself, to ask after
 * (td_closing_at_exit): only those nothing of the program can touch any
 * more.  No other thread of the program may exist (the library's worker
 * aside): it could still be using any fd.  In _exit() and the like no more
 * of this thread's code runs; in exit(), after the library's destructor
 * come stdio's final flush (a socket under a stream keeps its fd) and the
 * destructors of libraries loaded before this one.  Signals are blocked
 * meanwhile (*blocked, and *old the mask to put back, for exit()).  A
 * thread made by a raw clone() rather than pthread_create() is not seen
 * by glibc's __libc_single_threaded.
 */
TD_CHILD_RUNS
enum td_exit_drop td_init_exit_drop(bool now, sigset_t *old, bool *blocked)
{
	sigset_t all;

	sigfillset(&all);
	*blocked = td_real_sys(SYS_rt_sigprocmask, SIG_BLOCK, (long)&all, (long)old, _NSIG / 8, 0,
			       0) == 0;
	if (!*blocked || !td_init_program_alone())
		return TD_DROP_NONE;
	return now ? TD_DROP_ANY : TD_DROP_NO_STDIO;
}

TD_CHILD_RUNS
void td_init_exit_undrop(bool now, const sigset_t *old, bool blocked)
{
	if (blocked && !now)
		(void)td_real_sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)old, 0, _NSIG / 8, 0, 0);
}

TD_CHILD_RUNS
void td_init_at_exit(bool now)
{
	const struct td_policy *p = td_init_active();
	int saved = errno;

	if (!td_init_in_own_process() || td_init_sandboxed())
		return;
	if (p == NULL || atomic_exchange(&td__exited, true)) {
		td_spool_at_exit();
		return;
	}
	td_worker_flush_at_exit();
	td_closing_at_exit(p, now);
	/* children killed meanwhile that no wait hook saw reaped */
	if (td_fdtab_hrec_any())
		td_closing_sweep();
	td_spool_at_exit();
	td_logw_at_exit(p);
	td_errno_set(saved);
}

__attribute__((destructor)) static void td__dtor(void)
{
	td_init_at_exit(false);
}
