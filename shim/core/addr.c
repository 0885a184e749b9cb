/* teardown: address conversion, printing and CIDR parsing. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "teardown/addr.h"
#include "teardown/fmt.h"
#include "teardown/policy.h"
#include "teardown/layout.h"

static const uint8_t td__v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int td_addr_from_sockaddr(struct td_addr *out, const struct sockaddr *sa,
			  socklen_t len)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return -EINVAL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		if (len < (socklen_t)sizeof(*in))
			return -EINVAL;
		out->family = AF_INET;
		out->port = ntohs(in->sin_port);
		memcpy(out->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (len < (socklen_t)sizeof(*in6))
			return -EINVAL;
		out->port = ntohs(in6->sin6_port);
		if (memcmp(in6->sin6_addr.s6_addr, td__v4mapped, 12) == 0) {
			out->family = AF_INET;
			memcpy(out->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->addr, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

/*
 * RFC 5952 text for an IPv6 address: lower-case hex, leading zeros
 * dropped, the longest run (two or more) of zero groups written "::".
 * inet_ntop() would do, but it is not on the async-signal-safe list.
 */
static void td__v6(struct td_buf *b, const uint8_t *a)
{
	unsigned g[8];
	int best = -1, bestlen = 0;

	for (int i = 0; i < 8; i++)
		g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
	for (int i = 0; i < 8;) {
		int j = i;

		while (j < 8 && g[j] == 0)
			j++;
		if (j - i > bestlen && j - i >= 2) {
			best = i;
			bestlen = j - i;
		}
		i = (j == i) ? i + 1 : j;
	}
	for (int i = 0; i < 8; i++) {
		if (i == best) {
			td_buf_puts(b, "::");
			i += bestlen - 1;
			continue;
		}
		if (i > 0 && i != best + bestlen)
			td_buf_putc(b, ':');
		td_buf_hex(b, g[i], 0);
	}
}

/* Every octet's decimal text: an address is four table lookups. */
static const char td__octet[256][4] = {
	"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13",
	"14", "15", "16", "17", "18", "19", "20", "21", "22", "23", "24", "25",
	"26", "27", "28", "29", "30", "31", "32", "33", "34", "35", "36", "37",
	"38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49",
	"50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61",
	"62", "63", "64", "65", "66", "67", "68", "69", "70", "71", "72", "73",
	"74", "75", "76", "77", "78", "79", "80", "81", "82", "83", "84", "85",
	"86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96", "97",
	"98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108",
	"109", "110", "111", "112", "113", "114", "115", "116", "117", "118", "119",
	"120", "121", "122", "123", "124", "125", "126", "127", "128", "129", "130",
	"131", "132", "133", "134", "135", "136", "137", "138", "139", "140", "141",
	"142", "143", "144", "145", "146", "147", "148", "149", "150", "151", "152",
	"153", "154", "155", "156", "157", "158", "159", "160", "161", "162", "163",
	"164", "165", "166", "167", "168", "169", "170", "171", "172", "173", "174",
	"175", "176", "177", "178", "179", "180", "181", "182", "183", "184", "185",
	"186", "187", "188", "189", "190", "191", "192", "193", "194", "195", "196",
	"197", "198", "199", "200", "201", "202", "203", "204", "205", "206", "207",
	"208", "209", "210", "211", "212", "213", "214", "215", "216", "217", "218",
	"219", "220", "221", "222", "223", "224", "225", "226", "227", "228", "229",
	"230", "231", "232", "233", "234", "235", "236", "237", "238", "239", "240",
	"241", "242", "243", "244", "245", "246", "247", "248", "249", "250", "251",
	"252", "253", "254", "255",
};

/*
 * An octet at p; returns the end.  The table's 4 bytes go in one store
 * (the caller leaves room for them) and p moves by the digits' count.
 */
static inline char *td__oct(char *p, unsigned v)
{
	__builtin_memcpy(p, td__octet[v], 4);
	return p + 1 + (v >= 10) + (v >= 100);
}

/* A port (0..65535) at p, two digits at a time from the right; returns
 * the end. */
static inline char *td__port(char *p, unsigned v)
{
	int n = 1 + (v >= 10) + (v >= 100) + (v >= 1000) + (v >= 10000);
	char *e = p + n;

	while (v >= 100) {
		unsigned r = v % 100;

		v /= 100;
		e -= 2;
		__builtin_memcpy(e, td_fmt_pairs + 2 * r, 2);
	}
	if (v >= 10)
		__builtin_memcpy(e - 2, td_fmt_pairs + 2 * v, 2);
	else
		e[-1] = (char)('0' + v);
	return p + n;
}

TD_CHILD_RUNS
size_t td_addr_format(char *buf, size_t cap, const struct td_addr *a,
		      int with_port)
{
	struct td_buf b;

	/* "255.255.255.255:65535" is 21 bytes: the usual case, written
	 * straight into buf every event that names a peer */
	if (a->family == AF_INET && cap >= 22) {
		char *p = buf;

		/* each octet's store is 4 bytes: at most "255.255.255." (12)
		 * before the last, whose store ends at 16 */
		p = td__oct(p, a->addr[0]);
		*p++ = '.';
		p = td__oct(p, a->addr[1]);
		*p++ = '.';
		p = td__oct(p, a->addr[2]);
		*p++ = '.';
		p = td__oct(p, a->addr[3]);
		if (with_port) {
			*p++ = ':';
			p = td__port(p, a->port);
		}
		*p = '\0';
		return (size_t)(p - buf);
	}
	td_buf_init(&b, buf, cap);
	if (a->family == AF_INET) {
		for (int i = 0; i < 4; i++) {
			if (i)
				td_buf_putc(&b, '.');
			td_buf_u64(&b, a->addr[i]);
		}
	} else if (a->family == AF_INET6) {
		if (with_port)
			td_buf_putc(&b, '[');
		td__v6(&b, a->addr);
		if (with_port)
			td_buf_putc(&b, ']');
	} else {
		td_buf_cstr(&b);
		return 0;
	}
	if (with_port) {
		td_buf_putc(&b, ':');
		td_buf_u64(&b, a->port);
	}
	td_buf_cstr(&b);
	return b.len;
}

int td_cidr_parse(struct td_cidr *out, const char *text)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : strlen(text);
	long prefix = -1;

	memset(out, 0, sizeof(*out));
	if (n == 0 || n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, text, n);
	tmp[n] = '\0';
	if (slash) {
		char *end;

		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0')
			return -EINVAL;
	}
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		if (prefix > 32)
			return -EINVAL;
		out->prefix = prefix < 0 ? 32 : (uint8_t)prefix;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		if (prefix > 128)
			return -EINVAL;
		out->family = AF_INET6;
		out->prefix = prefix < 0 ? 128 : (uint8_t)prefix;
		/* ::ffff:a.b.c.d/96+n is the IPv4 block a.b.c.d/n */
		if (memcmp(out->addr, td__v4mapped, 12) == 0 && out->prefix >= 96) {
			memmove(out->addr, out->addr + 12, 4);
			memset(out->addr + 4, 0, 12);
			out->family = AF_INET;
			out->prefix -= 96;
		}
	} else {
		return -EINVAL;
	}
	/* Canonical form: host bits cleared, so matching is a plain compare. */
	for (int bit = out->prefix; bit < 128; bit++)
		out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return 0;
}
