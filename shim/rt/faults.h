/*
 * teardown runtime: faults at run time (faults.c).
 */
#ifndef TD_RT_FAULTS_H
#define TD_RT_FAULTS_H

#include "fdtab.h"

/* Send an RST now on a connection the program still holds (entry e:
 * where to keep the byte counts the reset wipes; may be NULL). */
int td_faults_reset_now(int fd, struct td_sock *e) TD_HIDDEN;
/* A loopback address that refuses (refuse) or never answers (timeout). */
int td_faults_target(int family, int kind, struct sockaddr_storage *out,
		    socklen_t *len) TD_HIDDEN;
/* The send-side hook for rst_after_bytes and fin_after_bytes: how much of
 * len may go; then what went. */
size_t td_faults_bytes_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_sent(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_live TD_HIDDEN;
/* The same on the read side, for rst_after_bytes_in. */
size_t td_faults_bytes_in_allow(int fd, size_t len, bool *armed) TD_HIDDEN;
void td_faults_bytes_read(int fd, ssize_t n) TD_HIDDEN;
extern _Atomic int td_faults_bytes_in_live TD_HIDDEN;

#endif
