/*
 * teardown: the name of every field an audit line can carry, spelled once.
 * The event writer (shim/core/event.c: JSON keys, text keys, journald's
 * TEARDOWN_* fields), the log parser and the report (cli/lib/) take their
 * names from here; adding a log field starts with one line below and one
 * in TD_FIELDS.
 */
#ifndef TEARDOWN_FIELDS_H
#define TEARDOWN_FIELDS_H

#define TD_FN_V "v"
#define TD_FN_TS "ts"
#define TD_FN_HOST "host"
#define TD_FN_UID "uid"
#define TD_FN_PID "pid"
#define TD_FN_TID "tid"
#define TD_FN_PROG "prog"
#define TD_FN_EVENT "event"
#define TD_FN_ACTION "action"
#define TD_FN_AGE_MS "age_ms"
#define TD_FN_APP_LINGER "app_linger"
#define TD_FN_APPLIED "applied"
#define TD_FN_BYTES_IN "bytes_in"
#define TD_FN_BYTES_OUT "bytes_out"
#define TD_FN_CLOSE_WAIT_MS "close_wait_ms"
#define TD_FN_CLOSER "closer"
#define TD_FN_CONN "conn"
#define TD_FN_DROPPED "dropped"
#define TD_FN_ERROR "error"
#define TD_FN_FAULT "fault"
#define TD_FN_FD "fd"
#define TD_FN_HASH "hash"
#define TD_FN_HOW "how"
#define TD_FN_LOCAL "local"
#define TD_FN_LOST "lost"
#define TD_FN_LOST_IN_FLIGHT "lost_in_flight"
#define TD_FN_PROBLEM "problem"
#define TD_FN_REMOTE "remote"
#define TD_FN_ROLE "role"
#define TD_FN_RULE "rule"
#define TD_FN_RULES "rules"
#define TD_FN_RUN_CONN "run_conn"
#define TD_FN_SEED "seed"
#define TD_FN_SENT "sent"
#define TD_FN_SOURCE "source"
#define TD_FN_STATE "state"
#define TD_FN_TARGET "target"
#define TD_FN_TIME_WAIT "time_wait"
#define TD_FN_UNREAD "unread"
#define TD_FN_UNSENT "unsent"
#define TD_FN_WHY "why"
#define TD_FN_WIRE "wire"

/* What a field's value is in JSON (null aside). */
enum td_field_kind { TD_FK_STR = 0, TD_FK_INT, TD_FK_BOOL };

/*
 * Every field, for tables: X(NAME, kind), TD_FN_##NAME its name.  The
 * report reads journald's fields (all strings there) back as the log's
 * numbers and booleans by kind.
 */
#define TD_FIELDS(X) \
	X(V, TD_FK_INT) \
	X(TS, TD_FK_STR) \
	X(HOST, TD_FK_STR) \
	X(UID, TD_FK_INT) \
	X(PID, TD_FK_INT) \
	X(TID, TD_FK_INT) \
	X(PROG, TD_FK_STR) \
	X(EVENT, TD_FK_STR) \
	X(ACTION, TD_FK_STR) \
	X(AGE_MS, TD_FK_INT) \
	X(APP_LINGER, TD_FK_STR) \
	X(APPLIED, TD_FK_BOOL) \
	X(BYTES_IN, TD_FK_INT) \
	X(BYTES_OUT, TD_FK_INT) \
	X(CLOSE_WAIT_MS, TD_FK_INT) \
	X(CLOSER, TD_FK_STR) \
	X(CONN, TD_FK_INT) \
	X(DROPPED, TD_FK_INT) \
	X(ERROR, TD_FK_STR) \
	X(FAULT, TD_FK_STR) \
	X(FD, TD_FK_INT) \
	X(HASH, TD_FK_STR) \
	X(HOW, TD_FK_STR) \
	X(LOCAL, TD_FK_STR) \
	X(LOST, TD_FK_INT) \
	X(LOST_IN_FLIGHT, TD_FK_INT) \
	X(PROBLEM, TD_FK_STR) \
	X(REMOTE, TD_FK_STR) \
	X(ROLE, TD_FK_STR) \
	X(RULE, TD_FK_STR) \
	X(RULES, TD_FK_INT) \
	X(RUN_CONN, TD_FK_INT) \
	X(SEED, TD_FK_INT) \
	X(SENT, TD_FK_STR) \
	X(SOURCE, TD_FK_STR) \
	X(STATE, TD_FK_STR) \
	X(TARGET, TD_FK_STR) \
	X(TIME_WAIT, TD_FK_BOOL) \
	X(UNREAD, TD_FK_INT) \
	X(UNSENT, TD_FK_INT) \
	X(WHY, TD_FK_STR) \
	X(WIRE, TD_FK_STR)

#endif
