#!/usr/bin/env python3
"""The library's overhead on a request/response workload, side by side.

build/tests/progs/bench_loop is a client that makes N connections one
after the other to a tdpeer server in another process: socket(),
connect(), a 100-byte request, the whole 100-byte reply, close().  It
times the loop itself, so process start-up and the library's policy
loading are left out: wall clock, and the process's CPU time (user and
system, all threads).  The server is never preloaded; the library goes
into the client only, under these policies:

  bare               no library
  no policy          preloaded, no policy (the system-wide preload case)
  pass, no log       one catch-all rule, close = "pass", log = false
  abort, no log      one catch-all rule, close = "abort", log = false
                     (the client's close sends RST: no TIME_WAIT)
  observe, JSON log  one catch-all rule, close = "pass", every event
                     logged as JSON to a file (connect and close: 2 lines
                     per connection)

Runs are interleaved (bare, no policy, ..., then again, the order rotated
each round) so that a slow moment of the machine hits every case alike;
each case is compared with the bare run of the same round, and the
median of those ratios is reported.  Wall clock is what a user feels but
the noisiest view on a busy machine; CPU time is steadier.  Three more
views:

  start ms   the process's wall time minus the loop's: exec, the dynamic
             loader and, with the library, reading the policy
  syscalls   system calls per connection of the client (strace -c -f):
             where most of the library's cost goes
  Ir         callgrind's count of user-space instructions per connection
             inside bench_loop_phase() (the library's hooks included, the
             kernel's work not): exact and repeatable, free of timing noise

Run alone:  TD_BUILD=build python3 tests/bench/overhead.py [N] [ROUNDS]
As root it runs in a private network namespace (unshare --net), so the
loop's TIME_WAIT entries stay out of the host's table.  It prints a table;
it never fails on the figures (a benchmark, not a test), only when a run
fails.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _bench

LOOP = _bench.build_path("tests", "progs", "bench_loop")
TDPEER = _bench.build_path("examples", "tdpeer")
LIB = _bench.LIB
N_DEFAULT = 2000
ROUNDS_DEFAULT = 9
CALLGRIND_N = 500
REQUEST = REPLY = 100

CASES = ("bare", "no policy", "pass, no log", "abort, no log", "observe, JSON log")


def _policy(close, log_path):
    """A one-rule catch-all policy; log_path None means the rule does not log."""
    text = 'version = 1;\n'
    if log_path:
        text += 'log = { target = "%s"; format = "json"; };\n' % log_path
    return text + ('rules = ( { name = "bench"; close = "%s"; log = %s; } );\n'
                   % (close, "true" if log_path else "false"))


def _envs(log_path):
    base = _bench.clean_env()
    lib = dict(base, LD_PRELOAD=LIB)
    return {
        "bare": base,
        "no policy": lib,
        "pass, no log": dict(lib, TEARDOWN_POLICY=_policy("pass", None)),
        "abort, no log": dict(lib, TEARDOWN_POLICY=_policy("abort", None)),
        "observe, JSON log": dict(lib, TEARDOWN_POLICY=_policy("pass", log_path)),
    }


class _Server:
    """A bare tdpeer server for n connections: read the request, reply,
    read to the client's end, close."""

    def __init__(self, n, tmp):
        self.out = os.path.join(tmp, "server.out")
        env = _bench.clean_env()
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [TDPEER, "server", "--listen", "127.0.0.1:0", "--count", str(n),
                 "--read", str(REQUEST), "--send", str(REPLY), "--read-until-eof", "--quiet",
                 "--backlog", "512"],
                stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        self.port = None
        while self.port is None:
            with open(self.out) as f:
                for line in f:
                    rec = json.loads(line)
                    if rec.get("event") == "listening":
                        self.port = rec["port"]
            if self.port is None:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError("tdpeer server did not start")
                time.sleep(0.005)

    def close(self):
        """Wait for the server to finish its connections (kill it if stuck)."""
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("tdpeer server still running after its connections")


def _run_loop(case, env, n, tmp):
    """One timed run: (loop seconds per connection, start-up seconds,
    client CPU seconds per connection)."""
    srv = _Server(n, tmp)
    try:
        t0 = time.monotonic()
        r = subprocess.run([LOOP, str(srv.port), str(n), str(REQUEST), str(REPLY)],
                           env=env, capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - t0
    finally:
        srv.close()
    if r.returncode != 0:
        raise RuntimeError("%s: bench_loop rc %d: %s %s"
                           % (case, r.returncode, r.stdout.strip(), r.stderr[-2000:]))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    loop = out["loop_ns"] / 1e9
    return loop / out["n"], wall - loop, out["cpu_ns"] / 1e9 / out["n"]


def _callgrind(case, env, n, tmp):
    """User-space instructions per connection inside bench_loop_phase()."""
    srv = _Server(n, tmp)
    try:
        return _bench.callgrind([LOOP, srv.port, n, REQUEST, REPLY], env, "bench_loop_phase",
                                n, what=case)[0]
    finally:
        srv.close()


def _syscalls(case, env, n, tmp):
    """System calls per connection of the whole client process (strace -c),
    start-up included (a few dozen, spread over n)."""
    srv = _Server(n, tmp)
    try:
        calls = _bench.strace_calls([LOOP, srv.port, n, REQUEST, REPLY], env, what=case)
    finally:
        srv.close()
    return sum(calls.values()) / n


def _measure(envs, n, rounds, tmp):
    """Interleaved timed runs: {case: [wall s per connection]}, {case: [start-up s]},
    {case: [client CPU s per connection]}."""
    for case in CASES:   # warm-up: page cache, first-run effects
        _run_loop(case, envs[case], min(n, 200), tmp)
    per_conn = {c: [] for c in CASES}
    startup = {c: [] for c in CASES}
    cpu = {c: [] for c in CASES}
    for r in range(rounds):
        order = CASES[r % len(CASES):] + CASES[:r % len(CASES)]
        for case in order:
            t, s, u = _run_loop(case, envs[case], n, tmp)
            per_conn[case].append(t)
            startup[case].append(s)
            cpu[case].append(u)
    return per_conn, startup, cpu


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    n = int(argv[0]) if len(argv) > 0 else N_DEFAULT
    rounds = int(argv[1]) if len(argv) > 1 else ROUNDS_DEFAULT
    for path, what in ((LOOP, "make testprogs"), (TDPEER, "make"), (LIB, "make")):
        if not os.path.exists(path):
            print("overhead: %s is missing (run %s)" % (path, what))
            return 1
    tmp = tempfile.mkdtemp(prefix="td-bench-overhead-")
    log_path = os.path.join(tmp, "audit.jsonl")
    try:
        envs = _envs(log_path)
        per_conn, startup, cpu = _measure(envs, n, rounds, tmp)
        log_lines = 0
        if os.path.exists(log_path):
            with open(log_path, "rb") as f:
                log_lines = sum(1 for _ in f)
            os.unlink(log_path)
        instr = {c: _callgrind(c, envs[c], CALLGRIND_N, tmp) for c in CASES} \
            if shutil.which("valgrind") else {}
        calls = {c: _syscalls(c, envs[c], CALLGRIND_N, tmp) for c in CASES} \
            if shutil.which("strace") else {}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def paired(samples, f):
        """Each case against the bare run of the same round, then the median:
        a slow stretch of the machine weighs on both sides alike."""
        return {c: statistics.median(f(x, b) for x, b in zip(samples[c], samples["bare"]))
                for c in CASES}

    med = {c: statistics.median(v) for c, v in per_conn.items()}
    ratio = paired(per_conn, lambda x, b: x / b)
    over = paired(per_conn, lambda x, b: x - b)
    cpu_med = {c: statistics.median(v) for c, v in cpu.items()}
    cpu_ratio = paired(cpu, lambda x, b: x / b)
    cpu_over = paired(cpu, lambda x, b: x - b)
    start = {c: statistics.median(v) for c, v in startup.items()}

    print("library overhead on a request/response loop: %d connections per run, %d "
          "interleaved" % (n, rounds))
    print("runs per case, medians.  Each connection: socket, connect, %d-byte request, "
          "%d-byte" % (REQUEST, REPLY))
    print("reply, close.  The library is in the client (bench_loop) only; the server "
          "(tdpeer) is bare.")
    if os.path.exists("/etc/teardown.conf"):
        print("note: /etc/teardown.conf exists, so \"no policy\" ran under it")
    print()
    print("%-18s %8s %6s %8s %6s %8s %8s %8s %7s" % (
        "case", "wall us", "x bare", "cpu us", "x bare", "start ms", "syscalls", "Ir",
        "x bare"))
    for c in CASES:
        sc = "%8.1f" % calls[c] if calls else "%8s" % "-"
        cg = "%8.0f %7.2f" % (instr[c], instr[c] / instr["bare"]) if instr else \
            "%8s %7s" % ("-", "-")
        print("%-18s %8.1f %6.2f %8.1f %6.2f %8.2f %s %s" % (
            c, med[c] * 1e6, ratio[c], cpu_med[c] * 1e6, cpu_ratio[c], start[c] * 1e3, sc, cg))
    print()
    print("Per connection.  wall: the loop's wall clock; cpu: the client's user + system")
    print("time in the loop; x bare: median of the ratios to the same round's bare run;")
    print("start ms: process wall time minus the loop; syscalls: the client's, start-up")
    print("included (strace -c, N=%d); Ir: user-space instructions in the loop, library"
          % CALLGRIND_N)
    print("included, kernel not (callgrind, N=%d)." % CALLGRIND_N)
    print()
    print("over bare, per connection (medians of the differences to the same round's bare):")
    for c in CASES[1:]:
        extra = []
        if calls:
            extra.append("%+.1f syscalls" % (calls[c] - calls["bare"]))
        if instr:
            extra.append("%+.0f instructions" % (instr[c] - instr["bare"]))
        print("  %-18s wall %+6.1f us, cpu %+6.1f us  %s" % (
            c, over[c] * 1e6, cpu_over[c] * 1e6, ", ".join(extra)))
    lo, hi = min(per_conn["bare"]), max(per_conn["bare"])
    if hi > 1.3 * lo:
        print("note: the bare runs alone took %.1f to %.1f us per connection (a busy machine?):"
              % (lo * 1e6, hi * 1e6))
        print("      trust the cpu, system call and instruction counts over the wall clock.")
    if not instr:
        print("(valgrind is not installed: no instruction counts; apt-get install valgrind)")
    expected = 2 * (n * rounds + min(n, 200))
    print("JSON log of \"observe\": %d lines, %d expected (connect + close per connection)"
          % (log_lines, expected))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
