/*
 * teardown runtime: what the kernel says about a socket now (info.c).
 */
#ifndef TD_RT_INFO_H
#define TD_RT_INFO_H

#include "fdtab.h"

/* Is fd a TCP socket of AF_INET/AF_INET6? (one getsockopt) */
bool td_info_is_tcp(int fd, int *family) TD_HIDDEN;
/*
 * Whether the program has read the socket to the peer's FIN, so the FIN
 * is in and nothing is left unread (none can come after it): its read
 * returned 0 (TD_SF_EOF_READ, td_fdtab_mark_eof()) and nothing else can
 * have made it (flags, dup share and fork epoch of its entry; see info.c).
 */
bool td_info_read_to_end(uint32_t flags, uint32_t share, uint32_t epoch) TD_HIDDEN;
/* The same for a copy of an entry (td_fdtab_read(), td_fdtab_claim()). */
static inline bool td_info_sock_read_to_end(const struct td_sock *s)
{
	return td_info_read_to_end(atomic_load(&s->flags), atomic_load(&s->share), s->d.epoch);
}
/* Close-time facts read from the kernel (info.c). */
struct td_facts {
	int state;		/* kernel TCP state, -1 unknown */
	int64_t unread, unsent, notsent;
	int64_t bytes_received;	/* tcpi_bytes_received: a FIN in counts one */
	int64_t bytes_out;
	int backlog;		/* listeners: queued connections */
	bool linger_on;
	int linger_secs;
	uint64_t ino;
	/* system calls made after the state was read (SIOCINQ, SIOCOUTQ,
	 * SO_LINGER, fstat): none, the state is as fresh as a read can be */
	int calls_after_state;
	/* CLOCK_REALTIME just before the state was read: a close event's
	 * stamp (closing.c) */
	int64_t look_us;
	/* a CLOSE socket whose peer's FIN had come in before its end (a
	 * reset or a timeout after it): td__fin_before_end() in info.c */
	bool fin_before_end;
};
/* The TCP state alone (the first byte of struct tcp_info: one system
 * call, nothing else copied), or -1 with errno. */
int td_info_state(int fd) TD_HIDDEN;
/* The inode of fd's socket (fstat), 0 when it cannot be read. */
uint64_t td_info_ino(int fd) TD_HIDDEN;
/* 0, or a negative errno (-ENOTSOCK/-EBADF: not our socket any more). */
int td_info_facts(int fd, struct td_facts *f, bool want_ino) TD_HIDDEN;
/* The same, taking SO_LINGER from s when the library saw all of it. */
int td_info_facts_sock(int fd, struct td_facts *f, const struct td_sock *s,
		       const struct td_rule *r, bool want_ino) TD_HIDDEN;
/*
 * The facts at a drain's end, on its private fd: no SO_LINGER (what the
 * close does was settled when the drain began), and with eof (its input
 * read to the peer's EOF) nothing is unread, so no SIOCINQ either.
 */
int td_info_facts_drained(int fd, struct td_facts *f, bool eof) TD_HIDDEN;
/*
 * Throw away queued input without copying it; returns bytes dropped.
 * *eof (unless NULL) says whether the peer's EOF was read too.
 */
int64_t td_info_discard_input(int fd, bool *eof) TD_HIDDEN;

#endif
