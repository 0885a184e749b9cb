/*
 * libfloor: the cost floor of interposition, for tests/bench/calls.py and
 * the forwarding-only preload of tests/bench/servers.py.
 *
 * A preloadable library that wraps the same libc calls as libteardown.so
 * (the list in shim/rt/calls.h) and does nothing but forward each one to
 * the next definition, libc's, found once with dlsym(RTLD_NEXT): one
 * indirect call through the PLT and one through a pointer.  Whatever
 * libteardown.so costs above this is the cost of what it decides, not of
 * being preloaded at all.  Left out: vfork() (a forwarding frame would be
 * gone when its child returns through it) and the execl() family (their
 * argument lists cannot be passed on without building an argv, which is
 * the library's work, not the floor's); test_host_calls.py's
 * test_the_cost_floor_wraps_what_the_library_wraps checks that nothing
 * else is missing.
 *
 * The pointers are bound in the constructor; a call that arrives before it
 * (another library's constructor) binds its own pointer then.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * The calls, one place: each X(return type, name, (parameters), (arguments))
 * makes a wrapper below and a binding in the constructor.
 */
#define FLOOR_CALLS(X) \
	X(int, socket, (int d, int t, int p), (d, t, p)) \
	X(int, accept, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l)) \
	X(int, accept4, (int fd, struct sockaddr *a, socklen_t *l, int f), (fd, a, l, f)) \
	X(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l)) \
	X(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l)) \
	X(int, setsockopt, (int fd, int lv, int nm, const void *v, socklen_t l), (fd, lv, nm, v, l)) \
	X(int, shutdown, (int fd, int how), (fd, how)) \
	X(int, close, (int fd), (fd)) \
	X(int, fclose, (FILE * f), (f)) \
	X(int, close_range, (unsigned a, unsigned b, int f), (a, b, f)) \
	X(int, dup, (int fd), (fd)) \
	X(int, dup2, (int o, int n), (o, n)) \
	X(int, dup3, (int o, int n, int f), (o, n, f)) \
	X(pid_t, fork, (void), ()) \
	X(pid_t, _Fork, (void), ()) \
	X(pid_t, wait, (int *s), (s)) \
	X(pid_t, waitpid, (pid_t p, int *s, int o), (p, s, o)) \
	X(pid_t, wait3, (int *s, int o, struct rusage *u), (s, o, u)) \
	X(pid_t, wait4, (pid_t p, int *s, int o, struct rusage *u), (p, s, o, u)) \
	X(int, waitid, (idtype_t t, id_t i, siginfo_t *f, int o), (t, i, f, o)) \
	X(int, getsockopt, (int fd, int lv, int nm, void *v, socklen_t *l), (fd, lv, nm, v, l)) \
	X(int, recvmmsg, (int fd, struct mmsghdr *v, unsigned int n, int fl, struct timespec *t), (fd, v, n, fl, t)) \
	X(int, sendmmsg, (int fd, struct mmsghdr *v, unsigned int n, int fl), (fd, v, n, fl)) \
	X(int, system, (const char *c), (c)) \
	X(FILE *, popen, (const char *c, const char *m), (c, m)) \
	X(int, execve, (const char *p, char *const a[], char *const e[]), (p, a, e)) \
	X(int, execv, (const char *p, char *const a[]), (p, a)) \
	X(int, execvp, (const char *f, char *const a[]), (f, a)) \
	X(int, execvpe, (const char *f, char *const a[], char *const e[]), (f, a, e)) \
	X(int, fexecve, (int fd, char *const a[], char *const e[]), (fd, a, e)) \
	X(int, execveat, (int d, const char *p, char *const a[], char *const e[], int f), (d, p, a, e, f)) \
	X(int, setuid, (uid_t u), (u)) \
	X(int, seteuid, (uid_t e), (e)) \
	X(int, setreuid, (uid_t r, uid_t e), (r, e)) \
	X(int, setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s)) \
	X(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n)) \
	X(ssize_t, readv, (int fd, const struct iovec *v, int n), (fd, v, n)) \
	X(ssize_t, recv, (int fd, void *b, size_t n, int fl), (fd, b, n, fl)) \
	X(ssize_t, recvfrom, (int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l), (fd, b, n, fl, a, l)) \
	X(ssize_t, recvmsg, (int fd, struct msghdr *m, int fl), (fd, m, fl)) \
	X(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n)) \
	X(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n)) \
	X(ssize_t, send, (int fd, const void *b, size_t n, int fl), (fd, b, n, fl)) \
	X(ssize_t, sendto, (int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t l), (fd, b, n, fl, a, l)) \
	X(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl)) \
	X(int, posix_spawn, (pid_t * pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at, char *const argv[], char *const envp[]), (pid, path, fa, at, argv, envp)) \
	X(int, posix_spawnp, (pid_t * pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at, char *const argv[], char *const envp[]), (pid, file, fa, at, argv, envp)) \
	X(int, posix_spawn_file_actions_adddup2, (posix_spawn_file_actions_t * fa, int fd, int newfd), (fa, fd, newfd))

/* a wrapper: forward to the next definition, bound once */
#define FLOOR(ret, name, params, args)                                        \
	static ret(*floor_##name) params;                                     \
	ret name params                                                       \
	{                                                                     \
		if (__builtin_expect(floor_##name == NULL, 0))                \
			floor_##name = (ret(*) params)dlsym(RTLD_NEXT, #name); \
		return floor_##name args;                                     \
	}
FLOOR_CALLS(FLOOR)

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

/* variadic: one argument word passed on, as the library's hooks do */
int fcntl64(int fd, int cmd, ...);
static int (*floor_fcntl)(int, int, ...);
static int (*floor_fcntl64)(int, int, ...);
static int (*floor_prctl)(int, ...);

/* fcntl() and fcntl64(): the same forwarding, one definition */
#define FLOOR_FCNTL(name)                                                     \
	int name(int fd, int cmd, ...)                                        \
	{                                                                     \
		va_list ap;                                                   \
		void *arg;                                                    \
                                                                              \
		va_start(ap, cmd);                                            \
		arg = va_arg(ap, void *);                                     \
		va_end(ap);                                                   \
		if (__builtin_expect(floor_##name == NULL, 0))                \
			floor_##name = (int (*)(int, int, ...))dlsym(RTLD_NEXT, #name); \
		return floor_##name(fd, cmd, arg);                            \
	}
FLOOR_FCNTL(fcntl)
FLOOR_FCNTL(fcntl64)

int prctl(int o, ...)
{
	va_list ap;
	unsigned long a, b, c, d;

	va_start(ap, o);
	a = va_arg(ap, unsigned long);
	b = va_arg(ap, unsigned long);
	c = va_arg(ap, unsigned long);
	d = va_arg(ap, unsigned long);
	va_end(ap);
	if (__builtin_expect(floor_prctl == NULL, 0))
		floor_prctl = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
	return floor_prctl(o, a, b, c, d);
}

static void (*floor__exit)(int);
static void (*floor__Exit)(int);

void _exit(int st)
{
	if (__builtin_expect(floor__exit == NULL, 0))
		floor__exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	floor__exit(st);
	__builtin_unreachable();
}

void _Exit(int st)
{
	if (__builtin_expect(floor__Exit == NULL, 0))
		floor__Exit = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
	floor__Exit(st);
	__builtin_unreachable();
}

/*
 * Every pointer bound here, once, before the program runs: a call left to
 * bind itself at its first use would bind again in every forked child of a
 * fork-per-connection server (its dlsym() the child's page faults), a cost
 * no preload has to pay.
 */
__attribute__((constructor)) static void floor_init(void)
{
#define BIND(ret, name, params, args) floor_##name = (ret(*) params)dlsym(RTLD_NEXT, #name);
	FLOOR_CALLS(BIND)
#undef BIND
	floor_closefrom = (void (*)(int))dlsym(RTLD_NEXT, "closefrom");
	floor_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	floor_fcntl = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl");
	floor_fcntl64 = (int (*)(int, int, ...))dlsym(RTLD_NEXT, "fcntl64");
	floor_prctl = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
	floor__exit = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
	floor__Exit = (void (*)(int))dlsym(RTLD_NEXT, "_Exit");
}
