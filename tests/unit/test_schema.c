/*
 * teardown: the policy schema (shim/core/schema.c) is the one place a key
 * is described; these check the table itself and that what it drives
 * agrees with it: names and options unique, ranges sane, defaults what an
 * empty rule parses to, every key documented in config/teardown.conf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "teardown/config.h"
#include "teardown/schema.h"

Test(schema, names_and_options_unique)
{
	for (size_t i = 0; i < td_n_keys; i++) {
		cr_assert(not(eq(ptr, (void *)td_keys[i].name, NULL)));
		cr_assert(not(eq(ptr, (void *)td_keys[i].help, NULL)), "%s: no help", td_keys[i].name);
		for (size_t j = i + 1; j < td_n_keys; j++) {
			bool same_key = td_keys[i].scope == td_keys[j].scope &&
					strcmp(td_keys[i].name, td_keys[j].name) == 0;
			bool same_opt = td_keys[i].opt && td_keys[j].opt &&
					strcmp(td_keys[i].opt, td_keys[j].opt) == 0;

			cr_assert(eq(int, same_key, 0), "%s twice in one scope", td_keys[i].name);
			cr_assert(eq(int, same_opt, 0), "option --%s twice", td_keys[i].opt);
		}
		if (td_keys[i].kind == TD_K_INT)
			cr_assert(le(i64, td_keys[i].lo, td_keys[i].hi), "%s", td_keys[i].name);
		if (td_keys[i].kind == TD_K_INT && !(td_keys[i].flags & TD_KF_UNSET))
			cr_assert(eq(int, td_keys[i].def >= td_keys[i].lo && td_keys[i].def <= td_keys[i].hi, 1),
				  "%s: default out of its range", td_keys[i].name);
		cr_assert(eq(ptr, (void *)td_key_find(td_keys[i].scope, td_keys[i].name),
			     (void *)&td_keys[i]));
		if (td_keys[i].opt)
			cr_assert(eq(ptr, (void *)td_key_by_opt(td_keys[i].opt), (void *)&td_keys[i]));
	}
}

/* An empty rule parses to the table's defaults, key by key. */
Test(schema, defaults_are_what_an_empty_rule_parses_to)
{
	static const char text[] = "rules = ( { fault = { rst = 0; }; } );";
	struct td_cfg_error err;
	struct td_policy p;

	cr_assert(eq(int, td_policy_parse_text(&p, text, strlen(text), "t", &err), 0), "%s", err.msg);
	for (size_t i = 0; i < td_n_keys; i++) {
		const struct td_key *k = &td_keys[i];
		void *base = td_key_base(k->scope, &p, &p.rules[0]);

		if (k->kind == TD_K_INT || k->kind == TD_K_BOOL || k->kind == TD_K_ENUM ||
		    k->kind == TD_K_FACILITY || k->kind == TD_K_VERSION)
			cr_assert(eq(i64, td_key_get_int(k, base), k->def), "%s", k->name);
	}
	td_policy_free(&p);
}

/* config/teardown.conf documents every key (as "key =" or "# key"). */
Test(schema, every_key_documented_in_the_reference_policy)
{
	FILE *f = fopen("config/teardown.conf", "r");
	char *text;
	long n;

	cr_assert(not(eq(ptr, f, NULL)), "run from the top of the tree");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	cr_assert(eq(sz, fread(text, 1, (size_t)n, f), (size_t)n));
	fclose(f);
	for (size_t i = 0; i < td_n_keys; i++) {
		char want[96];

		snprintf(want, sizeof(want), "%s =", td_keys[i].name);
		cr_assert(not(eq(ptr, strstr(text, want), NULL)),
			  "config/teardown.conf does not document %s", td_keys[i].name);
	}
	free(text);
}
