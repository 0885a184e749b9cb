/*
 * teardown: replay the committed fuzz corpus (tests/fuzz/corpus/) through
 * the fuzz targets' checks, without libFuzzer, so that `make test` catches
 * a regression on any input a fuzzer ever kept: a parser that crashes, a
 * policy that no longer round-trips through its canonical text, a log
 * line that stops parsing, an event line that breaks its bounds.
 *
 * The checks are tests/fuzz/harness.c itself, compiled into this test.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "../fuzz/harness.c"

typedef const char *td_t_target(const uint8_t *data, size_t size);

/* tests/fuzz/corpus/NAME from the top of the tree, or found from the binary. */
static void td_t_corpus_dir(char *out, size_t cap, const char *name)
{
	char exe[PATH_MAX];
	ssize_t n;
	int k;

	snprintf(out, cap, "tests/fuzz/corpus/%s", name);
	if (access(out, R_OK) == 0)
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert(gt(sz, (size_t)(n + 1), 1), "cannot find the corpus %s", name);
	exe[n] = '\0';
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(exe, '/');

		if (slash != NULL)
			*slash = '\0';
	}
	k = snprintf(out, cap, "%.*s/tests/fuzz/corpus/%s", PATH_MAX - 64, exe, name);
	cr_assert(lt(sz, (size_t)k, cap));
	cr_assert(eq(int, access(out, R_OK), 0), "cannot find the corpus %s", out);
}

/* Run every file of the corpus through target; returns how many. */
static size_t td_t_replay(const char *name, td_t_target *target)
{
	char dir[PATH_MAX + 64], path[PATH_MAX + 400];
	struct dirent *de;
	size_t count = 0;
	DIR *d;

	td_t_corpus_dir(dir, sizeof(dir), name);
	d = opendir(dir);
	cr_assert(not(eq(ptr, d, NULL)), "cannot open %s", dir);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		uint8_t *data;
		const char *why;
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		cr_assert(eq(int, stat(path, &st), 0), "%s", path);
		if (!S_ISREG(st.st_mode))
			continue;
		/* exactly the file's size: a read past the input is caught */
		data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
		cr_assert(not(eq(ptr, data, NULL)));
		f = fopen(path, "rb");
		cr_assert(not(eq(ptr, f, NULL)), "%s", path);
		cr_assert(eq(sz, fread(data, 1, (size_t)st.st_size, f), (size_t)st.st_size),
			  "%s", path);
		fclose(f);
		why = target(data, (size_t)st.st_size);
		free(data);
		cr_assert(eq(ptr, (void *)why, NULL), "%s: %s", path, why ? why : "");
		count++;
	}
	closedir(d);
	return count;
}

Test(fuzz_corpus, policy)
{
	cr_assert(ge(sz, td_t_replay("policy", td_fuzz_policy), 20));
}

Test(fuzz_corpus, report)
{
	cr_assert(ge(sz, td_t_replay("report", td_fuzz_report), 20));
}

Test(fuzz_corpus, event)
{
	cr_assert(ge(sz, td_t_replay("event", td_fuzz_event), 5));
}

Test(fuzz_corpus, elf)
{
	cr_assert(ge(sz, td_t_replay("elf", td_fuzz_elf), 4));
}

Test(fuzz_corpus, spool)
{
	cr_assert(ge(sz, td_t_replay("spool", td_fuzz_spool), 3));
}

/*
 * The checks themselves must bite: a canonical policy, a log line and an
 * event each pass, and what the checks exist to catch is caught.
 */
Test(fuzz_corpus, checks_accept_good_input)
{
	static const char pol[] = "rules = ( { name = \"r\"; close = \"abort\"; } );\n";
	static const char log[] = "{\"prog\":\"a\",\"event\":\"close\",\"wire\":\"RST\"}\nnot json\n";
	uint8_t ev[200];

	cr_assert(eq(ptr, (void *)td_fuzz_policy((const uint8_t *)pol, sizeof(pol) - 1), NULL));
	cr_assert(eq(ptr, (void *)td_fuzz_report((const uint8_t *)log, sizeof(log) - 1), NULL));
	memset(ev, 0xc3, sizeof(ev));
	cr_assert(eq(ptr, (void *)td_fuzz_event(ev, sizeof(ev)), NULL));
}

Test(fuzz_corpus, checks_catch_broken_promises)
{
	struct td_policy a, b;
	struct td_cfg_error e;
	uint32_t rule;

	/* a policy whose reparse differs in one field is reported */
	cr_assert(eq(int, td_policy_parse_text(&a, "rules = ({ close = \"abort\"; });", 31,
					       "t", &e), 0));
	cr_assert(eq(int, td_policy_parse_text(&b, "rules = ({ close = \"drain\"; });", 31,
					       "t", &e), 0));
	cr_assert(eq(str, (char *)td_fz_policy_diff(&a, &b, &rule), "close"));
	cr_assert(eq(u32, rule, 1));
	td_policy_free(&a);
	td_policy_free(&b);
	/* a refusal message with a newline in it is reported */
	memset(&a, 0, sizeof(a));
	memset(&e, 0, sizeof(e));
	snprintf(e.file, sizeof(e.file), "f");
	snprintf(e.msg, sizeof(e.msg), "two\nlines");
	cr_assert(not(eq(ptr, (void *)td_fz_check_refusal(-EINVAL, &a, &e), NULL)));
	/* a line with a raw newline inside, or a cut JSON line, is reported */
	cr_assert(not(eq(ptr, (void *)td_fz_check_bytes("a\nb\n", 4, false), NULL)));
	cr_assert(not(eq(ptr, (void *)td_fz_check_bytes("{\"a\":1", 6, true), NULL)));
	/* a decoded string that is not what was given is reported */
	cr_assert(not(eq(ptr, (void *)td_fz_same_str("json", "prog", "ab\xff", "ab\xff", 3, true),
			 NULL)));
	cr_assert(eq(ptr, (void *)td_fz_same_str("json", "prog", "ab\xff", "ab\xc3\xbf", 4, true),
		     NULL));
}
