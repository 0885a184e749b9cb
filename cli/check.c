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
#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fmt.h"
#include "teardown/schema.h"

struct td__check_opts {
	bool privileged;
	bool canonical;
	bool no_target;
	int n_files;
};

static void td__check_usage(FILE *f)
{
	fputs("usage: teardown check [--privileged] [--canonical] [--no-target] FILE...\n"
	      "\n"
	      "Validate teardown policy files.  For each valid file, print its rules\n"
	      "as they will be applied (first match wins); for each invalid one, print\n"
	      "one error line (file:line: key: problem) on stderr.\n"
	      "\n"
	      "  --privileged  also apply the checks a set-user-ID program makes: the\n"
	      "                file must be owned by root or you, and not writable by\n"
	      "                group or others\n"
	      "  --canonical   print the policy in canonical libconfig form instead,\n"
	      "                every default spelled out\n"
	      "  --no-target   do not check the log target (a policy for another\n"
	      "                machine); by default a file target must be writable\n"
	      "                (or creatable) here, syslog's /dev/log or journald's\n"
	      "                socket must be listening\n"
	      "  -             read a policy from standard input\n"
	      "\n"
	      "Exit status: 0 if every file is valid, 1 if any is not, 2 on bad usage.\n",
	      f);
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

static int td__check_one(const char *path, const struct td__check_opts *o)
{
	struct td_cfg_error err;
	struct td_policy p;
	char line[sizeof(err.file) + sizeof(err.msg) + 32];
	const char *name = path;
	int rc;

	if (strcmp(path, "-") == 0) {
		char *text;
		size_t len;

		name = "<stdin>";
		if (td__check_stdin(&text, &len) != 0) {
			fprintf(stderr, "<stdin>: cannot read standard input\n");
			return 1;
		}
		rc = td_policy_parse_text(&p, text, len, name, &err);
		free(text);
	} else {
		rc = td_policy_load_file(&p, path, o->privileged, &err);
	}
	if (rc == 0 && !o->no_target) {
		char why[PATH_MAX + 256];

		if (td_log_target_check(&p, false, why, sizeof(why)) != 0) {
			fflush(stdout);
			fprintf(stderr, "%s: log.target: %s\n", name, why);
			td_policy_free(&p);
			return 1;
		}
	}
	if (rc != 0) {
		td_cfg_error_format(&err, line, sizeof(line));
		fflush(stdout);
		fprintf(stderr, "%s\n", line);
		return 1;
	}
	if (o->canonical) {
		char *text = td_policy_to_text(&p);

		if (text == NULL) {
			fprintf(stderr, "%s: out of memory\n", name);
			td_policy_free(&p);
			return 1;
		}
		if (o->n_files > 1) {
			fputs("# ==> ", stdout);
			td__check_str(stdout, name, false);
			fputs(" <==\n", stdout);
		}
		fputs(text, stdout);
		free(text);
	} else {
		td__check_summary(stdout, name, &p);
	}
	td_policy_free(&p);
	return 0;
}

int td_cmd_check(int argc, char **argv)
{
	struct td__check_opts o = {0};
	locale_t c_num, old = (locale_t)0;
	int first = argc, status = 0, i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || strcmp(a, "-") == 0)
			break;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			td__check_usage(stdout);
			return 0;
		}
		if (strcmp(a, "--privileged") == 0) {
			o.privileged = true;
		} else if (strcmp(a, "--canonical") == 0) {
			o.canonical = true;
		} else if (strcmp(a, "--no-target") == 0) {
			o.no_target = true;
		} else {
			/* --system belongs to another part of the command. */
			fprintf(stderr, "teardown check: unknown option %s\n", a);
			td__check_usage(stderr);
			return 2;
		}
	}
	first = i;
	o.n_files = argc - first;
	if (o.n_files <= 0) {
		fputs("teardown check: no policy file given\n", stderr);
		td__check_usage(stderr);
		return 2;
	}
	/* Probabilities print as 0.25 whatever locale main() chose. */
	c_num = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (c_num != (locale_t)0)
		old = uselocale(c_num);
	for (i = first; i < argc; i++)
		if (td__check_one(argv[i], &o) != 0)
			status = 1;
	if (c_num != (locale_t)0) {
		uselocale(old);
		freelocale(c_num);
	}
	fflush(stdout);
	return status;
}
