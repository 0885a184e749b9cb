/*
 * teardown: getsockopt() — SO_ERROR is how an event loop learns why a
 * socket failed (after EPOLLERR, or after a non-blocking connect), and
 * reading it takes the kernel's pending error, as a failed read or write
 * does.  A connection that timed out (ETIMEDOUT: retransmissions,
 * keepalive probes, TCP_USER_TIMEOUT or the SYNs running out) is marked
 * then (td_fdtab_mark_timed_out()), so that its close says why "timeout"
 * and not "reset", which is all a CLOSE socket with no pending error could
 * say.  Every other option, and every fd the library does not track, is
 * the real call alone: no initialising, allocating or locking, errno and
 * the result untouched.
 */
#include <string.h>

#include "../rt/rt.h"

TD_EXPORT int getsockopt(int fd, int level, int name, void *v, socklen_t *len)
{
	int rc = td_real_getsockopt(fd, level, name, v, len), err;

	if (td_unlikely(level == SOL_SOCKET && name == SO_ERROR) && rc == 0 && v != NULL &&
	    len != NULL && *len >= (socklen_t)sizeof(err)) {
		memcpy(&err, v, sizeof(err));
		if (err == ETIMEDOUT)
			td_fdtab_mark_timed_out(fd);
	}
	return rc;
}
