/* teardown: the wire outcome of a close; see include/teardown/predict.h. */
#include "teardown/event.h"
#include "teardown/predict.h"

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

void td_predict_close(const struct td_close_facts *f, struct td_close_outcome *o)
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
		 * Already closed: reset, refused, never connected, or both FINs
		 * exchanged after our shutdown (then TIME_WAIT is held by the
		 * side whose FIN went first; by both when they crossed).
		 */
		if (!f->connected)
			td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0);
		else if (f->passive_first)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0);
		else if (f->our_fin_sent)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1);
		else
			td__set(o, TD_WIRE_NONE, TD_WHY_RESET, TD_CLOSER_NONE, 0);
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
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_SIMULTANEOUS, 1);
		return;
	case TD_TCP_LAST_ACK:
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0);
		return;
	default:
		td__set(o, TD_WIRE_UNKNOWN, TD_WHY_NONE, TD_CLOSER_NONE, -1);
		return;
	}
}
