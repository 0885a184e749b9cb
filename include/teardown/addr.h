/* teardown: addresses as the library stores, matches and prints them. */
#ifndef TEARDOWN_ADDR_H
#define TEARDOWN_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * A socket address reduced to what rules and logs need.  family is 0 when
 * unknown, else AF_INET or AF_INET6.  An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is stored as AF_INET so that IPv4 rules match it.
 * IPv4 addresses use the first 4 bytes of addr, in network order.
 */
struct td_addr {
	uint8_t family;
	uint16_t port; /* host order */
	uint8_t addr[16];
};

/* Longest text td_addr_format() writes: "[v6addr%scope]:65535" plus NUL. */
#define TD_ADDR_STRLEN 64

/* Fill out from a sockaddr; returns 0, or -EAFNOSUPPORT / -EINVAL. */
int td_addr_from_sockaddr(struct td_addr *out, const struct sockaddr *sa,
			  socklen_t len);

/*
 * Write "1.2.3.4:80" or "[::1]:80" (or "1.2.3.4" when with_port is 0).
 * Async-signal-safe.  Returns the length written (without the NUL), or 0
 * for an unknown address (buf gets "").
 */
size_t td_addr_format(char *buf, size_t cap, const struct td_addr *a,
		      int with_port);

/* Parse "10.0.0.0/8", "::1", "192.168.1.7"; returns 0 or -EINVAL. */
struct td_cidr;
int td_cidr_parse(struct td_cidr *out, const char *text);

#endif
