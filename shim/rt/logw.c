/*
 * teardown: writing audit lines.  This is where every event is written.
 *
 * One event is one write(), so lines from many threads and processes
 * never interleave (O_APPEND files, datagrams to syslog, pipes up to
 * PIPE_BUF).  Nothing here blocks, allocates or locks: a line that cannot
 * be written at once is dropped.  The log fd is the library's own (high,
 * close-on-exec) and is checked (st_dev, st_ino) before each write, so a
 * program that closed it or dup2()ed something over it never gets log
 * bytes in its own files: the log is reopened instead.
 */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/fmt.h"

/* The current log descriptor and the identity of what it must point at. */
static _Atomic int td__fd = -1;
static _Atomic uint64_t td__dev, td__ino;
/* stderr as it was at start-up, for the "stderr" target */
static uint64_t td__err_dev, td__err_ino;
static _Atomic int td__disabled;
static const struct td_policy *td__pol;

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
static _Atomic int64_t td__checked_us;
static _Atomic uint32_t td__mode;

static bool td__same(int fd, uint64_t dev, uint64_t ino, mode_t *mode);

static bool td__still_ours(int fd, mode_t *mode)
{
	int64_t now;

	if (fd < 0 || !td_own_is(fd))
		return false;
	now = td_mono_us();
	if (now - atomic_load_explicit(&td__checked_us, memory_order_relaxed) <
	    TD_LOG_RECHECK_US) {
		*mode = (mode_t)atomic_load_explicit(&td__mode, memory_order_relaxed);
		return true;
	}
	if (!td__same(fd, atomic_load(&td__dev), atomic_load(&td__ino), mode))
		return false;
	atomic_store(&td__mode, (uint32_t)*mode);
	atomic_store(&td__checked_us, now);
	return true;
}

static bool td__same(int fd, uint64_t dev, uint64_t ino, mode_t *mode)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0)
		return false;
	if (mode)
		*mode = st.st_mode;
	return (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

/*
 * Remember what stderr is at start-up.  Nothing is logged there when it
 * is a socket: under inetd it is the client's connection, and log lines
 * would corrupt the protocol.
 */
static bool td__probe_stderr(void)
{
	struct stat st;

	if (fstat(2, &st) != 0 || S_ISSOCK(st.st_mode))
		return false;
	td__err_dev = st.st_dev;
	td__err_ino = st.st_ino;
	return true;
}

/*
 * A descriptor for the program's stderr that is ours: for a pipe or a
 * terminal a fresh open of /proc/self/fd/2, so that O_NONBLOCK on it does
 * not change the program's own descriptor; for a file, a duplicate.
 */
static int td__open_stderr(void)
{
	struct stat st;
	int fd = -1;

	if (fstat(2, &st) != 0)
		return -1;
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))
		fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		fd = fcntl(2, F_DUPFD_CLOEXEC, 0);
	return fd;
}

static int td__open_syslog(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/dev/log"};
	int fd = td_real_socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (td_real_connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		td_real_close(fd);
		return -1;
	}
	return fd;
}

/*
 * The file target: O_NOFOLLOW so a symlink planted at the path is not
 * followed, O_APPEND so concurrent writers never overwrite each other,
 * mode 0600 since the log names peers.
 */
static int td__open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
			      O_NONBLOCK | O_NOCTTY, 0600);
}

/* Open the target and publish it; returns the fd or -1. */
static int td__reopen(int stale)
{
	const struct td_policy *p = td__pol;
	struct stat st;
	int fd = -1, expect = stale;

	if (p == NULL)
		return -1;
	switch (p->log_target) {
	case TD_LOG_STDERR:
		/* only while fd 2 is still the stderr we started with */
		if (td__same(2, td__err_dev, td__err_ino, NULL))
			fd = td__open_stderr();
		break;
	case TD_LOG_FILE:
		fd = td__open_file(p->log_path);
		break;
	case TD_LOG_SYSLOG:
		fd = td__open_syslog();
		break;
	}
	if (fd < 0)
		return -1;
	fd = td_own_fd(fd);
	if (fstat(fd, &st) != 0) {
		td_own_close(fd);
		return -1;
	}
	if (!atomic_compare_exchange_strong(&td__fd, &expect, fd)) {
		/* another thread reopened first: use its descriptor */
		td_own_close(fd);
		return expect;
	}
	atomic_store(&td__dev, (uint64_t)st.st_dev);
	atomic_store(&td__ino, (uint64_t)st.st_ino);
	return fd;
}

void td_log_open(const struct td_policy *p)
{
	td__pol = p;
	if (p->log_target == TD_LOG_STDERR && !td__probe_stderr()) {
		atomic_store(&td__disabled, 1);
		return;
	}
	(void)td__reopen(-1);
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

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	n = td_real_write(fd, buf, len);
	if (n < 0 && errno == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};

		(void)sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return n;
}

static void td__emit(const char *line, size_t len)
{
	const struct td_policy *p = td__pol;
	int fd = atomic_load(&td__fd);
	mode_t mode = 0;

	if (p->log_target == TD_LOG_SYSLOG) {
		char msg[TD_EVENT_MAX + 64];
		struct td_buf b;

		if (fd < 0 && (fd = td__reopen(fd)) < 0)
			return;
		td_buf_init(&b, msg, sizeof(msg));
		td_buf_puts(&b, "<30>teardown[");	/* LOG_DAEMON | LOG_INFO */
		td_buf_u64(&b, (uint64_t)atomic_load(&td_proc.pid));
		td_buf_puts(&b, "]: ");
		td_buf_putn(&b, line, len > 0 ? len - 1 : 0); /* no newline */
		if (td_real_send(fd, msg, b.len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
		    (errno == ECONNREFUSED || errno == ENOTCONN || errno == EBADF ||
		     errno == ENOTSOCK)) {
			fd = td__reopen(fd);
			if (fd >= 0)
				(void)td_real_send(fd, msg, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		return;
	}
	if (!td__still_ours(fd, &mode)) {
		fd = td__reopen(fd);
		if (fd < 0 || !td__same(fd, atomic_load(&td__dev),
					atomic_load(&td__ino), &mode))
			return;
		atomic_store(&td__mode, (uint32_t)mode);
		atomic_store(&td__checked_us, td_mono_us());
	}
	if (S_ISFIFO(mode))
		(void)td__write_nosigpipe(fd, line, len);
	else
		(void)td_real_write(fd, line, len);
}

void td_log(const struct td_policy *p, struct td_event *ev)
{
	char line[TD_EVENT_MAX];
	int saved = errno;
	size_t n;

	if (atomic_load(&td__disabled) || td__pol == NULL)
		return;
	ev->ts_us = td_now_us();
	ev->pid = atomic_load(&td_proc.pid);
	if (ev->tid == 0)
		ev->tid = td_gettid();
	ev->prog = td_proc.prog;
	n = td_event_format(line, sizeof(line), ev,
			    p->log_format == TD_FMT_JSON ? TD_FORMAT_JSON
							 : TD_FORMAT_TEXT);
	if (n > 0)
		td__emit(line, n);
	errno = saved;
}

void td_event_from_sock(struct td_event *ev, const struct td_policy *p,
			const struct td_sock *s, int fd, int type)
{
	const struct td_rule *r = td_sock_rule(p, s);
	uint32_t flags = atomic_load(&s->flags);

	memset(ev, 0, sizeof(*ev));
	ev->type = (uint8_t)type;
	ev->fd = fd;
	ev->role = s->d.role;
	if ((flags & TD_SF_LISTENER) || (!s->d.decided && s->d.bind_rule >= 0))
		ev->role = TD_SOCK_LISTENER;
	ev->local = s->d.local;
	ev->remote = s->d.remote;
	ev->rule = r ? r->name : NULL;
	ev->action = r ? td_close_action_name(r->close) : NULL;
	ev->conn = s->d.conn;
	ev->app_linger_set = (flags & TD_SF_APP_LINGER) != 0;
	ev->app_linger_onoff = td_sock_linger_on(s);
	ev->app_linger_secs = td_sock_linger_secs(s);
	ev->how = ev->how_done = TD_HOW_NONE;
	ev->state = -1;
	ev->time_wait = -1;
}

void td_warn(const char *msg)
{
	char line[1400];
	struct td_buf b;
	struct stat st;

	if (fstat(2, &st) != 0 || S_ISSOCK(st.st_mode))
		return;
	td_buf_init(&b, line, sizeof(line));
	td_buf_puts(&b, "teardown: ");
	/*
	 * The message may name a path from the environment (TEARDOWN_CONFIG)
	 * holding newlines or terminal escapes: control bytes are written as
	 * \xNN, so that a warning is always one line and cannot forge others.
	 */
	for (const unsigned char *s = (const unsigned char *)msg; *s != '\0'; s++) {
		static const char hx[] = "0123456789abcdef";

		if (*s >= 0x20 && *s != 0x7f) {
			td_buf_putc(&b, (char)*s);
			continue;
		}
		td_buf_puts(&b, "\\x");
		td_buf_putc(&b, hx[*s >> 4]);
		td_buf_putc(&b, hx[*s & 15]);
	}
	/* td_buf keeps b.len < sizeof(line): the newline always fits */
	line[b.len++] = '\n';
	if (S_ISFIFO(st.st_mode))
		(void)td__write_nosigpipe(2, line, b.len);
	else
		(void)td_real_write(2, line, b.len);
}
