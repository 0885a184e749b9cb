/*
 * teardown runtime: writing events and warnings (logw.c).
 */
#ifndef TD_RT_LOGW_H
#define TD_RT_LOGW_H

#include "fdtab.h"

/* Fill the common fields (ts, pid, tid, prog) and write one line. */
void td_logw_event(const struct td_policy *p, struct td_event *ev) TD_HIDDEN;
/* The same for an exec event: into the exec file (spool.c), which the
 * log gets once the exec() happened; a file target only. */
void td_logw_exec_event(const struct td_policy *p, struct td_event *ev) TD_HIDDEN;
void td_logw_open(const struct td_policy *p) TD_HIDDEN;
/* At exit: the count of lines that could not be written ("dropped"). */
void td_logw_at_exit(const struct td_policy *p) TD_HIDDEN;
/* Fill an event's socket fields from an entry. */
void td_logw_event_from_sock(struct td_event *ev, const struct td_policy *p,
			const struct td_sock *s, int fd, int type) TD_HIDDEN;
/* A batch of whole lines from the spool: one writev(), losses counted. */
void td_logw_batch(const struct iovec *iov, int n) TD_HIDDEN;
/*
 * One warning line, "teardown: msg": on stderr unless it is closed, a
 * network socket or cannot take the line now; then to journald or syslog.
 */
void td_logw_warn(const char *msg) TD_HIDDEN;
/* The host the lines name (uname's nodename), or NULL when none. */
const char *td_logw_host(void) TD_HIDDEN;
/* Before setuid() and the like in a process still root: the log's path is
 * checked (and a rotated file opened anew) now. */
void td_logw_before_uid(const struct td_policy *p) TD_HIDDEN;
/* The process's ids changed (setuid() and the like): the next line reads
 * the uid again. */
void td_logw_ids_changed(void) TD_HIDDEN;

#endif
