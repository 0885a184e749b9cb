/*
 * teardown: the fd table.  One entry per open fd that is a TCP socket the
 * library tracks, indexed by fd number, in pages mapped on first use.
 *
 * No locks: entries are published and claimed with atomics on their tag.
 * close() claims the entry *before* the real close, because the kernel
 * frees the number at once and another thread's socket() may get it; the
 * new socket then starts from a fresh entry and no state of the old one
 * can ever be applied to it.  A TCP socket that socket() made has a born
 * entry until a use needs it published (td_fdtab_bear_fast(), fdtab.h), and
 * the same holds for it: close() clears the born bit before the real
 * close.
 */
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "rt.h"
#include "slots.h"

/* fds 0 to 1023: beside the written variables (TD_CHILD_FD), never unmapped */
TD_CHILD_FD struct td_fdent td_fdtab_page0[TD_FDTAB_PAGE];
TD_CHILD_DIR struct td_fdtab_dir td_fdtab_dir[TD_FDTAB_NPAGES] = {[0] = {.ent = td_fdtab_page0}};
TD_CHILD_READ _Atomic int td_fdtab_high_ = -1;
TD_CHILD_READ _Atomic int td_fdtab_prog_high_ = -1;
TD_CHILD_READ _Atomic int td_fdtab_born_below;
TD_CHILD_READ static _Atomic bool td__born_shut;

/*
 * fd's slot in the page *where points at (entries of size bytes), the
 * page mapped if missing.
 * mmap, not malloc: this runs inside socket() and accept(), which a
 * signal handler may call.  Two threads racing on a new page both map
 * one; the loser unmaps its copy.  A page is never unmapped, and only its
 * first write makes a 4 KiB part of it resident: memory follows the fds
 * in use.
 */
TD_CHILD_RUNS
static void *td__slot_of(_Atomic(void *) *where, size_t size, int fd)
{
	void *page, *fresh;
	size_t bytes = size * TD_FDTAB_PAGE;

	page = atomic_load_explicit(where, memory_order_acquire);
	if (page == NULL) {
		fresh = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
		if (fresh == MAP_FAILED)
			return NULL;
		if (atomic_compare_exchange_strong(where, &page, fresh))
			page = fresh;
		else
			munmap(fresh, bytes);
	}
	return (char *)page + (size_t)(fd & (TD_FDTAB_PAGE - 1)) * size;
}

TD_CHILD_RUNS
struct td_fdent *td_fdtab_slot(int fd)
{
	if ((unsigned)fd < TD_FDTAB_PAGE)
		return &td_fdtab_page0[fd];
	if ((unsigned)fd >= TD_FDTAB_MAX)
		return NULL;
	return td__slot_of((_Atomic(void *) *)&td_fdtab_dir[fd >> TD_FDTAB_PAGE_SHIFT].ent,
			   sizeof(struct td_fdent), fd);
}

TD_CHILD_RUNS
struct td_fdext *td_fdtab_ext(int fd)
{
	if ((unsigned)fd >= TD_FDTAB_MAX)
		return NULL;
	return td__slot_of((_Atomic(void *) *)&td_fdtab_dir[fd >> TD_FDTAB_PAGE_SHIFT].ext,
			   sizeof(struct td_fdext), fd);
}

/*
 * The entry's SO_LINGER word: onoff in bit 31, the seconds in the 31 bits
 * below, signed, clamped to what they hold.
 */
static uint32_t td__linger_word(bool onoff, int32_t secs)
{
	if (secs > 0x3fffffff)
		secs = 0x3fffffff;
	else if (secs < -0x40000000)
		secs = -0x40000000;
	return (onoff ? TD_LINGER_ON : 0) | ((uint32_t)secs & 0x7fffffffu);
}

void td_fdent_linger_set(struct td_fdent *e, int onoff, int secs)
{
	atomic_store(&e->linger, td__linger_word(onoff != 0, secs));
}

/* The copy's linger from the entry's word. */
static uint64_t td__linger_out(uint32_t w)
{
	int32_t secs = (int32_t)(w << 1) >> 1;

	return (uint64_t)((w & TD_LINGER_ON) != 0) << 32 | (uint32_t)secs;
}

/* The entry's word from the copy's linger. */
static uint32_t td__linger_in(uint64_t l)
{
	return td__linger_word((l >> 32) != 0, (int32_t)(uint32_t)l);
}

/* The extension's counters: one list for every copy in and out. */
#define TD__COUNTERS(X) X(cw_seen_mono_us) X(written) X(read_in) X(reset_bytes_in) \
			X(reset_bytes_out) X(reset_lost) X(reset_in_flight)

/* Whether the copy s has a counter that is not zero. */
static bool td__counts_any(const struct td_sock *s)
{
#define TD__ANY(f) || atomic_load(&s->f) != 0
	return false TD__COUNTERS(TD__ANY);
#undef TD__ANY
}

/* x's counters from the copy s, or zero (s NULL). */
static void td__counts_in(struct td_fdext *x, const struct td_sock *s)
{
#define TD__IN(f) atomic_store_explicit(&x->f, s ? atomic_load(&s->f) : 0, memory_order_relaxed);
	TD__COUNTERS(TD__IN)
#undef TD__IN
}

/* out's counters from x, or zero (x NULL: its page was never needed). */
static void td__counts_out(struct td_sock *out, const struct td_fdext *x)
{
#define TD__OUT(f) atomic_store_explicit(&out->f, \
		x ? atomic_load_explicit(&x->f, memory_order_relaxed) : 0, memory_order_relaxed);
	TD__COUNTERS(TD__OUT)
#undef TD__OUT
}

/* Whether a fits the entry's IPv4 form (unset, or IPv4). */
static bool td__addr_fits(const struct td_addr *a)
{
	/* compared as words, not with memcmp() against a table of zeros: in
	 * a forked child, a read of a page nobody touched yet is a fault */
	uint32_t w0, w1;
	uint64_t w2;

	memcpy(&w0, a->addr, 4);
	memcpy(&w1, a->addr + 4, 4);
	memcpy(&w2, a->addr + 8, 8);
	if (a->family == AF_INET)
		return (w1 | w2) == 0;
	return a->family == 0 && a->port == 0 && (w0 | w1 | w2) == 0;
}

static void td__addr4_of(const struct td_addr *a, uint32_t *ip, uint16_t *port, uint8_t *fam)
{
	memcpy(ip, a->addr, 4);
	*port = a->port;
	*fam = a->family;
}

static void td__addr_of4(struct td_addr *a, uint32_t ip, uint16_t port, uint8_t fam)
{
	memset(a, 0, sizeof(*a));
	a->family = fam;
	a->port = port;
	memcpy(a->addr, &ip, 4);
}

/*
 * e's plain words from cp (relaxed atomic stores; see td_fdent), its
 * addresses in the extension when they are not IPv4.  false when that
 * extension cannot be mapped: nothing is written then.
 */
TD_CHILD_RUNS
static bool td__data_in(int fd, struct td_fdent *e, const struct td_sock *cp)
{
	struct td_fdent tmp;

	memset(&tmp, 0, sizeof(tmp));
	tmp.d = cp->d;
	if (td__addr_fits(&cp->local) && td__addr_fits(&cp->remote)) {
		td__addr4_of(&cp->local, &tmp.a4.local_ip, &tmp.a4.local_port,
			     &tmp.a4.local_family);
		td__addr4_of(&cp->remote, &tmp.a4.remote_ip, &tmp.a4.remote_port,
			     &tmp.a4.remote_family);
	} else {
		struct td_fdext *x = td_fdtab_ext(fd);
		uint64_t aw[sizeof(x->aw) / 8];

		if (x == NULL)
			return false;
		memset(aw, 0, sizeof(aw));
		memcpy(aw, &cp->local, sizeof(cp->local));
		memcpy((char *)aw + sizeof(cp->local), &cp->remote, sizeof(cp->remote));
		for (size_t i = 0; i < sizeof(aw) / 8; i++)
			__atomic_store_n(&x->aw[i], aw[i], __ATOMIC_RELAXED);
		tmp.a4.local_family = tmp.a4.remote_family = TD_FDADDR_EXT;
	}
	td_fdent_set_words(e, tmp.dw);
	return true;
}

/*
 * out from fd's entry e and extension (relaxed atomic loads; the tag is
 * the caller's to check and set).
 */
TD_CHILD_RUNS
static void td__copy(int fd, struct td_sock *out, const struct td_fdent *e)
{
	const struct td_fdext *x = td_fdtab_ext_peek(fd);
	struct td_fdent tmp;

	for (size_t i = 0; i < 6; i++)
		tmp.dw[i] = __atomic_load_n(&e->dw[i], __ATOMIC_RELAXED);
	out->d = tmp.d;
	out->read16 = tmp.a4.read16;
	atomic_store_explicit(&out->flags, atomic_load_explicit(&e->flags, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&out->share, atomic_load_explicit(&e->share, memory_order_relaxed),
			      memory_order_relaxed);
	atomic_store_explicit(&out->linger,
			      td__linger_out(atomic_load_explicit(&e->linger, memory_order_relaxed)),
			      memory_order_relaxed);
	if (tmp.a4.local_family == TD_FDADDR_EXT && x != NULL) {
		uint64_t aw[sizeof(x->aw) / 8];

		for (size_t i = 0; i < sizeof(aw) / 8; i++)
			aw[i] = __atomic_load_n(&x->aw[i], __ATOMIC_RELAXED);
		memcpy(&out->local, aw, sizeof(out->local));
		memcpy(&out->remote, (char *)aw + sizeof(out->local), sizeof(out->remote));
	} else {
		td__addr_of4(&out->local, tmp.a4.local_ip, tmp.a4.local_port,
			     tmp.a4.local_family == TD_FDADDR_EXT ? 0 : tmp.a4.local_family);
		td__addr_of4(&out->remote, tmp.a4.remote_ip, tmp.a4.remote_port,
			     tmp.a4.remote_family == TD_FDADDR_EXT ? 0 : tmp.a4.remote_family);
	}
	td__counts_out(out, x);
}

/* The flags that will need fd's extension (armed faults count into it). */
#define TD__EXT_FLAGS (TD_SF_BYTES_FAULT | TD_SF_BYTES_IN_FAULT | TD_SF_TIMER_FAULT | \
		       TD_SF_FAULT_RST)

/*
 * Take the slot of fd for a new entry: a live or born entry there is
 * either stale (its fd was closed behind our back) or the parent's, when
 * a vfork()ed child, sharing our memory, makes a socket on a number it
 * had freed in its own table.  Only in the first case may it be replaced.
 * Returns the slot's tag, neither live nor born, or 1 (live: never such a
 * tag) when it may not be taken.
 */
TD_CHILD_RUNS
static uint32_t td__take(struct td_fdent *e)
{
	/* acquire: pairs with the release of the close that freed the number
	 * (td_fdtab_forget, td_fdtab_claim), whose thread wrote the old data */
	uint32_t old = atomic_load_explicit(&e->tag, memory_order_acquire);

	if (!(old & (TD_TAG_LIVE | TD_TAG_BORN)))
		return old;
	if (!td_init_in_own_process())
		return 1;
	/* closed behind our back (a path no hook sees): drop its claim on a
	 * dup share slot */
	old = atomic_fetch_and(&e->tag, ~(TD_TAG_LIVE | TD_TAG_BORN));
	if (td_tag_live(old) && atomic_load(&e->share) != 0)
		(void)td_fdtab_share_leave(atomic_load(&e->share));
	return old & ~(TD_TAG_LIVE | TD_TAG_BORN);
}

/* A watermark grows to fd. */
static inline void td__raise(_Atomic int *high, int fd)
{
	int h = atomic_load_explicit(high, memory_order_relaxed);

	while (fd > h && !atomic_compare_exchange_weak(high, &h, fd))
		;
}

/* The highest fd seen grows to fd, and the highest of the program's too
 * unless fd is one of the library's own; then the fast births' gate,
 * after the watermark it follows, and shut again at once where it was
 * shut for good (td_fdtab_born_off()). */
static inline void td__raise_high(int fd, bool own)
{
	int want = fd < TD_FDTAB_PAGE ? fd + 1 : TD_FDTAB_PAGE;

	td__raise(&td_fdtab_high_, fd);
	if (own)
		return;
	td__raise(&td_fdtab_prog_high_, fd);
	td__raise(&td_fdtab_born_below, want);
	/* a gate raised as it was shut: shut it again (td_fdtab_born_off()) */
	if (atomic_load(&td__born_shut))
		atomic_store(&td_fdtab_born_below, 0);
}

/*
 * Shut the fast births' gate for good: the fork epoch is near the birth
 * word's top.  A raise that swapped a new gate in meanwhile sees the
 * flag after its swap and shuts the gate again (all sequentially
 * consistent): the gate ends at 0 either way, while the epoch is still
 * 2^20 forks short of the top.
 */
void td_fdtab_born_off(void)
{
	atomic_store(&td__born_shut, true);
	atomic_store(&td_fdtab_born_below, 0);
}

TD_CHILD_RUNS
struct td_fdent *td_fdtab_publish(int fd, const struct td_sock *init)
{
	struct td_fdent *e = td_fdtab_slot(fd);
	uint32_t old, flags = atomic_load(&init->flags);
	struct td_fdext *x;

	if (e == NULL || (old = td__take(e)) == 1)
		return NULL;
	/* counts to carry (a dup's copy) or armed faults map the extension;
	 * else one that exists is zeroed */
	x = (flags & TD__EXT_FLAGS) || td__counts_any(init) ? td_fdtab_ext(fd)
							    : td_fdtab_ext_peek(fd);
	if (!td__data_in(fd, e, init))
		return NULL;
	if (x != NULL)
		td__counts_in(x, init);
	td_fdent_go_live(e, old, atomic_load(&init->share),
			 td__linger_in(atomic_load(&init->linger)), flags);
	td__raise_high(fd, (flags & TD_SF_OWN) != 0);
	return e;
}

/* A bare entry into fd's slot e, taken (old: its tag, neither live nor born). */
TD_CHILD_RUNS
static struct td_fdent *td__bare_at(struct td_fdent *e, int fd, uint32_t old, uint8_t family,
				    uint32_t epoch, uint32_t flags)
{
	struct td_fdext *x;
	uint64_t w[6];

	td_fdent_bare_words(w, family, epoch);
	td_fdent_set_words(e, w);
	/* the last entry of this number may have left counts there */
	x = td_fdtab_ext_peek(fd);
	if (x != NULL)
		td__counts_in(x, NULL);
	td_fdent_go_live(e, old, 0, 0, flags);
	td__raise_high(fd, (flags & TD_SF_OWN) != 0);
	return e;
}

TD_CHILD_RUNS
struct td_fdent *td_fdtab_publish_bare_slow(int fd, uint8_t family, uint32_t epoch,
					    uint32_t flags)
{
	int saved = errno; /* socket() leaves errno to us: mmap may set it */
	struct td_fdent *e = td_fdtab_slot(fd);
	uint32_t old;

	td_errno_set(saved);
	if (e == NULL || (old = td__take(e)) == 1)
		return NULL;
	return td__bare_at(e, fd, old, family, epoch, flags);
}

/*
 * socket()'s birth where td_fdtab_bear_fast() found something in the way
 * (td_decide_born_slow(), once it knows the library acts).  No
 * page yet: mapped here.  A live or born entry on the number (stale, or
 * a vfork()ed parent's): the bare entry is published as before born
 * entries, whose rules (td__take()) replace a stale one and leave the
 * parent's alone.  An epoch past the word's bits: the bare entry too,
 * with its epoch exact.  Otherwise the born entry, and the watermarks
 * raised first, so that a scan bounded by them (close_range(), the
 * fork's count) finds it.
 */
int td_fdtab_bear_slow(int fd, uint8_t family, uint32_t epoch)
{
	int saved = errno; /* socket() leaves errno to us: mmap may set it */
	struct td_fdent *e = td_fdtab_slot(fd);
	uint32_t old;

	td_errno_set(saved);
	if (e == NULL)
		return fd;
	old = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (epoch > TD_BORN_EPOCH_MAX || (old & (TD_TAG_LIVE | TD_TAG_BORN))) {
		(void)td_fdtab_publish_bare_slow(fd, family, epoch, TD_SF_BARE);
		return fd;
	}
	td__raise_high(fd, false);
	atomic_store_explicit(&e->linger, td_born_word(family, epoch), memory_order_relaxed);
	atomic_store_explicit(&e->tag, old | TD_TAG_BORN, memory_order_release);
	return fd;
}

/*
 * A born entry e of fd (its tag t, seen born) becomes the bare entry it
 * stands for.  The first use to clear the born bit (compare-and-swap)
 * reads the birth word and publishes; the birth word is read only after
 * the swap, so it is the word of the birth the swap ended.
 *
 * Another thread's first use of the same socket at the same moment loses
 * the swap, and gives up at once: the winner's entry if it is live
 * already, else NULL, and its caller takes the socket for one the
 * library never saw made (adopted).  Why no wait: the winner is a few
 * dozen instructions from going live, but it may never get there while
 * the loser waits, because the loser may be a signal handler that
 * interrupted the winner's very thread (or run in a child that a fork()
 * made while another thread was publishing).  Only a race between two
 * first uses of one socket at the same moment loses, and it costs the
 * loser one system call (is it TCP?) and the socket a holder check at
 * its close that falls back to asking (an adopted socket may be held
 * elsewhere).  The adopting publish may replace the winner's entry, as
 * two threads adopting one inherited socket at once replace each
 * other's.
 *
 * A birth word whose family is not one socket() records (a program's
 * stale setsockopt(SO_LINGER), on a number another thread closed and a
 * socket() got meanwhile, wrote over it) is dropped the same way.  A
 * vfork()ed child may publish its parent's born entry: the entry is the
 * one the parent would publish, and the socket the same.
 */
struct td_fdent *td_fdtab_born_publish(struct td_fdent *e, int fd, uint32_t t)
{
	uint32_t w;
	uint8_t family;

	while (td_tag_born(t) &&
	       !atomic_compare_exchange_weak_explicit(&e->tag, &t, t & ~TD_TAG_BORN,
						      memory_order_acquire, memory_order_acquire))
		;
	if (!td_tag_born(t))
		/* lost: the winner's entry if it is live by now; no wait */
		return td_tag_live(t) ? e : NULL;
	/* won (acquire: pairs with the birth's release; read only now, after
	 * the swap, so that the word is that birth's) */
	w = atomic_load_explicit(&e->linger, memory_order_relaxed);
	family = td_born_family(w);
	if (td_unlikely(family != AF_INET && family != AF_INET6))
		return NULL;
	return td__bare_at(e, fd, t & ~TD_TAG_BORN, family, td_born_epoch(w), TD_SF_BARE);
}

struct td_fdent *td_fdtab_update(int fd, uint32_t tag, const struct td_sock *cp)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t expect = tag;

	if (e == NULL || !td_tag_live(tag) ||
	    !atomic_compare_exchange_strong(&e->tag, &expect, tag & ~TD_TAG_LIVE))
		return NULL;
	if (!td__data_in(fd, e, cp)) {
		atomic_store_explicit(&e->tag, tag, memory_order_release);
		return NULL;
	}
	/* armed faults count into the extension: map it now, not in send() */
	if (atomic_load(&cp->flags) & TD__EXT_FLAGS)
		(void)td_fdtab_ext(fd);
	/* something was decided: its close is no longer a bare one */
	if (atomic_load_explicit(&e->flags, memory_order_relaxed) & TD_SF_BARE)
		atomic_fetch_and(&e->flags, ~TD_SF_BARE);
	atomic_store_explicit(&e->tag, td_tag_next(tag), memory_order_release);
	return e;
}

TD_CHILD_RUNS
bool td_fdtab_claim(int fd, struct td_sock *out)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t;

	if (e == NULL)
		return false;
	t = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (!td_tag_live(t)) {
		while (td_tag_born(t))
			t = td_fdent_unborn(e, t);
		return false;
	}
	t = atomic_fetch_and_explicit(&e->tag, ~TD_TAG_LIVE, memory_order_acq_rel);
	if (!td_tag_live(t))
		return false;
	td__copy(fd, out, e);
	atomic_store_explicit(&out->tag, t, memory_order_relaxed);
	return true;
}

TD_CHILD_RUNS
bool td_fdtab_read(int fd, struct td_sock *out, uint32_t *tag)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t1, t2;

	if (e == NULL)
		return false;
	t1 = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (!td_tag_live(t1))
		return false;
	td__copy(fd, out, e);
	atomic_thread_fence(memory_order_acquire);
	t2 = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (t1 != t2)
		return false;
	atomic_store_explicit(&out->tag, t1, memory_order_relaxed);
	if (tag)
		*tag = t1;
	return true;
}

/*
 * Share slots count the fds that hold one socket: those of this process
 * that dup(), dup2() or dup3() made, and, once the socket crossed a fork()
 * the library counted (holders.c), every forked process's copies too.  So
 * the close that takes the count to zero is the last reference, wherever
 * the others were, and exactly one process sees it: no /proc look-up
 * before the close, none of the kernel after it, and no race between a
 * parent and its child letting go at the same moment.
 *
 * The slots live in a shared anonymous mapping, made on first use, which
 * every forked child inherits; exec() loses it (the exec hook takes the
 * process's close-on-exec copies off first, holders.c).  A slot's word
 * holds the count, a generation and an "inexact" bit: a share value is
 * the slot's index and the generation it was claimed under, so a stale
 * value never changes a slot claimed again for another socket.  Inexact:
 * some holder is not counted (a vfork()ed or posix_spawn()ed child, a
 * fork from a multi-threaded program, a copy an exec()ed program keeps):
 * then the count still says "others hold it" while above zero, and at
 * zero the holders' check (/proc, the kernel's look-up) is asked as for a
 * socket without a slot.  Claimed by compare-and-swap; when none is free
 * (or there is no mapping) a dup()ed socket is shared for good, which
 * only ever skips work, never does it wrongly.
 */
struct td_share {
	/* count (bits 0-31), generation (32-47), inexact (48) */
	_Atomic uint64_t w;
	/*
	 * The fd number the socket had when the slot was made (+1; the first
	 * dup's source, or its number at the fork).  For a socket inherited
	 * from the parent that is the number the parent gave it, where the
	 * holders' check looks for it in the parent (holders.c): a child
	 * that dup2()s its connection onto 0 and 1 holds it there, not at the
	 * parent's number.
	 */
	_Atomic int origin;
	/* the generation whose end data (below) is written, 0 none */
	_Atomic uint32_t end_gen;
	/*
	 * The copies forked processes hold, each process by its holder
	 * record (below): the record's key in the high half, its copies in
	 * the low half; 0 free.  A process not in here (the one that made
	 * the slot, or one whose record found no free word: the slot is then
	 * inexact) still counts in w.
	 */
	_Atomic uint64_t held[TD_SHARE_HELD];
	/* what an end reported by another process needs (td_fdtab_share_end) */
	_Atomic uint64_t end[TD_SHARE_END_WORDS];
};
_Static_assert(sizeof(struct td_share) == 128, "a share slot is two cache lines");
#define TD_SW_COUNT(w) ((uint32_t)(w))
#define TD_SW_GEN(w) ((uint32_t)((w) >> 32) & 0xffffu)
#define TD_SW_INEXACT (1ull << 48)
/* some copy of a process other than the family's root is counted but not
 * told apart (no record, no free word): a dead root cannot be told from it */
#define TD_SW_UNTOLD (1ull << 49)
/* some holder's shutdown() sent our FIN; the peer's FIN had come first:
 * what another holder's close or exit reports needs (a fork-per-connection
 * server's child shuts the connection down, its parent's exit ends it) */
#define TD_SW_FIN_SENT (1ull << 50)
#define TD_SW_PASSIVE (1ull << 51)
#define TD_SHARE_GEN(share) ((share) >> 16)

/*
 * Holder records: one per process forked (and counted) by a process of
 * the library, in the same shared mapping, so that the process that
 * reaps it can take back the copies it still held when it died without
 * its exit hook (SIGKILL, a crash: td_fdtab_hrec_release()).  The
 * parent makes it in fork's prepare handler, before the child exists,
 * and names the pid in its fork hook; the child knows its record's key
 * from its parent's memory (td__own_rec) and keeps its own word in each
 * slot up to date as it dups and closes.  The shares a record lists are
 * those its process may hold a word in; a slot past the list is inexact.
 */
#define TD_HREC_MAX 256
#define TD_HREC_SHARES 12
struct td_hrec {
	/* bit 0: in use; the rest: the generation (a key names one use) */
	_Atomic uint32_t gen_used;
	_Atomic int32_t pid; /* 0 until the parent's fork hook names it */
	_Atomic uint32_t n;
	uint32_t pad;
	_Atomic uint32_t share[TD_HREC_SHARES];
};
_Static_assert(sizeof(struct td_hrec) == 64, "a holder record is a cache line");

/*
 * What a process begun by a fork has not learned yet, and the family has
 * (shim/hook/shutdown.c): how often a read of the state before a
 * shutdown() found the peer's FIN in (probes, high 16 bits; found, low
 * 16; both halved at 64), and how many threads with no answers of their
 * own have asked (fresh).  A child of a fork-per-connection server shuts
 * down one connection and exits, so its own answers never guide a next
 * one.  On a line of their own, written once or twice by each such
 * thread.
 */
struct td_family_hints {
	_Alignas(64) _Atomic uint32_t shut_probe;
	_Atomic uint32_t shut_fresh;
};

/*
 * The hints first, on the page of the first slots: a forked child's first
 * read of this shared mapping faults in the pages around it (the map's
 * page tables are not copied at fork), and a child of a fork-per-
 * connection server reads both its slots and the hints.  At the map's
 * end, past a megabyte of slots and records, the hints cost every such
 * child a page fault of their own.
 */
struct td_share_map {
	struct td_family_hints hints;
	struct td_share slot[TD_SHARE_MAX];
	struct td_hrec rec[TD_HREC_MAX];
};

/* A record's key: generation (15 bits) and index + 1; never 0. */
static inline uint32_t td__rec_key(uint32_t idx, uint32_t gen_used)
{
	return ((gen_used >> 1) & 0x7fffu) << 16 | (idx + 1);
}

/*
 * This process's record (0: none, it was not forked by a counting
 * process) and the one fork's prepare handler made for the coming child
 * (the fork hook names its pid; the child takes it as its own).  On the
 * page a fork-per-connection server's parent writes at every fork anyway.
 */
TD_CHILD_WRITTEN static uint32_t td__own_rec;
TD_CHILD_WRITTEN static uint32_t td__child_rec;
/*
 * In a process with a record: the pid of the family's root, the one
 * process whose copies no record tells apart (the first process of the
 * library that forked; its children and theirs all have records).  In a
 * process without one: whether it is such a child all the same (its fork
 * found no free record), whose copies must then mark their slots.
 */
TD_CHILD_WRITTEN static int32_t td__root_pid;
TD_CHILD_WRITTEN static bool td__untold_self;
/* Ever made a record for a child: only then may a reaped child have one. */
TD_CHILD_WRITTEN static _Atomic bool td__recs_made;
/* A fork found no free record (td_fdtab_hrec_sweep() wanted). */
TD_CHILD_WRITTEN static _Atomic bool td__recs_full;

TD_CHILD_READ static struct td_share_map *_Atomic td__shares;
/* where the next free slot and record are looked for: moved at every fork */
TD_CHILD_WRITTEN static _Atomic uint32_t td__share_hint;
TD_CHILD_WRITTEN static _Atomic uint32_t td__rec_hint;

static struct td_share_map *td__share_map(void)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire), *mine;
	int saved;

	if (td_likely(m != NULL))
		return m;
	saved = errno;
	mine = mmap(NULL, sizeof(*mine), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		    0);
	td_errno_set(saved);
	if (mine == MAP_FAILED)
		return NULL;
	if (!atomic_compare_exchange_strong(&td__shares, &m, mine)) {
		munmap(mine, sizeof(*mine));
		td_errno_set(saved);
		return m;
	}
	return mine;
}

/* The slot of a share value, or NULL (none, or no mapping). */
static struct td_share *td__share(uint32_t share)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);

	if (share == 0 || m == NULL || td_share_idx(share) >= TD_SHARE_MAX)
		return NULL;
	return &m->slot[td_share_idx(share)];
}

/* The record of a key, when it is still that key's; else NULL. */
static struct td_hrec *td__rec(uint32_t key)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);
	uint32_t idx = (key & 0xffffu) - 1u, g;
	struct td_hrec *r;

	if (key == 0 || m == NULL || idx >= TD_HREC_MAX)
		return NULL;
	r = &m->rec[idx];
	g = atomic_load(&r->gen_used);
	return (g & 1u) && td__rec_key(idx, g) == key ? r : NULL;
}

/*
 * The one way a claimed slot's word changes: the count by delta and the
 * bits in set, only while the word is still share's socket's (same
 * generation, count above zero).  The word before, or 0 when the value is
 * stale or names no slot (no live slot's word is 0).
 */
TD_CHILD_RUNS
static uint64_t td__share_change(uint32_t share, int delta, uint64_t set)
{
	struct td_share *sl = td__share(share);
	uint64_t w;

	if (sl == NULL)
		return 0;
	w = atomic_load(&sl->w);
	do {
		if (TD_SW_GEN(w) != TD_SHARE_GEN(share) || TD_SW_COUNT(w) == 0)
			return 0;
		if (delta == 0 && (w | set) == w)
			return w;
	} while (!atomic_compare_exchange_weak(&sl->w, &w, (w + (uint64_t)(int64_t)delta) | set));
	return w;
}

/* The record key lists share (its process may hold a word in its slot);
 * false when the list is full. */
static bool td__rec_list(uint32_t key, uint32_t share)
{
	struct td_hrec *r = td__rec(key);
	uint32_t n;

	if (r == NULL)
		return false;
	n = atomic_load(&r->n);
	for (uint32_t i = 0; i < n && i < TD_HREC_SHARES; i++)
		if (atomic_load(&r->share[i]) == share)
			return true;
	/* (only the record's own process, one thread at a time per fork or
	 * dup of the same socket, adds to it: no two writers of one index
	 * but from a program racing its own dups, which costs a word) */
	n = atomic_fetch_add(&r->n, 1);
	if (n >= TD_HREC_SHARES) {
		atomic_store(&r->n, TD_HREC_SHARES);
		return false;
	}
	atomic_store(&r->share[n], share);
	return true;
}

/*
 * The holder key's word in the slot changes by delta copies (a word made
 * for a first copy, freed at the last).  Where the key has no word and
 * none is free, or its record cannot list the slot, that process's copies
 * are counted but not told apart: the count stays exact, and only the
 * end of a socket it holds last when it dies without its exit hook goes
 * unreported, as for a process without a record.
 */
TD_CHILD_RUNS
static void td__held_change(struct td_share *sl, uint32_t share, uint32_t key, int delta)
{
	if (delta == 0)
		return;
	if (key == 0) {
		/* the root's copies are the untold ones; any other's say so */
		if (delta > 0 && td__untold_self)
			(void)td__share_change(share, 0, TD_SW_UNTOLD);
		return;
	}
	for (int i = 0; i < TD_SHARE_HELD; i++) {
		uint64_t w = atomic_load(&sl->held[i]);

		while ((uint32_t)(w >> 32) == key) {
			uint32_t n = (uint32_t)w;
			uint64_t to;

			if (delta < 0 && n < (uint32_t)-delta)
				break; /* not in this word (a duplicate): next */
			n = (uint32_t)((int64_t)n + delta);
			to = n == 0 ? 0 : ((uint64_t)key << 32 | n);
			if (atomic_compare_exchange_weak(&sl->held[i], &w, to))
				return;
		}
	}
	if (delta < 0)
		return; /* (never told apart) */
	if (td__rec_list(key, share))
		for (int i = 0; i < TD_SHARE_HELD; i++) {
			uint64_t w = 0;

			if (atomic_compare_exchange_strong(&sl->held[i], &w,
							   (uint64_t)key << 32 | (uint32_t)delta))
				return;
		}
	(void)td__share_change(share, 0, TD_SW_UNTOLD);
}

/* Write what an end reported elsewhere needs of fd's socket, e. */
static void td__share_end_write(struct td_share *sl, uint32_t share, int fd,
				const struct td_fdent *e)
{
	struct td_sock s;
	struct td_share_end end;
	uint64_t w[TD_SHARE_END_WORDS] = {0};

	td__copy(fd, &s, e);
	memset(&end, 0, sizeof(end));
	end.d = s.d;
	end.local = s.local;
	end.remote = s.remote;
	end.flags = atomic_load(&s.flags);
	end.linger0 = (end.flags & TD_SF_APP_LINGER) && td_sock_linger_on(&s) &&
		      td_sock_linger_secs(&s) == 0;
	memcpy(w, &end, sizeof(end));
	for (int i = 0; i < TD_SHARE_END_WORDS; i++)
		atomic_store_explicit(&sl->end[i], w[i], memory_order_relaxed);
	atomic_store_explicit(&sl->end_gen, TD_SHARE_GEN(share), memory_order_release);
}

/* The end data td__share_end_write() left in sl. */
static void td__share_end_read(const struct td_share *sl, struct td_share_end *end)
{
	uint64_t w[TD_SHARE_END_WORDS];

	for (int i = 0; i < TD_SHARE_END_WORDS; i++)
		w[i] = atomic_load_explicit(&sl->end[i], memory_order_relaxed);
	memcpy(end, w, sizeof(*end));
}

/* A free slot, counting n fds from fd (entry e); its share value, or 0. */
static uint32_t td__share_claim(int fd, const struct td_fdent *e, uint32_t n)
{
	struct td_share_map *m = td__share_map();
	uint32_t start;

	if (m == NULL)
		return 0;
	start = atomic_fetch_add_explicit(&td__share_hint, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < TD_SHARE_MAX; k++) {
		uint32_t i = (start + k) % TD_SHARE_MAX;
		struct td_share *sl = &m->slot[i];
		uint64_t w = atomic_load_explicit(&sl->w, memory_order_relaxed);
		uint32_t gen = (TD_SW_GEN(w) + 1) & 0xffffu, share;

		if (TD_SW_COUNT(w) != 0)
			continue;
		if (gen == 0)
			gen = 1;
		if (!atomic_compare_exchange_strong(&sl->w, &w, (uint64_t)gen << 32 | n))
			continue;
		share = gen << 16 | (i + 1);
		atomic_store(&sl->origin, fd + 1);
		/* (a word a dead process's record still had: never read
		 * again, its key is not this generation's holders') */
		for (int h = 0; h < TD_SHARE_HELD; h++)
			atomic_store(&sl->held[h], 0);
		td__share_end_write(sl, share, fd, e);
		return share;
	}
	return 0;
}

/*
 * Copies of holder key come (delta > 0) or go: the slot's count, and
 * key's word.  A copy comes to the count first and goes from it last, so
 * a process killed in between leaves the count too high (its end is then
 * not reported), never too low (an end reported while a copy is open).
 */
static uint64_t td__share_copies(uint32_t share, uint32_t key, int delta)
{
	struct td_share *sl = td__share(share);
	uint64_t w;

	if (sl == NULL)
		return 0;
	if (delta < 0) {
		w = atomic_load(&sl->w);
		if (TD_SW_GEN(w) == TD_SHARE_GEN(share) && TD_SW_COUNT(w) != 0)
			td__held_change(sl, share, key, delta);
		return td__share_change(share, delta, 0);
	}
	w = td__share_change(share, delta, 0);
	if (w != 0)
		td__held_change(sl, share, key, delta);
	return w;
}

/* The record for the coming child, made at the first copy it needs. */
static uint32_t td__child_key(void)
{
	struct td_share_map *m = td__share_map();
	uint32_t start;

	if (td__child_rec != 0 || m == NULL)
		return td__child_rec;
	start = atomic_fetch_add_explicit(&td__rec_hint, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < TD_HREC_MAX; k++) {
		uint32_t i = (start + k) % TD_HREC_MAX;
		struct td_hrec *r = &m->rec[i];
		uint32_t g = atomic_load(&r->gen_used);

		if ((g & 1u) || !atomic_compare_exchange_strong(&r->gen_used, &g, (g + 2u) | 1u))
			continue;
		atomic_store(&r->pid, 0);
		atomic_store(&r->n, 0);
		if (!atomic_load_explicit(&td__recs_made, memory_order_relaxed))
			atomic_store(&td__recs_made, true);
		td__child_rec = td__rec_key(i, (g + 2u) | 1u);
		return td__child_rec;
	}
	/* none free: the fork hook sweeps the dead children's (this child's
	 * copies go untold) */
	atomic_store(&td__recs_full, true);
	return 0;
}

/* Count one more copy of e's socket, for holder key (0: untold); a slot
 * made when it has none counts e's own fd too, for this process. */
TD_CHILD_RUNS
static bool td__share_count(struct td_fdent *e, int fd, uint32_t key)
{
	uint32_t s = atomic_load(&e->share);
	struct td_share *sl;

	if (s != 0)
		return td__share_copies(s, key, 1) != 0;
	s = td__share_claim(fd, e, 2);
	if (s == 0)
		return false;
	sl = td__share(s);
	td__held_change(sl, s, td__own_rec, 1);
	td__held_change(sl, s, key, 1);
	atomic_store(&e->share, s);
	return true;
}

bool td_fdtab_share_fork(struct td_fdent *e, int fd)
{
	uint32_t key = td__child_key();
	uint32_t s = atomic_load(&e->share);
	struct td_share *sl;

	if (!td__share_count(e, fd, key))
		return false;
	/* no record for the child: its copy is one nobody tells apart */
	if (key == 0)
		(void)td__share_change(atomic_load(&e->share), 0, TD_SW_UNTOLD);
	/* a slot made before: what it says of the socket as it is now (one
	 * dup()ed before its connect, say), once per fork, into shared
	 * memory; a new slot has it already */
	if (s != 0 && (sl = td__share(s)) != NULL)
		td__share_end_write(sl, s, fd, e);
	return true;
}

TD_CHILD_RUNS
uint32_t td_fdtab_share_join(struct td_fdent *src, int src_fd)
{
	/* the new fd is one more copy, this process's own */
	if (td__share_count(src, src_fd, td__own_rec))
		return atomic_load(&src->share);
	atomic_fetch_or(&src->flags, TD_SF_STICKY_SHARED);
	return 0;
}

bool td_fdtab_share_unfork(uint32_t share)
{
	return td__share_copies(share, td__child_rec, -1) != 0;
}

bool td_fdtab_share_rejoin(uint32_t share)
{
	return td__share_copies(share, td__own_rec, 1) != 0;
}

TD_CHILD_RUNS
int td_fdtab_share_drop(uint32_t share)
{
	uint64_t w;

	if (share == 0)
		return 0;
	w = td__share_copies(share, td__own_rec, -1);
	return w != 0 ? (int)(TD_SW_COUNT(w) - 1) : -1;
}

TD_CHILD_RUNS
bool td_fdtab_share_leave(uint32_t share)
{
	/* (a stale value: the count is not this socket's; say shared) */
	return td_fdtab_share_drop(share) != 0;
}

/* Whether the slot's word w, of share's generation, counts another copy
 * besides the caller's. */
TD_CHILD_RUNS
static bool td__others_counted(uint64_t w, uint32_t share)
{
	return TD_SW_GEN(w) == TD_SHARE_GEN(share) && TD_SW_COUNT(w) >= 2;
}

TD_CHILD_RUNS
bool td_fdtab_share_held(uint32_t share)
{
	struct td_share *sl = td__share(share);

	return sl != NULL && td__others_counted(atomic_load(&sl->w), share);
}

/*
 * Drop one copy only while another stays counted (the count above one,
 * so this close cannot be the last whatever the other holders do
 * meanwhile): true.  False, and nothing changed, when this copy may be
 * the last.  As td__share_copies(): the holder's word first, then the
 * count, so a process killed in between leaves the count too high, never
 * too low; a count found at one by then takes the word back.
 */
TD_CHILD_RUNS
bool td_fdtab_share_leave_held(uint32_t share)
{
	struct td_share *sl = td__share(share);
	uint64_t w;

	if (sl == NULL || !td__others_counted(w = atomic_load(&sl->w), share))
		return false;
	td__held_change(sl, share, td__own_rec, -1);
	do {
		if (!td__others_counted(w, share)) {
			td__held_change(sl, share, td__own_rec, 1);
			return false;
		}
	} while (!atomic_compare_exchange_weak(&sl->w, &w, w - 1));
	return true;
}

TD_CHILD_RUNS
bool td_fdtab_share_root_gone(uint32_t share)
{
	struct td_share *sl = td__share(share);
	uint64_t w;
	int saved;
	bool gone;

	if (sl == NULL || td__own_rec == 0 || td__root_pid <= 0)
		return false;
	w = atomic_load(&sl->w);
	if (TD_SW_GEN(w) != TD_SHARE_GEN(share) || TD_SW_COUNT(w) == 0 ||
	    (w & (TD_SW_INEXACT | TD_SW_UNTOLD)))
		return false;
	for (int h = 0; h < TD_SHARE_HELD; h++)
		if (atomic_load(&sl->held[h]) != 0)
			return false;
	saved = errno;
	gone = td_real_sys2(SYS_kill, td__root_pid, 0) < 0 && errno == ESRCH;
	td_errno_set(saved);
	/* (a holder joined meanwhile: not the end) */
	return gone && atomic_compare_exchange_strong(&sl->w, &w, w & ~0xffffffffull);
}

/* The word of share's slot into *w, where the slot is still share's
 * socket's (same generation): false for a stale value or no slot. */
TD_CHILD_RUNS
static inline bool td__share_word(uint32_t share, uint64_t *w)
{
	struct td_share *sl = td__share(share);

	if (sl == NULL)
		return false;
	*w = atomic_load(&sl->w);
	return TD_SW_GEN(*w) == TD_SHARE_GEN(share);
}

TD_CHILD_RUNS
bool td_fdtab_share_exact(uint32_t share)
{
	uint64_t w;

	return td__share_word(share, &w) && TD_SW_COUNT(w) != 0 && !(w & TD_SW_INEXACT);
}

bool td_fdtab_share_none_left(uint32_t share)
{
	uint64_t w;

	return td__share_word(share, &w) && TD_SW_COUNT(w) == 0 &&
	       !(w & (TD_SW_INEXACT | TD_SW_UNTOLD));
}

void td_fdtab_share_inexact(uint32_t share)
{
	(void)td__share_change(share, 0, TD_SW_INEXACT);
}

TD_CHILD_RUNS
void td_fdtab_share_note_fin(uint32_t share, bool passive)
{
	if (share != 0)
		(void)td__share_change(share, 0, TD_SW_FIN_SENT | (passive ? TD_SW_PASSIVE : 0));
}

/*
 * A thread with no answers of its own reads before the call where more
 * than a third of the family's reads before found the peer first, and
 * one in TD_FAMILY_PROBE of them does anyway, to find out.  (No mapping,
 * no fork counted yet: nothing learned, nothing to keep.)
 */
#define TD_FAMILY_PROBE 8u

TD_CHILD_RUNS
bool td_fdtab_family_peer_first(void)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);
	uint32_t w;

	if (m == NULL)
		return false;
	w = atomic_load_explicit(&m->hints.shut_probe, memory_order_relaxed);
	return (w & 0xffffu) * 3u > w >> 16 ||
	       atomic_fetch_add_explicit(&m->hints.shut_fresh, 1, memory_order_relaxed) %
			       TD_FAMILY_PROBE ==
		       0;
}

TD_CHILD_RUNS
void td_fdtab_family_note_probe(bool found)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);
	uint32_t w, probes, peer;

	if (m == NULL)
		return;
	w = atomic_load_explicit(&m->hints.shut_probe, memory_order_relaxed);
	do {
		probes = (w >> 16) + 1;
		peer = (w & 0xffffu) + found;
		if (probes >= 64) {
			probes /= 2;
			peer /= 2;
		}
	} while (!atomic_compare_exchange_weak_explicit(&m->hints.shut_probe, &w, probes << 16 | peer,
							memory_order_relaxed, memory_order_relaxed));
}

TD_CHILD_RUNS
unsigned td_fdtab_share_fin(uint32_t share)
{
	uint64_t w;

	if (!td__share_word(share, &w))
		return 0;
	return ((w & TD_SW_FIN_SENT) ? TD_SHARE_FIN_SENT : 0) |
	       ((w & TD_SW_PASSIVE) ? TD_SHARE_FIN_PASSIVE : 0);
}

TD_CHILD_RUNS
int td_fdtab_share_origin(uint32_t share, int fd)
{
	struct td_share *sl = td__share(share);
	int o;

	if (sl == NULL)
		return fd;
	o = atomic_load(&sl->origin);
	return o > 0 ? o - 1 : fd;
}

/* ---- holder records ---------------------------------------------------- */

TD_CHILD_RUNS
bool td_fdtab_hrec_any(void)
{
	return atomic_load_explicit(&td__recs_made, memory_order_relaxed);
}

void td_fdtab_hrec_prepare(void)
{
	/* (a record made for daemon()'s fork, which no fork hook named, is
	 * left to that child: freed only with the mapping) */
	td__child_rec = 0;
}

TD_CHILD_RUNS
void td_fdtab_hrec_child(pid_t parent)
{
	/* the root: the parent, when it had no record, else the parent's root */
	if (td__own_rec == 0)
		td__root_pid = parent;
	td__untold_self = td__child_rec == 0;
	td__own_rec = td__child_rec;
	td__child_rec = 0;
	/* the parent's children are not this one's to reap or sweep */
	if (atomic_load_explicit(&td__recs_made, memory_order_relaxed))
		atomic_store(&td__recs_made, false);
	if (atomic_load_explicit(&td__recs_full, memory_order_relaxed))
		atomic_store(&td__recs_full, false);
}

/* Whether record key still has a copy counted in one of its slots. */
static bool td__rec_holds(uint32_t key)
{
	struct td_hrec *r = td__rec(key);
	uint32_t n;

	if (r == NULL)
		return false;
	n = atomic_load(&r->n);
	for (uint32_t i = 0; i < n && i < TD_HREC_SHARES; i++) {
		struct td_share *sl = td__share(atomic_load(&r->share[i]));

		for (int h = 0; sl != NULL && h < TD_SHARE_HELD; h++)
			if ((uint32_t)(atomic_load(&sl->held[h]) >> 32) == key)
				return true;
	}
	return false;
}

/*
 * Take every copy record key still counts off its slots and free it.
 * With ended, report each slot this takes to zero.
 */
static void td__rec_release(uint32_t key, pid_t pid,
			    void (*ended)(const struct td_share_end *, bool, pid_t, void *), void *arg)
{
	struct td_hrec *r = td__rec(key);
	uint32_t n, g;

	if (r == NULL)
		return;
	n = atomic_load(&r->n);
	for (uint32_t i = 0; i < n && i < TD_HREC_SHARES; i++) {
		uint32_t share = atomic_load(&r->share[i]);
		struct td_share *sl = td__share(share);
		struct td_share_end end;
		uint32_t copies = 0;
		uint64_t w, to;

		if (sl == NULL)
			continue;
		for (int h = 0; h < TD_SHARE_HELD; h++) {
			uint64_t hw = atomic_load(&sl->held[h]);

			while ((uint32_t)(hw >> 32) == key &&
			       !atomic_compare_exchange_weak(&sl->held[h], &hw, 0))
				;
			if ((uint32_t)(hw >> 32) == key)
				copies += (uint32_t)hw;
		}
		if (copies == 0)
			continue;
		w = atomic_load(&sl->w);
		do {
			if (TD_SW_GEN(w) != TD_SHARE_GEN(share) || TD_SW_COUNT(w) == 0)
				break;
			to = TD_SW_COUNT(w) > copies ? w - copies : w & ~0xffffffffull;
		} while (!atomic_compare_exchange_weak(&sl->w, &w, to));
		if (TD_SW_GEN(w) != TD_SHARE_GEN(share) || TD_SW_COUNT(w) == 0 ||
		    TD_SW_COUNT(w) > copies || ended == NULL ||
		    atomic_load_explicit(&sl->end_gen, memory_order_acquire) != TD_SHARE_GEN(share))
			continue;
		td__share_end_read(sl, &end);
		ended(&end, !(w & TD_SW_INEXACT), pid, arg);
	}
	g = atomic_load(&r->gen_used);
	if (td__rec_key((uint32_t)(r - atomic_load(&td__shares)->rec), g) == key)
		atomic_compare_exchange_strong(&r->gen_used, &g, g & ~1u);
}

void td_fdtab_hrec_forked(pid_t pid)
{
	uint32_t key = td__child_rec;
	struct td_hrec *r;

	td__child_rec = 0;
	if (key == 0 || (r = td__rec(key)) == NULL)
		return;
	if (pid > 0)
		atomic_store(&r->pid, pid);
	else
		td__rec_release(key, pid, NULL, NULL);
}

bool td_fdtab_hrec_full(void)
{
	return atomic_load_explicit(&td__recs_full, memory_order_relaxed) &&
	       atomic_exchange(&td__recs_full, false);
}

void td_fdtab_hrec_sweep(void (*ended)(const struct td_share_end *, bool, pid_t, void *), void *arg)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);

	if (m == NULL)
		return;
	for (uint32_t i = 0; i < TD_HREC_MAX; i++) {
		uint32_t g = atomic_load_explicit(&m->rec[i].gen_used, memory_order_relaxed);
		pid_t pid = atomic_load_explicit(&m->rec[i].pid, memory_order_relaxed);

		if (!(g & 1u) || pid <= 0)
			continue;
		/* nothing left to take back (it let go of every copy, most
		 * often by its exit): free, with no question asked; else
		 * only if it is gone (EPERM: alive, under another uid) */
		if (!td__rec_holds(td__rec_key(i, g)) ||
		    (td_real_sys2(SYS_kill, pid, 0) < 0 && errno == ESRCH))
			td__rec_release(td__rec_key(i, g), pid, ended, arg);
	}
}

void td_fdtab_hrec_reaped(pid_t pid, void (*ended)(const struct td_share_end *, bool, pid_t, void *),
			  void *arg)
{
	struct td_share_map *m = atomic_load_explicit(&td__shares, memory_order_acquire);

	if (m == NULL || pid <= 0)
		return;
	for (uint32_t i = 0; i < TD_HREC_MAX; i++) {
		uint32_t g = atomic_load_explicit(&m->rec[i].gen_used, memory_order_relaxed);

		if ((g & 1u) && atomic_load_explicit(&m->rec[i].pid, memory_order_relaxed) == pid)
			td__rec_release(td__rec_key(i, g), pid, ended, arg);
	}
}

void td_fdtab_forget(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t;

	if (e == NULL)
		return;
	t = atomic_load_explicit(&e->tag, memory_order_relaxed);
	if (td_tag_live(t))
		td_fdent_forget(e);
	else
		while (td_tag_born(t))
			t = td_fdent_unborn(e, t);
}

/*
 * Why a mark and not a count of the bytes read: a read that returns 0 on
 * a TCP socket has found the receive queue empty up to the peer's FIN
 * (or the socket shut for reading, or reset), and after a FIN no byte can
 * come in.  Only a UDP socket (whose entry says so) returns 0 for an empty
 * datagram.  The mark is stored once: a socket read to its end is often
 * read to its end again, and a load costs less than a store to the
 * entry's cache line each time.
 */
TD_CHILD_RUNS
static void td__mark(int fd, uint32_t flag)
{
	struct td_fdent *e = td_fdtab_live_or_born(fd);
	uint32_t flags;

	if (e == NULL)
		return;
	flags = atomic_load_explicit(&e->flags, memory_order_relaxed);
	if (!(flags & (flag | TD_SF_NOT_TCP | TD_SF_OWN)))
		atomic_fetch_or_explicit(&e->flags, flag, memory_order_relaxed);
}

TD_CHILD_RUNS
void td_fdtab_mark_eof(int fd)
{
	td__mark(fd, TD_SF_EOF_READ);
}

TD_CHILD_RUNS
void td_fdtab_mark_shut_rd(int fd)
{
	td__mark(fd, TD_SF_SHUT_RD);
}

void td_fdtab_mark_timed_out(int fd)
{
	td__mark(fd, TD_SF_TIMED_OUT);
}
