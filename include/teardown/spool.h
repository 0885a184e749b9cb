/*
 * teardown: the spool, a per-process ring of log events in a
 * MAP_SHARED file next to the log (shim/rt/spool.c puts it there, flushes
 * it and recovers the spools of dead processes; `teardown report` reads
 * those too).  This header is the on-disk format and its pure, lock-free
 * code (shim/core/spool.c), which the library, the command and the unit
 * tests share.
 *
 * The file: a header page, then one 64-bit word per slot, then the slots
 * (TD_SPOOL_SLOT bytes each).  A line takes as many consecutive slots as
 * it needs and never wraps around the end of the ring (a PAD record fills
 * the end instead), so one line is always one run of bytes.
 *
 *   head  slots reserved so far (monotonic; a writer moves it with one
 *         compare-and-swap, never past tail + nslots);
 *   tail  slots already written to the log (or dropped) by the flusher.
 *
 * Slot s (a position counted from 0 since the spool was made, the ring
 * index being s % nslots) starts a record when its word carries the tag
 * s: a word is  seq (46 bits) | state (2 bits) | len (16 bits).  A word
 * with another tag is left over from an earlier lap (or is a line's
 * continuation slot), so a record's first slot can never be mistaken for
 * anything else, even after a writer died half-way: a reader that finds
 * no tag where a record should start knows that record never got its
 * first word, and finds the next one by its tag.
 *
 * A record is an event packed by include/teardown/evrec.h (its first
 * byte TD_EVREC_MAGIC), which the reader formats into its line with the
 * writer's host and prog from the header, or a finished line (version 1
 * held only those; version 2 still writes one for an event too large to
 * pack).
 *
 * A writer: reserve (CAS on head), store RESERVED with the length, copy
 * the line, store COMMIT (release).  No lock and no system call: safe in
 * a signal handler.  A reader goes from tail while the records it meets
 * are committed; with `dead` (the owner is gone) it also steps over the
 * records left RESERVED or never begun, counting each as lost.
 */
#ifndef TEARDOWN_SPOOL_H
#define TEARDOWN_SPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "teardown/event.h"
#include "teardown/evrec.h"

#define TD_SPOOL_MAGIC "TDSPOOL1"
#define TD_SPOOL_VERSION 2u /* 1 (lines only) is still read */
#define TD_SPOOL_HDR 4096u
#define TD_SPOOL_SLOT 64u
/*
 * 4096 slots: 256 KiB of lines (about 550 JSON events), 32 KiB of words.
 * A constant, not a setting: a quarter of it (the worker's mark) is a
 * batch large enough that a writev() per batch costs nothing per line,
 * and the whole is small enough for every process of a prefork server
 * to have one (each spool's pages all end up resident once its ring has
 * gone round).
 */
#define TD_SPOOL_SLOTS 4096u
#define TD_SPOOL_MAX_SLOTS (1u << 20)

/* Name of a spool in the log's directory: ".<log name>.spool.<pid>.<16 hex>";
 * while it is being made, ".<log name>.spool-new.<pid>.<16 hex>". */
#define TD_SPOOL_INFIX ".spool."
#define TD_SPOOL_NEW_INFIX ".spool-new."

struct td_spool_hdr {
	char magic[8];
	uint32_t version;
	uint32_t hdr_size;   /* bytes before the words */
	uint32_t slot_size;  /* bytes of one slot */
	uint32_t nslots;     /* a power of two */
	int32_t pid;	     /* the process that made it */
	uint32_t reserved0;
	char pad0[64 - 32];
	_Atomic uint64_t head; /* own cache line: every writer moves it */
	char pad1[56];
	_Atomic uint64_t tail; /* own cache line: the flusher moves it */
	char pad2[56];
	/* version 2: the writer's host (uname nodename) and prog, for its
	 * records' lines; empty: none (null in the line) */
	char host[72];
	char prog[128];
};

enum td_spool_state { TD_SW_NONE = 0, TD_SW_RESERVED = 1, TD_SW_COMMIT = 2, TD_SW_PAD = 3 };

#define TD_SW_SEQ_BITS 46
#define TD_SW_SEQ_MASK ((UINT64_C(1) << TD_SW_SEQ_BITS) - 1)
#define TD_SW_LEN_MASK UINT64_C(0xffff)

static inline uint64_t td_sw_make(uint64_t seq, unsigned state, uint64_t len)
{
	return (seq & TD_SW_SEQ_MASK) << 18 | (uint64_t)state << 16 | (len & TD_SW_LEN_MASK);
}
static inline uint64_t td_sw_seq(uint64_t w) { return w >> 18; }
static inline unsigned td_sw_state(uint64_t w) { return (unsigned)(w >> 16) & 3u; }
static inline size_t td_sw_len(uint64_t w) { return (size_t)(w & TD_SW_LEN_MASK); }

/* A mapped spool: where its parts are. */
struct td_spool_view {
	struct td_spool_hdr *hdr;
	_Atomic uint64_t *words;
	char *data;
	uint32_t nslots;
	uint32_t slot;
};

/* Bytes of a spool file with nslots slots. */
size_t td_spool_file_size(uint32_t nslots);
/* Write a fresh header (and zero words) into mem of td_spool_file_size()
 * bytes; fill view. */
void td_spool_init(void *mem, uint32_t nslots, int32_t pid, struct td_spool_view *v);
/* Name the writing process in a fresh header (host or prog NULL: none). */
void td_spool_set_writer(const struct td_spool_view *v, const char *host, const char *prog);
/*
 * Check a mapped file of size bytes (another process's, maybe damaged)
 * and fill view: 0, or -1 when it is not a spool this code can read.
 */
int td_spool_view_of(void *mem, size_t size, struct td_spool_view *v);

/*
 * Reserve and fill one line (len bytes, the newline included) in one go:
 * 0 when it is in the spool, -1 when there is no room (or len is 0 or
 * larger than the ring can hold): then nothing was reserved.  *used: how
 * many slots were taken after this line, for the caller's fill mark.
 */
int td_spool_put(const struct td_spool_view *v, const char *line, size_t len, uint64_t *used);

/* The two halves of td_spool_put, for tests that stop a writer between. */
int td_spool_reserve(const struct td_spool_view *v, size_t len, uint64_t *seq, uint64_t *used);
void td_spool_commit(const struct td_spool_view *v, uint64_t seq, const char *line, size_t len);

enum td_spool_kind {
	TD_SR_NONE = 0, /* nothing (more) to read at pos now */
	TD_SR_LINE,	/* a committed line: ptr, len */
	TD_SR_EVENT,	/* a committed event record: ptr, len (td_spool_rec_line) */
	TD_SR_SKIP,	/* padding at the end of the ring: no output */
	TD_SR_LOST,	/* (dead only) a line its writer never finished */
};

struct td_spool_rec {
	int kind;
	const char *ptr;
	size_t len;
	uint64_t next; /* where the following record starts */
};

/*
 * The record at pos (pos < head).  dead: the owner is gone, so a record
 * not committed never will be: step over it (TD_SR_LOST) instead of
 * waiting (TD_SR_NONE).  A line is checked before it is returned (one
 * newline, at its end); a damaged one is TD_SR_LOST.
 */
void td_spool_next(const struct td_spool_view *v, uint64_t pos, uint64_t head, bool dead,
		   struct td_spool_rec *r);

/*
 * The writer of a spool as its records' lines name it: host and prog
 * copied out of the header (a damaged one cannot make them run on), and
 * the who block rendered from them once, for every record.
 */
struct td_spool_writer {
	char host[sizeof(((struct td_spool_hdr *)0)->host)];
	char prog[sizeof(((struct td_spool_hdr *)0)->prog)];
	struct td_event_who who;
};
void td_spool_writer_of(const struct td_spool_view *v, struct td_spool_writer *w);

/*
 * The line of a TD_SR_LINE or TD_SR_EVENT record: *line and its length;
 * an event is formatted into buf (cap >= TD_EVENT_MAX).  0: the record
 * cannot be read (another build's layout, or damaged): count it lost.
 */
size_t td_spool_rec_line(const struct td_spool_rec *r, const struct td_spool_writer *w, char *buf,
			 size_t cap, const char **line);
/* The same, an event settled first (td_evrec_line_settled()). */
size_t td_spool_rec_line_settled(const struct td_spool_rec *r, const struct td_spool_writer *w,
				 char *buf, size_t cap, const char **line,
				 td_evrec_settle_fn *settle, void *ctx);

/* head, clamped to [tail, tail + nslots] (a damaged file cannot make a
 * reader run away) */
uint64_t td_spool_head(const struct td_spool_view *v, uint64_t tail);

#endif
