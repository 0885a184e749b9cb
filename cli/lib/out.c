/* teardown: escaped strings for the command's outputs; see out.h. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "out.h"
#include "teardown/fmt.h"

static void td__put_buf(FILE *out, const char *s, bool json)
{
	size_t n = strlen(s), cap = 6 * n + 3;
	char *mem = malloc(cap);
	struct td_buf b;

	if (mem == NULL) {
		/* keep the output well formed; this needs a many-megabyte
		 * string with memory exhausted */
		fputs(json ? "\"?\"" : "?", out);
		return;
	}
	td_buf_init(&b, mem, cap);
	if (json)
		td_buf_json_str(&b, s, n);
	else
		td_buf_text_str(&b, s, n);
	fwrite(b.p, 1, b.len, out);
	free(mem);
}

void td_put_json_str(FILE *out, const char *s)
{
	td__put_buf(out, s, true);
}

void td_put_text_str(FILE *out, const char *s)
{
	td__put_buf(out, s, false);
}

void td_put_roff(FILE *out, const char *s)
{
	bool line_start = true;
	char prev = ' ';

	for (; *s; prev = *s++) {
		if (line_start && (*s == '.' || *s == '\''))
			fputs("\\&", out);
		line_start = *s == '\n';
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-' && (prev == ' ' || prev == '-' || prev == '\n' ||
				       prev == '(' || prev == '[' || prev == '|' || prev == '`'))
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

void td_put_shell_word(FILE *out, const char *s)
{
	bool plain = *s != '\0';

	for (const char *c = s; plain && *c; c++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			       "0123456789_-./:,+=@%", *c) != NULL;
	if (plain) {
		fputs(s, out);
		return;
	}
	fputc('\'', out);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", out);
		else
			fputc(*s, out);
	}
	fputc('\'', out);
}

void td_put_roff_option(FILE *out, const char *name, const char *arg)
{
	fputs("\\fB\\-\\-", out);
	for (const char *c = name; *c; c++) {
		char one[2] = {*c, '\0'};

		if (*c == '-')
			fputs("\\-", out);
		else
			td_put_roff(out, one);
	}
	fputs("\\fR", out);
	if (arg != NULL) {
		fputs(" \\fI", out);
		td_put_roff(out, arg);
		fputs("\\fR", out);
	}
}
