/* teardown: close() — the common path; see shim/rt/closing.c. */
#include "../rt/rt.h"

/*
 * The close of an fd with a live entry, out of line: close() below, for
 * every other fd, then needs no stack frame (a few instructions off each
 * untracked close, a call more for a tracked one, whose close costs
 * hundreds).
 */
TD_CHILD_RUNS
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

TD_CHILD_RUNS
TD_EXPORT int close(int fd)
{
	struct td_fdent *e = td_fdtab_peek(fd);
	uint32_t t;

	if (td_likely(e != NULL)) {
		/* one load of the tag, one test for both kinds of entry */
		t = atomic_load_explicit(&e->tag, memory_order_acquire);
		if (td_unlikely(t & (TD_TAG_LIVE | TD_TAG_BORN))) {
			if (td_tag_live(t))
				return td__close_tracked(e, fd);
			/*
			 * A TCP socket nothing happened to since socket(): its
			 * born bit goes before the real close (the next socket()
			 * given the number, in another thread, must start
			 * clean), unless this is a vfork()ed child, whose parent
			 * still holds that socket.  One atomic bit clear (lock
			 * btr on x86-64) that says whether the bit was still
			 * there: a first use in another thread that published
			 * the entry meanwhile (a program using a socket as it
			 * closes it) took it; then the entry's close.
			 */
			if (td_init_in_own_process() &&
			    !(atomic_fetch_and_explicit(&e->tag, ~TD_TAG_BORN, memory_order_release) &
			      TD_TAG_BORN) &&
			    td_tag_live(atomic_load_explicit(&e->tag, memory_order_acquire)))
				return td__close_tracked(e, fd);
		}
	}
	/* an fd the library does not track: straight to libc, nothing else */
	return td_real_close(fd);
}
