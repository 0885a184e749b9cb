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
 *
 * Lanes (version 3).  The slots are split into nlanes rings (a power of
 * two, at most TD_SPOOL_MAX_LANES), each with its own head and tail on
 * cache lines of their own; a writer puts its line into the lane of the
 * CPU it runs on, so threads on different CPUs share no write.  Lane 0's
 * head and tail are where versions 1 and 2 kept the one ring's.  Every
 * record of version 3 starts with an 8-byte key: the writer's clock
 * (CLOCK_MONOTONIC, ns) read inside its reservation's compare-and-swap
 * loop, so that a lane's keys grow with its positions (a writer whose
 * compare-and-swap failed reads the clock again), as LTTng-UST stamps its
 * per-CPU buffers.  Readers merge the lanes by key (td_spool_merge_next):
 * a line that another caused (the accept that a close on another thread
 * follows) was committed before the later one's key was read, so it has
 * the smaller key and is written first.  The rules that make this hold
 * for a live writer are at td_spool_merge_begin.
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
#define TD_SPOOL_VERSION 3u /* 1 (lines only) and 2 (one lane, no keys) are still read */
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
#define TD_SPOOL_MAX_LANES 8u
/* bytes of a version 3 record's key, before its line or event */
#define TD_SPOOL_KEY 8u

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
	uint32_t nlanes;     /* version 3 (before: 0, one ring) */
	char pad0[64 - 32];
	_Atomic uint64_t head; /* lane 0's; own cache line: its writers move it */
	char pad1[56];
	_Atomic uint64_t tail; /* lane 0's; own cache line: the flusher moves it */
	char pad2[56];
	/* version 2: the writer's host (uname nodename) and prog, for its
	 * records' lines; empty: none (null in the line) */
	char host[72];
	char prog[128];
	char pad3[56];
	/* version 3: lanes 1.. (lane 0's head and tail are the ones above);
	 * last_key: the key of the lane's last record written out, moved with
	 * tail by the flusher (every lane's, lane 0's too) */
	struct td_spool_lane_hdr {
		_Atomic uint64_t head;
		char pad0[56];
		_Atomic uint64_t tail;
		_Atomic uint64_t last_key;
		char pad1[48];
	} lanes[TD_SPOOL_MAX_LANES];
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

/*
 * The clock a writer reads for a record's key, inside its reservation's
 * loop (NULL: the record's position, which orders one lane only).
 */
typedef uint64_t td_spool_key_fn(void);

/* A mapped spool's lane (a ring): where its parts are. */
struct td_spool_view {
	struct td_spool_hdr *hdr;
	_Atomic uint64_t *head, *tail;
	_Atomic uint64_t *last_key; /* NULL before version 3 */
	_Atomic uint64_t *words;
	char *data;
	uint32_t nslots; /* the lane's */
	uint32_t slot;
	bool keyed; /* version 3: records start with their key */
	td_spool_key_fn *key; /* the writer's (not from the file) */
};

/* A mapped spool: its lanes. */
struct td_spool_file {
	struct td_spool_hdr *hdr;
	uint32_t nlanes;
	struct td_spool_view lane[TD_SPOOL_MAX_LANES];
};

/* The lane of CPU number cpu (sched_getcpu(); below 0: unknown, lane 0):
 * CPUs share lanes modulo their count. */
static inline uint32_t td_spool_lane_of(const struct td_spool_file *f, int cpu)
{
	return cpu > 0 ? (uint32_t)cpu & (f->nlanes - 1) : 0;
}

/* Bytes of a spool file with nslots slots (all lanes together). */
size_t td_spool_file_size(uint32_t nslots);
/*
 * Write a fresh header (and zero words) into mem of td_spool_file_size()
 * bytes, nslots split into nlanes lanes (both powers of two, each lane at
 * least one slot); fill f.  td_spool_init: one lane, view of it.
 */
void td_spool_init_file(void *mem, uint32_t nslots, uint32_t nlanes, int32_t pid,
			struct td_spool_file *f);
void td_spool_init(void *mem, uint32_t nslots, int32_t pid, struct td_spool_view *v);
/* Name the writing process in a fresh header (host or prog NULL: none). */
void td_spool_set_writer(const struct td_spool_view *v, const char *host, const char *prog);
/*
 * Check a mapped file of size bytes (another process's, maybe damaged)
 * and fill f: 0, or -1 when it is not a spool this code can read.
 */
int td_spool_file_of(void *mem, size_t size, struct td_spool_file *f);

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
	uint64_t at;   /* where it starts */
	uint64_t next; /* where the following record starts */
	uint64_t key;  /* LINE, EVENT: its key (before version 3: its position) */
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

/*
 * Reading the lanes of a file in key order.
 *
 * td_spool_merge_begin: from each lane's tail to its head as read now.
 * cutoff: only records with keys below it (UINT64_MAX: every one).
 *
 * For a live writer (dead false) the merge never writes a line before
 * one it follows, on any lane, under two rules:
 *  - cutoff is the reader's clock, read before this call (with a fence
 *    between): a record whose key is below it was reserved before the
 *    heads were read, and so was everything that came before it;
 *  - a lane stopped at a record not finished yet (its writer is still
 *    copying) holds back every record of other lanes with a key above
 *    that record's key (stored with its length), or, before its writer
 *    stored even that, above the lane's last key, the least it can be:
 *    what follows it in its lane is later still.
 * dead: the owner is gone; unfinished and damaged records are stepped
 * over and counted (lost), and nothing holds back.
 */
/* where a lane of a merge stands */
enum td_spool_lane_state {
	TD_SM_EMPTY = 0, /* its next record not read yet */
	TD_SM_PEEKED,	 /* its next record read (peek), waiting its turn */
	TD_SM_BLOCKED,	 /* at a record its writer has not finished */
	TD_SM_DONE,	 /* at the head it had at td_spool_merge_begin */
};

struct td_spool_merge {
	const struct td_spool_file *f;
	uint64_t cutoff;
	bool dead;
	uint64_t lost; /* records stepped over (dead), damaged (either) */
	uint64_t pos[TD_SPOOL_MAX_LANES];  /* after the last record taken or stepped over */
	uint64_t head[TD_SPOOL_MAX_LANES];
	uint64_t last[TD_SPOOL_MAX_LANES]; /* key of the last record taken */
	/* a lane whose unfinished record at this position was given up on
	 * (its writer never came back): ends there, holding nothing back
	 * (UINT64_MAX: none; the caller sets it after td_spool_merge_begin) */
	uint64_t stuck[TD_SPOOL_MAX_LANES];
	struct td_spool_rec peek[TD_SPOOL_MAX_LANES];
	uint8_t state[TD_SPOOL_MAX_LANES]; /* TD_SM_* */
};
void td_spool_merge_begin(struct td_spool_merge *m, const struct td_spool_file *f,
			  uint64_t cutoff, bool dead);
/*
 * The next record (TD_SR_LINE or TD_SR_EVENT) in key order: 1, its lane
 * in *lane and the record in *r; 0 when none may be read now.  m->pos
 * then says, lane by lane, where a flusher's tail may move.
 */
int td_spool_merge_next(struct td_spool_merge *m, unsigned *lane, struct td_spool_rec *r);

#endif
