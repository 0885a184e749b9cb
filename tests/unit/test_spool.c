/*
 * teardown: unit tests for the spool's ring (shim/core/spool.c): lines in
 * and out in order, whole, across the wrap; a full ring refuses without
 * reserving; many writer threads against a flusher thread; what a reader
 * of a dead process's spool makes of lines left half-written; damaged
 * headers refused; lanes read back in key order, an unfinished line
 * holding back what may follow it, and threads that cause each other's
 * lines across lanes read back in that order while they write.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "teardown/spool.h"

static void *td_t_spool(uint32_t nslots, struct td_spool_view *v)
{
	size_t size = td_spool_file_size(nslots);
	void *mem = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);

	cr_assert(not(eq(ptr, mem, NULL)));
	memset(mem, 0xa5, size); /* garbage, as a reused file would hold */
	td_spool_init(mem, nslots, 42, v);
	return mem;
}

/* A line "tag-n" padded with 'x' to len bytes, newline included. */
static size_t td_t_line(char *buf, size_t len, const char *tag, unsigned n)
{
	int k = snprintf(buf, len, "%s-%u ", tag, n);

	for (size_t i = (size_t)k; i + 1 < len; i++)
		buf[i] = 'x';
	buf[len - 1] = '\n';
	return len;
}

/* Read every committed line from tail; returns how many; moves tail. */
static int td_t_drain(const struct td_spool_view *v, bool dead, char out[][256], size_t *lens,
		      int max, int *lost)
{
	uint64_t pos = atomic_load(v->tail), head = td_spool_head(v, pos);
	int n = 0;

	while (pos < head) {
		struct td_spool_rec r;

		td_spool_next(v, pos, head, dead, &r);
		if (r.kind == TD_SR_NONE)
			break;
		if (r.kind == TD_SR_LINE) {
			cr_assert(lt(int, n, max));
			cr_assert(lt(sz, r.len, (size_t)256));
			memcpy(out[n], r.ptr, r.len);
			lens[n++] = r.len;
		} else if (r.kind == TD_SR_LOST && lost) {
			(*lost)++;
		}
		pos = r.next;
	}
	atomic_store(v->tail, pos);
	return n;
}

Test(spool, lines_in_order_across_the_wrap)
{
	struct td_spool_view v;
	void *mem = td_t_spool(16, &v); /* 1 KiB of lines */
	static char out[64][256];
	size_t lens[64];
	char line[256];
	unsigned next_in = 0, next_out = 0;

	/* lengths that do not divide the ring: lines meet its end unaligned */
	for (int round = 0; round < 200; round++) {
		size_t len = 40 + (size_t)(round * 37) % 150;
		int n;

		while (td_spool_put(&v, line, td_t_line(line, len, "a", next_in), NULL) == 0)
			next_in++;
		n = td_t_drain(&v, false, out, lens, 64, NULL);
		cr_assert(gt(int, n, 0), "a full ring drained nothing");
		for (int i = 0; i < n; i++) {
			char want[32];
			int k = snprintf(want, sizeof(want), "a-%u ", next_out++);

			cr_assert(eq(int, memcmp(out[i], want, (size_t)k), 0), "line %u", next_out - 1);
			cr_assert(eq(chr, out[i][lens[i] - 1], '\n'));
		}
	}
	cr_assert(eq(u32, next_in, next_out));
	free(mem);
}

Test(spool, full_ring_refuses_without_reserving)
{
	struct td_spool_view v;
	void *mem = td_t_spool(8, &v); /* 512 bytes */
	char line[256];
	uint64_t used = 0, head;

	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 200, "b", 0), &used), 0));
	cr_assert(eq(u64, used, 4)); /* 200 bytes: 4 slots of 64 */
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 200, "b", 1), &used), 0));
	head = atomic_load(v.head);
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 10, "b", 2), &used), -1));
	cr_assert(eq(u64, atomic_load(v.head), head), "a refused line reserved room");
	/* nothing empty, nothing larger than the ring */
	cr_assert(eq(int, td_spool_put(&v, line, 0, NULL), -1));
	free(mem);
}

/* ---- many writers, one flusher ------------------------------------------ */

#define TD_T_WRITERS 8
#define TD_T_PER 20000

struct td_t_ctx {
	struct td_spool_view v;
	_Atomic int writers_done;
	unsigned next[TD_T_WRITERS];
	uint64_t lines;
};

/* a writer thread's: its test's context, and which writer it is */
struct td_t_arg {
	void *c;
	unsigned id;
};

static void *td_t_writer(void *arg)
{
	struct td_t_ctx *c = ((struct td_t_arg *)arg)->c;
	unsigned me = ((struct td_t_arg *)arg)->id;
	char line[256], tag[8];

	snprintf(tag, sizeof(tag), "w%u", me);
	for (unsigned i = 0; i < TD_T_PER; i++) {
		size_t len = td_t_line(line, 30 + (i * 7 + me * 13) % 200, tag, i);

		while (td_spool_put(&c->v, line, len, NULL) != 0)
			sched_yield(); /* full: the flusher makes room */
	}
	atomic_fetch_add(&c->writers_done, 1);
	return NULL;
}

Test(spool, many_writers_one_flusher_every_line_whole_and_in_order, .timeout = 120)
{
	static struct td_t_ctx c;
	static char out[512][256];
	size_t lens[512];
	pthread_t th[TD_T_WRITERS];
	struct td_t_arg args[TD_T_WRITERS];
	void *mem = td_t_spool(256, &c.v); /* 16 KiB: the writers fill it often */

	for (unsigned i = 0; i < TD_T_WRITERS; i++) {
		args[i].c = &c;
		args[i].id = i;
		cr_assert(eq(int, pthread_create(&th[i], NULL, td_t_writer, &args[i]), 0));
	}
	for (;;) {
		int done = atomic_load(&c.writers_done), n;

		n = td_t_drain(&c.v, false, out, lens, 512, NULL);
		for (int i = 0; i < n; i++) {
			unsigned w, k;
			char *sp;

			cr_assert(eq(int, sscanf(out[i], "w%u-%u ", &w, &k), 2), "%.*s",
				  (int)lens[i], out[i]);
			cr_assert(lt(u32, w, TD_T_WRITERS));
			/* each writer's lines come out in the order it put them */
			cr_assert(eq(u32, k, c.next[w]), "writer %u: line %u after %u", w, k,
				  c.next[w]);
			c.next[w]++;
			sp = memchr(out[i], ' ', lens[i]);
			cr_assert(not(eq(ptr, sp, NULL)));
			for (char *p = sp + 1; p < out[i] + lens[i] - 1; p++)
				cr_assert(eq(chr, *p, 'x'), "line %u of writer %u torn", k, w);
			cr_assert(eq(chr, out[i][lens[i] - 1], '\n'));
			c.lines++;
		}
		if (done == TD_T_WRITERS && n == 0 &&
		    atomic_load(c.v.tail) == atomic_load(c.v.head))
			break;
	}
	for (unsigned i = 0; i < TD_T_WRITERS; i++) {
		pthread_join(th[i], NULL);
		cr_assert(eq(u32, c.next[i], TD_T_PER), "writer %u", i);
	}
	cr_assert(eq(u64, c.lines, (uint64_t)TD_T_WRITERS * TD_T_PER));
	free(mem);
}

/* ---- a dead process's spool -------------------------------------------- */

Test(spool, dead_reader_steps_over_unfinished_lines)
{
	struct td_spool_view v;
	void *mem = td_t_spool(64, &v);
	static char out[64][256];
	size_t lens[64];
	char line[256];
	uint64_t seq, used;
	int n, lost = 0;

	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 100, "c", 0), NULL), 0));
	/* killed after its first word (the length is known) */
	cr_assert(eq(int, td_spool_reserve(&v, 150, &seq, &used), 0));
	memcpy(v.data + (seq & 63) * TD_SPOOL_SLOT, "half a li", 9);
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 90, "c", 2), NULL), 0));
	/* killed between its reservation and its first word: nothing tells
	 * its length but the next record's tag */
	atomic_fetch_add(v.head, 3);
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 70, "c", 4), NULL), 0));

	/* the live flusher waits at the unfinished line */
	n = td_t_drain(&v, false, out, lens, 64, NULL);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(int, strncmp(out[0], "c-0 ", 4), 0));
	/* the owner is dead: steps over both, counting them */
	n = td_t_drain(&v, true, out, lens, 64, &lost);
	cr_assert(eq(int, n, 2));
	cr_assert(eq(int, lost, 2));
	cr_assert(eq(int, strncmp(out[0], "c-2 ", 4), 0));
	cr_assert(eq(int, strncmp(out[1], "c-4 ", 4), 0));
	cr_assert(eq(u64, atomic_load(v.tail), atomic_load(v.head)));
	free(mem);
}

Test(spool, dead_reader_rejects_a_torn_or_forged_line)
{
	struct td_spool_view v;
	void *mem = td_t_spool(64, &v);
	static char out[64][256];
	size_t lens[64];
	char line[256];
	uint64_t seq, used;
	int n, lost = 0;

	/* committed, but with a newline inside: two lines in one record */
	cr_assert(eq(int, td_spool_reserve(&v, 20, &seq, &used), 0));
	td_spool_commit(&v, seq, "one\ntwo two two two\n", 20);
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 64, "d", 1), NULL), 0));
	n = td_t_drain(&v, true, out, lens, 64, &lost);
	cr_assert(eq(int, n, 1));
	cr_assert(eq(int, lost, 1));
	cr_assert(eq(int, strncmp(out[0], "d-1 ", 4), 0));
	free(mem);
}

Test(spool, header_checks)
{
	struct td_spool_view v;
	struct td_spool_file f;
	size_t size = td_spool_file_size(64);
	char *mem = td_t_spool(64, &v);

	cr_assert(eq(int, td_spool_file_of(mem, size, &f), 0));
	cr_assert(eq(u32, f.nlanes, 1));
	cr_assert(eq(u32, f.lane[0].nslots, 64));
	cr_assert(eq(ptr, f.lane[0].data, v.data));
	cr_assert(eq(int, td_spool_file_of(mem, size - 1, &f), -1), "size");
	v.hdr->nslots = 48;
	cr_assert(eq(int, td_spool_file_of(mem, td_spool_file_size(48), &f), -1), "power of two");
	v.hdr->nslots = 64;
	v.hdr->slot_size = 128;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1), "slot size");
	v.hdr->slot_size = TD_SPOOL_SLOT;
	/* lanes: a power of two, at most TD_SPOOL_MAX_LANES, none empty */
	v.hdr->nlanes = 3;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1), "3 lanes");
	v.hdr->nlanes = 0;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1), "no lane");
	v.hdr->nlanes = TD_SPOOL_MAX_LANES * 2;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1), "too many lanes");
	v.hdr->nlanes = 1;
	mem[0] = 'X';
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1), "magic");
	/* a head far past the tail is clamped to one ring */
	mem[0] = 'T';
	atomic_store(v.head, 1000000);
	cr_assert(eq(u64, td_spool_head(&v, 0), 64));
	atomic_store(v.tail, 2000000);
	cr_assert(eq(u64, td_spool_head(&v, 2000000), 2000000));
	free(mem);
}

/* ---- lanes -------------------------------------------------------------- */

/* keys a test hands out, in the order it reserves */
static _Atomic uint64_t td_t_clock;
static uint64_t td_t_key(void)
{
	return atomic_fetch_add(&td_t_clock, 1) + 1;
}

static void *td_t_lanes(uint32_t nslots, uint32_t nlanes, struct td_spool_file *f,
			td_spool_key_fn *key)
{
	size_t size = td_spool_file_size(nslots);
	void *mem = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);

	cr_assert(not(eq(ptr, mem, NULL)));
	memset(mem, 0xa5, size);
	td_spool_init_file(mem, nslots, nlanes, 42, f);
	for (uint32_t l = 0; l < nlanes; l++)
		f->lane[l].key = key;
	return mem;
}

/* Take what the merge gives now; moves the tails as a flusher does. */
static int td_t_merge(const struct td_spool_file *f, uint64_t cutoff, bool dead, char out[][256],
		      int max, uint64_t *lost)
{
	struct td_spool_merge m;
	struct td_spool_rec r;
	unsigned lane;
	int n = 0;

	td_spool_merge_begin(&m, f, cutoff, dead);
	while (td_spool_merge_next(&m, &lane, &r)) {
		cr_assert(eq(int, r.kind, TD_SR_LINE));
		cr_assert(lt(int, n, max));
		cr_assert(lt(sz, r.len, (size_t)256));
		memcpy(out[n], r.ptr, r.len);
		out[n][r.len] = '\0';
		n++;
	}
	for (uint32_t l = 0; l < f->nlanes; l++) {
		atomic_store(f->lane[l].last_key, m.last[l]);
		atomic_store(f->lane[l].tail, m.pos[l]);
	}
	if (lost)
		*lost = m.lost;
	return n;
}

static void td_t_put(const struct td_spool_view *v, const char *tag, unsigned n)
{
	char line[256];

	cr_assert(eq(int, td_spool_put(v, line, td_t_line(line, 50, tag, n), NULL), 0));
}

/*
 * Merge as a flusher does (td_t_merge) and check what it took: want, the
 * lines' "tag-n" in order, space-separated ("": nothing); *lost (may be
 * NULL): the records stepped over.
 */
static void td_t_expect(const struct td_spool_file *f, uint64_t cutoff, bool dead,
			const char *want, uint64_t *lost)
{
	static char out[64][256];
	int n = td_t_merge(f, cutoff, dead, out, 64, lost), i = 0;

	for (const char *w = want; *w != '\0'; i++) {
		size_t k = strcspn(w, " ");

		cr_assert(lt(int, i, n), "%d lines taken, wanted %s", n, want);
		cr_assert(eq(int, strncmp(out[i], w, k), 0), "line %d: %s, wanted %s", i, out[i],
			  want);
		cr_assert(eq(chr, out[i][k], ' '), "line %d: %s, wanted %s", i, out[i], want);
		w += k + (w[k] == ' ');
	}
	cr_assert(eq(int, n, i), "%d lines taken, wanted %s", n, want);
}

Test(spool, lanes_read_back_in_key_order)
{
	struct td_spool_file f;
	void *mem = td_t_lanes(64, 4, &f, td_t_key);
	/* lanes written in an order unlike the keys' */
	static const unsigned lanes[] = {2, 2, 0, 3, 1, 0, 0, 3, 2, 1};

	atomic_store(&td_t_clock, 0);
	cr_assert(eq(u32, f.lane[1].nslots, 16));
	for (unsigned i = 0; i < sizeof(lanes) / sizeof(lanes[0]); i++)
		td_t_put(&f.lane[lanes[i]], "k", i);
	td_t_expect(&f, UINT64_MAX, false, "k-0 k-1 k-2 k-3 k-4 k-5 k-6 k-7 k-8 k-9", NULL);
	/* the tails moved; what is written next follows */
	td_t_put(&f.lane[3], "k", 10);
	td_t_expect(&f, UINT64_MAX, false, "k-10", NULL);
	free(mem);
}

/*
 * A live reader never writes a line before one with a smaller key that
 * is not finished yet: a lane stopped at an unfinished line holds back
 * the others' lines above its key; keys at or above the cutoff wait.
 */
Test(spool, an_unfinished_line_holds_back_later_keys_of_other_lanes)
{
	struct td_spool_file f;
	void *mem = td_t_lanes(64, 2, &f, td_t_key);
	char line[256];
	uint64_t seq, used, lost = 0;

	atomic_store(&td_t_clock, 0);
	td_t_put(&f.lane[0], "a", 1);					 /* key 1 */
	td_t_put(&f.lane[1], "b", 2);					 /* key 2 */
	cr_assert(eq(int, td_spool_reserve(&f.lane[0], 50, &seq, &used), 0)); /* key 3 */
	td_t_put(&f.lane[1], "b", 4);					 /* key 4 */
	td_t_put(&f.lane[1], "b", 5);					 /* key 5 */

	td_t_expect(&f, UINT64_MAX, false, "a-1 b-2", NULL);
	/* still unfinished: nothing more */
	td_t_expect(&f, UINT64_MAX, false, "", NULL);
	/* finished: it, then the lines it held back */
	td_spool_commit(&f.lane[0], seq, line, td_t_line(line, 50, "a", 3));
	td_t_expect(&f, UINT64_MAX, false, "a-3 b-4 b-5", NULL);

	/* reserved, its word not stored yet (no key known): the lane's last
	 * key (3) holds back the others' */
	atomic_fetch_add(f.lane[0].head, 1);
	td_t_put(&f.lane[1], "b", 6);
	td_t_expect(&f, UINT64_MAX, false, "", NULL);
	/* the owner is dead: stepped over, counted */
	td_t_expect(&f, UINT64_MAX, true, "b-6", &lost);
	cr_assert(eq(u64, lost, 1));

	/* the cutoff: keys below it only */
	td_t_put(&f.lane[1], "b", 7); /* key 7 */
	td_t_put(&f.lane[0], "a", 8); /* key 8 */
	td_t_expect(&f, 8, false, "b-7", NULL);
	td_t_expect(&f, 9, false, "a-8", NULL);
	free(mem);
}

/* A lane given up on at its unfinished line (its writer never came
 * back) holds back nothing. */
Test(spool, a_lane_given_up_on_holds_back_nothing)
{
	struct td_spool_file f;
	void *mem = td_t_lanes(64, 2, &f, td_t_key);
	struct td_spool_merge m;
	struct td_spool_rec r;
	uint64_t seq, used;
	unsigned lane;

	atomic_store(&td_t_clock, 0);
	cr_assert(eq(int, td_spool_reserve(&f.lane[0], 50, &seq, &used), 0));
	td_t_put(&f.lane[1], "b", 2);
	td_t_expect(&f, UINT64_MAX, false, "", NULL);
	td_spool_merge_begin(&m, &f, UINT64_MAX, false);
	m.stuck[0] = seq;
	cr_assert(eq(int, td_spool_merge_next(&m, &lane, &r), 1));
	cr_assert(eq(u32, lane, 1));
	cr_assert(eq(int, strncmp(r.ptr, "b-2 ", 4), 0));
	cr_assert(eq(int, td_spool_merge_next(&m, &lane, &r), 0));
	free(mem);
}

/* ---- lanes, live: what one thread caused comes after it ----------------- */

#define TD_T_CHAIN 3
#define TD_T_ROUNDS 3000

static uint64_t td_t_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct td_t_chain {
	struct td_spool_file f;
	_Atomic unsigned token; /* whose turn: round * TD_T_CHAIN + thread */
	_Atomic int done;
};

static void *td_t_chain_writer(void *arg)
{
	struct td_t_chain *c = ((struct td_t_arg *)arg)->c;
	unsigned me = ((struct td_t_arg *)arg)->id;
	char line[256], tag[8];

	snprintf(tag, sizeof(tag), "t%u", me);
	for (unsigned i = 0; i < TD_T_ROUNDS; i++) {
		unsigned turn = i * TD_T_CHAIN + me;
		/* two threads share a lane in some rounds: they race for its
		 * head with the others' lines before theirs */
		const struct td_spool_view *v = &c->f.lane[(me + i / 7) % c->f.nlanes];
		size_t len = td_t_line(line, 40 + (i * 13 + me) % 120, tag, i);

		while (atomic_load(&c->token) != turn)
			sched_yield();
		while (td_spool_put(v, line, len, NULL) != 0)
			sched_yield(); /* full: the reader makes room */
		/* the next thread's line is caused by this one's */
		atomic_store(&c->token, turn + 1);
	}
	atomic_fetch_add(&c->done, 1);
	return NULL;
}

/*
 * Threads pass a token round, each putting a line before passing it on,
 * into lanes that change (and are shared) from round to round, while a
 * reader merges live with its clock as the cutoff, as the flusher does:
 * every line comes out in the token's order.
 */
Test(spool, lanes_live_keep_what_caused_what_in_order, .timeout = 50)
{
	static struct td_t_chain c;
	static char out[512][256];
	pthread_t th[TD_T_CHAIN];
	struct td_t_arg links[TD_T_CHAIN];
	unsigned next = 0;
	void *mem = td_t_lanes(256, 4, &c.f, td_t_mono);

	for (unsigned i = 0; i < TD_T_CHAIN; i++) {
		links[i].c = &c;
		links[i].id = i;
		cr_assert(eq(int, pthread_create(&th[i], NULL, td_t_chain_writer, &links[i]), 0));
	}
	for (;;) {
		int done = atomic_load(&c.done), n;
		uint64_t cutoff = td_t_mono();

		atomic_thread_fence(memory_order_seq_cst);
		n = td_t_merge(&c.f, cutoff, false, out, 512, NULL);
		if (n == 0)
			sched_yield(); /* the writers may be waiting for a CPU */
		for (int i = 0; i < n; i++) {
			unsigned t, k;

			cr_assert(eq(int, sscanf(out[i], "t%u-%u ", &t, &k), 2), "%s", out[i]);
			cr_assert(eq(u32, k * TD_T_CHAIN + t, next), "line %s after %u", out[i], next);
			next++;
		}
		if (done == TD_T_CHAIN && n == 0 && next == TD_T_CHAIN * TD_T_ROUNDS)
			break;
	}
	for (unsigned i = 0; i < TD_T_CHAIN; i++)
		pthread_join(th[i], NULL);
	free(mem);
}
