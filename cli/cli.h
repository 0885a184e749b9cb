/* teardown: the command's subcommands. Each returns the exit status. */
#ifndef TEARDOWN_CLI_H
#define TEARDOWN_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "teardown/policy.h"

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
