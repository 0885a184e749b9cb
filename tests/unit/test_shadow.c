/*
 * Unit tests for the shadowing analysis (cli/lib/shadow.c): a rule is
 * shadowed when an earlier rule matches every socket it matches.  Each
 * case is a two-rule policy text, parsed by the real parser, and whether
 * the first covers the second; then whole policies and the pair limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "../../cli/lib/shadow.h"
#include "teardown/config.h"

struct pair {
	char a[160], b[160]; /* the two rules' match groups */
	bool covers;
};

static void parse(struct td_policy *p, const char *text)
{
	struct td_cfg_error err;

	cr_assert(eq(int, td_policy_parse_text(p, text, strlen(text), "t", &err), 0), "%s\n%s",
		  err.msg, text);
}

ParameterizedTestParameters(shadow, covers)
{
	static struct pair pairs[] = {
		/* no criteria covers everything; anything less does not cover "all" */
		{"", "program = \"curl\"; role = \"client\"; remote_port = 443;", true},
		{"program = \"*\";", "remote = \"10.0.0.0/8\";", true},
		{"role = \"client\";", "", false},
		{"", "", true},
		/* programs: same glob, a glob taking a plain name, different globs */
		{"program = \"psql*\";", "program = \"psql*\"; role = \"client\";", true},
		{"program = \"psql*\";", "program = \"psql\";", true},
		{"program = \"psql*\";", "program = \"pg_dump\";", false},
		{"program = \"cu?l\";", "program = \"c*\";", false},
		{"program = \"curl\";", "", false},
		/* roles */
		{"role = \"any\";", "role = \"server\";", true},
		{"role = \"client\";", "role = \"client\"; remote_port = 80;", true},
		{"role = \"client\";", "role = \"server\";", false},
		/* address blocks: containment, family, every block of b */
		{"remote = \"10.0.0.0/8\";", "remote = \"10.1.0.0/16\";", true},
		{"remote = \"10.0.0.0/8\";", "remote = \"10.1.2.3\";", true},
		{"remote = \"10.1.0.0/16\";", "remote = \"10.0.0.0/8\";", false},
		{"remote = \"10.0.0.0/8\";", "remote = [\"10.1.0.0/16\", \"11.0.0.0/8\"];", false},
		{"remote = [\"10.0.0.0/8\", \"11.0.0.0/8\"];", "remote = [\"10.1.0.0/16\", \"11.2.3.4\"];",
		 true},
		{"remote = \"0.0.0.0/0\";", "remote = \"::1\";", false},
		{"remote = \"::/0\";", "remote = \"2001:db8::/32\";", true},
		{"remote = \"10.0.0.0/9\";", "remote = \"10.128.0.0/9\";", false},
		{"remote = \"10.0.0.0/8\";", "", false},
		{"local = \"127.0.0.0/8\";", "local = \"127.0.0.1\"; remote = \"10.0.0.1\";", true},
		/* ports: ranges, unions of abutting ranges, every range of b */
		{"remote_port = \"1-1024\";", "remote_port = 443;", true},
		{"remote_port = (80, 443);", "remote_port = (443, 80);", true},
		{"remote_port = (\"80-89\", \"90-99\");", "remote_port = \"85-95\";", true},
		{"remote_port = (\"80-89\", \"91-99\");", "remote_port = \"85-95\";", false},
		{"remote_port = 80;", "remote_port = (80, 8080);", false},
		{"remote_port = \"1-65535\";", "remote_port = 65535;", true},
		{"local_port = 8080;", "remote_port = 8080;", false},
		{"remote_port = 80;", "", false},
		/* all criteria at once */
		{"program = \"nginx\"; role = \"server\"; local_port = \"8000-8099\";",
		 "program = \"nginx\"; role = \"server\"; local_port = 8080; remote = \"10.0.0.0/8\";",
		 true},
		{"program = \"nginx\"; role = \"server\"; local_port = \"8000-8099\";",
		 "program = \"nginx\"; role = \"client\"; local_port = 8080;", false},
	};

	return cr_make_param_array(struct pair, pairs, sizeof(pairs) / sizeof(pairs[0]));
}

ParameterizedTest(struct pair *c, shadow, covers)
{
	char text[512];
	struct td_policy p;
	int32_t by[2];

	snprintf(text, sizeof(text),
		 "rules = ( { name = \"a\"; match = { %s }; }, { name = \"b\"; match = { %s }; } );",
		 c->a, c->b);
	parse(&p, text);
	cr_assert(eq(int, td_rule_covers(&p.rules[0], &p.rules[1]), c->covers), "a {%s} b {%s}",
		  c->a, c->b);
	cr_assert(eq(int, td_policy_shadowed(&p, by, 100), 1));
	cr_assert(eq(i32, by[0], -1));
	cr_assert(eq(i32, by[1], c->covers ? 0 : -1), "a {%s} b {%s}", c->a, c->b);
	td_policy_free(&p);
}

/* The first earlier rule that covers is named; a rule can only be shadowed
 * by rules before it; a catch-all is found even past the pair limit. */
Test(shadow, policy_first_cover_and_limit)
{
	static const char text[] =
		"rules = (\n"
		"  { name = \"web\"; match = { role = \"client\"; remote_port = (80, 443); }; },\n"
		"  { name = \"tls\"; match = { role = \"client\"; remote_port = 443; }; },\n"
		"  { name = \"all\"; },\n"
		"  { name = \"db\"; match = { remote_port = 5432; }; },\n"
		"  { name = \"web2\"; match = { role = \"client\"; remote_port = 80; }; }\n"
		");";
	struct td_policy p;
	int32_t by[5];

	parse(&p, text);
	cr_assert(eq(int, td_policy_shadowed(&p, by, 1000), 1));
	cr_assert(eq(i32, by[0], -1));
	cr_assert(eq(i32, by[1], 0));
	cr_assert(eq(i32, by[2], -1));
	cr_assert(eq(i32, by[3], 2));
	cr_assert(eq(i32, by[4], 0));
	/* too many pairs: only the catch-all is looked for */
	cr_assert(eq(int, td_policy_shadowed(&p, by, 3), 0));
	cr_assert(eq(i32, by[1], -1));
	cr_assert(eq(i32, by[3], 2));
	cr_assert(eq(i32, by[4], 2));
	cr_assert(eq(int, td_rule_matches_all(&p.rules[2]), 1));
	cr_assert(eq(int, td_rule_matches_all(&p.rules[3]), 0));
	td_policy_free(&p);
}
