/* teardown: seeded, per-connection fault decisions. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "teardown/fault.h"
#include "teardown/fmt.h"

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

bool td_when_match(const struct td_when *w, uint64_t n)
{
	if (!w->set)
		return true;
	return n >= w->first && n <= w->last && (n - w->first) % w->step == 0;
}

/* Digits at *s into *v (at least one, no overflow); advances *s. */
static int td__num(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t n = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*s = p;
	*v = n;
	return 0;
}

int td_when_parse(struct td_when *w, const char *s)
{
	struct td_when r = {.step = 1, .set = true};

	if (td__num(&s, &r.first) != 0 || r.first == 0)
		return -EINVAL;
	r.last = r.first;
	if (*s == '+') {
		s++;
		r.last = UINT64_MAX;
		if (*s != '\0' && (td__num(&s, &r.step) != 0 || r.step == 0))
			return -EINVAL;
	} else if (s[0] == '.' && s[1] == '.') {
		s += 2;
		if (td__num(&s, &r.last) != 0 || r.last < r.first)
			return -EINVAL;
	}
	if (*s != '\0')
		return -EINVAL;
	*w = r;
	return 0;
}

const char *td_when_format(const struct td_when *w, char *buf, size_t cap)
{
	struct td_buf b;

	td_buf_init(&b, buf, cap);
	td_buf_u64(&b, w->first);
	if (w->last == UINT64_MAX) {
		td_buf_putc(&b, '+');
		if (w->step > 1)
			td_buf_u64(&b, w->step);
	} else if (w->last != w->first) {
		td_buf_puts(&b, "..");
		td_buf_u64(&b, w->last);
	}
	return td_buf_cstr(&b);
}
