/*
 * teardown: rule matching.  This is where a socket's rule is decided:
 * the first rule whose every criterion matches wins.  Called once per
 * socket (at bind, connect or accept), never at close.
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/mem.h"
#include "teardown/fmt.h"
#include "teardown/policy.h"

static bool td__cidr_has(const struct td_cidr *c, const struct td_addr *a)
{
	unsigned full, rest;

	if (c->family != a->family)
		return false;
	full = c->prefix / 8u;
	rest = c->prefix % 8u;
	if (memcmp(c->addr, a->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((c->addr[full] ^ a->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool td__cidrs_have(const struct td_cidr *v, uint32_t n,
			   const struct td_addr *a)
{
	for (uint32_t i = 0; i < n; i++)
		if (td__cidr_has(&v[i], a))
			return true;
	return false;
}

static bool td__ports_have(const struct td_portrange *v, uint32_t n,
			   uint16_t port)
{
	for (uint32_t i = 0; i < n; i++)
		if (port >= v[i].lo && port <= v[i].hi)
			return true;
	return false;
}

bool td_rule_match(const struct td_rule *r, const struct td_match_ctx *ctx)
{
	if (!r->program_ok)
		return false;
	if (r->role != TD_ROLE_ANY && (ctx->known & TD_K_ROLE) &&
	    r->role != ctx->role)
		return false;
	if (ctx->known & TD_K_REMOTE) {
		if (r->n_remote &&
		    !td__cidrs_have(r->remote, r->n_remote, &ctx->remote))
			return false;
		if (r->n_remote_port &&
		    !td__ports_have(r->remote_port, r->n_remote_port,
				    ctx->remote.port))
			return false;
	}
	if (r->n_local || r->n_local_port) {
		if (!(ctx->known & TD_K_LOCAL))
			return false;
		if (r->n_local && !td__cidrs_have(r->local, r->n_local, &ctx->local))
			return false;
		if (r->n_local_port &&
		    !td__ports_have(r->local_port, r->n_local_port, ctx->local.port))
			return false;
	}
	return true;
}

static int td__decide_indexed(const struct td_policy *p, const struct td_index *ix,
			      const struct td_match_ctx *ctx);

int td_policy_decide(const struct td_policy *p, const struct td_match_ctx *ctx)
{
	/* the index needs the remote port; at bind() every rule is a candidate */
	if (p->index != NULL && (ctx->known & TD_K_REMOTE))
		return td__decide_indexed(p, p->index, ctx);
	for (uint32_t i = 0; i < p->n_rules; i++)
		if (td_rule_match(&p->rules[i], ctx))
			return (int)i;
	return -1;
}

void td_policy_bind_program(struct td_policy *p, const char *prog,
			    const char *exe)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		struct td_rule *r = &p->rules[i];

		r->program_ok = r->program == NULL ||
				(prog && fnmatch(r->program, prog, 0) == 0) ||
				(exe && fnmatch(r->program, exe, 0) == 0);
	}
}

void td_policy_finish(struct td_policy *p)
{
	p->uses_local = p->any_fault = p->any_bytes_fault = p->any_leak = false;
	for (uint32_t i = 0; i < p->n_rules; i++) {
		const struct td_rule *r = &p->rules[i];

		p->uses_local |= r->n_local || r->n_local_port;
		p->any_fault |= r->has_fault;
		p->any_bytes_fault |= r->has_fault && (r->fault.rst_after_bytes ||
						       r->fault.fin_after_bytes ||
						       r->fault.rst_after_bytes_in);
		p->any_leak |= r->leak_after_s != 0;
	}
}

struct td_index;
static void td__index_free(struct td_index *ix);

void td_policy_free(struct td_policy *p)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		struct td_rule *r = &p->rules[i];

		td_mem_free(r->program);
		td_mem_free(r->remote);
		td_mem_free(r->local);
		td_mem_free(r->remote_port);
		td_mem_free(r->local_port);
	}
	td_mem_free(p->rules);
	p->rules = NULL;
	td_mem_free(p->matched);
	p->matched = NULL;
	td_mem_free(p->observe); /* its pointers are the rules' own */
	p->observe = NULL;
	p->n_rules = 0;
	td__index_free(p->index);
	p->index = NULL;
}

/*
 * The rule index.  A rule whose remote_port criterion covers few ports is
 * filed under each of those ports; failing that, one with a small
 * local_port criterion under its local ports; failing that, one with a
 * remote criterion under each of its address blocks (a hash of the block,
 * looked up once per prefix length the policy uses); every other rule is
 * "generic".  Each list is in rule order, so the first match is found by
 * walking the lists that can hold candidates together, smallest rule
 * number first: the answer is the same as a scan of all rules.  Rules
 * whose program does not match this process are left out altogether.
 */
#define TD_INDEX_MAX_PORTS 256u

struct td_plist {
	uint32_t *start; /* 65537 offsets into rules */
	uint32_t *rules;
};

/* One address block of the remote index, and its rules. */
struct td_cslot {
	struct td_cidr key; /* address masked to its prefix; family 0 = empty */
	uint32_t off, n;    /* its rules: cidx.rules[off .. off + n) */
};

struct td_cidx {
	struct td_cslot *slots;
	uint32_t mask; /* slots - 1, a power of two minus one */
	uint32_t *rules;
	/* the prefix lengths in use, per family (index 0: IPv4, 1: IPv6) */
	uint8_t prefixes[2][129];
	uint8_t n_prefixes[2];
};

struct td_index {
	struct td_plist remote, local;
	struct td_cidx cidr;
	uint32_t *generic;
	uint32_t n_generic;
};

static uint32_t td__span(const struct td_portrange *v, uint32_t n)
{
	uint32_t total = 0;

	for (uint32_t i = 0; i < n && total <= TD_INDEX_MAX_PORTS; i++)
		total += (uint32_t)(v[i].hi - v[i].lo) + 1;
	return total;
}

/* 1: keyed by remote port, 2: by local port, 3: by remote block, 0: generic */
static int td__key(const struct td_rule *r)
{
	if (r->n_remote_port && td__span(r->remote_port, r->n_remote_port) <= TD_INDEX_MAX_PORTS)
		return 1;
	if (r->n_local_port && td__span(r->local_port, r->n_local_port) <= TD_INDEX_MAX_PORTS)
		return 2;
	if (r->n_remote)
		return 3;
	return 0;
}

/* a's first prefix bits, the rest zero: the block a lies in */
static void td__mask(struct td_cidr *out, uint8_t family, uint8_t prefix, const uint8_t *addr)
{
	unsigned full = prefix / 8u, rest = prefix % 8u;

	memset(out, 0, sizeof(*out));
	out->family = family;
	out->prefix = prefix;
	memcpy(out->addr, addr, full);
	if (rest)
		out->addr[full] = addr[full] & (uint8_t)(0xff00u >> rest);
}

static uint32_t td__chash(const struct td_cidr *k)
{
	return (uint32_t)td_fnv64(k, sizeof(*k));
}

/* The slot of block k: its own, or the empty one where it would go. */
static struct td_cslot *td__cslot(const struct td_cidx *cx, const struct td_cidr *k)
{
	for (uint32_t h = td__chash(k);; h++) {
		struct td_cslot *sl = &cx->slots[h & cx->mask];

		if (sl->key.family == 0 || memcmp(&sl->key, k, sizeof(*k)) == 0)
			return sl;
	}
}

/*
 * File every (block, rule) pair of the rules keyed by block: a first pass
 * counts per block, a second fills each block's list in rule order (a
 * rule naming one block twice is filed once).
 */
static int td__cidx_build(struct td_cidx *cx, const struct td_policy *p)
{
	uint32_t pairs = 0, pos = 0;

	for (uint32_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].program_ok && td__key(&p->rules[i]) == 3)
			pairs += p->rules[i].n_remote;
	cx->mask = 15;
	while (cx->mask < pairs * 2 + 1)
		cx->mask = cx->mask * 2 + 1;
	cx->slots = td_mem_calloc((size_t)cx->mask + 1, sizeof(*cx->slots));
	cx->rules = td_mem_malloc((pairs ? pairs : 1) * sizeof(uint32_t));
	if (cx->slots == NULL || cx->rules == NULL)
		return -ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < p->n_rules; i++) {
			const struct td_rule *r = &p->rules[i];

			if (!r->program_ok || td__key(r) != 3)
				continue;
			for (uint32_t k = 0; k < r->n_remote; k++) {
				struct td_cidr key;
				struct td_cslot *sl;

				td__mask(&key, r->remote[k].family, r->remote[k].prefix, r->remote[k].addr);
				sl = td__cslot(cx, &key);
				if (pass == 0) {
					if (sl->key.family == 0) {
						int f = key.family == AF_INET6;
						bool seen = false;

						sl->key = key;
						for (unsigned j = 0; j < cx->n_prefixes[f]; j++)
							seen |= cx->prefixes[f][j] == key.prefix;
						if (!seen)
							cx->prefixes[f][cx->n_prefixes[f]++] = key.prefix;
					}
					/* counted once per rule: n is its last rule + 1 here */
					if (sl->off != i + 1) {
						sl->off = i + 1;
						sl->n++;
					}
				} else if (sl->n == 0 || cx->rules[sl->off + sl->n - 1] != i) {
					cx->rules[sl->off + sl->n++] = i;
				}
			}
		}
		if (pass == 0) {
			/* offsets from the counts; n counts again in the fill */
			for (uint32_t j = 0; j <= cx->mask; j++) {
				struct td_cslot *sl = &cx->slots[j];

				if (sl->key.family == 0)
					continue;
				sl->off = pos;
				pos += sl->n;
				sl->n = 0;
			}
		}
	}
	return 0;
}

/*
 * Walk the (rule, port) pairs filed under key, in rule order, each once
 * (a rule listing a port twice is filed once: last[port] remembers the
 * last rule seen there).  With rules == NULL it counts per port; else it
 * fills the lists, count[] then being the fill position of each port.
 */
static void td__plist_walk(const struct td_policy *p, int key, uint32_t *count,
			   uint32_t *last, const uint32_t *start, uint32_t *rules)
{
	for (uint32_t i = 0; i < p->n_rules; i++) {
		const struct td_rule *r = &p->rules[i];
		const struct td_portrange *v = key == 1 ? r->remote_port : r->local_port;
		uint32_t n = key == 1 ? r->n_remote_port : r->n_local_port;

		if (!r->program_ok || td__key(r) != key)
			continue;
		for (uint32_t k = 0; k < n; k++)
			for (uint32_t port = v[k].lo; port <= v[k].hi; port++) {
				if (last[port] == i + 1)
					continue;
				last[port] = i + 1;
				if (rules != NULL)
					rules[start[port] + count[port]] = i;
				count[port]++;
			}
	}
}

static int td__plist_build(struct td_plist *pl, const struct td_policy *p, int key)
{
	uint32_t *count = td_mem_calloc(65536, sizeof(uint32_t));
	uint32_t *last = td_mem_calloc(65536, sizeof(uint32_t));
	int rc = -ENOMEM;

	if (count == NULL || last == NULL)
		goto out;
	td__plist_walk(p, key, count, last, NULL, NULL);
	pl->start = td_mem_malloc(65537 * sizeof(uint32_t));
	if (pl->start == NULL)
		goto out;
	pl->start[0] = 0;
	for (uint32_t port = 0; port < 65536; port++)
		pl->start[port + 1] = pl->start[port] + count[port];
	pl->rules = td_mem_malloc((pl->start[65536] ? pl->start[65536] : 1) * sizeof(uint32_t));
	if (pl->rules == NULL)
		goto out;
	memset(count, 0, 65536 * sizeof(uint32_t));
	memset(last, 0, 65536 * sizeof(uint32_t));
	td__plist_walk(p, key, count, last, pl->start, pl->rules);
	rc = 0;
out:
	td_mem_free(count);
	td_mem_free(last);
	return rc;
}

static void td__index_free(struct td_index *ix)
{
	if (ix == NULL)
		return;
	td_mem_free(ix->remote.start);
	td_mem_free(ix->remote.rules);
	td_mem_free(ix->local.start);
	td_mem_free(ix->local.rules);
	td_mem_free(ix->cidr.slots);
	td_mem_free(ix->cidr.rules);
	td_mem_free(ix->generic);
	td_mem_free(ix);
}

int td_policy_build_index(struct td_policy *p)
{
	struct td_index *ix = td_mem_calloc(1, sizeof(*ix));

	if (ix == NULL)
		return -ENOMEM;
	ix->generic = td_mem_malloc((p->n_rules ? p->n_rules : 1) * sizeof(uint32_t));
	if (ix->generic == NULL || td__plist_build(&ix->remote, p, 1) != 0 ||
	    td__plist_build(&ix->local, p, 2) != 0 || td__cidx_build(&ix->cidr, p) != 0) {
		td__index_free(ix);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].program_ok && td__key(&p->rules[i]) == 0)
			ix->generic[ix->n_generic++] = i;
	td__index_free(p->index);
	p->index = ix;
	return 0;
}

/* A list of candidate rules, in rule order, and how far it was walked. */
struct td__cursor {
	const uint32_t *v;
	uint32_t n, k;
};

static int td__decide_indexed(const struct td_policy *p, const struct td_index *ix,
			      const struct td_match_ctx *ctx)
{
	/* remote port, local port, generic, and one per prefix length */
	struct td__cursor c[3 + 129];
	uint16_t rp = ctx->remote.port, lp = ctx->local.port;
	unsigned nc = 0;
	int f = ctx->remote.family == AF_INET6;

	c[nc++] = (struct td__cursor){ix->remote.rules + ix->remote.start[rp],
				      ix->remote.start[rp + 1] - ix->remote.start[rp], 0};
	if (ctx->known & TD_K_LOCAL)
		c[nc++] = (struct td__cursor){ix->local.rules + ix->local.start[lp],
					      ix->local.start[lp + 1] - ix->local.start[lp], 0};
	c[nc++] = (struct td__cursor){ix->generic, ix->n_generic, 0};
	if (ctx->remote.family == AF_INET || ctx->remote.family == AF_INET6) {
		for (unsigned j = 0; j < ix->cidr.n_prefixes[f]; j++) {
			struct td_cidr key;
			const struct td_cslot *sl;

			td__mask(&key, ctx->remote.family, ix->cidr.prefixes[f][j], ctx->remote.addr);
			sl = td__cslot(&ix->cidr, &key);
			if (sl->key.family != 0 && sl->n > 0)
				c[nc++] = (struct td__cursor){ix->cidr.rules + sl->off, sl->n, 0};
		}
	}
	/*
	 * The smallest head is the next candidate; a rule can head several
	 * lists at once (two of its blocks hold the address), and every list
	 * it heads moves on.
	 */
	for (;;) {
		uint32_t r = UINT32_MAX;

		for (unsigned j = 0; j < nc; j++)
			if (c[j].k < c[j].n && c[j].v[c[j].k] < r)
				r = c[j].v[c[j].k];
		if (r == UINT32_MAX)
			return -1;
		if (td_rule_match(&p->rules[r], ctx))
			return (int)r;
		for (unsigned j = 0; j < nc; j++)
			if (c[j].k < c[j].n && c[j].v[c[j].k] == r)
				c[j].k++;
	}
}
