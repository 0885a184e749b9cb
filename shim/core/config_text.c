/*
 * teardown: a policy written back as libconfig text.  `teardown check
 * --canonical` prints it, and the command hands it to the preloaded
 * library in TEARDOWN_POLICY, so it must parse back to the same policy:
 * every default is spelled out, and what has no spelling (an absent
 * criterion, an unset timeout) is left out with a comment saying so.
 *
 * Not a hot path: it allocates freely and is never called from a hook.
 */
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/mem.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fault.h"
#include "teardown/fmt.h"
#include "teardown/schema.h"
#include "teardown/event.h"

struct td__sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void td__sb_printf(struct td__sb *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void td__sb_printf(struct td__sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n >= b->cap - b->len) {
		size_t cap = b->cap;
		char *np;

		while (cap - b->len <= (size_t)n)
			cap *= 2;
		np = td_mem_realloc(b->p, cap);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* s as a libconfig string literal: quotes, backslashes and control bytes
 * escaped, so that a name holding a newline cannot end a comment or a
 * string early. */
static void td__sb_str(struct td__sb *b, const char *s)
{
	td__sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			td__sb_printf(b, "\\%c", ch);
		else if (ch == '\n')
			td__sb_printf(b, "\\n");
		else if (ch == '\t')
			td__sb_printf(b, "\\t");
		else if (ch < 0x20 || ch == 0x7f)
			td__sb_printf(b, "\\x%02x", ch);
		else
			td__sb_printf(b, "%c", ch);
	}
	td__sb_printf(b, "\"");
}

/*
 * The shortest decimal that reads back as exactly v, always with a '.' or
 * an exponent so libconfig sees a float.  The caller has switched this
 * thread to the C numeric locale: a program's de_DE locale would write
 * "0,25", which libconfig would not read back.
 */
static void td__sb_prob(struct td__sb *b, double v)
{
	char tmp[40];

	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	if (strpbrk(tmp, ".eEn") == NULL)
		strcat(tmp, ".0");
	td__sb_printf(b, "%s", tmp);
}

/* An unsigned value; libconfig 1.5 needs the L suffix past 32 bits. */
static void td__sb_u64(struct td__sb *b, uint64_t v)
{
	td__sb_printf(b, "%llu%s", (unsigned long long)v, v > 0x7fffffffu ? "L" : "");
}

static void td__sb_cidrs(struct td__sb *b, const struct td_cidr *v, uint32_t n)
{
	td__sb_printf(b, "[ ");
	for (uint32_t i = 0; i < n; i++) {
		struct td_addr a = {.family = v[i].family};
		char buf[TD_ADDR_STRLEN];
		unsigned full = v[i].family == AF_INET ? 32 : 128;

		memcpy(a.addr, v[i].addr, sizeof(a.addr));
		td_addr_format(buf, sizeof(buf), &a, 0);
		td__sb_printf(b, "%s\"%s", i ? ", " : "", buf);
		if (v[i].prefix != full)
			td__sb_printf(b, "/%u", v[i].prefix);
		td__sb_printf(b, "\"");
	}
	td__sb_printf(b, " ]");
}

static void td__sb_ports(struct td__sb *b, const struct td_portrange *v, uint32_t n)
{
	td__sb_printf(b, "[ ");
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].lo == v[i].hi)
			td__sb_printf(b, "%s\"%u\"", i ? ", " : "", v[i].lo);
		else
			td__sb_printf(b, "%s\"%u-%u\"", i ? ", " : "", v[i].lo, v[i].hi);
	}
	td__sb_printf(b, " ]");
}

static void td__sb_scope(struct td__sb *b, const struct td_policy *p, const struct td_rule *r,
			 int scope, int indent);

/* One rule, as an element of the rules list. */
static void td__sb_rule(struct td__sb *b, const struct td_policy *p, const struct td_rule *r,
			uint32_t i)
{
	td__sb_printf(b, "  {\n");
	if (r->line > 0)
		td__sb_printf(b, "    # rule %u, from line %d\n", i + 1, r->line);
	else
		td__sb_printf(b, "    # rule %u\n", i + 1);
	td__sb_scope(b, p, r, TD_SC_RULE, 4);
	td__sb_printf(b, "  }");
}

/*
 * One key: "name = value;", or a comment saying what its absence means
 * when it is not set (an unset timeout, an absent criterion, no seed),
 * since those have no spelling that parses back to the same thing.
 */
static void td__sb_key(struct td__sb *b, const struct td_policy *p, const struct td_rule *r,
		       const struct td_key *k, int indent)
{
	const void *base = td_key_base(k->scope, (struct td_policy *)p, (struct td_rule *)r);
	const char *at = (const char *)base + k->off;
	const uint32_t *count = (const uint32_t *)((const char *)base + k->off2);
	int64_t v;

	switch (k->kind) {
	case TD_K_GROUP:
		if ((k->flags & TD_KF_MARK) && !*(const bool *)((const char *)td_key_base(
				   TD_SC_RULE, (struct td_policy *)p, (struct td_rule *)r) + k->off2)) {
			td__sb_printf(b, "%*s# %s: %s\n", indent, "", k->name, k->none);
			return;
		}
		td__sb_printf(b, "%*s%s = {\n", indent, "", k->name);
		td__sb_scope(b, p, r, k->sub, indent + 2);
		td__sb_printf(b, "%*s};\n", indent, "");
		return;
	case TD_K_RULES:
		if (p->n_rules == 0) {
			td__sb_printf(b, "# %s\n%s = ( );\n", k->none, k->name);
			return;
		}
		td__sb_printf(b, "%s = (\n", k->name);
		for (uint32_t i = 0; i < p->n_rules; i++) {
			td__sb_rule(b, p, &p->rules[i], i);
			td__sb_printf(b, "%s\n", i + 1 < p->n_rules ? "," : "");
		}
		td__sb_printf(b, ");\n");
		return;
	case TD_K_GLOB:
		if (*(char *const *)at == NULL)
			goto unset;
		break;
	case TD_K_WHEN:
		if (!((const struct td_when *)at)->set)
			goto unset;
		break;
	case TD_K_ADDRS:
	case TD_K_PORTS:
		if (*count == 0)
			goto unset;
		break;
	case TD_K_INT:
		v = td_key_get_int(k, base);
		if (((k->flags & TD_KF_UNSET) && v == k->unset) ||
		    ((k->flags & TD_KF_HAS) && !*(const bool *)((const char *)base + k->off2)))
			goto unset;
		break;
	default:
		break;
	}
	td__sb_printf(b, "%*s%s = ", indent, "", k->name);
	switch (k->kind) {
	case TD_K_INT:
	case TD_K_VERSION:
		v = td_key_get_int(k, base);
		if (k->field == TD_F_U64)
			td__sb_u64(b, (uint64_t)v);
		else
			td__sb_printf(b, "%lld", (long long)v);
		break;
	case TD_K_BOOL:
		td__sb_printf(b, "%s", td_key_get_int(k, base) ? "true" : "false");
		break;
	case TD_K_ENUM:
		td__sb_printf(b, "\"%s\"", k->names[td_key_get_int(k, base)]);
		break;
	case TD_K_FACILITY:
		v = td_key_get_int(k, base);
		td__sb_printf(b, "\"%s\"", td_log_facility_name(v ? (int)v : TD_FACILITY_DEFAULT)
						   ?: "daemon");
		break;
	case TD_K_PROB:
		td__sb_prob(b, ((const struct td_prob *)at)->p);
		break;
	case TD_K_WHEN: {
		char w[64];

		td__sb_str(b, td_when_format((const struct td_when *)at, w, sizeof(w)));
		break;
	}
	case TD_K_NAME:
		td__sb_str(b, at);
		break;
	case TD_K_GLOB:
		td__sb_str(b, *(char *const *)at);
		break;
	case TD_K_ADDRS:
		td__sb_cidrs(b, *(struct td_cidr *const *)at, *count);
		break;
	case TD_K_PORTS:
		td__sb_ports(b, *(struct td_portrange *const *)at, *count);
		break;
	case TD_K_TARGET:
		if (p->log_target == TD_LOG_FILE)
			td__sb_str(b, p->log_path);
		else
			td__sb_printf(b, "\"%s\"", p->log_target == TD_LOG_SYSLOG    ? "syslog"
						   : p->log_target == TD_LOG_JOURNAL ? "journal"
										     : "stderr");
		break;
	default:
		break;
	}
	td__sb_printf(b, ";\n");
	return;
unset:
	td__sb_printf(b, "%*s# %s: %s\n", indent, "", k->name, k->none);
}

/* Every key of a scope, in the schema's order. */
static void td__sb_scope(struct td__sb *b, const struct td_policy *p, const struct td_rule *r,
			 int scope, int indent)
{
	for (size_t i = 0; i < td_n_keys; i++)
		if (td_keys[i].scope == scope)
			td__sb_key(b, p, r, &td_keys[i], indent);
}

static void td__sb_policy(struct td__sb *b, const struct td_policy *p)
{
	td__sb_printf(b, "# teardown policy in canonical form: every default spelled out.\n");
	td__sb_scope(b, p, NULL, TD_SC_TOP, 0);
}

bool td_key_value_text(const struct td_key *k, const struct td_policy *p,
		       const struct td_rule *r, char *buf, size_t cap)
{
	const void *base = td_key_base(k->scope, (struct td_policy *)p, (struct td_rule *)r);
	const char *at = (const char *)base + k->off;
	/* off2 is a count only for lists (for log.target it is the path,
	 * for others a flag: reading 4 bytes there is a misaligned load) */
	uint32_t n = (k->kind == TD_K_ADDRS || k->kind == TD_K_PORTS) && k->off2
			     ? *(const uint32_t *)((const char *)base + k->off2)
			     : 0;
	struct td_buf b;
	int64_t v;

	td_buf_init(&b, buf, cap);
	switch (k->kind) {
	case TD_K_INT:
		v = td_key_get_int(k, base);
		if (((k->flags & TD_KF_UNSET) && v == k->unset) ||
		    ((k->flags & TD_KF_HAS) && !*(const bool *)((const char *)base + k->off2)))
			return false;
		if (v < 0) {
			td_buf_putc(&b, '-');
			v = -v;
		}
		td_buf_u64(&b, (uint64_t)v);
		break;
	case TD_K_BOOL:
		td_buf_puts(&b, td_key_get_int(k, base) ? "yes" : "no");
		break;
	case TD_K_ENUM:
		td_buf_puts(&b, k->names[td_key_get_int(k, base)]);
		break;
	case TD_K_PROB: {
		char tmp[40];

		snprintf(tmp, sizeof(tmp), "%g", ((const struct td_prob *)at)->p);
		td_buf_puts(&b, tmp);
		break;
	}
	case TD_K_NAME:
		td_buf_puts(&b, at);
		break;
	case TD_K_WHEN: {
		char w[64];

		if (!((const struct td_when *)at)->set)
			return false;
		td_buf_puts(&b, td_when_format((const struct td_when *)at, w, sizeof(w)));
		break;
	}
	case TD_K_GLOB:
		if (*(char *const *)at == NULL)
			return false;
		td_buf_puts(&b, *(char *const *)at);
		break;
	case TD_K_ADDRS:
		if (n == 0)
			return false;
		for (uint32_t i = 0; i < n; i++) {
			const struct td_cidr *c = &(*(struct td_cidr *const *)at)[i];
			struct td_addr a = {.family = c->family};
			char ab[TD_ADDR_STRLEN];

			memcpy(a.addr, c->addr, sizeof(a.addr));
			td_addr_format(ab, sizeof(ab), &a, 0);
			if (i)
				td_buf_putc(&b, ',');
			td_buf_puts(&b, ab);
			if (c->prefix != (c->family == AF_INET ? 32 : 128)) {
				td_buf_putc(&b, '/');
				td_buf_u64(&b, c->prefix);
			}
		}
		break;
	case TD_K_PORTS:
		if (n == 0)
			return false;
		for (uint32_t i = 0; i < n; i++) {
			const struct td_portrange *pr = &(*(struct td_portrange *const *)at)[i];

			if (i)
				td_buf_putc(&b, ',');
			td_buf_u64(&b, pr->lo);
			if (pr->hi != pr->lo) {
				td_buf_putc(&b, '-');
				td_buf_u64(&b, pr->hi);
			}
		}
		break;
	case TD_K_TARGET:
		td_buf_puts(&b, p->log_target == TD_LOG_FILE	  ? p->log_path
				: p->log_target == TD_LOG_SYSLOG  ? "syslog"
				: p->log_target == TD_LOG_JOURNAL ? "journal"
								  : "stderr");
		break;
	case TD_K_FACILITY:
		v = td_key_get_int(k, base);
		td_buf_puts(&b, td_log_facility_name(v ? (int)v : TD_FACILITY_DEFAULT) ?: "daemon");
		break;
	default:
		return false;
	}
	td_buf_cstr(&b);
	return true;
}

char *td_policy_to_text(const struct td_policy *p)
{
	struct td__sb b = {.cap = 4096};
	locale_t c_num, old;

	c_num = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c_num == (locale_t)0)
		return NULL;
	b.p = td_mem_malloc(b.cap);
	if (b.p == NULL) {
		freelocale(c_num);
		return NULL;
	}
	b.p[0] = '\0';
	old = uselocale(c_num);
	td__sb_policy(&b, p);
	uselocale(old);
	freelocale(c_num);
	if (b.oom) {
		td_mem_free(b.p);
		return NULL;
	}
	return b.p;
}
