#!/usr/bin/env python3
"""What close() and connect() cost under the library, in instructions.

callgrind counts the instructions executed inside the benchmark program's
bench_close_phase() (N close() calls) and bench_connect_phase() (N
socket()+connect() calls), callees included, so the figures are exact and
repeatable whatever else the machine does.  Each policy is measured side
by side in one run:

  bare            no library
  no policy       library preloaded, no policy (system-wide preload case)
  1 rule          one matching rule (abort, no log): the decision is kept
  10000 rules     the matching rule is the last of 10,000: connect() scans
                  them once, close() still costs one table lookup
  10000, no match none of 10,000 rules match: the socket is forgotten
  1 rule + log    one matching rule that logs every close (JSON to a file)

Run alone: TD_BUILD=build python3 tests/bench/close_cost.py
"""

import os
import shutil
import sys
import tempfile

import _bench

N = 1000


def _policy_file(tmp, n_rules, match_last, log):
    """A policy of n_rules rules on remote ports that never match, the last
    one matching every port when match_last is set."""
    path = os.path.join(tmp, "p%d%s%s.conf" % (n_rules, match_last, log))
    logpath = os.path.join(tmp, "log.jsonl")
    with open(path, "w") as f:
        f.write('version = 1;\nlog = { target = "%s"; format = "json"; };\nrules = (\n' % logpath)
        rules = []
        for i in range(n_rules - 1):
            rules.append('  { name = "r%d"; match = { remote_port = %d; local_port = %d; }; close = "abort"; log = false; }'
                         % (i, 1 + i % 60000, 1 + i % 60000))
        last = '  { name = "last"; %s close = "abort"; log = %s; }' % (
            "" if match_last else "match = { remote_port = 1; local_port = 1; };",
            "true" if log else "false")
        rules.append(last)
        f.write(",\n".join(rules))
        f.write("\n);\n")
    return path


def _callgrind(fn, env):
    return _bench.callgrind([_bench.build_path("tests", "progs", "bench_close"), N], env, fn, N)[0]


def main():
    if shutil.which("valgrind") is None:
        print("close_cost: valgrind is not installed (apt-get install valgrind)")
        return 0
    lib = _bench.LIB
    tmp = tempfile.mkdtemp(prefix="td-bench-")
    base = _bench.clean_env()
    cases = [
        ("bare", dict(base)),
        ("no policy", dict(base, LD_PRELOAD=lib)),
        ("1 rule", dict(base, LD_PRELOAD=lib, TEARDOWN_CONFIG=_policy_file(tmp, 1, True, False))),
        ("10000 rules", dict(base, LD_PRELOAD=lib, TEARDOWN_CONFIG=_policy_file(tmp, 10000, True, False))),
        ("10000, no match", dict(base, LD_PRELOAD=lib, TEARDOWN_CONFIG=_policy_file(tmp, 10000, False, False))),
        ("1 rule + log", dict(base, LD_PRELOAD=lib, TEARDOWN_CONFIG=_policy_file(tmp, 1, True, True))),
    ]
    rows = []
    for name, env in cases:
        rows.append((name, _callgrind("bench_close_phase", env), _callgrind("bench_connect_phase", env)))
    shutil.rmtree(tmp, ignore_errors=True)
    bare_close, bare_conn = rows[0][1], rows[0][2]
    print("instructions per call (callgrind, N=%d), and ratio to bare" % N)
    print("%-18s %12s %8s %14s %8s" % ("case", "close()", "ratio", "connect()", "ratio"))
    for name, c, k in rows:
        print("%-18s %12.0f %8.2f %14.0f %8.2f" % (name, c, c / bare_close, k, k / bare_conn))
    one, many = rows[2][1], rows[3][1]
    print("close() with 10000 rules vs 1 rule: %.3fx" % (many / one))
    return 0


if __name__ == "__main__":
    sys.exit(main())
