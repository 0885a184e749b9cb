/*
 * teardown: the memory a parsed policy and its parse use.
 *
 * The core allocates through these, never through malloc() directly.
 * Outside the library (the teardown command, the unit tests) they are
 * libc's (shim/core/mem.c, weak); inside it, shim/rt/mem.c gives them
 * mappings of the library's own, so that a program's heap is laid out as
 * without the library: a policy and its parse's freed buffers in the
 * middle of the heap moved where a forked child's own allocations land,
 * two more pages copied in every child of busybox httpd.  Memory from
 * one goes back through td_mem_free() alone.
 */
#ifndef TEARDOWN_MEM_H
#define TEARDOWN_MEM_H

#include <stddef.h>

void *td_mem_malloc(size_t n);
void *td_mem_calloc(size_t n, size_t size);
void *td_mem_realloc(void *p, size_t n);
void td_mem_free(void *p);
char *td_mem_strdup(const char *s);
char *td_mem_strndup(const char *s, size_t n);

#endif
