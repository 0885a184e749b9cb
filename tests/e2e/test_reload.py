"""Live policy changes: a running program's policy file is rewritten.

The server is a small threaded Python program under the library, pointed
at a policy file (TEARDOWN_CONFIG); each connection it accepts is read to
the client's EOF and then closed.  The clients run without the library,
so every RST on the wire from the server's port is the server's doing.
"""

import os
import socket
import threading
import time

import tdlib

NEEDS = ("root", "netns", "tcpdump", "lib")
PYTHON = "/usr/bin/python3"
PORT = 20070

# the listener both servers start with, on the port in argv[1]
LISTEN = r"""
import os, socket, sys, threading
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print("listening", flush=True)
"""

SERVER = LISTEN + r"""
def serve(c):
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def _policy(path, log, close, extra=""):
    text = ('version = 1;\nlog = { target = "%s"; format = "json"; };\n'
            'rules = ( { name = "srv-%s"; match = { role = "server"; }; close = "%s";%s } );\n'
            % (log, close, close, extra))
    # write then rename: the library never reads a half-written file
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def _server(conf, program=None, name="server.py"):
    """The server (SERVER, or program) under the policy file, listening."""
    src = os.path.join(tdlib.tmpdir(), name)
    with open(src, "w") as f:
        f.write(program or SERVER)
    proc = tdlib.spawn([PYTHON, src, str(PORT)], env=tdlib.shim_env(config=conf), name="server")
    tdlib.wait_until(lambda: "listening" in proc.stdout() or not proc.running(), timeout=10,
                     what="the server listening")
    assert proc.running(), proc.stderr()
    return proc


def _connect():
    c = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    c.sendall(b"x" * 10)
    return c


def _watched(log):
    """One more connection, closed at once, and its accept logged: from a
    process's second connect or accept on (no fork between), the worker
    watches its policy file, so a change lands while it sits in accept()
    (shim/rt/reload.c: a fork-per-connection server is left single-
    threaded and looks at its next accept instead)."""
    n = len(_events(log, "accept"))
    c = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    c.close()
    tdlib.wait_until(lambda: len(_events(log, "accept")) > n, timeout=5,
                     what="the accept that starts the watcher")


def _events(log, event, **where):
    try:
        recs = tdlib.read_log(log)
    except (OSError, ValueError):
        return []
    return [r for r in recs if r["event"] == event
            and all(r.get(k) == v for k, v in where.items())]


def _close_events(log, port):
    return [r for r in _events(log, "close", role="server") if tdlib.port_of(r["remote"]) == port]


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_changed_policy_applies_to_new_connections_only():
    """A server under close = "graceful" whose policy file is changed to
    "abort": the connection opened before the change still ends with the
    server's FIN, the one opened after with its RST, and the log has a
    "policy" event (applied, with the new text's hash and rule count)
    between them.

    Catches: a policy read only at start-up, and a reload that changes
    connections already decided (they keep the rule they started with)."""
    conf = os.path.join(tdlib.tmpdir(), "policy.conf")
    log = os.path.join(tdlib.tmpdir(), "log.jsonl")
    _policy(conf, log, "graceful")
    with tdlib.Capture() as cap:
        srv = _server(conf)
        old = _connect()
        tdlib.wait_until(lambda: _events(log, "accept"), timeout=5, what="the first accept")
        _watched(log)
        time.sleep(0.05)  # mtime granularity: the rewrite must look different
        _policy(conf, log, "abort")
        tdlib.wait_until(lambda: _events(log, "policy"), timeout=10, what="the policy event")
        new = _connect()
        new_port = new.getsockname()[1]
        new.shutdown(socket.SHUT_WR)
        tdlib.wait_until(lambda: _close_events(log, new_port), timeout=5, what="new close")
        old_port = old.getsockname()[1]
        old.shutdown(socket.SHUT_WR)
        tdlib.wait_until(lambda: _close_events(log, old_port), timeout=5, what="old close")
        old.close()
        new.close()
        srv.kill()
    pol = _events(log, "policy")
    assert len(pol) == 1 and pol[0]["applied"] is True and pol[0]["rules"] == 1, pol
    assert len(pol[0]["hash"]) == 16 and pol[0]["problem"] is None, pol
    assert pol[0]["source"] == conf, pol
    (nc,) = _close_events(log, new_port)
    (oc,) = _close_events(log, old_port)
    assert (nc["action"], nc["wire"]) == ("abort", "RST"), nc
    assert (oc["action"], oc["wire"]) == ("graceful", "FIN"), oc
    assert cap.rst_from(PORT, new_port) and not cap.rst_from(PORT, old_port)
    assert cap.fin_from(PORT, old_port)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_broken_policy_keeps_the_old_one():
    """A running server's policy file replaced by one with a syntax error:
    one warning on stderr naming file:line, a "policy" event with applied
    false and the problem, and the old policy still decides (abort)."""
    conf = os.path.join(tdlib.tmpdir(), "policy.conf")
    log = os.path.join(tdlib.tmpdir(), "log.jsonl")
    _policy(conf, log, "abort")
    with tdlib.Capture() as cap:
        srv = _server(conf)
        first = _connect()
        first.close()
        tdlib.wait_until(lambda: _events(log, "close"), timeout=5, what="the first close")
        _watched(log)
        time.sleep(0.05)
        with open(conf + ".tmp", "w") as f:
            f.write('version = 1;\nrules = ( { close = = "graceful"; } );\n')
        os.rename(conf + ".tmp", conf)
        tdlib.wait_until(lambda: _events(log, "policy"), timeout=10, what="the policy event")
        time.sleep(1.5)  # a second look at the same broken file must stay silent
        c = _connect()
        port = c.getsockname()[1]
        c.shutdown(socket.SHUT_WR)
        tdlib.wait_until(lambda: _close_events(log, port), timeout=5, what="the close")
        c.close()
        srv.kill()
    (pol,) = _events(log, "policy")
    assert pol["applied"] is False and "%s:2: syntax error" % conf in pol["problem"], pol
    warnings = [l for l in srv.stderr().splitlines() if l.startswith("teardown: ")]
    assert len(warnings) == 1, srv.stderr()
    assert "%s:2: syntax error" % conf in warnings[0], warnings
    assert "keeping the policy in force" in warnings[0], warnings
    (close,) = _close_events(log, port)
    assert (close["action"], close["wire"]) == ("abort", "RST"), close
    assert cap.rst_from(PORT, port)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_reset_open_resets_every_open_connection_once():
    """A server holding 20 open client connections under "pass"; its
    policy file is changed to a rule with fault.reset_open = true: all 20
    are reset (each client reads ECONNRESET), each with a fault event
    "reset_open", and a connection made afterwards is left alone (the
    rule resets what is open when the policy lands, nothing more)."""
    conf = os.path.join(tdlib.tmpdir(), "policy.conf")
    log = os.path.join(tdlib.tmpdir(), "log.jsonl")
    _policy(conf, log, "pass")
    clients = []
    with tdlib.Capture() as cap:
        srv = _server(conf)
        for _ in range(20):
            clients.append(_connect())
        ports = [c.getsockname()[1] for c in clients]
        tdlib.wait_until(lambda: len(_events(log, "accept")) == 20, timeout=10,
                         what="20 accepts")
        time.sleep(0.05)
        _policy(conf, log, "pass", " fault = { reset_open = true; };")
        tdlib.wait_until(lambda: len(_events(log, "fault", fault="reset_open")) == 20,
                         timeout=10, what="20 reset_open faults")
        results = []
        for c in clients:
            c.settimeout(5)
            try:
                results.append(c.recv(100))
            except ConnectionResetError:
                results.append("ECONNRESET")
            c.close()
        later = _connect()
        lport = later.getsockname()[1]
        later.shutdown(socket.SHUT_WR)
        tdlib.wait_until(lambda: _close_events(log, lport), timeout=5, what="the later close")
        later.close()
        srv.kill()
    assert results == ["ECONNRESET"] * 20, results
    faults = _events(log, "fault", fault="reset_open")
    assert {tdlib.port_of(f["remote"]) for f in faults} == set(ports), faults
    for f in faults:
        assert cap.rst_from(PORT, tdlib.port_of(f["remote"])), f
    (lc,) = _close_events(log, lport)
    assert lc["wire"] == "FIN" and not cap.rst_from(PORT, lport), lc


FORK_SERVER = LISTEN + r"""
while True:
    c, _ = s.accept()
    if os.fork() == 0:
        s.close()
        while c.recv(4096):
            pass
        c.close()
        os._exit(0)
    c.close()
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
"""


def _threads(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_fork_per_connection_server_keeps_one_thread_and_still_reloads():
    """A fork-per-connection server under a policy file: after three
    connections the parent still has one thread (no watcher: every fork
    of a process with a second thread costs it more), and a change of the
    file still lands, at its next accept a second on: a "policy" event,
    and the connection after it decided by the new rule.

    Catches: a watcher thread started in a forking server (busybox httpd
    served 0.68 of bare under a policy file against 0.80 under the same
    text in TEARDOWN_POLICY), and a forking server that never sees a
    change."""
    conf = os.path.join(tdlib.tmpdir(), "policy.conf")
    log = os.path.join(tdlib.tmpdir(), "log.jsonl")
    _policy(conf, log, "graceful")
    srv = _server(conf, FORK_SERVER, "fork_server.py")
    try:
        for i in range(3):
            c = _connect()
            c.close()
            tdlib.wait_until(lambda: len(_events(log, "accept")) > i, timeout=5,
                             what="accept %d" % (i + 1))
        assert _threads(srv.pid) == 1, srv.stderr()
        time.sleep(0.05)
        _policy(conf, log, "abort")
        time.sleep(1.1)   # the accept path looks at most once a second
        c = _connect()
        c.close()
        tdlib.wait_until(lambda: _events(log, "policy"), timeout=10, what="the policy event")
        c = _connect()
        port = c.getsockname()[1]
        c.close()
        tdlib.wait_until(lambda: [r for r in _events(log, "accept")
                                  if tdlib.port_of(r["remote"]) == port],
                         timeout=5, what="the last accept")
    finally:
        srv.kill()
    (pol,) = _events(log, "policy")
    assert pol["applied"] is True, pol
    (acc,) = [r for r in _events(log, "accept") if tdlib.port_of(r["remote"]) == port]
    assert acc["action"] == "abort", acc

