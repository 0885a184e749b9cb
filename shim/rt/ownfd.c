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

#include "rt.h"

int td_ownfd_mark(int fd, enum td_ownfd_kind kind)
{
	struct td_sock init;
	int hi;

	if (fd < 0)
		return -1;
	hi = fd >= td_init_proc.fd_base ? fd : td_real_sys_dupfd(fd, td_init_proc.fd_base);
	if (hi < 0) {
		/* no room up there: keep the low number, still close-on-exec */
		hi = fd;
		(void)td_real_sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
	} else if (hi != fd) {
		td_real_close(fd);
	}
	memset(&init, 0, sizeof(init));
	init.d.rule = -1;
	init.d.bind_rule = -1;
	atomic_store(&init.flags, TD_SF_OWN | (uint32_t)kind << TD_SF_OWN_KIND_SHIFT);
	(void)td_fdtab_publish(hi, &init);
	return hi;
}

static bool td__kind_is(uint32_t flags, enum td_ownfd_kind kind)
{
	return (flags & TD_SF_OWN) && flags >> TD_SF_OWN_KIND_SHIFT == (uint32_t)kind;
}

bool td_ownfd_is(int fd, enum td_ownfd_kind kind)
{
	struct td_sock *e = td_fdtab_peek(fd);

	return e != NULL && atomic_load(&e->tag) != 0 && td__kind_is(atomic_load(&e->flags), kind);
}

/*
 * Close one of ours, unless the program closed it already (then the
 * number may be the program's again, or another owner's, and must not be
 * touched).
 */
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
