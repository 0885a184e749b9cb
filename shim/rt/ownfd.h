/*
 * teardown runtime: the library's own fds (ownfd.c).
 */
#ifndef TD_RT_OWNFD_H
#define TD_RT_OWNFD_H

#include "base.h"

/*
 * Whose each of the library's fds is.  A program that closes every number
 * drops every mark, and the numbers come back in a new order: the log's
 * old number may then be the spool's, a pooled netlink socket's number the
 * log's.  An owner asks for its own kind, so it never writes into, reads
 * from or closes another owner's descriptor.
 */
enum td_ownfd_kind {
	TD_OWN_LOG = 1,		/* logw.c: the log file or socket */
	TD_OWN_SPOOL,		/* spool.c: the spool file (holds its lock) */
	TD_OWN_DIAG,		/* diag.c: a pooled sock_diag netlink socket */
	TD_OWN_WAKE,		/* worker.c: the eventfd */
	TD_OWN_EPOLL,		/* worker.c: the epoll fd */
	TD_OWN_DRAIN,		/* closing.c, worker.c: a drain's private reference */
	TD_OWN_FAULT,		/* faults.c: a refusing port or black hole */
	TD_OWN_FILLER,		/* faults.c: the connection that fills a black hole */
};

/* Move fd to the library's high range (CLOEXEC), mark it as kind's,
 * return it. */
int td_ownfd_mark(int fd, enum td_ownfd_kind kind) TD_HIDDEN;
/* fd is still kind's (the program has not closed or replaced it). */
bool td_ownfd_is(int fd, enum td_ownfd_kind kind) TD_HIDDEN;
/* Close fd if it is still kind's. */
void td_ownfd_close(int fd, enum td_ownfd_kind kind) TD_HIDDEN;
/*
 * Close the fd an owner keeps in *slot, leaving -1 there.  An empty slot
 * is not written (after fork() a store copies the page).
 */
void td_ownfd_close_slot(_Atomic int *slot, enum td_ownfd_kind kind) TD_HIDDEN;

#endif
