/*
 * teardown: the library's own descriptors (log file, syslog socket, a
 * drain's private reference, the worker's epoll and eventfd, the fault
 * targets).  They live at high numbers with close-on-exec, out of the way
 * of programs that expect the lowest free fd, and are marked in the fd
 * table so that close_range()/closefrom() from the program skip them and
 * an explicit close or dup2 over one is noticed (the owner reopens).
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "rt.h"

TD_CHILD_RUNS
static struct td_fdent *td__publish_own(int fd, enum td_ownfd_kind kind)
{
	return td_fdtab_publish_bare(fd, 0, atomic_load(&td_holders_epoch),
				     TD_SF_OWN | (uint32_t)kind << TD_SF_OWN_KIND_SHIFT);
}

static bool td__same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
	       a->st_rdev == b->st_rdev;
}

/*
 * Two races with the program's own threads:
 *  - the low number the kernel gave us is held as briefly as before
 *    (the dup and the close; the identity read first): a single-threaded
 *    program does not expect another thread (the worker) to take the
 *    number its next accept() would get;
 *  - between the dup to a high number and the mark on it, the program may
 *    put a file of its own there: a dup2() onto numbers it cannot know
 *    are ours (a daemon's "every fd up to 1023 is mine"), which found no
 *    mark to drop.  That number is then the program's: marked ours, it
 *    would get log lines in the program's pipe, and its file would become
 *    the log's identity.  So after the mark the number must still show
 *    the file we opened; if it does not, the mark is taken back (our own
 *    entry only, by its tag) and -1 returned: our file is gone with the
 *    program's dup2(), and the owner opens another when it needs one.
 * The identity is (st_dev, st_ino): unique for files, pipes and sockets;
 * eventfd and epoll descriptors share one anonymous inode, the blind
 * spot.  Not kcmp(), which would be exact: a seccomp filter may kill a
 * process for it, and the library must never break its host.
 */
TD_CHILD_RUNS
int td_ownfd_mark(int fd, enum td_ownfd_kind kind)
{
	struct td_fdent *e;
	struct stat mine, now;
	uint32_t tag;
	int hi;

	if (fd < 0)
		return -1;
	if (fd >= td_init_proc.fd_base) {
		(void)td__publish_own(fd, kind);
		return fd;
	}
	if (td_real_sys_fstat(fd, &mine) != 0 ||
	    (hi = td_real_sys_dupfd(fd, td_init_proc.fd_base)) < 0) {
		/* no room up there: keep the low number, still close-on-exec */
		(void)td_real_sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
		(void)td__publish_own(fd, kind);
		return fd;
	}
	td_real_close(fd);
	e = td__publish_own(hi, kind);
	/* (no entry: a vfork()ed child, or no memory for the table; as
	 * before, the number is used unmarked) */
	if (e == NULL || (td_real_sys_fstat(hi, &now) == 0 && td__same(&mine, &now)))
		return hi;
	tag = atomic_load(&e->tag);
	if (td_tag_live(tag))
		(void)atomic_compare_exchange_strong(&e->tag, &tag, tag & ~1u);
	return -1;
}

static bool td__kind_is(uint32_t flags, enum td_ownfd_kind kind)
{
	return (flags & TD_SF_OWN) && flags >> TD_SF_OWN_KIND_SHIFT == (uint32_t)kind;
}

TD_CHILD_RUNS
bool td_ownfd_is(int fd, enum td_ownfd_kind kind)
{
	struct td_fdent *e = td_fdtab_peek(fd);

	return e != NULL && td_tag_live(atomic_load(&e->tag)) &&
	       td__kind_is(atomic_load(&e->flags), kind);
}

/*
 * Close one of ours, unless the program closed it already (then the
 * number may be the program's again, or another owner's, and must not be
 * touched).
 */
TD_CHILD_RUNS
void td_ownfd_close(int fd, enum td_ownfd_kind kind)
{
	struct td_sock gone;

	if (fd < 0 || !td_ownfd_is(fd, kind) || !td_fdtab_claim(fd, &gone))
		return;
	if (td__kind_is(atomic_load(&gone.flags), kind))
		td_real_close(fd);
	else	/* re-marked by its new owner between the look and the claim */
		(void)td_fdtab_publish(fd, &gone);
}

TD_CHILD_RUNS
void td_ownfd_close_slot(_Atomic int *slot, enum td_ownfd_kind kind)
{
	if (atomic_load(slot) >= 0)
		td_ownfd_close(atomic_exchange(slot, -1), kind);
}
