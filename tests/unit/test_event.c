/* teardown: unit tests for the audit line formatter. */
#include <arpa/inet.h>
#include <errno.h>
#include <locale.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/new/assert.h>

#include "../../cli/lib/logparse.h"
#include "teardown/event.h"
#include "teardown/fields.h"

#include "event_fixture.h"

/* Format into a buffer with a canary after cap; checks the canary. */
static size_t td_t_fmt(char *buf, size_t cap, const struct td_event *ev,
		       int format)
{
	size_t n;

	memset(buf, '#', cap + 16);
	n = td_event_format(buf, cap, ev, format);
	for (size_t i = cap; i < cap + 16; i++)
		cr_assert(eq(chr, buf[i], '#'), "wrote past cap at %zu", i);
	return n;
}

#define TD_T_HEAD                                                            \
	"{\"v\":1,\"ts\":\"2026-11-21T07:48:00.123456Z\",\"host\":\"web1\","   \
	"\"pid\":1234,\"tid\":1236,\"uid\":33,\"prog\":\"prog\",\"event\":\"%s\",\"fd\":5,\"role\":\"client\","      \
	"\"local\":\"127.0.0.1:40000\",\"remote\":\"127.0.0.1:8080\","          \
	"\"rule\":\"legacy\",\"action\":\"abort\""

#define TD_T_OUTCOME                                                         \
	",\"state\":\"ESTABLISHED\",\"closer\":\"active\",\"unread\":3,"        \
	"\"unsent\":4,\"app_linger\":\"1,0\",\"wire\":\"RST\",\"why\":\"policy\"," \
	"\"time_wait\":false,\"lost\":4,\"lost_in_flight\":6,\"age_ms\":12,"     \
	"\"bytes_in\":5,"                                                       \
	"\"bytes_out\":300"

static const struct {
	int type;
	const char *tail;
} td_t_golden[] = {
	{TD_EV_CONNECT, ",\"conn\":7,\"error\":\"ECONNREFUSED\"}\n"},
	{TD_EV_ACCEPT, ",\"conn\":7}\n"},
	{TD_EV_BIND, "}\n"},
	{TD_EV_LINGER, ",\"app_linger\":\"1,0\"}\n"},
	{TD_EV_SHUTDOWN, ",\"how\":\"SHUT_RD\",\"sent\":\"SHUT_WR\"}\n"},
	{TD_EV_CLOSE, TD_T_OUTCOME ",\"error\":\"ECONNREFUSED\"}\n"},
	{TD_EV_FAULT,
	 ",\"fault\":\"rst\",\"conn\":7,\"run_conn\":70,\"seed\":18446744073709551615}\n"},
	{TD_EV_LEAK,
	 ",\"state\":\"ESTABLISHED\",\"age_ms\":12,\"close_wait_ms\":29000}\n"},
	{TD_EV_EXIT, TD_T_OUTCOME "}\n"},
	{TD_EV_DROPPED,
	 ",\"dropped\":42,\"target\":\"/var/log/td.jsonl\",\"error\":\"ECONNREFUSED\"}\n"},
	{TD_EV_POLICY,
	 ",\"source\":\"/etc/teardown.conf\",\"hash\":\"0123456789abcdef\",\"rules\":3,"
	 "\"applied\":false,\"problem\":\"/etc/teardown.conf:2: syntax error\"}\n"},
	{TD_EV_EXEC, TD_T_OUTCOME "}\n"},
};

#define TD_T_NTYPES (sizeof(td_t_golden) / sizeof(td_t_golden[0]))

Test(event, json_golden_every_type)
{
	cr_assert(eq(sz, TD_T_NTYPES, TD_EV__COUNT));
	for (size_t i = 0; i < TD_T_NTYPES; i++) {
		struct td_event ev = td_t_full(td_t_golden[i].type);
		char buf[TD_EVENT_MAX + 16], want[TD_EVENT_MAX];
		char head[512];
		size_t n;

		/* the head names the event: splice its name in by hand */
		const char *name = td_event_name(td_t_golden[i].type);
		const char *pct = strstr(TD_T_HEAD, "%s");
		size_t pre = (size_t)(pct - TD_T_HEAD);

		memcpy(head, TD_T_HEAD, pre);
		strcpy(head + pre, name);
		strcat(head, pct + 2);
		strcpy(want, head);
		strcat(want, td_t_golden[i].tail);

		n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
		cr_assert(eq(str, buf, want), "event %s", name);
		cr_assert(eq(sz, n, strlen(want)));
	}
}

/* The documented key lists (include/teardown/event.h). */
static const char *const td_t_keys_all[] = {
	"v", "ts", "host", "pid", "tid", "uid", "prog", "event", "fd", "role", "local", "remote",
	"rule", "action", NULL};
static const char *const td_t_keys_outcome[] = {
	"state", "closer", "unread", "unsent", "app_linger", "wire", "why",
	"time_wait", "lost", "lost_in_flight", "age_ms", "bytes_in", "bytes_out", NULL};

static size_t td_t_push(const char **v, size_t n, const char *const *keys)
{
	while (*keys)
		v[n++] = *keys++;
	return n;
}

static size_t td_t_keys_for(int type, const char **v)
{
	size_t n = td_t_push(v, 0, td_t_keys_all);

	switch (type) {
	case TD_EV_CONNECT:
		v[n++] = "conn";
		v[n++] = "error";
		break;
	case TD_EV_ACCEPT:
		v[n++] = "conn";
		break;
	case TD_EV_LINGER:
		v[n++] = "app_linger";
		break;
	case TD_EV_SHUTDOWN:
		v[n++] = "how";
		v[n++] = "sent";
		break;
	case TD_EV_CLOSE:
		n = td_t_push(v, n, td_t_keys_outcome);
		v[n++] = "error";
		break;
	case TD_EV_EXIT:
	case TD_EV_EXEC:
		n = td_t_push(v, n, td_t_keys_outcome);
		break;
	case TD_EV_FAULT:
		v[n++] = "fault";
		v[n++] = "conn";
		v[n++] = "run_conn";
		v[n++] = "seed";
		break;
	case TD_EV_LEAK:
		v[n++] = "state";
		v[n++] = "age_ms";
		v[n++] = "close_wait_ms";
		break;
	case TD_EV_DROPPED:
		v[n++] = "dropped";
		v[n++] = "target";
		v[n++] = "error";
		break;
	case TD_EV_POLICY:
		v[n++] = "source";
		v[n++] = "hash";
		v[n++] = "rules";
		v[n++] = "applied";
		v[n++] = "problem";
		break;
	}
	return n;
}

static void td_t_check_keys(char *line, size_t len, int type)
{
	const char *want[40];
	size_t nwant = td_t_keys_for(type, want);
	struct td_jline jl;

	cr_assert(eq(int, td_jline_parse(&jl, line, len), 0),
		  "not valid JSON: %s", line);
	cr_assert(eq(sz, jl.n, nwant), "%s: key count", td_event_name(type));
	for (size_t k = 0; k < nwant; k++)
		cr_assert(eq(str, (char *)jl.f[k].key, (char *)want[k]),
			  "%s: key %zu", td_event_name(type), k);
}

Test(event, json_keys_in_documented_order)
{
	for (int t = 0; t < TD_EV__COUNT; t++) {
		struct td_event full = td_t_full(t), empty;
		char buf[TD_EVENT_MAX + 16];
		size_t n;

		n = td_t_fmt(buf, TD_EVENT_MAX, &full, TD_FMT_JSON);
		td_t_check_keys(buf, n, t);

		/* the same keys when every value is unknown */
		td_event_init(&empty, t);
		n = td_t_fmt(buf, TD_EVENT_MAX, &empty, TD_FMT_JSON);
		td_t_check_keys(buf, n, t);
	}
}

Test(event, json_parsed_values)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_EVENT_MAX + 16];
	size_t n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	struct td_jline jl;
	const struct td_jfield *f;

	cr_assert(eq(int, td_jline_parse(&jl, buf, n), 0));
	cr_assert(eq(str, (char *)td_jline_str(&jl, "prog"), "prog"));
	cr_assert(eq(str, (char *)td_jline_str(&jl, "wire"), "RST"));
	f = td_jline_get(&jl, "bytes_out");
	cr_assert(eq(int, f->type, TD_J_INT));
	cr_assert(eq(i64, f->i, 300));
	f = td_jline_get(&jl, "time_wait");
	cr_assert(eq(int, f->type, TD_J_BOOL));
	cr_assert(eq(i64, f->i, 0));
}

Test(event, all_unknown_values)
{
	struct td_event ev;
	char buf[TD_EVENT_MAX + 16];

	td_event_init(&ev, TD_EV_CLOSE);
	ev.uid = -1;
	ev.unread = ev.unsent = ev.lost = ev.lost_in_flight = ev.age_ms = -1;
	ev.bytes_in = ev.bytes_out = -1;
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(eq(str, buf,
		     "{\"v\":1,\"ts\":\"1970-01-01T00:00:00.000000Z\",\"host\":null,"
		     "\"pid\":0,\"tid\":0,\"uid\":null,\"prog\":null,\"event\":\"close\",\"fd\":null,"
		     "\"role\":\"unknown\",\"local\":null,\"remote\":null,"
		     "\"rule\":null,\"action\":null,\"state\":null,"
		     "\"closer\":null,\"unread\":null,\"unsent\":null,"
		     "\"app_linger\":null,\"wire\":null,\"why\":null,"
		     "\"time_wait\":null,\"lost\":null,\"lost_in_flight\":null,\"age_ms\":null,"
		     "\"bytes_in\":null,\"bytes_out\":null,\"error\":null}\n"));
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "1970-01-01T00:00:00.000000Z 0/0 - close fd=- role=unknown "
		     "local=- remote=- rule=- action=- state=- closer=- "
		     "unread=- unsent=- app_linger=- wire=- why=- time_wait=- "
		     "lost=- lost_in_flight=- age_ms=- bytes_in=- bytes_out=- error=-\n"));
}

Test(event, text_close_as_documented)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_EVENT_MAX + 16];
	size_t n;

	ev.app_linger_set = false;
	ev.unread = ev.unsent = ev.lost = ev.lost_in_flight = 0;
	ev.err = 0;
	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "2026-11-21T07:48:00.123456Z 1234/1236 prog close fd=5 "
		     "role=client local=127.0.0.1:40000 remote=127.0.0.1:8080 "
		     "rule=legacy action=abort state=ESTABLISHED closer=active "
		     "unread=0 unsent=0 app_linger=- wire=RST why=policy "
		     "time_wait=no lost=0 lost_in_flight=0 age_ms=12 bytes_in=5 bytes_out=300 "
		     "error=-\n"));
	cr_assert(eq(sz, n, strlen(buf)));
}

Test(event, text_other_events)
{
	struct td_event ev = td_t_full(TD_EV_SHUTDOWN);
	char buf[TD_EVENT_MAX + 16];

	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "2026-11-21T07:48:00.123456Z 1234/1236 prog shutdown fd=5 "
		     "role=client local=127.0.0.1:40000 remote=127.0.0.1:8080 "
		     "rule=legacy action=abort how=SHUT_RD sent=SHUT_WR\n"));

	ev = td_t_full(TD_EV_FAULT);
	ev.seed = 42;
	ev.fault = "rst_after_ms";
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "2026-11-21T07:48:00.123456Z 1234/1236 prog fault fd=5 "
		     "role=client local=127.0.0.1:40000 remote=127.0.0.1:8080 "
		     "rule=legacy action=abort fault=rst_after_ms conn=7 run_conn=70 "
		     "seed=42\n"));

	ev = td_t_full(TD_EV_EXIT);
	ev.time_wait = 1;
	ev.wire = TD_WIRE_FIN;
	ev.why = TD_WHY_CLOSE;
	ev.closer = TD_CLOSER_PASSIVE;
	ev.state = 8;
	ev.rule = "my rule";
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "2026-11-21T07:48:00.123456Z 1234/1236 prog exit fd=5 "
		     "role=client local=127.0.0.1:40000 remote=127.0.0.1:8080 "
		     "rule=\"my rule\" action=abort state=CLOSE_WAIT "
		     "closer=passive unread=3 unsent=4 app_linger=1,0 wire=FIN "
		     "why=close time_wait=yes lost=4 lost_in_flight=6 age_ms=12 bytes_in=5 "
		     "bytes_out=300\n"));

	ev = td_t_full(TD_EV_CONNECT);
	ev.conn = 0;
	ev.err = 0;
	ev.fd = -1;
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf,
		     "2026-11-21T07:48:00.123456Z 1234/1236 prog connect fd=- "
		     "role=client local=127.0.0.1:40000 remote=127.0.0.1:8080 "
		     "rule=legacy action=abort conn=- error=-\n"));
}

Test(event, ipv6_and_unknown_addresses)
{
	struct td_event ev = td_t_full(TD_EV_ACCEPT);
	char buf[TD_EVENT_MAX + 16];

	ev.local.family = AF_INET6;
	memset(ev.local.addr, 0, 16);
	ev.local.addr[15] = 1;
	ev.local.port = 80;
	memset(&ev.remote, 0, sizeof(ev.remote));
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(not(eq(ptr, strstr(buf, ",\"local\":\"[::1]:80\",\"remote\":null,"),
			 NULL)), "%s", buf);
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(not(eq(ptr, strstr(buf, " local=[::1]:80 remote=- "), NULL)),
		  "%s", buf);

	inet_pton(AF_INET6, "2001:db8::42", ev.remote.addr);
	ev.remote.family = AF_INET6;
	ev.remote.port = 65535;
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(not(eq(ptr, strstr(buf, "\"remote\":\"[2001:db8::42]:65535\""),
			 NULL)), "%s", buf);
}

Test(event, errors_by_name_or_number)
{
	struct td_event ev = td_t_full(TD_EV_CONNECT);
	char buf[TD_EVENT_MAX + 16];

	ev.err = 9999;
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(not(eq(ptr, strstr(buf, ",\"error\":\"E9999\"}\n"), NULL)),
		  "%s", buf);
	ev.err = -ETIMEDOUT; /* the negative-errno convention reads the same */
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(not(eq(ptr, strstr(buf, " error=ETIMEDOUT\n"), NULL)), "%s",
		  buf);
	ev.err = INT32_MIN;
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(not(eq(ptr, strstr(buf, ",\"error\":\"E2147483648\"}\n"), NULL)),
		  "%s", buf);
}

/* Count the newlines of s: a line must have exactly one, at the end. */
static size_t td_t_newlines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(event, log_injection_escaped)
{
	static const char evil[] = "evil\nprog \"x\"\x01\xff";
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_EVENT_MAX + 16];
	struct td_jline jl;
	size_t n;

	ev.prog = evil;
	ev.rule = evil;
	ev.action = "a\r\nb";
	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(eq(sz, td_t_newlines(buf), 1));
	cr_assert(eq(chr, buf[n - 1], '\n'));
	cr_assert(not(eq(ptr, strstr(buf,
		     ",\"prog\":\"evil\\nprog \\\"x\\\"\\u0001\\u00ff\","), NULL)),
		  "%s", buf);
	cr_assert(not(eq(ptr, strstr(buf, ",\"action\":\"a\\r\\nb\""), NULL)));
	cr_assert(eq(int, td_jline_parse(&jl, buf, n), 0));
	cr_assert(eq(sz, jl.n, 28), "no key was forged");

	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(sz, td_t_newlines(buf), 1));
	cr_assert(eq(chr, buf[n - 1], '\n'));
	{
		static const char want[] =
			"1234/1236 \"evil\\nprog \\\"x\\\"\\x01\\xff\" close ";

		cr_assert(eq(int, strncmp(buf + 28, want, strlen(want)), 0),
			  "%s", buf);
	}
	cr_assert(not(eq(ptr, strstr(buf, " rule=\"evil\\nprog \\\"x\\\"\\x01\\xff\" "), NULL)),
		  "%s", buf);
}

static char *td_t_repeat(const char *unit, size_t times)
{
	size_t u = strlen(unit);
	char *s = malloc(u * times + 1);

	cr_assert(not(eq(ptr, s, NULL)));
	for (size_t i = 0; i < times; i++)
		memcpy(s + i * u, unit, u);
	s[u * times] = '\0';
	return s;
}

Test(event, long_strings_are_cut)
{
	char *big = td_t_repeat("A", 5000);
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_EVENT_MAX + 16];
	struct td_jline jl;
	size_t n;

	ev.prog = big;
	ev.rule = big;
	ev.action = big;
	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(gt(sz, n, 0));
	cr_assert(lt(sz, n, TD_EVENT_MAX));
	cr_assert(eq(str, buf + n - 2, "}\n"));
	cr_assert(eq(int, td_jline_parse(&jl, buf, n), 0));
	cr_assert(eq(sz, strlen(td_jline_str(&jl, "prog")), 128));
	cr_assert(eq(sz, strlen(td_jline_str(&jl, "rule")), 128));
	cr_assert(eq(sz, strlen(td_jline_str(&jl, "action")), 32));
	cr_assert(eq(int, strncmp(td_jline_str(&jl, "prog"), big, 128), 0));
	cr_assert(eq(str, (char *)td_jline_str(&jl, "error"), "ECONNREFUSED"),
		  "the keys after the cut strings are all there");

	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(gt(sz, n, 0));
	cr_assert(lt(sz, n, TD_EVENT_MAX));
	cr_assert(eq(str, buf + n - strlen(" error=ECONNREFUSED\n"),
		     " error=ECONNREFUSED\n"));
	free(big);
}

Test(event, cuts_fall_on_utf8_boundaries)
{
	char *jp = td_t_repeat("\xe6\x97\xa5", 100); /* 日 x 100 */
	struct td_event ev = td_t_full(TD_EV_ACCEPT);
	char buf[TD_EVENT_MAX + 16];
	struct td_jline jl;
	size_t n;

	ev.prog = jp;
	n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(eq(ptr, strstr(buf, "\\u00"), NULL), "a character was split: %s",
		  buf);
	cr_assert(eq(int, td_jline_parse(&jl, buf, n), 0));
	/* 128 bytes would split the 43rd character: 42 are kept */
	cr_assert(eq(sz, strlen(td_jline_str(&jl, "prog")), 126));
	free(jp);
}

/*
 * The widest line each event can produce: every number at its longest,
 * IPv6 addresses without a zero group, strings that escape sixfold.  It
 * must still fit TD_EVENT_MAX, end properly and parse.
 */
Test(event, worst_case_fits)
{
	char *ctl = td_t_repeat("\x01", 5000);
	char *quote = td_t_repeat("\"", 5000);
	char *mixed = td_t_repeat("\xe6\x97\xa5\x01\xff", 1000);
	char *strs[] = {ctl, quote, mixed};
	int64_t stamps[] = {INT64_MAX, INT64_MIN, -1};
	int32_t errs[] = {EPROTONOSUPPORT, INT32_MIN, ESOCKTNOSUPPORT};
	size_t longest = 0;

	for (int t = 0; t < TD_EV__COUNT; t++) {
		for (size_t si = 0; si < 3; si++) {
			for (size_t ti = 0; ti < 3; ti++) {
				struct td_event ev;
				char buf[TD_EVENT_MAX + 16];
				struct td_jline jl;
				size_t n;

				memset(&ev, 0, sizeof(ev));
				ev.type = (uint8_t)t;
				ev.ts_us = stamps[ti];
				ev.pid = ev.tid = INT32_MIN;
				ev.fd = INT32_MAX;
				ev.role = TD_SOCK_LISTENER;
				ev.prog = ev.rule = ev.action = ev.fault = strs[si];
				ev.host = ev.target = strs[si];
				ev.uid = INT64_MAX;
				ev.dropped = UINT64_MAX;
				ev.local.family = ev.remote.family = AF_INET6;
				memset(ev.local.addr, 0xff, 16);
				memset(ev.remote.addr, 0xff, 16);
				ev.local.port = ev.remote.port = 65535;
				ev.conn = UINT64_MAX;
				ev.seed = UINT64_MAX;
				ev.err = errs[ti];
				ev.app_linger_set = true;
				ev.app_linger_onoff = INT32_MIN;
				ev.app_linger_secs = INT32_MIN;
				ev.how = ev.how_done = SHUT_RDWR;
				ev.state = 12;
				ev.closer = TD_CLOSER_PASSIVE;
				ev.wire = TD_WIRE_NONE;
				ev.why = TD_WHY_UNCONNECTED;
				ev.time_wait = 0;
				ev.unread = ev.unsent = ev.lost = ev.lost_in_flight = INT64_MAX;
				ev.age_ms = ev.bytes_in = ev.bytes_out = INT64_MAX;
				ev.close_wait_ms = INT64_MAX;

				n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
				cr_assert(gt(sz, n, 0), "type %d dropped", t);
				cr_assert(lt(sz, n, TD_EVENT_MAX));
				cr_assert(eq(str, buf + n - 2, "}\n"));
				cr_assert(eq(sz, td_t_newlines(buf), 1));
				cr_assert(eq(int, td_jline_parse(&jl, buf, n), 0),
					  "%s", buf);
				longest = n > longest ? n : longest;

				n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
				cr_assert(gt(sz, n, 0));
				cr_assert(lt(sz, n, TD_EVENT_MAX));
				cr_assert(eq(chr, buf[n - 1], '\n'));
				cr_assert(eq(sz, td_t_newlines(buf), 1));
				longest = n > longest ? n : longest;
			}
		}
	}
	cr_log_info("longest worst-case line: %zu bytes of %d", longest,
		    TD_EVENT_MAX);
	free(ctl);
	free(quote);
	free(mixed);
}

/* With a short buffer: the whole line or nothing, never past cap. */
Test(event, short_buffer_whole_line_or_nothing)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char full[TD_EVENT_MAX + 16], buf[TD_EVENT_MAX + 16];

	for (int fmt = 0; fmt < 2; fmt++) {
		size_t len = td_t_fmt(full, TD_EVENT_MAX, &ev, fmt);

		for (size_t cap = 0; cap <= len + 1; cap++) {
			size_t n = td_t_fmt(buf, cap, &ev, fmt);

			if (cap <= len) {
				cr_assert(eq(sz, n, 0), "cap %zu gave %zu", cap, n);
				if (cap > 0)
					cr_assert(eq(chr, buf[0], '\0'));
			} else {
				cr_assert(eq(sz, n, len));
				cr_assert(eq(str, buf, full));
			}
		}
	}
	cr_assert(eq(sz, td_event_format(NULL, 10, &ev, 0), 0));
	cr_assert(eq(sz, td_event_format(buf, 10, NULL, 0), 0));
}

static void td_t_locale_fini(void)
{
	setlocale(LC_ALL, "C");
}

Test(event, locale_independent, .fini = td_t_locale_fini)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char c_json[TD_EVENT_MAX + 16], c_text[TD_EVENT_MAX + 16];
	char buf[TD_EVENT_MAX + 16];
	const char *used = "de_DE.UTF-8";

	ev.bytes_out = 1234567;
	ev.prog = "caf\xc3\xa9";
	setlocale(LC_ALL, "C");
	td_t_fmt(c_json, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	td_t_fmt(c_text, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	if (setlocale(LC_ALL, used) == NULL) {
		cr_log_info("locale de_DE.UTF-8 is not installed; "
			    "testing under C.UTF-8 instead");
		used = "C.UTF-8";
		cr_assert(not(eq(ptr, setlocale(LC_ALL, used), NULL)),
			  "neither de_DE.UTF-8 nor C.UTF-8 is available");
	}
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);
	cr_assert(eq(str, buf, c_json), "JSON differs under %s", used);
	td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(str, buf, c_text), "text differs under %s", used);
	cr_assert(not(eq(ptr, strstr(buf, " bytes_out=1234567 "), NULL)));
}

Test(event, names)
{
	static const char *const events[] = {"connect", "accept", "bind",
		"linger", "shutdown", "close", "fault", "leak", "exit", "dropped", "policy", "exec"};
	static const char *const whys[] = {NULL, "close", "policy", "linger0",
		"unread-data", "fault", "shared", "reset", "fin-sent",
		"unconnected", "unaccepted", "died", "timeout"};
	static const char *const states[] = {NULL, "ESTABLISHED", "SYN_SENT",
		"SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
		"CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"};

	for (int i = 0; i < TD_EV__COUNT; i++)
		cr_assert(eq(str, (char *)td_event_name(i), (char *)events[i]));
	cr_assert(eq(ptr, (void *)td_event_name(TD_EV__COUNT), NULL));
	cr_assert(eq(ptr, (void *)td_event_name(-1), NULL));
	for (int i = 0; i < TD_WHY__COUNT; i++) {
		if (whys[i] == NULL)
			cr_assert(eq(ptr, (void *)td_why_name(i), NULL));
		else
			cr_assert(eq(str, (char *)td_why_name(i), (char *)whys[i]));
	}
	cr_assert(eq(ptr, (void *)td_why_name(TD_WHY__COUNT), NULL));
	for (int i = 1; i <= 12; i++)
		cr_assert(eq(str, (char *)td_tcp_state_name(i), (char *)states[i]));
	cr_assert(eq(ptr, (void *)td_tcp_state_name(0), NULL));
	cr_assert(eq(ptr, (void *)td_tcp_state_name(13), NULL));
	cr_assert(eq(ptr, (void *)td_tcp_state_name(-1), NULL));

	cr_assert(eq(str, (char *)td_wire_name(TD_WIRE_FIN), "FIN"));
	cr_assert(eq(str, (char *)td_wire_name(TD_WIRE_RST), "RST"));
	cr_assert(eq(str, (char *)td_wire_name(TD_WIRE_NONE), "none"));
	cr_assert(eq(ptr, (void *)td_wire_name(TD_WIRE_UNKNOWN), NULL));
	cr_assert(eq(str, (char *)td_closer_name(TD_CLOSER_ACTIVE), "active"));
	cr_assert(eq(str, (char *)td_closer_name(TD_CLOSER_PASSIVE), "passive"));
	cr_assert(eq(ptr, (void *)td_closer_name(TD_CLOSER_NONE), NULL));
	cr_assert(eq(str, (char *)td_sock_role_name(TD_SOCK_UNKNOWN), "unknown"));
	cr_assert(eq(str, (char *)td_sock_role_name(TD_SOCK_CLIENT), "client"));
	cr_assert(eq(str, (char *)td_sock_role_name(TD_SOCK_SERVER), "server"));
	cr_assert(eq(str, (char *)td_sock_role_name(TD_SOCK_LISTENER), "listener"));
	cr_assert(eq(ptr, (void *)td_sock_role_name(4), NULL));
	cr_assert(eq(str, (char *)td_how_name(SHUT_RD), "SHUT_RD"));
	cr_assert(eq(str, (char *)td_how_name(SHUT_WR), "SHUT_WR"));
	cr_assert(eq(str, (char *)td_how_name(SHUT_RDWR), "SHUT_RDWR"));
	cr_assert(eq(str, (char *)td_how_name(TD_HOW_NONE), "none"));
	cr_assert(eq(str, (char *)td_how_name(TD_HOW_RST), "RST"));
	cr_assert(eq(ptr, (void *)td_how_name(4), NULL));
}

Test(event, errno_names)
{
	static const struct {
		int err;
		const char *name;
	} t[] = {
		{EBADF, "EBADF"}, {EINTR, "EINTR"}, {EIO, "EIO"},
		{ENOTSOCK, "ENOTSOCK"}, {EINVAL, "EINVAL"},
		{ECONNREFUSED, "ECONNREFUSED"}, {ETIMEDOUT, "ETIMEDOUT"},
		{ECONNRESET, "ECONNRESET"}, {EPIPE, "EPIPE"},
		{ENOTCONN, "ENOTCONN"}, {EINPROGRESS, "EINPROGRESS"},
		{EALREADY, "EALREADY"}, {EISCONN, "EISCONN"},
		{EADDRINUSE, "EADDRINUSE"}, {EADDRNOTAVAIL, "EADDRNOTAVAIL"},
		{ENETUNREACH, "ENETUNREACH"}, {EHOSTUNREACH, "EHOSTUNREACH"},
		{ECONNABORTED, "ECONNABORTED"}, {EAGAIN, "EAGAIN"},
		{EWOULDBLOCK, "EAGAIN"}, {EACCES, "EACCES"}, {EPERM, "EPERM"},
		{EAFNOSUPPORT, "EAFNOSUPPORT"},
		{EPROTONOSUPPORT, "EPROTONOSUPPORT"}, {EMFILE, "EMFILE"},
		{ENFILE, "ENFILE"}, {ENOBUFS, "ENOBUFS"}, {ENOMEM, "ENOMEM"},
		{EFAULT, "EFAULT"}, {ENOSYS, "ENOSYS"}, {ENOENT, "ENOENT"},
		{ENOSPC, "ENOSPC"}, {EOPNOTSUPP, "EOPNOTSUPP"},
		{EBUSY, "EBUSY"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert(eq(str, (char *)td_errno_name(t[i].err), (char *)t[i].name));
	cr_assert(eq(ptr, (void *)td_errno_name(0), NULL));
	cr_assert(eq(ptr, (void *)td_errno_name(9999), NULL));
	cr_assert(eq(ptr, (void *)td_errno_name(-1), NULL));
}

/* ---- journald datagrams, severity, facilities ------------------------ */

/* The value of field key in a journal datagram, copied into out. */
static bool td_t_jfield(const char *dgram, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);

	for (const char *l = dgram; *l; ) {
		const char *nl = strchr(l, '\n');

		cr_assert(not(eq(ptr, (void *)nl, NULL)), "field without newline: %s", l);
		if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
			size_t n = (size_t)(nl - l - (ptrdiff_t)kl - 1);

			cr_assert(lt(sz, n, cap));
			memcpy(out, l + kl + 1, n);
			out[n] = '\0';
			return true;
		}
		l = nl + 1;
	}
	return false;
}

Test(event, journal_fields_one_per_key)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_JOURNAL_MAX], v[TD_EVENT_MAX], line[TD_EVENT_MAX];
	size_t n;

	ev.lost = 0;
	ev.remote.family = 0; /* null: no field */
	n = td_event_journal(buf, sizeof(buf), &ev, TD_FMT_TEXT, 19);
	cr_assert(gt(sz, n, 0));
	cr_assert(eq(sz, strlen(buf), n));
	cr_assert(eq(chr, buf[n - 1], '\n'));
	td_event_format(line, sizeof(line), &ev, TD_FMT_TEXT);
	line[strlen(line) - 1] = '\0';
	cr_assert(td_t_jfield(buf, "MESSAGE", v, sizeof(v)));
	cr_assert(eq(str, v, line));
	cr_assert(td_t_jfield(buf, "PRIORITY", v, sizeof(v)));
	cr_assert(eq(str, v, "6"));
	cr_assert(td_t_jfield(buf, "SYSLOG_FACILITY", v, sizeof(v)));
	cr_assert(eq(str, v, "19"));
	cr_assert(td_t_jfield(buf, "SYSLOG_IDENTIFIER", v, sizeof(v)));
	cr_assert(eq(str, v, "teardown"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_EVENT", v, sizeof(v)));
	cr_assert(eq(str, v, "close"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_WIRE", v, sizeof(v)));
	cr_assert(eq(str, v, "RST"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_WHY", v, sizeof(v)));
	cr_assert(eq(str, v, "policy"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_LOCAL", v, sizeof(v)));
	cr_assert(eq(str, v, "127.0.0.1:40000"));
	cr_assert(not(td_t_jfield(buf, "TEARDOWN_REMOTE", v, sizeof(v))));
	cr_assert(td_t_jfield(buf, "TEARDOWN_TIME_WAIT", v, sizeof(v)));
	cr_assert(eq(str, v, "false"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_V", v, sizeof(v)));
	cr_assert(eq(str, v, "1"));
	cr_assert(td_t_jfield(buf, "TEARDOWN_UID", v, sizeof(v)));
	cr_assert(eq(str, v, "33"));
	/* every JSON key that is not null is one TEARDOWN_ field */
	{
		struct td_jline jl;
		size_t fields = 0, nonnull = 0;

		n = td_event_format(line, sizeof(line), &ev, TD_FMT_JSON);
		cr_assert(eq(int, td_jline_parse(&jl, line, n), 0));
		for (size_t i = 0; i < jl.n; i++)
			nonnull += jl.f[i].type != TD_J_NULL;
		for (const char *p = buf; (p = strstr(p, "\nTEARDOWN_")) != NULL; p++)
			fields++;
		cr_assert(eq(sz, fields, nonnull));
	}
	/* format json: MESSAGE is the JSON line */
	n = td_event_journal(buf, sizeof(buf), &ev, TD_FMT_JSON, 0);
	cr_assert(td_t_jfield(buf, "MESSAGE", v, sizeof(v)));
	cr_assert(eq(chr, v[0], '{'));
	cr_assert(td_t_jfield(buf, "SYSLOG_FACILITY", v, sizeof(v)));
	cr_assert(eq(str, v, "3"));
}

Test(event, journal_values_never_hold_a_newline)
{
	static const char evil[] = "evil\nPRIORITY=0 \"q\" \\ \x01\xff\xc3\xa9";
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_JOURNAL_MAX], v[TD_EVENT_MAX];
	size_t n, lines = 0;

	ev.prog = evil;
	n = td_event_journal(buf, sizeof(buf), &ev, TD_FMT_TEXT, 3);
	cr_assert(gt(sz, n, 0));
	for (size_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	/* every line is KEY=value with an upper-case key */
	for (const char *l = buf; *l; l = strchr(l, '\n') + 1) {
		const char *eqp = strchr(l, '=');

		cr_assert(not(eq(ptr, (void *)eqp, NULL)));
		for (const char *c = l; c < eqp; c++) {
			bool ok = (*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9');

			cr_assert(ok, "bad key in %s", l);
		}
	}
	cr_assert(td_t_jfield(buf, "PRIORITY", v, sizeof(v)));
	cr_assert(eq(str, v, "4")); /* RST with lost 4 */
	cr_assert(td_t_jfield(buf, "TEARDOWN_PROG", v, sizeof(v)));
	cr_assert(eq(str, v, "evil\\nPRIORITY=0 \"q\" \\ \\u0001\xc3\xbf\xc3\xa9"), "%s", v);
	/* a buffer too short: nothing */
	cr_assert(eq(sz, td_event_journal(buf, 200, &ev, TD_FMT_TEXT, 3), 0));
	(void)lines;
}

Test(event, journal_worst_case_fits)
{
	char *quote = td_t_repeat("\"", 5000);
	struct td_event ev = td_t_full(TD_EV_CLOSE);
	char buf[TD_JOURNAL_MAX];

	ev.prog = ev.rule = ev.action = ev.host = quote;
	ev.local.family = ev.remote.family = AF_INET6;
	memset(ev.local.addr, 0xff, 16);
	memset(ev.remote.addr, 0xff, 16);
	for (int t = 0; t < TD_EV__COUNT; t++) {
		ev.type = (uint8_t)t;
		cr_assert(gt(sz, td_event_journal(buf, sizeof(buf), &ev, TD_FMT_TEXT, 3), 0));
		cr_assert(gt(sz, td_event_journal(buf, sizeof(buf), &ev, TD_FMT_JSON, 3), 0));
	}
	free(quote);
}

Test(event, severity)
{
	struct td_event ev = td_t_full(TD_EV_CLOSE);

	cr_assert(eq(int, td_event_severity(&ev), 4)); /* RST, lost 4 */
	ev.lost = 0;
	cr_assert(eq(int, td_event_severity(&ev), 6));
	ev.lost = 9;
	ev.wire = TD_WIRE_FIN;
	cr_assert(eq(int, td_event_severity(&ev), 6));
	ev.type = TD_EV_LEAK;
	cr_assert(eq(int, td_event_severity(&ev), 4));
	ev.type = TD_EV_DROPPED;
	cr_assert(eq(int, td_event_severity(&ev), 4));
	ev.type = TD_EV_CONNECT;
	cr_assert(eq(int, td_event_severity(&ev), 6));
}

Test(event, facilities)
{
	cr_assert(eq(int, td_log_facility_parse("daemon"), 3));
	cr_assert(eq(int, td_log_facility_parse("user"), 1));
	cr_assert(eq(int, td_log_facility_parse("local0"), 16));
	cr_assert(eq(int, td_log_facility_parse("local7"), 23));
	cr_assert(eq(int, td_log_facility_parse("authpriv"), 10));
	cr_assert(eq(int, td_log_facility_parse("kern"), -1));
	cr_assert(eq(int, td_log_facility_parse("local8"), -1));
	cr_assert(eq(int, td_log_facility_parse(""), -1));
	cr_assert(eq(int, td_log_facility_parse(NULL), -1));
	cr_assert(eq(str, (char *)td_log_facility_name(19), "local3"));
	cr_assert(eq(ptr, (void *)td_log_facility_name(0), NULL));
	cr_assert(eq(ptr, (void *)td_log_facility_name(12), NULL));
	cr_assert(eq(ptr, (void *)td_log_facility_name(24), NULL));
}

/*
 * include/teardown/fields.h is the one list of field names: every field an
 * event of some type writes is in it, with the JSON type it is written as,
 * and every field in it is written by some event.
 */
Test(event, fields_table_matches_what_is_written)
{
#define TD_T_FIELD(name, kind) {TD_FN_##name, kind},
	static const struct {
		const char *name;
		enum td_field_kind kind;
	} fields[] = {TD_FIELDS(TD_T_FIELD)};
#undef TD_T_FIELD
	bool seen[sizeof(fields) / sizeof(fields[0])] = {false};

	for (int type = 0; type < TD_EV__COUNT; type++) {
		struct td_event ev = td_t_full(type);
		char buf[TD_EVENT_MAX + 16];
		struct td_jline l;
		size_t n = td_t_fmt(buf, TD_EVENT_MAX, &ev, TD_FMT_JSON);

		cr_assert(gt(sz, n, 0));
		cr_assert(eq(int, td_jline_parse(&l, buf, n - 1), 0), "%s", buf);
		for (size_t k = 0; k < l.n; k++) {
			size_t i = 0;

			while (i < sizeof(fields) / sizeof(fields[0]) &&
			       strcmp(fields[i].name, l.f[k].key) != 0)
				i++;
			cr_assert(lt(sz, i, sizeof(fields) / sizeof(fields[0])),
				  "%s: field %s is not in fields.h", td_event_name(type), l.f[k].key);
			seen[i] = true;
			if (l.f[k].type == TD_J_NULL)
				continue;
			cr_assert(eq(int, fields[i].kind == TD_FK_INT,
				     l.f[k].type == TD_J_INT || l.f[k].type == TD_J_UINT),
				  "%s: %s", td_event_name(type), l.f[k].key);
			cr_assert(eq(int, fields[i].kind == TD_FK_BOOL, l.f[k].type == TD_J_BOOL),
				  "%s: %s", td_event_name(type), l.f[k].key);
		}
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		cr_assert(seen[i], "fields.h names %s, which no event writes", fields[i].name);
}

/*
 * The head's per-process keys, rendered once (td_event_who): the line is
 * the one the event's own fields give, byte for byte, for every type and
 * both formats, with names that need escaping or cutting; and a block
 * rendered for another pid or host string is not used.
 */
Test(event, who_block_writes_the_same_line)
{
	static char long_host[81], long_prog[201];
	const char *hosts[] = {"web1", NULL, "h\"q\\", long_host, "h\xc3\xb4te"};
	const char *progs[] = {"prog", NULL, "a b=c", "x\ny\x01", long_prog, "\xc3\x84-prog"};
	const int32_t pids[] = {1234, 1, 2147483647};
	char want[TD_EVENT_MAX + 16], got[TD_EVENT_MAX + 16];
	struct td_event_who who, other;

	memset(long_host, 'h', sizeof(long_host) - 1);
	memset(long_prog, 'p', sizeof(long_prog) - 1);
	for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
	for (size_t g = 0; g < sizeof(progs) / sizeof(progs[0]); g++)
	for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
		td_event_who_render(&who, hosts[h], pids[i], progs[g]);
		cr_assert(who.ok, "host %zu prog %zu pid %d", h, g, pids[i]);
		td_event_who_render(&other, hosts[h], pids[i] - 1, progs[g]);
		for (int type = 0; type < TD_EV__COUNT; type++)
		for (int fmt = 0; fmt < 2; fmt++) {
			struct td_event ev = td_t_full(type);
			size_t n;

			ev.host = hosts[h];
			ev.prog = progs[g];
			ev.pid = pids[i];
			n = td_t_fmt(want, TD_EVENT_MAX, &ev, fmt);
			cr_assert(gt(sz, n, 0));
			ev.who = &who;
			cr_assert(eq(sz, td_t_fmt(got, TD_EVENT_MAX, &ev, fmt), n));
			cr_assert(eq(str, got, want), "type %d fmt %d host %zu prog %zu", type,
				  fmt, h, g);
			/* a block for another process: its pid is not this line's */
			ev.who = &other;
			cr_assert(eq(sz, td_t_fmt(got, TD_EVENT_MAX, &ev, fmt), n));
			cr_assert(eq(str, got, want));
		}
	}
	/* a block rendered from another string (another address) is not used */
	{
		char copy[] = "Xrog";
		struct td_event ev = td_t_full(TD_EV_CLOSE);

		td_event_who_render(&who, ev.host, ev.pid, copy);
		ev.who = &who;
		td_t_fmt(got, TD_EVENT_MAX, &ev, TD_FMT_JSON);
		cr_assert(not(eq(ptr, strstr(got, "\"prog\":\"prog\""), NULL)), "%s", got);
	}
	{
		char copy[] = "Xeb1";
		struct td_event ev = td_t_full(TD_EV_CLOSE);

		td_event_who_render(&who, copy, ev.pid, ev.prog);
		ev.who = &who;
		td_t_fmt(got, TD_EVENT_MAX, &ev, TD_FMT_JSON);
		cr_assert(not(eq(ptr, strstr(got, "\"host\":\"web1\""), NULL)), "%s", got);
	}
}

/*
 * The connection keys' memo (td_event_memo): a line is the one its own
 * fields give, byte for byte, whether the memo holds its keys, holds
 * another connection's in that slot, or holds them for inputs that differ
 * in any one key; and an entry is taken only where all of them match (an
 * entry's text altered on purpose shows in the next line only then).
 */
Test(event, memo_writes_the_same_line)
{
	static struct td_event_memo memo;
	static char long_rule[60];
	const char *rules[] = {"legacy", NULL, "", "r \"q\"", long_rule, "\xc3\x84"};
	const char *actions[] = {"abort", NULL, "pass"};
	char want[TD_EVENT_MAX + 16], got[TD_EVENT_MAX + 16];
	struct td_event_who who;
	int hits = 0;

	memset(long_rule, 'r', sizeof(long_rule) - 1);
	td_event_who_render(&who, "web1", 1234, "prog");
	who.memo = &memo;
	for (int fmt = 0; fmt < 2; fmt++)
	for (size_t r = 0; r < sizeof(rules) / sizeof(rules[0]); r++)
	for (size_t a = 0; a < sizeof(actions) / sizeof(actions[0]); a++)
	for (int change = 0; change < 9; change++) {
		struct td_event first = td_t_full(TD_EV_ACCEPT), ev;
		struct td_event_memo_ent *e = &memo.e[first.conn % TD_EVENT_MEMO_N];
		size_t n;

		first.rule = rules[r];
		first.action = actions[a];
		first.who = &who;
		td_t_fmt(got, TD_EVENT_MAX, &first, fmt); /* keeps its keys (where they fit) */
		ev = td_t_full(TD_EV_CLOSE);
		ev.rule = rules[r];
		ev.action = actions[a];
		switch (change) {
		case 1: ev.fd = 6; break;
		case 2: ev.role = TD_SOCK_SERVER; break;
		case 3: ev.local.port++; break;
		case 4: ev.remote.addr[3] = 2; break;
		case 5: ev.remote.family = AF_INET6; break;
		case 6: ev.rule = rules[(r + 1) % 6]; break;
		case 7: ev.action = actions[(a + 1) % 3]; break;
		case 8: ev.conn += TD_EVENT_MEMO_N; break; /* another connection, the same keys */
		default: break;
		}
		n = td_t_fmt(want, TD_EVENT_MAX, &ev, fmt);
		cr_assert(gt(sz, n, 0));
		ev.who = &who;
		cr_assert(eq(sz, td_t_fmt(got, TD_EVENT_MAX, &ev, fmt), n));
		cr_assert(eq(str, got, want), "fmt %d rule %zu action %zu change %d", fmt, r, a,
			  change);
		/* the other format's entry is never taken */
		n = td_t_fmt(want, TD_EVENT_MAX, &ev, !fmt);
		if (e->conn != 0 && (change == 0 || change == 8)) {
			cr_assert(eq(int, e->json, fmt != 0));
			ev.who = NULL;
			cr_assert(eq(sz, td_t_fmt(want, TD_EVENT_MAX, &ev, !fmt), n));
			ev.who = &who;
			cr_assert(eq(sz, td_t_fmt(got, TD_EVENT_MAX, &ev, !fmt), n));
			cr_assert(eq(str, got, want));
		}
		/* taken exactly where every input matches: an altered entry shows */
		td_t_fmt(got, TD_EVENT_MAX, &first, fmt);
		if (e->conn == 0)
			continue; /* a string too long to keep: never kept */
		cr_assert(gt(int, e->n, 10));
		e->text[e->n - 1] ^= 1;
		td_t_fmt(got, TD_EVENT_MAX, &ev, fmt);
		ev.who = NULL;
		td_t_fmt(want, TD_EVENT_MAX, &ev, fmt);
		if (change == 0 || change == 8) {
			cr_assert(not(eq(str, got, want)), "change %d: the entry was not taken", change);
			hits++;
		} else {
			cr_assert(eq(str, got, want), "change %d: an entry for other keys was taken",
				  change);
		}
		e->conn = 0;
	}
	cr_assert(gt(int, hits, 0));
	/* a line cut short (cap < TD_EVENT_MAX) neither takes nor keeps one */
	{
		struct td_event ev = td_t_full(TD_EV_CLOSE);
		char small[TD_EVENT_MAX];
		size_t n;

		memset(&memo, 0, sizeof(memo));
		ev.who = &who;
		n = td_t_fmt(small, 600, &ev, TD_FMT_JSON);
		cr_assert(gt(sz, n, 0));
		for (int i = 0; i < TD_EVENT_MEMO_N; i++)
			cr_assert(eq(u64, memo.e[i].conn, 0));
	}
}
