/*
 * teardown: async-signal-safe formatting into a caller's buffer.
 * No malloc, no stdio, no locale: usable inside close() from a signal
 * handler.  A td_buf never overflows: appends past the end are dropped and
 * counted in ->lost.
 */
#ifndef TEARDOWN_FMT_H
#define TEARDOWN_FMT_H

#include <stddef.h>
#include <stdint.h>

struct td_buf {
	char *p;
	size_t cap, len;
	size_t lost;
};

void td_buf_init(struct td_buf *b, char *mem, size_t cap);

/*
 * The byte writers are inline: every event line is built from them, and a
 * call per byte was most of what writing the audit cost.
 */
static inline void td_buf_putc(struct td_buf *b, char c)
{
	/* keep one byte for the NUL td_buf_cstr() adds */
	if (b->len + 1 < b->cap)
		b->p[b->len++] = c;
	else
		b->lost++;
}

void td_buf_putn_slow(struct td_buf *b, const char *s, size_t n);

/*
 * Lines are built from many short pieces; inline, with copies of fixed
 * sizes (8, 4, 2, 1 bytes) that the compiler turns into plain moves, a
 * piece costs a few instructions instead of a call to memcpy.
 */
static inline void td_buf_putn(struct td_buf *b, const char *s, size_t n)
{
	char *d;
	size_t i = 0;

	if (n > 64 || b->len + n + 1 > b->cap) {
		td_buf_putn_slow(b, s, n);
		return;
	}
	d = b->p + b->len;
	for (; i + 8 <= n; i += 8)
		__builtin_memcpy(d + i, s + i, 8);
	if (n & 4) {
		__builtin_memcpy(d + i, s + i, 4);
		i += 4;
	}
	if (n & 2) {
		__builtin_memcpy(d + i, s + i, 2);
		i += 2;
	}
	if (n & 1)
		d[i] = s[i];
	b->len += n;
}

static inline void td_buf_puts(struct td_buf *b, const char *s)
{
	td_buf_putn(b, s, __builtin_strlen(s));
}
/* "00" to "99": the two digits of v at td_fmt_pairs + 2 * v */
extern const char td_fmt_pairs[201];
void td_buf_u64(struct td_buf *b, uint64_t v);
void td_buf_i64(struct td_buf *b, int64_t v);
/* v zero-padded to width digits */
void td_buf_u64w(struct td_buf *b, uint64_t v, int width);
/* s as a JSON string with quotes; control bytes, '"', '\\' and bytes that
 * are not valid UTF-8 are escaped (\u00XX). At most max input bytes. */
void td_buf_json_str(struct td_buf *b, const char *s, size_t max);
/* s for a text log: bare when it is plain printable ASCII without spaces,
 * '=' or quotes, else double-quoted with C escapes (\n, \", \\, \xNN). */
void td_buf_text_str(struct td_buf *b, const char *s, size_t max);
/* v in lower-case hex, at least width digits (zero-padded; 0: no padding). */
void td_buf_hex(struct td_buf *b, uint64_t v, unsigned width);
/* n bytes of s with control bytes as \xNN (a line stays one line and
 * cannot carry terminal escapes); with TD_ESC_QUOTES '"' and '\\' are
 * backslash-escaped too.  Other bytes go as they are. */
enum { TD_ESC_QUOTES = 1u << 0 };
void td_buf_escape(struct td_buf *b, const char *s, size_t n, unsigned flags);
/* Length of the valid UTF-8 character at s (at most n bytes), or 0. */
size_t td_utf8_len(const unsigned char *s, size_t n);
/* UTC "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" from microseconds since the epoch,
 * computed without gmtime (which takes a lock in glibc). */
void td_buf_time_utc(struct td_buf *b, int64_t us);
/* NUL-terminate (truncating if full); returns the string. */
const char *td_buf_cstr(struct td_buf *b);

/* Parse an unsigned decimal; returns 0, or -EINVAL / -ERANGE. */
int td_parse_u64(const char *s, uint64_t *out);

/* FNV-1a over n bytes, 64 bits: hash tables, policy hashes, file names. */
uint64_t td_fnv64(const void *p, size_t n);
/* The same over a C string. */
uint64_t td_fnv64_str(const char *s);

#endif
