"""Every way a program lets go of a socket, under the library.

test_baseline.py shows how the kernel ends a connection on each close
path without the library.  Here the client runs under a policy and the
same paths are tried for each action: close, fclose, dup2 and dup3 over
the descriptor, close_range, closefrom, syscall(SYS_close), and the ends
of the process (exit, _exit, SIGKILL).  Each row is checked on the wire
(tcpdump: FIN or RST from the client, and only one of them), in the
server's view (EOF or ECONNRESET), in ss (TIME_WAIT on the client after a
FIN, none after an RST) and in the audit log, whose wire field must agree
with the packets wherever an event is written.

The last test is the fork-per-connection server: whatever the action, the
parent's close of its copy must not touch the connection its child
serves.
"""

import os

import tdlib

NEEDS = ("root", "netns", "tcpdump", "tdpeer", "lib")

CLOSE_METHODS = ("close", "fclose", "dup2", "dup3", "close_range", "closefrom",
                 "syscall", "exit", "_exit", "kill")
# Paths that end the process instead of returning from a close call.
EXITING_METHODS = ("exit", "_exit", "kill")
# Paths on which no library code runs at all: the kernel closes the
# socket as the process dies, so only what is already in the socket
# (its SO_LINGER, its queues) decides the outcome, and nothing is logged.
# (_exit() is wrapped: it does what exit() does, an exit event included.)
NO_LIBRARY_CODE = ("kill",)
# Paths whose event is an "exit" event.
EXIT_EVENT_METHODS = ("exit", "_exit")

# What the client does before it closes.  "read": it reads the server's
# 10 bytes, so nothing is left unread.  "unread": it waits until they are
# here and leaves them unread, which alone turns a close into an RST.
CLIENT_DATA = {"read": ["--read", 10],
               "unread": ["--wait-input", "--no-read"]}


def _policy_env(action, name):
    """The environment of a client under one client rule with ``action``."""
    log = os.path.join(tdlib.tmpdir(), "%s.jsonl" % name)
    open(log, "w").close()
    rule = {"name": "client-" + action, "match": {"role": "client"}, "close": action}
    return tdlib.shim_env(policy=tdlib.policy_text([rule], log)), log


class Row:
    """One client of a matrix: how it closes and what must happen."""

    def __init__(self, method, linger, data, wire, why):
        self.method = method
        self.linger = linger      # the program sets SO_LINGER {1,0}
        self.data = data          # a key of CLIENT_DATA
        self.wire = wire          # "FIN" or "RST" from the client
        self.why = why            # the close event's why, where one is written
        self.run = None

    @property
    def label(self):
        return "%-11s %-7s %-6s" % (self.method, "linger0" if self.linger else "plain",
                                    self.data)

    def args(self):
        args = ["--close", self.method] + CLIENT_DATA[self.data]
        return args + (["--linger", "1,0"] if self.linger else [])


def _run_matrix(action, rows):
    """Run every row's client under ``action`` against one plain server,
    under one capture; return the list of problems found (empty: all good)."""
    env, log = _policy_env(action, action)
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", len(rows), "--send", 10, "--read-until-eof")
        for i, row in enumerate(rows):
            row.run = tdlib.run_client(srv.port, *row.args(), env=env,
                                       name="client-%d-%s" % (i, row.method))
        by_peer = {r["remote_port"]: r for r in srv.results()}
        time_wait = {r.local_port for r in tdlib.time_wait_settled(srv.port)}
    events = tdlib.read_log(log)
    problems = []
    for row in rows:
        problems += _row_problems(action, row, cap, srv.port, by_peer, time_wait, events)
    return problems


def _assassinated(cap, port, server_port):
    """Whether a bare RST from the server reached the client's TIME_WAIT
    after both FINs: the server's delayed ACK of the client's FIN comes
    after its own FIN, the client's TIME_WAIT answers it, the server,
    closed by then, answers that with an RST, and TIME_WAIT ends early
    (TIME_WAIT assassination, tcp_rfc1337=0): ss cannot show it."""
    pk = [p for p in cap.packets() if {p.sport, p.dport} == {port, server_port}]
    client_fins = [p.ts for p in pk if p.fin and p.sport == port]
    server_fins = [p.ts for p in pk if p.fin and p.sport == server_port]
    strays = [p.ts for p in pk if p.sport == server_port and p.rst and "." not in p.flags]
    return (bool(client_fins) and bool(server_fins) and
            any(ts > max(client_fins + server_fins) for ts in strays))


def _row_problems(action, row, cap, server_port, by_peer, time_wait, events):
    """What one row did wrong, as lines of text."""
    res = row.run.result
    port = res["local_port"]
    label = "%s: %s" % (action, row.label)
    problems = []
    if res["connect_error"] is not None:
        return ["%s: connect failed: %s" % (label, res["connect_error"])]
    seen = cap.teardown_flags(port, server_port)
    fins, rsts = cap.count_fin(port), cap.count_rst(port)
    if seen != row.wire or fins + rsts != 1:
        problems.append("%s: wire %s (FINs %d, RSTs %d), want one %s"
                        % (label, seen, fins, rsts, row.wire))
    peer_end = by_peer.get(port, {}).get("recv_end")
    want_end = "EOF" if row.wire == "FIN" else "ECONNRESET"
    if peer_end != want_end:
        problems.append("%s: the server's read ended with %s, want %s"
                        % (label, peer_end, want_end))
    if row.wire == "FIN" and port not in time_wait and _assassinated(cap, port, server_port):
        tdlib.note("%s: TIME_WAIT ended by the server's stray RST; not compared with ss" % label)
    elif (port in time_wait) != (row.wire == "FIN"):
        problems.append("%s: TIME_WAIT %s on the client" % (
            label, "present" if port in time_wait else "missing"))
    if row.method not in EXITING_METHODS and res["close_rc"] != 0:
        problems.append("%s: close returned %s (%s)"
                        % (label, res["close_rc"], res["close_errno"]))
    if row.method == "kill" and row.run.rc != -9:
        problems.append("%s: exit status %s, want SIGKILL" % (label, row.run.rc))
    # The log: a close event for the close calls, an exit event for exit()
    # and _exit(), nothing at all where no library code runs.
    mine = [e for e in events if e["event"] in ("close", "exit") and tdlib.port_of(e["local"]) == port]
    if row.method in NO_LIBRARY_CODE:
        want_events = []
    else:
        want_events = ["exit" if row.method in EXIT_EVENT_METHODS else "close"]
    if [e["event"] for e in mine] != want_events:
        problems.append("%s: events %r, want %r" % (label, mine, want_events))
    elif mine:
        ev = mine[0]
        if ev["wire"] != seen or ev["why"] != row.why or ev["action"] != action:
            problems.append("%s: the log says wire=%s why=%s action=%s, the wire %s, want why=%s"
                            % (label, ev["wire"], ev["why"], ev["action"], seen, row.why))
        if ev["time_wait"] != (seen == "FIN"):
            problems.append("%s: the log says time_wait=%s" % (label, ev["time_wait"]))
    return problems


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_abort_on_every_path():
    """close = "abort": an RST on every path, including _exit and SIGKILL.

    The client neither sets SO_LINGER nor leaves input unread, so without
    the library every one of these would be a FIN (test_baseline).  The
    library puts SO_LINGER {1,0} into the socket when it connects, so the
    reset does not depend on which call closes it, or whether any call
    does: the kernel's own close at exit, _exit or SIGKILL resets too.
    Where the library writes an event (every path but SIGKILL), it says
    wire=RST why=policy.
    """
    rows = [Row(m, False, "read", "RST", "policy") for m in CLOSE_METHODS]
    problems = _run_matrix("abort", rows)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_graceful_on_every_path():
    """close = "graceful": a FIN on every path the library sees, even for a
    client that set SO_LINGER {1,0} and left the server's bytes unread
    (either one alone makes the kernel reset: test_baseline).

    The linger is undone when the program sets it (setsockopt is wrapped
    and the option is put back right away), so it is gone from the socket
    on every path.  The unread input can only be discarded at close time,
    by library code: close, fclose, dup2/dup3, close_range, closefrom and
    syscall(SYS_close) are wrapped, and exit() and _exit() run the
    library's exit handler, so all of them send FIN, log why=policy and
    leave TIME_WAIT on the client.

    SIGKILL runs no library code at all: the kernel closes the socket with
    the input still unread and sends the RST the kernel always sends for
    that (RFC 2525), which nothing can prevent from the outside, and no
    event is written.  With the same linger but no unread input (the last
    row) it sends FIN too, because the linger was already refused when
    the program set it.
    """
    rows = [Row(m, True, "unread", "RST" if m in NO_LIBRARY_CODE else "FIN", "policy")
            for m in CLOSE_METHODS]
    rows += [Row(m, True, "read", "FIN", "policy") for m in NO_LIBRARY_CODE]
    problems = _run_matrix("graceful", rows)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_drain_on_every_path():
    """close = "drain": a FIN on every path the library sees, for the same
    client as in the graceful matrix (SO_LINGER {1,0}, the server's bytes
    left unread).

    On the close calls the library discards the input, keeps a private
    reference and shuts the socket down behind the data; the client exits
    right after, which ends the drain (its event is written then).  On
    exit() and _exit() the exit handler does the same work before the
    kernel closes the socket: the exit event must report the FIN it sent
    (wire=FIN why=policy, TIME_WAIT on the client), however fast the
    server answers that FIN with its own.  SIGKILL runs no library code:
    the unread input makes the kernel reset, and nothing is logged.
    """
    rows = [Row(m, True, "unread", "RST" if m in NO_LIBRARY_CODE else "FIN", "policy")
            for m in CLOSE_METHODS]
    problems = _run_matrix("drain", rows)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_pass_on_every_path():
    """close = "pass": the program's own choice, on every path.

    A client that set SO_LINGER {1,0} resets (why=linger0: the program's
    doing, not the policy's), a plain one sends FIN (why=close), whichever
    way the socket is closed, exactly as without the library.
    """
    rows = [Row(m, True, "read", "RST", "linger0") for m in CLOSE_METHODS]
    rows += [Row(m, False, "read", "FIN", "close") for m in CLOSE_METHODS]
    problems = _run_matrix("pass", rows)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Fork per connection
# ---------------------------------------------------------------------------

# What the child's close puts on the wire, and why, for each action.
FORK_CHILD_CLOSE = {"pass": ("FIN", "close"), "graceful": ("FIN", "close"),
                    "drain": ("FIN", "policy"), "abort": ("RST", "policy")}


def _fork_problems(action, cap, srv, cli, events):
    """What went wrong with one fork-per-connection server, as lines."""
    problems = []
    label = "%-8s" % action
    parent = srv.results(forked="parent")
    child = srv.results(forked="child")
    if len(parent) != 1 or len(child) != 1:
        return ["%s: want one parent and one child result, got %r"
                % (label, srv.proc.json_lines())]
    parent, child = parent[0], child[0]
    cport = cli["local_port"]
    wire, why = FORK_CHILD_CLOSE[action]
    if cli["bytes_received"] != 17 or not cli["data_ok"]:
        problems.append("%s: the client got %d bytes (data_ok %s), want the whole reply"
                        % (label, cli["bytes_received"], cli["data_ok"]))
    want_end = "ECONNRESET" if wire == "RST" else "EOF"
    if cli["recv_end"] != want_end:
        problems.append("%s: the client's read ended with %s, want %s"
                        % (label, cli["recv_end"], want_end))
    if child["bytes_sent"] != 17 or child["send_error"] is not None:
        problems.append("%s: the child's reply failed: %r" % (label, child))
    if parent["close_rc"] != 0 or child["close_rc"] != 0:
        problems.append("%s: a close failed: parent %r, child %r" % (label, parent, child))
    # On the wire: the reply, then one FIN or one RST, from the server.
    segments = cap.from_port(srv.port, cport)
    data = [p for p in segments if p.length > 0]
    ends = [p for p in segments if p.fin or p.rst]
    if cap.teardown_flags(srv.port, cport) != wire or len(ends) != 1:
        problems.append("%s: the server ended with %r, want one %s"
                        % (label, [p.line for p in ends], wire))
    elif not data or data[-1].ts > ends[0].ts:
        problems.append("%s: the %s did not come after the reply" % (label, wire))
    if cap.rst_from(cport):
        problems.append("%s: the client sent an RST" % label)
    # The log: the parent's close changes nothing, the child's ends it.
    closes = {e["pid"]: e for e in events if e["event"] in ("close", "exit")
              and tdlib.port_of(e["remote"]) == cport}
    pev, cev = closes.get(parent["pid"]), closes.get(child["pid"])
    if pev is None or (pev["wire"], pev["why"]) != ("none", "shared"):
        problems.append("%s: the parent's close event is %r, want wire=none why=shared"
                        % (label, pev))
    if cev is None or (cev["wire"], cev["why"]) != (wire, why):
        problems.append("%s: the child's close event is %r, want wire=%s why=%s"
                        % (label, cev, wire, why))
    return problems


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_fork_server_under_every_action():
    """A fork-per-connection server (tdpeer server --fork) under a server
    rule with each action: no action may cut the child's connection.

    The parent closes its copy of the accepted socket at once; the child
    replies 100 ms later and then closes.  In every case the client gets
    the whole 17-byte reply.  Then: EOF for pass, graceful and drain (the
    FIN after the reply), an RST only at the child's close for abort (the
    SO_LINGER {1,0} set at accept is in the shared socket, but the
    parent's close does not drop the last reference, so it sends
    nothing).  The parent's close logs wire=none why=shared; the child's
    close logs what it put on the wire.
    """
    problems = []
    for action in ("pass", "graceful", "drain", "abort"):
        log = os.path.join(tdlib.tmpdir(), "fork-%s.jsonl" % action)
        rule = {"name": "server-" + action, "match": {"role": "server"}, "close": action}
        env = tdlib.shim_env(policy=tdlib.policy_text([rule], log))
        with tdlib.Capture(name="tcpdump-" + action) as cap:
            srv = tdlib.Server("--fork", "--child-delay", 100, "--read", 10, "--send", 17,
                               env=env, name="server-" + action)
            cli = tdlib.run_client(srv.port, "--request", 10, name="client-" + action).result
            srv.wait()
        if cli["connect_error"] is not None:
            problems.append("%s: connect failed: %r" % (action, cli))
            continue
        problems += _fork_problems(action, cap, srv, cli, tdlib.read_log(log))
        if cli["elapsed_ms"] < 100:
            problems.append("%s: the reply predates the child's delay" % action)
    assert not problems, "\n".join(problems)
