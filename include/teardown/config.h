/*
 * teardown: reading a policy file into a struct td_policy.
 *
 * The same parser serves the preloaded library, the command and the
 * tests.  It reads libconfig syntax with its own reader (cfgread.h), so
 * the library needs only libc and no name the program exports can
 * change what it does.
 */
#ifndef TEARDOWN_CONFIG_H
#define TEARDOWN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "teardown/cfgread.h"
#include "teardown/policy.h"

/* One error: where, and what. file is the policy's source name. */
struct td_cfg_error {
	char file[4096];
	int line; /* 0 when no line applies (I/O errors) */
	char msg[512];
};

/* "file:line: msg" (or "file: msg" without a line) into buf. */
size_t td_cfg_error_format(const struct td_cfg_error *e, char *buf, size_t cap);

/*
 * Parse policy text.  source names it in messages (a path, or
 * "TEARDOWN_POLICY").  Returns 0; -EINVAL with err filled for a bad
 * policy; -ENOMEM.  On -EINVAL, p->on_error holds the policy's on_error if
 * that key could be read, else TD_ONERR_PASS, and p owns nothing.
 * "@include" at the start of a line is refused with its own message: a
 * policy names no other files (libconfig would read them with our
 * privileges, and 1.5 exit()s on some).
 */
int td_policy_parse_text(struct td_policy *p, const char *text, size_t len,
			 const char *source, struct td_cfg_error *err);

/*
 * The same, for `teardown check`: reading goes on after a bad value (with
 * the next key, the next rule) and every error found is stored in errs,
 * in line order, at most cap of them.  Returns how many were found (0:
 * the policy is valid and p holds it, as td_policy_parse_text() would),
 * or -ENOMEM.  Errors that end the reading (the size, the checks on the
 * raw text, a syntax error) are the only one.  Messages are the ones
 * td_policy_parse_text() gives.
 */
int td_policy_parse_all(struct td_policy *p, const char *text, size_t len,
			const char *source, struct td_cfg_error *errs, size_t cap);

/*
 * The checks made on the raw text before it is read: NUL bytes,
 * @include, nesting deeper than 64, integer literals wider than their
 * type.  0 or -EINVAL with err's line and msg set (part of
 * td_policy_parse_text(); public for the reader's tests).
 */
int td_policy_prescan(const char *text, size_t len, struct td_cfg_error *err);

/*
 * Read a policy file without trusting it: O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK
 * (a FIFO never blocks us), fstat() on the descriptor, regular files only,
 * at most TD_POLICY_MAX_BYTES.  When privileged, the file must be owned by
 * root or the effective user and not writable by group or others.  On
 * success *text is a NUL-terminated malloc()ed copy.  Returns 0 or a
 * negative errno with err filled.
 */
int td_policy_read_file(const char *path, bool privileged, char **text,
			size_t *len, struct td_cfg_error *err);

/* td_policy_read_file() then td_policy_parse_text(). */
int td_policy_load_file(struct td_policy *p, const char *path,
			bool privileged, struct td_cfg_error *err);

/*
 * The policy written back in canonical libconfig syntax, every default
 * spelled out: what `teardown check` prints, and what the command passes
 * in TEARDOWN_POLICY.  Parsing the result gives an equal policy.
 * Returns a malloc()ed string or NULL.
 */
char *td_policy_to_text(const struct td_policy *p);

struct td_key;

/*
 * Set key k (of rule r, or of p's log group) from a command-line option's
 * values: one, or several for a repeatable option, and a comma list of
 * ports or addresses.  The value goes through the same reader as the
 * file's, and a message names the option: "--close: bad value ...".
 * 0 or -EINVAL with err filled (-ENOMEM).
 */
int td_policy_set_option(struct td_policy *p, struct td_rule *r, const struct td_key *k,
			 const char *const *vals, size_t nvals, struct td_cfg_error *err);

/*
 * The value of schema key k in p (or rule r) as compact text for one-line
 * summaries ("drain", "5000", "10.0.0.0/8,::1", "80,8000-8099", "yes"):
 * no quotes, lists joined with commas.  false when the key is not set
 * (an absent criterion, an unset timeout, no seed).
 */
bool td_key_value_text(const struct td_key *k, const struct td_policy *p,
		       const struct td_rule *r, char *buf, size_t cap);

#endif
