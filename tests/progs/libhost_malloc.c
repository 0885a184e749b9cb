/*
 * libhost_malloc: a malloc interposer, as memory debuggers and
 * alternative allocators are.  Preloaded AFTER libteardown.so, it is the
 * malloc, calloc, realloc and free that glibc's allocations, and any the
 * library made through malloc(), reach (the library allocates from
 * mappings of its own: none should).
 *
 * It forwards to glibc's __libc_malloc and friends, so it never needs
 * dlsym() itself (which may allocate: that is the classic infinite
 * recursion of malloc interposers).  Like a debugging allocator that
 * logs to a descriptor, each call outside its own per-thread guard also
 * calls close(-1) through the global symbol, which is libteardown's
 * close(): the library is re-entered from inside its own start-up (its
 * calloc, its dlopen, its dlsym) and from inside libc and the loader.
 *
 * At exit it writes a JSON report to the file named by HOST_MALLOC_OUT:
 * calls per function, re-entries made, and calls per calling object
 * (found with dladdr() from the return addresses), so a test can check
 * whose allocations came through here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);

#define CALLERS 512

static _Atomic long g_malloc, g_calloc, g_realloc, g_free, g_reentered;
static _Atomic uintptr_t g_caller[CALLERS];
static _Atomic long g_caller_calls[CALLERS];
static __thread int g_inside __attribute__((tls_model("initial-exec")));

/* Count a call from return address ra (open addressing, no allocation). */
static void record(void *ra)
{
	uintptr_t key = (uintptr_t)ra;
	size_t h = (size_t)(key >> 4) % CALLERS;

	for (size_t i = 0; i < CALLERS; i++) {
		size_t k = (h + i) % CALLERS;
		uintptr_t cur = atomic_load(&g_caller[k]), zero = 0;

		if (cur == key || (cur == 0 && (atomic_compare_exchange_strong(&g_caller[k], &zero, key) ||
						zero == key))) {
			atomic_fetch_add(&g_caller_calls[k], 1);
			return;
		}
	}
}

/* Re-enter libteardown through its close(), once per call, never nested. */
static void reenter(void)
{
	int saved;

	if (g_inside)
		return;
	g_inside = 1;
	saved = errno;
	close(-1);
	atomic_fetch_add(&g_reentered, 1);
	errno = saved;
	g_inside = 0;
}

void *malloc(size_t n)
{
	atomic_fetch_add(&g_malloc, 1);
	record(__builtin_return_address(0));
	reenter();
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	atomic_fetch_add(&g_calloc, 1);
	record(__builtin_return_address(0));
	reenter();
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	atomic_fetch_add(&g_realloc, 1);
	record(__builtin_return_address(0));
	reenter();
	return __libc_realloc(p, n);
}

void free(void *p)
{
	atomic_fetch_add(&g_free, 1);
	__libc_free(p);
}

__attribute__((destructor)) static void host_malloc_report(void)
{
	const char *path = getenv("HOST_MALLOC_OUT");
	char buf[8192];
	int len, fd;

	if (path == NULL)
		return;
	g_inside = 1; /* the report itself must not count or re-enter */
	len = snprintf(buf, sizeof(buf),
		       "{\"malloc\": %ld, \"calloc\": %ld, \"realloc\": %ld, \"free\": %ld, "
		       "\"reentered\": %ld, \"callers\": {",
		       atomic_load(&g_malloc), atomic_load(&g_calloc), atomic_load(&g_realloc),
		       atomic_load(&g_free), atomic_load(&g_reentered));
	/* calls per calling object: merge the addresses by dladdr() name */
	{
		const char *names[64];
		long calls[64];
		int nn = 0;

		for (size_t i = 0; i < CALLERS; i++) {
			Dl_info info;
			const char *name = "?";
			uintptr_t a = atomic_load(&g_caller[i]);
			int j;

			if (a == 0)
				continue;
			if (dladdr((void *)a, &info) != 0 && info.dli_fname != NULL) {
				name = strrchr(info.dli_fname, '/');
				name = name ? name + 1 : info.dli_fname;
			}
			for (j = 0; j < nn && strcmp(names[j], name) != 0; j++)
				;
			if (j == nn && nn < 64) {
				names[nn] = name;
				calls[nn++] = 0;
			}
			if (j < nn)
				calls[j] += atomic_load(&g_caller_calls[i]);
		}
		for (int j = 0; j < nn && len < (int)sizeof(buf) - 128; j++)
			len += snprintf(buf + len, sizeof(buf) - (size_t)len, "%s\"%s\": %ld",
					j ? ", " : "", names[j], calls[j]);
	}
	len += snprintf(buf + len, sizeof(buf) - (size_t)len, "}}\n");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, buf, (size_t)len) < 0)
			len = 0;
		close(fd);
	}
}
