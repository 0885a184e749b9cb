/* teardown: seeded, per-connection fault decisions. */
#include "teardown/fault.h"

void td_prob_set(struct td_prob *pr, double p)
{
	pr->p = p;
	pr->always = p >= 1.0;
	if (!(p > 0.0)) /* also NaN */
		pr->thr = 0;
	else if (pr->always)
		pr->thr = UINT64_MAX;
	else
		/* 2^64 * p, computed in two halves to stay exact in a double */
		pr->thr = (uint64_t)(p * 18446744073709551616.0);
}

static uint64_t td__mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t td_fault_hash(uint64_t seed, uint64_t conn, uint32_t kind)
{
	return td__mix(td__mix(seed ^ td__mix(conn)) + kind);
}

bool td_fault_draw(const struct td_prob *pr, uint64_t seed, uint64_t conn,
		   uint32_t kind)
{
	if (pr->always)
		return true;
	if (pr->thr == 0)
		return false;
	return td_fault_hash(seed, conn, kind) < pr->thr;
}

int td_fault_connect_fate(const struct td_fault *f, uint64_t seed, uint64_t conn)
{
	uint64_t h = td_fault_hash(seed, conn, TD_FK_CONNECT_REFUSE);
	const struct td_prob *ref = &f->connect_refuse, *tmo = &f->connect_timeout;

	if (ref->always || (ref->thr && h < ref->thr))
		return TD_FK_CONNECT_REFUSE;
	if (tmo->always || (tmo->thr && h - ref->thr < tmo->thr))
		return TD_FK_CONNECT_TIMEOUT;
	return 0;
}
