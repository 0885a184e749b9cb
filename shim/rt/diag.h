/*
 * teardown runtime: the kernel's view after the fact (diag.c, sock_diag).
 */
#ifndef TD_RT_DIAG_H
#define TD_RT_DIAG_H

#include "base.h"

/* The connection's kernel state after the close, 0 when there is none,
 * -1 on error. */
int td_diag_state(const struct td_addr *local, const struct td_addr *remote) TD_HIDDEN;
/* The same after an active close, for who sent the first FIN: gone, where
 * a loopback peer shows a reset, not its FIN, came after ours, is -1. */
int td_diag_first_fin(const struct td_addr *local, const struct td_addr *remote) TD_HIDDEN;
/*
 * Many lookups at once, as td_diag_first_fin() would make each (q[i].state),
 * in a few system calls; at most TD_DIAG_BATCH (more are not asked).  One
 * caller at a time: the spool's flusher.
 */
#define TD_DIAG_BATCH 32
struct td_diag_q {
	struct td_addr local, remote;
	int state;
};
void td_diag_states(struct td_diag_q *q, int n) TD_HIDDEN;
/* Whether something listens on local's address (or the wildcard) and port. */
bool td_diag_listening(const struct td_addr *local) TD_HIDDEN;
/* Close the netlink sockets kept for lookups. */
void td_diag_close_pool(void) TD_HIDDEN;
/* After our FIN: an enum td_closer (TD_CLOSER_NONE: cannot tell).  With
 * fd >= 0 the state is read through it first.  *fin_in (when not NULL):
 * whether the state found proves the peer's FIN came in. */
int td_diag_closer(int fd, const struct td_addr *local, const struct td_addr *remote,
		   bool *fin_in) TD_HIDDEN;

/* After a close that may not have been the last: the state (as above)
 * and whether a process still holds the socket. */
int td_diag_after_close(const struct td_addr *local, const struct td_addr *remote,
			bool *held) TD_HIDDEN;

#endif
