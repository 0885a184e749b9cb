#!/usr/bin/env python3
"""6. What fault injection costs a connection that no fault rule matches.

The claim to check: injection costs nothing on sockets that no fault rule
matches.  callgrind counts the instructions executed inside the benchmark
program's fault_loop_phase() (tests/progs/fault_loop.c: N iterations of
socket(), connect() to a listener of its own, a one-byte write() and
close()), callees and the preloaded library included, so the figures are
exact and repeatable whatever else the machine does.  Cases:

  bare                  no library
  no policy             library preloaded, no policy at all
  rule, no faults       one rule (match remote_port 1, so not these
                        sockets) without a fault group
  fault rule, unmatched the same rule with a full fault group: rst,
                        rst_after_bytes, connect_refuse 0, delays 0
  fault rule, matched   the same fault group on a rule matching these
                        sockets (rst 0.5 with a fixed seed, so the same
                        half of the closes are RSTs on every run, and a
                        byte budget that never runs out)

No rule logs (log = false): the log's write() would swamp the figures,
and what is measured is the decision, not the audit.

"fault rule, unmatched" minus "rule, no faults" is the cost of having a
fault group that does not apply; the target is that it stays within a
handful (16) of instructions per iteration.  Reported, never asserted.

Run alone: TD_BUILD=build python3 tests/bench/fault_cost.py [N]
As root it runs in a private network namespace (unshare --net), so its
connections and their TIME_WAIT entries stay out of the host's tables.
"""

import shutil
import sys

import _bench

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
# "Within a handful of instructions" per iteration.
HANDFUL = 16

FAULTS = ("fault = { rst = 0.5; rst_after_bytes = 1000000000L; connect_refuse = 0.0;"
          " connect_timeout = 0.0; connect_delay_ms = 0; close_delay_ms = 0; seed = 7; };")


def _policy(match, fault):
    """A one-rule policy text; the rule never logs."""
    return ('version = 1;\nrules = ( { name = "bench"; match = { %s }; log = false; %s } );\n'
            % (match, fault))


def _callgrind(prog, env):
    """Instructions per iteration of fault_loop_phase() under env."""
    cost, r = _bench.callgrind([prog, N], env, "fault_loop_phase", N)
    if r.stdout.split() != [str(N), "0"]:
        raise RuntimeError("fault_loop failed (stdout %r):\n%s" % (r.stdout, r.stderr[-2000:]))
    return cost


SECTION = ("6. fault injection: instructions per socket+connect+write+close (callgrind); "
           "ref = the same rule without a fault group")


def main():
    """Measure every case and add the rows."""
    table = _bench.Table(SECTION)
    if shutil.which("valgrind") is None:
        return table.skip("valgrind is not installed (apt-get install valgrind)")
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    prog = _bench.prog("fault_loop")
    lib = _bench.LIB
    lack = _bench.missing(prog, lib)
    if lack:
        return table.skip("%s not built (make all testprogs)" % ", ".join(lack))
    base = _bench.clean_env()
    # Without a policy the library would read /etc/teardown.conf: point it
    # at a file that does not exist, so "no policy" means none.
    no_conf = dict(base, LD_PRELOAD=lib, TEARDOWN_CONFIG="/nonexistent/teardown.conf")
    other_port = 'role = "client"; remote_port = 1;'
    cases = [
        ("bare", dict(base)),
        ("no policy", no_conf),
        ("rule, no faults", dict(base, LD_PRELOAD=lib,
                                 TEARDOWN_POLICY=_policy(other_port, ""))),
        ("fault rule, unmatched", dict(base, LD_PRELOAD=lib,
                                       TEARDOWN_POLICY=_policy(other_port, FAULTS))),
        ("fault rule, matched", dict(base, LD_PRELOAD=lib,
                                     TEARDOWN_POLICY=_policy('role = "client";', FAULTS))),
    ]
    _bench.say("fault_cost: %d cases under callgrind" % len(cases))
    ir = {name: _callgrind(prog, env) for name, env in cases}
    bare, ref = ir["bare"], ir["rule, no faults"]
    table.row("preloaded, no policy", bare, None, ir["no policy"],
              "%+.0f vs bare" % (ir["no policy"] - bare))
    table.row("one rule (no fault group), unmatched", bare, None, ref, "%+.0f vs bare" % (ref - bare))
    unmatched = ir["fault rule, unmatched"] - ref
    table.row("fault group on a rule that does not match", bare, ref, ir["fault rule, unmatched"],
              "%+.0f vs ref" % unmatched, "within +-%d" % HANDFUL, abs(unmatched) <= HANDFUL)
    table.row("fault group on a rule that matches", bare, ref, ir["fault rule, matched"],
              "%+.0f vs ref" % (ir["fault rule, matched"] - ref))
    table.note("N=%d iterations; the matched fault group resets half the connections "
               "(rst = 0.5, fixed seed); no rule logs" % N)
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
