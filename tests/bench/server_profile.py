#!/usr/bin/env python3
"""7b. Where a real server's request goes, bare and observed: perf samples
of the server's CPUs, in microseconds of server CPU per request, by what
each sample was doing.

nginx, busybox httpd and apache2 (prefork) run as in part 3 (a new connection per request,
the server pinned to the first half of the CPUs, wrk on the other half),
bare, then observed (JSON log to a file; --mode drain: drain + log),
each under `perf record -a -C <the server's CPUs> -g` for the load's
length.  A sample counts for the
server when its thread's name is the server's (the library's worker
thread has its program's name, a forked child its parent's).  Each is put
in the first class that fits it:

  the library's code     its instruction in libteardown.so
  state reads            in the kernel under getsockopt() (TCP_INFO)
  sock_diag lookups      in the kernel's netlink send or receive
  SIOCINQ                in the kernel under ioctl()
  log file writes        in the kernel writing a file (ext4, tmpfs)
  fork and exit          in the kernel under clone(), exit_group(), wait4()
  page faults            in the kernel's page fault handler
  thread switches        in the scheduler (switching, waking)
  libc                   its instruction in libc
  the rest               everything else: the kernel's TCP, the program

A report, not a timing: each row says what removing one kind of work
could win, against the whole difference (observe less bare).  The row
"the rest" grows too where the program's own work costs more beside the
library (its cache lines evicted, a busier CPU taking the softirqs).

Needs perf (Debian: linux-perf), nginx, busybox, apache2 and wrk; a server
not installed is skipped with a note, and without perf the part says why
and adds no row.

Run alone: TD_BUILD=build python3 tests/bench/server_profile.py [NAME...] [--seconds S]
                                 [--mode observe|drain]
As root it runs in a private network namespace.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import _bench
import servers

SECTION = ("7b. where a real server's request goes: perf samples of the server's CPUs, "
           "microseconds of server CPU per request by what they were doing (bare, observe "
           "+ JSON log; a new connection per request)")
NAMES = ("nginx", "busybox", "apache2")
COMMS = {"nginx": ("nginx",), "busybox": ("busybox",), "apache2": ("apache2",)}

# (label, test on a sample's frames: (dso, symbol) from the top), first fit
CLASSES = (
    ("the library's code", lambda fr: fr[0][0].endswith("libteardown.so")),
    ("state reads (getsockopt)", lambda fr: _has(fr, "__x64_sys_getsockopt")),
    ("sock_diag lookups", lambda fr: _has(fr, "netlink_sendmsg", "netlink_recvmsg")),
    ("SIOCINQ (ioctl)", lambda fr: _has(fr, "__x64_sys_ioctl")),
    ("log file writes", lambda fr: _has(fr, "ext4_file_write_iter", "shmem_file_write_iter",
                                        "generic_perform_write")),
    ("fork and exit", lambda fr: _has(fr, "__do_sys_clone", "__x64_sys_clone",
                                      "__x64_sys_clone3", "__x64_sys_exit_group",
                                      "__x64_sys_wait4", "do_exit")),
    ("page faults", lambda fr: _has(fr, "exc_page_fault", "asm_exc_page_fault")),
    ("thread switches", lambda fr: _has(fr, "__schedule", "try_to_wake_up")),
    ("libc", lambda fr: fr[0][0].endswith("libc.so.6")),
    ("the rest", lambda fr: True),
)


def _has(frames, *names):
    return any(sym in names for _, sym in frames)


def _parse(data, comms):
    """{class label: sample periods in ns} of the samples of comms."""
    r = subprocess.run(["perf", "script", "-i", data, "-F", "comm,period,ip,sym,dso"],
                       capture_output=True, text=True, timeout=900)
    out = {label: 0 for label, _ in CLASSES}
    for block in r.stdout.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if len(lines) < 2:
            continue
        head = lines[0].split()
        if not head or head[0] not in comms:
            continue
        try:
            period = int(head[1])
        except (IndexError, ValueError):
            continue
        frames = []
        for ln in lines[1:]:
            m = re.match(r"\s*[0-9a-f]+\s+(\S+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)\s*$", ln)
            if m:
                frames.append((m.group(2), m.group(1)))
        if not frames:
            continue
        for label, test in CLASSES:
            if test(frames):
                out[label] += period
                break
    return out


def _run(name, mode, seconds, tmp):
    """One load of server name under mode, sampled; ({class: us per request}, requests)."""
    srv = servers.SERVERS[name](tmp)
    srv.setup()
    logdir = os.path.join(tmp, "log-" + mode)
    os.makedirs(logdir)
    os.chmod(logdir, 0o755)
    log = os.path.join(logdir, "audit.jsonl")
    with open(log, "w"):
        pass
    os.chmod(log, 0o666)
    srv.meter = _bench.TreeMeter()
    procs = srv.start(mode, log)
    data = os.path.join(tmp, "perf.%s.%s" % (name, mode))
    try:
        if not srv.ready(procs):
            raise RuntimeError("%s (%s) did not start" % (name, mode))
        time.sleep(0.3)
        cpus = servers._cpu_list(servers.SERVER_CPUS) if servers.SERVER_CPUS else None
        argv = ["perf", "record", "-q", "-e", "cpu-clock", "-g", "-a", "-o", data]
        if cpus:
            argv += ["-C", cpus]
        rec = subprocess.Popen(argv + ["--", "sleep", str(seconds + 1)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        _, err, reqs = srv.load(seconds)
        rec.wait(timeout=seconds + 60)
        if rec.returncode != 0:
            raise RuntimeError("perf record: rc %d: %s" % (rec.returncode, rec.stderr.read()[-500:]))
    finally:
        srv.stop(procs)
        srv.meter.close()
    ns = _parse(data, COMMS[name])
    return {k: v / 1000.0 / max(reqs, 1) for k, v in ns.items()}, reqs


def measure(name, seconds, table, mode="observe"):
    srv = servers.SERVERS[name](tempfile.gettempdir())
    why = srv.available()
    if why:
        table.note("%s skipped: %s" % (name, why))
        return
    tmp = tempfile.mkdtemp(prefix="td-bench-sprof-%s-" % name)
    try:
        _bench.say("server_profile: %s bare, %d s under perf record" % (name, seconds))
        bare, nb = _run(name, "bare", seconds, tmp)
        _bench.say("server_profile: %s %s, %d s under perf record" % (name, mode, seconds))
        obs, no = _run(name, mode, seconds, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tb, to = sum(bare.values()), sum(obs.values())
    table.row("%s: server CPU per request, all" % name, "%.1f us" % tb, None, "%.1f us" % to,
              "%+.2f us" % (to - tb))
    for label, _ in CLASSES:
        b, o = bare[label], obs[label]
        table.row("%s:   %s" % (name, label), "%.2f us" % b, None, "%.2f us" % o,
                  "%+.2f us" % (o - b))
    table.note("%s: %d requests bare, %d under %s, %d s each; perf record -e cpu-clock -g "
               "on the server's CPUs, samples of threads named %s"
               % (name, nb, no, mode, seconds,
                  "/".join(COMMS[name])))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="servers (default: %s)" % " ".join(NAMES))
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--mode", default="observe", choices=("observe", "drain"))
    a = ap.parse_args(argv)
    rc = _bench.enter_netns(__file__, argv)
    if rc is not None:
        return rc
    table = _bench.Table(SECTION)
    if _bench.missing(_bench.LIB, _bench.CLI):
        return table.skip("the library and the command are not built (make)")
    if shutil.which("perf") is None:
        return table.skip("no perf here (Debian: apt-get install linux-perf)")
    probe = subprocess.run(["perf", "record", "-q", "-a", "-e", "cpu-clock", "-o", "/dev/null",
                            "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return table.skip("perf cannot sample every CPU here: %s"
                          % (probe.stderr.strip().splitlines() or ["?"])[-1])
    for name in a.names or NAMES:
        try:
            measure(name, a.seconds, table, a.mode)
        except RuntimeError as e:
            table.note("%s FAILED: %s" % (name, str(e)[:300]))
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
