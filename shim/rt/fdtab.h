/*
 * teardown runtime: the fd table (fdtab.c): one entry per open fd that is
 * a TCP socket the library tracks (or, until its first use, one that
 * socket() made: a born entry), and the dup share slots.
 */
#ifndef TD_RT_FDTAB_H
#define TD_RT_FDTAB_H

#include <string.h>

#include "base.h"

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
	/* the library reset it, maybe from another thread: a read that fails
	 * as no real reset makes it (EPIPE, ENOTCONN) shuts it and reads
	 * again (td_faults_read_gap(), shim/hook/recv.c) */
	TD_SF_RESETTING = 1u << 20,
	/* a read of the program's (one byte or more asked) returned 0: the
	 * peer's FIN was read, or its reading side was shut (below) */
	TD_SF_EOF_READ = 1u << 21,
	/* the program shut its reading side (SHUT_RD, SHUT_RDWR): its reads
	 * return 0 from then on, while input may still come in */
	TD_SF_SHUT_RD = 1u << 22,
	/* the peer's FIN came in: a state after our shutdown proved it
	 * (TIME_WAIT, LAST_ACK, CLOSING), so TCP_INFO's bytes_received
	 * counts it even once the socket is CLOSE (shim/rt/info.c) */
	TD_SF_FIN_IN = 1u << 23,
	/* came in an SCM_RIGHTS message from this process's parent (the
	 * sender, by SO_PEERCRED), which may hold it at any number: its
	 * holders are asked of the parent's whole fd table.  (Bit 24: the
	 * top byte is the own-fd kind only with TD_SF_OWN.) */
	TD_SF_FROM_PARENT = 1u << 24,
	/* a read or write of the program's failed with ETIMEDOUT: the
	 * connection timed out (its close then says why "timeout", not
	 * "reset"; the kernel's SO_ERROR, which that call consumed, no
	 * longer tells) */
	TD_SF_TIMED_OUT = 1u << 25,
};
/* With TD_SF_OWN: which of the library's own fds it is (enum td_ownfd_kind,
 * ownfd.h), in the top byte of flags */
#define TD_SF_OWN_KIND_SHIFT 24

/*
 * The plain part of an entry: written only while it is unpublished.  The
 * same 32 bytes in the table and in a copy.
 */
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
};

/*
 * What the library knows about one open fd that is a TCP socket, as a
 * copy (td_fdtab_read(), td_fdtab_claim()) or as the fields to publish
 * (td_fdtab_publish(), td_fdtab_update()).  The table itself keeps it in
 * 64 bytes (struct td_fdent, below) and, where needed, an extension.
 *
 * Fields, besides the plain data d and the two addresses:
 *   tag      the entry's publication word when it was copied (see td_fdent);
 *   flags    bits set by any hook or the worker (enum td_sock_flag);
 *   share    the dup share slot + 1 (dup() sets it on the source entry);
 *   linger   the program's own SO_LINGER (setsockopt), onoff and seconds;
 *   cw_seen  when the worker first saw the socket in CLOSE_WAIT;
 *   written  bytes written (rst_after_bytes, fin_after_bytes);
 *   read_in  bytes read (rst_after_bytes_in);
 *   reset_*  what a library reset saw: byte counts kept from before an
 *            injected reset, which zeroes them, and what that reset threw
 *            away (never sent; sent, unacknowledged).
 * A copy is the caller's own; its fields keep atomic types so that it is
 * read and changed the way a live entry's flags are.
 */
struct td_sock {
	_Atomic uint32_t tag;
	_Atomic uint32_t flags;
	_Atomic uint32_t share;
	_Atomic uint64_t linger;
	_Atomic int64_t cw_seen_mono_us;
	_Atomic uint64_t written;
	_Atomic uint64_t read_in;
	_Atomic int64_t reset_bytes_in, reset_bytes_out;
	_Atomic int64_t reset_lost, reset_in_flight;
	struct td_sock_data d;
	struct td_addr local, remote;
	uint16_t read16; /* see td_fdtab_read_end() */
};

/*
 * One entry of the table: 64 bytes, one cache line, for every open fd the
 * library tracks.  What most sockets never need lives in the fd's
 * extension (struct td_fdext), whose pages are mapped only when an fd of
 * theirs needs one: the fault and CLOSE_WAIT counters, and addresses that
 * are not IPv4.
 *
 * tag is the publication word: bit 0 says the entry is live, bit 1 that
 * it is born (TD_TAG_BORN: a TCP socket socket() made, its entry not
 * published yet; never with bit 0, see td_fdtab_bear_fast()), the bits from 2
 * up count the generations of this slot (each publish or update makes a
 * new one, so a copy's tag names the version it came from; no counter is
 * shared between fds, so threads opening sockets write nothing in common).
 * The plain data (d, a4) is written only by td_fdtab_publish() and
 * td_fdtab_update(), while the entry is not live; a reader
 * (td_fdtab_read(), td_fdtab_claim()) checks the tag around its copy, so
 * it never uses a half-written entry.  The plain words are read and
 * written with relaxed atomic word accesses, so a reader racing a writer
 * (the tag check then throws its copy away) is no data race in C11's
 * sense either, and ThreadSanitizer can check everything else.
 *
 * flags, share and linger change while the entry is live, each on its own.
 * linger packs onoff (bit 31) and the seconds (31 bits, signed, clamped),
 * so they are read together.  While the entry is born, linger holds its
 * birth word instead (family and fork epoch, td_born_word()): no reader
 * looks at linger but in a live entry, and the publish overwrites it.
 */
struct td_fdaddr4 {
	uint32_t local_ip, remote_ip;	/* network order */
	uint16_t local_port, remote_port;
	uint8_t local_family, remote_family; /* 0, AF_INET, or TD_FDADDR_EXT */
	/* bytes the program read, modulo 2^16: the one field of the plain
	 * words that changes while live (td_fdtab_read_end()) */
	uint16_t read16;
};
/* a4's families when both addresses are in the extension */
#define TD_FDADDR_EXT 0xff

struct td_fdent {
	_Atomic uint32_t tag;
	_Atomic uint32_t flags;
	_Atomic uint32_t share;
	_Atomic uint32_t linger;
	union {
		struct {
			struct td_sock_data d;
			struct td_fdaddr4 a4;
		};
		uint64_t dw[6];
	};
};
_Static_assert(sizeof(struct td_fdent) == 64, "an fd entry is one cache line");
_Static_assert(sizeof(struct td_sock_data) == 32 && offsetof(struct td_fdaddr4, read16) == 14,
	       "read16 is the top 16 bits of dw[5] (little-endian; td_fdtab_read_end())");

/*
 * The extension of an fd's entry.  The counters are zero whenever an entry
 * is published (its page did not exist yet, or publish zeroes them); each
 * changes on its own while the entry is live.  The addresses are plain
 * words, written with the entry's plain data.
 */
struct td_fdext {
	_Atomic int64_t cw_seen_mono_us;
	_Atomic uint64_t written;
	_Atomic uint64_t read_in;
	_Atomic int64_t reset_bytes_in, reset_bytes_out;
	_Atomic int64_t reset_lost, reset_in_flight;
	uint64_t aw[(2 * sizeof(struct td_addr) + 7) / 8];
};

#define TD_TAG_LIVE 1u
#define TD_TAG_BORN 2u
/* The generation count starts at this bit of the tag. */
#define TD_TAG_GEN_SHIFT 2

static inline bool td_tag_live(uint32_t tag)
{
	return (tag & TD_TAG_LIVE) != 0;
}
/* Born: socket() made it, and its entry is not published yet. */
static inline bool td_tag_born(uint32_t tag)
{
	return (tag & TD_TAG_BORN) != 0;
}

/* The tag of the generation after old, live (not born). */
static inline uint32_t td_tag_next(uint32_t old)
{
	return (((old >> TD_TAG_GEN_SHIFT) + 1) << TD_TAG_GEN_SHIFT) | TD_TAG_LIVE;
}

#define TD_LINGER_ON (1u << 31)
/* The program's SO_LINGER as recorded in a copy. */
static inline bool td_sock_linger_on(const struct td_sock *s)
{
	return (atomic_load(&s->linger) >> 32) != 0;
}
static inline int td_sock_linger_secs(const struct td_sock *s)
{
	return (int)(uint32_t)atomic_load(&s->linger);
}
/* ... and in a live entry */
void td_fdent_linger_set(struct td_fdent *e, int onoff, int secs) TD_HIDDEN;

#define TD_FDTAB_MAX (1 << 20)
#define TD_FDTAB_PAGE_SHIFT 10
#define TD_FDTAB_PAGE (1 << TD_FDTAB_PAGE_SHIFT)
#define TD_FDTAB_NPAGES (TD_FDTAB_MAX / TD_FDTAB_PAGE)

/*
 * The table's pages, mapped on first use (fdtab.c), and the extensions':
 * side by side, so that the low fds' extension pointer lies on the page
 * of the variables before the directory (td_child_ro).  fds 0 to 1023
 * use the static td_fdtab_page0, which entry 0 names too.
 */
struct td_fdtab_dir {
	_Atomic(struct td_fdent *) ent;
	_Atomic(struct td_fdext *) ext;
};
extern struct td_fdtab_dir td_fdtab_dir[TD_FDTAB_NPAGES] TD_HIDDEN;
/* fds 0 to 1023, every program's: static, beside the variables a forked
 * child writes (TD_CHILD_FD), and td_fdtab_dir[0].ent */
extern struct td_fdent td_fdtab_page0[TD_FDTAB_PAGE] TD_HIDDEN;

/*
 * Entry for fd, or NULL (no page, out of range). Never allocates.  Inline,
 * with td_fdtab_live(): every close() asks it first, and for an fd the
 * library does not track the answer must cost next to nothing.
 */
static inline struct td_fdent *td_fdtab_peek(int fd)
{
	struct td_fdent *page;

	if (td_likely((unsigned)fd < TD_FDTAB_PAGE))
		return &td_fdtab_page0[fd];
	if (td_unlikely((unsigned)fd >= TD_FDTAB_MAX))
		return NULL;
	page = atomic_load_explicit(&td_fdtab_dir[(unsigned)fd >> TD_FDTAB_PAGE_SHIFT].ent,
				    memory_order_acquire);
	return page ? &page[fd & (TD_FDTAB_PAGE - 1)] : NULL;
}
/* fd's extension, or NULL when its page was never needed: every counter
 * there is then zero.  Never allocates. */
static inline struct td_fdext *td_fdtab_ext_peek(int fd)
{
	struct td_fdext *page;

	if (td_unlikely((unsigned)fd >= TD_FDTAB_MAX))
		return NULL;
	page = atomic_load_explicit(&td_fdtab_dir[fd >> TD_FDTAB_PAGE_SHIFT].ext,
				    memory_order_acquire);
	return page ? &page[fd & (TD_FDTAB_PAGE - 1)] : NULL;
}
/* fd's extension, mapping its page; NULL when out of memory or range. */
struct td_fdext *td_fdtab_ext(int fd) TD_HIDDEN;
/* Entry for fd, allocating its page; NULL when out of memory or range. */
struct td_fdent *td_fdtab_slot(int fd) TD_HIDDEN;
/*
 * Publish a fresh entry for fd from init (every field but the tag).
 * Returns the entry, or NULL (no memory; or a live entry that is a
 * vfork()ed parent's).
 */
struct td_fdent *td_fdtab_publish(int fd, const struct td_sock *init) TD_HIDDEN;
/* Highest fd that ever had an entry (a bound for scans), and the highest
 * of the program's (the library's own fds sit at 1024 and up: a scan for
 * the program's sockets stops far below them); fdtab.c's. */
extern _Atomic int td_fdtab_high_ TD_HIDDEN;
extern _Atomic int td_fdtab_prog_high_ TD_HIDDEN;
struct td_fdent *td_fdtab_publish_bare_slow(int fd, uint8_t family, uint32_t epoch,
					    uint32_t flags) TD_HIDDEN;
/* The words of an entry with no rule, family and epoch given, the rest 0. */
static inline void td_fdent_bare_words(uint64_t w[6], uint8_t family, uint32_t epoch)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* computed, not built in memory: rule and bind_rule -1, then role,
	 * decided, family, gen and epoch in the second word */
	_Static_assert(offsetof(struct td_sock_data, rule) == 0 &&
			       offsetof(struct td_sock_data, bind_rule) == 4 &&
			       offsetof(struct td_sock_data, family) == 10 &&
			       offsetof(struct td_sock_data, epoch) == 12,
		       "the layout the words below assume");
	w[0] = UINT64_MAX;
	w[1] = ((uint64_t)family << 16) | ((uint64_t)epoch << 32);
	w[2] = w[3] = w[4] = w[5] = 0;
#else
	union {
		struct {
			struct td_sock_data d;
			struct td_fdaddr4 a4;
		};
		uint64_t dw[6];
	} tmp = {.dw = {0}};

	tmp.d.rule = -1;
	tmp.d.bind_rule = -1;
	tmp.d.family = family;
	tmp.d.epoch = epoch;
	memcpy(w, tmp.dw, sizeof(tmp.dw));
#endif
}
/* e's plain words from w (relaxed atomic stores; see td_fdent). */
static inline void td_fdent_set_words(struct td_fdent *e, const uint64_t w[6])
{
	__atomic_store_n(&e->dw[0], w[0], __ATOMIC_RELAXED);
	__atomic_store_n(&e->dw[1], w[1], __ATOMIC_RELAXED);
	__atomic_store_n(&e->dw[2], w[2], __ATOMIC_RELAXED);
	__atomic_store_n(&e->dw[3], w[3], __ATOMIC_RELAXED);
	__atomic_store_n(&e->dw[4], w[4], __ATOMIC_RELAXED);
	__atomic_store_n(&e->dw[5], w[5], __ATOMIC_RELAXED);
}
/*
 * The last step of every publish: the fields that change while live, then
 * the tag of the slot's next generation (release: a reader that sees it
 * sees all the rest).
 */
static inline void td_fdent_go_live(struct td_fdent *e, uint32_t old_tag, uint32_t share,
				    uint32_t linger, uint32_t flags)
{
	atomic_store_explicit(&e->share, share, memory_order_relaxed);
	atomic_store_explicit(&e->linger, linger, memory_order_relaxed);
	atomic_store_explicit(&e->flags, flags, memory_order_relaxed);
	atomic_store_explicit(&e->tag, td_tag_next(old_tag), memory_order_release);
}
/*
 * A bare entry: family and fork epoch, flags, no rule, every other field
 * zero (an inet socket but TCP from socket(), an adopted socket, one of
 * the library's own fds, and a born TCP socket once its first use needs
 * the entry).  Inline, and six plain stores where nothing is in the way
 * (a page, a stale entry or a born one, an extension whose counters need
 * zeroing, a new highest fd: the slow path).
 */
TD_CHILD_RUNS
static inline struct td_fdent *td_fdtab_publish_bare(int fd, uint8_t family, uint32_t epoch,
						     uint32_t flags)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint64_t w[6];
	uint32_t old;

	if (td_unlikely(e == NULL ||
			fd > atomic_load_explicit(&td_fdtab_prog_high_, memory_order_relaxed) ||
			td_fdtab_ext_peek(fd) != NULL))
		return td_fdtab_publish_bare_slow(fd, family, epoch, flags);
	/* acquire: pairs with the release of the close that freed the number */
	old = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (td_unlikely(old & (TD_TAG_LIVE | TD_TAG_BORN)))
		return td_fdtab_publish_bare_slow(fd, family, epoch, flags);
	td_fdent_bare_words(w, family, epoch);
	td_fdent_set_words(e, w);
	td_fdent_go_live(e, old, 0, 0, flags);
	return e;
}

/*
 * Born entries.  Most TCP sockets are closed as they were made, never
 * connected, bound or accepted on (a resolver's probe, a pool's spare, a
 * program that only checks it can make one): socket() records only that
 * the socket exists, its family and the fork epoch it was made in, in
 * its entry's linger word, and sets TD_TAG_BORN in the tag
 * (td_fdtab_bear_fast(): two stores, no per-fd memory beside the entry);
 * close() clears the bit; the bare entry the born one stands for is
 * published at the socket's first use that needs one
 * (td_fdtab_live_or_born()).  A born entry is not live: td_fdtab_live()
 * and td_fdtab_read() do not see it.  Bit 1 and bit 0 are never both
 * set: every publish clears the born bit as it goes live, and a birth
 * on a number with a live entry publishes the entry instead.
 *
 * The birth word: the family (AF_INET or AF_INET6, both below 16 and not
 * 0) in the low 4 bits, the fork epoch above them.  An epoch too big for
 * its 28 bits is not recorded: a socket made then gets its bare entry at
 * once (td_fdtab_bear_slow()), so no entry is ever given an epoch other
 * than its socket's.
 */
#define TD_BORN_EPOCH_SHIFT 4
#define TD_BORN_EPOCH_MAX (UINT32_MAX >> TD_BORN_EPOCH_SHIFT)
/* Where fast births stop (td_holders_epoch_next()): below the word's top
 * by more forks than a process can have threads making at once. */
#define TD_BORN_EPOCH_FAST_MAX (TD_BORN_EPOCH_MAX - (1u << 20))
_Static_assert(AF_INET > 0 && AF_INET < 16 && AF_INET6 > 0 && AF_INET6 < 16,
	       "a birth word's family fits its 4 bits");
static inline uint32_t td_born_word(uint8_t family, uint32_t epoch)
{
	return epoch << TD_BORN_EPOCH_SHIFT | family;
}
static inline uint8_t td_born_family(uint32_t w)
{
	return (uint8_t)(w & ((1u << TD_BORN_EPOCH_SHIFT) - 1));
}
static inline uint32_t td_born_epoch(uint32_t w)
{
	return w >> TD_BORN_EPOCH_SHIFT;
}
int td_fdtab_bear_slow(int fd, uint8_t family, uint32_t epoch) TD_HIDDEN;
/*
 * The fast births' gate: socket()s of fds below it take the fast path.
 * It follows the program's watermark up to the static page's end
 * (min(td_fdtab_prog_high_ + 1, TD_FDTAB_PAGE)), so one unsigned test
 * stands for "a socket was made, not a new highest fd, no page to look
 * up"; and it is 0 for good once the fork epoch nears the birth word's
 * top (td_fdtab_born_off()).  It opens only at a birth or a publish,
 * made while the library acts: shut, it sends socket() to the slow path,
 * which asks td_init_active().  Open, the fast path births in any thread
 * (two stores, no system call, safe in a sandbox or a signal handler;
 * a later hook in a thread the library does not act in passes the
 * entry by, and close() clears it).
 */
extern _Atomic int td_fdtab_born_below TD_HIDDEN;
void td_fdtab_born_off(void) TD_HIDDEN;
/*
 * The birth of a TCP socket's entry, fd >= 0 (socket()'s, through
 * td_decide_born()): two stores (the birth word, then the tag), where
 * nothing is in the way, and true; else false, and the slow path takes
 * it and keeps the rules td_fdtab_publish() keeps: fds past the gate (a
 * new highest fd, an fd past the static page, an epoch near the word's
 * top), a live or born entry on the number (stale, or a vfork()ed
 * parent's).  A failed socket()'s -1 is past any gate too.  errno
 * untouched.  The bare entry it stands for is what
 * td_fdtab_publish_bare(fd, family, epoch, TD_SF_BARE) would publish.
 */
static inline bool td_fdtab_bear_fast(int fd, uint8_t family, uint32_t epoch)
{
	struct td_fdent *e;
	uint32_t old;

	/* unsigned: -1 is past any gate (<= TD_FDTAB_PAGE) */
	if (td_unlikely((unsigned)fd >=
			(unsigned)atomic_load_explicit(&td_fdtab_born_below, memory_order_relaxed)))
		return false;
	if ((unsigned)fd >= TD_FDTAB_PAGE) /* what the gate says, told to the compiler */
		__builtin_unreachable();
	e = &td_fdtab_page0[(unsigned)fd];
	/* acquire: pairs with the release of the close that freed the number
	 * (its thread may have written linger last) */
	old = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (td_unlikely(old & (TD_TAG_LIVE | TD_TAG_BORN)))
		return false;
	atomic_store_explicit(&e->linger, td_born_word(family, epoch), memory_order_relaxed);
	/* release: a first use that sees the bit sees the word */
	atomic_store_explicit(&e->tag, old | TD_TAG_BORN, memory_order_release);
	return true;
}
/* fd's birth word (family and epoch): 0 when its entry is not born. */
static inline uint32_t td_fdtab_born(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);

	return e != NULL && td_tag_born(atomic_load_explicit(&e->tag, memory_order_acquire))
		       ? atomic_load_explicit(&e->linger, memory_order_relaxed)
		       : 0;
}
/*
 * Clear the born bit of e's tag t (seen born), by compare-and-swap: a
 * first use publishing the entry at the same moment (a program that
 * closes a socket while another thread uses it) takes the bit first, or
 * this does.  Release: a thread that gets the number after the close that
 * follows starts clean.  Returns the tag left (t without the bit), or
 * the one found instead.
 */
static inline uint32_t td_fdent_unborn(struct td_fdent *e, uint32_t t)
{
	if (atomic_compare_exchange_strong_explicit(&e->tag, &t, t & ~TD_TAG_BORN,
						    memory_order_release, memory_order_relaxed))
		return t & ~TD_TAG_BORN;
	return t;
}
/* Clear fd's born bit, if set (its entry, if live, stays). */
static inline void td_fdtab_unborn(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t;

	if (e == NULL)
		return;
	t = atomic_load_explicit(&e->tag, memory_order_relaxed);
	while (td_tag_born(t))
		t = td_fdent_unborn(e, t);
}
/*
 * Give the live entry of fd, published under tag, cp's plain data and
 * addresses; its flags, share, linger and counters stay.  Returns the
 * entry, or NULL when it was replaced or claimed meanwhile (then nothing
 * is written).
 */
struct td_fdent *td_fdtab_update(int fd, uint32_t tag, const struct td_sock *cp) TD_HIDDEN;
/*
 * Take fd's entry away (it is being closed): copies it into *out and
 * returns true when there was one.  Done before the real close, so a
 * thread that gets the fd number next starts from nothing.  Without a
 * live entry, a born one is cleared (false: nothing to copy).
 */
bool td_fdtab_claim(int fd, struct td_sock *out) TD_HIDDEN;
/* Copy a live entry consistently; false when none or replaced. */
bool td_fdtab_read(int fd, struct td_sock *out, uint32_t *tag) TD_HIDDEN;
/* Share slots (fdtab.c): the fds holding one socket, here and, once it
 * crossed a counted fork(), in the forked processes too. */
#define TD_SHARE_MAX 8192 /* share slots; a socket past them is shared for good */
#define TD_SHARE_HELD 4	  /* forked holders a slot tells apart (fdtab.c) */
/* A share value's slot index (values are index + 1 and a generation). */
static inline uint32_t td_share_idx(uint32_t share)
{
	return (share & 0xffffu) - 1u;
}
uint32_t td_fdtab_share_join(struct td_fdent *src, int src_fd) TD_HIDDEN; /* for the new fd */
/* A fork() gives e's fd a copy in the child: count it (a slot made when
 * it has none) in the child's holder record; false when it cannot be
 * counted. */
bool td_fdtab_share_fork(struct td_fdent *e, int fd) TD_HIDDEN;
/* The fork failed: take back one copy td_fdtab_share_fork() counted. */
bool td_fdtab_share_unfork(uint32_t share) TD_HIDDEN;
/* Count one more fd of share again (an exec() that failed); false when stale. */
bool td_fdtab_share_rejoin(uint32_t share) TD_HIDDEN;
/* The number the share's first source had (fd itself without a share):
 * read it before td_fdtab_share_leave(), which may free the slot. */
int td_fdtab_share_origin(uint32_t share, int fd) TD_HIDDEN;
/* Drop one fd's share: the fds left, 0 for none (or no share), -1 when
 * the value is stale. */
int td_fdtab_share_drop(uint32_t share) TD_HIDDEN;
/* Drop one fd's share; true when other fds (here, or counted elsewhere) remain. */
bool td_fdtab_share_leave(uint32_t share) TD_HIDDEN;
/* Whether another copy than this one is counted now (a look, no change). */
bool td_fdtab_share_held(uint32_t share) TD_HIDDEN;
/* Drop it only when another copy stays counted: true; else nothing changes. */
bool td_fdtab_share_leave_held(uint32_t share) TD_HIDDEN;
/*
 * After this process's last copy of share left with others still
 * counted: whether those are all the family's root's (the one process
 * whose copies no record tells apart) and the root is gone (killed: its
 * exit hook never gave them back; kill(pid, 0) says ESRCH).  Then the
 * count is set to zero and the close just made was the last.  Only in a
 * process with a holder record; never where the count is inexact or
 * another process's copies are untold.
 */
bool td_fdtab_share_root_gone(uint32_t share) TD_HIDDEN;
/* Whether share counts every holder (see fdtab.c). */
bool td_fdtab_share_exact(uint32_t share) TD_HIDDEN;
/* Whether share counts every holder and none is left (after exec()'s
 * close-on-exec copies left it: td_holders_exec_prepare()). */
bool td_fdtab_share_none_left(uint32_t share) TD_HIDDEN;
/* Some holder of share's socket is not counted. */
void td_fdtab_share_inexact(uint32_t share) TD_HIDDEN;
/* A holder's shutdown() sent our FIN (passive: the peer's came first):
 * noted in the share slot for the other holders' closes and exits;
 * td_fdtab_share_fin() reads it back (TD_SHARE_FIN_* bits, 0 without). */
enum { TD_SHARE_FIN_SENT = 1, TD_SHARE_FIN_PASSIVE = 2 };
void td_fdtab_share_note_fin(uint32_t share, bool passive) TD_HIDDEN;
unsigned td_fdtab_share_fin(uint32_t share) TD_HIDDEN;
/*
 * Whether a thread with no answers of its own reads the state before its
 * shutdown() (shim/hook/shutdown.c): where more than a third of its
 * family's reads before the call found the peer's FIN in (fdtab.c's
 * shared mapping, so a forked child learns what its older siblings
 * found), and one time in eight to find out.  Both ways are exact; this
 * only picks the cheaper.  td_fdtab_family_note_probe() adds what such a
 * read found.
 */
bool td_fdtab_family_peer_first(void) TD_HIDDEN;
void td_fdtab_family_note_probe(bool found) TD_HIDDEN;

/*
 * Holder records (fdtab.c): the counted copies each forked process
 * holds, so that the process that reaps one which died without its exit
 * hook can take them back, and report the ends that were its to report.
 * The fork's prepare handler makes the child's record as it counts the
 * copies; the fork hook names the child's pid (td_fdtab_hrec_forked()),
 * or gives the counts back when the fork failed.
 */
#define TD_SHARE_END_WORDS 10
/* What a share slot keeps of its socket for an end reported elsewhere. */
struct td_share_end {
	struct td_sock_data d;
	struct td_addr local, remote;
	uint32_t flags;
	bool linger0; /* the program's own SO_LINGER {1,0}: its close resets */
};
_Static_assert(sizeof(struct td_share_end) <= TD_SHARE_END_WORDS * 8, "end data fits its words");
/* The fork hook: the fork made pid (> 0), or failed (pid < 0: the
 * counts the prepare handler gave the child are taken back). */
void td_fdtab_hrec_forked(pid_t pid) TD_HIDDEN;
/* Before fork (its prepare handler, before the copies are counted). */
void td_fdtab_hrec_prepare(void) TD_HIDDEN;
/* In the child, after fork (its atfork handler): the record is its own;
 * parent: the pid of the process that forked it. */
void td_fdtab_hrec_child(pid_t parent) TD_HIDDEN;
/* Whether this process made a record for any child (cheap, no init). */
bool td_fdtab_hrec_any(void) TD_HIDDEN;
/*
 * pid was reaped: take back the copies its record still counts, free the
 * record.  For each socket whose count this takes to zero (the dead
 * process held the last copy), ended(end, exact, arg): exact when every
 * holder was counted.  No-op for a pid with no record.
 */
/*
 * Reaped behind the library's back (SIGCHLD ignored: the kernel reaps):
 * the records whose process is gone (kill(pid, 0): ESRCH) are released
 * as td_fdtab_hrec_reaped() does.  Wanted when a fork found no free
 * record (td_fdtab_hrec_full(), which says so once), and at exit.
 */
bool td_fdtab_hrec_full(void) TD_HIDDEN;
void td_fdtab_hrec_sweep(void (*ended)(const struct td_share_end *end, bool exact, pid_t pid,
					 void *arg),
			 void *arg) TD_HIDDEN;
void td_fdtab_hrec_reaped(pid_t pid, void (*ended)(const struct td_share_end *end, bool exact,
						   pid_t pid, void *arg),
			  void *arg) TD_HIDDEN;

/* Drop fd's entry, live or born, if any (the fd is now something untracked). */
void td_fdtab_forget(int fd) TD_HIDDEN;
/* Drop the entry e (live a moment ago), as td_fdtab_forget(). */
static inline void td_fdent_forget(struct td_fdent *e)
{
	if (td_tag_live(atomic_fetch_and_explicit(&e->tag, ~TD_TAG_LIVE, memory_order_acq_rel)) &&
	    td_unlikely(atomic_load_explicit(&e->share, memory_order_relaxed) != 0))
		(void)td_fdtab_share_leave(atomic_load(&e->share));
}
/*
 * The live entry for fd, or NULL.  A born entry is not live: use
 * td_fdtab_live_or_born() where its bare entry is wanted.
 */
static inline struct td_fdent *td_fdtab_live(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);

	if (e == NULL || !td_tag_live(atomic_load_explicit(&e->tag, memory_order_acquire)))
		return NULL;
	return e;
}
struct td_fdent *td_fdtab_born_publish(struct td_fdent *e, int fd, uint32_t tag) TD_HIDDEN;
/*
 * The live entry for fd, or NULL; a born entry gets its bare entry
 * published first, the one socket() would have published
 * (td_fdtab_born_publish(); NULL, with no wait, when another thread's
 * first use of the socket is publishing it at that moment).  For every
 * use that reads or changes a socket's entry: it then sees what it saw
 * when socket() published the entry itself.  errno untouched.
 */
static inline struct td_fdent *td_fdtab_live_or_born(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t;

	if (e == NULL)
		return NULL;
	t = atomic_load_explicit(&e->tag, memory_order_acquire);
	if (td_likely(td_tag_live(t)))
		return e;
	return td_unlikely(td_tag_born(t)) ? td_fdtab_born_publish(e, fd, t) : NULL;
}
/*
 * A read of the program's on fd returned 0 although it asked for bytes:
 * mark a TCP socket's entry TD_SF_EOF_READ (once; nothing for an fd the
 * library does not track).  Its close then needs no SIOCINQ
 * (td_info_facts_sock()).
 */
void td_fdtab_mark_eof(int fd) TD_HIDDEN;
/* The program shuts fd's reading side: TD_SF_SHUT_RD, which voids the
 * mark above (its reads return 0 before any FIN). */
void td_fdtab_mark_shut_rd(int fd) TD_HIDDEN;
/* A read or write on fd failed with ETIMEDOUT: TD_SF_TIMED_OUT. */
void td_fdtab_mark_timed_out(int fd) TD_HIDDEN;
/*
 * Counting what the program reads.  A close asks SIOCINQ whether input
 * is left unread (left unread, the kernel resets the connection); it need
 * not when every byte the socket received went through the read hooks:
 * TCP_INFO's byte count, less the peer's FIN, equals what was read
 * (td_info_facts_sock()).  The hooks keep that count, modulo 2^16, in the
 * entry's two spare bytes (a4.read16, the top of dw[5]), trusted only for
 * a socket that received fewer than 2^16 bytes: an HTTP request, a
 * command.  The count is not too high, so it does not hide unread bytes:
 *  - a read counts only if fd's entry kept its tag across the call, so a
 *    read on a socket closed meanwhile does not count on the next socket
 *    given the same number;
 *  - peeks (MSG_PEEK) and error-queue reads (MSG_ERRQUEUE) do not count.
 * One race is left, and only a program with a bug of its own makes it:
 * thread A reads fd while thread B closes fd and a new socket gets its
 * number, and A is preempted between the tag compare and the add.  The
 * new socket's count is then high by A's read, and a close of it with
 * exactly that many bytes unread would be logged as a FIN with nothing
 * unread.  The count may be too low (reads through another fd, another
 * process, calls with no hook such as splice(); a publish or update
 * zeroes it; a born entry counts nothing, but its socket is not
 * connected either), which costs only the ioctl.  Not kept on big-endian
 * machines.
 */
static inline uint32_t td_fdtab_read_begin(int fd, struct td_fdent **ep)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t tag = e != NULL ? atomic_load_explicit(&e->tag, memory_order_relaxed) : 0;

	*ep = td_tag_live(tag) ? e : NULL;
	return tag;
}
static inline void td_fdtab_read_end(struct td_fdent *e, uint32_t tag, ssize_t r)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (e != NULL && r > 0 && atomic_load_explicit(&e->tag, memory_order_relaxed) == tag)
		__atomic_fetch_add(&e->dw[5], (uint64_t)(size_t)r << 48, __ATOMIC_RELAXED);
#else
	(void)e;
	(void)tag;
	(void)r;
#endif
}
/* Highest fd that ever had an entry (a bound for scans). */
static inline int td_fdtab_high(void)
{
	return atomic_load_explicit(&td_fdtab_high_, memory_order_relaxed);
}
/* The highest fd that ever had an entry for the program (not an own fd). */
static inline int td_fdtab_prog_high(void)
{
	return atomic_load_explicit(&td_fdtab_prog_high_, memory_order_relaxed);
}


#endif
