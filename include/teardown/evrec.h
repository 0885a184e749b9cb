/*
 * teardown: an event as a record, not yet a line.
 *
 * Formatting an event into a line is most of what a logged close costs
 * the program's thread (about 1,700 of a JSON close's 2,200 instructions).
 * A file target's spool (include/teardown/spool.h) therefore holds the
 * event itself, packed here, and whoever writes the spool out -- the
 * worker thread, the fork and exit flushes, the next process that finds a
 * dead one's spool, `teardown report` -- formats it with
 * td_event_format(), into the line the program's thread would have made.
 *
 * A record: one byte TD_EVREC_MAGIC (a line starts with '{' or a digit,
 * so a spool can hold both), the line format, a mask of the strings that
 * follow, the layout word, then struct td_event itself with its pointers
 * cleared, then each string of the mask, NUL-terminated, in mask order.
 * The process's own host and prog are not copied (TD_EVREC_OWN): the
 * reader passes the who block of the process that wrote the spool (its
 * header names them).  A record written by one build and read by another
 * whose struct td_event differs is refused by the layout word: counted as
 * lost, never misread.
 */
#ifndef TEARDOWN_EVREC_H
#define TEARDOWN_EVREC_H

#include <stddef.h>
#include <stdint.h>

#include "teardown/event.h"

#define TD_EVREC_MAGIC 0x01
/* bump when struct td_event changes (evrec.c checks its size) */
#define TD_EVREC_VERSION 2u
#define TD_EVREC_LAYOUT ((uint32_t)TD_EVREC_VERSION << 16 | (uint32_t)sizeof(struct td_event))
/* the longest record td_evrec_pack() makes; a longer event is a line */
#define TD_EVREC_MAX 1024

/*
 * Pack ev (to be written in format) into buf: its length, or 0 when it
 * does not fit in cap.  own: ev's host and prog are those of the process
 * that writes the spool (ev->who is its block): they are left out.
 * Async-signal-safe.
 */
size_t td_evrec_pack(void *buf, size_t cap, const struct td_event *ev, int format, bool own);

/*
 * Unpack a record of len bytes (maybe damaged: another process's file)
 * into ev, whose strings then point into rec; *format: its line format.
 * who: the writing process's block (its host, pid and prog), for a record
 * that left them out; NULL when not known.  0, or -1 when the record is
 * not one this build can read.
 */
int td_evrec_unpack(const void *rec, size_t len, struct td_event *ev, int *format,
		    const struct td_event_who *who);

/*
 * What the record's event asks (enum td_event_ask), read without
 * unpacking it, and then its addresses: what a flusher gathers before a
 * batch (shim/rt/spool.c).  TD_ASK_NONE for a record this build cannot
 * read (which its unpack then refuses).
 */
int td_evrec_asks(const void *rec, size_t len, struct td_addr *local, struct td_addr *remote);

/*
 * Unpack and format in one step: the line's length in buf (cap >=
 * TD_EVENT_MAX), or 0 when the record cannot be read.
 */
size_t td_evrec_line(const void *rec, size_t len, const struct td_event_who *who, char *buf,
		     size_t cap);
/*
 * The same, with settle (when not NULL) given the unpacked event before
 * it is formatted, to answer what it asks (ev->ask): the library's
 * flusher.  Without it an event is written as its writer predicted.
 */
typedef void td_evrec_settle_fn(struct td_event *ev, void *ctx);
size_t td_evrec_line_settled(const void *rec, size_t len, const struct td_event_who *who,
			     char *buf, size_t cap, td_evrec_settle_fn *settle, void *ctx);

#endif
