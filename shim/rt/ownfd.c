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

int td_ownfd_mark(int fd)
{
	struct td_sock init;
	int hi;

	if (fd < 0)
		return -1;
	hi = fd >= td_init_proc.fd_base ? fd : fcntl(fd, F_DUPFD_CLOEXEC, td_init_proc.fd_base);
	if (hi < 0) {
		/* no room up there: keep the low number, still close-on-exec */
		hi = fd;
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	} else if (hi != fd) {
		td_real_close(fd);
	}
	memset(&init, 0, sizeof(init));
	init.d.rule = -1;
	init.d.bind_rule = -1;
	atomic_store(&init.flags, TD_SF_OWN);
	(void)td_fdtab_publish(hi, &init);
	return hi;
}

bool td_ownfd_is(int fd)
{
	struct td_sock *e = td_fdtab_peek(fd);

	return e != NULL && atomic_load(&e->tag) != 0 &&
	       (atomic_load(&e->flags) & TD_SF_OWN);
}

/*
 * Close one of ours, unless the program closed it already (then the
 * number may be the program's again and must not be touched).
 */
void td_ownfd_close(int fd)
{
	struct td_sock gone;

	if (fd < 0 || !td_fdtab_claim(fd, &gone))
		return;
	if (atomic_load(&gone.flags) & TD_SF_OWN)
		td_real_close(fd);
}
