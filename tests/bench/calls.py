#!/usr/bin/env python3
"""1. What one call costs: instructions (callgrind) and system calls
(strace -f) per call, against no preload and against the floor.

build/tests/progs/bench_calls makes N calls of one kind inside
bench_calls_phase(): callgrind counts the instructions executed there
(--toggle-collect, callees and the preloaded library included; exact and
repeatable whatever the machine does), strace the system calls the
calling thread makes between two access("/td-bench-phase-marker") markers
around it, and those every other thread makes in the whole run (a drain's background work).
Three preloads:

  bare    no library
  floor   build/tests/progs/libfloor.so: every call the library wraps,
          forwarded to libc through dlsym(RTLD_NEXT) and nothing else --
          the cost of being preloaded at all
  lib     build/libteardown.so under a policy

The calls, and the policy the library has for each:

  close(eventfd)                  a non-socket fd; observe-all policy, JSON log
  socket()+close()                a TCP socket never connected; the same policy
  close(), never connected        the close alone of such a socket, made before
  close(), no rule matches        a connected TCP socket; one rule on a port
                                  it does not use, JSON log
  close(), ACTION, log off|on     a connected socket the one rule matches,
                                  close = pass|graceful|drain|abort, the rule's
                                  log = false|true (JSON to a file)

Targets (issue 9): the unmatched, never-connected and non-socket closes make no system
call the floor does not, and cost at most 30 instructions above it.

Run alone: TD_BUILD=build python3 tests/bench/calls.py [N]
As root it runs in a private network namespace.
"""

import os
import shutil
import sys
import tempfile

import _bench

N = 1000
PROG = _bench.prog("bench_calls")
SECTION = ("1. per call: user-space instructions (callgrind) and system calls (strace -f) "
           "per call; ref = forwarding-only floor (libfloor.so)")
IR_LIMIT = 30


def _cases(log):
    """(label, workload, policy text, has a target)."""
    observe = _bench.policy(['name = "observe"; close = "pass";'], log=log)
    nomatch = _bench.policy(['name = "other"; match = { remote_port = 1; }; close = "abort";'],
                            log=log)
    cases = [
        ("close(eventfd)", "eventfd", observe, True),
        ("socket()+close(), unconnected", "socket", observe, True),
        ("close(), never connected", "unconnected", observe, True),
        ("close(), connected, unmatched", "connected", nomatch, True),
    ]
    for action in ("pass", "graceful", "drain", "abort"):
        for on in (False, True):
            text = _bench.policy(['name = "m"; close = "%s"; log = %s;'
                                  % (action, "true" if on else "false")], log=log)
            cases.append(("close(), %s, log %s" % (action, "on" if on else "off"),
                          "connected", text, False))
    return cases


def _measure(workload, env, n):
    """(instructions per call, calling thread's system calls per call,
    other threads' system calls per call, {call: calling thread's per call})."""
    ir, _ = _bench.callgrind([PROG, workload, n], env, "bench_calls_phase", n, what=workload)
    phase, other = _bench.strace_phase([PROG, workload, n], env, what=workload)
    return (ir, sum(phase.values()) / n, sum(other.values()) / n,
            {k: v / n for k, v in phase.items()})


def _extra(lib, ref):
    """The system calls the library adds, by name: "getpid 1.00, ..."."""
    names = sorted(set(lib) | set(ref), key=lambda k: -(lib.get(k, 0) - ref.get(k, 0)))
    return ", ".join("%s %+.2f" % (k, lib.get(k, 0) - ref.get(k, 0)) for k in names
                     if abs(lib.get(k, 0) - ref.get(k, 0)) >= 0.05)


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    n = int(argv[0]) if argv else N
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG, _bench.FLOOR, _bench.LIB)
    if lack or not shutil.which("valgrind") or not shutil.which("strace"):
        return table.skip("needs valgrind, strace and %s" % ", ".join(lack or ["the build"]))
    tmp = tempfile.mkdtemp(prefix="td-bench-calls-")
    log = os.path.join(tmp, "audit.jsonl")
    base = _bench.clean_env()
    try:
        ref, extras = {}, []
        for workload in ("eventfd", "socket", "unconnected", "connected"):
            _bench.say("calls: %s, bare and floor" % workload)
            ref[workload] = (_measure(workload, base, n),
                             _measure(workload, dict(base, LD_PRELOAD=_bench.FLOOR), n))
        for label, workload, text, targeted in _cases(log):
            _bench.say("calls: %s" % label)
            (b_ir, b_sc, _, _), (f_ir, f_sc, f_bg, f_by) = ref[workload]
            ir, sc, bg, by = _measure(workload, _bench.policy_env(text, base=base), n)
            added = _extra(by, f_by)
            if added:
                extras.append("%s: %s" % (label, added))
            if os.path.exists(log):
                os.unlink(log)
            extra_ir, extra_sc = ir - f_ir, sc - f_sc
            table.row(label + ": Ir", b_ir, f_ir, ir, "%+.0f vs ref" % extra_ir,
                      "<= +%d vs ref" % IR_LIMIT if targeted else None,
                      extra_ir <= IR_LIMIT if targeted else None)
            fig = "%+.2f" % extra_sc
            if bg - f_bg >= 0.005:
                fig += " (+%.1f bg)" % (bg - f_bg)
            table.row(label + ": syscalls", b_sc, f_sc, sc, fig,
                      "+0 vs ref" if targeted else None,
                      extra_sc < 0.005 if targeted else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for e in extras:
        table.note("added syscalls per call, " + e)
    table.note("N=%d calls per run; syscalls are the calling thread's between markers, "
               "\"bg\" those of the library's background thread per call" % n)
    table.note("socket()+close() counts both calls; the others count close() alone; "
               "close(), ACTION: a connected socket the one rule matches")
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
