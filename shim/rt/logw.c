/*
 * teardown: writing audit lines.  This is where every event is written.
 *
 * One event is one whole line in one write(), so lines from many threads
 * and processes never interleave (O_APPEND files, datagrams to syslog and
 * journald, pipes up to PIPE_BUF).  A file target's lines go, once a
 * process has written a few, into its spool (spool.c), which the worker
 * writes out in batches of whole lines, one writev() each: td_logw_batch()
 * below, through the same checks.  Nothing here blocks, allocates or locks: a line
 * that cannot be written at once is not retried, but it is never lost in
 * silence either.  Every such line is counted; the first one is reported
 * with its reason in one warning (on stderr when that is usable, else to
 * journald or syslog), and at exit the count goes into a "dropped" event
 * (or, when the target is still unusable, into a last warning).
 *
 * The log fd is the library's own (high, close-on-exec) and is checked
 * (st_dev, st_ino) before each write, so a program that closed it or
 * dup2()ed something over it never gets log bytes in its own files: the
 * log is reopened instead.  A file target is also reopened when its path
 * names another file (logrotate's rename and create, or a delete).
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/evrec.h"
#include "teardown/fmt.h"

#define TD_JOURNAL_SOCKET "/run/systemd/journal/socket"
#define TD_SYSLOG_SOCKET "/dev/log"

/* The current log descriptor and the identity of what it must point at. */
TD_CHILD_READ static _Atomic int td__fd = -1;
TD_CHILD_READ static _Atomic uint64_t td__dev;
TD_CHILD_READ static _Atomic uint64_t td__ino;
/* stderr as it was at start-up, for the "stderr" target */
static uint64_t td__err_dev, td__err_ino;
/* why the stderr target cannot be used at all (0: it can) */
static int td__err_unusable;
TD_CHILD_READ static const struct td_policy *td__pol;
TD_CHILD_READ static char td__host[sizeof(((struct utsname *)0)->nodename)];
static char td__journal[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool td__journal_set;

/*
 * Lines that could not be written, in this process (reset in a forked
 * child, which reports its own), the errno of the first, and whether the
 * one warning has been given.
 */
TD_CHILD_READ static _Atomic uint64_t td__dropped;
TD_CHILD_READ static _Atomic int td__first_err;
static _Atomic int td__warned;
static _Atomic int td__warned_rot; /* a rotated file that could not be reopened */
/*
 * The file still written to, after a rotation that could not be followed,
 * has been removed (logrotate compressed it): a line written there is
 * lost, so it is counted as one (and said once, as every lost line is:
 * td__say_gone() says why), until the path can be opened again.  The
 * error of the last try at opening it, or 0.  A worker that gave up root
 * meets this where the new file is root's alone.
 */
static _Atomic int td__gone;
/* a target that failed to open is tried again at most this often */
#define TD_LOG_RETRY_US 1000000
static _Atomic int64_t td__retry_at_us;
static _Atomic int td__open_err;

/*
 * Whether fd is still the log.  Every libc path that can close or replace
 * it (close, dup2/dup3 over it, close_range, closefrom, syscall) goes
 * through a hook that drops its "own" mark, so the mark is checked on
 * every write, for free.  Only a close behind libc's back (an inline
 * system call, io_uring) would leave the mark wrong: the descriptor's
 * identity (st_dev, st_ino) is checked as well, on the first write and
 * then at most every TD_LOG_RECHECK_US.
 */
#define TD_LOG_RECHECK_US 20000
/* how often a file target's path is compared with the open file */
#define TD_LOG_PATHCHECK_US 100000
/* (written every few lines, by a forked child too: on the child's page) */
TD_CHILD_WRITTEN_LINE static _Atomic int64_t td__checked_us;
TD_CHILD_WRITTEN static _Atomic int64_t td__path_checked_us;
TD_CHILD_READ static _Atomic uint32_t td__mode;
/* odd while a thread reopens a rotated file over the log's descriptor */
TD_CHILD_READ static _Atomic uint32_t td__rot_seq;

static bool td__same(int fd, uint64_t dev, uint64_t ino, mode_t *mode);

TD_CHILD_RUNS
static bool td__still_ours(int fd, mode_t *mode)
{
	uint32_t seq;
	int64_t now;

	if (fd < 0 || !td_ownfd_is(fd, TD_OWN_LOG))
		return false;
	now = td_clock_mono_us();
	if (now - atomic_load_explicit(&td__checked_us, memory_order_relaxed) <
	    TD_LOG_RECHECK_US) {
		*mode = (mode_t)atomic_load_explicit(&td__mode, memory_order_relaxed);
		return true;
	}
	/* a rotation in progress changes the identity under us: trust the mark */
	seq = atomic_load(&td__rot_seq);
	if (!(seq & 1) && !td__same(fd, atomic_load(&td__dev), atomic_load(&td__ino), mode) &&
	    atomic_load(&td__rot_seq) == seq)
		return false;
	*mode = (mode_t)atomic_load(&td__mode);
	atomic_store(&td__checked_us, now);
	return true;
}

TD_CHILD_RUNS
static bool td__same(int fd, uint64_t dev, uint64_t ino, mode_t *mode)
{
	struct stat st;

	if (fd < 0 || td_real_sys_fstat(fd, &st) != 0)
		return false;
	if (mode)
		*mode = st.st_mode;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

/*
 * Whether fd 2 may receive log lines or warnings: it is open, and not a
 * network socket.  Under inetd stderr is the client's TCP connection and
 * a log line would corrupt the protocol; a Unix socket (systemd gives
 * every service a stream to journald), a pipe, a terminal or a file are
 * fine.  *err: why not.
 */
static bool td__stderr_usable(struct stat *st, int *err)
{
	int domain = 0;
	socklen_t len = sizeof(domain);

	if (td_real_sys_fstat(2, st) != 0) {
		*err = EBADF;
		return false;
	}
	if (!S_ISSOCK(st->st_mode))
		return true;
	if (td_real_sys_getsockopt(2, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) {
		*err = EOPNOTSUPP;
		return false;
	}
	return true;
}

/* Remember what stderr is at start-up. */
static void td__probe_stderr(void)
{
	struct stat st;
	int err = 0;

	if (!td__stderr_usable(&st, &err)) {
		td__err_unusable = err;
		return;
	}
	td__err_dev = st.st_dev;
	td__err_ino = st.st_ino;
}

/*
 * A descriptor for the program's stderr that is ours: for a pipe or a
 * terminal a fresh open of /proc/self/fd/2, so that O_NONBLOCK on it does
 * not change the program's own descriptor; for a file or a socket, a
 * duplicate (a socket is written with MSG_DONTWAIT instead).
 */
static int td__open_stderr(void)
{
	struct stat st;
	int fd = -1;

	if (td_real_sys_fstat(2, &st) != 0)
		return -1;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
		fd = td_real_sys_open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
	if (fd < 0)
		fd = td_real_sys_dupfd(2, 0);
	return fd;
}

/* The journal's native socket: TEARDOWN_JOURNAL_SOCKET outside secure mode. */
static const char *td__journal_path(void)
{
	const char *env;

	if (td__journal_set)
		return td__journal;
	env = td_init_proc.secure ? NULL : getenv("TEARDOWN_JOURNAL_SOCKET");
	return env != NULL && env[0] == '/' ? env : TD_JOURNAL_SOCKET;
}

/* A datagram socket connected to path; -1 with errno. */
static int td__open_dgram(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	int fd, err;

	if (n >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, n + 1);
	fd = td_real_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (td_real_connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		err = errno;
		td_real_close(fd);
		td_errno_set(err);
		return -1;
	}
	return fd;
}

/*
 * The file target: O_NOFOLLOW so a symlink planted at the path is not
 * followed, O_APPEND so concurrent writers never overwrite each other (and
 * logrotate's copytruncate works), mode 0600 since the log names peers.
 */
static int td__open_file(const char *path)
{
	return td_real_sys_open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
			      O_NONBLOCK | O_NOCTTY, 0600);
}

/* Open the target and publish it; returns the fd, or -1 with errno. */
__attribute__((noinline, cold)) static int td__reopen(int stale)
{
	const struct td_policy *p = td__pol;
	struct stat st;
	int fd = -1, expect = stale;
	int64_t now = td_clock_mono_us();

	if (p == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (now < atomic_load(&td__retry_at_us)) {
		td_errno_set(atomic_load(&td__open_err));
		return -1;
	}
	switch (p->log_target) {
	case TD_LOG_STDERR:
		/* only while fd 2 is still the stderr we started with */
		if (td__same(2, td__err_dev, td__err_ino, NULL))
			fd = td__open_stderr();
		else
			errno = EBADF;
		break;
	case TD_LOG_FILE:
		fd = td__open_file(p->log_path);
		break;
	case TD_LOG_SYSLOG:
		fd = td__open_dgram(TD_SYSLOG_SOCKET);
		break;
	case TD_LOG_JOURNAL:
		fd = td__open_dgram(td__journal_path());
		break;
	default:
		errno = EINVAL;
		break;
	}
	if (fd < 0) {
		atomic_store(&td__open_err, errno ? errno : EIO);
		atomic_store(&td__retry_at_us, now + TD_LOG_RETRY_US);
		td_errno_set(atomic_load(&td__open_err));
		return -1;
	}
	fd = td_ownfd_mark(fd, TD_OWN_LOG);
	if (td_real_sys_fstat(fd, &st) != 0) {
		td_ownfd_close(fd, TD_OWN_LOG);
		return -1;
	}
	if (!atomic_compare_exchange_strong(&td__fd, &expect, fd)) {
		/* another thread reopened first: use its descriptor */
		td_ownfd_close(fd, TD_OWN_LOG);
		return expect;
	}
	atomic_store(&td__dev, (uint64_t)st.st_dev);
	atomic_store(&td__ino, (uint64_t)st.st_ino);
	atomic_store(&td__mode, (uint32_t)st.st_mode);
	atomic_store(&td__checked_us, td_clock_mono_us());
	atomic_store(&td__path_checked_us, td_clock_mono_us());
	return fd;
}

/*
 * The line head's per-process keys (host, pid, prog), rendered once
 * (td_event_who, event.h): at a process's first line, and again in a
 * forked child once it has a spool, that is, once it logs enough to need
 * one.  The children of a fork-per-connection server write a few lines
 * each: they format those keys line by line, and leave the parent's
 * pages unwritten (a write would copy a page).  Two blocks: a render goes
 * into the one not published, so no line being formatted reads a block
 * being written; a process renders at most once (td__who_pid), so the
 * block it publishes is never written again while it lives.  Rendered
 * from ev's own host, pid and prog; returns the block ev's line may use
 * now (td_event_format() checks it).
 */
TD_CHILD_READ static struct td_event_who td__who_blk[2];
TD_CHILD_READ static _Atomic(const struct td_event_who *) td__who;
TD_CHILD_READ static _Atomic int32_t td__who_pid;

TD_CHILD_RUNS
static const struct td_event_who *td__who_render(const struct td_event *ev)
{
	const struct td_event_who *cur = ev->who;
	int32_t had = atomic_load(&td__who_pid);
	struct td_event_who *w;

	if ((cur != NULL && !td_spool_exists()) || had == ev->pid ||
	    !atomic_compare_exchange_strong(&td__who_pid, &had, ev->pid))
		return cur;
	w = cur == &td__who_blk[0] ? &td__who_blk[1] : &td__who_blk[0];
	td_event_who_render(w, ev->host, ev->pid, ev->prog);
	atomic_store_explicit(&td__who, w, memory_order_release);
	return w;
}

const char *td_logw_host(void)
{
	return td__host[0] ? td__host : NULL;
}

TD_CHILD_RUNS
static void td__atfork_child(void)
{
	td_store_changed(&td__dropped, 0);
	td_store_changed(&td__first_err, 0);
}

void td_logw_open(const struct td_policy *p)
{
	struct utsname u;
	const char *jp;

	td__pol = p;
	if (uname(&u) == 0) {
		size_t n = strnlen(u.nodename, sizeof(td__host) - 1);

		memcpy(td__host, u.nodename, n);
		td__host[n] = '\0';
	}
	jp = td__journal_path();
	if (strlen(jp) < sizeof(td__journal))
		strcpy(td__journal, jp);
	/* else empty: connecting fails with a reason, counted and reported */
	td__journal_set = true;
	td_init_atfork(NULL, NULL, td__atfork_child);
	if (p->log_target == TD_LOG_STDERR) {
		td__probe_stderr();
		if (td__err_unusable)
			return;
	}
	if (p->log_target == TD_LOG_FILE)
		td_init_atfork(td_spool_before_fork, NULL, td_spool_after_fork_child);
	/* lines dead processes left in their spools come first */
	if (td__reopen(-1) >= 0 && p->log_target == TD_LOG_FILE)
		td_spool_recover(p->log_path);
}

/*
 * write() to a pipe whose reader is gone raises SIGPIPE, which would kill
 * a program that never expected to write there.  Block it around the
 * write and consume the signal if the write raised it.
 */
static ssize_t td__write_nosigpipe(int fd, const char *buf, size_t len)
{
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t n;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	n = td_real_write(fd, buf, len);
	err = errno;
	if (n < 0 && err == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};

		(void)sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	td_errno_set(err);
	return n;
}

/* One write of a whole buffer by the kind of file fd is: 0 or an errno. */
TD_CHILD_RUNS
static int td__put(int fd, mode_t mode, const char *buf, size_t len)
{
	ssize_t n;

	if (S_ISSOCK(mode))
		n = td_real_send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	else if (S_ISFIFO(mode))
		n = td__write_nosigpipe(fd, buf, len);
	else
		n = td_real_write(fd, buf, len);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0)
		return errno ? errno : EIO;
	/* a short write: the rest of the line is not written either */
	return S_ISREG(mode) ? ENOSPC : EAGAIN;
}

/* ---- what a lost line says ------------------------------------------- */

static const struct {
	int err;
	const char *what;
} td__reasons[] = {
	{ENOENT, "no such file or directory"},
	{EACCES, "permission denied"},
	{EPERM, "operation not permitted"},
	{EROFS, "read-only file system"},
	{ENOSPC, "no space left on device"},
	{EDQUOT, "disk quota exceeded"},
	{EISDIR, "is a directory"},
	{ELOOP, "a symbolic link, not followed"},
	{ENOTDIR, "a path component is not a directory"},
	{ENAMETOOLONG, "path too long"},
	{EAGAIN, "the reader is not keeping up"},
	{EPIPE, "nobody reads it"},
	{ECONNREFUSED, "nothing listens there"},
	{EBADF, "closed"},
	{EOPNOTSUPP, "a network socket (inetd): never written to"},
	{EMSGSIZE, "message too long"},
	{EIO, "input/output error"},
};

static void td__put_err(struct td_buf *b, int err)
{
	const char *name = td_errno_name(err);

	if (name != NULL) {
		td_buf_puts(b, name);
	} else {
		td_buf_putc(b, 'E');
		td_buf_u64(b, (uint64_t)(err < 0 ? -err : err));
	}
	for (size_t i = 0; i < sizeof(td__reasons) / sizeof(td__reasons[0]); i++)
		if (td__reasons[i].err == err) {
			td_buf_puts(b, " (");
			td_buf_puts(b, td__reasons[i].what);
			td_buf_putc(b, ')');
			break;
		}
}

/* How the target is named in messages and in the "dropped" event. */
static const char *td__target_name(const struct td_policy *p)
{
	switch (p->log_target) {
	case TD_LOG_FILE: return p->log_path;
	case TD_LOG_SYSLOG: return "syslog";
	case TD_LOG_JOURNAL: return "journal";
	default: return "stderr";
	}
}

static void td__put_target(struct td_buf *b, const struct td_policy *p)
{
	td_buf_puts(b, td__target_name(p));
	if (p->log_target == TD_LOG_SYSLOG) {
		td_buf_puts(b, " (" TD_SYSLOG_SOCKET ")");
	} else if (p->log_target == TD_LOG_JOURNAL) {
		td_buf_puts(b, " (");
		td_buf_puts(b, td__journal_path());
		td_buf_putc(b, ')');
	}
}

/*
 * Count one line that was not written.  The first one in the process
 * tree says why, once.
 */
static void td__lose(const struct td_policy *p, int err)
{
	char msg[1024];
	struct td_buf b;
	int zero = 0;

	atomic_fetch_add(&td__dropped, 1);
	(void)atomic_compare_exchange_strong(&td__first_err, &zero, err);
	zero = 0;
	if (!atomic_compare_exchange_strong(&td__warned, &zero, 1))
		return;
	td_buf_init(&b, msg, sizeof(msg));
	td_buf_puts(&b, "cannot write the audit log to ");
	td__put_target(&b, p);
	td_buf_puts(&b, ": ");
	td__put_err(&b, err);
	td_buf_puts(&b, "; lines that cannot be written are counted, and the count is "
			"logged at exit (event \"dropped\")");
	td_logw_warn(td_buf_cstr(&b));
}

/* ---- the targets ------------------------------------------------------ */

/*
 * The file written to is removed and the path cannot be opened (td__gone):
 * said once, in place of td__lose()'s first words, which would name only
 * the error.
 */
__attribute__((noinline, cold)) static void td__say_gone(const struct td_policy *p, int err)
{
	int zero = 0;

	atomic_store(&td__gone, err);
	if (atomic_compare_exchange_strong(&td__warned, &zero, 1)) {
		char msg[1024];
		struct td_buf b;

		td_buf_init(&b, msg, sizeof(msg));
		td_buf_puts(&b, "the audit log file this process writes to was removed after a "
				"rotation, and ");
		td_buf_puts(&b, p->log_path);
		td_buf_puts(&b, " cannot be opened: ");
		td__put_err(&b, err);
		td_buf_puts(&b, "; lines are counted as not written until it can be, and the count "
				"is logged at exit (event \"dropped\"); give the new file a mode and "
				"owner this process may write (logrotate's create MODE OWNER GROUP), or "
				"use copytruncate");
		td_logw_warn(td_buf_cstr(&b));
	}
}

/*
 * The file target's path no longer names the open file (logrotate renamed
 * or deleted it): open the path anew and put the new file on the log's
 * own descriptor number with dup3(), so that a thread writing at that
 * moment writes whole lines to one file or the other, never to a closed
 * or reused number.  One thread does it; the others keep writing.
 */
/* cold and apart: its message buffer stays off the stack of every line */
__attribute__((noinline, cold)) static void td__rotate(const struct td_policy *p, int fd)
{
	uint32_t seq = atomic_load(&td__rot_seq);
	struct stat st;
	int nfd, err = 0;

	if ((seq & 1) || !atomic_compare_exchange_strong(&td__rot_seq, &seq, seq + 1))
		return;
	nfd = td__open_file(p->log_path);
	if (nfd < 0) {
		err = errno;
	} else {
		if (td_real_sys_fstat(nfd, &st) != 0 || !td_ownfd_is(fd, TD_OWN_LOG) ||
		    td_real_dup3(nfd, fd, O_CLOEXEC) != fd) {
			err = errno ? errno : EIO;
		} else {
			atomic_store(&td__dev, (uint64_t)st.st_dev);
			atomic_store(&td__ino, (uint64_t)st.st_ino);
			atomic_store(&td__mode, (uint32_t)st.st_mode);
			atomic_store(&td__gone, 0);
		}
		td_real_close(nfd);
	}
	atomic_store(&td__rot_seq, seq + 2);
	if (err != 0 && td_real_sys_fstat(fd, &st) == 0 && st.st_nlink == 0) {
		td__say_gone(p, err);
	} else if (err != 0) {
		/* lines still go to the renamed file: nothing is lost */
		int zero = 0;

		if (atomic_compare_exchange_strong(&td__warned_rot, &zero, 1)) {
			char msg[1024];
			struct td_buf b;

			td_buf_init(&b, msg, sizeof(msg));
			td_buf_puts(&b, "cannot reopen the audit log ");
			td_buf_puts(&b, p->log_path);
			td_buf_puts(&b, " after it was renamed or removed: ");
			td__put_err(&b, err);
			td_buf_puts(&b, "; still writing to the old file");
			td_logw_warn(td_buf_cstr(&b));
		}
	}
}

/* At most every TD_LOG_PATHCHECK_US (at once: at_once): does the path
 * still name fd's file? */
TD_CHILD_RUNS
static void td__check_path(const struct td_policy *p, int fd, bool at_once)
{
	int64_t now = td_clock_mono_us(), last = atomic_load(&td__path_checked_us);
	struct stat st;

	if (at_once)
		atomic_store(&td__path_checked_us, now);
	else if (now - last < TD_LOG_PATHCHECK_US ||
		 !atomic_compare_exchange_strong(&td__path_checked_us, &last, now))
		return;
	if (fstatat(AT_FDCWD, p->log_path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (uint64_t)st.st_dev == atomic_load(&td__dev) &&
	    (uint64_t)st.st_ino == atomic_load(&td__ino))
		return;
	td__rotate(p, fd);
}

/*
 * stderr or a file: the descriptor to write to now (checked, reopened,
 * rotated), or -1 with *err saying why there is none.
 */
TD_CHILD_RUNS
static int td__stream_fd(const struct td_policy *p, mode_t *mode, int *err)
{
	int fd = atomic_load(&td__fd);

	if (p->log_target == TD_LOG_STDERR && td__err_unusable) {
		*err = td__err_unusable;
		return -1;
	}
	if (!td__still_ours(fd, mode)) {
		fd = td__reopen(fd);
		if (fd < 0) {
			*err = errno ? errno : EIO;
			return -1;
		}
		if (!td__same(fd, atomic_load(&td__dev), atomic_load(&td__ino), mode)) {
			*err = EBADF;
			return -1;
		}
	}
	if (p->log_target == TD_LOG_FILE) {
		td__check_path(p, fd, false);
		int gone = atomic_load_explicit(&td__gone, memory_order_relaxed);

		if (td_unlikely(gone != 0)) {
			*err = gone;
			return -1;
		}
	}
	return fd;
}

/* stderr or a file: 0 or why the line was not written. */
static int td__emit_stream(const struct td_policy *p, const char *line, size_t len)
{
	mode_t mode = 0;
	int err = 0, fd = td__stream_fd(p, &mode, &err);

	return fd < 0 ? err : td__put(fd, mode, line, len);
}

/*
 * The event into the spool as a record: 1 done, 0 it does not pack (its
 * line may still go in), -1 the spool cannot take it.  (Its own frame:
 * the record's buffer is not on the stack of a line.)
 */
__attribute__((noinline)) static int td__spool_event(const struct td_event *ev, int fmt)
{
	char rec[TD_EVREC_MAX];
	/* the host and prog the spool's header names (td__create in
	 * spool.c) are left out; the reader uses its who block only for an
	 * event of the header's pid */
	bool own = ev->host == td_logw_host() && ev->prog == td_init_proc.prog;
	size_t len = td_evrec_pack(rec, sizeof(rec), ev, fmt, own);

	if (len == 0)
		return 0;
	return td_spool_record(rec, len) == 0 ? 1 : -1;
}

/*
 * The file target: into the spool when this process has one (see
 * spool.c), else one write().  Into the spool goes the event itself,
 * packed (include/teardown/evrec.h), not its line: formatting is most of
 * a line's cost, and the worker does it, off the program's thread.  A
 * record that does not pack (an event with very long strings) goes in as
 * its line.  A line the spool cannot take (full, or the exit path closed
 * it) is written by the holder of the flush claim after what the spool
 * holds, so it overtakes none of them.  An event that asks the kernel
 * something (ev->ask) is answered by whoever makes its line: the flusher
 * for a record, here for a line.
 */
static int td__emit_file(const struct td_policy *p, struct td_event *ev, int fmt)
{
	char line[TD_EVENT_MAX];
	mode_t mode = 0;
	int err = 0, fd, in = 0;
	bool spooled = td_spool_exists(), claimed;
	size_t len;

	if (spooled && (in = td__spool_event(ev, fmt)) > 0)
		return 0;
	td_closing_settle_now(ev);
	len = td_event_format(line, sizeof(line), ev, fmt);
	if (len == 0)
		return EMSGSIZE;
	if (spooled) {
		if (in == 0 && td_spool_record(line, len) == 0)
			return 0;
		claimed = td_spool_claim();
		if (claimed)
			td_spool_flush_claimed();
		err = td__emit_stream(p, line, len);
		if (claimed)
			td_spool_release();
		return err;
	}
	fd = td__stream_fd(p, &mode, &err);
	if (fd < 0)
		return err;
	err = td__put(fd, mode, line, len);
	if (err == 0 && S_ISREG(mode))
		td_spool_count_line(p->log_path, fd);
	return err;
}

/*
 * A batch of whole lines from the spool, in one writev() (one append to
 * an O_APPEND file: the lines stay together and whole).  Lines that do
 * not make it are counted as lost, as a line of td_logw_event() would be.
 */
void td_logw_batch(const struct iovec *iov, int n)
{
	const struct td_policy *p = td__pol;
	int saved = errno, err = 0, fd;
	size_t total = 0, done = 0;
	mode_t mode = 0;
	ssize_t w;

	if (p == NULL || n <= 0)
		return;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	fd = td__stream_fd(p, &mode, &err);
	if (fd >= 0) {
		/* a raw system call: libc's writev() is a cancellation point,
		 * and a flusher cancelled here would keep the claim for good */
		do
			w = td_real_sys3(SYS_writev, fd, iov, n);
		while (w < 0 && errno == EINTR);
		if (w == (ssize_t)total) {
			td_errno_set(saved);
			return;
		}
		if (w < 0)
			err = errno ? errno : EIO;
		else
			err = S_ISREG(mode) ? ENOSPC : EAGAIN;
		done = w > 0 ? (size_t)w : 0;
	}
	/* the lines not wholly written */
	for (int i = 0; i < n; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		done = 0;
		td__lose(p, err);
	}
	td_errno_set(saved);
}

/* syslog or journald: one datagram; 0 or why it was not sent. */
static int td__emit_dgram(const char *buf, size_t len)
{
	int fd = atomic_load(&td__fd), err;

	/* a number the program closed (and maybe reused) is not ours */
	if (fd < 0 || !td_ownfd_is(fd, TD_OWN_LOG)) {
		fd = td__reopen(fd);
		if (fd < 0)
			return errno ? errno : EIO;
	}
	if (td_real_send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
		return 0;
	err = errno;
	if (err == ECONNREFUSED || err == ENOTCONN || err == ECONNRESET) {
		/* the daemon restarted: connect our socket to the new one */
		const char *path = td__pol->log_target == TD_LOG_JOURNAL ? td__journal_path()
									 : TD_SYSLOG_SOCKET;
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		if (strlen(path) < sizeof(sun.sun_path)) {
			strcpy(sun.sun_path, path);
			if (td_real_connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
			    td_real_send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len)
				return 0;
			err = errno;
		}
	}
	return err ? err : EIO;
}

/*
 * Each target formats into a buffer of its own size, in a function of its
 * own: a file's line does not take the journal's 3 KB of stack (after
 * fork() each stack page a program goes deeper into is one more copied).
 */
__attribute__((noinline)) static int td__emit_journal(const struct td_event *ev, int fmt, int fac)
{
	char dgram[TD_JOURNAL_MAX];
	size_t n = td_event_journal(dgram, sizeof(dgram), ev, fmt, fac);

	return n > 0 ? td__emit_dgram(dgram, n) : EMSGSIZE;
}

/*
 * The local socket's format, as syslog(3) writes it and as rsyslog's
 * imuxsock and journald parse it: "<PRI>TAG[PID]: MSG" with RFC 5424's
 * facility and severity numbers.  (An RFC 5424 header here would be taken
 * as part of the message by both.)
 */
__attribute__((noinline)) static int td__emit_syslog(const struct td_event *ev, int fmt, int fac)
{
	char msg[TD_EVENT_MAX + 64];
	struct td_buf b;
	size_t n;

	td_buf_init(&b, msg, sizeof(msg));
	td_buf_putc(&b, '<');
	td_buf_u64(&b, (uint64_t)(fac * 8 + td_event_severity(ev)));
	td_buf_puts(&b, ">teardown[");
	td_buf_u64(&b, (uint64_t)atomic_load(&td_init_proc.pid));
	td_buf_puts(&b, "]: ");
	n = td_event_format(b.p + b.len, b.cap - b.len, ev, fmt);
	if (n == 0)
		return EMSGSIZE;
	return td__emit_dgram(msg, b.len + n - 1); /* no newline */
}

/* Write one event to the target; 0 or why not. */
TD_CHILD_RUNS
static int td__emit(const struct td_policy *p, struct td_event *ev)
{
	int fmt = p->log_format;
	int fac = p->log_facility ? p->log_facility : TD_FACILITY_DEFAULT;
	size_t n;

	if (p->log_target == TD_LOG_FILE)
		return td__emit_file(p, ev, fmt);
	/* a line made here: what the event asks is answered now */
	td_closing_settle_now(ev);
	if (p->log_target == TD_LOG_JOURNAL)
		return td__emit_journal(ev, fmt, fac);
	if (p->log_target == TD_LOG_SYSLOG)
		return td__emit_syslog(ev, fmt, fac);
	{
		char line[TD_EVENT_MAX];

		n = td_event_format(line, sizeof(line), ev, fmt);
		if (n == 0)
			return EMSGSIZE;
		return td__emit_stream(p, line, n);
	}
}

/*
 * The effective uid for the events, read again at most every 100 ms: a
 * system call per event would cost more than the rest of the line, and a
 * uid changes once in a program's life, if ever (a daemon dropping root,
 * which the setuid() hooks report: td_logw_ids_changed()).
 * now is the event's own timestamp (wall clock: no second clock read a
 * line); a clock set back reads the uid again at once.
 */
#define TD_LOG_UID_US 100000
TD_CHILD_WRITTEN static _Atomic int64_t td__uid = -1;
TD_CHILD_WRITTEN static _Atomic int64_t td__uid_at_us;

/*
 * Before setuid() and the like, in a process still root whose effective
 * uid is about to change: the log's path is checked now, not at the next
 * line, and a rotated log is opened anew while the process still may (a
 * worker forked before the rotation from a parent that wrote no line
 * since holds the old file, and could not open a new one root made).
 */
void td_logw_before_uid(const struct td_policy *p)
{
	int fd = atomic_load(&td__fd);
	mode_t mode;

	if (fd < 0 || !td__still_ours(fd, &mode))
		return;
	td__check_path(p, fd, true);
}

/* The hooks of setuid() and the like, once the call changed the ids: the
 * next line reads the uid again (a worker's lines right after it gave up
 * root named root, for up to 100 ms). */
void td_logw_ids_changed(void)
{
	atomic_store(&td__uid, -1);
}

/* now: the line's stamp, which for a close may be a little older than
 * another thread's read of the uid (td__log()); a clock set back by more
 * than the period reads it again */
TD_CHILD_RUNS
static int64_t td__euid(int64_t now)
{
	int64_t uid = atomic_load(&td__uid), at = atomic_load(&td__uid_at_us);

	if (uid < 0 || now < at - TD_LOG_UID_US || now - at >= TD_LOG_UID_US) {
		uid = (int64_t)geteuid();
		atomic_store(&td__uid, uid);
		atomic_store(&td__uid_at_us, now);
	}
	return uid;
}

/* The fields every event has: when, who, where.  (Inlined: every line
 * takes it.) */
TD_CHILD_RUNS
static inline __attribute__((always_inline)) void td__fill(struct td_event *ev)
{
	int32_t self = atomic_load(&td_init_proc.pid);

	/* an event that reports a socket's facts (close, exit, exec) is
	 * stamped just before their state read (closing.c) */
	if (ev->ts_us == 0)
		ev->ts_us = td_clock_now_us();
	if (ev->tid == 0)
		ev->tid = td_init_tid();
	ev->prog = td_init_proc.prog;
	ev->host = td_logw_host();
	ev->uid = td__euid(ev->ts_us);
	if (td_unlikely(ev->pid != 0 && ev->pid != self)) {
		/* written on behalf of another process (a dead child's end,
		 * td_closing_reaped()): its keys are written out in full */
		ev->who = NULL;
		return;
	}
	ev->pid = self;
	ev->who = atomic_load_explicit(&td__who, memory_order_acquire);
	if (td_unlikely(ev->who == NULL || ev->who->pid != ev->pid))
		ev->who = td__who_render(ev);
}

TD_CHILD_RUNS
static int td__log(const struct td_policy *p, struct td_event *ev)
{
	td__fill(ev);
	return td__emit(p, ev);
}

/*
 * An exec event (closing.c, just before the program's exec()): its line
 * goes into the exec file (spool.c), which the log gets only once the
 * exec has happened.  Where the line cannot be put there, it is counted
 * as one not written.
 */
void td_logw_exec_event(const struct td_policy *p, struct td_event *ev)
{
	char line[TD_EVENT_MAX];
	int saved = errno, err;
	size_t len;

	if (td__pol == NULL || p->log_target != TD_LOG_FILE)
		return;
	td__fill(ev);
	len = td_event_format(line, sizeof(line), ev, p->log_format);
	err = len == 0 ? EMSGSIZE : td_spool_exec_put(p->log_path, line, len);
	if (err != 0)
		td__lose(p, err);
	td_errno_set(saved);
}

TD_CHILD_RUNS
void td_logw_event(const struct td_policy *p, struct td_event *ev)
{
	int saved = errno, err;

	if (td__pol == NULL)
		return;
	err = td__log(p, ev);
	if (err != 0)
		td__lose(p, err);
	td_errno_set(saved);
}

/*
 * At exit: the count of lines this process could not write, as an event
 * in the log itself when it can be written now, else as a warning.
 */
TD_CHILD_RUNS
void td_logw_at_exit(const struct td_policy *p)
{
	uint64_t n = atomic_load(&td__dropped);
	int saved = errno, err;
	struct td_event ev;

	if (n == 0 || td__pol == NULL || p == NULL)
		return;
	td_event_init(&ev, TD_EV_DROPPED);
	ev.dropped = n;
	ev.target = td__target_name(p);
	ev.err = atomic_load(&td__first_err);
	atomic_store(&td__retry_at_us, 0); /* one more try at opening */
	err = td__log(p, &ev);
	if (err != 0) {
		char msg[1024];
		struct td_buf b;

		td_buf_init(&b, msg, sizeof(msg));
		td_buf_u64(&b, n);
		td_buf_puts(&b, n == 1 ? " audit line was" : " audit lines were");
		td_buf_puts(&b, " not written to ");
		td__put_target(&b, p);
		td_buf_puts(&b, ": ");
		td__put_err(&b, ev.err ? ev.err : err);
		td_logw_warn(td_buf_cstr(&b));
	}
	td_errno_set(saved);
}

TD_CHILD_RUNS
void td_logw_event_from_sock(struct td_event *ev, const struct td_policy *p,
			const struct td_sock *s, int fd, int type)
{
	const struct td_rule *r = td_decide_rule(p, &s->d);
	uint32_t flags = atomic_load(&s->flags);

	td_event_init(ev, type);
	ev->fd = fd;
	ev->role = s->d.role;
	if ((flags & TD_SF_LISTENER) || (!s->d.decided && s->d.bind_rule >= 0))
		ev->role = TD_SOCK_LISTENER;
	ev->local = s->local;
	ev->remote = s->remote;
	ev->rule = r ? r->name : NULL;
	ev->action = r ? td_close_action_name(r->close) : NULL;
	ev->conn = s->d.conn;
	ev->app_linger_set = (flags & TD_SF_APP_LINGER) != 0;
	ev->app_linger_onoff = td_sock_linger_on(s);
	ev->app_linger_secs = td_sock_linger_secs(s);
}

/* ---- warnings --------------------------------------------------------- */

/*
 * A warning that stderr cannot take goes to the system log: journald's
 * native socket when there is one, else syslog's /dev/log, as daemon (or
 * the policy's facility) at severity warning.  msg has no newline.
 */
static bool td__warn_system(const char *msg, size_t len)
{
	const struct td_policy *p = td__pol;
	int fac = p && p->log_facility ? p->log_facility : TD_FACILITY_DEFAULT;
	char buf[1600];
	struct td_buf b;
	bool sent = false;
	int fd;

	fd = td__open_dgram(td__journal_path());
	if (fd >= 0) {
		td_buf_init(&b, buf, sizeof(buf));
		td_buf_puts(&b, "MESSAGE=");
		td_buf_putn(&b, msg, len);
		td_buf_puts(&b, "\nPRIORITY=4\nSYSLOG_FACILITY=");
		td_buf_u64(&b, (uint64_t)fac);
		td_buf_puts(&b, "\nSYSLOG_IDENTIFIER=teardown\n");
		sent = b.lost == 0 &&
		       td_real_send(fd, buf, b.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)b.len;
		td_real_close(fd);
	}
	if (sent)
		return true;
	fd = td__open_dgram(TD_SYSLOG_SOCKET);
	if (fd < 0)
		return false;
	td_buf_init(&b, buf, sizeof(buf));
	td_buf_putc(&b, '<');
	td_buf_u64(&b, (uint64_t)(fac * 8 + 4));
	td_buf_puts(&b, ">teardown[");
	td_buf_u64(&b, (uint64_t)td_real_sys0(SYS_getpid));
	td_buf_puts(&b, "]: ");
	td_buf_putn(&b, msg, len);
	sent = b.lost == 0 &&
	       td_real_send(fd, buf, b.len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)b.len;
	td_real_close(fd);
	return sent;
}

/* The warning line on stderr, never blocking; true when written whole. */
static bool td__warn_stderr(const char *line, size_t len)
{
	struct stat st;
	int err = 0, fd;
	bool ok;

	if (!td__stderr_usable(&st, &err))
		return false;
	if (S_ISSOCK(st.st_mode))
		return td__put(2, st.st_mode, line, len) == 0;
	if (!S_ISFIFO(st.st_mode))
		return td__put(2, st.st_mode, line, len) == 0;
	/* a pipe: a descriptor of our own, non-blocking, for this line */
	fd = td_real_sys_open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);
	if (fd < 0)
		return td__put(2, st.st_mode, line, len) == 0;
	ok = td__put(fd, st.st_mode, line, len) == 0;
	td_real_close(fd);
	return ok;
}

void td_logw_warn(const char *msg)
{
	char line[1400];
	struct td_buf b;

	td_buf_init(&b, line, sizeof(line));
	td_buf_puts(&b, "teardown: ");
	/*
	 * The message may name a path from the environment (TEARDOWN_CONFIG)
	 * holding newlines or terminal escapes: control bytes are written as
	 * \xNN, so that a warning is always one line and cannot forge others.
	 */
	td_buf_escape(&b, msg, strlen(msg), 0);
	/* td_buf keeps b.len < sizeof(line): the newline always fits */
	line[b.len++] = '\n';
	if (!td__warn_stderr(line, b.len))
		(void)td__warn_system(line, b.len - 1);
}
