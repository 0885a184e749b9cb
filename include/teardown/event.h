/*
 * teardown: audit events and their two line formats.
 *
 * The formatter is pure and async-signal-safe (no malloc, no stdio, no
 * locale): the preloaded library calls it from inside close() and friends,
 * which a signal handler may call.  Numbers are formatted by hand, so the
 * output never depends on LC_NUMERIC.
 */
#ifndef TEARDOWN_EVENT_H
#define TEARDOWN_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "teardown/addr.h"

enum td_event_type {
	TD_EV_CONNECT = 0,
	TD_EV_ACCEPT,
	TD_EV_BIND,
	TD_EV_LINGER,	/* the program set SO_LINGER */
	TD_EV_SHUTDOWN,
	TD_EV_CLOSE,
	TD_EV_FAULT,
	TD_EV_LEAK,	/* CLOSE_WAIT left open for leak_after_s */
	TD_EV_EXIT,	/* still open at exit */
	TD_EV_DROPPED,	/* at exit: audit lines this process could not write */
	TD_EV_POLICY,	/* a changed policy file applied (or refused) */
	TD_EV_EXEC,	/* the last copy, close-on-exec, ended by a successful exec() */
	TD_EV__COUNT
};

/* A socket's role as logged. */
enum td_sock_role {
	TD_SOCK_UNKNOWN = 0, /* inherited, or not yet connected */
	TD_SOCK_CLIENT,
	TD_SOCK_SERVER,	     /* accepted */
	TD_SOCK_LISTENER,
};

enum td_wire {
	TD_WIRE_UNKNOWN = 0,
	TD_WIRE_FIN,
	TD_WIRE_RST,
	TD_WIRE_NONE,
};

/* Why a close puts what it puts on the wire. */
enum td_why {
	TD_WHY_NONE = 0,
	TD_WHY_CLOSE,	     /* FIN: the program's ordinary close */
	TD_WHY_POLICY,	     /* the rule's action decided it */
	TD_WHY_LINGER0,	     /* RST: the program's own SO_LINGER {1,0} */
	TD_WHY_UNREAD,	     /* RST: closed with unread input (kernel) */
	TD_WHY_FAULT,	     /* RST: fault injection */
	TD_WHY_SHARED,	     /* none: other fds still hold the socket */
	TD_WHY_RESET,	     /* none: the connection was already reset */
	TD_WHY_FIN_SENT,     /* none: our FIN already went (shutdown) */
	TD_WHY_UNCONNECTED,  /* none: never connected */
	TD_WHY_UNACCEPTED,   /* listener: queued connections get RST */
	TD_WHY_DIED,	     /* exit: its last holder died without closing it */
	TD_WHY_TIMEOUT,	     /* none: the connection had timed out (ETIMEDOUT) */
	TD_WHY__COUNT
};

enum td_closer {
	TD_CLOSER_NONE = 0,	  /* unknown or not applicable */
	TD_CLOSER_ACTIVE,	  /* our FIN (or RST) came first */
	TD_CLOSER_PASSIVE,	  /* the peer's FIN came first */
	TD_CLOSER_SIMULTANEOUS,	  /* the FINs crossed: both hold TIME_WAIT */
};

/*
 * What an event still asks the kernel, answered by whoever writes its line
 * (td_predict_settle(), include/teardown/predict.h): the close's thread
 * at once, or the spool's flusher, which asks a batch's questions
 * together.
 */
enum td_event_ask {
	TD_ASK_NONE = 0,
	/* who sent the first FIN (closer, time_wait): a close predicted
	 * active with a FIN, asked of the 4-tuple after the close */
	TD_ASK_FIRST_FIN,
};

#define TD_HOW_NONE (-1)
/* shutdown: the library sent an RST instead (a connection fated to reset) */
#define TD_HOW_RST 3

/* The "v" every JSON line carries: bumped when keys change meaning. */
#define TD_EVENT_SCHEMA 1

struct td_event_who;

struct td_event {
	uint8_t type; /* enum td_event_type */
	int64_t ts_us; /* CLOCK_REALTIME, microseconds since the epoch */
	int32_t pid, tid;
	const char *host; /* uname nodename (JSON only); NULL prints as null */
	int64_t uid;	  /* effective uid (JSON only); -1 prints as null */
	const char *prog; /* escaped on output; NULL prints as null */
	int32_t fd;	  /* -1 when none */
	uint8_t role;	  /* enum td_sock_role */
	struct td_addr local, remote;
	const char *rule;   /* NULL = no rule (null) */
	const char *action; /* NULL = null */

	/* connect, accept, fault: per-process connection number, 0 = none */
	uint64_t conn;
	/* connect, close: errno of a failed call, 0 = none */
	int32_t err;

	/* linger, close, exit: the program's own SO_LINGER */
	bool app_linger_set;
	int32_t app_linger_onoff, app_linger_secs;

	/* shutdown: the program's how, and what was done (TD_HOW_NONE) */
	int8_t how, how_done;

	/* close, exit, leak */
	int8_t state; /* kernel TCP state number, -1 unknown */
	uint8_t closer, wire, why;
	int8_t time_wait; /* 1, 0, or -1 unknown */
	uint8_t ask;	  /* enum td_event_ask: not formatted */
	int64_t unread, unsent, lost, lost_in_flight, age_ms, bytes_in, bytes_out;

	/* leak */
	int64_t close_wait_ms;

	/* fault */
	const char *fault; /* "rst", "rst_after_ms", ... */
	uint64_t seed;
	uint64_t run_conn; /* the run-wide connection number, 0 outside a run */

	/* dropped: lines not written, the log target, the first error */
	uint64_t dropped;
	const char *target; /* "stderr", "syslog", "journal" or the path */

	/* policy: the file, its text's hash, its rules, and whether it now
	 * applies (else problem says why, with file and line) */
	const char *source;
	uint64_t hash;
	uint32_t rules;
	bool applied;
	const char *problem;

	/* host, pid and prog as written once for this process, or NULL;
	 * used only where it matches them (td_event_who_render()) */
	const struct td_event_who *who;
};

/*
 * The keys of a line that stay the same for a process, rendered once
 * instead of at every line (escaping prog and host is most of a line's
 * head).  JSON: `,"host":…,"pid":N,"tid":` and `,"prog":…`; text: ` N/`
 * and ` prog`.  td_event_format() copies them for an event whose host,
 * pid and prog are the ones rendered (the same pointers: strings fixed
 * for the process), else writes those keys itself: the line is the same
 * either way.
 */
#define TD_EVENT_WHO_HEAD 160
#define TD_EVENT_WHO_PROG 192
struct td_event_memo;
struct td_event_who {
	bool ok; /* false: rendering did not fit (never used then) */
	int32_t pid;
	const char *host, *prog;
	uint16_t jhead_n, jprog_n, tpid_n, tprog_n;
	char jhead[TD_EVENT_WHO_HEAD], jprog[TD_EVENT_WHO_PROG];
	char tpid[16], tprog[TD_EVENT_WHO_PROG];
	/* the connection keys already written, or NULL (td_event_memo) */
	struct td_event_memo *memo;
};

/*
 * The keys of a line that name its connection (fd role local remote rule
 * action, about 110 bytes of a JSON line), as td_event_format() last
 * wrote them for each of TD_EVENT_MEMO_N connections, so that a
 * connection's later lines copy them: a close line repeats its accept's
 * or connect's, and writing two addresses and two strings is a third of
 * what formatting a close line costs.  An entry is taken only where every
 * input it was written from is the same (format, fd, role, both
 * addresses, rule, action): the text is a function of those alone, so the
 * line is the same with or without it, whichever connection left the
 * entry.  One writer at a time (the spool's flusher, under the flush
 * claim, through its td_event_who): it is written as lines are made.
 */
#define TD_EVENT_MEMO_N 64
#define TD_EVENT_MEMO_STR 48
#define TD_EVENT_MEMO_TEXT 192
struct td_event_memo_ent {
	uint64_t conn; /* 0: empty */
	int32_t fd;
	uint8_t role, json, rule_set, action_set;
	uint16_t n;
	struct td_addr local, remote;
	char rule[TD_EVENT_MEMO_STR], action[TD_EVENT_MEMO_STR];
	char text[TD_EVENT_MEMO_TEXT];
};
struct td_event_memo {
	struct td_event_memo_ent e[TD_EVENT_MEMO_N];
};
void td_event_who_render(struct td_event_who *w, const char *host, int32_t pid,
			 const char *prog);

/*
 * Which keys each event carries, in this order, in both formats:
 *   JSON only: v ts host pid tid uid (then prog event ...)
 *   all:       ts pid tid prog event fd role local remote rule action
 *   connect:   conn error
 *   accept:    conn
 *   linger:    app_linger
 *   shutdown:  how sent
 *   close,exit: state closer unread unsent app_linger wire why time_wait
 *              lost lost_in_flight age_ms bytes_in bytes_out
 *              (close also: error)
 *   fault:     fault conn run_conn seed
 *   leak:      state age_ms close_wait_ms
 *   dropped:   dropped target error
 *   policy:    source hash rules applied problem
 * JSON values: ts "2026-11-21T07:48:00.123456Z"; local/remote "1.2.3.4:80",
 * "[::1]:80" or null; app_linger "1,0" style or null; error "ECONNREFUSED"
 * or null; how/sent "SHUT_WR"... or "none" (sent: also "RST");
 * time_wait true/false/null;
 * state "ESTABLISHED"... or null; seed as a decimal integer string-free
 * number.  Text: "ts pid/tid prog event key=value ..." with values that
 * need it quoted and escaped.
 */
#define TD_EVENT_MAX 1408 /* bytes of one formatted line, newline included */

/* How a line is written; also the policy's log.format. */
enum td_log_format { TD_FMT_TEXT = 0, TD_FMT_JSON = 1 };

/*
 * An event of type with nothing known yet: every field zero, except those
 * whose "unknown" is not zero (fd, state and time_wait -1, no shutdown).
 */
void td_event_init(struct td_event *ev, int type);

/*
 * Format ev as one line ending in '\n' into buf (cap >= TD_EVENT_MAX is
 * always enough: over-long string fields are cut, never the line's end).
 * Returns the length.  Async-signal-safe.
 */
size_t td_event_format(char *buf, size_t cap, const struct td_event *ev,
		       int format);

/*
 * The same event as one native journald datagram (systemd's
 * sd_journal_sendv() wire format, all fields in the simple KEY=value
 * form): MESSAGE (the line in `format`, without its newline), PRIORITY,
 * SYSLOG_FACILITY, SYSLOG_IDENTIFIER=teardown, then TEARDOWN_<KEY> for
 * every key of the JSON line whose value is not null.  String values are
 * the JSON string's content with \" \\ \/ and printable \u00XX
 * decoded; control characters stay escaped, so no value holds a newline.
 * facility: a syslog facility code (see td_log_facility_parse).  Returns
 * the length (the datagram is also NUL-terminated), or 0 when it does not
 * fit in cap (TD_JOURNAL_MAX always does).  Async-signal-safe.
 */
#define TD_JOURNAL_MAX 3072
size_t td_event_journal(char *buf, size_t cap, const struct td_event *ev,
			int format, int facility);

/*
 * Syslog severity of an event (RFC 5424 numbering): 4 (warning) for an
 * RST that threw data away (lost > 0), a CLOSE_WAIT leak, or lines the
 * log dropped; 6 (informational) otherwise.
 */
int td_event_severity(const struct td_event *ev);

/*
 * Syslog facilities (RFC 5424 codes): "user" 1, "mail" 2, "daemon" 3,
 * "auth" 4, "syslog" 5, "lpr" 6, "news" 7, "uucp" 8, "cron" 9,
 * "authpriv" 10, "ftp" 11, "local0".."local7" 16..23.  "kern" is not
 * offered: user processes cannot log as the kernel.  parse: the code or
 * -1; name: NULL for a code without a name.
 */
#define TD_FACILITY_DEFAULT 3 /* daemon */
int td_log_facility_parse(const char *name);
const char *td_log_facility_name(int code);

const char *td_event_name(int type);
const char *td_wire_name(int wire);
const char *td_why_name(int why);
const char *td_closer_name(int closer);
const char *td_sock_role_name(int role);
const char *td_tcp_state_name(int state); /* NULL when out of range */
const char *td_errno_name(int err);	    /* "ECONNREFUSED"; NULL unknown */
const char *td_how_name(int how);	    /* "SHUT_RD".. or "none" */

#endif
