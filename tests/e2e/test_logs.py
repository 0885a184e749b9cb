"""Logs that reach operators: never lost in silence.

The set-ups that used to lose the whole audit without a word, each now
either working or saying why: a log file in a directory that does not
exist, a log file the program's user cannot write, syslog with no
/dev/log, stderr a Unix socket (journald's stream, what systemd gives
every service).  Then the targets operators use: journald's native
protocol (a listener of the test's own, and, in a private mount
namespace, a real systemd-journald read back with journalctl), logrotate
rotating a log under load, and `teardown report` on the forms logs take
afterwards (.gz parts, standard input, a log mixing the text and JSON
formats, Prometheus counters checked by promtool).
"""

import contextlib
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import time

import tdlib

NEEDS = ("root", "netns", "tdpeer", "lib", "teardown")

OBSERVE = [{"name": "observe", "close": "pass"}]
ABORT = [{"name": "cut", "close": "abort"}]


def _policy(rules, target, fmt="json", **log):
    settings = dict({"target": target, "format": fmt}, **log)
    if target.startswith("/"):
        tdlib.diagnose_file(target, "audit log %s" % target)
    return tdlib.policy_text(rules, None, log=settings)


def _write(name, text):
    path = os.path.join(tdlib.tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _teardown(*args, env=None, name="teardown", timeout=20):
    return tdlib.run([tdlib.teardown_cmd()] + [str(a) for a in args],
                     env=env or tdlib.shim_env(preload=False), name=name, timeout=timeout)


def _client(port, *args):
    return [tdlib.tdpeer(), "client", "--connect", "127.0.0.1:%d" % port, "--send", "10"] + \
        [str(a) for a in args]


def _stderr_lines(proc):
    return [l for l in proc.stderr().split("\n") if l]


def _warned(lines, target, err, count):
    """The two lines a lost log leaves: the first loss, with its reason,
    and at exit the count."""
    first = (r"teardown: cannot write the audit log to %s: %s \(.*\); lines that cannot be "
             r"written are counted, and the count is logged at exit \(event \"dropped\"\)"
             % (re.escape(target), err))
    last = r"teardown: %d audit lines? (was|were) not written to %s: %s \(.*\)" % (
        count, re.escape(target), err)
    return len(lines) == 2 and re.fullmatch(first, lines[0]) and re.fullmatch(last, lines[1])


@contextlib.contextmanager
def _journal_listener():
    """A datagram socket where the library sends journald's native
    protocol (TEARDOWN_JOURNAL_SOCKET): yields (path, receive), where
    receive() returns every datagram so far as a list of field dicts."""
    # datagram queues are short by default (10); this namespace is the test's own
    with open("/proc/sys/net/unix/max_dgram_qlen", "w") as f:
        f.write("1000\n")
    path = os.path.join(tdlib.tmpdir(), "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    got = []

    def receive():
        with contextlib.suppress(BlockingIOError):
            while True:
                got.append(_journal_fields(sock.recv(65536)))
        return got
    tdlib.add_diagnostic("journal datagrams", lambda: "\n".join(repr(d) for d in got))
    try:
        yield path, receive
    finally:
        sock.close()


def _journal_fields(data):
    """One native journal datagram, in the simple KEY=value form only (the
    library never needs the binary form): {key: value}."""
    text = data.decode("utf-8")
    assert text.endswith("\n"), text
    fields = {}
    for line in text[:-1].split("\n"):
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), "bad field %r in %r" % (line, text)
        assert key not in fields, "field %s twice in %r" % (key, text)
        fields[key] = value
    return fields


# ---------------------------------------------------------------------------
# The four silent set-ups
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_missing_log_directory_refused_or_counted():
    """config/audit.conf's target in a directory that does not exist.
    `teardown -c FILE -- CMD` refuses to run CMD: exit 125 and one line
    naming the path and the missing directory; `teardown check FILE`
    fails (exit 1) naming the file and the target.  Preloaded without the
    command, the program runs unchanged and stderr says, once, that the
    lines cannot be written and why, then at exit how many were not (2: a
    connect and a close)."""
    d = tdlib.tmpdir()
    log = os.path.join(d, "no", "such", "dir", "audit.jsonl")
    with open(os.path.join(tdlib.REPO_ROOT, "config", "audit.conf")) as f:
        conf = _write("audit.conf", f.read().replace("/var/log/teardown/audit.jsonl", log))
    marker = os.path.join(d, "ran")
    run = _teardown("-c", conf, "--", "sh", "-c", "touch %s" % marker, name="run")
    assert run.rc == 125, (run.rc, run.stderr())
    assert not os.path.exists(marker), "the command ran"
    assert re.fullmatch(r"teardown: cannot open the audit log %s: its directory %s does not exist"
                        r" \(create it, or choose another target with --log\); not running sh\n"
                        % (re.escape(log), re.escape(os.path.dirname(log))), run.stderr()), \
        run.stderr()
    check = _teardown("check", conf, name="check")
    assert check.rc == 1, (check.rc, check.stdout(), check.stderr())
    assert "%s: log.target: cannot create the audit log %s" % (conf, log) in check.stderr(), \
        check.stderr()
    assert _teardown("check", "--no-target", conf, name="check-no-target").rc == 0

    with tdlib.Server("--count", 1, "--read-until-eof") as srv:
        proc = tdlib.run(_client(srv.port), env=tdlib.shim_env(config=conf), name="preloaded")
        peer = srv.result()
    assert proc.rc == 0 and peer["recv_end"] == "EOF", (proc.rc, peer)
    assert _warned(_stderr_lines(proc), log, "ENOENT", 2), proc.stderr()
    assert not os.path.exists(os.path.join(d, "no"))


@tdlib.requires(*NEEDS, "setpriv")
@tdlib.timeout(30)
def test_unwritable_log_file_refused_or_counted():
    """The log file exists, mode 0600 and root's, and the program runs as
    nobody: `teardown --log FILE -- CMD` exits 125 with the reason
    (permission denied, naming the uid), `teardown check` fails; preloaded
    directly, the program runs unchanged, warns once and counts the 2 lines
    it could not write.  The file stays empty."""
    d = tdlib.tmpdir()
    os.chmod(d, 0o711)   # nobody may reach the file, not write it
    log = _write("root-only.jsonl", "")
    os.chmod(log, 0o600)
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]
    run = tdlib.run(nobody + [tdlib.teardown_cmd(), "--log", log, "--format", "json", "--",
                              "true"], env=tdlib.shim_env(preload=False), name="run")
    assert run.rc == 125, (run.rc, run.stderr())
    assert re.fullmatch(r"teardown: cannot open the audit log %s \(uid 65534\): Permission denied;"
                        r" not running true\n" % re.escape(log), run.stderr()), run.stderr()
    conf = _write("p.conf", _policy(OBSERVE, log))
    os.chmod(conf, 0o644)
    check = tdlib.run(nobody + [tdlib.teardown_cmd(), "check", conf],
                      env=tdlib.shim_env(preload=False), name="check")
    assert check.rc == 1 and "Permission denied" in check.stderr(), check.stderr()

    preload = tdlib.shim_env()["LD_PRELOAD"]
    with tdlib.Server("--count", 1, "--read-until-eof") as srv:
        env = tdlib.shim_env(config=conf, preload=False)
        proc = tdlib.run(nobody + ["env", "LD_PRELOAD=" + preload] + _client(srv.port),
                         env=env, name="preloaded")
        peer = srv.result()
    assert proc.rc == 0 and peer["recv_end"] == "EOF", (proc.rc, peer)
    assert _warned(_stderr_lines(proc), log, "EACCES", 2), proc.stderr()
    assert os.path.getsize(log) == 0


# /dev without /dev/log, in a private mount namespace: "$@" runs there,
# and LD_PRELOAD=$TD_PRELOAD reaches only the program of $TD_PRELOADED=1.
NO_DEVLOG_SCRIPT = r"""
set -eu
mkdir -p "$TD_TMP/hostdev"
mount --bind /dev "$TD_TMP/hostdev"
mount -t tmpfs -o size=64k,mode=755 td-dev /dev
for n in null zero full random urandom; do
  touch "/dev/$n"
  mount --bind "$TD_TMP/hostdev/$n" "/dev/$n"
done
test ! -e /dev/log
if [ "${TD_PRELOADED:-}" = 1 ]; then exec env LD_PRELOAD="$TD_PRELOAD" "$@"; fi
exec "$@"
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_syslog_without_dev_log_refused_or_counted():
    """No /dev/log (a private mount namespace with a fresh /dev):
    `teardown --log syslog -- CMD` exits 125 saying no syslog daemon
    listens there; preloaded with target syslog, the program runs
    unchanged and stderr says why its 2 lines were not written, and how
    many."""
    base = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", NO_DEVLOG_SCRIPT, "sh"]
    env = tdlib.shim_env(preload=False, extra={"TD_TMP": tdlib.tmpdir()})
    run = tdlib.run(base + [tdlib.teardown_cmd(), "--log", "syslog", "--", "true"], env=env,
                    name="run")
    assert run.rc == 125, (run.rc, run.stderr())
    assert run.stderr() == ("teardown: log target syslog: no syslog daemon listens on /dev/log "
                            "(No such file or directory); choose journal, a file or stderr; "
                            "not running true\n"), run.stderr()
    with tdlib.Server("--count", 1, "--read-until-eof") as srv:
        env = tdlib.shim_env(policy=_policy(OBSERVE, "syslog"), preload=False,
                             extra={"TD_TMP": tdlib.tmpdir(), "TD_PRELOADED": "1",
                                    "TD_PRELOAD": tdlib.shim_env()["LD_PRELOAD"]})
        proc = tdlib.run(base + _client(srv.port), env=env, name="preloaded")
        peer = srv.result()
    assert proc.rc == 0 and peer["recv_end"] == "EOF", (proc.rc, peer)
    assert _warned(_stderr_lines(proc), "syslog (/dev/log)", "ENOENT", 2), proc.stderr()


def _tcp_pair():
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    theirs = socket.create_connection(lst.getsockname())
    ours, _ = lst.accept()
    lst.close()
    return ours, theirs


def _run_with_stderr(cmd, stderr_sock, env, name):
    """Run cmd with stderr_sock as its fd 2; returns (rc, stdout)."""
    out = os.path.join(tdlib.tmpdir(), name + ".out")
    tdlib.note("$ %s  [%s]" % (" ".join(cmd), name))
    with open(out, "wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=stderr_sock.fileno(), stdin=subprocess.DEVNULL,
                            env=env, timeout=15).returncode
    with open(out) as f:
        return rc, f.read()


def _drain(sock):
    """Everything sent on sock's peer, up to its EOF."""
    sock.settimeout(10)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks).decode("utf-8", "replace")
        chunks.append(chunk)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_unix_socket_stderr_gets_events_tcp_socket_none():
    """stderr a Unix stream socket, as systemd gives every service (a
    socketpair here): `teardown -- CMD` (observe, text lines on stderr)
    writes the client's connect and close there, and a policy the library
    refuses gets its one warning line there.  stderr a TCP socket (inetd's
    client connection): nothing at all is written into it, and what could
    not be said there goes to the system log instead (the test's journal
    socket): the warning at the first lost line and, at exit, the count
    (2: the client's connect and close).  The TCP stderr itself is not
    ended by the program's exit, since this test still holds its own copy:
    the library closes the program's copy at exit and asks the kernel,
    which says so, and no end is logged (before, an exit event claimed a
    FIN and a TIME_WAIT that never came: the third line)."""
    bad = _write("bad.conf", 'version = 1;\nrules = ( { close = = "abort"; } );\n')
    with tdlib.Server("--count", 3, "--read-until-eof") as srv:
        ours, theirs = socket.socketpair()
        rc, out = _run_with_stderr([tdlib.teardown_cmd(), "--"] + _client(srv.port), theirs,
                                   tdlib.shim_env(preload=False), "unix-observe")
        theirs.close()
        text = _drain(ours)
        ours.close()
        assert rc == 0 and out.count('"event":"result"') == 1, (rc, out)
        lines = text.splitlines()
        assert [l.split()[3] for l in lines] == ["connect", "close"], text
        assert all(l.split()[2] == "tdpeer" for l in lines), text

        ours, theirs = socket.socketpair()
        rc, out = _run_with_stderr(_client(srv.port), theirs, tdlib.shim_env(config=bad),
                                   "unix-refused")
        theirs.close()
        text = _drain(ours)
        ours.close()
        assert rc == 0, rc
        assert re.fullmatch(r"teardown: %s:2: .*; running unchanged\n" % re.escape(bad), text), text

        with _journal_listener() as (jpath, receive):
            ours, theirs = _tcp_pair()
            env = tdlib.shim_env(policy=_policy(OBSERVE, "stderr", fmt="text"),
                                 extra={"TEARDOWN_JOURNAL_SOCKET": jpath})
            rc, out = _run_with_stderr(_client(srv.port), theirs, env, "tcp-observe")
            theirs.close()
            text = _drain(ours)
            ours.close()
            assert rc == 0 and out.count('"event":"result"') == 1, (rc, out)
            assert text == "", "written into the TCP stderr: %r" % text
            said = [d["MESSAGE"] for d in receive()]
            assert all(d["PRIORITY"] == "4" and d["SYSLOG_IDENTIFIER"] == "teardown"
                       for d in receive()), receive()
        assert len(said) == 2, said
        assert said[0].startswith("teardown: cannot write the audit log to stderr: EOPNOTSUPP "
                                  "(a network socket (inetd): never written to)"), said
        # the client's connect and close; not the TCP stderr's exit (above)
        assert said[1].startswith("teardown: 2 audit lines were not written to stderr"), said
        results = srv.results()
    assert [r["recv_end"] for r in results] == ["EOF"] * 3, results


# ---------------------------------------------------------------------------
# journald
# ---------------------------------------------------------------------------

REPLY = 2 * 1024 * 1024


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_journal_target_native_datagrams():
    """log.target = "journal", facility local3, the library pointed at the
    test's socket (TEARDOWN_JOURNAL_SOCKET): a server under "abort" cuts a
    2 MB reply its slow client cannot take.  Each event is one datagram of
    KEY=value fields: MESSAGE (the JSON line), PRIORITY, SYSLOG_FACILITY=19,
    SYSLOG_IDENTIFIER=teardown, and one TEARDOWN_<KEY> per non-null key of
    the line, with the line's values.  The RST that threw bytes away is
    PRIORITY 4 (warning) with TEARDOWN_WIRE=RST, TEARDOWN_WHY=policy and
    TEARDOWN_LOST > 0; the others are 6 (info)."""
    with _journal_listener() as (jpath, receive):
        env = tdlib.shim_env(policy=_policy(ABORT, "journal", facility="local3"),
                             extra={"TEARDOWN_JOURNAL_SOCKET": jpath})
        srv = tdlib.Server("--read", 100, "--send", REPLY, "--sndbuf", 4194304, env=env)
        cli = tdlib.run_client(srv.port, "--request", 100, "--rcvbuf", 4096,
                               "--read-delay", 300).result
        srv.wait()
        grams = list(receive())
    assert cli["recv_end"] == "ECONNRESET", cli
    assert [g.get("TEARDOWN_EVENT") for g in grams] == ["bind", "accept", "close", "close"], grams
    for g in grams:
        line = json.loads(g["MESSAGE"])
        assert g["SYSLOG_IDENTIFIER"] == "teardown" and g["SYSLOG_FACILITY"] == "19", g
        want = {"TEARDOWN_" + k.upper(): (v if isinstance(v, str) else json.dumps(v))
                for k, v in line.items() if v is not None}
        got = {k: v for k, v in g.items() if k.startswith("TEARDOWN_")}
        assert got == want, (got, want)
        assert line["pid"] == srv.proc.pid and line["v"] == 1 and line["host"], line
    accept, cut = grams[1], grams[2]
    assert accept["PRIORITY"] == "6" and accept["TEARDOWN_REMOTE"] == "127.0.0.1:%d" % \
        cli["local_port"], accept
    assert cut["TEARDOWN_ROLE"] == "server" and cut["TEARDOWN_WIRE"] == "RST", cut
    assert cut["TEARDOWN_WHY"] == "policy" and int(cut["TEARDOWN_LOST"]) > 0, cut
    assert cut["PRIORITY"] == "4", cut
    assert grams[3]["TEARDOWN_ROLE"] == "listener" and grams[3]["PRIORITY"] == "6", grams[3]


JOURNALD = "/lib/systemd/systemd-journald"

# A private systemd-journald: /run and /var/log are fresh tmpfs in a
# private mount namespace, so its sockets and its (volatile) journal are
# the test's alone.  "$@" runs under the library; then the entries are
# read back with journalctl, once journald has stored as many as expected.
JOURNALD_SCRIPT = r"""
set -eu
mount -t tmpfs td-run /run
mkdir -p /run/systemd/journal /run/log/journal
mount -t tmpfs td-varlog /var/log
"$TD_JOURNALD" >"$TD_TMP/journald.out" 2>&1 &
jpid=$!
i=0
while [ ! -S /run/systemd/journal/socket ]; do
  i=$((i + 1)); [ $i -lt 400 ] || { echo "journald did not start" >&2; exit 90; }
  sleep 0.05
done
env LD_PRELOAD="$TD_PRELOAD" "$@" >"$TD_TMP/client.out"
i=0
while :; do
  journalctl --sync 2>/dev/null || true
  journalctl -D /run/log/journal -o json SYSLOG_IDENTIFIER=teardown >"$TD_TMP/journal.json" || true
  [ "$(grep -c TEARDOWN_EVENT "$TD_TMP/journal.json")" -ge "$TD_WANT" ] && break
  i=$((i + 1)); [ $i -lt 200 ] || { echo "journald stored too few entries" >&2; break; }
  sleep 0.05
done
kill $jpid
"""


@tdlib.requires(*NEEDS, "journalctl")
@tdlib.timeout(60)
def test_journald_journalctl_json_read_by_report():
    """A real systemd-journald (private mount namespace): a client makes 5
    connections under "abort" with log.target = "journal"; `journalctl -o
    json` returns the 10 entries, and `teardown report --format json -`
    reads them from standard input: tdpeer made 5 connections, closed 5,
    all RST for the policy, and nothing was malformed."""
    if not os.access(JOURNALD, os.X_OK):
        tdlib.skip("needs %s (Debian package systemd)" % JOURNALD)
    n = 5
    d = tdlib.tmpdir()
    tdlib.diagnose_file(os.path.join(d, "journald.out"), "journald's output")
    tdlib.diagnose_file(os.path.join(d, "journal.json"), "journalctl -o json")
    with tdlib.Server("--count", n, "--read-until-eof") as srv:
        env = tdlib.shim_env(policy=_policy(ABORT, "journal", fmt="text"), preload=False,
                             extra={"TD_TMP": d, "TD_WANT": str(2 * n), "TD_JOURNALD": JOURNALD,
                                    "TD_PRELOAD": tdlib.shim_env()["LD_PRELOAD"]})
        proc = tdlib.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                          JOURNALD_SCRIPT, "sh"] + _client(srv.port, "--count", n),
                         env=env, name="journald", timeout=40)
        results = srv.results()
    assert proc.rc == 0, proc.stderr()
    assert [r["recv_end"] for r in results] == ["ECONNRESET"] * n, results
    with open(os.path.join(d, "journal.json"), "rb") as f:
        entries = f.read()
    rep = subprocess.run([tdlib.teardown_cmd(), "report", "--format", "json", "-"], input=entries,
                         capture_output=True, env=tdlib.shim_env(preload=False), timeout=20)
    assert rep.returncode == 0, rep.stderr
    report = json.loads(rep.stdout)
    tdpeer = report["tdpeer"]
    assert tdpeer["connections"] == n and tdpeer["closes"] == n, tdpeer
    assert tdpeer["RST"] == n and tdpeer["by_why"] == {"RST:policy": n}, tdpeer
    assert report["_malformed"] == 0 and report["_files"]["-"]["lines"] == 2 * n, report


# ---------------------------------------------------------------------------
# logrotate
# ---------------------------------------------------------------------------

LOADERS = 3


def _loaders(log, stop):
    prog = tdlib.test_prog("log_load")
    if not os.path.exists(prog):
        tdlib.skip("needs %s (make testprogs)" % prog)
    env = tdlib.shim_env(policy=_policy(OBSERVE, log))
    return [tdlib.spawn([prog, stop], env=env, name="load%d" % i) for i in range(LOADERS)]


def _count_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def _records(path, torn_tail=False):
    """The JSON records of path, every line whole.  torn_tail: a
    copytruncate copy, whose last line may be cut where the copy reached
    the end of a write still in progress (the kernel grows the file a
    page at a time while one write() copies in, and logrotate's read does
    not wait for it; its truncation then waits, and drops the rest): that
    one tail, and nothing else, is left out."""
    with open(path, "rb") as f:
        data = f.read()
    assert b"\0" not in data, "%s has NUL bytes (a write at a stale offset)" % path
    if torn_tail and data and not data.endswith(b"\n"):
        data = data[:data.rfind(b"\n") + 1]
    assert data == b"" or data.endswith(b"\n"), "%s ends mid-line" % path
    return [json.loads(l) for l in data.decode().splitlines()]


def _rotate(log, mode):
    conf = _write("logrotate.conf", "%s {\n    rotate 1\n    %s\n    missingok\n}\n" % (log, mode))
    state = os.path.join(tdlib.tmpdir(), "logrotate.state")
    r = subprocess.run(["logrotate", "-f", "-s", state, conf], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr


def _stop_loaders(procs, stop):
    open(stop, "w").close()
    cycles = {}
    for p in procs:
        assert p.wait(30) == 0, p.stdout()
        rep = p.json_lines()[-1]
        assert rep["failed"] == 0, rep
        cycles[p.pid] = rep["cycles"]
    return cycles


@tdlib.requires(*NEEDS, "logrotate")
@tdlib.timeout(90)
def test_logrotate_create_loses_nothing():
    """Three processes write a steady stream of events to one log file;
    logrotate (rename, then create) rotates it mid-load.  Nothing is lost:
    the lines of the file and of its rotated part add up to exactly the
    events the processes made (4 a cycle, 2 for the listener).  And once a
    process has noticed the rename (within 0.1 s), it never writes to the
    rotated part again: in each process, every connection number in the
    rotated part is below every one in the new file."""
    log = os.path.join(tdlib.tmpdir(), "rot.jsonl")
    stop = os.path.join(tdlib.tmpdir(), "stop")
    procs = _loaders(log, stop)
    try:
        tdlib.wait_until(lambda: os.path.exists(log) and _count_lines(log) >= 3000, timeout=30,
                         what="the log to fill")
        _rotate(log, "create")
        pids = {p.pid for p in procs}

        def every_process_in_new_file():
            with open(log, "rb") as f:
                seen = {int(m) for m in re.findall(rb'"pid":(\d+)', f.read())}
            return pids <= seen and len(seen) >= len(pids)
        tdlib.wait_until(every_process_in_new_file, timeout=30,
                         what="every process to write to the new file")
        tdlib.wait_until(lambda: _count_lines(log) >= 3000, timeout=30,
                         what="the new file to fill")
    finally:
        cycles = _stop_loaders(procs, stop)
    old, new = _records(log + ".1"), _records(log)
    made = sum(4 * c + 2 for c in cycles.values())
    tdlib.note("events made %d; rotated part %d lines, new file %d" % (made, len(old), len(new)))
    assert len(old) + len(new) == made, (len(old), len(new), made)
    for pid in pids:
        before = [r["conn"] for r in old if r["pid"] == pid and r["event"] == "connect"]
        after = [r["conn"] for r in new if r["pid"] == pid and r["event"] == "connect"]
        assert before and after, (pid, len(before), len(after))
        assert max(before) < min(after), (pid, max(before), min(after))


# A worker that gives up root, in phases the test drives with files in
# argv[1]: each phase makes CYCLES connect/accept/close cycles (6 lines:
# the listener's bind and close, connect, accept, two closes), then marks
# its end ("<phase>.done") and waits for the test's go ("<next>.go").
DROPPER = r"""
import os, socket, sys, time
d = sys.argv[1]
CYCLES = 3
def phase(name):
    for _ in range(CYCLES):
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
        c = socket.create_connection(l.getsockname()); s, _ = l.accept()
        s.close(); c.close(); l.close()
    open(os.path.join(d, name + ".done"), "w").close()
def go(name):
    while not os.path.exists(os.path.join(d, name + ".go")):
        time.sleep(0.01)
    time.sleep(0.15)   # past the log's path check (0.1 s)
phase("root"); go("drop")
os.setgid(65534); os.setuid(65534)
phase("dropped"); go("moved")
phase("moved"); go("removed")
phase("removed"); go("fixed")
phase("fixed")
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_worker_that_gave_up_root_follows_rotation_or_counts_lost_lines():
    """The log of a process that gives up root lies in a directory only
    root may write, and logrotate's "create" makes each new file root's
    alone (0600).  Rotated while the process is still root, the log is
    opened anew in setuid(), before the drop: its lines after the drop go
    to the new file, not the rotated one.  Rotated after the drop, the
    process cannot open the new file and goes on writing to the rotated
    one: nothing lost, one warning.  That file removed (logrotate's
    compress, a rotation later), the process's lines would go nowhere:
    they are counted as not written, said once (removed, the path cannot
    be opened, and what to do), and the count is in the "dropped" event
    at exit; once the new file is writable, the lines go there again.

    Catches: a worker's lines after the drop in the rotated file; lines
    written to a removed file, lost in silence."""
    d = os.path.join(tdlib.tmpdir(), "rootonly")
    os.mkdir(d, 0o755)
    os.chmod(tdlib.tmpdir(), 0o755)
    log = os.path.join(d, "audit.jsonl")
    ctl = os.path.join(tdlib.tmpdir(), "ctl")
    os.mkdir(ctl, 0o777)
    os.chmod(ctl, 0o777)
    script = _write("dropper.py", DROPPER)
    proc = tdlib.spawn(["python3", script, ctl],
                       env=tdlib.shim_env(policy=_policy(OBSERVE, log)), name="dropper")

    def step(done, go):
        tdlib.wait_until(lambda: os.path.exists(os.path.join(ctl, done + ".done")) or
                         not proc.running(), timeout=20, what=done)
        assert proc.running(), proc.stderr()
        return go

    def go(name):
        open(os.path.join(ctl, name + ".go"), "w").close()

    def new_file():
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)

    per_phase = 3 * 6

    def lines_in(path, n):
        # (a spool's lines reach the file within its flush interval)
        tdlib.wait_until(lambda: os.path.exists(path) and len(_records(path)) >= n,
                         timeout=10, what="%d lines in %s" % (n, path))
        return len(_records(path))

    step("root", "drop")
    lines_in(log, per_phase)
    os.rename(log, log + ".1")          # rotated while the process is root
    new_file()
    go("drop")
    step("dropped", "moved")
    assert lines_in(log, per_phase) == per_phase, "the lines after the drop"
    assert len(_records(log + ".1")) == per_phase, _records(log + ".1")
    os.rename(log, log + ".2")          # rotated after the drop
    new_file()
    go("moved")
    step("moved", "removed")
    assert lines_in(log + ".2", 2 * per_phase) == 2 * per_phase, "still the old file"
    assert _records(log) == []
    os.unlink(log + ".2")               # compressed away
    go("removed")
    step("removed", "fixed")
    time.sleep(0.2)     # (the spool's flush interval: written, or counted, by now)
    assert _records(log) == []
    os.chmod(log, 0o666)                # made writable for the process
    go("fixed")
    assert proc.wait(20) == 0, proc.stderr()
    recs = _records(log)
    dropped = [r for r in recs if r["event"] == "dropped"]
    assert [r["event"] for r in recs[:-1]].count("dropped") == 0, recs
    assert len(recs) == per_phase + 1 and len(dropped) == 1, recs
    assert dropped[0]["dropped"] == per_phase, dropped
    warned = _stderr_lines(proc)
    assert len([l for l in warned if "was removed after a rotation" in l]) == 1, warned
    assert len([l for l in warned if "still writing to the old file" in l]) == 1, warned
    assert not [l for l in warned if "cannot write the audit log" in l], warned


@tdlib.requires(*NEEDS, "logrotate")
@tdlib.timeout(90)
def test_logrotate_copytruncate_keeps_lines_whole():
    """The same load with logrotate's copytruncate: the log is opened
    O_APPEND, so after the truncation every process writes at the new end
    (no hole of NUL bytes where its old offset was); both files hold only
    whole JSON lines, the new one keeps growing, and no more lines exist
    than events were made (copytruncate itself may lose the lines written
    between its copy and its truncation, and its copy may end in the
    first part of such a write: that torn tail is logrotate's, left out;
    the CI run under ASan once caught it)."""
    log = os.path.join(tdlib.tmpdir(), "copy.jsonl")
    stop = os.path.join(tdlib.tmpdir(), "stop")
    procs = _loaders(log, stop)
    try:
        tdlib.wait_until(lambda: os.path.exists(log) and _count_lines(log) >= 3000, timeout=30,
                         what="the log to fill")
        ino = os.stat(log).st_ino
        _rotate(log, "copytruncate")
        assert os.stat(log).st_ino == ino
        tdlib.wait_until(lambda: _count_lines(log) >= 3000, timeout=30,
                         what="the truncated file to fill")
    finally:
        cycles = _stop_loaders(procs, stop)
    old, new = _records(log + ".1", torn_tail=True), _records(log)
    made = sum(4 * c + 2 for c in cycles.values())
    tdlib.note("events made %d; copy %d lines, truncated file %d" % (made, len(old), len(new)))
    assert len(old) + len(new) <= made
    assert len(new) >= 3000


# ---------------------------------------------------------------------------
# teardown report: .gz, stdin, text lines; Prometheus
# ---------------------------------------------------------------------------

def _make_log(fmt, rules, count, name):
    log = os.path.join(tdlib.tmpdir(), name)
    with tdlib.Server("--count", count, "--read-until-eof") as srv:
        run = tdlib.run(_client(srv.port, "--count", count),
                        env=tdlib.shim_env(policy=_policy(rules, log, fmt=fmt)), name=name)
        srv.wait()
    assert run.rc == 0, run.stderr()
    return log


def _report(*args, stdin=None):
    r = subprocess.run([tdlib.teardown_cmd(), "report"] + list(args), input=stdin,
                       capture_output=True, env=tdlib.shim_env(preload=False), timeout=20)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout.decode()


@tdlib.requires(*NEEDS, "gzip")
@tdlib.timeout(40)
def test_report_gz_stdin_and_mixed_formats():
    """`teardown report` on one log of 4 aborted connections given three
    ways (a .gz part, standard input, the plain file) counts the same; a
    log mixing those JSON lines with 3 text-format lines counts the JSON
    events and names the text lines apart ("text format: use format =
    json"), not as malformed."""
    log = _make_log("json", ABORT, 4, "json.log")
    text = _make_log("text", ABORT, 3, "text.log")   # 3 connects, 3 closes
    gz = log + ".1.gz"
    with open(log, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = json.loads(_report("--format", "json", log))
    assert plain["tdpeer"]["connections"] == 4 and plain["tdpeer"]["RST"] == 4, plain
    from_gz = json.loads(_report("--format", "json", gz))
    with open(log, "rb") as f:
        from_stdin = json.loads(_report("--format", "json", "-", stdin=f.read()))
    for rep in (from_gz, from_stdin):
        assert rep["tdpeer"] == plain["tdpeer"] and rep["_malformed"] == 0, rep
    assert from_gz["_files"][gz]["lines"] == plain["_files"][log]["lines"]

    mixed = os.path.join(tdlib.tmpdir(), "mixed.log")
    with open(mixed, "w") as out:
        for path in (log, text):
            with open(path) as f:
                out.write(f.read())
    rep = json.loads(_report("--format", "json", mixed))
    assert rep["tdpeer"] == plain["tdpeer"], rep
    assert rep["_text"] == 6 and rep["_malformed"] == 0, rep
    assert rep["_files"][mixed]["text"] == 6, rep
    out = _report(mixed)
    assert "0 malformed, 6 in the text format\n" in out, out
    assert "text format: use format = \"json\"" in out, out
    assert "%s: %d lines, 0 malformed, 6 text format: use format = json\n" % (
        mixed, plain["_files"][log]["lines"] + 6) in out, out


def _prom_samples(text):
    """name{labels} value lines into [(name, {label: value}, int)]."""
    samples = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.fullmatch(r'([a-z_]+)\{(.*)\} (\d+)', line)
        assert m, line
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        samples.append((m.group(1), labels, int(m.group(3))))
    return samples


@tdlib.requires(*NEEDS, "promtool")
@tdlib.timeout(60)
def test_prometheus_output_matches_json_report():
    """`teardown report --format prometheus` on logs of several programs and
    outcomes (RSTs that lose data, graceful FINs, refused connects, a
    lost-lines count) passes `promtool check metrics`, and every counter
    equals the JSON report's: connections by role, closes by wire and why,
    TIME_WAIT owned, bytes lost, leaks, faults, lines dropped."""
    d = tdlib.tmpdir()
    log = os.path.join(d, "fleet.jsonl")
    env = tdlib.shim_env(policy=_policy(ABORT, log))
    srv = tdlib.Server("--read", 100, "--send", REPLY, "--sndbuf", 4194304, env=env)
    tdlib.run_client(srv.port, "--request", 100, "--rcvbuf", 4096, "--read-delay", 300)
    srv.wait()
    graceful = [{"name": "fin", "close": "graceful",
                 "fault": {"connect_refuse": 0.5, "seed": 7}}]
    with tdlib.Server("--count", 6, "--read-until-eof") as s2:
        tdlib.run(_client(s2.port, "--count", 12), env=tdlib.shim_env(policy=_policy(graceful, log)),
                  name="graceful")
    with open(log, "a") as f:   # what a process that lost lines leaves at exit
        f.write(json.dumps({"v": 1, "prog": "nginx", "event": "dropped", "dropped": 17,
                            "target": "/x", "error": "ENOSPC"}) + "\n")
    prom = _report("--format", "prometheus", log)
    path = _write("metrics.prom", prom)
    tdlib.diagnose_file(path, "metrics")
    chk = subprocess.run(["promtool", "check", "metrics"], input=prom.encode(),
                         capture_output=True, timeout=30)
    assert chk.returncode == 0, (chk.stdout, chk.stderr)
    rep = json.loads(_report("--format", "json", log))
    samples = _prom_samples(prom)

    def value(name, **labels):
        got = [v for n, l, v in samples if n == name and l == labels]
        assert len(got) == 1, (name, labels, got)
        return got[0]
    progs = {l["prog"] for n, l, v in samples if "prog" in l}
    assert progs == {k for k in rep if not k.startswith("_")}, (progs, rep.keys())
    assert rep["tdpeer"]["faults"]["connect_refuse"] > 0, rep["tdpeer"]
    assert rep["tdpeer"]["lost"] > 0, rep["tdpeer"]
    for prog in progs:
        st = rep[prog]
        assert value("teardown_connections_total", prog=prog, role="client") == st["connects"]
        assert value("teardown_connections_total", prog=prog, role="server") == st["accepts"]
        closes = {(l["wire"], l["why"]): v for n, l, v in samples
                  if n == "teardown_closes_total" and l["prog"] == prog}
        assert closes == {tuple(k.replace("-", "unknown") if i else k
                                for i, k in enumerate(wk.split(":", 1))): v
                          for wk, v in st["by_why"].items()}, (closes, st["by_why"])
        assert sum(closes.values()) == st["closes"]
        assert value("teardown_time_wait_owned_total", prog=prog) == st["time_wait"]
        assert value("teardown_lost_bytes_total", prog=prog) == st["lost"]
        assert value("teardown_leaks_total", prog=prog) == st["leaks"]
        assert value("teardown_log_dropped_lines_total", prog=prog) == st["dropped"]
        for kind, n in st["faults"].items():
            assert value("teardown_faults_total", prog=prog, fault=kind) == n
    assert value("teardown_log_dropped_lines_total", prog="nginx") == 17
