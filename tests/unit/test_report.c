/* teardown: unit tests for the log reader and `teardown report`'s counts. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "../../cli/lib/logparse.h"
#include "../../cli/lib/report.h"

/* ---- helpers --------------------------------------------------------- */

/*
 * Fixtures live in tests/unit/fixtures/logs.  Tests normally run from the
 * top of the tree; failing that, find the tree from the test binary
 * (build/tests/unit_tests), so a run from elsewhere still works.
 */
static void td_t_fixture(char *out, size_t cap, const char *name)
{
	static const char rel[] = "tests/unit/fixtures/logs/";
	char exe[PATH_MAX];
	ssize_t n;

	snprintf(out, cap, "%s%s", rel, name);
	if (access(out, R_OK) == 0)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(gt(sz, (size_t)(n + 1), 1), "cannot find fixture %s", name);
	exe[n] = '\0';
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(exe, '/');

		if (slash != NULL)
			*slash = '\0';
	}
	snprintf(out, cap, "%s/%s%s", exe, rel, name);
	cr_assert(eq(int, access(out, R_OK), 0), "cannot find fixture %s", out);
}

/* Feed a fixture the way `teardown report` does: begin, then getline. */
static void td_t_feed(struct td_report *r, const char *name)
{
	char path[PATH_MAX + 64];
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	td_t_fixture(path, sizeof(path), name);
	f = fopen(path, "r");
	cr_assert(not(eq(ptr, f, NULL)), "open %s", path);
	cr_assert(eq(int, td_report_begin(r, name), 0));
	while ((n = getline(&line, &cap, f)) >= 0) {
		int rc = td_report_line(r, line, (size_t)n);

		cr_assert(not(eq(int, rc, -ENOMEM)));
	}
	free(line);
	fclose(f);
}

static int td_t_feed_str(struct td_report *r, const char *text)
{
	char *copy = strdup(text);
	int rc = td_report_line(r, copy, strlen(copy));

	free(copy);
	return rc;
}

static char *td_t_render(const struct td_report *r, int format)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	cr_assert(not(eq(ptr, m, NULL)));
	cr_assert(eq(int, td_report_render(r, m, format), 0));
	fclose(m);
	return buf;
}

/*
 * A small JSON checker for the rendered report: it validates the whole
 * text and flattens it into "path = value" pairs, e.g.
 * "nginx/by_why/RST:policy" = "1" or "nginx/slowest/0/remote" =
 * "\"10.0.0.4:40002\"" (strings keep their quotes and escapes).  Iterative,
 * with an explicit stack, like the reader it helps test.
 */
struct td_t_kv {
	char path[256];
	char val[256];
};

struct td_t_flat {
	struct td_t_kv kv[4096];
	size_t n;
	char top[32][256]; /* top-level keys, in order */
	size_t ntop;
};

static const char *td_t_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* Copy the raw text of the string at p, quotes included, into out. */
static const char *td_t_jstr(const char *p, char *out, size_t cap)
{
	const char *start = p++;
	size_t n;

	while (*p && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			if (!p[1])
				return NULL;
			p++;
		}
		p++;
	}
	if (*p != '"')
		return NULL;
	p++;
	n = (size_t)(p - start);
	if (n >= cap)
		n = cap - 1;
	memcpy(out, start, n);
	out[n] = '\0';
	return p;
}

static void td_t_add(struct td_t_flat *fl, const char *path, const char *val)
{
	cr_assert(lt(sz, fl->n, sizeof(fl->kv) / sizeof(fl->kv[0])));
	snprintf(fl->kv[fl->n].path, sizeof(fl->kv[0].path), "%s", path);
	snprintf(fl->kv[fl->n].val, sizeof(fl->kv[0].val), "%s", val);
	fl->n++;
}

static int td_t_flatten(const char *s, struct td_t_flat *fl)
{
	struct {
		char kind;
		size_t plen;
		int idx;
	} st[16];
	int depth = 0;
	enum { VALUE, AFTER, KEY } state = VALUE;
	char path[1024] = "", tmp[256];
	size_t plen = 0;
	const char *p = td_t_ws(s);

	fl->n = fl->ntop = 0;
	for (;;) {
		if (state == VALUE) {
			if (*p == '{' || *p == '[') {
				char kind = *p;

				if (depth == 16)
					return -1;
				st[depth].kind = kind;
				st[depth].plen = plen;
				st[depth].idx = 0;
				depth++;
				p = td_t_ws(p + 1);
				if (*p == (kind == '{' ? '}' : ']')) {
					p++;
					depth--;
					td_t_add(fl, path, kind == '{' ? "{}" : "[]");
					state = AFTER;
				} else if (kind == '{') {
					state = KEY;
				} else {
					plen += (size_t)snprintf(path + plen,
							 sizeof(path) - plen, "/0");
				}
				continue;
			}
			if (*p == '"') {
				p = td_t_jstr(p, tmp, sizeof(tmp));
				if (p == NULL)
					return -1;
			} else {
				size_t n = strspn(p, "-0123456789truefalsn");

				if (n == 0 || n >= sizeof(tmp))
					return -1;
				memcpy(tmp, p, n);
				tmp[n] = '\0';
				p += n;
			}
			td_t_add(fl, path, tmp);
			state = AFTER;
		} else if (state == AFTER) {
			char kind;

			p = td_t_ws(p);
			if (depth == 0)
				return *p == '\0' ? 0 : -1;
			kind = st[depth - 1].kind;
			plen = st[depth - 1].plen;
			path[plen] = '\0';
			if (*p == ',') {
				p = td_t_ws(p + 1);
				if (kind == '{') {
					state = KEY;
				} else {
					plen += (size_t)snprintf(path + plen,
						sizeof(path) - plen, "/%d",
						++st[depth - 1].idx);
					state = VALUE;
				}
			} else if (*p == (kind == '{' ? '}' : ']')) {
				p++;
				depth--;
				plen = st[depth].plen;
				path[plen] = '\0';
			} else {
				return -1;
			}
		} else {
			char key[256], *k = key;

			p = td_t_ws(p);
			if (*p != '"')
				return -1;
			p = td_t_jstr(p, key, sizeof(key));
			if (p == NULL)
				return -1;
			p = td_t_ws(p);
			if (*p != ':')
				return -1;
			p = td_t_ws(p + 1);
			/* paths use the key without its quotes */
			k[strlen(k) - 1] = '\0';
			k++;
			if (depth == 1 && fl->ntop < 32)
				snprintf(fl->top[fl->ntop++], sizeof(fl->top[0]),
					 "%s", k);
			plen = st[depth - 1].plen;
			plen += (size_t)snprintf(path + plen, sizeof(path) - plen,
						 "%s%s", plen ? "/" : "", k);
			state = VALUE;
		}
	}
}

static const char *td_t_get(const struct td_t_flat *fl, const char *path)
{
	for (size_t i = 0; i < fl->n; i++)
		if (strcmp(fl->kv[i].path, path) == 0)
			return fl->kv[i].val;
	return NULL;
}

#define td_t_assert_at(fl, path, want)                                       \
	do {                                                                 \
		const char *td__v = td_t_get((fl), (path));                  \
		cr_assert(not(eq(ptr, (void *)td__v, NULL)), "no %s", path); \
		cr_assert(eq(str, (char *)td__v, (char *)(want)), "at %s", path); \
	} while (0)

/* ---- the reader ------------------------------------------------------ */

Test(report, parse_values)
{
	char line[] = "{\"s\":\"a\\\"b\\\\c\\/d\\n\\t\\b\\f\\r\", \"i\":-42, "
		      "\"z\":0, \"big\":18446744073709551615, "
		      "\"min\":-9223372036854775808, \"t\":true, \"f\":false, "
		      "\"n\":null, \"u\":\"\\u00e9\\u65E5\\ud83d\\ude00\"}\n";
	struct td_jline l;
	const struct td_jfield *f;

	cr_assert(eq(int, td_jline_parse(&l, line, strlen(line)), 0));
	cr_assert(eq(sz, l.n, 9));
	cr_assert(eq(str, (char *)td_jline_str(&l, "s"), "a\"b\\c/d\n\t\b\f\r"));
	f = td_jline_get(&l, "i");
	cr_assert(eq(int, f->type, TD_J_INT));
	cr_assert(eq(i64, f->i, -42));
	cr_assert(eq(i64, td_jline_get(&l, "z")->i, 0));
	f = td_jline_get(&l, "big");
	cr_assert(eq(int, f->type, TD_J_UINT));
	cr_assert(eq(u64, f->u, UINT64_MAX));
	cr_assert(eq(i64, td_jline_get(&l, "min")->i, INT64_MIN));
	f = td_jline_get(&l, "t");
	cr_assert(eq(int, f->type, TD_J_BOOL));
	cr_assert(eq(i64, f->i, 1));
	cr_assert(eq(i64, td_jline_get(&l, "f")->i, 0));
	cr_assert(eq(int, td_jline_get(&l, "n")->type, TD_J_NULL));
	cr_assert(eq(str, (char *)td_jline_str(&l, "u"),
		     "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80"));
	cr_assert(eq(sz, td_jline_get(&l, "u")->slen, 9));
	cr_assert(eq(ptr, (void *)td_jline_str(&l, "i"), NULL), "not a string");
	cr_assert(eq(ptr, (void *)td_jline_get(&l, "absent"), NULL));
}

Test(report, parse_first_duplicate_wins_and_empty_object)
{
	char dup[] = "{\"k\":\"first\",\"k\":\"second\"}";
	char empty[] = " { } \r\n";
	struct td_jline l;

	cr_assert(eq(int, td_jline_parse(&l, dup, strlen(dup)), 0));
	cr_assert(eq(str, (char *)td_jline_str(&l, "k"), "first"));
	cr_assert(eq(int, td_jline_parse(&l, empty, strlen(empty)), 0));
	cr_assert(eq(sz, l.n, 0));
}

struct td_t_bad {
	char line[64];
};

static struct td_t_bad td_t_bads[] = {
	{""},
	{"\n"},
	{"{"},
	{"}"},
	{"[]"},
	{"\"str\""},
	{"42"},
	{"{\"a\":1"},
	{"{\"a\":1,}"},
	{"{\"a\" 1}"},
	{"{a:1}"},
	{"{\"a\":1} x"},
	{"{\"a\":1}{\"b\":2}"},
	{"{\"a\":{\"b\":1}}"},
	{"{\"a\":[1]}"},
	{"{\"a\":01}"},
	{"{\"a\":-}"},
	{"{\"a\":1.5}"},
	{"{\"a\":1e3}"},
	{"{\"a\":+1}"},
	{"{\"a\":18446744073709551616}"},
	{"{\"a\":-9223372036854775809}"},
	{"{\"a\":tru}"},
	{"{\"a\":nul}"},
	{"{\"a\":True}"},
	{"{\"a\":\"x}"},
	{"{\"a\":\"\\q\"}"},
	{"{\"a\":\"\\u12\"}"},
	{"{\"a\":\"\\u12g4\"}"},
	{"{\"a\":\"\\ud800\"}"},
	{"{\"a\":\"\\ud800\\u0041\"}"},
	{"{\"a\":\"\\udc00\"}"},
	{"{\"a\":\"\\u0000\"}"},
	{"{\"a\":\"tab\there\"}"},
	{"{\"a\":\"\xff\"}"},
	{"{\"a\":\"\xc0\x80\"}"},
	{"{\"a\":\"\xed\xa0\x80\"}"},
	{"{\"a\":\"\xe6\x97\"}"},
	{"{\"\xff\":1}"},
	{"{\"a\":1,\"a\":}"},
	{"\xef\xbb\xbf{\"a\":1}"}, /* a byte-order mark is not ours either */
};

ParameterizedTestParameters(report, parse_rejects)
{
	return cr_make_param_array(struct td_t_bad, td_t_bads,
				   sizeof(td_t_bads) / sizeof(td_t_bads[0]));
}

ParameterizedTest(struct td_t_bad *p, report, parse_rejects)
{
	char line[64];
	struct td_jline l;

	memcpy(line, p->line, sizeof(line));
	cr_assert(eq(int, td_jline_parse(&l, line, strlen(line)), -EINVAL),
		  "accepted: %s", p->line);
}

Test(report, parse_embedded_nul_and_limits)
{
	char nul[] = "{\"a\":1}\0{", nul2[] = "{\"a\":1}\0{";
	char *wide;
	struct td_jline l;
	size_t n = 0;

	/* the length, not a NUL, ends the line */
	cr_assert(eq(int, td_jline_parse(&l, nul, sizeof(nul) - 1), -EINVAL));
	cr_assert(eq(int, td_jline_parse(&l, nul2, 7), 0));

	/* TD_JLINE_MAX_FIELDS keys parse, one more does not */
	wide = malloc(16 * (TD_JLINE_MAX_FIELDS + 1) + 4);
	cr_assert(not(eq(ptr, wide, NULL)));
	for (int pass = 0; pass < 2; pass++) {
		int fields = TD_JLINE_MAX_FIELDS + pass;

		n = 0;
		wide[n++] = '{';
		for (int i = 0; i < fields; i++)
			n += (size_t)sprintf(wide + n, "%s\"k%d\":%d", i ? "," : "",
					     i, i);
		wide[n++] = '}';
		wide[n] = '\0';
		cr_assert(eq(int, td_jline_parse(&l, wide, n), pass ? -EINVAL : 0));
	}
	free(wide);
}

Test(report, parse_long_string)
{
	size_t big = 1 << 20;
	char *line = malloc(big + 32);
	struct td_jline l;
	size_t n;

	cr_assert(not(eq(ptr, line, NULL)));
	n = (size_t)sprintf(line, "{\"prog\":\"");
	memset(line + n, 'p', big);
	n += big;
	n += (size_t)sprintf(line + n, "\",\"event\":\"close\"}");
	cr_assert(eq(int, td_jline_parse(&l, line, n), 0));
	cr_assert(eq(sz, td_jline_get(&l, "prog")->slen, big));
	cr_assert(eq(str, (char *)td_jline_str(&l, "event"), "close"));
	free(line);
}

/*
 * Garbage in any amount must only ever be counted: random bytes, and
 * valid lines with bytes flipped or cut short.  Under the sanitizer build
 * this doubles as a small fuzz run.
 */
Test(report, garbage_is_counted_not_fatal)
{
	static const char valid[] =
		"{\"ts\":\"2026-11-21T07:48:00.123456Z\",\"pid\":1,\"tid\":1,"
		"\"prog\":\"p\\u00e9\",\"event\":\"close\",\"fd\":5,\"wire\":\"RST\","
		"\"why\":\"policy\",\"lost\":3,\"age_ms\":9,\"time_wait\":true}";
	struct td_report *r = td_report_new();
	uint64_t x = 0x9e3779b97f4a7c15ull, events = 0;
	char line[sizeof(valid) + 64];

	cr_assert(not(eq(ptr, r, NULL)));
	for (int i = 0; i < 20000; i++) {
		size_t n;
		int rc;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(line, valid, sizeof(valid));
		n = sizeof(valid) - 1;
		if (i % 3 == 0) {
			for (size_t k = 0; k < n; k++)
				line[k] = (char)(x >> (k % 56));
		} else if (i % 3 == 1) {
			line[x % n] = (char)(x >> 32);
			line[(x >> 16) % n] = (char)(x >> 40);
		} else {
			n = x % n;
		}
		rc = td_report_line(r, line, n);
		cr_assert(eq(int, rc == 0 || rc == -EINVAL, 1));
		events += rc == 0;
	}
	cr_assert(eq(u64, td_report_lines(r), 20000));
	cr_assert(eq(u64, td_report_malformed(r) + events, 20000));
	cr_assert(gt(u64, td_report_malformed(r), 0));
	free(td_t_render(r, TD_REPORT_JSON));
	free(td_t_render(r, TD_REPORT_TEXT));
	td_report_free(r);
}

/* ---- aggregation ----------------------------------------------------- */

static struct td_report *td_t_r;

static void td_t_mixed(void)
{
	td_t_r = td_report_new();
	cr_assert(not(eq(ptr, td_t_r, NULL)));
	td_t_feed(td_t_r, "mixed.1.jsonl");
	td_t_feed(td_t_r, "mixed.2.jsonl");
}

static void td_t_free(void)
{
	td_report_free(td_t_r);
	td_t_r = NULL;
}

Test(report, counts_per_program, .init = td_t_mixed, .fini = td_t_free)
{
	const struct td_report_stats *ng = td_report_prog(td_t_r, "nginx");
	const struct td_report_stats *cu = td_report_prog(td_t_r, "curl");

	cr_assert(eq(sz, td_report_nprogs(td_t_r), 2));
	cr_assert(eq(u64, td_report_lines(td_t_r), 35));
	cr_assert(eq(u64, td_report_malformed(td_t_r), 7));
	cr_assert(eq(ptr, (void *)td_report_prog(td_t_r, "wget"), NULL));

	cr_assert(not(eq(ptr, (void *)ng, NULL)));
	cr_assert(eq(u64, ng->events, 20));
	cr_assert(eq(u64, ng->connects + ng->accepts, 7));
	cr_assert(eq(u64, ng->accepts, 7));
	cr_assert(eq(u64, ng->closes.count, 6));
	cr_assert(eq(u64, ng->active, 5));
	cr_assert(eq(u64, ng->passive, 1));
	cr_assert(eq(u64, ng->closes.time_wait, 1));
	cr_assert(eq(u64, ng->closes.wire[TD_RW_FIN], 1));
	cr_assert(eq(u64, ng->closes.wire[TD_RW_RST], 4));
	cr_assert(eq(u64, ng->closes.wire[TD_RW_NONE], 1));
	cr_assert(eq(u64, ng->closes.wire[TD_RW_UNKNOWN], 0));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_FIN], "close"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_RST], "policy"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_RST], "fault"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_RST], "linger0"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_RST], "unread-data"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->closes.by_why[TD_RW_NONE], "fin-sent"), 1));
	cr_assert(eq(u64, ng->closes.lost, 1317));
	cr_assert(eq(u64, td_cmap_get(ng->by_action, "graceful"), 2));
	cr_assert(eq(u64, td_cmap_get(ng->by_action, "abort"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->by_action, "drain"), 1));
	cr_assert(eq(u64, td_cmap_get(ng->by_action, "pass"), 2));
	cr_assert(eq(u64, ng->leaks, 1));
	cr_assert(eq(u64, td_cmap_get(ng->faults, "rst"), 1));
	cr_assert(eq(u64, ng->exits.count, 2));
	cr_assert(eq(u64, ng->exits.wire[TD_RW_FIN], 1));
	cr_assert(eq(u64, ng->exits.wire[TD_RW_RST], 1));
	cr_assert(eq(u64, td_cmap_get(ng->exits.by_why[TD_RW_RST], "unaccepted"), 1));
	cr_assert(eq(u64, ng->shutdowns, 1));
	cr_assert(eq(u64, td_cmap_get(ng->shutdown_how, "SHUT_RDWR"), 1));
	cr_assert(eq(u64, ng->binds, 1));

	/* slowest: the top 5 of 6 closes, largest first */
	cr_assert(eq(sz, ng->n_slow, 5));
	cr_assert(eq(i64, ng->slow[0].age_ms, 5000));
	cr_assert(eq(i64, ng->slow[0].fd, 9));
	cr_assert(eq(i64, ng->slow[0].pid, 100));
	cr_assert(eq(str, ng->slow[0].remote, "10.0.0.4:40002"));
	cr_assert(eq(str, ng->slow[0].rule, "web"));
	cr_assert(eq(i64, ng->slow[1].age_ms, 2000));
	cr_assert(eq(str, ng->slow[1].remote, "[2001:db8::5]:40004"));
	cr_assert(eq(i64, ng->slow[2].age_ms, 300));
	cr_assert(eq(i64, ng->slow[3].age_ms, 120));
	cr_assert(eq(i64, ng->slow[4].age_ms, 40));

	cr_assert(not(eq(ptr, (void *)cu, NULL)));
	cr_assert(eq(u64, cu->events, 8));
	cr_assert(eq(u64, cu->connects, 3));
	cr_assert(eq(u64, cu->accepts, 0));
	cr_assert(eq(u64, td_cmap_get(cu->connect_errors, "ECONNREFUSED"), 1));
	cr_assert(eq(u64, cu->closes.count, 3));
	cr_assert(eq(u64, cu->active, 2));
	cr_assert(eq(u64, cu->passive, 0));
	cr_assert(eq(u64, cu->closes.time_wait, 1));
	cr_assert(eq(u64, cu->closes.wire[TD_RW_FIN], 1));
	cr_assert(eq(u64, cu->closes.wire[TD_RW_RST], 1));
	cr_assert(eq(u64, cu->closes.wire[TD_RW_NONE], 1));
	cr_assert(eq(u64, td_cmap_get(cu->closes.by_why[TD_RW_NONE], "unconnected"), 1));
	cr_assert(eq(u64, cu->closes.lost, 50));
	cr_assert(eq(u64, td_cmap_get(cu->by_action, "-"), 3), "null action");
	cr_assert(eq(u64, td_cmap_get(cu->faults, "connect_refuse"), 1));
	cr_assert(eq(u64, cu->lingers, 1));
	cr_assert(eq(u64, cu->leaks, 0));
	cr_assert(eq(u64, cu->exits.count, 0));
	cr_assert(eq(sz, cu->n_slow, 3));
	cr_assert(eq(i64, cu->slow[2].age_ms, 0));
	cr_assert(eq(ptr, cu->slow[0].rule, NULL), "null rule stays null");
}

Test(report, totals, .init = td_t_mixed, .fini = td_t_free)
{
	const struct td_report_stats *t = td_report_total(td_t_r);

	cr_assert(eq(u64, t->events, 28));
	cr_assert(eq(u64, t->connects + t->accepts, 10));
	cr_assert(eq(u64, t->closes.count, 9));
	cr_assert(eq(u64, t->active, 7));
	cr_assert(eq(u64, t->passive, 1));
	cr_assert(eq(u64, t->closes.time_wait, 2));
	cr_assert(eq(u64, t->closes.wire[TD_RW_FIN], 2));
	cr_assert(eq(u64, t->closes.wire[TD_RW_RST], 5));
	cr_assert(eq(u64, t->closes.wire[TD_RW_NONE], 2));
	cr_assert(eq(u64, t->closes.lost, 1367));
	cr_assert(eq(u64, td_cmap_get(t->closes.by_why[TD_RW_RST], "linger0"), 2));
	cr_assert(eq(u64, t->leaks, 1));
	cr_assert(eq(u64, t->exits.count, 2));
	cr_assert(eq(u64, td_cmap_get(t->faults, "rst"), 1));
	cr_assert(eq(u64, td_cmap_get(t->faults, "connect_refuse"), 1));
	cr_assert(eq(sz, t->n_slow, 5));
	cr_assert(eq(i64, t->slow[3].age_ms, 125));
	cr_assert(eq(str, t->slow[3].prog, "curl"));
}

Test(report, rotated_parts_in_any_order)
{
	struct td_report *a = td_report_new(), *b = td_report_new();
	const struct td_report_stats *sa, *sb;

	td_t_feed(a, "mixed.1.jsonl");
	td_t_feed(a, "mixed.2.jsonl");
	td_t_feed(b, "mixed.2.jsonl");
	td_t_feed(b, "mixed.1.jsonl");
	sa = td_report_prog(a, "nginx");
	sb = td_report_prog(b, "nginx");
	cr_assert(eq(u64, sa->closes.count, sb->closes.count));
	cr_assert(eq(u64, sa->closes.lost, sb->closes.lost));
	cr_assert(eq(u64, sa->active, sb->active));
	for (size_t i = 0; i < TD_REPORT_SLOWEST; i++)
		cr_assert(eq(i64, sa->slow[i].age_ms, sb->slow[i].age_ms));
	cr_assert(eq(u64, td_report_malformed(a), td_report_malformed(b)));
	td_report_free(a);
	td_report_free(b);
}

Test(report, json_rendering, .init = td_t_mixed, .fini = td_t_free)
{
	char *out = td_t_render(td_t_r, TD_REPORT_JSON);
	static struct td_t_flat fl;
	static const char *const top[] = {"curl", "nginx", "_total",
					  "_malformed", "_text", "_other", "_files"};

	cr_assert(eq(int, td_t_flatten(out, &fl), 0), "invalid JSON:\n%s", out);
	cr_assert(eq(sz, fl.ntop, 7));
	for (size_t i = 0; i < 7; i++)
		cr_assert(eq(str, fl.top[i], (char *)top[i]));

	td_t_assert_at(&fl, "nginx/connections", "7");
	td_t_assert_at(&fl, "nginx/closes", "6");
	td_t_assert_at(&fl, "nginx/active", "5");
	td_t_assert_at(&fl, "nginx/passive", "1");
	td_t_assert_at(&fl, "nginx/time_wait", "1");
	td_t_assert_at(&fl, "nginx/FIN", "1");
	td_t_assert_at(&fl, "nginx/RST", "4");
	td_t_assert_at(&fl, "nginx/none", "1");
	td_t_assert_at(&fl, "nginx/lost", "1317");
	td_t_assert_at(&fl, "nginx/leaks", "1");
	td_t_assert_at(&fl, "nginx/exits", "2");
	td_t_assert_at(&fl, "nginx/shutdowns", "1");
	td_t_assert_at(&fl, "nginx/faults/rst", "1");
	td_t_assert_at(&fl, "nginx/faults/connect_refuse", "0");
	td_t_assert_at(&fl, "nginx/by_action/graceful", "2");
	td_t_assert_at(&fl, "nginx/by_action/abort", "1");
	td_t_assert_at(&fl, "nginx/by_why/FIN:close", "1");
	td_t_assert_at(&fl, "nginx/by_why/RST:policy", "1");
	td_t_assert_at(&fl, "nginx/by_why/RST:unread-data", "1");
	td_t_assert_at(&fl, "nginx/by_why/none:fin-sent", "1");
	td_t_assert_at(&fl, "nginx/exit_detail/RST", "1");
	td_t_assert_at(&fl, "nginx/exit_detail/by_why/RST:unaccepted", "1");
	td_t_assert_at(&fl, "nginx/slowest/0/age_ms", "5000");
	td_t_assert_at(&fl, "nginx/slowest/0/pid", "100");
	td_t_assert_at(&fl, "nginx/slowest/0/fd", "9");
	td_t_assert_at(&fl, "nginx/slowest/0/remote", "\"10.0.0.4:40002\"");
	td_t_assert_at(&fl, "nginx/slowest/0/rule", "\"web\"");
	td_t_assert_at(&fl, "nginx/slowest/4/age_ms", "40");
	cr_assert(eq(ptr, (void *)td_t_get(&fl, "nginx/slowest/5/age_ms"), NULL));

	td_t_assert_at(&fl, "curl/connections", "3");
	td_t_assert_at(&fl, "curl/RST", "1");
	td_t_assert_at(&fl, "curl/lost", "50");
	td_t_assert_at(&fl, "curl/connect_errors/ECONNREFUSED", "1");
	td_t_assert_at(&fl, "curl/faults/connect_refuse", "1");
	td_t_assert_at(&fl, "curl/by_action/-", "3");
	td_t_assert_at(&fl, "curl/slowest/0/rule", "null");
	td_t_assert_at(&fl, "curl/exit_detail/by_why", "{}");

	td_t_assert_at(&fl, "_total/connections", "10");
	td_t_assert_at(&fl, "_total/RST", "5");
	td_t_assert_at(&fl, "_total/lost", "1367");
	td_t_assert_at(&fl, "_total/slowest/3/prog", "\"curl\"");
	td_t_assert_at(&fl, "_malformed", "7");
	td_t_assert_at(&fl, "_files/mixed.1.jsonl/lines", "8");
	td_t_assert_at(&fl, "_files/mixed.1.jsonl/malformed", "1");
	td_t_assert_at(&fl, "_files/mixed.2.jsonl/lines", "27");
	td_t_assert_at(&fl, "_files/mixed.2.jsonl/malformed", "6");
	free(out);
}

Test(report, text_rendering, .init = td_t_mixed, .fini = td_t_free)
{
	char *out = td_t_render(td_t_r, TD_REPORT_TEXT);
	static const char *const want[] = {
		"teardown report: 2 programs, 35 lines, 7 malformed\n",
		"\n== curl ==\n",
		"\n== nginx ==\n",
		"\n== all programs ==\n",
		"  connections             7   (connect 0, accept 7)\n",
		"  closes                  6   (active 5, passive 1)\n",
		"    by action      abort 1, drain 1, graceful 2, pass 2\n",
		"    FIN             1   close 1\n",
		"    RST             4   fault 1, linger0 1, policy 1, unread-data 1\n",
		"    none            1   fin-sent 1\n",
		"  TIME_WAIT owned         1\n",
		"  bytes lost (RST)     1317\n",
		"  CLOSE_WAIT leaks        1\n",
		"  faults           rst 1\n",
		"  faults           connect_refuse 1\n",
		"  shutdowns               1   SHUT_RDWR 1\n",
		"  open at exit            2   (TIME_WAIT 0, lost 0)\n",
		"        5000 ms  nginx pid=100 fd=9 remote=10.0.0.4:40002 rule=web\n",
		"         125 ms  curl pid=200 fd=3 remote=10.0.0.1:8080 rule=-\n",
		"    connect errors ECONNREFUSED 1\n",
		"  mixed.1.jsonl: 8 lines, 1 malformed\n",
		"  mixed.2.jsonl: 27 lines, 6 malformed\n",
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(not(eq(ptr, strstr(out, want[i]), NULL)),
			  "missing \"%s\" in:\n%s", want[i], out);
	cr_assert(eq(int, strncmp(out, want[0], strlen(want[0])), 0));
	cr_assert(lt(ptr, strstr(out, "== curl =="), strstr(out, "== nginx ==")),
		  "programs in name order");
	free(out);
}

Test(report, escaped_names_and_strict_lines)
{
	struct td_report *r = td_report_new();
	const struct td_report_stats *x, *jp;
	static const char evil[] = "evil\nprog \"x\"\x01\xc3\xbf";
	static struct td_t_flat fl;
	char *out;

	td_t_feed(r, "tricky.jsonl");
	cr_assert(eq(u64, td_report_lines(r), 20));
	cr_assert(eq(u64, td_report_malformed(r), 12));
	cr_assert(eq(sz, td_report_nprogs(r), 4));

	jp = td_report_prog(r, "\xe6\x97\xa5\xe6\x9c\xac");
	cr_assert(not(eq(ptr, (void *)jp, NULL)), "raw and \\u-escaped UTF-8 agree");
	cr_assert(eq(u64, jp->connects + jp->accepts, 2));
	cr_assert(not(eq(ptr, (void *)td_report_prog(r, "emoji\xf0\x9f\x98\x80"), NULL)));
	cr_assert(not(eq(ptr, (void *)td_report_prog(r, evil), NULL)));
	cr_assert(eq(u64, td_report_prog(r, evil)->closes.lost, 7));
	x = td_report_prog(r, "x");
	cr_assert(eq(u64, x->closes.count, 3));
	cr_assert(eq(u64, x->closes.wire[TD_RW_FIN], 1));
	cr_assert(eq(u64, x->closes.wire[TD_RW_UNKNOWN], 2));
	cr_assert(eq(u64, td_cmap_get(x->faults, "rst"), 1), "64-bit seed parsed");
	cr_assert(eq(sz, x->n_slow, 0), "a negative age is no age");
	cr_assert(eq(ptr, (void *)td_report_prog(r, "y"), NULL));

	/* the name stays escaped, on its own line, in both renderings */
	out = td_t_render(r, TD_REPORT_JSON);
	cr_assert(eq(int, td_t_flatten(out, &fl), 0), "invalid JSON:\n%s", out);
	td_t_assert_at(&fl, "evil\\nprog \\\"x\\\"\\u0001\xc3\xbf/RST", "1");
	free(out);
	out = td_t_render(r, TD_REPORT_TEXT);
	cr_assert(not(eq(ptr, strstr(out, "\n== \"evil\\nprog \\\"x\\\"\\x01\\xc3\\xbf\" ==\n"),
			 NULL)), "%s", out);
	cr_assert(eq(ptr, strstr(out, "evil\nprog"), NULL));
	free(out);
	td_report_free(r);
}

Test(report, malformed_by_definition)
{
	struct td_report *r = td_report_new();

	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"close\"}"), 0));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\"}"), -EINVAL));
	cr_assert(eq(int, td_t_feed_str(r, "{\"event\":\"close\"}"), -EINVAL));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":null,\"event\":\"close\"}"), -EINVAL));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":1}"), -EINVAL));
	cr_assert(eq(int, td_t_feed_str(r, "{}"), -EINVAL));
	/* unknown events and odd types are events, just not counted as closes */
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"future\"}"), 0));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"close\","
					  "\"age_ms\":\"slow\",\"wire\":7}"), 0));
	cr_assert(eq(u64, td_report_malformed(r), 5));
	cr_assert(eq(u64, td_report_lines(r), 8));
	cr_assert(eq(u64, td_report_prog(r, "p")->events, 3));
	cr_assert(eq(u64, td_report_prog(r, "p")->closes.count, 2));
	cr_assert(eq(u64, td_report_prog(r, "p")->closes.wire[TD_RW_UNKNOWN], 2));
	td_report_free(r);
}

Test(report, many_programs)
{
	struct td_report *r = td_report_new();
	char line[128];

	for (int i = 0; i < 5000; i++) {
		snprintf(line, sizeof(line),
			 "{\"prog\":\"p%d\",\"event\":\"close\",\"wire\":\"RST\","
			 "\"lost\":%d,\"age_ms\":%d}", i % 1000, i, i);
		cr_assert(eq(int, td_report_line(r, line, strlen(line)), 0));
	}
	cr_assert(eq(sz, td_report_nprogs(r), 1000));
	cr_assert(eq(u64, td_report_prog(r, "p7")->closes.count, 5));
	cr_assert(eq(u64, td_report_prog(r, "p7")->closes.lost,
		     7 + 1007 + 2007 + 3007 + 4007));
	cr_assert(eq(i64, td_report_prog(r, "p7")->slow[0].age_ms, 4007));
	cr_assert(eq(i64, td_report_total(r)->slow[0].age_ms, 4999));
	cr_assert(eq(i64, td_report_total(r)->slow[4].age_ms, 4995));
	td_report_free(r);
}

Test(report, empty_report_renders)
{
	struct td_report *r = td_report_new();
	static struct td_t_flat fl;
	char *out;

	cr_assert(eq(int, td_report_begin(r, "empty.jsonl"), 0));
	out = td_t_render(r, TD_REPORT_JSON);
	cr_assert(eq(int, td_t_flatten(out, &fl), 0), "%s", out);
	cr_assert(eq(sz, fl.ntop, 5));
	td_t_assert_at(&fl, "_total/connections", "0");
	td_t_assert_at(&fl, "_text", "0");
	td_t_assert_at(&fl, "_total/slowest", "[]");
	td_t_assert_at(&fl, "_malformed", "0");
	td_t_assert_at(&fl, "_files/empty.jsonl/lines", "0");
	free(out);
	out = td_t_render(r, TD_REPORT_TEXT);
	cr_assert(eq(str, out,
		     "teardown report: 0 programs, 0 lines, 0 malformed\n"
		     "\ninputs\n  empty.jsonl: 0 lines, 0 malformed\n"));
	free(out);
	td_report_free(r);
}

/* ---- other inputs: text lines, syslog files, journalctl -o json -------- */

Test(report, text_format_lines_named_apart)
{
	struct td_report *r = td_report_new();
	char *out;

	cr_assert(eq(int, td_t_feed_str(r, "2026-11-21T08:13:15.457097Z 13542/13542 python3 close "
					  "fd=5 role=server wire=FIN\n"), TD_REPORT_TEXTLINE));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"close\",\"wire\":\"FIN\"}\n"),
		     0));
	/* almost text: still malformed */
	cr_assert(eq(int, td_t_feed_str(r, "2026-11-21T08:13:15.457097Z python3 close\n"), -EINVAL));
	cr_assert(eq(int, td_t_feed_str(r, "garbage\n"), -EINVAL));
	/* a syslog file's lines, JSON and text */
	cr_assert(eq(int, td_t_feed_str(r, "Nov 21 08:13:15 web1 teardown[77]: {\"prog\":\"q\","
					  "\"event\":\"close\",\"wire\":\"RST\",\"lost\":5}\n"), 0));
	cr_assert(eq(int, td_t_feed_str(r, "Nov 21 08:13:15 web1 teardown[77]: 2026-11-21T08:13:15"
					  ".457097Z 77/77 q close fd=3\n"), TD_REPORT_TEXTLINE));
	cr_assert(eq(u64, td_report_lines(r), 6));
	cr_assert(eq(u64, td_report_text_lines(r), 2));
	cr_assert(eq(u64, td_report_malformed(r), 2));
	cr_assert(eq(u64, td_report_prog(r, "q")->closes.lost, 5));
	out = td_t_render(r, TD_REPORT_TEXT);
	cr_assert(not(eq(ptr, strstr(out, "2 malformed, 2 in the text format\n"), NULL)), "%s", out);
	cr_assert(not(eq(ptr, strstr(out, "text format: use format = \"json\""), NULL)), "%s", out);
	cr_assert(not(eq(ptr, strstr(out, "-: 6 lines, 2 malformed, 2 text format: use format = json\n"),
			 NULL)), "%s", out);
	free(out);
	td_report_free(r);
}

Test(report, journalctl_json_entries)
{
	struct td_report *r = td_report_new();
	const struct td_report_stats *st;

	/* the journal target: every value a string, keys upper-case */
	cr_assert(eq(int, td_t_feed_str(r,
		"{\"__CURSOR\":\"s=1\",\"MESSAGE\":\"2026-11-21T08:13:15.457097Z 9/9 nginx close\","
		"\"PRIORITY\":\"4\",\"_PID\":\"9\",\"TEARDOWN_PROG\":\"nginx\",\"TEARDOWN_EVENT\":\"close\","
		"\"TEARDOWN_WIRE\":\"RST\",\"TEARDOWN_WHY\":\"linger0\",\"TEARDOWN_LOST\":\"1200\","
		"\"TEARDOWN_AGE_MS\":\"30\",\"TEARDOWN_PID\":\"9\",\"TEARDOWN_FD\":\"7\","
		"\"TEARDOWN_TIME_WAIT\":\"false\",\"TEARDOWN_CLOSER\":\"active\",\"TEARDOWN_UID\":\"33\"}"), 0));
	cr_assert(eq(int, td_t_feed_str(r,
		"{\"__CURSOR\":\"s=2\",\"MESSAGE\":\"x\",\"TEARDOWN_PROG\":\"nginx\","
		"\"TEARDOWN_EVENT\":\"dropped\",\"TEARDOWN_DROPPED\":\"12\"}"), 0));
	/* the syslog target through journald: the JSON line in MESSAGE */
	cr_assert(eq(int, td_t_feed_str(r,
		"{\"__CURSOR\":\"s=3\",\"SYSLOG_IDENTIFIER\":\"teardown\",\"MESSAGE\":"
		"\"{\\\"prog\\\":\\\"curl\\\",\\\"event\\\":\\\"connect\\\"}\"}"), 0));
	/* teardown's warnings and other programs' entries are not events */
	cr_assert(eq(int, td_t_feed_str(r,
		"{\"__CURSOR\":\"s=4\",\"SYSLOG_IDENTIFIER\":\"teardown\",\"MESSAGE\":\"teardown: x\"}"),
		TD_REPORT_OTHER));
	cr_assert(eq(int, td_t_feed_str(r,
		"{\"__CURSOR\":\"s=5\",\"SYSLOG_IDENTIFIER\":\"sshd\",\"MESSAGE\":\"hello\"}"),
		TD_REPORT_OTHER));
	st = td_report_prog(r, "nginx");
	cr_assert(not(eq(ptr, (void *)st, NULL)));
	cr_assert(eq(u64, st->closes.count, 1));
	cr_assert(eq(u64, st->closes.wire[TD_RW_RST], 1));
	cr_assert(eq(u64, td_cmap_get(st->closes.by_why[TD_RW_RST], "linger0"), 1));
	cr_assert(eq(u64, st->closes.lost, 1200));
	cr_assert(eq(u64, st->active, 1));
	cr_assert(eq(u64, st->dropped, 12));
	cr_assert(eq(i64, st->slow[0].age_ms, 30));
	cr_assert(eq(i64, st->slow[0].fd, 7));
	cr_assert(eq(u64, td_report_prog(r, "curl")->connects, 1));
	cr_assert(eq(u64, td_report_other_lines(r), 2));
	cr_assert(eq(u64, td_report_malformed(r), 0));
	td_report_free(r);
}

Test(report, dropped_lines_summed)
{
	struct td_report *r = td_report_new();
	char *out;

	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"dropped\",\"dropped\":3,"
					  "\"target\":\"/x\",\"error\":\"ENOENT\"}"), 0));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"p\",\"event\":\"dropped\",\"dropped\":4}"), 0));
	cr_assert(eq(u64, td_report_prog(r, "p")->dropped, 7));
	cr_assert(eq(u64, td_report_total(r)->dropped, 7));
	out = td_t_render(r, TD_REPORT_TEXT);
	cr_assert(not(eq(ptr, strstr(out, "  log lines lost          7"), NULL)), "%s", out);
	free(out);
	td_report_free(r);
}

/* Connections a successful exec() ended: counted apart from closes and
 * exits, in every format. */
Test(report, exec_ends_counted)
{
	struct td_report *r = td_report_new();
	char *out;

	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"py\",\"event\":\"exec\",\"wire\":\"FIN\","
					  "\"closer\":\"active\",\"time_wait\":true}"), 0));
	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"py\",\"event\":\"exec\",\"wire\":\"RST\"}"),
		     0));
	cr_assert(eq(u64, td_report_prog(r, "py")->execs, 2));
	cr_assert(eq(u64, td_report_prog(r, "py")->closes.count, 0));
	cr_assert(eq(u64, td_report_prog(r, "py")->exits.count, 0));
	cr_assert(eq(u64, td_report_total(r)->execs, 2));
	out = td_t_render(r, TD_REPORT_TEXT);
	cr_assert(not(eq(ptr, strstr(out, "  ended by exec()         2"), NULL)), "%s", out);
	free(out);
	out = td_t_render(r, TD_REPORT_JSON);
	cr_assert(not(eq(ptr, strstr(out, "\"execs\": 2"), NULL)), "%s", out);
	free(out);
	out = td_t_render(r, TD_REPORT_PROMETHEUS);
	cr_assert(not(eq(ptr, strstr(out, "teardown_exec_ends_total{prog=\"py\"} 2"), NULL)), "%s",
		  out);
	free(out);
	td_report_free(r);
}

Test(report, prometheus_rendering, .init = td_t_mixed, .fini = td_t_free)
{
	char *out = td_t_render(td_t_r, TD_REPORT_PROMETHEUS);
	static const char *const want[] = {
		"# TYPE teardown_connections_total counter\n",
		"teardown_connections_total{prog=\"nginx\",role=\"server\"} 7\n",
		"teardown_connections_total{prog=\"curl\",role=\"client\"} 3\n",
		"teardown_closes_total{prog=\"nginx\",wire=\"RST\",why=\"unread-data\"} 1\n",
		"teardown_closes_total{prog=\"nginx\",wire=\"FIN\",why=\"close\"} 1\n",
		"teardown_time_wait_owned_total{prog=\"nginx\"} 1\n",
		"teardown_lost_bytes_total{prog=\"nginx\"} 1317\n",
		"teardown_leaks_total{prog=\"nginx\"} 1\n",
		"teardown_faults_total{prog=\"curl\",fault=\"connect_refuse\"} 1\n",
		"teardown_log_dropped_lines_total{prog=\"curl\"} 0\n",
		"teardown_report_lines{kind=\"malformed\"} 7\n",
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(not(eq(ptr, strstr(out, want[i]), NULL)), "missing \"%s\" in:\n%s", want[i],
			  out);
	free(out);
}

Test(report, prometheus_label_escaping)
{
	struct td_report *r = td_report_new();
	char *out;

	cr_assert(eq(int, td_t_feed_str(r, "{\"prog\":\"a\\\"b\\\\c\\nd\",\"event\":\"connect\"}"), 0));
	out = td_t_render(r, TD_REPORT_PROMETHEUS);
	cr_assert(not(eq(ptr, strstr(out, "{prog=\"a\\\"b\\\\c\\nd\",role=\"client\"} 1\n"), NULL)),
		  "%s", out);
	free(out);
	td_report_free(r);
}
