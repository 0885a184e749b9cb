/*
 * teardown: async-signal-safe formatting.  Everything here writes into a
 * caller's buffer by hand: snprintf is neither async-signal-safe nor
 * locale-free, and gmtime takes glibc's time-zone lock.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "teardown/fmt.h"
#include "teardown/layout.h"

TD_CHILD_RUNS
void td_buf_init(struct td_buf *b, char *mem, size_t cap)
{
	b->p = mem;
	b->cap = cap;
	b->len = 0;
	b->lost = 0;
	if (cap)
		mem[0] = '\0';
}

/*
 * Lines are built from short pieces (keys, names, numbers): copied byte
 * by byte, a call to memcpy/strlen would cost more than the copy.  The
 * attribute stops the compiler from turning the loops back into them.
 */
void td_buf_putn_slow(struct td_buf *b, const char *s, size_t n)
{
	size_t room = b->cap > b->len + 1 ? b->cap - b->len - 1 : 0;
	size_t k = n < room ? n : room;

	memcpy(b->p + b->len, s, k);
	b->len += k;
	b->lost += n - k;
}

const char td_fmt_pairs[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/*
 * Digits two at a time from a table: one multiply per pair instead of a
 * division per digit.  Numbers fill every event line (a close has a
 * dozen), so this is most of what formatting costs.
 */
TD_CHILD_RUNS
void td_buf_u64w(struct td_buf *b, uint64_t v, int width)
{
	char t[24];
	int n = (int)sizeof(t), len;

	if (v < 10 && width <= 1) {
		td_buf_putc(b, (char)('0' + v));
		return;
	}
	while (v >= 100) {
		uint64_t q = v / 100;
		unsigned r = (unsigned)(v - q * 100);

		t[--n] = td_fmt_pairs[2 * r + 1];
		t[--n] = td_fmt_pairs[2 * r];
		v = q;
	}
	if (v >= 10) {
		t[--n] = td_fmt_pairs[2 * v + 1];
		t[--n] = td_fmt_pairs[2 * v];
	} else {
		t[--n] = (char)('0' + v);
	}
	while ((int)sizeof(t) - n < width && n > 0)
		t[--n] = '0';
	len = (int)sizeof(t) - n;
	td_buf_putn(b, t + n, (size_t)len);
}

TD_CHILD_RUNS
void td_buf_u64(struct td_buf *b, uint64_t v)
{
	td_buf_u64w(b, v, 1);
}

TD_CHILD_RUNS
void td_buf_i64(struct td_buf *b, int64_t v)
{
	if (v < 0) {
		td_buf_putc(b, '-');
		td_buf_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		td_buf_u64(b, (uint64_t)v);
	}
}

size_t td_utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* reject overlong forms, surrogates and values past U+10FFFF */
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return need;
}

void td_buf_hex(struct td_buf *b, uint64_t v, unsigned width)
{
	static const char hx[] = "0123456789abcdef";
	char t[16];
	unsigned n = 0;

	do {
		t[n++] = hx[v & 15];
		v >>= 4;
	} while (v != 0 && n < 16);
	while (n < width && n < 16)
		t[n++] = '0';
	while (n > 0)
		td_buf_putc(b, t[--n]);
}

static void td__hexbyte(struct td_buf *b, const char *prefix, unsigned char c)
{
	td_buf_puts(b, prefix);
	td_buf_hex(b, c, 2);
}

void td_buf_escape(struct td_buf *b, const char *s, size_t n, unsigned flags)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			td__hexbyte(b, "\\x", c);
		} else if ((flags & TD_ESC_QUOTES) && (c == '"' || c == '\\')) {
			td_buf_putc(b, '\\');
			td_buf_putc(b, (char)c);
		} else {
			td_buf_putc(b, (char)c);
		}
	}
}

void td_buf_json_str(struct td_buf *b, const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strnlen(s, max);

	td_buf_putc(b, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		size_t k;

		/* a run of plain printable ASCII goes in one copy */
		for (k = i; k < n && u[k] >= 0x20 && u[k] < 0x7f && u[k] != '"' &&
			    u[k] != '\\';
		     k++)
			;
		if (k > i) {
			td_buf_putn(b, s + i, k - i);
			i = k;
			continue;
		}
		switch (c) {
		case '"': td_buf_puts(b, "\\\""); i++; continue;
		case '\\': td_buf_puts(b, "\\\\"); i++; continue;
		case '\n': td_buf_puts(b, "\\n"); i++; continue;
		case '\r': td_buf_puts(b, "\\r"); i++; continue;
		case '\t': td_buf_puts(b, "\\t"); i++; continue;
		default: break;
		}
		if (c < 0x20 || c == 0x7f) {
			td__hexbyte(b, "\\u00", c);
			i++;
			continue;
		}
		k = td_utf8_len(u + i, n - i);
		if (k == 0) {
			/* not UTF-8: keep the byte's value visible */
			td__hexbyte(b, "\\u00", c);
			i++;
			continue;
		}
		td_buf_putn(b, s + i, k);
		i += k;
	}
	td_buf_putc(b, '"');
}

void td_buf_text_str(struct td_buf *b, const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strnlen(s, max);
	int bare = n > 0;

	for (size_t i = 0; i < n && bare; i++)
		if (u[i] <= ' ' || u[i] >= 0x7f || u[i] == '"' || u[i] == '=' ||
		    u[i] == '\\')
			bare = 0;
	if (bare) {
		td_buf_putn(b, s, n);
		return;
	}
	td_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];

		if (c == '"')
			td_buf_puts(b, "\\\"");
		else if (c == '\\')
			td_buf_puts(b, "\\\\");
		else if (c == '\n')
			td_buf_puts(b, "\\n");
		else if (c == '\r')
			td_buf_puts(b, "\\r");
		else if (c == '\t')
			td_buf_puts(b, "\\t");
		else if (c < 0x20 || c >= 0x7f)
			td__hexbyte(b, "\\x", c);
		else
			td_buf_putc(b, (char)c);
	}
	td_buf_putc(b, '"');
}

/*
 * Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm),
 * valid for the whole proleptic Gregorian calendar.
 */
static void td__civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yy;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

/* Two digits of v (0..99) at t. */
static inline void td__pair(char *t, unsigned v)
{
	t[0] = td_fmt_pairs[2 * v];
	t[1] = td_fmt_pairs[2 * v + 1];
}

/*
 * The last second this thread formatted: its "YYYY-MM-DDTHH:MM:SS." (a
 * line's timestamp changes its first 20 bytes once a second).  gen is odd
 * while the pair is being written.  A signal handler may format a line in
 * the middle of this thread's own use of the cache, so a reader copies
 * the text out and keeps it only if gen did not move meanwhile, and a
 * writer that finds gen odd (it interrupted another write) leaves the
 * cache alone.  Thread-local: no thread waits for another.
 */
#define TD__HEAD 20
static __thread unsigned td__head_gen __attribute__((tls_model("initial-exec")));
static __thread int64_t td__head_secs __attribute__((tls_model("initial-exec"))) = INT64_MIN;
static __thread char td__head_text[TD__HEAD] __attribute__((tls_model("initial-exec")));

/* secs since the epoch as a civil date and the second of its day */
static void td__when(int64_t secs, int64_t *y, unsigned *m, unsigned *d, unsigned *sod)
{
	int64_t days = secs / 86400, s = secs % 86400;

	/* before 1970 the remainder is negative: floor it */
	if (s < 0) {
		s += 86400;
		days--;
	}
	*sod = (unsigned)s;
	td__civil(days, y, m, d);
}

/* "YYYY-MM-DDTHH:MM:SS." into t, for a four-digit year. */
static void td__head_make(char t[TD__HEAD], int64_t y, unsigned m, unsigned d, unsigned sod)
{
	td__pair(t, (unsigned)(y / 100));
	td__pair(t + 2, (unsigned)(y % 100));
	t[4] = '-';
	td__pair(t + 5, m);
	t[7] = '-';
	td__pair(t + 8, d);
	t[10] = 'T';
	td__pair(t + 11, sod / 3600);
	t[13] = ':';
	td__pair(t + 14, sod / 60 % 60);
	t[16] = ':';
	td__pair(t + 17, sod % 60);
	t[19] = '.';
}

/* Outside the four-digit years: the general (slow) way, uncached. */
__attribute__((noinline, cold)) static void td__time_wide(struct td_buf *b, int64_t y, unsigned m,
							 unsigned d, unsigned sod, unsigned frac)
{
	td_buf_u64w(b, (uint64_t)(y < 0 ? 0 : y), 4);
	td_buf_putc(b, '-');
	td_buf_u64w(b, m, 2);
	td_buf_putc(b, '-');
	td_buf_u64w(b, d, 2);
	td_buf_putc(b, 'T');
	td_buf_u64w(b, sod / 3600, 2);
	td_buf_putc(b, ':');
	td_buf_u64w(b, sod / 60 % 60, 2);
	td_buf_putc(b, ':');
	td_buf_u64w(b, sod % 60, 2);
	td_buf_putc(b, '.');
	td_buf_u64w(b, frac, 6);
	td_buf_putc(b, 'Z');
}

TD_CHILD_RUNS
void td_buf_time_utc(struct td_buf *b, int64_t us)
{
	/* floor division by hand: negating us would overflow at INT64_MIN */
	int64_t secs = us / 1000000, frac = us % 1000000;
	char head[TD__HEAD], tail[7];
	unsigned f, g;
	bool have = false;

	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	f = (unsigned)frac;
	g = td__head_gen;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (!(g & 1) && secs == td__head_secs && secs != INT64_MIN) {
		__builtin_memcpy(head, td__head_text, TD__HEAD);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		have = td__head_gen == g;
	}
	if (!have) {
		int64_t y;
		unsigned m, d, sod;

		td__when(secs, &y, &m, &d, &sod);
		if (y < 0 || y > 9999) {
			td__time_wide(b, y, m, d, sod, f);
			return;
		}
		td__head_make(head, y, m, d, sod);
		g = td__head_gen;
		if (!(g & 1)) {
			td__head_gen = g + 1;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			td__head_secs = secs;
			__builtin_memcpy(td__head_text, head, TD__HEAD);
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			td__head_gen = g + 2;
		}
	}
	td_buf_putn(b, head, TD__HEAD);
	td__pair(tail, f / 10000);
	td__pair(tail + 2, f / 100 % 100);
	td__pair(tail + 4, f % 100);
	tail[6] = 'Z';
	td_buf_putn(b, tail, sizeof(tail));
}

TD_CHILD_RUNS
const char *td_buf_cstr(struct td_buf *b)
{
	if (b->cap == 0)
		return "";
	b->p[b->len < b->cap ? b->len : b->cap - 1] = '\0';
	return b->p;
}

int td_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

uint64_t td_fnv64(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}

uint64_t td_fnv64_str(const char *s)
{
	return td_fnv64(s, strlen(s));
}
