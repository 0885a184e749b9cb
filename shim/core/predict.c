/* teardown: the wire outcome of a close; see include/teardown/predict.h. */
#include <string.h>

#include "teardown/event.h"
#include "teardown/predict.h"
#include "teardown/layout.h"

/* States in which Linux's tcp_disconnect() (zero linger) sends an RST. */
static bool td__zero_linger_resets(const struct td_close_facts *f)
{
	switch (f->state) {
	case TD_TCP_ESTABLISHED:
	case TD_TCP_CLOSE_WAIT:
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
	case TD_TCP_SYN_RECV:
		return true;
	case TD_TCP_CLOSING:
	case TD_TCP_LAST_ACK:
		/* only while data is still waiting to be transmitted */
		return f->notsent > 0;
	default:
		return false;
	}
}

static int td__rst_why(const struct td_close_facts *f)
{
	switch (f->rst_cause) {
	case TD_RST_BY_POLICY: return TD_WHY_POLICY;
	case TD_RST_BY_FAULT: return TD_WHY_FAULT;
	default: return TD_WHY_LINGER0;
	}
}

static void td__set(struct td_close_outcome *o, int wire, int why, int closer,
		    int tw)
{
	o->wire = wire;
	o->why = why;
	o->closer = closer;
	o->time_wait = tw;
	o->lost = 0;
	o->lost_in_flight = 0;
}

/* An RST purges the send queue: what was never sent, and the rest. */
static void td__rst(struct td_close_outcome *o, const struct td_close_facts *f,
		    int why, int closer)
{
	int64_t notsent = f->notsent < f->unsent ? f->notsent : f->unsent;

	td__set(o, TD_WIRE_RST, why, closer, 0);
	o->lost = notsent > 0 ? notsent : 0;
	o->lost_in_flight = f->unsent > o->lost ? f->unsent - o->lost : 0;
}

/* Who came first, by the state the connection is in. */
static int td__closer(const struct td_close_facts *f)
{
	if (f->state == TD_TCP_CLOSING)
		return TD_CLOSER_SIMULTANEOUS;
	return f->passive_first ? TD_CLOSER_PASSIVE : TD_CLOSER_ACTIVE;
}

TD_CHILD_RUNS
void td_close_facts_init(struct td_close_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->first_fin = TD_CLOSER_NONE;
	f->after_state = -1;
}

TD_CHILD_RUNS
bool td_state_fin_in(int state)
{
	return state == TD_TCP_CLOSE_WAIT || state == TD_TCP_LAST_ACK ||
	       state == TD_TCP_CLOSING || state == TD_TCP_TIME_WAIT;
}

TD_CHILD_RUNS
int64_t td_payload_in(int state, int64_t bytes_received, bool fin_in)
{
	fin_in = fin_in || td_state_fin_in(state);
	return fin_in && bytes_received > 0 ? bytes_received - 1 : bytes_received;
}

TD_CHILD_RUNS
int td_predict_closer_of(int state)
{
	switch (state) {
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
	case TD_TCP_TIME_WAIT:
		return TD_CLOSER_ACTIVE;
	case TD_TCP_CLOSING:
		/* the peer's FIN crossed ours: both will hold TIME_WAIT */
		return TD_CLOSER_SIMULTANEOUS;
	case TD_TCP_LAST_ACK:
	case 0: /* gone: the peer's FIN came first and ours is acknowledged */
		return TD_CLOSER_PASSIVE;
	default:
		return TD_CLOSER_NONE;
	}
}

TD_CHILD_RUNS
void td_predict_settle(struct td_event *ev, int state, int64_t age_us)
{
	int closer = ev->closer, time_wait = ev->time_wait;

	if (ev->ask != TD_ASK_FIRST_FIN)
		return;
	ev->ask = TD_ASK_NONE;
	if (state < 0 || (state == 0 && (age_us < 0 || age_us > TD_SETTLE_GONE_US)))
		return;
	td_predict_first_fin(td_predict_closer_of(state), &closer, &time_wait);
	ev->closer = (uint8_t)closer;
	ev->time_wait = (int8_t)time_wait;
}

TD_CHILD_RUNS
void td_predict_first_fin(int first_fin, int *closer, int *time_wait)
{
	if (first_fin == TD_CLOSER_PASSIVE) {
		*closer = TD_CLOSER_PASSIVE;
		*time_wait = 0;
	} else if (first_fin == TD_CLOSER_SIMULTANEOUS) {
		*closer = TD_CLOSER_SIMULTANEOUS;
	}
}

/*
 * What was learned after the facts: our FIN's check, the drain's end, the
 * kernel's view after the close.  Each may only correct the outcome the
 * facts gave, in the one way the kernel allows.
 */
static void td__learned(const struct td_close_facts *f, struct td_close_outcome *o)
{
	if (f->drain_cut && o->wire == TD_WIRE_FIN) {
		/* the drain timed out with input still arriving: the close
		 * resets, throwing away what is still queued */
		td__rst(o, f, TD_WHY_UNREAD, o->closer);
		return;
	}
	if (o->wire == TD_WIRE_FIN && o->closer == TD_CLOSER_ACTIVE) {
		td_predict_first_fin(f->first_fin, &o->closer, &o->time_wait);
		return;
	}
	/* an RST predicted after our FIN: the peer's FIN came back first if
	 * the 4-tuple sits in TIME_WAIT, and then nothing was reset; or if
	 * the abort itself said it sent none (abort_quiet): the FINs crossed
	 * (CLOSING) and the abort dropped the socket, no TIME_WAIT */
	if (o->wire == TD_WIRE_RST &&
	    (f->abort_quiet || (f->after_state == TD_TCP_TIME_WAIT &&
				(f->state == TD_TCP_FIN_WAIT1 || f->state == TD_TCP_FIN_WAIT2)))) {
		bool tw = f->after_state == TD_TCP_TIME_WAIT;

		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT,
			tw ? TD_CLOSER_ACTIVE : TD_CLOSER_SIMULTANEOUS, tw);
		return;
	}
	/* FINs crossed, closed with a zero linger: the peer acknowledged ours
	 * first if the 4-tuple sits in TIME_WAIT (the socket was no longer
	 * CLOSING for the close to drop) */
	if (f->state == TD_TCP_CLOSING && o->time_wait == 0 &&
	    f->after_state == TD_TCP_TIME_WAIT)
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_SIMULTANEOUS, 1);
}

/* Payload bytes each way, the larger of now and before a library reset. */
static void td__bytes(const struct td_close_facts *f, struct td_close_outcome *o)
{
	bool fin_in = f->eof_seen ||
		      (f->state == TD_TCP_CLOSE && !f->reset_sent &&
		       (o->why == TD_WHY_FIN_SENT || f->fin_before_end));
	int64_t in = td_payload_in(f->state, f->bytes_received, fin_in);

	o->bytes_in = in > f->reset_bytes_in ? in : f->reset_bytes_in;
	o->bytes_out = f->bytes_out > f->reset_bytes_out ? f->bytes_out : f->reset_bytes_out;
}

static void td__decide(const struct td_close_facts *f, struct td_close_outcome *o);

TD_CHILD_RUNS
void td_predict_close(const struct td_close_facts *f, struct td_close_outcome *o)
{
	td__decide(f, o);
	td__learned(f, o);
	td__bytes(f, o);
}

static void td__decide(const struct td_close_facts *f, struct td_close_outcome *o)
{
	if (!f->last) {
		td__set(o, TD_WIRE_NONE, TD_WHY_SHARED, TD_CLOSER_NONE, -1);
		return;
	}
	if (f->reset_sent) {
		/* the library reset it earlier (a fault): that was its end */
		td__set(o, TD_WIRE_RST, TD_WHY_FAULT,
			f->passive_first ? TD_CLOSER_PASSIVE : TD_CLOSER_ACTIVE, 0);
		o->lost = f->reset_lost;
		o->lost_in_flight = f->reset_in_flight;
		return;
	}
	switch (f->state) {
	case TD_TCP_LISTEN:
		if (f->backlog > 0)
			td__set(o, TD_WIRE_RST, TD_WHY_UNACCEPTED, TD_CLOSER_NONE, 0);
		else
			td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0);
		return;
	case TD_TCP_CLOSE:
		/*
		 * Already closed: reset, refused, never connected, timed out
		 * (retransmissions, keepalive probes or TCP_USER_TIMEOUT ran
		 * out: nothing went on the wire, the peer may not know), or
		 * both FINs exchanged after our shutdown (then TIME_WAIT is
		 * held by the side whose FIN went first; by both when they
		 * crossed).
		 */
		if (!f->connected)
			td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0);
		else if (f->passive_first)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0);
		else if (f->our_fin_sent)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1);
		else
			td__set(o, TD_WIRE_NONE, f->timed_out ? TD_WHY_TIMEOUT : TD_WHY_RESET,
				f->fin_before_end ? TD_CLOSER_PASSIVE : TD_CLOSER_NONE, 0);
		return;
	case TD_TCP_SYN_SENT:
		td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0);
		return;
	default:
		break;
	}
	if (f->unread > 0) {
		td__rst(o, f, TD_WHY_UNREAD, td__closer(f));
		return;
	}
	if (f->linger_on && f->linger_secs == 0 && td__zero_linger_resets(f)) {
		td__rst(o, f, td__rst_why(f), td__closer(f));
		return;
	}
	switch (f->state) {
	case TD_TCP_ESTABLISHED:
	case TD_TCP_SYN_RECV:
		td__set(o, TD_WIRE_FIN, f->policy_changed ? TD_WHY_POLICY : TD_WHY_CLOSE,
			TD_CLOSER_ACTIVE, 1);
		return;
	case TD_TCP_CLOSE_WAIT:
		td__set(o, TD_WIRE_FIN, f->policy_changed ? TD_WHY_POLICY : TD_WHY_CLOSE,
			TD_CLOSER_PASSIVE, 0);
		return;
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1);
		return;
	case TD_TCP_CLOSING:
		/* the FINs crossed: both hold TIME_WAIT, but for a zero linger's
		 * close, which drops the socket at once (tcp_disconnect(), no
		 * RST where nothing waits to be sent) */
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_SIMULTANEOUS,
			f->linger_on && f->linger_secs == 0 ? 0 : 1);
		return;
	case TD_TCP_LAST_ACK:
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0);
		return;
	default:
		td__set(o, TD_WIRE_UNKNOWN, TD_WHY_NONE, TD_CLOSER_NONE, -1);
		return;
	}
}
