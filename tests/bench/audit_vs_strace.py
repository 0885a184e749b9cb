#!/usr/bin/env python3
"""What auditing a connect/close loop costs, next to what strace -f costs.

The claim of the "Audit" issue: auditing a connect/close loop with the
library costs less than a tenth of what strace -f costs on the same loop.
build/tests/progs/audit_loop runs N cycles of socket(), connect() to its
own listener, accept(), and two close()s, and times them itself
(CLOCK_MONOTONIC around the loop, so start-up is left out).  It runs:

  bare        no library
  library     preloaded, one observe rule (close = "pass") logging every
              event as JSON to a file: 4 events per cycle (connect,
              accept, two closes)
  no log      the same rule with log = false: what the hooks cost without
              writing the audit
  strace      strace -f -o /dev/null (the loop's system calls traced)

Repetitions are interleaved (bare, library, no log, strace, bare, ...) so
that a slow moment of the machine hits every mode alike, and the medians
are compared.  The ratio is (library - bare) / (strace - bare).

Two counts back the timings where noise matters: callgrind's
user-space instructions per cycle inside the loop
(--toggle-collect=audit_loop_phase; the kernel's work is not counted), and
the system calls per cycle (strace -c -f), which is where most of the
library's cost goes.

Run alone:  TD_BUILD=build python3 tests/bench/audit_vs_strace.py [N] [REPS]
As root it runs in a private network namespace (unshare --net), so the
loop's TIME_WAIT entries never reach the host's table.  It prints a table
and the ratio; it never fails on the figures (a benchmark, not a test).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import _bench

LOOP = _bench.build_path("tests", "progs", "audit_loop")
LIB = _bench.LIB
N_DEFAULT = 5000
REPS_DEFAULT = 5
CALLGRIND_N = 1000


def _policy(tmp, log_events):
    """An observe-only policy file (JSON log in tmp); returns its path."""
    path = os.path.join(tmp, "observe-%s.conf" % ("log" if log_events else "nolog"))
    with open(path, "w") as f:
        f.write('version = 1;\n'
                'log = { target = "%s"; format = "json"; };\n'
                'rules = ( { name = "observe"; close = "pass"; log = %s; } );\n'
                % (os.path.join(tmp, "audit.jsonl"), "true" if log_events else "false"))
    return path


def _envs(tmp):
    base = _bench.clean_env()
    return {
        "bare": base,
        "library": dict(base, LD_PRELOAD=LIB, TEARDOWN_CONFIG=_policy(tmp, True)),
        "no log": dict(base, LD_PRELOAD=LIB, TEARDOWN_CONFIG=_policy(tmp, False)),
        "strace": base,
    }


def _command(mode, n, prefix=()):
    cmd = list(prefix) + [LOOP, str(n)]
    if mode == "strace":
        cmd = ["strace", "-f", "-o", "/dev/null"] + cmd
    return cmd


def _run_loop(mode, env, n):
    """Run the loop once; return its own measurement, in ns per cycle."""
    r = subprocess.run(_command(mode, n), env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("%s: rc %d: %s" % (mode, r.returncode, r.stderr[-2000:]))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["loop_ns"] / out["n"]


def _callgrind(env, n):
    """User-space instructions per cycle inside audit_loop_phase()."""
    return _bench.callgrind([LOOP, n], env, "audit_loop_phase", n)[0]


def _syscalls(env, n):
    """System calls per cycle, and the busiest kinds, from strace -c -f."""
    calls = _bench.strace_calls([LOOP, n], env)
    total = sum(calls.values())
    busy = sorted(((c / n, name) for name, c in calls.items() if c >= n), reverse=True)
    return total / n, busy


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    n = int(argv[0]) if len(argv) > 0 else N_DEFAULT
    reps = int(argv[1]) if len(argv) > 1 else REPS_DEFAULT
    for path, what in ((LOOP, "make testprogs"), (LIB, "make")):
        if not os.path.exists(path):
            print("audit_vs_strace: %s is missing (run %s)" % (path, what))
            return 1
    if not shutil.which("strace"):
        print("audit_vs_strace: strace is not installed (apt-get install strace)")
        return 1
    tmp = tempfile.mkdtemp(prefix="td-bench-audit-")
    try:
        envs = _envs(tmp)
        modes = ["bare", "library", "no log", "strace"]
        samples = {m: [] for m in modes}
        for env in envs.values():  # warm-up: page cache, first-run effects
            _run_loop("bare", env, min(n, 500))
        for _ in range(reps):
            for mode in modes:
                samples[mode].append(_run_loop(mode, envs[mode], n))
                if os.path.exists(os.path.join(tmp, "audit.jsonl")):
                    os.unlink(os.path.join(tmp, "audit.jsonl"))
        # One more library run, kept, to show what the audit wrote.
        _run_loop("library", envs["library"], n)
        with open(os.path.join(tmp, "audit.jsonl"), "rb") as f:
            log = f.read()
        lines = log.count(b"\n")
        med = {m: statistics.median(v) for m, v in samples.items()}
        bare = med["bare"]

        print("audit of a connect/close loop vs strace -f: N=%d cycles, %d interleaved "
              "runs, medians" % (n, reps))
        print("(one cycle: socket, connect, accept, 2 x close; 4 audit events)")
        print()
        print("%-26s %12s %14s %10s" % ("mode", "us/cycle", "overhead us", "x bare"))
        labels = {"bare": "bare", "library": "library, JSON log to file",
                  "no log": "library, rule without log", "strace": "strace -f -o /dev/null"}
        for m in modes:
            spread = "%.1f-%.1f" % (min(samples[m]) / 1000, max(samples[m]) / 1000)
            print("%-26s %12.1f %14.1f %10.2f   (runs: %s us)" % (
                labels[m], med[m] / 1000, (med[m] - bare) / 1000, med[m] / bare, spread))
        lib_over = med["library"] - bare
        strace_over = med["strace"] - bare
        ratio = lib_over / strace_over if strace_over > 0 else float("nan")
        print()
        print("ratio (library overhead / strace overhead): %.3f   claim < 0.1: %s"
              % (ratio, "met" if ratio < 0.1 else "NOT met"))
        print("audit written: %d lines (%.1f per cycle), %.0f bytes per line"
              % (lines, lines / n, len(log) / max(lines, 1)))

        bare_calls, _ = _syscalls(envs["bare"], CALLGRIND_N)
        lib_calls, busy = _syscalls(envs["library"], CALLGRIND_N)
        print()
        print("system calls per cycle (strace -c): bare %.1f, library %.1f (+%.1f)"
              % (bare_calls, lib_calls, lib_calls - bare_calls))
        print("  library, by call: " + ", ".join("%s %.1f" % (name, k) for k, name in busy))
        if shutil.which("valgrind"):
            cg = {m: _callgrind(envs[m], CALLGRIND_N) for m in ("bare", "library", "no log")}
            print("user-space instructions per cycle (callgrind, N=%d): bare %.0f, "
                  "library %.0f (+%.0f), no log %.0f (+%.0f)"
                  % (CALLGRIND_N, cg["bare"], cg["library"], cg["library"] - cg["bare"],
                     cg["no log"], cg["no log"] - cg["bare"]))
        else:
            print("(valgrind not installed: no instruction counts)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
