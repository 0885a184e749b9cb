/*
 * teardown: the JSON-lines reader behind `teardown report`.
 *
 * It reads log files that may be damaged, truncated by rotation or simply
 * not ours, and it is fuzzed: every step checks the end of the input, the
 * parse is one loop over the line (no recursion), and anything outside
 * the flat subset of JSON the library writes is refused as a whole line.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "logparse.h"
#include "teardown/fmt.h"

struct td__cur {
	char *p, *end;
};

static void td__ws(struct td__cur *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

static int td__hex4(const char *p, const char *end, uint32_t *out)
{
	uint32_t v = 0;

	if (end - p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= (uint32_t)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v |= (uint32_t)(ch - 'a' + 10);
		else if (ch >= 'A' && ch <= 'F')
			v |= (uint32_t)(ch - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static char *td__put_utf8(char *w, uint32_t cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | cp >> 6);
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | cp >> 12);
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | cp >> 18);
		*w++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*w++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

void td_jfield_set_int(struct td_jfield *f, bool neg, uint64_t v)
{
	if (neg) {
		f->type = TD_J_INT;
		f->i = (int64_t)(0 - v);
	} else if (v > (uint64_t)INT64_MAX) {
		f->type = TD_J_UINT;
		f->u = v;
	} else {
		f->type = TD_J_INT;
		f->i = (int64_t)v;
		f->u = v;
	}
}

/*
 * Decode the string starting at the opening quote c->p.  The decoded text
 * is never longer than its escaped form, so it is written over the input
 * from the opening quote on, and its NUL lands at or before the closing
 * quote; nothing after the string is touched.
 */
static int td__string(struct td__cur *c, const char **s, size_t *slen)
{
	char *r = c->p + 1, *w = c->p;
	const char *start = w;

	for (;;) {
		unsigned char ch;

		if (r >= c->end)
			return -EINVAL;
		ch = (unsigned char)*r;
		if (ch == '"') {
			r++;
			break;
		}
		if (ch < 0x20)
			return -EINVAL; /* raw control bytes (NUL too) */
		if (ch < 0x80 && ch != '\\') {
			*w++ = *r++; /* the common case, kept cheap */
			continue;
		}
		if (ch == '\\') {
			uint32_t cp, lo;

			if (r + 1 >= c->end)
				return -EINVAL;
			switch (r[1]) {
			case '"': *w++ = '"'; r += 2; continue;
			case '\\': *w++ = '\\'; r += 2; continue;
			case '/': *w++ = '/'; r += 2; continue;
			case 'b': *w++ = '\b'; r += 2; continue;
			case 'f': *w++ = '\f'; r += 2; continue;
			case 'n': *w++ = '\n'; r += 2; continue;
			case 'r': *w++ = '\r'; r += 2; continue;
			case 't': *w++ = '\t'; r += 2; continue;
			case 'u': break;
			default: return -EINVAL;
			}
			if (td__hex4(r + 2, c->end, &cp) < 0)
				return -EINVAL;
			r += 6;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -EINVAL; /* lone low surrogate */
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (c->end - r < 6 || r[0] != '\\' || r[1] != 'u' ||
				    td__hex4(r + 2, c->end, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return -EINVAL;
				r += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return -EINVAL; /* our log never writes NUL */
			w = td__put_utf8(w, cp);
			continue;
		}
		{
			/* a valid raw UTF-8 character, or 0 */
			size_t k = td_utf8_len((const unsigned char *)r, (size_t)(c->end - r));

			if (k == 0)
				return -EINVAL;
			memmove(w, r, k);
			w += k;
			r += k;
		}
	}
	*w = '\0';
	*s = start;
	*slen = (size_t)(w - start);
	c->p = r;
	return 0;
}

/*
 * An integer in JSON's syntax, without fraction or exponent: int64, or
 * above INT64_MAX up to UINT64_MAX, because seeds are unsigned 64-bit.
 */
static int td__int(struct td__cur *c, struct td_jfield *f)
{
	bool neg = false;
	uint64_t v = 0, lim;
	const char *start;

	if (c->p < c->end && *c->p == '-') {
		neg = true;
		c->p++;
	}
	start = c->p;
	lim = neg ? (uint64_t)INT64_MAX + 1 : UINT64_MAX;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		uint64_t d = (uint64_t)(*c->p - '0');

		if (v > (lim - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
		c->p++;
	}
	if (c->p == start || (*start == '0' && c->p - start > 1))
		return -EINVAL; /* no digits, or a leading zero */
	if (c->p < c->end &&
	    (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
		return -EINVAL;
	td_jfield_set_int(f, neg, v);
	return 0;
}

static int td__word(struct td__cur *c, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
		return -EINVAL;
	c->p += n;
	return 0;
}

static int td__value(struct td__cur *c, struct td_jfield *f)
{
	if (c->p >= c->end)
		return -EINVAL;
	switch (*c->p) {
	case '"':
		f->type = TD_J_STR;
		return td__string(c, &f->s, &f->slen);
	case 't':
		f->type = TD_J_BOOL;
		f->i = 1;
		return td__word(c, "true");
	case 'f':
		f->type = TD_J_BOOL;
		f->i = 0;
		return td__word(c, "false");
	case 'n':
		f->type = TD_J_NULL;
		return td__word(c, "null");
	default:
		return td__int(c, f);
	}
}

int td_jline_parse(struct td_jline *out, char *line, size_t len)
{
	struct td__cur c = {line, line + len};

	out->n = 0;
	td__ws(&c);
	if (c.p >= c.end || *c.p != '{')
		return -EINVAL;
	c.p++;
	td__ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		goto end;
	}
	for (;;) {
		struct td_jfield *f;
		size_t klen;

		if (out->n == TD_JLINE_MAX_FIELDS)
			return -EINVAL;
		f = &out->f[out->n];
		memset(f, 0, sizeof(*f));
		td__ws(&c);
		if (c.p >= c.end || *c.p != '"' ||
		    td__string(&c, &f->key, &klen) < 0)
			return -EINVAL;
		td__ws(&c);
		if (c.p >= c.end || *c.p != ':')
			return -EINVAL;
		c.p++;
		td__ws(&c);
		if (td__value(&c, f) < 0)
			return -EINVAL;
		out->n++;
		td__ws(&c);
		if (c.p < c.end && *c.p == ',') {
			c.p++;
			continue;
		}
		if (c.p < c.end && *c.p == '}') {
			c.p++;
			break;
		}
		return -EINVAL;
	}
end:
	td__ws(&c);
	return c.p == c.end ? 0 : -EINVAL;
}

const struct td_jfield *td_jline_get(const struct td_jline *l,
				     const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->f[i].key, key) == 0)
			return &l->f[i];
	return NULL;
}

const char *td_jline_str(const struct td_jline *l, const char *key)
{
	const struct td_jfield *f = td_jline_get(l, key);

	return f != NULL && f->type == TD_J_STR ? f->s : NULL;
}
