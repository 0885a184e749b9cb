/*
 * teardown: the spool.  For a file target, a process that logs more than
 * a few lines stops making one write() per line: each line goes into a
 * ring in a MAP_SHARED file of its own next to the log, the lane of the
 * CPU its thread runs on (the format and its lock-free writer:
 * include/teardown/spool.h, shim/core/spool.c), and the worker thread
 * appends the finished lines to the log, the lanes merged in order, with
 * one writev() per batch, through logw.c's checks (the log descriptor
 * still ours, rotation, the lost-line count).
 *
 * When lines go out:
 *  - the worker: TD_SPOOL_FLUSH_US after the first line since its last
 *    flush (that line's writer wakes it: one eventfd write per batch,
 *    not per line), or at once when a lane passes a quarter full;
 *  - before fork() (a pthread_atfork prepare handler: daemon()'s fork
 *    too) and posix_spawn(), so a child's lines never come before its
 *    parent's earlier ones;
 *  - at exit (the library's destructor), and in _exit(), _Exit() and
 *    syscall(SYS_exit_group) (a forked child's usual way out): from then
 *    on lines go straight to the log again, and the file is removed;
 *  - when the ring is full: the writer writes it out itself;
 *  - never, when the process is killed (SIGKILL, abort(), a crash) or
 *    exec()s: the lines stay in the file, which outlives the process.
 *    The next process that opens the log (td_logw_open) appends them: a
 *    spool's owner holds flock(LOCK_EX) on it, on a close-on-exec
 *    descriptor, so "the owner is gone" is "the lock can be taken" (no
 *    pid guessing: pids are reused).  A program that closes the
 *    descriptor does not drop the lock: it is moved to another number
 *    first (td_spool_fd_closing).
 *
 * Order: the lanes, merged by their records' keys, keep this process's
 * order (include/teardown/spool.h says how).  A line that does not go
 * into the ring (full, or the exit path closed it) is written by the
 * holder of the flush claim, after every line reserved before it was
 * written out (waiting, briefly, for those still being copied: see
 * td__write_all), so no line overtakes an earlier one of the same
 * process; fork, posix_spawn and _exit wait the same way.  Lines of
 * different processes are interleaved by batch, each line whole (a
 * writev() on an O_APPEND file is one append).

 * Why a file in the log's directory, and only on some file systems: a
 * store into a shared mapping of a file whose blocks the file system
 * cannot allocate is a SIGBUS, which would kill the host.  The file's
 * blocks are allocated up front with fallocate(); that settles it only
 * where an overwrite needs no new block: ext2/3/4, XFS and tmpfs.  On
 * others (btrfs and ZFS copy on write, NFS, overlayfs whose upper layer
 * we cannot see) the library keeps one write() per line, as it does when
 * the directory is not writable, or the spool cannot be made at all.
 *
 * Why not at once: the first TD_SPOOL_AFTER lines of a process are
 * written one by one.  A short-lived client (a connect and a close) then
 * costs no file, mapping, lock or thread, which would cost more than its
 * few write()s; a process that keeps logging gets its spool at the
 * TD_SPOOL_AFTER-th line.
 *
 * Nothing here allocates or locks (the claim is a flag: a thread that
 * finds it held by its own interrupted flush never waits for it).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sched.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"
#include "teardown/fmt.h"
#include "teardown/spool.h"

#define TD_SPOOL_AFTER 16
#define TD_SPOOL_FLUSH_US 50000
#define TD_SPOOL_IOV 128
/* a half-made spool (its maker died before naming it) is removed after */
#define TD_SPOOL_NEW_STALE_S 60

/* PREPARED: a slot file, empty and locked, taken before the process gave
 * up root (td_spool_before_uid); made ready, and the worker started, at
 * the line that would have made a spool (td_spool_count_line) */
enum { TD_SP_OFF = 0, TD_SP_STARTING, TD_SP_ON, TD_SP_FAILED, TD_SP_CLOSED, TD_SP_PREPARED };

TD_CHILD_WRITTEN static _Atomic int td__state; /* read by a forked child first */
static struct td_spool_file td__f;
/* this process as its spool's records name it (rendered at creation) */
static struct td_spool_writer td__w;
/* the connection keys the flusher wrote last (event.h): td__w's */
static struct td_event_memo td__memo;
static void *td__map;
static size_t td__size;
TD_CHILD_READ static _Atomic int td__fd = -1;
static char td__path[PATH_MAX];
TD_CHILD_WRITTEN_LINE static _Atomic uint32_t td__lines;
/* the flush claim, and whether this thread holds it */
TD_CHILD_WRITTEN_LINE static _Atomic int td__claim;
static __thread int td__flushing __attribute__((tls_model("initial-exec")));
/* this thread is between reserving a line and committing it */
static __thread int td__putting __attribute__((tls_model("initial-exec")));
/* a line whose writer never finished it (see td__write_all): the tail
 * position it holds in its lane, once given up on */
static _Atomic uint64_t td__stuck_at[TD_SPOOL_MAX_LANES] = {
	UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
	UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
};
_Static_assert(TD_SPOOL_MAX_LANES == 8, "td__stuck_at's initializer");
#define TD_SPOOL_WAIT_US 1000000
/* a line waits for the worker's next round; the ring passed its mark */
static _Atomic int td__armed, td__urgent;
static int64_t td__due_us; /* the worker's: when it writes the ring out */
/* how long after a batch's first line (TEARDOWN_SPOOL_FLUSH_MS: tests) */
static int64_t td__flush_us = TD_SPOOL_FLUSH_US;

/*
 * TEARDOWN_SPOOL_FLUSH_MS, for tests only (like TEARDOWN_JOURNAL_SOCKET;
 * not read in secure execution): the worker's delay after a batch's first
 * line.  A test that kills a process with lines in its spool sets it long,
 * and stays under the ring's mark: then no batch can be half-written at
 * the kill, which would otherwise happen at random.
 */
void td_spool_configure(const char *flush_ms)
{
	uint64_t ms;

	if (flush_ms != NULL && td_parse_u64(flush_ms, &ms) == 0 && ms <= 86400000)
		td__flush_us = (int64_t)ms * 1000;
}

TD_CHILD_RUNS
bool td_spool_exists(void)
{
	int st = atomic_load_explicit(&td__state, memory_order_acquire);

	return st == TD_SP_ON || st == TD_SP_CLOSED;
}

/* ---- the claim --------------------------------------------------------- */

/*
 * One flusher at a time.  Waiting is only ever for another thread that is
 * writing the ring out (one writev() of a regular file at a time, and
 * td__write_all's bounded wait): the worker (which blocks every signal)
 * or a program thread.  A thread whose own flush a signal handler
 * interrupted does not wait (it would wait for itself): false, and the
 * caller writes without flushing first.
 */
bool td_spool_claim(void)
{
	int zero;

	if (td__flushing)
		return false;
	for (;;) {
		zero = 0;
		if (atomic_compare_exchange_weak(&td__claim, &zero, 1)) {
			td__flushing = 1;
			return true;
		}
		sched_yield();
	}
}

void td_spool_release(void)
{
	td__flushing = 0;
	atomic_store(&td__claim, 0);
}

/*
 * A batch: up to TD_SPOOL_IOV records, taken from the lanes in key order
 * (td_spool_merge_next) first, then asked about, then formatted, each
 * line into the room after the last: TD_EVENT_MAX bytes each, so every
 * record taken has room (untouched pages cost nothing).  The claim makes
 * them the one flusher's.
 */
#define TD_SPOOL_FBUF (TD_SPOOL_IOV * TD_EVENT_MAX)
static char td__fbuf[TD_SPOOL_FBUF];
static struct td_spool_rec td__b[TD_SPOOL_IOV];

/*
 * What a batch's events ask the kernel (TD_ASK_FIRST_FIN), asked together
 * (td_diag_states(): two system calls for up to TD_DIAG_BATCH of them,
 * where each asked alone cost its close two), once the batch is taken and
 * before its lines are made; td__settle() hands each event its answer.
 */
static struct td_diag_q td__q[TD_SPOOL_IOV];
static int16_t td__q_of[TD_SPOOL_IOV]; /* a record's question, or -1 */

struct td__answers {
	int i; /* the record being formatted */
	int64_t now_us;
};

static void td__ask(int n, struct td__answers *a)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		const struct td_spool_rec *r = &td__b[i];

		td__q_of[i] = -1;
		if (r->kind == TD_SR_EVENT &&
		    td_evrec_asks(r->ptr, r->len, &td__q[k].local, &td__q[k].remote) ==
			    TD_ASK_FIRST_FIN)
			td__q_of[i] = (int16_t)k++;
	}
	for (int at = 0; at < k; at += TD_DIAG_BATCH)
		td_diag_states(td__q + at, k - at < TD_DIAG_BATCH ? k - at : TD_DIAG_BATCH);
	a->now_us = k > 0 ? td_clock_now_us() : 0;
}

static void td__settle(struct td_event *ev, void *ctx)
{
	struct td__answers *a = ctx;
	int q = td__q_of[a->i];

	if (q >= 0)
		td_predict_settle(ev, td__q[q].state, a->now_us - ev->ts_us);
	else /* (a record this build asks no question of) */
		td_closing_settle_now(ev);
}

/*
 * Write out committed records from each lane's tail, in key order, until
 * the merge can take no more (a writer is still copying: the next flush
 * takes it, see td_spool_merge_begin); an event is formatted into its line
 * here, with w's host and prog.  The claim is held.  dead: the owner is
 * gone, step over what it left unfinished.  Returns how many records
 * could not be written (left unfinished, damaged, or of another build's
 * layout); *blocked (may be NULL): the lanes left at an unfinished record.
 */
static uint64_t td__write_out(const struct td_spool_file *f, const struct td_spool_writer *w,
			      bool dead, uint32_t *blocked)
{
	struct iovec iov[TD_SPOOL_IOV];
	uint64_t lost = 0;

	for (;;) {
		uint64_t start[TD_SPOOL_MAX_LANES], cutoff = UINT64_MAX;
		struct td_spool_merge m;
		struct td__answers a;
		size_t used = 0;
		bool moved = false;
		int n = 0, taken = 0;
		unsigned lane;

		if (!dead) {
			/* before the heads are read (td_spool_merge_begin) */
			cutoff = td_clock_mono_ns();
			atomic_thread_fence(memory_order_seq_cst);
		}
		td_spool_merge_begin(&m, f, cutoff, dead);
		for (uint32_t l = 0; l < f->nlanes; l++) {
			start[l] = m.pos[l];
			m.stuck[l] = dead ? UINT64_MAX : atomic_load(&td__stuck_at[l]);
		}
		while (taken < TD_SPOOL_IOV && td_spool_merge_next(&m, &lane, &td__b[taken]))
			taken++;
		td__ask(taken, &a);
		for (a.i = 0; a.i < taken; a.i++) {
			const char *line;
			size_t len = td_spool_rec_line_settled(&td__b[a.i], w, td__fbuf + used,
							       TD_SPOOL_FBUF - used, &line,
							       td__settle, &a);

			if (len == 0) {
				lost++;
				continue;
			}
			/* one iovec a line: td_logw_batch counts each line not
			 * wholly written */
			iov[n].iov_base = (void *)line;
			iov[n].iov_len = len;
			n++;
			if (line == td__fbuf + used)
				used += len;
		}
		lost += m.lost;
		if (n > 0)
			td_logw_batch(iov, n);
		for (uint32_t l = 0; l < f->nlanes; l++) {
			const struct td_spool_view *v = &f->lane[l];

			if (m.pos[l] == start[l])
				continue;
			moved = true;
			if (v->last_key != NULL)
				atomic_store_explicit(v->last_key, m.last[l], memory_order_relaxed);
			/* release: writers reuse these slots only after the write */
			atomic_store_explicit(v->tail, m.pos[l], memory_order_release);
		}
		if (blocked != NULL) {
			*blocked = 0;
			for (uint32_t l = 0; l < f->nlanes; l++)
				if (m.state[l] == TD_SM_BLOCKED)
					*blocked |= 1u << l;
		}
		if (!moved || taken < TD_SPOOL_IOV)
			break;
	}
	return lost;
}

/* Whether every lane's tail reached goal (or the line given up on in it). */
static bool td__caught_up(const struct td_spool_file *f, const uint64_t *goal)
{
	for (uint32_t l = 0; l < f->nlanes; l++) {
		uint64_t tail = atomic_load(f->lane[l].tail);

		if ((int64_t)(tail - goal[l]) < 0 && tail != atomic_load(&td__stuck_at[l]))
			return false;
	}
	return true;
}

/*
 * Write out every line reserved before now, waiting for those still being
 * copied: what comes next (a line written directly, a child's lines) must
 * not overtake any of them, and td__write_out stops at the first line not
 * finished.  A writer takes a few hundred instructions between its
 * reservation and its commit, unless it was preempted: the wait yields.
 * It is bounded all the same, for a writer that never comes back (a
 * signal handler that longjmp()ed out of the library): after
 * TD_SPOOL_WAIT_US, the positions its lanes stopped at are given up on
 * (no later wait is spent on them, and they hold back no other lane; the
 * lines behind them go at exit, or to the next process that opens the
 * log).  Never waits for this thread's own unfinished line (a signal
 * handler interrupted it).
 */
static void td__write_all(const struct td_spool_file *f)
{
	uint64_t goal[TD_SPOOL_MAX_LANES];
	int64_t deadline = 0;
	uint32_t blocked;

	for (uint32_t l = 0; l < f->nlanes; l++)
		goal[l] = atomic_load(f->lane[l].head);
	for (;;) {
		(void)td__write_out(f, &td__w, false, &blocked);
		if (td__caught_up(f, goal) || td__putting)
			return;
		if (deadline == 0) {
			deadline = td_clock_mono_us() + TD_SPOOL_WAIT_US;
		} else if (td_clock_mono_us() > deadline) {
			for (uint32_t l = 0; l < f->nlanes; l++)
				if (blocked & (1u << l))
					atomic_store(&td__stuck_at[l], atomic_load(f->lane[l].tail));
			deadline = 0;
			if (blocked == 0)
				return;
			continue;
		}
		sched_yield();
	}
}

void td_spool_flush_claimed(void)
{
	if (td_spool_exists())
		td__write_all(&td__f);
}

/* Claim, write out all, release: fork, posix_spawn, _exit. */
void td_spool_flush(void)
{
	int saved = errno;

	if (!td_spool_exists() || !td_init_in_own_process())
		return;
	if (td_spool_claim()) {
		td_spool_flush_claimed();
		td_spool_release();
	}
	td_errno_set(saved);
}

/* ---- making a spool ------------------------------------------------------ */

/* File systems where an overwrite of allocated blocks allocates nothing. */
static bool td__fs_ok(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) != 0)
		return false;
	switch ((unsigned long)sf.f_type) {
	case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
	case XFS_SUPER_MAGIC:
	case TMPFS_MAGIC:
		return true;
	default:
		return false;
	}
}

/* "<dir>/.<base><infix><pid>.<hex>" into out; false when it does not fit. */
static bool td__name(char *out, size_t cap, const char *log_path, const char *infix,
		     const char *tag)
{
	const char *slash = strrchr(log_path, '/');
	struct td_buf b;

	if (slash == NULL || slash[1] == '\0')
		return false;
	if (strlen(slash + 1) + strlen(infix) + strlen(tag) + 2 > NAME_MAX)
		return false;
	td_buf_init(&b, out, cap);
	td_buf_putn(&b, log_path, (size_t)(slash - log_path) + 1);
	td_buf_putc(&b, '.');
	td_buf_puts(&b, slash + 1);
	td_buf_puts(&b, infix);
	td_buf_puts(&b, tag);
	td_buf_cstr(&b);
	return b.lost == 0;
}

/*
 * Lanes: one for each CPU online, up to TD_SPOOL_MAX_LANES (a writer
 * takes the lane of its CPU number, modulo their count).  Not the CPUs
 * this thread may use: the thread that makes the spool may be pinned to
 * one, its others not.  Each lane has an equal share of the slots, so the
 * file is the same size for any count; a single-threaded program, which
 * uses one lane at a time, has the lane's share before the worker is
 * woken at once (its mark), and the same flush interval.  (get_nprocs()
 * reads /sys/devices/system/cpu/online into a buffer on the stack.)
 */
static uint32_t td__nlanes(void)
{
	int cpus = get_nprocs();
	uint32_t n = 1;

	while (n < TD_SPOOL_MAX_LANES && (int)n < cpus)
		n <<= 1;
	return n;
}

/* A new file's tag: "<pid><mid><16 hex>", random, so that no two processes
 * (nor two files of one pid, reused) ever name the same. */
static void td__tag(char *tag, size_t cap, const char *mid)
{
	struct td_buf b;
	uint64_t rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = (uint64_t)td_clock_mono_us() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&rnd;
	td_buf_init(&b, tag, cap);
	td_buf_u64(&b, (uint64_t)atomic_load(&td_init_proc.pid));
	td_buf_puts(&b, mid);
	td_buf_hex(&b, rnd, 16);
	td_buf_cstr(&b);
}

/* A new spool file given up before it took its name: removed, and its
 * descriptor closed. */
static void td__drop_new(const char *tmp, int fd)
{
	unlink(tmp);
	td_ownfd_close(fd, TD_OWN_SPOOL);
}

/*
 * A new spool file next to the log, open on one of the library's own
 * descriptors and locked (its lock is its owner's sign of life), under a
 * name recovery leaves alone (tmp, PATH_MAX bytes); path (PATH_MAX bytes)
 * gets the name it is given once ready (td__name_new()), tagged mid
 * (td__tag()).  Only on a file system where a store into its mapping
 * needs no new block (td__fs_ok()).  A descriptor, or a negative errno.
 */
static int td__open_new(const char *log_path, const char *mid, char *path, char *tmp)
{
	char tag[64];
	int fd, err;

	td__tag(tag, sizeof(tag), mid);
	if (!td__name(tmp, PATH_MAX, log_path, TD_SPOOL_NEW_INFIX, tag) ||
	    !td__name(path, PATH_MAX, log_path, TD_SPOOL_INFIX, tag))
		return -ENAMETOOLONG;
	fd = td_real_sys_open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	fd = td_ownfd_mark(fd, TD_OWN_SPOOL);
	err = !td__fs_ok(fd) ? EOPNOTSUPP : flock(fd, LOCK_EX | LOCK_NB) != 0 ? errno : 0;
	if (err != 0) {
		td__drop_new(tmp, fd);
		return -err;
	}
	return fd;
}

/*
 * A new spool file's blocks, mapping and layout: nslots in nlanes lanes,
 * keyed by the monotonic clock, named for this process (f).  The mapping,
 * or MAP_FAILED with errno.
 */
static void *td__lay_out(int fd, uint32_t nslots, uint32_t nlanes, struct td_spool_file *f)
{
	size_t size = td_spool_file_size(nslots);
	void *map;

	if (fallocate(fd, 0, 0, (off_t)size) != 0)
		return MAP_FAILED;
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return MAP_FAILED;
	td_spool_init_file(map, nslots, nlanes, (int32_t)atomic_load(&td_init_proc.pid), f);
	for (uint32_t l = 0; l < f->nlanes; l++)
		f->lane[l].key = td_clock_mono_ns;
	td_spool_set_writer(&f->lane[0], td_logw_host(), td_init_proc.prog);
	return map;
}

/* A new spool file, laid out, takes its name: never over another spool's
 * (RENAME_NOREPLACE: all of the file systems of td__fs_ok() have it). */
static int td__name_new(const char *tmp, const char *path)
{
	return (int)td_real_sys(SYS_renameat2, AT_FDCWD, (long)tmp, AT_FDCWD, (long)path,
				RENAME_NOREPLACE, 0);
}

/*
 * Make the spool: its file (made now, or, prepared, the one
 * td_spool_before_uid() made while the process could still write the
 * log's directory: td__fd), its rings, its header, and then its name.
 */
static int td__create(const char *log_path, int log_fd, bool prepared)
{
	char tmp[PATH_MAX];
	size_t size = td_spool_file_size(TD_SPOOL_SLOTS);
	void *map;
	int fd;

	if (prepared) {
		fd = atomic_load(&td__fd);
		tmp[0] = '\0';
	} else if (!td__fs_ok(log_fd) ||
		   (fd = td__open_new(log_path, ".", td__path, tmp)) < 0) {
		return -1;
	}
	map = td__lay_out(fd, TD_SPOOL_SLOTS, td__nlanes(), &td__f);
	if (map == MAP_FAILED)
		goto fail;
	td_spool_writer_of(&td__f.lane[0], &td__w);
	td__w.who.memo = &td__memo;
	if (!prepared && td__name_new(tmp, td__path) != 0) {
		munmap(map, size);
		goto fail;
	}
	td__map = map;
	td__size = size;
	atomic_store(&td__fd, fd);
	return 0;
fail:
	if (!prepared) {
		td__drop_new(tmp, fd);
	} else {
		/* empty again, which recovery removes (blocks half-allocated
		 * would make it a file no reader takes for a spool) */
		(void)td_real_sys2(SYS_ftruncate, fd, 0);
	}
	return -1;
}

static void td__recover_one(int dfd, const char *name, uid_t uid);

/*
 * The files processes that gave up root take their spools from:
 * ".NAME.spool.root-K" (recovery and `teardown report` read every
 * ".NAME.spool.*").  Slots, not names of their own: such a process cannot
 * remove its file at its end, and the next one takes it up again (one
 * open and a lock, where a file of its own cost the making, naming and
 * removing of directory entries: about 100 us a process, for a server
 * that forks and gives up root for every connection).
 */
#define TD_SPOOL_ROOT_SLOTS 1024
#define TD_SPOOL_ROOT_TAG "root-"

enum { TD_SLOT_TAKEN, TD_SLOT_BUSY, TD_SLOT_DEAD, TD_SLOT_GONE };

/* What the slot open on fd is to its opener (an exclusive lock taken
 * where TAKEN, and DEAD until the descriptor is closed). */
static int td__slot_state(int fd)
{
	struct stat st;

	/* root's alone, and no live process's (its owner holds the lock) */
	if (td_real_sys_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    flock(fd, LOCK_EX | LOCK_NB) != 0 || td_real_sys_fstat(fd, &st) != 0)
		return TD_SLOT_BUSY;
	if (st.st_nlink == 0)
		return TD_SLOT_GONE; /* a recoverer removed it meanwhile */
	if (st.st_nlink != 1)
		return TD_SLOT_BUSY;
	return st.st_size == 0 ? TD_SLOT_TAKEN : TD_SLOT_DEAD;
}

/* The log's directory, open, or -1 (its path as the log's names it: "/"
 * for a log at the root). */
static int td__log_dir(const char *log_path)
{
	const char *slash = strrchr(log_path, '/');
	char dir[PATH_MAX];
	size_t n;

	if (slash == NULL || (size_t)(slash - log_path) + 2 > sizeof(dir))
		return -1;
	n = slash > log_path ? (size_t)(slash - log_path) : 1;
	memcpy(dir, log_path, n);
	dir[n] = '\0';
	return td_real_sys_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
}

/*
 * Take the first free slot: opened (made if missing), root's, locked by
 * no live process, empty.  One a dead process made ready has its lines
 * written out and is removed first (td__recover_one()), and the slot is
 * made anew.  td__path names it.  A descriptor, or -1.
 */
static int td__take_slot(const char *log_path)
{
	char tag[32];
	struct td_buf b;
	int fd, dfd, st;

	for (uint32_t k = 0; k < TD_SPOOL_ROOT_SLOTS; k++) {
		td_buf_init(&b, tag, sizeof(tag));
		td_buf_puts(&b, TD_SPOOL_ROOT_TAG);
		td_buf_u64(&b, k);
		td_buf_cstr(&b);
		if (!td__name(td__path, sizeof(td__path), log_path, TD_SPOOL_INFIX, tag))
			return -1;
		for (int tries = 0; tries < 3; tries++) {
			fd = td_real_sys_open(td__path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
						       O_NOCTTY | O_NONBLOCK, 0600);
			if (fd < 0)
				return -1;
			st = td__slot_state(fd);
			if (st == TD_SLOT_TAKEN) {
				if (!td__fs_ok(fd)) {
					td_real_close(fd);
					return -1;
				}
				return td_ownfd_mark(fd, TD_OWN_SPOOL);
			}
			td_real_close(fd);
			if (st == TD_SLOT_BUSY)
				break;
			if (st == TD_SLOT_DEAD && (dfd = td__log_dir(log_path)) >= 0) {
				td__recover_one(dfd, strrchr(td__path, '/') + 1, 0);
				td_real_close(dfd);
			}
		}
	}
	return -1;
}

/*
 * Before setuid() and the like (shim/hook/setuid.c), in a process still
 * root whose effective uid is about to change, logging to the file of p
 * (errno is the hook's to keep): a process that gives
 * up root, as a server's workers do (nginx's, apache2's children), may no
 * longer make files in the log's directory, which only root may write
 * (/var/log/...): each of its lines would be one write() for good.  So
 * the spool's file is taken now, empty and locked, from the slots above,
 * and made ready at the line that would have made a spool: td__create().
 * The process cannot remove it once it has given up root; at its end the
 * file stays, its lines written out (or, killed, not), for the next
 * process that gives up root there, which writes out what is left in it
 * first, or for the next start of the library on that log as root, which
 * writes that out and removes it (an empty one too).  Where the process
 * stays root, or cannot take a slot, nothing changes.
 */
void td_spool_before_uid(const struct td_policy *p)
{
	int fd, expect = TD_SP_OFF;

	if (atomic_load_explicit(&td__state, memory_order_relaxed) != TD_SP_OFF ||
	    !atomic_compare_exchange_strong(&td__state, &expect, TD_SP_STARTING))
		return;
	fd = td__take_slot(p->log_path);
	if (fd >= 0)
		atomic_store(&td__fd, fd);
	atomic_store(&td__state, fd >= 0 ? TD_SP_PREPARED : TD_SP_OFF);
}

/* Undo td__create (the worker could not start). */
static void td__destroy(void)
{
	if (td__map != NULL) {
		unlink(td__path);
		munmap(td__map, td__size);
		td__map = NULL;
	}
	td_ownfd_close_slot(&td__fd, TD_OWN_SPOOL);
}

/*
 * Made by a program thread, never by the worker (td_init_guard): making
 * it opens a file, which for a moment holds the lowest free number, and
 * a single-threaded program's next accept() or open() expects that one.
 * A line the worker writes only counts; the program's next line makes it.
 */
TD_CHILD_RUNS
void td_spool_count_line(const char *log_path, int log_fd)
{
	int expect = atomic_load_explicit(&td__state, memory_order_relaxed);

	if ((expect != TD_SP_OFF && expect != TD_SP_PREPARED) ||
	    atomic_fetch_add_explicit(&td__lines, 1, memory_order_relaxed) + 1 < TD_SPOOL_AFTER ||
	    td_init_guard || !td_init_in_own_process() ||
	    !atomic_compare_exchange_strong(&td__state, &expect, TD_SP_STARTING))
		return;
	if (td__create(log_path, log_fd, expect == TD_SP_PREPARED) != 0) {
		atomic_store(&td__state, TD_SP_FAILED);
		return;
	}
	if (td_worker_start() != 0) {
		td__destroy();
		atomic_store(&td__state, TD_SP_FAILED);
		return;
	}
	atomic_store_explicit(&td__state, TD_SP_ON, memory_order_release);
}

/* ---- writing a line -------------------------------------------------------- */

/* Whether every lane is written out (none still holds a line). */
static bool td__empty(void)
{
	for (uint32_t l = 0; l < td__f.nlanes; l++)
		if (atomic_load(td__f.lane[l].tail) != atomic_load(td__f.lane[l].head))
			return false;
	return true;
}

/* The lane of the CPU this thread runs on (glibc reads it from the
 * thread's rseq area: no system call). */
static inline uint32_t td__lane(void)
{
	return td__f.nlanes == 1 ? 0 : td_spool_lane_of(&td__f, sched_getcpu());
}

/*
 * The line into this CPU's lane, or, when that one is full, into the
 * first other lane with room: any lane keeps the order (a record's key is
 * read in its own lane's reservation), and a thread that logs a burst
 * then has the whole spool before it writes it out itself.  The lane it
 * went into, or NULL: every lane is full.
 */
static const struct td_spool_view *td__lane_put(const char *rec, size_t len, uint64_t *used)
{
	uint32_t mine = td__lane();

	for (uint32_t i = 0; i < td__f.nlanes; i++) {
		const struct td_spool_view *v = &td__f.lane[(mine + i) & (td__f.nlanes - 1)];

		if (td_spool_put(v, rec, len, used) == 0)
			return v;
	}
	return NULL;
}

/*
 * Once the spool is closed: write the ring out, and remove the file when
 * nothing is left in it (a line another thread never finished keeps it).
 */
static void td__last_flush(void)
{
	if (!td_spool_claim())
		return;
	td_spool_flush_claimed();
	if (td__empty())
		unlink(td__path);
	td_spool_release();
}

int td_spool_record(const char *rec, size_t len)
{
	const struct td_spool_view *v;
	uint64_t used;

	if (atomic_load_explicit(&td__state, memory_order_acquire) != TD_SP_ON ||
	    !td_init_in_own_process())
		return -1;
	/* a signal handler interrupted this thread's own put: direct */
	if (td__putting)
		return -1;
	td__putting = 1;
	v = td__lane_put(rec, len, &used);
	td__putting = 0;
	if (v == NULL) {
		/* full: write it out here (waiting for the lines being
		 * copied), then try once more */
		if (!td_spool_claim())
			return -1;
		td_spool_flush_claimed();
		td_spool_release();
		td__putting = 1;
		v = td__lane_put(rec, len, &used);
		td__putting = 0;
		if (v == NULL)
			return -1;
	}
	/*
	 * The exit path closed the spool while this line went in: it may have
	 * written the ring out before the line was there, so write it now.
	 * (seq_cst, against the exit path's store and its reads of the ring.)
	 */
	if (atomic_load(&td__state) != TD_SP_ON) {
		td__last_flush();
		return 0;
	}
	/*
	 * Wake the worker only for the first line of a batch, or when the
	 * ring fills: one system call per batch.  The line's reservation (a
	 * seq_cst compare-and-swap of the head) comes before this look at the
	 * flags, and the worker clears them before it reads the head: either
	 * the worker sees this line's slot, or this writer sees the flag
	 * cleared and wakes it.  A slot the worker sees before its commit
	 * (a release store, cheap: see td_spool_commit) brings the worker
	 * back one flush interval later (td_spool_tick).
	 */
	if (used > v->nslots / 4) {
		if (!atomic_load(&td__urgent) && !atomic_exchange(&td__urgent, 1))
			td_worker_wake();
	} else if (!atomic_load(&td__armed) && !atomic_exchange(&td__armed, 1)) {
		td_worker_wake();
	}
	return 0;
}

/* ---- exec ---------------------------------------------------------------- */

/*
 * The exec file: the lines of the connections a successful exec() ends
 * (the last copy, close-on-exec), which the program's exec hook writes
 * just before the call (closing.c).  Written to the log before the call,
 * they would say a connection ended that goes on when the call fails
 * (execvp() fails once per PATH entry it tries, Python's os.execvp()
 * calls execve() for each); after a successful call nothing of this
 * program runs.  So they go into a spool file of their own, named as a
 * spool (".NAME.spool.PID.exec.HEX"), whose lock is held on a
 * close-on-exec descriptor: the kernel lets it go in the exec itself, and
 * the next start of the library on the log (the new program's, at once,
 * where it runs there) appends the lines as a dead spool's.  A failed
 * call removes the file.  Small (TD_EXEC_SLOTS, one lane): a line that
 * does not fit is counted as not written.
 */
#define TD_EXEC_SLOTS 256u

static int td__exec_fd = -1;
static void *td__exec_map;
static struct td_spool_file td__exec_f;
static char td__exec_path[PATH_MAX];

static int td__exec_make(const char *log_path)
{
	char tmp[PATH_MAX];
	void *map;
	int fd, err;

	fd = td__open_new(log_path, ".exec.", td__exec_path, tmp);
	if (fd < 0)
		return -fd;
	map = td__lay_out(fd, TD_EXEC_SLOTS, 1, &td__exec_f);
	if (map == MAP_FAILED || td__name_new(tmp, td__exec_path) != 0) {
		err = errno ? errno : EIO;
		if (map != MAP_FAILED)
			munmap(map, td_spool_file_size(TD_EXEC_SLOTS));
		td__drop_new(tmp, fd);
		return err;
	}
	td__exec_map = map;
	td__exec_fd = fd;
	return 0;
}

int td_spool_exec_put(const char *log_path, const char *line, size_t len)
{
	uint64_t used;
	int err;

	if (td__exec_fd < 0 && (err = td__exec_make(log_path)) != 0)
		return err;
	return td_spool_put(&td__exec_f.lane[0], line, len, &used) == 0 ? 0 : ENOSPC;
}

void td_spool_exec_failed(void)
{
	int saved = errno;

	if (td__exec_fd < 0)
		return;
	unlink(td__exec_path);
	munmap(td__exec_map, td_spool_file_size(TD_EXEC_SLOTS));
	td_ownfd_close(td__exec_fd, TD_OWN_SPOOL);
	td__exec_fd = -1;
	td__exec_map = NULL;
	td_errno_set(saved);
}

/* ---- the worker, fork, exit ---------------------------------------------- */

int64_t td_spool_tick(int64_t now)
{
	uint64_t tail;

	if (atomic_load_explicit(&td__state, memory_order_acquire) != TD_SP_ON)
		return INT64_MAX;
	if (atomic_load(&td__urgent) || (td__due_us != 0 && now >= td__due_us)) {
		td__due_us = 0;
		atomic_store(&td__urgent, 0);
		atomic_store(&td__armed, 0);
		atomic_thread_fence(memory_order_seq_cst);
		/* no waiting here: a line still being copied goes next round */
		if (td_spool_claim()) {
			(void)td__write_out(&td__f, &td__w, false, NULL);
			td_spool_release();
		}
		/*
		 * And there is a next round for it: its writer may have seen
		 * the flags still set, and will not wake us.  So may one whose
		 * line went in while another thread held the claim.  A line
		 * given up on (td__write_all) brings nobody back.
		 */
		for (uint32_t l = 0; l < td__f.nlanes; l++) {
			tail = atomic_load(td__f.lane[l].tail);
			if (tail != atomic_load(td__f.lane[l].head) &&
			    tail != atomic_load(&td__stuck_at[l]))
				atomic_store(&td__armed, 1);
		}
	}
	if (td__due_us == 0 && atomic_load(&td__armed))
		td__due_us = now + td__flush_us;
	return td__due_us != 0 ? td__due_us : INT64_MAX;
}

/*
 * Before fork(): the ring is written out, so that the parent's lines come
 * before the child's (which writes its own, directly).  A process that
 * forks every few lines (a fork-per-connection server's parent) would
 * write its ring out at every fork anyway, while the spool's worker thread
 * makes each fork dearer (the copied-on-write pages of a process with two
 * threads are flushed from both CPUs' TLBs): its lines stay direct, the
 * count towards a spool starts again at each fork.
 */
void td_spool_before_fork(void)
{
	if (atomic_load_explicit(&td__state, memory_order_relaxed) == TD_SP_OFF)
		td_store_changed(&td__lines, 0);
	td_spool_flush();
}

/*
 * In a forked child: the spool is the parent's.  Its mapping goes (the
 * child must never write into the parent's ring), and so does the child's
 * copy of the descriptor: the lock stays with the parent's.  The child
 * makes its own spool if it logs enough.
 */
TD_CHILD_RUNS
void td_spool_after_fork_child(void)
{
	static const struct td_spool_file none;

	/* what already holds its value is not written (td_store_changed);
	 * a parent that never made a spool left every other variable as it
	 * started (only this function puts td__state back to OFF), and they
	 * are not even read: their page may be one the parent never used */
	td_store_changed(&td__lines, 0);
	if (atomic_load_explicit(&td__state, memory_order_relaxed) == TD_SP_OFF &&
	    atomic_load_explicit(&td__claim, memory_order_relaxed) == 0)
		return;
	if (td__map != NULL) {
		munmap(td__map, td__size);
		td__map = NULL;
	}
	td_ownfd_close_slot(&td__fd, TD_OWN_SPOOL);
	if (memcmp(&td__f, &none, sizeof(none)) != 0)
		memset(&td__f, 0, sizeof(td__f));
	td_store_changed(&td__claim, 0);
	if (td__flushing)
		td__flushing = 0;
	if (td__putting)
		td__putting = 0;
	for (uint32_t l = 0; l < TD_SPOOL_MAX_LANES; l++)
		td_store_changed(&td__stuck_at[l], UINT64_MAX);
	td_store_changed(&td__armed, 0);
	td_store_changed(&td__urgent, 0);
	if (td__due_us != 0)
		td__due_us = 0;
	td_store_changed(&td__state, TD_SP_OFF);
}

/*
 * At exit (exit(), and _exit() or exit_group without it): lines from now
 * on go straight to the log (after the ring, by the claim holder), the
 * ring is written out, and the file removed when nothing is left in it.
 * A line another thread never finished keeps the file: the next process
 * to open the log appends what follows it.
 */
TD_CHILD_RUNS
void td_spool_at_exit(void)
{
	int expect = atomic_load_explicit(&td__state, memory_order_relaxed);

	/* read first: a compare-and-swap writes the page even when it fails,
	 * and in a forked child that is a page copied only to exit */
	if ((expect != TD_SP_ON && expect != TD_SP_PREPARED) || !td_init_in_own_process() ||
	    !atomic_compare_exchange_strong(&td__state, &expect, TD_SP_CLOSED))
		return;
	/* never made ready: an empty slot, left for the next process that
	 * gives up root (td__take_slot()), or the next start's recovery */
	if (expect == TD_SP_PREPARED)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	td__last_flush();
}

/*
 * The program closes (or dup2()s over) the spool's descriptor: keep the
 * lock, which is the spool's sign of life, on a new number first.
 */
void td_spool_fd_closing(int fd)
{
	int nfd;

	if (fd < 0 || fd != atomic_load(&td__fd) || !td_ownfd_is(fd, TD_OWN_SPOOL))
		return;
	nfd = td_real_sys_dupfd(fd, td_init_proc.fd_base);
	if (nfd >= 0)
		atomic_store(&td__fd, td_ownfd_mark(nfd, TD_OWN_SPOOL));
}

/* ---- recovery ---------------------------------------------------------------- */

/*
 * Records a dead process left that could not be written: begun and never
 * finished (it died copying one), damaged, or packed by another build of
 * the library.  They are gone with their writer; say so, once a spool.
 */
__attribute__((noinline, cold)) static void td__say_lost(const char *name, int32_t pid,
							 uint64_t lost)
{
	char msg[512];
	struct td_buf b;

	td_buf_init(&b, msg, sizeof(msg));
	td_buf_u64(&b, lost);
	td_buf_puts(&b, " audit line(s) that process ");
	td_buf_i64(&b, pid);
	td_buf_puts(&b, " left unfinished or unreadable in its spool ");
	td_buf_puts(&b, name);
	td_buf_puts(&b, " were lost (it died writing them, or another version of the library "
			"wrote them)");
	td_logw_warn(td_buf_cstr(&b));
}

/*
 * Append what a dead process left in its spool.  The lock decides who
 * may: the owner holds it while alive, a recoverer while it recovers.  The
 * header's tail says what is already in the log, and is moved after each
 * batch, so a recoverer that takes over from another (one that died
 * half-way, or finished and removed the file while this one waited with
 * it open: then the file has no link left) appends each line once; only
 * a batch whose writev() returned just before its recoverer was killed
 * could appear twice.
 */
static void td__recover_one(int dfd, const char *name, uid_t uid)
{
	struct td_spool_file f;
	struct stat st;
	void *map;
	int fd = td_real_sys_openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);

	if (fd < 0)
		return;
	if (td_real_sys_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid) {
		td_real_close(fd);
		return;
	}
	/* a slot no process holds and none made ready (td__take_slot()):
	 * nothing in it */
	if (st.st_size == 0) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && td_real_sys_fstat(fd, &st) == 0 &&
		    st.st_size == 0 && st.st_nlink == 1)
			unlinkat(dfd, name, 0);
		td_real_close(fd);
		return;
	}
	if (st.st_size < (off_t)TD_SPOOL_HDR || st.st_size > (off_t)td_spool_file_size(TD_SPOOL_MAX_SLOTS) ||
	    flock(fd, LOCK_EX | LOCK_NB) != 0 || td_real_sys_fstat(fd, &st) != 0 || st.st_nlink != 1) {
		td_real_close(fd);
		return;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		td_real_close(fd);
		return;
	}
	if (td_spool_file_of(map, (size_t)st.st_size, &f) == 0 && td_spool_claim()) {
		struct td_spool_writer w;
		uint64_t lost;

		td_spool_writer_of(&f.lane[0], &w);
		lost = td__write_out(&f, &w, true, NULL);
		td_spool_release();
		unlinkat(dfd, name, 0);
		if (lost > 0)
			td__say_lost(name, (int32_t)f.hdr->pid, lost);
	}
	/* a file that is not a spool this code can read is left alone */
	munmap(map, (size_t)st.st_size);
	td_real_close(fd);
}

/* A spool its maker never finished (it died making it): remove it. */
static void td__remove_stale_new(int dfd, const char *name, uid_t uid)
{
	struct stat st;
	int fd = td_real_sys_openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);

	if (fd < 0)
		return;
	if (td_real_sys_fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == uid &&
	    td_clock_now_us() / 1000000 - (int64_t)st.st_mtime > TD_SPOOL_NEW_STALE_S &&
	    flock(fd, LOCK_EX | LOCK_NB) == 0)
		unlinkat(dfd, name, 0);
	td_real_close(fd);
}

void td_spool_recover(const char *log_path)
{
	const char *slash = strrchr(log_path, '/');
	char pre[NAME_MAX + 1], pre_new[NAME_MAX + 1], dents[4096];
	size_t plen, nlen;
	uid_t uid = geteuid();
	struct td_buf b;
	int dfd;

	if (slash == NULL || slash[1] == '\0')
		return;
	td_buf_init(&b, pre, sizeof(pre));
	td_buf_putc(&b, '.');
	td_buf_puts(&b, slash + 1);
	td_buf_puts(&b, TD_SPOOL_INFIX);
	td_buf_cstr(&b);
	if (b.lost)
		return;
	plen = b.len;
	td_buf_init(&b, pre_new, sizeof(pre_new));
	td_buf_putc(&b, '.');
	td_buf_puts(&b, slash + 1);
	td_buf_puts(&b, TD_SPOOL_NEW_INFIX);
	td_buf_cstr(&b);
	if (b.lost)
		return;
	nlen = b.len;
	dfd = td__log_dir(log_path);
	if (dfd < 0)
		return;
	for (;;) {
		long n = td_real_sys3(SYS_getdents64, dfd, dents, sizeof(dents));

		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);

			off += d->d_reclen;
			if (strncmp(d->d_name, pre, plen) == 0)
				td__recover_one(dfd, d->d_name, uid);
			else if (strncmp(d->d_name, pre_new, nlen) == 0)
				td__remove_stale_new(dfd, d->d_name, uid);
		}
	}
	td_real_close(dfd);
}
