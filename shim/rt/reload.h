/*
 * teardown runtime: live policy changes (reload.c).
 */
#ifndef TD_RT_RELOAD_H
#define TD_RT_RELOAD_H

#include "fdtab.h"

/* Make p generation 0, and watch path (NULL: text from the environment). */
void td_reload_start(struct td_policy *p, const char *path, bool privileged,
		     bool explicit_path) TD_HIDDEN;
/* On connect/accept: at most once a second, has the file changed? */
void td_reload_poll(void) TD_HIDDEN;
/* In the worker: read a changed file and apply it, or say why not. */
void td_reload_tick(void) TD_HIDDEN;
/* The policy a socket was decided under. */
const struct td_policy *td_reload_policy_of(const struct td_sock_data *d) TD_HIDDEN;
/* After a reload: reset the open connections its fault.reset_open rules match. */
void td_reload_reset_open(const struct td_policy *p) TD_HIDDEN;

#endif
