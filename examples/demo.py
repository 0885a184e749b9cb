#!/usr/bin/env python3
"""teardown demo: real programs, real packets, one close action at a time.

Each scenario runs the same two programs once per close action: first
without the library ("none": the program's own behaviour), then with
libteardown.so preloaded into one of them and a one-rule policy, as
`teardown --close ACTION -- PROGRAM` would set:

    (a) a client closes first after a request/response;
    (b) a server closes with the request unread and a 2 MiB reply still
        queued; the request arrived whole;
    (c) the same, while the client is still sending its request;
    (d) a client that sets SO_LINGER {1,0} before closing;
    (e) python3's http.server answering curl (if curl is installed).

For each run it shows what the other program saw (how its read ended,
bytes received of bytes sent), what each side sent on the wire to end
the connection (tcpdump), who holds TIME_WAIT (ss), and what the
library's log said about the close, so the log can be checked against
the wire.

Everything runs in a private network namespace that the demo creates
(re-executing itself under `unshare --net` as root, or `unshare --user
--net` for other users when unprivileged user namespaces are allowed),
so the host's network is never touched.  Temporary files are removed at
the end.

Run with `sudo make demo`, or: TD_BUILD=build python3 examples/demo.py
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.environ.get("TD_BUILD", "build")
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(REPO, BUILD)
LIB = os.path.join(BUILD, "libteardown.so")
TDPEER = os.path.join(BUILD, "examples", "tdpeer")
# Programs run under the library are real binaries, never a shell shim.
PYTHON = "/usr/bin/python3"

INSIDE = "TD_DEMO_INSIDE"        # set in the re-executed copy
HOST_NETNS = "TD_DEMO_HOST_NETNS"  # the namespace it must not be in

ACTIONS = ("none", "pass", "graceful", "drain", "abort")
MiB = 1024 * 1024


# ---------------------------------------------------------------------------
# Entering the private network namespace
# ---------------------------------------------------------------------------

def _netns_id():
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return ""


def _need(msg):
    print("teardown demo: %s" % msg, file=sys.stderr)
    return 1


def enter_namespace():
    """Re-execute this script inside a new network namespace."""
    for path, what in ((LIB, "the library"), (TDPEER, "tdpeer")):
        if not os.path.exists(path):
            return _need("%s is not built (%s): run make first" % (what, path))
    for tool, pkg in (("unshare", "util-linux"), ("ip", "iproute2"), ("ss", "iproute2"),
                      ("tcpdump", "tcpdump")):
        if not shutil.which(tool):
            return _need("needs %s (apt-get install %s)" % (tool, pkg))
    if os.geteuid() == 0:
        prefix = ["unshare", "--net"]
    else:
        # A user namespace of our own gives the capabilities tcpdump and
        # `ip link` need, inside the new network namespace only.  Keeping
        # our own uid (not "root") stops tcpdump from trying to switch
        # users, which a user namespace does not allow.
        prefix = ["unshare", "--user", "--map-current-user", "--keep-caps", "--net"]
    probe = subprocess.run(prefix + ["--", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["exit status %d" % probe.returncode])[-1]
        if os.geteuid() == 0:
            return _need("cannot create a network namespace (%s)" % why)
        return _need("needs root (sudo make demo) or unprivileged user namespaces "
                     "(sysctl kernel.unprivileged_userns_clone=1): %s" % why)
    env = dict(os.environ, **{INSIDE: "1", HOST_NETNS: _netns_id()})
    cmd = prefix + ["--", sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    try:
        return subprocess.run(cmd, env=env).returncode
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

class Proc:
    """A child whose stdout and stderr go to files in the demo's tmpdir."""

    def __init__(self, tmp, name, cmd, env):
        self.name = name
        self.out = os.path.join(tmp, name + ".out")
        self.err = os.path.join(tmp, name + ".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                                          stdin=subprocess.DEVNULL)

    def running(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("%s did not finish within %g s" % (self.name, timeout))

    def stop(self, sig=signal.SIGINT, timeout=5):
        if self.running():
            self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if self.running():
            self.popen.kill()
        self.popen.wait()

    def text(self, which="out"):
        with open(self.out if which == "out" else self.err, errors="replace") as f:
            return f.read()

    def json_lines(self):
        recs = []
        for line in self.text().splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
        return recs

    def wait_for(self, predicate, what, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if not self.running():
                value = predicate()
                if value:
                    return value
                raise RuntimeError("%s exited before %s: %s"
                                   % (self.name, what, self.text("err").strip()[-200:]))
            if time.monotonic() > deadline:
                raise RuntimeError("%s: no %s within %g s" % (self.name, what, timeout))
            time.sleep(0.005)


def bare_env():
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("TEARDOWN_")
            and k not in (INSIDE, HOST_NETNS)}


def library_env(action, log_path):
    """The environment of the program under study: the library and a
    one-rule policy (no match: every TCP socket), logging JSON to a file."""
    env = bare_env()
    if action == "none":
        return env
    env["LD_PRELOAD"] = LIB
    env["TEARDOWN_POLICY"] = (
        'version = 1;\n'
        'log = { target = "%s"; format = "json"; };\n'
        'rules = ( { name = "demo"; close = "%s"; } );\n' % (log_path, action))
    return env


# ---------------------------------------------------------------------------
# Observers: tcpdump, ss, the library's log
# ---------------------------------------------------------------------------

_PACKET_RE = re.compile(r"^\S+ IP6? \S+\.(\d+) > \S+\.(\d+): Flags \[([^\]]*)\]")


class Capture:
    """tcpdump on lo for one scenario (headers only)."""

    def __init__(self, tmp, name):
        self.tmp = tmp
        self.path = os.path.join(tmp, name + ".pcap")
        self.proc = None
        self.segments = []   # (sport, dport, flags)

    def __enter__(self):
        cmd = ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-nn", "-s", "128",
               "-w", self.path, "tcp"]
        self.proc = Proc(self.tmp, os.path.basename(self.path)[:-5] + ".tcpdump", cmd, bare_env())
        self.proc.wait_for(lambda: "listening on" in self.proc.text("err"),
                           "its 'listening on' line", timeout=10)
        return self

    def __exit__(self, *exc):
        time.sleep(0.1)     # the last segments of the last run
        self.proc.stop(signal.SIGINT, timeout=10)
        out = subprocess.run(["tcpdump", "-r", self.path, "-nn", "-tt"],
                             capture_output=True, text=True, timeout=30)
        for line in out.stdout.splitlines():
            m = _PACKET_RE.match(line)
            if m:
                self.segments.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return False

    def ending(self, sport, dport):
        """What the endpoint sport sent to end the connection to dport:
        "FIN", "RST", "FIN>RST" (both, in that order), or "-"."""
        seen = []
        for s, d, flags in self.segments:
            if s != sport or d != dport or "S" in flags:
                continue
            kind = "RST" if "R" in flags else "FIN" if "F" in flags else None
            if kind and kind not in seen:
                seen.append(kind)
        return ">".join(seen) or "-"


def time_wait_holders():
    """The (local_port, peer_port) pairs of every TIME-WAIT socket."""
    out = subprocess.run(["ss", "-tanH", "state", "time-wait"], capture_output=True,
                         text=True, check=True, timeout=10).stdout
    pairs = set()
    for line in out.splitlines():
        fields = line.split()
        # ss prints no state column when a state filter is given
        addrs = [f for f in fields if ":" in f]
        if len(addrs) >= 2:
            pairs.add((int(addrs[0].rpartition(":")[2]), int(addrs[1].rpartition(":")[2])))
    return pairs


def close_event(log_path):
    """The library's close event for the connection (not the listener)."""
    if not os.path.exists(log_path):
        return None
    found = None
    with open(log_path, errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") in ("close", "exit") and rec.get("role") in ("client", "server"):
                found = found or rec
    return found


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

class Scenario:
    """Two tdpeer programs; the library is loaded into `subject`."""

    def __init__(self, key, title, subject, server, client, note, hold_ms=0):
        self.key, self.title, self.subject = key, title, subject
        self.server_args = server + (["--hold", str(hold_ms)] if hold_ms else [])
        self.client_args = client
        self.shown_server, self.shown_client = server, client
        self.note = note
        self.peer = "server" if subject == "client" else "client"

    def describe(self):
        lines = []
        for role, args in (("server", self.shown_server), ("client", self.shown_client)):
            mark = "   <- the library goes here" if role == self.subject else ""
            lines.append("%s: tdpeer %s %s%s" % (role, role, " ".join(args), mark))
        return lines

    def run(self, tmp, port, action):
        name = "%s-%s" % (self.key, action)
        log = os.path.join(tmp, name + ".jsonl")
        envs = {"server": bare_env(), "client": bare_env()}
        envs[self.subject] = library_env(action, log)
        srv = Proc(tmp, name + ".server",
                   [TDPEER, "server", "--listen", "127.0.0.1:%d" % port] + self.server_args,
                   envs["server"])
        try:
            srv.wait_for(lambda: any(r.get("event") == "listening" for r in srv.json_lines()),
                         "its listening line")
            cli = Proc(tmp, name + ".client",
                       [TDPEER, "client", "--connect", "127.0.0.1:%d" % port] + self.client_args,
                       envs["client"])
            cli.wait(20)
            srv.wait(20)
        finally:
            srv.kill()
        res = {}
        for role, proc in (("server", srv), ("client", cli)):
            lines = [r for r in proc.json_lines() if r.get("event") == "result"]
            if len(lines) != 1:
                raise RuntimeError("%s printed %d result lines: %s"
                                   % (proc.name, len(lines), proc.text("err").strip()[-200:]))
            res[role] = lines[0]
        other = "client" if self.peer == "server" else "server"
        peer = res[self.peer]
        return Row(action=action,
                   client_port=res["client"]["local_port"], server_port=port,
                   peer_end=peer["recv_end"] or "-",
                   got=peer["bytes_received"], sent=res[other]["bytes_sent"],
                   event=close_event(log) if action != "none" else None)


class HttpScenario(Scenario):
    """python3 -m http.server (the library goes there) answering curl."""

    SIZE = 256 * 1024

    def __init__(self, key, title, note):
        Scenario.__init__(self, key, title, "server", [], [], note)
        self.peer = "client"

    def describe(self):
        return ["server: %s -m http.server --bind 127.0.0.1 PORT   <- the library goes here"
                % PYTHON,
                "client: curl -s -o FILE http://127.0.0.1:PORT/file.bin (%s)"
                % human(self.SIZE)]

    def run(self, tmp, port, action):
        name = "%s-%s" % (self.key, action)
        log = os.path.join(tmp, name + ".jsonl")
        root = os.path.join(tmp, "www")
        if not os.path.isdir(root):
            os.mkdir(root)
            with open(os.path.join(root, "file.bin"), "wb") as f:
                f.write(b"x" * self.SIZE)
        srv = Proc(tmp, name + ".server",
                   [PYTHON, "-u", "-m", "http.server", "--bind", "127.0.0.1",
                    "--directory", root, str(port)], library_env(action, log))
        try:
            srv.wait_for(lambda: "Serving HTTP" in srv.text(), "its 'Serving HTTP' line")
            out = subprocess.run(["curl", "-s", "-o", os.path.join(tmp, name + ".body"),
                                  "-w", "%{size_download} %{local_port}",
                                  "http://127.0.0.1:%d/file.bin" % port],
                                 capture_output=True, text=True, timeout=20, env=bare_env())
            time.sleep(0.05)   # the server's close, after curl has its reply
        finally:
            srv.stop(signal.SIGINT)
        got, _, cport = out.stdout.partition(" ")
        return Row(action=action, client_port=int(cport or 0), server_port=port,
                   peer_end={0: "EOF", 56: "ECONNRESET", 18: "truncated"}.get(
                       out.returncode, "curl rc %d" % out.returncode),
                   got=int(got or 0), sent=self.SIZE,
                   event=close_event(log) if action != "none" else None)


class Row:
    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.wire = {}
        self.time_wait = "?"
        self.error = None


SCENARIOS = [
    Scenario(
        "a", "A client closes first after a request/response", "client",
        server=["--read", "100", "--send", "1000", "--read-until-eof"],
        client=["--request", "100", "--read", "1000"],
        note=["The side that closes first holds TIME_WAIT; only abort avoids it, and the",
              "server's read then ends in ECONNRESET instead of EOF."]),
    Scenario(
        "b", "A server closes with the request unread and a 2 MiB reply queued", "server",
        server=["--wait-input", "--no-read", "--send", str(2 * MiB), "--sndbuf", "4194304"],
        client=["--request", "100", "--rcvbuf", "4096", "--read-delay", "200"],
        hold_ms=600,
        note=["Unread input makes the kernel answer close() with RST and drop the queued",
              "reply; graceful discards the input first, so FIN follows the whole reply."]),
    Scenario(
        "c", "The same, while the client is still sending its request", "server",
        server=["--wait-input", "--no-read", "--send", str(2 * MiB), "--sndbuf", "4194304"],
        client=["--request", "65536", "--write-chunk", "4096", "--write-delay", "10",
                "--rcvbuf", "4096", "--read-delay", "100"],
        hold_ms=800,
        note=["Bytes that reach a socket already closed are answered with RST: graceful",
              "is too early here.  drain reads to the client's EOF, so the reply survives."]),
    Scenario(
        "d", "A client that sets SO_LINGER {1,0}, then closes", "client",
        server=["--read", "100", "--send", "1000", "--read-until-eof"],
        client=["--request", "100", "--read", "1000", "--linger", "1,0"],
        note=["Zero linger turns close() into RST (no TIME_WAIT, the server sees a reset);",
              "graceful and drain undo it, so the server reads a clean EOF."]),
    HttpScenario(
        "e", "python3 http.server answers curl, then closes first (HTTP/1.0)",
        note=["The server closes first, so TIME_WAIT piles up on the server's port;",
              "abort frees it, and curl still has the whole file."]),
]


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def human(n):
    if n < 1024:
        return "%d" % n
    if n < MiB:
        return "%.0fK" % (n / 1024) if n % 1024 == 0 else "%.1fK" % (n / 1024)
    return "%.1fM" % (n / MiB)


ROW_FMT = "  %-9s%-11s%-11s %-8s%-8s%-9s%s"


def print_header(title, subject):
    peer = "client" if subject == "server" else "server"
    print(ROW_FMT % ("action", "%s saw" % peer, "got/sent", "client", "server",
                     "TIME_WAIT", "log (%s): wire why closer tw lost" % subject))


def format_log(row, subject):
    ev = row.event
    if row.action == "none":
        return "(library not loaded)"
    if ev is None:
        return "(no close event)"
    wire = ev.get("wire") or "?"
    seen = row.wire.get(subject, "-")
    mark = "" if wire == seen.split(">")[0] or (wire == "none" and seen == "-") else "*"
    parts = ["%-4s" % (wire + mark), "%-11s" % (ev.get("why") or "-"),
             "%-7s" % (ev.get("closer") or "-"), "%-3s" % ("yes" if ev.get("time_wait") else "no")]
    if ev.get("lost"):
        parts.append(human(ev["lost"]))
    return " ".join(parts).rstrip()


def print_row(row, subject):
    if row.error:
        print("  %-9s%s" % (row.action, "failed: " + row.error))
        return
    print(ROW_FMT % (row.action, row.peer_end, "%s/%s" % (human(row.got), human(row.sent)),
                     row.wire.get("client", "?"), row.wire.get("server", "?"),
                     row.time_wait, format_log(row, subject)))


def run_scenario(tmp, scen, first_port):
    rows = []
    with Capture(tmp, "cap-" + scen.key) as cap:
        for i, action in enumerate(ACTIONS):
            try:
                rows.append(scen.run(tmp, first_port + i, action))
            except Exception as exc:   # one failed run must not hide the others
                row = Row(action=action, client_port=0, server_port=first_port + i,
                          peer_end="", got=0, sent=0, event=None)
                row.error = str(exc)
                rows.append(row)
    tw = time_wait_holders()
    for row in rows:
        c, s = row.client_port, row.server_port
        row.wire = {"client": cap.ending(c, s), "server": cap.ending(s, c)}
        holders = [who for who, pair in (("client", (c, s)), ("server", (s, c))) if pair in tw]
        row.time_wait = " + ".join(holders) or "nobody"
    return rows


def inside():
    if os.environ.get(HOST_NETNS) and _netns_id() == os.environ[HOST_NETNS]:
        return _need("refusing to run: not in a private network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="teardown-demo-")
    started = time.monotonic()
    failures = mismatches = 0
    try:
        print("teardown demo: one real server and client per row, in a private network "
              "namespace.")
        print("peer saw: how the other program's read ended, bytes it got/were sent.  "
              "client, server:")
        print("what each side sent to end the connection (tcpdump).  TIME_WAIT: who holds "
              "it (ss).")
        have_curl = shutil.which("curl") is not None
        for n, scen in enumerate(SCENARIOS):
            print()
            print("(%s) %s" % (scen.key, scen.title))
            for line in scen.describe():
                print("    " + line)
            if isinstance(scen, HttpScenario) and not have_curl:
                print("    (skipped: curl is not installed)")
                continue
            rows = run_scenario(tmp, scen, 20000 + 100 * n)
            print_header(scen.title, scen.subject)
            for row in rows:
                print_row(row, scen.subject)
                failures += row.error is not None
                mismatches += "*" in format_log(row, scen.subject)
            for line in scen.note:
                print("  " + line)
        print()
        if mismatches:
            print("* the log's wire is what close() put in motion; a later RST came from the "
                  "kernel,")
            print("  when the peer's bytes reached the socket after close().")
        print("Every other row: the log names the same FIN or RST as tcpdump.  "
              "(%.1f s)" % (time.monotonic() - started))
        print("Try it on your programs:  build/teardown --close drain --role server "
              "-- ./server")
    finally:
        if os.environ.get("TD_DEMO_KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


def main():
    if os.environ.get(INSIDE) == "1":
        return inside()
    return enter_namespace()


if __name__ == "__main__":
    sys.exit(main())
