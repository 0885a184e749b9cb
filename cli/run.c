/*
 * teardown: `teardown [options] -- COMMAND [ARGS...]`.
 *
 * Builds the policy (a file, options, or both), checks it with the same
 * parser the library uses, puts the library in front of LD_PRELOAD and
 * exec()s the command: no process stays in between, so signals, exit
 * status and the process tree are the command's own.
 */
#include <errno.h>
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

struct td_run_opts {
	const char *config;
	const char *log, *format, *facility;
	bool dry_run;
	bool have_rule; /* some option describes a rule */
};

static void td__help(void)
{
	fputs("usage: teardown [options] -- COMMAND [ARGS...]\n"
	      "Run COMMAND with libteardown.so preloaded. With no policy options it\n"
	      "only observes: nothing changes and every teardown is logged to stderr.\n"
	      "\n"
	      "policy:\n"
	      "  -c, --config FILE        a policy file (libconfig); options below add a\n"
	      "                           rule in front of its rules\n"
	      "      --close ACTION       pass | graceful | drain | abort\n"
	      "      --drain-timeout MS   how long a drain waits for the peer's FIN\n"
	      "      --shutdown MODE      pass | half | skip\n"
	      "      --reuseaddr          SO_REUSEADDR before bind and connect\n"
	      "      --fin-timeout S      TCP_LINGER2 (per-socket tcp_fin_timeout)\n"
	      "      --leak-after S       log sockets left in CLOSE_WAIT this long\n"
	      "match (default: every TCP socket):\n"
	      "      --role ROLE          client | server | any\n"
	      "      --remote CIDR        peer address or block (repeatable)\n"
	      "      --remote-port PORTS  e.g. 443 or 8000-8099\n"
	      "      --local-port PORTS\n"
	      "faults:\n"
	      "      --rst P              share of connections whose close is an RST\n"
	      "      --rst-after-ms MS    reset connections this long after they open\n"
	      "      --rst-after-bytes N  reset once the program has written N bytes\n"
	      "      --connect-refuse P   share of connects refused (ECONNREFUSED)\n"
	      "      --connect-timeout P  share of connects that time out (ETIMEDOUT)\n"
	      "      --connect-timeout-ms MS\n"
	      "      --connect-delay MS   every connect this much slower\n"
	      "      --close-delay MS     every close this much slower\n"
	      "      --seed N             fixed seed: the same faults on every run\n"
	      "log:\n"
	      "      --log TARGET         stderr | syslog | journal | /absolute/path\n"
	      "      --format FMT         text | json\n"
	      "      --log-facility NAME  syslog/journal facility: daemon (default),\n"
	      "                           user, local0..local7, ...\n"
	      "other:\n"
	      "  -n, --dry-run            print what would be set, run nothing\n"
	      "\n"
	      "The log target is opened (a file is created) before COMMAND runs; when it\n"
	      "cannot be, teardown says why and exits 125 without running COMMAND.\n"
	      "      --version, --help\n",
	      stdout);
}

enum {
	O_CLOSE = 256, O_DRAIN, O_SHUT, O_REUSE, O_FIN, O_LEAK, O_ROLE, O_REMOTE,
	O_RPORT, O_LPORT, O_RST, O_RST_MS, O_RST_BYTES, O_REFUSE, O_TIMEOUT,
	O_TIMEOUT_MS, O_CDELAY, O_XDELAY, O_SEED, O_LOG, O_FORMAT, O_VERSION, O_HELP, O_FACILITY,
};

static const struct option td__long[] = {
	{"config", required_argument, NULL, 'c'},
	{"dry-run", no_argument, NULL, 'n'},
	{"close", required_argument, NULL, O_CLOSE},
	{"drain-timeout", required_argument, NULL, O_DRAIN},
	{"shutdown", required_argument, NULL, O_SHUT},
	{"reuseaddr", no_argument, NULL, O_REUSE},
	{"fin-timeout", required_argument, NULL, O_FIN},
	{"leak-after", required_argument, NULL, O_LEAK},
	{"role", required_argument, NULL, O_ROLE},
	{"remote", required_argument, NULL, O_REMOTE},
	{"remote-port", required_argument, NULL, O_RPORT},
	{"local-port", required_argument, NULL, O_LPORT},
	{"rst", required_argument, NULL, O_RST},
	{"rst-after-ms", required_argument, NULL, O_RST_MS},
	{"rst-after-bytes", required_argument, NULL, O_RST_BYTES},
	{"connect-refuse", required_argument, NULL, O_REFUSE},
	{"connect-timeout", required_argument, NULL, O_TIMEOUT},
	{"connect-timeout-ms", required_argument, NULL, O_TIMEOUT_MS},
	{"connect-delay", required_argument, NULL, O_CDELAY},
	{"close-delay", required_argument, NULL, O_XDELAY},
	{"seed", required_argument, NULL, O_SEED},
	{"log", required_argument, NULL, O_LOG},
	{"format", required_argument, NULL, O_FORMAT},
	{"log-facility", required_argument, NULL, O_FACILITY},
	{"version", no_argument, NULL, O_VERSION},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

/*
 * The rule built from options is kept as libconfig text fragments and
 * parsed by the real parser, so an option and the same key in a file
 * are validated by one piece of code.
 */
struct td_frag {
	char match[2048];
	char remotes[2048]; /* --remote is repeatable: a list */
	char body[2048];
	char fault[1024];
};

/* Where an option's value goes, and as what. */
enum { TD_IN_MATCH, TD_IN_REMOTES, TD_IN_BODY, TD_IN_FAULT };
enum {
	TD_AS_STRING,	/* quoted */
	TD_AS_INT,	/* digits */
	TD_AS_INT64,	/* digits, written with libconfig's L suffix */
	TD_AS_SHARE,	/* a fraction: digits and at most one dot */
	TD_AS_TRUE,	/* a flag: the key set to true */
};

struct td_optdef {
	int c;
	uint8_t in, as;
	const char *key; /* NULL for --remote, a list element */
};

static const struct td_optdef td__defs[] = {
	{O_CLOSE, TD_IN_BODY, TD_AS_STRING, "close"},
	{O_DRAIN, TD_IN_BODY, TD_AS_INT, "drain_timeout_ms"},
	{O_SHUT, TD_IN_BODY, TD_AS_STRING, "shutdown"},
	{O_REUSE, TD_IN_BODY, TD_AS_TRUE, "reuseaddr"},
	{O_FIN, TD_IN_BODY, TD_AS_INT, "fin_timeout_s"},
	{O_LEAK, TD_IN_BODY, TD_AS_INT, "leak_after_s"},
	{O_ROLE, TD_IN_MATCH, TD_AS_STRING, "role"},
	{O_REMOTE, TD_IN_REMOTES, TD_AS_STRING, NULL},
	{O_RPORT, TD_IN_MATCH, TD_AS_STRING, "remote_port"},
	{O_LPORT, TD_IN_MATCH, TD_AS_STRING, "local_port"},
	{O_RST, TD_IN_FAULT, TD_AS_SHARE, "rst"},
	{O_RST_MS, TD_IN_FAULT, TD_AS_INT, "rst_after_ms"},
	{O_RST_BYTES, TD_IN_FAULT, TD_AS_INT64, "rst_after_bytes"},
	{O_REFUSE, TD_IN_FAULT, TD_AS_SHARE, "connect_refuse"},
	{O_TIMEOUT, TD_IN_FAULT, TD_AS_SHARE, "connect_timeout"},
	{O_TIMEOUT_MS, TD_IN_FAULT, TD_AS_INT, "connect_timeout_ms"},
	{O_CDELAY, TD_IN_FAULT, TD_AS_INT, "connect_delay_ms"},
	{O_XDELAY, TD_IN_FAULT, TD_AS_INT, "close_delay_ms"},
	{O_SEED, TD_IN_FAULT, TD_AS_INT64, "seed"},
};

static const struct td_optdef *td__def(int c)
{
	for (size_t i = 0; i < sizeof(td__defs) / sizeof(td__defs[0]); i++)
		if (td__defs[i].c == c)
			return &td__defs[i];
	return NULL;
}

/* A string value for libconfig text, with quotes and backslashes escaped. */
static const char *td__quote(const char *s, char *buf, size_t cap)
{
	size_t k = 0;

	buf[k++] = '"';
	for (; *s && k + 3 < cap; s++) {
		if (*s == '"' || *s == '\\')
			buf[k++] = '\\';
		buf[k++] = *s;
	}
	buf[k++] = '"';
	buf[k] = '\0';
	return buf;
}

/* Numeric option values go into the text as they are: refuse anything
 * else.  (A flag has no argument: arg is NULL.) */
static bool td__numeric(const struct td_optdef *d, const char *arg)
{
	switch (d->as) {
	case TD_AS_INT:
	case TD_AS_INT64:
		return arg[0] != '\0' && strspn(arg, "0123456789") == strlen(arg);
	case TD_AS_SHARE:
		return arg[0] != '\0' && strspn(arg, "0123456789.") == strlen(arg) &&
		       strchr(arg, '.') == strrchr(arg, '.');
	default:
		return true;
	}
}

/* Append the option's setting to its fragment; -1 (said) when it is bad. */
static int td__opt(int c, const char *arg, struct td_frag *f)
{
	const struct td_optdef *d = td__def(c);
	char q[600], *dst;
	const char *v;
	size_t cap, n;

	if (d == NULL)
		return -1;
	if (!td__numeric(d, arg)) {
		for (const struct option *lo = td__long; lo->name; lo++)
			if (lo->val == c)
				fprintf(stderr, "teardown: --%s: not a number: \"%s\"\n", lo->name, arg);
		return -1;
	}
	v = d->as == TD_AS_STRING ? td__quote(arg, q, sizeof(q)) : d->as == TD_AS_TRUE ? "true" : arg;
	switch (d->in) {
	case TD_IN_MATCH: dst = f->match; cap = sizeof(f->match); break;
	case TD_IN_REMOTES: dst = f->remotes; cap = sizeof(f->remotes); break;
	case TD_IN_BODY: dst = f->body; cap = sizeof(f->body); break;
	default: dst = f->fault; cap = sizeof(f->fault); break;
	}
	n = strlen(dst);
	if (d->in == TD_IN_REMOTES)
		snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", v);
	else
		snprintf(dst + n, cap - n, "%s = %s%s; ", d->key, v,
			 d->as == TD_AS_INT64 ? "L" : "");
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
static char *td__policy(struct td_run_opts *o, const struct td_frag *f,
			bool *as_path, struct td_policy *logp)
{
	struct td_policy file, cli, all;
	struct td_cfg_error err;
	char *text, *ctext = NULL, *out;
	size_t len = 0, n;
	int rc;

	memset(&file, 0, sizeof(file));
	*as_path = o->config != NULL && !o->have_rule && !o->log && !o->format && !o->facility;
	if (o->config != NULL) {
		text = td__read_all(o->config, &len);
		if (text == NULL)
			return NULL;
		rc = td_policy_parse_text(&file, text, len, o->config, &err);
		free(text);
		if (rc != 0)
			goto bad;
		if (*as_path) {
			/* checked here, read again by the library itself */
			logp->log_target = file.log_target;
			logp->log_facility = file.log_facility;
			memcpy(logp->log_path, file.log_path, sizeof(logp->log_path));
			td_policy_free(&file);
			return realpath(o->config, NULL);
		}
	} else {
		file.log_target = TD_LOG_STDERR;
		/* The policy printed below starts from this one: without a file
		 * its version would be the 0 of memset, which the library
		 * refuses, and every option-only run would change nothing. */
		file.version = 1;
	}
	/* the options' rule, parsed on its own for exact error messages */
	n = strlen(f->match) + strlen(f->body) + strlen(f->fault) + 256;
	n += strlen(f->remotes);
	ctext = malloc(n);
	if (ctext == NULL)
		return NULL;
	snprintf(ctext, n,
		 "version = 1;\nrules = ( { name = \"%s\"; match = { %s%s%s%s}; %s%s%s%s } );\n",
		 o->have_rule ? "cli" : "observe", f->match,
		 f->remotes[0] ? "remote = [ " : "", f->remotes, f->remotes[0] ? " ]; " : "",
		 f->body, f->fault[0] ? "fault = { " : "", f->fault, f->fault[0] ? "}; " : "");
	memset(&cli, 0, sizeof(cli));
	rc = td_policy_parse_text(&cli, ctext, strlen(ctext), "command line", &err);
	free(ctext);
	if (rc != 0)
		goto bad;
	all = file;
	if (o->have_rule || o->config == NULL) {
		all.n_rules = file.n_rules + 1;
		all.rules = calloc(all.n_rules, sizeof(*all.rules));
		if (all.rules == NULL)
			return NULL;
		all.rules[0] = cli.rules[0];
		if (file.n_rules > 0)
			memcpy(all.rules + 1, file.rules, file.n_rules * sizeof(*file.rules));
	}
	if (o->log) {
		if (strcmp(o->log, "stderr") == 0) {
			all.log_target = TD_LOG_STDERR;
		} else if (strcmp(o->log, "syslog") == 0) {
			all.log_target = TD_LOG_SYSLOG;
		} else if (strcmp(o->log, "journal") == 0) {
			all.log_target = TD_LOG_JOURNAL;
		} else if (o->log[0] == '/' && strlen(o->log) < sizeof(all.log_path)) {
			all.log_target = TD_LOG_FILE;
			strcpy(all.log_path, o->log);
		} else {
			fprintf(stderr, "teardown: --log: want stderr, syslog, journal or an absolute path, got \"%s\"\n", o->log);
			return NULL;
		}
	}
	if (o->format) {
		if (strcmp(o->format, "json") == 0)
			all.log_format = TD_FMT_JSON;
		else if (strcmp(o->format, "text") == 0)
			all.log_format = TD_FMT_TEXT;
		else {
			fprintf(stderr, "teardown: --format: want text or json, got \"%s\"\n", o->format);
			return NULL;
		}
	}
	if (o->facility) {
		int fac = td_log_facility_parse(o->facility);

		if (fac < 0) {
			fprintf(stderr, "teardown: --log-facility: want daemon, user, local0..local7, "
				"auth, authpriv, cron, ftp, lpr, mail, news, syslog or uucp, got \"%s\"\n",
				o->facility);
			return NULL;
		}
		all.log_facility = (uint8_t)fac;
	}
	logp->log_target = all.log_target;
	logp->log_facility = all.log_facility;
	memcpy(logp->log_path, all.log_path, sizeof(logp->log_path));
	out = td_policy_to_text(&all);
	/* the rules' heap parts are owned by file and cli; free each once */
	if (all.rules != file.rules)
		free(all.rules);
	td_policy_free(&file);
	td_policy_free(&cli);
	return out;
bad:
	td__cfg_fail(&err);
	td_policy_free(&file);
	return NULL;
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

static char *td__policy_file(const char *text)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char dir[PATH_MAX], tmp[PATH_MAX + 32], *path = NULL;
	uint64_t h = 1469598103934665603ull;
	size_t len = strlen(text);
	struct stat st;
	int fd;

	for (const unsigned char *c = (const unsigned char *)text; *c; c++)
		h = (h ^ *c) * 1099511628211ull;
	if (rt != NULL && rt[0] == '/')
		snprintf(dir, sizeof(dir), "%s/teardown", rt);
	else
		snprintf(dir, sizeof(dir), "/tmp/teardown-%u", (unsigned)geteuid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		goto fail;
	/* never a directory someone else made or could write into */
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0) {
		errno = EPERM;
		goto fail;
	}
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

int td_cmd_run(int argc, char **argv)
{
	struct td_run_opts o;
	struct td_frag f;
	char lib[PATH_MAX];
	char *policy, *preload;
	static struct td_policy logp;
	char why[PATH_MAX + 256];
	bool as_path;
	int c;

	memset(&o, 0, sizeof(o));
	memset(&f, 0, sizeof(f));
	opterr = 1;
	while ((c = getopt_long(argc, argv, "+c:n", td__long, NULL)) != -1) {
		switch (c) {
		case 'c': o.config = optarg; break;
		case 'n': o.dry_run = true; break;
		case O_LOG: o.log = optarg; break;
		case O_FORMAT: o.format = optarg; break;
		case O_FACILITY: o.facility = optarg; break;
		case O_VERSION: printf("teardown %s\n", TD_VERSION); return 0;
		case O_HELP: td__help(); return 0;
		case '?': return 2;
		default:
			if (td__opt(c, optarg, &f) != 0)
				return 2;
			o.have_rule = true;
		}
	}
	if (optind >= argc && !o.dry_run) {
		fputs("teardown: no command given (usage: teardown [options] -- COMMAND [ARGS...])\n", stderr);
		return 2;
	}
	if (td_find_library(lib) != 0) {
		fprintf(stderr, "teardown: libteardown.so not found next to this program or in %s\n", TD_LIBDIR);
		return 1;
	}
	policy = td__policy(&o, &f, &as_path, &logp);
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
