/*
 * teardown runtime: descriptors passed in SCM_RIGHTS messages (rights.c),
 * for every call that sends or receives one: sendmsg()/sendmmsg() and
 * recvmsg()/recvmmsg().
 */
#ifndef TD_RT_RIGHTS_H
#define TD_RT_RIGHTS_H

#include <sys/socket.h>

#include "base.h"

/* A message about to be sent: each tracked socket it carries is marked
 * held elsewhere too, for good (TD_SF_STICKY_SHARED). */
void td_rights_sent(const struct msghdr *m) TD_HIDDEN;
/* A message received on the Unix socket ufd: each TCP socket it brought
 * is taken as a connection handed over (td_decide_inherited()). */
void td_rights_received(int ufd, const struct msghdr *m) TD_HIDDEN;

/* Whether m may carry descriptors at all (before a send; after a receive,
 * as the kernel filled it): the cheap test before either. */
static inline bool td_rights_maybe(const struct msghdr *m)
{
	return m != NULL && m->msg_control != NULL && m->msg_controllen >= CMSG_LEN(0);
}

#endif
