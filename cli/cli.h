/* teardown: the command's subcommands. Each returns the exit status. */
#ifndef TEARDOWN_CLI_H
#define TEARDOWN_CLI_H

#include <limits.h>

/* teardown [options] -- COMMAND [ARGS...] */
int td_cmd_run(int argc, char **argv);
/* teardown check [--system] FILE... */
int td_cmd_check(int argc, char **argv);
/* teardown report [--format text|json] LOG... */
int td_cmd_report(int argc, char **argv);
/* teardown doctor BINARY... */
int td_cmd_doctor(int argc, char **argv);

/*
 * The library a run would preload, as an absolute path: next to this
 * program (a build tree), in ../lib/teardown (an installed tree), or in
 * LIBDIR; the first one readable.  0, or -ENOENT.  (run.c)
 */
int td_find_library(char out[PATH_MAX]);

#endif
