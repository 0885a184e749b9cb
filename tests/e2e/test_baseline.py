"""Baseline: how this kernel ends TCP connections WITHOUT the library.

These tests preload nothing.  They pin down the behaviour the library
changes or relies on, as seen on the wire (tcpdump), in the socket table
(ss), in the kernel's counters (nstat) and by the peer program (tdpeer's
result lines).  They also prove the harness: if a helper misreads the
wire, these fail before any library test can mislead anyone.  The
library's own tests reuse the same scenarios as the "with the library"
half of each comparison.

Every test runs in a fresh network namespace, so the only sockets, packets
and counters in sight are the test's own.
"""

import tdlib

NEEDS = ("root", "netns", "tcpdump", "tdpeer")

# Every way tdpeer can let go of a socket, including the ones that never
# reach close() in the program (exit, _exit, kill: the kernel closes).
CLOSE_METHODS = ("close", "fclose", "dup2", "dup3", "close_range", "closefrom",
                 "syscall", "exit", "_exit", "kill")
# The methods that end the process instead of returning a close status.
EXITING_METHODS = ("exit", "_exit", "kill")


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_plain_close_client_first():
    """A request/response, then the client closes first: FIN from the client,
    TIME_WAIT on the client's side, EOF at the server, no RST at all."""
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server("--read", 100, "--send", 1000, "--read-until-eof")
        cli = tdlib.run_client(srv.port, "--request", 100, "--read", 1000).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    assert cli["bytes_received"] == 1000 and cli["data_ok"], cli
    assert cli["close_rc"] == 0, cli
    assert srv_res["recv_end"] == "EOF", srv_res
    cport = cli["local_port"]
    assert cap.teardown_flags(cport, srv.port) == "FIN"
    assert cap.first_fin().sport == cport, "the server's FIN came first"
    assert cap.teardown_flags(srv.port, cport) == "FIN"
    assert cap.count_rst() == 0
    # The active closer keeps TIME_WAIT; the server's side is fully closed.
    tw = tdlib.time_wait_on(cport)
    assert len(tw) == 1 and tw[0].peer_port == srv.port, tw
    assert not tdlib.time_wait_on(srv.port)
    assert counters["TcpOutRsts"] == 0
    assert counters["TcpEstabResets"] == 0


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_linger_zero_client_sends_rst():
    """SO_LINGER {1,0} then close(): an RST instead of a FIN, no TIME_WAIT
    anywhere, and the server's read fails with ECONNRESET."""
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        cli = tdlib.run_client(srv.port, "--linger", "1,0", "--send", 100).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    assert cli["close_rc"] == 0 and cli["bytes_sent"] == 100, cli
    assert srv_res["recv_end"] == "ECONNRESET", srv_res
    cport = cli["local_port"]
    assert cap.teardown_flags(cport, srv.port) == "RST"
    assert not cap.fin_from(cport)
    # The reset connection is gone: the server has nothing to FIN either.
    assert not cap.fin_from(srv.port)
    assert tdlib.time_wait_on() == []
    # The kernel counts a zero-linger close as an abort "on data".
    assert counters["TcpExtTCPAbortOnData"] == 1
    assert counters["TcpOutRsts"] >= 1


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_close_with_unread_data_sends_rst():
    """The server closes without reading what the client sent: the kernel
    answers with an RST (RFC 2525 2.17), not a FIN, and counts it."""
    with tdlib.nstat_delta() as counters, tdlib.Capture() as cap:
        # --wait-input: close only once the bytes are here, unread.
        srv = tdlib.Server("--wait-input", "--no-read")
        cli = tdlib.run_client(srv.port, "--send", 100, "--read-until-eof").result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    assert srv_res["bytes_received"] == 0, srv_res
    assert cli["recv_end"] == "ECONNRESET", cli
    assert cli["bytes_received"] == 0, cli
    assert cap.teardown_flags(srv.port, cli["local_port"]) == "RST"
    assert not cap.fin_from(srv.port)
    assert counters["TcpExtTCPAbortOnClose"] == 1
    assert tdlib.time_wait_on() == []


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_unread_request_loses_reply():
    """The data loss the library's "drain" prevents: the server ignores the
    request, writes a 2 MB reply and closes at once.  Its unread request
    turns the close into an RST that throws away the unsent part of the
    reply, so the slow client gets less than 2 MB and then ECONNRESET."""
    reply = 2 * 1024 * 1024
    with tdlib.nstat_delta() as counters, tdlib.Capture(snaplen=128) as cap:
        srv = tdlib.Server("--wait-input", "--no-read", "--send", reply, "--sndbuf", 4194304)
        cli = tdlib.run_client(srv.port, "--request", 100, "--rcvbuf", 4096,
                               "--read-delay", 300).result
        srv_res = srv.result()
    tdlib.check_connected(cli, srv_res)
    assert srv_res["bytes_sent"] == reply and srv_res["send_error"] is None, srv_res
    assert srv_res["close_rc"] == 0, srv_res
    assert cli["bytes_received"] < reply, cli
    assert cli["data_ok"], cli
    assert cli["recv_end"] == "ECONNRESET", cli
    assert cap.teardown_flags(srv.port, cli["local_port"]) == "RST"
    assert counters["TcpExtTCPAbortOnClose"] == 1
    tdlib.note("client got %d of %d bytes" % (cli["bytes_received"], reply))


def _try_bind(port, *args):
    run = tdlib.run([tdlib.tdpeer(), "server", "--listen", "127.0.0.1:%d" % port,
                     "--bind-only"] + list(args), name="bind")
    res = tdlib.PeerRun(run).result
    assert run.rc == (0 if res["bind_error"] is None else 1), (run.rc, res)
    return res["bind_error"]


@tdlib.requires("root", "netns", "tdpeer")
@tdlib.timeout(20)
def test_rebind_with_time_wait_children():
    """Rebinding a port whose old connections sit in TIME_WAIT.

    Observed on this kernel (6.18), as socket(7) says for Linux: SO_REUSEADDR
    helps only when BOTH the old socket and the new one set it.  The
    TIME_WAIT entries keep the old listener's flag, so when the old
    listener did not set it, the new socket gets EADDRINUSE even with
    SO_REUSEADDR.
    """
    port = tdlib.leave_time_wait()
    assert _try_bind(port) == "EADDRINUSE"
    assert _try_bind(port, "--reuseaddr") == "EADDRINUSE"

    port = tdlib.leave_time_wait("--reuseaddr")
    assert _try_bind(port, "--reuseaddr") is None
    assert _try_bind(port) == "EADDRINUSE"


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_fork_server_parent_close_keeps_connection():
    """Fork per connection: the parent's close of its copy sends nothing,
    since the child still holds the socket; the child replies 200 ms later
    and its close sends the FIN.  The client gets the whole reply, then EOF."""
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--fork", "--child-delay", 200, "--read", 10, "--send", 17)
        cli = tdlib.run_client(srv.port, "--request", 10).result
        parent = srv.results(forked="parent")
        child = srv.results(forked="child")
    assert len(parent) == 1 and len(child) == 1, srv.proc.json_lines()
    tdlib.check_connected(cli, parent[0])
    assert parent[0]["close_rc"] == 0, parent
    assert child[0]["bytes_sent"] == 17 and child[0]["send_error"] is None, child
    assert child[0]["close_rc"] == 0, child
    assert cli["bytes_received"] == 17 and cli["data_ok"], cli
    assert cli["recv_end"] == "EOF", cli
    assert cli["elapsed_ms"] >= 200, "the reply cannot predate the child's delay"
    server_segments = cap.from_port(srv.port, cli["local_port"])
    first_data = next(p for p in server_segments if p.length > 0)
    first_fin = next(p for p in server_segments if p.fin)
    assert first_data.ts <= first_fin.ts, "the server sent its FIN before the reply"
    assert cap.count_rst() == 0


def _matrix_problems(method, linger, run, cap, server_port, peer_end, time_wait):
    """What one client of the close-method matrix did wrong, as lines of text."""
    res = run.result
    port = res["local_port"]
    want = "RST" if linger else "FIN"
    seen = cap.teardown_flags(port, server_port)
    fins, rsts = cap.count_fin(port), cap.count_rst(port)
    label = "%-11s %-8s" % (method, "linger0" if linger else "plain")
    problems = []
    if seen != want or fins + rsts != 1:
        problems.append("%s: wire %s (FINs %d, RSTs %d), want one %s"
                        % (label, seen, fins, rsts, want))
    if peer_end != ("ECONNRESET" if linger else "EOF"):
        problems.append("%s: server read ended with %s" % (label, peer_end))
    if (port in time_wait) == linger:
        problems.append("%s: TIME_WAIT %s on the client"
                        % (label, "present" if linger else "missing"))
    if method not in EXITING_METHODS and res["close_rc"] != 0:
        problems.append("%s: close returned %s (%s)"
                        % (label, res["close_rc"], res["close_errno"]))
    if method == "kill" and run.rc != -9:
        problems.append("%s: exit status %s, want SIGKILL" % (label, run.rc))
    return problems


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_close_methods_linger_matrix():
    """Every way of closing, with and without SO_LINGER {1,0} set at connect.

    With it, every path (close, fclose, dup2, dup3, close_range, closefrom,
    a raw syscall, and the kernel's close at exit or SIGKILL) sends an RST
    and no FIN: the option is a property of the socket, not of the call.
    Without it, every path sends a FIN and leaves TIME_WAIT on the client.
    """
    cases = [(m, linger) for linger in (True, False) for m in CLOSE_METHODS]
    runs = {}
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", len(cases), "--read-until-eof")
        for method, linger in cases:
            args = ["--send", 10, "--close", method] + (["--linger", "1,0"] if linger else [])
            name = "client-%s-%s" % (method, "linger0" if linger else "plain")
            runs[(method, linger)] = tdlib.run_client(srv.port, *args, name=name)
        # Keyed by the client's port; the server learns it from accept().
        by_peer = {r["remote_port"]: r for r in srv.results()}
    time_wait = {r.local_port for r in tdlib.time_wait_on()}
    problems = []
    for (method, linger), run in runs.items():
        peer_end = by_peer.get(run.result["local_port"], {}).get("recv_end")
        problems += _matrix_problems(method, linger, run, cap, srv.port, peer_end, time_wait)
    assert not problems, "\n".join(problems)
