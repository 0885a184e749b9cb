/* teardown: close() — the common path; see shim/rt/closing.c. */
#include "../rt/rt.h"

/*
 * The close of an fd with a live entry, out of line: close() below, for
 * every other fd, then needs no stack frame (a few instructions off each
 * untracked close, a call more for a tracked one, whose close costs
 * hundreds).
 */
__attribute__((noinline)) static int td__close_tracked(struct td_fdent *e, int fd)
{
	const struct td_policy *p;

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

TD_EXPORT int close(int fd)
{
	struct td_fdpage *page = td_fdtab_page(fd);
	unsigned i = td_fdtab_idx(fd);

	if (td_likely(page != NULL)) {
		if (td_unlikely(td_tag_live(atomic_load_explicit(&page->ent[i].tag,
								 memory_order_acquire))))
			return td__close_tracked(&page->ent[i], fd);
		/*
		 * A TCP socket nothing happened to since socket(): its birth
		 * word goes before the real close (the next socket() given
		 * the number, in another thread, must start clean), unless
		 * this is a vfork()ed child, whose parent still holds that
		 * socket.
		 */
		if (atomic_load_explicit(&page->born[i], memory_order_relaxed) != 0 &&
		    td_init_in_own_process())
			atomic_store_explicit(&page->born[i], 0, memory_order_release);
	}
	/* an fd the library does not track: straight to libc, nothing else */
	return td_real_close(fd);
}
