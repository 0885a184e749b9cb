/*
 * Fault draws: exact at 0 and 1, the requested share in between, and a
 * pure function of (seed, connection number, kind), so a seed replays.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "teardown/fault.h"

static unsigned td__count(double p, uint64_t seed, uint64_t n, uint32_t kind)
{
	struct td_prob pr;
	unsigned hits = 0;

	td_prob_set(&pr, p);
	for (uint64_t c = 1; c <= n; c++)
		hits += td_fault_draw(&pr, seed, c, kind);
	return hits;
}

Test(fault, zero_never_one_always)
{
	cr_assert(eq(uint, td__count(0.0, 42, 100000, TD_FK_RST), 0));
	cr_assert(eq(uint, td__count(1.0, 42, 100000, TD_FK_RST), 100000));
	/* the smallest and largest representable shares stay off the ends */
	cr_assert(eq(uint, td__count(1e-300, 7, 10000, TD_FK_RST), 0));
	cr_assert(eq(uint, td__count(0.9999999999, 7, 10000, TD_FK_RST), 10000));
}

Test(fault, nan_and_negative_never)
{
	cr_assert(eq(uint, td__count(NAN, 1, 1000, TD_FK_RST), 0));
	cr_assert(eq(uint, td__count(-0.5, 1, 1000, TD_FK_RST), 0));
}

/*
 * For n draws with probability p the count lies within
 * n*p +- 3.29 * sqrt(n*p*(1-p)) with probability 99.9%; over several
 * seeds the draws are independent, so each seed is checked on its own.
 */
Test(fault, share_within_binomial_bounds)
{
	const double ps[] = {0.01, 0.1, 0.25, 0.5, 0.9};
	const uint64_t n = 200000;

	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		for (uint64_t seed = 1; seed <= 3; seed++) {
			double mean = (double)n * ps[i];
			double sd = sqrt(mean * (1 - ps[i]));
			unsigned hits = td__count(ps[i], seed, n, TD_FK_RST);

			cr_assert(fabs(hits - mean) <= 3.29 * sd,
				  "p=%g seed=%llu: %u hits, want %.0f +- %.0f", ps[i],
				  (unsigned long long)seed, hits, mean, 3.29 * sd);
		}
	}
}

Test(fault, same_seed_same_connections)
{
	struct td_prob pr;

	td_prob_set(&pr, 0.3);
	for (uint64_t c = 1; c <= 5000; c++)
		cr_assert(eq(int, td_fault_draw(&pr, 99, c, TD_FK_RST),
			     td_fault_draw(&pr, 99, c, TD_FK_RST)));
}

Test(fault, seeds_and_kinds_differ)
{
	struct td_prob pr;
	unsigned same_seed = 0, same_kind = 0;

	td_prob_set(&pr, 0.5);
	for (uint64_t c = 1; c <= 10000; c++) {
		same_seed += td_fault_draw(&pr, 1, c, TD_FK_RST) ==
			     td_fault_draw(&pr, 2, c, TD_FK_RST);
		same_kind += td_fault_draw(&pr, 1, c, TD_FK_RST) ==
			     td_fault_draw(&pr, 1, c, TD_FK_CONNECT_REFUSE);
	}
	/* independent fair coins agree about half the time */
	cr_assert(same_seed > 4700 && same_seed < 5300, "%u", same_seed);
	cr_assert(same_kind > 4700 && same_kind < 5300, "%u", same_kind);
}

Test(fault, threshold_is_monotonic)
{
	struct td_prob lo, hi;

	td_prob_set(&lo, 0.2);
	td_prob_set(&hi, 0.6);
	cr_assert(lo.thr < hi.thr);
	/* a connection faulted at 0.2 is also faulted at 0.6 (same draw) */
	for (uint64_t c = 1; c <= 10000; c++)
		if (td_fault_draw(&lo, 5, c, TD_FK_RST))
			cr_assert(td_fault_draw(&hi, 5, c, TD_FK_RST));
}

/* fault.when: strace's position syntax, counted from 1. */
Test(fault, when_forms)
{
	struct td_when w;
	char buf[64];
	struct {
		const char *text;
		uint64_t hits[6]; /* 0-terminated positions among 1..12 */
	} cases[] = {
		{"3", {3}},
		{"3+", {3, 4, 5, 6, 7, 8}},
		{"3..5", {3, 4, 5}},
		{"3+2", {3, 5, 7, 9, 11}},
		{"1+5", {1, 6, 11}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t k = 0;

		cr_assert(eq(int, td_when_parse(&w, cases[i].text), 0), "%s", cases[i].text);
		cr_assert(eq(str, (char *)td_when_format(&w, buf, sizeof(buf)), (char *)cases[i].text));
		for (uint64_t n = 1; n <= 12; n++) {
			bool want = k < 6 && cases[i].hits[k] == n;

			if (strcmp(cases[i].text, "3+") == 0)
				want = n >= 3;
			cr_assert(eq(int, td_when_match(&w, n), want), "%s at %lu", cases[i].text,
				  (unsigned long)n);
			if (want && k < 6 && cases[i].hits[k] == n)
				k++;
		}
	}
	for (const char *const *bad = (const char *const[]){"0", "", "x", "3..2", "3+0", "3-5",
							     "3..", "+3", "3 ", "99999999999999999999",
							     NULL};
	     *bad != NULL; bad++)
		cr_assert(eq(int, td_when_parse(&w, *bad), -EINVAL), "accepted \"%s\"", *bad);
	w.set = false;
	cr_assert(eq(int, td_when_match(&w, 77), 1), "unset matches every position");
}
