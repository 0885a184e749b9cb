/* teardown: close() — the common path; see shim/rt/closing.c. */
#include "../rt/rt.h"

TD_EXPORT int close(int fd)
{
	const struct td_policy *p = td_active();

	if (p == NULL)
		return td_real_close(fd);
	return td_close_fd(p, fd, TD_PATH_CLOSE);
}
