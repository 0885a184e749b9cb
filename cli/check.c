/*
 * teardown check: validate policy files and show how they were understood.
 *
 * The summary is what the preloaded library will do, in the order it will
 * try the rules, so that an operator can catch a rule shadowed by an
 * earlier, broader one before deploying it.
 */
#include <limits.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli.h"
#include "doctor.h"
#include "lib/shadow.h"
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fmt.h"
#include "teardown/schema.h"

struct td__check_opts {
	bool privileged;
	bool canonical;
	bool no_target;
	bool system;
	bool json;
	int n_files;
};

enum { O_PRIVILEGED = TD_OPT_LONG, O_CANONICAL, O_NO_TARGET, O_SYSTEM, O_JSON };

static const struct td_opt td__check_opts_table[] = {
	{"privileged", O_PRIVILEGED, NULL,
	 "also apply the checks a set-user-ID program makes: the\n"
	 "file must be owned by root or you, and not writable by\n"
	 "group or others", NULL},
	{"canonical", O_CANONICAL, NULL,
	 "print the policy in canonical libconfig form instead,\n"
	 "every default spelled out", NULL},
	{"no-target", O_NO_TARGET, NULL,
	 "do not check the log target (a policy for another\n"
	 "machine); by default a file target must be writable\n"
	 "(or creatable) here, syslog's /dev/log or journald's\n"
	 "socket must be listening", NULL},
	{"system", O_SYSTEM, NULL,
	 "first run the system checks of `teardown doctor --system`\n"
	 "(/etc/ld.so.preload, /etc/teardown.conf, the library)", NULL},
	{"json", O_JSON, NULL, "with --system: the system checks as JSON lines", NULL},
	{0},
};

static const struct td_opt *td__check_table(void)
{
	return td__check_opts_table;
}

/* A string for a one-line summary: bare when plain, else quoted. */
static void td__check_str(FILE *out, const char *s, bool force_quotes)
{
	bool plain = !force_quotes && *s != '\0';
	size_t n = strlen(s), cap = n * 4 + 3;
	struct td_buf b;
	char *mem;

	for (const char *c = s; plain && *c; c++)
		plain = (unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f &&
			*c != '"' && *c != '\\' && *c != ',' && *c != '=';
	if (plain) {
		fputs(s, out);
		return;
	}
	mem = malloc(cap);
	if (mem == NULL) {
		fputs("\"\"", out);
		return;
	}
	td_buf_init(&b, mem, cap);
	td_buf_putc(&b, '"');
	td_buf_escape(&b, s, n, TD_ESC_QUOTES);
	td_buf_putc(&b, '"');
	fputs(td_buf_cstr(&b), out);
	free(mem);
}

/* The keys of a rule's scope that are set, " key=value" each. */
static void td__check_keys(FILE *out, const struct td_rule *r, int scope, bool all)
{
	char v[2048];

	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];

		if (k->scope != scope || k->kind == TD_K_NAME || k->kind == TD_K_GROUP)
			continue;
		if (!td_key_value_text(k, NULL, r, v, sizeof(v)))
			continue;
		/* a criterion at its default matches everything: not worth a word */
		if (!all && k->kind == TD_K_ENUM && td_key_get_int(k, td_key_base(scope, NULL,
				(struct td_rule *)r)) == k->def)
			continue;
		fprintf(out, " %s=", k->name);
		td__check_str(out, v, false);
	}
}

/* One line per rule: what it matches -> what it does. */
static void td__check_rule(FILE *out, const struct td_rule *r, uint32_t i)
{
	bool any = r->program || r->role != TD_ROLE_ANY || r->n_remote ||
		   r->n_local || r->n_remote_port || r->n_local_port;

	fprintf(out, "  rule %u ", i + 1);
	td__check_str(out, r->name, true);
	if (r->line > 0)
		fprintf(out, " (line %d)", r->line);
	fputs(": match", out);
	if (!any)
		fputs(" all", out);
	td__check_keys(out, r, TD_SC_MATCH, false);
	fputs(" ->", out);
	td__check_keys(out, r, TD_SC_RULE, true);
	if (r->has_fault) {
		fputs(" fault{", out);
		td__check_keys(out, r, TD_SC_FAULT, true);
		fputs(" }", out);
	}
	fputc('\n', out);
}

static void td__check_summary(FILE *out, const char *name,
			      const struct td_policy *p)
{
	const struct td_key *onerr = td_key_find(TD_SC_TOP, "on_error");
	char v[4200];

	td__check_str(out, name, false);
	fprintf(out, ": ok, %u rule%s\n", p->n_rules, p->n_rules == 1 ? "" : "s");
	fputs("  log", out);
	for (size_t i = 0; i < td_n_keys; i++) {
		if (td_keys[i].scope != TD_SC_LOG ||
		    !td_key_value_text(&td_keys[i], p, NULL, v, sizeof(v)))
			continue;
		fprintf(out, " %s=", td_keys[i].name);
		td__check_str(out, v, false);
	}
	if (td_key_value_text(onerr, p, NULL, v, sizeof(v)))
		fprintf(out, " on_error=%s", v);
	fputc('\n', out);
	if (p->n_rules == 0)
		fputs("  no rules: every connection is left alone\n", out);
	for (uint32_t i = 0; i < p->n_rules; i++)
		td__check_rule(out, &p->rules[i], i);
}

/* All of standard input, up to one byte past the policy size limit. */
static int td__check_stdin(char **text, size_t *len)
{
	size_t cap = TD_POLICY_MAX_BYTES + 2, n;
	char *buf = malloc(cap);

	if (buf == NULL)
		return -1;
	n = fread(buf, 1, cap - 1, stdin);
	if (ferror(stdin)) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

/* At most this many errors of one file are shown. */
#define TD__MAX_ERRORS 50
/* Above this many rule pairs the shadowing analysis looks only for catch-alls. */
#define TD__MAX_PAIRS 50000000ull

/* One message line on stderr: "file:line: msg". */
static void td__check_error(const struct td_cfg_error *err)
{
	char line[sizeof(err->file) + sizeof(err->msg) + 32];

	td_cfg_error_format(err, line, sizeof(line));
	fprintf(stderr, "%s\n", line);
}

/*
 * Warn, on stderr, about each rule an earlier rule always wins over:
 * "file:line: warning: rule 3 "b" never matches: rule 1 "a" (line 2)
 * comes first and matches every socket it does".
 */
static void td__check_shadows(const char *name, const struct td_policy *p)
{
	int32_t *by = calloc(p->n_rules ? p->n_rules : 1, sizeof(*by));
	bool full;

	if (by == NULL)
		return;
	full = td_policy_shadowed(p, by, TD__MAX_PAIRS);
	for (uint32_t j = 0; j < p->n_rules; j++) {
		const struct td_rule *a, *b = &p->rules[j];

		if (by[j] < 0)
			continue;
		a = &p->rules[by[j]];
		td__check_str(stderr, name, false);
		if (b->line > 0)
			fprintf(stderr, ":%d", b->line);
		fprintf(stderr, ": warning: rule %u ", j + 1);
		td__check_str(stderr, b->name, true);
		fprintf(stderr, " never matches: rule %d ", by[j] + 1);
		td__check_str(stderr, a->name, true);
		if (a->line > 0)
			fprintf(stderr, " (line %d)", a->line);
		fputs(td_rule_matches_all(a) ? " comes first and matches every socket\n"
					     : " comes first and matches every socket it does\n",
		      stderr);
	}
	if (!full)
		fprintf(stderr, "%s: note: %u rules: only rules after a catch-all were looked for "
			"as never matching\n", name, p->n_rules);
	free(by);
}

static int td__check_one(const char *path, const struct td__check_opts *o)
{
	struct td_cfg_error *errs = calloc(TD__MAX_ERRORS, sizeof(*errs));
	struct td_policy p;
	const char *name = path;
	char *text = NULL;
	size_t len = 0;
	int n, status = 1;

	if (errs == NULL) {
		fprintf(stderr, "%s: out of memory\n", name);
		return 1;
	}
	fflush(stdout);
	if (strcmp(path, "-") == 0) {
		name = "<stdin>";
		if (td__check_stdin(&text, &len) != 0) {
			fprintf(stderr, "<stdin>: cannot read standard input\n");
			goto out;
		}
	} else if (td_policy_read_file(path, o->privileged, &text, &len, &errs[0]) != 0) {
		td__check_error(&errs[0]);
		goto out;
	}
	/* every error of the file, not only the first */
	n = td_policy_parse_all(&p, text, len, name, errs, TD__MAX_ERRORS);
	if (n < 0) {
		fprintf(stderr, "%s: out of memory\n", name);
		goto out;
	}
	if (n > 0) {
		for (int i = 0; i < n && i < TD__MAX_ERRORS; i++)
			td__check_error(&errs[i]);
		if (n > TD__MAX_ERRORS)
			fprintf(stderr, "%s: %d more errors\n", name, n - TD__MAX_ERRORS);
		goto out;
	}
	if (!o->no_target) {
		char why[PATH_MAX + 256];

		if (td_log_target_check(&p, false, why, sizeof(why)) != 0) {
			fprintf(stderr, "%s: log.target: %s\n", name, why);
			td_policy_free(&p);
			goto out;
		}
	}
	td__check_shadows(name, &p);
	fflush(stderr);
	if (o->canonical) {
		char *canon = td_policy_to_text(&p);

		if (canon == NULL) {
			fprintf(stderr, "%s: out of memory\n", name);
			td_policy_free(&p);
			goto out;
		}
		if (o->n_files > 1) {
			fputs("# ==> ", stdout);
			td__check_str(stdout, name, false);
			fputs(" <==\n", stdout);
		}
		fputs(canon, stdout);
		free(canon);
	} else {
		td__check_summary(stdout, name, &p);
	}
	td_policy_free(&p);
	status = 0;
out:
	free(text);
	free(errs);
	return status;
}

static int td_cmd_check(int argc, char **argv)
{
	struct td__check_opts o = {0};
	locale_t c_num, old = (locale_t)0;
	struct td_getopt g;
	int status = 0, c;

	if (td_getopt_init(&g, &td_cmd_check_def, argc, argv, false) != 0)
		return TD_EXIT_USAGE;
	while ((c = td_getopt_next(&g)) != -1) {
		switch (c) {
		case TD_OPT_DONE: td_getopt_free(&g); return g.status;
		case O_PRIVILEGED: o.privileged = true; break;
		case O_CANONICAL: o.canonical = true; break;
		case O_NO_TARGET: o.no_target = true; break;
		case O_SYSTEM: o.system = true; break;
		case O_JSON: o.json = true; break;
		}
	}
	td_getopt_free(&g);
	o.n_files = argc - optind;
	if (o.n_files <= 0 && !o.system)
		return td_usage_error(&td_cmd_check_def, "no policy file given");
	if (o.json && !o.system)
		return td_usage_error(&td_cmd_check_def, "--json goes with --system");
	if (o.system && td_doctor_system(stdout, o.json) != 0)
		status = 1;
	/* Probabilities print as 0.25 whatever locale main() chose. */
	c_num = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c_num != (locale_t)0)
		old = uselocale(c_num);
	for (int i = optind; i < argc; i++)
		if (td__check_one(argv[i], &o) != 0)
			status = 1;
	if (c_num != (locale_t)0) {
		uselocale(old);
		freelocale(c_num);
	}
	fflush(stdout);
	return status;
}

const struct td_cmd td_cmd_check_def = {
	.name = "check",
	.synopsis = "[options] FILE...\n--system [--json] [FILE...]",
	.summary = "validate policy files, print the rules as understood",
	.about = "Validate teardown policy files.  For each valid file, print its rules\n"
		 "as they will be applied (first match wins) and warn about a rule that\n"
		 "can never match because an earlier rule matches every socket it does;\n"
		 "for each invalid one, print every error (file:line: key: problem) on\n"
		 "stderr.  FILE - reads a policy from standard input.",
	.opts = td__check_table,
	.after = "Exit status: 0 if every file is valid (and the system checks pass),\n"
		 "1 if any is not, 125 on bad usage.",
	.main = td_cmd_check,
	.operands = "@file",
};
