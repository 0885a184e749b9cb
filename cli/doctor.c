/*
 * teardown doctor: can the library act on these programs, and is it safe
 * to preload system-wide?
 *
 * LD_PRELOAD fails silently: a static or Go program simply runs as if the
 * library were not there, and a preloaded library with a missing
 * dependency stops every program on the host.  This command says which,
 * before an operator finds out the hard way.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "lib/elfinfo.h"
#include "teardown/config.h"
#include "teardown/fmt.h"
#include "teardown/policy.h"

#define TD__PRELOAD_LIST "/etc/ld.so.preload"
#define TD__SYSTEM_POLICY "/etc/teardown.conf"
#define TD__LIBNAME "libteardown.so"
/* /etc/ld.so.preload is a few lines; anything bigger is not read. */
#define TD__PRELOAD_MAX (64 * 1024)

struct td__doc_opts {
	FILE *out;
	bool json;
	bool system;
};

static void td__doc_usage(FILE *f)
{
	fputs("usage: teardown doctor [--json] [--system] BINARY...\n"
	      "\n"
	      "Tell whether teardown can act on each program: LD_PRELOAD never reaches\n"
	      "static binaries, Go makes its own system calls, and set-user-ID programs\n"
	      "ignore LD_PRELOAD.  BINARY is a path or a command name looked up in PATH.\n"
	      "When the library is found next to this command, also check that it is\n"
	      "safe to preload: it may need only libc.so.6, and no newer glibc than\n"
	      "this system has.\n"
	      "\n"
	      "  --json    one JSON object per line: binary, path, ok, kind, reason,\n"
	      "            needed\n"
	      "  --system  also check /etc/ld.so.preload and /etc/teardown.conf; run\n"
	      "            this before adding the library to /etc/ld.so.preload\n"
	      "\n"
	      "Exit status: 0 if teardown can act on every program (and the system\n"
	      "checks pass), 1 if not, 2 on bad usage.\n",
	      f);
}

/* ---- output ------------------------------------------------------------- */

/* s as a JSON string; the escaping itself is fmt.c's. */
static void td__json_str(FILE *out, const char *s)
{
	size_t n = strlen(s), cap = n * 6 + 3;
	char *mem = malloc(cap);
	struct td_buf b;

	if (mem == NULL) {
		fputs("\"\"", out);
		return;
	}
	td_buf_init(&b, mem, cap);
	td_buf_json_str(&b, s, n);
	fputs(td_buf_cstr(&b), out);
	free(mem);
}

/*
 * One finding.  key is "binary" for a program and "check" for a system
 * check; kind and needed only exist for programs (NULL otherwise).
 */
struct td__finding {
	const char *key, *name, *path, *kind, *reason, *interp;
	bool ok;
	const struct td_elf_info *elf; /* for needed, or NULL */
};

static void td__emit(const struct td__doc_opts *o, const struct td__finding *f)
{
	FILE *out = o->out;

	if (!o->json) {
		fprintf(out, "%s: %s\n", f->name, f->reason);
		return;
	}
	fputs("{\"", out);
	fputs(f->key, out);
	fputs("\":", out);
	td__json_str(out, f->name);
	fputs(",\"path\":", out);
	if (f->path != NULL)
		td__json_str(out, f->path);
	else
		fputs("null", out);
	fprintf(out, ",\"ok\":%s", f->ok ? "true" : "false");
	if (f->kind != NULL) {
		fputs(",\"kind\":", out);
		td__json_str(out, f->kind);
	}
	fputs(",\"reason\":", out);
	td__json_str(out, f->reason);
	if (f->interp != NULL) {
		fputs(",\"interpreter\":", out);
		td__json_str(out, f->interp);
	}
	if (f->key[0] == 'b' || f->elf != NULL) {
		fputs(",\"needed\":[", out);
		for (int k = 0; f->elf != NULL && k < f->elf->n_needed; k++) {
			if (k)
				fputc(',', out);
			td__json_str(out, f->elf->needed[k]);
		}
		fputc(']', out);
	}
	fputs("}\n", out);
}

/* ---- programs ----------------------------------------------------------- */

/*
 * What a script really runs.  The kernel runs the "#!" interpreter by its
 * path; "#!/usr/bin/env NAME" (or "env -S NAME ARGS") hands over to NAME
 * from PATH, and NAME is what the library has to reach.
 */
static int td__script_target(const struct td_elf_info *s, char *buf, size_t cap)
{
	const char *base = strrchr(s->script_interp, '/');
	char args[TD_ELF_NAME_MAX];
	char *tok, *save = NULL;

	base = base ? base + 1 : s->script_interp;
	if (strcmp(base, "env") != 0 || s->script_arg[0] == '\0') {
		if (strlen(s->script_interp) >= cap)
			return -ENAMETOOLONG;
		snprintf(buf, cap, "%s", s->script_interp);
		return s->script_interp[0] ? 0 : -ENOENT;
	}
	snprintf(args, sizeof(args), "%s", s->script_arg);
	for (tok = strtok_r(args, " \t", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (tok[0] == '-' || strchr(tok, '=') != NULL)
			continue; /* env's options and VAR=value */
		return td_elf_which(tok, buf, cap);
	}
	snprintf(buf, cap, "%s", s->script_interp);
	return 0;
}

/* The kernel runs an interpreter's interpreter, a few levels deep. */
#define TD__SCRIPT_DEPTH 5

/* A program and, for a script, the chain of interpreters that runs it. */
struct td__prog {
	char path[PATH_MAX];
	char interp_path[PATH_MAX]; /* the script's own interpreter, or "" */
	struct td_elf_info info[TD__SCRIPT_DEPTH + 1];
};

/*
 * Inspect one program: resolve it, inspect it and, for a script, what
 * runs it, linking each script to its interpreter through interp_info so
 * that the verdict speaks for what really runs.  Returns 0, or a negative
 * errno with a sentence in why.
 */
static int td__inspect_prog(const char *arg, struct td__prog *p, char *why, size_t wcap)
{
	char next[PATH_MAX];
	int rc;

	p->interp_path[0] = '\0';
	rc = td_elf_which(arg, p->path, sizeof(p->path));
	if (rc != 0) {
		if (strchr(arg, '/') == NULL && rc == -ENOENT)
			snprintf(why, wcap, "not found in PATH");
		else if (rc == -EACCES)
			snprintf(why, wcap, "found in PATH but not executable");
		else
			snprintf(why, wcap, "cannot be read: %s", strerror(-rc));
		return rc;
	}
	rc = td_elf_inspect(p->path, &p->info[0]);
	if (rc == -EISDIR) {
		snprintf(why, wcap, "is a directory, not a program");
		return rc;
	}
	if (rc != 0) {
		snprintf(why, wcap, "cannot be read: %s", strerror(-rc));
		return rc;
	}
	for (int d = 0; p->info[d].kind == TD_ELF_SCRIPT; d++) {
		struct td_elf_info *s = &p->info[d];

		if (d == TD__SCRIPT_DEPTH) {
			snprintf(why, wcap, "script whose interpreters are scripts %d levels "
				 "deep: the kernel refuses to run it", d);
			return -ELOOP;
		}
		rc = td__script_target(s, next, sizeof(next));
		if (rc == 0)
			rc = td_elf_inspect(next, &p->info[d + 1]);
		if (rc != 0) {
			snprintf(why, wcap, "script run by %.300s%s%.300s, which cannot be run: %s",
				 s->script_interp, s->script_arg[0] ? " " : "",
				 s->script_arg, strerror(-rc));
			return rc;
		}
		if (d == 0)
			memcpy(p->interp_path, next, sizeof(next));
		s->interp_info = &p->info[d + 1];
	}
	return 0;
}

/* `teardown doctor BINARY`: one finding.  Returns 1 when interposable. */
static int td__doc_binary(const char *arg, const struct td__doc_opts *o)
{
	struct td__finding f = {.key = "binary", .name = arg};
	struct td__prog *p = calloc(1, sizeof(*p));
	char reason[1024];
	int ok = 0;

	if (p == NULL) {
		fprintf(stderr, "teardown doctor: out of memory\n");
		return 0;
	}
	if (td__inspect_prog(arg, p, reason, sizeof(reason)) != 0) {
		f.path = p->path[0] ? p->path : NULL;
		f.kind = "error";
		f.reason = reason;
		td__emit(o, &f);
		free(p);
		return 0;
	}
	td_elf_verdict(&p->info[0], reason, sizeof(reason), &ok);
	f.path = p->path;
	f.kind = td_elf_kind_name(&p->info[0]);
	f.reason = reason;
	f.ok = ok;
	f.elf = &p->info[0];
	if (p->interp_path[0])
		f.interp = p->interp_path;
	td__emit(o, &f);
	free(p);
	return ok;
}

int td_doctor_warn(const char *prog, FILE *out)
{
	struct td__prog *p = calloc(1, sizeof(*p));
	const struct td_elf_info *runs;
	char reason[1024];
	int ok = 1;

	if (p == NULL)
		return 0;
	if (td__inspect_prog(prog, p, reason, sizeof(reason)) != 0) {
		free(p);
		return 0;
	}
	td_elf_verdict(&p->info[0], reason, sizeof(reason), &ok);
	/*
	 * Secure mode depends on who runs the program: root running a
	 * set-user-ID-root program gets none, and LD_PRELOAD works.
	 */
	for (runs = &p->info[0]; runs->interp_info != NULL; runs = runs->interp_info)
		;
	if (!ok && strcmp(td_elf_kind_name(runs), "setuid") == 0 &&
	    !td_elf_secure_for_caller(runs))
		ok = 1;
	if (!ok)
		fprintf(out, "teardown: warning: %s: %s\n", prog, reason);
	free(p);
	return !ok;
}

/* ---- the library -------------------------------------------------------- */

/* "2.36" into a comparable number. */
static long td__glibc_num(int major, int minor, int patch)
{
	return (long)major * 1000000L + (long)minor * 1000L + patch;
}

static long td__running_glibc(void)
{
	int major = 0, minor = 0, patch = 0;

	if (sscanf(gnu_get_libc_version(), "%d.%d.%d", &major, &minor, &patch) < 2)
		return 0;
	return td__glibc_num(major, minor, patch);
}

/* "2.34" or "2.3.4" */
static void td__glibc_str(const struct td_elf_info *i, char *buf, size_t cap)
{
	if (i->glibc_patch)
		snprintf(buf, cap, "%d.%d.%d", i->glibc_major, i->glibc_minor, i->glibc_patch);
	else
		snprintf(buf, cap, "%d.%d", i->glibc_major, i->glibc_minor);
}

/*
 * Can this file be preloaded into every program here without stopping
 * any of them?  A preloaded library whose dependency is missing, or which
 * needs a newer glibc, makes every dynamically linked program fail to
 * start (rc 127 or 1), the shell included.  strict: dependencies besides
 * libc.so.6 fail the check too, since they can go missing later (teardown
 * itself needs nothing else).  *loads is false when it cannot load here
 * even now.  Returns 1 when the check passes.
 */
static int td__lib_check(const char *path, bool strict, char *buf, size_t cap, bool *loads)
{
	struct td_elf_info *li = calloc(1, sizeof(*li));
	char ver[32], have[32], other[512];
	size_t olen = 0;
	int rc, ok = 0;
	long running = td__running_glibc();

	*loads = false;
	if (li == NULL) {
		snprintf(buf, cap, "cannot be checked: out of memory");
		return 0;
	}
	rc = td_elf_inspect(path, li);
	if (rc != 0) {
		snprintf(buf, cap, "cannot be read: %s", strerror(-rc));
		goto out;
	}
	if (li->kind == TD_ELF_NOT_ELF || li->kind == TD_ELF_SCRIPT) {
		snprintf(buf, cap,
			 "is not an ELF file: every program prints an error at start and "
			 "runs without it");
		goto out;
	}
	if (li->foreign) {
		const char *m = td_elf_machine_name(li->machine);

		snprintf(buf, cap,
			 "is built for %d-bit %s, not for this machine: every program prints "
			 "an error at start and runs without it",
			 li->elf_class == ELFCLASS64 ? 64 : 32, m ? m : "another machine");
		goto out;
	}
	if (li->type != ET_DYN || li->pie) {
		snprintf(buf, cap,
			 "is not a shared library: the loader cannot preload it, and every "
			 "program prints an error at start");
		goto out;
	}
	snprintf(have, sizeof(have), "%s", gnu_get_libc_version());
	td__glibc_str(li, ver, sizeof(ver));
	if (li->glibc_major != 0 && running != 0 &&
	    td__glibc_num(li->glibc_major, li->glibc_minor, li->glibc_patch) > running) {
		snprintf(buf, cap,
			 "needs glibc >= %s but this system has %s: every program it is "
			 "preloaded into would fail to start", ver, have);
		goto out;
	}
	*loads = true;
	other[0] = '\0';
	for (int k = 0; k < li->n_needed; k++) {
		if (strcmp(li->needed[k], "libc.so.6") == 0)
			continue;
		olen += (size_t)snprintf(other + olen, olen < sizeof(other) ? sizeof(other) - olen : 0,
					 "%s%s", olen ? ", " : "", li->needed[k]);
		if (olen >= sizeof(other))
			olen = sizeof(other) - 1;
	}
	if (other[0] != '\0' && strict) {
		snprintf(buf, cap,
			 "needs %s besides libc.so.6: if %s ever missing, every program it "
			 "is preloaded into fails to start; do not list it in "
			 TD__PRELOAD_LIST, other, strchr(other, ',') ? "one of them goes" : "that goes");
		goto out;
	}
	ok = 1;
	if (other[0] != '\0')
		snprintf(buf, cap, "loads here (needs libc.so.6 and %s)", other);
	else if (li->glibc_major != 0)
		snprintf(buf, cap,
			 "needs only libc.so.6 and glibc >= %s (this system has %s): safe to "
			 "preload system-wide", ver, have);
	else
		snprintf(buf, cap, "needs only libc.so.6: safe to preload system-wide");
out:
	free(li);
	return ok;
}

/*
 * The library line.  Returns 1 when it passes; in the plain doctor (not
 * --system) only a library that cannot load here at all fails, since
 * LD_PRELOAD per program tolerates extra dependencies.
 */
static int td__doc_library(const struct td__doc_opts *o, bool system_mode)
{
	char path[PATH_MAX], reason[1024], name[PATH_MAX + 32];
	struct td__finding f = {.key = "check"};
	bool loads;
	int ok;

	if (td_find_library(path) != 0) {
		if (!system_mode)
			return 1;
		f.name = TD__LIBNAME;
		f.reason = "not found next to the teardown command; not checked";
		f.ok = true;
		td__emit(o, &f);
		return 1;
	}
	ok = td__lib_check(path, true, reason, sizeof(reason), &loads);
	snprintf(name, sizeof(name), "%s (%s)", TD__LIBNAME, path);
	f.name = o->json ? TD__LIBNAME : name;
	f.path = path;
	f.reason = reason;
	f.ok = ok;
	td__emit(o, &f);
	return system_mode ? ok : loads;
}

/* ---- system checks ------------------------------------------------------ */

/*
 * Whoever can write a preloaded library, or the directory holding it,
 * runs code in every program on the host, as root in root's.
 */
static int td__owner_check(const char *path, char *buf, size_t cap)
{
	char dir[PATH_MAX];
	struct stat st;
	char *slash;

	if (stat(path, &st) != 0) {
		snprintf(buf, cap, "cannot be read: %s", strerror(errno));
		return 0;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(buf, cap,
			 "%s: whoever can write it runs code in every program, root's "
			 "included", st.st_uid != 0 ? "is not owned by root"
						    : "is writable by group or others");
		return 0;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return 1;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) == 0 && (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)))) {
		snprintf(buf, cap,
			 "lives in %.512s, which %s: whoever can replace it runs code in every "
			 "program, root's included", dir,
			 st.st_uid != 0 ? "is not owned by root" : "group or others can write");
		return 0;
	}
	return 1;
}

static bool td__is_teardown(const char *path)
{
	const char *base = strrchr(path, '/');
	struct td_elf_info *i;
	bool yes;

	base = base ? base + 1 : path;
	if (strcmp(base, TD__LIBNAME) == 0)
		return true;
	i = calloc(1, sizeof(*i));
	if (i == NULL)
		return false;
	yes = td_elf_inspect(path, i) == 0 && strcmp(i->soname, TD__LIBNAME) == 0;
	free(i);
	return yes;
}

/* One entry of /etc/ld.so.preload. */
static int td__preload_entry(const char *entry, const struct td__doc_opts *o, bool *is_td)
{
	char reason[1200], name[PATH_MAX + 64];
	struct td__finding f = {.key = "check", .path = entry};
	bool loads;
	int ok = 1;

	snprintf(name, sizeof(name), TD__PRELOAD_LIST ": %s", entry);
	f.name = name;
	*is_td = false;
	if (strchr(entry, '$') != NULL) {
		snprintf(reason, sizeof(reason),
			 "uses a dynamic string token ($LIB, $PLATFORM); not checked");
	} else if (strchr(entry, '/') == NULL) {
		snprintf(reason, sizeof(reason),
			 "has no slash: the loader looks it up like a library name; not checked");
	} else if (access(entry, F_OK) != 0) {
		snprintf(reason, sizeof(reason),
			 "missing: every program prints an error at start and runs without it");
		ok = 0;
	} else {
		*is_td = td__is_teardown(entry);
		ok = td__lib_check(entry, *is_td, reason, sizeof(reason), &loads);
		if (ok)
			ok = td__owner_check(entry, reason, sizeof(reason));
		if (ok && *is_td) {
			size_t n = strlen(reason);

			snprintf(reason + n, sizeof(reason) - n, " (teardown)");
		}
	}
	f.reason = reason;
	f.ok = ok;
	td__emit(o, &f);
	return ok;
}

/* Read the preload list whole; NULL with a reason when it cannot be. */
static char *td__read_small(const char *path, size_t max, char *why, size_t wcap)
{
	struct stat st;
	char *text;
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		snprintf(why, wcap, "cannot be read: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		snprintf(why, wcap, "is not a regular file of at most %zu bytes; not checked", max);
		close(fd);
		return NULL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		close(fd);
		snprintf(why, wcap, "cannot be read: out of memory");
		return NULL;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, text + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	text[len] = '\0';
	return text;
}

/*
 * /etc/ld.so.preload as the loader reads it: names separated by blanks,
 * newlines or colons, "#" starting a comment to the end of the line.
 */
static int td__check_preload(const struct td__doc_opts *o)
{
	struct td__finding f = {.key = "check", .name = TD__PRELOAD_LIST,
				.path = TD__PRELOAD_LIST, .ok = true};
	char why[512];
	char *text, *p, *tok, *save = NULL;
	int ok = 1, n = 0, n_td = 0;
	struct stat st;

	if (lstat(TD__PRELOAD_LIST, &st) != 0 && errno == ENOENT) {
		f.reason = "absent: nothing is preloaded system-wide";
		td__emit(o, &f);
		return 1;
	}
	text = td__read_small(TD__PRELOAD_LIST, TD__PRELOAD_MAX, why, sizeof(why));
	if (text == NULL) {
		f.reason = why;
		f.ok = false;
		td__emit(o, &f);
		return 0;
	}
	if (!td__owner_check(TD__PRELOAD_LIST, why, sizeof(why))) {
		f.reason = why;
		f.ok = false;
		td__emit(o, &f);
		ok = 0;
	}
	for (p = text; *p; p++) {
		if (*p == '#')
			while (*p && *p != '\n')
				*p++ = ' ';
		if (*p == '\0')
			break;
	}
	for (tok = strtok_r(text, " \t\n:", &save); tok != NULL;
	     tok = strtok_r(NULL, " \t\n:", &save)) {
		bool is_td;

		ok &= td__preload_entry(tok, o, &is_td);
		n++;
		n_td += is_td;
	}
	free(text);
	f.ok = true;
	if (n == 0)
		f.reason = "lists nothing: nothing is preloaded system-wide";
	else if (n_td == 0)
		f.reason = "does not list teardown: it is not preloaded system-wide";
	else if (n_td == 1)
		f.reason = "lists teardown: every dynamically linked program loads it";
	else {
		f.reason = "lists teardown more than once: the loader loads it once, "
			   "and the extra entries are noise";
	}
	td__emit(o, &f);
	return ok;
}

/*
 * /etc/teardown.conf is the only policy a privileged process reads, and
 * the library refuses it there unless root owns it and nobody else can
 * write it: whoever could write it could make a set-user-ID program reset
 * its connections.
 */
static int td__check_policy(const struct td__doc_opts *o)
{
	struct td__finding f = {.key = "check", .name = TD__SYSTEM_POLICY,
				.path = TD__SYSTEM_POLICY};
	char reason[sizeof(((struct td_cfg_error *)0)->file) + 1024];
	struct td_cfg_error err;
	struct td_policy pol;
	struct stat st;
	int rc;

	f.reason = reason;
	if (lstat(TD__SYSTEM_POLICY, &st) != 0) {
		if (errno == ENOENT) {
			snprintf(reason, sizeof(reason),
				 "absent: a system-wide preload changes nothing in privileged "
				 "programs, nor in others unless their environment names a policy");
			f.ok = true;
		} else {
			snprintf(reason, sizeof(reason), "cannot be read: %s", strerror(errno));
		}
	} else if (S_ISLNK(st.st_mode)) {
		snprintf(reason, sizeof(reason),
			 "is a symbolic link: the library refuses to follow it");
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(reason, sizeof(reason), "is not a regular file: the library refuses it");
	} else if (st.st_uid != 0) {
		snprintf(reason, sizeof(reason),
			 "is owned by uid %u, not root: the library refuses it in set-user-ID "
			 "programs and in root's processes", (unsigned)st.st_uid);
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(reason, sizeof(reason),
			 "is writable by group or others: the library refuses it in privileged "
			 "processes");
	} else if (access(TD__SYSTEM_POLICY, R_OK) != 0) {
		snprintf(reason, sizeof(reason),
			 "root-owned and not writable by others, but you cannot read it; run as "
			 "root to check its rules");
		f.ok = true;
	} else {
		memset(&pol, 0, sizeof(pol));
		rc = td_policy_load_file(&pol, TD__SYSTEM_POLICY, false, &err);
		if (rc != 0) {
			char msg[sizeof(err.file) + sizeof(err.msg) + 32];

			td_cfg_error_format(&err, msg, sizeof(msg));
			snprintf(reason, sizeof(reason), "is refused by the library: %s", msg);
		} else {
			snprintf(reason, sizeof(reason),
				 "root-owned, not writable by others, and valid (%u rule%s)",
				 (unsigned)pol.n_rules, pol.n_rules == 1 ? "" : "s");
			f.ok = true;
			td_policy_free(&pol);
		}
	}
	td__emit(o, &f);
	return f.ok;
}

int td_doctor_system(FILE *out, bool json)
{
	struct td__doc_opts o = {.out = out, .json = json, .system = true};
	int ok = 1;

	ok &= td__check_preload(&o);
	ok &= td__check_policy(&o);
	ok &= td__doc_library(&o, true);
	fflush(out);
	return ok ? 0 : 1;
}

/*
 * `teardown check --system [OPTIONS] [FILE...]` arrives here with argv[0]
 * "check": the system checks, then whatever else was asked of check
 * (policy files and their options), so that no argument is dropped.
 */
static int td__doc_as_check(int argc, char **argv)
{
	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	int n = 0, rc, rc2 = 0;
	bool json = false;

	if (rest == NULL) {
		fprintf(stderr, "teardown check: out of memory\n");
		return 1;
	}
	rest[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--system") != 0)
			rest[n++] = argv[i];
	}
	rc = td_doctor_system(stdout, json);
	if (n > 1)
		rc2 = td_cmd_check(n, rest);
	free(rest);
	if (rc2 == 2)
		return 2;
	return rc || rc2 ? 1 : 0;
}

int td_cmd_doctor(int argc, char **argv)
{
	struct td__doc_opts o = {.out = stdout};
	int i, first = argc, ok = 1;

	if (argc > 0 && strcmp(argv[0], "check") == 0)
		return td__doc_as_check(argc, argv);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			first = i + 1;
			break;
		}
		if (a[0] != '-' || a[1] == '\0') {
			first = i;
			break;
		}
		if (strcmp(a, "--json") == 0) {
			o.json = true;
		} else if (strcmp(a, "--system") == 0) {
			o.system = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			td__doc_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "teardown doctor: unknown option %s\n", a);
			td__doc_usage(stderr);
			return 2;
		}
	}
	if (first >= argc && !o.system) {
		td__doc_usage(stderr);
		return 2;
	}
	for (i = first; i < argc; i++)
		ok &= td__doc_binary(argv[i], &o);
	if (o.system)
		ok &= td_doctor_system(stdout, o.json) == 0;
	else
		ok &= td__doc_library(&o, false);
	fflush(stdout);
	return ok ? 0 : 1;
}
