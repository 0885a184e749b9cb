"""Where the audit log goes, and that it arrives whole.

The log is written one event per write(): to a file opened O_APPEND, to
the program's stderr, or as one datagram to syslog's /dev/log.  These
tests put that under pressure: many threads in several processes writing
to one file or one pipe at once; daemons that close every descriptor
they did not open, or dup2() their own file over the log's, and then
write to their own files; a symlink planted at the log path.  Each test
counts what the log must contain against what the programs did (and the
peers saw), and checks that the programs' own files hold no log bytes.
"""

import contextlib
import fcntl
import collections
import json
import os
import resource
import socket
import stat
import subprocess
import threading

import tdlib

NEEDS = ("root", "netns", "tdpeer", "lib")


OBSERVE = [{"name": "observe", "close": "pass"}]


def _observe(log):
    """Environment for a program under an observe-only policy logging JSON
    to ``log`` (a path, or "stderr")."""
    if log == "stderr":
        text = tdlib.policy_text(OBSERVE, None, log={"target": "stderr", "format": "json"})
    else:
        text = tdlib.policy_text(OBSERVE, log)
    return tdlib.shim_env(policy=text)


def _check_daemon_built():
    if not os.path.exists(tdlib.test_prog("audit_daemon")):
        tdlib.skip("needs build/tests/progs/audit_daemon (run make testprogs)")


@contextlib.contextmanager
def _nofile_soft_limit(limit):
    """Lower this process's soft RLIMIT_NOFILE while children are started.

    Children inherit it.  With a limit of 1024 the library puts its own
    descriptors from 768 up (shim/rt/init.c), inside the 3..1023 a daemon
    closes, so the daemon tests really take the log's descriptor away.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _parse_lines(text, where):
    """Parse JSON lines; every line must be one whole JSON object."""
    assert text == "" or text.endswith("\n"), "%s does not end with a newline" % where
    records = []
    for n, line in enumerate(text.split("\n")[:-1], 1):
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError("%s line %d is not JSON: %r" % (where, n, line)) from None
        assert isinstance(rec, dict), (where, n, line)
        records.append(rec)
    return records


def _check_load(records, pids, per_process, threads):
    """The events of the concurrent client load, checked connection by connection."""
    connects = [r for r in records if r["event"] == "connect"]
    closes = [r for r in records if r["event"] == "close"]
    total = per_process * len(pids)
    assert len(connects) == total and len(closes) == total, (len(connects), len(closes), total)
    assert {r["event"] for r in records} == {"connect", "close"}, {r["event"] for r in records}
    for pid in pids:
        mine = [r for r in connects if r["pid"] == pid]
        assert len(mine) == per_process, (pid, len(mine))
        # Every thread of every process wrote its share.
        assert len({r["tid"] for r in mine}) == threads, {r["tid"] for r in mine}
    # Each connection has its connect and its close, and nothing twice.  A
    # local port may serve two connections of one process in a run (on
    # loopback tcp_tw_reuse lets a new connect take a port in TIME_WAIT),
    # so the pairs are compared as multisets, and the connection numbers
    # (one per connect, per process) must be all distinct.
    opened = collections.Counter((r["pid"], r["local"]) for r in connects)
    ended = collections.Counter((r["pid"], r["local"]) for r in closes)
    assert opened == ended, (opened - ended, ended - opened)
    assert len({(r["pid"], r["conn"]) for r in connects}) == total
    assert all(r["error"] is None for r in connects)
    assert all(r["wire"] in ("FIN", "none") for r in closes), [
        r for r in closes if r["wire"] not in ("FIN", "none")]


# ---------------------------------------------------------------------------
# Many writers at once
# ---------------------------------------------------------------------------

PROCS = 4
THREADS = 8


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_file_target_threads_and_processes():
    """Four client processes of eight threads each, 320 connections per
    process, all logging to one file at once: every line of the file is a
    whole JSON object, there is one connect and one close event per
    connection (1280 each), every thread's events are there, and the file
    was created mode 0600 (the umask is cleared for the run, so the mode is
    the library's own choice)."""
    per_thread = 40
    log = os.path.join(tdlib.tmpdir(), "load.jsonl")
    env = _observe(log)
    total = PROCS * THREADS * per_thread
    srv = tdlib.Server("--count", total, "--quiet", "--timeout", 20000)
    old_umask = os.umask(0)
    try:
        clients = [tdlib.spawn(tdlib.client_cmd(srv.port, "--threads", THREADS, "--count",
                                                per_thread, "--quiet"),
                               env=env, name="client%d" % i) for i in range(PROCS)]
    finally:
        os.umask(old_umask)
    for proc in clients:
        assert proc.wait(40) == 0, proc.stdout()
        summary = [r for r in proc.json_lines() if r["event"] == "summary"]
        assert summary and summary[0]["connections"] == THREADS * per_thread, summary
        assert summary[0]["failures"] == 0, summary
    srv.wait(20)
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600, oct(os.stat(log).st_mode)
    with open(log) as f:
        records = _parse_lines(f.read(), log)
    _check_load(records, [p.pid for p in clients], THREADS * per_thread, THREADS)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_stderr_target_pipe():
    """The same load with log target "stderr", the four processes sharing
    one pipe as stderr (as under a supervisor that collects output): every
    line read from the pipe is a whole JSON object, with one connect and
    one close per connection.  The pipe is made 1 MiB so that a slow
    reader can never make the library drop a line (it never blocks)."""
    per_thread = 12
    total = PROCS * THREADS * per_thread
    env = _observe("stderr")
    srv = tdlib.Server("--count", total, "--quiet", "--timeout", 20000)
    rfd, wfd = os.pipe()
    try:
        fcntl.fcntl(wfd, 1031, 1 << 20)  # F_SETPIPE_SZ
    except OSError as exc:
        tdlib.note("could not grow the pipe: %s" % exc)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(
        lambda: os.read(rfd, 65536), b"")), daemon=True)
    reader.start()
    procs = []
    try:
        for i in range(PROCS):
            out = open(os.path.join(tdlib.tmpdir(), "client%d.out" % i), "wb")
            procs.append(subprocess.Popen(
                tdlib.client_cmd(srv.port, "--threads", THREADS, "--count", per_thread,
                                 "--quiet"),
                stdout=out, stderr=wfd, stdin=subprocess.DEVNULL, env=env))
            out.close()
        os.close(wfd)
        wfd = -1
        for proc in procs:
            assert proc.wait(40) == 0
        reader.join(20)
        assert not reader.is_alive(), "the pipe never reached EOF"
    finally:
        if wfd >= 0:
            os.close(wfd)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        os.close(rfd)
    srv.wait(20)
    text = b"".join(chunks).decode("utf-8", "replace")
    path = os.path.join(tdlib.tmpdir(), "pipe.txt")
    with open(path, "w") as f:
        f.write(text)
    tdlib.diagnose_file(path, "what came through the pipe")
    records = _parse_lines(text, "the stderr pipe")
    _check_load(records, [p.pid for p in procs], THREADS * per_thread, THREADS)


# ---------------------------------------------------------------------------
# Programs that take the log's descriptor away
# ---------------------------------------------------------------------------

DAEMON_CONNECTIONS = 20


def _run_daemon(mode, log, extra=()):
    """Run audit_daemon in ``mode`` under the library against a plain server.

    Returns (its report line, its pid, the content of its own file).
    """
    own = os.path.join(tdlib.tmpdir(), "own-%s.txt" % mode)
    srv = tdlib.Server("--count", DAEMON_CONNECTIONS, "--read-until-eof",
                       name="server-" + mode)
    with _nofile_soft_limit(1024):
        proc = tdlib.run([tdlib.test_prog("audit_daemon"), mode, own, srv.port, DAEMON_CONNECTIONS]
                         + list(extra), env=_observe(log), name="daemon-" + mode)
    results = srv.results()
    assert proc.rc == 0, (proc.rc, proc.stdout(), proc.stderr())
    report = proc.json_lines()[0]
    assert report["failures"] == 0, report
    # The peer saw every connection whole: the 5-byte request, then EOF.
    assert len(results) == DAEMON_CONNECTIONS
    assert all(r["bytes_received"] == 5 and r["recv_end"] == "EOF" for r in results), results
    with open(own) as f:
        content = f.read()
    return report, proc.pid, content


def _check_daemon_log(log, pid, content):
    """The log has every event of the daemon's connections; its own file
    has exactly its own lines."""
    want = "".join("conn %d done\n" % i for i in range(DAEMON_CONNECTIONS))
    assert content == want, "the program's own file changed: %r" % content[:2000]
    records = tdlib.read_log(log)
    mine = [r for r in records if r["pid"] == pid]
    assert len(mine) == len(records), "events from another process: %r" % records
    connects = [r for r in mine if r["event"] == "connect"]
    closes = [r for r in mine if r["event"] == "close"]
    assert len(connects) == DAEMON_CONNECTIONS and len(closes) == DAEMON_CONNECTIONS, records
    assert all(r["prog"] == "audit_daemon" and r["wire"] == "FIN" for r in closes), closes
    assert {r["local"] for r in connects} == {r["local"] for r in closes}


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_daemon_closing_every_fd_keeps_log_whole():
    """audit_daemon closes every descriptor from 3 up at start-up, four
    ways: a close() loop to 1023, closefrom(3), close_range(3, ~0U, 0), and
    close_range as a bare system call the library cannot see.  It then
    puts its own file on every free number from 700 to 900 (where the
    library's log descriptor was: 768 under a 1024-descriptor limit) and
    writes to it after each of its 20 connections.  Every time the log has
    all 20 connect and 20 close events, and the daemon's file holds
    exactly its own 20 lines.  closefrom() and close_range() step over the
    library's descriptor, which the daemon then finds taken (it fills one
    number fewer); the close() loop and the bare system call do close it,
    and the library opens the log again instead of writing into the
    daemon's file now at that number."""
    _check_daemon_built()
    window = 900 - 700 + 1
    for mode, kept in (("loop", False), ("closefrom", True), ("close_range", True),
                       ("raw", False)):
        log = os.path.join(tdlib.tmpdir(), "daemon-%s.jsonl" % mode)
        tdlib.diagnose_file(log, "audit log of the %s daemon" % mode)
        report, pid, content = _run_daemon(mode, log)
        assert report["filled"] == window - (1 if kept else 0), (mode, report)
        _check_daemon_log(log, pid, content)


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_dup2_over_log_fd_keeps_log_whole():
    """audit_daemon finds the library's log descriptor by name in
    /proc/self/fd and dup2()s its own file over it, then makes 20
    connections, writing to its file after each: the log still has all 40
    events, and the daemon's file exactly its own lines."""
    _check_daemon_built()
    log = os.path.join(tdlib.tmpdir(), "dup2log.jsonl")
    tdlib.diagnose_file(log, "audit log")
    report, pid, content = _run_daemon("dup2log", log, extra=[log])
    assert report["log_fd"] >= 3, report
    _check_daemon_log(log, pid, content)


DOWNWARD_CLOSER = r"""
import os, socket
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(8)
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
# every number, from the top down: the library's own fds go first, then
# the accepted socket, whose close (the active one) makes the library open
# a netlink socket before it writes that close's line
for fd in range(4095, 2, -1):
    try:
        os.close(fd)
    except OSError:
        pass
print("%d %d %d" % (l.fileno(), c.fileno(), a.fileno()), flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_own_fd_numbers_reused_by_another_of_ours():
    """A program closes every descriptor from the top down, its sockets
    last.  The library's log and netlink descriptors go first; the close
    of the accepted socket then opens a new netlink socket, which takes
    the lowest free high number: the log's old one.  The log must not
    take that number for its own (its line would go to the netlink socket
    and vanish): it opens the log again, and all six events are there,
    with no "dropped" count and nothing on stderr."""
    script = os.path.join(tdlib.tmpdir(), "downward.py")
    with open(script, "w") as f:
        f.write(DOWNWARD_CLOSER)
    log = os.path.join(tdlib.tmpdir(), "downward.jsonl")
    tdlib.diagnose_file(log, "audit log")
    proc = tdlib.run(["python3", script], env=_observe(log), name="downward", timeout=20)
    assert proc.rc == 0, proc.stderr()
    assert proc.stderr() == "", proc.stderr()
    recs = [json.loads(line) for line in open(log)]
    events = [(r["event"], r.get("role")) for r in recs]
    assert events == [("bind", "listener"), ("connect", "client"), ("accept", "server"),
                      ("close", "server"), ("close", "client"), ("close", "listener")], events
    assert recs[3]["closer"] == "active" and recs[3]["time_wait"] is True, recs[3]


# ---------------------------------------------------------------------------
# The log file itself
# ---------------------------------------------------------------------------

def _fd_open_on(pid, path):
    """The descriptor numbers of process ``pid`` that are open on ``path``."""
    fds = []
    base = "/proc/%d/fd" % pid
    for name in os.listdir(base):
        with contextlib.suppress(OSError):
            if os.readlink(os.path.join(base, name)) == path:
                fds.append(int(name))
    return fds


def _fd_flags(pid, fd):
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_log_file_mode_and_append():
    """A server and three clients under the library append to one log file
    at the same time.  The file is created mode 0600 (umask cleared); the
    server's log descriptor is open O_APPEND and close-on-exec, at a high
    number; every event of both sides is in the file (3 accepts, 3
    connects, a close for each of the 6 connections and for the
    listener), which a writer at its own offset would have overwritten.
    A second run appends after the first run's lines."""
    log = os.path.join(tdlib.tmpdir(), "shared.jsonl")
    tdlib.diagnose_file(log, "audit log")
    env = _observe(log)
    old_umask = os.umask(0)
    try:
        srv = tdlib.Server("--count", 3, "--read-until-eof", env=env)
    finally:
        os.umask(old_umask)
    fds = _fd_open_on(srv.proc.pid, log)
    assert len(fds) == 1, fds
    flags = _fd_flags(srv.proc.pid, fds[0])
    assert flags & os.O_APPEND and flags & 0o2000000, oct(flags)  # O_CLOEXEC
    assert fds[0] >= 768, fds
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600, oct(os.stat(log).st_mode)
    clients = [tdlib.run_client(srv.port, "--send", 10, env=env, name="client%d" % i).result
               for i in range(3)]
    srv.wait()
    with open(log) as f:
        first_run = f.read()
    records = _parse_lines(first_run, log)
    count = {}
    for rec in records:
        count[rec["event"]] = count.get(rec["event"], 0) + 1
    assert count == {"bind": 1, "accept": 3, "connect": 3, "close": 7}, count
    for res in clients:
        port = res["local_port"]
        sides = [r for r in records if r["event"] == "close" and port in (
            int(r["local"].rpartition(":")[2]),
            int((r["remote"] or ":0").rpartition(":")[2]))]
        assert len(sides) == 2, (port, sides)

    tdlib.run_client(srv.port, "--send", 10, env=env, name="late-client")  # refused
    with open(log) as f:
        second = f.read()
    assert second.startswith(first_run), "the second run did not append"
    late = _parse_lines(second[len(first_run):], log)
    assert [r["event"] for r in late] == ["connect", "close"], late
    assert late[0]["error"] == "ECONNREFUSED", late


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_log_symlink_not_followed():
    """A symlink planted at the log path is not followed: pointing at an
    existing file, that file is left as it was; dangling, its target is
    not created.  The program runs normally either way (its connection
    completes and the peer reads EOF)."""
    victim = os.path.join(tdlib.tmpdir(), "victim")
    with open(victim, "w") as f:
        f.write("precious\n")
    to_victim = os.path.join(tdlib.tmpdir(), "to-victim.jsonl")
    os.symlink(victim, to_victim)
    missing = os.path.join(tdlib.tmpdir(), "created-through-link")
    dangling = os.path.join(tdlib.tmpdir(), "dangling.jsonl")
    os.symlink(missing, dangling)
    srv = tdlib.Server("--count", 2, "--read-until-eof")
    for log in (to_victim, dangling):
        run = tdlib.run_client(srv.port, "--send", 10, env=_observe(log),
                               name="client-" + os.path.basename(log))
        assert run.rc == 0 and run.result["close_rc"] == 0, run.result
        assert run.result["connect_error"] is None, run.result
        assert os.path.islink(log)
    results = srv.results()
    assert [r["recv_end"] for r in results] == ["EOF", "EOF"], results
    with open(victim) as f:
        assert f.read() == "precious\n"
    assert not os.path.lexists(missing)


# ---------------------------------------------------------------------------
# syslog
# ---------------------------------------------------------------------------

# Run "$@" with LD_PRELOAD=$TD_PRELOAD in a private mount namespace whose
# /dev is a fresh tmpfs holding the usual character devices and, as
# /dev/log, the test's own datagram socket.  The host's /dev and /dev/log
# are never written: every mount is private to the namespace.
SYSLOG_SCRIPT = r"""
set -eu
mkdir -p "$TD_TMP/hostdev"
mount --bind /dev "$TD_TMP/hostdev"
mount -t tmpfs -o size=64k,mode=755 td-dev /dev
for n in null zero full random urandom; do
  touch "/dev/$n"
  mount --bind "$TD_TMP/hostdev/$n" "/dev/$n"
done
touch /dev/log
mount --bind "$TD_SOCK" /dev/log
exec env LD_PRELOAD="$TD_PRELOAD" "$@"
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_syslog_target_one_datagram_per_event():
    """Log target "syslog": in a private mount namespace /dev/log is the
    test's own AF_UNIX datagram socket.  A client makes 5 connections:
    exactly 10 datagrams arrive (5 connect, 5 close events), each one
    whole event: "<30>teardown[PID]: " (daemon.info) and one JSON object
    whose pid is PID, with the client's ports.  The host's /dev/log is
    untouched."""
    host_dev_log = os.path.lexists("/dev/log")
    # Datagram queues are short by default (10); this namespace is the
    # test's own, so its limit can be raised without touching the host.
    assert tdlib.in_netns()
    with open("/proc/sys/net/unix/max_dgram_qlen", "w") as f:
        f.write("1000\n")
    sock_path = os.path.join(tdlib.tmpdir(), "devlog.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(sock_path)
    try:
        count = 5
        srv = tdlib.Server("--count", count, "--read-until-eof")
        preload = tdlib.shim_env()["LD_PRELOAD"]
        env = tdlib.shim_env(policy=tdlib.policy_text(
            OBSERVE, None, log={"target": "syslog", "format": "json"}),
                             preload=False,
                             extra={"TD_TMP": tdlib.tmpdir(), "TD_SOCK": sock_path,
                                    "TD_PRELOAD": preload})
        run = tdlib.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                         SYSLOG_SCRIPT, "sh"] + tdlib.client_cmd(srv.port, "--count", count,
                                                                  "--send", 10),
                        env=env, name="client-syslog", timeout=20)
        assert run.rc == 0, run.stderr()
        client = tdlib.PeerRun(run)
        srv.wait()
        receiver.setblocking(False)
        datagrams = []
        with contextlib.suppress(BlockingIOError):
            while True:
                datagrams.append(receiver.recv(65536).decode())
    finally:
        receiver.close()
    tdlib.note("datagrams:", *["\n  " + d for d in datagrams])
    assert os.path.lexists("/dev/log") == host_dev_log
    assert len(datagrams) == 2 * count, datagrams
    prefix = "<30>teardown[%d]: " % run.pid
    events = []
    for d in datagrams:
        assert d.startswith(prefix), d
        body = d[len(prefix):]
        assert "\n" not in body, d
        rec = json.loads(body)
        assert rec["pid"] == run.pid and rec["prog"] == "tdpeer", rec
        events.append(rec)
    ports = {r["local_port"] for r in client.results}
    assert len(ports) == count
    for event in ("connect", "close"):
        mine = [e for e in events if e["event"] == event]
        assert {int(e["local"].rpartition(":")[2]) for e in mine} == ports, (event, mine)
