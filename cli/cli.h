/* teardown: the command's subcommands. Each returns the exit status. */
#ifndef TEARDOWN_CLI_H
#define TEARDOWN_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "args.h"
#include "teardown/policy.h"

/* The subcommands (args.h): each file defines its own. */
extern const struct td_cmd td_cmd_run_def;     /* run.c */
extern const struct td_cmd td_cmd_check_def;   /* check.c */
extern const struct td_cmd td_cmd_report_def;  /* report.c */
extern const struct td_cmd td_cmd_doctor_def;  /* doctor.c */
extern const struct td_cmd td_cmd_systemd_def; /* systemd.c */
extern const struct td_cmd td_cmd_help_def;    /* help.c */

/* teardown [run] [options] -- COMMAND [ARGS...] */
int td_cmd_run(int argc, char **argv);
/* `teardown --help`: the subcommands, then run's options (help.c) */
void td_main_usage(FILE *out);

/*
 * The library a run would preload, as an absolute path: explicit (the
 * --library option) when not NULL, else $TEARDOWN_LIBRARY, else the one
 * next to this program (a build tree), in the installed tree relative to
 * it (TD_LIBDIR_REL), or in TD_LIBDIR; the first one readable.  Never a
 * path relative to the current directory.  0, or -errno with why (a
 * sentence) filled.  (run.c)
 */
int td_find_library(char out[PATH_MAX], const char *explicit_path, char *why, size_t cap);

/*
 * Run's options, shared with `teardown systemd enable` (which takes the
 * same policy options): td_run_take() keeps option c (a val of
 * td_run_options()) and td_run_policy() builds the policy from them.
 */
#define TD_RUN_MAX_KEYS 64
struct td_run_opts {
	const char *config;  /* -c FILE */
	const char *library; /* -l PATH */
	bool dry_run;	     /* -n */
	bool quiet;	     /* -q */
	bool have_rule;	     /* some option describes a rule */
	bool have_log;	     /* some option sets a log key */
	/* each schema key's values from the options, in order */
	const char **vals[TD_RUN_MAX_KEYS];
	size_t nvals[TD_RUN_MAX_KEYS];
	char abs_log[2 * PATH_MAX]; /* a relative --log made absolute */
};

/* Run's option table: its own options, then one per schema key. */
const struct td_opt *td_run_options(void);
/* 0: taken; 1: c is not one of run's options; -1: out of memory (said). */
int td_run_take(struct td_run_opts *o, int c, const char *arg);
/*
 * The policy the options describe, checked with the library's parser:
 * NULL after saying why.  When only -c FILE was given, *as_path is set
 * and the result is the file's real path (the library reads the file
 * itself); otherwise it is the policy text, the options' rule first.
 * logp gets the log settings (for td_log_target_check).
 */
char *td_run_policy(struct td_run_opts *o, bool *as_path, struct td_policy *logp);
void td_run_opts_free(struct td_run_opts *o);
/*
 * LD_PRELOAD with lib first, then old's entries (colon- or blank-
 * separated) that are not a libteardown.so.  malloc()ed, or NULL.
 */
char *td_preload_join(const char *lib, const char *old);

/*
 * Whether p's log target can be written now: the file opened (created
 * when create is set; else its directory must let it be created), the
 * syslog or journald socket connected.  0, or -errno with why (a whole
 * sentence, no newline) filled.  stderr always passes: the library says
 * itself when it cannot use it.  (logtarget.c)
 */
int td_log_target_check(const struct td_policy *p, bool create, char *why, size_t cap);
/* journald's native socket: $TEARDOWN_JOURNAL_SOCKET, or the usual one */
const char *td_journal_socket_path(void);

#endif
