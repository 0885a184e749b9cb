/*
 * teardown: what a close puts on the wire, decided from the facts the
 * kernel reports just before it.  This mirrors Linux's tcp_close():
 * listener -> its queued connections are reset; unread input -> RST
 * (RFC 2525 2.17, "unread-data"); SO_LINGER {1,0} -> RST unless both FINs
 * are already out; else a FIN when one is still owed.  Who closed first
 * follows the state, whatever is sent: an RST sent in CLOSE_WAIT or
 * LAST_ACK answers the peer's FIN (passive), FINs that crossed (CLOSING)
 * are a simultaneous close, and both sides then hold TIME_WAIT.  Pure, so
 * the decision matrix is unit tested; the end-to-end tests hold it against
 * tcpdump, ss and the kernel's tcp:tcp_send_reset tracepoint, and
 * shim/rt/closing.c reads the outcome back where the kernel can still
 * change its mind after the facts were read.
 */
#ifndef TEARDOWN_PREDICT_H
#define TEARDOWN_PREDICT_H

#include <stdbool.h>
#include <stdint.h>

/* Linux TCP states (include/net/tcp_states.h) */
enum td_tcp_state {
	TD_TCP_ESTABLISHED = 1,
	TD_TCP_SYN_SENT,
	TD_TCP_SYN_RECV,
	TD_TCP_FIN_WAIT1,
	TD_TCP_FIN_WAIT2,
	TD_TCP_TIME_WAIT,
	TD_TCP_CLOSE,
	TD_TCP_CLOSE_WAIT,
	TD_TCP_LAST_ACK,
	TD_TCP_LISTEN,
	TD_TCP_CLOSING,
};

/* Who set the zero linger that makes a close an RST. */
enum td_rst_cause {
	TD_RST_BY_APP = 0, /* the program's own SO_LINGER {1,0} */
	TD_RST_BY_POLICY,  /* close = "abort" */
	TD_RST_BY_FAULT,   /* fault.rst */
};

struct td_close_facts {
	int state;	    /* kernel state just before the close */
	int64_t unread;	    /* queued input left when the close happens */
	int64_t unsent;	    /* SIOCOUTQ: written, not yet acknowledged */
	int64_t notsent;    /* not yet transmitted at all */
	int backlog;	    /* listener: connections waiting in accept queue */
	bool linger_on;
	int linger_secs;
	bool last;	    /* this close drops the last reference */
	bool connected;	    /* the socket had a connection at some point */
	bool passive_first; /* the peer's FIN came before ours */
	bool our_fin_sent;  /* our shutdown(SHUT_WR) already sent our FIN */
	bool timed_out;	    /* it ended by a timeout (ETIMEDOUT), not a reset */
	/* CLOSE, our side never shut: the peer's FIN had come in before the
	 * reset or timeout that ended it (the byte count holds it) */
	bool fin_before_end;
	int rst_cause;	    /* enum td_rst_cause, for a zero linger */
	bool policy_changed; /* the rule changed the outcome (graceful, drain) */
	/* the library already reset the connection (a fault): what that
	 * reset threw away, never sent and sent but unacknowledged */
	bool reset_sent;
	int64_t reset_lost, reset_in_flight;
	/* byte counts: tcpi_bytes_received (the peer's FIN counts as one) and
	 * payload sent; and what was kept from before a library reset, which
	 * zeroes the kernel's counters */
	int64_t bytes_received, bytes_out;
	int64_t reset_bytes_in, reset_bytes_out;

	/* Learned later, where the kernel could still change its mind: */
	int first_fin;	 /* enum td_closer: who was first, read right after our
			    own FIN went out (TD_CLOSER_NONE: not checked) */
	int after_state; /* the 4-tuple's state after the close: -1 not asked,
			    0 gone, else enum td_tcp_state */
	bool abort_quiet; /* the zero linger's abort, made as the last thing
			     before the close (closing.c, td__abort_told()),
			     sent no RST: the peer's FIN had come (CLOSING) */
	bool eof_seen;	 /* a drain read the peer's FIN */
	bool drain_cut;	 /* a drain ended with input still arriving: the
			    close after it resets */
};

struct td_close_outcome {
	int wire;      /* enum td_wire */
	int why;       /* enum td_why */
	int closer;    /* enum td_closer */
	int time_wait; /* 1, 0, -1 unknown */
	/* what an RST throws away: bytes never sent (certainly lost), and
	 * bytes sent but not acknowledged (they may have arrived) */
	int64_t lost, lost_in_flight;
	/* payload bytes each way */
	int64_t bytes_in, bytes_out;
};

struct td_event;

/* Who sent the first FIN (enum td_closer), from the 4-tuple's state read
 * after our FIN went out (0: the connection is gone; NONE: cannot tell). */
int td_predict_closer_of(int state);

/*
 * The answer to an event's question (ev->ask), given the 4-tuple's state
 * as a lookup read it (0 gone, -1 not known) age_us after the line was
 * made.  TD_ASK_FIRST_FIN: a close predicted active with a FIN, and who
 * was first is what the close's thread would have asked at once, asked
 * by whoever writes the line instead (shim/rt/spool.c: the flusher asks
 * a batch's lookups in two system calls, within TEARDOWN_SPOOL_FLUSH_MS,
 * 50 ms, of the close, off the program's thread).  What a later lookup
 * finds is still the answer: our FIN first leaves FIN_WAIT1 or FIN_WAIT2,
 * then TIME_WAIT for 60 s; the peer's leaves LAST_ACK, then nothing.  (A
 * crossing's CLOSING turns into TIME_WAIT within a round trip, which an
 * immediate lookup on loopback misses the same way.)  Only "gone" needs
 * to be early: FIN_WAIT2 ends after a second at the least (a fin_timeout
 * rule), and a TIME_WAIT entry may be taken over by a new connection
 * after a second (Linux's tcp_tw_reuse on loopback).  A later "gone" (a
 * flusher held up, a dead process's spool written out by the next one)
 * proves nothing, and the line keeps what the facts before the close
 * said.  The question is gone from ev either way.
 */
#define TD_SETTLE_GONE_US 500000
void td_predict_settle(struct td_event *ev, int state, int64_t age_us);

/*
 * A close predicted active with a FIN (closer, time_wait), once the
 * kernel said who sent the first FIN (enum td_closer; NONE: not known,
 * the prediction stays): the peer (passive, no TIME_WAIT here) or both
 * at once (simultaneous).  td_predict_close() applies it from
 * f->first_fin; an event settled later (TD_ASK_FIRST_FIN) the same way.
 */
void td_predict_first_fin(int first_fin, int *closer, int *time_wait);

/* Facts with nothing learned later yet (first_fin none, after_state -1). */
void td_close_facts_init(struct td_close_facts *f);

void td_predict_close(const struct td_close_facts *f,
		      struct td_close_outcome *o);

/*
 * Whether the state proves the peer's FIN came in (CLOSE_WAIT, LAST_ACK,
 * CLOSING, TIME_WAIT); in CLOSE it may have, or the socket was reset.
 */
bool td_state_fin_in(int state);
/*
 * Payload bytes received: tcpi_bytes_received counts the peer's FIN as a
 * byte once it came in, which the states after it prove; in CLOSE only
 * the caller knows (fin_in).
 */
int64_t td_payload_in(int state, int64_t bytes_received, bool fin_in);

#endif
