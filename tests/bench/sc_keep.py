#!/usr/bin/env python3
"""3b. Real servers, counted: what the library adds to one request of
nginx and of redis, in user-space instructions (callgrind) and in system
calls (strace -f), bare vs observe vs drain + log.

Counts, not time: on a shared VM a server's requests per second move by
a third from run to run (part 3), while these do not.  Each figure is the
difference between a run of N2 and a run of N1 requests, divided by
N2 - N1, so start-up and exit cancel out; every request is a new
connection, made one after the other by this script:

  nginx   one process (master_process off), a static page;
          "Connection: close" (nginx closes first: an active close)
  redis   redis-server; PING, then the client closes (redis closes
          second: a passive close)
  haproxy haproxy (http mode, one thread) in front of a bare nginx,
          "Connection: close": haproxy alone is counted (its
          shutdown(SHUT_WR) and close of the client's connection, its
          connect to the backend and the backend's abortive close)

The modes are those of part 3 (the teardown command: --log FILE --format
json; drain adds --close drain --role server).  Everything the server's
process does is counted, its threads included (the library's worker, a
drain's background reads); the load generator is this script, not
counted; a second row leaves out the library's worker thread (it formats
the spool's lines, and may run on another core), what the server's own
threads run.  A report: no figure fails.

Run alone: TD_BUILD=build python3 tests/bench/server_counts.py [nginx|redis|haproxy...]
As root it runs in a private network namespace.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import _bench
import servers

SECTION = ("3b. real servers, counted: user-space instructions (callgrind) and system calls "
           "(strace -f) of the server per request, a new connection each; ref = observe")
N1, N2 = 100, 400
MODES = ("bare", "observe", "drain")


def _nginx_request(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    if not got.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("nginx answered %r" % got[:80])


def _redis_request(port):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            b = s.recv(64)
            if not b:
                break
            got += b
    if got != b"+PONG\r\n":
        raise RuntimeError("redis answered %r" % got)


class _Nginx(servers.Server):
    """nginx as one process (part 3's runs a master and workers)."""
    name = "nginx"
    needs = ("nginx",)
    request = staticmethod(_nginx_request)

    def __init__(self, tmp):
        super().__init__(tmp)
        d = os.path.join(tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        self._argv = servers.nginxconf.write(d, self.port, self.webroot(), workers=1,
                                             master=False, error_log=os.path.join(d, "error.log"),
                                             error_level="error")

    def argv(self):
        return self._argv


class _Redis(servers.Redis):
    """redis-server with part 3's command line."""
    needs = ("redis-server",)
    request = staticmethod(_redis_request)


class _Haproxy(servers.Server):
    """haproxy (http mode, one thread) in front of an nginx that runs
    bare and is not counted (the nginx row counts nginx): haproxy's
    process alone.  It closes its client's connection after the reply
    (shutdown(SHUT_WR), then close) and its backend's with SO_LINGER
    {1,0}; the connect to the backend is a client's."""
    name = "haproxy"
    needs = ("haproxy", "nginx")
    request = staticmethod(_nginx_request)

    def __init__(self, tmp):
        super().__init__(tmp)
        d = os.path.join(tmp, "haproxy")
        os.makedirs(d, exist_ok=True)
        self.backend_port = servers.free_port()
        self._backend = servers.nginxconf.write(d, self.backend_port, self.webroot(),
                                                workers=1, master=False,
                                                error_log=os.path.join(d, "error.log"),
                                                error_level="error")
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n    maxconn 1024\n    nbthread 1\ndefaults\n    mode http\n"
                    "    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
                    "frontend fe\n    bind 127.0.0.1:%d\n    default_backend be\n"
                    "backend be\n    server s1 127.0.0.1:%d\n" % (self.port, self.backend_port))
        self._argv = ["haproxy", "-db", "-f", cfg]

    def argv(self):
        return self._argv

    def backend(self):
        """The bare nginx behind it, listening; the caller stops it."""
        proc = subprocess.Popen(self._backend, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=_bench.clean_env())
        if not servers.wait_port(self.backend_port, [proc], timeout=30):
            os.killpg(proc.pid, signal.SIGTERM)
            raise RuntimeError("haproxy's nginx backend never listened")
        return proc


TARGETS = {"nginx": _Nginx, "redis": _Redis, "haproxy": _Haproxy}


def _run(target, mode, tool, n, log):
    """One run of n requests with the server under tool ("callgrind" or
    "strace"); returns the instructions, or the system calls, counted."""
    fd, out = tempfile.mkstemp(prefix="%s.%s.%d." % (tool, mode, n), dir="/tmp/cg")
    os.close(fd)
    if tool == "callgrind":
        # one file per thread: the library's worker (which formats the
        # spool's lines) apart from the server's own threads
        # (--fair-sched=yes: see _bench.callgrind)
        pre = ["valgrind", "--tool=callgrind", "--fair-sched=yes", "--separate-threads=yes",
               "--callgrind-out-file=" + out]
    else:
        pre = ["strace", "-f", "-qq", "-c", "-o", out]
    argv = servers.wrap(mode, pre + target.argv(), log)
    back = target.backend() if hasattr(target, "backend") else None
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env=_bench.clean_env())
    try:
        if not servers.wait_port(target.port, [proc], timeout=60):
            raise RuntimeError("%s under %s (%s) never listened: %s"
                               % (target.name, tool, mode, proc.stderr.read()[-1000:]))
        for _ in range(n):
            target.request(target.port)
        # a drain's background reads finish before the server stops
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        err = proc.communicate(timeout=120)[1].decode(errors="replace")
        if back is not None:
            os.killpg(back.pid, signal.SIGTERM)
            back.wait(timeout=60)
    if tool == "callgrind":
        return _callgrind_threads(out, target, mode, err)
    with open(out, errors="replace") as f:
        text = f.read()
    os.unlink(out)
    m = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total\s*$", text, re.M)
    if not m:
        raise RuntimeError("%s (%s): no strace total: %s" % (target.name, mode, text[-1000:]))
    return int(m.group(1))


# the library's background thread (shim/rt/worker.c)
_WORKER_FN = re.compile(r"^c?fn=\(\d+\) td__main$", re.M)


def _callgrind_threads(out, target, mode, err):
    """The instructions of a --separate-threads run: (all threads, the
    library's worker thread); its files are removed."""
    d, base = os.path.split(out)
    total = worker = 0
    files = [n for n in os.listdir(d) if n.startswith(base + "-")]
    for name in files:
        path = os.path.join(d, name)
        with open(path, errors="replace") as f:
            text = f.read()
        print("KEEP", path)
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if not m:
            raise RuntimeError("%s (%s): no callgrind totals in %s: %s"
                               % (target.name, mode, name, err[-1000:]))
        total += int(m.group(1))
        if _WORKER_FN.search(text):
            worker += int(m.group(1))
    if os.path.exists(out):
        os.unlink(out)
    if not files:
        raise RuntimeError("%s (%s): no callgrind output: %s" % (target.name, mode, err[-1000:]))
    return total, worker


def _per_request(target, mode, tool, log):
    a = _run(target, mode, tool, N1, log)
    b = _run(target, mode, tool, N2, log)
    if tool == "callgrind":
        return tuple((y - x) / (N2 - N1) for x, y in zip(a, b))
    return (b - a) / (N2 - N1)


def main(argv):
    rc = _bench.enter_netns(__file__, argv)
    if rc is not None:
        return rc
    table = _bench.Table(SECTION)
    names = [a for a in argv if a in TARGETS] or list(TARGETS)
    if not shutil.which("valgrind") or not shutil.which("strace"):
        return table.skip("needs valgrind and strace")
    lack = _bench.missing(_bench.LIB, _bench.CLI)
    if lack:
        return table.skip("needs " + ", ".join(lack))
    tmp = tempfile.mkdtemp(prefix="td-bench-counts-")
    os.chmod(tmp, 0o755)
    try:
        for name in names:
            target = TARGETS[name](tmp)
            why = target.available()
            if why:
                table.note("%s: skipped, %s" % (name, why))
                continue
            for tool, what in (("callgrind", "instructions"),):
                got = {}
                for mode in ("bare", "observe"):
                    _bench.say("server_counts: %s, %s, %s" % (name, tool, mode))
                    log = os.path.join(tmp, "%s-%s-%s.jsonl" % (name, tool, mode))
                    got[mode] = _per_request(target, mode, tool, log)
                rows = [(what, {m: v[0] if tool == "callgrind" else v
                                for m, v in got.items()})]
                if tool == "callgrind":
                    # the same, less the library's worker thread: what the
                    # server's own threads run (the worker may run on
                    # another core)
                    rows.append(("instructions on the server's own threads",
                                 {m: v[0] - v[1] for m, v in got.items()}))
                digits = 0 if tool == "callgrind" else 2
                for label, vals in rows:
                    bare = vals["bare"]
                    for mode in ("observe",):
                        table.row("%s, %s: %s per request" % (name, mode, label),
                                  round(bare, digits),
                                  None,
                                  round(vals[mode], digits),
                                  "%+.*f (%+.1f%%)" % (digits, vals[mode] - bare,
                                                       100.0 * (vals[mode] - bare) / bare))
        table.note("each figure: (the run of %d requests - the run of %d) / %d; the server's "
                   "whole process tree, its threads included; the requests are sequential"
                   % (N2, N1, N2 - N1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table.done()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
