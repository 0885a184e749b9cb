/*
 * teardown: the fd table.  One entry per open fd that is a TCP socket the
 * library tracks, indexed by fd number, in pages mapped on first use.
 *
 * No locks: entries are published and claimed with atomics on their tag.
 * close() claims the entry *before* the real close, because the kernel
 * frees the number at once and another thread's socket() may get it; the
 * new socket then starts from a fresh entry and no state of the old one
 * can ever be applied to it.
 */
#include <string.h>
#include <sys/mman.h>

#include "rt.h"

_Atomic(struct td_sock *) td_fdtab_pages[TD_FDTAB_NPAGES];
static _Atomic uint32_t td__gen;
static _Atomic int td__high = -1;

/*
 * The page is mapped with mmap, not malloc: this runs inside socket() and
 * accept(), which a signal handler may call.  Two threads racing on a new
 * page both map one; the loser unmaps its copy.
 */
struct td_sock *td_fdtab_slot(int fd)
{
	struct td_sock *page, *fresh = NULL;
	size_t bytes = sizeof(struct td_sock) * TD_FDTAB_PAGE;
	_Atomic(struct td_sock *) *where;

	if ((unsigned)fd >= TD_FDTAB_MAX)
		return NULL;
	where = &td_fdtab_pages[fd >> TD_FDTAB_PAGE_SHIFT];
	page = atomic_load_explicit(where, memory_order_acquire);
	if (page == NULL) {
		void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			return NULL;
		fresh = m;
		if (atomic_compare_exchange_strong(where, &page, fresh)) {
			page = fresh;
		} else {
			munmap(fresh, bytes);
		}
	}
	return &page[fd & (TD_FDTAB_PAGE - 1)];
}

static uint32_t td__next_tag(void)
{
	uint32_t t;

	do
		t = atomic_fetch_add_explicit(&td__gen, 1, memory_order_relaxed) + 1;
	while (t == 0);
	return t;
}

/* Publish d and the atomic fields given; the rest start at zero. */
static struct td_sock *td__publish(int fd, const struct td_sock_data *d, uint32_t flags,
				   uint32_t share, uint64_t linger)
{
	struct td_sock *e = td_fdtab_slot(fd);
	uint32_t old;
	int high;

	if (e == NULL)
		return NULL;
	/*
	 * A live entry here is either stale (its fd was closed behind our
	 * back) or the parent's, when a vfork()ed child, sharing our memory,
	 * makes a socket on a number it had freed in its own table.  Only in
	 * the first case may it be replaced.
	 */
	old = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (old != 0) {
		if (!td_init_in_own_process())
			return NULL;
		/* closed behind our back (a path no hook sees): drop its
		 * claim on a dup share slot */
		old = atomic_exchange(&e->tag, 0);
		if (old != 0 && atomic_load(&e->share) != 0)
			(void)td_fdtab_share_leave(atomic_load(&e->share));
	}
	e->d = *d;
	atomic_store_explicit(&e->share, share, memory_order_relaxed);
	atomic_store_explicit(&e->linger, linger, memory_order_relaxed);
	atomic_store_explicit(&e->cw_seen_mono_us, 0, memory_order_relaxed);
	atomic_store_explicit(&e->written, 0, memory_order_relaxed);
	atomic_store_explicit(&e->read_in, 0, memory_order_relaxed);
	atomic_store_explicit(&e->reset_bytes_in, 0, memory_order_relaxed);
	atomic_store_explicit(&e->reset_bytes_out, 0, memory_order_relaxed);
	atomic_store_explicit(&e->reset_lost, 0, memory_order_relaxed);
	atomic_store_explicit(&e->reset_in_flight, 0, memory_order_relaxed);
	atomic_store_explicit(&e->flags, flags, memory_order_relaxed);
	atomic_store_explicit(&e->tag, td__next_tag(), memory_order_release);
	high = atomic_load_explicit(&td__high, memory_order_relaxed);
	while (fd > high &&
	       !atomic_compare_exchange_weak(&td__high, &high, fd))
		;
	return e;
}

struct td_sock *td_fdtab_publish(int fd, const struct td_sock *init)
{
	return td__publish(fd, &init->d, atomic_load(&init->flags), atomic_load(&init->share),
			   atomic_load(&init->linger));
}

struct td_sock *td_fdtab_publish_data(int fd, const struct td_sock_data *d, uint32_t flags)
{
	return td__publish(fd, d, flags, 0, 0);
}

struct td_sock *td_fdtab_update(int fd, uint32_t tag, const struct td_sock_data *d)
{
	struct td_sock *e = td_fdtab_peek(fd);
	uint32_t expect = tag;

	if (e == NULL || tag == 0 || !atomic_compare_exchange_strong(&e->tag, &expect, 0))
		return NULL;
	e->d = *d;
	/* something was decided: its close is no longer a bare one */
	if (atomic_load_explicit(&e->flags, memory_order_relaxed) & TD_SF_BARE)
		atomic_fetch_and(&e->flags, ~TD_SF_BARE);
	atomic_store_explicit(&e->tag, td__next_tag(), memory_order_release);
	return e;
}

/* A copy of e's fields (the tag is the caller's to check and set). */
static void td__copy(struct td_sock *out, const struct td_sock *e)
{
#define TD__COPY(f) atomic_store_explicit(&out->f, \
		atomic_load_explicit(&e->f, memory_order_relaxed), memory_order_relaxed)
	TD__COPY(flags);
	TD__COPY(share);
	TD__COPY(linger);
	TD__COPY(cw_seen_mono_us);
	TD__COPY(written);
	TD__COPY(read_in);
	TD__COPY(reset_bytes_in);
	TD__COPY(reset_bytes_out);
	TD__COPY(reset_lost);
	TD__COPY(reset_in_flight);
#undef TD__COPY
	out->d = e->d;
}

bool td_fdtab_claim(int fd, struct td_sock *out)
{
	struct td_sock *e = td_fdtab_peek(fd);
	uint32_t t;

	if (e == NULL ||
	    atomic_load_explicit(&e->tag, memory_order_relaxed) == 0)
		return false;
	t = atomic_exchange_explicit(&e->tag, 0, memory_order_acq_rel);
	if (t == 0)
		return false;
	td__copy(out, e);
	atomic_store_explicit(&out->tag, t, memory_order_relaxed);
	return true;
}

bool td_fdtab_read(int fd, struct td_sock *out, uint32_t *tag)
{
	struct td_sock *e = td_fdtab_peek(fd);
	uint32_t t1, t2;

	if (e == NULL)
		return false;
	t1 = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (t1 == 0)
		return false;
	td__copy(out, e);
	atomic_thread_fence(memory_order_acquire);
	t2 = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (t1 != t2)
		return false;
	atomic_store_explicit(&out->tag, t1, memory_order_relaxed);
	if (tag)
		*tag = t1;
	return true;
}

int td_fdtab_high(void)
{
	return atomic_load_explicit(&td__high, memory_order_relaxed);
}

/*
 * Share slots count the fds of this process that dup(), dup2() or dup3()
 * made for one socket, so that only the last close does the close-time
 * work (discarding input, a drain's shutdown).  A fixed array of counters
 * claimed by compare-and-swap; when it is full the sockets are marked
 * shared for good, which only ever skips work, never does it wrongly.
 */
#define TD_SHARE_MAX 4096
static _Atomic uint32_t td__share[TD_SHARE_MAX];

uint32_t td_fdtab_share_join(struct td_sock *src)
{
	uint32_t s = atomic_load(&src->share);

	if (s != 0) {
		atomic_fetch_add(&td__share[s - 1], 1);
		return s;
	}
	for (uint32_t i = 0; i < TD_SHARE_MAX; i++) {
		uint32_t zero = 0;

		if (atomic_load_explicit(&td__share[i], memory_order_relaxed) == 0 &&
		    atomic_compare_exchange_strong(&td__share[i], &zero, 2)) {
			atomic_store(&src->share, i + 1);
			return i + 1;
		}
	}
	atomic_fetch_or(&src->flags, TD_SF_STICKY_SHARED);
	return 0;
}

bool td_fdtab_share_leave(uint32_t share)
{
	if (share == 0 || share > TD_SHARE_MAX)
		return false;
	return atomic_fetch_sub(&td__share[share - 1], 1) > 1;
}

void td_fdtab_forget(int fd)
{
	struct td_sock *e = td_fdtab_peek(fd);

	if (e == NULL || atomic_load_explicit(&e->tag, memory_order_relaxed) == 0)
		return;
	if (atomic_exchange_explicit(&e->tag, 0, memory_order_acq_rel) != 0 &&
	    atomic_load(&e->share) != 0)
		(void)td_fdtab_share_leave(atomic_load(&e->share));
}

