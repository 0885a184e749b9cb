/*
 * The rule index must never change a decision: for random policies
 * (ports single, ranged, wide, duplicated; roles; IPv4 and IPv6 address
 * blocks of every length, overlapping and listed twice; rules whose
 * program does not match) and random sockets, the indexed first
 * match equals the first match of a plain scan.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "teardown/policy.h"

static uint32_t td__rng = 12345;

static uint32_t td__rand(void)
{
	td__rng ^= td__rng << 13;
	td__rng ^= td__rng >> 17;
	td__rng ^= td__rng << 5;
	return td__rng;
}

static struct td_portrange td__range(void)
{
	struct td_portrange r;
	uint32_t kind = td__rand() % 4;

	r.lo = (uint16_t)(1 + td__rand() % 200);
	if (kind == 0)
		r.hi = r.lo;                          /* one port */
	else if (kind == 1)
		r.hi = (uint16_t)(r.lo + td__rand() % 20); /* small range */
	else if (kind == 2)
		r.hi = (uint16_t)(r.lo + 300 + td__rand() % 1000); /* too wide to index */
	else
		r.hi = r.lo; /* listed twice below */
	return r;
}

static void td__ports(struct td_portrange **v, uint32_t *n)
{
	*n = td__rand() % 3;
	if (*n == 0) {
		*v = NULL;
		return;
	}
	*v = calloc(*n + 1, sizeof(**v));
	for (uint32_t i = 0; i < *n; i++)
		(*v)[i] = td__range();
	if ((*v)[0].lo == (*v)[0].hi && td__rand() % 2) {
		(*v)[*n] = (*v)[0]; /* the same port twice */
		(*n)++;
	}
}

/*
 * An address from a small pool, so that blocks and sockets meet often:
 * 10.0.x.y and 2001:db8::x:y with x, y in 0..3, and 192.168.1.1.
 */
static void td__addr(uint8_t *family, uint8_t *addr)
{
	uint32_t k = td__rand() % 9;

	memset(addr, 0, 16);
	if (k == 8) {
		*family = AF_INET;
		addr[0] = 192, addr[1] = 168, addr[2] = 1, addr[3] = 1;
	} else if (k < 4) {
		*family = AF_INET;
		addr[0] = 10;
		addr[2] = (uint8_t)(td__rand() % 4);
		addr[3] = (uint8_t)(td__rand() % 4);
	} else {
		*family = AF_INET6;
		addr[0] = 0x20, addr[1] = 0x01, addr[2] = 0x0d, addr[3] = 0xb8;
		addr[13] = (uint8_t)(td__rand() % 4);
		addr[15] = (uint8_t)(td__rand() % 4);
	}
}

/* 1 to 3 remote blocks of varied lengths, sometimes one listed twice */
static void td__blocks(struct td_cidr **v, uint32_t *n)
{
	static const uint8_t len4[] = {0, 8, 16, 24, 30, 32};
	static const uint8_t len6[] = {0, 32, 64, 112, 126, 128};

	*n = 1 + td__rand() % 3;
	*v = calloc(*n + 1, sizeof(**v));
	for (uint32_t i = 0; i < *n; i++) {
		struct td_cidr *c = &(*v)[i];

		td__addr(&c->family, c->addr);
		c->prefix = c->family == AF_INET ? len4[td__rand() % 6] : len6[td__rand() % 6];
	}
	if (td__rand() % 4 == 0) {
		(*v)[*n] = (*v)[0];
		(*n)++;
	}
}

static void td__policy(struct td_policy *p, uint32_t n)
{
	memset(p, 0, sizeof(*p));
	p->rules = calloc(n, sizeof(*p->rules));
	p->n_rules = n;
	for (uint32_t i = 0; i < n; i++) {
		struct td_rule *r = &p->rules[i];

		r->role = (uint8_t)(td__rand() % 3);
		td__ports(&r->remote_port, &r->n_remote_port);
		if (td__rand() % 3 == 0)
			td__ports(&r->local_port, &r->n_local_port);
		if (td__rand() % 3 == 0)
			td__blocks(&r->remote, &r->n_remote);
		r->program = td__rand() % 10 == 0 ? strdup("nomatch*") : NULL;
	}
	td_policy_finish(p);
	td_policy_bind_program(p, "prog", "prog");
}

Test(index, same_as_scan)
{
	for (int round = 0; round < 40; round++) {
		struct td_policy p;
		struct td_index *ix;

		td__policy(&p, 1 + td__rand() % 300);
		cr_assert(eq(int, td_policy_build_index(&p), 0));
		ix = p.index;
		for (int i = 0; i < 3000; i++) {
			struct td_match_ctx ctx;
			int linear, indexed;

			memset(&ctx, 0, sizeof(ctx));
			ctx.known = TD_K_ROLE | TD_K_REMOTE;
			if (td__rand() % 2)
				ctx.known |= TD_K_LOCAL;
			ctx.role = td__rand() % 2 ? TD_ROLE_CLIENT : TD_ROLE_SERVER;
			td__addr(&ctx.remote.family, ctx.remote.addr);
			ctx.local.family = ctx.remote.family;
			ctx.remote.port = (uint16_t)(1 + td__rand() % 1400);
			ctx.local.port = (uint16_t)(1 + td__rand() % 1400);
			p.index = NULL;
			linear = td_policy_decide(&p, &ctx);
			p.index = ix;
			indexed = td_policy_decide(&p, &ctx);
			cr_assert(eq(int, indexed, linear), "round %d ctx %d", round, i);
		}
		td_policy_free(&p);
	}
}
