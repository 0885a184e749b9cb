/*
 * The close-outcome matrix: what Linux's tcp_close() puts on the wire for
 * each state, unread input, zero linger and sharing.  Every row is a fact
 * measured on the wire (reliability notes 1.1; passt's tcp-close-rst: no
 * RST after a full shutdown); the end-to-end tests check the same
 * predictions against tcpdump and the tcp:tcp_send_reset tracepoint.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "teardown/event.h"
#include "teardown/predict.h"

struct row {
	char name[64];
	int state;
	int64_t unread, unsent, notsent;
	int backlog;
	bool linger0, last, connected, passive, fin_sent;
	int cause;
	bool changed;
	int wire, why, closer, tw;
	int64_t lost, in_flight;
};

#define E TD_TCP_ESTABLISHED
#define CW TD_TCP_CLOSE_WAIT

ParameterizedTestParameters(predict, matrix)
{
	static struct row rows[] = {
		/* name, state, unread, unsent, notsent, backlog, linger0, last, connected, passive, fin_sent, cause, changed -> wire, why, closer, tw, lost, in_flight */
		{"plain close, established", E, 0, 0, 0, 0, false, true, true, false, false, 0, false, TD_WIRE_FIN, TD_WHY_CLOSE, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"plain close after peer FIN", CW, 0, 0, 0, 0, false, true, true, false, false, 0, false, TD_WIRE_FIN, TD_WHY_CLOSE, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"graceful undid something", E, 0, 0, 0, 0, false, true, true, false, false, 0, true, TD_WIRE_FIN, TD_WHY_POLICY, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"unread input: kernel RST", E, 5, 300, 0, 0, false, true, true, false, false, 0, false, TD_WIRE_RST, TD_WHY_UNREAD, TD_CLOSER_ACTIVE, 0, 0, 300},
		{"unread wins over linger0", E, 5, 0, 0, 0, true, true, true, false, false, TD_RST_BY_POLICY, false, TD_WIRE_RST, TD_WHY_UNREAD, TD_CLOSER_ACTIVE, 0, 0, 0},
		/* the peer's FIN came first: an RST that answers it is passive */
		{"unread in CLOSE_WAIT", CW, 7, 0, 0, 0, false, true, true, true, false, 0, false, TD_WIRE_RST, TD_WHY_UNREAD, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"unread in LAST_ACK", TD_TCP_LAST_ACK, 7, 0, 0, 0, false, true, true, true, true, 0, false, TD_WIRE_RST, TD_WHY_UNREAD, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"program's linger0", E, 0, 10, 10, 0, true, true, true, false, false, TD_RST_BY_APP, false, TD_WIRE_RST, TD_WHY_LINGER0, TD_CLOSER_ACTIVE, 0, 10, 0},
		{"abort rule", E, 0, 0, 0, 0, true, true, true, false, false, TD_RST_BY_POLICY, false, TD_WIRE_RST, TD_WHY_POLICY, TD_CLOSER_ACTIVE, 0, 0, 0},
		{"fault rst, some sent, some queued", E, 0, 4096, 1000, 0, true, true, true, false, false, TD_RST_BY_FAULT, false, TD_WIRE_RST, TD_WHY_FAULT, TD_CLOSER_ACTIVE, 0, 1000, 3096},
		{"linger0 in CLOSE_WAIT resets, passive", CW, 0, 0, 0, 0, true, true, true, true, false, TD_RST_BY_POLICY, false, TD_WIRE_RST, TD_WHY_POLICY, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"linger0 in FIN_WAIT2 resets", TD_TCP_FIN_WAIT2, 0, 0, 0, 0, true, true, true, false, true, TD_RST_BY_POLICY, false, TD_WIRE_RST, TD_WHY_POLICY, TD_CLOSER_ACTIVE, 0, 0, 0},
		{"linger0 after both FINs: no RST", TD_TCP_LAST_ACK, 0, 0, 0, 0, true, true, true, true, true, TD_RST_BY_POLICY, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"linger0 in CLOSING with data unsent", TD_TCP_CLOSING, 0, 50, 50, 0, true, true, true, false, true, TD_RST_BY_POLICY, false, TD_WIRE_RST, TD_WHY_POLICY, TD_CLOSER_SIMULTANEOUS, 0, 50, 0},
		{"linger0 while connecting: nothing", TD_TCP_SYN_SENT, 0, 0, 0, 0, true, true, false, false, false, TD_RST_BY_POLICY, false, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0, 0},
		{"linger {1,5} is not zero", E, 0, 0, 0, 0, false, true, true, false, false, 0, false, TD_WIRE_FIN, TD_WHY_CLOSE, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"after shutdown(SHUT_WR)", TD_TCP_FIN_WAIT2, 0, 0, 0, 0, false, true, true, false, true, 0, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"FINs crossed: both hold TIME_WAIT", TD_TCP_CLOSING, 0, 0, 0, 0, false, true, true, false, true, 0, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_SIMULTANEOUS, 1, 0, 0},
		/* a zero linger drops a CLOSING socket: no RST with nothing unsent, no TIME_WAIT */
		{"FINs crossed, abort: no RST, no TIME_WAIT", TD_TCP_CLOSING, 0, 0, 0, 0, true, true, true, false, true, TD_RST_BY_POLICY, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_SIMULTANEOUS, 0, 0, 0},
		{"both FINs, ours first", TD_TCP_CLOSE, 0, 0, 0, 0, false, true, true, false, true, 0, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"both FINs, ours first, abort: nothing to reset", TD_TCP_CLOSE, 0, 0, 0, 0, true, true, true, false, true, TD_RST_BY_POLICY, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_ACTIVE, 1, 0, 0},
		{"both FINs, peer's first", TD_TCP_CLOSE, 0, 0, 0, 0, false, true, true, true, true, 0, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0, 0, 0},
		{"already reset by the peer", TD_TCP_CLOSE, 0, 0, 0, 0, false, true, true, false, false, 0, false, TD_WIRE_NONE, TD_WHY_RESET, TD_CLOSER_NONE, 0, 0, 0},
		{"refused connect", TD_TCP_CLOSE, 0, 0, 0, 0, true, true, false, false, false, TD_RST_BY_FAULT, false, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0, 0},
		{"shared: nothing yet", E, 9, 0, 0, 0, true, false, true, false, false, TD_RST_BY_POLICY, false, TD_WIRE_NONE, TD_WHY_SHARED, TD_CLOSER_NONE, -1, 0, 0},
		{"listener, empty queue", TD_TCP_LISTEN, 0, 0, 0, 0, false, true, false, false, false, 0, false, TD_WIRE_NONE, TD_WHY_UNCONNECTED, TD_CLOSER_NONE, 0, 0, 0},
		{"listener with queued connections", TD_TCP_LISTEN, 0, 0, 0, 3, false, true, false, false, false, 0, false, TD_WIRE_RST, TD_WHY_UNACCEPTED, TD_CLOSER_NONE, 0, 0, 0},
		{"LAST_ACK, plain", TD_TCP_LAST_ACK, 0, 0, 0, 0, false, true, true, true, true, 0, false, TD_WIRE_NONE, TD_WHY_FIN_SENT, TD_CLOSER_PASSIVE, 0, 0, 0},
	};

	return cr_make_param_array(struct row, rows, sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(struct row *r, predict, matrix)
{
	struct td_close_facts f = {
		.state = r->state,
		.unread = r->unread,
		.unsent = r->unsent,
		.notsent = r->notsent,
		.backlog = r->backlog,
		.linger_on = r->linger0,
		.linger_secs = 0,
		.last = r->last,
		.connected = r->connected,
		.passive_first = r->passive,
		.our_fin_sent = r->fin_sent,
		.rst_cause = r->cause,
		.policy_changed = r->changed,
	};
	struct td_close_outcome o;

	if (strcmp(r->name, "linger {1,5} is not zero") == 0) {
		f.linger_on = true;
		f.linger_secs = 5;
	}
	td_predict_close(&f, &o);
	cr_assert(eq(str, (char *)td_wire_name(o.wire) ?: "?", (char *)td_wire_name(r->wire) ?: "?"), "%s: wire", r->name);
	cr_assert(eq(int, o.why, r->why), "%s: why %s, want %s", r->name,
		  td_why_name(o.why) ?: "null", td_why_name(r->why) ?: "null");
	cr_assert(eq(int, o.closer, r->closer), "%s: closer", r->name);
	cr_assert(eq(int, o.time_wait, r->tw), "%s: time_wait", r->name);
	cr_assert(eq(i64, o.lost, r->lost), "%s: lost", r->name);
	cr_assert(eq(i64, o.lost_in_flight, r->in_flight), "%s: lost_in_flight", r->name);
}

/*
 * A connection the library already reset (fault.rst at the program's
 * shutdown, rst_after_ms, rst_after_bytes): its end was that RST, which
 * the close reports with what the reset threw away, whatever the state.
 */
Test(predict, library_reset_is_the_end)
{
	struct td_close_facts f = {
		.state = TD_TCP_CLOSE, .last = true, .connected = true,
		.reset_sent = true, .reset_lost = 12, .reset_in_flight = 34,
	};
	struct td_close_outcome o;

	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_RST));
	cr_assert(eq(int, o.why, TD_WHY_FAULT));
	cr_assert(eq(int, o.closer, TD_CLOSER_ACTIVE));
	cr_assert(eq(int, o.time_wait, 0));
	cr_assert(eq(i64, o.lost, 12));
	cr_assert(eq(i64, o.lost_in_flight, 34));
	f.passive_first = true; /* reset after the peer's FIN */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.closer, TD_CLOSER_PASSIVE));
	f.last = false; /* another holder: this close still does nothing */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_SHARED));
}

/* The last reference, our FIN out (the program shut down), closed with
 * the policy's zero linger from state; nothing learned after yet. */
static struct td_close_facts td__aborted_after_our_fin(int state)
{
	return (struct td_close_facts){
		.state = state, .last = true, .connected = true, .our_fin_sent = true,
		.linger_on = true, .linger_secs = 0, .rst_cause = TD_RST_BY_POLICY,
		.after_state = -1,
	};
}

/*
 * FINs crossed (CLOSING), closed with a zero linger: tcp_disconnect()
 * drops the socket, no RST (nothing unsent) and no TIME_WAIT.  Unless the
 * peer's acknowledgement of our FIN came between the facts and the close:
 * then the 4-tuple sits in TIME_WAIT after it, which the lookup after the
 * close says; anything else it says changes nothing.
 */
Test(predict, a_crossed_close_acknowledged_before_the_abort_holds_time_wait)
{
	struct td_close_facts f = td__aborted_after_our_fin(TD_TCP_CLOSING);
	struct td_close_outcome o;

	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.time_wait, 0));
	f.after_state = 0; /* gone: dropped as predicted */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.time_wait, 0));
	f.after_state = TD_TCP_TIME_WAIT;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.why, TD_WHY_FIN_SENT));
	cr_assert(eq(int, o.closer, TD_CLOSER_SIMULTANEOUS));
	cr_assert(eq(int, o.time_wait, 1));
}

/*
 * Shut down first, then closed with a zero linger while our FIN was not
 * yet acknowledged (FIN_WAIT1): an RST, unless the peer's FIN came in the
 * instant before the close.  The library aborts just before the real
 * close and the socket says whether the RST went (closing.c,
 * td__abort_told()); none went (abort_quiet): the FINs crossed, the
 * abort dropped the CLOSING socket, no TIME_WAIT; or the lookup after the
 * close finds the 4-tuple in TIME_WAIT (the peer's ACK came first too).
 */
Test(predict, an_abort_that_met_the_peers_fin_says_it_sent_nothing)
{
	struct td_close_facts f = td__aborted_after_our_fin(TD_TCP_FIN_WAIT1);
	struct td_close_outcome o;

	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_RST));
	cr_assert(eq(int, o.why, TD_WHY_POLICY));
	cr_assert(eq(int, o.closer, TD_CLOSER_ACTIVE));
	f.abort_quiet = true;
	f.after_state = 0; /* gone: dropped in CLOSING */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.why, TD_WHY_FIN_SENT));
	cr_assert(eq(int, o.closer, TD_CLOSER_SIMULTANEOUS));
	cr_assert(eq(int, o.time_wait, 0));
	cr_assert(eq(i64, o.lost, 0));
	f.after_state = TD_TCP_TIME_WAIT;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.closer, TD_CLOSER_ACTIVE));
	cr_assert(eq(int, o.time_wait, 1));
	f.abort_quiet = false;
	f.after_state = 0; /* gone, and no word from the abort: the RST */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_RST));
}

/*
 * A connection that timed out (retransmissions, keepalive probes or
 * TCP_USER_TIMEOUT ran out) is CLOSE with nothing on the wire, as after a
 * peer's reset: the facts say which (a read or write that failed with
 * ETIMEDOUT, or the pending SO_ERROR at the close), and a FIN exchange
 * before it still wins.
 */
Test(predict, timeout_is_not_a_reset)
{
	struct td_close_facts f = {
		.state = TD_TCP_CLOSE, .last = true, .connected = true, .timed_out = true,
	};
	struct td_close_outcome o;

	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.why, TD_WHY_TIMEOUT));
	cr_assert(eq(int, o.closer, TD_CLOSER_NONE));
	cr_assert(eq(int, o.time_wait, 0));
	f.timed_out = false;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_RESET));
	f.timed_out = true;
	f.our_fin_sent = true; /* our FIN, then theirs: TIME_WAIT, not a timeout */
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_FIN_SENT));
	f.our_fin_sent = false;
	f.last = false;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_SHARED));
}

/*
 * A socket the peer reset after its FIN (it answered with an RST what we
 * wrote after reading its EOF: a TLS close_notify, an SMTP 421): the peer
 * closed first, and the kernel's byte count holds its FIN as one byte,
 * which bytes_in leaves out.  Without that fact (no FIN came, or the
 * library could not count every read) the closer is not known, and the
 * count is all payload.  A timeout after the peer's FIN is the same.
 */
Test(predict, a_reset_after_the_peers_fin_is_passive)
{
	struct td_close_facts f = {
		.state = TD_TCP_CLOSE, .last = true, .connected = true,
		.fin_before_end = true, .bytes_received = 6, .bytes_out = 3,
	};
	struct td_close_outcome o;

	td_predict_close(&f, &o);
	cr_assert(eq(int, o.wire, TD_WIRE_NONE));
	cr_assert(eq(int, o.why, TD_WHY_RESET));
	cr_assert(eq(int, o.closer, TD_CLOSER_PASSIVE));
	cr_assert(eq(int, o.time_wait, 0));
	cr_assert(eq(i64, o.bytes_in, 5), "the FIN is no byte");
	f.timed_out = true;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_TIMEOUT));
	cr_assert(eq(int, o.closer, TD_CLOSER_PASSIVE));
	cr_assert(eq(i64, o.bytes_in, 5));
	f.timed_out = false;
	f.fin_before_end = false;
	td_predict_close(&f, &o);
	cr_assert(eq(int, o.why, TD_WHY_RESET));
	cr_assert(eq(int, o.closer, TD_CLOSER_NONE));
	cr_assert(eq(i64, o.bytes_in, 6), "no FIN came: every byte is payload");
}

/*
 * An event settled after its line was made (td_predict_settle()): a close
 * predicted active with a FIN keeps that where the kernel later finds our
 * FIN first (FIN_WAIT, TIME_WAIT), turns passive without TIME_WAIT where
 * it finds LAST_ACK or nothing (early), simultaneous where it finds
 * CLOSING; a late "gone", or no answer, proves nothing and changes
 * nothing; the question goes either way, and an event that asks nothing
 * is left alone.
 */
struct settle_row {
	char name[48];
	int ask, state;
	int64_t age_us;
	int closer, tw;
};

ParameterizedTestParameters(predict, settle)
{
	static struct settle_row rows[] = {
		{"fin_wait2, ours first", TD_ASK_FIRST_FIN, TD_TCP_FIN_WAIT2, 1000,
		 TD_CLOSER_ACTIVE, 1},
		{"time_wait long after, ours first", TD_ASK_FIRST_FIN, TD_TCP_TIME_WAIT,
		 30000000, TD_CLOSER_ACTIVE, 1},
		{"last_ack, theirs first", TD_ASK_FIRST_FIN, TD_TCP_LAST_ACK, 20000,
		 TD_CLOSER_PASSIVE, 0},
		{"gone early, theirs first", TD_ASK_FIRST_FIN, 0, 40000, TD_CLOSER_PASSIVE, 0},
		{"gone at the bound", TD_ASK_FIRST_FIN, 0, TD_SETTLE_GONE_US, TD_CLOSER_PASSIVE, 0},
		{"gone late, proves nothing", TD_ASK_FIRST_FIN, 0, TD_SETTLE_GONE_US + 1,
		 TD_CLOSER_ACTIVE, 1},
		{"gone, clock stepped back", TD_ASK_FIRST_FIN, 0, -5, TD_CLOSER_ACTIVE, 1},
		{"closing, crossed", TD_ASK_FIRST_FIN, TD_TCP_CLOSING, 1000,
		 TD_CLOSER_SIMULTANEOUS, 1},
		{"no answer", TD_ASK_FIRST_FIN, -1, 1000, TD_CLOSER_ACTIVE, 1},
		{"nothing asked", TD_ASK_NONE, TD_TCP_LAST_ACK, 1000, TD_CLOSER_ACTIVE, 1},
	};

	return cr_make_param_array(struct settle_row, rows, sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(struct settle_row *r, predict, settle)
{
	struct td_event ev = {.closer = TD_CLOSER_ACTIVE, .time_wait = 1, .wire = TD_WIRE_FIN,
			      .ask = (uint8_t)r->ask};

	td_predict_settle(&ev, r->state, r->age_us);
	cr_assert(eq(int, ev.closer, r->closer), "%s: closer", r->name);
	cr_assert(eq(int, ev.time_wait, r->tw), "%s: time_wait", r->name);
	cr_assert(eq(int, ev.ask, TD_ASK_NONE), "%s: the question stays", r->name);
}
