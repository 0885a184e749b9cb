/*
 * Unit tests for the policy parser (shim/core/config.c), its canonical
 * printer (shim/core/config_text.c) and the safe file reader.  Paths are
 * relative to the repository root, where the tests run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "teardown/config.h"
#include "teardown/event.h"
#include "teardown/fault.h"

#define GOOD "tests/unit/fixtures/good/"

static struct td_policy pol;
static struct td_cfg_error err;

static void policy_fini(void)
{
	td_policy_free(&pol);
}

/* Load a file that must be valid, failing with the parser's message. */
static void load_ok(const char *path)
{
	char line[sizeof(err.file) + sizeof(err.msg) + 32];
	int rc = td_policy_load_file(&pol, path, false, &err);

	td_cfg_error_format(&err, line, sizeof(line));
	cr_assert(eq(int, rc, 0), "%s", line);
}

static int parse(const char *text)
{
	return td_policy_parse_text(&pol, text, strlen(text), "policy.conf",
				    &err);
}

static void assert_cidr(const struct td_cidr *c, int family, const char *addr,
			unsigned prefix)
{
	uint8_t want[16] = {0};

	cr_assert(eq(int, inet_pton(family, addr, want), 1), "bad test address %s", addr);
	cr_assert(eq(int, c->family, family), "family of %s", addr);
	cr_assert(eq(u32, c->prefix, prefix), "prefix of %s", addr);
	cr_assert(eq(int, memcmp(c->addr, want, family == AF_INET ? 4 : 16), 0),
		  "bytes of %s", addr);
}

static void assert_range(const struct td_portrange *r, unsigned lo, unsigned hi)
{
	cr_assert(eq(u32, r->lo, lo));
	cr_assert(eq(u32, r->hi, hi));
}

static void assert_prob(const struct td_prob *pr, double p)
{
	struct td_prob want;

	td_prob_set(&want, p);
	cr_assert(eq(dbl, pr->p, p));
	cr_assert(eq(u64, pr->thr, want.thr));
	cr_assert(eq(int, pr->always, want.always));
}

/* A rule as the parser leaves it when the policy says nothing. */
static void assert_default_actions(const struct td_rule *r)
{
	cr_assert(eq(int, r->close, TD_CLOSE_PASS));
	cr_assert(eq(u32, r->drain_timeout_ms, TD_DEFAULT_DRAIN_TIMEOUT_MS));
	cr_assert(eq(int, r->shutdown, TD_SHUT_PASS));
	cr_assert(eq(int, r->reuseaddr, false));
	cr_assert(eq(i32, r->fin_timeout_s, -1));
	cr_assert(eq(int, r->log, true));
	cr_assert(eq(u32, r->leak_after_s, 0));
	cr_assert(eq(int, r->has_fault, false));
	cr_assert(eq(u32, r->fault.connect_timeout_ms, TD_DEFAULT_CONNECT_TIMEOUT_MS));
	cr_assert(eq(int, r->program_ok, true));
}

/* --- good fixtures, field by field -------------------------------------- */

Test(config, full_example, .fini = policy_fini)
{
	const struct td_rule *r;
	const struct td_fault *f;

	load_ok(GOOD "full.conf");
	cr_assert(eq(int, pol.version, 1));
	cr_assert(eq(int, pol.log_target, TD_LOG_STDERR));
	cr_assert(eq(int, pol.log_format, TD_FMT_TEXT));
	cr_assert(eq(int, pol.on_error, TD_ONERR_PASS));
	cr_assert(eq(str, pol.source, GOOD "full.conf"));
	cr_assert(eq(u32, pol.n_rules, 1));
	r = &pol.rules[0];
	cr_assert(eq(str, (char *)r->name, "legacy-db"));
	cr_assert(eq(int, r->line, 6));
	cr_assert(eq(str, r->program, "psql*"));
	cr_assert(eq(int, r->role, TD_ROLE_CLIENT));
	cr_assert(eq(u32, r->n_remote, 2));
	assert_cidr(&r->remote[0], AF_INET, "10.0.0.0", 8);
	assert_cidr(&r->remote[1], AF_INET6, "::1", 128);
	cr_assert(eq(u32, r->n_local, 0));
	cr_assert(eq(u32, r->n_remote_port, 1));
	assert_range(&r->remote_port[0], 5432, 5432);
	cr_assert(eq(u32, r->n_local_port, 2));
	assert_range(&r->local_port[0], 8080, 8080);
	assert_range(&r->local_port[1], 9000, 9099);
	cr_assert(eq(int, r->close, TD_CLOSE_ABORT));
	cr_assert(eq(u32, r->drain_timeout_ms, 2000));
	cr_assert(eq(int, r->shutdown, TD_SHUT_HALF));
	cr_assert(eq(int, r->reuseaddr, true));
	cr_assert(eq(i32, r->fin_timeout_s, 5));
	cr_assert(eq(int, r->log, true));
	cr_assert(eq(u32, r->leak_after_s, 30));
	cr_assert(eq(int, r->has_fault, true));
	f = &r->fault;
	assert_prob(&f->rst, 0.25);
	cr_assert(eq(u32, f->rst_after_ms, 500));
	cr_assert(eq(u64, f->rst_after_bytes, 4096));
	assert_prob(&f->connect_refuse, 0.1);
	assert_prob(&f->connect_timeout, 0.05);
	cr_assert(eq(u32, f->connect_timeout_ms, 3000));
	cr_assert(eq(u32, f->connect_delay_ms, 200));
	cr_assert(eq(u32, f->close_delay_ms, 100));
	cr_assert(eq(u64, f->seed, 42));
	cr_assert(eq(int, f->has_seed, true));
	cr_assert(eq(int, r->program_ok, true));
	cr_assert(eq(int, pol.uses_local, true));
	cr_assert(eq(int, pol.any_fault, true));
	cr_assert(eq(int, pol.any_bytes_fault, true));
	cr_assert(eq(int, pol.any_leak, true));
}

Test(config, minimal, .fini = policy_fini)
{
	load_ok(GOOD "minimal.conf");
	cr_assert(eq(int, pol.version, 1));
	cr_assert(eq(u32, pol.n_rules, 0));
	cr_assert(eq(ptr, pol.rules, NULL));
	cr_assert(eq(int, pol.log_target, TD_LOG_STDERR));
	cr_assert(eq(int, pol.log_format, TD_FMT_TEXT));
	cr_assert(eq(int, pol.on_error, TD_ONERR_PASS));
	cr_assert(eq(int, pol.uses_local, false));
	cr_assert(eq(int, pol.any_fault, false));
	cr_assert(eq(int, pol.any_leak, false));
}

Test(config, empty_text_is_a_valid_policy, .fini = policy_fini)
{
	cr_assert(eq(int, parse(""), 0));
	cr_assert(eq(u32, pol.n_rules, 0));
	cr_assert(eq(int, parse("rules = ( );"), 0));
	cr_assert(eq(u32, pol.n_rules, 0));
}

Test(config, comments_and_default_names, .fini = policy_fini)
{
	const struct td_rule *r;

	load_ok(GOOD "comments.conf");
	cr_assert(eq(int, pol.on_error, TD_ONERR_EXIT));
	cr_assert(eq(u32, pol.n_rules, 2));
	r = &pol.rules[0];
	cr_assert(eq(str, (char *)r->name, "web"));
	cr_assert(eq(int, r->line, 10));
	cr_assert(eq(int, r->close, TD_CLOSE_GRACEFUL));
	cr_assert(eq(u32, r->n_remote_port, 1));
	assert_range(&r->remote_port[0], 80, 80);
	cr_assert(eq(ptr, r->program, NULL));
	r = &pol.rules[1];
	cr_assert(eq(str, (char *)r->name, "rule#2"));
	cr_assert(eq(int, r->line, 12));
	cr_assert(eq(int, r->close, TD_CLOSE_DRAIN));
	cr_assert(eq(u32, r->drain_timeout_ms, 750));
	cr_assert(eq(int, r->log, false));
	cr_assert(eq(u32, r->n_remote + r->n_local + r->n_remote_port + r->n_local_port, 0));
}

Test(config, ipv6_blocks, .fini = policy_fini)
{
	const struct td_rule *r;

	load_ok(GOOD "ipv6.conf");
	cr_assert(eq(u32, pol.n_rules, 2));
	r = &pol.rules[0];
	cr_assert(eq(u32, r->n_remote, 3));
	assert_cidr(&r->remote[0], AF_INET6, "2001:db8::", 32);
	assert_cidr(&r->remote[1], AF_INET6, "fe80::", 10);
	assert_cidr(&r->remote[2], AF_INET6, "::1", 128);
	cr_assert(eq(u32, r->n_local, 1));
	/* host bits are cleared: 2001:db8:0:1::5/64 is stored as its block */
	assert_cidr(&r->local[0], AF_INET6, "2001:db8:0:1::", 64);
	cr_assert(eq(int, r->close, TD_CLOSE_ABORT));
	/* an IPv4-mapped block is kept as the IPv4 block it names */
	r = &pol.rules[1];
	cr_assert(eq(u32, r->n_remote, 1));
	assert_cidr(&r->remote[0], AF_INET, "192.168.0.0", 16);
	cr_assert(eq(int, pol.uses_local, true));
}

Test(config, lists_and_arrays, .fini = policy_fini)
{
	const struct td_rule *r;

	load_ok(GOOD "lists.conf");
	cr_assert(eq(u32, pol.n_rules, 3));
	r = &pol.rules[0];
	cr_assert(eq(u32, r->n_remote, 1));
	assert_cidr(&r->remote[0], AF_INET, "192.0.2.1", 32);
	cr_assert(eq(u32, r->n_remote_port, 1));
	assert_range(&r->remote_port[0], 443, 443);
	r = &pol.rules[1];
	cr_assert(eq(u32, r->n_remote, 2));
	assert_cidr(&r->remote[0], AF_INET, "192.0.2.0", 24);
	assert_cidr(&r->remote[1], AF_INET, "198.51.100.0", 24);
	cr_assert(eq(u32, r->n_remote_port, 2));
	assert_range(&r->remote_port[0], 80, 80);
	assert_range(&r->remote_port[1], 8080, 8080);
	r = &pol.rules[2];
	cr_assert(eq(u32, r->n_local, 2));
	assert_cidr(&r->local[0], AF_INET, "127.0.0.1", 32);
	assert_cidr(&r->local[1], AF_INET6, "::1", 128);
	cr_assert(eq(u32, r->n_local_port, 3));
	assert_range(&r->local_port[0], 8000, 8099);
	assert_range(&r->local_port[1], 9000, 9000);
	assert_range(&r->local_port[2], 9100, 9100);
	assert_default_actions(r);
}

Test(config, port_forms, .fini = policy_fini)
{
	const struct td_rule *r = NULL;

	load_ok(GOOD "ports.conf");
	cr_assert(eq(u32, pol.n_rules, 7));
	r = pol.rules;
	assert_range(&r[0].remote_port[0], 1, 1);
	assert_range(&r[1].remote_port[0], 65535, 65535);
	assert_range(&r[2].remote_port[0], 1024, 2048);
	assert_range(&r[3].local_port[0], 7, 7);
	cr_assert(eq(u32, r[4].n_local_port, 2));
	assert_range(&r[4].local_port[0], 22, 22);
	assert_range(&r[4].local_port[1], 6000, 6063);
	cr_assert(eq(u32, r[5].n_local_port, 3));
	assert_range(&r[5].local_port[0], 25, 25);
	assert_range(&r[5].local_port[1], 465, 465);
	assert_range(&r[5].local_port[2], 587, 588);
	cr_assert(eq(u32, r[5].n_remote_port, 2));
	assert_range(&r[5].remote_port[1], 1, 65535);
	assert_range(&r[6].remote_port[0], 80, 80);
}

Test(config, fault_groups, .fini = policy_fini)
{
	const struct td_rule *r;

	load_ok(GOOD "faults.conf");
	cr_assert(eq(u32, pol.n_rules, 4));
	r = &pol.rules[0];
	cr_assert(eq(int, r->has_fault, true));
	assert_prob(&r->fault.rst, 0.5);
	assert_prob(&r->fault.connect_refuse, 0.2);
	assert_prob(&r->fault.connect_timeout, 0.3);
	cr_assert(eq(u32, r->fault.connect_timeout_ms, 1500));
	cr_assert(eq(u64, r->fault.seed, 7));
	cr_assert(eq(int, r->fault.has_seed, true));
	cr_assert(eq(u64, r->fault.rst_after_bytes, 0));
	/* integer 1 is "always", kept apart from rounding */
	r = &pol.rules[1];
	cr_assert(eq(int, r->fault.rst.always, true));
	cr_assert(eq(dbl, r->fault.rst.p, 1.0));
	cr_assert(eq(u64, r->fault.rst_after_bytes, 5000000000ull));
	cr_assert(eq(u64, r->fault.seed, 9000000000ull));
	assert_prob(&r->fault.connect_refuse, 0.0);
	cr_assert(eq(u64, r->fault.connect_refuse.thr, 0));
	r = &pol.rules[2];
	cr_assert(eq(int, r->has_fault, true));
	cr_assert(eq(u32, r->fault.connect_delay_ms, 0));
	cr_assert(eq(u32, r->fault.close_delay_ms, 600000));
	cr_assert(eq(int, r->fault.has_seed, false));
	cr_assert(eq(u32, r->fault.connect_timeout_ms, TD_DEFAULT_CONNECT_TIMEOUT_MS));
	/* fault = {} injects nothing */
	assert_default_actions(&pol.rules[3]);
	cr_assert(eq(int, pol.any_fault, true));
	cr_assert(eq(int, pol.any_bytes_fault, true));
}

Test(config, log_json_to_file, .fini = policy_fini)
{
	load_ok(GOOD "log-json.conf");
	cr_assert(eq(int, pol.log_target, TD_LOG_FILE));
	cr_assert(eq(str, pol.log_path, "/var/log/teardown/audit.jsonl"));
	cr_assert(eq(int, pol.log_format, TD_FMT_JSON));
	cr_assert(eq(int, pol.on_error, TD_ONERR_EXIT));
	cr_assert(eq(u32, pol.n_rules, 1));
	cr_assert(eq(str, (char *)pol.rules[0].name, "observe"));
	assert_default_actions(&pol.rules[0]);
}

Test(config, journal_target_and_facility, .fini = policy_fini)
{
	char *text;

	cr_assert(eq(int, parse("version = 1;\nlog = { target = \"journal\"; facility = \"local3\"; };\n"), 0),
		  "%s", err.msg);
	cr_assert(eq(int, pol.log_target, TD_LOG_JOURNAL));
	cr_assert(eq(int, pol.log_facility, 19));
	text = td_policy_to_text(&pol);
	cr_assert(not(eq(ptr, strstr(text, "target = \"journal\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "facility = \"local3\";"), NULL)), "%s", text);
	free(text);
	td_policy_free(&pol);
	memset(&pol, 0, sizeof(pol));
	/* the default facility is daemon, spelled out in canonical form */
	cr_assert(eq(int, parse("version = 1;\nlog = { target = \"syslog\"; };\n"), 0));
	cr_assert(eq(int, pol.log_facility, 0));
	text = td_policy_to_text(&pol);
	cr_assert(not(eq(ptr, strstr(text, "facility = \"daemon\";"), NULL)), "%s", text);
	free(text);
}

Test(config, syslog_and_server_rule, .fini = policy_fini)
{
	const struct td_rule *r;

	load_ok(GOOD "syslog.conf");
	cr_assert(eq(int, pol.log_target, TD_LOG_SYSLOG));
	cr_assert(eq(int, pol.log_format, TD_FMT_TEXT));
	cr_assert(eq(str, pol.log_path, ""));
	r = &pol.rules[0];
	cr_assert(eq(str, (char *)r->name, "server side"));
	cr_assert(eq(str, r->program, "nginx"));
	cr_assert(eq(int, r->role, TD_ROLE_SERVER));
	assert_range(&r->local_port[0], 8443, 8443);
	cr_assert(eq(int, r->close, TD_CLOSE_DRAIN));
	cr_assert(eq(int, r->shutdown, TD_SHUT_SKIP));
	cr_assert(eq(int, r->reuseaddr, true));
	cr_assert(eq(i32, r->fin_timeout_s, 3600));
	cr_assert(eq(u32, r->leak_after_s, 86400));
	cr_assert(eq(int, pol.any_leak, true));
	cr_assert(eq(int, pol.any_fault, false));
}

/* The text is exactly len bytes: what follows must not be read. */
Test(config, text_need_not_be_nul_terminated, .fini = policy_fini)
{
	static const char src[] = "rules = ( { name = \"x\"; close = \"abort\"; } );";
	size_t len = sizeof(src) - 1;
	char *exact = malloc(len);

	cr_assert(not(eq(ptr, exact, NULL)));
	memcpy(exact, src, len); /* no NUL: ASan would see a read past it */
	cr_assert(eq(int, td_policy_parse_text(&pol, exact, len, "env",
					       &err), 0));
	free(exact);
	cr_assert(eq(u32, pol.n_rules, 1));
	cr_assert(eq(int, pol.rules[0].close, TD_CLOSE_ABORT));
	cr_assert(eq(str, pol.source, "env"));
	/* a prefix of a valid text is parsed as that prefix only */
	td_policy_free(&pol);
	cr_assert(eq(int, td_policy_parse_text(&pol, "version = 1; garbage", 12, "env",
					       &err), 0));
}

Test(config, oversized_text_is_refused, .fini = policy_fini)
{
	size_t len = TD_POLICY_MAX_BYTES + 1;
	char *big = malloc(len);

	cr_assert(not(eq(ptr, big, NULL)));
	memset(big, ' ', len);
	cr_assert(eq(int, td_policy_parse_text(&pol, big, len, "env",
					       &err), -EINVAL));
	free(big);
	cr_assert(not(eq(ptr, strstr(err.msg, "1 MiB"), NULL)), "%s", err.msg);
}

/* --- malformed policies -------------------------------------------------- */

struct bad_case {
	char text[400];
	size_t len; /* 0: strlen(text) */
	int line;
	char msg[112];
};

ParameterizedTestParameters(config, malformed)
{
	static struct bad_case cases[] = {
		{"version = 1;\nbogus = 2;\n", 0, 2, "unknown key \"bogus\" (known: version, log"},
		{"rules = (\n { name = \"a\";\n   colse = \"abort\"; }\n);", 0, 3,
		 "rules[0]: unknown key \"colse\" (known: name, match, close,"},
		{"rules = ( {\n match = { prog = \"x\"; }; } );", 0, 2,
		 "rules[0].match: unknown key \"prog\""},
		{"rules = ( { fault = {\n rst = 0.1;\n reset = 1; }; } );", 0, 3,
		 "rules[0].fault: unknown key \"reset\""},
		{"log = {\n file = \"/x\"; };", 0, 2, "log: unknown key \"file\" (known: target, format, facility)"},
		{"log = {\n facility = \"kern\"; };", 0, 2,
		 "log.facility: \"kern\" is not a syslog facility (daemon, user, local0..local7, ...)"},
		{"log = { facility = 3; };", 0, 1, "log.facility: expected a string, got an integer"},
		{"rules = ( { drain_timeout_ms = \"100\"; } );", 0, 1,
		 "rules[0].drain_timeout_ms: expected an integer, got a string"},
		{"rules = ( {\n close = 1; } );", 0, 2, "rules[0].close: expected a string, got an integer"},
		{"rules = ( { match = ( ); } );", 0, 1, "rules[0].match: expected a group, got a list"},
		{"log = ( );", 0, 1, "log: expected a group, got a list"},
		{"rules = ( { close = \"rst\"; } );", 0, 1,
		 "rules[0].close: bad value \"rst\" (want pass, graceful, drain or abort)"},
		{"rules = ( { match = { role = \"peer\"; }; } );", 0, 1,
		 "rules[0].match.role: bad value \"peer\" (want any, client or server)"},
		{"rules = ( { shutdown = \"full\"; } );", 0, 1, "rules[0].shutdown: bad value \"full\""},
		{"on_error = \"abort\";", 0, 1, "on_error: bad value \"abort\" (want pass or exit)"},
		{"log = { format = \"xml\"; };", 0, 1, "log.format: bad value \"xml\""},
		{"rules = ( { match = {\n remote = [\"10.0.0.1\",\n \"10.0.0.300\"]; }; } );", 0, 3,
		 "rules[0].match.remote: bad address \"10.0.0.300\""},
		{"rules = ( { match = { local = \"10.0.0.0/33\"; }; } );", 0, 1,
		 "rules[0].match.local: bad prefix length in \"10.0.0.0/33\""},
		{"rules = ( { match = { remote = \"2001:db8::/129\"; }; } );", 0, 1,
		 "rules[0].match.remote: bad prefix length"},
		{"rules = ( { match = { remote = [ ]; }; } );", 0, 1, "rules[0].match.remote: empty list"},
		{"rules = ( { match = { remote = 10; }; } );", 0, 1,
		 "rules[0].match.remote: expected an address string"},
		{"rules = ( { match = { remote_port = 0; }; } );", 0, 1,
		 "rules[0].match.remote_port: port 0 is out of range (want 1..65535)"},
		{"rules = ( { match = { local_port = 70000; }; } );", 0, 1,
		 "rules[0].match.local_port: port 70000 is out of range"},
		{"rules = ( { match = { remote_port = \"0\"; }; } );", 0, 1,
		 "rules[0].match.remote_port: bad port \"0\""},
		{"rules = ( {\n\n match = { remote_port = \"90-80\"; }; } );", 0, 3,
		 "rules[0].match.remote_port: bad port range \"90-80\" (want N or A-B with 1 <= A <= B <= 65535)"},
		{"rules = ( { match = { remote_port = \"80-\"; }; } );", 0, 1,
		 "rules[0].match.remote_port: bad port range \"80-\""},
		{"rules = ( { match = { local_port = ( ); }; } );", 0, 1,
		 "rules[0].match.local_port: empty list"},
		{"rules = ( { match = { program = \"\"; }; } );", 0, 1,
		 "rules[0].match.program: empty program glob"},
		{"rules = ( { fault = { rst = 1.5; }; } );", 0, 1,
		 "rules[0].fault.rst: probability 1.5 is out of range (want 0..1)"},
		{"rules = ( { fault = {\n connect_refuse = -0.1; }; } );", 0, 2,
		 "rules[0].fault.connect_refuse: probability -0.1 is out of range"},
		{"rules = ( { fault = { rst = 2; }; } );", 0, 1, "rules[0].fault.rst: probability 2 is out of range"},
		{"rules = ( { fault = { rst = \"half\"; }; } );", 0, 1,
		 "rules[0].fault.rst: expected a number, got a string"},
		{"rules = ( {\n fault = {\n connect_refuse = 0.6;\n connect_timeout = 0.5; }; } );", 0, 2,
		 "rules[0].fault: connect_refuse + connect_timeout = 1.1 exceeds 1"},
		{"rules = ( { fault = { seed = -1; }; } );", 0, 1, "rules[0].fault.seed: -1 is out of range"},
		{"rules = ( { fault = { rst_after_ms = 0; }; } );", 0, 1,
		 "rules[0].fault.rst_after_ms: 0 is out of range (want 1..86400000)"},
		{"rules = ( { fault = {\n when = \"3..2\"; }; } );", 0, 2,
		 "rules[0].fault.when: bad position \"3..2\" (want N, N+, N..M or N+S, counting from 1)"},
		{"rules = ( { fault = { when = 3; }; } );", 0, 1,
		 "rules[0].fault.when: expected a string, got an integer"},
		{"rules = ( {\n fault = { rst_after_bytes = 10;\n fin_after_bytes = 20; }; } );", 0, 2,
		 "rules[0].fault: rst_after_bytes and fin_after_bytes cannot both be set"},
		{"rules = ( { fault = {\n rst_after_bytes = 5000000000; }; } );", 0, 2,
		 "rst_after_bytes: integer 5000000000 does not fit in 32 bits (append L"},
		{"rules = ( { fault = { seed = 0x100000005; }; } );", 0, 1,
		 "seed: integer 0x100000005 does not fit in 32 bits"},
		{"rules = ( { name = \"a\"; },\n { name = \"b\"; },\n { name = \"a\"; } );", 0, 3,
		 "rules[2].name: duplicate rule name \"a\" (rules[0] has it too)"},
		{"rules = ( { },\n { name = \"rule#1\"; } );", 0, 2,
		 "rules[1].name: duplicate rule name \"rule#1\""},
		{"rules = ( { name = \"\"; } );", 0, 1, "rules[0].name: empty rule name"},
		{"rules = ( { name = \"a-name-that-is-much-too-long-for-the-fixed-size-rule-name-field-x\"; } );",
		 0, 1, "rules[0].name: name \"a-name-that-is-much-too-long-for-the-fixed-size-\"... is longer than 63 bytes"},
		{"version = 1;\nversion2 = 1;", 0, 2, "unknown key \"version2\""},
		{"# comment\nversion = 2;", 0, 2, "version: unsupported version 2 (want 1)"},
		{"version = \"1\";", 0, 1, "version: expected an integer, got a string"},
		{"log = { target = \"audit.log\"; };", 0, 1,
		 "log.target: \"audit.log\" is not \"stderr\", \"syslog\", \"journal\" or an absolute path"},
		{"rules = { };", 0, 1, "rules: expected a list, got a group"},
		{"rules = ( 5 );", 0, 1, "rules[0]: expected a group, got an integer"},
		{"rules = ( { fin_timeout_s = 0; } );", 0, 1,
		 "rules[0].fin_timeout_s: 0 is out of range (want 1..3600)"},
		{"rules = ( { leak_after_s = 86401; } );", 0, 1, "rules[0].leak_after_s: 86401 is out of range"},
		{"rules = ( { drain_timeout_ms = 0; } );", 0, 1, "rules[0].drain_timeout_ms: 0 is out of range"},
		{"rules = ( { reuseaddr = \"yes\"; } );", 0, 1, "rules[0].reuseaddr: expected a boolean, got a string"},
		/* libconfig's own verdict, on libconfig's line */
		{"version = 1\nrules = ( { } { } );\n", 0, 2, "syntax error"},
		{"version = 1;\nversion = 1;\n", 0, 2, "duplicate setting name"},
		{"rules = ( { } );\n\n  @include \"/etc/passwd\"\n", 0, 3, "@include is not allowed in a policy"},
		{"# a directory include makes libconfig 1.5 call exit()\n@include \"/tmp\"\n", 0, 2,
		 "@include is not allowed"},
		{"x = {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
		 0, 1, "nesting deeper than 64 levels"},
		{"version = 1;\nrules = ( {\0} );", 29, 2, "embedded NUL byte"},
	};

	return cr_make_param_array(struct bad_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, config, malformed, .fini = policy_fini)
{
	size_t len = c->len ? c->len : strlen(c->text);
	int rc = td_policy_parse_text(&pol, c->text, len, "policy.conf",
				      &err);

	cr_assert(eq(int, rc, -EINVAL), "accepted: %s", c->text);
	cr_assert(eq(str, err.file, "policy.conf"));
	cr_assert(not(eq(ptr, strstr(err.msg, c->msg), NULL)),
		  "message \"%s\" lacks \"%s\"", err.msg, c->msg);
	cr_assert(eq(int, err.line, c->line), "line of \"%s\"", err.msg);
	cr_assert(eq(u32, pol.n_rules, 0));
	cr_assert(eq(ptr, pol.rules, NULL));

	/* one mistake: the all-errors mode finds that one, said the same way */
	struct td_cfg_error all[4];

	cr_assert(eq(int, td_policy_parse_all(&pol, c->text, len, "policy.conf", all, 4), 1),
		  "%s", c->text);
	cr_assert(eq(str, all[0].msg, err.msg));
	cr_assert(eq(int, all[0].line, err.line));
	cr_assert(eq(str, all[0].file, "policy.conf"));
	cr_assert(eq(ptr, pol.rules, NULL));
}

/* Every mistake of a file, in line order; reading goes on with the next
 * key and the next rule, and the first error is what the default mode
 * reports. */
Test(config, all_errors, .fini = policy_fini)
{
	static const char text[] =
		"version = 1;\n"				     /* 1 */
		"log = { format = \"xml\"; target = \"x\"; };\n" /* 2 */
		"rules = (\n"					     /* 3 */
		"  { name = \"a\"; close = \"abrot\";\n"	     /* 4 */
		"    drain_timeout_ms = 0; },\n"		     /* 5 */
		"  { name = \"b\"; match = { role = \"clint\"; remote_port = \"9-1\"; };\n" /* 6 */
		"    fault = { rst = 2.0; connect_refuse = 0.6; connect_timeout = 0.6; }; },\n" /* 7 */
		"  { name = \"a\"; bogus = 1; },\n"		     /* 8 */
		"  { name = \"ok\"; close = \"drain\"; }\n"	     /* 9 */
		");\n"
		"on_error = \"sometimes\";\n";			     /* 11 */
	static const struct {
		int line;
		const char *msg;
	} want[] = {
		{2, "log.format: bad value \"xml\""},
		{2, "log.target: \"x\" is not"},
		{4, "rules[0].close: bad value \"abrot\""},
		{5, "rules[0].drain_timeout_ms: 0 is out of range"},
		{6, "rules[1].match.role: bad value \"clint\""},
		{6, "rules[1].match.remote_port: bad port range \"9-1\""},
		{7, "rules[1].fault.rst: probability 2 is out of range"},
		{7, "rules[1].fault: connect_refuse + connect_timeout = 1.2 exceeds 1"},
		{8, "rules[2]: unknown key \"bogus\""},
		{8, "rules[2].name: duplicate rule name \"a\" (rules[0] has it too)"},
		{11, "on_error: bad value \"sometimes\""},
	};
	size_t nw = sizeof(want) / sizeof(want[0]);
	struct td_cfg_error errs[16], few[3];
	int n = td_policy_parse_all(&pol, text, strlen(text), "p.conf", errs, 16);

	cr_assert(eq(int, n, (int)nw));
	for (size_t i = 0; i < nw; i++) {
		cr_assert(eq(int, errs[i].line, want[i].line), "%zu: %s", i, errs[i].msg);
		cr_assert(not(eq(ptr, strstr(errs[i].msg, want[i].msg), NULL)),
			  "%zu: \"%s\" lacks \"%s\"", i, errs[i].msg, want[i].msg);
	}
	cr_assert(eq(ptr, pol.rules, NULL));
	/* fewer slots than errors: the count is still right */
	cr_assert(eq(int, td_policy_parse_all(&pol, text, strlen(text), "p.conf", few, 3), (int)nw));
	/* the default mode stops at the first (on_error is read first) */
	cr_assert(eq(int, td_policy_parse_text(&pol, text, strlen(text), "p.conf", &err), -EINVAL));
	cr_assert(eq(int, err.line, 11), "%s", err.msg);
}

/* A valid policy: parse_all gives what parse_text gives. */
Test(config, all_errors_on_a_valid_policy, .fini = policy_fini)
{
	static const char text[] = "rules = ( { name = \"x\"; close = \"abort\"; match = "
				   "{ remote_port = (80, \"8000-8099\"); }; } );";
	struct td_cfg_error errs[2];

	cr_assert(eq(int, td_policy_parse_all(&pol, text, strlen(text), "p", errs, 2), 0));
	cr_assert(eq(u32, pol.n_rules, 1));
	cr_assert(eq(int, pol.rules[0].close, TD_CLOSE_ABORT));
	cr_assert(eq(u32, pol.rules[0].n_remote_port, 2));
	cr_assert(eq(int, pol.rules[0].program_ok, 1));
}

Test(config, error_format)
{
	struct td_cfg_error e = {.file = "policy.conf", .line = 3};
	char buf[256];

	snprintf(e.msg, sizeof(e.msg), "rules[1]: unknown key \"colse\"");
	cr_assert(eq(sz, td_cfg_error_format(&e, buf, sizeof(buf)), strlen(buf)));
	cr_assert(eq(str, buf, "policy.conf:3: rules[1]: unknown key \"colse\""));
	e.line = 0;
	snprintf(e.msg, sizeof(e.msg), "is a directory, not a regular file");
	td_cfg_error_format(&e, buf, sizeof(buf));
	cr_assert(eq(str, buf, "policy.conf: is a directory, not a regular file"));
	td_cfg_error_format(&e, buf, 8);
	cr_assert(eq(str, buf, "policy."));
}

/* on_error = "exit" must hold even when a later key is wrong. */
Test(config, on_error_survives_a_later_error, .fini = policy_fini)
{
	int rc = parse("version = 1;\non_error = \"exit\";\nrules = ( { close = \"bogus\"; } );\n");

	cr_assert(eq(int, rc, -EINVAL));
	cr_assert(eq(int, pol.on_error, TD_ONERR_EXIT));
	cr_assert(eq(int, err.line, 3));
	/* ...also when on_error comes after the bad key */
	rc = parse("rules = ( { close = \"bogus\"; } );\non_error = \"exit\";\n");
	cr_assert(eq(int, rc, -EINVAL));
	cr_assert(eq(int, pol.on_error, TD_ONERR_EXIT));
	/* text that does not parse at all gives pass */
	rc = parse("on_error = \"exit\";\nrules = ( ;\n");
	cr_assert(eq(int, rc, -EINVAL));
	cr_assert(eq(int, pol.on_error, TD_ONERR_PASS));
}

/* --- td_policy_read_file ------------------------------------------------- */

static char tmpdir[64];

static void tmp_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/td-config-XXXXXX");
	cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tmp_fini(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert(fd >= 0);
	cr_assert(eq(sz, (size_t)write(fd, data, len), len));
	cr_assert(eq(int, fchmod(fd, mode), 0));
	close(fd);
}

static int read_file(const char *path, bool privileged, char **text, size_t *len)
{
	return td_policy_read_file(path, privileged, text, len, &err);
}

Test(config, read_file_missing, .init = tmp_init, .fini = tmp_fini)
{
	char path[128], *text = NULL;
	size_t len;

	tmp_path(path, sizeof(path), "nope.conf");
	cr_assert(eq(int, read_file(path, false, &text, &len), -ENOENT));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(eq(str, err.file, path));
	cr_assert(eq(int, err.line, 0));
	cr_assert(not(eq(ptr, strstr(err.msg, "cannot open"), NULL)), "%s", err.msg);
}

Test(config, read_file_directory, .init = tmp_init, .fini = tmp_fini)
{
	char *text = NULL;
	size_t len;

	cr_assert(eq(int, read_file(tmpdir, false, &text, &len), -EISDIR));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(not(eq(ptr, strstr(err.msg, "is a directory"), NULL)), "%s", err.msg);
}

/* A FIFO with no writer would block a plain open() forever. */
Test(config, read_file_fifo_does_not_hang, .init = tmp_init, .fini = tmp_fini, .timeout = 5)
{
	char path[128], *text = NULL;
	size_t len;

	tmp_path(path, sizeof(path), "fifo");
	cr_assert(eq(int, mkfifo(path, 0600), 0));
	cr_assert(eq(int, read_file(path, false, &text, &len), -EINVAL));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(not(eq(ptr, strstr(err.msg, "a FIFO, not a regular file"), NULL)),
		  "%s", err.msg);
}

Test(config, read_file_device_is_refused, .timeout = 5)
{
	char *text = NULL;
	size_t len;

	cr_assert(eq(int, read_file("/dev/null", false, &text, &len), -EINVAL));
	cr_assert(not(eq(ptr, strstr(err.msg, "character device"), NULL)), "%s", err.msg);
}

Test(config, read_file_symlink_is_refused, .init = tmp_init, .fini = tmp_fini)
{
	char path[128], link[128], *text = NULL;
	size_t len;

	tmp_path(path, sizeof(path), "real.conf");
	tmp_path(link, sizeof(link), "link.conf");
	write_file(path, "version = 1;\n", 13, 0644);
	cr_assert(eq(int, symlink(path, link), 0));
	cr_assert(eq(int, read_file(link, false, &text, &len), -ELOOP));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(not(eq(ptr, strstr(err.msg, "is a symbolic link"), NULL)), "%s", err.msg);
}

Test(config, read_file_size_limit, .init = tmp_init, .fini = tmp_fini)
{
	char path[128], *text = NULL, *data;
	size_t len = 0;

	data = malloc(TD_POLICY_MAX_BYTES + 1);
	cr_assert(not(eq(ptr, data, NULL)));
	memset(data, '\n', TD_POLICY_MAX_BYTES + 1);
	tmp_path(path, sizeof(path), "big.conf");
	write_file(path, data, TD_POLICY_MAX_BYTES + 1, 0644);
	cr_assert(eq(int, read_file(path, false, &text, &len), -EFBIG));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(not(eq(ptr, strstr(err.msg, "larger than 1 MiB"), NULL)), "%s", err.msg);
	/* exactly 1 MiB is fine, and so is parsing it */
	write_file(path, data, TD_POLICY_MAX_BYTES, 0644);
	free(data);
	cr_assert(eq(int, read_file(path, false, &text, &len), 0));
	cr_assert(eq(sz, len, (size_t)TD_POLICY_MAX_BYTES));
	cr_assert(eq(int, text[len], '\0'));
	cr_assert(eq(int, td_policy_parse_text(&pol, text, len, path, &err), 0));
	free(text);
	td_policy_free(&pol);
}

Test(config, read_file_privileged_refuses_world_writable, .init = tmp_init, .fini = tmp_fini)
{
	char path[128], *text = NULL;
	size_t len;

	tmp_path(path, sizeof(path), "ww.conf");
	write_file(path, "version = 1;\n", 13, 0666);
	cr_assert(eq(int, read_file(path, true, &text, &len), -EPERM));
	cr_assert(eq(ptr, text, NULL));
	cr_assert(not(eq(ptr, strstr(err.msg, "writable by group or others; refusing it in a privileged process"), NULL)),
		  "%s", err.msg);
	/* group-writable is refused too */
	cr_assert(eq(int, chmod(path, 0620), 0));
	cr_assert(eq(int, read_file(path, true, &text, &len), -EPERM));
	/* an unprivileged process reads what it can */
	cr_assert(eq(int, chmod(path, 0666), 0));
	cr_assert(eq(int, read_file(path, false, &text, &len), 0));
	cr_assert(eq(str, text, "version = 1;\n"));
	free(text);
}

Test(config, read_file_privileged_accepts_0644_of_root_or_self, .init = tmp_init, .fini = tmp_fini)
{
	static const char body[] = "version = 1;\nrules = ( { close = \"abort\"; } );\n";
	char path[128], *text = NULL;
	struct stat st;
	size_t len = 0;

	tmp_path(path, sizeof(path), "ok.conf");
	write_file(path, body, sizeof(body) - 1, 0644);
	cr_assert(eq(int, stat(path, &st), 0));
	cr_assert(eq(int, st.st_uid == 0 || st.st_uid == geteuid(), 1));
	cr_assert(eq(int, read_file(path, true, &text, &len), 0));
	cr_assert(eq(sz, len, sizeof(body) - 1));
	cr_assert(eq(str, text, (char *)body));
	free(text);
	cr_assert(eq(int, td_policy_load_file(&pol, path, true, &err), 0));
	cr_assert(eq(u32, pol.n_rules, 1));
	td_policy_free(&pol);
}

Test(config, read_file_privileged_refuses_a_strangers_file, .init = tmp_init, .fini = tmp_fini)
{
	char path[128], *text = NULL;
	size_t len;

	if (geteuid() != 0)
		cr_skip_test("needs root to give the file away");
	tmp_path(path, sizeof(path), "theirs.conf");
	write_file(path, "version = 1;\n", 13, 0644);
	cr_assert(eq(int, chown(path, 12345, 12345), 0));
	cr_assert(eq(int, read_file(path, true, &text, &len), -EPERM));
	cr_assert(not(eq(ptr, strstr(err.msg, "owned by uid 12345"), NULL)), "%s", err.msg);
	cr_assert(eq(int, read_file(path, false, &text, &len), 0));
	free(text);
}

Test(config, read_file_load_reports_read_errors, .init = tmp_init, .fini = tmp_fini)
{
	char path[128];

	tmp_path(path, sizeof(path), "absent.conf");
	cr_assert(eq(int, td_policy_load_file(&pol, path, false, &err),
		     -ENOENT));
	cr_assert(eq(u32, pol.n_rules, 0));
	cr_assert(eq(int, pol.on_error, TD_ONERR_PASS));
}

/* --- canonical text ------------------------------------------------------ */

static void assert_rule_eq(const struct td_rule *a, const struct td_rule *b,
			   const char *what)
{
	cr_assert(eq(str, (char *)a->name, (char *)b->name), "%s", what);
	cr_assert(eq(int, a->program == NULL, b->program == NULL), "%s: program", what);
	if (a->program)
		cr_assert(eq(str, a->program, b->program), "%s", what);
	cr_assert(eq(int, a->role, b->role), "%s: role", what);
	cr_assert(eq(u32, a->n_remote, b->n_remote), "%s: remote", what);
	cr_assert(eq(u32, a->n_local, b->n_local), "%s: local", what);
	cr_assert(eq(u32, a->n_remote_port, b->n_remote_port), "%s: remote_port", what);
	cr_assert(eq(u32, a->n_local_port, b->n_local_port), "%s: local_port", what);
	if (a->n_remote)
		cr_assert(eq(int, memcmp(a->remote, b->remote, a->n_remote * sizeof(*a->remote)), 0),
			  "%s: remote", what);
	if (a->n_local)
		cr_assert(eq(int, memcmp(a->local, b->local, a->n_local * sizeof(*a->local)), 0),
			  "%s: local", what);
	if (a->n_remote_port)
		cr_assert(eq(int, memcmp(a->remote_port, b->remote_port,
					 a->n_remote_port * sizeof(*a->remote_port)), 0),
			  "%s: remote_port", what);
	if (a->n_local_port)
		cr_assert(eq(int, memcmp(a->local_port, b->local_port,
					 a->n_local_port * sizeof(*a->local_port)), 0),
			  "%s: local_port", what);
	cr_assert(eq(int, a->close, b->close), "%s: close", what);
	cr_assert(eq(u32, a->drain_timeout_ms, b->drain_timeout_ms), "%s", what);
	cr_assert(eq(int, a->shutdown, b->shutdown), "%s", what);
	cr_assert(eq(int, a->reuseaddr, b->reuseaddr), "%s", what);
	cr_assert(eq(i32, a->fin_timeout_s, b->fin_timeout_s), "%s", what);
	cr_assert(eq(int, a->log, b->log), "%s", what);
	cr_assert(eq(u32, a->leak_after_s, b->leak_after_s), "%s", what);
	cr_assert(eq(int, a->has_fault, b->has_fault), "%s: has_fault", what);
	cr_assert(eq(dbl, a->fault.rst.p, b->fault.rst.p), "%s: rst", what);
	cr_assert(eq(u64, a->fault.rst.thr, b->fault.rst.thr), "%s: rst", what);
	cr_assert(eq(int, a->fault.rst.always, b->fault.rst.always), "%s", what);
	cr_assert(eq(u32, a->fault.rst_after_ms, b->fault.rst_after_ms), "%s", what);
	cr_assert(eq(u64, a->fault.rst_after_bytes, b->fault.rst_after_bytes), "%s", what);
	cr_assert(eq(u64, a->fault.connect_refuse.thr, b->fault.connect_refuse.thr), "%s", what);
	cr_assert(eq(dbl, a->fault.connect_refuse.p, b->fault.connect_refuse.p), "%s", what);
	cr_assert(eq(u64, a->fault.connect_timeout.thr, b->fault.connect_timeout.thr), "%s", what);
	cr_assert(eq(dbl, a->fault.connect_timeout.p, b->fault.connect_timeout.p), "%s", what);
	cr_assert(eq(u32, a->fault.connect_timeout_ms, b->fault.connect_timeout_ms), "%s", what);
	cr_assert(eq(u32, a->fault.connect_delay_ms, b->fault.connect_delay_ms), "%s", what);
	cr_assert(eq(u32, a->fault.close_delay_ms, b->fault.close_delay_ms), "%s", what);
	cr_assert(eq(u64, a->fault.seed, b->fault.seed), "%s: seed", what);
	cr_assert(eq(int, a->fault.has_seed, b->fault.has_seed), "%s", what);
	cr_assert(eq(int, a->program_ok, b->program_ok), "%s", what);
}

static void assert_policy_eq(const struct td_policy *a, const struct td_policy *b,
			     const char *what)
{
	char rule[128];

	cr_assert(eq(int, a->version, b->version), "%s", what);
	cr_assert(eq(int, a->log_target, b->log_target), "%s: log.target", what);
	cr_assert(eq(str, (char *)a->log_path, (char *)b->log_path), "%s", what);
	cr_assert(eq(int, a->log_format, b->log_format), "%s: log.format", what);
	/* 0 is the default, daemon, which canonical form spells out */
	cr_assert(eq(int, a->log_facility ? a->log_facility : TD_FACILITY_DEFAULT,
		     b->log_facility ? b->log_facility : TD_FACILITY_DEFAULT), "%s: log.facility", what);
	cr_assert(eq(int, a->on_error, b->on_error), "%s: on_error", what);
	cr_assert(eq(u32, a->n_rules, b->n_rules), "%s: rules", what);
	for (uint32_t i = 0; i < a->n_rules; i++) {
		snprintf(rule, sizeof(rule), "%s rule %u", what, i + 1);
		assert_rule_eq(&a->rules[i], &b->rules[i], rule);
	}
	cr_assert(eq(int, a->uses_local, b->uses_local), "%s", what);
	cr_assert(eq(int, a->any_fault, b->any_fault), "%s", what);
	cr_assert(eq(int, a->any_bytes_fault, b->any_bytes_fault), "%s", what);
	cr_assert(eq(int, a->any_leak, b->any_leak), "%s", what);
}

/* Print a parsed policy, parse the print, compare: the printer's promise. */
static void round_trip(const struct td_policy *p, const char *what)
{
	struct td_policy back;
	char line[sizeof(err.file) + sizeof(err.msg) + 32];
	char *text = td_policy_to_text(p), *again;
	int rc;

	cr_assert(not(eq(ptr, text, NULL)), "%s", what);
	rc = td_policy_parse_text(&back, text, strlen(text), "canonical",
				  &err);
	td_cfg_error_format(&err, line, sizeof(line));
	cr_assert(eq(int, rc, 0), "%s: %s\n%s", what, line, text);
	assert_policy_eq(p, &back, what);
	free(text);
	/* printing canonical text gives the same text again */
	text = td_policy_to_text(&back);
	cr_assert(not(eq(ptr, text, NULL)));
	td_policy_free(&back);
	cr_assert(eq(int, td_policy_parse_text(&back, text, strlen(text), "canonical",
					       &err), 0));
	again = td_policy_to_text(&back);
	cr_assert(not(eq(ptr, again, NULL)));
	cr_assert(eq(str, again, text), "%s: canonical text is not a fixed point", what);
	free(again);
	free(text);
	td_policy_free(&back);
}

static size_t round_trip_glob(const char *pattern)
{
	glob_t g;
	size_t n;

	cr_assert(eq(int, glob(pattern, 0, NULL, &g), 0), "no files match %s", pattern);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		load_ok(g.gl_pathv[i]);
		round_trip(&pol, g.gl_pathv[i]);
		td_policy_free(&pol);
	}
	n = g.gl_pathc;
	globfree(&g);
	return n;
}

Test(config, round_trip_good_fixtures)
{
	cr_assert(ge(sz, round_trip_glob(GOOD "*.conf"), 9));
}

Test(config, round_trip_awkward_values, .fini = policy_fini)
{
	int rc = parse("log = { target = \"/var/log/a \\\"quoted\\\" \\\\ dir/x.log\"; format = \"json\"; };\n"
		       "rules = (\n"
		       "  { name = \"tab\\there \\\"q\\\" \\\\ nl\\n\"; match = { program = \"*[ab]?\"; };\n"
		       "    fault = { rst = 0.1234567890123456789; connect_refuse = 1e-9;\n"
		       "              connect_timeout = 0.3333333333333333; seed = 9223372036854775807L;\n"
		       "              rst_after_bytes = 4611686018427387904L; }; },\n"
		       "  { fault = { rst = 0; connect_refuse = 1; }; }\n"
		       ");\n");

	cr_assert(eq(int, rc, 0), "%s", err.msg);
	cr_assert(eq(str, (char *)pol.rules[0].name, "tab\there \"q\" \\ nl\n"));
	cr_assert(eq(str, pol.log_path, "/var/log/a \"quoted\" \\ dir/x.log"));
	cr_assert(eq(u64, pol.rules[0].fault.seed, 9223372036854775807ull));
	cr_assert(eq(u64, pol.rules[0].fault.rst_after_bytes, 1ull << 62));
	round_trip(&pol, "awkward");
}

Test(config, canonical_text_spells_out_defaults, .fini = policy_fini)
{
	char *text;

	cr_assert(eq(int, parse("rules = ( { match = { remote = \"10.1.0.0/16\"; }; } );"), 0));
	text = td_policy_to_text(&pol);
	cr_assert(not(eq(ptr, text, NULL)));
	cr_assert(not(eq(ptr, strstr(text, "version = 1;"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "target = \"stderr\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "on_error = \"pass\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "name = \"rule#1\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "role = \"any\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "remote = [ \"10.1.0.0/16\" ];"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "close = \"pass\";"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "drain_timeout_ms = 5000;"), NULL)), "%s", text);
	cr_assert(not(eq(ptr, strstr(text, "log = true;"), NULL)), "%s", text);
	free(text);
}

/* Every commented policy shipped in config/ must be valid as shipped. */
Test(config, shipped_policies_parse, .fini = policy_fini)
{
	cr_assert(ge(sz, round_trip_glob("config/*.conf"), 5));
}
