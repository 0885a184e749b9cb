"""Helpers for the real-program compatibility suite (test_compat.py).

Each compat test runs one real program (a Debian server or client) under
``teardown`` the way a user would::

    teardown [--close MODE --role ROLE | --rst 1 | --connect-refuse 1]
             --log FILE --format json -- PROGRAM ARGS...

once per mode, with its peer running without the library, while one
tcpdump capture records the whole test.  A ``Session`` remembers, for
every mode, the log, the time window, the port that identifies the
connections under the policy and the TIME-WAIT sockets ss showed once
every connection had ended.  ``Session.verify()`` then checks, connection
by connection (matched by port):

* the wire follows the policy: under graceful and drain the policy side
  ends with a FIN and never an RST; under abort with an RST, unless its
  own shutdown() had already sent the FIN; under ``--rst 1`` with an RST
  and no FIN before it (the peer sees ECONNRESET, not EOF); under
  ``--connect-refuse 1`` no connection reaches the server at all;
* the close event of the last holder (events with why=shared are the
  non-last references of fork-per-connection servers) agrees with the
  wire and with ss: ``wire`` is what it put on the wire, ``closer`` is
  active when its FIN/RST came before the peer's FIN and passive when the
  peer's came first (simultaneous, or active, when both sides hold
  TIME_WAIT: the FINs crossed), ``time_wait`` is true iff ss shows its
  4-tuple in TIME-WAIT.

The programs' own checks (answers, exit status, no crash, no hang) are
made by the tests while they run each mode, through ``Session.mode``,
which turns a failed check into one problem line for that mode and moves
on to the next mode, so one run shows every mode that is broken.
"""

import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import tdlib

PYTHON = "/usr/bin/python3"
SERVER_MODES = ("observe", "graceful", "drain", "abort")
CLIENT_MODES = SERVER_MODES + ("rst", "refuse")
CLOSE_MODES = ("graceful", "drain", "abort")

LIBDIR = "/usr/lib/x86_64-linux-gnu"
# The Debian allocators (libjemalloc2, libtcmalloc-minimal4, libmimalloc2.0).
ALLOCATORS = {
    "jemalloc": os.path.join(LIBDIR, "libjemalloc.so.2"),
    "tcmalloc": os.path.join(LIBDIR, "libtcmalloc_minimal.so.4"),
    "mimalloc": os.path.join(LIBDIR, "libmimalloc.so.2"),
}
PG_BIN = "/usr/lib/postgresql/15/bin"

# Settled: what a connection's sockets may still show once it has ended.
_ENDED = ("LISTEN", "TIME-WAIT")


# ---------------------------------------------------------------------------
# Requirements
# ---------------------------------------------------------------------------

def need(*programs):
    """Skip the running test (one line) unless every program exists:
    a name is looked up on PATH, an absolute path must exist."""
    for prog in programs:
        found = os.path.exists(prog) if os.path.isabs(prog) else shutil.which(prog)
        if not found:
            tdlib.skip("needs %s (not installed)" % prog)


# ---------------------------------------------------------------------------
# Running a program under teardown
# ---------------------------------------------------------------------------

def teardown_cmd():
    """The teardown command.  In a sanitizer run (TD_SANITIZE=1) the plain
    build's: these programs bring their own allocators (redis's jemalloc,
    the preloaded ones below) and Debian's curl deadlocks in setlocale()
    under libasan; `make test` built the plain one before `make sanitize`."""
    if not tdlib.sanitize():
        return tdlib.teardown_cmd()
    plain = os.path.join(os.path.dirname(os.path.abspath(tdlib.build_dir())), "teardown")
    assert os.path.exists(plain), "%s is missing: run make before make sanitize" % plain
    return plain


def policy_args(mode, role):
    """The teardown options of one mode (observe: none, log only)."""
    if mode == "observe":
        return []
    if mode in CLOSE_MODES:
        return ["--close", mode, "--role", role]
    if mode == "rst":
        return ["--rst", "1", "--role", role]
    if mode == "refuse":
        return ["--connect-refuse", "1", "--role", role]
    raise ValueError("unknown mode %r" % mode)


def td_argv(mode, role, log, argv):
    """``teardown OPTIONS --log LOG --format json -- ARGV``."""
    return ([teardown_cmd()] + policy_args(mode, role)
            + ["--log", log, "--format", "json", "--"] + [str(a) for a in argv])


def plain_env(**extra):
    """A clean environment without the library (teardown adds it)."""
    return tdlib.shim_env(preload=False, extra=extra)


def new_log(name, owner=None):
    """An empty log file in the test's directory (owned by ``owner``, a
    user name, when an unprivileged process must write it)."""
    path = os.path.join(tdlib.tmpdir(), name + ".jsonl")
    open(path, "w").close()
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o600)
    tdlib.diagnose_file(path, "audit log %s" % os.path.basename(path))
    return path


def user_dir(name, owner):
    """A directory in the test's directory owned by ``owner``."""
    path = os.path.join(tdlib.tmpdir(), name)
    os.makedirs(path, exist_ok=True)
    pw = pwd.getpwnam(owner)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def as_user(user, argv):
    """``argv`` run as ``user`` (environment kept: LD_PRELOAD survives)."""
    return ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--"] + list(argv)


def write(name, text, mode=0o644):
    """Write a file in the test's directory; returns its path."""
    path = os.path.join(tdlib.tmpdir(), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def wait_listening(port, proc, timeout=10):
    """Wait until something listens on ``port``; fail if ``proc`` died first."""
    tdlib.wait_until(lambda: not proc.running() or any(
        r.state == "LISTEN" and r.local_port == port for r in quiet_ss(port)),
        timeout=timeout, interval=0.05, what="a listener on port %d" % port)
    assert proc.running(), "%s exited (rc %s) before listening: %s" % (
        proc.name, proc.rc, proc.stderr().strip()[-500:])


def quiet_ss(port=None):
    """tdlib.ss_state without its note: for polling loops."""
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True, timeout=10)
    rows = []
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 5:
            row = tdlib.SsRow(f[0], f[3], f[4], tdlib.port_of(f[3]), tdlib.port_of(f[4]),
                              int(f[1]), int(f[2]))
            if port is None or port in (row.local_port, row.peer_port):
                rows.append(row)
    return rows


def stop(proc, sig=signal.SIGTERM, want_rc=0, timeout=15):
    """Stop a server with ``sig``; its exit status must be ``want_rc``."""
    assert proc.running(), "%s died while serving (rc %s): %s" % (
        proc.name, proc.rc, proc.stderr().strip()[-500:])
    proc.signal(sig)
    rc = proc.wait(timeout)
    assert rc == want_rc, "%s exited %s on %s, want %s: %s" % (
        proc.name, rc, signal.Signals(sig).name, want_rc, proc.stderr().strip()[-500:])


def kill_group(proc):
    """SIGKILL the process group ``proc`` leads (a server started with
    setsid, and the children it forked)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()


def same_outcome(proc, base, what=None):
    """A client under the library exits as it did without it, with the
    same output (``what``: a function normalising stdout)."""
    norm = what or (lambda text: text)
    assert proc.rc == base.rc, "%s exited %s, %s without the library: %s" % (
        proc.name, proc.rc, base.rc, proc.stderr().strip()[-300:])
    got, want = norm(proc.stdout()), norm(base.stdout())
    assert got == want, "%s printed %r, %r without the library" % (proc.name, got[:300], want[:300])


def read_to_end(sock, mode):
    """Read ``sock`` to its end; returns the bytes.  The end must be EOF,
    or, when the server is under abort, EOF or a reset (its close is an
    RST: the reply is all there, then ECONNRESET instead of EOF)."""
    buf = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            assert mode == "abort", "ECONNRESET after %r under %s" % (buf[-100:], mode)
            return buf
        if not data:
            return buf
        buf += data


def _numbers_out(text):
    return re.sub(r"\d+", "N", text)


def refused_like(proc, base):
    """A client under --connect-refuse 1 fails as it does against a port
    nothing listens on (``base``): same exit status, same messages (the
    numbers in them aside: ports, milliseconds)."""
    assert proc.rc == base.rc, "%s exited %s under --connect-refuse, %s against a closed port: %s" % (
        proc.name, proc.rc, base.rc, proc.stderr().strip()[-300:])
    got = _numbers_out(proc.stdout() + proc.stderr())
    want = _numbers_out(base.stdout() + base.stderr())
    assert got == want, "%s said %r under --connect-refuse, %r against a closed port" % (
        proc.name, got[-300:], want[-300:])


# ---------------------------------------------------------------------------
# The wire: connections in a capture
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Conn:
    """One TCP connection on the wire, from its SYN: the client's and the
    server's port, and every segment of that 4-tuple until the next SYN."""
    cport: int
    sport: int
    syn_ts: float
    packets: list
    # the 4-tuple used again: the SYN of the connection before this one on
    # it (None: none in the capture), and of the one after it (None: this
    # is the last, the one ss can still show)
    prev_syn_ts: float = None
    next_syn_ts: float = None
    next_conn: "Conn" = None

    def owns(self, ts):
        """Whether a log event stamped ``ts`` (seconds) belongs to this
        connection rather than to another one on the same 4-tuple: a
        client port comes back once its last use left no TIME_WAIT (an
        abort), and the events of each use then share their ports.  Both
        clocks are the kernel's CLOCK_REALTIME, and every event of a use
        is stamped before its socket is gone, so before the next SYN."""
        return ((self.prev_syn_ts is None or ts >= self.syn_ts) and
                (self.next_syn_ts is None or ts < self.next_syn_ts))

    def holds_time_wait(self, tw, port):
        """Whether this connection left ``port``'s side in TIME_WAIT: for
        the last use of a 4-tuple, whether ss's TIME_WAIT rows ``tw`` (a
        set of (local, remote) ports) show it; for an earlier use, whether
        the next use took that TIME_WAIT over (recycled_time_wait)."""
        other = self.cport if port == self.sport else self.sport
        if self.next_conn is not None:
            return self.recycled_time_wait(port)
        return self.next_syn_ts is None and (port, other) in tw

    def _isn(self, port):
        """The initial sequence number ``port``'s side sent (absolute)."""
        for p in self.packets:
            if p.syn and p.sport == port:
                m = re.search(r"seq (\d+)", p.line)
                return int(m.group(1)) if m else None
        return None

    def recycled_time_wait(self, port):
        """Whether the next use of this 4-tuple began on ``port``'s
        TIME_WAIT.  Linux starts a connection that takes a TIME_WAIT over
        (a SYN the TIME_WAIT accepts, or a connect() that reuses it) at
        that TIME_WAIT's next sequence number + 65537
        (tcp_timewait_state_process(), tcp_twsk_unique()); a fresh
        connection's number is random.  This side's FIN (tcpdump's
        relative number, +1 for the FIN) gives its next number."""
        fin = self.fin_from(port)
        isn, nxt = self._isn(port), self.next_conn._isn(port)
        m = re.search(r"seq (\d+)(?::(\d+))?", fin.line) if fin is not None else None
        if isn is None or nxt is None or m is None:
            return False
        end = isn + int(m.group(2) or m.group(1)) + 1
        return nxt == (end + 65537) % (1 << 32)

    def established(self):
        """True when the server answered the SYN with a SYN-ACK."""
        return any(p.syn and "." in p.flags and p.sport == self.sport for p in self.packets)

    def rst_from(self, port):
        """The first RST ``port``'s socket sent (None if none).

        Every reset a socket sends (an abort, unread data at close, an
        injected fault) carries ACK ("R.").  A bare "R" is the kernel
        answering a segment that found no socket, or found TIME_WAIT: a
        duplicate ACK reaching a side whose LAST_ACK just ended, data
        reaching an orphan.  It ends nothing of its own (see strays)."""
        return next((p for p in self.packets if p.sport == port and p.rst and "." in p.flags),
                    None)

    def strays(self, port):
        """The bare RSTs ``port`` sent: kernel replies, not resets.  One
        that reaches the other side's TIME_WAIT ends it early (TIME_WAIT
        assassination, tcp_rfc1337=0), so ss no longer shows it."""
        return [p for p in self.packets if p.sport == port and p.rst and "." not in p.flags]

    def fin_from(self, port):
        """The first FIN ``port`` sent (None if none)."""
        return next((p for p in self.packets if p.sport == port and p.fin and not p.syn), None)

    def first_end(self, port):
        """The first FIN or RST ``port`` sent: (kind, ts) or (None, None)."""
        fin, rst = self.fin_from(port), self.rst_from(port)
        cands = [(p.ts, kind) for p, kind in ((fin, "FIN"), (rst, "RST")) if p is not None]
        if not cands:
            return None, None
        ts, kind = min(cands)
        return kind, ts

    def describe(self):
        return "\n".join("      " + p.line for p in self.packets if not p.length or p.fin or p.rst)


def connections(packets, port, start=None, end=None):
    """The connections whose server port is ``port`` and whose SYN falls
    in [start, end], in order."""
    conns, open_ = [], {}
    for p in packets:
        key = None
        if p.dport == port:
            key = (p.sport, p.dport)
        elif p.sport == port:
            key = (p.dport, p.sport)
        if key is None:
            continue
        if p.syn and "." not in p.flags and p.dport == port:
            conn = Conn(key[0], key[1], p.ts, [])
            prev = open_.get(key)
            if prev is not None and not any(q.fin or q.rst for q in prev.packets):
                # nothing ended the one before: a retransmitted SYN
                conn = prev
            elif prev is not None:
                prev.next_syn_ts = conn.prev_syn_ts = p.ts
                prev.next_conn = conn
            open_[key] = conn
            if (conn is not prev and (start is None or p.ts >= start) and
                    (end is None or p.ts <= end)):
                conns.append(conn)
        if key in open_:
            open_[key].packets.append(p)
    return conns


# ---------------------------------------------------------------------------
# Modes and their verification
# ---------------------------------------------------------------------------

class ModeRun:
    """One program under one mode: what verify() needs to know.

    side: "server" when the program under the policy is the server of the
    connections to ``port``, "client" when it is their client, "both"
    when it is both ends (a crafted pair in one process tree).
    """

    def __init__(self, label, mode, side, port, log, min_conns=1, action=None):
        self.label = label
        self.mode = mode
        self.side = side
        self.port = port
        self.log = log
        self.min_conns = min_conns
        self.action = action or (mode if mode in CLOSE_MODES else "pass")
        self.start = time.time()
        self.end = None
        self.tw = set()
        self.ok = True

    def settle(self, timeout=15):
        """Wait until every connection to ``port`` has ended on both sides
        (only LISTEN and TIME-WAIT left), then remember the TIME-WAITs."""
        tdlib.wait_until(lambda: all(r.state in _ENDED for r in quiet_ss(self.port)),
                         timeout=timeout, interval=0.05,
                         what="every connection to port %d to end" % self.port)
        self.tw = {(r.local_port, r.peer_port) for r in tdlib.ss_rows() if r.state == "TIME-WAIT"}
        self.end = time.time()

    def wait_logged(self, timeout=10):
        """Wait until every connection to ``port`` that the log shows
        accepted or connected has its last holder's close (or exit) event:
        a fork-per-connection server's child may still be on its way out
        when the connection has ended on the wire, and stopping the server
        then would kill it before it logs.  (A proxy's pooled connections
        to its backend end only when it stops.)"""
        def pending():
            events = [e for e in tdlib.read_log(self.log) if e.get("role") in ("client", "server")]
            opened = {(tdlib.port_of(e["local"]), tdlib.port_of(e["remote"])) for e in events
                      if e["event"] in ("accept", "connect") and e.get("local")
                      and self.port in (tdlib.port_of(e["local"]), tdlib.port_of(e["remote"]))}
            closed = {(tdlib.port_of(e["local"]), tdlib.port_of(e["remote"])) for e in events
                      if e["event"] in ("close", "exit") and e.get("why") != "shared"}
            return sorted(opened - closed)
        tdlib.wait_until(lambda: not pending(), timeout=timeout, interval=0.05,
                         what="a close event for every connection in %s"
                         % os.path.basename(self.log))


class Session:
    """One capture for a whole test, the modes run under it, the problems.

    Usage::

        with compat.Session() as s:
            for mode in compat.SERVER_MODES:
                with s.mode("nginx", mode, "server", port, log) as run:
                    ...start the program, exercise it, check it...
        s.verify()
    """

    def __init__(self, snaplen=128):
        self.cap = tdlib.Capture(snaplen=snaplen, settle=0.2)
        self.runs = []
        self.problems = []

    def __enter__(self):
        self.cap.__enter__()
        return self

    def __exit__(self, *exc):
        return self.cap.__exit__(*exc)

    def problem(self, text):
        tdlib.note("PROBLEM:", text)
        self.problems.append(text)

    @contextlib.contextmanager
    def mode(self, label, mode, side, port, log, min_conns=1, action=None, settle=True):
        """Run one mode: a failed check inside becomes a problem of this
        mode (later modes still run); at the end every connection to
        ``port`` must have ended (settle) and ss's TIME-WAITs are kept."""
        run = ModeRun(label, mode, side, port, log, min_conns, action)
        tdlib.note("----- %s under %s -----" % (label, mode))
        try:
            yield run
            if run.end is None:
                if settle:
                    run.settle()
                else:
                    run.end = time.time()
        except (AssertionError, OSError) as exc:   # the test's checks, its clients' errors
            run.ok = False
            run.end = time.time()
            text = str(exc).strip().split("\n")[0][:400]
            if not isinstance(exc, AssertionError):
                text = "%s: %s" % (type(exc).__name__, text)
            self.problem("%s under %s: %s" % (label, mode, text))
        self.runs.append(run)

    def verify(self):
        """Check every mode that ran against the capture and ss; fail with
        every problem found (the programs' own problems included)."""
        for run in self.runs:
            if run.ok:
                for text in check_run(run, self.cap):
                    self.problem("%s under %s: %s" % (run.label, run.mode, text))
        assert not self.problems, "%d problem(s):\n%s" % (
            len(self.problems), "\n".join(self.problems))


class _Events:
    """A log's connection events, by socket: (local port, remote port)."""

    def __init__(self, log):
        self.by_sock = {}
        for e in tdlib.read_log(log):
            if e.get("role") in ("client", "server"):
                key = (tdlib.port_of(e["local"]), tdlib.port_of(e["remote"]))
                self.by_sock.setdefault(key, []).append(e)

    def _of(self, lport, rport, conn):
        evs = self.by_sock.get((lport, rport), ())
        if conn is None:
            return evs
        return [e for e in evs if conn.owns(tdlib.event_time(e))]

    def final(self, lport, rport, conn=None):
        """The close/exit events of the socket (lport -> rport), of the
        wire's connection ``conn`` when given (a 4-tuple may be used more
        than once), the non-last references (why=shared) left out; and
        those shared ones."""
        mine = [e for e in self._of(lport, rport, conn) if e["event"] in ("close", "exit")]
        return [e for e in mine if e["why"] != "shared"], [e for e in mine if e["why"] == "shared"]

    def shutdown_sent_fin(self, lport, rport, conn=None):
        """Whether the program's own shutdown() sent this socket's FIN."""
        return any(e["event"] == "shutdown" and e.get("sent") in ("SHUT_WR", "SHUT_RDWR")
                   for e in self._of(lport, rport, conn))


def _short(ev):
    keys = ("pid", "event", "fd", "action", "state", "closer", "wire", "why", "time_wait",
            "unsent", "lost")
    # ts as tcpdump prints it: the look's moment against the wire's
    return "{%s, ts=%.6f}" % (", ".join("%s=%s" % (k, ev.get(k)) for k in keys),
                              tdlib.event_time(ev))


_SEQ_RE = re.compile(r"\bseq (\d+)(?::(\d+))?")
_ACK_RE = re.compile(r"\back (\d+)")


def _acks(seg, fin):
    """Whether segment ``seg`` acknowledges the FIN segment ``fin`` (tcpdump's
    relative numbers, one connection): its ack is past the FIN's sequence
    number, which follows the FIN's data."""
    a, f = _ACK_RE.search(seg.line), _SEQ_RE.search(fin.line)
    if a is None or f is None:
        return True  # cannot tell: take the RST for an answer to the FIN
    fin_seq = int(f.group(2) or f.group(1))
    return int(a.group(1)) > fin_seq


def check_conn(run, conn, ev, events, side):
    """Problems with one connection: the policy on the wire, and the close
    event ``ev`` of its ``side`` ("server" or "client") against the wire
    and ss."""
    me = conn.sport if side == "server" else conn.cport
    peer = conn.cport if side == "server" else conn.sport
    what = "%s %d->%d" % (side, me, peer)
    problems = []
    my_kind, my_ts = conn.first_end(me)
    peer_kind, peer_ts = conn.first_end(peer)
    my_rst, my_fin = conn.rst_from(me), conn.fin_from(me)
    shut_fin = events.shutdown_sent_fin(me, peer, conn)
    tw_me, tw_peer = conn.holds_time_wait(run.tw, me), conn.holds_time_wait(run.tw, peer)

    # --- the policy on the wire ---
    if ev["action"] != run.action:
        problems.append("%s: action=%s, want %s" % (what, ev["action"], run.action))
    # The peer reset the connection before this side sent its FIN or RST
    # (an RST, bare where its socket was an orphan by then, answering what
    # this side wrote after the peer's FIN: a TLS close_notify, an SMTP
    # 421): nothing was left for a policy to end, and the close says so.
    reset_first = my_kind is None and (conn.rst_from(peer) is not None or
                                       bool(conn.strays(peer)))
    if reset_first:
        if (ev["wire"], ev["why"]) != ("none", "reset"):
            problems.append("%s: the peer reset it first, the log says wire=%s why=%s, want"
                            " none and reset" % (what, ev["wire"], ev["why"]))
    elif run.mode in ("graceful", "drain"):
        if not my_fin or my_rst:
            problems.append("%s: under %s it ended with %s (FIN %s, RST %s), want a FIN and no RST"
                            % (what, run.mode, my_kind, bool(my_fin), bool(my_rst)))
    elif run.mode == "abort":
        if not my_rst and not (shut_fin and my_fin):
            problems.append("%s: under abort no RST, and no shutdown() of its own sent the %s"
                            % (what, my_kind))
        if ev["wire"] == "FIN" and ev["why"] != "fin-sent":
            problems.append("%s: under abort the close says it sent a FIN" % what)
    elif run.mode == "rst":
        if my_kind != "RST":
            problems.append("%s: under --rst 1 it ended with %s, want an RST with no FIN before it"
                            " (the peer must see ECONNRESET, not EOF)" % (what, my_kind))

    # --- the close event against the wire ---
    if ev["wire"] == "RST":
        if not my_rst:
            problems.append("%s: the log says wire=RST, the wire shows no RST from it" % what)
    elif ev["wire"] == "FIN":
        # why=fin-sent: the FIN had gone before the close (its shutdown)
        if not my_fin:
            problems.append("%s: the log says wire=FIN, the wire shows no FIN from it" % what)
        elif shut_fin and ev["why"] != "fin-sent":
            problems.append("%s: the log says the close sent a FIN, its shutdown() had" % what)
        if my_rst:
            problems.append("%s: the log says wire=FIN, the wire shows an RST from it" % what)
    elif ev["wire"] == "none":
        if my_rst:
            problems.append("%s: the log says wire=none, the wire shows an RST from it" % what)
        if my_fin and not shut_fin and ev["why"] != "fin-sent":
            problems.append("%s: the log says wire=none why=%s, a FIN went out that no event"
                            " accounts for" % (what, ev["why"]))
    else:
        problems.append("%s: wire=%r" % (what, ev["wire"]))
    # the stamp is the look before the real close: before what that close sent
    sent = my_rst if ev["wire"] == "RST" else my_fin
    if (ev["event"] == "close" and ev["action"] != "drain" and sent is not None
            and ev["why"] not in ("fin-sent", "fault", "shared")
            and tdlib.event_time(ev) > sent.ts):
        problems.append("%s: the close event is stamped %.6f, after the %s its close sent"
                        " at %.6f" % (what, tdlib.event_time(ev), ev["wire"], sent.ts))

    # --- time_wait against ss, closer against the order on the wire ---
    peer_fin = conn.fin_from(peer)
    assassinated = (ev["time_wait"] and not tw_me and my_fin and peer_fin and not my_rst
                    and any(p.ts > max(my_fin.ts, peer_fin.ts) for p in conn.strays(peer)))
    # A close or exit event is stamped just before the library's last
    # read of the socket's state, before the real close: a peer FIN that
    # left after that stamp and before this side's FIN or RST may have
    # reached the socket during the read or after it, which the log then
    # rightly described as ESTABLISHED, and made the close passive on
    # the wire.  For an exit event the kernel's close comes
    # after the rest of the program's exit (other libraries' destructors,
    # stdio's flush; README, Limits: "exit events"); for a close, in the
    # instant between the last read and the real close (README, Limits:
    # CI runs saw it at 9, 11 and 12 us).  tcpdump stamps the peer's FIN
    # as it leaves, before this side's socket takes it: one stamped before
    # the look was in what the look read, or on its way in.
    raced_look = (ev["event"] in ("exit", "close") and ev.get("state") == "ESTABLISHED"
                  and ev["closer"] == "active" and peer_fin is not None and my_ts is not None
                  and tdlib.event_time(ev) < peer_fin.ts < my_ts)
    # A peer's reset after our FIN (a peer closing with input unread)
    # ends the FIN_WAIT that the log, right after the close, read as a
    # TIME_WAIT to come (README, the time_wait field).
    peer_rst = conn.rst_from(peer)
    reset_after_fin = (ev["time_wait"] and not tw_me and my_fin is not None and not my_rst
                       and peer_rst is not None and peer_rst.ts > my_fin.ts)
    # (the look's race excuses only what it would make wrong, and says so)
    raced = "%s: the peer's FIN came after the %s event's look (%.6f) and before this side's" \
            " close; the log's %%s is not compared" % (what, ev["event"], tdlib.event_time(ev))
    if reset_after_fin:
        tdlib.note("%s: the peer's RST after this side's FIN ended its TIME_WAIT to come;"
                   " not compared with ss" % what)
    elif assassinated:
        # a stray RST from the peer ended this side's TIME_WAIT: ss cannot tell
        tdlib.note("%s: TIME_WAIT ended by the peer's stray RST; not compared with ss" % what)
    elif bool(ev["time_wait"]) != tw_me and raced_look:
        tdlib.note(raced % "time_wait")
    elif bool(ev["time_wait"]) != tw_me:
        problems.append("%s: the log says time_wait=%s, ss shows %s" % (
            what, ev["time_wait"], "its TIME-WAIT" if tw_me else "no TIME-WAIT"))
    if tw_me and tw_peer:
        want = ("simultaneous", "active")      # both FINs crossed
    elif my_ts is not None and (peer_ts is None or my_ts < peer_ts):
        want = ("active",)
    elif my_kind == "RST" and peer_kind == "FIN" and not _acks(my_rst, peer_fin):
        # The peer's FIN left before our RST, but the RST does not
        # acknowledge it: our socket had not received it when it reset
        # (the two crossed on the wire), so its close saw ESTABLISHED and
        # was first as far as it could know; a close that had the FIN in
        # answers it, and its RST's ack covers the FIN.
        want = ("active", "passive")
    elif peer_kind == "RST" or reset_first:
        # reset by the peer; after its FIN, the close says passive where
        # the library counted every byte read (the FIN is the one more the
        # kernel counted), null where another descriptor read them too
        want = ("passive", None)
    elif peer_ts is not None:
        want = ("passive",)
    else:
        want = None
    if want is not None and assassinated:
        want += ("simultaneous",)              # ss cannot say whether the FINs crossed
    # Two FINs neither of which acknowledges the other crossed on the wire
    # (the socket saw CLOSING), whichever tcpdump stamped first; only ss
    # cannot show it where a zero linger dropped this side's TIME_WAIT.
    if (want is not None and my_kind == "FIN" and peer_kind == "FIN" and my_fin is not None
            and peer_fin is not None and not _acks(peer_fin, my_fin)
            and not _acks(my_fin, peer_fin)):
        want += ("simultaneous",)
    if want is not None and ev["closer"] not in want and raced_look:
        tdlib.note(raced % "closer")
    elif want is not None and ev["closer"] not in want:
        problems.append("%s: the log says closer=%s, want %s (it sent %s first at %s, the peer"
                        " %s at %s)" % (what, ev["closer"], "/".join(map(str, want)), my_kind,
                                        my_ts, peer_kind, peer_ts))
    if problems:
        problems = ["; ".join(problems) + "\n    event %s\n    ss TIME-WAIT: me %s, peer %s\n%s"
                    % (_short(ev), tw_me, tw_peer, conn.describe())]
    return problems


def check_run(run, cap):
    """Problems with one mode: its connections against its log."""
    conns = [c for c in connections(cap.packets(), run.port, run.start, run.end)]
    est = [c for c in conns if c.established()]
    if run.mode == "refuse":
        problems = []
        if est:
            problems.append("%d connection(s) reached port %d under --connect-refuse 1: %s" % (
                len(est), run.port, [c.cport for c in est]))
        faults = [e for e in tdlib.read_log(run.log)
                  if e["event"] == "fault" and e.get("fault") == "connect_refuse"]
        if not faults:
            problems.append("no connect_refuse fault event in the log")
        return problems
    if len(est) < run.min_conns:
        return ["%d connection(s) to port %d on the wire, want at least %d"
                % (len(est), run.port, run.min_conns)]
    if run.mode == "rst":
        faults = [e for e in tdlib.read_log(run.log)
                  if e["event"] == "fault" and e.get("fault") == "rst"]
        if len(faults) < len(est):
            return ["%d rst fault event(s) for %d connection(s)" % (len(faults), len(est))]

    sides = ("server", "client") if run.side == "both" else (run.side,)

    def ends(conn, side):
        return (conn.sport, conn.cport) if side == "server" else (conn.cport, conn.sport)

    def all_logged():
        events = _Events(run.log)
        return events if all(events.final(*ends(c, side), c)[0]
                             for c in est for side in sides) else None
    try:
        events = tdlib.wait_until(all_logged, timeout=5, what="a close event for every connection")
    except AssertionError:
        events = _Events(run.log)
    problems = []
    for conn in est:
        for side in sides:
            finals, shared = events.final(*ends(conn, side), conn)
            if len(finals) != 1:
                problems.append("%s %d->%d: want one close event of the last holder, got %d%s:\n%s"
                                % ((side,) + ends(conn, side) + (len(finals),
                                   " (and %d shared)" % len(shared) if shared else "",
                                   conn.describe())))
                continue
            problems += check_conn(run, conn, finals[0], events, side)
    return problems
