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
		    int tw, int64_t lost)
{
	o->wire = wire;
	o->why = why;
	o->closer = closer;
	o->time_wait = tw;
	o->lost = lost;
}

void td_predict_close(const struct td_close_facts *f, struct td_close_outcome *o)
{
	if (!f->last) {
		td__set(o, TD_WIRE_NONE, TD_WHY_SHARED, TD_CLOSER_NONE, -1, 0);
		return;
	}
	switch (f->state) {
	case TD_TCP_LISTEN:
		if (f->backlog > 0)
			td__set(o, TD_WIRE_RST, TD_WHY_UNACCEPTED, TD_CLOSER_NONE, 0, 0);
		else
			td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0);
		return;
	case TD_TCP_CLOSE:
		/*
		 * Already closed: reset, refused, never connected, or both FINs
		 * exchanged after our shutdown (then TIME_WAIT is held by the
		 * side whose FIN went first).
		 */
		if (!f->connected)
			td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0);
		else if (f->passive_first)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0, 0);
		else if (f->our_fin_sent)
			td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1, 0);
		else
			td__set(o, TD_WIRE_NONE, TD_WHY_RESET, TD_CLOSER_NONE, 0, 0);
		return;
	case TD_TCP_SYN_SENT:
		td__set(o, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0);
		return;
	default:
		break;
	}
	if (f->unread > 0) {
		td__set(o, TD_WIRE_RST, TD_WHY_UNREAD, TD_CLOSER_ACTIVE, 0, f->unsent);
		return;
	}
	if (f->linger_on && f->linger_secs == 0 && td__zero_linger_resets(f)) {
		td__set(o, TD_WIRE_RST, td__rst_why(f), TD_CLOSER_ACTIVE, 0, f->unsent);
		return;
	}
	switch (f->state) {
	case TD_TCP_ESTABLISHED:
	case TD_TCP_SYN_RECV:
		td__set(o, TD_WIRE_FIN, f->policy_changed ? TD_WHY_POLICY : TD_WHY_CLOSE,
			TD_CLOSER_ACTIVE, 1, 0);
		return;
	case TD_TCP_CLOSE_WAIT:
		td__set(o, TD_WIRE_FIN, f->policy_changed ? TD_WHY_POLICY : TD_WHY_CLOSE,
			TD_CLOSER_PASSIVE, 0, 0);
		return;
	case TD_TCP_FIN_WAIT1:
	case TD_TCP_FIN_WAIT2:
	case TD_TCP_CLOSING:
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1, 0);
		return;
	case TD_TCP_LAST_ACK:
		td__set(o, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0, 0);
		return;
	default:
		td__set(o, TD_WIRE_UNKNOWN, TD_WHY_NONE, TD_CLOSER_NONE, -1, 0);
		return;
	}
}
