/*
 * teardown: unit tests for the spool's ring (shim/core/spool.c): lines in
 * and out in order, whole, across the wrap; a full ring refuses without
 * reserving; many writer threads against a flusher thread; what a reader
 * of a dead process's spool makes of lines left half-written; damaged
 * headers refused.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	uint64_t pos = atomic_load(&v->hdr->tail), head = td_spool_head(v, pos);
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
	atomic_store(&v->hdr->tail, pos);
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
	head = atomic_load(&v.hdr->head);
	cr_assert(eq(int, td_spool_put(&v, line, td_t_line(line, 10, "b", 2), &used), -1));
	cr_assert(eq(u64, atomic_load(&v.hdr->head), head), "a refused line reserved room");
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

struct td_t_arg {
	struct td_t_ctx *c;
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
		    atomic_load(&c.v.hdr->tail) == atomic_load(&c.v.hdr->head))
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
	atomic_fetch_add(&v.hdr->head, 3);
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
	cr_assert(eq(u64, atomic_load(&v.hdr->tail), atomic_load(&v.hdr->head)));
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
	struct td_spool_view v, w;
	size_t size = td_spool_file_size(64);
	char *mem = td_t_spool(64, &v);

	cr_assert(eq(int, td_spool_view_of(mem, size, &w), 0));
	cr_assert(eq(u32, w.nslots, 64));
	cr_assert(eq(ptr, w.data, v.data));
	cr_assert(eq(int, td_spool_view_of(mem, size - 1, &w), -1), "size");
	v.hdr->nslots = 48;
	cr_assert(eq(int, td_spool_view_of(mem, td_spool_file_size(48), &w), -1), "power of two");
	v.hdr->nslots = 64;
	v.hdr->slot_size = 128;
	cr_assert(eq(int, td_spool_view_of(mem, size, &w), -1), "slot size");
	v.hdr->slot_size = TD_SPOOL_SLOT;
	mem[0] = 'X';
	cr_assert(eq(int, td_spool_view_of(mem, size, &w), -1), "magic");
	/* a head far past the tail is clamped to one ring */
	mem[0] = 'T';
	atomic_store(&v.hdr->head, 1000000);
	cr_assert(eq(u64, td_spool_head(&v, 0), 64));
	atomic_store(&v.hdr->tail, 2000000);
	cr_assert(eq(u64, td_spool_head(&v, 2000000), 2000000));
	free(mem);
}
