/*
 * libfloor: the cost floor of interposition, for tests/bench/calls.py.
 *
 * A preloadable library that wraps the same libc calls as libteardown.so
 * (the list in shim/rt/calls.h) and does nothing but forward each one to
 * the next definition, libc's, found once with dlsym(RTLD_NEXT): one
 * indirect call through the PLT and one through a pointer.  Whatever
 * libteardown.so costs above this is the cost of what it decides, not of
 * being preloaded at all.
 *
 * The pointers are bound in the constructor; a call that arrives before it
 * (another library's constructor) binds its own pointer then.
 */
#include <dlfcn.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* FLOOR(return type, name, (parameters), (arguments)) */
#define FLOOR(ret, name, params, args)                                        \
	static ret(*floor_##name) params;                                     \
	ret name params                                                       \
	{                                                                     \
		if (__builtin_expect(floor_##name == NULL, 0))                \
			floor_##name = (ret(*) params)dlsym(RTLD_NEXT, #name); \
		return floor_##name args;                                     \
	}

FLOOR(int, socket, (int d, int t, int p), (d, t, p))
FLOOR(int, accept, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l))
FLOOR(int, accept4, (int fd, struct sockaddr *a, socklen_t *l, int f), (fd, a, l, f))
FLOOR(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
FLOOR(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l))
FLOOR(int, setsockopt, (int fd, int lv, int nm, const void *v, socklen_t l), (fd, lv, nm, v, l))
FLOOR(int, shutdown, (int fd, int how), (fd, how))
FLOOR(int, close, (int fd), (fd))
FLOOR(int, fclose, (FILE * f), (f))
FLOOR(int, close_range, (unsigned a, unsigned b, int f), (a, b, f))
FLOOR(int, dup, (int fd), (fd))
FLOOR(int, dup2, (int o, int n), (o, n))
FLOOR(int, dup3, (int o, int n, int f), (o, n, f))
FLOOR(pid_t, fork, (void), ())
FLOOR(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n))
FLOOR(ssize_t, readv, (int fd, const struct iovec *v, int n), (fd, v, n))
FLOOR(ssize_t, recv, (int fd, void *b, size_t n, int fl), (fd, b, n, fl))
FLOOR(ssize_t, recvfrom, (int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l),
      (fd, b, n, fl, a, l))
FLOOR(ssize_t, recvmsg, (int fd, struct msghdr *m, int fl), (fd, m, fl))
FLOOR(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n))
FLOOR(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n))
FLOOR(ssize_t, send, (int fd, const void *b, size_t n, int fl), (fd, b, n, fl))
FLOOR(ssize_t, sendto,
      (int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t l),
      (fd, b, n, fl, a, l))
FLOOR(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl))
FLOOR(int, posix_spawn,
      (pid_t * pid, const char *path, const posix_spawn_file_actions_t *fa,
       const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
      (pid, path, fa, at, argv, envp))
FLOOR(int, posix_spawnp,
      (pid_t * pid, const char *file, const posix_spawn_file_actions_t *fa,
       const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
      (pid, file, fa, at, argv, envp))
FLOOR(int, posix_spawn_file_actions_adddup2,
      (posix_spawn_file_actions_t * fa, int fd, int newfd), (fa, fd, newfd))

static void (*floor_closefrom)(int);

void closefrom(int lo)
{
	if (__builtin_expect(floor_closefrom == NULL, 0))
		floor_closefrom = (void (*)(int))dlsym(RTLD_NEXT, "closefrom");
	floor_closefrom(lo);
}

static long (*floor_syscall)(long, ...);

long syscall(long n, ...)
{
	va_list ap;
	long a, b, c, d, e, f;

	va_start(ap, n);
	a = va_arg(ap, long);
	b = va_arg(ap, long);
	c = va_arg(ap, long);
	d = va_arg(ap, long);
	e = va_arg(ap, long);
	f = va_arg(ap, long);
	va_end(ap);
	if (__builtin_expect(floor_syscall == NULL, 0))
		floor_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	return floor_syscall(n, a, b, c, d, e, f);
}

__attribute__((constructor)) static void floor_init(void)
{
#define BIND(name) floor_##name = (__typeof__(floor_##name))dlsym(RTLD_NEXT, #name)
	BIND(socket);
	BIND(accept);
	BIND(accept4);
	BIND(connect);
	BIND(bind);
	BIND(setsockopt);
	BIND(shutdown);
	BIND(close);
	BIND(fclose);
	BIND(close_range);
	BIND(closefrom);
	BIND(dup);
	BIND(dup2);
	BIND(dup3);
	BIND(fork);
	BIND(syscall);
	BIND(write);
	BIND(writev);
	BIND(send);
	BIND(sendto);
	BIND(sendmsg);
	BIND(posix_spawn);
	BIND(posix_spawnp);
	BIND(posix_spawn_file_actions_adddup2);
#undef BIND
}
