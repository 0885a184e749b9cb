/*
 * teardown: `teardown [options] -- COMMAND [ARGS...]`.
 *
 * Builds the policy (a file, options, or both), checks it with the same
 * parser the library uses, puts the library in front of LD_PRELOAD and
 * exec()s the command: no process stays in between, so signals, exit
 * status and the process tree are the command's own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "lib/out.h"
#include "lib/shadow.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fault.h"
#include "teardown/fmt.h"
#include "teardown/run.h"
#include "teardown/schema.h"

#define O_KEY 1000 /* + the schema row: an option that sets a policy key */
enum { O_VERSION = TD_OPT_LONG, O_LIBRARY };

static const struct td_opt td__fixed[] = {
	{"config", 'c', "FILE",
	 "a policy file (libconfig syntax, teardown.conf(5)); the\n"
	 "options below add a rule in front of its rules", "@file"},
	{"dry-run", 'n', NULL,
	 "print the environment COMMAND would get as shell\n"
	 "export lines (eval \"$(teardown -n ...)\"), run nothing", NULL},
	{"quiet", 'q', NULL,
	 "the rule made from the options (or the observing\n"
	 "rule) writes no events; a -c file's rules log as it says", NULL},
	{"library", 'l', "PATH",
	 "preload this libteardown.so (default: $TEARDOWN_LIBRARY,\n"
	 "then the one installed with this command)", "@file"},
	{"version", O_VERSION, NULL, "print the version and exit", NULL},
	{0},
};
#define TD__N_FIXED (sizeof(td__fixed) / sizeof(td__fixed[0]) - 1)

/* A scope's options under a heading, as the schema lists them. */
static size_t td__scope_opts(struct td_opt *o, size_t n, int scope, const char *heading)
{
	o[n++] = (struct td_opt){.help = heading};
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];
		char *words = NULL;

		if (k->scope != scope || k->opt == NULL)
			continue;
		if (k->kind == TD_K_ENUM) {
			size_t len = 0;

			for (int v = 0; k->names[v] != NULL; v++)
				len += strlen(k->names[v]) + 1;
			words = calloc(1, len + 1);
			for (int v = 0; words != NULL && k->names[v] != NULL; v++) {
				strcat(words, v ? " " : "");
				strcat(words, k->names[v]);
			}
		} else if (k->kind == TD_K_TARGET) {
			words = strdup("stderr syslog journal @file");
		}
		o[n++] = (struct td_opt){k->opt, O_KEY + (int)i, k->arg, k->help, words};
	}
	return n;
}

const struct td_opt *td_run_options(void)
{
	static struct td_opt *table;
	size_t n;

	if (table != NULL)
		return table;
	/* kept for the life of the process */
	table = calloc(TD__N_FIXED + td_n_keys + 9, sizeof(*table));
	if (table == NULL)
		return td__fixed; /* no schema options, but still the fixed ones */
	table[0] = (struct td_opt){.help = "General:"};
	memcpy(table + 1, td__fixed, TD__N_FIXED * sizeof(td__fixed[0]));
	n = 1 + TD__N_FIXED;
	n = td__scope_opts(table, n, TD_SC_RULE, "Policy (a rule in front of the file's rules):");
	n = td__scope_opts(table, n, TD_SC_MATCH, "Match (default: every TCP socket):");
	n = td__scope_opts(table, n, TD_SC_FAULT, "Faults:");
	n = td__scope_opts(table, n, TD_SC_LOG, "Log:");
	return table;
}

/* Keep an option's value for its key; the values are read at the end. */
static int td__opt(const struct td_key *k, const char *arg, struct td_run_opts *o)
{
	size_t i = (size_t)(k - td_keys);
	const char **v;

	if (i >= TD_RUN_MAX_KEYS)
		return -1;
	/* a repeatable key gathers its values; any other: the last wins */
	if (!(k->flags & TD_KF_REPEAT))
		o->nvals[i] = 0;
	v = realloc(o->vals[i], (o->nvals[i] + 1) * sizeof(*v));
	if (v == NULL)
		return -1;
	v[o->nvals[i]++] = arg ? arg : "";
	o->vals[i] = v;
	if (k->scope == TD_SC_LOG)
		o->have_log = true;
	else
		o->have_rule = true;
	return 0;
}

/*
 * Apply the options of scope (or of the rule's scopes when rule) to p or
 * r, each through the file's own reader: -1 after saying what is wrong.
 */
static int td__apply_options(struct td_run_opts *o, struct td_policy *p, struct td_rule *r)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < td_n_keys && i < TD_RUN_MAX_KEYS; i++) {
		const struct td_key *k = &td_keys[i];
		struct td_cfg_error err;

		if (o->nvals[i] == 0 || (r == NULL) != (k->scope == TD_SC_LOG))
			continue;
		/* a relative log file means one here, not in the program's cwd */
		if (k->kind == TD_K_TARGET && o->vals[i][0][0] != '/' &&
		    strcmp(o->vals[i][0], "stderr") != 0 && strcmp(o->vals[i][0], "syslog") != 0 &&
		    strcmp(o->vals[i][0], "journal") != 0 && o->vals[i][0][0] != '\0' &&
		    getcwd(path, sizeof(path)) != NULL) {
			snprintf(o->abs_log, sizeof(o->abs_log), "%s/%s", path, o->vals[i][0]);
			o->vals[i][0] = o->abs_log;
		}
		if (td_policy_set_option(p, r, k, o->vals[i], o->nvals[i], &err) != 0) {
			fprintf(stderr, "teardown: %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

/* A readable file's real path into out; 0 or -errno. */
static int td__lib_at(const char *cand, char out[PATH_MAX])
{
	if (access(cand, R_OK) != 0)
		return -errno;
	if (realpath(cand, out) == NULL)
		return -errno;
	return 0;
}

int td_find_library(char out[PATH_MAX], const char *explicit_path, char *why, size_t cap)
{
	const char *env = getenv("TEARDOWN_LIBRARY");
	const char *rel[] = {"/libteardown.so", "/" TD_LIBDIR_REL "/libteardown.so"};
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n;
	int rc;

	/* chosen by the user: that one or none */
	if (explicit_path == NULL && env != NULL && env[0] != '\0')
		explicit_path = env;
	if (explicit_path != NULL) {
		rc = td__lib_at(explicit_path, out);
		if (rc != 0)
			snprintf(why, cap, "%s%s: %s", explicit_path == env ? "TEARDOWN_LIBRARY=" : "",
				 explicit_path, strerror(-rc));
		return rc;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
			if (td__lib_at(cand, out) == 0)
				return 0;
		}
	}
	snprintf(cand, sizeof(cand), "%s/libteardown.so", TD_LIBDIR);
	if (td__lib_at(cand, out) == 0)
		return 0;
	snprintf(why, cap, "libteardown.so not found next to this program or in %s "
		 "(--library PATH or TEARDOWN_LIBRARY names another)", TD_LIBDIR);
	return -ENOENT;
}

/* A policy error, "teardown: file:line: what", on stderr. */
static void td__cfg_fail(const struct td_cfg_error *err)
{
	char msg[sizeof(err->file) + sizeof(err->msg) + 32];

	td_cfg_error_format(err, msg, sizeof(msg));
	fprintf(stderr, "teardown: %s\n", msg);
}

static char *td__read_all(const char *path, size_t *len)
{
	struct td_cfg_error err;
	char *text = NULL;

	if (td_policy_read_file(path, false, &text, len, &err) != 0) {
		td__cfg_fail(&err);
		return NULL;
	}
	return text;
}

/* "a (line 4), b (line 9) and 3 more": the rules of p hidden (by[j] == 0). */
static void td__hidden_names(FILE *out, const struct td_policy *p, const int32_t *by)
{
	uint32_t shown = 0, more = 0;

	for (uint32_t j = 1; j < p->n_rules; j++) {
		if (by[j] != 0)
			continue;
		if (shown == 8) {
			more++;
			continue;
		}
		fputs(shown ? ", " : "", out);
		td_put_text_str(out, p->rules[j].name);
		if (p->rules[j].line > 0)
			fprintf(out, " (line %d)", p->rules[j].line);
		shown++;
	}
	if (more)
		fprintf(out, " and %u more", more);
}

/*
 * The options' rule goes first.  One with no match criterion decides
 * every socket, so none of the file's rules can ever apply: say so, and
 * name them.  (An options' rule with criteria that happen to cover some
 * of the file's rules is taken as a deliberate override.)
 */
static void td__warn_hidden(const struct td_policy *all, const char *file)
{
	int32_t *by;

	if (all->n_rules < 2 || !td_rule_matches_all(&all->rules[0]))
		return;
	by = calloc(all->n_rules, sizeof(*by));
	if (by == NULL)
		return;
	for (uint32_t j = 1; j < all->n_rules; j++)
		by[j] = td_rule_covers(&all->rules[0], &all->rules[j]) ? 0 : -1;
	fputs("teardown: warning: the rule from the options has no match criterion (--program, "
	      "--role, --remote, --local, --remote-port, --local-port) and comes first, so it "
	      "decides every socket and the rules of ", stderr);
	td_put_text_str(stderr, file);
	fputs(" never apply: ", stderr);
	td__hidden_names(stderr, all, by);
	fputc('\n', stderr);
	free(by);
}

char *td_run_policy(struct td_run_opts *o, bool *as_path, struct td_policy *logp)
{
	struct td_policy all;
	struct td_cfg_error err;
	struct td_rule *rules;
	char *text, *out;
	size_t len = 0;
	int rc;

	*as_path = o->config != NULL && !o->have_rule && !o->have_log;
	if (o->config != NULL) {
		text = td__read_all(o->config, &len);
		if (text == NULL)
			return NULL;
		rc = td_policy_parse_text(&all, text, len, o->config, &err);
		free(text);
	} else {
		/* no file: the defaults */
		rc = td_policy_parse_text(&all, "", 0, "defaults", &err);
	}
	if (rc != 0) {
		td__cfg_fail(&err);
		td_policy_free(&all);
		return NULL;
	}
	if (!*as_path && (o->have_rule || o->config == NULL)) {
		/* the options' rule goes in front of the file's rules */
		rules = realloc(all.rules, (all.n_rules + 1) * sizeof(*rules));
		if (rules == NULL) {
			td_policy_free(&all);
			return NULL;
		}
		memmove(rules + 1, rules, all.n_rules * sizeof(*rules));
		memset(&rules[0], 0, sizeof(rules[0]));
		td_keys_default(TD_SC_RULE, &rules[0]);
		snprintf(rules[0].name, sizeof(rules[0].name), "%s", o->have_rule ? "cli" : "observe");
		rules[0].program_ok = true;
		all.rules = rules;
		all.n_rules++;
		if (td__apply_options(o, &all, &rules[0]) != 0) {
			td_policy_free(&all);
			return NULL;
		}
		/* -q: the options' rule (or the observing one) writes nothing */
		if (o->quiet)
			rules[0].log = false;
		if (o->config != NULL)
			td__warn_hidden(&all, o->config);
	}
	if (td__apply_options(o, &all, NULL) != 0) {
		td_policy_free(&all);
		return NULL;
	}
	td_policy_finish(&all);
	logp->any_fault = all.any_fault;
	logp->log_target = all.log_target;
	logp->log_facility = all.log_facility;
	memcpy(logp->log_path, all.log_path, sizeof(logp->log_path));
	if (*as_path) {
		/* checked here, read again by the library itself */
		td_policy_free(&all);
		return realpath(o->config, NULL);
	}
	out = td_policy_to_text(&all);
	td_policy_free(&all);
	return out;
}

/*
 * LD_PRELOAD with the library first, then the entries of old (separated
 * by colons or blanks, as ld.so reads them) that are not a libteardown.so
 * (this one or another: two copies would each act on every socket).
 * NULL when out of memory.
 */
char *td_preload_join(const char *lib, const char *old)
{
	size_t cap = strlen(lib) + (old ? strlen(old) : 0) + 2;
	char *v = malloc(cap), *w;

	if (v == NULL)
		return NULL;
	w = v + snprintf(v, cap, "%s", lib);
	while (old != NULL && *old) {
		size_t n = strcspn(old, ": \t\n");
		const char *base = old;

		for (size_t i = 0; i < n; i++)
			if (old[i] == '/')
				base = old + i + 1;
		if (n > 0 && !((size_t)(old + n - base) == strlen("libteardown.so") &&
			       memcmp(base, "libteardown.so", strlen("libteardown.so")) == 0)) {
			*w++ = ':';
			memcpy(w, old, n);
			w += n;
			*w = '\0';
		}
		old += n;
		old += strspn(old, ": \t\n");
	}
	return v;
}

/*
 * Linux limits one environment string to 128 KiB, and the library reads
 * policies up to 1 MiB.  A built policy over this size is written to a
 * private file instead: $XDG_RUNTIME_DIR/teardown (or /tmp/teardown-UID),
 * a directory of this user's with mode 0700, under a name made from the
 * text's hash (so the same policy is written once, and files are reused
 * rather than piling up).  Returns the path, or NULL with a message.
 */
#define TD_ENV_POLICY_MAX (96 * 1024)

/*
 * The user's private directory for what a run hands its programs:
 * $XDG_RUNTIME_DIR/teardown, else /tmp/teardown-UID, mode 0700, never one
 * someone else made or could write into.  0, or -1 with errno.
 */
static int td__private_dir(char dir[PATH_MAX])
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (rt != NULL && rt[0] == '/')
		snprintf(dir, PATH_MAX, "%s/teardown", rt);
	else
		snprintf(dir, PATH_MAX, "/tmp/teardown-%u", (unsigned)geteuid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

static char *td__policy_file(const char *text)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32], *path = NULL;
	uint64_t h = td_fnv64(text, strlen(text));
	size_t len = strlen(text);
	int fd;

	if (td__private_dir(dir) != 0)
		goto fail;
	if (asprintf(&path, "%s/policy-%016llx.conf", dir, (unsigned long long)h) < 0)
		return NULL;
	snprintf(tmp, sizeof(tmp), "%s/.policy-XXXXXX", dir);
	fd = mkstemp(tmp);
	if (fd < 0)
		goto fail;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0 ||
	    rename(tmp, path) != 0) {
		unlink(tmp);
		goto fail;
	}
	return path;
fail:
	fprintf(stderr, "teardown: the policy (%zu bytes) is too large for the environment "
		"and could not be written under %s: %s\n", len, dir, strerror(errno));
	free(path);
	return NULL;
}

int td_run_take(struct td_run_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'c': o->config = arg; return 0;
	case 'n': o->dry_run = true; return 0;
	case 'q': o->quiet = true; return 0;
	case 'l': o->library = arg; return 0;
	default:
		if (c < O_KEY || (size_t)(c - O_KEY) >= td_n_keys)
			return 1;
		return td__opt(&td_keys[c - O_KEY], arg, o) == 0 ? 0 : -1;
	}
}

void td_run_opts_free(struct td_run_opts *o)
{
	for (size_t i = 0; i < TD_RUN_MAX_KEYS; i++)
		free(o->vals[i]);
	memset(o, 0, sizeof(*o));
}

/* -n: what the command would get, as lines a shell can source. */
static void td__dry_run(const char *preload, const char *policy, bool as_path, int n,
			char **cmd)
{
	fputs("export LD_PRELOAD=", stdout);
	td_put_shell_word(stdout, preload);
	fputs(as_path ? "\nexport TEARDOWN_CONFIG=" : "\nexport TEARDOWN_POLICY=", stdout);
	td_put_shell_word(stdout, policy);
	/* the library reads TEARDOWN_CONFIG before TEARDOWN_POLICY */
	fputs(as_path ? "\n" : "\nunset TEARDOWN_CONFIG\n", stdout);
	if (n > 0) {
		fputs("# exec:", stdout);
		for (int i = 0; i < n; i++) {
			fputc(' ', stdout);
			td_put_shell_word(stdout, cmd[i]);
		}
		fputc('\n', stdout);
	}
}

/*
 * The run's counters file (include/teardown/run.h): every process of this
 * run draws its fault numbers from it, so a fixed seed gives the stated
 * share across many short processes.
 *
 * Why a name first and the file only for faults: the outermost teardown
 * names the run (TEARDOWN_RUN: $XDG_RUNTIME_DIR/teardown/run-<random>, or
 * /tmp/teardown-UID/), and the file is made by the first teardown of the
 * run whose policy has a fault (this one, or one started inside the run,
 * which joins it).  A file for every run, kept a day, piled up under a
 * service restarted every few seconds (on a tmpfs: memory), and the sweep
 * of old ones slowed every start (21 ms with 16,000 of them).  A run whose
 * teardowns have no fault makes nothing; faults a live change adds later
 * count per process.
 */
static char *td__run_name(void)
{
	char dir[PATH_MAX], *path = NULL;
	uint64_t rnd;

	if (td__private_dir(dir) != 0 || getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	    asprintf(&path, "%s/run-%016llx", dir, (unsigned long long)rnd) < 0)
		return NULL;
	return path;
}

/*
 * Make the counters file at path unless it is there: written whole under a
 * temporary name and linked into place, so a process that maps it never
 * sees it half made, and of two teardowns making it at once one wins and
 * both use its file.  Files of runs a day old in the directory go first.
 */
static void td__run_make(const char *path)
{
	struct td_run_shm run;
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX], tmp[PATH_MAX + 16];
	struct dirent *de;
	time_t now = time(NULL);
	struct stat st;
	DIR *d;
	bool ok;
	int fd;

	if (path[0] != '/' || slash == NULL || (size_t)(slash - path) >= sizeof(dir) ||
	    lstat(path, &st) == 0)
		return;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if ((d = opendir(dir[0] ? dir : "/")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strncmp(de->d_name, "run-", 4) == 0 &&
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtime > 86400)
				(void)unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	snprintf(tmp, sizeof(tmp), "%s/run-new-XXXXXX", dir);
	fd = mkstemp(tmp);
	if (fd < 0)
		return;
	memset(&run, 0, sizeof(run));
	run.magic = TD_RUN_MAGIC;
	ok = write(fd, &run, sizeof(run)) == (ssize_t)sizeof(run);
	/* EEXIST: another teardown of the run made it; any other failure
	 * leaves no file, and the run's faults count per process */
	if (close(fd) == 0 && ok && link(tmp, path) != 0 && errno != EEXIST)
		ok = false;
	unlink(tmp);
}

int td_cmd_run(int argc, char **argv)
{
	struct td_run_opts o;
	struct td_getopt g;
	char lib[PATH_MAX];
	char *policy, *preload;
	static struct td_policy logp;
	char why[PATH_MAX + 256];
	bool as_path;
	int c, rc;

	memset(&o, 0, sizeof(o));
	if (td_getopt_init(&g, &td_cmd_run_def, argc, argv, true) != 0)
		return TD_EXIT_USAGE;
	while ((c = td_getopt_next(&g)) != -1) {
		if (c == TD_OPT_DONE) {
			td_getopt_free(&g);
			td_run_opts_free(&o);
			return g.status;
		}
		if (c == O_VERSION) {
			printf("teardown %s\n", TD_VERSION);
			td_getopt_free(&g);
			td_run_opts_free(&o);
			return 0;
		}
		rc = td_run_take(&o, c, optarg);
		if (rc != 0) {
			td_getopt_free(&g);
			td_run_opts_free(&o);
			if (rc < 0)
				perror("teardown");
			return TD_EXIT_USAGE;
		}
	}
	td_getopt_free(&g);
	if (optind >= argc && !o.dry_run) {
		td_run_opts_free(&o);
		return td_usage_error(&td_cmd_run_def, "no command given");
	}
	rc = TD_EXIT_USAGE;
	policy = preload = NULL;
	if (td_find_library(lib, o.library, why, sizeof(why)) != 0) {
		fprintf(stderr, "teardown: %s\n", why);
		goto out;
	}
	policy = td_run_policy(&o, &as_path, &logp);
	if (policy == NULL)
		goto out;
	preload = td_preload_join(lib, getenv("LD_PRELOAD"));
	if (preload == NULL) {
		perror("teardown");
		goto out;
	}
	if (o.dry_run) {
		td__dry_run(preload, policy, as_path, argc - optind, argv + optind);
		rc = 0;
		goto out;
	}
	/* an audit nobody can read is refused, not run in silence */
	if (td_log_target_check(&logp, true, why, sizeof(why)) != 0) {
		fprintf(stderr, "teardown: %s; not running %s\n", why, argv[optind]);
		goto out;
	}
	td_doctor_warn(argv[optind], stderr);
	if (!as_path && strlen(policy) > TD_ENV_POLICY_MAX) {
		/* too large for one environment string: hand over a file */
		char *file = td__policy_file(policy);

		if (file == NULL)
			goto out;
		free(policy);
		policy = file;
		as_path = true;
	}
	if (getenv("TEARDOWN_RUN") == NULL) {
		char *run = td__run_name();

		if (run != NULL && setenv("TEARDOWN_RUN", run, 1) != 0)
			perror("teardown: setenv");
		free(run);
	}
	if (logp.any_fault && getenv("TEARDOWN_RUN") != NULL)
		td__run_make(getenv("TEARDOWN_RUN"));
	if (setenv("LD_PRELOAD", preload, 1) != 0 ||
	    (as_path ? setenv("TEARDOWN_CONFIG", policy, 1)
		     : (unsetenv("TEARDOWN_CONFIG"), setenv("TEARDOWN_POLICY", policy, 1))) != 0) {
		perror("teardown: setenv");
		goto out;
	}
	free(policy);
	free(preload);
	td_run_opts_free(&o);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "teardown: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? TD_EXIT_NOT_FOUND : TD_EXIT_CANNOT_RUN;
out:
	free(policy);
	free(preload);
	td_run_opts_free(&o);
	return rc;
}

const struct td_cmd td_cmd_run_def = {
	.name = "run",
	.synopsis = "[options] [--] COMMAND [ARGS...]\n"
		    "(or: teardown [options] [--] COMMAND [ARGS...])",
	.summary = "run COMMAND under a policy (the default subcommand)",
	.about = "Run COMMAND with libteardown.so preloaded: the policy (a -c file, the\n"
		 "options, or both) decides how its TCP connections end, injects faults,\n"
		 "and logs every teardown.  With no policy options it only observes:\n"
		 "nothing changes and every teardown is logged to stderr.  teardown\n"
		 "exec()s COMMAND, so its exit status and signals are COMMAND's own.",
	.opts = td_run_options,
	.after = "The log target is opened (a file is created) before COMMAND runs; when it\n"
		 "cannot be, teardown says why and exits 125 without running COMMAND.\n"
		 "\n"
		 "Exit status: COMMAND's own; 125 when teardown itself fails (bad usage,\n"
		 "an invalid policy, no library, a log target it cannot open); 126 when\n"
		 "COMMAND cannot be run, 127 when it is not found.",
	.main = td_cmd_run,
	.operands = "@command",
};
