#!/usr/bin/env python3
"""5b. Memory the library adds per open fd: a process holding 100,000 TCP
sockets.

build/tests/progs/bench_fds raises RLIMIT_NOFILE, makes N sockets with
socket(AF_INET, SOCK_STREAM) and connects each to a loopback listener of
its own (so each is tracked and decided, as a real program's are), and
reports its VmRSS before the first socket, after half of them and after
the last.  Bytes per fd = ((after - half) with the library - (after -
half) bare) / (N - N/2): what the library's tracking adds for each more
open socket, the memory it takes once (the log's spool ring, the first
table page, the worker thread) left out; the whole growth over N is in a
note.  The library observes (one catch-all rule, JSON log to a file: N
connect lines).  Runs alternate; medians.

Where the hard RLIMIT_NOFILE is below N and cannot be raised (not root,
or a container without CAP_SYS_RESOURCE) N is what the limit allows, and
the table says so.

Run alone: TD_BUILD=build python3 tests/bench/fds.py [N] [ROUNDS]
As root it runs in a private network namespace.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

import _bench

PROG = _bench.prog("bench_fds")
N_DEFAULT = 100000
ROUNDS = 3
LIMIT = 64
SECTION = "5b. memory per open fd: VmRSS growth of a process holding N connected TCP sockets"


def _run(n, env):
    """((rss growth over the second half, over all) in KiB, exit status,
    stderr)."""
    r = subprocess.run([PROG, str(n)], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return None, r.returncode, r.stderr.strip()[-500:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return ((out["rss_after_kb"] - out["rss_half_kb"], out["rss_after_kb"] - out["rss_before_kb"]),
            0, "")


def main(argv):
    rc = _bench.enter_netns(__file__)
    if rc is not None:
        return rc
    want = int(argv[0]) if argv else N_DEFAULT
    rounds = int(argv[1]) if len(argv) > 1 else ROUNDS
    table = _bench.Table(SECTION)
    lack = _bench.missing(PROG, _bench.LIB)
    if lack:
        return table.skip("%s not built (make all testprogs)" % ", ".join(lack))
    tmp = tempfile.mkdtemp(prefix="td-bench-fds-")
    log = os.path.join(tmp, "audit.jsonl")
    base = _bench.clean_env()
    envs = {"bare": base,
            "observe": _bench.policy_env(_bench.policy(['name = "observe"; close = "pass";'],
                                                       log=log), base=base)}
    n = want
    try:
        growth, rc, err = _run(n, base)
        if rc == 3:
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            n = max(1000, (hard - 200) // 1000 * 1000 - 1000)
            table.note("the hard RLIMIT_NOFILE here is %d and cannot be raised: %d sockets, "
                       "not %d" % (hard, n, want))
        elif rc != 0:
            raise RuntimeError("bench_fds: rc %d: %s" % (rc, err))

        def run(case, r):
            g, code, e = _run(n, envs[case])
            if code != 0:
                raise RuntimeError("bench_fds (%s): rc %d: %s" % (case, code, e))
            if os.path.exists(log):
                os.unlink(log)
            return g

        _bench.say("fds: %d sockets x %d rounds" % (n, rounds))
        s = _bench.alternate(envs, rounds, run)
        half = {k: [g[0] for g in v] for k, v in s.items()}
        whole = {k: [g[1] for g in v] for k, v in s.items()}
        more = n - n // 2
        per_fd = _bench.paired(half, "observe", f=lambda x, b: (x - b) * 1024.0 / more)
        all_fd = _bench.paired(whole, "observe", f=lambda x, b: (x - b) * 1024.0 / n)
        table.row("%d more TCP sockets open: bytes per fd" % more,
                  "%d KiB" % _bench.median(half["bare"]),
                  None, "%d KiB" % _bench.median(half["observe"]),
                  "%.0f B/fd" % per_fd, "<= %d B/fd" % LIMIT, round(per_fd) <= LIMIT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table.note("bare and teardown: VmRSS growth while the second half of %d sockets was "
               "opened; the library observes with a JSON log" % n)
    table.note("over all %d sockets, with what the library takes once (spool ring, worker, "
               "first table page): %.0f B/fd" % (n, all_fd))
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
