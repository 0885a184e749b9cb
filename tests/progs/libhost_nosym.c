/*
 * libhost_nosym: a test double that makes libteardown's
 * dlsym(RTLD_NEXT, NAME) fail for chosen names, to see what the library
 * does when a real function it wraps cannot be found (a libc without
 * close_range, say, or a chain of interposers that hides one).
 *
 * Preloaded AFTER libteardown.so, this object's dlsym() is the one every
 * object's calls bind to (neither the program, nor libteardown, nor an
 * ASan runtime defines one).  Names listed in HOST_NOSYM
 * (comma-separated) are answered with NULL when libteardown.so asks for
 * them with RTLD_NEXT.  Every other lookup must behave exactly as if this
 * object were not there, and RTLD_NEXT means "after the caller": glibc's
 * dlsym() finds the caller from its return address.  So on x86_64 the
 * forwarding is a tail jump into the real dlsym(), which then sees the
 * original caller's return address; elsewhere a plain call is made
 * (right for libteardown, which comes just before this object).
 *
 * At exit it writes "nosym-asked: NAME ..." to stderr, listing the hidden
 * names that were really asked for, so a test knows it hid something.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void *(*dlsym_fn)(void *, const char *);

/*
 * Never instrumented: in an ASan build the sanitizer's own start-up (run
 * from the program's preinit, before its shadow memory exists) calls
 * dlsym(), which is this object's.
 */
#define NOSAN __attribute__((no_sanitize("address", "undefined")))

/* Used by the assembly below, hence not static (but not exported). */
__attribute__((visibility("hidden"))) dlsym_fn host_nosym_real;
__attribute__((visibility("hidden"))) int host_nosym_decide(void *handle, const char *name,
							     void *caller);

static char g_asked[1024];
static size_t g_asked_len;
/*
 * HOST_NOSYM, read by the constructor.  Until then every lookup is
 * forwarded untouched: the first ones come from an ASan runtime's own
 * start-up, when even its string-function interceptors cannot run yet.
 * libteardown's lookups all come later (its constructor runs after ours,
 * and its hooks after its constructor or a later one's).
 */
static const char *g_list;

__attribute__((constructor)) static void host_nosym_init(void)
{
	g_list = getenv("HOST_NOSYM");
}

/* Whether name is in the comma-separated list. */
NOSAN static int listed(const char *list, const char *name)
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

NOSAN static void remember(const char *name)
{
	size_t n = strlen(name);

	if (g_asked_len + n + 2 < sizeof(g_asked)) {
		g_asked[g_asked_len++] = ' ';
		memcpy(g_asked + g_asked_len, name, n);
		g_asked_len += n;
	}
}

/* Whether the code at addr belongs to libteardown.so. */
NOSAN static int from_teardown(void *addr)
{
	Dl_info info;
	const char *base;

	if (dladdr(addr, &info) == 0 || info.dli_fname == NULL)
		return 0;
	base = strrchr(info.dli_fname, '/');
	return strcmp(base ? base + 1 : info.dli_fname, "libteardown.so") == 0;
}

/* 1: answer NULL; 0: forward to the real dlsym (host_nosym_real is set). */
NOSAN int host_nosym_decide(void *handle, const char *name, void *caller)
{
	if (host_nosym_real == NULL) {
		host_nosym_real = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
		if (host_nosym_real == NULL)
			host_nosym_real = (dlsym_fn)dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	}
	if (g_list != NULL && handle == RTLD_NEXT && name != NULL && listed(g_list, name) &&
	    from_teardown(caller)) {
		remember(name);
		return 1;
	}
	return host_nosym_real == NULL;
}

#if defined(__x86_64__)
/*
 * dlsym(handle, name): ask host_nosym_decide(handle, name, return
 * address); on 0, jump (not call) to the real dlsym with the arguments
 * and the stack exactly as our caller left them.
 */
__asm__(".text\n"
	".globl dlsym\n"
	".type dlsym, @function\n"
	"dlsym:\n"
	"	pushq %rdi\n"
	"	pushq %rsi\n"
	"	movq 16(%rsp), %rdx\n"
	"	subq $8, %rsp\n"
	"	call host_nosym_decide\n"
	"	addq $8, %rsp\n"
	"	popq %rsi\n"
	"	popq %rdi\n"
	"	testl %eax, %eax\n"
	"	jnz 1f\n"
	"	jmp *host_nosym_real(%rip)\n"
	"1:	xorl %eax, %eax\n"
	"	ret\n"
	".size dlsym, .-dlsym\n");
#else
NOSAN void *dlsym(void *handle, const char *name)
{
	if (host_nosym_decide(handle, name, __builtin_return_address(0)))
		return NULL;
	return host_nosym_real(handle, name);
}
#endif

__attribute__((destructor)) static void host_nosym_report(void)
{
	static const char head[] = "nosym-asked:";

	/* write() is the library's wrapper, which falls back to the raw
	 * system call when its real write() is one of the hidden names */
	if (write(2, head, sizeof(head) - 1) < 0 || write(2, g_asked, g_asked_len) < 0 ||
	    write(2, "\n", 1) < 0)
		return;
}
