/*
 * teardown: what `teardown doctor` offers the rest of the command.
 */
#ifndef TEARDOWN_CLI_DOCTOR_H
#define TEARDOWN_CLI_DOCTOR_H

#include <stdbool.h>
#include <stdio.h>

/*
 * For `teardown run`, just before it execs PROG (a path, or a name looked
 * up in PATH as execvp() does): when the library cannot act on the
 * program, print one line "teardown: warning: PROG: <why>" on out and
 * return 1.  Silent, returning 0, when the program can be interposed or
 * cannot be inspected (exec will report that itself).  Set-user-ID
 * programs only warn when running them from this process would really
 * use secure mode.
 */
int td_doctor_warn(const char *prog, FILE *out);

/*
 * The system-wide checks of `teardown doctor --system` (and `teardown
 * check --system`): /etc/ld.so.preload, /etc/teardown.conf, and the
 * library next to the command.  One line per finding on out, JSON objects
 * when json.  Returns 0 when every check passes, else 1.
 */
int td_doctor_system(FILE *out, bool json);

#endif
