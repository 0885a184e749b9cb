/*
 * teardown: the real libc functions behind the interposed names (the
 * list is calls.h).
 *
 * Every symbol is looked up once with dlsym(RTLD_NEXT), at start-up, so
 * other preloaded interposers (libasan, another copy of a socket wrapper)
 * keep working in chain.  A successful lookup does not allocate on glibc
 * 2.36; a failed one does, which is why no lookup happens in a hook after
 * start-up except as the last resort of a call with no system call behind
 * it (fclose, fork, posix_spawn) made before the constructor ran.  A
 * symbol that resolves to our own function (a circular lookup) or not at
 * all keeps its fallback, and td_real_<name>() makes the raw system call
 * or fails with ENOSYS: the library never exits its host.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "real.h"
#include "teardown/layout.h"

/* A call with no system call behind it, made before start-up: bind late
 * (only inside a fallback below). */
#define TD_LATE(name, args, fail) \
	(td_real_bind_all(), td_real_bound(name) ? td_real.name args : (errno = ENOSYS, (fail)))
/* The same for calls that return an error number instead of setting errno. */
#define TD_LATE_RC(name, args) \
	(td_real_bind_all(), td_real_bound(name) ? td_real.name args : ENOSYS)

/* Every entry starts at its fallback and is replaced by the real symbol
 * once bound: never NULL. */
#define TD_CALL(ret, name, params, args, raw) .name = TD_REAL_FALLBACK(name),
#define TD_CALLV(name, params, args, raw) TD_CALL(void, name, params, args, raw)
TD_CHILD_READ struct td_real_fns td_real = {
#include "calls.h"
};
#undef TD_CALL
#undef TD_CALLV
FILE **td_real_stdio_list;
char *td_real_single_threaded;

/* The fallbacks (real.h): what calls.h says each call does unbound. */
#define TD_CALL(ret, name, params, args, raw)                      \
	__attribute__((noinline, cold)) ret td_real_fallback_##name params \
	{                                                                  \
		return raw;                                                \
	}
#define TD_CALLV(name, params, args, raw)                           \
	__attribute__((noinline, cold)) void td_real_fallback_##name params \
	{                                                                   \
		raw;                                                        \
	}
#include "calls.h"
#undef TD_CALL
#undef TD_CALLV

static pthread_once_t td__real_once = PTHREAD_ONCE_INIT;

/* Look up name in the objects loaded after us; refuse our own definition. */
static void *td__next(const char *name, void *self)
{
	void *f = dlsym(RTLD_NEXT, name);

	return f == self ? NULL : f;
}

/* An entry keeps its fallback where the lookup finds nothing. */
static void td__real_bind_once(void)
{
	void *f;

#define TD_CALL(ret, name, params, args, raw)          \
	if ((f = td__next(#name, (void *)name)) != NULL) \
		td_real.name = (__typeof__(td_real.name))f;
#define TD_CALLV(name, params, args, raw) TD_CALL(void, name, params, args, raw)
#include "calls.h"
#undef TD_CALL
#undef TD_CALLV
	td_real_stdio_list = (FILE **)dlsym(RTLD_NEXT, "_IO_list_all");
	td_real_single_threaded = (char *)dlsym(RTLD_NEXT, "__libc_single_threaded");
}

void td_real_bind_all(void)
{
	pthread_once(&td__real_once, td__real_bind_once);
}

int td_real_sys_dup2(int oldfd, int newfd)
{
#ifdef SYS_dup2
	return (int)td_real_sys2(SYS_dup2, oldfd, newfd);
#else
	if (oldfd == newfd)
		return (int)td_real_sys3(SYS_fcntl, oldfd, F_GETFD, 0) < 0 ? -1 : newfd;
	return (int)td_real_sys3(SYS_dup3, oldfd, newfd, 0);
#endif
}

/*
 * A raw system call.  libc's syscall() is one of our wrapped names, so the
 * library's own raw calls must not go through it.
 */
TD_CHILD_RUNS
long td_real_sys(long n, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	if (x0 < 0 && x0 > -4096) {
		errno = (int)-x0;
		return -1;
	}
	return x0;
#else
	if (td_real_bound(syscall))
		return td_real.syscall(n, a, b, c, d, e, f);
	errno = ENOSYS;
	return -1;
#endif
}
