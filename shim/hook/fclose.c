/*
 * teardown: fclose() — glibc closes the stream's fd internally, never
 * through close(), so a socket wrapped with fdopen() gets its close-time
 * work here.  The stream is flushed by the real fclose() before the fd
 * goes; a drain's shutdown(SHUT_WR) comes after, behind all of it.
 */
#include <stdio.h>

#include "../rt/rt.h"

TD_EXPORT int fclose(FILE *fp)
{
	const struct td_policy *p = td_active();
	struct td_closing c;
	struct td_sock s;
	int fd, saved, rc, err;

	if (p == NULL || fp == NULL || (fd = fileno(fp)) < 0)
		return td_real_fclose(fp);
	{
		struct td_sock *e = td_fd_live(fd);

		if (e == NULL || !td_in_own_process())
			return td_real_fclose(fp);
		if ((atomic_load(&e->flags) & TD_SF_OWN) || td_sock_rule(p, e) == NULL) {
			td_fd_forget(fd);
			return td_real_fclose(fp);
		}
	}
	saved = errno;
	if (!td_fd_claim(fd, &s))
		return td_real_fclose(fp);
	td_close_prepare(p, &c, fd, &s, TD_PATH_FCLOSE);
	errno = saved;
	rc = td_real_fclose(fp);
	err = errno;
	td_close_finish(p, &c, rc, err);
	errno = rc == 0 ? saved : err;
	return rc;
}
