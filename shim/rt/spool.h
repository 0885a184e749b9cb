/*
 * teardown runtime: the spool (spool.c): a file target's events, packed
 * into a per-process ring in a shared file mapping with no system call,
 * and formatted and written out to the log in batches by the worker.
 */
#ifndef TD_RT_SPOOL_H
#define TD_RT_SPOOL_H

#include "base.h"

/* Whether this process has a spool (lines may wait in it). */
bool td_spool_exists(void) TD_HIDDEN;
/* Put one record in (a packed event, include/teardown/evrec.h, or a
 * finished line): 0, or -1 when the line must be written directly. */
int td_spool_record(const char *rec, size_t len) TD_HIDDEN;
/* A line was written directly to the regular file log_fd: after a few,
 * make the spool. */
void td_spool_count_line(const char *log_path, int log_fd) TD_HIDDEN;
/* The flush claim (false: this thread's own flush was interrupted). */
bool td_spool_claim(void) TD_HIDDEN;
void td_spool_release(void) TD_HIDDEN;
/* With the claim held: write out what the spool holds. */
void td_spool_flush_claimed(void) TD_HIDDEN;
/* Claim, write out, release. */
void td_spool_flush(void) TD_HIDDEN;
/* The worker's round: write out when due; returns the next due time. */
int64_t td_spool_tick(int64_t now_mono_us) TD_HIDDEN;
void td_spool_before_fork(void) TD_HIDDEN;
void td_spool_after_fork_child(void) TD_HIDDEN;
void td_spool_at_exit(void) TD_HIDDEN;
/* The program closes fd, one of ours: if it is the spool's, keep its lock. */
void td_spool_fd_closing(int fd) TD_HIDDEN;
/* TEARDOWN_SPOOL_FLUSH_MS (tests), or NULL. */
void td_spool_configure(const char *flush_ms) TD_HIDDEN;
/* Append the lines dead processes left in spools of this log. */
void td_spool_recover(const char *log_path) TD_HIDDEN;
/* Before setuid() and the like: a process about to give up root makes its
 * spool's file while it still may (root-only log directories). */
void td_spool_before_uid(const struct td_policy *p) TD_HIDDEN;
/*
 * Before exec(): a line the log gets only if the exec happens (an exec
 * event), into this process's exec file, made at the first: 0, or an
 * errno.  td_spool_exec_failed(): the exec returned, the file goes.
 */
int td_spool_exec_put(const char *log_path, const char *line, size_t len) TD_HIDDEN;
void td_spool_exec_failed(void) TD_HIDDEN;

#endif
