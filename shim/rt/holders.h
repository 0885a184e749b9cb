/*
 * teardown runtime: who else holds a socket (holders.c): fork epochs, the
 * children forked since, and whether a close drops the last reference.
 */
#ifndef TD_RT_HOLDERS_H
#define TD_RT_HOLDERS_H

#include "fdtab.h"

/*
 * Fork epochs: each fork starts a new one in both processes, and an
 * entry remembers the epoch it entered this process in (td_holders_sole()).
 */
extern _Atomic uint32_t td_holders_epoch TD_HIDDEN;
extern uint32_t td_holders_birth_epoch TD_HIDDEN;
/*
 * The epoch moves on (a fork in either process, a vfork(), a
 * posix_spawn()): returns the one before.  Near the top of the birth
 * word's range, socket()'s fast births stop first (td_fdtab_born_off()),
 * so that no birth on the fast path can see an epoch past the word.
 */
static inline uint32_t td_holders_epoch_next(void)
{
	if (td_unlikely(atomic_load_explicit(&td_holders_epoch, memory_order_relaxed) >=
			TD_BORN_EPOCH_FAST_MAX))
		td_fdtab_born_off();
	return atomic_fetch_add(&td_holders_epoch, 1);
}

/* Children forked by this process (fork hook) */
void td_holders_child_record(pid_t pid, uint32_t epoch) TD_HIDDEN;
void td_holders_fork_child_reset(void) TD_HIDDEN;
/* In the parent after a fork (the pthread_atfork handler): the next epoch. */
void td_holders_fork_parent(void) TD_HIDDEN;
/* Then, in the fork hook of the same thread: the epoch that fork was born at. */
uint32_t td_holders_fork_epoch(void) TD_HIDDEN;

/*
 * Holder counts across fork (the share slots of fdtab.c).  The fork's
 * prepare handler counts the child's copies; the fork hook takes them
 * back when the fork failed.  A vfork()ed or posix_spawn()ed child's
 * copies are not counted: its shares say so.  exec(): the close-on-exec
 * copies are taken off before, and back if it fails.  Each keeps errno.
 */
void td_holders_fork_prepare(void) TD_HIDDEN;
void td_holders_fork_failed(void) TD_HIDDEN;
void td_holders_uncounted_child(void) TD_HIDDEN;
/* Before system() or popen(): the shell holds each socket without
 * close-on-exec, uncounted: shared for good. */
void td_holders_shell_child(void) TD_HIDDEN;
void td_holders_exec_prepare(void) TD_HIDDEN;
void td_holders_exec_failed(void) TD_HIDDEN;
/* Whether a socket's share (with its flags) counts every holder: then
 * the count alone says whether a close is the last one. */
bool td_holders_counted(uint32_t flags, uint32_t share) TD_HIDDEN;

/* Whether closing fd (inode ino) drops the last reference to its socket;
 * origin: the number it had when this process inherited it (fd, or its
 * share's origin: td_fdtab_share_origin()). */
bool td_holders_sole(int fd, int origin, const struct td_sock *s, uint64_t ino) TD_HIDDEN;
/* Whether the sole-holder check will need the socket's inode (forks). */
bool td_holders_needs_ino(const struct td_sock *s) TD_HIDDEN;
/* Whether a socket that entered this process at epoch may be held by
 * another process too: it was inherited, or this process forked since. */
bool td_holders_maybe_elsewhere(uint32_t epoch) TD_HIDDEN;

#endif
