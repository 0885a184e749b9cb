#!/usr/bin/env python3
"""4. What a decision costs with 1, 10, 100, 1,000 and 10,000 rules.

A rule is decided once per socket: at connect() for a client, at accept()
for a server.  build/tests/progs/bench_calls makes N connect()s (or N
accept()s of connections already queued) inside bench_calls_phase(), and
callgrind counts the instructions there (--toggle-collect), the
library's included.  The policy is a generated file (TEARDOWN_CONFIG) of
R rules: R-1 that match none of these sockets, then a catch-all rule
(close = "pass", log = false) that matches every one, so each decision
walks past every rule an index cannot rule out.  Kinds of rules:

  ports     remote_port or local_port numbers and ranges (1..32767: never
            the listener's port nor an ephemeral one)
  cidr      remote = IPv4 /24 and IPv6 /48 blocks, no port at all: no port
            index helps
  program   program = globs ("np123*", "*x123", "s123?d*") that never match
            the program's name; no port either
  mixed     the three in turn, and rules combining them (a glob with a
            port, a block with a local port range, a role)

The figure is the added cost per decision (library minus bare) with
10,000 rules divided by that with 10; the target is at most 5x for every
kind.  Each policy is checked with `teardown check` first.

Run alone: TD_BUILD=build python3 tests/bench/rules.py [N]
As root it runs in a private network namespace.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import _bench

N = 200
PROG = _bench.prog("bench_calls")
COUNTS = (1, 10, 100, 1000, 10000)
KINDS = ("ports", "cidr", "program", "mixed")
LIMIT = 5.0
SECTION = ("4. per-decision cost with 1..10,000 rules (policy file): user-space instructions "
           "added to connect()/accept() (callgrind); ref = with 10 rules, teardown = with 10,000")


def _port(i):
    return 1 + (i * 7919) % 32767


def _ports(i):
    if i % 3 == 0:
        return "remote_port = %d;" % _port(i)
    if i % 3 == 1:
        return 'local_port = "%d-%d";' % (_port(i), min(_port(i) + 2, 32767))
    return "remote_port = (%d, \"%d-%d\");" % (_port(i), _port(i + 1), min(_port(i + 1) + 5, 32767))


def _cidr(i):
    if i % 4 == 3:
        return 'remote = "2001:db8:%x::/48";' % (i % 65536)
    return 'remote = "10.%d.%d.0/24";' % ((i >> 8) % 256, i % 256)


def _program(i):
    return 'program = "%s";' % ("np%d*", "*x%d", "s%d?d*")[i % 3].replace("%d", str(i))


def _mixed(i):
    k = i % 6
    if k == 0:
        return _ports(i)
    if k == 1:
        return _cidr(i)
    if k == 2:
        return _program(i)
    if k == 3:
        return '%s remote_port = %d;' % (_program(i), _port(i))
    if k == 4:
        return '%s local_port = "%d-%d"; role = "server";' % (_cidr(i), _port(i),
                                                              min(_port(i) + 9, 32767))
    return '%s role = "client";' % _cidr(i)


GEN = {"ports": _ports, "cidr": _cidr, "program": _program, "mixed": _mixed}


def policy_file(tmp, kind, count):
    """The generated policy of count rules of this kind; returns its path."""
    rules = ["match = { %s };" % GEN[kind](i) for i in range(count - 1)]
    rules.append('name = "last"; close = "pass"; log = false;')
    return _bench.write_policy(os.path.join(tmp, "%s-%d.conf" % (kind, count)),
                               _bench.policy(rules))


def _check(path):
    """teardown check on the policy: None, or its complaint."""
    r = subprocess.run([_bench.CLI, "check", path], capture_output=True, text=True, timeout=120)
    return None if r.returncode == 0 else (r.stdout + r.stderr).strip()[-300:]


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    n = int(argv[0]) if argv else N
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG, _bench.LIB, _bench.CLI)
    if lack or not shutil.which("valgrind"):
        return table.skip("needs valgrind and %s" % ", ".join(lack or ["the build"]))
    tmp = tempfile.mkdtemp(prefix="td-bench-rules-")
    base = _bench.clean_env()
    try:
        bare = {call: _bench.callgrind([PROG, call, n], base, "bench_calls_phase", n)[0]
                for call in ("connect", "accept")}
        cost = {}
        for kind in KINDS:
            for count in COUNTS:
                path = policy_file(tmp, kind, count)
                bad = _check(path)
                if bad:
                    table.note("%s, %d rules: teardown check refused the policy: %s"
                               % (kind, count, bad))
                    continue
                env = dict(base, LD_PRELOAD=_bench.LIB, TEARDOWN_CONFIG=path)
                _bench.say("rules: %s x %d (%d KiB)" % (kind, count, os.path.getsize(path) // 1024))
                for call in ("connect", "accept"):
                    ir = _bench.callgrind([PROG, call, n], env, "bench_calls_phase", n,
                                          what="%s %s x %d" % (call, kind, count))[0]
                    cost[kind, count, call] = ir - bare[call]
        for kind in KINDS:
            for call in ("connect", "accept"):
                series = [cost.get((kind, c, call)) for c in COUNTS]
                if series[1] is None or series[-1] is None:
                    continue
                ratio = series[-1] / series[1] if series[1] > 0 else float("inf")
                table.row("%s rules: %s() decision" % (kind, call), bare[call], "+%.0f" % series[1],
                          "+%.0f" % series[-1], _bench.fmt_ratio(ratio), "<= %.0fx" % LIMIT,
                          ratio <= LIMIT)
                table.note("%s, %s(): %s Ir added at %s rules" % (
                    kind, call, " ".join("-" if x is None else "%+.0f" % x for x in series),
                    "/".join(str(c) for c in COUNTS)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table.note("bare = instructions of a bare connect()/accept(); N=%d decisions a run; the "
               "matching rule is the last one" % n)
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
