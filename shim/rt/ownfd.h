/*
 * teardown runtime: the library's own fds (ownfd.c).
 */
#ifndef TD_RT_OWNFD_H
#define TD_RT_OWNFD_H

#include "base.h"

/* Move fd to the library's high range (CLOEXEC), mark it, return it. */
int td_ownfd_mark(int fd) TD_HIDDEN;
bool td_ownfd_is(int fd) TD_HIDDEN;
void td_ownfd_close(int fd) TD_HIDDEN;

#endif
