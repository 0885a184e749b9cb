/*
 * teardown: libconfig syntax without libconfig; see include/teardown/cfgread.h.
 *
 * A hand-written scanner that follows the token rules of libconfig's flex
 * scanner (longest match, booleans before names), and a recursive-descent
 * parser for its bison grammar.  Nesting depth is bounded by the caller's
 * prescan (config.c refuses more than 64 levels before this runs).
 */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "teardown/mem.h"
#include "teardown/cfgread.h"
#include "teardown/fmt.h"

/* ---- the arena: every node and string of one document ---- */

struct td__cfg_chunk {
	struct td__cfg_chunk *next;
	size_t used, cap;
	_Alignas(16) unsigned char mem[];
};

#define TD__CHUNK 16384

static void *td__alloc(struct td_cfg_doc *d, size_t n)
{
	struct td__cfg_chunk *c = d->chunks;

	n = (n + 15) & ~(size_t)15;
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > TD__CHUNK ? n : TD__CHUNK;

		c = td_mem_malloc(sizeof(*c) + cap);
		if (c == NULL)
			return NULL;
		c->next = d->chunks;
		c->used = 0;
		c->cap = cap;
		d->chunks = c;
	}
	c->used += n;
	return memset(c->mem + c->used - n, 0, n);
}

void td_cfg_free(struct td_cfg_doc *d)
{
	while (d->chunks != NULL) {
		struct td__cfg_chunk *next = d->chunks->next;

		td_mem_free(d->chunks);
		d->chunks = next;
	}
	d->root = NULL;
}

/* ---- the scanner ---- */

enum td__tok {
	T_EOF, T_NAME, T_EQUALS, T_SEMI, T_COMMA, T_LBRACE, T_RBRACE,
	T_LBRACKET, T_RBRACKET, T_LPAREN, T_RPAREN,
	T_BOOL, T_INT, T_INT64, T_FLOAT, T_STRING, T_GARBAGE,
};

struct td__scan {
	const char *t;
	size_t len, pos;
	int line;
	/* the current token */
	int tok, tline;
	size_t start, end; /* its text: [start, end) */
	int64_t i;
	double f;
	bool b;
	/* errors */
	struct td_cfg_doc *doc;
	int err_line;
	char *msg;
	size_t cap;
	int rc;
};

static bool td__digit(char c)
{
	return c >= '0' && c <= '9';
}

static int td__hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool td__name_first(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*';
}

static bool td__name_rest(char c)
{
	return td__name_first(c) || td__digit(c) || c == '-' || c == '_';
}

static char td__at(const struct td__scan *s, size_t i)
{
	return i < s->len ? s->t[i] : '\0';
}

/* Whitespace and comments; an unterminated C comment runs to the end. */
static void td__skip(struct td__scan *s)
{
	while (s->pos < s->len) {
		char c = s->t[s->pos];

		if (c == '\n') {
			s->line++;
			s->pos++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
			s->pos++;
		} else if (c == '#' || (c == '/' && td__at(s, s->pos + 1) == '/')) {
			while (s->pos < s->len && s->t[s->pos] != '\n')
				s->pos++;
		} else if (c == '/' && td__at(s, s->pos + 1) == '*') {
			s->pos += 2;
			while (s->pos < s->len &&
			       !(s->t[s->pos] == '*' && td__at(s, s->pos + 1) == '/')) {
				if (s->t[s->pos] == '\n')
					s->line++;
				s->pos++;
			}
			s->pos = s->pos < s->len ? s->pos + 2 : s->len;
		} else {
			return;
		}
	}
}

/* Length of the digits starting at i. */
static size_t td__digits(const struct td__scan *s, size_t i)
{
	size_t j = i;

	while (j < s->len && td__digit(s->t[j]))
		j++;
	return j - i;
}

/* An exponent [eE][-+]?[0-9]+ at i: its length, or 0. */
static size_t td__exponent(const struct td__scan *s, size_t i)
{
	size_t j = i;

	if (td__at(s, j) != 'e' && td__at(s, j) != 'E')
		return 0;
	j++;
	if (td__at(s, j) == '+' || td__at(s, j) == '-')
		j++;
	return td__digits(s, j) ? j + td__digits(s, j) - i : 0;
}

/* The float value of text[a, b), read in the C locale whatever the
 * program set (a comma decimal point would change "0.25"). */
static double td__float(const char *t, size_t a, size_t b)
{
	char buf[128];
	size_t n = b - a < sizeof(buf) - 1 ? b - a : sizeof(buf) - 1;
	locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	double v;

	memcpy(buf, t + a, n);
	buf[n] = '\0';
	if (c == (locale_t)0)
		return strtod(buf, NULL);
	v = strtod_l(buf, NULL, c);
	freelocale(c);
	return v;
}

/*
 * A number at s->pos: the longest of libconfig's integer, integer64,
 * hex, hex64 and float patterns.  Values wider than the token's type
 * were refused by the caller's prescan; what is left wraps as libconfig's
 * conversions do (a 32-bit hex literal above 0x7fffffff is negative).
 */
static bool td__number(struct td__scan *s)
{
	size_t p = s->pos, q = p, best = 0;
	int kind = T_GARBAGE;
	bool sign = td__at(s, p) == '+' || td__at(s, p) == '-';
	size_t d1, d2, e;

	if (sign)
		q++;
	/* hex: 0[xX][0-9A-Fa-f]+ (L|LL)?, never signed */
	if (!sign && td__at(s, q) == '0' && (td__at(s, q + 1) | 0x20) == 'x' &&
	    td__hexval(td__at(s, q + 2)) >= 0) {
		size_t j = q + 2;
		uint64_t v = 0;

		while (j < s->len && td__hexval(s->t[j]) >= 0)
			v = v << 4 | (uint64_t)td__hexval(s->t[j++]);
		kind = T_INT;
		if (td__at(s, j) == 'L') {
			kind = T_INT64;
			j += td__at(s, j + 1) == 'L' ? 2 : 1;
			s->i = (int64_t)v;
		} else {
			s->i = (int32_t)(uint32_t)v;
		}
		s->start = p;
		s->end = s->pos = j;
		s->tok = kind;
		return true;
	}
	d1 = td__digits(s, q);
	/* float: [0-9]* '.' [0-9]* exp?  |  [0-9]+ ('.' [0-9]*)? exp */
	if (td__at(s, q + d1) == '.') {
		d2 = td__digits(s, q + d1 + 1);
		e = td__exponent(s, q + d1 + 1 + d2);
		best = q + d1 + 1 + d2 + e - p;
		kind = T_FLOAT;
	} else if (d1 && (e = td__exponent(s, q + d1)) != 0) {
		best = q + d1 + e - p;
		kind = T_FLOAT;
	} else if (d1) {
		size_t n = q + d1 - p;
		bool neg = td__at(s, p) == '-';
		uint64_t v = 0;

		for (size_t j = q; j < q + d1; j++)
			v = v * 10 + (uint64_t)(s->t[j] - '0');
		kind = T_INT;
		if (td__at(s, p + n) == 'L') {
			kind = T_INT64;
			n += td__at(s, p + n + 1) == 'L' ? 2 : 1;
		}
		s->i = neg ? (int64_t)(0 - v) : (int64_t)v;
		best = n;
	}
	if (kind == T_GARBAGE)
		return false;
	s->start = p;
	s->end = s->pos = p + best;
	s->tok = kind;
	if (kind == T_FLOAT)
		s->f = td__float(s->t, p, p + best);
	return true;
}

/*
 * A string's extent from the opening quote at s->pos: *end is past the
 * closing quote; returns its length once unescaped, or -1 when the text
 * ends first.
 */
static long td__string_extent(struct td__scan *s, size_t *end)
{
	size_t j = s->pos + 1;
	long n = 0;

	while (j < s->len) {
		char c = s->t[j];

		if (c == '"') {
			*end = j + 1;
			return n;
		}
		if (c == '\n')
			s->line++;
		if (c == '\\' && j + 1 < s->len) {
			char e = s->t[j + 1];

			if (e == 'n' || e == 'r' || e == 't' || e == 'f' || e == '\\' || e == '"')
				j += 2;
			else if ((e == 'x' || e == 'X') && td__hexval(td__at(s, j + 2)) >= 0 &&
				 td__hexval(td__at(s, j + 3)) >= 0)
				j += 4;
			else
				j++; /* a lone backslash stands for itself */
		} else {
			j++;
		}
		n++;
	}
	return -1;
}

/* Unescape the string whose opening quote is at a into out; returns the
 * bytes written. */
static size_t td__unescape(const char *t, size_t a, size_t b, char *out)
{
	size_t o = 0;

	for (size_t j = a + 1; j + 1 < b;) {
		char c = t[j];

		if (c == '\\' && j + 2 < b) {
			char e = t[j + 1];

			switch (e) {
			case 'n': out[o++] = '\n'; j += 2; continue;
			case 'r': out[o++] = '\r'; j += 2; continue;
			case 't': out[o++] = '\t'; j += 2; continue;
			case 'f': out[o++] = '\f'; j += 2; continue;
			case '\\': out[o++] = '\\'; j += 2; continue;
			case '"': out[o++] = '"'; j += 2; continue;
			default: break;
			}
			if ((e == 'x' || e == 'X') && j + 3 < b && td__hexval(t[j + 2]) >= 0 &&
			    td__hexval(t[j + 3]) >= 0) {
				out[o++] = (char)(td__hexval(t[j + 2]) << 4 | td__hexval(t[j + 3]));
				j += 4;
				continue;
			}
		}
		out[o++] = c;
		j++;
	}
	return o;
}

static void td__next(struct td__scan *s)
{
	char c;

	td__skip(s);
	s->tline = s->line;
	s->start = s->pos;
	if (s->pos >= s->len) {
		s->tok = T_EOF;
		return;
	}
	c = s->t[s->pos];
	switch (c) {
	case '=': case ':': s->tok = T_EQUALS; break;
	case ';': s->tok = T_SEMI; break;
	case ',': s->tok = T_COMMA; break;
	case '{': s->tok = T_LBRACE; break;
	case '}': s->tok = T_RBRACE; break;
	case '[': s->tok = T_LBRACKET; break;
	case ']': s->tok = T_RBRACKET; break;
	case '(': s->tok = T_LPAREN; break;
	case ')': s->tok = T_RPAREN; break;
	case '"': {
		size_t end;

		if (td__string_extent(s, &end) < 0) {
			/* an unterminated string ends the text */
			s->pos = s->len;
			s->tok = T_EOF;
			s->tline = s->line;
			return;
		}
		s->tok = T_STRING;
		s->end = s->pos = end;
		return;
	}
	default:
		if (td__name_first(c)) {
			size_t j = s->pos + 1;

			while (j < s->len && td__name_rest(s->t[j]))
				j++;
			s->end = s->pos = j;
			s->tok = T_NAME;
			if (j - s->start == 4 && strncasecmp(s->t + s->start, "true", 4) == 0) {
				s->tok = T_BOOL;
				s->b = true;
			} else if (j - s->start == 5 &&
				   strncasecmp(s->t + s->start, "false", 5) == 0) {
				s->tok = T_BOOL;
				s->b = false;
			}
			return;
		}
		if ((td__digit(c) || c == '-' || c == '+' || c == '.') && td__number(s))
			return;
		s->tok = T_GARBAGE;
		break;
	}
	s->pos++;
	s->end = s->pos;
}

/* ---- the parser ---- */

static const char *td__tok_name(int tok)
{
	static const char *const names[] = {
		"the end of the text", "a name", "'='", "';'", "','", "'{'", "'}'",
		"'['", "']'", "'('", "')'", "a boolean", "an integer",
		"a 64-bit integer", "a float", "a string", "a stray character",
	};

	return names[tok];
}

static int td__err(struct td__scan *s, int line, const char *what, const char *detail)
{
	if (s->rc == 0) {
		s->err_line = line;
		if (detail)
			snprintf(s->msg, s->cap, "%s (%s)", what, detail);
		else
			snprintf(s->msg, s->cap, "%s", what);
		s->rc = -EINVAL;
	}
	return s->rc;
}

static int td__syntax(struct td__scan *s, const char *expected)
{
	char detail[160];

	snprintf(detail, sizeof(detail), "%s where %s was expected", td__tok_name(s->tok),
		 expected);
	return td__err(s, s->tline, "syntax error", detail);
}

static int td__nomem(struct td__scan *s)
{
	if (s->rc == 0) {
		snprintf(s->msg, s->cap, "out of memory");
		s->rc = -ENOMEM;
	}
	return s->rc;
}

static struct td_cfg_node *td__node(struct td__scan *s, int type, int line)
{
	struct td_cfg_node *n = td__alloc(s->doc, sizeof(*n));

	if (n == NULL) {
		td__nomem(s);
		return NULL;
	}
	n->type = (uint8_t)type;
	n->line = line;
	return n;
}

/* Children are gathered on a singly linked list, then put in an array. */
struct td__kid {
	struct td_cfg_node *node;
	struct td__kid *next;
};

struct td__kids {
	struct td__kid *head, **tail;
	uint32_t n;
	/* a group's member names, hashed, so duplicates are found in O(1) */
	const char **set;
	uint32_t mask;
};

static int td__kid_add(struct td__scan *s, struct td__kids *k, struct td_cfg_node *n)
{
	struct td__kid *e = td__alloc(s->doc, sizeof(*e));

	if (e == NULL)
		return td__nomem(s);
	e->node = n;
	*k->tail = e;
	k->tail = &e->next;
	k->n++;
	return 0;
}

static int td__kids_done(struct td__scan *s, struct td_cfg_node *parent, struct td__kids *k)
{
	uint32_t i = 0;

	parent->n = k->n;
	if (k->n == 0)
		return 0;
	parent->kids = td__alloc(s->doc, sizeof(*parent->kids) * k->n);
	if (parent->kids == NULL)
		return td__nomem(s);
	for (struct td__kid *e = k->head; e != NULL; e = e->next)
		parent->kids[i++] = e->node;
	return 0;
}

static void td__set_put(struct td__kids *k, const char *name)
{
	uint32_t h = (uint32_t)td_fnv64_str(name) & k->mask;

	while (k->set[h] != NULL)
		h = (h + 1) & k->mask;
	k->set[h] = name;
}

/*
 * Add name to a group's set; false when it is there already.  The table
 * doubles before it is half full (old tables stay in the arena, which is
 * freed whole).
 */
static int td__name_new(struct td__scan *s, struct td__kids *k, const char *name, bool *fresh)
{
	uint32_t h;

	if ((k->n + 1) * 2 > k->mask) {
		uint32_t cap = k->mask ? (k->mask + 1) * 2 : 16;
		const char **old = k->set;
		uint32_t oldcap = k->mask ? k->mask + 1 : 0;

		k->set = td__alloc(s->doc, sizeof(*k->set) * cap);
		if (k->set == NULL)
			return td__nomem(s);
		k->mask = cap - 1;
		for (uint32_t i = 0; i < oldcap; i++)
			if (old[i] != NULL)
				td__set_put(k, old[i]);
	}
	for (h = (uint32_t)td_fnv64_str(name) & k->mask; k->set[h] != NULL; h = (h + 1) & k->mask) {
		if (strcmp(k->set[h], name) == 0) {
			*fresh = false;
			return 0;
		}
	}
	k->set[h] = name;
	*fresh = true;
	return 0;
}

/* A string value: this token and every string token right after it. */
static struct td_cfg_node *td__string(struct td__scan *s)
{
	struct td_cfg_node *n = td__node(s, TD_CFG_STRING, s->tline);
	size_t total = 0, o = 0;
	struct td__scan probe;
	char *out;

	if (n == NULL)
		return NULL;
	/* measure the run of adjacent strings, then copy it out */
	probe = *s;
	while (probe.tok == T_STRING) {
		size_t end;

		probe.pos = probe.start;
		total += (size_t)td__string_extent(&probe, &end);
		probe.pos = end;
		td__next(&probe);
	}
	out = td__alloc(s->doc, total + 1);
	if (out == NULL) {
		td__nomem(s);
		return NULL;
	}
	while (s->tok == T_STRING) {
		o += td__unescape(s->t, s->start, s->end, out + o);
		td__next(s);
	}
	out[o] = '\0';
	n->s = out;
	return n;
}

/* A scalar at the current token, or NULL (not one: no error set). */
static struct td_cfg_node *td__scalar(struct td__scan *s)
{
	struct td_cfg_node *n;

	switch (s->tok) {
	case T_STRING:
		return td__string(s);
	case T_BOOL:
		n = td__node(s, TD_CFG_BOOL, s->tline);
		if (n)
			n->b = s->b;
		break;
	case T_INT:
	case T_INT64:
		n = td__node(s, s->tok == T_INT ? TD_CFG_INT : TD_CFG_INT64, s->tline);
		if (n)
			n->i = s->i;
		break;
	case T_FLOAT:
		n = td__node(s, TD_CFG_FLOAT, s->tline);
		if (n)
			n->f = s->f;
		break;
	default:
		return NULL;
	}
	if (n)
		td__next(s);
	return n;
}

static struct td_cfg_node *td__value(struct td__scan *s);
static int td__settings(struct td__scan *s, struct td_cfg_node *g, int end);

static struct td_cfg_node *td__array(struct td__scan *s)
{
	struct td_cfg_node *a = td__node(s, TD_CFG_ARRAY, s->tline);
	struct td__kids k = {NULL, &k.head, 0, NULL, 0};

	if (a == NULL)
		return NULL;
	td__next(s);
	if (s->tok != T_RBRACKET) {
		for (;;) {
			int line = s->tline;
			struct td_cfg_node *e = td__scalar(s);

			if (e == NULL) {
				if (s->rc == 0)
					td__syntax(s, "a scalar value");
				return NULL;
			}
			if (k.n > 0 && e->type != k.head->node->type) {
				td__err(s, line, "mismatched element type in array", NULL);
				return NULL;
			}
			if (td__kid_add(s, &k, e) != 0)
				return NULL;
			if (s->tok != T_COMMA)
				break;
			td__next(s);
		}
		if (s->tok != T_RBRACKET) {
			td__syntax(s, "',' or ']'");
			return NULL;
		}
	}
	td__next(s);
	return td__kids_done(s, a, &k) == 0 ? a : NULL;
}

static struct td_cfg_node *td__list(struct td__scan *s)
{
	struct td_cfg_node *l = td__node(s, TD_CFG_LIST, s->tline);
	struct td__kids k = {NULL, &k.head, 0, NULL, 0};

	if (l == NULL)
		return NULL;
	td__next(s);
	if (s->tok != T_RPAREN) {
		for (;;) {
			struct td_cfg_node *e = td__value(s);

			if (e == NULL || td__kid_add(s, &k, e) != 0)
				return NULL;
			if (s->tok != T_COMMA)
				break;
			td__next(s);
		}
		if (s->tok != T_RPAREN) {
			td__syntax(s, "',' or ')'");
			return NULL;
		}
	}
	td__next(s);
	return td__kids_done(s, l, &k) == 0 ? l : NULL;
}

static struct td_cfg_node *td__value(struct td__scan *s)
{
	struct td_cfg_node *n;

	switch (s->tok) {
	case T_LBRACE:
		n = td__node(s, TD_CFG_GROUP, s->tline);
		if (n == NULL)
			return NULL;
		td__next(s);
		if (td__settings(s, n, T_RBRACE) != 0)
			return NULL;
		td__next(s);
		return n;
	case T_LBRACKET:
		return td__array(s);
	case T_LPAREN:
		return td__list(s);
	default:
		n = td__scalar(s);
		if (n == NULL && s->rc == 0)
			td__syntax(s, "a value");
		return n;
	}
}

/* name = value [;|,] ... up to the token end (not consumed). */
static int td__settings(struct td__scan *s, struct td_cfg_node *g, int end)
{
	struct td__kids k = {NULL, &k.head, 0, NULL, 0};

	while (s->tok != end) {
		struct td_cfg_node *v;
		char *name;
		int line = s->tline;
		size_t nlen;
		bool fresh;

		if (s->tok != T_NAME)
			return td__syntax(s, end == T_EOF ? "a setting name" : "a setting name or '}'");
		nlen = s->end - s->start;
		name = td__alloc(s->doc, nlen + 1);
		if (name == NULL)
			return td__nomem(s);
		memcpy(name, s->t + s->start, nlen);
		td__next(s);
		if (s->tok != T_EQUALS)
			return td__syntax(s, "'=' or ':'");
		td__next(s);
		if (td__name_new(s, &k, name, &fresh) != 0)
			return s->rc;
		if (!fresh)
			return td__err(s, line, "duplicate setting name", name);
		v = td__value(s);
		if (v == NULL)
			return s->rc;
		v->name = name;
		v->line = line;
		if (td__kid_add(s, &k, v) != 0)
			return s->rc;
		if (s->tok == T_SEMI || s->tok == T_COMMA)
			td__next(s);
	}
	return td__kids_done(s, g, &k);
}

int td_cfg_read(struct td_cfg_doc *doc, const char *text, size_t len,
		int *line, char *msg, size_t cap)
{
	struct td__scan s;

	memset(doc, 0, sizeof(*doc));
	memset(&s, 0, sizeof(s));
	s.t = text;
	s.len = len;
	s.line = 1;
	s.doc = doc;
	s.msg = msg;
	s.cap = cap;
	*line = 0;
	if (cap)
		msg[0] = '\0';
	doc->root = td__node(&s, TD_CFG_GROUP, 1);
	if (doc->root != NULL) {
		td__next(&s);
		(void)td__settings(&s, doc->root, T_EOF);
	}
	if (s.rc != 0) {
		*line = s.err_line;
		td_cfg_free(doc);
	}
	return s.rc;
}

const struct td_cfg_node *td_cfg_member(const struct td_cfg_node *g, const char *name)
{
	if (g == NULL || g->type != TD_CFG_GROUP)
		return NULL;
	for (uint32_t i = 0; i < g->n; i++)
		if (strcmp(g->kids[i]->name, name) == 0)
			return g->kids[i];
	return NULL;
}
