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
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fault.h"
#include "teardown/fmt.h"
#include "teardown/run.h"
#include "teardown/schema.h"

struct td_run_opts {
	const char *config;
	bool dry_run;
	bool have_rule; /* some option describes a rule */
	bool have_log;	/* some option sets a log key */
	/* each schema key's values from the options, in order */
	const char **vals[64];
	size_t nvals[64];
};

#define O_KEY 1000 /* + the schema row: an option that sets a policy key */
enum { O_VERSION = 256, O_HELP };

static const struct option td__fixed[] = {
	{"config", required_argument, NULL, 'c'},
	{"dry-run", no_argument, NULL, 'n'},
	{"version", no_argument, NULL, O_VERSION},
	{"help", no_argument, NULL, O_HELP},
};

/* getopt_long's table: the fixed options, then one per schema key with one. */
static struct option *td__options(void)
{
	size_t nf = sizeof(td__fixed) / sizeof(td__fixed[0]), n = nf;
	struct option *o = calloc(nf + td_n_keys + 1, sizeof(*o));

	if (o == NULL)
		return NULL;
	memcpy(o, td__fixed, sizeof(td__fixed));
	for (size_t i = 0; i < td_n_keys; i++) {
		if (td_keys[i].opt == NULL)
			continue;
		o[n].name = td_keys[i].opt;
		o[n].has_arg = td_keys[i].arg ? required_argument : no_argument;
		o[n].val = O_KEY + (int)i;
		n++;
	}
	return o;
}

static void td__help_scope(int scope, const char *title)
{
	printf("%s\n", title);
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];
		char lhs[64];

		if (k->scope != scope || k->opt == NULL)
			continue;
		snprintf(lhs, sizeof(lhs), "--%s%s%s", k->opt, k->arg ? " " : "", k->arg ? k->arg : "");
		printf("      %-20s %s\n", lhs, k->help);
	}
}

static void td__help(void)
{
	fputs("usage: teardown [options] -- COMMAND [ARGS...]\n"
	      "Run COMMAND with libteardown.so preloaded. With no policy options it\n"
	      "only observes: nothing changes and every teardown is logged to stderr.\n"
	      "\n"
	      "  -c, --config FILE        a policy file (libconfig syntax); the options\n"
	      "                           below add a rule in front of its rules\n",
	      stdout);
	td__help_scope(TD_SC_RULE, "policy:");
	td__help_scope(TD_SC_MATCH, "match (default: every TCP socket):");
	td__help_scope(TD_SC_FAULT, "faults:");
	td__help_scope(TD_SC_LOG, "log:");
	fputs("other:\n"
	      "  -n, --dry-run            print what would be set, run nothing\n"
	      "      --version, --help\n"
	      "\n"
	      "The log target is opened (a file is created) before COMMAND runs; when it\n"
	      "cannot be, teardown says why and exits 125 without running COMMAND.\n",
	      stdout);
}

/* Keep an option's value for its key; the values are read at the end. */
static int td__opt(const struct td_key *k, const char *arg, struct td_run_opts *o)
{
	size_t i = (size_t)(k - td_keys);
	const char **v;

	if (i >= sizeof(o->vals) / sizeof(o->vals[0]))
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

	for (size_t i = 0; i < td_n_keys && i < sizeof(o->vals) / sizeof(o->vals[0]); i++) {
		const struct td_key *k = &td_keys[i];
		struct td_cfg_error err;

		if (o->nvals[i] == 0 || (r == NULL) != (k->scope == TD_SC_LOG))
			continue;
		/* a relative log file means one here, not in the program's cwd */
		if (k->kind == TD_K_TARGET && o->vals[i][0][0] != '/' &&
		    strcmp(o->vals[i][0], "stderr") != 0 && strcmp(o->vals[i][0], "syslog") != 0 &&
		    strcmp(o->vals[i][0], "journal") != 0 && o->vals[i][0][0] != '\0' &&
		    getcwd(path, sizeof(path)) != NULL) {
			static char abs_path[2 * PATH_MAX];

			snprintf(abs_path, sizeof(abs_path), "%s/%s", path, o->vals[i][0]);
			o->vals[i][0] = abs_path;
		}
		if (td_policy_set_option(p, r, k, o->vals[i], o->nvals[i], &err) != 0) {
			fprintf(stderr, "teardown: %s\n", err.msg);
			return -1;
		}
	}
	return 0;
}

int td_find_library(char out[PATH_MAX])
{
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	const char *rel[] = {"/libteardown.so", "/../lib/teardown/libteardown.so"};
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]);
			if (access(cand, R_OK) == 0 && realpath(cand, out) != NULL)
				return 0;
		}
	}
	snprintf(cand, sizeof(cand), "%s/libteardown.so", TD_LIBDIR);
	if (access(cand, R_OK) == 0 && strlen(cand) < PATH_MAX) {
		strcpy(out, cand);
		return 0;
	}
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

/*
 * The policy text to hand to the library.  Only a file: its path goes in
 * TEARDOWN_CONFIG (*as_path).  Otherwise the text is built: the file's
 * policy, re-printed in canonical form, with the options' rule first and
 * the log options applied.
 */
static char *td__policy(struct td_run_opts *o, bool *as_path, struct td_policy *logp)
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
	}
	if (td__apply_options(o, &all, NULL) != 0) {
		td_policy_free(&all);
		return NULL;
	}
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
 * LD_PRELOAD with the library first; an existing list is kept after it.
 * The value the command gets (and --dry-run prints), or NULL (no memory).
 */
static char *td__preload_value(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;

	if (old == NULL || *old == '\0')
		return strdup(lib);
	if (strstr(old, lib) != NULL)
		return strdup(old);
	return asprintf(&v, "%s:%s", lib, old) < 0 ? NULL : v;
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

/*
 * The run's counters file (include/teardown/run.h): every process of this
 * run draws its fault numbers from it, so a fixed seed gives the stated
 * share across many short processes.  A teardown started inside a run
 * (TEARDOWN_RUN already set) joins it.  Files of runs a day old are
 * removed.  NULL (said) when it cannot be made: faults then count per
 * process, as without the command.
 */
static char *td__run_file(void)
{
	struct td_run_shm run;
	char dir[PATH_MAX], *path = NULL;
	struct dirent *de;
	time_t now = time(NULL);
	DIR *d;
	int fd;

	if (td__private_dir(dir) != 0)
		return NULL;
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat st;

			if (strncmp(de->d_name, "run-", 4) == 0 &&
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtime > 86400)
				(void)unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	if (asprintf(&path, "%s/run-XXXXXX", dir) < 0)
		return NULL;
	fd = mkstemp(path);
	memset(&run, 0, sizeof(run));
	run.magic = TD_RUN_MAGIC;
	if (fd < 0 || write(fd, &run, sizeof(run)) != (ssize_t)sizeof(run) || close(fd) != 0) {
		if (fd >= 0)
			unlink(path);
		free(path);
		return NULL;
	}
	return path;
}

int td_cmd_run(int argc, char **argv)
{
	struct td_run_opts o;
	char lib[PATH_MAX];
	char *policy, *preload;
	static struct td_policy logp;
	char why[PATH_MAX + 256];
	struct option *longopts;
	bool as_path;
	int c;

	memset(&o, 0, sizeof(o));
	longopts = td__options();
	if (longopts == NULL) {
		perror("teardown");
		return 1;
	}
	opterr = 1;
	while ((c = getopt_long(argc, argv, "+c:n", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'n': o.dry_run = true; break;
		case O_VERSION: printf("teardown %s\n", TD_VERSION); free(longopts); return 0;
		case O_HELP: td__help(); free(longopts); return 0;
		case '?': free(longopts); return 2;
		default:
			if (c < O_KEY || (size_t)(c - O_KEY) >= td_n_keys ||
			    td__opt(&td_keys[c - O_KEY], optarg, &o) != 0) {
				free(longopts);
				return 2;
			}
		}
	}
	free(longopts);
	if (optind >= argc && !o.dry_run) {
		fputs("teardown: no command given (usage: teardown [options] -- COMMAND [ARGS...])\n", stderr);
		return 2;
	}
	if (td_find_library(lib) != 0) {
		fprintf(stderr, "teardown: libteardown.so not found next to this program or in %s\n", TD_LIBDIR);
		return 1;
	}
	policy = td__policy(&o, &as_path, &logp);
	if (policy == NULL)
		return 2;
	preload = td__preload_value(lib);
	if (preload == NULL) {
		perror("teardown");
		return 1;
	}
	if (o.dry_run) {
		printf("LD_PRELOAD=%s\n", preload);
		if (as_path)
			printf("TEARDOWN_CONFIG=%s\n", policy);
		else
			printf("TEARDOWN_POLICY=<<EOF\n%sEOF\n", policy);
		printf("exec:");
		for (int i = optind; i < argc; i++)
			printf(" %s", argv[i]);
		printf("\n");
		free(policy);
		free(preload);
		return 0;
	}
	/* an audit nobody can read is refused, not run in silence */
	if (td_log_target_check(&logp, true, why, sizeof(why)) != 0) {
		fprintf(stderr, "teardown: %s; not running %s\n", why, argv[optind]);
		free(policy);
		free(preload);
		return 125;
	}
	td_doctor_warn(argv[optind], stderr);
	if (!as_path && strlen(policy) > TD_ENV_POLICY_MAX) {
		/* too large for one environment string: hand over a file */
		char *file = td__policy_file(policy);

		if (file == NULL)
			return 1;
		free(policy);
		policy = file;
		as_path = true;
	}
	if (getenv("TEARDOWN_RUN") == NULL) {
		char *run = td__run_file();

		if (run != NULL && setenv("TEARDOWN_RUN", run, 1) != 0)
			perror("teardown: setenv");
		free(run);
	}
	if (setenv("LD_PRELOAD", preload, 1) != 0 ||
	    (as_path ? setenv("TEARDOWN_CONFIG", policy, 1)
		     : (unsetenv("TEARDOWN_CONFIG"), setenv("TEARDOWN_POLICY", policy, 1))) != 0) {
		perror("teardown: setenv");
		return 1;
	}
	free(policy);
	free(preload);
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "teardown: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
