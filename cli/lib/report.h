/*
 * teardown: aggregation of audit logs for `teardown report`.
 *
 * Pure: the caller reads the files, feeds the lines in, and asks for a
 * rendering on a FILE *.  Memory grows with the number of distinct
 * programs (and distinct actions, reasons, fault kinds...), never with
 * the number of lines.
 */
#ifndef TEARDOWN_CLI_REPORT_H
#define TEARDOWN_CLI_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "logparse.h"

/* How many of the slowest closes each program keeps. */
#define TD_REPORT_SLOWEST 5

enum td_wire_bucket {
	TD_RW_FIN = 0,
	TD_RW_RST,
	TD_RW_NONE,
	TD_RW_UNKNOWN, /* wire null, absent, or a name we do not know */
	TD_RW__COUNT
};

struct td_report;
struct td_cmap; /* string -> count, internal to report.c */

/* One of the slowest closes. */
struct td_report_slow {
	int64_t age_ms;
	int64_t pid, fd; /* -1 when the line had none */
	char *prog, *remote, *rule; /* NULL when null or absent */
};

/* Outcomes of closes, and separately of sockets still open at exit. */
struct td_report_outcome {
	uint64_t count;
	uint64_t wire[TD_RW__COUNT];
	uint64_t time_wait; /* time_wait true */
	uint64_t lost;	    /* sum of lost where wire is RST */
	/* why -> n for each wire bucket ("-" when why is null), rendered
	 * as "RST:linger0" */
	struct td_cmap *by_why[TD_RW__COUNT];
};

/* What one program did; also used for the totals. */
struct td_report_stats {
	uint64_t events;
	uint64_t connects, accepts; /* connections = connects + accepts */
	struct td_cmap *connect_errors; /* "ECONNREFUSED" -> n */
	uint64_t binds, lingers;
	uint64_t dropped; /* audit lines the library could not write */
	struct td_report_outcome closes;
	uint64_t active, passive, simultaneous; /* closer of close events */
	struct td_cmap *by_action; /* action of close events, "-" if null */
	uint64_t leaks;
	struct td_cmap *faults; /* fault kind -> n */
	struct td_report_outcome exits;
	uint64_t execs; /* connections a successful exec() ended (exec events) */
	uint64_t shutdowns;
	struct td_cmap *shutdown_how; /* "SHUT_WR" -> n */
	size_t n_slow;
	struct td_report_slow slow[TD_REPORT_SLOWEST]; /* by age_ms, desc */
};

enum td_report_format {
	TD_REPORT_TEXT = 0,
	TD_REPORT_JSON = 1,
	TD_REPORT_PROMETHEUS = 2, /* text exposition format, for node_exporter */
};

/* What td_report_line() made of a line that was not counted as an event. */
enum {
	TD_REPORT_TEXTLINE = 1, /* a line of the text log format */
	TD_REPORT_OTHER = 2,	/* a journal entry that is not teardown's */
};

/* NULL when out of memory. */
struct td_report *td_report_new(void);
void td_report_free(struct td_report *r);

/*
 * Start counting lines for the input named name ("-" for stdin): the
 * malformed count is kept per input.  Returns 0 or -ENOMEM.
 */
int td_report_begin(struct td_report *r, const char *name);
/*
 * The same for the spool a dead process left next to a log (lines it made
 * that are not in the log yet): its lines count like the log's, and are
 * also counted apart (td_report_spooled(); in the JSON report "_spooled"
 * and the input's "spool": true, both only when a spool was read).
 */
int td_report_begin_spool(struct td_report *r, const char *name);
uint64_t td_report_spooled(const struct td_report *r);

/*
 * Feed one line (its trailing newline optional; modified in place).
 * Read: the library's JSON lines; the same behind a syslog prefix
 * ("... teardown[PID]: {...}", as rsyslog writes them); and entries of
 * `journalctl -o json` (TEARDOWN_* fields, or a syslog-target JSON line
 * in MESSAGE).  Returns 0 when counted as an event, TD_REPORT_TEXTLINE
 * for a line in the text format (counted apart: the report needs
 * format = "json"), TD_REPORT_OTHER for another program's journal entry,
 * -EINVAL when counted as malformed (not one flat JSON object with
 * "event" and "prog" strings), -ENOMEM.
 */
int td_report_line(struct td_report *r, char *line, size_t len);

/* The same for a line already parsed. */
int td_report_add(struct td_report *r, const struct td_jline *l);

/* Lookups for tests and callers: NULL when the program was never seen. */
const struct td_report_stats *td_report_prog(const struct td_report *r,
					     const char *prog);
const struct td_report_stats *td_report_total(const struct td_report *r);
uint64_t td_report_malformed(const struct td_report *r);
uint64_t td_report_lines(const struct td_report *r);
uint64_t td_report_text_lines(const struct td_report *r);
uint64_t td_report_other_lines(const struct td_report *r);
size_t td_report_nprogs(const struct td_report *r);
/* Count under key in one of the maps above (0 when absent). */
uint64_t td_cmap_get(const struct td_cmap *m, const char *key);

/* Write the report; returns 0, or -EIO when the stream failed. */
int td_report_render(const struct td_report *r, FILE *out, int format);

#endif
