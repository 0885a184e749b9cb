/*
 * teardown: prctl() — PR_SET_SECCOMP puts the calling thread into a
 * seccomp sandbox, where any system call its filter does not list kills
 * the process: from then on the library makes none there (td_init_sandbox()
 * in shim/rt/init.c explains).  Every call goes on to libc unchanged.
 */
#include <stdarg.h>
#include <sys/prctl.h>

#include "../rt/rt.h"

TD_EXPORT int prctl(int option, ...)
{
	unsigned long a[4];
	va_list ap;

	va_start(ap, option);
	for (int i = 0; i < 4; i++)
		a[i] = va_arg(ap, unsigned long);
	va_end(ap);
	if (option == PR_SET_SECCOMP)
		td_init_sandbox(false);
	return td_real_prctl(option, a[0], a[1], a[2], a[3]);
}
