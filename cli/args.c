/*
 * teardown: option parsing and usage for every subcommand, from the one
 * table each subcommand has (see args.h).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "lib/out.h"

/* The column where the options' help starts in --help. */
#define TD__HELP_COL 28

static const struct td_opt td__help_opt = {"help", 'h', NULL, "show this help and exit", NULL};

const struct td_cmd *td_cmd_find(const char *name)
{
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		if (strcmp(td_cmds[i]->name, name) == 0)
			return td_cmds[i];
	return NULL;
}

/* The text of a "--name ARG" column, with its short form. */
static void td__opt_lhs(const struct td_opt *o, char *buf, size_t cap)
{
	char shortf[8] = "    ";

	if (o->val > 0 && o->val < TD_OPT_LONG)
		snprintf(shortf, sizeof(shortf), "-%c, ", o->val);
	snprintf(buf, cap, "  %s--%s%s%s", shortf, o->name, o->arg ? " " : "",
		 o->arg ? o->arg : "");
}

static void td__opt_line(const struct td_opt *o, FILE *out)
{
	char lhs[128];
	const char *h = o->help ? o->help : "";
	int n;

	td__opt_lhs(o, lhs, sizeof(lhs));
	n = fprintf(out, "%s", lhs);
	if (n >= TD__HELP_COL - 1) {
		fputc('\n', out);
		n = 0;
	}
	fprintf(out, "%*s", TD__HELP_COL - n, "");
	for (; *h; h++) {
		fputc(*h, out);
		if (*h == '\n')
			fprintf(out, "%*s", TD__HELP_COL, "");
	}
	fputc('\n', out);
}

/* The synopsis lines: "usage: teardown NAME ..." then "       teardown NAME ...". */
static void td__synopsis(const struct td_cmd *c, FILE *out)
{
	const char *s = c->synopsis;
	bool first = true;

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);

		fprintf(out, "%s teardown %s %.*s\n", first ? "usage:" : "      ", c->name,
			(int)len, s);
		first = false;
		s += len + (nl ? 1 : 0);
	}
}

void td_usage_options(const struct td_cmd *c, FILE *out)
{
	const struct td_opt *o = c->opts ? c->opts() : NULL;
	bool heading = o != NULL && o->name == NULL;

	if (!heading)
		fputs("Options:\n", out);
	for (; o != NULL && (o->name != NULL || o->help != NULL); o++) {
		if (o->name == NULL)
			fprintf(out, "%s\n", o->help);
		else
			td__opt_line(o, out);
	}
	if (heading)
		fputs("Other:\n", out);
	td__opt_line(&td__help_opt, out);
}

void td_usage(const struct td_cmd *c, FILE *out)
{
	td__synopsis(c, out);
	if (c->about)
		fprintf(out, "\n%s\n", c->about);
	fputc('\n', out);
	td_usage_options(c, out);
	if (c->after)
		fprintf(out, "\n%s\n", c->after);
}

/* s with its line breaks as spaces, as roff: continuation lines are one paragraph. */
static void td__man_text(FILE *out, const char *s, size_t n)
{
	char *t = strndup(s, n);

	if (t == NULL)
		return;
	for (char *c = t; *c; c++)
		if (*c == '\n')
			*c = ' ';
	td_put_roff(out, t);
	free(t);
}

static void td__man_opt(const struct td_opt *o, FILE *out)
{
	fputs(".TP\n", out);
	if (o->val > 0 && o->val < TD_OPT_LONG)
		fprintf(out, "\\fB\\-%c\\fR, ", o->val);
	td_put_roff_option(out, o->name, o->arg);
	fputc('\n', out);
	td__man_text(out, o->help ? o->help : "", strlen(o->help ? o->help : ""));
	fputc('\n', out);
}

void td_usage_man(const struct td_cmd *c, FILE *out)
{
	const struct td_opt *o = c->opts ? c->opts() : NULL;

	for (; o != NULL && (o->name != NULL || o->help != NULL); o++) {
		if (o->name == NULL) {
			size_t n = strlen(o->help);

			if (n > 0 && o->help[n - 1] == ':')
				n--;
			fputs(".PP\n\\fI", out);
			td__man_text(out, o->help, n);
			fputs("\\fR\n", out);
		} else {
			td__man_opt(o, out);
		}
	}
	td__man_opt(&td__help_opt, out);
}

int td_usage_error(const struct td_cmd *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "teardown %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'teardown %s --help'.\n", c->name);
	return TD_EXIT_USAGE;
}

int td_getopt_init(struct td_getopt *g, const struct td_cmd *c, int argc, char **argv,
		   bool in_order)
{
	const struct td_opt *opts = c->opts ? c->opts() : NULL, *o;
	size_t n = 0, k = 0, s = 0;

	memset(g, 0, sizeof(*g));
	g->cmd = c;
	g->argc = argc;
	g->argv = argv;
	for (o = opts; o != NULL && (o->name != NULL || o->help != NULL); o++)
		n++;
	g->longopts = calloc(n + 2, sizeof(*g->longopts));
	g->shortopts = calloc(2 * n + 8, 1);
	if (g->longopts == NULL || g->shortopts == NULL) {
		td_getopt_free(g);
		perror("teardown");
		return -1;
	}
	if (in_order)
		g->shortopts[s++] = '+';
	g->shortopts[s++] = ':';
	for (o = opts; o != NULL && (o->name != NULL || o->help != NULL); o++) {
		if (o->name == NULL)
			continue;
		g->longopts[k].name = o->name;
		g->longopts[k].has_arg = o->arg ? required_argument : no_argument;
		g->longopts[k].val = o->val;
		k++;
		if (o->val > 0 && o->val < TD_OPT_LONG) {
			g->shortopts[s++] = (char)o->val;
			if (o->arg)
				g->shortopts[s++] = ':';
		}
	}
	g->longopts[k].name = td__help_opt.name;
	g->longopts[k].val = 'h';
	g->shortopts[s++] = 'h';
	optind = 0; /* glibc: start over, whatever parsed before */
	opterr = 0; /* the messages are ours */
	return 0;
}

int td_getopt_next(struct td_getopt *g)
{
	int c = getopt_long(g->argc, g->argv, g->shortopts, g->longopts, NULL);
	const char *bad = optind > 0 && optind <= g->argc ? g->argv[optind - 1] : "?";
	char shortf[3] = {'-', (char)optopt, '\0'};
	/* what the user typed: "--format", or "-f" out of "-qf" */
	const char *what = (bad[0] == '-' && bad[1] == '-') || optopt <= 0 ||
				   optopt >= TD_OPT_LONG ? bad : shortf;

	switch (c) {
	case 'h':
		td_usage(g->cmd, stdout);
		g->status = 0;
		return TD_OPT_DONE;
	case '?':
		g->status = td_usage_error(g->cmd, "unknown option '%s'", what);
		return TD_OPT_DONE;
	case ':':
		g->status = td_usage_error(g->cmd, "option '%s' needs a value", what);
		return TD_OPT_DONE;
	default:
		return c;
	}
}

void td_getopt_free(struct td_getopt *g)
{
	free(g->longopts);
	free(g->shortopts);
	g->longopts = NULL;
	g->shortopts = NULL;
}
