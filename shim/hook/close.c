/* teardown: close() — the common path; see shim/rt/closing.c. */
#include "../rt/rt.h"

TD_EXPORT int close(int fd)
{
	const struct td_policy *p;
	struct td_fdent *e = td_fdtab_live(fd);

	/* an fd the library does not track: straight to libc, nothing else */
	if (td_likely(e == NULL))
		return td_real_close(fd);
	/* a socket nothing was decided for (never connected, bound or
	 * accepted under a rule): drop the entry, close */
	if ((atomic_load_explicit(&e->flags, memory_order_relaxed) & TD_SF_BARE) &&
	    td_init_in_own_process()) {
		td_fdent_forget(e);
		return td_real_close(fd);
	}
	p = td_init_active();
	if (p == NULL)
		return td_real_close(fd);
	return td_closing_fd(p, fd);
}
