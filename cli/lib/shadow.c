/* teardown: rules shadowed by earlier ones; see shadow.h. */
#include <fnmatch.h>
#include <string.h>

#include "shadow.h"

static bool td__glob_all(const char *g)
{
	return g == NULL || strcmp(g, "*") == 0;
}

static bool td__globby(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

static bool td__program_covers(const char *a, const char *b)
{
	if (td__glob_all(a))
		return true;
	if (b == NULL)
		return false;
	if (strcmp(a, b) == 0)
		return true;
	/* b names one program: does a's glob take that name? */
	return !td__globby(b) && fnmatch(a, b, 0) == 0;
}

/* Whether block b lies inside block a. */
static bool td__cidr_in(const struct td_cidr *a, const struct td_cidr *b)
{
	unsigned full, rest;

	if (a->family != b->family || a->prefix > b->prefix)
		return false;
	full = a->prefix / 8u;
	rest = a->prefix % 8u;
	if (memcmp(a->addr, b->addr, full) != 0)
		return false;
	return rest == 0 || ((a->addr[full] ^ b->addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool td__cidrs_cover(const struct td_cidr *a, uint32_t na, const struct td_cidr *b,
			    uint32_t nb)
{
	if (na == 0)
		return true;
	if (nb == 0)
		return false;
	for (uint32_t j = 0; j < nb; j++) {
		bool in = false;

		for (uint32_t i = 0; i < na && !in; i++)
			in = td__cidr_in(&a[i], &b[j]);
		if (!in)
			return false;
	}
	return true;
}

/* Whether every port of b's ranges is in one of a's (a's ranges may overlap
 * or abut: 80-89 and 90-99 cover 85-95). */
static bool td__ports_cover(const struct td_portrange *a, uint32_t na,
			    const struct td_portrange *b, uint32_t nb)
{
	if (na == 0)
		return true;
	if (nb == 0)
		return false;
	for (uint32_t j = 0; j < nb; j++) {
		uint32_t cur = b[j].lo;

		while (cur <= b[j].hi) {
			uint32_t next = cur;

			for (uint32_t i = 0; i < na; i++)
				if (a[i].lo <= cur && a[i].hi >= cur && (uint32_t)a[i].hi + 1 > next)
					next = (uint32_t)a[i].hi + 1;
			if (next == cur)
				return false;
			cur = next;
		}
	}
	return true;
}

bool td_rule_covers(const struct td_rule *a, const struct td_rule *b)
{
	return td__program_covers(a->program, b->program) &&
	       (a->role == TD_ROLE_ANY || a->role == b->role) &&
	       td__cidrs_cover(a->remote, a->n_remote, b->remote, b->n_remote) &&
	       td__cidrs_cover(a->local, a->n_local, b->local, b->n_local) &&
	       td__ports_cover(a->remote_port, a->n_remote_port, b->remote_port,
			       b->n_remote_port) &&
	       td__ports_cover(a->local_port, a->n_local_port, b->local_port, b->n_local_port);
}

bool td_rule_matches_all(const struct td_rule *r)
{
	return td__glob_all(r->program) && r->role == TD_ROLE_ANY && r->n_remote == 0 &&
	       r->n_local == 0 && r->n_remote_port == 0 && r->n_local_port == 0;
}

bool td_policy_shadowed(const struct td_policy *p, int32_t *by, uint64_t max_pairs)
{
	uint64_t n = p->n_rules, pairs = n * (n > 0 ? n - 1 : 0) / 2;
	bool full = pairs <= max_pairs;
	int32_t all = -1; /* the first rule that matches everything */

	for (uint32_t j = 0; j < p->n_rules; j++) {
		by[j] = full ? -1 : all;
		for (uint32_t i = 0; full && i < j && by[j] < 0; i++)
			if (td_rule_covers(&p->rules[i], &p->rules[j]))
				by[j] = (int32_t)i;
		if (all < 0 && td_rule_matches_all(&p->rules[j]))
			all = (int32_t)j;
	}
	return full;
}
