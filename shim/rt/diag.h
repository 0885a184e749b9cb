/*
 * teardown runtime: the kernel's view after the fact (diag.c, sock_diag).
 */
#ifndef TD_RT_DIAG_H
#define TD_RT_DIAG_H

#include "base.h"

/* The connection's kernel state after the close, 0 when there is none,
 * -1 on error. */
int td_diag_state(const struct td_addr *local, const struct td_addr *remote) TD_HIDDEN;
/* After our FIN: an enum td_closer (TD_CLOSER_NONE: cannot tell).  With
 * fd >= 0 the state is read through it first, and also given in *seen
 * when seen is not NULL (-1 when it could not be read). */
int td_diag_closer(int fd, const struct td_addr *local, const struct td_addr *remote,
		   int *seen) TD_HIDDEN;

#endif
