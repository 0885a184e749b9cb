/*
 * teardown: the policy, as parsed from a libconfig file, and the rule
 * matcher.  Everything here is plain data and pure functions: it links
 * without the preloaded library, so unit tests and the `teardown` command
 * use it directly.  Once built, a policy is never modified (the preloaded
 * library reads it from signal handlers and from every thread without
 * locks).
 */
#ifndef TEARDOWN_POLICY_H
#define TEARDOWN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "teardown/addr.h"

#define TD_NAME_MAX 64
#define TD_POLICY_MAX_BYTES (1024 * 1024)
#define TD_DEFAULT_DRAIN_TIMEOUT_MS 5000u
#define TD_DEFAULT_CONNECT_TIMEOUT_MS 3000u

enum td_close_action {
	TD_CLOSE_PASS = 0, /* leave the program's own choice */
	TD_CLOSE_GRACEFUL, /* FIN: undo SO_LINGER, discard queued input */
	TD_CLOSE_DRAIN,	   /* SHUT_WR, read to EOF in the background */
	TD_CLOSE_ABORT,	   /* RST through SO_LINGER {1,0} */
};

enum td_shut_action {
	TD_SHUT_PASS = 0,
	TD_SHUT_HALF, /* SHUT_RD and SHUT_RDWR become SHUT_WR */
	TD_SHUT_SKIP, /* shutdown() sends nothing */
};

/* A rule's role criterion. */
enum td_role {
	TD_ROLE_ANY = 0,
	TD_ROLE_CLIENT, /* sockets that connect() */
	TD_ROLE_SERVER, /* accepted sockets (and, at bind, their listener) */
};

enum td_log_target {
	TD_LOG_STDERR = 0,
	TD_LOG_SYSLOG,
	TD_LOG_FILE,
	TD_LOG_JOURNAL, /* journald's native socket */
};

enum td_on_error {
	TD_ONERR_PASS = 0, /* run unchanged, warn once */
	TD_ONERR_EXIT,	   /* exit status 78 (EX_CONFIG) */
};

/* An address block: family AF_INET or AF_INET6, prefix in bits. */
struct td_cidr {
	uint8_t family;
	uint8_t prefix;
	uint8_t addr[16];
};

/* An inclusive port range in host order. */
struct td_portrange {
	uint16_t lo, hi;
};

/*
 * Probabilities are kept both as the double the operator wrote (for
 * printing) and as a 64-bit threshold compared against a hash: a draw
 * faults when hash < thr, with thr == 0 for 0 (never) and the flag
 * *_always set for 1 (always), so neither end depends on rounding.
 */
struct td_prob {
	double p;
	uint64_t thr;
	bool always;
};

/*
 * Which of a rule's matched connections a fault may hit, by position
 * (1 = the first the rule matched): first..last, every step-th.  Unset:
 * every one.  strace's syntax: "3" the 3rd, "3+" from the 3rd, "3..5" the
 * 3rd to the 5th, "3+2" every 2nd from the 3rd.
 */
struct td_when {
	uint64_t first, last, step;
	bool set;
};

struct td_fault {
	struct td_when when;
	struct td_prob rst;
	uint32_t rst_after_ms;	  /* 0 = off */
	uint64_t rst_after_bytes; /* 0 = off */
	uint64_t fin_after_bytes; /* 0 = off: a FIN after this many written */
	uint64_t rst_after_bytes_in; /* 0 = off: reset after this many read */
	struct td_prob rst_on_accept;
	struct td_prob connect_refuse;
	struct td_prob connect_timeout;
	uint32_t connect_timeout_ms;
	uint32_t connect_delay_ms;
	uint32_t close_delay_ms;
	uint64_t seed;
	bool has_seed;
	/* on a live policy change: reset the open connections the rule matches */
	bool reset_open;
};

struct td_rule {
	char name[TD_NAME_MAX]; /* "rule#N" (1-based) when unnamed */
	int line;		/* line of the rule in its file, 0 if unknown */

	/* match; an absent criterion matches everything */
	char *program; /* fnmatch() glob, NULL = any */
	uint8_t role;  /* enum td_role */
	struct td_cidr *remote;
	uint32_t n_remote;
	struct td_cidr *local;
	uint32_t n_local;
	struct td_portrange *remote_port;
	uint32_t n_remote_port;
	struct td_portrange *local_port;
	uint32_t n_local_port;

	/* actions */
	uint8_t close; /* enum td_close_action */
	uint32_t drain_timeout_ms;
	uint8_t shutdown; /* enum td_shut_action */
	bool reuseaddr;
	int32_t fin_timeout_s; /* -1 = leave alone */
	bool log;
	uint32_t leak_after_s; /* 0 = off */
	bool has_fault;
	struct td_fault fault;

	/* set by td_policy_bind_program(); true when no program criterion */
	bool program_ok;
};

struct td_policy {
	int version;
	uint8_t log_target; /* enum td_log_target */
	uint8_t log_format; /* enum td_log_format (teardown/event.h) */
	uint8_t log_facility; /* syslog facility code; 0 = daemon (the default) */
	uint8_t on_error; /* enum td_on_error */
	struct td_rule *rules;
	uint32_t n_rules;

	/* summaries, computed by td_policy_finish() */
	bool uses_local;   /* some rule has local or local_port criteria */
	bool any_fault;
	bool any_bytes_fault; /* some rule has fault.rst_after_bytes */
	bool any_leak;

	/* optional index built by td_policy_build_index(); owned by p */
	struct td_index *index;
	/* the library's generation number for this policy (live reloads) */
	uint8_t gen;
	/* per rule: connections it matched in this process (the library's) */
	uint64_t *matched;
	/*
	 * per rule that logs: its observing twin (the library's, see
	 * td_decide_rule()): the same name and log, close "pass" and nothing
	 * else put into the socket; NULL where none was made
	 */
	struct td_rule *observe;

	/*
	 * The two paths last: every field above is read at every decision
	 * and close, and together they fit one page, the first; a forked
	 * child (each of a fork-per-connection server's) touches that page
	 * alone rather than both ends of 8 KiB.
	 */
	char log_path[4096];
	char source[4096]; /* file path, or "TEARDOWN_POLICY" */
};

/* What is known about a socket when a decision is made. */
enum td_known {
	TD_K_ROLE = 1u << 0,
	TD_K_REMOTE = 1u << 1,
	TD_K_LOCAL = 1u << 2,
};

struct td_match_ctx {
	uint32_t known; /* enum td_known bits */
	uint8_t role;	/* TD_ROLE_CLIENT or TD_ROLE_SERVER when known */
	struct td_addr remote;
	struct td_addr local;
};

/*
 * Whether rule r matches.  A criterion on a field that ctx does not know
 * fails the match, except that with TD_K_ROLE unset the role criterion is
 * ignored (used at bind(), when it is not yet known whether the socket
 * will connect or listen), and with TD_K_REMOTE unset the remote criteria
 * are ignored (bind() again: a listener's peers come later).
 */
bool td_rule_match(const struct td_rule *r, const struct td_match_ctx *ctx);

/* Index of the first matching rule, or -1. */
int td_policy_decide(const struct td_policy *p, const struct td_match_ctx *ctx);

/*
 * Evaluate every rule's program glob once for this process: prog is the
 * short program name (argv[0] basename), exe the executable's basename;
 * a glob matches if it matches either.  Either may be NULL.
 */
void td_policy_bind_program(struct td_policy *p, const char *prog,
			    const char *exe);

/*
 * Index the rules by remote and local port so that a decision does not
 * scan thousands of rules that cannot match.  Call after
 * td_policy_bind_program() (rules whose program does not match are left
 * out).  Decisions give the same answer with or without it.  0 or -ENOMEM.
 */
int td_policy_build_index(struct td_policy *p);

/* Compute the summary flags; call after filling rules. */
void td_policy_finish(struct td_policy *p);

/* Free everything a parsed policy owns (not p itself). */
void td_policy_free(struct td_policy *p);

const char *td_close_action_name(int a);
const char *td_shut_action_name(int a);
const char *td_role_name(int r);

#endif
