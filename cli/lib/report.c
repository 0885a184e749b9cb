/*
 * teardown: aggregation behind `teardown report`.
 *
 * Logs can hold millions of lines from many processes, so each line is
 * parsed, counted and forgotten: per line there is one parse and a few
 * hash lookups, and memory holds only one entry per distinct program,
 * action, reason, fault kind, errno and shutdown mode.
 */
#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "out.h"
#include "report.h"
#include "teardown/fields.h"
#include "teardown/fmt.h"

/* ---- string -> count map (open addressing, FNV-1a) ---------------- */

struct td__cent {
	char *key; /* NULL: free slot */
	uint64_t hash;
	uint64_t n;
	void *ptr; /* the program map keeps its stats here */
};

struct td_cmap {
	struct td__cent *e;
	size_t cap, len; /* cap is 0 or a power of two */
};

static struct td__cent *td__cmap_slot(const struct td_cmap *m, const char *key,
				      uint64_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		struct td__cent *e = &m->e[i];

		if (e->key == NULL || (e->hash == h && strcmp(e->key, key) == 0))
			return e;
	}
}

static int td__cmap_grow(struct td_cmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 8;
	struct td__cent *old = m->e;
	size_t ocap = m->cap;

	if (ncap < m->cap)
		return -ENOMEM;
	m->e = calloc(ncap, sizeof(*m->e));
	if (m->e == NULL) {
		m->e = old;
		return -ENOMEM;
	}
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key != NULL)
			*td__cmap_slot(m, old[i].key, old[i].hash) = old[i];
	free(old);
	return 0;
}

/*
 * The entry for key, created (count 0) when missing.  *mp is allocated on
 * first use, so the many maps of a program that never sees, say, a fault
 * cost nothing.
 */
static struct td__cent *td__cmap_at(struct td_cmap **mp, const char *key)
{
	struct td_cmap *m = *mp;
	struct td__cent *e;
	uint64_t h = td_fnv64_str(key);

	if (m == NULL) {
		m = *mp = calloc(1, sizeof(*m));
		if (m == NULL)
			return NULL;
	}
	if ((m->len + 1) * 10 > m->cap * 7 && td__cmap_grow(m) < 0)
		return NULL;
	e = td__cmap_slot(m, key, h);
	if (e->key == NULL) {
		e->key = strdup(key);
		if (e->key == NULL)
			return NULL;
		e->hash = h;
		m->len++;
	}
	return e;
}

static int td__cmap_inc(struct td_cmap **mp, const char *key)
{
	struct td__cent *e = td__cmap_at(mp, key);

	if (e == NULL)
		return -ENOMEM;
	e->n++;
	return 0;
}

uint64_t td_cmap_get(const struct td_cmap *m, const char *key)
{
	const struct td__cent *e;

	if (m == NULL || m->cap == 0)
		return 0;
	e = td__cmap_slot(m, key, td_fnv64_str(key));
	return e->key != NULL ? e->n : 0;
}

static void td__cmap_free(struct td_cmap *m, void (*free_ptr)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->e[i].key == NULL)
			continue;
		free(m->e[i].key);
		if (free_ptr != NULL)
			free_ptr(m->e[i].ptr);
	}
	free(m->e);
	free(m);
}

static int td__cent_cmp(const void *a, const void *b)
{
	const struct td__cent *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

/* The entries sorted by key, so every rendering is reproducible. */
static const struct td__cent **td__cmap_sorted(const struct td_cmap *m,
					       size_t *n)
{
	const struct td__cent **v;
	size_t k = 0;

	*n = m != NULL ? m->len : 0;
	v = calloc(*n + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	for (size_t i = 0; m != NULL && i < m->cap; i++)
		if (m->e[i].key != NULL)
			v[k++] = &m->e[i];
	qsort(v, k, sizeof(*v), td__cent_cmp);
	return v;
}

/* ---- the report ---------------------------------------------------- */

struct td__input {
	char *name;
	uint64_t lines, malformed, text, other;
	bool spool; /* a dead process's spool: lines not in the log yet */
};

struct td_report {
	struct td_cmap *progs; /* name -> struct td_report_stats * */
	struct td_report_stats total;
	struct td__input *in;
	size_t n_in, cap_in;
	uint64_t lines, malformed, text, other;
	uint64_t spooled, spools; /* lines read from spools, and how many spools */
};

/* The fields of one line that the report uses; NULL / -1 when absent. */
struct td__ev {
	const char *prog, *event, *action, *wire, *why, *closer, *fault;
	const char *error, *how, *remote, *rule;
	int64_t pid, fd, lost, age_ms, dropped;
	int time_wait; /* 1 true, else 0 */
};

static void td__outcome_free(struct td_report_outcome *o)
{
	for (int i = 0; i < TD_RW__COUNT; i++)
		td__cmap_free(o->by_why[i], NULL);
}

static void td__stats_clear(struct td_report_stats *st)
{
	td__cmap_free(st->connect_errors, NULL);
	td__cmap_free(st->by_action, NULL);
	td__cmap_free(st->faults, NULL);
	td__cmap_free(st->shutdown_how, NULL);
	td__outcome_free(&st->closes);
	td__outcome_free(&st->exits);
	for (size_t i = 0; i < st->n_slow; i++) {
		free(st->slow[i].prog);
		free(st->slow[i].remote);
		free(st->slow[i].rule);
	}
	memset(st, 0, sizeof(*st));
}

static void td__stats_free(void *p)
{
	if (p != NULL)
		td__stats_clear(p);
	free(p);
}

struct td_report *td_report_new(void)
{
	return calloc(1, sizeof(struct td_report));
}

void td_report_free(struct td_report *r)
{
	if (r == NULL)
		return;
	td__cmap_free(r->progs, td__stats_free);
	td__stats_clear(&r->total);
	for (size_t i = 0; i < r->n_in; i++)
		free(r->in[i].name);
	free(r->in);
	free(r);
}

int td_report_begin(struct td_report *r, const char *name)
{
	struct td__input *in;

	if (r->n_in == r->cap_in) {
		size_t ncap = r->cap_in ? r->cap_in * 2 : 8;

		in = realloc(r->in, ncap * sizeof(*in));
		if (in == NULL)
			return -ENOMEM;
		r->in = in;
		r->cap_in = ncap;
	}
	in = &r->in[r->n_in];
	in->name = strdup(name);
	if (in->name == NULL)
		return -ENOMEM;
	in->lines = in->malformed = in->text = in->other = 0;
	in->spool = false;
	r->n_in++;
	return 0;
}

int td_report_begin_spool(struct td_report *r, const char *name)
{
	int err = td_report_begin(r, name);

	if (err == 0) {
		r->in[r->n_in - 1].spool = true;
		r->spools++;
	}
	return err;
}

uint64_t td_report_spooled(const struct td_report *r)
{
	return r->spooled;
}

static int td__wire_bucket(const char *wire)
{
	if (wire == NULL)
		return TD_RW_UNKNOWN;
	if (strcmp(wire, "FIN") == 0)
		return TD_RW_FIN;
	if (strcmp(wire, "RST") == 0)
		return TD_RW_RST;
	if (strcmp(wire, "none") == 0)
		return TD_RW_NONE;
	return TD_RW_UNKNOWN;
}

static const char *const td__wire_keys[TD_RW__COUNT] = {"FIN", "RST", "none",
							 "unknown"};

static uint64_t td__sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static int td__outcome_add(struct td_report_outcome *o, const struct td__ev *ev)
{
	int w = td__wire_bucket(ev->wire);

	o->count++;
	o->wire[w]++;
	if (ev->time_wait)
		o->time_wait++;
	if (w == TD_RW_RST && ev->lost > 0)
		o->lost = td__sat_add(o->lost, (uint64_t)ev->lost);
	return td__cmap_inc(&o->by_why[w], ev->why != NULL ? ev->why : "-");
}

static char *td__dup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/*
 * Keep the TD_REPORT_SLOWEST closes with the largest age_ms, largest
 * first.  On a tie the earlier close stays ahead, so the result does not
 * depend on anything but the order of the input.
 */
static int td__slow_add(struct td_report_stats *st, const struct td__ev *ev)
{
	struct td_report_slow s = {ev->age_ms, ev->pid, ev->fd, NULL, NULL, NULL};
	size_t at;

	if (ev->age_ms < 0)
		return 0;
	if (st->n_slow == TD_REPORT_SLOWEST &&
	    ev->age_ms <= st->slow[TD_REPORT_SLOWEST - 1].age_ms)
		return 0;
	s.prog = td__dup(ev->prog);
	s.remote = td__dup(ev->remote);
	s.rule = td__dup(ev->rule);
	if (s.prog == NULL || (ev->remote && !s.remote) || (ev->rule && !s.rule)) {
		free(s.prog);
		free(s.remote);
		free(s.rule);
		return -ENOMEM;
	}
	if (st->n_slow == TD_REPORT_SLOWEST) {
		struct td_report_slow *last = &st->slow[TD_REPORT_SLOWEST - 1];

		free(last->prog);
		free(last->remote);
		free(last->rule);
		st->n_slow--;
	}
	for (at = st->n_slow; at > 0 && st->slow[at - 1].age_ms < s.age_ms; at--)
		st->slow[at] = st->slow[at - 1];
	st->slow[at] = s;
	st->n_slow++;
	return 0;
}

static int td__stats_add(struct td_report_stats *st, const struct td__ev *ev)
{
	const char *e = ev->event;

	st->events++;
	if (strcmp(e, "connect") == 0) {
		st->connects++;
		if (ev->error != NULL)
			return td__cmap_inc(&st->connect_errors, ev->error);
	} else if (strcmp(e, "accept") == 0) {
		st->accepts++;
	} else if (strcmp(e, "close") == 0) {
		if (ev->closer != NULL && strcmp(ev->closer, "active") == 0)
			st->active++;
		else if (ev->closer != NULL && strcmp(ev->closer, "passive") == 0)
			st->passive++;
		else if (ev->closer != NULL && strcmp(ev->closer, "simultaneous") == 0)
			st->simultaneous++;
		if (td__outcome_add(&st->closes, ev) < 0 ||
		    td__cmap_inc(&st->by_action,
				 ev->action != NULL ? ev->action : "-") < 0)
			return -ENOMEM;
		return td__slow_add(st, ev);
	} else if (strcmp(e, "exit") == 0) {
		return td__outcome_add(&st->exits, ev);
	} else if (strcmp(e, "exec") == 0) {
		st->execs++;
	} else if (strcmp(e, "fault") == 0) {
		return td__cmap_inc(&st->faults,
				    ev->fault != NULL ? ev->fault : "-");
	} else if (strcmp(e, "leak") == 0) {
		st->leaks++;
	} else if (strcmp(e, "shutdown") == 0) {
		st->shutdowns++;
		return td__cmap_inc(&st->shutdown_how,
				    ev->how != NULL ? ev->how : "-");
	} else if (strcmp(e, "bind") == 0) {
		st->binds++;
	} else if (strcmp(e, "linger") == 0) {
		st->lingers++;
	} else if (strcmp(e, "dropped") == 0) {
		if (ev->dropped > 0)
			st->dropped = td__sat_add(st->dropped, (uint64_t)ev->dropped);
	}
	return 0;
}

static const char *td__fstr(const struct td_jfield *f)
{
	return f->type == TD_J_STR ? f->s : NULL;
}

static int64_t td__fint(const struct td_jfield *f)
{
	return f->type == TD_J_INT ? f->i : -1;
}

/* The keys td__pick() reads; the index is the bit in its "seen" mask. */
enum td__key {
	TD__K_PROG, TD__K_EVENT, TD__K_ACTION, TD__K_WIRE, TD__K_WHY,
	TD__K_CLOSER, TD__K_FAULT, TD__K_ERROR, TD__K_HOW, TD__K_REMOTE,
	TD__K_RULE, TD__K_PID, TD__K_FD, TD__K_LOST, TD__K_AGE_MS,
	TD__K_TIME_WAIT, TD__K_DROPPED, TD__K_OTHER
};

/*
 * Which of those keys k is.  Every line has two dozen keys and this runs
 * for each, so the first letter picks the one or two candidates to
 * compare instead of walking the whole list.
 */
static enum td__key td__key_of(const char *k)
{
	static const struct {
		const char *name;
		enum td__key key;
	} byletter[26][2] = {
		['a' - 'a'] = {{TD_FN_ACTION, TD__K_ACTION}, {TD_FN_AGE_MS, TD__K_AGE_MS}},
		['c' - 'a'] = {{TD_FN_CLOSER, TD__K_CLOSER}},
		['d' - 'a'] = {{TD_FN_DROPPED, TD__K_DROPPED}},
		['e' - 'a'] = {{TD_FN_EVENT, TD__K_EVENT}, {TD_FN_ERROR, TD__K_ERROR}},
		['f' - 'a'] = {{TD_FN_FD, TD__K_FD}, {TD_FN_FAULT, TD__K_FAULT}},
		['h' - 'a'] = {{TD_FN_HOW, TD__K_HOW}},
		['l' - 'a'] = {{TD_FN_LOST, TD__K_LOST}},
		['p' - 'a'] = {{TD_FN_PROG, TD__K_PROG}, {TD_FN_PID, TD__K_PID}},
		['r' - 'a'] = {{TD_FN_REMOTE, TD__K_REMOTE}, {TD_FN_RULE, TD__K_RULE}},
		['t' - 'a'] = {{TD_FN_TIME_WAIT, TD__K_TIME_WAIT}},
		['w' - 'a'] = {{TD_FN_WIRE, TD__K_WIRE}, {TD_FN_WHY, TD__K_WHY}},
	};
	unsigned c = (unsigned char)k[0] - 'a';

	if (c >= 26)
		return TD__K_OTHER;
	for (int i = 0; i < 2; i++)
		if (byletter[c][i].name != NULL &&
		    strcmp(k, byletter[c][i].name) == 0)
			return byletter[c][i].key;
	return TD__K_OTHER;
}

/*
 * Pick the fields the report uses in one pass over the line (the first
 * occurrence of a key wins, as in td_jline_get).  A field of the wrong
 * type reads as absent: it does not make the line malformed.
 */
static void td__pick(const struct td_jline *l, struct td__ev *ev)
{
	uint32_t seen = 0;

	memset(ev, 0, sizeof(*ev));
	ev->pid = ev->fd = ev->lost = ev->age_ms = ev->dropped = -1;
	for (size_t i = 0; i < l->n; i++) {
		const struct td_jfield *f = &l->f[i];
		enum td__key key = td__key_of(f->key);

		if (key == TD__K_OTHER || (seen & 1u << key))
			continue;
		seen |= 1u << key;
		switch (key) {
		case TD__K_PROG: ev->prog = td__fstr(f); break;
		case TD__K_EVENT: ev->event = td__fstr(f); break;
		case TD__K_ACTION: ev->action = td__fstr(f); break;
		case TD__K_WIRE: ev->wire = td__fstr(f); break;
		case TD__K_WHY: ev->why = td__fstr(f); break;
		case TD__K_CLOSER: ev->closer = td__fstr(f); break;
		case TD__K_FAULT: ev->fault = td__fstr(f); break;
		case TD__K_ERROR: ev->error = td__fstr(f); break;
		case TD__K_HOW: ev->how = td__fstr(f); break;
		case TD__K_REMOTE: ev->remote = td__fstr(f); break;
		case TD__K_RULE: ev->rule = td__fstr(f); break;
		case TD__K_PID: ev->pid = td__fint(f); break;
		case TD__K_FD: ev->fd = td__fint(f); break;
		case TD__K_LOST: ev->lost = td__fint(f); break;
		case TD__K_AGE_MS: ev->age_ms = td__fint(f); break;
		case TD__K_DROPPED: ev->dropped = td__fint(f); break;
		case TD__K_TIME_WAIT:
			ev->time_wait = f->type == TD_J_BOOL && f->i == 1;
			break;
		case TD__K_OTHER: break;
		}
	}
}

static struct td__input *td__cur_input(struct td_report *r)
{
	if (r->n_in == 0 && td_report_begin(r, "-") < 0)
		return NULL;
	return &r->in[r->n_in - 1];
}

static int td__malformed(struct td_report *r)
{
	struct td__input *in = td__cur_input(r);

	if (in == NULL)
		return -ENOMEM;
	in->malformed++;
	r->malformed++;
	return -EINVAL;
}

int td_report_add(struct td_report *r, const struct td_jline *l)
{
	struct td__input *in = td__cur_input(r);
	struct td__cent *pe;
	struct td__ev ev;

	if (in == NULL)
		return -ENOMEM;
	in->lines++;
	r->lines++;
	if (in->spool)
		r->spooled++;
	td__pick(l, &ev);
	if (ev.prog == NULL || ev.event == NULL)
		return td__malformed(r);
	pe = td__cmap_at(&r->progs, ev.prog);
	if (pe == NULL)
		return -ENOMEM;
	if (pe->ptr == NULL) {
		pe->ptr = calloc(1, sizeof(struct td_report_stats));
		if (pe->ptr == NULL)
			return -ENOMEM;
	}
	if (td__stats_add(pe->ptr, &ev) < 0 || td__stats_add(&r->total, &ev) < 0)
		return -ENOMEM;
	return 0;
}

/* A line that is counted apart (text format, another program's entry). */
static int td__apart(struct td_report *r, int kind)
{
	struct td__input *in = td__cur_input(r);

	if (in == NULL)
		return -ENOMEM;
	in->lines++;
	r->lines++;
	if (kind == TD_REPORT_TEXTLINE) {
		in->text++;
		r->text++;
	} else {
		in->other++;
		r->other++;
	}
	return kind;
}

static bool td__digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return n > 0;
}

/*
 * A line of the text format: "2026-11-21T08:13:15.457097Z PID/TID ...".
 * Checked on its shape, not its content: a timestamp and the ids.
 */
static bool td__is_text(const char *p, size_t n)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ ";
	size_t k = sizeof(shape) - 1, d;

	if (n < k + 4)
		return false;
	for (size_t i = 0; i < k; i++)
		if (shape[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != shape[i])
			return false;
	for (d = k; d < n && p[d] >= '0' && p[d] <= '9'; d++)
		;
	if (d == k || d >= n || p[d] != '/')
		return false;
	k = ++d;
	for (; d < n && p[d] >= '0' && p[d] <= '9'; d++)
		;
	return d > k && d < n && p[d] == ' ';
}

/* After "teardown[PID]: " in a syslog file's line, or NULL. */
static char *td__syslog_msg(char *line, size_t len, size_t *n)
{
	static const char tag[] = "teardown[";
	char *p = memmem(line, len, tag, sizeof(tag) - 1), *q;

	if (p == NULL)
		return NULL;
	q = p + sizeof(tag) - 1;
	p = q;
	while (q < line + len && *q >= '0' && *q <= '9')
		q++;
	if (q == p || line + len - q < 3 || memcmp(q, "]: ", 3) != 0)
		return NULL;
	q += 3;
	*n = (size_t)(line + len - q);
	return q;
}

/* Keys whose journal values (always strings there) are numbers in the log. */
static bool td__int_key(const char *k)
{
#define TD__INT(name, kind) {TD_FN_##name, kind},
	static const struct {
		const char *name;
		enum td_field_kind kind;
	} fields[] = {TD_FIELDS(TD__INT)};
#undef TD__INT

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i].kind == TD_FK_INT && strcmp(k, fields[i].name) == 0)
			return true;
	return false;
}

/* A journal string that holds an integer, as an integer field. */
static void td__as_int(struct td_jfield *f)
{
	const char *s = f->s;
	bool neg = s[0] == '-';
	uint64_t v = 0;

	if (!td__digits(s + neg, f->slen - neg) || (s[neg] == '0' && f->slen - neg > 1))
		return;
	for (const char *c = s + neg; *c; c++) {
		if (v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return;
		v = v * 10 + (uint64_t)(*c - '0');
	}
	if (neg && v > (uint64_t)INT64_MAX + 1)
		return;
	td_jfield_set_int(f, neg, v);
}

/*
 * An entry of `journalctl -o json`: the library's TEARDOWN_* fields (every
 * value a string there), or, from the syslog target, its JSON line in
 * MESSAGE.  Anything else is another program's entry.
 */
static int td__journal_entry(struct td_report *r, struct td_jline *l)
{
	static const char pre[] = "TEARDOWN_";
	const char *ident = td_jline_str(l, "SYSLOG_IDENTIFIER");
	const struct td_jfield *msg = td_jline_get(l, "MESSAGE");
	struct td_jline t;

	if (td_jline_get(l, "TEARDOWN_EVENT") != NULL) {
		t.n = 0;
		for (size_t i = 0; i < l->n; i++) {
			struct td_jfield *f = &l->f[i];
			char *k;

			if (strncmp(f->key, pre, sizeof(pre) - 1) != 0 || f->key[sizeof(pre) - 1] == '\0')
				continue;
			/* the key lower-cased in place, without its prefix */
			k = (char *)f->key + sizeof(pre) - 1;
			for (char *c = k; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			t.f[t.n] = *f;
			t.f[t.n].key = k;
			if (f->type == TD_J_STR && td__int_key(k))
				td__as_int(&t.f[t.n]);
			else if (f->type == TD_J_STR && strcmp(k, TD_FN_TIME_WAIT) == 0 &&
				 (strcmp(f->s, "true") == 0 || strcmp(f->s, "false") == 0)) {
				t.f[t.n].type = TD_J_BOOL;
				t.f[t.n].i = f->s[0] == 't';
			}
			t.n++;
		}
		return td_report_add(r, &t);
	}
	if (ident != NULL && strcmp(ident, "teardown") == 0 && msg != NULL &&
	    msg->type == TD_J_STR) {
		char *m = (char *)msg->s;

		if (m[0] == '{' && td_jline_parse(&t, m, msg->slen) == 0)
			return td_report_add(r, &t);
		if (td__is_text(m, msg->slen))
			return td__apart(r, TD_REPORT_TEXTLINE);
		/* teardown's own warnings ("teardown: ...") are not events */
		return td__apart(r, TD_REPORT_OTHER);
	}
	return td__apart(r, TD_REPORT_OTHER);
}

int td_report_line(struct td_report *r, char *line, size_t len)
{
	struct td_jline l;
	struct td__input *in;
	size_t i = 0, n;
	char *msg;

	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] == '{') {
		if (td_jline_parse(&l, line, len) == 0) {
			if (td_jline_get(&l, TD_FN_EVENT) == NULL &&
			    (td_jline_get(&l, "__CURSOR") != NULL || td_jline_get(&l, "MESSAGE") != NULL))
				return td__journal_entry(r, &l);
			return td_report_add(r, &l);
		}
	} else if ((msg = td__syslog_msg(line, len, &n)) != NULL) {
		/* a syslog file's line: "Nov 21 08:13:15 host teardown[PID]: ..." */
		if (n > 0 && msg[0] == '{' && td_jline_parse(&l, msg, n) == 0)
			return td_report_add(r, &l);
		if (td__is_text(msg, n))
			return td__apart(r, TD_REPORT_TEXTLINE);
	} else if (td__is_text(line, len)) {
		return td__apart(r, TD_REPORT_TEXTLINE);
	}
	in = td__cur_input(r);
	if (in == NULL)
		return -ENOMEM;
	in->lines++;
	r->lines++;
	return td__malformed(r);
}

const struct td_report_stats *td_report_prog(const struct td_report *r,
					     const char *prog)
{
	const struct td__cent *e;

	if (r->progs == NULL || r->progs->cap == 0)
		return NULL;
	e = td__cmap_slot(r->progs, prog, td_fnv64_str(prog));
	return e->key != NULL ? e->ptr : NULL;
}

const struct td_report_stats *td_report_total(const struct td_report *r)
{
	return &r->total;
}

uint64_t td_report_malformed(const struct td_report *r)
{
	return r->malformed;
}

uint64_t td_report_lines(const struct td_report *r)
{
	return r->lines;
}

uint64_t td_report_text_lines(const struct td_report *r)
{
	return r->text;
}

uint64_t td_report_other_lines(const struct td_report *r)
{
	return r->other;
}

size_t td_report_nprogs(const struct td_report *r)
{
	return r->progs != NULL ? r->progs->len : 0;
}

/* ---- rendering ----------------------------------------------------- */

/*
 * Names come from the logged programs, so they are escaped on the way
 * out as well (out.c): a program name must not be able to forge report
 * lines or send terminal control sequences.
 */
static void td__put_esc(FILE *out, const char *s, bool json)
{
	if (json)
		td_put_json_str(out, s);
	else
		td_put_text_str(out, s);
}

static void td__json_key(FILE *out, const char *key, bool *first)
{
	if (!*first)
		fputs(", ", out);
	*first = false;
	td__put_esc(out, key, true);
	fputs(": ", out);
}

static void td__json_u64(FILE *out, const char *key, uint64_t v, bool *first)
{
	td__json_key(out, key, first);
	fprintf(out, "%llu", (unsigned long long)v);
}

static void td__json_map(FILE *out, const char *key, const struct td_cmap *m,
			 bool *first)
{
	size_t n;
	const struct td__cent **v = td__cmap_sorted(m, &n);
	bool f2 = true;

	td__json_key(out, key, first);
	fputc('{', out);
	for (size_t i = 0; v != NULL && i < n; i++)
		td__json_u64(out, v[i]->key, v[i]->n, &f2);
	fputc('}', out);
	free(v);
}

/* Fault kinds a policy can inject; they always show, with 0 if unseen. */
static const char *const td__fault_kinds[] = {
	"connect_refuse", "connect_timeout", "rst", "rst_after_bytes",
	"rst_after_ms",
};
#define TD__NFAULT (sizeof(td__fault_kinds) / sizeof(td__fault_kinds[0]))

/*
 * Walk the union of the known fault kinds and the kinds seen, in key
 * order, calling fn for each: one merge of two sorted lists.
 */
static void td__faults_each(const struct td_cmap *m,
			    void (*fn)(void *ctx, const char *k, uint64_t n),
			    void *ctx)
{
	size_t n, i = 0, j = 0;
	const struct td__cent **v = td__cmap_sorted(m, &n);

	if (v == NULL)
		n = 0;
	while (i < TD__NFAULT || j < n) {
		int c = i == TD__NFAULT ? 1
			: j == n       ? -1
				       : strcmp(td__fault_kinds[i], v[j]->key);

		if (c < 0) {
			fn(ctx, td__fault_kinds[i++], 0);
		} else if (c > 0) {
			fn(ctx, v[j]->key, v[j]->n);
			j++;
		} else {
			fn(ctx, v[j]->key, v[j]->n);
			i++;
			j++;
		}
	}
	free(v);
}

struct td__jctx {
	FILE *out;
	bool first;
};

static void td__json_fault_cb(void *ctx, const char *k, uint64_t n)
{
	struct td__jctx *c = ctx;

	td__json_u64(c->out, k, n, &c->first);
}

static void td__json_by_why(FILE *out, const char *key,
			    const struct td_report_outcome *o, bool *first)
{
	bool f2 = true;

	td__json_key(out, key, first);
	fputc('{', out);
	for (int w = 0; w < TD_RW__COUNT; w++) {
		size_t n;
		const struct td__cent **v = td__cmap_sorted(o->by_why[w], &n);

		for (size_t i = 0; v != NULL && i < n; i++) {
			size_t wl = strlen(td__wire_keys[w]);
			size_t kl = strlen(v[i]->key);
			char *k = malloc(wl + 1 + kl + 1);

			if (k == NULL)
				continue;
			memcpy(k, td__wire_keys[w], wl);
			k[wl] = ':';
			memcpy(k + wl + 1, v[i]->key, kl + 1);
			td__json_u64(out, k, v[i]->n, &f2);
			free(k);
		}
		free(v);
	}
	fputc('}', out);
}

static void td__json_opt_str(FILE *out, const char *key, const char *s,
			     bool *first)
{
	td__json_key(out, key, first);
	if (s == NULL)
		fputs("null", out);
	else
		td__put_esc(out, s, true);
}

static void td__json_opt_i64(FILE *out, const char *key, int64_t v,
			     bool *first)
{
	td__json_key(out, key, first);
	if (v < 0)
		fputs("null", out);
	else
		fprintf(out, "%lld", (long long)v);
}

static void td__json_stats(FILE *out, const struct td_report_stats *st)
{
	bool first = true, f2;
	const struct td_report_outcome *c = &st->closes, *x = &st->exits;
	struct td__jctx jc = {out, true};

	fputc('{', out);
	td__json_u64(out, "events", st->events, &first);
	td__json_u64(out, "connections", st->connects + st->accepts, &first);
	td__json_u64(out, "connects", st->connects, &first);
	td__json_u64(out, "accepts", st->accepts, &first);
	td__json_map(out, "connect_errors", st->connect_errors, &first);
	td__json_u64(out, "closes", c->count, &first);
	td__json_u64(out, "active", st->active, &first);
	td__json_u64(out, "passive", st->passive, &first);
	td__json_u64(out, "simultaneous", st->simultaneous, &first);
	td__json_u64(out, "time_wait", c->time_wait, &first);
	for (int w = 0; w < TD_RW__COUNT; w++)
		td__json_u64(out, td__wire_keys[w], c->wire[w], &first);
	td__json_u64(out, "lost", c->lost, &first);
	td__json_map(out, "by_action", st->by_action, &first);
	td__json_by_why(out, "by_why", c, &first);
	td__json_u64(out, "leaks", st->leaks, &first);
	td__json_key(out, "faults", &first);
	fputc('{', out);
	td__faults_each(st->faults, td__json_fault_cb, &jc);
	fputc('}', out);
	td__json_u64(out, "exits", x->count, &first);
	td__json_key(out, "exit_detail", &first);
	fputc('{', out);
	f2 = true;
	for (int w = 0; w < TD_RW__COUNT; w++)
		td__json_u64(out, td__wire_keys[w], x->wire[w], &f2);
	td__json_u64(out, "time_wait", x->time_wait, &f2);
	td__json_u64(out, "lost", x->lost, &f2);
	td__json_by_why(out, "by_why", x, &f2);
	fputc('}', out);
	td__json_u64(out, "execs", st->execs, &first);
	td__json_u64(out, "shutdowns", st->shutdowns, &first);
	td__json_map(out, "shutdown_how", st->shutdown_how, &first);
	td__json_u64(out, "binds", st->binds, &first);
	td__json_u64(out, "lingers", st->lingers, &first);
	td__json_u64(out, "dropped", st->dropped, &first);
	td__json_key(out, "slowest", &first);
	fputc('[', out);
	for (size_t i = 0; i < st->n_slow; i++) {
		const struct td_report_slow *s = &st->slow[i];

		f2 = true;
		fputs(i ? ", {" : "{", out);
		td__json_opt_str(out, "prog", s->prog, &f2);
		td__json_opt_i64(out, "pid", s->pid, &f2);
		td__json_opt_i64(out, "fd", s->fd, &f2);
		td__json_opt_str(out, "remote", s->remote, &f2);
		td__json_opt_str(out, "rule", s->rule, &f2);
		td__json_u64(out, "age_ms", (uint64_t)s->age_ms, &f2);
		fputc('}', out);
	}
	fputc(']', out);
	fputc('}', out);
}

/* Text rendering: "key n, key n" lists. */
static void td__text_list_item(FILE *out, const char *k, uint64_t n,
			       bool *first)
{
	fputs(*first ? "" : ", ", out);
	*first = false;
	td__put_esc(out, k, false);
	fprintf(out, " %llu", (unsigned long long)n);
}

static void td__text_map(FILE *out, const struct td_cmap *m)
{
	size_t n;
	const struct td__cent **v = td__cmap_sorted(m, &n);
	bool first = true;

	for (size_t i = 0; v != NULL && i < n; i++)
		td__text_list_item(out, v[i]->key, v[i]->n, &first);
	if (first)
		fputs("-", out);
	free(v);
}

struct td__tctx {
	FILE *out;
	bool first;
};

static void td__text_fault_cb(void *ctx, const char *k, uint64_t n)
{
	struct td__tctx *c = ctx;

	if (n != 0)
		td__text_list_item(c->out, k, n, &c->first);
}

static void td__text_wires(FILE *out, const struct td_report_outcome *o,
			   const char *indent)
{
	for (int w = 0; w < TD_RW__COUNT; w++) {
		if (w == TD_RW_UNKNOWN && o->wire[w] == 0)
			continue;
		fprintf(out, "%s%-8s %8llu", indent, td__wire_keys[w],
			(unsigned long long)o->wire[w]);
		if (o->wire[w] != 0) {
			fputs("   ", out);
			td__text_map(out, o->by_why[w]);
		}
		fputc('\n', out);
	}
}

static void td__text_stats(FILE *out, const struct td_report_stats *st)
{
	const struct td_report_outcome *c = &st->closes, *x = &st->exits;
	struct td__tctx tc = {out, true};

	fprintf(out, "  connections      %8llu   (connect %llu, accept %llu)\n",
		(unsigned long long)(st->connects + st->accepts),
		(unsigned long long)st->connects,
		(unsigned long long)st->accepts);
	if (st->connect_errors != NULL && st->connect_errors->len != 0) {
		fputs("    connect errors ", out);
		td__text_map(out, st->connect_errors);
		fputc('\n', out);
	}
	fprintf(out, "  closes           %8llu   (active %llu, passive %llu",
		(unsigned long long)c->count, (unsigned long long)st->active,
		(unsigned long long)st->passive);
	if (st->simultaneous)
		fprintf(out, ", simultaneous %llu", (unsigned long long)st->simultaneous);
	fputs(")\n", out);
	fputs("    by action      ", out);
	td__text_map(out, st->by_action);
	fputc('\n', out);
	td__text_wires(out, c, "    ");
	fprintf(out, "  TIME_WAIT owned  %8llu\n",
		(unsigned long long)c->time_wait);
	fprintf(out, "  bytes lost (RST) %8llu\n", (unsigned long long)c->lost);
	fprintf(out, "  CLOSE_WAIT leaks %8llu\n", (unsigned long long)st->leaks);
	if (st->dropped != 0)
		fprintf(out, "  log lines lost   %8llu   (the library could not write them)\n",
			(unsigned long long)st->dropped);
	fputs("  faults           ", out);
	td__faults_each(st->faults, td__text_fault_cb, &tc);
	if (tc.first)
		fputs("       0", out);
	fputc('\n', out);
	fprintf(out, "  shutdowns        %8llu", (unsigned long long)st->shutdowns);
	if (st->shutdowns != 0) {
		fputs("   ", out);
		td__text_map(out, st->shutdown_how);
	}
	fputc('\n', out);
	fprintf(out, "  open at exit     %8llu", (unsigned long long)x->count);
	if (x->count != 0)
		fprintf(out, "   (TIME_WAIT %llu, lost %llu)",
			(unsigned long long)x->time_wait,
			(unsigned long long)x->lost);
	fputc('\n', out);
	if (x->count != 0)
		td__text_wires(out, x, "    ");
	if (st->execs != 0)
		fprintf(out, "  ended by exec()  %8llu\n", (unsigned long long)st->execs);
	if (st->n_slow == 0)
		return;
	fputs("  slowest closes\n", out);
	for (size_t i = 0; i < st->n_slow; i++) {
		const struct td_report_slow *s = &st->slow[i];

		fprintf(out, "    %8lld ms  ", (long long)s->age_ms);
		td__put_esc(out, s->prog != NULL ? s->prog : "-", false);
		fprintf(out, " pid=%lld fd=%lld remote=", (long long)s->pid,
			(long long)s->fd);
		td__put_esc(out, s->remote != NULL ? s->remote : "-", false);
		fputs(" rule=", out);
		td__put_esc(out, s->rule != NULL ? s->rule : "-", false);
		fputc('\n', out);
	}
}

static int td__render_json(const struct td_report *r, FILE *out,
			   const struct td__cent **progs, size_t np)
{
	fputc('{', out);
	for (size_t i = 0; i < np; i++) {
		td__put_esc(out, progs[i]->key, true);
		fputs(": ", out);
		td__json_stats(out, progs[i]->ptr);
		fputs(",\n ", out);
	}
	fputs("\"_total\": ", out);
	td__json_stats(out, &r->total);
	fprintf(out, ",\n \"_malformed\": %llu", (unsigned long long)r->malformed);
	fprintf(out, ",\n \"_text\": %llu", (unsigned long long)r->text);
	fprintf(out, ",\n \"_other\": %llu", (unsigned long long)r->other);
	if (r->spools != 0)
		fprintf(out, ",\n \"_spooled\": %llu", (unsigned long long)r->spooled);
	fputs(",\n \"_files\": {", out);
	for (size_t i = 0; i < r->n_in; i++) {
		fputs(i ? ", " : "", out);
		td__put_esc(out, r->in[i].name, true);
		fprintf(out, ": {\"lines\": %llu, \"malformed\": %llu, \"text\": %llu, "
			     "\"other\": %llu%s}",
			(unsigned long long)r->in[i].lines,
			(unsigned long long)r->in[i].malformed,
			(unsigned long long)r->in[i].text,
			(unsigned long long)r->in[i].other, r->in[i].spool ? ", \"spool\": true" : "");
	}
	fputs("}}\n", out);
	return 0;
}

static int td__render_text(const struct td_report *r, FILE *out,
			   const struct td__cent **progs, size_t np)
{
	fprintf(out, "teardown report: %zu program%s, %llu line%s, "
		     "%llu malformed",
		np, np == 1 ? "" : "s", (unsigned long long)r->lines,
		r->lines == 1 ? "" : "s", (unsigned long long)r->malformed);
	if (r->text != 0)
		fprintf(out, ", %llu in the text format", (unsigned long long)r->text);
	if (r->other != 0)
		fprintf(out, ", %llu from other programs", (unsigned long long)r->other);
	fputc('\n', out);
	if (r->spools != 0)
		fprintf(out, "  %llu line%s still in the spool%s of %llu process%s that ended "
			     "before writing them to the log (counted here; the next program "
			     "that opens the log under teardown appends them)\n",
			(unsigned long long)r->spooled, r->spooled == 1 ? " is" : "s are",
			r->spools == 1 ? "" : "s", (unsigned long long)r->spools,
			r->spools == 1 ? "" : "es");
	if (r->text != 0)
		fprintf(out, "  text format: use format = \"json\" (log.format, or --format json) "
			     "for the %llu line%s the report cannot read\n",
			(unsigned long long)r->text, r->text == 1 ? "" : "s");
	for (size_t i = 0; i < np; i++) {
		fputs("\n== ", out);
		td__put_esc(out, progs[i]->key, false);
		fputs(" ==\n", out);
		td__text_stats(out, progs[i]->ptr);
	}
	if (np > 1) {
		fputs("\n== all programs ==\n", out);
		td__text_stats(out, &r->total);
	}
	fputs("\ninputs\n", out);
	for (size_t i = 0; i < r->n_in; i++) {
		fputs("  ", out);
		td__put_esc(out, r->in[i].name, false);
		fprintf(out, ": %llu lines, %llu malformed",
			(unsigned long long)r->in[i].lines,
			(unsigned long long)r->in[i].malformed);
		if (r->in[i].text != 0)
			fprintf(out, ", %llu text format: use format = json",
				(unsigned long long)r->in[i].text);
		if (r->in[i].other != 0)
			fprintf(out, ", %llu from other programs",
				(unsigned long long)r->in[i].other);
		if (r->in[i].spool)
			fputs(" (a spool: not in the log yet)", out);
		fputc('\n', out);
	}
	return 0;
}

/* ---- Prometheus text exposition format ----------------------------- */

/* A label value: backslash, double quote and newline escaped. */
static void td__prom_label(FILE *out, const char *name, const char *v)
{
	fprintf(out, "%s=\"", name);
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", out);
		else if (*v == '"')
			fputs("\\\"", out);
		else if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
	fputc('"', out);
}

static void td__prom_head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{prog="..."[,k="v"]...} value */
static void td__prom_sample(FILE *out, const char *name, const char *prog,
			    const char *k1, const char *v1, const char *k2, const char *v2,
			    uint64_t value)
{
	fputs(name, out);
	fputc('{', out);
	td__prom_label(out, "prog", prog);
	if (k1 != NULL) {
		fputc(',', out);
		td__prom_label(out, k1, v1);
	}
	if (k2 != NULL) {
		fputc(',', out);
		td__prom_label(out, k2, v2);
	}
	fprintf(out, "} %llu\n", (unsigned long long)value);
}

/* One counter with only the prog label, for every program. */
static void td__prom_simple(FILE *out, const struct td__cent **progs, size_t np,
			    const char *name, const char *help, size_t off)
{
	td__prom_head(out, name, "counter", help);
	for (size_t i = 0; i < np; i++) {
		const char *st = progs[i]->ptr;

		td__prom_sample(out, name, progs[i]->key, NULL, NULL, NULL, NULL,
				*(const uint64_t *)(st + off));
	}
}

struct td__pctx {
	FILE *out;
	const char *prog;
};

static void td__prom_fault_cb(void *ctx, const char *k, uint64_t n)
{
	struct td__pctx *c = ctx;

	td__prom_sample(c->out, "teardown_faults_total", c->prog, "fault", k, NULL, NULL, n);
}

static int td__render_prom(const struct td_report *r, FILE *out,
			   const struct td__cent **progs, size_t np)
{
	td__prom_head(out, "teardown_connections_total", "counter",
		      "TCP connections opened (connect and accept events).");
	for (size_t i = 0; i < np; i++) {
		const struct td_report_stats *st = progs[i]->ptr;

		td__prom_sample(out, "teardown_connections_total", progs[i]->key, "role",
				"client", NULL, NULL, st->connects);
		td__prom_sample(out, "teardown_connections_total", progs[i]->key, "role",
				"server", NULL, NULL, st->accepts);
	}
	td__prom_head(out, "teardown_closes_total", "counter",
		      "Closes by what went on the wire (FIN, RST, none) and why.");
	for (size_t i = 0; i < np; i++) {
		const struct td_report_stats *st = progs[i]->ptr;

		for (int w = 0; w < TD_RW__COUNT; w++) {
			size_t n;
			const struct td__cent **v = td__cmap_sorted(st->closes.by_why[w], &n);

			for (size_t k = 0; v != NULL && k < n; k++)
				td__prom_sample(out, "teardown_closes_total", progs[i]->key,
						"wire", td__wire_keys[w], "why",
						strcmp(v[k]->key, "-") == 0 ? "unknown" : v[k]->key,
						v[k]->n);
			free(v);
		}
	}
	td__prom_simple(out, progs, np, "teardown_time_wait_owned_total",
			"Closes after which this side holds TIME_WAIT (it closed first).",
			offsetof(struct td_report_stats, closes.time_wait));
	td__prom_simple(out, progs, np, "teardown_lost_bytes_total",
			"Bytes written but not acknowledged, thrown away by RST closes.",
			offsetof(struct td_report_stats, closes.lost));
	td__prom_simple(out, progs, np, "teardown_leaks_total",
			"Sockets left in CLOSE_WAIT past leak_after_s (leak events).",
			offsetof(struct td_report_stats, leaks));
	td__prom_head(out, "teardown_faults_total", "counter",
		      "Faults injected, by kind (fault events).");
	for (size_t i = 0; i < np; i++) {
		struct td__pctx c = {out, progs[i]->key};

		td__faults_each(((const struct td_report_stats *)progs[i]->ptr)->faults,
				td__prom_fault_cb, &c);
	}
	td__prom_simple(out, progs, np, "teardown_exec_ends_total",
			"Connections a successful exec() ended, close-on-exec (exec events).",
			offsetof(struct td_report_stats, execs));
	td__prom_simple(out, progs, np, "teardown_log_dropped_lines_total",
			"Audit lines the library could not write (dropped events).",
			offsetof(struct td_report_stats, dropped));
	td__prom_head(out, "teardown_report_lines", "gauge",
		      "Lines read by teardown report, by what they were.");
	fprintf(out, "teardown_report_lines{kind=\"event\"} %llu\n",
		(unsigned long long)(r->lines - r->malformed - r->text - r->other));
	fprintf(out, "teardown_report_lines{kind=\"malformed\"} %llu\n",
		(unsigned long long)r->malformed);
	fprintf(out, "teardown_report_lines{kind=\"text\"} %llu\n", (unsigned long long)r->text);
	fprintf(out, "teardown_report_lines{kind=\"other\"} %llu\n",
		(unsigned long long)r->other);
	return 0;
}

int td_report_render(const struct td_report *r, FILE *out, int format)
{
	size_t np;
	const struct td__cent **progs = td__cmap_sorted(r->progs, &np);

	if (progs == NULL)
		return -ENOMEM;
	if (format == TD_REPORT_JSON)
		td__render_json(r, out, progs, np);
	else if (format == TD_REPORT_PROMETHEUS)
		td__render_prom(r, out, progs, np);
	else
		td__render_text(r, out, progs, np);
	free(progs);
	errno = 0;
	if (fflush(out) != 0 || ferror(out))
		return errno ? -errno : -EIO;
	return 0;
}
