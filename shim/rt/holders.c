/*
 * teardown: who else may hold a socket.
 *
 * A close only ends a connection when it drops the last reference, and
 * close-time work (discarding unread input, a drain's shutdown(SHUT_WR))
 * acts on the shared socket: done by the wrong holder it would cut a
 * connection that a forked child is still serving.  So that work is done
 * only by a process that can tell it is the last holder:
 *  - fds of this process made by dup/dup2/dup3 are counted (fdtab.c);
 *  - each fork, vfork and posix_spawn bumps a fork epoch, and its hook
 *    records the child's pid with the epoch it was born in: a socket older
 *    than a child is looked for in /proc/<child>/fd;
 *  - in a forked child, a socket inherited from the parent is looked for
 *    at the same fd number in /proc/<parent>/fd;
 *  - a socket passed away with SCM_RIGHTS, or dup2()ed by a vfork()ed
 *    child, is shared for good.
 * Whenever a check cannot be made, the answer is "shared": the library
 * then does nothing beyond what the socket's own options do.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/fmt.h"

TD_CHILD_WRITTEN _Atomic uint32_t td_holders_epoch = 1;
TD_CHILD_WRITTEN uint32_t td_holders_birth_epoch = 1;

#define TD_CHILDREN 256

struct td_child {
	_Atomic int32_t pid;
	_Atomic uint32_t epoch;
};

/* written by a fork-per-connection server's parent at every fork: on the
 * page it writes then anyway (the epoch), one page copied, not three */
TD_CHILD_WRITTEN static struct td_child td__children[TD_CHILDREN];
TD_CHILD_WRITTEN static _Atomic uint32_t td__child_next;
/* Highest epoch among records overwritten by newer ones. */
TD_CHILD_WRITTEN static _Atomic uint32_t td__child_lost;

void td_holders_child_record(pid_t pid, uint32_t epoch)
{
	uint32_t i = atomic_fetch_add(&td__child_next, 1) % TD_CHILDREN;
	uint32_t old = atomic_load(&td__children[i].epoch);

	if (atomic_load(&td__children[i].pid) != 0) {
		uint32_t lost = atomic_load(&td__child_lost);

		while (old > lost &&
		       !atomic_compare_exchange_weak(&td__child_lost, &lost, old))
			;
	}
	atomic_store(&td__children[i].pid, 0);
	atomic_store(&td__children[i].epoch, epoch);
	atomic_store(&td__children[i].pid, pid);
}

/*
 * From the pthread_atfork parent handler to the fork hook, in the same
 * thread: the epoch of the fork just made.  Not through TLS: every fork
 * write-protects the parent's pages, and a store to the TLS page would
 * cost a fork-per-connection server's parent a page fault per connection;
 * these slots are on the page it writes anyway.  A slot is tagged with
 * its thread's id; when another thread's fork took it meanwhile, the
 * newest epoch stands in (its children are then checked for sockets they
 * may not hold: a readlink more, never a holder missed).
 */
#define TD_FORK_SLOTS 8
TD_CHILD_WRITTEN static _Atomic uint64_t td__fork_handoff[TD_FORK_SLOTS];

void td_holders_fork_parent(void)
{
	uint32_t e = td_holders_epoch_next();
	uint32_t tid = (uint32_t)td_init_tid();

	atomic_store(&td__fork_handoff[tid % TD_FORK_SLOTS], (uint64_t)tid << 32 | e);
}

uint32_t td_holders_fork_epoch(void)
{
	uint32_t tid = (uint32_t)td_init_tid();
	uint64_t w = atomic_load(&td__fork_handoff[tid % TD_FORK_SLOTS]);

	if ((uint32_t)(w >> 32) == tid)
		return (uint32_t)w;
	return atomic_load(&td_holders_epoch) - 1;
}

/*
 * In a forked child: a new birth epoch, above every epoch the parent
 * recorded.  The parent's children stay in the table, not ours but never
 * counted: td_holders_sole() looks only at records from the socket's
 * epoch on, never older than the birth epoch, and a record this process
 * overwrites can only raise td__child_lost to an epoch below it.  Zeroing
 * them instead would copy their page in every child of a
 * fork-per-connection server.
 */
TD_CHILD_RUNS
void td_holders_fork_child_reset(void)
{
	td_holders_birth_epoch = td_holders_epoch_next() + 1;
}

/*
 * The sockets whose holders are counted (fdtab.c's share slots): the
 * program's TCP sockets, not those already shared for good.
 */
static bool td__countable(const struct td_fdent *e)
{
	uint32_t f = atomic_load_explicit(&e->flags, memory_order_relaxed);

	return !(f & (TD_SF_OWN | TD_SF_STICKY_SHARED | TD_SF_NOT_TCP));
}

/* Started, with a policy, in a process of its own (no vfork()ed child);
 * never starts the library. */
static bool td__running(void)
{
	return atomic_load_explicit(&td_init_state, memory_order_acquire) == TD_INIT_DONE &&
	       td_init_active() != NULL && td_init_in_own_process();
}

/*
 * fn(e, fd, share) for each live entry of a socket whose holders count;
 * born: and for each born entry, published first.  Only the fork's count needs those (every fn but
 * td__count_copy() does nothing for a socket without a share): counted
 * there, a socket made before the fork and connected after it has the
 * share it had when socket() published its entry itself.
 */
static void td__each(void (*fn)(struct td_fdent *e, int fd, uint32_t share), bool born)
{
	for (int fd = 0, high = td_fdtab_prog_high(); fd <= high; fd++) {
		struct td_fdent *e = born ? td_fdtab_live_or_born(fd) : td_fdtab_live(fd);

		if (e != NULL && td__countable(e))
			fn(e, fd, atomic_load(&e->share));
	}
}

static void td__count_copy(struct td_fdent *e, int fd, uint32_t share)
{
	(void)share;
	(void)td_fdtab_share_fork(e, fd);
}

static void td__uncount_copy(struct td_fdent *e, int fd, uint32_t share)
{
	(void)e, (void)fd;
	(void)td_fdtab_share_unfork(share);
}

static void td__inexact(struct td_fdent *e, int fd, uint32_t share)
{
	(void)e, (void)fd;
	td_fdtab_share_inexact(share);
}

/* fd's close-on-exec flag: 1, 0, or -1 when it cannot be read. */
static int td__cloexec(int fd)
{
	int fl = td_real_sys_fcntl(fd, F_GETFD, 0);

	return fl < 0 ? -1 : (fl & FD_CLOEXEC) != 0;
}

static void td__exec_leave(struct td_fdent *e, int fd, uint32_t share)
{
	(void)e;
	if (share == 0)
		return;
	if (td__cloexec(fd) == 1)
		(void)td_fdtab_share_drop(share);
	else
		td_fdtab_share_inexact(share);
}

static void td__exec_back(struct td_fdent *e, int fd, uint32_t share)
{
	/* (the slot went free meanwhile: the socket loses its count) */
	if (share != 0 && td__cloexec(fd) == 1 && !td_fdtab_share_rejoin(share))
		atomic_store(&e->share, 0);
}

/* The fork's prepare handler counted the child's copies (td_holders_fork_failed()).
 * On the page the parent writes at every fork anyway (the epoch): a page
 * of its own cost a fork-per-connection server's parent a fault per fork. */
TD_CHILD_WRITTEN static bool td__fork_counted;

/*
 * Before fork() (the pthread_atfork prepare handler, so daemon()'s fork
 * too): the child will hold a copy of every fd.  Where no other thread of
 * the program runs, nothing can open, dup or close an fd between this
 * walk and the fork, so each socket's share counts the child's copy
 * exactly (a slot is made for a socket without one).  Elsewhere a copy
 * could be missed or counted twice: the shares say they are inexact, and
 * sockets without one keep the /proc check.
 */
void td_holders_fork_prepare(void)
{
	int saved = errno;
	bool alone;

	td__fork_counted = false;
	td_fdtab_hrec_prepare();
	if (!td__running())
		return;
	alone = td_init_program_alone();
	td__each(alone ? td__count_copy : td__inexact, alone);
	td__fork_counted = alone;
	td_errno_set(saved);
}

/* The fork hook: the fork failed, no child holds the copies counted
 * (no system call: errno stays). */
void td_holders_fork_failed(void)
{
	if (!td__fork_counted)
		return;
	td__fork_counted = false;
	td__each(td__uncount_copy, false);
}

static void td__shell_copy(struct td_fdent *e, int fd, uint32_t share)
{
	(void)share;
	if (td__cloexec(fd) != 1)
		atomic_fetch_or(&e->flags, TD_SF_STICKY_SHARED);
}

/*
 * Before system() or popen(): libc starts the shell itself, and no hook
 * of ours sees that child, its pid or its exec (no fork handler runs
 * either).  The shell, and whatever it leaves running ("cmd &"), holds
 * every socket without close-on-exec: those are shared for good from now
 * on (no close-time work, the end asked of the kernel after each close),
 * the close-on-exec ones stay as they were.
 */
void td_holders_shell_child(void)
{
	int saved = errno;

	if (td__running())
		td__each(td__shell_copy, false);
	td_errno_set(saved);
}

/* A vfork()ed or posix_spawn()ed child holds copies nobody counts (one
 * that exec()s keeps those without close-on-exec). */
void td_holders_uncounted_child(void)
{
	td__each(td__inexact, false);
}

/*
 * Before exec(): the kernel closes the close-on-exec fds without a close
 * the library sees, so their copies leave the counts now (and come back
 * if the exec fails).  The others stay open in the new program, where the
 * library (if it runs there at all) never saw them made: their shares
 * are inexact from now on.  Not in a vfork()ed child: its copies were
 * never counted.
 */
void td_holders_exec_prepare(void)
{
	int saved = errno;

	if (td__running())
		td__each(td__exec_leave, false);
	td_errno_set(saved);
}

void td_holders_exec_failed(void)
{
	int saved = errno;

	if (td__running())
		td__each(td__exec_back, false);
	td_errno_set(saved);
}

TD_CHILD_RUNS
bool td_holders_counted(uint32_t flags, uint32_t share)
{
	return !(flags & TD_SF_STICKY_SHARED) && td_fdtab_share_exact(share);
}

/* "/proc/<pid>/fd" or "/proc/<pid>/fd/<fd>" into buf. */
static const char *td__procfd(char *buf, size_t cap, pid_t pid, int fd)
{
	struct td_buf b;

	td_buf_init(&b, buf, cap);
	td_buf_puts(&b, "/proc/");
	td_buf_u64(&b, (uint64_t)pid);
	td_buf_puts(&b, "/fd");
	if (fd >= 0) {
		td_buf_putc(&b, '/');
		td_buf_u64(&b, (uint64_t)fd);
	}
	return td_buf_cstr(&b);
}

/* "socket:[ino]" */
static size_t td__sockname(char *buf, size_t cap, uint64_t ino)
{
	struct td_buf b;

	td_buf_init(&b, buf, cap);
	td_buf_puts(&b, "socket:[");
	td_buf_u64(&b, ino);
	td_buf_putc(&b, ']');
	td_buf_cstr(&b);
	return b.len;
}

/* 1: the link names our socket; 0: it does not (or is gone); -1: unknown. */
static int td__link_is(int dirfd, const char *path, const char *want, size_t wlen)
{
	char got[64];
	ssize_t n = readlinkat(dirfd, path, got, sizeof(got));

	if (n < 0)
		return (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
	return (size_t)n == wlen && memcmp(got, want, wlen) == 0;
}

/*
 * Does process pid hold socket ino on any fd?  Reads /proc/<pid>/fd with
 * getdents64 into a stack buffer (opendir would malloc).  1, 0, or -1
 * when it cannot tell (no /proc, no permission, too many fds).
 */
static int td__proc_holds(pid_t pid, uint64_t ino)
{
	char path[64], want[40], dents[1024];
	size_t wlen = td__sockname(want, sizeof(want), ino);
	int dfd, found = 0, seen = 0;

	dfd = td_real_sys_open(td__procfd(path, sizeof(path), pid, -1),
		   O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dfd < 0)
		return (errno == ENOENT || errno == ESRCH) ? 0 : -1;
	for (;;) {
		long n = td_real_sys3(SYS_getdents64, dfd, dents, sizeof(dents));

		if (n <= 0) {
			/* (ENOENT: it exited since the open, and holds nothing:
			 * socat's child asked about its cat at its own exit) */
			if (n < 0)
				found = (errno == ENOENT || errno == ESRCH) ? 0 : -1;
			break;
		}
		for (long off = 0; off < n && found == 0;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);

			off += d->d_reclen;
			if (d->d_name[0] == '.')
				continue;
			if (++seen > 65536) {
				found = -1;
				break;
			}
			found = td__link_is(dfd, d->d_name, want, wlen);
		}
		if (found != 0)
			break;
	}
	td_real_close(dfd);
	return found;
}

static int td__proc_fd_is(pid_t pid, int fd, uint64_t ino)
{
	char path[64], want[40];
	size_t wlen = td__sockname(want, sizeof(want), ino);

	return td__link_is(AT_FDCWD, td__procfd(path, sizeof(path), pid, fd),
			   want, wlen);
}

bool td_holders_needs_ino(const struct td_sock *s)
{
	return td_holders_maybe_elsewhere(s->d.epoch);
}

bool td_holders_maybe_elsewhere(uint32_t epoch)
{
	return epoch < td_holders_birth_epoch || epoch < atomic_load(&td_holders_epoch);
}

bool td_holders_sole(int fd, int origin, const struct td_sock *s, uint64_t ino)
{
	uint32_t now = atomic_load(&td_holders_epoch);
	uint32_t flags = atomic_load(&s->flags);
	/* forks made by this process since the socket entered it */
	uint32_t from = s->d.epoch > td_holders_birth_epoch ? s->d.epoch : td_holders_birth_epoch;

	if (flags & TD_SF_STICKY_SHARED)
		return false;
	if (ino == 0)
		return s->d.epoch >= td_holders_birth_epoch && from >= now;
	/* Inherited from the parent: is it still open there, at the number
	 * it had when this process was born (sent by it: at any number)? */
	if (s->d.epoch < td_holders_birth_epoch) {
		pid_t pp = atomic_load(&td_init_proc.ppid);

		if (pp > 1 && ((flags & TD_SF_FROM_PARENT) ? td__proc_holds(pp, ino)
							   : td__proc_fd_is(pp, origin, ino)) != 0)
			return false;
	}
	/* Forked since: every child born after the socket must be without it. */
	if (from < now) {
		uint32_t covered = 0;

		if (from <= atomic_load(&td__child_lost))
			return false;
		for (int i = 0; i < TD_CHILDREN; i++) {
			pid_t pid = atomic_load(&td__children[i].pid);
			uint32_t ep = atomic_load(&td__children[i].epoch);

			if (pid <= 0 || ep < from)
				continue;
			covered++;
			/* a child forked a moment ago holds it at the same
			 * number: one readlink, not the whole directory */
			if (td__proc_fd_is(pid, fd, ino) == 1 || td__proc_holds(pid, ino) != 0)
				return false;
		}
		/* a fork the hook did not see (daemon(), _Fork): unknown child */
		if (covered < now - from)
			return false;
	}
	return true;
}
