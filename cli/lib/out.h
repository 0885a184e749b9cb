/*
 * teardown: how the command writes strings that come from outside (program
 * names, paths, policy text) into its outputs: JSON, one-line text, roff
 * for the manual pages, a shell word.  Every subcommand uses these, so a
 * hostile name is escaped the same way everywhere.
 */
#ifndef TEARDOWN_CLI_OUT_H
#define TEARDOWN_CLI_OUT_H

#include <stdio.h>

/* s as a JSON string, quotes included (the escaping is fmt.c's). */
void td_put_json_str(FILE *out, const char *s);

/* s for one-line text: control bytes and invalid UTF-8 escaped, no quotes. */
void td_put_text_str(FILE *out, const char *s);

/*
 * s as roff text: backslashes as \e, a '-' that starts a word (an
 * option) or follows another '-' as \-, and a line that would start with
 * '.' or '\'' (a request) guarded with \&.  Newlines are kept.
 */
void td_put_roff(FILE *out, const char *s);
/* "\fB\-\-name\fR \fIarg\fR" (arg may be NULL): an option in a manual page,
 * every '-' of its name a real hyphen-minus. */
void td_put_roff_option(FILE *out, const char *name, const char *arg);

/* s as one shell word: bare when it is made of safe characters, else in
 * single quotes ('\'' for a quote).  Sourcing it yields s exactly. */
void td_put_shell_word(FILE *out, const char *s);

#endif
