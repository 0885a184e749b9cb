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
	const struct td_policy *p = td_init_active();
	struct td_closing c;
	int fd, rc;

	if (p == NULL || fp == NULL || (fd = fileno(fp)) < 0 ||
	    !td_closing_begin(p, &c, fd))
		return td_real_fclose(fp);
	rc = td_real_fclose(fp);
	td_closing_end(p, &c, rc == 0);
	return rc;
}
