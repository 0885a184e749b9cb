/*
 * teardown: the checks behind the fuzz targets (see harness.h).
 *
 * Built twice: by tests/fuzz/run.sh with clang and libFuzzer, and by the
 * unit test that replays the committed corpus (it #includes this file),
 * under the project's strict gcc flags.  So: plain C, no libFuzzer API.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/addr.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fmt.h"
#include "teardown/policy.h"
#include "teardown/spool.h"

#include "../../cli/lib/elfinfo.h"
#include "../../cli/lib/ldscope.h"
#include "../../cli/lib/logparse.h"
#include "../../cli/lib/report.h"

#include "harness.h"

static char td_fz_why[1536];

static const char *td_fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *td_fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(td_fz_why, sizeof(td_fz_why), fmt, ap);
	va_end(ap);
	return td_fz_why;
}

/* ---- policy ------------------------------------------------------------ */

#define TD_FZ_NE(field) \
	do { if (a->field != b->field) return #field; } while (0)

static bool td_fz_cidrs_eq(const struct td_cidr *a, const struct td_cidr *b, uint32_t n)
{
	return n == 0 || memcmp(a, b, n * sizeof(*a)) == 0;
}

static bool td_fz_ports_eq(const struct td_portrange *a, const struct td_portrange *b,
			   uint32_t n)
{
	return n == 0 || memcmp(a, b, n * sizeof(*a)) == 0;
}

static bool td_fz_prob_eq(const struct td_prob *a, const struct td_prob *b)
{
	return a->p == b->p && a->thr == b->thr && a->always == b->always;
}

/* The first field that differs between two rules, or NULL. */
static const char *td_fz_rule_diff(const struct td_rule *a, const struct td_rule *b)
{
	if (strcmp(a->name, b->name) != 0)
		return "name";
	if ((a->program == NULL) != (b->program == NULL) ||
	    (a->program && strcmp(a->program, b->program) != 0))
		return "program";
	TD_FZ_NE(role);
	TD_FZ_NE(n_remote);
	TD_FZ_NE(n_local);
	TD_FZ_NE(n_remote_port);
	TD_FZ_NE(n_local_port);
	if (!td_fz_cidrs_eq(a->remote, b->remote, a->n_remote))
		return "remote";
	if (!td_fz_cidrs_eq(a->local, b->local, a->n_local))
		return "local";
	if (!td_fz_ports_eq(a->remote_port, b->remote_port, a->n_remote_port))
		return "remote_port";
	if (!td_fz_ports_eq(a->local_port, b->local_port, a->n_local_port))
		return "local_port";
	TD_FZ_NE(close);
	TD_FZ_NE(drain_timeout_ms);
	TD_FZ_NE(shutdown);
	TD_FZ_NE(reuseaddr);
	TD_FZ_NE(fin_timeout_s);
	TD_FZ_NE(log);
	TD_FZ_NE(leak_after_s);
	TD_FZ_NE(has_fault);
	if (!td_fz_prob_eq(&a->fault.rst, &b->fault.rst))
		return "fault.rst";
	if (!td_fz_prob_eq(&a->fault.connect_refuse, &b->fault.connect_refuse))
		return "fault.connect_refuse";
	if (!td_fz_prob_eq(&a->fault.connect_timeout, &b->fault.connect_timeout))
		return "fault.connect_timeout";
	TD_FZ_NE(fault.rst_after_ms);
	TD_FZ_NE(fault.rst_after_bytes);
	TD_FZ_NE(fault.connect_timeout_ms);
	TD_FZ_NE(fault.connect_delay_ms);
	TD_FZ_NE(fault.close_delay_ms);
	TD_FZ_NE(fault.seed);
	TD_FZ_NE(fault.has_seed);
	TD_FZ_NE(program_ok);
	return NULL;
}

/* The first field that differs between two policies (source aside), or NULL. */
static const char *td_fz_policy_diff(const struct td_policy *a, const struct td_policy *b,
				     uint32_t *rule)
{
	const char *d;

	*rule = 0;
	TD_FZ_NE(version);
	TD_FZ_NE(log_target);
	TD_FZ_NE(log_format);
	TD_FZ_NE(on_error);
	if (strcmp(a->log_path, b->log_path) != 0)
		return "log_path";
	TD_FZ_NE(n_rules);
	for (uint32_t i = 0; i < a->n_rules; i++) {
		d = td_fz_rule_diff(&a->rules[i], &b->rules[i]);
		if (d != NULL) {
			*rule = i + 1;
			return d;
		}
	}
	TD_FZ_NE(uses_local);
	TD_FZ_NE(any_fault);
	TD_FZ_NE(any_bytes_fault);
	TD_FZ_NE(any_leak);
	return NULL;
}

#undef TD_FZ_NE

/* A refusal message is one line of printable text (it ends up in td_logw_warn). */
static const char *td_fz_check_refusal(int rc, const struct td_policy *p,
				       const struct td_cfg_error *err)
{
	char line[sizeof(err->file) + sizeof(err->msg) + 32];
	size_t n;

	if (rc != -EINVAL && rc != -ENOMEM)
		return td_fz_fail("policy: refused with %d, not -EINVAL or -ENOMEM", rc);
	if (p->rules != NULL || p->n_rules != 0)
		return td_fz_fail("policy: a refused policy still owns %u rules", p->n_rules);
	if (p->on_error != TD_ONERR_PASS && p->on_error != TD_ONERR_EXIT)
		return td_fz_fail("policy: on_error %d after a refusal", p->on_error);
	if (err->msg[0] == '\0')
		return td_fz_fail("policy: refused (rc %d) without a message", rc);
	n = td_cfg_error_format(err, line, sizeof(line));
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return td_fz_fail("policy: refusal message has control byte 0x%02x: %s",
					  c, line);
	}
	return NULL;
}

/* Exercise the matcher on a parsed policy: a few contexts from the input. */
static void td_fz_decide(struct td_policy *p, const uint8_t *data, size_t size)
{
	struct td_match_ctx ctx;
	uint32_t h = (uint32_t)td_fnv64(data, size);

	td_policy_bind_program(p, "tdpeer", (h & 1) ? "psql" : NULL);
	for (int k = 0; k < 4; k++, h = h * 1103515245u + 12345u) {
		memset(&ctx, 0, sizeof(ctx));
		ctx.known = h & 7;
		ctx.role = (h >> 3) & 1 ? TD_ROLE_CLIENT : TD_ROLE_SERVER;
		ctx.remote.family = (h >> 4) & 1 ? AF_INET6 : AF_INET;
		ctx.remote.port = (uint16_t)(h >> 8);
		memcpy(ctx.remote.addr, &h, sizeof(h));
		ctx.local.family = AF_INET;
		ctx.local.port = (uint16_t)(h >> 16);
		ctx.local.addr[0] = (h >> 5) & 1 ? 127 : 10;
		(void)td_policy_decide(p, &ctx);
	}
}

/*
 * The all-errors mode (teardown check) agrees with the default one: no
 * error exactly when the default mode accepts (and then the same
 * policy), else the default mode's error among those it lists.
 */
static const char *td_fz_check_all(const uint8_t *data, size_t size, int rc,
				   const struct td_policy *p, const struct td_cfg_error *err)
{
	static struct td_cfg_error errs[64];
	static struct td_policy all;
	const char *d;
	uint32_t rule;
	int n = td_policy_parse_all(&all, (const char *)data, size, "fuzz", errs, 64);

	if (n == -ENOMEM || rc == -ENOMEM)
		return NULL;
	if ((n == 0) != (rc == 0))
		return td_fz_fail("policy: parse_all found %d errors where parse_text said %d (%s)", n,
				  rc, rc ? err->msg : "ok");
	if (n == 0) {
		d = td_fz_policy_diff(p, &all, &rule);
		td_policy_free(&all);
		return d ? td_fz_fail("policy: parse_all gave another policy: %s (rule %u)", d, rule)
			 : NULL;
	}
	for (int i = 0; i < n && i < 64; i++)
		if (errs[i].line == err->line && strcmp(errs[i].msg, err->msg) == 0)
			return NULL;
	return td_fz_fail("policy: parse_all lost the first error %d: %s", err->line, err->msg);
}

const char *td_fuzz_policy(const uint8_t *data, size_t size)
{
	static struct td_policy p, back;
	static struct td_cfg_error err;
	const char *why = NULL, *d;
	char *text, *again = NULL;
	uint32_t rule;
	int rc;

	rc = td_policy_parse_text(&p, (const char *)data, size, "fuzz", &err);
	why = td_fz_check_all(data, size, rc, &p, &err);
	if (why != NULL) {
		if (rc == 0)
			td_policy_free(&p);
		return why;
	}
	if (rc != 0)
		return td_fz_check_refusal(rc, &p, &err);
	text = td_policy_to_text(&p);
	if (text == NULL) {
		td_policy_free(&p);
		return td_fz_fail("policy: td_policy_to_text failed on an accepted policy");
	}
	/*
	 * Every default spelled out makes a rule ~450 bytes of canonical
	 * text, so a few thousand "{}," print to more than a policy may be
	 * (1 MiB): past that, refusing the canonical text is the size limit
	 * at work, not a broken round trip.
	 */
	if (strlen(text) > TD_POLICY_MAX_BYTES)
		goto out;
	rc = td_policy_parse_text(&back, text, strlen(text), "fuzz", &err);
	if (rc != 0) {
		char msg[sizeof(err.file) + sizeof(err.msg) + 32];

		td_cfg_error_format(&err, msg, sizeof(msg));
		why = td_fz_fail("policy: canonical text refused: %.500s\n%.800s", msg, text);
		goto out;
	}
	d = td_fz_policy_diff(&p, &back, &rule);
	if (d != NULL) {
		why = td_fz_fail("policy: round trip changed %s (rule %u)\n%.1200s", d, rule, text);
		goto out_back;
	}
	/*
	 * The canonical text names each rule's source line in a comment, so
	 * it is a fixed point from the second printing on: print the
	 * re-parsed policy, parse and print that, and compare.
	 */
	free(text);
	text = td_policy_to_text(&back);
	td_policy_free(&back);
	if (text == NULL)
		goto out;
	rc = td_policy_parse_text(&back, text, strlen(text), "fuzz", &err);
	if (rc != 0) {
		why = td_fz_fail("policy: second canonical text refused\n%.1200s", text);
		goto out;
	}
	again = td_policy_to_text(&back);
	if (again == NULL || strcmp(again, text) != 0)
		why = td_fz_fail("policy: canonical text is not a fixed point\n%.1200s", text);
	else
		td_fz_decide(&p, data, size);
out_back:
	td_policy_free(&back);
out:
	free(again);
	free(text);
	td_policy_free(&p);
	return why;
}

/* ---- log reader and report --------------------------------------------- */

/* Length of the valid UTF-8 character at s (n bytes left), or 0. */
static size_t td_fz_utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return need;
}

static bool td_fz_valid_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k = td_fz_utf8_len(u + i, n - i);

		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

static FILE *td_fz_devnull(void)
{
	static FILE *f;

	if (f == NULL)
		f = fopen("/dev/null", "we");
	return f;
}

/* One parsed line: what the reader promises about it. */
static const char *td_fz_check_jline(const struct td_jline *l)
{
	if (l->n > TD_JLINE_MAX_FIELDS)
		return td_fz_fail("logparse: %zu fields", l->n);
	for (size_t i = 0; i < l->n; i++) {
		const struct td_jfield *f = &l->f[i];

		if (f->key == NULL || !td_fz_valid_utf8(f->key, strlen(f->key)))
			return td_fz_fail("logparse: field %zu: key is not UTF-8", i);
		if (f->type == TD_J_STR) {
			if (f->s == NULL || strlen(f->s) != f->slen)
				return td_fz_fail("logparse: field %zu: string length %zu "
						  "is not its strlen (NUL inside?)", i, f->slen);
			if (!td_fz_valid_utf8(f->s, f->slen))
				return td_fz_fail("logparse: field %zu: string is not UTF-8", i);
		} else if (f->type < TD_J_NULL || f->type > TD_J_STR) {
			return td_fz_fail("logparse: field %zu: type %d", i, f->type);
		}
	}
	if (td_jline_get(l, "\x01no such key") != NULL)
		return td_fz_fail("logparse: found a key that no line can have");
	return NULL;
}

const char *td_fuzz_report(const uint8_t *data, size_t size)
{
	static struct td_jline jl;
	struct td_report *r = td_report_new();
	const char *why = NULL;
	uint64_t fed = 0, counted = 0;
	size_t start = 0;
	int inputs = 0;

	if (r == NULL)
		return NULL; /* out of memory is no finding */
	if (td_report_begin(r, "fuzz-0") != 0)
		goto out;
	inputs = 1;
	while (start < size && why == NULL) {
		const uint8_t *nl = memchr(data + start, '\n', size - start);
		size_t end = nl ? (size_t)(nl - data) + 1 : size;
		size_t len = end - start;
		/* an exact-size copy, so reading past the line is caught */
		char *line = malloc(len ? len : 1), *copy = malloc(len ? len : 1);
		int rc;

		if (line == NULL || copy == NULL) {
			free(line);
			free(copy);
			break;
		}
		memcpy(line, data + start, len);
		memcpy(copy, data + start, len);
		if (td_jline_parse(&jl, copy, len) == 0)
			why = td_fz_check_jline(&jl);
		/* a form feed line starts a new input, as for several files */
		if (len >= 1 && line[0] == '\f' && inputs < 8) {
			char name[24];

			snprintf(name, sizeof(name), "fuzz-%d", inputs++);
			if (td_report_begin(r, name) != 0) {
				free(line);
				free(copy);
				break;
			}
		}
		rc = td_report_line(r, line, len);
		free(line);
		free(copy);
		fed++;
		if (rc == -ENOMEM)
			goto out;
		if (rc != 0 && rc != -EINVAL && rc != TD_REPORT_TEXTLINE && rc != TD_REPORT_OTHER &&
		    why == NULL)
			why = td_fz_fail("report: td_report_line returned %d", rc);
		counted += rc >= 0;
		start = end;
	}
	if (why != NULL)
		goto out;
	if (td_report_lines(r) != fed)
		why = td_fz_fail("report: fed %llu lines, counted %llu",
				 (unsigned long long)fed,
				 (unsigned long long)td_report_lines(r));
	else if (td_report_malformed(r) != fed - counted ||
		 td_report_text_lines(r) + td_report_other_lines(r) > counted)
		why = td_fz_fail("report: %llu malformed of %llu, want %llu",
				 (unsigned long long)td_report_malformed(r),
				 (unsigned long long)fed, (unsigned long long)(fed - counted));
	else if (td_report_total(r) == NULL || td_report_total(r)->events != counted)
		why = td_fz_fail("report: total events %llu, want %llu",
				 td_report_total(r) ? (unsigned long long)td_report_total(r)->events
						    : 0ull,
				 (unsigned long long)counted);
	else if (td_fz_devnull() != NULL &&
		 (td_report_render(r, td_fz_devnull(), TD_REPORT_TEXT) != 0 ||
		  td_report_render(r, td_fz_devnull(), TD_REPORT_JSON) != 0))
		why = td_fz_fail("report: rendering to /dev/null failed");
out:
	td_report_free(r);
	return why;
}

/* ---- events ------------------------------------------------------------ */

struct td_fz_in {
	const uint8_t *p;
	size_t n;
};

static uint64_t td_fz_take(struct td_fz_in *in, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++) {
		v <<= 8;
		if (in->n > 0) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

/* NULL, or a malloc()ed string of bytes from the input (NUL ends it early). */
static char *td_fz_take_str(struct td_fz_in *in)
{
	size_t len, take;
	uint64_t hdr = td_fz_take(in, 2);
	char *s;

	if ((hdr & 0x8000) == 0 && (hdr & 0x4000) == 0)
		return NULL;
	len = (size_t)(hdr & 0x3ff);
	take = len < in->n ? len : in->n;
	s = malloc(take + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, in->p, take);
	s[take] = '\0';
	in->p += take;
	in->n -= take;
	return s;
}

static void td_fz_take_addr(struct td_fz_in *in, struct td_addr *a)
{
	uint8_t fam = (uint8_t)td_fz_take(in, 1);

	memset(a, 0, sizeof(*a));
	a->family = fam < 100 ? AF_INET : fam < 200 ? AF_INET6 : fam < 250 ? 0 : fam;
	a->port = (uint16_t)td_fz_take(in, 2);
	for (int i = 0; i < 16; i++)
		a->addr[i] = (uint8_t)td_fz_take(in, 1);
}

/* What a JSON decoder gives for s[0..n): our escapes map a byte that is
 * not UTF-8 to U+00XX; everything else decodes to itself. */
static size_t td_fz_json_expect(const char *s, size_t n, char *out)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t w = 0;

	for (size_t i = 0; i < n;) {
		size_t k = td_fz_utf8_len(u + i, n - i);

		if (k > 0) {
			memcpy(out + w, s + i, k);
			w += k;
			i += k;
		} else {
			out[w++] = (char)(0xc0 | u[i] >> 6);
			out[w++] = (char)(0x80 | (u[i] & 0x3f));
			i++;
		}
	}
	return w;
}

/*
 * A string field as decoded from a line against the string given: equal
 * when the string was short enough to be kept whole (7 bytes escape to
 * at most 44, within every budget (the smallest is 48)), else a prefix.
 */
static const char *td_fz_same_str(const char *fmt, const char *key, const char *given,
				  const char *got, size_t gotlen, bool json)
{
	size_t n = strlen(given), wlen;
	char *want = malloc(2 * n + 1);
	const char *why = NULL;

	if (want == NULL)
		return NULL;
	wlen = json ? td_fz_json_expect(given, n, want) : n;
	if (!json)
		memcpy(want, given, n);
	if (gotlen > wlen || memcmp(want, got, gotlen) != 0)
		why = td_fz_fail("%s: %s decodes to %zu bytes that are no prefix of the %zu given",
				 fmt, key, gotlen, wlen);
	else if (n <= 7 && gotlen != wlen)
		why = td_fz_fail("%s: %s (%zu bytes) was cut to %zu", fmt, key, n, gotlen);
	free(want);
	return why;
}

/* The raw bytes of a formatted line. */
static const char *td_fz_check_bytes(const char *line, size_t n, bool json)
{
	const char *fmt = json ? "json" : "text";

	if (n == 0)
		return td_fz_fail("%s: nothing formatted with a full buffer", fmt);
	if (n >= TD_EVENT_MAX)
		return td_fz_fail("%s: %zu bytes, the limit is %d", fmt, n, TD_EVENT_MAX - 1);
	if (line[n] != '\0' || strlen(line) != n)
		return td_fz_fail("%s: length %zu but strlen %zu", fmt, n, strlen(line));
	if (line[n - 1] != '\n')
		return td_fz_fail("%s: line does not end in a newline", fmt);
	for (size_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return td_fz_fail("%s: raw control byte 0x%02x at %zu: %s", fmt, c, i, line);
		if (!json && c >= 0x80)
			return td_fz_fail("%s: raw byte 0x%02x at %zu", fmt, c, i);
	}
	if (json && !td_fz_valid_utf8(line, n))
		return td_fz_fail("json: line is not UTF-8");
	return NULL;
}

static const char *const td_fz_head_keys[] = {
	"ts", "pid", "tid", "prog", "event", "fd", "role", "local", "remote", "rule", "action",
};
/* JSON adds the schema version, the host and the uid */
static const char *const td_fz_json_head_keys[] = {
	"v", "ts", "host", "pid", "tid", "uid", "prog", "event", "fd", "role", "local", "remote",
	"rule", "action",
};

static const char *td_fz_json_str_field(const struct td_jline *l, const char *key,
					const char *given)
{
	const struct td_jfield *f = td_jline_get(l, key);

	if (f == NULL)
		return td_fz_fail("json: no %s", key);
	if (given == NULL)
		return f->type == TD_J_NULL ? NULL : td_fz_fail("json: %s is not null", key);
	if (f->type != TD_J_STR)
		return td_fz_fail("json: %s is not a string", key);
	return td_fz_same_str("json", key, given, f->s, f->slen, true);
}

static const char *td_fz_check_json(char *line, size_t n, const struct td_event *ev)
{
	static struct td_jline l;
	const struct td_jfield *f;
	const char *why, *name = td_event_name(ev->type);
	const size_t nhead = sizeof(td_fz_json_head_keys) / sizeof(td_fz_json_head_keys[0]);

	if (td_jline_parse(&l, line, n) != 0)
		return td_fz_fail("json: our own log reader refuses the line");
	if (l.n < nhead)
		return td_fz_fail("json: %zu keys", l.n);
	for (size_t i = 0; i < nhead; i++)
		if (strcmp(l.f[i].key, td_fz_json_head_keys[i]) != 0)
			return td_fz_fail("json: key %zu is %s, want %s", i, l.f[i].key,
					  td_fz_json_head_keys[i]);
	if (l.f[0].type != TD_J_INT || l.f[0].i != TD_EVENT_SCHEMA)
		return td_fz_fail("json: v is not %d", TD_EVENT_SCHEMA);
	if (l.f[3].type != TD_J_INT || l.f[3].i != ev->pid ||
	    l.f[4].type != TD_J_INT || l.f[4].i != ev->tid)
		return td_fz_fail("json: pid/tid do not round-trip");
	if (ev->uid < 0 ? l.f[5].type != TD_J_NULL
			: (l.f[5].type != TD_J_INT || l.f[5].i != ev->uid))
		return td_fz_fail("json: uid does not round-trip");
	if (ev->fd < 0 ? l.f[8].type != TD_J_NULL
		       : (l.f[8].type != TD_J_INT || l.f[8].i != ev->fd))
		return td_fz_fail("json: fd does not round-trip");
	if (name == NULL ? l.f[7].type != TD_J_NULL
			 : (l.f[7].type != TD_J_STR || strcmp(l.f[7].s, name) != 0))
		return td_fz_fail("json: event is not %s", name ? name : "null");
	if ((why = td_fz_json_str_field(&l, "prog", ev->prog)) != NULL ||
	    (why = td_fz_json_str_field(&l, "host", ev->host)) != NULL ||
	    (why = td_fz_json_str_field(&l, "rule", ev->rule)) != NULL ||
	    (why = td_fz_json_str_field(&l, "action", ev->action)) != NULL)
		return why;
	if (ev->type == TD_EV_FAULT) {
		if ((why = td_fz_json_str_field(&l, "fault", ev->fault)) != NULL)
			return why;
		f = td_jline_get(&l, "seed");
		if (f == NULL || (f->type != TD_J_INT && f->type != TD_J_UINT) || f->u != ev->seed)
			return td_fz_fail("json: seed %llu does not round-trip",
					  (unsigned long long)ev->seed);
	}
	return NULL;
}

/* A text value at *pp: bare up to a space, or quoted with C escapes. */
static const char *td_fz_text_value(const char **pp, char *out, size_t *outlen)
{
	const char *p = *pp;
	size_t w = 0;

	if (*p != '"') {
		while (*p != ' ' && *p != '\n' && *p != '\0')
			out[w++] = *p++;
	} else {
		for (p++;; p++) {
			if (*p == '\0' || *p == '\n')
				return td_fz_fail("text: unterminated quoted value");
			if (*p == '"')
				break;
			if (*p != '\\') {
				out[w++] = *p;
				continue;
			}
			p++;
			switch (*p) {
			case '"': case '\\': out[w++] = *p; break;
			case 'n': out[w++] = '\n'; break;
			case 'r': out[w++] = '\r'; break;
			case 't': out[w++] = '\t'; break;
			case 'x': {
				unsigned v = 0;

				for (int k = 1; k <= 2; k++) {
					char c = p[k];

					if (c >= '0' && c <= '9')
						v = v * 16 + (unsigned)(c - '0');
					else if (c >= 'a' && c <= 'f')
						v = v * 16 + (unsigned)(c - 'a' + 10);
					else
						return td_fz_fail("text: bad \\x escape");
				}
				out[w++] = (char)v;
				p += 2;
				break;
			}
			default:
				return td_fz_fail("text: unknown escape \\%c", *p ? *p : '0');
			}
		}
		p++;
		if (*p != ' ' && *p != '\n')
			return td_fz_fail("text: quoted value runs into '%c'", *p);
	}
	out[w] = '\0';
	*outlen = w;
	*pp = p;
	return NULL;
}

static const char *td_fz_text_str(const char *key, const char *given, const char *got,
				  size_t gotlen)
{
	if (given == NULL)
		return strcmp(got, "-") == 0 ? NULL : td_fz_fail("text: %s is not -", key);
	if (given[0] == '\0')
		return gotlen == 0 ? NULL : td_fz_fail("text: empty %s is not \"\"", key);
	return td_fz_same_str("text", key, given, got, gotlen, false);
}

/*
 * "ts pid/tid prog event key=value ...": every value must tokenize, the
 * keys must come in order, and the strings must decode to what was given.
 */
static const char *td_fz_check_text(const char *line, const struct td_event *ev)
{
	static char val[TD_EVENT_MAX];
	const char *p = line, *why;
	size_t vlen, k = 5;
	char key[32];

	for (int sp = 0; sp < 2; sp++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return td_fz_fail("text: no header");
		p++;
	}
	if ((why = td_fz_text_value(&p, val, &vlen)) != NULL ||
	    (why = td_fz_text_str("prog", ev->prog, val, vlen)) != NULL)
		return why;
	if (*p++ != ' ')
		return td_fz_fail("text: no event name");
	while (*p != ' ' && *p != '\n')
		p++;
	while (*p == ' ') {
		size_t kl = 0;

		p++;
		while ((*p >= 'a' && *p <= 'z') || *p == '_') {
			if (kl + 1 < sizeof(key))
				key[kl++] = *p;
			p++;
		}
		key[kl] = '\0';
		if (*p++ != '=' || kl == 0)
			return td_fz_fail("text: malformed key=value after %s", key);
		if ((why = td_fz_text_value(&p, val, &vlen)) != NULL)
			return why;
		if (k < sizeof(td_fz_head_keys) / sizeof(td_fz_head_keys[0])) {
			if (strcmp(key, td_fz_head_keys[k]) != 0)
				return td_fz_fail("text: key %s, want %s", key, td_fz_head_keys[k]);
			k++;
		}
		if (strcmp(key, "rule") == 0)
			why = td_fz_text_str("rule", ev->rule, val, vlen);
		else if (strcmp(key, "action") == 0)
			why = td_fz_text_str("action", ev->action, val, vlen);
		else if (strcmp(key, "fault") == 0)
			why = td_fz_text_str("fault", ev->fault, val, vlen);
		if (why != NULL)
			return why;
	}
	if (*p != '\n' || p[1] != '\0')
		return td_fz_fail("text: trailing bytes after the last value");
	return NULL;
}

const char *td_fuzz_event(const uint8_t *data, size_t size)
{
	static char line[TD_EVENT_MAX];
	struct td_fz_in in = {data, size};
	struct td_event ev;
	const char *why = NULL;
	char *prog, *rule, *action, *fault, *host;

	memset(&ev, 0, sizeof(ev));
	ev.type = (uint8_t)(td_fz_take(&in, 1) % (TD_EV__COUNT + 2));
	ev.ts_us = (int64_t)td_fz_take(&in, 8);
	ev.pid = (int32_t)td_fz_take(&in, 4);
	ev.tid = (int32_t)td_fz_take(&in, 4);
	ev.fd = (int32_t)td_fz_take(&in, 4);
	ev.role = (uint8_t)td_fz_take(&in, 1);
	td_fz_take_addr(&in, &ev.local);
	td_fz_take_addr(&in, &ev.remote);
	ev.conn = td_fz_take(&in, 8);
	ev.err = (int32_t)td_fz_take(&in, 4);
	ev.app_linger_set = td_fz_take(&in, 1) & 1;
	ev.app_linger_onoff = (int32_t)td_fz_take(&in, 4);
	ev.app_linger_secs = (int32_t)td_fz_take(&in, 4);
	ev.how = (int8_t)td_fz_take(&in, 1);
	ev.how_done = (int8_t)td_fz_take(&in, 1);
	ev.state = (int8_t)td_fz_take(&in, 1);
	ev.closer = (uint8_t)td_fz_take(&in, 1);
	ev.wire = (uint8_t)td_fz_take(&in, 1);
	ev.why = (uint8_t)td_fz_take(&in, 1);
	ev.time_wait = (int8_t)td_fz_take(&in, 1);
	ev.unread = (int64_t)td_fz_take(&in, 8);
	ev.unsent = (int64_t)td_fz_take(&in, 8);
	ev.lost = (int64_t)td_fz_take(&in, 8);
	ev.age_ms = (int64_t)td_fz_take(&in, 8);
	ev.bytes_in = (int64_t)td_fz_take(&in, 8);
	ev.bytes_out = (int64_t)td_fz_take(&in, 8);
	ev.close_wait_ms = (int64_t)td_fz_take(&in, 8);
	ev.seed = td_fz_take(&in, 8);
	ev.prog = prog = td_fz_take_str(&in);
	ev.rule = rule = td_fz_take_str(&in);
	ev.action = action = td_fz_take_str(&in);
	ev.fault = fault = td_fz_take_str(&in);
	ev.host = host = td_fz_take_str(&in);
	ev.uid = (int64_t)(td_fz_take(&in, 4) & 0xffffffffu) - (td_fz_take(&in, 1) & 1);
	ev.dropped = td_fz_take(&in, 8);
	ev.target = rule;

	for (int json = 0; json <= 1 && why == NULL; json++) {
		size_t n;

		memset(line, 0x55, sizeof(line));
		n = td_event_format(line, sizeof(line), &ev,
				    json ? TD_FMT_JSON : TD_FMT_TEXT);
		why = td_fz_check_bytes(line, n, json);
		if (why == NULL)
			why = json ? td_fz_check_json(line, n, &ev) : td_fz_check_text(line, &ev);
	}
	/* the journal datagram: KEY=value lines with upper-case keys */
	if (why == NULL) {
		static char dgram[TD_JOURNAL_MAX];
		size_t n = td_event_journal(dgram, sizeof(dgram), &ev, TD_FMT_TEXT, 3);
		const char *l = dgram;

		if (ev.type < TD_EV__COUNT && n == 0)
			why = td_fz_fail("journal: no datagram");
		while (why == NULL && l < dgram + n) {
			const char *nl = memchr(l, '\n', (size_t)(dgram + n - l)), *k = l;

			if (nl == NULL) {
				why = td_fz_fail("journal: no final newline");
				break;
			}
			for (; k < nl && *k != '='; k++)
				if (!((*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '_'))
					break;
			if (k == l || k >= nl || *k != '=')
				why = td_fz_fail("journal: bad field line %.*s", (int)(nl - l), l);
			l = nl + 1;
		}
	}
	/* a short buffer gives nothing or a whole line, never half of one */
	if (why == NULL) {
		size_t cap = (size_t)(td_fz_take(&in, 2) % TD_EVENT_MAX) + 1, n;
		char *small = malloc(cap);

		if (small != NULL) {
			n = td_event_format(small, cap, &ev, TD_FMT_JSON);
			if (n != 0 && (n >= cap || small[n - 1] != '\n' || small[n] != '\0'))
				why = td_fz_fail("json: %zu bytes in a %zu-byte buffer", n, cap);
			free(small);
		}
	}
	free(prog);
	free(rule);
	free(action);
	free(fault);
	free(host);
	return why;
}

/* ---- ELF files and ld.so.cache (teardown doctor) ---------------------- */

static bool td_fz_in_table(const struct td_elf_dyn *d, const char *p)
{
	return p == NULL || p[0] == '\0' || (p >= d->strtab && p < d->strtab + d->strtab_size);
}

static const char *td_fz_dyn(const struct td_elf_info *info, const struct td_elf_dyn *d)
{
	size_t want = (size_t)info->n_needed_total;

	if (d->n_syms > TD_ELF_MAX_SYMS || d->n_needed > TD_ELF_MAX_DYN_NEEDED)
		return td_fz_fail("elf: %zu symbols, %zu needed: over the caps", d->n_syms,
				  d->n_needed);
	if (d->strtab == NULL ? d->n_syms + d->n_needed != 0 : d->strtab[d->strtab_size] != '\0')
		return td_fz_fail("elf: the string table copy is not terminated");
	if (d->n_needed != (want < TD_ELF_MAX_DYN_NEEDED ? want : TD_ELF_MAX_DYN_NEEDED))
		return td_fz_fail("elf: %zu DT_NEEDED read, inspection counted %zu", d->n_needed, want);
	if (!td_fz_in_table(d, d->runpath) || !td_fz_in_table(d, d->rpath))
		return td_fz_fail("elf: a search path outside the string table");
	for (size_t k = 0; k < d->n_needed; k++)
		if (!td_fz_in_table(d, d->needed[k]))
			return td_fz_fail("elf: DT_NEEDED %zu outside the string table", k);
	for (size_t k = 0; k < d->n_syms; k++) {
		const struct td_elf_sym *y = &d->syms[k];

		if (y->name == NULL || !td_fz_in_table(d, y->name) ||
		    !td_fz_in_table(d, y->version) || !td_fz_in_table(d, y->version_file))
			return td_fz_fail("elf: symbol %zu has a string outside the table", k);
		if (td_elf_sym_exported(y) && y->shndx == 0)
			return td_fz_fail("elf: undefined symbol %zu called exported", k);
		if (y->ver_index > 0x7fff)
			return td_fz_fail("elf: symbol %zu has version index %u", k, y->ver_index);
	}
	return NULL;
}

const char *td_fuzz_elf(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"libc.so.6", "", "libm.so.6"};
	struct td_elf_info a, b;
	struct td_elf_dyn d;
	const char *why;
	char verdict[512];
	int ok = -1, rc;

	if ((rc = td_elf_inspect_mem(data, size, &a)) != 0)
		return td_fz_fail("elf: inspect refused a buffer (%d)", rc);
	td_elf_verdict(&a, verdict, sizeof(verdict), &ok);
	if (verdict[0] == '\0' || (ok != 0 && ok != 1))
		return td_fz_fail("elf: empty verdict or ok %d", ok);
	rc = td_elf_dynamic_mem(data, size, &b, &d);
	if (rc != 0) {
		td_elf_dyn_free(&d);
		return rc == -ENOMEM ? NULL : td_fz_fail("elf: dynamic refused a buffer (%d)", rc);
	}
	why = memcmp(&a, &b, sizeof(a)) != 0 ? td_fz_fail("elf: inspect and dynamic disagree")
					      : td_fz_dyn(&b, &d);
	td_elf_dyn_free(&d);
	if (why != NULL)
		return why;
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		char path[256];
		size_t pos = 0, last = 0;

		while (td_ldcache_find(data, size, names[n], &pos, path, sizeof(path)) == 0) {
			if (pos <= last && last != 0)
				return td_fz_fail("cache: the lookup went backwards");
			if (memchr(path, '\0', sizeof(path)) == NULL)
				return td_fz_fail("cache: an unterminated path");
			last = pos;
		}
	}
	return NULL;
}

/* ---- spool ------------------------------------------------------------- */

#define TD_FZ_SLOTS 64u

static const char *td_fz_spool_walk(const struct td_spool_view *v, bool dead)
{
	uint64_t tail = atomic_load(v->tail), head = td_spool_head(v, tail), pos = tail;
	const char *lo = v->data, *hi = v->data + (size_t)v->nslots * v->slot;
	struct td_spool_writer wr, *w = &wr;

	td_spool_writer_of(v, w);
	if (head - tail > v->nslots)
		return td_fz_fail("spool: head %llu runs more than a ring past tail %llu",
				  (unsigned long long)head, (unsigned long long)tail);
	while (pos < head) {
		struct td_spool_rec r;

		td_spool_next(v, pos, head, dead, &r);
		if (r.kind == TD_SR_NONE) {
			if (dead)
				return td_fz_fail("spool: a dead spool's reader stopped at %llu "
						  "before its head %llu", (unsigned long long)pos,
						  (unsigned long long)head);
			break;
		}
		if (r.next <= pos || r.next > head)
			return td_fz_fail("spool: record at %llu leads to %llu (head %llu)",
					  (unsigned long long)pos, (unsigned long long)r.next,
					  (unsigned long long)head);
		if (r.kind == TD_SR_LINE) {
			if (r.len == 0 || r.ptr < lo || r.ptr + r.len > hi)
				return td_fz_fail("spool: a line outside the ring");
			if (r.ptr[r.len - 1] != '\n' || memchr(r.ptr, '\n', r.len - 1) != NULL)
				return td_fz_fail("spool: a line that is not one line");
		} else if (r.kind == TD_SR_EVENT) {
			/* a damaged event record is unpacked, checked and
			 * formatted: refused, or one whole line */
			char line[TD_EVENT_MAX];
			const char *out;
			size_t n;

			if (r.len == 0 || r.ptr < lo || r.ptr + r.len > hi)
				return td_fz_fail("spool: an event outside the ring");
			n = td_spool_rec_line(&r, w, line, sizeof(line), &out);
			if (n != 0 && (out != line || n > sizeof(line) || line[n - 1] != '\n' ||
				       memchr(line, '\n', n - 1) != NULL))
				return td_fz_fail("spool: an event's line that is not one line");
		} else if (r.ptr != NULL || r.len != 0) {
			return td_fz_fail("spool: a record of kind %d with bytes", r.kind);
		}
		pos = r.next;
	}
	return NULL;
}

/* The lanes merged, as the flusher and `teardown report` read them: ends,
 * and takes each record once, from inside its lane. */
static const char *td_fz_spool_merge(const struct td_spool_file *f, bool dead)
{
	struct td_spool_merge m;
	struct td_spool_rec r;
	unsigned lane, taken = 0;

	td_spool_merge_begin(&m, f, dead ? UINT64_MAX : UINT64_MAX - 1, dead);
	while (td_spool_merge_next(&m, &lane, &r)) {
		const struct td_spool_view *v = &f->lane[lane];

		if (lane >= f->nlanes || ++taken > TD_FZ_SLOTS)
			return td_fz_fail("spool: the merge took %u records of %u slots", taken,
					  TD_FZ_SLOTS);
		if (r.ptr < v->data || r.ptr + r.len > v->data + (size_t)v->nslots * v->slot)
			return td_fz_fail("spool: the merge took a record outside its lane");
	}
	return NULL;
}

const char *td_fuzz_spool(const uint8_t *data, size_t size)
{
	size_t total = td_spool_file_size(TD_FZ_SLOTS), off, n;
	struct td_spool_view v;
	struct td_spool_file f;
	const char *why = NULL;
	uint64_t ends[2] = {0, 0};
	char *mem = calloc(1, total);

	if (mem == NULL)
		return NULL;
	td_spool_init(mem, TD_FZ_SLOTS, 1, &v);
	n = size < sizeof(ends) ? size : sizeof(ends);
	memcpy(ends, data, n);
	atomic_store(v.tail, ends[0]);
	atomic_store(v.head, ends[1]);
	off = size > 0 && (data[0] & 1) ? 0 : TD_SPOOL_HDR;
	if (size > n)
		memcpy(mem + off, data + n, size - n < total - off ? size - n : total - off);
	if (td_spool_file_of(mem, total, &f) != 0) {
		free(mem);
		return NULL; /* refused: that is the promise for a damaged header */
	}
	if (f.nlanes == 0 || f.nlanes > TD_SPOOL_MAX_LANES ||
	    f.lane[0].nslots * f.nlanes != TD_FZ_SLOTS ||
	    f.lane[0].data != mem + TD_SPOOL_HDR + TD_FZ_SLOTS * 8) {
		free(mem);
		return td_fz_fail("spool: a header that does not describe this file accepted");
	}
	for (uint32_t l = 0; l < f.nlanes && why == NULL; l++) {
		why = td_fz_spool_walk(&f.lane[l], false);
		if (why == NULL)
			why = td_fz_spool_walk(&f.lane[l], true);
	}
	if (why == NULL)
		why = td_fz_spool_merge(&f, false);
	if (why == NULL)
		why = td_fz_spool_merge(&f, true);
	free(mem);
	return why;
}
