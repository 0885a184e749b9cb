/*
 * teardown: the real libc functions behind the wrapped names, one typed
 * entry per line of calls.h, and the one way every part of the library
 * calls them: td_real_<name>().  An entry with no symbol bound (yet)
 * points at its fallback, the raw system call or a late bind (real.c).
 */
#ifndef TD_REAL_H
#define TD_REAL_H

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define TD_HIDDEN __attribute__((visibility("hidden")))

#define TD_CALL(ret, name, params, args, raw) __typeof__(name) *name;
#define TD_CALLV(name, params, args, raw) __typeof__(name) *name;
struct td_real_fns {
#include "calls.h"
};
#undef TD_CALL
#undef TD_CALLV

extern struct td_real_fns td_real TD_HIDDEN;

/*
 * The fallbacks: td_real_fallback_<name>() does what calls.h says <name>
 * does with no real symbol, and each entry of td_real points at its own
 * until the symbol is bound (real.c), so that every td_real_<name>() is
 * one indirect call with no test.  Four real functions are variadic (fcntl,
 * fcntl64, prctl, syscall): their fallbacks take the fixed arguments
 * calls.h lists, which the psABIs the library builds for (x86-64,
 * AArch64) pass in the same registers, and the hooks call them with
 * exactly those.
 */
#define TD_CALL(ret, name, params, args, raw) ret td_real_fallback_##name params TD_HIDDEN;
#define TD_CALLV(name, params, args, raw) void td_real_fallback_##name params TD_HIDDEN;
#include "calls.h"
#undef TD_CALL
#undef TD_CALLV
/*
 * A fallback as its entry's type.  Through void (*)(void), the cast GCC
 * documents for a deliberate change of function type: the prototypes
 * differ only where the real one is variadic or takes a transparent
 * union (__SOCKADDR_ARG), passed as its first member.
 */
#define TD_REAL_FALLBACK(name) ((__typeof__(td_real.name))(void (*)(void))td_real_fallback_##name)
/* Whether name's real symbol is bound. */
#define td_real_bound(name) (td_real.name != TD_REAL_FALLBACK(name))
/* socket()'s fallback, the hook's own (shim/hook/socket.c). */
int td_socket_unbound(int d, int t, int p) TD_HIDDEN;
/* glibc's list of open stdio streams (_IO_list_all, bound with the calls;
 * NULL where there is none): see td_closing_at_exit(). */
extern FILE **td_real_stdio_list TD_HIDDEN;
/* glibc's __libc_single_threaded (NULL where there is none): true only
 * while the process never created a thread. */
extern char *td_real_single_threaded TD_HIDDEN;

/* Bind every real symbol (dlsym RTLD_NEXT), once; safe to call often. */
void td_real_bind_all(void) TD_HIDDEN;

/* A system call without libc's syscall() (which this library wraps). */
long td_real_sys(long n, long a, long b, long c, long d, long e, long f) TD_HIDDEN;
#define td_real_sys0(n) td_real_sys((n), 0, 0, 0, 0, 0, 0)
#define td_real_sys1(n, a) td_real_sys((n), (long)(a), 0, 0, 0, 0, 0)
#define td_real_sys2(n, a, b) td_real_sys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define td_real_sys3(n, a, b, c) td_real_sys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
/* dup2 as a system call, on architectures without SYS_dup2 too. */
int td_real_sys_dup2(int oldfd, int newfd) TD_HIDDEN;
/*
 * The library's own descriptors are made with system calls, never with
 * libc names the program (or a sanitizer's runtime in it) may interpose:
 * what interposes them would see fds appear that it never sees closed
 * (td_real_close() is libc's own close).
 */
#define td_real_sys_openat(dfd, path, flags, mode) \
	((int)td_real_sys(SYS_openat, (dfd), (long)(path), (flags), (mode), 0, 0))
#define td_real_sys_open(path, flags, mode) td_real_sys_openat(AT_FDCWD, path, flags, mode)
#define td_real_sys_dupfd(fd, min) ((int)td_real_sys3(SYS_fcntl, (fd), F_DUPFD_CLOEXEC, (min)))
/*
 * The same for every other call the library makes on a socket or file:
 * by system call, or through td_real_<name>() for the calls it wraps
 * itself, never by a name the program may define (its definition would
 * come first) or a sanitizer intercepts (it would see the library's work
 * as the program's).
 */
#define td_real_sys_getsockopt(fd, lv, nm, v, len) \
	((int)td_real_sys(SYS_getsockopt, (fd), (lv), (nm), (long)(v), (long)(len), 0))
#define td_real_sys_getsockname(fd, sa, len) ((int)td_real_sys3(SYS_getsockname, (fd), (sa), (len)))
#define td_real_sys_getpeername(fd, sa, len) ((int)td_real_sys3(SYS_getpeername, (fd), (sa), (len)))
#define td_real_sys_ioctl(fd, req, arg) ((int)td_real_sys3(SYS_ioctl, (fd), (req), (arg)))
#define td_real_sys_fstat(fd, st) ((int)td_real_sys2(SYS_fstat, (fd), (st)))
#define td_real_sys_fcntl(fd, cmd, arg) ((int)td_real_sys3(SYS_fcntl, (fd), (cmd), (arg)))
#define td_real_sys_listen(fd, n) ((int)td_real_sys2(SYS_listen, (fd), (n)))
#define td_real_sys_readlink(path, buf, n) \
	((ssize_t)td_real_sys(SYS_readlinkat, AT_FDCWD, (long)(path), (long)(buf), (long)(n), 0, 0))

/*
 * td_real_<name>(): inline, because close() of an fd the library does not
 * track is one of these and nothing else; a call through a second function
 * would be most of what the library adds to it (make bench BENCH=calls).
 * No test: every entry of td_real points somewhere from the start (real.c).
 */
#define TD_CALL(ret, name, params, args, raw) \
	static inline ret td_real_##name params \
	{                                         \
		return td_real.name args;         \
	}
#define TD_CALLV(name, params, args, raw) \
	static inline void td_real_##name params \
	{                                        \
		td_real.name args;               \
	}
#include "calls.h"
#undef TD_CALL
#undef TD_CALLV

#endif
