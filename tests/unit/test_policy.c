/*
 * Unit tests for rule matching (shim/core/policy.c), driven through the
 * parser: one policy text, and a decision table of sockets described as
 * the library sees them (program, role, addresses, what is known yet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "teardown/config.h"

/* Rules overlap on purpose, so that their order decides some rows. */
static const char policy_text[] =
	"rules = (\n"
	"  { name = \"psql-db\";\n" /* 0 */
	"    match = { program = \"psql*\"; role = \"client\"; remote = \"10.0.0.0/8\";\n"
	"              remote_port = \"5432\"; }; close = \"abort\"; },\n"
	"  { name = \"server-alt\";\n" /* 1 */
	"    match = { role = \"server\"; local_port = \"8000-8099\"; }; close = \"drain\"; },\n"
	"  { name = \"lo-admin\";\n" /* 2 */
	"    match = { local = \"127.0.0.0/8\"; local_port = 9000; }; },\n"
	"  { name = \"v6-web\";\n" /* 3 */
	"    match = { role = \"client\"; remote = [\"2001:db8::/32\", \"::1\"];\n"
	"              remote_port = (80, 443); }; },\n"
	"  { name = \"private\";\n" /* 4 */
	"    match = { remote = [\"192.168.0.0/16\", \"172.16.0.0/12\"]; }; },\n"
	"  { name = \"curl\"; match = { program = \"curl\"; }; },\n" /* 5 */
	"  { name = \"ssh\"; match = { remote_port = 22; }; },\n" /* 6 */
	"  { name = \"v6-local\"; match = { local = \"fd00::/8\"; }; }\n" /* 7 */
	");\n";

#define RR (TD_K_ROLE | TD_K_REMOTE)
#define RRL (TD_K_ROLE | TD_K_REMOTE | TD_K_LOCAL)
#define BIND TD_K_LOCAL
#define C TD_ROLE_CLIENT
#define S TD_ROLE_SERVER

struct row {
	char what[64];
	char prog[16], exe[16]; /* "" = unknown */
	uint32_t known;
	uint8_t role;
	char remote[48];
	uint16_t rport;
	char local[48];
	uint16_t lport;
	int expect;
};

ParameterizedTestParameters(policy, decide)
{
	static struct row rows[] = {
		/* program globs, matched against argv[0] or the executable */
		{"psql client to 10/8:5432", "psql", "psql", RR, C, "10.1.2.3", 5432, "", 0, 0},
		{"glob psql* matches psql15", "psql15", "", RR, C, "10.1.2.3", 5432, "", 0, 0},
		{"glob matches the exe name", "wrapper", "psql", RR, C, "10.1.2.3", 5432, "", 0, 0},
		{"other program, same socket", "pg_dump", "pg_dump", RR, C, "10.1.2.3", 5432, "", 0, -1},
		{"no program known", "", "", RR, C, "10.1.2.3", 5432, "", 0, -1},
		{"psql, wrong port", "psql", "", RR, C, "10.1.2.3", 5433, "", 0, -1},
		{"psql, outside 10/8", "psql", "", RR, C, "11.1.2.3", 5432, "", 0, -1},
		{"psql, upper edge of 10/8", "psql", "", RR, C, "10.255.255.255", 5432, "", 0, 0},
		/* roles */
		{"psql as server: role mismatch", "psql", "", RR, S, "10.1.2.3", 5432, "", 0, -1},
		{"server on 8080", "psql", "", RRL, S, "10.1.2.3", 5432, "0.0.0.0", 8080, 1},
		{"server on 8100: outside range", "app", "", RRL, S, "10.1.2.3", 5432, "0.0.0.0", 8100, -1},
		{"client bound to 8080: role mismatch", "app", "", RRL, C, "10.1.2.3", 5432, "0.0.0.0", 8080, -1},
		{"server range, low edge", "app", "", RRL, S, "8.8.8.8", 1, "::", 8000, 1},
		{"server range, high edge", "app", "", RRL, S, "8.8.8.8", 1, "::", 8099, 1},
		/* IPv6 and IPv4-mapped */
		{"v6 client to 2001:db8::1:443", "app", "", RR, C, "2001:db8::1", 443, "", 0, 3},
		{"v6 client, other port", "app", "", RR, C, "2001:db8::1", 8443, "", 0, -1},
		{"v6 loopback :80", "app", "", RR, C, "::1", 80, "", 0, 3},
		{"v6 just outside the /32", "app", "", RR, C, "2001:db9::1", 80, "", 0, -1},
		{"v6 web as server: role mismatch", "app", "", RR, S, "2001:db8::1", 80, "", 0, -1},
		{"v4 private 192.168", "app", "", RR, C, "192.168.1.1", 80, "", 0, 4},
		{"v4 private 172.16/12 edge", "app", "", RR, S, "172.31.255.255", 1, "", 0, 4},
		{"v4 just past 172.16/12", "app", "", RR, C, "172.32.0.1", 1, "", 0, -1},
		{"v4-mapped peer hits a v4 rule", "app", "", RR, C, "::ffff:192.168.5.5", 80, "", 0, 4},
		{"v4-mapped peer hits psql rule", "psql", "", RR, C, "::ffff:10.0.0.1", 5432, "", 0, 0},
		/* first match wins */
		{"curl anywhere", "curl", "", RR, C, "8.8.8.8", 80, "", 0, 5},
		{"curl to a private peer: earlier rule", "curl", "", RR, C, "192.168.0.1", 80, "", 0, 4},
		{"ssh port", "app", "", RR, C, "8.8.8.8", 22, "", 0, 6},
		{"curl to ssh: curl comes first", "curl", "", RR, C, "8.8.8.8", 22, "", 0, 5},
		{"psql to ssh: falls through to ssh", "psql", "", RR, C, "10.0.0.1", 22, "", 0, 6},
		/* local criteria */
		{"local fd00::/8", "app", "", RRL, S, "2001:db8::5", 5555, "fd00::1", 1234, 7},
		{"admin port on loopback", "app", "", RRL, S, "8.8.8.8", 1, "127.0.0.1", 9000, 2},
		{"admin port, wrong local port", "app", "", RRL, C, "8.8.8.8", 1, "127.0.0.2", 9001, -1},
		{"admin port off loopback", "app", "", RRL, C, "8.8.8.8", 1, "10.0.0.1", 9000, -1},
		{"local unknown: local rules fail", "app", "", RR, S, "1.2.3.4", 80, "", 0, -1},
		{"local unknown, fd00 rule fails", "app", "", RR, C, "8.8.8.8", 9000, "", 0, -1},
		/* bind time: role and remote not known yet, so ignored */
		{"bind: server range, role ignored", "app", "", BIND, 0, "", 0, "0.0.0.0", 8050, 1},
		{"bind: admin port", "app", "", BIND, 0, "", 0, "127.0.0.1", 9000, 2},
		{"bind: remote criteria ignored", "app", "", BIND, 0, "", 0, "10.0.0.1", 9000, 3},
		{"bind: psql rule's remote ignored", "psql", "", BIND, 0, "", 0, "10.0.0.1", 9000, 0},
		/* role unknown but remote known */
		{"role unknown, v6 web", "app", "", TD_K_REMOTE | TD_K_LOCAL, 0, "::1", 443, "10.0.0.1", 1, 3},
	};

	return cr_make_param_array(struct row, rows, sizeof(rows) / sizeof(rows[0]));
}

static void fill_addr(struct td_addr *out, const char *ip, uint16_t port)
{
	if (strchr(ip, ':')) {
		struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(port)};

		cr_assert(eq(int, inet_pton(AF_INET6, ip, &sa.sin6_addr), 1), "%s", ip);
		cr_assert(eq(int, td_addr_from_sockaddr(out, (struct sockaddr *)&sa, sizeof(sa)), 0));
	} else {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

		cr_assert(eq(int, inet_pton(AF_INET, ip, &sa.sin_addr), 1), "%s", ip);
		cr_assert(eq(int, td_addr_from_sockaddr(out, (struct sockaddr *)&sa, sizeof(sa)), 0));
	}
}

ParameterizedTest(struct row *r, policy, decide)
{
	struct td_policy p;
	struct td_cfg_error err;
	struct td_match_ctx ctx;
	int got;

	cr_assert(eq(int, td_policy_parse_text(&p, policy_text, sizeof(policy_text) - 1,
					       "decide", &err), 0),
		  "%s", err.msg);
	cr_assert(eq(u32, p.n_rules, 8));
	td_policy_bind_program(&p, r->prog[0] ? r->prog : NULL, r->exe[0] ? r->exe : NULL);
	memset(&ctx, 0, sizeof(ctx));
	ctx.known = r->known;
	ctx.role = r->role;
	if (r->known & TD_K_REMOTE)
		fill_addr(&ctx.remote, r->remote, r->rport);
	if (r->known & TD_K_LOCAL)
		fill_addr(&ctx.local, r->local, r->lport);
	got = td_policy_decide(&p, &ctx);
	cr_expect(eq(int, got, r->expect), "%s: got rule %d (%s), want %d", r->what, got,
		  got >= 0 ? p.rules[got].name : "none", r->expect);
	td_policy_free(&p);
}

/* A rule with no criteria matches every socket, even one known nothing of. */
Test(policy, empty_match_matches_all)
{
	struct td_policy p;
	struct td_cfg_error err;
	struct td_match_ctx ctx = {0};
	static const char text[] = "rules = ( { match = { }; close = \"graceful\"; } );";

	cr_assert(eq(int, td_policy_parse_text(&p, text, sizeof(text) - 1, "t",
					       &err), 0));
	cr_assert(eq(int, td_policy_decide(&p, &ctx), 0));
	ctx.known = RR;
	ctx.role = TD_ROLE_SERVER;
	fill_addr(&ctx.remote, "203.0.113.9", 4242);
	cr_assert(eq(int, td_policy_decide(&p, &ctx), 0));
	td_policy_free(&p);
}

Test(policy, no_rules_decides_nothing)
{
	struct td_policy p;
	struct td_cfg_error err;
	struct td_match_ctx ctx = {.known = RR, .role = TD_ROLE_CLIENT};

	cr_assert(eq(int, td_policy_parse_text(&p, "version = 1;", 12, "t",
					       &err), 0));
	fill_addr(&ctx.remote, "10.0.0.1", 80);
	cr_assert(eq(int, td_policy_decide(&p, &ctx), -1));
	td_policy_free(&p);
}

/* Until a program is bound, the parser leaves every rule eligible. */
Test(policy, program_rules_eligible_before_binding)
{
	struct td_policy p;
	struct td_cfg_error err;
	struct td_match_ctx ctx = {.known = RR, .role = TD_ROLE_CLIENT};
	static const char text[] = "rules = ( { match = { program = \"nginx\"; }; } );";

	cr_assert(eq(int, td_policy_parse_text(&p, text, sizeof(text) - 1, "t",
					       &err), 0));
	cr_assert(eq(int, p.rules[0].program_ok, true));
	fill_addr(&ctx.remote, "10.0.0.1", 80);
	cr_assert(eq(int, td_policy_decide(&p, &ctx), 0));
	td_policy_bind_program(&p, "curl", "curl");
	cr_assert(eq(int, td_policy_decide(&p, &ctx), -1));
	td_policy_bind_program(&p, "nginx", NULL);
	cr_assert(eq(int, td_policy_decide(&p, &ctx), 0));
	td_policy_free(&p);
}
