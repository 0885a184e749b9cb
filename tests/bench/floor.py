#!/usr/bin/env python3
"""8. The floor: what this machine charges for the kernel work a logged
close cannot do without.

Issue 9 puts the physical limit of observing at what a close event must
know: its line needs no system call of its own, its facts at most two
(TCP_INFO and SIOCINQ).  Beyond those, an exact log needs a few more, each
the only way to its answer:

  getsockname()    after a connect(): the connect line's local address
                   (the kernel chose the port; nothing else says it)
  a sock_diag lookup of the 4-tuple after an active close from
                   ESTABLISHED: whether the peer's FIN came in between the
                   facts' read and the close (then ours was second); the
                   spool's flusher asks a batch at once, off the program's
                   thread
  a drain          F_DUPFD (a reference of the library's own), shutdown(),
                   the state right after it (who was first), and in the
                   worker epoll_ctl(), a read to the peer's EOF and close()

What these cost depends on the machine far more than on the library (on
a virtual machine a system call can cost ten times what it does on the
metal), so this part measures them here, with build/tests/progs/
bench_floor (the best of 5 rounds, in nanoseconds).  The best the
connect loop can be when observing is measured, not added up, in part 2
(loop.py, its "limit" row: audit_loop makes those calls itself, side by
side with the library's runs).  A fork-per-connection
server's child pays a copy-on-write fault for each page of the library's
it writes first: that figure is here too.  And what a preloaded library
costs each fork() of its host before it does anything: its mappings
(each one is copied at fork() and torn down at exit()) and the median
cycle of fork(), the child's _exit() and waitpid() in a process holding
a listener (bench_floor forks), bare, with the forwarding-only floor
preloaded, and with the library observing with a JSON log, side by side
in 7 rounds.  A report: no figure fails.

Run alone: TD_BUILD=build python3 tests/bench/floor.py
As root it runs in a private network namespace.
"""

import json
import os
import subprocess
import sys

import _bench

PROG = _bench.prog("bench_floor")
SECTION = ("8. the floor: what this machine charges for the calls an exact log needs "
           "(bench_floor, best of 5 rounds)")
CALLS, LOOKUPS, COW_PAGES, FORKS = 20000, 4096, 64, 100
FORK_CYCLES, FORK_ROUNDS = 1000, 7


def _json(argv, env=None):
    """argv's last line of output, as JSON (env: a clean one unless given)."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       env=_bench.clean_env() if env is None else env)
    if r.returncode != 0:
        raise RuntimeError("%s: rc %d: %s" % (" ".join(argv), r.returncode, r.stderr[-500:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def _fork_cases(log):
    """bench_floor forks under each case, side by side: {case: [{cycle_ns,
    mappings} per round]}."""
    argv = [PROG, "forks", str(FORK_CYCLES)]
    cases = {"bare": (argv, _bench.clean_env()),
             "floor": (argv, dict(_bench.clean_env(), LD_PRELOAD=_bench.FLOOR)),
             "observe": ([_bench.CLI, "--log", log, "--format", "json", "--"] + argv,
                         _bench.clean_env())}

    return _bench.alternate(cases, FORK_ROUNDS, lambda case, _: _json(*cases[case]),
                            warmup=True)


def main(argv):
    rc = _bench.enter_netns(__file__, argv)
    if rc is not None:
        return rc
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG)
    if lack:
        return table.skip("%s not built (make testprogs)" % ", ".join(lack))
    if not _bench.in_netns():
        return table.skip("needs root for a network namespace (its lookups make %d "
                          "TIME_WAIT entries)" % LOOKUPS)
    _bench.say("floor: system calls, lookups, copy-on-write faults, forks bare and preloaded")
    c = _json([PROG, "calls", str(CALLS)])
    lk = _json([PROG, "lookups", str(LOOKUPS)])
    cw = _json([PROG, "cow", str(COW_PAGES), str(FORKS)])
    log = os.path.join(os.environ.get("TMPDIR", "/tmp"), "td-bench-floor-%d.jsonl" % os.getpid())
    try:
        fk = _fork_cases(log)
    finally:
        if os.path.exists(log):
            os.unlink(log)
    us = lambda ns: "%.2f us" % (ns / 1000.0)  # noqa: E731
    table.row("a system call (getppid())", figure=us(c["syscall_ns"]))
    table.row("getsockopt(TCP_INFO), a connected socket", figure=us(c["tcp_info_ns"]))
    table.row("getsockname(), a connected socket", figure=us(c["getsockname_ns"]))
    table.row("sock_diag lookup of a TIME_WAIT 4-tuple, 32 to a sendto()",
              figure=us(lk["lookup_ns"]))
    table.row("the thread count, /proc/self/stat (open, read, close)",
              figure=us(c["proc_stat_ns"]))
    table.row("the thread count, statx() of /proc/self/task (what the library reads)",
              figure=us(c["task_statx_ns"]))
    table.row("fork() and _exit() of a small process", figure=us(cw["fork_ns"]))
    table.row("copy-on-write fault in a forked child", figure=us(cw["cow_fault_ns"]))
    maps = {c: _bench.median([x["mappings"] for x in fk[c]]) for c in fk}
    table.row("mappings of a small process (bench_floor): bare, floor, library", maps["bare"],
              maps["floor"], maps["observe"], "+%d vs bare" % (maps["observe"] - maps["bare"]))
    cycles = {c: [x["cycle_ns"] for x in fk[c]] for c in fk}
    cyc = {c: _bench.median(cycles[c]) for c in cycles}
    table.row("fork(), _exit(), waitpid() with a listener open, median cycle", us(cyc["bare"]),
              us(cyc["floor"]), us(cyc["observe"]),
              "%+.1f us vs bare" % (_bench.paired(cycles, "observe", f=lambda x, b: x - b)
                                    / 1000.0))
    table.row("a logged active close from ESTABLISHED, at best: TCP_INFO + a lookup",
              figure=us(c["tcp_info_ns"] + lk["lookup_ns"]))
    # (getppid() is the cheapest call there is: a bound from below)
    table.row("a drain's own calls, at least: 5 system calls and a state read beyond "
              "the close's", figure=us(5 * c["syscall_ns"] + c["tcp_info_ns"]))
    table.note("lookups: %d asked, %d found in TIME_WAIT" % (lk["asked"], lk["time_wait_found"]))
    table.note("forks: %d cycles a run, %d rounds side by side; the figure is the median of "
               "each round's difference to the bare run next to it; the library observes "
               "(teardown --log FILE --format json): it holds the listener, and the child "
               "inherits it" % (FORK_CYCLES, FORK_ROUNDS))
    table.note("each part's own figures are measured in its own run: compare a target with "
               "its floor here, not across machines")
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
