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

#include "teardown/config.h"
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
		np = realloc(b->p, cap);
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

static void td__sb_cidrs(struct td__sb *b, const char *key,
			 const struct td_cidr *v, uint32_t n)
{
	if (n == 0) {
		td__sb_printf(b, "      # %s: any address\n", key);
		return;
	}
	td__sb_printf(b, "      %s = [ ", key);
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
	td__sb_printf(b, " ];\n");
}

static void td__sb_ports(struct td__sb *b, const char *key,
			 const struct td_portrange *v, uint32_t n)
{
	if (n == 0) {
		td__sb_printf(b, "      # %s: any port\n", key);
		return;
	}
	td__sb_printf(b, "      %s = [ ", key);
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].lo == v[i].hi)
			td__sb_printf(b, "%s\"%u\"", i ? ", " : "", v[i].lo);
		else
			td__sb_printf(b, "%s\"%u-%u\"", i ? ", " : "", v[i].lo, v[i].hi);
	}
	td__sb_printf(b, " ];\n");
}

static void td__sb_fault(struct td__sb *b, const struct td_rule *r)
{
	const struct td_fault *f = &r->fault;

	if (!r->has_fault) {
		td__sb_printf(b, "    # fault: none\n");
		return;
	}
	td__sb_printf(b, "    fault = {\n      rst = ");
	td__sb_prob(b, f->rst.p);
	td__sb_printf(b, ";\n");
	if (f->rst_after_ms)
		td__sb_printf(b, "      rst_after_ms = %u;\n", f->rst_after_ms);
	else
		td__sb_printf(b, "      # rst_after_ms: off\n");
	if (f->rst_after_bytes) {
		td__sb_printf(b, "      rst_after_bytes = ");
		td__sb_u64(b, f->rst_after_bytes);
		td__sb_printf(b, ";\n");
	} else {
		td__sb_printf(b, "      # rst_after_bytes: off\n");
	}
	td__sb_printf(b, "      connect_refuse = ");
	td__sb_prob(b, f->connect_refuse.p);
	td__sb_printf(b, ";\n      connect_timeout = ");
	td__sb_prob(b, f->connect_timeout.p);
	td__sb_printf(b, ";\n      connect_timeout_ms = %u;\n"
			 "      connect_delay_ms = %u;\n"
			 "      close_delay_ms = %u;\n",
		      f->connect_timeout_ms, f->connect_delay_ms, f->close_delay_ms);
	if (f->has_seed) {
		td__sb_printf(b, "      seed = ");
		td__sb_u64(b, f->seed);
		td__sb_printf(b, ";\n");
	} else {
		td__sb_printf(b, "      # seed: not set\n");
	}
	td__sb_printf(b, "    };\n");
}

static void td__sb_rule(struct td__sb *b, const struct td_rule *r, uint32_t i)
{
	td__sb_printf(b, "  {\n");
	if (r->line > 0)
		td__sb_printf(b, "    # rule %u, from line %d\n", i + 1, r->line);
	else
		td__sb_printf(b, "    # rule %u\n", i + 1);
	td__sb_printf(b, "    name = ");
	td__sb_str(b, r->name);
	td__sb_printf(b, ";\n    match = {\n");
	if (r->program) {
		td__sb_printf(b, "      program = ");
		td__sb_str(b, r->program);
		td__sb_printf(b, ";\n");
	} else {
		td__sb_printf(b, "      # program: any\n");
	}
	td__sb_printf(b, "      role = \"%s\";\n", td_role_name(r->role));
	td__sb_cidrs(b, "remote", r->remote, r->n_remote);
	td__sb_ports(b, "remote_port", r->remote_port, r->n_remote_port);
	td__sb_cidrs(b, "local", r->local, r->n_local);
	td__sb_ports(b, "local_port", r->local_port, r->n_local_port);
	td__sb_printf(b, "    };\n");
	td__sb_printf(b, "    close = \"%s\";\n    drain_timeout_ms = %u;\n"
			 "    shutdown = \"%s\";\n    reuseaddr = %s;\n",
		      td_close_action_name(r->close), r->drain_timeout_ms,
		      td_shut_action_name(r->shutdown), r->reuseaddr ? "true" : "false");
	if (r->fin_timeout_s > 0)
		td__sb_printf(b, "    fin_timeout_s = %d;\n", (int)r->fin_timeout_s);
	else
		td__sb_printf(b, "    # fin_timeout_s: not set (the system's tcp_fin_timeout)\n");
	td__sb_printf(b, "    log = %s;\n", r->log ? "true" : "false");
	if (r->leak_after_s)
		td__sb_printf(b, "    leak_after_s = %u;\n", r->leak_after_s);
	else
		td__sb_printf(b, "    # leak_after_s: off\n");
	td__sb_fault(b, r);
	td__sb_printf(b, "  }");
}

static void td__sb_policy(struct td__sb *b, const struct td_policy *p)
{
	td__sb_printf(b, "# teardown policy in canonical form: every default spelled out.\n"
			 "version = %d;\nlog = {\n  target = ",
		      p->version);
	if (p->log_target == TD_LOG_FILE)
		td__sb_str(b, p->log_path);
	else
		td__sb_printf(b, "\"%s\"", p->log_target == TD_LOG_SYSLOG    ? "syslog"
					   : p->log_target == TD_LOG_JOURNAL ? "journal"
									     : "stderr");
	td__sb_printf(b, ";\n  format = \"%s\";\n  facility = \"%s\";\n};\non_error = \"%s\";\n",
		      p->log_format == TD_FMT_JSON ? "json" : "text",
		      td_log_facility_name(p->log_facility ? p->log_facility : TD_FACILITY_DEFAULT)
			      ?: "daemon",
		      p->on_error == TD_ONERR_EXIT ? "exit" : "pass");
	if (p->n_rules == 0) {
		td__sb_printf(b, "# no rules: every connection is left alone\nrules = ( );\n");
		return;
	}
	td__sb_printf(b, "rules = (\n");
	for (uint32_t i = 0; i < p->n_rules; i++) {
		td__sb_rule(b, &p->rules[i], i);
		td__sb_printf(b, "%s\n", i + 1 < p->n_rules ? "," : "");
	}
	td__sb_printf(b, ");\n");
}

char *td_policy_to_text(const struct td_policy *p)
{
	struct td__sb b = {.cap = 4096};
	locale_t c_num, old;

	c_num = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c_num == (locale_t)0)
		return NULL;
	b.p = malloc(b.cap);
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
		free(b.p);
		return NULL;
	}
	return b.p;
}
