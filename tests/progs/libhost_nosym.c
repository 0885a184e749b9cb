/*
 * libhost_nosym: a test double that makes dlsym(RTLD_NEXT, NAME) fail
 * for chosen names, to see what the library does when a real function it
 * wraps cannot be found (a libc without close_range, say, or a chain of
 * interposers that hides one).
 *
 * Preloaded AFTER libteardown.so, this object's dlsym() is the one the
 * library's calls bind to (the library has no dlsym of its own and is
 * searched first, this object next).  Names listed in HOST_NOSYM
 * (comma-separated) are answered with NULL when asked for with
 * RTLD_NEXT; everything else goes to the real dlsym, called from here so
 * that RTLD_NEXT still means "after this object" (which skips nothing
 * the library looks for: this object defines no other function).
 *
 * At exit it writes "nosym-asked: NAME ..." to stderr, listing the hidden
 * names that were really asked for, so a test knows it hid something.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void *(*dlsym_fn)(void *, const char *);

static char g_asked[1024];
static size_t g_asked_len;

static dlsym_fn real_dlsym(void)
{
	static dlsym_fn fn;

	if (fn == NULL) {
		fn = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
		if (fn == NULL)
			fn = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	}
	return fn;
}

/* Whether name is in the comma-separated list. */
static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	while (list != NULL && *list != '\0') {
		const char *end = strchr(list, ',');
		size_t len = end ? (size_t)(end - list) : strlen(list);

		if (len == n && memcmp(list, name, n) == 0)
			return 1;
		list = end ? end + 1 : NULL;
	}
	return 0;
}

static void remember(const char *name)
{
	size_t n = strlen(name);

	if (g_asked_len + n + 2 < sizeof(g_asked)) {
		g_asked[g_asked_len++] = ' ';
		memcpy(g_asked + g_asked_len, name, n);
		g_asked_len += n;
	}
}

void *dlsym(void *handle, const char *name)
{
	dlsym_fn fn = real_dlsym();

	if (handle == RTLD_NEXT && listed(getenv("HOST_NOSYM"), name)) {
		remember(name);
		return NULL;
	}
	return fn ? fn(handle, name) : NULL;
}

__attribute__((destructor)) static void host_nosym_report(void)
{
	static const char head[] = "nosym-asked:";

	/* write() is the library's wrapper, which falls back to the raw
	 * system call when its real write() is one of the hidden names */
	if (write(2, head, sizeof(head) - 1) < 0 || write(2, g_asked, g_asked_len) < 0 ||
	    write(2, "\n", 1) < 0)
		return;
}
