/*
 * teardown runtime: the fd table (fdtab.c): one entry per open fd that is
 * a TCP socket the library tracks, and the dup share slots.
 */
#ifndef TD_RT_FDTAB_H
#define TD_RT_FDTAB_H

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
};
/* With TD_SF_OWN: which of the library's own fds it is (enum td_ownfd_kind,
 * ownfd.h), in the top byte of flags */
#define TD_SF_OWN_KIND_SHIFT 24

/* The plain part of an entry: written only while it is unpublished. */
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
	struct td_addr local, remote;
};

/*
 * What the library knows about one open fd that is a TCP socket.
 *
 * tag is the publication word: 0 = no entry; otherwise a generation
 * number, new each time the entry is published.  The plain data (d) is
 * written only by td_fdtab_publish() and td_fdtab_update(), while the tag is 0,
 * and copied out by assignment; a reader (td_fdtab_read(), td_fdtab_claim())
 * checks the tag around its copy, so it never uses a half-written entry.
 *
 * The other fields change while the entry is published, each on its own,
 * so each is atomic:
 *   flags    bits set by any hook or the worker (enum td_sock_flag);
 *   share    the dup share slot + 1 (dup() sets it on the source entry);
 *   linger   the program's own SO_LINGER (setsockopt), onoff and seconds
 *            packed in one word so they are read together;
 *   cw_seen  when the worker first saw the socket in CLOSE_WAIT;
 *   written  bytes written (rst_after_bytes, fin_after_bytes);
 *   read_in  bytes read (rst_after_bytes_in);
 *   reset_*  what a library reset saw: stored before TD_SF_RESET_SENT is
 *            set, read only after it is seen.
 */
struct td_sock {
	_Atomic uint32_t tag;
	_Atomic uint32_t flags;
	_Atomic uint32_t share;
	_Atomic uint64_t linger;
	_Atomic int64_t cw_seen_mono_us;
	_Atomic uint64_t written;
	_Atomic uint64_t read_in; /* bytes read (rst_after_bytes_in) */
	/* byte counts kept from before an injected reset, which zeroes them,
	 * and what that reset threw away (never sent; sent, unacknowledged) */
	_Atomic int64_t reset_bytes_in, reset_bytes_out;
	_Atomic int64_t reset_lost, reset_in_flight;
	/*
	 * The plain data, also seen as words: td_fdtab_* copy it in and out
	 * with relaxed atomic word accesses, so a reader racing a writer (the
	 * tag check then throws its copy away) is no data race in C11's sense
	 * either, and ThreadSanitizer can check everything else.
	 */
	union {
		struct td_sock_data d;
		uint64_t dw[(sizeof(struct td_sock_data) + 7) / 8];
	};
};

/* The program's SO_LINGER as recorded in an entry. */
static inline void td_sock_linger_set(struct td_sock *s, int onoff, int secs)
{
	atomic_store(&s->linger, (uint64_t)(onoff != 0) << 32 | (uint32_t)secs);
}
static inline bool td_sock_linger_on(const struct td_sock *s)
{
	return (atomic_load(&s->linger) >> 32) != 0;
}
static inline int td_sock_linger_secs(const struct td_sock *s)
{
	return (int)(uint32_t)atomic_load(&s->linger);
}

#define TD_FDTAB_MAX (1 << 20)
#define TD_FDTAB_PAGE_SHIFT 10
#define TD_FDTAB_PAGE (1 << TD_FDTAB_PAGE_SHIFT)
#define TD_FDTAB_NPAGES (TD_FDTAB_MAX / TD_FDTAB_PAGE)

/* The table's pages, mapped on first use (fdtab.c). */
extern _Atomic(struct td_sock *) td_fdtab_pages[TD_FDTAB_NPAGES] TD_HIDDEN;

/*
 * Entry for fd, or NULL (no page, out of range). Never allocates.  Inline,
 * with td_fdtab_live(): every close() asks it first, and for an fd the
 * library does not track the answer must cost next to nothing.
 */
static inline struct td_sock *td_fdtab_peek(int fd)
{
	struct td_sock *page;

	if (td_unlikely((unsigned)fd >= TD_FDTAB_MAX))
		return NULL;
	page = atomic_load_explicit(&td_fdtab_pages[fd >> TD_FDTAB_PAGE_SHIFT], memory_order_acquire);
	return page ? &page[fd & (TD_FDTAB_PAGE - 1)] : NULL;
}
/* Entry for fd, allocating its page; NULL when out of memory or range. */
struct td_sock *td_fdtab_slot(int fd) TD_HIDDEN;
/* Publish a fresh entry for fd (fields from init). Returns the entry. */
struct td_sock *td_fdtab_publish(int fd, const struct td_sock *init) TD_HIDDEN;
/* The same with data d, flags, and every other field zero (socket()). */
struct td_sock *td_fdtab_publish_data(int fd, const struct td_sock_data *d,
				   uint32_t flags) TD_HIDDEN;
/*
 * Give the live entry of fd, published under tag, new plain data; its
 * atomic fields stay.  Returns the entry, or NULL when it was replaced
 * or claimed meanwhile (then nothing is written).
 */
struct td_sock *td_fdtab_update(int fd, uint32_t tag, const struct td_sock_data *d) TD_HIDDEN;
/*
 * Take fd's entry away (it is being closed): copies it into *out and
 * returns true when there was one.  Done before the real close, so a
 * thread that gets the fd number next starts from nothing.
 */
bool td_fdtab_claim(int fd, struct td_sock *out) TD_HIDDEN;
/* Copy a live entry consistently; false when none or replaced. */
bool td_fdtab_read(int fd, struct td_sock *out, uint32_t *tag) TD_HIDDEN;
/* Drop fd's entry, if any (the fd is now something untracked). */
void td_fdtab_forget(int fd) TD_HIDDEN;
/* The live entry for fd, or NULL. */
static inline struct td_sock *td_fdtab_live(int fd)
{
	struct td_sock *e = td_fdtab_peek(fd);

	if (e == NULL || atomic_load_explicit(&e->tag, memory_order_acquire) == 0)
		return NULL;
	return e;
}
/* Highest fd that ever had an entry (a bound for scans). */
int td_fdtab_high(void) TD_HIDDEN;

/* dup share slots */
uint32_t td_fdtab_share_join(struct td_sock *src) TD_HIDDEN; /* for the new fd */
/* Drop one fd's share; true when other fds of this process remain. */
bool td_fdtab_share_leave(uint32_t share) TD_HIDDEN;

#endif
