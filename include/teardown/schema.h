/*
 * teardown: the policy schema, one row per key.
 *
 * Every policy key is described once, here (the rows are in
 * shim/core/schema.c): its name, where it lives, what it holds and how it
 * is stored, its range and default, what "not set" means, its command-line
 * option and its one line of help.  The parser (config.c), the canonical
 * printer (config_text.c), `teardown check`'s summary, the command line
 * (cli/run.c) and the manual's key list all read this table; adding a key
 * is one row here, a field in struct td_rule (or td_fault, td_policy), and
 * its behaviour in the library.
 */
#ifndef TEARDOWN_SCHEMA_H
#define TEARDOWN_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "teardown/policy.h"

/* The group a key is a member of; each is one struct. */
enum td_scope {
	TD_SC_TOP = 0, /* the document: struct td_policy */
	TD_SC_LOG,     /* log = { }: struct td_policy */
	TD_SC_RULE,    /* rules = ( { } ): struct td_rule */
	TD_SC_MATCH,   /* a rule's match = { }: struct td_rule */
	TD_SC_FAULT,   /* a rule's fault = { }: struct td_fault */
	TD_SC__COUNT
};

/* What a key holds: how it is read, checked, printed and given as an option. */
enum td_kind {
	TD_K_INT,      /* an integer in [lo, hi], stored as the field says */
	TD_K_BOOL,
	TD_K_ENUM,     /* one of names[], stored as its index (uint8_t) */
	TD_K_PROB,     /* a probability in [0, 1] (struct td_prob) */
	TD_K_NAME,     /* the rule's name: char[TD_NAME_MAX], unique */
	TD_K_GLOB,     /* a program glob: char *, malloc()ed */
	TD_K_ADDRS,    /* addresses or CIDR blocks: struct td_cidr *, count at off2 */
	TD_K_PORTS,    /* ports and ranges: struct td_portrange *, count at off2 */
	TD_K_TARGET,   /* log.target: enum td_log_target at off, path at off2 */
	TD_K_FACILITY, /* a syslog facility name, stored as its code (uint8_t) */
	TD_K_VERSION,  /* the schema version: 1 */
	TD_K_WHEN,     /* positions among matched connections: struct td_when */
	TD_K_GROUP,    /* a nested group of scope sub */
	TD_K_RULES,    /* the list of rules */
};

/* How a TD_K_INT, TD_K_BOOL or TD_K_ENUM value is stored. */
enum td_field { TD_F_U8, TD_F_BOOL, TD_F_I32, TD_F_U32, TD_F_U64 };

enum td_key_flag {
	TD_KF_UNSET = 1u << 0, /* the value `unset` means "not set": printed as a comment */
	TD_KF_HAS = 1u << 1,   /* set only when written: a bool at off2 says so */
	TD_KF_FIRST = 1u << 2, /* read before the other keys of its group */
	TD_KF_MARK = 1u << 3,  /* a group that, with any member, sets a bool at off2 */
	TD_KF_REPEAT = 1u << 4, /* as an option: repeatable, each adds to the list */
	TD_KF_ONE_DRAW = 1u << 5, /* a probability sharing one draw with the others so
				     flagged in its group: together at most 1 */
	TD_KF_ONE_OF = 1u << 6, /* at most one key so flagged in its group is set */
};

struct td_key {
	uint8_t scope;	/* enum td_scope */
	uint8_t kind;	/* enum td_kind */
	uint8_t field;	/* enum td_field */
	uint8_t sub;	/* TD_K_GROUP: the scope of its members */
	uint8_t flags;	/* enum td_key_flag */
	const char *name;
	size_t off;	/* of the value in its scope's struct */
	size_t off2;	/* a list's count, a value's has-flag, a group's mark */
	int64_t lo, hi; /* TD_K_INT */
	int64_t def;	/* default of a TD_K_INT, TD_K_BOOL, TD_K_ENUM, TD_K_FACILITY */
	int64_t unset;	/* with TD_KF_UNSET */
	const char *const *names; /* TD_K_ENUM, in enum order */
	const char *none;	  /* what an unset or absent value means */
	const char *opt;	  /* command-line option (without --), or NULL */
	const char *arg;	  /* the option's argument in --help; NULL: a flag */
	const char *help;	  /* one line */
};

extern const struct td_key td_keys[];
extern const size_t td_n_keys;

/* The row of key name in scope, or NULL. */
const struct td_key *td_key_find(int scope, const char *name);
/* The row whose option is opt (without --), or NULL. */
const struct td_key *td_key_by_opt(const char *opt);
/* "program, role, remote, ..." : the keys of a scope, into buf. */
const char *td_key_names(int scope, char *buf, size_t cap);
/* The path of a scope in messages and the manual: "", "log", "rules[]"... */
const char *td_scope_name(int scope);

/* The struct a key of scope is stored in, from the rule (or policy). */
void *td_key_base(int scope, struct td_policy *p, struct td_rule *r);

/* Set every key of scope (and its groups) to its default. */
void td_keys_default(int scope, void *base);

/* Integer, boolean and enum values as stored. */
int64_t td_key_get_int(const struct td_key *k, const void *base);
void td_key_set_int(const struct td_key *k, void *base, int64_t v);

#endif
