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
#include "lib/out.h"
#include "lib/elfinfo.h"
#include "lib/ldscope.h"
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

enum { O_JSON = TD_OPT_LONG, O_SYSTEM };

static const struct td_opt td__doc_opts_table[] = {
	{"json", O_JSON, NULL,
	 "one JSON object per line: binary, path, ok, reachable,\n"
	 "kind, reason, needed, warnings, notes, interposed,\n"
	 "allocator, shadowed, missing, library", NULL},
	{"system", O_SYSTEM, NULL,
	 "also check /etc/ld.so.preload and /etc/teardown.conf; run\n"
	 "this before adding the library to /etc/ld.so.preload", NULL},
	{0},
};

static const struct td_opt *td__doc_table(void)
{
	return td__doc_opts_table;
}

/* ---- output ------------------------------------------------------------- */

/* s with every byte that is not printable ASCII as '?': names from files. */
static void td__put_safe(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?', out);
}

/* At most this many warnings and notes per program. */
#define TD__MAX_MSGS 8

/*
 * The symbol check of one program: the loader's scope with the library
 * preloaded, the library's own dependencies, what td_ld_check found, and
 * the sentences made of it.
 */
struct td__syms {
	bool ran;
	bool have_lib;
	char lib[PATH_MAX];
	size_t lib_idx;
	struct td_ld_scope sc, own;
	struct td_ld_report r;
	char *warn[TD__MAX_MSGS], *note[TD__MAX_MSGS];
	int n_warn, n_note;
	char *summary; /* the warnings in a few words, or NULL */
};

/*
 * One finding.  key is "binary" for a program and "check" for a system
 * check; kind and needed only exist for programs (NULL otherwise).
 */
struct td__finding {
	const char *key, *name, *path, *kind, *reason, *interp;
	bool ok;
	bool reachable;		       /* programs: LD_PRELOAD reaches it */
	const struct td_elf_info *elf; /* for needed, or NULL */
	const struct td__syms *syms;   /* programs: the symbol check, or NULL */
	const struct td_elf_dyn *imports_of; /* the library line: its references */
};

static void td__json_strs(FILE *out, const char *key, char *const *v, int n)
{
	fprintf(out, ",\"%s\":[", key);
	for (int k = 0; k < n; k++) {
		if (k)
			fputc(',', out);
		td_put_json_str(out, v[k]);
	}
	fputc(']', out);
}

static void td__json_hits(FILE *out, const char *key, const struct td__syms *y,
			  const struct td_ld_hit *h, size_t n, bool with_alloc)
{
	fprintf(out, ",\"%s\":[", key);
	for (size_t k = 0; k < n; k++) {
		fputs(k ? ",{\"symbol\":" : "{\"symbol\":", out);
		td_put_json_str(out, h[k].symbol);
		fputs(",\"defined_in\":", out);
		td_put_json_str(out, y->sc.obj[h[k].obj].path);
		if (with_alloc)
			fprintf(out, ",\"allocator\":%s", h[k].allocator ? "true" : "false");
		fputc('}', out);
	}
	fputc(']', out);
}

/* The symbol check's fields of a program's JSON line. */
static void td__json_syms(FILE *out, const struct td__syms *y)
{
	static const struct td__syms none;
	const struct td_ld_report *r;

	if (y == NULL)
		y = &none;
	td__json_strs(out, "warnings", y->warn, y->n_warn);
	td__json_strs(out, "notes", y->note, y->n_note);
	if (!y->ran)
		y = &none;
	r = &y->r;
	td__json_hits(out, "interposed", y, r->taken, r->n_taken, true);
	fputs(",\"allocator\":", out);
	if (y->ran && r->alloc >= 0) {
		fputs("{\"name\":", out);
		if (r->alloc_name != NULL)
			td_put_json_str(out, r->alloc_name);
		else
			fputs("null", out);
		fputs(",\"defined_in\":", out);
		td_put_json_str(out, y->sc.obj[r->alloc].path);
		fprintf(out, ",\"complete\":%s,\"not_replaced\":[",
			r->alloc_complete ? "true" : "false");
		for (int k = 0; r->alloc_other[k] != NULL; k++) {
			if (k)
				fputc(',', out);
			td_put_json_str(out, r->alloc_other[k]);
		}
		fputs("]}", out);
	} else {
		fputs("null", out);
	}
	td__json_hits(out, "shadowed", y, r->shadowed, r->n_shadowed, false);
	fputs(",\"missing\":[", out);
	for (size_t k = 0; k < y->sc.n_missing; k++) {
		const struct td_ld_missing *m = &y->sc.missing[k];

		fputs(k ? ",{\"name\":" : "{\"name\":", out);
		td_put_json_str(out, m->name);
		fputs(",\"needed_by\":", out);
		td_put_json_str(out, m->loader >= 0 ? y->sc.obj[m->loader].path : "?");
		fputc('}', out);
	}
	fputs("],\"library\":", out);
	if (y->have_lib) {
		td_put_json_str(out, y->lib);
		fprintf(out, ",\"library_imports\":%zu", r->n_imports);
	} else {
		fputs("null,\"library_imports\":null", out);
	}
}

static void td__emit(const struct td__doc_opts *o, const struct td__finding *f)
{
	FILE *out = o->out;

	if (!o->json) {
		fprintf(out, "%s: %s\n", f->name, f->reason);
		for (int k = 0; f->syms != NULL && k < f->syms->n_warn; k++)
			fprintf(out, "  warning: %s\n", f->syms->warn[k]);
		for (int k = 0; f->syms != NULL && k < f->syms->n_note; k++)
			fprintf(out, "  note: %s\n", f->syms->note[k]);
		return;
	}
	fputs("{\"", out);
	fputs(f->key, out);
	fputs("\":", out);
	td_put_json_str(out, f->name);
	fputs(",\"path\":", out);
	if (f->path != NULL)
		td_put_json_str(out, f->path);
	else
		fputs("null", out);
	fprintf(out, ",\"ok\":%s", f->ok ? "true" : "false");
	if (f->kind != NULL) {
		fputs(",\"kind\":", out);
		td_put_json_str(out, f->kind);
	}
	fputs(",\"reason\":", out);
	td_put_json_str(out, f->reason);
	if (f->interp != NULL) {
		fputs(",\"interpreter\":", out);
		td_put_json_str(out, f->interp);
	}
	if (f->key[0] == 'b' || f->elf != NULL) {
		fputs(",\"needed\":[", out);
		for (int k = 0; f->elf != NULL && k < f->elf->n_needed; k++) {
			if (k)
				fputc(',', out);
			td_put_json_str(out, f->elf->needed[k]);
		}
		fputc(']', out);
	}
	if (f->key[0] == 'b') {
		fprintf(out, ",\"reachable\":%s", f->reachable ? "true" : "false");
		td__json_syms(out, f->syms);
	}
	if (f->imports_of != NULL) {
		bool first = true;

		fputs(",\"imports\":[", out);
		for (size_t k = 0; k < f->imports_of->n_syms; k++) {
			const struct td_elf_sym *y = &f->imports_of->syms[k];

			if (!td_ld_is_import(y))
				continue;
			if (!first)
				fputc(',', out);
			first = false;
			td_put_json_str(out, y->name);
		}
		fputc(']', out);
	}
	fputs("}\n", out);
}

/* ---- programs ----------------------------------------------------------- */

/* Read a small file (the preload list) whole; NULL with a reason when it cannot be. */
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
	char run_path[PATH_MAX];    /* what the kernel really runs: the last of the chain */
	const struct td_elf_info *runs;
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
	p->run_path[0] = '\0';
	p->runs = &p->info[0];
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
	memcpy(p->run_path, p->path, sizeof(p->path));
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
		memcpy(p->run_path, next, sizeof(next));
		p->runs = &p->info[d + 1];
		s->interp_info = &p->info[d + 1];
	}
	return 0;
}

/* ---- the symbols the library calls ------------------------------------ */

/*
 * What else the loader puts in front of the program's libraries: the
 * LD_PRELOAD a run keeps behind the library, and /etc/ld.so.preload.
 * Names go into roots (strdup'ed) after those already there.
 */
static size_t td__preload_roots(char **roots, size_t n, size_t cap)
{
	char why[128];
	const char *env = getenv("LD_PRELOAD");
	char *text, *tok, *save = NULL, *p;

	if (env != NULL) {
		char *copy = strdup(env);

		for (tok = copy ? strtok_r(copy, " :", &save) : NULL; tok != NULL && n < cap;
		     tok = strtok_r(NULL, " :", &save))
			if ((roots[n] = strdup(tok)) != NULL)
				n++;
		free(copy);
	}
	text = td__read_small(TD__PRELOAD_LIST, TD__PRELOAD_MAX, why, sizeof(why));
	if (text == NULL)
		return n;
	for (p = text; *p; p++) {
		if (*p == '#')
			while (*p && *p != '\n')
				*p++ = ' ';
		if (*p == '\0')
			break;
	}
	save = NULL;
	for (tok = strtok_r(text, " \t\n:", &save); tok != NULL && n < cap;
	     tok = strtok_r(NULL, " \t\n:", &save))
		if ((roots[n] = strdup(tok)) != NULL)
			n++;
	free(text);
	return n;
}

static void td__syms_free(struct td__syms *y)
{
	td_ld_report_free(&y->r);
	td_ld_scope_free(&y->sc);
	td_ld_scope_free(&y->own);
	for (int k = 0; k < y->n_warn; k++)
		free(y->warn[k]);
	for (int k = 0; k < y->n_note; k++)
		free(y->note[k]);
	free(y->summary);
	memset(y, 0, sizeof(*y));
}

/* A sentence being written; td__msg_end files it as a warning or a note. */
struct td__msg {
	char *text;
	size_t len;
	FILE *f;
};

static FILE *td__msg_begin(struct td__msg *m)
{
	m->text = NULL;
	m->len = 0;
	m->f = open_memstream(&m->text, &m->len);
	return m->f;
}

static void td__msg_end(struct td__msg *m, char **v, int *n)
{
	if (m->f == NULL)
		return;
	fclose(m->f);
	if (*n < TD__MAX_MSGS && m->text != NULL)
		v[(*n)++] = m->text;
	else
		free(m->text);
}

/* "a", "a and b", "a, b and c" */
static void td__put_list(FILE *f, const char *const *names, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		if (k)
			fputs(k + 1 == n ? " and " : ", ", f);
		td__put_safe(f, names[k]);
	}
}

/* Who defines what: the program itself, or a library it loads. */
static void td__put_definer(FILE *f, const struct td__syms *y, size_t obj)
{
	if (obj == 0) {
		fputs("this program (", f);
		td__put_safe(f, y->sc.obj[0].path);
		fputs(")", f);
	} else {
		td__put_safe(f, y->sc.obj[obj].path);
		fputs(y->sc.obj[obj].loader < 0 ? ", preloaded with it," : ", which this program loads,",
		      f);
	}
}

/* Is hit h explained by the allocator sentence rather than the generic one? */
static bool td__alloc_hit(const struct td__syms *y, const struct td_ld_hit *h)
{
	return h->allocator || (y->r.alloc >= 0 && !y->r.alloc_complete &&
				td_ld_alloc_family(h->symbol));
}

/* The warnings for library references bound to the program's definitions. */
static void td__say_taken(struct td__syms *y)
{
	const struct td_ld_report *r = &y->r;
	const char *names[64];

	for (size_t i = 0; i < r->n_taken; i++) {
		struct td__msg m;
		size_t obj = r->taken[i].obj, n = 0, more = 0;
		bool seen = false;
		FILE *f;

		if (td__alloc_hit(y, &r->taken[i]))
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = r->taken[j].obj == obj && !td__alloc_hit(y, &r->taken[j]);
		if (seen)
			continue; /* one sentence per defining object */
		for (size_t j = i; j < r->n_taken; j++) {
			if (r->taken[j].obj != obj || td__alloc_hit(y, &r->taken[j]))
				continue;
			if (n < sizeof(names) / sizeof(names[0]))
				names[n++] = r->taken[j].symbol;
			else
				more++;
		}
		if ((f = td__msg_begin(&m)) == NULL)
			continue;
		td__put_definer(f, y, obj);
		fputs(" defines ", f);
		td__put_list(f, names, n);
		if (more)
			fprintf(f, " and %zu more", more);
		fputs(n + more > 1 ? ", libc functions the library calls: the loader binds the "
				     "library's calls to the program's definitions"
				   : ", a libc function the library calls: the loader binds the "
				     "library's calls to the program's definition", f);
		fputs(" (it searches the program and its libraries before libc), so inside this "
		      "program teardown runs the program's ", f);
		td__put_list(f, names, n);
		fputs(" where it expects libc's. If that code differs from libc's (allocates, "
		      "locks or blocks where libc's does not, or calls close, write or another "
		      "call teardown wraps), the program can hang or crash at start-up or on a "
		      "socket call. The doctor cannot tell: try the program under teardown "
		      "before relying on it or preloading the library system-wide", f);
		td__msg_end(&m, y->warn, &y->n_warn);
	}
}

/* The allocator sentence: a note for a complete one, else a warning. */
static void td__say_alloc(struct td__syms *y)
{
	const struct td_ld_report *r = &y->r;
	const char *mine[16], *replaced[4];
	size_t n_mine = 0, n_rep = 0;
	struct td__msg m;
	FILE *f;

	if (r->alloc < 0 || (f = td__msg_begin(&m)) == NULL)
		return;
	for (size_t k = 0; k < r->n_taken && n_mine < 16; k++)
		if (td__alloc_hit(y, &r->taken[k]))
			mine[n_mine++] = r->taken[k].symbol;
	if (r->alloc_name != NULL)
		fprintf(f, "%s (", r->alloc_name);
	td__put_safe(f, y->sc.obj[r->alloc].path);
	fputs(r->alloc_name != NULL ? ")" : "", f);
	if (r->alloc_complete) {
		fputs(" replaces malloc in this process, the library included", f);
		if (n_mine > 0) {
			fputs(": the library's ", f);
			td__put_list(f, mine, n_mine);
			fputs(" calls go to it", f);
		} else if (y->have_lib) {
			fputs(" (the library makes no allocator call)", f);
		}
		fputs(". It is a complete allocator (malloc, free, calloc and realloc all come "
		      "from it), so every block goes back to the allocator that made it, and the "
		      "library allocates only at start-up, never inside a wrapped call: this is "
		      "fine", f);
		td__msg_end(&m, y->note, &y->n_note);
		return;
	}
	for (int k = 0; k < 4; k++) {
		static const char *const core[] = {"malloc", "free", "calloc", "realloc"};
		bool other = false;

		for (int j = 0; r->alloc_other[j] != NULL; j++)
			other |= strcmp(r->alloc_other[j], core[k]) == 0;
		if (!other)
			replaced[n_rep++] = core[k];
	}
	fputs(" replaces ", f);
	td__put_list(f, replaced, n_rep);
	fputs(" but not ", f);
	for (n_rep = 0; r->alloc_other[n_rep] != NULL; n_rep++)
		;
	td__put_list(f, r->alloc_other, n_rep);
	fputs(": a block one allocator hands out can be given back to the other, which "
	      "corrupts the heap", f);
	if (n_mine > 0) {
		fputs(", and the library's ", f);
		td__put_list(f, mine, n_mine);
		fputs(" calls are among them", f);
	}
	fputs(" (harmless only if the replacement merely wraps libc's malloc)", f);
	td__msg_end(&m, y->warn, &y->n_warn);
}

/* Notes: wrapped names the program defines, libraries not found, limits. */
static void td__say_notes(struct td__syms *y)
{
	const struct td_ld_report *r = &y->r;
	struct td__msg m;
	FILE *f;

	if (!y->have_lib && (f = td__msg_begin(&m)) != NULL) {
		fputs(TD__LIBNAME " is not found next to the teardown command, so which libc "
		      "functions it calls is unknown: only a replacement malloc was looked for", f);
		td__msg_end(&m, y->note, &y->n_note);
	}
	if (r->n_shadowed > 0 && (f = td__msg_begin(&m)) != NULL) {
		const char *names[32];
		size_t n = 0;

		for (size_t k = 0; k < r->n_shadowed && n < 32; k++)
			names[n++] = r->shadowed[k].symbol;
		td__put_definer(f, y, r->shadowed[0].obj);
		fputs(" defines ", f);
		td__put_list(f, names, n);
		fputs(" itself, which the library wraps: a call bound to the program's own "
		      "function reaches the library only if that function passes it on "
		      "(dlsym(RTLD_NEXT, ...)), so teardown may not see those calls", f);
		td__msg_end(&m, y->note, &y->n_note);
	}
	for (size_t k = 0; k < y->sc.n_missing && k < 3; k++) {
		const struct td_ld_missing *mi = &y->sc.missing[k];

		if ((f = td__msg_begin(&m)) == NULL)
			break;
		td__put_safe(f, mi->name);
		fputs(", needed by ", f);
		td__put_safe(f, mi->loader >= 0 ? y->sc.obj[mi->loader].path : "?");
		fputs(", is not found here: the loader would refuse to start this program, "
		      "and what that library defines was not checked", f);
		td__msg_end(&m, y->note, &y->n_note);
	}
	if (y->sc.cut && (f = td__msg_begin(&m)) != NULL) {
		fprintf(f, "it loads more than %d libraries; the rest were not checked",
			TD_LD_MAX_OBJS);
		td__msg_end(&m, y->note, &y->n_note);
	}
}

/* The few words added to the verdict when there is a warning. */
static void td__say_summary(struct td__syms *y)
{
	const struct td_ld_report *r = &y->r;
	const char *names[6];
	size_t n = 0, more = 0;
	struct td__msg m;
	FILE *f;

	if (y->n_warn == 0 || (f = td__msg_begin(&m)) == NULL)
		return;
	for (size_t k = 0; k < r->n_taken; k++) {
		if (td__alloc_hit(y, &r->taken[k]))
			continue;
		if (n < 6)
			names[n++] = r->taken[k].symbol;
		else
			more++;
	}
	if (n > 0) {
		fputs("the library's calls to ", f);
		td__put_list(f, names, n);
		if (more)
			fprintf(f, " and %zu more", more);
		fputs(" would run the program's own definitions instead of libc's", f);
	}
	if (r->alloc >= 0 && !r->alloc_complete) {
		fputs(n > 0 ? ", and " : "", f);
		td__put_safe(f, y->sc.obj[r->alloc].path);
		fputs(" replaces malloc only in part", f);
	}
	fclose(m.f);
	y->summary = m.text;
}

/*
 * Which of the library's references would bind to the program's own
 * definitions if the program at path ran with the library preloaded?
 * secure: the loader would run it in secure mode (no LD_LIBRARY_PATH).
 * Returns 0 with *y filled, or a negative errno (y->ran false).
 */
static int td__syms_check(const char *path, bool secure, struct td__syms *y)
{
	char *roots[66];
	const char *own_root;
	struct td_ld_env env;
	size_t n = 0;
	int rc;

	char why[PATH_MAX + 128];

	memset(y, 0, sizeof(*y));
	y->have_lib = td_find_library(y->lib, NULL, why, sizeof(why)) == 0;
	td_ld_env_host(&env, secure ? NULL : getenv("LD_LIBRARY_PATH"));
	if ((roots[n++] = strdup(path)) == NULL)
		return -ENOMEM;
	if (y->have_lib && (roots[n++] = strdup(y->lib)) == NULL) {
		free(roots[0]);
		return -ENOMEM;
	}
	n = td__preload_roots(roots, n, sizeof(roots) / sizeof(roots[0]));
	rc = td_ld_scope_build(&y->sc, (const char *const *)roots, n, &env);
	own_root = y->have_lib ? y->lib : "libc.so.6";
	if (rc == 0)
		rc = td_ld_scope_build(&y->own, &own_root, 1, &env);
	y->lib_idx = (size_t)-1;
	for (size_t k = 0; y->have_lib && k < y->sc.n; k++)
		if (y->sc.obj[k].loader < 0 && strcmp(y->sc.obj[k].path, y->lib) == 0)
			y->lib_idx = k;
	if (rc == 0)
		rc = td_ld_check(&y->sc, y->lib_idx, &y->own, &y->r);
	for (size_t k = 0; k < n; k++)
		free(roots[k]);
	if (rc != 0) {
		td__syms_free(y);
		return rc;
	}
	y->ran = true;
	td__say_taken(y);
	td__say_alloc(y);
	td__say_notes(y);
	td__say_summary(y);
	return 0;
}

/*
 * Run the symbol check when the loader runs what p really runs (a
 * dynamically linked program of this machine, set-user-ID included: the
 * library reaches it through /etc/ld.so.preload).
 */
static void td__prog_syms(const struct td__prog *p, struct td__syms *y)
{
	const char *kind = td_elf_kind_name(p->runs);
	int rc;

	memset(y, 0, sizeof(*y));
	if (p->runs->kind != TD_ELF_DYNAMIC ||
	    (strcmp(kind, "dynamic") != 0 && strcmp(kind, "setuid") != 0) ||
	    strstr(p->runs->interp, "ld-musl") != NULL)
		return;
	rc = td__syms_check(p->run_path, strcmp(kind, "setuid") == 0, y);
	if (rc != 0 && asprintf(&y->note[0], "its symbols could not be checked: %s",
				 strerror(-rc)) > 0)
		y->n_note = 1;
}

/* `teardown doctor BINARY`: one finding.  Returns 1 when interposable and safe. */
static int td__doc_binary(const char *arg, const struct td__doc_opts *o)
{
	struct td__finding f = {.key = "binary", .name = arg};
	struct td__prog *p = calloc(1, sizeof(*p));
	struct td__syms y;
	char reason[2048];
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
	td__prog_syms(p, &y);
	f.reachable = ok;
	if (y.n_warn > 0) {
		ok = 0;
		if (f.reachable && y.summary != NULL) {
			size_t len = strlen(reason);

			snprintf(reason + len, sizeof(reason) - len, "; but %s (see the warning%s)",
				 y.summary, y.n_warn > 1 ? "s" : "");
		}
	}
	f.path = p->path;
	f.kind = td_elf_kind_name(&p->info[0]);
	f.reason = reason;
	f.ok = ok;
	f.elf = &p->info[0];
	f.syms = &y;
	if (p->interp_path[0])
		f.interp = p->interp_path;
	td__emit(o, &f);
	td__syms_free(&y);
	free(p);
	return ok;
}

int td_doctor_warn(const char *prog, FILE *out)
{
	struct td__prog *p = calloc(1, sizeof(*p));
	const struct td_elf_info *runs;
	struct td__syms y;
	char reason[2048];
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
	if (!ok) {
		fprintf(out, "teardown: warning: %s: %s\n", prog, reason);
		free(p);
		return 1;
	}
	/* reachable: what the library would bind to in it */
	td__prog_syms(p, &y);
	if (y.n_warn > 0)
		fprintf(out, "teardown: warning: %s: %s (`teardown doctor %s` explains)\n", prog,
			y.summary ? y.summary : "", prog);
	ok = y.n_warn == 0;
	td__syms_free(&y);
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
	struct td_elf_info *info;
	struct td_elf_dyn dyn = {0};
	bool loads;
	int ok;

	if (td_find_library(path, NULL, reason, sizeof(reason)) != 0) {
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
	/* what every program it is preloaded into must leave to libc */
	info = calloc(1, sizeof(*info));
	if (info != NULL && loads && td_elf_dynamic(path, info, &dyn) == 0) {
		size_t n = 0, len = strlen(reason);

		for (size_t k = 0; k < dyn.n_syms; k++)
			n += td_ld_is_import(&dyn.syms[k]);
		f.imports_of = &dyn;
		if (system_mode && n > 0)
			snprintf(reason + len, sizeof(reason) - len,
				 "; it calls %zu functions of libc and the loader, and a program "
				 "that defines one of them itself makes the library call its "
				 "version instead (`teardown doctor PROGRAM` names them)", n);
	}
	td__emit(o, &f);
	td_elf_dyn_free(&dyn);
	free(info);
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

static int td_cmd_doctor(int argc, char **argv)
{
	struct td__doc_opts o = {.out = stdout};
	struct td_getopt g;
	int i, ok = 1, c;

	if (td_getopt_init(&g, &td_cmd_doctor_def, argc, argv, false) != 0)
		return TD_EXIT_USAGE;
	while ((c = td_getopt_next(&g)) != -1) {
		switch (c) {
		case TD_OPT_DONE: td_getopt_free(&g); return g.status;
		case O_JSON: o.json = true; break;
		case O_SYSTEM: o.system = true; break;
		}
	}
	td_getopt_free(&g);
	if (optind >= argc && !o.system)
		return td_usage_error(&td_cmd_doctor_def, "no program given (or --system)");
	for (i = optind; i < argc; i++)
		ok &= td__doc_binary(argv[i], &o);
	if (o.system)
		ok &= td_doctor_system(stdout, o.json) == 0;
	else
		ok &= td__doc_library(&o, false);
	fflush(stdout);
	return ok ? 0 : 1;
}

const struct td_cmd td_cmd_doctor_def = {
	.name = "doctor",
	.synopsis = "[--json] [--system] PROGRAM...",
	.summary = "can PROGRAM be interposed, and is the library safe to preload?",
	.about = "Tell whether teardown can act on each program: LD_PRELOAD never reaches\n"
		 "static binaries, Go makes its own system calls, and set-user-ID programs\n"
		 "ignore LD_PRELOAD.  PROGRAM is a path or a command name looked up in PATH.\n"
		 "For a dynamically linked program, also find the libc functions the\n"
		 "library calls that the program (or a library it loads) defines itself,\n"
		 "so that the loader gives the library the program's function instead\n"
		 "of libc's, and name a replacement malloc (jemalloc, tcmalloc...).\n"
		 "Also check the library a run would preload: it may need only libc.so.6,\n"
		 "and no newer glibc than this system has.",
	.opts = td__doc_table,
	.after = "Exit status: 0 if teardown can act on every program without a warning\n"
		 "(and the system checks pass), 1 if not, 125 on bad usage.",
	.main = td_cmd_doctor,
	.operands = "@command @file",
};
