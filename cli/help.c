/*
 * teardown help: the list of subcommands, one subcommand's help, the
 * policy keys (from the schema), and, for the build, the manual's option
 * and key lists in roff and the bash completion, all from the same
 * tables the parsers use (args.h, schema.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/out.h"
#include "teardown/event.h"
#include "teardown/schema.h"

enum { O_MAN = TD_OPT_LONG };

static const struct td_opt td__help_opts[] = {
	{"man", O_MAN, NULL, "print roff for the manual pages (with keys or options)", NULL},
	{0},
};

static const struct td_opt *td__help_table(void)
{
	return td__help_opts;
}

void td_main_usage(FILE *out)
{
	fputs("usage: teardown [run] [options] [--] COMMAND [ARGS...]\n"
	      "       teardown SUBCOMMAND [options] [ARGS...]\n"
	      "\n"
	      "Decide how a program's TCP connections end (FIN, drain, RST, half-close),\n"
	      "inject real resets and refused connects, and audit every teardown.\n"
	      "\n"
	      "Subcommands:\n",
	      out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		fprintf(out, "  %-9s %s\n", td_cmds[i]->name, td_cmds[i]->summary);
	fputs("\n`teardown help SUBCOMMAND` (or `teardown SUBCOMMAND --help`) describes one;\n"
	      "`teardown help keys` lists the policy keys.  Manual: teardown(1), teardown.conf(5).\n"
	      "\n"
	      "Run options (teardown [run] [options] [--] COMMAND [ARGS...]):\n",
	      out);
	td_usage_options(&td_cmd_run_def, out);
}

/* ---- the policy keys ---------------------------------------------------- */

/* "rules[].match.program" */
static void td__key_path(const struct td_key *k, char *buf, size_t cap)
{
	const char *scope = td_scope_name(k->scope);

	snprintf(buf, cap, "%s%s%s", scope, *scope ? "." : "", k->name);
}

static void td__key_values(const struct td_key *k, char *buf, size_t cap)
{
	size_t n = 0;

	buf[0] = '\0';
	switch (k->kind) {
	case TD_K_ENUM:
		for (int v = 0; k->names[v] != NULL && n < cap; v++)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", v ? " | " : "", k->names[v]);
		break;
	case TD_K_BOOL: snprintf(buf, cap, "true | false"); break;
	case TD_K_INT: snprintf(buf, cap, "%lld..%lld", (long long)k->lo, (long long)k->hi); break;
	case TD_K_PROB: snprintf(buf, cap, "0..1 (a probability)"); break;
	case TD_K_NAME: snprintf(buf, cap, "\"string\""); break;
	case TD_K_GLOB: snprintf(buf, cap, "\"glob\""); break;
	case TD_K_ADDRS: snprintf(buf, cap, "\"address or CIDR block\", or a list of them"); break;
	case TD_K_PORTS: snprintf(buf, cap, "port, \"a-b\", or a list of them"); break;
	case TD_K_TARGET: snprintf(buf, cap, "stderr | syslog | journal | \"/absolute/path\""); break;
	case TD_K_FACILITY:
		for (int v = 0; v < 24 && n < cap; v++)
			if (td_log_facility_name(v) != NULL)
				n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " | " : "",
						      td_log_facility_name(v));
		break;
	case TD_K_VERSION: snprintf(buf, cap, "1"); break;
	case TD_K_GROUP: snprintf(buf, cap, "{ ... }"); break;
	case TD_K_RULES: snprintf(buf, cap, "( { ... }, ... )"); break;
	default: break;
	}
}

/* The default, or NULL when there is nothing to say. */
static const char *td__key_default(const struct td_key *k, char *buf, size_t cap)
{
	switch (k->kind) {
	case TD_K_ENUM: return k->names[k->def];
	case TD_K_BOOL: return k->def ? "true" : "false";
	case TD_K_INT:
		if (k->flags & TD_KF_UNSET)
			return k->none;
		snprintf(buf, cap, "%lld", (long long)k->def);
		return buf;
	case TD_K_PROB: return "0";
	case TD_K_TARGET: return "stderr";
	case TD_K_FACILITY: return td_log_facility_name(TD_FACILITY_DEFAULT);
	default: return k->none;
	}
}

static const char *const td__scope_titles[TD_SC__COUNT] = {
	"The document", "log = { ... }", "rules = ( { ... }, ... ): each rule",
	"match = { ... } in a rule: an absent criterion matches every socket",
	"fault = { ... } in a rule",
};

static void td__keys_text(FILE *out)
{
	char path[96], vals[512], def[64];

	fputs("Policy keys (teardown.conf(5)); every key is optional.\n", out);
	for (int scope = 0; scope < TD_SC__COUNT; scope++) {
		fprintf(out, "\n%s:\n", td__scope_titles[scope]);
		for (size_t i = 0; i < td_n_keys; i++) {
			const struct td_key *k = &td_keys[i];
			const char *d;

			if (k->scope != scope)
				continue;
			td__key_path(k, path, sizeof(path));
			td__key_values(k, vals, sizeof(vals));
			d = td__key_default(k, def, sizeof(def));
			fprintf(out, "  %s = %s\n      %s", path, vals, k->help);
			if (d != NULL)
				fprintf(out, "; default: %s", d);
			if (k->opt != NULL)
				fprintf(out, "; option --%s%s%s", k->opt, k->arg ? " " : "",
					k->arg ? k->arg : "");
			fputc('\n', out);
		}
	}
}

static void td__keys_man(FILE *out)
{
	char vals[512], def[64];

	for (int scope = 0; scope < TD_SC__COUNT; scope++) {
		fputs(".SS \"", out);
		td_put_roff(out, td__scope_titles[scope]);
		fputs("\"\n", out);
		for (size_t i = 0; i < td_n_keys; i++) {
			const struct td_key *k = &td_keys[i];
			const char *d;

			if (k->scope != scope)
				continue;
			td__key_values(k, vals, sizeof(vals));
			d = td__key_default(k, def, sizeof(def));
			fputs(".TP\n\\fB", out);
			td_put_roff(out, k->name);
			fputs("\\fR = ", out);
			td_put_roff(out, vals);
			fputc('\n', out);
			td_put_roff(out, k->help);
			fputs(k->help[0] && k->help[strlen(k->help) - 1] == '.' ? "\n" : ".\n", out);
			if (d != NULL) {
				fputs("Default: ", out);
				td_put_roff(out, d);
				fputs(".\n", out);
			}
			if (k->opt != NULL) {
				fputs("Option: ", out);
				td_put_roff_option(out, k->opt, k->arg);
				fputs(".\n", out);
			}
		}
	}
}

/* ---- bash completion ----------------------------------------------------- */

static void td__completion_case(FILE *out, const struct td_cmd *c)
{
	for (const struct td_opt *o = c->opts ? c->opts() : NULL;
	     o != NULL && (o->name != NULL || o->help != NULL); o++) {
		if (o->name == NULL || o->arg == NULL)
			continue;
		fprintf(out, "\t\"%s --%s\"", c->name, o->name);
		if (o->val > 0 && o->val < TD_OPT_LONG)
			fprintf(out, " | \"%s -%c\"", c->name, o->val);
		fprintf(out, ") echo '%s' ;;\n", o->values ? o->values : "");
	}
}

static void td__completion_words(FILE *out, const struct td_cmd *c)
{
	fprintf(out, "\t%s) echo '--help -h", c->name);
	for (const struct td_opt *o = c->opts ? c->opts() : NULL;
	     o != NULL && (o->name != NULL || o->help != NULL); o++) {
		if (o->name == NULL)
			continue;
		fprintf(out, " --%s", o->name);
		if (o->val > 0 && o->val < TD_OPT_LONG)
			fprintf(out, " -%c", o->val);
	}
	fputs("' ;;\n", out);
}

static void td__completion(FILE *out)
{
	fputs("# bash completion for teardown(1).  Generated by `teardown help completion`\n"
	      "# from the command's own option tables: do not edit.\n\n"
	      "# _teardown_arg SUB OPTION: the words OPTION's argument may be (@file,\n"
	      "# @dir, @command, @unit or words); status 1 when OPTION takes none.\n"
	      "_teardown_arg()\n{\n\tcase \"$1 $2\" in\n",
	      out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		td__completion_case(out, td_cmds[i]);
	fputs("\t*) return 1 ;;\n\tesac\n}\n\n"
	      "# _teardown_opts SUB: its options.\n_teardown_opts()\n{\n\tcase $1 in\n", out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		td__completion_words(out, td_cmds[i]);
	fputs("\tesac\n}\n\n"
	      "# _teardown_operands SUB: what its operands are.\n_teardown_operands()\n{\n"
	      "\tcase $1 in\n", out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		fprintf(out, "\t%s) echo '%s' ;;\n", td_cmds[i]->name,
			td_cmds[i]->operands ? td_cmds[i]->operands : "");
	fputs("\tesac\n}\n\n"
	      "# _teardown_words CUR WORDS...: COMPREPLY from the words that start with\n"
	      "# CUR, and @file, @dir, @command, @unit expanded.\n"
	      "_teardown_words()\n{\n"
	      "\tlocal cur=$1 w IFS=$' \\t\\n'\n"
	      "\tshift\n"
	      "\tfor w in $*; do\n"
	      "\t\tlocal IFS=$'\\n'\n"
	      "\t\tcase $w in\n"
	      "\t\t@file) COMPREPLY+=($(compgen -f -- \"$cur\")) ;;\n"
	      "\t\t@dir) COMPREPLY+=($(compgen -d -- \"$cur\")) ;;\n"
	      "\t\t@command) COMPREPLY+=($(compgen -c -- \"$cur\" | sort -u)) ;;\n"
	      "\t\t@unit) COMPREPLY+=($(systemctl list-unit-files --type=service --no-legend"
	      " 2>/dev/null | while IFS=' ' read -r u _; do [[ $u == \"$cur\"* ]] && echo \"$u\"; done)) ;;\n"
	      "\t\t*) [[ $w == \"$cur\"* ]] && COMPREPLY+=(\"$w\") ;;\n"
	      "\t\tesac\n"
	      "\t\tIFS=$' \\t\\n'\n"
	      "\tdone\n}\n\n"
	      "_teardown()\n{\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
	      "\tlocal sub=run first=1 i n=0 w vals groups\n"
	      "\tCOMPREPLY=()\n"
	      "\tcase ${COMP_WORDS[1]} in\n\t",
	      out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		fprintf(out, "%s%s", i ? "|" : "", td_cmds[i]->name);
	fputs(")\n\t\t[[ $COMP_CWORD -gt 1 ]] && { sub=${COMP_WORDS[1]}; first=2; } ;;\n\tesac\n"
	      "\t# the operands before the cursor (words that are no option nor an option's value)\n"
	      "\tfor ((i = first; i < COMP_CWORD; i++)); do\n"
	      "\t\tw=${COMP_WORDS[i]}\n"
	      "\t\tif [[ $sub == run && ( $w == -- || $n -gt 0 ) ]]; then\n"
	      "\t\t\t# COMMAND [ARGS...]: its own command line\n"
	      "\t\t\t[[ $w == -- ]] && i=$((i + 1))\n"
	      "\t\t\tif [[ $i -lt $COMP_CWORD ]] && declare -F _command_offset >/dev/null; then\n"
	      "\t\t\t\t_command_offset $i\n"
	      "\t\t\telif [[ $i -lt $COMP_CWORD ]]; then\n"
	      "\t\t\t\t_teardown_words \"$cur\" @file\n"
	      "\t\t\telse\n"
	      "\t\t\t\t_teardown_words \"$cur\" @command\n"
	      "\t\t\tfi\n"
	      "\t\t\treturn 0\n"
	      "\t\tfi\n"
	      "\t\t[[ $w == -* ]] && continue\n"
	      "\t\t[[ ${COMP_WORDS[i-1]} == -* ]] && _teardown_arg \"$sub\" \"${COMP_WORDS[i-1]}\""
	      " >/dev/null && continue\n"
	      "\t\tn=$((n + 1))\n"
	      "\tdone\n"
	      "\tif [[ $sub == run && $n -gt 0 ]]; then\n"
	      "\t\t_teardown_words \"$cur\" @file\n"
	      "\t\treturn 0\n"
	      "\tfi\n"
	      "\tif vals=$(_teardown_arg \"$sub\" \"$prev\"); then\n"
	      "\t\t_teardown_words \"$cur\" $vals\n"
	      "\telif [[ $cur == -* ]]; then\n"
	      "\t\t_teardown_words \"$cur\" $(_teardown_opts \"$sub\")\n"
	      "\telif [[ $COMP_CWORD -eq 1 ]]; then\n"
	      "\t\t# a subcommand, or (once something is typed) the command to run\n"
	      "\t\t_teardown_words \"$cur\" '",
	      out);
	for (size_t i = 0; td_cmds[i] != NULL; i++)
		fprintf(out, "%s%s", i ? " " : "", td_cmds[i]->name);
	fputs("'\n"
	      "\t\t[[ -n $cur ]] && _teardown_words \"$cur\" @command\n"
	      "\telse\n"
	      "\t\t# the n-th operand takes the n-th |-separated group (the last repeats)\n"
	      "\t\tIFS='|' read -r -a groups <<<\"$(_teardown_operands \"$sub\")\"\n"
	      "\t\t[[ $n -ge ${#groups[@]} ]] && n=$((${#groups[@]} - 1))\n"
	      "\t\t[[ $n -ge 0 ]] && _teardown_words \"$cur\" ${groups[n]}\n"
	      "\tfi\n"
	      "\treturn 0\n"
	      "}\n"
	      "complete -F _teardown teardown\n",
	      out);
}

/* ---- teardown help -------------------------------------------------------- */

static int td_cmd_help(int argc, char **argv)
{
	struct td_getopt g;
	const struct td_cmd *c;
	const char *topic, *sub;
	bool man = false;
	int o;

	if (td_getopt_init(&g, &td_cmd_help_def, argc, argv, false) != 0)
		return TD_EXIT_USAGE;
	while ((o = td_getopt_next(&g)) != -1) {
		if (o == TD_OPT_DONE) {
			td_getopt_free(&g);
			return g.status;
		}
		if (o == O_MAN)
			man = true;
	}
	td_getopt_free(&g);
	topic = optind < argc ? argv[optind] : NULL;
	sub = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (topic == NULL) {
		td_main_usage(stdout);
		return 0;
	}
	if (strcmp(topic, "keys") == 0) {
		if (man)
			td__keys_man(stdout);
		else
			td__keys_text(stdout);
		return 0;
	}
	if (strcmp(topic, "completion") == 0) {
		td__completion(stdout);
		return 0;
	}
	if (strcmp(topic, "options") == 0) {
		c = td_cmd_find(sub ? sub : "run");
		if (c == NULL)
			return td_usage_error(&td_cmd_help_def, "no subcommand '%s'", sub);
		if (man)
			td_usage_man(c, stdout);
		else
			td_usage(c, stdout);
		return 0;
	}
	c = td_cmd_find(topic);
	if (c == NULL)
		return td_usage_error(&td_cmd_help_def,
				      "no help on '%s': name a subcommand (run, check, report, "
				      "doctor, systemd), keys or options", topic);
	td_usage(c, stdout);
	return 0;
}

const struct td_cmd td_cmd_help_def = {
	.name = "help",
	.synopsis = "[SUBCOMMAND]\nkeys [--man]\noptions [SUBCOMMAND] [--man]",
	.summary = "this list; one subcommand's help; the policy keys",
	.about = "With no argument, list the subcommands.  With a SUBCOMMAND, its help\n"
		 "(as `teardown SUBCOMMAND --help`).  keys: every policy key with its\n"
		 "values, default and option (teardown.conf(5)).  options: a\n"
		 "subcommand's options.  With --man, keys and options are printed as\n"
		 "roff, for the manual pages.",
	.opts = td__help_table,
	.after = "Exit status: 0; 125 for an unknown topic or option.",
	.main = td_cmd_help,
	.operands = "run check report doctor systemd keys options|run check report doctor systemd help",
};
