/*
 * teardown: the unit tests' full event (test_event.c, test_evrec.c): a
 * close as in the text example of the documentation, every key known.
 */
#ifndef TD_TEST_EVENT_FIXTURE_H
#define TD_TEST_EVENT_FIXTURE_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/event.h"

static inline struct td_event td_t_full(int type)
{
	struct td_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.type = (uint8_t)type;
	ev.ts_us = 1795247280123456; /* 2026-11-21T07:48:00.123456Z */
	ev.pid = 1234;
	ev.tid = 1236;
	ev.host = "web1";
	ev.uid = 33;
	ev.prog = "prog";
	ev.fd = 5;
	ev.role = TD_SOCK_CLIENT;
	ev.local.family = AF_INET;
	ev.local.port = 40000;
	memcpy(ev.local.addr, (uint8_t[]){127, 0, 0, 1}, 4);
	ev.remote.family = AF_INET;
	ev.remote.port = 8080;
	memcpy(ev.remote.addr, (uint8_t[]){127, 0, 0, 1}, 4);
	ev.rule = "legacy";
	ev.action = "abort";
	ev.conn = 7;
	ev.err = ECONNREFUSED;
	ev.app_linger_set = true;
	ev.app_linger_onoff = 1;
	ev.app_linger_secs = 0;
	ev.how = SHUT_RD;
	ev.how_done = SHUT_WR;
	ev.state = 1; /* ESTABLISHED */
	ev.closer = TD_CLOSER_ACTIVE;
	ev.wire = TD_WIRE_RST;
	ev.why = TD_WHY_POLICY;
	ev.time_wait = 0;
	ev.unread = 3;
	ev.unsent = 4;
	ev.lost = 4;
	ev.lost_in_flight = 6;
	ev.age_ms = 12;
	ev.bytes_in = 5;
	ev.bytes_out = 300;
	ev.close_wait_ms = 29000;
	ev.fault = "rst";
	ev.seed = UINT64_MAX;
	ev.run_conn = 70;
	ev.dropped = 42;
	ev.target = "/var/log/td.jsonl";
	ev.source = "/etc/teardown.conf";
	ev.hash = 0x0123456789abcdefull;
	ev.rules = 3;
	ev.applied = false;
	ev.problem = "/etc/teardown.conf:2: syntax error";
	return ev;
}

#endif
