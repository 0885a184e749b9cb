"""The core actions under the library: close = pass, graceful, drain and
abort, for a client rule and for a server rule; shutdown = half and skip;
fin_timeout_s; reuseaddr.

Every test runs a real tdpeer client and a real tdpeer server on loopback
in the test's own network namespace.  One side runs under the library with
the rule under test; the other side is the plain peer, whose result line
says how its connection ended (EOF or ECONNRESET, bytes received).  Each
test checks that view together with the packets (tcpdump: FIN or RST, and
from which side), the socket table (ss: who holds TIME_WAIT) and the
library's JSON audit log, which must agree with the wire.  The matching
baseline scenarios, without the library, are in test_baseline.py.
"""

import os
import re
import subprocess

import tdlib

NEEDS = ("root", "netns", "tcpdump", "tdpeer", "lib")

# The reply of the data-loss scenario of test_baseline.py: large enough
# that most of it is still in the server's send queue when it closes.
BIG_REPLY = 2 * 1024 * 1024


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _policy_env(rules, name="td", **top):
    """Return (environment with the library and the policy, JSON log path).

    Each call gets its own log file, so a test that runs several policies
    can tell their events apart.
    """
    log = os.path.join(tdlib.tmpdir(), "%s.jsonl" % name)
    n = 1
    while os.path.exists(log):
        n += 1
        log = os.path.join(tdlib.tmpdir(), "%s.%d.jsonl" % (name, n))
    open(log, "w").close()
    return tdlib.shim_env(policy=tdlib.policy_text(rules, log, **top)), log


def _rule(role, close="pass", **extra):
    """One rule matching every connection of ``role`` ("client"/"server")."""
    rule = {"name": "%s-%s" % (role, close), "match": {"role": role}, "close": close}
    rule.update(extra)
    return rule


def _events(log, event, local_port=None, remote_port=None):
    """The log's events of type ``event``, optionally for one connection."""
    return [r for r in tdlib.read_log(log) if r["event"] == event
            and (local_port is None or tdlib.port_of(r["local"]) == local_port)
            and (remote_port is None or tdlib.port_of(r["remote"]) == remote_port)]


def _one_event(log, event, **ports):
    """The single ``event`` of one connection (AssertionError otherwise)."""
    found = _events(log, event, **ports)
    assert len(found) == 1, "want one %s event for %r, got %r" % (event, ports, found)
    return found[0]


def _assert_close_event(ev, wire, why, **fields):
    """The close event says ``wire``/``why`` and every other field given."""
    assert ev["wire"] == wire and ev["why"] == why, ev
    for key, want in fields.items():
        assert ev[key] == want, "%s: want %r, got %r in %r" % (key, want, ev[key], ev)


_ts = tdlib.ts_seconds


def _proc_fds(pid):
    """Map fd number -> link target of every open fd of process ``pid``."""
    base = "/proc/%d/fd" % pid
    fds = {}
    for name in os.listdir(base):
        try:
            fds[int(name)] = os.readlink(os.path.join(base, name))
        except FileNotFoundError:
            pass
    return fds


def _netlink_inodes(pid):
    """Inodes of the netlink sockets in ``pid``'s namespace (the library
    keeps a few sock_diag ones for its "who closed first" lookups)."""
    inodes = set()
    try:
        with open("/proc/%d/net/netlink" % pid) as f:
            next(f)
            for line in f:
                inodes.add(line.split()[-1])
    except OSError:
        pass
    return inodes


def _sockets_of(pid):
    """The fds of ``pid`` that are network sockets (netlink ones left out),
    as {fd: "socket:[inode]"}."""
    netlink = _netlink_inodes(pid)
    return {fd: t for fd, t in _proc_fds(pid).items()
            if t.startswith("socket:") and t[len("socket:["):-1] not in netlink}


# ---------------------------------------------------------------------------
# pass
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_pass_client_keeps_programs_choice():
    """close = "pass" on a client rule: the program's own choice stands.

    A client that set SO_LINGER {1,0} still resets (RST, no TIME_WAIT,
    the server reads ECONNRESET), and a plain one still sends FIN (TIME_WAIT
    on the client, EOF at the server).  The log reports both, the reset
    as why=linger0: the program's doing, not the policy's.
    """
    env, log = _policy_env([_rule("client", "pass")])
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--read-until-eof")
        rst = tdlib.run_client(srv.port, "--send", 100, "--linger", "1,0", env=env,
                               name="client-linger0").result
        fin = tdlib.run_client(srv.port, "--send", 100, env=env, name="client-plain").result
        by_peer = {r["remote_port"]: r for r in srv.results()}
    tdlib.check_connected(rst, fin)
    rport, fport = rst["local_port"], fin["local_port"]
    assert cap.teardown_flags(rport, srv.port) == "RST" and not cap.fin_from(rport)
    assert cap.teardown_flags(fport, srv.port) == "FIN" and not cap.rst_from(fport)
    assert by_peer[rport]["recv_end"] == "ECONNRESET", by_peer[rport]
    assert by_peer[fport]["recv_end"] == "EOF" and by_peer[fport]["bytes_received"] == 100
    tw = {r.local_port for r in tdlib.time_wait_on()}
    assert fport in tw and rport not in tw, tw
    _assert_close_event(_one_event(log, "close", local_port=rport), "RST", "linger0",
                        action="pass", role="client", app_linger="1,0", time_wait=False)
    _assert_close_event(_one_event(log, "close", local_port=fport), "FIN", "close",
                        action="pass", role="client", closer="active", time_wait=True)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_pass_server_keeps_programs_choice():
    """close = "pass" on a server rule: a server that closes first with
    SO_LINGER {1,0} resets the connection (the client reads ECONNRESET, no
    TIME_WAIT anywhere); the same server without it sends FIN and keeps
    TIME_WAIT on its own port, and the client reads EOF."""
    env, log = _policy_env([_rule("server", "pass")])
    with tdlib.Capture() as cap:
        srv_rst = tdlib.Server("--send", 10, "--linger", "1,0", env=env, name="server-linger0")
        rst = tdlib.run_client(srv_rst.port, "--read-until-eof", name="client-1").result
        srv_fin = tdlib.Server("--send", 10, env=env, name="server-plain")
        fin = tdlib.run_client(srv_fin.port, "--read-until-eof", name="client-2").result
        srv_rst.wait()
        srv_fin.wait()
    tdlib.check_connected(rst, fin)
    # Both ports every time, on the wire, in ss and in the log (which both
    # servers write): the second server may get the first one's port once
    # it is gone, and the two clients (of different servers) the same
    # local port.  Each server served one connection.
    assert cap.teardown_flags(srv_rst.port, rst["local_port"]) == "RST"
    assert not cap.fin_from(srv_rst.port, rst["local_port"])
    assert rst["recv_end"] == "ECONNRESET", rst
    assert cap.teardown_flags(srv_fin.port, fin["local_port"]) == "FIN"
    assert cap.count_rst(srv_fin.port, fin["local_port"]) == 0
    assert cap.count_rst(fin["local_port"], srv_fin.port) == 0
    assert fin["recv_end"] == "EOF" and fin["bytes_received"] == 10 and fin["data_ok"], fin
    assert tdlib.time_wait_on(srv_fin.port, fin["local_port"]), \
        "the plain server closed first: its TIME_WAIT"
    assert not tdlib.time_wait_on(srv_rst.port, rst["local_port"])
    assert not tdlib.time_wait_on(rst["local_port"], srv_rst.port)
    _assert_close_event(_one_event(log, "close", local_port=srv_rst.port,
                                   remote_port=rst["local_port"]), "RST",
                        "linger0", action="pass", role="server", time_wait=False)
    _assert_close_event(_one_event(log, "close", local_port=srv_fin.port,
                                   remote_port=fin["local_port"]), "FIN",
                        "close", action="pass", role="server", closer="active",
                        time_wait=True)


# ---------------------------------------------------------------------------
# graceful
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_graceful_client_undoes_linger_zero():
    """close = "graceful" on a client rule: a client that sets SO_LINGER
    {1,0} (which alone resets: test_baseline) sends FIN instead, keeps
    TIME_WAIT, and the server reads every byte and then EOF.  The log
    reports the program's linger and says the FIN is the policy's doing."""
    env, log = _policy_env([_rule("client", "graceful")])
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        cli = tdlib.run_client(srv.port, "--send", 100, "--linger", "1,0", env=env).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    assert cli["close_rc"] == 0, cli
    assert cap.teardown_flags(cport, srv.port) == "FIN"
    assert cap.count_rst() == 0
    assert cap.first_fin().sport == cport
    assert srv_res["recv_end"] == "EOF" and srv_res["bytes_received"] == 100, srv_res
    tw = tdlib.time_wait_on(cport)
    assert len(tw) == 1 and tw[0].peer_port == srv.port, tw
    assert counters["TcpOutRsts"] == 0 and counters["TcpExtTCPAbortOnData"] == 0
    assert _one_event(log, "linger", local_port=cport)["app_linger"] == "1,0"
    _assert_close_event(_one_event(log, "close", local_port=cport), "FIN", "policy",
                        action="graceful", role="client", closer="active",
                        app_linger="1,0", time_wait=True)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_graceful_server_unread_input_gets_fin():
    """close = "graceful" on a server rule: a server that closes with the
    client's 100 bytes unread, which the kernel answers with an RST
    (test_baseline), sends FIN instead: the client reads the reply and
    EOF, the kernel counts no abort, and the server keeps TIME_WAIT.  The
    log says why=policy with unread=100."""
    env, log = _policy_env([_rule("server", "graceful")])
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server("--wait-input", "--no-read", "--send", 10, env=env)
        cli = tdlib.run_client(srv.port, "--send", 100, "--read-until-eof").result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    assert srv_res["bytes_received"] == 0 and srv_res["close_rc"] == 0, srv_res
    cport = cli["local_port"]
    assert cap.teardown_flags(srv.port, cport) == "FIN"
    assert cap.count_rst() == 0
    assert cli["recv_end"] == "EOF" and cli["bytes_received"] == 10 and cli["data_ok"], cli
    assert counters["TcpExtTCPAbortOnClose"] == 0 and counters["TcpOutRsts"] == 0
    assert tdlib.time_wait_on(srv.port), "the server closed first: TIME_WAIT is its own"
    _assert_close_event(_one_event(log, "close", remote_port=cport), "FIN", "policy",
                        action="graceful", role="server", closer="active", unread=100,
                        time_wait=True)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_graceful_server_refuses_listener_linger_at_accept():
    """close = "graceful" on a server rule, for a server that set SO_LINGER
    {1,0} on its listening socket, which every accepted connection
    inherits in the kernel, and that then dies by SIGKILL.

    SIGKILL runs no library code, so nothing can happen at close time: the
    FIN can only come from the option the library put into the socket
    when it accepted the connection.  Without the library the same server
    resets (the first half); under graceful it sends FIN, keeps TIME_WAIT,
    and the client reads the reply and EOF.  The log has the accept and no
    close or exit event (no library code ran at the end).
    """
    server = ["--linger-listener", "1,0", "--send", 10, "--close", "kill"]
    with tdlib.Capture(name="tcpdump-plain") as cap0:
        srv0 = tdlib.Server(*server, name="server-plain")
        cli0 = tdlib.run_client(srv0.port, "--read-until-eof", name="client-plain").result
        srv0.wait()
    tdlib.check_connected(cli0)
    assert cap0.teardown_flags(srv0.port, cli0["local_port"]) == "RST"
    assert cli0["recv_end"] == "ECONNRESET", cli0

    env, log = _policy_env([_rule("server", "graceful")])
    with tdlib.Capture() as cap:
        srv = tdlib.Server(*server, env=env)
        cli = tdlib.run_client(srv.port, "--read-until-eof").result
        srv.wait()
    tdlib.check_connected(cli)
    cport = cli["local_port"]
    assert cap.teardown_flags(srv.port, cport) == "FIN"
    assert cap.count_rst() == 0
    assert cli["recv_end"] == "EOF" and cli["bytes_received"] == 10 and cli["data_ok"], cli
    assert tdlib.time_wait_on(srv.port), "the server closed first: TIME_WAIT is its own"
    _one_event(log, "accept", remote_port=cport)
    assert _events(log, "close", remote_port=cport) == []
    assert _events(log, "exit", remote_port=cport) == []


# ---------------------------------------------------------------------------
# drain
# ---------------------------------------------------------------------------

def _lost_reply_scenario(env, name):
    """test_baseline's data-loss scenario: the server ignores the 100-byte
    request, writes a 2 MB reply and closes at once; the client reads
    slowly through a small receive buffer.  The server is kept alive for a
    while after its close (--hold), as a real server would be, so that its
    file descriptors can be inspected.  Returns (the Server, the client's Proc)."""
    srv = tdlib.Server("--wait-input", "--no-read", "--send", BIG_REPLY, "--sndbuf", 4194304,
                       "--hold", 800, env=env, name="server-" + name)
    cli = tdlib.start_client(srv.port, "--request", 100, "--rcvbuf", 4096, "--read-delay", 300,
                             name="client-" + name)
    return srv, cli


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_drain_server_delivers_the_whole_reply():
    """close = "drain" on a server rule saves the reply that an unread
    request costs without the library.

    Without the library (the first half, as in test_baseline) the close
    with unread input is an RST that throws away the unsent part of the
    2 MB reply: the client gets less and then ECONNRESET.  With the drain
    the server's close() returns at once (its close_ms is reported below,
    not asserted) and its descriptor number is free at once: while the
    client is still reading, the number the program closed is no longer
    open in the server and the socket is held only by the library's own
    high descriptor.  The client receives all 2 MB and then EOF; the FIN
    comes after the last byte and no RST is sent.  The worker writes the
    close event when the drain ends: wire=FIN why=policy, with the closing
    thread's tid.
    """
    # Without the library: the reply is lost.
    with tdlib.Capture(snaplen=128, name="tcpdump-plain") as cap0:
        srv0, cli0 = _lost_reply_scenario(tdlib.shim_env(preload=False), "plain")
        cli0.wait(15)
    lost = tdlib.PeerRun(cli0).result
    assert lost["recv_end"] == "ECONNRESET" and lost["bytes_received"] < BIG_REPLY, lost
    assert cap0.teardown_flags(srv0.port, lost["local_port"]) == "RST"
    srv0.proc.kill()

    env, log = _policy_env([_rule("server", "drain")])
    with tdlib.Capture(snaplen=128) as cap:
        srv, cli = _lost_reply_scenario(env, "drain")
        closed = srv.proc.wait_for_json(lambda r: r.get("event") == "result", timeout=10,
                                        what="its result line")
        # Right after the program's close() returned, the drain still runs:
        # the client is in its 300 ms read delay.
        sockets = _sockets_of(srv.proc.pid)
        client_still_reading = cli.running()
        cli.wait(15)
        # The drain ends with the client's FIN, while the server still
        # runs: the event comes from the worker, not from the exit.
        tdlib.wait_until(lambda: _events(log, "close", remote_port=closed["remote_port"]),
                         timeout=5, what="the drain's close event")
        ended_before_exit = srv.proc.running()
        srv.wait(10)
    res = tdlib.PeerRun(cli).result
    tdlib.check_connected(res, closed)
    tdlib.note("server close() took %.3f ms under drain" % closed["close_ms"])
    assert closed["close_rc"] == 0 and closed["bytes_sent"] == BIG_REPLY, closed
    accept = _one_event(log, "accept", remote_port=res["local_port"])
    program_fd = accept["fd"]
    assert client_still_reading, "the client ended before the drain could be inspected"
    assert program_fd not in sockets, (
        "fd %d, which the program closed, is still open: %r" % (program_fd, sockets))
    assert len(sockets) == 1 and min(sockets) > program_fd, (
        "the drain should hold the socket on one library fd: %r" % sockets)
    # The peer's view and the wire.
    assert res["bytes_received"] == BIG_REPLY and res["data_ok"], res
    assert res["recv_end"] == "EOF", res
    assert cap.count_rst() == 0
    from_server = cap.from_port(srv.port, res["local_port"])
    fin = next(p for p in from_server if p.fin)
    assert all(p.ts <= fin.ts for p in from_server if p.length > 0), "data after the FIN"
    assert tdlib.time_wait_on(srv.port), "the server's FIN came first: TIME_WAIT is its own"
    ev = _one_event(log, "close", remote_port=res["local_port"])
    _assert_close_event(ev, "FIN", "policy", action="drain", role="server", fd=program_fd,
                        unread=100, closer="active", time_wait=True)
    assert ev["tid"] == srv.proc.pid, "the close event names the closing thread: %r" % ev
    assert ended_before_exit, "the drain should end with the peer's FIN, not at exit"
    assert ev["bytes_out"] == BIG_REPLY, ev


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_drain_client_absorbs_data_sent_after_its_close():
    """close = "drain" on a client rule: a client that reads the first 4 KB
    of a streamed reply and closes while the server keeps writing.

    Without the library the server's next segment reaches a closed socket,
    which answers with an RST (TCPAbortOnData), so the server's writes fail
    (EPIPE or ECONNRESET) and it never sends everything.  With the drain
    the client's close() returns at once, its FIN goes out, and the
    library keeps reading in the background until the server's FIN: the
    server writes all 64 KB, reads EOF, and no RST is sent at all.  The
    client process stays alive meanwhile (--hold), as a real program
    would; the drain ends with the server's FIN, not with the process.
    """
    stream = ["--read", 100, "--send", 65536, "--write-chunk", 4096, "--write-delay", 10,
              "--read-until-eof"]
    client = ["--request", 100, "--read", 4096]

    with tdlib.nstat_delta() as counters0, tdlib.Capture(name="tcpdump-plain") as cap0:
        srv0 = tdlib.Server(*stream, name="server-plain")
        cli0 = tdlib.run_client(srv0.port, *client, name="client-plain").result
        cut = srv0.result()
    tdlib.check_connected(cli0, cut)
    assert cut["send_error"] in ("EPIPE", "ECONNRESET") and cut["bytes_sent"] < 65536, cut
    assert cap0.rst_from(cli0["local_port"])
    assert counters0["TcpExtTCPAbortOnData"] >= 1

    env, log = _policy_env([_rule("client", "drain")])
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server(*stream)
        cli = tdlib.run_client(srv.port, *client, "--hold", 500, env=env).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    tdlib.note("client close() took %.3f ms under drain" % cli["close_ms"])
    assert cli["close_rc"] == 0 and cli["bytes_received"] == 4096, cli
    assert srv_res["send_error"] is None and srv_res["bytes_sent"] == 65536, srv_res
    assert srv_res["recv_end"] == "EOF", srv_res
    assert cap.count_rst() == 0
    assert counters["TcpOutRsts"] == 0 and counters["TcpExtTCPAbortOnData"] == 0
    assert cap.first_fin().sport == cport, "the client's FIN comes first"
    assert tdlib.time_wait_on(cport), "the client closed first: TIME_WAIT is its own"
    ev = _one_event(log, "close", local_port=cport)
    _assert_close_event(ev, "FIN", "policy", action="drain", role="client", closer="active")
    assert ev["bytes_in"] == 65536, "the drain read the rest of the stream: %r" % ev


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_drain_ends_at_timeout_when_peer_never_closes():
    """A drain whose peer never closes ends at drain_timeout_ms.

    The server closes under drain_timeout_ms = 300; the client reads the
    reply and EOF but keeps its socket open.  The drain's FIN is on the
    wire at once; the library's private descriptor is released after the
    timeout (and not before 300 ms: a lower bound on the injected wait),
    while the client still holds its end.  The close event says wire=FIN
    why=policy.
    """
    env, log = _policy_env([_rule("server", "drain", drain_timeout_ms=300)])
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--send", 10, "--hold", 3000, env=env)
        cli = tdlib.start_client(srv.port, "--read", 10, "--close", "none", "--hold", 3000)
        closed = srv.proc.wait_for_json(lambda r: r.get("event") == "result", what="its result")
        held = _sockets_of(srv.proc.pid)
        tdlib.wait_until(lambda: [e for e in _events(log, "close") if e["role"] == "server"],
                         timeout=5, what="the drain's close event")
        released = _sockets_of(srv.proc.pid)
        peer_open = cli.running()
        cres = cli.wait_for_json(lambda r: r.get("event") == "result", what="its result")
    tdlib.check_connected(closed, cres)
    assert closed["close_rc"] == 0, closed
    assert held, "the drain holds the socket on a library fd after close()"
    assert released == {}, "the drain released nothing after its timeout: %r" % released
    assert peer_open, "the client must still hold the connection when the drain ends"
    assert cres["bytes_received"] == 10, cres
    assert cap.teardown_flags(srv.port, cres["local_port"]) == "FIN"
    assert not cap.fin_from(cres["local_port"]), "the client never closed"
    assert cap.count_rst() == 0
    ev = _one_event(log, "close", remote_port=cres["local_port"])
    _assert_close_event(ev, "FIN", "policy", action="drain", role="server")
    accepted = _one_event(log, "accept", remote_port=cres["local_port"])
    waited = _ts(ev["ts"]) - _ts(accepted["ts"])
    assert waited >= 0.3 and ev["age_ms"] >= 300, (
        "the drain ended %.3f s after the accept, before drain_timeout_ms" % waited)

@tdlib.requires("root", "netns", "lib")
@tdlib.timeout(30)
def test_drain_ending_as_the_program_exits_is_logged():
    """A drain the worker is finishing while the program exits still gets
    its close event.

    The client closes under "drain" and exits 100 ms later; the server
    answers its FIN at once, so the worker takes the drain and finishes
    it, and a test double (tests/progs/libcore_slowshut.c) holds the
    worker 600 ms in the close of the drain's private descriptor, past
    the program's exit.  The exit waits for it (td_worker_flush_at_exit).

    Catches: the exit passing over a drain another thread had taken, so
    exit_group() ended the worker before it wrote the event: FIN on the
    wire and TIME_WAIT in ss, and no close line (a CI run of
    test_paths::test_drain_on_every_path lost one that way)."""
    slow = tdlib.test_prog("libcore_slowshut.so")
    assert os.path.exists(slow), "%s is missing: run make testprogs" % slow
    env, log = _policy_env([_rule("client", "drain")])
    env["LD_PRELOAD"] += " " + slow
    srv = tdlib.Server("--send", 10, "--read-until-eof")
    cenv = dict(env, CORE_SLOWCLOSE_MS="600")
    cli = tdlib.run_client(srv.port, "--read", 10, "--hold", 100, env=cenv).result
    srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    assert srv_res["recv_end"] == "EOF", srv_res
    assert tdlib.time_wait_on(cport), "the drain's FIN went first: TIME_WAIT on the client"
    ev = _one_event(log, "close", local_port=cport)
    _assert_close_event(ev, "FIN", "policy", action="drain")



# ---------------------------------------------------------------------------
# abort
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_abort_client_resets():
    """close = "abort" on a client rule: a plain close() becomes an RST, no
    FIN at all, no TIME_WAIT anywhere, the server reads ECONNRESET, and
    the log says wire=RST why=policy."""
    env, log = _policy_env([_rule("client", "abort")])
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        cli = tdlib.run_client(srv.port, "--send", 100, env=env).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    assert cli["close_rc"] == 0, cli
    assert cap.teardown_flags(cport, srv.port) == "RST"
    assert cap.count_fin() == 0, "no FIN from either side"
    assert srv_res["recv_end"] == "ECONNRESET", srv_res
    assert tdlib.time_wait_on() == []
    assert counters["TcpOutRsts"] >= 1
    _assert_close_event(_one_event(log, "close", local_port=cport), "RST", "policy",
                        action="abort", role="client", time_wait=False)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_abort_server_resets_ipv6():
    """close = "abort" on a server rule, over IPv6 (::1): the server's close
    after its reply is an RST, no FIN, no TIME_WAIT anywhere, and the
    client reads ECONNRESET.  The log shows the IPv6 addresses and says
    wire=RST why=policy."""
    env, log = _policy_env([_rule("server", "abort")])
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read", 10, "--send", 10, listen="[::1]:0", env=env)
        cli = tdlib.run_client("[::1]:%d" % srv.port, "--request", 10).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    assert cli["local"].startswith("[::1]:"), cli
    assert all(p.src == "::1" for p in cap.packets()), "every segment is IPv6 loopback"
    assert cap.teardown_flags(srv.port, cport) == "RST"
    assert cap.count_fin() == 0
    assert cli["recv_end"] == "ECONNRESET", cli
    assert tdlib.time_wait_on() == []
    ev = _one_event(log, "close", remote_port=cport)
    _assert_close_event(ev, "RST", "policy", action="abort", role="server",
                        remote="[::1]:%d" % cport, time_wait=False)


# ---------------------------------------------------------------------------
# shutdown
# ---------------------------------------------------------------------------

# A client that shuts its socket down with SHUT_RDWR right after sending
# its request and then reads the reply: without "half", SHUT_RD ends its
# reading at once.  Python, run under the library, calls libc's shutdown().
_SHUTDOWN_CLIENT = r"""
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"q" * 100)
s.shutdown(socket.SHUT_RDWR)
got, end = 0, "EOF"
while True:
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        end = "ECONNRESET"
        break
    if not data:
        break
    got += len(data)
print(json.dumps({"local_port": s.getsockname()[1], "bytes_received": got, "recv_end": end}))
s.close()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_shutdown_half_keeps_reading():
    """shutdown = "half": a program's shutdown(SHUT_RDWR) becomes
    shutdown(SHUT_WR), so it can still read the peer's reply.

    The client sends its request and shuts down both ways before the
    server (which waits 100 ms) answers.  Without the library its read
    ends at once with 0 bytes; under "half" it reads the whole 1000-byte
    reply and then EOF.  Either way the client's FIN goes out right away.
    The log records how=SHUT_RDWR, sent=SHUT_WR, and a close after both
    FINs whose byte counts match what the client sent and received.
    """
    server_args = ["--read-delay", 100, "--read", 100, "--send", 1000, "--read-until-eof"]
    script = os.path.join(tdlib.tmpdir(), "shutdown_client.py")
    with open(script, "w") as f:
        f.write(_SHUTDOWN_CLIENT)
    env, log = _policy_env([_rule("client", "pass", shutdown="half")])
    results = {}
    with tdlib.Capture() as cap:
        for label, cenv in (("plain", tdlib.shim_env(preload=False)), ("half", env)):
            srv = tdlib.Server(*server_args, name="server-" + label)
            run = tdlib.run(["/usr/bin/python3", script, srv.port], env=cenv,
                            name="client-" + label)
            assert run.rc == 0, run.stderr()
            results[label] = (run.json_lines()[0], srv.result(), srv.port)
    plain, half = results["plain"][0], results["half"][0]
    assert plain["bytes_received"] == 0 and plain["recv_end"] == "EOF", plain
    assert half["bytes_received"] == 1000 and half["recv_end"] == "EOF", half
    # Both ports every time: the two clients talk to different servers, so
    # they may have the same local port.
    for label, (cli, srv_res, srv_port) in results.items():
        # The FIN is sent at shutdown in both cases: the server reads EOF.
        assert srv_res["bytes_received"] == 100 and srv_res["recv_end"] == "EOF", srv_res
        assert cap.teardown_flags(cli["local_port"], srv_port) == "FIN", label
    half_srv, plain_srv = results["half"][2], results["plain"][2]
    assert cap.count_rst(half["local_port"], half_srv) == 0
    assert cap.count_rst() == 0 or cap.rst_from(plain["local_port"], plain_srv), \
        "an RST may only come from the plain client, whose reading was shut down"
    ev = _one_event(log, "shutdown", local_port=half["local_port"])
    assert ev["how"] == "SHUT_RDWR" and ev["sent"] == "SHUT_WR", ev
    close = _one_event(log, "close", local_port=half["local_port"])
    assert close["closer"] == "active", close
    # Closed after both FINs (state CLOSE): the byte counts are payload only,
    # as the client counted them, not the peer's FIN as one more byte.
    assert (close["state"], close["why"]) == ("CLOSE", "fin-sent"), close
    assert close["bytes_in"] == 1000 and close["bytes_out"] == 100, close
    assert tdlib.time_wait_on(half["local_port"], half_srv), "the client's FIN came first"


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_shutdown_skip_with_abort_sends_pure_rst():
    """shutdown = "skip" with close = "abort": a program that calls
    shutdown(SHUT_RDWR) before close() sends a pure RST, no FIN at all.

    For contrast, abort alone lets the program's shutdown send its FIN
    first, and the RST follows at close (the server waits 200 ms before
    answering with its own FIN, so the connection is still half open when
    the client closes).  The log records the skipped shutdown (sent=none),
    the one that was made (sent=SHUT_RDWR), and both resets (wire=RST
    why=policy).
    """
    skip_env, skip_log = _policy_env([_rule("client", "abort", shutdown="skip")], name="skip")
    fin_env, fin_log = _policy_env([_rule("client", "abort")], name="abort")
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--read-until-eof", "--sleep-before-close", 200)
        skip = tdlib.run_client(srv.port, "--send", 100, "--shutdown", "rdwr", env=skip_env,
                                name="client-skip").result
        both = tdlib.run_client(srv.port, "--send", 100, "--shutdown", "rdwr", env=fin_env,
                                name="client-abort").result
        by_peer = {r["remote_port"]: r for r in srv.results()}
    tdlib.check_connected(skip, both)
    assert skip["shutdown_errno"] is None and skip["close_rc"] == 0, skip
    sport, bport = skip["local_port"], both["local_port"]
    assert cap.teardown_flags(sport, srv.port) == "RST"
    assert not cap.fin_from(sport), "skip: no FIN on the wire at all"
    assert not cap.fin_from(srv.port, sport)
    assert by_peer[sport]["recv_end"] == "ECONNRESET", by_peer[sport]
    assert by_peer[sport]["bytes_received"] == 100, by_peer[sport]
    # Without skip: the shutdown's FIN (the server reads EOF), then the RST.
    assert cap.teardown_flags(bport, srv.port) == "FIN" and cap.rst_from(bport)
    assert by_peer[bport]["recv_end"] == "EOF", by_peer[bport]
    assert tdlib.time_wait_on() == []
    ev = _one_event(skip_log, "shutdown", local_port=sport)
    assert ev["how"] == "SHUT_RDWR" and ev["sent"] == "none", ev
    _assert_close_event(_one_event(skip_log, "close", local_port=sport), "RST", "policy",
                        action="abort", time_wait=False)
    assert _one_event(fin_log, "shutdown", local_port=bport)["sent"] == "SHUT_RDWR"
    _assert_close_event(_one_event(fin_log, "close", local_port=bport), "RST", "policy",
                        action="abort", time_wait=False)


def _client_fin_in_our_shutdown(close, *server_args):
    """A server under close sends 10 bytes and closes (server_args: how),
    its shutdown() paused 400 ms before the real call by a test double
    (tests/progs/libcore_slowshut.c, the "next" shutdown() the library's
    own calls reach); its client closes 100 ms after it has them, so the
    client's FIN lands in the pause.  Checks the wire (the client's FIN
    first, then the server's, no RST; TIME_WAIT on the client only) and
    returns (the log, the client's port, the server's result)."""
    slow = tdlib.test_prog("libcore_slowshut.so")
    assert os.path.exists(slow), "%s is missing: run make testprogs" % slow
    env, log = _policy_env([_rule("server", close)])
    env["LD_PRELOAD"] += " " + slow
    env["CORE_SLOWSHUT_MS"] = "400"
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--send", 10, *server_args, env=env)
        cli = tdlib.run_client(srv.port, "--read", 10, "--sleep-before-close", 100).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    cport = cli["local_port"]
    assert cap.first_fin().sport == cport, "the client's FIN came first"
    assert cap.fin_from(srv.port, cport) and cap.count_rst() == 0
    assert tdlib.time_wait_on(cport) and not tdlib.time_wait_on(srv.port)
    return log, cport, srv_res


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_shutdown_racing_peer_fin_is_logged_passive():
    """When a program's shutdown(SHUT_WR) races the peer's FIN, the log
    still names the side that closed first.

    The shutdown hook reads the socket's state after the real call: a
    peer's FIN that arrived before it makes our socket LAST_ACK, or, its
    acknowledgement in at once on loopback, CLOSE, which the kernel is
    asked about (sock_diag, shim/rt/diag.c): our connection gone means the
    peer's FIN came first (TIME_WAIT would mean ours did).  A look before
    the call would miss a FIN arriving between it and the call
    (microseconds on loopback; seen with Python's http.server and curl in
    test_programs).  Here a test double (tests/progs/libcore_slowshut.c)
    pauses 400 ms inside the real call, before it, and the client closes
    100 ms after it has the reply, so its FIN always lands in the pause.

    The wire: the client's FIN first, then the server's; TIME_WAIT on the
    client only.  The log must agree: closer=passive, time_wait=false.
    """
    log, cport, srv_res = _client_fin_in_our_shutdown("pass", "--shutdown", "wr")
    assert srv_res["shutdown_errno"] is None, srv_res
    assert _one_event(log, "shutdown", remote_port=cport)["sent"] == "SHUT_WR"
    ev = _one_event(log, "close", remote_port=cport)
    assert (ev["closer"], ev["time_wait"]) == ("passive", False), (
        "the peer closed first and holds TIME_WAIT, but the log says "
        "closer=%s time_wait=%s: %r" % (ev["closer"], ev["time_wait"], ev))


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_drain_whose_fin_meets_the_peers_is_logged_by_who_was_first():
    """A drain's FIN goes out after the program's close returned (the
    library's shutdown() on its private fd).  Where the peer's FIN came in
    between the close's look at the socket (ESTABLISHED) and that
    shutdown(), the socket reads CLOSE after it: the connection is over,
    nothing is left to drain, and who was first is asked of the 4-tuple by
    whoever writes the line (gone: the peer; TIME_WAIT: us).  A test double
    (tests/progs/libcore_slowshut.c) pauses 400 ms inside the library's
    shutdown(), before the real call, and the client closes 100 ms after
    it has the reply, so its FIN always lands in the pause.

    The wire: the client's FIN first, then the server's, no RST; TIME_WAIT
    on the client only.  The log must agree: FIN,
    closer=passive, time_wait=false, action drain.

    Catches: a drain that took a socket already CLOSE for one still
    waiting on its peer, or called the close active because our FIN
    followed a look that saw none from the peer."""
    log, cport, _ = _client_fin_in_our_shutdown("drain")
    ev = _one_event(log, "close", remote_port=cport)
    _assert_close_event(ev, "FIN", ev["why"], closer="passive", time_wait=False,
                        action="drain")


# ---------------------------------------------------------------------------
# fin_timeout_s, reuseaddr
# ---------------------------------------------------------------------------

_TIMER_RE = re.compile(r"timer:\(timewait,(\d+(?:\.\d+)?)(ms|sec|min)")


def _fin_wait2_timers():
    """{local port: seconds left} of this namespace's FIN-WAIT-2 orphans.

    An orphaned socket in FIN_WAIT2 waits TCP_LINGER2 seconds (or the
    system's tcp_fin_timeout) for the peer's FIN; ss shows that as a
    "timewait" timer.
    """
    out = subprocess.run(["ss", "-tanoH", "state", "fin-wait-2"], capture_output=True,
                               text=True, check=True, timeout=10).stdout
    tdlib.note("ss fin-wait-2:\n" + out)
    timers = {}
    scale = {"ms": 0.001, "sec": 1.0, "min": 60.0}
    for line in out.splitlines():
        fields = line.split()
        m = _TIMER_RE.search(line)
        if m and len(fields) >= 3:
            local = next(f for f in fields if ":" in f and not f.startswith("timer"))
            timers[tdlib.port_of(local)] = float(m.group(1)) * scale[m.group(2)]
    return timers


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_fin_timeout_sets_tcp_linger2():
    """fin_timeout_s = 3 sets TCP_LINGER2: an orphan in FIN_WAIT2 waits at
    most 3 s for the peer's FIN, where the system default is 60 s.

    A client under the rule, a client without it, and a server under a
    server rule each close first while the peer keeps its end open; ss
    then shows each closer's FIN-WAIT-2 timer.
    """
    env, _ = _policy_env([_rule("client", fin_timeout_s=3), _rule("server", fin_timeout_s=3)])
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--close", "none", "--hold", 3000, name="peer-server")
        ruled = tdlib.run_client(srv.port, "--send", 10, env=env, name="client-ruled").result
        plain = tdlib.run_client(srv.port, "--send", 10, name="client-plain").result
        srv_ruled = tdlib.Server("--send", 10, env=env, name="server-ruled")
        peer = tdlib.start_client(srv_ruled.port, "--read", 10, "--close", "none",
                                  "--hold", 3000, name="peer-client")
        peer_res = peer.wait_for_json(lambda r: r.get("event") == "result", what="its result")
        srv_ruled.wait()
        timers = tdlib.wait_until(lambda: (lambda t: t if len(t) == 3 else None)(
            _fin_wait2_timers()), timeout=3, what="three FIN-WAIT-2 orphans")
    tdlib.check_connected(ruled, plain, peer_res)
    assert timers[ruled["local_port"]] <= 3, timers
    assert timers[srv_ruled.port] <= 3, timers
    assert timers[plain["local_port"]] > 3, "the default (tcp_fin_timeout) is longer: %r" % timers
    # Both ports: the peer client (of another server) may have the same
    # local port as a client of the first server.
    for port, peer in ((ruled["local_port"], srv.port), (plain["local_port"], srv.port),
                       (srv_ruled.port, peer_res["local_port"])):
        assert cap.teardown_flags(port, peer) == "FIN", port


def _rebind(port, env):
    """Start a second server instance on ``port``; return its bind error."""
    run = tdlib.run([tdlib.tdpeer(), "server", "--listen", "127.0.0.1:%d" % port,
                     "--bind-only"], env=env, name="second-instance")
    return tdlib.PeerRun(run).result["bind_error"]


@tdlib.requires("root", "netns", "tdpeer", "lib")
@tdlib.timeout(20)
def test_reuseaddr_rebinds_over_time_wait():
    """reuseaddr = true lets a restarted server bind its port while its old
    connections sit in TIME_WAIT.

    Both instances run under the library.  With a rule that does not set
    reuseaddr the second bind fails with EADDRINUSE, as without the
    library; with reuseaddr it succeeds (SO_REUSEADDR is set before every
    bind the rule matches, the first instance's included, which Linux
    requires: test_baseline).  The log has the second instance's bind.
    """
    no_env, _ = _policy_env([_rule("server", "pass")], name="no-reuse")
    port = tdlib.leave_time_wait(env=no_env)
    assert _rebind(port, no_env) == "EADDRINUSE"

    env, log = _policy_env([_rule("server", "pass", reuseaddr=True)], name="reuse")
    port = tdlib.leave_time_wait(env=env)
    assert _rebind(port, env) is None
    assert tdlib.time_wait_on(port), "the old connection is still in TIME_WAIT"
    binds = _events(log, "bind", local_port=port)
    assert len(binds) == 2 and all(b["role"] == "listener" for b in binds), binds
