#!/usr/bin/env python3
"""Run every benchmark in tests/bench and print each one's output under a heading.

A benchmark is any tests/bench/*.py other than this runner (files whose
name starts with "_" are helpers, not benchmarks), run in name order with
the interpreter running this script, from the repository root, with the
environment given (TD_BUILD names the build).  Its output, stderr
included, goes to stdout as it is written.  One that fails (a non-zero
exit status, a crash, or running longer than TD_BENCH_TIMEOUT seconds,
default 1800) is reported and the next one still runs; the exit status
is 1 if any failed.  A summary of times and results comes last.

usage: TD_BUILD=build python3 tests/bench/run.py [NAME...]
  NAME  run only these benchmarks (close_cost or close_cost.py)
"""

import glob
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RULE = "=" * 78


def discover():
    """The benchmark files, sorted by name."""
    me = os.path.abspath(__file__)
    return sorted(p for p in glob.glob(os.path.join(HERE, "*.py"))
                  if os.path.abspath(p) != me and not os.path.basename(p).startswith("_"))


def select(benches, names):
    """The benchmarks named on the command line; unknown names are errors."""
    by_name = {os.path.basename(p)[:-3]: p for p in benches}
    wanted, unknown = [], []
    for name in names:
        name = os.path.basename(name)
        name = name[:-3] if name.endswith(".py") else name
        (wanted if name in by_name else unknown).append(by_name.get(name, name))
    return wanted, unknown


def run_one(path, timeout):
    """Run one benchmark; return (failure message or None, seconds)."""
    started = time.monotonic()
    # Its own process group, so that a timeout also stops what it started;
    # stderr joins stdout, unbuffered, so an error shows where it happened.
    proc = subprocess.Popen([sys.executable, path], cwd=REPO, start_new_session=True,
                            stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
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
    results = []
    for path in benches:
        name = os.path.basename(path)[:-3]
        print("%s\n%s  (%s)\n%s" % (RULE, name, os.path.relpath(path, REPO), RULE), flush=True)
        try:
            error, elapsed = run_one(path, timeout)
        except KeyboardInterrupt:
            print("\nbench: interrupted during %s" % name, file=sys.stderr)
            return 130
        if error:
            print("bench: %s FAILED: %s" % (name, error), flush=True)
        print(flush=True)
        results.append((name, error, elapsed))
    print(RULE)
    failed = [r for r in results if r[1]]
    for name, error, elapsed in results:
        print("%-24s %-8s %7.1f s%s" % (name, "FAILED" if error else "ok", elapsed,
                                       "  (%s)" % error if error else ""))
    print("%d benchmark(s), %d failed" % (len(results), len(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
