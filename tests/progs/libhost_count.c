/*
 * libhost_count: a test double that counts the real closing operations
 * made on each fd number.  Preloaded AFTER libteardown.so, it is what
 * the library's dlsym(RTLD_NEXT, "close") (and close_range, dup2, dup3,
 * fclose) finds, so every close the library makes for the program, and
 * every one it makes of its own, passes through here once.
 *
 * Counted per fd number (0..4095), while counting is on:
 *   close(fd); fclose() of a stream on fd; dup2/dup3(old, fd) with a
 *   valid old != fd over an open fd; close_range(first, last) for every
 *   open number in the range.
 * close() calls are also counted apart, to tell the library's own
 * closes of its private descriptors from the rest.
 *
 * One number can be watched (host_count_watch(fd, inode)): there every
 * closing operation counts that finds either nothing open (a second
 * close of a number is a second close, found or not: had another thread
 * been handed the number meanwhile, it would have lost its fd) or the
 * watched file.  An operation that closes a different file at that
 * number is not the program's: the library may briefly open a
 * descriptor of its own right after a close, which takes the number just
 * freed, and close it again.
 *
 * The program drives it through functions it finds with dlsym():
 * host_count_start(), host_count_ops(fd), host_count_closes(fd),
 * host_count_watch(fd, inode), host_count_watched(), host_count_eintr(on).  With eintr on, close() really closes and then
 * returns -1 with errno EINTR, as Linux may when a signal arrives late
 * in close(): the fd is gone, and closing it again would close whatever
 * took the number since.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define HC_MAX 4096

static _Atomic int g_ops[HC_MAX], g_closes[HC_MAX];
static _Atomic int g_on, g_eintr, g_watch_fd = -1, g_watched;
static _Atomic unsigned long g_watch_ino;

static int (*g_close)(int);
static int (*g_close_range)(unsigned int, unsigned int, int);
static int (*g_dup2)(int, int);
static int (*g_dup3)(int, int, int);
static int (*g_fclose)(FILE *);

int host_count_start(void);
int host_count_ops(int fd);
int host_count_closes(int fd);
void host_count_watch(int fd, unsigned long ino);
int host_count_watched(void);
void host_count_eintr(int on);

static void resolve(void)
{
	if (g_close == NULL) {
		g_close_range = (int (*)(unsigned int, unsigned int, int))dlsym(RTLD_NEXT, "close_range");
		g_dup2 = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
		g_dup3 = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
		g_fclose = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
		g_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
	}
}

/* A closing operation on fd (about to be made; whether it finds a file or not). */
static void count(int fd)
{
	struct stat st;
	int open_now;

	if (!atomic_load(&g_on) || fd < 0 || fd >= HC_MAX)
		return;
	open_now = fstat(fd, &st) == 0;
	if (open_now)
		atomic_fetch_add(&g_ops[fd], 1);
	if (fd == atomic_load(&g_watch_fd) &&
	    (!open_now || (unsigned long)st.st_ino == atomic_load(&g_watch_ino)))
		atomic_fetch_add(&g_watched, 1);
}

void host_count_watch(int fd, unsigned long ino)
{
	atomic_store(&g_watched, 0);
	atomic_store(&g_watch_ino, ino);
	atomic_store(&g_watch_fd, fd);
}

int host_count_watched(void)
{
	return atomic_load(&g_watched);
}

int host_count_start(void)
{
	for (int i = 0; i < HC_MAX; i++) {
		atomic_store(&g_ops[i], 0);
		atomic_store(&g_closes[i], 0);
	}
	atomic_store(&g_on, 1);
	return HC_MAX;
}

int host_count_ops(int fd)
{
	return fd >= 0 && fd < HC_MAX ? atomic_load(&g_ops[fd]) : -1;
}

int host_count_closes(int fd)
{
	return fd >= 0 && fd < HC_MAX ? atomic_load(&g_closes[fd]) : -1;
}

void host_count_eintr(int on)
{
	atomic_store(&g_eintr, on);
}

int close(int fd)
{
	int rc;

	resolve();
	count(fd);
	if (atomic_load(&g_on) && fd >= 0 && fd < HC_MAX)
		atomic_fetch_add(&g_closes[fd], 1);
	rc = g_close(fd);
	if (rc == 0 && atomic_load(&g_eintr)) {
		errno = EINTR;
		return -1;
	}
	return rc;
}

int close_range(unsigned int first, unsigned int last, int flags)
{
	resolve();
	if (!(flags & 4 /* CLOSE_RANGE_CLOEXEC: closes nothing */))
		for (unsigned int fd = first; fd <= last && fd < HC_MAX; fd++)
			count((int)fd);
	return g_close_range(first, last, flags);
}

static void count_over(int oldfd, int newfd)
{
	if (oldfd != newfd && fcntl(oldfd, F_GETFD) >= 0 && fcntl(newfd, F_GETFD) >= 0)
		count(newfd);
}

int dup2(int oldfd, int newfd)
{
	resolve();
	count_over(oldfd, newfd);
	return g_dup2(oldfd, newfd);
}

int dup3(int oldfd, int newfd, int flags)
{
	resolve();
	count_over(oldfd, newfd);
	return g_dup3(oldfd, newfd, flags);
}

int fclose(FILE *fp)
{
	resolve();
	if (fp != NULL)
		count(fileno(fp));
	return g_fclose(fp);
}
