/*
 * teardown: the spool's ring, pure and lock-free (see
 * include/teardown/spool.h for the format).  Used by the library's
 * writers and flusher, by its recovery of dead processes' spools, and by
 * `teardown report`; nothing here makes a system call.
 */
#include <string.h>

#include "teardown/evrec.h"
#include "teardown/spool.h"

_Static_assert(sizeof(struct td_spool_hdr) <= TD_SPOOL_HDR, "header fits its page");
_Static_assert((TD_SPOOL_SLOTS & (TD_SPOOL_SLOTS - 1)) == 0, "slots: a power of two");

size_t td_spool_file_size(uint32_t nslots)
{
	return TD_SPOOL_HDR + (size_t)nslots * (sizeof(uint64_t) + TD_SPOOL_SLOT);
}

static void td__lane(struct td_spool_file *f, uint32_t l, uint32_t per, bool keyed)
{
	struct td_spool_hdr *h = f->hdr;
	struct td_spool_view *v = &f->lane[l];
	char *mem = (char *)h;
	size_t nslots = (size_t)per * f->nlanes;

	memset(v, 0, sizeof(*v));
	v->hdr = h;
	v->head = l == 0 ? &h->head : &h->lanes[l].head;
	v->tail = l == 0 ? &h->tail : &h->lanes[l].tail;
	v->last_key = keyed ? &h->lanes[l].last_key : NULL;
	v->words = (_Atomic uint64_t *)(mem + TD_SPOOL_HDR) + (size_t)l * per;
	v->data = mem + TD_SPOOL_HDR + nslots * sizeof(uint64_t) + (size_t)l * per * TD_SPOOL_SLOT;
	v->nslots = per;
	v->slot = TD_SPOOL_SLOT;
	v->keyed = keyed;
}

static void td__file(void *mem, uint32_t nslots, uint32_t nlanes, bool keyed,
		     struct td_spool_file *f)
{
	memset(f, 0, sizeof(*f));
	f->hdr = mem;
	f->nlanes = nlanes;
	for (uint32_t l = 0; l < nlanes; l++)
		td__lane(f, l, nslots / nlanes, keyed);
}

void td_spool_init_file(void *mem, uint32_t nslots, uint32_t nlanes, int32_t pid,
			struct td_spool_file *f)
{
	struct td_spool_hdr *h = mem;

	memset(mem, 0, TD_SPOOL_HDR + (size_t)nslots * sizeof(uint64_t));
	memcpy(h->magic, TD_SPOOL_MAGIC, sizeof(h->magic));
	h->version = TD_SPOOL_VERSION;
	h->hdr_size = TD_SPOOL_HDR;
	h->slot_size = TD_SPOOL_SLOT;
	h->nslots = nslots;
	h->pid = pid;
	h->nlanes = nlanes;
	td__file(mem, nslots, nlanes, true, f);
}

void td_spool_init(void *mem, uint32_t nslots, int32_t pid, struct td_spool_view *v)
{
	struct td_spool_file f;

	td_spool_init_file(mem, nslots, 1, pid, &f);
	*v = f.lane[0];
}

/* src cut to cap - 1 bytes, NUL-padded to cap.  (A loop, not strnlen():
 * with LTO the compiler sees sources smaller than cap and refuses the
 * bound, though strnlen() stops at the NUL.) */
static void td__cpy(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	while (src != NULL && n < cap - 1 && src[n] != '\0') {
		dst[n] = src[n];
		n++;
	}
	memset(dst + n, 0, cap - n);
}

void td_spool_set_writer(const struct td_spool_view *v, const char *host, const char *prog)
{
	td__cpy(v->hdr->host, sizeof(v->hdr->host), host);
	td__cpy(v->hdr->prog, sizeof(v->hdr->prog), prog);
}

void td_spool_writer_of(const struct td_spool_view *v, struct td_spool_writer *w)
{
	const struct td_spool_hdr *h = v->hdr;

	memset(w, 0, sizeof(*w));
	if (h->version >= 2) {
		memcpy(w->host, h->host, sizeof(w->host) - 1);
		memcpy(w->prog, h->prog, sizeof(w->prog) - 1);
	}
	td_event_who_render(&w->who, w->host[0] ? w->host : NULL, h->pid,
			    w->prog[0] ? w->prog : NULL);
}

size_t td_spool_rec_line(const struct td_spool_rec *r, const struct td_spool_writer *w, char *buf,
			 size_t cap, const char **line)
{
	return td_spool_rec_line_settled(r, w, buf, cap, line, NULL, NULL);
}

size_t td_spool_rec_line_settled(const struct td_spool_rec *r, const struct td_spool_writer *w,
				 char *buf, size_t cap, const char **line,
				 td_evrec_settle_fn *settle, void *ctx)
{
	size_t n;

	if (r->kind == TD_SR_LINE) {
		*line = r->ptr;
		return r->len;
	}
	if (r->kind != TD_SR_EVENT)
		return 0;
	n = td_evrec_line_settled(r->ptr, r->len, &w->who, buf, cap, settle, ctx);
	*line = buf;
	return n;
}

int td_spool_file_of(void *mem, size_t size, struct td_spool_file *f)
{
	const struct td_spool_hdr *h = mem;
	uint32_t nlanes = 1;

	if (size < TD_SPOOL_HDR || memcmp(h->magic, TD_SPOOL_MAGIC, sizeof(h->magic)) != 0 ||
	    h->version < 1 || h->version > TD_SPOOL_VERSION || h->hdr_size != TD_SPOOL_HDR ||
	    h->slot_size != TD_SPOOL_SLOT || h->nslots == 0 || h->nslots > TD_SPOOL_MAX_SLOTS ||
	    (h->nslots & (h->nslots - 1)) != 0 || size != td_spool_file_size(h->nslots))
		return -1;
	if (h->version >= 3) {
		nlanes = h->nlanes;
		if (nlanes == 0 || nlanes > TD_SPOOL_MAX_LANES || (nlanes & (nlanes - 1)) != 0 ||
		    nlanes > h->nslots)
			return -1;
	}
	td__file(mem, h->nslots, nlanes, h->version >= 3, f);
	return 0;
}

/* Slots of a line; the slot size is a constant (td_spool_file_of checks
 * it), so this is a shift, not a division. */
static inline uint64_t td__slots(const struct td_spool_view *v, size_t len)
{
	(void)v;
	return (len + TD_SPOOL_SLOT - 1) / TD_SPOOL_SLOT;
}

/* The key of a record reserved at seq: the writer's clock, or its position. */
static inline uint64_t td__key(const struct td_spool_view *v, uint64_t seq)
{
	return v->key != NULL ? v->key() : seq;
}

int td_spool_reserve(const struct td_spool_view *v, size_t len, uint64_t *seq, uint64_t *used)
{
	uint64_t n = v->nslots, hd, tl, off, pad, k, key = 0;
	size_t stored = len + (v->keyed ? TD_SPOOL_KEY : 0);

	k = td__slots(v, stored);
	if (len == 0 || stored > TD_SW_LEN_MASK || k > n)
		return -1;
	hd = atomic_load_explicit(v->head, memory_order_acquire);
	for (;;) {
		/* acquire: the flusher's reads of the slots we may reuse are done */
		tl = atomic_load_explicit(v->tail, memory_order_acquire);
		if ((int64_t)(hd - tl) < 0) {
			/* our head is older than the tail we read: read it again */
			hd = atomic_load_explicit(v->head, memory_order_acquire);
			continue;
		}
		off = hd & (n - 1);
		pad = off + k > n ? n - off : 0;
		if (hd + pad + k - tl > n)
			return -1;
		/*
		 * The key after the head it is to follow was read: the records
		 * before it took theirs before their compare-and-swap, which
		 * this one's reads; when this one fails, another took the
		 * place, and the clock is read again (a lane's keys grow with
		 * its positions).
		 */
		if (v->keyed)
			key = td__key(v, hd + pad);
		if (atomic_compare_exchange_weak_explicit(v->head, &hd, hd + pad + k,
							  memory_order_seq_cst,
							  memory_order_acquire))
			break;
	}
	if (pad)
		atomic_store_explicit(&v->words[off], td_sw_make(hd, TD_SW_PAD, pad),
				      memory_order_release);
	hd += pad;
	if (v->keyed)
		memcpy(v->data + (hd & (n - 1)) * TD_SPOOL_SLOT, &key, TD_SPOOL_KEY);
	/*
	 * The length first: a reader of a dead spool can step over this line.
	 * release: the key before it, for a live reader that finds the line
	 * unfinished (td_spool_merge_next holds back only what comes after it).
	 */
	atomic_store_explicit(&v->words[hd & (n - 1)], td_sw_make(hd, TD_SW_RESERVED, stored),
			      memory_order_release);
	*seq = hd;
	if (used)
		*used = hd + k - tl;
	return 0;
}

void td_spool_commit(const struct td_spool_view *v, uint64_t seq, const char *line, size_t len)
{
	uint64_t i = seq & (v->nslots - 1);
	size_t at = v->keyed ? TD_SPOOL_KEY : 0;

	memcpy(v->data + i * TD_SPOOL_SLOT + at, line, len);
	/*
	 * release: the bytes above before the tag.  Not seq_cst: on x86 that
	 * is an xchg, which waits for the copy's stores to reach the cache
	 * (perf on haproxy and nginx: 5 times the cost of formatting the
	 * line).  The writer's look at the flusher's flags is ordered after
	 * its reservation's compare-and-swap instead, and a flusher that finds
	 * a line reserved but not yet committed comes back for it
	 * (shim/rt/spool.c, td_spool_tick).
	 */
	atomic_store_explicit(&v->words[i], td_sw_make(seq, TD_SW_COMMIT, len + at),
			      memory_order_release);
}

int td_spool_put(const struct td_spool_view *v, const char *line, size_t len, uint64_t *used)
{
	uint64_t seq;

	if (td_spool_reserve(v, len, &seq, used) != 0)
		return -1;
	td_spool_commit(v, seq, line, len);
	return 0;
}

uint64_t td_spool_head(const struct td_spool_view *v, uint64_t tail)
{
	uint64_t hd = atomic_load_explicit(v->head, memory_order_acquire);

	if ((int64_t)(hd - tail) < 0)
		return tail;
	if (hd - tail > v->nslots)
		return tail + v->nslots;
	return hd;
}

static bool td__tagged(const struct td_spool_view *v, uint64_t pos, uint64_t *w)
{
	*w = atomic_load_explicit(&v->words[pos & (v->nslots - 1)], memory_order_acquire);
	return td_sw_state(*w) != TD_SW_NONE && td_sw_seq(*w) == (pos & TD_SW_SEQ_MASK);
}

/* A record that cannot be read: find the next one by its tag. */
static void td__lost(const struct td_spool_view *v, uint64_t pos, uint64_t head,
		     struct td_spool_rec *r)
{
	uint64_t j = pos + 1, w;

	while (j < head && !td__tagged(v, j, &w))
		j++;
	r->kind = TD_SR_LOST;
	r->next = j;
}

void td_spool_next(const struct td_spool_view *v, uint64_t pos, uint64_t head, bool dead,
		   struct td_spool_rec *r)
{
	uint64_t n = v->nslots, off = pos & (n - 1), w, k;
	size_t len;

	memset(r, 0, sizeof(*r));
	r->kind = TD_SR_NONE;
	r->at = pos;
	r->next = pos;
	if (pos >= head)
		return;
	if (!td__tagged(v, pos, &w)) {
		/* not begun: a writer between its reservation and first store */
		if (dead)
			td__lost(v, pos, head, r);
		return;
	}
	len = td_sw_len(w);
	switch (td_sw_state(w)) {
	case TD_SW_PAD:
		/* the rest of the ring, up to its end */
		if (len == 0 || off + len != n || pos + len > head) {
			td__lost(v, pos, head, r);
			return;
		}
		r->kind = TD_SR_SKIP;
		r->next = pos + len;
		return;
	case TD_SW_RESERVED:
		if (!dead) {
			/* unfinished: its key, when it has one (0: none) */
			if (v->keyed && len > TD_SPOOL_KEY && off + td__slots(v, len) <= n)
				memcpy(&r->key, v->data + off * v->slot, TD_SPOOL_KEY);
			return;
		}
		k = td__slots(v, len);
		if (len == 0 || off + k > n || pos + k > head) {
			td__lost(v, pos, head, r);
			return;
		}
		r->kind = TD_SR_LOST;
		r->next = pos + k;
		return;
	default: /* TD_SW_COMMIT */
		k = td__slots(v, len);
		if (len == 0 || off + k > n || pos + k > head) {
			td__lost(v, pos, head, r);
			return;
		}
		if (v->keyed && len <= TD_SPOOL_KEY) {
			td__lost(v, pos, head, r);
			return;
		}
		r->ptr = v->data + off * v->slot;
		r->len = len;
		r->next = pos + k;
		r->key = pos;
		if (v->keyed) {
			memcpy(&r->key, r->ptr, TD_SPOOL_KEY);
			r->ptr += TD_SPOOL_KEY;
			r->len -= TD_SPOOL_KEY;
			len = r->len;
		}
		if ((unsigned char)r->ptr[0] == TD_EVREC_MAGIC) {
			r->kind = TD_SR_EVENT; /* checked as it is unpacked */
			return;
		}
		/* one line: its only newline at its end */
		if (r->ptr[len - 1] != '\n' || memchr(r->ptr, '\n', len - 1) != NULL) {
			r->ptr = NULL;
			r->len = 0;
			r->kind = TD_SR_LOST;
			return;
		}
		r->kind = TD_SR_LINE;
		return;
	}
}

/* ---- the lanes, merged by key ------------------------------------------- */

void td_spool_merge_begin(struct td_spool_merge *m, const struct td_spool_file *f,
			  uint64_t cutoff, bool dead)
{
	memset(m, 0, sizeof(*m));
	m->f = f;
	m->cutoff = cutoff;
	m->dead = dead;
	for (uint32_t l = 0; l < f->nlanes; l++) {
		const struct td_spool_view *v = &f->lane[l];

		m->pos[l] = atomic_load_explicit(v->tail, memory_order_acquire);
		m->head[l] = td_spool_head(v, m->pos[l]);
		m->last[l] = v->last_key != NULL
				     ? atomic_load_explicit(v->last_key, memory_order_relaxed)
				     : 0;
		m->stuck[l] = UINT64_MAX;
	}
}

/* Lane l's next record to take, stepping over padding and what is lost. */
static void td__peek(struct td_spool_merge *m, uint32_t l)
{
	const struct td_spool_view *v = &m->f->lane[l];
	struct td_spool_rec *r = &m->peek[l];

	while (m->pos[l] < m->head[l]) {
		td_spool_next(v, m->pos[l], m->head[l], m->dead, r);
		switch (r->kind) {
		case TD_SR_LINE:
		case TD_SR_EVENT:
			m->state[l] = TD_SM_PEEKED;
			return;
		case TD_SR_NONE:
			/* a writer still copying (never when dead); r->key: its
			 * record's key once it has stored it */
			m->state[l] = m->pos[l] == m->stuck[l] ? TD_SM_DONE : TD_SM_BLOCKED;
			return;
		case TD_SR_LOST:
			m->lost++;
			/* fall through */
		default: /* TD_SR_SKIP */
			m->pos[l] = r->next;
		}
	}
	m->state[l] = TD_SM_DONE;
}

int td_spool_merge_next(struct td_spool_merge *m, unsigned *lane, struct td_spool_rec *r)
{
	uint64_t cap = UINT64_MAX; /* no key above a blocked lane's last */
	unsigned best = UINT32_MAX;

	for (uint32_t l = 0; l < m->f->nlanes; l++) {
		if (m->state[l] == TD_SM_EMPTY || m->state[l] == TD_SM_BLOCKED)
			td__peek(m, l);
		/* an unfinished record's key when known, else the least it can
		 * be: its lane's last */
		if (m->state[l] == TD_SM_BLOCKED) {
			uint64_t least = m->peek[l].key > m->last[l] ? m->peek[l].key : m->last[l];

			if (least < cap)
				cap = least;
		}
		if (m->state[l] == TD_SM_PEEKED &&
		    (best == UINT32_MAX || m->peek[l].key < m->peek[best].key))
			best = l;
	}
	if (best == UINT32_MAX || m->peek[best].key > cap ||
	    (!m->dead && m->peek[best].key >= m->cutoff))
		return 0;
	*lane = best;
	*r = m->peek[best];
	m->pos[best] = r->next;
	m->last[best] = r->key;
	m->state[best] = TD_SM_EMPTY;
	return 1;
}
