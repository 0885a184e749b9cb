#!/usr/bin/env python3
"""7. Where the observed loop's time goes: perf samples by where they fell.

build/tests/progs/audit_loop (the loop of part 2: socket, connect, accept,
two closes, 4 log lines a cycle) runs bare and observed (one catch-all
rule, JSON log to a file) under `perf record` (cpu-clock sampling, the
worker thread included); each row is the share of that run's samples in
the kernel, in libc, in the library and in the program, and the
library's heaviest functions are named in a note.  A report, not a
timing: it says what an optimisation can win (a cut in formatting
cannot win more than the library's share; a system call saved wins its
share of the kernel's).

Needs perf (Debian: linux-perf) and the right to sample the kernel
(root, or kernel.perf_event_paranoid <= 1); otherwise the part says why
and adds no row.

Run alone: TD_BUILD=build python3 tests/bench/profile.py [N]
As root it runs in a private network namespace.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

import _bench

PROG = _bench.prog("audit_loop")
N = 20000
SECTION = ("7. where the time goes: perf samples of the connect/accept/close loop, "
           "share by where they fell (bare, observe + JSON log)")
PLACES = (("kernel", "[kernel.kallsyms]"), ("libc", "libc.so.6"),
          ("library", "libteardown.so"), ("program", "audit_loop"))


def _record(tmp, env, tag, n):
    """perf record of one run; returns the data file."""
    data = os.path.join(tmp, "perf.%s" % tag)
    r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", data, "--", PROG,
                        str(n)], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("perf record (%s): rc %d: %s" % (tag, r.returncode,
                                                           r.stderr[-1000:]))
    return data


def _shares(data, sort):
    """{name: percent} from perf report --sort sort."""
    r = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "-q",
                        "--stdio"], capture_output=True, text=True, timeout=600)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(.+?)\s*$", line)
        if m:
            out[m.group(2)] = out.get(m.group(2), 0.0) + float(m.group(1))
    return out


def _sym(key):
    """The function of a "dso [k] name" key."""
    return re.sub(r"^\S+\s+\[[.k]\]\s+", "", key)


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    n = int(argv[0]) if argv else N
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG, _bench.LIB)
    why = None
    if lack:
        why = "%s not built (make all testprogs)" % ", ".join(lack)
    elif shutil.which("perf") is None:
        why = "no perf here (Debian: apt-get install linux-perf)"
    else:
        probe = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/dev/null",
                                "--", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            why = "perf cannot sample here: %s" % (probe.stderr.strip().splitlines() or ["?"])[-1]
    if why:
        return table.skip(why)
    tmp = tempfile.mkdtemp(prefix="td-bench-profile-")
    try:
        log = os.path.join(tmp, "audit.jsonl")
        envs = {"bare": _bench.clean_env(),
                "observe": _bench.policy_env(_bench.policy(['name = "observe"; close = "pass";'],
                                                          log=log))}
        by = {}
        for case, env in envs.items():
            _bench.say("profile: %s, %d cycles under perf record" % (case, n))
            data = _record(tmp, env, case, n)
            by[case] = (_shares(data, "dso"), data)
        for label, dso in PLACES:
            bare = by["bare"][0].get(dso, 0.0)
            obs = by["observe"][0].get(dso, 0.0)
            table.row("samples in %s" % label, "%.1f%%" % bare, None, "%.1f%%" % obs)
        syms = _shares(by["observe"][1], "dso,sym")
        top = sorted(((v, k) for k, v in syms.items() if k.startswith("libteardown.so")),
                     reverse=True)[:8]
        if top:
            table.note("observe, the library's heaviest: " + ", ".join(
                "%s %.1f%%" % (_sym(k), v) for v, k in top))
        kern = sorted(((v, k) for k, v in syms.items() if k.startswith("[kernel.kallsyms]")),
                      reverse=True)[:3]
        if kern:
            table.note("observe, the kernel's heaviest: " + ", ".join(
                "%s %.1f%%" % (_sym(k), v) for v, k in kern))
        table.note("each run: %d cycles, 4 log lines a cycle when observed; shares of all "
                   "samples of the run (perf record -e cpu-clock)" % n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
