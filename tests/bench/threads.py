#!/usr/bin/env python3
"""5a. Threads: 1, 2, 4, 8 and 16 threads opening and closing sockets at
once; throughput with the library as a ratio to bare.

build/tests/progs/bench_threads runs T threads, each with a listener of
its own, each doing socket(), connect(), accept() and two close()s as fast
as it can for a fixed time; throughput is cycles per second, all threads
together (thread and process start-up left out).  Cases:

  bare               no library
  observe, JSON log  one catch-all rule (close = "pass"), every event
                     logged as JSON to one file (4 lines a cycle, all
                     threads appending to it)
  abort, no log      one catch-all rule, close = "abort", log = false

Runs alternate (the order rotated each round), each case divided by the
bare run of its own round, medians.

Then the spool's writers alone (build/tests/progs/bench_spool, its ring
code linked in, no library, no system call): T threads, each pinned to
its own CPU, put records (key, copy, commit) as fast as they can into one
ring whose head they all move (the spool before lanes) and into one lane
per CPU (the spool now): nanoseconds a record, best of 5, and the ratio
of the lanes' to one thread's alone.  This is the part of the close path
that every thread shared; the rest of it touches only the thread's own
connection and fd slots.  The thread counts are 1, 2, 4, 8, 16
up to the machine's cores (and its core count itself when that is not in
the list); --threads or TD_BENCH_THREADS chooses others.  Target (issue
9): observing with a log keeps at least 0.90 of bare's throughput at 16
threads.

Self-contained: on a machine with only this repository, a C compiler,
make and python3 (no valgrind, no servers), this builds what it needs
(make all testprogs) and prints the table:

  tests/bench/threads.sh            # or: python3 tests/bench/threads.py
  tests/bench/threads.py [--threads 1,2,4,8,16] [--seconds S] [--rounds R] [--no-build]

As root it runs in a private network namespace.  Five thread counts, the
defaults (1.5 s a run, 3 rounds): about two minutes.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bench  # noqa: E402

PROG = _bench.prog("bench_threads")
SPOOL_PROG = _bench.prog("bench_spool")
SPOOL_PUTS = 200000
LIMIT = 0.90
AT = 16
SECTION = ("5a. threads opening and closing sockets at once: cycles per second (socket, "
           "connect, accept, 2 closes), ratio to bare")


def default_threads():
    cores = os.cpu_count() or 1
    ts = [t for t in (1, 2, 4, 8, 16) if t <= cores]
    if cores < 16 and cores not in ts:
        ts.append(cores)
    return ts


def _args(argv):
    ap = argparse.ArgumentParser(description="thread scaling of the teardown library")
    ap.add_argument("--threads", default=os.environ.get("TD_BENCH_THREADS"),
                    help="comma-separated thread counts (default: 1,2,4,8,16 up to the cores)")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("TD_BENCH_SECONDS",
                                                                          "1.5")),
                    help="length of one run (default 1.5)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("TD_BENCH_ROUNDS", "3")),
                    help="alternating rounds, medians (default 3)")
    ap.add_argument("--no-build", action="store_true", help="do not run make first")
    a = ap.parse_args(argv)
    a.threads = ([int(x) for x in a.threads.replace(" ", ",").split(",") if x]
                 if a.threads else default_threads())
    return a


def build():
    """make all testprogs (the library, the command, the test programs)."""
    cmd = ["make", "-j%d" % (os.cpu_count() or 1), "--no-print-directory", "all", "testprogs"]
    if os.environ.get("TD_BUILD"):
        cmd.append("BUILD=" + os.environ["TD_BUILD"])
    _bench.say("threads: " + " ".join(cmd))
    r = subprocess.run(cmd, cwd=_bench.REPO, stdout=sys.stderr)
    return r.returncode == 0


def _run(t, ms, env):
    r = subprocess.run([PROG, str(t), str(ms)], env=env, capture_output=True, text=True,
                       timeout=120 + ms / 1000)
    if r.returncode != 0:
        raise RuntimeError("bench_threads %d: rc %d: %s %s"
                           % (t, r.returncode, r.stdout.strip(), r.stderr[-1000:]))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["cycles"] / (out["ns"] / 1e9), out["cycles"]


def _spool(t, lanes, *extra):
    r = subprocess.run([SPOOL_PROG, str(t), str(lanes), str(SPOOL_PUTS), "5"] + list(extra),
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("bench_spool %d %d: rc %d: %s" % (t, lanes, r.returncode,
                                                             r.stderr[-1000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])["ns_per_put"]


def _lanes():
    """The library's lane count here (shim/rt/spool.c, td__nlanes)."""
    n, cpus = 1, os.cpu_count() or 1
    while n < 8 and n < cpus:
        n <<= 1
    return n


def spool_rows(table, threads):
    """The spool's writers alone: one shared ring against a lane per CPU."""
    if _bench.missing(SPOOL_PROG):
        table.note("spool alone: %s not built (make testprogs)" % SPOOL_PROG)
        return
    lanes = _lanes()
    alone = _spool(1, lanes)
    for t in threads:
        one, per = _spool(t, 1), _spool(t, lanes)
        table.row("%2d thread%s: spool alone, ns a record: one ring / per-CPU lanes"
                  % (t, "s" if t > 1 else " "), "%.0f" % one, None, "%.0f" % per,
                  _bench.fmt_ratio(per / alone))
    table.note("spool alone: %d lanes here; the ratio is a lane per CPU's time a record over "
               "one thread's alone (%.0f ns; %.0f ns of it the key's clock read: %.0f ns "
               "keyed by position)" % (lanes, alone, alone - _spool(1, lanes, "nokey"),
                                       _spool(1, lanes, "nokey")))


def main(argv):
    a = _args(argv)
    if not a.no_build and os.environ.get("TD_BENCH_BUILT") != "1":
        if not build():
            print("threads: make all testprogs failed", file=sys.stderr)
            return 1
    rc = _bench.enter_netns(__file__, argv + ["--no-build"])
    if rc is not None:
        return rc
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG, _bench.LIB)
    if lack:
        return table.skip("%s not built (make all testprogs)" % ", ".join(lack))
    ms = int(a.seconds * 1000)
    tmp = tempfile.mkdtemp(prefix="td-bench-threads-")
    log = os.path.join(tmp, "audit.jsonl")
    base = _bench.clean_env()
    envs = {
        "bare": base,
        "observe, JSON log": _bench.policy_env(
            _bench.policy(['name = "observe"; close = "pass";'], log=log), base=base),
        "abort, no log": _bench.policy_env(
            _bench.policy(['name = "abort"; close = "abort"; log = false;']), base=base),
    }
    target_at = AT if AT in a.threads else max(a.threads)
    bare_rate = {}
    per_line = []
    spread = []
    try:
        _run(1, 200, envs["observe, JSON log"])   # warm-up
        for t in a.threads:
            _bench.say("threads: %d thread(s), %d rounds of %.1f s" % (t, a.rounds, a.seconds))

            def run(case, r):
                rate, cycles = _run(t, ms, envs[case])
                if os.path.exists(log):
                    if case == "observe, JSON log":
                        with open(log, "rb") as f:
                            per_line.append(sum(1 for _ in f) / max(cycles, 1))
                    os.unlink(log)
                return rate

            s = _bench.alternate(envs, a.rounds, run)
            bare_rate[t] = _bench.median(s["bare"])
            for case in ("observe, JSON log", "abort, no log"):
                ratio = _bench.paired(s, case)
                spread.append("%d/%s %s" % (t, case.split(",")[0], " ".join(
                    "%.2f" % (x / b) for x, b in zip(s[case], s["bare"]))))
                targeted = case == "observe, JSON log" and t == target_at
                table.row("%2d thread%s: %s" % (t, "s" if t > 1 else " ", case),
                          "%.0fk/s" % (bare_rate[t] / 1000), None,
                          "%.0fk/s" % (_bench.median(s[case]) / 1000), _bench.fmt_ratio(ratio),
                          ">= %.2fx" % LIMIT if targeted else None,
                          ratio >= LIMIT if targeted else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    spool_rows(table, a.threads)
    if target_at != AT:
        table.note("the target is for 16 threads; this machine has %d cores, so it is shown at "
                   "%d (run tests/bench/threads.sh on a 16-core machine)"
                   % (os.cpu_count() or 0, target_at))
    one = bare_rate[a.threads[0]]
    table.note("bare scaling: " + ", ".join("%d: %.2fx" % (t, bare_rate[t] / one)
                                            for t in a.threads)
               + " of %d thread%s" % (a.threads[0], "s" if a.threads[0] > 1 else ""))
    table.note("ratio to bare in each round, threads/case: " + "; ".join(spread))
    if per_line:
        table.note("observe wrote %.2f log lines a cycle; %.1f s a run, %d rounds"
                   % (_bench.median(per_line), a.seconds, a.rounds))
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
