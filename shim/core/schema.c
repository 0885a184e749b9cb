/* teardown: the policy schema, one row per key; see include/teardown/schema.h. */
#include <limits.h>
#include <string.h>

#include "teardown/event.h"
#include "teardown/fmt.h"
#include "teardown/schema.h"
#include "teardown/layout.h"

/* The names of the enumerated values, in enum order. */
/* (the close actions' names go in every child's lines: TD_CHILD_CONST) */
static const char td__c_pass[] TD_CHILD_CONST = "pass";
static const char td__c_graceful[] TD_CHILD_CONST = "graceful";
static const char td__c_drain[] TD_CHILD_CONST = "drain";
static const char td__c_abort[] TD_CHILD_CONST = "abort";
static const char *const td__close_names[] = {td__c_pass, td__c_graceful, td__c_drain,
					      td__c_abort, NULL};
static const char *const td__shut_names[] = {"pass", "half", "skip", NULL};
static const char *const td__role_names[] = {"any", "client", "server", NULL};
static const char *const td__format_names[] = {"text", "json", NULL};
static const char *const td__onerr_names[] = {"pass", "exit", NULL};

#define P(f) offsetof(struct td_policy, f)
#define R(f) offsetof(struct td_rule, f)
#define F(f) offsetof(struct td_fault, f)
#define NONE INT64_MIN

/*
 * The rows, in the order the canonical printer writes them (the parser
 * takes any order).  Ranges are the ones the library can honour: a drain
 * or delay longer than ten minutes is a mistake, a FIN timeout past an
 * hour is the system's business.
 */
const struct td_key td_keys[] = {
	/* the document */
	{TD_SC_TOP, TD_K_VERSION, TD_F_I32, 0, 0, "version", P(version), 0, 1, 1, 1, NONE, NULL,
	 NULL, NULL, NULL, "the schema version; 1"},
	{TD_SC_TOP, TD_K_GROUP, 0, TD_SC_LOG, 0, "log", 0, 0, 0, 0, 0, NONE, NULL, NULL, NULL,
	 NULL, "where and how events are written"},
	{TD_SC_TOP, TD_K_ENUM, TD_F_U8, 0, TD_KF_FIRST, "on_error", P(on_error), 0, 0, 0,
	 TD_ONERR_PASS, NONE, td__onerr_names, NULL, NULL, NULL,
	 "an invalid policy: pass runs the program unchanged (one warning), exit exits 78"},
	{TD_SC_TOP, TD_K_RULES, 0, TD_SC_RULE, 0, "rules", 0, 0, 0, 0, 0, NONE, NULL,
	 "no rules: every connection is left alone", NULL, NULL,
	 "the rules, tried in order: the first that matches a socket decides"},

	/* log = { } */
	{TD_SC_LOG, TD_K_TARGET, 0, 0, 0, "target", P(log_target), P(log_path), 0, 0,
	 TD_LOG_STDERR, NONE, NULL, NULL, "log", "TARGET",
	 "stderr | syslog | journal | a file (absolute; an option's relative path is made absolute)"},
	{TD_SC_LOG, TD_K_ENUM, TD_F_U8, 0, 0, "format", P(log_format), 0, 0, 0, TD_FMT_TEXT,
	 NONE, td__format_names, NULL, "format", "FMT", "text | json"},
	{TD_SC_LOG, TD_K_FACILITY, TD_F_U8, 0, 0, "facility", P(log_facility), 0, 0, 0, 0, NONE,
	 NULL, NULL, "log-facility", "NAME",
	 "syslog/journal facility: daemon (default), user, local0..local7, ..."},

	/* a rule */
	{TD_SC_RULE, TD_K_NAME, 0, 0, 0, "name", R(name), 0, 0, 0, 0, NONE, NULL, NULL, NULL,
	 NULL, "the rule's name in the log (default rule#N)"},
	{TD_SC_RULE, TD_K_GROUP, 0, TD_SC_MATCH, 0, "match", 0, 0, 0, 0, 0, NONE, NULL, NULL,
	 NULL, NULL, "which sockets the rule is for; an absent criterion matches all"},
	{TD_SC_RULE, TD_K_ENUM, TD_F_U8, 0, 0, "close", R(close), 0, 0, 0, TD_CLOSE_PASS, NONE,
	 td__close_names, NULL, "close", "ACTION", "pass | graceful | drain | abort"},
	{TD_SC_RULE, TD_K_INT, TD_F_U32, 0, 0, "drain_timeout_ms", R(drain_timeout_ms), 0, 1,
	 600000, TD_DEFAULT_DRAIN_TIMEOUT_MS, NONE, NULL, NULL, "drain-timeout", "MS",
	 "how long a drain waits for the peer's FIN"},
	{TD_SC_RULE, TD_K_ENUM, TD_F_U8, 0, 0, "shutdown", R(shutdown), 0, 0, 0, TD_SHUT_PASS,
	 NONE, td__shut_names, NULL, "shutdown", "MODE", "pass | half | skip"},
	{TD_SC_RULE, TD_K_BOOL, TD_F_BOOL, 0, 0, "reuseaddr", R(reuseaddr), 0, 0, 0, 0, NONE,
	 NULL, NULL, "reuseaddr", NULL, "SO_REUSEADDR before bind and connect"},
	{TD_SC_RULE, TD_K_INT, TD_F_I32, 0, TD_KF_UNSET, "fin_timeout_s", R(fin_timeout_s), 0,
	 1, 3600, -1, -1, NULL, "not set (the system's tcp_fin_timeout)", "fin-timeout", "S",
	 "TCP_LINGER2 (per-socket tcp_fin_timeout)"},
	{TD_SC_RULE, TD_K_BOOL, TD_F_BOOL, 0, 0, "log", R(log), 0, 0, 0, 1, NONE, NULL, NULL,
	 NULL, NULL, "write this rule's events"},
	{TD_SC_RULE, TD_K_INT, TD_F_U32, 0, TD_KF_UNSET, "leak_after_s", R(leak_after_s), 0, 1,
	 86400, 0, 0, NULL, "off", "leak-after", "S",
	 "log sockets left in CLOSE_WAIT this long"},
	{TD_SC_RULE, TD_K_GROUP, 0, TD_SC_FAULT, TD_KF_MARK, "fault", R(fault), R(has_fault), 0,
	 0, 0, NONE, NULL, "none", NULL, NULL, "faults to inject into matched connections"},

	/* match = { } */
	{TD_SC_MATCH, TD_K_GLOB, 0, 0, 0, "program", R(program), 0, 0, 0, 0, NONE, NULL, "any",
	 "program", "GLOB", "the program's name (argv[0] or executable), a glob"},
	{TD_SC_MATCH, TD_K_ENUM, TD_F_U8, 0, 0, "role", R(role), 0, 0, 0, TD_ROLE_ANY, NONE,
	 td__role_names, NULL, "role", "ROLE", "client | server | any"},
	{TD_SC_MATCH, TD_K_ADDRS, 0, 0, TD_KF_REPEAT, "remote", R(remote), R(n_remote), 0, 0, 0,
	 NONE, NULL, "any address", "remote", "CIDR", "peer address or block (repeatable)"},
	{TD_SC_MATCH, TD_K_ADDRS, 0, 0, TD_KF_REPEAT, "local", R(local), R(n_local), 0, 0, 0,
	 NONE, NULL, "any address", "local", "CIDR", "local address or block (repeatable)"},
	{TD_SC_MATCH, TD_K_PORTS, 0, 0, 0, "remote_port", R(remote_port), R(n_remote_port), 0,
	 0, 0, NONE, NULL, "any port", "remote-port", "PORTS", "e.g. 443, 8000-8099 or 80,443"},
	{TD_SC_MATCH, TD_K_PORTS, 0, 0, 0, "local_port", R(local_port), R(n_local_port), 0, 0,
	 0, NONE, NULL, "any port", "local-port", "PORTS", "the local port(s)"},

	/* fault = { } */
	{TD_SC_FAULT, TD_K_WHEN, 0, 0, 0, "when", F(when), 0, 0, 0, 0, NONE, NULL, "every one",
	 "when", "POS", "which matched connections: 3, 3+, 3..5 or 3+2 (every 2nd from the 3rd)"},
	{TD_SC_FAULT, TD_K_PROB, 0, 0, 0, "rst", F(rst), 0, 0, 0, 0, NONE, NULL, NULL, "rst",
	 "P", "share of connections that end in an RST"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U32, 0, TD_KF_UNSET, "rst_after_ms", F(rst_after_ms), 0, 1,
	 86400000, 0, 0, NULL, "off", "rst-after-ms", "MS",
	 "reset connections this long after they open"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U64, 0, TD_KF_UNSET | TD_KF_ONE_OF, "rst_after_bytes",
	 F(rst_after_bytes), 0, 1, 1LL << 62, 0, 0, NULL, "off", "rst-after-bytes", "N",
	 "reset once the program has written N bytes"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U64, 0, TD_KF_UNSET | TD_KF_ONE_OF, "fin_after_bytes",
	 F(fin_after_bytes), 0, 1, 1LL << 62, 0, 0, NULL, "off", "fin-after-bytes", "N",
	 "end with a FIN once the program has written N bytes (its later writes: EPIPE)"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U64, 0, TD_KF_UNSET, "rst_after_bytes_in",
	 F(rst_after_bytes_in), 0, 1, 1LL << 62, 0, 0, NULL, "off", "rst-after-bytes-in", "N",
	 "reset once the program has read N bytes"},
	{TD_SC_FAULT, TD_K_PROB, 0, 0, 0, "rst_on_accept", F(rst_on_accept), 0, 0, 0, 0, NONE,
	 NULL, NULL, "rst-on-accept", "P", "share of accepted connections reset before any read"},
	{TD_SC_FAULT, TD_K_PROB, 0, 0, TD_KF_ONE_DRAW, "connect_refuse", F(connect_refuse), 0, 0, 0, 0, NONE,
	 NULL, NULL, "connect-refuse", "P", "share of connects refused (ECONNREFUSED)"},
	{TD_SC_FAULT, TD_K_PROB, 0, 0, TD_KF_ONE_DRAW, "connect_timeout", F(connect_timeout), 0, 0, 0, 0,
	 NONE, NULL, NULL, "connect-timeout", "P", "share of connects that time out (ETIMEDOUT)"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U32, 0, 0, "connect_timeout_ms", F(connect_timeout_ms), 0,
	 1, 600000, TD_DEFAULT_CONNECT_TIMEOUT_MS, NONE, NULL, NULL, "connect-timeout-ms", "MS",
	 "how long a timed-out connect takes (at least ~1 s)"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U32, 0, 0, "connect_delay_ms", F(connect_delay_ms), 0, 0,
	 600000, 0, NONE, NULL, NULL, "connect-delay", "MS", "every connect this much slower"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U32, 0, 0, "close_delay_ms", F(close_delay_ms), 0, 0,
	 600000, 0, NONE, NULL, NULL, "close-delay", "MS", "every close this much slower"},
	{TD_SC_FAULT, TD_K_INT, TD_F_U64, 0, TD_KF_HAS, "seed", F(seed), F(has_seed), 0,
	 LLONG_MAX, 0, NONE, NULL, "not set", "seed", "N",
	 "fixed seed: the same faults on every run"},
	{TD_SC_FAULT, TD_K_BOOL, TD_F_BOOL, 0, 0, "reset_open", F(reset_open), 0, 0, 0, 0, NONE,
	 NULL, NULL, NULL, NULL,
	 "when this policy replaces a running one: reset, once, every open connection the rule matches"}
};

const size_t td_n_keys = sizeof(td_keys) / sizeof(td_keys[0]);

const struct td_key *td_key_find(int scope, const char *name)
{
	for (size_t i = 0; i < td_n_keys; i++)
		if (td_keys[i].scope == scope && strcmp(td_keys[i].name, name) == 0)
			return &td_keys[i];
	return NULL;
}

const struct td_key *td_key_by_opt(const char *opt)
{
	for (size_t i = 0; i < td_n_keys; i++)
		if (td_keys[i].opt != NULL && strcmp(td_keys[i].opt, opt) == 0)
			return &td_keys[i];
	return NULL;
}

const char *td_key_names(int scope, char *buf, size_t cap)
{
	struct td_buf b;
	bool first = true;

	td_buf_init(&b, buf, cap);
	for (size_t i = 0; i < td_n_keys; i++) {
		if (td_keys[i].scope != scope)
			continue;
		if (!first)
			td_buf_puts(&b, ", ");
		td_buf_puts(&b, td_keys[i].name);
		first = false;
	}
	return td_buf_cstr(&b);
}

const char *td_scope_name(int scope)
{
	static const char *const n[TD_SC__COUNT] = {"", "log", "rules[]", "rules[].match",
						    "rules[].fault"};

	return scope >= 0 && scope < TD_SC__COUNT ? n[scope] : "?";
}

void *td_key_base(int scope, struct td_policy *p, struct td_rule *r)
{
	switch (scope) {
	case TD_SC_TOP:
	case TD_SC_LOG:
		return p;
	case TD_SC_FAULT:
		return r ? &r->fault : NULL;
	default:
		return r;
	}
}

int64_t td_key_get_int(const struct td_key *k, const void *base)
{
	const char *at = (const char *)base + k->off;

	switch (k->field) {
	case TD_F_U8: return *(const uint8_t *)at;
	case TD_F_BOOL: return *(const bool *)at;
	case TD_F_I32: return *(const int32_t *)at;
	case TD_F_U32: return *(const uint32_t *)at;
	default: return (int64_t)*(const uint64_t *)at;
	}
}

void td_key_set_int(const struct td_key *k, void *base, int64_t v)
{
	char *at = (char *)base + k->off;

	switch (k->field) {
	case TD_F_U8: *(uint8_t *)at = (uint8_t)v; break;
	case TD_F_BOOL: *(bool *)at = v != 0; break;
	case TD_F_I32: *(int32_t *)at = (int32_t)v; break;
	case TD_F_U32: *(uint32_t *)at = (uint32_t)v; break;
	default: *(uint64_t *)at = (uint64_t)v; break;
	}
}

void td_keys_default(int scope, void *base)
{
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];

		if (k->scope != scope)
			continue;
		switch (k->kind) {
		case TD_K_INT:
		case TD_K_BOOL:
		case TD_K_ENUM:
		case TD_K_FACILITY:
		case TD_K_VERSION:
			td_key_set_int(k, base, k->def);
			break;
		case TD_K_TARGET:
			*((uint8_t *)base + k->off) = (uint8_t)k->def;
			break;
		case TD_K_GROUP:
			/* a rule's groups live in the rule (match) or in it (fault) */
			if (k->sub == TD_SC_MATCH)
				td_keys_default(TD_SC_MATCH, base);
			else if (k->sub == TD_SC_FAULT)
				td_keys_default(TD_SC_FAULT, (char *)base + k->off);
			else if (k->sub == TD_SC_LOG)
				td_keys_default(TD_SC_LOG, base);
			break;
		default:
			break;
		}
	}
}

TD_CHILD_RUNS
const char *td_close_action_name(int a)
{
	return a >= 0 && a < 4 ? td__close_names[a] : "?";
}

const char *td_shut_action_name(int a)
{
	return a >= 0 && a < 3 ? td__shut_names[a] : "?";
}

const char *td_role_name(int r)
{
	return r >= 0 && r < 3 ? td__role_names[r] : "?";
}
