/*
 * teardown: reading a policy file into a struct td_policy.
 *
 * libconfig is reached only through struct td_cfgapi, so the same parser
 * serves the preloaded library (which dlopen()s libconfig, keeping its only
 * hard dependency libc) and the command and tests (which link it).
 */
#ifndef TEARDOWN_CONFIG_H
#define TEARDOWN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "teardown/policy.h"

/* The libconfig functions the parser calls (macros need no entry). */
struct td_cfgapi {
	void (*init)(config_t *);
	void (*destroy)(config_t *);
	int (*read_string)(config_t *, const char *);
	config_setting_t *(*root)(const config_t *); /* may be NULL: use ->root */
	config_setting_t *(*get_elem)(const config_setting_t *, unsigned int);
	config_setting_t *(*get_member)(const config_setting_t *, const char *);
	int (*length)(const config_setting_t *);
	int (*get_int)(const config_setting_t *);
	long long (*get_int64)(const config_setting_t *);
	double (*get_float)(const config_setting_t *);
	int (*get_bool)(const config_setting_t *);
	const char *(*get_string)(const config_setting_t *);
};

/* The api bound to a linked libconfig (cli and tests; the *_linked.c file). */
const struct td_cfgapi *td_cfgapi_linked(void);

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
 * "@include" anywhere outside a comment is refused: libconfig 1.5 calls
 * exit() on some includes and would read files with our privileges.
 */
int td_policy_parse_text(struct td_policy *p, const char *text, size_t len,
			 const char *source, const struct td_cfgapi *api,
			 struct td_cfg_error *err);

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
			bool privileged, const struct td_cfgapi *api,
			struct td_cfg_error *err);

/*
 * The policy written back in canonical libconfig syntax, every default
 * spelled out: what `teardown check` prints, and what the command passes
 * in TEARDOWN_POLICY.  Parsing the result gives an equal policy.
 * Returns a malloc()ed string or NULL.
 */
char *td_policy_to_text(const struct td_policy *p);

#endif
