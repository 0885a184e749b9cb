/*
 * teardown: the real libc functions behind the interposed names.
 *
 * Every symbol is looked up once with dlsym(RTLD_NEXT), so other
 * preloaded interposers (libasan, another copy of a socket wrapper) keep
 * working in chain.  A successful lookup does not allocate on glibc 2.36;
 * a failed one does, which is why no lookup ever happens in a hook after
 * start-up.  A symbol that resolves to our own function (a circular
 * lookup) or not at all stays NULL, and the wrapper falls back to the raw
 * system call or fails with ENOSYS: the library never exits its host.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

struct td_real_fns td_real;

static pthread_once_t td__real_once = PTHREAD_ONCE_INIT;

/* Look up name in the objects loaded after us; refuse our own definition. */
static void *td__next(const char *name, void *self)
{
	void *f = dlsym(RTLD_NEXT, name);

	return f == self ? NULL : f;
}

#define TD_BIND(name) \
	(td_real.name = (__typeof__(td_real.name))td__next(#name, (void *)name))

static void td__real_bind_once(void)
{
	TD_BIND(socket);
	TD_BIND(accept);
	TD_BIND(accept4);
	TD_BIND(connect);
	TD_BIND(bind);
	TD_BIND(setsockopt);
	TD_BIND(shutdown);
	TD_BIND(close);
	TD_BIND(fclose);
	TD_BIND(close_range);
	TD_BIND(closefrom);
	TD_BIND(dup);
	TD_BIND(dup2);
	TD_BIND(dup3);
	TD_BIND(fork);
	TD_BIND(syscall);
	TD_BIND(write);
	TD_BIND(writev);
	TD_BIND(send);
	TD_BIND(sendto);
	TD_BIND(sendmsg);
	TD_BIND(posix_spawn);
	TD_BIND(posix_spawnp);
	TD_BIND(posix_spawn_file_actions_adddup2);
}

void td_real_bind(void)
{
	pthread_once(&td__real_once, td__real_bind_once);
}

/*
 * A raw system call.  libc's syscall() is one of our wrapped names, so the
 * library's own raw calls must not go through it.
 */
long td_sys(long n, long a, long b, long c, long d, long e, long f)
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
	if (td_real.syscall)
		return td_real.syscall(n, a, b, c, d, e, f);
	errno = ENOSYS;
	return -1;
#endif
}

int td_real_close(int fd)
{
	if (td_likely(td_real.close != NULL))
		return td_real.close(fd);
	return (int)td_sys1(SYS_close, fd);
}

int td_real_dup2(int oldfd, int newfd)
{
	if (td_likely(td_real.dup2 != NULL))
		return td_real.dup2(oldfd, newfd);
#ifdef SYS_dup2
	return (int)td_sys2(SYS_dup2, oldfd, newfd);
#else
	if (oldfd == newfd)
		return (int)td_sys3(SYS_fcntl, oldfd, F_GETFD, 0) < 0 ? -1 : newfd;
	return (int)td_sys3(SYS_dup3, oldfd, newfd, 0);
#endif
}

int td_real_dup3(int oldfd, int newfd, int flags)
{
	if (td_likely(td_real.dup3 != NULL))
		return td_real.dup3(oldfd, newfd, flags);
	return (int)td_sys3(SYS_dup3, oldfd, newfd, flags);
}

int td_real_close_range(unsigned first, unsigned last, int flags)
{
	if (td_likely(td_real.close_range != NULL))
		return td_real.close_range(first, last, flags);
	return (int)td_sys3(SYS_close_range, first, last, flags);
}

int td_real_shutdown(int fd, int how)
{
	if (td_likely(td_real.shutdown != NULL))
		return td_real.shutdown(fd, how);
	return (int)td_sys2(SYS_shutdown, fd, how);
}

int td_real_setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
	if (td_likely(td_real.setsockopt != NULL))
		return td_real.setsockopt(fd, level, name, v, len);
	return (int)td_sys((long)SYS_setsockopt, fd, level, name, (long)v, len, 0);
}

int td_real_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (td_likely(td_real.connect != NULL))
		return td_real.connect(fd, sa, len);
	return (int)td_sys3(SYS_connect, fd, sa, len);
}

ssize_t td_real_write(int fd, const void *buf, size_t len)
{
	if (td_likely(td_real.write != NULL))
		return td_real.write(fd, buf, len);
	return td_sys3(SYS_write, fd, buf, len);
}

ssize_t td_real_send(int fd, const void *buf, size_t len, int flags)
{
	if (td_likely(td_real.send != NULL))
		return td_real.send(fd, buf, len, flags);
	return td_sys((long)SYS_sendto, fd, (long)buf, (long)len, flags, 0, 0);
}

int td_real_socket(int domain, int type, int protocol)
{
	if (td_likely(td_real.socket != NULL))
		return td_real.socket(domain, type, protocol);
	return (int)td_sys3(SYS_socket, domain, type, protocol);
}

int td_real_bind_addr(int fd, const struct sockaddr *sa, socklen_t len)
{
	if (td_likely(td_real.bind != NULL))
		return td_real.bind(fd, sa, len);
	return (int)td_sys3(SYS_bind, fd, sa, len);
}
