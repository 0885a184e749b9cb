/*
 * teardown: a reader for libconfig syntax, written for this project.
 *
 * The policy is libconfig text, but the preloaded library cannot use
 * libconfig itself: a program's exported names (lighttpd's config_init and
 * config_read) capture the calls libconfig makes to its own functions, even
 * in a copy dlopen()ed RTLD_LOCAL.  This reader needs nothing but libc and
 * memory, so nothing in the program can change what it does.
 *
 * It accepts the grammar of libconfig 1.5 (Debian's) and builds the same
 * tree: settings `name = value` or `name : value` with an optional `;` or
 * `,`, groups { }, arrays [ ] of scalars of one type, lists ( ), integers
 * (decimal, 0x hexadecimal, L for 64 bits), floats, booleans, strings with
 * \n \r \t \f \\ \" \xNN escapes, adjacent strings joined, and #, // and
 * C comments.  tests/unit/test_cfgread.c holds it against libconfig.
 */
#ifndef TEARDOWN_CFGREAD_H
#define TEARDOWN_CFGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The same numbering as libconfig's CONFIG_TYPE_*. */
enum td_cfg_type {
	TD_CFG_NONE = 0,
	TD_CFG_GROUP,
	TD_CFG_INT,
	TD_CFG_INT64,
	TD_CFG_FLOAT,
	TD_CFG_STRING,
	TD_CFG_BOOL,
	TD_CFG_ARRAY,
	TD_CFG_LIST,
};

struct td_cfg_node {
	uint8_t type;	  /* enum td_cfg_type */
	bool b;		  /* TD_CFG_BOOL */
	int line;	  /* where the setting (or element) starts */
	const char *name; /* member of a group: its name; else NULL */
	int64_t i;	  /* TD_CFG_INT (32-bit range), TD_CFG_INT64 */
	double f;	  /* TD_CFG_FLOAT */
	const char *s;	  /* TD_CFG_STRING, never NULL */
	struct td_cfg_node **kids; /* group, array, list: n children in order */
	uint32_t n;
};

/* A parsed document: every node and string lives in its arena. */
struct td_cfg_doc {
	struct td_cfg_node *root; /* a group */
	struct td__cfg_chunk *chunks;
};

/*
 * Parse text (len bytes; NUL bytes are the caller's to refuse).  0, or
 * -EINVAL with *line and msg (cap bytes) saying where and what, or
 * -ENOMEM.  On failure the doc owns nothing.
 */
int td_cfg_read(struct td_cfg_doc *doc, const char *text, size_t len,
		int *line, char *msg, size_t cap);

void td_cfg_free(struct td_cfg_doc *doc);

/* The member of group g called name, or NULL. */
const struct td_cfg_node *td_cfg_member(const struct td_cfg_node *g,
					const char *name);

#endif
