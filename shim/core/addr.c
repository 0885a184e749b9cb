/* teardown: address conversion, printing and CIDR parsing. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "teardown/addr.h"
#include "teardown/fmt.h"
#include "teardown/policy.h"

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

static void td__hex16(struct td_buf *b, unsigned v)
{
	static const char hx[] = "0123456789abcdef";
	char t[4];
	int n = 0;

	do {
		t[n++] = hx[v & 15];
		v >>= 4;
	} while (v != 0);
	while (n > 0)
		td_buf_putc(b, t[--n]);
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
		td__hex16(b, g[i]);
	}
}

size_t td_addr_format(char *buf, size_t cap, const struct td_addr *a,
		      int with_port)
{
	struct td_buf b;

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
