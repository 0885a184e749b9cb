/*
 * teardown: the command line of every subcommand, described once.
 *
 * Each subcommand is a struct td_cmd: its synopsis, what it does, and a
 * table of options (struct td_opt).  The same table builds getopt_long's
 * options, prints `--help` (td_usage), the manual's option lists
 * (`teardown help options --man`) and the bash completion, so none of
 * them can drift from what the parser accepts.
 *
 * Every subcommand accepts -h/--help; a usage error prints one line and
 * "Try 'teardown SUB --help'." on stderr and gives exit status 125
 * (TD_EXIT_USAGE), as env(1) and timeout(1) do for their own errors.
 */
#ifndef TEARDOWN_CLI_ARGS_H
#define TEARDOWN_CLI_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* teardown's own errors (usage, a policy it cannot use, no library) */
#define TD_EXIT_USAGE 125
/* the command was found but could not be run, or was not found */
#define TD_EXIT_CANNOT_RUN 126
#define TD_EXIT_NOT_FOUND 127

/* Option values that are not a short option's letter start here. */
#define TD_OPT_LONG 256

/*
 * One option.  A row with name NULL and help set is a section heading
 * (in --help and the manual); the table ends with a row of NULLs.
 */
struct td_opt {
	const char *name; /* long name, without "--" */
	int val;	  /* its short letter, or a value >= TD_OPT_LONG */
	const char *arg;  /* the argument's name, or NULL for a flag */
	const char *help; /* one line; "\n" starts a continuation line */
	const char *values; /* for completion: the words the argument may be
			       ("pass graceful drain abort"), "@file", "@dir",
			       "@command", or NULL */
};

struct td_cmd {
	const char *name;     /* "check"; "run" is also what `teardown -- CMD` runs */
	const char *synopsis; /* after "teardown NAME ", one usage per line */
	const char *summary;  /* one line, for the list of subcommands */
	const char *about;    /* what it does: a paragraph or two */
	/* its options; a function because run's come from the policy schema */
	const struct td_opt *(*opts)(void);
	const char *after;    /* after the options: exit status, examples */
	int (*main)(int argc, char **argv);
	const char *operands; /* completion of operands: "@file", "@command", ... */
};

/* The subcommands, in the order `teardown --help` lists them; NULL-ended. */
extern const struct td_cmd *const td_cmds[];
const struct td_cmd *td_cmd_find(const char *name);

/* `--help` of one subcommand: synopsis, about, options, after. */
void td_usage(const struct td_cmd *c, FILE *out);
/* Only the options part of it. */
void td_usage_options(const struct td_cmd *c, FILE *out);
/* The options of c as roff (.TP paragraphs, .SS for headings). */
void td_usage_man(const struct td_cmd *c, FILE *out);

/*
 * A usage error: "teardown SUB: MESSAGE" and "Try 'teardown SUB --help'."
 * on stderr.  Returns TD_EXIT_USAGE.
 */
int td_usage_error(const struct td_cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Option parsing: getopt_long over the table, -h/--help included. */
struct td_getopt {
	const struct td_cmd *cmd;
	int argc;
	char **argv;
	struct option *longopts;
	char *shortopts;
	int status; /* after TD_OPT_DONE: the exit status to return */
};

/* td_getopt_next: -h/--help was given (usage printed, status 0), or a
 * usage error was reported (status 125); return g->status. */
#define TD_OPT_DONE (-2)

/*
 * in_order: stop at the first operand (run: what follows is the
 * command); otherwise options may come anywhere among the operands.
 * Returns 0, or -1 when out of memory (said on stderr).
 */
int td_getopt_init(struct td_getopt *g, const struct td_cmd *c, int argc, char **argv,
		   bool in_order);
/* The next option's val (optarg set), -1 at the end (then optind is
 * the first operand), or TD_OPT_DONE. */
int td_getopt_next(struct td_getopt *g);
void td_getopt_free(struct td_getopt *g);

#endif
