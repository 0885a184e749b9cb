/*
 * teardown: the policy parser.  Turns libconfig text into a struct
 * td_policy, refusing anything it does not understand with one message
 * that names the file, the line and the key.
 *
 * The text is read by shim/core/cfgread.c, not by libconfig: the same
 * code serves the preloaded library, the command and the tests, and
 * needs nothing but libc (see include/teardown/cfgread.h for why).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "teardown/mem.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fault.h"
#include "teardown/fmt.h"
#include "teardown/schema.h"

/* Deeper nesting than this is refused before the reader sees the text. */
#define TD__MAX_DEPTH 64
/* Longest program glob: a file name, so NAME_MAX. */
#define TD__PROGRAM_MAX 255

struct td__pctx {
	struct td_cfg_error *err;
	struct td_policy *p;
	uint32_t *names; /* open-addressing set of rule index + 1 */
	uint32_t names_mask;
	/* td_policy_parse_all(): every error is kept here, and reading goes on */
	struct td_cfg_error *errs;
	size_t errs_cap, n_errs;
};

/* Quote s for a message: escaped, bounded, always one line. */
static const char *td__q(char *buf, size_t cap, const char *s)
{
	struct td_buf b;
	size_t n = strnlen(s, 49);

	td_buf_init(&b, buf, cap);
	td_buf_putc(&b, '"');
	td_buf_escape(&b, s, n > 48 ? 48 : n, TD_ESC_QUOTES);
	td_buf_putc(&b, '"');
	if (n > 48)
		td_buf_puts(&b, "...");
	return td_buf_cstr(&b);
}

static void td__seterr(struct td_cfg_error *err, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void td__seterr(struct td_cfg_error *err, int line, const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

static int td__fail(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Record the one error the parser reports: the setting gives the line,
 * path the key ("rules[0].match.remote_port").  Returns -EINVAL so that
 * callers can write `return td__fail(...)`.
 */
static int td__fail(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, const char *fmt, ...)
{
	struct td_cfg_error *err = c->err;
	size_t n = 0;
	va_list ap;

	err->line = s ? s->line : 0;
	if (path && *path) {
		int k = snprintf(err->msg, sizeof(err->msg), "%s: ", path);

		n = k > 0 ? (size_t)k : 0;
		if (n >= sizeof(err->msg))
			return -EINVAL;
	}
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * In td_policy_parse_all()'s mode, keep the error just reported (a bad
 * value, not out of memory) and tell the caller to go on with the next
 * key or rule.  In the default mode: false, the first error ends it.
 */
static bool td__keep(struct td__pctx *c, int rc)
{
	if (c->errs == NULL || rc != -EINVAL)
		return false;
	if (c->n_errs < c->errs_cap)
		c->errs[c->n_errs] = *c->err;
	c->n_errs++;
	return true;
}

static int td__nomem(struct td__pctx *c)
{
	td__seterr(c->err, 0, "out of memory");
	return -ENOMEM;
}

static const char *td__type_name(int type)
{
	switch (type) {
	case TD_CFG_GROUP:
		return "a group";
	case TD_CFG_INT:
		return "an integer";
	case TD_CFG_INT64:
		return "a 64-bit integer";
	case TD_CFG_FLOAT:
		return "a float";
	case TD_CFG_STRING:
		return "a string";
	case TD_CFG_BOOL:
		return "a boolean";
	case TD_CFG_ARRAY:
		return "an array";
	case TD_CFG_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

static void td__join(char *out, size_t cap, const char *parent, const char *key)
{
	if (parent && *parent)
		snprintf(out, cap, "%s.%s", parent, key);
	else
		snprintf(out, cap, "%s", key);
}

static int td__want(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, int type)
{
	if (s->type == type)
		return 0;
	return td__fail(c, s, path, "expected %s, got %s", td__type_name(type),
			td__type_name(s->type));
}

/*
 * The schema row of member m of a group of scope.  An unknown key is an
 * error that lists the known ones, because a typo ("colse") silently
 * ignored would leave the operator believing a rule does something it
 * does not.
 */
static const struct td_key *td__key(struct td__pctx *c, const struct td_cfg_node *m,
				    const char *path, int scope)
{
	const struct td_key *k = m->name ? td_key_find(scope, m->name) : NULL;
	char known[256], q[80];

	if (k == NULL)
		td__fail(c, m, path, "unknown key %s (known: %s)",
			 td__q(q, sizeof(q), m->name ? m->name : ""),
			 td_key_names(scope, known, sizeof(known)));
	return k;
}

static int td__int(struct td__pctx *c, const struct td_cfg_node *s,
		   const char *path, long long lo, long long hi, long long *out)
{
	long long v;

	if (s->type == TD_CFG_INT)
		v = (int)s->i;
	else if (s->type == TD_CFG_INT64)
		v = s->i;
	else
		return td__fail(c, s, path, "expected an integer, got %s",
				td__type_name(s->type));
	if (v < lo || v > hi)
		return td__fail(c, s, path, "%lld is out of range (want %lld..%lld)",
				v, lo, hi);
	*out = v;
	return 0;
}

static int td__bool(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, bool *out)
{
	int rc = td__want(c, s, path, TD_CFG_BOOL);

	if (rc == 0)
		*out = s->b != 0;
	return rc;
}

static int td__str(struct td__pctx *c, const struct td_cfg_node *s,
		   const char *path, const char **out)
{
	int rc = td__want(c, s, path, TD_CFG_STRING);

	if (rc != 0)
		return rc;
	*out = s->s;
	if (*out == NULL)
		*out = "";
	return 0;
}

/* A string that must be one of names[] (NULL-terminated); *out gets its index. */
static int td__enum(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, const char *const *names, int *out)
{
	int n = 0;

	while (names[n] != NULL)
		n++;
	const char *v;
	char want[128], q[80];
	struct td_buf b;
	int rc = td__str(c, s, path, &v);

	if (rc != 0)
		return rc;
	for (int i = 0; i < n; i++) {
		if (strcmp(v, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	td_buf_init(&b, want, sizeof(want));
	for (int i = 0; i < n; i++) {
		if (i)
			td_buf_puts(&b, i == n - 1 ? " or " : ", ");
		td_buf_puts(&b, names[i]);
	}
	td_buf_cstr(&b);
	return td__fail(c, s, path, "bad value %s (want %s)", td__q(q, sizeof(q), v),
			want);
}

/* A probability: an integer or float in [0, 1]; NaN and inf fail too. */
static int td__prob(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, struct td_prob *out)
{
	double v;

	if (s->type == TD_CFG_FLOAT)
		v = s->f;
	else if (s->type == TD_CFG_INT)
		v = (int)s->i;
	else if (s->type == TD_CFG_INT64)
		v = (double)s->i;
	else
		return td__fail(c, s, path, "expected a number, got %s",
				td__type_name(s->type));
	if (!(v >= 0.0 && v <= 1.0))
		return td__fail(c, s, path, "probability %g is out of range (want 0..1)",
				v);
	td_prob_set(out, v);
	return 0;
}

/*
 * The elements of a criterion that may be written as one value or as an
 * array or list of values.  *one is set when s itself is the value.
 */
static int td__multi(struct td__pctx *c, const struct td_cfg_node *s,
		     const char *path, const char *what, uint32_t *n, bool *one)
{
	*one = false;
	if (s->type == TD_CFG_ARRAY || s->type == TD_CFG_LIST) {
		int len = (int)s->n;

		if (len <= 0)
			return td__fail(c, s, path, "empty list (leave the key out to match any %s)",
					what);
		*n = (uint32_t)len;
		return 0;
	}
	*one = true;
	*n = 1;
	return 0;
}

static int td__cidr(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, struct td_cidr *out)
{
	struct td_cidr tmp;
	const char *v, *slash;
	char q[80], host[64];
	int rc;

	if (s->type != TD_CFG_STRING)
		return td__fail(c, s, path, "expected an address string, got %s",
				td__type_name(s->type));
	v = s->s;
	if (v == NULL)
		v = "";
	if (td_cidr_parse(out, v) == 0)
		return 0;
	/* Tell a bad prefix from a bad address: the fix differs. */
	slash = strchr(v, '/');
	if (slash && (size_t)(slash - v) < sizeof(host)) {
		memcpy(host, v, (size_t)(slash - v));
		host[slash - v] = '\0';
		rc = td_cidr_parse(&tmp, host);
		if (rc == 0)
			return td__fail(c, s, path,
					"bad prefix length in %s (want /0../%d for an %s address)",
					td__q(q, sizeof(q), v),
					tmp.family == AF_INET ? 32 : 128,
					tmp.family == AF_INET ? "IPv4" : "IPv6");
	}
	return td__fail(c, s, path,
			"bad address %s (want an IPv4 or IPv6 address, or a CIDR block such as 10.0.0.0/8)",
			td__q(q, sizeof(q), v));
}

static int td__cidrs(struct td__pctx *c, const struct td_cfg_node *s,
		     const char *path, struct td_cidr **out, uint32_t *nout)
{
	bool one;
	uint32_t n = 0;
	int rc = td__multi(c, s, path, "address", &n, &one);

	if (rc != 0)
		return rc;
	if (one && s->type != TD_CFG_STRING)
		return td__fail(c, s, path,
				"expected an address string or a list of them, got %s",
				td__type_name(s->type));
	*out = td_mem_calloc(n, sizeof(**out));
	if (*out == NULL)
		return td__nomem(c);
	*nout = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct td_cfg_node *e = one ? s : s->kids[i];

		if (e == NULL)
			return td__fail(c, s, path, "unreadable element %u", i);
		rc = td__cidr(c, e, path, &(*out)[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

#define TD__PORT_WANT "want N or A-B with 1 <= A <= B <= 65535"

/* One port element: an integer, "N" or "A-B". */
static int td__port(struct td__pctx *c, const struct td_cfg_node *s,
		    const char *path, struct td_portrange *out)
{
	if (s->type == TD_CFG_INT || s->type == TD_CFG_INT64) {
		long long v = s->type == TD_CFG_INT ? (int)s->i
							 : s->i;

		if (v < 1 || v > 65535)
			return td__fail(c, s, path,
					"port %lld is out of range (want 1..65535)", v);
		out->lo = out->hi = (uint16_t)v;
		return 0;
	}
	if (s->type == TD_CFG_STRING) {
		const char *v = s->s;
		char lo[8], q[80];
		const char *dash;
		uint64_t a, b;
		size_t n;

		if (v == NULL)
			v = "";
		dash = strchr(v, '-');
		n = dash ? (size_t)(dash - v) : strlen(v);
		if (n < sizeof(lo)) {
			memcpy(lo, v, n);
			lo[n] = '\0';
			if (td_parse_u64(lo, &a) == 0 &&
			    (dash == NULL ? (b = a, 1) : td_parse_u64(dash + 1, &b) == 0) &&
			    a >= 1 && a <= b && b <= 65535) {
				out->lo = (uint16_t)a;
				out->hi = (uint16_t)b;
				return 0;
			}
		}
		return td__fail(c, s, path, "bad port%s %s (" TD__PORT_WANT ")",
				dash ? " range" : "", td__q(q, sizeof(q), v));
	}
	return td__fail(c, s, path, "expected a port (integer or string), got %s",
			td__type_name(s->type));
}

static int td__ports(struct td__pctx *c, const struct td_cfg_node *s,
		     const char *path, struct td_portrange **out, uint32_t *nout)
{
	bool one;
	uint32_t n = 0;
	int rc = td__multi(c, s, path, "port", &n, &one);

	if (rc != 0)
		return rc;
	*out = td_mem_calloc(n, sizeof(**out));
	if (*out == NULL)
		return td__nomem(c);
	*nout = n;
	for (uint32_t i = 0; i < n; i++) {
		const struct td_cfg_node *e = one ? s : s->kids[i];

		if (e == NULL)
			return td__fail(c, s, path, "unreadable element %u", i);
		rc = td__port(c, e, path, &(*out)[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static void td__rule_defaults(struct td_rule *r, uint32_t idx)
{
	td_keys_default(TD_SC_RULE, r);
	snprintf(r->name, sizeof(r->name), "rule#%u", idx + 1);
}

/* A program glob: not empty, at most a file name long. */
static int td__glob(struct td__pctx *c, const struct td_cfg_node *m, const char *path,
		    char **out)
{
	const char *s;
	int rc = td__str(c, m, path, &s);

	if (rc == 0 && *s == '\0')
		rc = td__fail(c, m, path, "empty program glob (leave the key out to match any program)");
	else if (rc == 0 && strlen(s) > TD__PROGRAM_MAX)
		rc = td__fail(c, m, path, "program glob longer than %d bytes", TD__PROGRAM_MAX);
	if (rc == 0) {
		td_mem_free(*out);
		if ((*out = td_mem_strdup(s)) == NULL)
			rc = td__nomem(c);
	}
	return rc;
}

/* The rule's name: not empty, fits TD_NAME_MAX (uniqueness: td__parse_rules). */
static int td__name(struct td__pctx *c, const struct td_cfg_node *m, const char *path,
		    char *out)
{
	const char *s;
	char q[80];
	int rc = td__str(c, m, path, &s);

	if (rc == 0 && *s == '\0')
		rc = td__fail(c, m, path, "empty rule name");
	else if (rc == 0 && strlen(s) >= TD_NAME_MAX)
		rc = td__fail(c, m, path, "name %s is longer than %d bytes", td__q(q, sizeof(q), s),
			      TD_NAME_MAX - 1);
	if (rc == 0)
		snprintf(out, TD_NAME_MAX, "%s", s);
	return rc;
}

/* log.target: "stderr", "syslog", "journal" or an absolute path. */
static int td__target(struct td__pctx *c, const struct td_cfg_node *m, const char *path)
{
	struct td_policy *p = c->p;
	const char *s;
	char q[80];
	int rc = td__str(c, m, path, &s);

	if (rc != 0)
		return rc;
	p->log_path[0] = '\0';
	if (strcmp(s, "stderr") == 0)
		p->log_target = TD_LOG_STDERR;
	else if (strcmp(s, "syslog") == 0)
		p->log_target = TD_LOG_SYSLOG;
	else if (strcmp(s, "journal") == 0)
		p->log_target = TD_LOG_JOURNAL;
	else if (s[0] != '/')
		return td__fail(c, m, path,
				"%s is not \"stderr\", \"syslog\", \"journal\" or an absolute path",
				td__q(q, sizeof(q), s));
	else if (strlen(s) >= sizeof(p->log_path))
		return td__fail(c, m, path, "log path longer than %zu bytes",
				sizeof(p->log_path) - 1);
	else {
		p->log_target = TD_LOG_FILE;
		snprintf(p->log_path, sizeof(p->log_path), "%s", s);
	}
	return 0;
}

static int td__facility(struct td__pctx *c, const struct td_cfg_node *m, const char *path,
			const struct td_key *k, void *base)
{
	const char *s;
	char q[80];
	int v, rc = td__str(c, m, path, &s);

	if (rc != 0)
		return rc;
	v = td_log_facility_parse(s);
	if (v < 0)
		return td__fail(c, m, path, "%s is not a syslog facility "
				"(daemon, user, local0..local7, ...)", td__q(q, sizeof(q), s));
	td_key_set_int(k, base, v);
	return 0;
}

static int td__group(struct td__pctx *c, const struct td_cfg_node *g, const char *path,
		     int scope, void *base);
static int td__parse_rules(struct td__pctx *c, const struct td_cfg_node *s);

/* One member m of a group, whose schema row is k, into base. */
static int td__member(struct td__pctx *c, const struct td_key *k, const struct td_cfg_node *m,
		      const char *path, void *base)
{
	char *at = (char *)base + k->off;
	long long v;
	bool b;
	int e = 0, rc;

	switch (k->kind) {
	case TD_K_INT:
		rc = td__int(c, m, path, k->lo, k->hi, &v);
		if (rc == 0) {
			td_key_set_int(k, base, v);
			if (k->flags & TD_KF_HAS)
				*(bool *)((char *)base + k->off2) = true;
		}
		return rc;
	case TD_K_BOOL:
		rc = td__bool(c, m, path, &b);
		if (rc == 0)
			td_key_set_int(k, base, b);
		return rc;
	case TD_K_ENUM:
		rc = td__enum(c, m, path, k->names, &e);
		if (rc == 0)
			td_key_set_int(k, base, e);
		return rc;
	case TD_K_PROB:
		return td__prob(c, m, path, (struct td_prob *)at);
	case TD_K_NAME:
		return td__name(c, m, path, at);
	case TD_K_GLOB:
		return td__glob(c, m, path, (char **)at);
	case TD_K_ADDRS:
		return td__cidrs(c, m, path, (struct td_cidr **)at,
				 (uint32_t *)((char *)base + k->off2));
	case TD_K_PORTS:
		return td__ports(c, m, path, (struct td_portrange **)at,
				 (uint32_t *)((char *)base + k->off2));
	case TD_K_TARGET:
		return td__target(c, m, path);
	case TD_K_WHEN: {
		const char *w;
		char q[80];

		rc = td__str(c, m, path, &w);
		if (rc == 0 && td_when_parse((struct td_when *)at, w) != 0)
			rc = td__fail(c, m, path,
				      "bad position %s (want N, N+, N..M or N+S, counting from 1)",
				      td__q(q, sizeof(q), w));
		return rc;
	}
	case TD_K_FACILITY:
		return td__facility(c, m, path, k, base);
	case TD_K_VERSION:
		if (m->type != TD_CFG_INT && m->type != TD_CFG_INT64)
			return td__want(c, m, path, TD_CFG_INT);
		rc = td__int(c, m, path, LLONG_MIN, LLONG_MAX, &v);
		if (rc == 0 && (v < k->lo || v > k->hi))
			rc = td__fail(c, m, path, "unsupported version %lld (want %lld)", v,
				      (long long)k->hi);
		return rc;
	case TD_K_GROUP:
		/* "fault = { }" injects nothing: only a member marks the group */
		if ((k->flags & TD_KF_MARK) && m->type == TD_CFG_GROUP && m->n > 0)
			*(bool *)((char *)base + k->off2) = true;
		return td__group(c, m, path, k->sub,
				 k->sub == TD_SC_FAULT ? (void *)at : base);
	case TD_K_RULES:
		return td__parse_rules(c, m);
	default:
		return td__fail(c, m, path, "no reader for this key");
	}
}

/* Checks that concern a group as a whole, once its members are read. */
static int td__group_done(struct td__pctx *c, const struct td_cfg_node *g, const char *path,
			  int scope, void *base)
{
	/* Probabilities decided by one draw share [0, 1] (connect faults). */
	double sum = 0;
	char names[128];
	const struct td_key *one = NULL;
	struct td_buf b;

	/* Keys of which only one may be set (what happens after N bytes). */
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];

		if (k->scope != scope || !(k->flags & TD_KF_ONE_OF) ||
		    td_key_get_int(k, base) == k->unset)
			continue;
		if (one != NULL)
			return td__fail(c, g, path, "%s and %s cannot both be set",
					*path || !one->opt ? one->name : one->opt,
					*path || !k->opt ? k->name : k->opt);
		one = k;
	}

	td_buf_init(&b, names, sizeof(names));
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];

		if (k->scope != scope || !(k->flags & TD_KF_ONE_DRAW))
			continue;
		sum += ((const struct td_prob *)((const char *)base + k->off))->p;
		if (b.len)
			td_buf_puts(&b, " + ");
		/* on the command line (no path), the options' names */
		if (*path == '\0' && k->opt) {
			td_buf_puts(&b, "--");
			td_buf_puts(&b, k->opt);
		} else {
			td_buf_puts(&b, k->name);
		}
	}
	if (sum > 1.0 + 1e-12)
		return td__fail(c, g, path, "%s = %g exceeds 1", td_buf_cstr(&b), sum);
	return 0;
}

/*
 * A group of scope: every member by its schema row.  Keys flagged
 * TD_KF_FIRST are read before the others (on_error, so that a policy
 * saying "exit" is obeyed even when a later key is wrong).
 */
static int td__group(struct td__pctx *c, const struct td_cfg_node *g, const char *path,
		     int scope, void *base)
{
	char mpath[160];
	int rc = td__want(c, g, path, TD_CFG_GROUP);

	if (rc != 0)
		return rc;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < g->n; i++) {
			const struct td_cfg_node *m = g->kids[i];
			const struct td_key *k = m->name ? td_key_find(scope, m->name) : NULL;

			if (k != NULL && ((k->flags & TD_KF_FIRST) != 0) != (pass == 0))
				continue;
			if (k == NULL && pass == 0)
				continue;
			if (k == NULL && (k = td__key(c, m, path, scope)) == NULL) {
				if (td__keep(c, -EINVAL))
					continue;
				return -EINVAL;
			}
			td__join(mpath, sizeof(mpath), path, k->name);
			rc = td__member(c, k, m, mpath, base);
			if (rc != 0 && !td__keep(c, rc))
				return rc;
		}
	}
	return td__group_done(c, g, path, scope, base);
}

/*
 * Add rule idx's name to the set; returns the index of an earlier rule
 * with the same name, or -1.  A hash set keeps a policy with many rules
 * linear (the fuzzer will try 300,000 "{}"s).
 */
static int64_t td__name_add(struct td__pctx *c, uint32_t idx)
{
	const char *name = c->p->rules[idx].name;
	uint32_t h = (uint32_t)td_fnv64_str(name) & c->names_mask;

	while (c->names[h] != 0) {
		uint32_t other = c->names[h] - 1;

		if (strcmp(c->p->rules[other].name, name) == 0)
			return other;
		h = (h + 1) & c->names_mask;
	}
	c->names[h] = idx + 1;
	return -1;
}

static int td__parse_rule(struct td__pctx *c, const struct td_cfg_node *g, uint32_t idx)
{
	struct td_rule *r = &c->p->rules[idx];
	char rpath[48], path[64], q[80];
	int64_t dup;
	int rc;

	snprintf(rpath, sizeof(rpath), "rules[%u]", idx);
	td__rule_defaults(r, idx);
	r->line = g->line;
	rc = td__group(c, g, rpath, TD_SC_RULE, r);
	if (rc != 0)
		return rc;
	dup = td__name_add(c, idx);
	if (dup >= 0) {
		const struct td_cfg_node *ns = NULL;

		for (uint32_t i = 0; i < g->n && ns == NULL; i++) {
			const struct td_key *k = td_key_find(TD_SC_RULE, g->kids[i]->name);

			if (k != NULL && k->kind == TD_K_NAME)
				ns = g->kids[i];
		}

		td__join(path, sizeof(path), rpath, ns ? ns->name : "");
		return td__fail(c, ns ? ns : g, path,
				"duplicate rule name %s (rules[%lld] has it too)",
				td__q(q, sizeof(q), r->name), (long long)dup);
	}
	return 0;
}

static int td__parse_rules(struct td__pctx *c, const struct td_cfg_node *s)
{
	struct td_policy *p = c->p;
	uint32_t cap = 16;
	int rc, n;

	rc = td__want(c, s, "rules", TD_CFG_LIST);
	if (rc != 0)
		return rc;
	n = (int)s->n;
	if (n <= 0)
		return 0;
	p->rules = td_mem_calloc((size_t)n, sizeof(*p->rules));
	if (p->rules == NULL)
		return td__nomem(c);
	p->n_rules = (uint32_t)n;
	while (cap < 2u * (uint32_t)n)
		cap <<= 1;
	c->names = td_mem_calloc(cap, sizeof(*c->names));
	if (c->names == NULL)
		return td__nomem(c);
	c->names_mask = cap - 1;
	for (int i = 0; i < n; i++) {
		rc = td__parse_rule(c, s->kids[i], (uint32_t)i);
		if (rc != 0 && !td__keep(c, rc))
			return rc;
	}
	return 0;
}

/* The end of a float's digits, '.' and signed exponent from t[j]. */
static size_t td__skip_float(const char *t, size_t len, size_t j)
{
	while (j < len && ((t[j] >= '0' && t[j] <= '9') || t[j] == '.' ||
			   t[j] == 'e' || t[j] == 'E' ||
			   (j > 0 && (t[j] == '+' || t[j] == '-') &&
			    (t[j - 1] == 'e' || t[j - 1] == 'E'))))
		j++;
	return j;
}

/*
 * A decimal or hexadecimal integer literal at t[*i] (a digit).  libconfig
 * 1.5 silently truncates a plain integer to 32 bits (5000000000 becomes
 * 705032704, 0x100000005 becomes 5) and saturates a 64-bit one, so such
 * literals are refused here, while the text is still ours to look at.
 * Floats are skipped.  Returns 0 or -EINVAL with err filled.
 */
static int td__scan_number(const char *t, size_t len, size_t *i, int line,
			   const char *key, size_t keylen,
			   struct td_cfg_error *err)
{
	size_t j = *i, start = *i;
	bool neg = start > 0 && t[start - 1] == '-';
	bool hex = false, over = false, wide;
	uint64_t v = 0, limit;

	if (t[j] == '0' && j + 1 < len && (t[j + 1] == 'x' || t[j + 1] == 'X')) {
		hex = true;
		for (j += 2; j < len; j++) {
			int d;

			if (t[j] >= '0' && t[j] <= '9')
				d = t[j] - '0';
			else if ((t[j] | 0x20) >= 'a' && (t[j] | 0x20) <= 'f')
				d = (t[j] | 0x20) - 'a' + 10;
			else
				break;
			over |= v > (UINT64_MAX >> 4);
			v = v << 4 | (uint64_t)d;
		}
	} else {
		for (; j < len && t[j] >= '0' && t[j] <= '9'; j++) {
			over |= v > (UINT64_MAX - 9) / 10;
			v = v * 10 + (uint64_t)(t[j] - '0');
		}
		if (j < len && (t[j] == '.' || t[j] == 'e' || t[j] == 'E')) {
			*i = td__skip_float(t, len, j);
			return 0;
		}
	}
	wide = j < len && t[j] == 'L';
	*i = j + (wide ? 1 : 0);
	if (hex)
		limit = wide ? UINT64_MAX : UINT32_MAX;
	else
		limit = (wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX) + (neg ? 1 : 0);
	if (!over && v <= limit)
		return 0;
	td__seterr(err, line,
		   "%.*s%sinteger %.*s%s does not fit in %s%s",
		   (int)(keylen > 40 ? 40 : keylen), key, keylen ? ": " : "",
		   (int)(j - start > 24 ? 24 : j - start), t + start,
		   j - start > 24 ? "..." : "",
		   wide ? "64 bits" : "32 bits",
		   wide ? "" : " (append L for a 64-bit integer, e.g. 5000000000L)");
	return -EINVAL;
}

static bool td__blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool td__ident(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '*' ||
	       ch == '_' || ch == '-' || (ch >= '0' && ch <= '9');
}

/*
 * Look at the raw text before the reader does, for what gets a message of
 * its own: a NUL byte (a policy is text), @include at the start of a
 * line (libconfig would read the named file with our privileges, and
 * 1.5 exit()s the process on a directory: a policy written for it must
 * not mean something else here), nesting deeper than TD__MAX_DEPTH (the
 * reader recurses), and integer literals libconfig would truncate.  One
 * pass, tracking strings and comments the way the scanner does.
 */
int td_policy_prescan(const char *t, size_t len, struct td_cfg_error *err)
{
	enum { NORMAL, STRING, LINE_COMMENT, BLOCK_COMMENT } st = NORMAL;
	bool line_start = true;
	int line = 1, depth = 0;
	const char *key = "";
	size_t keylen = 0;

	for (size_t i = 0; i < len;) {
		char ch = t[i];

		if (ch == '\0') {
			td__seterr(err, line, "embedded NUL byte (a policy is text)");
			return -EINVAL;
		}
		if (ch == '\n') {
			line++;
			line_start = true;
			if (st == LINE_COMMENT)
				st = NORMAL;
			i++;
			continue;
		}
		if (line_start && ch == '@' && len - i >= 8 &&
		    memcmp(t + i, "@include", 8) == 0) {
			td__seterr(err, line, "@include is not allowed in a policy");
			return -EINVAL;
		}
		if (!td__blank(ch))
			line_start = false;
		switch (st) {
		case STRING:
			if (ch == '\\' && i + 1 < len && t[i + 1] != '\n' && t[i + 1] != '\0')
				i++;
			else if (ch == '"')
				st = NORMAL;
			i++;
			continue;
		case LINE_COMMENT:
			i++;
			continue;
		case BLOCK_COMMENT:
			if (ch == '*' && i + 1 < len && t[i + 1] == '/') {
				st = NORMAL;
				i++;
			}
			i++;
			continue;
		case NORMAL:
			break;
		}
		if (ch == '"') {
			st = STRING;
		} else if (ch == '#') {
			st = LINE_COMMENT;
		} else if (ch == '/' && i + 1 < len && (t[i + 1] == '/' || t[i + 1] == '*')) {
			st = t[i + 1] == '/' ? LINE_COMMENT : BLOCK_COMMENT;
			i++;
		} else if (ch == '{' || ch == '(' || ch == '[') {
			if (++depth > TD__MAX_DEPTH) {
				td__seterr(err, line, "nesting deeper than %d levels",
					   TD__MAX_DEPTH);
				return -EINVAL;
			}
		} else if (ch == '}' || ch == ')' || ch == ']') {
			if (depth > 0)
				depth--;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   ch == '*') {
			/* a name or a boolean: digits inside it are no number */
			key = t + i;
			while (i + 1 < len && td__ident(t[i + 1]))
				i++;
			keylen = (size_t)(t + i + 1 - key);
		} else if (ch == '.') {
			/* ".5": a float, whose digits are no integer */
			i = td__skip_float(t, len, i + 1);
			continue;
		} else if (ch >= '0' && ch <= '9') {
			int rc = td__scan_number(t, len, &i, line, key, keylen, err);

			if (rc != 0)
				return rc;
			continue;
		}
		i++;
	}
	return 0;
}

static void td__policy_init(struct td_policy *p, const char *source)
{
	memset(p, 0, sizeof(*p));
	td_keys_default(TD_SC_TOP, p);
	snprintf(p->source, sizeof(p->source), "%s", source);
}

static int td__parse(struct td__pctx *c, const char *text, size_t len, const char *source)
{
	struct td_cfg_error *err = c->err;
	struct td_policy *p = c->p;
	struct td_cfg_doc doc;
	int rc, line;

	if (source == NULL)
		source = "policy";
	td__policy_init(p, source);
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", source);
	if (len > TD_POLICY_MAX_BYTES) {
		td__seterr(err, 0, "policy text is larger than 1 MiB");
		return -EINVAL;
	}
	rc = td_policy_prescan(text, len, err);
	if (rc != 0)
		return rc;
	rc = td_cfg_read(&doc, text, len, &line, err->msg, sizeof(err->msg));
	if (rc != 0) {
		err->line = line;
		return rc;
	}
	rc = td__group(c, doc.root, "", TD_SC_TOP, p);
	if (rc != 0 && td__keep(c, rc))
		rc = 0;
	td_cfg_free(&doc);
	td_mem_free(c->names);
	if (rc == 0 && c->n_errs > 0)
		rc = -EINVAL;
	if (rc != 0) {
		td_policy_free(p);
		return rc;
	}
	for (uint32_t i = 0; i < p->n_rules; i++)
		p->rules[i].program_ok = true;
	td_policy_finish(p);
	return 0;
}

int td_policy_parse_text(struct td_policy *p, const char *text, size_t len,
			 const char *source, struct td_cfg_error *err)
{
	struct td__pctx c = {.err = err, .p = p};

	return td__parse(&c, text, len, source);
}

int td_policy_parse_all(struct td_policy *p, const char *text, size_t len,
			const char *source, struct td_cfg_error *errs, size_t cap)
{
	struct td_cfg_error *err = td_mem_malloc(sizeof(*err));
	struct td__pctx c = {.err = err, .p = p, .errs = errs, .errs_cap = cap};
	size_t n;
	int rc;

	if (err == NULL)
		return -ENOMEM;
	rc = td__parse(&c, text, len, source);
	if (rc == -EINVAL && c.n_errs == 0) {
		/* one error that ends the reading: size, prescan, syntax */
		if (cap > 0)
			errs[0] = *err;
		c.n_errs = 1;
	}
	td_mem_free(err);
	if (rc == -ENOMEM)
		return rc;
	/* in line order (the keys read first come first otherwise) */
	n = c.n_errs < cap ? c.n_errs : cap;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && errs[j - 1].line > errs[j].line; j--) {
			struct td_cfg_error t = errs[j];

			errs[j] = errs[j - 1];
			errs[j - 1] = t;
		}
	return (int)c.n_errs;
}

/*
 * One option's value as the node the file would have: digits are an
 * integer, a probability a float, a flag true, a comma list of ports a
 * list, repeated addresses an array, anything else a string.
 */
static int td__option_node(const struct td_key *k, const char *v, struct td_cfg_node *n,
			   struct td_cfg_error *err)
{
	memset(n, 0, sizeof(*n));
	n->s = v;
	n->type = TD_CFG_STRING;
	switch (k->kind) {
	case TD_K_BOOL:
		n->type = TD_CFG_BOOL;
		n->b = true;
		return 0;
	case TD_K_INT:
	case TD_K_PROB: {
		char *end;
		bool digits = v[0] != '\0' && strspn(v, "0123456789") == strlen(v);

		if (digits) {
			uint64_t u;

			if (td_parse_u64(v, &u) != 0 || u > INT64_MAX) {
				td__seterr(err, 0, "--%s: %s is too large", k->opt, v);
				return -EINVAL;
			}
			n->type = TD_CFG_INT64;
			n->i = (int64_t)u;
			return 0;
		}
		if (k->kind == TD_K_PROB && v[0] != '\0' &&
		    strspn(v, "0123456789.") == strlen(v) && strchr(v, '.') == strrchr(v, '.')) {
			n->type = TD_CFG_FLOAT;
			n->f = strtod(v, &end);
			return 0;
		}
		td__seterr(err, 0, "--%s: not a number: \"%s\"", k->opt, v);
		return -EINVAL;
	}
	default:
		return 0;
	}
}

int td_policy_set_option(struct td_policy *p, struct td_rule *r, const struct td_key *k,
			 const char *const *vals, size_t nvals, struct td_cfg_error *err)
{
	struct td__pctx c = {.err = err, .p = p};
	struct td_cfg_node node, *kids = NULL, **kidp = NULL;
	size_t nk = 0;
	char path[80];
	void *base = td_key_base(k->scope, p, r);
	int rc;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "command line");
	snprintf(path, sizeof(path), "--%s", k->opt ? k->opt : k->name);
	if (nvals == 0 || base == NULL)
		return -EINVAL;
	if (k->kind == TD_K_PORTS || k->kind == TD_K_ADDRS) {
		/* every value, and every comma-separated part of one, an element */
		for (size_t i = 0; i < nvals; i++)
			for (const char *v = vals[i]; v != NULL; v = strchr(v, ','), v = v ? v + 1 : v)
				nk++;
		kids = td_mem_calloc(nk, sizeof(*kids));
		kidp = td_mem_calloc(nk, sizeof(*kidp));
		if (kids == NULL || kidp == NULL) {
			td_mem_free(kids);
			td_mem_free(kidp);
			return -ENOMEM;
		}
		nk = 0;
		for (size_t i = 0; i < nvals; i++) {
			for (const char *v = vals[i]; v != NULL;) {
				const char *comma = strchr(v, ',');
				size_t len = comma ? (size_t)(comma - v) : strlen(v);
				char *one = td_mem_strndup(v, len);

				kids[nk].type = TD_CFG_STRING;
				kids[nk].s = one ? one : "";
				kidp[nk] = &kids[nk];
				nk++;
				v = comma ? comma + 1 : NULL;
			}
		}
		memset(&node, 0, sizeof(node));
		node.type = TD_CFG_LIST;
		node.kids = kidp;
		node.n = (uint32_t)nk;
		rc = 0;
	} else {
		rc = td__option_node(k, vals[nvals - 1], &node, err);
	}
	if (rc == 0)
		rc = td__member(&c, k, &node, path, base);
	if (rc == 0 && k->scope == TD_SC_FAULT && r != NULL) {
		r->has_fault = true;
		rc = td__group_done(&c, &node, "", TD_SC_FAULT, base);
	}
	for (size_t i = 0; i < nk; i++)
		td_mem_free((char *)kids[i].s);
	td_mem_free(kids);
	td_mem_free(kidp);
	return rc;
}

static void td__errno_msg(struct td_cfg_error *err, const char *what, int e)
{
	char buf[128];
	const char *s = strerror_r(e, buf, sizeof(buf));

	td__seterr(err, 0, "%s: %s", what, s);
}

/* Read everything from fd (a regular file that may still change size). */
static int td__read_all(int fd, size_t hint, char **text, size_t *len,
			struct td_cfg_error *err)
{
	size_t cap = hint + 1, n = 0;
	char *buf = td_mem_malloc(cap);

	if (buf == NULL)
		goto nomem;
	for (;;) {
		ssize_t r;

		if (n == cap - 1) {
			char *nb;

			if (n > TD_POLICY_MAX_BYTES)
				break;
			cap = cap * 2 > TD_POLICY_MAX_BYTES + 2 ? TD_POLICY_MAX_BYTES + 2
								: cap * 2;
			nb = td_mem_realloc(buf, cap);
			if (nb == NULL)
				goto nomem;
			buf = nb;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			td_mem_free(buf);
			td__errno_msg(err, "cannot read", e);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > TD_POLICY_MAX_BYTES) {
		td_mem_free(buf);
		td__seterr(err, 0, "is larger than 1 MiB");
		return -EFBIG;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
nomem:
	td_mem_free(buf);
	td__seterr(err, 0, "out of memory");
	return -ENOMEM;
}

static const char *td__kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISSOCK(m))
		return "a socket";
	return "not a regular file";
}

/*
 * Checks run on the open descriptor, never on the path, so that what is
 * checked is what is read.  The privileged checks are sshd's StrictModes
 * for one file: whoever could write the policy could make a set-user-ID
 * program reset its connections.
 */
static int td__check_fd(int fd, bool privileged, struct stat *st,
			struct td_cfg_error *err)
{
	if (fstat(fd, st) != 0) {
		int e = errno;

		td__errno_msg(err, "cannot stat", e);
		return -e;
	}
	if (!S_ISREG(st->st_mode)) {
		td__seterr(err, 0, "is %s, not a regular file", td__kind(st->st_mode));
		return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	}
	if (st->st_size > TD_POLICY_MAX_BYTES) {
		td__seterr(err, 0, "is larger than 1 MiB");
		return -EFBIG;
	}
	if (!privileged)
		return 0;
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		td__seterr(err, 0,
			   "is owned by uid %u, not root or the effective user; refusing it in a privileged process",
			   (unsigned)st->st_uid);
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		td__seterr(err, 0,
			   "is writable by group or others; refusing it in a privileged process");
		return -EPERM;
	}
	return 0;
}

int td_policy_read_file(const char *path, bool privileged, char **text,
			size_t *len, struct td_cfg_error *err)
{
	struct stat st;
	int fd, rc;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", path ? path : "");
	*text = NULL;
	*len = 0;
	if (path == NULL || *path == '\0') {
		td__seterr(err, 0, "empty policy path");
		return -ENOENT;
	}
	/* O_NONBLOCK: opening a FIFO without a writer must not hang us. */
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int e = errno;

		if (e == ELOOP)
			td__seterr(err, 0, "is a symbolic link; refusing to follow it");
		else
			td__errno_msg(err, "cannot open", e);
		return -e;
	}
	rc = td__check_fd(fd, privileged, &st, err);
	if (rc == 0)
		rc = td__read_all(fd, (size_t)st.st_size, text, len, err);
	close(fd);
	return rc;
}

int td_policy_load_file(struct td_policy *p, const char *path,
			bool privileged,
			struct td_cfg_error *err)
{
	char *text;
	size_t len;
	int rc;

	td__policy_init(p, path ? path : "");
	rc = td_policy_read_file(path, privileged, &text, &len, err);
	if (rc != 0)
		return rc;
	rc = td_policy_parse_text(p, text, len, path, err);
	td_mem_free(text);
	return rc;
}

size_t td_cfg_error_format(const struct td_cfg_error *e, char *buf, size_t cap)
{
	int n;

	if (cap == 0)
		return 0;
	if (e->line > 0)
		n = snprintf(buf, cap, "%s:%d: %s", e->file, e->line, e->msg);
	else
		n = snprintf(buf, cap, "%s: %s", e->file, e->msg);
	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	return (size_t)n < cap ? (size_t)n : cap - 1;
}
