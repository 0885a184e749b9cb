#!/usr/bin/env python3
"""Run the benchmarks in tests/bench and print ONE table of every figure.

Each benchmark (a "part") is a tests/bench/*.py other than this runner
(files whose name starts with "_" are helpers), run with the interpreter
running this script, from the repository root, with the environment given
(TD_BUILD names the build).  The parts of issue 9 run in this order, any
other part after them in name order:

  calls       1. per call: instructions and system calls, vs no preload and
                 a forwarding-only preload (the floor)
  loop        2. wall time of a connect/accept/close loop: observing with a
                 JSON log, and strace, vs no preload
  servers     3. nginx, redis, haproxy, busybox httpd, apache2 prefork,
                 postgres: requests/s bare vs observe vs drain + log
  server_counts 3b. nginx and redis: instructions and system calls per
                 request (callgrind, strace), bare vs observe vs drain + log
  rules       4. decision cost with 1 .. 10,000 rules
  threads     5a. 1..16 threads opening and closing sockets
  fds         5b. memory per open fd, 100,000 sockets
  fault_cost  6. what a fault group costs
  profile     7. where the observed loop's time goes (perf samples)
  server_profile 7b. where nginx's and busybox httpd's request goes,
                 bare vs observed: microseconds per request by kind of work
  floor       8. what this machine charges for the calls an exact log needs,
                 and the best the connect loop can be here

Each part adds its rows to a file ($TD_BENCH_ROWS); its progress lines
(stderr) show as they come.  At the end comes the table: a header naming
the machine, then every part's rows with their targets (reported, never
asserted).  A part that fails (a non-zero exit status, a crash, or running
longer than TD_BENCH_TIMEOUT seconds, default 1800) is reported in the
table and the next one still runs; the exit status is 1 if any failed.

usage: TD_BUILD=build python3 tests/bench/run.py [NAME...]
  NAME  run only these parts (calls or calls.py); `make bench BENCH=NAME`
"""

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import _bench  # noqa: E402

ORDER = ("calls", "loop", "servers", "server_counts", "rules", "threads", "fds", "fault_cost",
         "profile", "server_profile", "floor")


def discover():
    """The benchmark files: ORDER first, then any other in name order."""
    me = os.path.abspath(__file__)
    found = {os.path.basename(p)[:-3]: p for p in glob.glob(os.path.join(HERE, "*.py"))
             if os.path.abspath(p) != me and not os.path.basename(p).startswith("_")}
    return [found[n] for n in ORDER if n in found] + \
        [found[n] for n in sorted(found) if n not in ORDER]


def select(benches, names):
    """The benchmarks named on the command line; unknown names are errors."""
    by_name = {os.path.basename(p)[:-3]: p for p in benches}
    wanted, unknown = [], []
    for name in names:
        name = os.path.basename(name)
        name = name[:-3] if name.endswith(".py") else name
        (wanted if name in by_name else unknown).append(by_name.get(name, name))
    return wanted, unknown


def run_one(path, timeout, env):
    """Run one benchmark; return (failure message or None, seconds)."""
    started = time.monotonic()
    # Its own process group, so that a timeout also stops what it started.
    proc = subprocess.Popen([sys.executable, path], cwd=REPO, start_new_session=True,
                            env=dict(env, PYTHONUNBUFFERED="1"))
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "still running after %d s; stopped" % timeout, time.monotonic() - started
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    elapsed = time.monotonic() - started
    if rc < 0:
        return "killed by signal %d" % -rc, elapsed
    if rc != 0:
        return "exit status %d" % rc, elapsed
    return None, elapsed


def main(argv):
    benches = discover()
    if argv:
        benches, unknown = select(benches, argv)
        if unknown:
            print("bench: no such benchmark: %s (have: %s)"
                  % (", ".join(unknown), ", ".join(os.path.basename(p)[:-3]
                                                    for p in discover())), file=sys.stderr)
            return 2
    if not benches:
        print("bench: no benchmarks in %s" % HERE)
        return 0
    timeout = int(os.environ.get("TD_BENCH_TIMEOUT", "1800"))
    fd, rows_path = tempfile.mkstemp(prefix="td-bench-rows.")
    os.close(fd)
    # make bench built everything: threads.py need not run make itself
    env = dict(os.environ, TD_BENCH_ROWS=rows_path, TD_BENCH_BUILT="1")
    head = _bench.header()   # the load average before the parts add theirs
    results = []
    started = time.monotonic()
    try:
        for path in benches:
            name = os.path.basename(path)[:-3]
            print("bench: %s (%s) ..." % (name, os.path.relpath(path, REPO)), file=sys.stderr,
                  flush=True)
            try:
                error, elapsed = run_one(path, timeout, env)
            except KeyboardInterrupt:
                print("\nbench: interrupted during %s" % name, file=sys.stderr)
                return 130
            if error:
                with open(rows_path, "a") as f:
                    f.write('{"section": "FAILED parts", "note": "%s: %s"}\n' % (name, error))
            results.append((name, error, elapsed))
        rows = _bench.read_rows(rows_path)
    finally:
        os.unlink(rows_path)
    total = time.monotonic() - started
    print()
    print("\n".join(head + [""] + _bench.format_table(rows, head=False)))
    print()
    print("parts: " + ", ".join("%s %.0f s%s" % (n, t, " FAILED (%s)" % e if e else "")
                                for n, e, t in results)
          + "; total %.1f min" % (total / 60))
    return 1 if any(r[1] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
