/*
 * teardown: libc's allocator behind td_mem_*() (include/teardown/mem.h),
 * for every program that links the core without the library's runtime;
 * the library's own (shim/rt/mem.c) takes precedence where it is linked.
 */
#include <stdlib.h>
#include <string.h>

#include "teardown/mem.h"

__attribute__((weak)) void *td_mem_malloc(size_t n)
{
	return malloc(n);
}

__attribute__((weak)) void *td_mem_calloc(size_t n, size_t size)
{
	return calloc(n, size);
}

__attribute__((weak)) void *td_mem_realloc(void *p, size_t n)
{
	return realloc(p, n);
}

__attribute__((weak)) void td_mem_free(void *p)
{
	free(p);
}

__attribute__((weak)) char *td_mem_strdup(const char *s)
{
	return strdup(s);
}

__attribute__((weak)) char *td_mem_strndup(const char *s, size_t n)
{
	return strndup(s, n);
}
