/*
 * teardown: which object's definition does each symbol reference bind to
 * when a program starts with the library preloaded?  For `teardown
 * doctor`.
 *
 * The dynamic loader binds every reference to the first definition it
 * finds in the global scope: the program, then the preloaded libraries,
 * then the program's DT_NEEDED libraries and theirs, breadth first.  The
 * library is linked with -z now, so all its references are bound once, at
 * start-up, against exactly that list: a program (or one of its
 * libraries) that defines and exports a libc name the library calls gives
 * the library its own function instead of libc's.  This module rebuilds
 * that list from the files (read, never loaded or run) and finds those
 * names.
 *
 * Libraries are found as glibc's ld.so finds them: a name with a slash as
 * is; else DT_RPATH of the requesting object and its requesters (when it
 * has no DT_RUNPATH), LD_LIBRARY_PATH, its DT_RUNPATH, /etc/ld.so.cache,
 * then the platform's default directories (unless DF_1_NODEFLIB);
 * $ORIGIN is expanded, entries with other tokens ($LIB, $PLATFORM) are
 * skipped; a file of another ELF class or machine is passed over, as the
 * loader does.  glibc-hwcaps subdirectories are not searched.
 */
#ifndef TEARDOWN_CLI_LDSCOPE_H
#define TEARDOWN_CLI_LDSCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "elfinfo.h"

/* At most this many objects in one scope (the rest are not searched). */
#define TD_LD_MAX_OBJS 512
/* An /etc/ld.so.cache larger than this is not read. */
#define TD_LD_MAX_CACHE (64u << 20)

/* Where libraries are looked for. */
struct td_ld_env {
	const char *cache;	      /* "/etc/ld.so.cache", or NULL: no cache */
	const char *library_path;     /* LD_LIBRARY_PATH, or NULL */
	const char *const *dirs;      /* default directories, NULL-terminated */
};

/*
 * This host's loader: /etc/ld.so.cache, the given LD_LIBRARY_PATH (NULL
 * for a program the loader runs in secure mode, which ignores it), and
 * the default directories of this platform (Debian's multiarch
 * directories, then /lib64 and /usr/lib64 on 64-bit systems, /lib and
 * /usr/lib).
 */
void td_ld_env_host(struct td_ld_env *env, const char *library_path);

/*
 * The pos-th entry (0, 1, ...) named name in an ld.so.cache image (the
 * "glibc-ld.so.cache1.1" format, alone or after the old libc5 table):
 * 0 with its path in out and *pos moved past it, -ENOENT when there is no
 * further one, -EINVAL when data is not a cache this reads.  Entries are
 * not filtered by architecture: the caller checks the file.
 */
int td_ldcache_find(const void *data, size_t len, const char *name, size_t *pos, char *out,
		    size_t cap);

struct td_ld_obj {
	char *path;	    /* the file, as the loader would open it */
	char *name;	    /* what was asked for: a DT_NEEDED name or a root's path */
	int loader;	    /* the object whose DT_NEEDED brought it in; -1 for roots */
	dev_t dev;
	ino_t ino;
	struct td_elf_info *info;
	struct td_elf_dyn dyn;
	size_t *defs; /* indices of dyn.syms that the loader can bind to, by name */
	size_t n_defs;
};

/* A DT_NEEDED that is not found: the program would not start here. */
struct td_ld_missing {
	char *name;
	int loader;
};

struct td_ld_scope {
	struct td_ld_obj *obj;
	size_t n;
	struct td_ld_missing *missing;
	size_t n_missing;
	bool cut; /* more than TD_LD_MAX_OBJS objects */
	/* private */
	size_t cap, cap_missing;
	unsigned char *cache;
	size_t cache_len;
};

/*
 * The global scope of a process started from roots[0] (a program, or a
 * library alone) with roots[1..] preloaded, in the loader's order.  A
 * root with a slash is a path; without one it is searched like a
 * library (as LD_PRELOAD names are).  A root that cannot be read is left
 * out (the loader prints an error and goes on), except roots[0]: its
 * negative errno is returned.  Every DT_NEEDED is then looked up breadth
 * first; the same file (device and inode) is loaded once.  Returns 0 or
 * a negative errno; release with td_ld_scope_free either way.
 */
int td_ld_scope_build(struct td_ld_scope *sc, const char *const *roots, size_t n_roots,
		      const struct td_ld_env *env);
void td_ld_scope_free(struct td_ld_scope *sc);

/*
 * The definition a reference to name at version want (NULL: unversioned)
 * binds to: the scope index of its object, with the symbol in *sym, or -1.
 */
int td_ld_lookup(const struct td_ld_scope *sc, const char *name, const char *want,
		 const struct td_elf_sym **sym);

/* One name the program takes from the library, and where it is defined. */
struct td_ld_hit {
	const char *symbol;
	size_t obj;	/* scope index of the definition */
	bool allocator; /* part of a complete replacement allocator */
};

struct td_ld_report {
	size_t n_imports; /* the library's references that were checked */
	/*
	 * The library's references that bind to the program's objects rather
	 * than to the library's own dependencies (libc, the loader...).
	 */
	struct td_ld_hit *taken;
	size_t n_taken;
	size_t n_warn; /* of those, the ones not explained by a complete allocator */
	/* Names the library wraps that the program itself defines first. */
	struct td_ld_hit *shadowed;
	size_t n_shadowed;
	/*
	 * A replacement malloc: the object that malloc, free, calloc or
	 * realloc binds to when that is not one of the library's own
	 * dependencies; -1 for none.  complete when all four come from it.
	 */
	int alloc;
	const char *alloc_name; /* "jemalloc", "tcmalloc", "mimalloc", or NULL */
	bool alloc_complete;
	const char *alloc_other[4]; /* core names bound elsewhere, NULL-ended */
};

/*
 * Compare what the library (scope index lib of sc, or (size_t)-1 when it
 * is unknown: only the allocator is then checked) would bind to in sc
 * with own, the scope of the library's own dependencies (the library
 * alone, or libc.so.6 when it is unknown): a reference bound to an
 * object outside own is taken by the program.  Weak references without
 * a version (__gmon_start__, _ITM_*: hooks the toolchain leaves unbound
 * on purpose) are not checked.  A program's copy of a libc variable (a
 * definition carrying a version it needs from one of own's files: a
 * copy relocation) is libc's own.  Returns 0 or -ENOMEM; release with
 * td_ld_report_free.
 */
int td_ld_check(const struct td_ld_scope *sc, size_t lib, const struct td_ld_scope *own,
		struct td_ld_report *r);
void td_ld_report_free(struct td_ld_report *r);

/*
 * Is y a reference td_ld_check checks: undefined, global or weak, and not
 * a weak reference without a version.
 */
bool td_ld_is_import(const struct td_elf_sym *y);

/*
 * Is name part of malloc's interface (malloc, free, calloc, realloc,
 * posix_memalign, malloc_usable_size...): functions that work only on
 * blocks their own allocator handed out.
 */
bool td_ld_alloc_family(const char *name);

#endif
