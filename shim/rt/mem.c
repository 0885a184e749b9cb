/*
 * teardown: the library's allocator (include/teardown/mem.h): what a
 * policy and its parse allocate comes from mappings of the library's own,
 * never from the program's heap.
 *
 * A policy is allocated at start-up and at each reload, and freed, whole,
 * when a later generation replaces it; its parse's buffers are freed as
 * it goes.  So blocks are cut from 256 KiB mappings one after the other
 * and never reused singly: a mapping goes back when its last block is
 * freed (the current one is started over instead).  A block of 64 KiB or
 * more has a mapping of its own, untouched and so zero until written
 * (the rule index's tables).  realloc() grows the last block of the
 * current mapping in place: a growing array parsed into costs no copy.
 *
 * Why: the program's heap is the program's.  A policy of 8 KiB and a
 * parse buffer of 16 KiB freed in its middle moved where busybox
 * httpd's own allocations landed, and every child it forked then wrote
 * five heap pages where it wrote three (README, Tests and benchmarks).
 * It also keeps the library's start-up out of a malloc() the program
 * may have replaced with an allocator of its own.
 *
 * Never called on a path a signal handler reaches (as malloc() was not):
 * start-up, a reload in the worker, the policy's observing twins.  A
 * lock that yields while another thread holds it (as the spool's claim
 * does) guards the mapping being cut; a fork() made while another
 * thread held it leaves it held in the child, which lets it go
 * (td_mem_after_fork_child()).
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "rt.h"
#include "teardown/mem.h"

#define TD_MEM_CHUNK (256u * 1024u)
#define TD_MEM_BIG (64u * 1024u)
#define TD_MEM_ALIGN 16u

struct td_mem_chunk {
	size_t size; /* bytes mapped */
	size_t used; /* bytes cut, this header included */
	size_t live; /* blocks not yet freed */
	size_t pad;
};
struct td_mem_hdr {
	struct td_mem_chunk *chunk;
	size_t size; /* bytes the block may hold */
};
_Static_assert(sizeof(struct td_mem_chunk) % TD_MEM_ALIGN == 0 &&
		       sizeof(struct td_mem_hdr) == TD_MEM_ALIGN,
	       "blocks stay 16-byte aligned");

/* the mapping blocks are cut from; both change only at start-up and at a
 * reload, so they sit with what a forked child reads and no one writes */
TD_CHILD_READ static struct td_mem_chunk *td__cur;
TD_CHILD_READ static _Atomic int td__lock;

static void td__lock_take(void)
{
	int expect = 0;

	while (!atomic_compare_exchange_weak_explicit(&td__lock, &expect, 1, memory_order_acquire,
						      memory_order_relaxed)) {
		expect = 0;
		sched_yield();
	}
}

static void td__lock_give(void)
{
	atomic_store_explicit(&td__lock, 0, memory_order_release);
}

static size_t td__round(size_t n, size_t to)
{
	return (n + to - 1) & ~(to - 1);
}

static struct td_mem_chunk *td__map(size_t size)
{
	struct td_mem_chunk *c = mmap(NULL, size, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (c == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	c->size = size;
	c->used = sizeof(*c);
	c->live = 0;
	return c;
}

static void *td__cut(struct td_mem_chunk *c, size_t size)
{
	struct td_mem_hdr *h = (struct td_mem_hdr *)((char *)c + c->used);

	h->chunk = c;
	h->size = size;
	c->used += sizeof(*h) + size;
	c->live++;
	return h + 1;
}

/* A block of at least n bytes; *fresh: from a mapping never written. */
static void *td__alloc(size_t n, bool *fresh)
{
	struct td_mem_chunk *c;
	size_t size;
	void *p;

	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	size = td__round(n ? n : 1, TD_MEM_ALIGN);
	if (size + sizeof(struct td_mem_hdr) >= TD_MEM_BIG) {
		c = td__map(td__round(sizeof(*c) + sizeof(struct td_mem_hdr) + size, 4096));
		if (c == NULL)
			return NULL;
		*fresh = true;
		return td__cut(c, size);
	}
	*fresh = false;
	td__lock_take();
	c = td__cur;
	if (c == NULL || c->used + sizeof(struct td_mem_hdr) + size > c->size) {
		struct td_mem_chunk *n2 = td__map(TD_MEM_CHUNK);

		if (n2 == NULL) {
			td__lock_give();
			return NULL;
		}
		if (c != NULL && c->live == 0)
			munmap(c, c->size);
		td__cur = c = n2;
	}
	p = td__cut(c, size);
	td__lock_give();
	return p;
}

void *td_mem_malloc(size_t n)
{
	bool fresh;

	return td__alloc(n, &fresh);
}

void *td_mem_calloc(size_t n, size_t size)
{
	bool fresh;
	void *p;

	if (size != 0 && n > SIZE_MAX / 2 / size) {
		errno = ENOMEM;
		return NULL;
	}
	p = td__alloc(n * size, &fresh);
	if (p != NULL && !fresh)
		memset(p, 0, n * size);
	return p;
}

void td_mem_free(void *p)
{
	struct td_mem_hdr *h;
	struct td_mem_chunk *c;

	if (p == NULL)
		return;
	h = (struct td_mem_hdr *)p - 1;
	c = h->chunk;
	td__lock_take();
	if (--c->live == 0) {
		if (c == td__cur)
			c->used = sizeof(*c); /* started over */
		else
			munmap(c, c->size);
	}
	td__lock_give();
}

void *td_mem_realloc(void *p, size_t n)
{
	struct td_mem_hdr *h;
	struct td_mem_chunk *c;
	size_t size;
	void *q;

	if (p == NULL)
		return td_mem_malloc(n);
	h = (struct td_mem_hdr *)p - 1;
	if (n <= h->size)
		return p;
	if (n > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	size = td__round(n, TD_MEM_ALIGN);
	td__lock_take();
	c = h->chunk;
	/* the current mapping's last block: grown where it is */
	if (c == td__cur && (char *)p + h->size == (char *)c + c->used &&
	    c->used + (size - h->size) <= c->size &&
	    size + sizeof(*h) < TD_MEM_BIG) {
		c->used += size - h->size;
		h->size = size;
		td__lock_give();
		return p;
	}
	td__lock_give();
	q = td_mem_malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, h->size);
	td_mem_free(p);
	return q;
}

static char *td__dup(const char *s, size_t len)
{
	char *d = td_mem_malloc(len + 1);

	if (d != NULL) {
		memcpy(d, s, len);
		d[len] = '\0';
	}
	return d;
}

char *td_mem_strndup(const char *s, size_t n)
{
	return td__dup(s, strnlen(s, n));
}

char *td_mem_strdup(const char *s)
{
	return td__dup(s, strlen(s));
}

/* A fork() while another thread cut a block: the child has no such
 * thread, and lets the lock go (td_store_changed: no page written for it
 * otherwise). */
TD_CHILD_RUNS
void td_mem_after_fork_child(void)
{
	td_store_changed(&td__lock, 0);
}
