/*
 * Unit tests for the command's string writers (cli/lib/out.c): JSON and
 * text escaping (shared by report and doctor), roff for the manual
 * pages, and the shell word that `teardown -n` prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../../cli/lib/out.h"

typedef void (*writer)(FILE *, const char *);

static char *through(writer w, const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert(not(eq(ptr, f, NULL)));
	w(f, s);
	fclose(f);
	return buf;
}

static void check(writer w, const char *in, const char *want)
{
	char *got = through(w, in);

	cr_assert(eq(str, got, (char *)want), "in %s", in);
	free(got);
}

Test(out, json_and_text)
{
	check(td_put_json_str, "a\"b\\c\nd", "\"a\\\"b\\\\c\\nd\"");
	check(td_put_json_str, "", "\"\"");
	check(td_put_text_str, "plain", "plain");
	/* a control byte never reaches a terminal as is */
	char *t = through(td_put_text_str, "x\033[2Jy");
	cr_assert(eq(ptr, strchr(t, '\033'), NULL), "%s", t);
	free(t);
}

Test(out, roff)
{
	check(td_put_roff, "--close abort", "\\-\\-close abort");
	check(td_put_roff, "set-user-ID", "set-user-ID");
	check(td_put_roff, "a\\b", "a\\eb");
	check(td_put_roff, ".TH x\n'quote\nok", "\\&.TH x\n\\&'quote\nok");
	check(td_put_roff, "(-c FILE) [-n] a|-q", "(\\-c FILE) [\\-n] a|\\-q");
}

Test(out, shell_word_round_trips)
{
	static const char *const words[] = {"plain/path-1.2:x", "", "a b", "it's", "$HOME",
					     "a\nb", "'", "\\", "`id`", "*"};

	check(td_put_shell_word, "/usr/lib/libteardown.so", "/usr/lib/libteardown.so");
	check(td_put_shell_word, "it's", "'it'\\''s'");
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char *w = through(td_put_shell_word, words[i]), *cmd, out[64] = "";
		FILE *p;
		size_t n;

		cr_assert(gt(int, asprintf(&cmd, "printf '%%s' %s", w), 0));
		p = popen(cmd, "r");
		n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = '\0';
		pclose(p);
		cr_assert(eq(str, out, (char *)words[i]), "%s -> %s", words[i], w);
		free(cmd);
		free(w);
	}
}
