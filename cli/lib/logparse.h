/*
 * teardown: a reader for one line of our own JSON audit log.
 *
 * The log is JSON lines of flat objects: string, integer, true, false and
 * null values only.  This is not a general JSON parser: nested objects,
 * arrays, fractions and exponents are rejected, so a line that parses is
 * one the library could have written.  Strings are decoded in place, in
 * the caller's line buffer, with no allocation and no recursion.
 */
#ifndef TEARDOWN_CLI_LOGPARSE_H
#define TEARDOWN_CLI_LOGPARSE_H

#include <stddef.h>
#include <stdint.h>

/*
 * More keys than this on one line is not our log: a line has at most 27,
 * an entry of `journalctl -o json` (journald's own fields and the
 * library's TEARDOWN_* ones) some 70.
 */
#define TD_JLINE_MAX_FIELDS 128

enum td_jtype {
	TD_J_NULL = 0,
	TD_J_BOOL,
	TD_J_INT,  /* fits int64_t: i */
	TD_J_UINT, /* above INT64_MAX, up to UINT64_MAX (seeds): u */
	TD_J_STR,
};

struct td_jfield {
	const char *key; /* decoded, NUL-terminated, inside the line */
	int type;	 /* enum td_jtype */
	int64_t i;	 /* TD_J_INT value, or 1/0 for TD_J_BOOL */
	uint64_t u;	 /* TD_J_UINT value (and TD_J_INT ones >= 0) */
	const char *s;	 /* TD_J_STR: decoded, NUL-terminated, valid UTF-8 */
	size_t slen;
};

struct td_jline {
	struct td_jfield f[TD_JLINE_MAX_FIELDS];
	size_t n; /* fields, in the order of the line */
};

/*
 * Parse line[0..len) (a trailing "\n" or "\r\n" is allowed) into out.
 * Decodes strings in place, so line is modified and out points into it.
 * Returns 0, or -EINVAL when the line is not one flat JSON object with
 * valid UTF-8, \u0000-free strings and integers in [INT64_MIN,
 * UINT64_MAX] (the log's seeds are 64-bit unsigned).  Keys may repeat;
 * td_jline_get() returns the first.
 */
int td_jline_parse(struct td_jline *out, char *line, size_t len);

/*
 * Make f the integer -v (neg) or v: TD_J_INT when it fits int64_t, else
 * TD_J_UINT.  The caller has checked that -v fits (v <= 2^63).
 */
void td_jfield_set_int(struct td_jfield *f, bool neg, uint64_t v);

/* The first field named key, or NULL. */
const struct td_jfield *td_jline_get(const struct td_jline *l,
				     const char *key);

/* The string value of key, or NULL when absent or not a string. */
const char *td_jline_str(const struct td_jline *l, const char *key);

#endif
