/*
 * teardown: the policy reader (shim/core/cfgread.c) held against
 * libconfig 1.5 itself, which the tests link and the library never does.
 * For every input (the shipped policies, the fuzz corpus, and a table of
 * corner cases of the grammar) both must agree: both accept and build the
 * same tree (types, names, values, order), or both refuse on the same
 * line.  Inputs the prescan refuses (NUL, @include, deep nesting, wide
 * integers) never reach either reader, and are left out here too.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <libconfig.h>

#include "teardown/cfgread.h"
#include "teardown/config.h"

/* Where the trees first differ, into why; true when they are equal. */
static bool td_t_same(const struct td_cfg_node *a, const config_setting_t *b, char *why,
		      size_t cap, const char *at)
{
	const char *bname = config_setting_name(b);
	char here[512];

	snprintf(here, sizeof(here), "%s/%s", at, a->name ? a->name : "#");
	if (a->type != (uint8_t)config_setting_type(b)) {
		snprintf(why, cap, "%s: type %d vs libconfig %d", here, a->type,
			 config_setting_type(b));
		return false;
	}
	if ((a->name == NULL) != (bname == NULL) ||
	    (a->name != NULL && strcmp(a->name, bname) != 0)) {
		snprintf(why, cap, "%s: name vs libconfig %s", here, bname ? bname : "(none)");
		return false;
	}
	switch (a->type) {
	case TD_CFG_INT:
		if (a->i != config_setting_get_int(b))
			return snprintf(why, cap, "%s: %lld vs %d", here, (long long)a->i,
					config_setting_get_int(b)), false;
		return true;
	case TD_CFG_INT64:
		if (a->i != config_setting_get_int64(b))
			return snprintf(why, cap, "%s: %lld vs %lld", here, (long long)a->i,
					config_setting_get_int64(b)), false;
		return true;
	case TD_CFG_FLOAT:
		if (!(a->f == config_setting_get_float(b) ||
		      (isnan(a->f) && isnan(config_setting_get_float(b)))))
			return snprintf(why, cap, "%s: %.17g vs %.17g", here, a->f,
					config_setting_get_float(b)), false;
		return true;
	case TD_CFG_BOOL:
		if (a->b != (config_setting_get_bool(b) != 0))
			return snprintf(why, cap, "%s: bool differs", here), false;
		return true;
	case TD_CFG_STRING:
		if (strcmp(a->s, config_setting_get_string(b)) != 0)
			return snprintf(why, cap, "%s: \"%s\" vs \"%s\"", here, a->s,
					config_setting_get_string(b)), false;
		return true;
	default:
		break;
	}
	if ((int)a->n != config_setting_length(b))
		return snprintf(why, cap, "%s: %u children vs %d", here, a->n,
				config_setting_length(b)), false;
	for (uint32_t i = 0; i < a->n; i++)
		if (!td_t_same(a->kids[i], config_setting_get_elem(b, i), why, cap, here))
			return false;
	return true;
}

/*
 * Both readers on one input: NULL when they agree, else a message.  The
 * line of a refusal must agree too, except where libconfig's own line
 * counting is off by its lookahead: a refusal at the end of the text.
 */
static const char *td_t_compare(const char *text, size_t len, char *why, size_t cap)
{
	struct td_cfg_error pre;
	struct td_cfg_doc doc;
	config_t cfg;
	char msg[256];
	char *copy;
	int line, ours, theirs;

	if (td_policy_prescan(text, len, &pre) != 0 || memchr(text, '\0', len) != NULL)
		return NULL;
	copy = strndup(text, len);
	cr_assert(not(eq(ptr, copy, NULL)));
	ours = td_cfg_read(&doc, text, len, &line, msg, sizeof(msg));
	config_init(&cfg);
	theirs = config_read_string(&cfg, copy);
	why[0] = '\0';
	if ((ours == 0) != (theirs == CONFIG_TRUE)) {
		snprintf(why, cap, "ours %s (%d: %s), libconfig %s (%d: %s)",
			 ours == 0 ? "accepts" : "refuses", line, msg,
			 theirs == CONFIG_TRUE ? "accepts" : "refuses", config_error_line(&cfg),
			 config_error_text(&cfg) ? config_error_text(&cfg) : "");
	} else if (ours == 0) {
		(void)td_t_same(doc.root, config_root_setting(&cfg), why, cap, "");
	} else if (line != config_error_line(&cfg)) {
		snprintf(why, cap, "both refuse, ours on line %d (%s), libconfig on %d (%s)",
			 line, msg, config_error_line(&cfg), config_error_text(&cfg));
	}
	if (ours == 0)
		td_cfg_free(&doc);
	config_destroy(&cfg);
	free(copy);
	return why[0] ? why : NULL;
}

/* Text in the struct itself: Criterion hands parameters to a worker
 * process whose addresses differ (ASLR), so no pointers. */
struct td_t_case {
	char text[120];
	bool ok; /* whether it is valid libconfig at all */
};

ParameterizedTestParameters(cfgread, against_libconfig)
{
	static struct td_t_case cases[] = {
		{"", true},
		{"# only a comment\n// another\n/* and a block */\n", true},
		{"a = 1;", true},
		{"a : 1", true},
		{"a = 1, b = 2; c = 3", true},
		{"a = -5; b = +7; c = 0x1F; d = 0xffffffff; e = 12L; f = 0x10LL;", true},
		{"a = 1.5; b = .5; c = 5.; d = 1e3; e = -2.5E-2; f = +1.0e+1;", true},
		{"a = true; b = FALSE; c = TrUe;", true},
		{"a = \"x\" \"y\"\n \"z\";", true},
		{"a = \"tab\\there\\nnl \\\"q\\\" \\\\ \\x41\\x7a \\q\";", true},
		{"a = \"multi\nline\";\nb = 1;", true},
		{"g = { a = 1; h = { b = [1, 2, 3]; }; };", true},
		{"l = ( 1, \"two\", { x = 3; }, [4.0, 5.5], ( ) );", true},
		{"e = [ ]; f = ( ); g = { };", true},
		{"n-a_m*e = 1; *x = 2;", true},
		{"trueish = 1; falsey = true;", true},
		{"a=1;b=2;c={d=3;}", true},
		{"rules = ( { name = \"a\"; match = { remote_port = (80, \"1000-2000\"); }; } );", true},
		{"a = [1, 2.0];", false},
		{"a = [1, 2L];", false},
		{"a = [\"x\", 1];", false},
		{"a = 1;\na = 2;", false},
		{"g = { a = 1; a = 2; };", false},
		{"a = ( 1, );", false},
		{"a = [ 1, ];", false},
		{"a = ( 1 2 );", false},
		{"a = ;", false},
		{"a 1;", false},
		{"= 1;", false},
		{"a = 1;;", false},
		{"a = {\n b = 1\n c = 2\n d = 3;;\n};", false},
		{"a = \"unterminated", false},
		{"a = [ { } ];", false},
		{"a = @x;", false},
		{"a = 1; }", false},
		{"a = { b = 1;", false},
		{"a = -;", false},
		{"1a = 2;", false},
		{"a = 0x;", false},
		{"a = 1.2.3;", false},
		{"a = 1 /* unterminated comment", true},
		{"a = \"\\x4\";", true},
		{"a = -0x10;", false},
		{"version = 1\nrules = ( { } { } );\n", false},
	};

	return cr_make_param_array(struct td_t_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct td_t_case *c, cfgread, against_libconfig)
{
	struct td_cfg_doc doc;
	char why[1024], msg[256];
	const char *diff = td_t_compare(c->text, strlen(c->text), why, sizeof(why));
	int line;
	int rc = td_cfg_read(&doc, c->text, strlen(c->text), &line, msg, sizeof(msg));

	cr_assert(eq(ptr, (void *)diff, NULL), "%s: %s", c->text, diff ? diff : "");
	cr_assert(eq(int, rc == 0, c->ok), "%s: %s", c->text, msg);
	if (rc == 0)
		td_cfg_free(&doc);
}

/* Every file of dir through the comparison; returns how many. */
static size_t td_t_compare_dir(const char *dir)
{
	char path[PATH_MAX], why[1024];
	struct dirent *de;
	size_t count = 0;
	DIR *d = opendir(dir);

	cr_assert(not(eq(ptr, d, NULL)), "cannot open %s (run from the top of the tree)", dir);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *buf;
		FILE *f;
		size_t n;
		const char *diff;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		f = fopen(path, "rb");
		cr_assert(not(eq(ptr, f, NULL)));
		buf = malloc((size_t)st.st_size + 1);
		cr_assert(not(eq(ptr, buf, NULL)));
		n = fread(buf, 1, (size_t)st.st_size, f);
		fclose(f);
		diff = td_t_compare(buf, n, why, sizeof(why));
		cr_assert(eq(ptr, (void *)diff, NULL), "%s: %s", path, diff ? diff : "");
		free(buf);
		count++;
	}
	closedir(d);
	return count;
}

Test(cfgread, shipped_policies_and_fuzz_corpus)
{
	cr_assert(gt(sz, td_t_compare_dir("config"), 4));
	cr_assert(gt(sz, td_t_compare_dir("tests/fuzz/corpus/policy"), 50));
}

Test(cfgread, lines_and_messages)
{
	struct td_cfg_doc doc;
	char msg[256];
	int line;

	cr_assert(eq(int, td_cfg_read(&doc, "a = 1;\n\nb = ( 1 2 );", 21, &line, msg, sizeof(msg)),
		     -EINVAL));
	cr_assert(eq(int, line, 3));
	cr_assert(eq(str, msg, "syntax error (an integer where ',' or ')' was expected)"));
	cr_assert(eq(int, td_cfg_read(&doc, "g = {\n a = 1;\n a = 2; };", 24, &line, msg,
				      sizeof(msg)), -EINVAL));
	cr_assert(eq(int, line, 3));
	cr_assert(eq(str, msg, "duplicate setting name (a)"));
	cr_assert(eq(int, td_cfg_read(&doc, "g = {\n a = [1,\n \"x\"]; };", 24, &line, msg,
				      sizeof(msg)), -EINVAL));
	cr_assert(eq(int, line, 3));
	cr_assert(eq(str, msg, "mismatched element type in array"));
}

Test(cfgread, tree_shape)
{
	static const char text[] = "x = 1;\ng = {\n  s = \"a\" \"b\";\n  l = (1, [2L, 3L]);\n};\n";
	const struct td_cfg_node *g, *l;
	struct td_cfg_doc doc;
	char msg[128];
	int line;

	cr_assert(eq(int, td_cfg_read(&doc, text, strlen(text), &line, msg, sizeof(msg)), 0));
	cr_assert(eq(u32, doc.root->n, 2));
	g = td_cfg_member(doc.root, "g");
	cr_assert(not(eq(ptr, (void *)g, NULL)));
	cr_assert(eq(int, g->line, 2));
	cr_assert(eq(str, (char *)td_cfg_member(g, "s")->s, "ab"));
	cr_assert(eq(int, td_cfg_member(g, "s")->line, 3));
	l = td_cfg_member(g, "l");
	cr_assert(eq(int, l->type, TD_CFG_LIST));
	cr_assert(eq(int, l->kids[1]->type, TD_CFG_ARRAY));
	cr_assert(eq(i64, l->kids[1]->kids[1]->i, 3));
	cr_assert(eq(ptr, (void *)td_cfg_member(g, "missing"), NULL));
	cr_assert(eq(ptr, (void *)td_cfg_member(l, "s"), NULL));
	td_cfg_free(&doc);
}

/* A group of many members stays linear: duplicates are hashed. */
Test(cfgread, many_members, .timeout = 20)
{
	size_t n = 100000, cap = n * 16, len = 0;
	char *text = malloc(cap), msg[128];
	struct td_cfg_doc doc;
	int line;

	cr_assert(not(eq(ptr, text, NULL)));
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "k%zu = %zu;\n", i, i);
	cr_assert(eq(int, td_cfg_read(&doc, text, len, &line, msg, sizeof(msg)), 0), "%s", msg);
	cr_assert(eq(u32, doc.root->n, (uint32_t)n));
	td_cfg_free(&doc);
	len += (size_t)snprintf(text + len, cap - len, "k77 = 1;\n");
	cr_assert(eq(int, td_cfg_read(&doc, text, len, &line, msg, sizeof(msg)), -EINVAL));
	cr_assert(eq(int, line, (int)n + 1));
	free(text);
}
