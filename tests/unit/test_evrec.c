/*
 * teardown: unit tests for packed events (shim/core/evrec.c) and their
 * lines out of a spool (shim/core/spool.c): a record formats into exactly
 * the line its event makes, for every type, both formats, with the
 * process's own host and prog left out or carried; a damaged record, one
 * of another layout, and one cut anywhere are refused, never misread; a
 * spool holds records and lines side by side, and names its writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "teardown/evrec.h"
#include "teardown/spool.h"

#include "event_fixture.h"

/* test_event.c's full close, with an IPv6 peer and a rule name that
 * needs escaping. */
static struct td_event td_t_ev(int type)
{
	struct td_event ev = td_t_full(type);

	memset(&ev.remote, 0, sizeof(ev.remote));
	ev.remote.family = AF_INET6;
	ev.remote.port = 8080;
	ev.remote.addr[15] = 1;
	ev.rule = "legacy \"quoted\"\n";
	ev.applied = true;
	return ev;
}

struct td_t_case {
	int type, format;
	bool own;	/* host and prog left out: the writer's */
	bool nulls;	/* every string NULL, host and prog included */
};

ParameterizedTestParameters(evrec, formats_as_its_event)
{
	static struct td_t_case cases[TD_EV__COUNT * 2 * 3];
	size_t n = 0;

	for (int t = 0; t < TD_EV__COUNT; t++)
		for (int f = 0; f < 2; f++)
			for (int k = 0; k < 3; k++)
				cases[n++] = (struct td_t_case){t, f, k == 1, k == 2};
	return cr_make_param_array(struct td_t_case, cases, n);
}

/* A record formats into the very line its event made, byte for byte. */
ParameterizedTest(struct td_t_case *c, evrec, formats_as_its_event)
{
	struct td_event ev = td_t_ev(c->type), back;
	struct td_event_who who;
	char rec[TD_EVREC_MAX], want[TD_EVENT_MAX], got[TD_EVENT_MAX];
	size_t rn, wn, gn;
	int format = -1;

	if (c->nulls)
		ev.host = ev.prog = ev.rule = ev.action = ev.fault = ev.target = ev.source =
			ev.problem = NULL;
	td_event_who_render(&who, ev.host, ev.pid, ev.prog);
	if (c->own)
		ev.who = &who;
	wn = td_event_format(want, sizeof(want), &ev, c->format);
	cr_assert(gt(sz, wn, (size_t)0));

	rn = td_evrec_pack(rec, sizeof(rec), &ev, c->format, c->own);
	cr_assert(gt(sz, rn, (size_t)0));
	cr_assert(eq(u8, (uint8_t)rec[0], TD_EVREC_MAGIC));
	/* an own record carries neither host nor prog */
	if (c->own) {
		cr_assert(eq(ptr, memmem(rec, rn, "web1", 4), NULL));
		cr_assert(eq(ptr, memmem(rec, rn, "prog", 5), NULL));
	}
	cr_assert(eq(int, td_evrec_unpack(rec, rn, &back, &format, &who), 0));
	cr_assert(eq(int, format, c->format));
	/* strings point into the record, not at the event's */
	if (!c->nulls) {
		cr_assert(back.rule >= rec && back.rule < rec + rn);
		cr_assert(eq(str, (char *)back.rule, (char *)ev.rule));
	}
	gn = td_evrec_line(rec, rn, &who, got, sizeof(got));
	cr_assert(eq(sz, gn, wn), "%.*s\n%.*s", (int)gn, got, (int)wn, want);
	cr_assert(eq(int, memcmp(got, want, wn), 0), "%.*s\n%.*s", (int)gn, got, (int)wn, want);
}

/* A record of the writer's own pid, unpacked without a who: host and prog
 * are unknown (null), never garbage; with another pid's who: written out. */
Test(evrec, own_record_without_its_writer)
{
	struct td_event ev = td_t_ev(TD_EV_CLOSE), back;
	struct td_event_who who, other;
	char rec[TD_EVREC_MAX];
	size_t rn;
	int format;

	td_event_who_render(&who, ev.host, ev.pid, ev.prog);
	ev.who = &who;
	rn = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, true);
	cr_assert(eq(int, td_evrec_unpack(rec, rn, &back, &format, NULL), 0));
	cr_assert(eq(ptr, (void *)back.host, NULL));
	cr_assert(eq(ptr, (void *)back.prog, NULL));
	cr_assert(eq(ptr, (void *)back.who, NULL));
	td_event_who_render(&other, "web1", 999, "prog");
	cr_assert(eq(int, td_evrec_unpack(rec, rn, &back, &format, &other), 0));
	cr_assert(eq(ptr, (void *)back.who, NULL)); /* not its pid: keys in full */
	cr_assert(eq(str, (char *)back.prog, "prog"));
}

/* Cut anywhere, grown by a byte, or any byte of its head changed: refused. */
Test(evrec, damaged_records_are_refused)
{
	struct td_event ev = td_t_ev(TD_EV_POLICY), back;
	char rec[TD_EVREC_MAX + 1], bad[TD_EVREC_MAX + 1];
	size_t rn = td_evrec_pack(rec, TD_EVREC_MAX, &ev, TD_FMT_JSON, false);
	int format;

	cr_assert(gt(sz, rn, (size_t)0));
	for (size_t len = 0; len < rn; len++)
		cr_assert(eq(int, td_evrec_unpack(rec, len, &back, &format, NULL), -1),
			  "cut to %zu", len);
	rec[rn] = 'x';
	cr_assert(eq(int, td_evrec_unpack(rec, rn + 1, &back, &format, NULL), -1));
	/* magic, format, mask, layout */
	for (size_t i = 0; i < 8; i++) {
		memcpy(bad, rec, rn);
		bad[i] ^= (char)0x40;
		cr_assert(eq(int, td_evrec_unpack(bad, rn, &back, &format, NULL), -1), "byte %zu",
			  i);
	}
	/* the last string's NUL gone */
	memcpy(bad, rec, rn);
	bad[rn - 1] = 'x';
	cr_assert(eq(int, td_evrec_unpack(bad, rn, &back, &format, NULL), -1));
	cr_assert(eq(sz, td_evrec_line(NULL, 0, NULL, bad, sizeof(bad)), (size_t)0));
}

/* What the struct's bytes may hold in a damaged file: bools other than 0
 * and 1, pointers, names out of range.  Unpacked to something formattable. */
Test(evrec, damaged_body_is_made_safe)
{
	struct td_event ev = td_t_ev(TD_EV_CLOSE), back;
	char rec[TD_EVREC_MAX], line[TD_EVENT_MAX];
	size_t rn = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, false);
	char *body = rec + 8;
	int format;

	body[offsetof(struct td_event, app_linger_set)] = 7;
	body[offsetof(struct td_event, applied)] = (char)0xff;
	memset(body + offsetof(struct td_event, source), 0x41, sizeof(void *));
	memset(body + offsetof(struct td_event, who), 0x41, sizeof(void *));
	body[offsetof(struct td_event, why)] = (char)200;
	body[offsetof(struct td_event, state)] = 99;
	cr_assert(eq(int, td_evrec_unpack(rec, rn, &back, &format, NULL), 0));
	cr_assert(back.app_linger_set == true);
	cr_assert(back.applied == true);
	cr_assert(eq(ptr, (void *)back.who, NULL));
	cr_assert(eq(str, (char *)back.source, "/etc/teardown.conf"));
	cr_assert(gt(sz, td_event_format(line, sizeof(line), &back, format), (size_t)0));
	cr_assert(not(eq(ptr, strstr(line, "\"why\":null"), NULL)), "%s", line);
	cr_assert(not(eq(ptr, strstr(line, "\"state\":null"), NULL)), "%s", line);
}

/* Strings too long for a record: no record (the caller writes the line). */
Test(evrec, too_long_does_not_pack)
{
	struct td_event ev = td_t_ev(TD_EV_POLICY);
	char rec[TD_EVREC_MAX], *longs = malloc(4096);

	memset(longs, 'p', 4095);
	longs[4095] = '\0';
	ev.problem = longs;
	cr_assert(eq(sz, td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, false), (size_t)0));
	ev.problem = "short";
	cr_assert(eq(sz, td_evrec_pack(rec, 100, &ev, TD_FMT_JSON, false), (size_t)0));
	cr_assert(gt(sz, td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, false), (size_t)0));
	free(longs);
}

/* A spool holds records and lines side by side; each reads back as its
 * line, the writer's host and prog from the header. */
Test(evrec, spool_of_records_and_lines)
{
	size_t size = td_spool_file_size(64);
	void *mem = calloc(1, size);
	struct td_spool_view v, rv;
	struct td_spool_file f;
	struct td_spool_writer w;
	struct td_event ev = td_t_ev(TD_EV_CLOSE);
	struct td_event_who who;
	char rec[TD_EVREC_MAX], want[3][TD_EVENT_MAX], buf[TD_EVENT_MAX];
	size_t wn[3], rn;
	uint64_t pos, head;
	int got = 0;

	td_spool_init(mem, 64, 1234, &v);
	td_spool_set_writer(&v, "web1", "prog");
	td_event_who_render(&who, ev.host, ev.pid, ev.prog);
	ev.who = &who;
	/* own record (JSON), a line, another pid's record (text) */
	wn[0] = td_event_format(want[0], TD_EVENT_MAX, &ev, TD_FMT_JSON);
	rn = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, true);
	cr_assert(eq(int, td_spool_put(&v, rec, rn, NULL), 0));
	wn[1] = td_event_format(want[1], TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	cr_assert(eq(int, td_spool_put(&v, want[1], wn[1], NULL), 0));
	ev.who = NULL;
	ev.pid = 77;
	ev.prog = "child";
	wn[2] = td_event_format(want[2], TD_EVENT_MAX, &ev, TD_FMT_TEXT);
	rn = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_TEXT, false);
	cr_assert(eq(int, td_spool_put(&v, rec, rn, NULL), 0));

	/* as a reader of the file finds it */
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), 0));
	cr_assert(eq(u32, f.nlanes, 1));
	rv = f.lane[0];
	td_spool_writer_of(&rv, &w);
	cr_assert(eq(str, w.host, "web1"));
	cr_assert(eq(str, w.prog, "prog"));
	pos = atomic_load(rv.tail);
	head = td_spool_head(&rv, pos);
	while (pos < head) {
		struct td_spool_rec r;
		const char *line;
		size_t n;

		td_spool_next(&rv, pos, head, true, &r);
		cr_assert(r.kind == TD_SR_EVENT || r.kind == TD_SR_LINE);
		cr_assert(eq(int, r.kind, got == 1 ? TD_SR_LINE : TD_SR_EVENT));
		n = td_spool_rec_line(&r, &w, buf, sizeof(buf), &line);
		cr_assert(eq(sz, n, wn[got]));
		cr_assert(eq(int, memcmp(line, want[got], n), 0), "%.*s", (int)n, line);
		got++;
		pos = r.next;
	}
	cr_assert(eq(int, got, 3));

	/* a version 1 spool (lines only, no writer) is still read */
	((struct td_spool_hdr *)mem)->version = 1;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), 0));
	td_spool_writer_of(&f.lane[0], &w);
	cr_assert(eq(str, w.host, ""));
	((struct td_spool_hdr *)mem)->version = TD_SPOOL_VERSION + 1;
	cr_assert(eq(int, td_spool_file_of(mem, size, &f), -1));
	free(mem);
}

/*
 * What a record's event asks the kernel is read without unpacking it
 * (td_evrec_asks(): a flusher gathers a batch's questions first), with
 * the addresses to ask about; a record that asks nothing, one of another
 * layout and one cut short ask nothing.  Settling it is up to the
 * flusher, which gives the unpacked event to td_evrec_line_settled().
 */
Test(evrec, a_records_question_is_read_without_unpacking)
{
	struct td_event ev = td_t_ev(TD_EV_CLOSE), back;
	struct td_addr local, remote;
	char rec[TD_EVREC_MAX], line[TD_EVENT_MAX];
	size_t n;
	int fmt;

	ev.closer = TD_CLOSER_ACTIVE;
	ev.time_wait = 1;
	n = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, false);
	cr_assert(gt(sz, n, 0));
	cr_assert(eq(int, td_evrec_asks(rec, n, &local, &remote), TD_ASK_NONE));
	ev.ask = TD_ASK_FIRST_FIN;
	n = td_evrec_pack(rec, sizeof(rec), &ev, TD_FMT_JSON, false);
	cr_assert(eq(int, td_evrec_asks(rec, n, &local, &remote), TD_ASK_FIRST_FIN));
	cr_assert(eq(int, memcmp(&local, &ev.local, sizeof(local)), 0));
	cr_assert(eq(int, memcmp(&remote, &ev.remote, sizeof(remote)), 0));
	cr_assert(eq(int, td_evrec_asks(rec, 40, &local, &remote), TD_ASK_NONE));
	cr_assert(eq(int, td_evrec_unpack(rec, n, &back, &fmt, NULL), 0));
	cr_assert(eq(int, back.ask, TD_ASK_FIRST_FIN));
	/* unsettled, the line is the prediction, and asks nothing in it */
	cr_assert(gt(sz, td_evrec_line(rec, n, NULL, line, sizeof(line)), 0));
	cr_assert(not(eq(ptr, strstr(line, "\"closer\":\"active\""), NULL)), "%s", line);
	cr_assert(eq(ptr, strstr(line, "ask"), NULL), "%s", line);
	rec[4] ^= 0x5a; /* the layout word */
	cr_assert(eq(int, td_evrec_asks(rec, n, &local, &remote), TD_ASK_NONE));
}
