/* teardown: unit tests for the async-signal-safe writers and addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "teardown/addr.h"
#include "teardown/fmt.h"

/* ---- td_buf bounds -------------------------------------------------- */

Test(fmt, buf_never_writes_past_cap)
{
	char mem[16];
	struct td_buf b;

	memset(mem, '#', sizeof(mem));
	td_buf_init(&b, mem, 8);
	td_buf_puts(&b, "abcdefghij");
	cr_assert(eq(sz, b.len, 7));
	cr_assert(eq(sz, b.lost, 3));
	td_buf_putc(&b, 'x');
	td_buf_u64(&b, 12345);
	cr_assert(eq(sz, b.len, 7));
	cr_assert(eq(sz, b.lost, 9));
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "abcdefg"));
	for (size_t i = 8; i < sizeof(mem); i++)
		cr_assert(eq(chr, mem[i], '#'), "byte %zu written", i);
}

Test(fmt, buf_putn_partial_and_exact)
{
	char mem[6];
	struct td_buf b;

	td_buf_init(&b, mem, sizeof(mem));
	td_buf_putn(&b, "abc", 3);
	td_buf_putn(&b, "defg", 4);
	cr_assert(eq(sz, b.len, 5));
	cr_assert(eq(sz, b.lost, 2));
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "abcde"));

	/* exactly cap - 1 bytes fit with nothing lost */
	td_buf_init(&b, mem, sizeof(mem));
	td_buf_puts(&b, "12345");
	cr_assert(eq(sz, b.lost, 0));
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "12345"));
}

Test(fmt, buf_zero_cap)
{
	char mem[1] = {'#'};
	struct td_buf b;

	td_buf_init(&b, mem, 0);
	td_buf_puts(&b, "ab");
	td_buf_json_str(&b, "x", 8);
	cr_assert(eq(sz, b.len, 0));
	cr_assert(eq(sz, b.lost, 5));
	cr_assert(eq(str, (char *)td_buf_cstr(&b), ""));
	cr_assert(eq(chr, mem[0], '#'));
}

/* ---- numbers --------------------------------------------------------- */

static const char *td_t_u64(char *mem, size_t cap, uint64_t v)
{
	struct td_buf b;

	td_buf_init(&b, mem, cap);
	td_buf_u64(&b, v);
	return td_buf_cstr(&b);
}

static const char *td_t_i64(char *mem, size_t cap, int64_t v)
{
	struct td_buf b;

	td_buf_init(&b, mem, cap);
	td_buf_i64(&b, v);
	return td_buf_cstr(&b);
}

Test(fmt, numbers)
{
	char m[32];
	struct td_buf b;

	cr_assert(eq(str, (char *)td_t_u64(m, sizeof(m), 0), "0"));
	cr_assert(eq(str, (char *)td_t_u64(m, sizeof(m), 1234567890), "1234567890"));
	cr_assert(eq(str, (char *)td_t_u64(m, sizeof(m), UINT64_MAX),
		     "18446744073709551615"));
	cr_assert(eq(str, (char *)td_t_i64(m, sizeof(m), 0), "0"));
	cr_assert(eq(str, (char *)td_t_i64(m, sizeof(m), -1), "-1"));
	cr_assert(eq(str, (char *)td_t_i64(m, sizeof(m), INT64_MAX),
		     "9223372036854775807"));
	cr_assert(eq(str, (char *)td_t_i64(m, sizeof(m), INT64_MIN),
		     "-9223372036854775808"));

	td_buf_init(&b, m, sizeof(m));
	td_buf_u64w(&b, 5, 3);
	td_buf_putc(&b, ' ');
	td_buf_u64w(&b, 1234, 2);
	td_buf_putc(&b, ' ');
	td_buf_u64w(&b, 0, 6);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "005 1234 000000"));
}

Test(fmt, number_cut_counts_lost)
{
	char m[4];

	cr_assert(eq(str, (char *)td_t_i64(m, sizeof(m), -123456), "-12"));
}

/* ---- strings --------------------------------------------------------- */

/*
 * Parameter tables hold arrays, not pointers: Criterion runs each case in
 * a fresh process, where pointers into the parent's data are not valid.
 */
struct td_t_esc {
	char in[16];
	char json[48];
	char text[48];
};

static struct td_t_esc td_t_escapes[] = {
	{"plain", "\"plain\"", "plain"},
	{"", "\"\"", "\"\""},
	{"a\"b", "\"a\\\"b\"", "\"a\\\"b\""},
	{"back\\slash", "\"back\\\\slash\"", "\"back\\\\slash\""},
	{"\n\r\t", "\"\\n\\r\\t\"", "\"\\n\\r\\t\""},
	{"\x01", "\"\\u0001\"", "\"\\x01\""},
	{"\x1f", "\"\\u001f\"", "\"\\x1f\""},
	{"\x7f", "\"\\u007f\"", "\"\\x7f\""},
	{"a b", "\"a b\"", "\"a b\""},
	{"k=v", "\"k=v\"", "\"k=v\""},
	{"1,0", "\"1,0\"", "1,0"},
	{"/usr/bin/nginx", "\"/usr/bin/nginx\"", "/usr/bin/nginx"},
	{"\xc3\xa9", "\"\xc3\xa9\"", "\"\\xc3\\xa9\""},		   /* é */
	{"\xe6\x97\xa5\xe6\x9c\xac", "\"\xe6\x97\xa5\xe6\x9c\xac\"", /* 日本 */
	 "\"\\xe6\\x97\\xa5\\xe6\\x9c\\xac\""},
	{"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"", "\"\\xf0\\x9f\\x98\\x80\""},
	{"\xff", "\"\\u00ff\"", "\"\\xff\""},
	{"\xc0\x80", "\"\\u00c0\\u0080\"", "\"\\xc0\\x80\""}, /* overlong NUL */
	{"\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"", "\"\\xe0\\x80\\xaf\""},
	{"\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"", "\"\\xed\\xa0\\x80\""},
	{"\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"",
	 "\"\\xf4\\x90\\x80\\x80\""}, /* past U+10FFFF */
	{"x\xc3", "\"x\\u00c3\"", "\"x\\xc3\""}, /* cut sequence at the end */
	{"\xa9z", "\"\\u00a9z\"", "\"\\xa9z\""}, /* stray continuation */
};

ParameterizedTestParameters(fmt, escaping)
{
	return cr_make_param_array(struct td_t_esc, td_t_escapes,
				   sizeof(td_t_escapes) / sizeof(td_t_escapes[0]));
}

ParameterizedTest(struct td_t_esc *p, fmt, escaping)
{
	char m[128];
	struct td_buf b;

	td_buf_init(&b, m, sizeof(m));
	td_buf_json_str(&b, p->in, 64);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), p->json));
	td_buf_init(&b, m, sizeof(m));
	td_buf_text_str(&b, p->in, 64);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), p->text));
}

Test(fmt, str_max_cuts_input)
{
	char m[64];
	struct td_buf b;

	td_buf_init(&b, m, sizeof(m));
	td_buf_json_str(&b, "abcdef", 3);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "\"abc\""));
	/* a cut inside a character leaves a visible, escaped byte */
	td_buf_init(&b, m, sizeof(m));
	td_buf_json_str(&b, "\xc3\xa9", 1);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "\"\\u00c3\""));
	td_buf_init(&b, m, sizeof(m));
	td_buf_text_str(&b, "ab cd", 2);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), "ab"));
}

/* ---- time ------------------------------------------------------------ */

struct td_t_time {
	int64_t us;
	char text[32];
};

static struct td_t_time td_t_times[] = {
	{0, "1970-01-01T00:00:00.000000Z"},
	{1, "1970-01-01T00:00:00.000001Z"},
	{951782400000000, "2000-02-29T00:00:00.000000Z"},
	{1795247280123456, "2026-11-21T07:48:00.123456Z"},
	{4107542400000000, "2100-03-01T00:00:00.000000Z"},
	{4107542399999999, "2100-02-28T23:59:59.999999Z"}, /* 2100: no Feb 29 */
	{-1, "1969-12-31T23:59:59.999999Z"},
	{-1000000, "1969-12-31T23:59:59.000000Z"},
	{-14182940000000, "1969-07-20T20:17:40.000000Z"},
};

ParameterizedTestParameters(fmt, time_utc)
{
	return cr_make_param_array(struct td_t_time, td_t_times,
				   sizeof(td_t_times) / sizeof(td_t_times[0]));
}

ParameterizedTest(struct td_t_time *p, fmt, time_utc)
{
	char m[40];
	struct td_buf b;

	td_buf_init(&b, m, sizeof(m));
	td_buf_time_utc(&b, p->us);
	cr_assert(eq(str, (char *)td_buf_cstr(&b), p->text));
}

/*
 * One thread formatting one timestamp after another: the second it last
 * formatted is kept (td_buf_time_utc()), so the same second again, the
 * next one, an earlier one, another day and a year past 9999 must each
 * still come out whole.  Parameterized tests run one case a process; this
 * runs them all in one, forwards, backwards and each twice.
 */
Test(fmt, time_utc_in_sequence)
{
	static const struct td_t_time more[] = {
		{1795247280999999, "2026-11-21T07:48:00.999999Z"},
		{1795247281000000, "2026-11-21T07:48:01.000000Z"},
		{1795247280000000, "2026-11-21T07:48:00.000000Z"},
		{1795333680123456, "2026-11-22T07:48:00.123456Z"},
		{253402300800000005, "10000-01-01T00:00:00.000005Z"},
	};
	size_t n = sizeof(td_t_times) / sizeof(td_t_times[0]), k = sizeof(more) / sizeof(more[0]);
	char m[40];
	struct td_buf b;

	for (int pass = 0; pass < 4; pass++) {
		for (size_t j = 0; j < n + k; j++) {
			size_t i = pass & 1 ? n + k - 1 - j : j;
			const struct td_t_time *t = i < n ? &td_t_times[i] : &more[i - n];

			for (int twice = 0; twice < 2; twice++) {
				td_buf_init(&b, m, sizeof(m));
				td_buf_time_utc(&b, t->us);
				cr_assert(eq(str, (char *)td_buf_cstr(&b), (char *)t->text),
					  "us %lld", (long long)t->us);
			}
		}
	}
	/* the extremes do not crash and say something */
	td_buf_init(&b, m, sizeof(m));
	td_buf_time_utc(&b, INT64_MIN);
	cr_assert(b.len > 0);
	td_buf_init(&b, m, sizeof(m));
	td_buf_time_utc(&b, INT64_MAX);
	cr_assert(b.len > 0);
}

/* ---- td_parse_u64 ---------------------------------------------------- */

Test(fmt, parse_u64)
{
	uint64_t v = 7;

	cr_assert(eq(int, td_parse_u64("0", &v), 0));
	cr_assert(eq(u64, v, 0));
	cr_assert(eq(int, td_parse_u64("18446744073709551615", &v), 0));
	cr_assert(eq(u64, v, UINT64_MAX));
	v = 7;
	cr_assert(eq(int, td_parse_u64("18446744073709551616", &v), -ERANGE));
	cr_assert(eq(int, td_parse_u64("99999999999999999999999", &v), -ERANGE));
	cr_assert(eq(int, td_parse_u64("", &v), -EINVAL));
	cr_assert(eq(int, td_parse_u64(NULL, &v), -EINVAL));
	cr_assert(eq(int, td_parse_u64("12a", &v), -EINVAL));
	cr_assert(eq(int, td_parse_u64("-1", &v), -EINVAL));
	cr_assert(eq(int, td_parse_u64(" 1", &v), -EINVAL));
	cr_assert(eq(u64, v, 7), "failed parses leave *out alone");
}

/* ---- addresses ------------------------------------------------------- */

static void td_t_v6(struct td_addr *a, const char *text, uint16_t port)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET6;
	a->port = port;
	cr_assert(eq(int, inet_pton(AF_INET6, text, a->addr), 1));
}

struct td_t_v6case {
	char in[48];  /* any spelling inet_pton accepts */
	char out[48]; /* RFC 5952 */
};

static struct td_t_v6case td_t_v6cases[] = {
	{"::1", "::1"},
	{"::", "::"},
	{"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
	{"1:0:0:1:0:0:0:1", "1:0:0:1::1"},
	{"1:0:0:1:0:0:1:1", "1::1:0:0:1:1"},	 /* first of equal runs */
	{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"}, /* one 0: no "::" */
	{"1:0:0:0:0:0:0:0", "1::"},
	{"fe80::abcd:ef01:2345:6789", "fe80::abcd:ef01:2345:6789"},
	{"ABCD:EF01:2345:6789:ABCD:EF01:2345:6789",
	 "abcd:ef01:2345:6789:abcd:ef01:2345:6789"},
	{"0:0:1:0:0:0:1:0", "0:0:1::1:0"},
};

ParameterizedTestParameters(fmt, addr_v6)
{
	return cr_make_param_array(struct td_t_v6case, td_t_v6cases,
				   sizeof(td_t_v6cases) / sizeof(td_t_v6cases[0]));
}

ParameterizedTest(struct td_t_v6case *p, fmt, addr_v6)
{
	struct td_addr a;
	char s[TD_ADDR_STRLEN], want[TD_ADDR_STRLEN + 8];
	size_t n;

	td_t_v6(&a, p->in, 443);
	n = td_addr_format(s, sizeof(s), &a, 0);
	cr_assert(eq(str, s, p->out));
	cr_assert(eq(sz, n, strlen(p->out)));
	td_addr_format(s, sizeof(s), &a, 1);
	strcpy(want, "[");
	strcat(want, p->out);
	strcat(want, "]:443");
	cr_assert(eq(str, s, want));
}

Test(fmt, addr_v4)
{
	struct td_addr a = {.family = AF_INET, .port = 8080, .addr = {127, 0, 0, 1}};
	char s[TD_ADDR_STRLEN];

	cr_assert(eq(sz, td_addr_format(s, sizeof(s), &a, 1), 14));
	cr_assert(eq(str, s, "127.0.0.1:8080"));
	td_addr_format(s, sizeof(s), &a, 0);
	cr_assert(eq(str, s, "127.0.0.1"));
	a = (struct td_addr){.family = AF_INET, .port = 65535,
			     .addr = {255, 255, 255, 255}};
	td_addr_format(s, sizeof(s), &a, 1);
	cr_assert(eq(str, s, "255.255.255.255:65535"));
	a = (struct td_addr){.family = AF_INET};
	td_addr_format(s, sizeof(s), &a, 1);
	cr_assert(eq(str, s, "0.0.0.0:0"));
}

/* The IPv4 fast path writes its own digits: every port and octet value
 * against snprintf's. */
Test(fmt, addr_v4_every_port_and_octet)
{
	struct td_addr a = {.family = AF_INET};
	char s[TD_ADDR_STRLEN], want[TD_ADDR_STRLEN];

	for (unsigned v = 0; v < 65536; v++) {
		a.port = (uint16_t)v;
		a.addr[0] = a.addr[3] = (uint8_t)(v & 255);
		a.addr[1] = a.addr[2] = (uint8_t)(v >> 8);
		snprintf(want, sizeof(want), "%u.%u.%u.%u:%u", v & 255, v >> 8, v >> 8,
			 v & 255, v);
		td_addr_format(s, sizeof(s), &a, 1);
		cr_assert(eq(str, s, want));
	}
}

Test(fmt, addr_unknown_and_small_buffer)
{
	struct td_addr a = {0};
	struct td_addr v6;
	char s[TD_ADDR_STRLEN];
	char small[8];

	memset(s, '#', sizeof(s));
	cr_assert(eq(sz, td_addr_format(s, sizeof(s), &a, 1), 0));
	cr_assert(eq(str, s, ""));
	/* the longest address fits TD_ADDR_STRLEN with room to spare */
	td_t_v6(&v6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	td_addr_format(s, sizeof(s), &v6, 1);
	cr_assert(eq(str, s, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
	/* a short buffer is cut and terminated, never overrun */
	memset(small, '#', sizeof(small));
	td_addr_format(small, 5, &v6, 1);
	cr_assert(eq(str, small, "[fff"));
	cr_assert(eq(chr, small[5], '#'));
}

Test(fmt, addr_from_sockaddr)
{
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(80)};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
				   .sin6_port = htons(443)};
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct td_addr a;
	char s[TD_ADDR_STRLEN];

	inet_pton(AF_INET, "10.1.2.3", &in.sin_addr);
	cr_assert(eq(int, td_addr_from_sockaddr(&a, (struct sockaddr *)&in,
						sizeof(in)), 0));
	cr_assert(eq(int, a.family, AF_INET));
	cr_assert(eq(int, a.port, 80));
	td_addr_format(s, sizeof(s), &a, 1);
	cr_assert(eq(str, s, "10.1.2.3:80"));

	/* v4-mapped IPv6 is stored, and printed, as IPv4 */
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &in6.sin6_addr);
	cr_assert(eq(int, td_addr_from_sockaddr(&a, (struct sockaddr *)&in6,
						sizeof(in6)), 0));
	cr_assert(eq(int, a.family, AF_INET));
	td_addr_format(s, sizeof(s), &a, 1);
	cr_assert(eq(str, s, "192.0.2.7:443"));

	inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
	cr_assert(eq(int, td_addr_from_sockaddr(&a, (struct sockaddr *)&in6,
						sizeof(in6)), 0));
	cr_assert(eq(int, a.family, AF_INET6));
	td_addr_format(s, sizeof(s), &a, 1);
	cr_assert(eq(str, s, "[2001:db8::7]:443"));

	cr_assert(eq(int, td_addr_from_sockaddr(&a, (struct sockaddr *)&in, 4),
		     -EINVAL));
	cr_assert(eq(int, td_addr_from_sockaddr(&a, NULL, 0), -EINVAL));
	cr_assert(eq(int, td_addr_from_sockaddr(&a, (struct sockaddr *)&un,
						sizeof(un)), -EAFNOSUPPORT));
	cr_assert(eq(int, a.family, 0), "a failed conversion leaves unknown");
}
