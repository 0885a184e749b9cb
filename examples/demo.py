#!/usr/bin/env python3
"""teardown demo: real programs, real packets, one close action at a time.

Each scenario runs the same two programs once per close action: first
without the library ("none": the program's own behaviour), then with
libteardown.so preloaded into one of them and a one-rule policy, which is
what `teardown --close ACTION -- PROGRAM` sets up:

    (a) a client closes first after a request/response;
    (b) a server closes with the request unread and its reply still queued;
    (c) the same, while the client is still sending its request;
    (d) a client that sets SO_LINGER {1,0} before closing;
    (e) python3's http.server serving a file to curl (if curl is installed).

For each run it shows what the other program saw (how its reads or writes
ended, bytes received of bytes sent), what each side sent on the wire to
end the connection (tcpdump), who holds TIME_WAIT afterwards (ss), and
what the library logged about the close, so the log can be checked
against the wire.

Everything runs in a private network namespace that the demo creates by
re-executing itself (`unshare --net` as root; `unshare --user --net` for
other users where unprivileged user namespaces are allowed): the host's
network is never touched.  Temporary files are removed at the end.

usage: sudo make demo
       TD_BUILD=build python3 examples/demo.py [-v]
  -v  also print each program's command line
Environment: TD_DEMO_KEEP=1 keeps the temporary directory (outputs,
captures, logs) and prints its name.
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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("TD_BUILD", "build")
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(REPO, BUILD)
LIB = os.path.join(BUILD, "libteardown.so")
TDPEER = os.path.join(BUILD, "examples", "tdpeer")
# Programs run under the library must be real executables, not shell shims.
PYTHON = "/usr/bin/python3"

INSIDE = "TD_DEMO_INSIDE"          # set in the re-executed copy
HOST_NETNS = "TD_DEMO_HOST_NETNS"  # the namespace that copy must not be in

ACTIONS = ("none", "pass", "graceful", "drain", "abort")
KiB = 1024
MiB = 1024 * KiB
REPLY = 256 * KiB     # the tdpeer server's reply fits in its send buffer
SNDBUF = "212992"     # (doubled by the kernel), so its close() finds the reply queued
FILE_SIZE = 16 * MiB  # http.server's file: more than the socket buffers hold...
CURL_RATE = "64M"     # ...with curl reading at 64 MB/s, so the close finds data queued


# ---------------------------------------------------------------------------
# Entering the private network namespace
# ---------------------------------------------------------------------------

def _netns_id():
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return ""


def _fail(msg):
    print("teardown demo: %s" % msg, file=sys.stderr)
    return 1


def enter_namespace():
    """Re-execute this script inside a new network namespace; return its status."""
    for path, what in ((LIB, "libteardown.so"), (TDPEER, "tdpeer")):
        if not os.path.exists(path):
            return _fail("%s is not built (%s): run make first" % (what, path))
    for tool, pkg in (("unshare", "util-linux"), ("ip", "iproute2"), ("ss", "iproute2"),
                      ("tcpdump", "tcpdump")):
        if not shutil.which(tool):
            return _fail("needs %s (apt-get install %s)" % (tool, pkg))
    if not os.access(PYTHON, os.X_OK):
        return _fail("needs %s (apt-get install python3)" % PYTHON)
    if os.geteuid() == 0:
        prefix = ["unshare", "--net"]
    else:
        # A user namespace of our own gives the capabilities that tcpdump
        # and `ip link` need, over the new network namespace only.  Keeping
        # our uid (rather than mapping it to root) stops tcpdump from
        # trying to switch users, which a user namespace forbids.
        prefix = ["unshare", "--user", "--map-current-user", "--keep-caps", "--net"]
    try:
        probe = subprocess.run(prefix + ["--", "ip", "link", "set", "lo", "up"],
                               capture_output=True, text=True, timeout=20)
        err = (probe.stderr.strip().splitlines() or ["exit status %d" % probe.returncode])[-1]
        ok = probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, err = False, str(exc)
    if not ok:
        if os.geteuid() == 0:
            return _fail("cannot create a network namespace (%s)" % err)
        return _fail("needs root (sudo make demo) or unprivileged user namespaces "
                     "(sysctl kernel.unprivileged_userns_clone=1); unshare said: %s" % err)
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
    """A child whose stdout and stderr go to files in the demo's directory."""

    started = []   # every Proc, so that none outlives the demo

    def __init__(self, tmp, name, cmd, env):
        self.name = name
        self.out = os.path.join(tmp, name + ".out")
        self.err = os.path.join(tmp, name + ".err")
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(cmd, stdout=out, stderr=err, env=env,
                                          stdin=subprocess.DEVNULL)
        Proc.started.append(self)

    def running(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError("%s still running after %g s" % (self.name, timeout)) from None

    def stop(self, sig, timeout=5):
        """Send sig if still running, wait, and kill it if that did not end it."""
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

    def last_error(self):
        lines = self.text("err").strip().splitlines()
        return lines[-1][:120] if lines else "no message"

    def json_lines(self):
        recs = []
        for line in self.text().splitlines():
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
        return recs

    def wait_for(self, predicate, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.running():
                if predicate():
                    break
                raise RuntimeError("%s exited before %s (%s)"
                                   % (self.name, what, self.last_error()))
            if time.monotonic() > deadline:
                raise RuntimeError("%s printed no %s within %g s" % (self.name, what, timeout))
            time.sleep(0.005)


def bare_env():
    """The environment of a program without the library."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("TEARDOWN_")
            and k not in (INSIDE, HOST_NETNS)}


def library_env(action, log_path):
    """The environment of the program under study: the library and a
    one-rule policy matching every TCP socket, logging JSON to a file."""
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

_SEGMENT_RE = re.compile(r"^\S+ IP6? \S+\.(\d+) > \S+\.(\d+): Flags \[([^\]]*)\]")


class Capture:
    """tcpdump on lo (headers only) while one scenario runs."""

    def __init__(self, tmp, name):
        self.tmp = tmp
        self.name = name
        self.path = os.path.join(tmp, name + ".pcap")
        self.proc = None
        self.segments = []   # (sport, dport, flags) in capture order

    def __enter__(self):
        cmd = ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-nn", "-s", "128",
               "-w", self.path, "tcp"]
        self.proc = Proc(self.tmp, self.name + ".tcpdump", cmd, bare_env())
        self.proc.wait_for(lambda: "listening on" in self.proc.text("err"),
                           "'listening on' line")
        return self

    def __exit__(self, *exc):
        time.sleep(0.1)   # the last segments of the last run
        self.proc.stop(signal.SIGINT, timeout=10)
        out = subprocess.run(["tcpdump", "-r", self.path, "-nn", "-tt"],
                             capture_output=True, text=True, timeout=30)
        for line in out.stdout.splitlines():
            m = _SEGMENT_RE.match(line)
            if m:
                self.segments.append((int(m.group(1)), int(m.group(2)), m.group(3)))
        return False

    def ending(self, sport, dport):
        """What the endpoint on port sport sent to end its connection to
        dport: "FIN", "RST", "FIN>RST" (both, in that order) or "-"."""
        seen = []
        for s, d, flags in self.segments:
            if s != sport or d != dport or "S" in flags:
                continue
            kind = "RST" if "R" in flags else "FIN" if "F" in flags else None
            if kind and kind not in seen:
                seen.append(kind)
        return ">".join(seen) or "-"


def ss_sockets():
    """Every TCP socket of the namespace as (state, local_port, peer_port)."""
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True,
                         timeout=10).stdout
    socks = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5:
            socks.append((f[0], int(f[3].rpartition(":")[2] or 0),
                          int(f[4].rpartition(":")[2]) if f[4][-1].isdigit() else 0))
    return socks


def wait_quiet(port, timeout=3.0):
    """Wait until no connection on port is still open (a drain in progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(st in ("LISTEN", "TIME-WAIT") for st, lp, pp in ss_sockets()
               if port in (lp, pp)):
            return
        time.sleep(0.01)


def read_log(path):
    """The library's events for the connection (the listener's left out)."""
    events = []
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("role") in ("client", "server"):
                    events.append(rec)
    return events


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

class Run:
    """What one run of a scenario showed."""

    def __init__(self, action, client_port, server_port):
        self.action = action
        self.client_port, self.server_port = client_port, server_port
        self.saw, self.got, self.sent = "-", 0, 0
        self.events = []
        self.wire = {}
        self.time_wait = "?"
        self.error = None

    def close_event(self):
        return next((e for e in self.events if e.get("event") in ("close", "exit")), None)

    def shutdown_fin(self):
        """True when the program's own shutdown() sent the FIN before close()."""
        return any(e.get("event") == "shutdown" and e.get("sent") in ("SHUT_WR", "SHUT_RDWR")
                   for e in self.events)


class PeerScenario:
    """A tdpeer server and a tdpeer client; the library goes into `subject`."""

    def __init__(self, key, title, subject, server, client, about, expect, lesson):
        self.key, self.title, self.subject = key, title, subject
        self.server_args, self.client_args = server, client
        self.about = about       # {"server": text, "client": text}
        self.expect = expect     # {action: "what the peer saw, TIME_WAIT holder"}
        self.lesson = lesson     # what the rows show, when they are as expected
        self.peer = "server" if subject == "client" else "client"

    def commands(self, port):
        server = [TDPEER, "server", "--listen", "127.0.0.1:%d" % port] + self.server_args
        if self.subject == "server":
            # It stays up after its connection, as real servers do, so that
            # a drain can finish in the background; the demo ends it.
            server += ["--hold", "20000"]
        return {"server": server,
                "client": [TDPEER, "client", "--connect", "127.0.0.1:%d" % port]
                + self.client_args}

    def run(self, tmp, port, action):
        name = "%s-%s" % (self.key, action)
        log = os.path.join(tmp, name + ".jsonl")
        envs = {"server": bare_env(), "client": bare_env()}
        envs[self.subject] = library_env(action, log)
        cmds = self.commands(port)
        srv = Proc(tmp, name + ".server", cmds["server"], envs["server"])
        cli = None
        try:
            srv.wait_for(lambda: any(r.get("event") == "listening" for r in srv.json_lines()),
                         "listening line")
            cli = Proc(tmp, name + ".client", cmds["client"], envs["client"])
            cli.wait(30)
            if self.subject == "server":
                srv.wait_for(lambda: any(r.get("event") == "result" for r in srv.json_lines()),
                             "result line")
                wait_quiet(port)
                srv.stop(signal.SIGTERM)
            else:
                srv.wait(30)
        finally:
            srv.kill()
        res = {}
        for role, proc in (("server", srv), ("client", cli)):
            lines = [r for r in proc.json_lines() if r.get("event") == "result"]
            if len(lines) != 1:
                raise RuntimeError("%s printed %d result lines (%s)"
                                   % (proc.name, len(lines), proc.last_error()))
            res[role] = lines[0]
        other = "client" if self.peer == "server" else "server"
        peer = res[self.peer]
        run = Run(action, res["client"]["local_port"], port)
        # A write that failed reports the reset; the read after it sees EOF.
        run.saw = peer["send_error"] or peer["recv_end"] or "-"
        run.got, run.sent = peer["bytes_received"], res[other]["bytes_sent"]
        run.events = read_log(log)
        return run


class HttpScenario:
    """python3 -m http.server (the library goes there) serving a file to curl."""

    def __init__(self, key, title, about, expect, lesson):
        self.key, self.title, self.about = key, title, about
        self.expect, self.lesson = expect, lesson
        self.subject, self.peer = "server", "client"

    def commands(self, port):
        return {"server": [PYTHON, "-u", "-m", "http.server", "--bind", "127.0.0.1",
                           "--directory", "WWW", str(port)],
                "client": ["curl", "-s", "--limit-rate", CURL_RATE, "-o", "FILE",
                           "http://127.0.0.1:%d/file.bin" % port]}

    def run(self, tmp, port, action):
        name = "%s-%s" % (self.key, action)
        log = os.path.join(tmp, name + ".jsonl")
        www = os.path.join(tmp, "www")
        if not os.path.isdir(www):
            os.mkdir(www)
            with open(os.path.join(www, "file.bin"), "wb") as f:
                f.truncate(FILE_SIZE)
        cmds = self.commands(port)
        cmds["server"][cmds["server"].index("WWW")] = www
        cmds["client"][cmds["client"].index("FILE")] = os.path.join(tmp, name + ".body")
        cmds["client"][1:1] = ["-w", "%{size_download} %{local_port}"]
        srv = Proc(tmp, name + ".server", cmds["server"], library_env(action, log))
        try:
            srv.wait_for(lambda: "Serving HTTP" in srv.text(), "'Serving HTTP' line")
            out = subprocess.run(cmds["client"], capture_output=True, text=True,
                                 timeout=30, env=bare_env())
            wait_quiet(port)
        finally:
            srv.stop(signal.SIGINT)   # KeyboardInterrupt: python exits normally
        got, _, cport = out.stdout.partition(" ")
        run = Run(action, int(cport or 0), port)
        run.saw = {0: "complete", 18: "partial", 56: "ECONNRESET"}.get(
            out.returncode, "curl rc %d" % out.returncode)
        run.got, run.sent = int(got or 0), FILE_SIZE
        run.events = read_log(log)
        return run


SCENARIOS = [
    PeerScenario(
        "a", "A client closes first after a request/response", "client",
        server=["--read", "100", "--send", "1000", "--read-until-eof"],
        client=["--request", "100", "--read", "1000"],
        about={"server": "reads the 100-byte request, replies 1000 bytes, reads to EOF, closes",
               "client": "sends 100 bytes, reads the 1000-byte reply, closes first"},
        expect=dict(none="EOF client", graceful="EOF client", drain="EOF client",
                    abort="ECONNRESET nobody"),
        lesson=["Whoever closes first holds TIME_WAIT.  abort avoids it, but the server's read",
                "then ends in ECONNRESET instead of EOF."]),
    PeerScenario(
        "b", "A server closes with the request unread and its reply queued", "server",
        server=["--wait-input", "--no-read", "--send", str(REPLY), "--sndbuf", SNDBUF],
        client=["--request", "100", "--rcvbuf", "4096", "--read-delay", "100"],
        about={"server": "never reads the request, queues a %d KiB reply, closes at once"
                         % (REPLY // KiB),
               "client": "sends a 100-byte request, then reads the reply slowly"},
        expect=dict(none="ECONNRESET nobody", graceful="EOF server", drain="EOF server",
                    abort="ECONNRESET nobody"),
        lesson=["Unread input turns close() into an RST that throws the queued reply away.",
                "graceful discards the input first, so the whole reply goes out, then FIN."]),
    PeerScenario(
        "c", "The same, while the client is still sending its request", "server",
        server=["--wait-input", "--no-read", "--send", str(REPLY), "--sndbuf", SNDBUF],
        client=["--request", "65536", "--write-chunk", "4096", "--write-delay", "10",
                "--rcvbuf", "4096", "--read-delay", "100"],
        about={"server": "as in (b)",
               "client": "sends 64 KiB in 4 KiB pieces 10 ms apart, then reads the reply"},
        expect=dict(none="ECONNRESET nobody", graceful="ECONNRESET nobody",
                    drain="EOF server", abort="ECONNRESET nobody"),
        lesson=["Data arriving after close() is answered with RST, which kills the reply even",
                "under graceful.  drain reads to the client's EOF first: nothing is lost."]),
    PeerScenario(
        "d", "A client that sets SO_LINGER {1,0}, then closes", "client",
        server=["--read", "100", "--send", "1000", "--read-until-eof"],
        client=["--request", "100", "--read", "1000", "--linger", "1,0"],
        about={"server": "as in (a)",
               "client": "as in (a), with SO_LINGER {1,0} set after connecting"},
        expect=dict(none="ECONNRESET nobody", graceful="EOF client", drain="EOF client",
                    abort="ECONNRESET nobody"),
        lesson=["Zero linger makes close() send RST: no TIME_WAIT, and a reset for the server.",
                "graceful and drain undo it, and the server reads a clean EOF."]),
    HttpScenario(
        "e", "python3 http.server closes first after serving a file to curl",
        about={"server": "/usr/bin/python3 -m http.server: reply, shutdown(SHUT_WR), close",
               "client": "curl, reading a 16 MiB file at %sB/s" % CURL_RATE},
        expect=dict(none="complete server", graceful="complete server",
                    drain="complete server", abort="ECONNRESET nobody"),
        lesson=["The server's shutdown() sends FIN behind the queued file, so TIME_WAIT stays",
                "on the server's port.  abort frees it by throwing away the unsent tail."]),
]


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def human(n):
    """Bytes, compactly: 100, 4K, 254K, 13.7M, 16M."""
    if n < KiB:
        return "%d" % n
    if n < MiB:
        return ("%dK" if n % KiB == 0 or n >= 100 * KiB else "%.1fK") % (n / KiB)
    if n >= 10 * MiB and n % MiB == 0:
        return "%dM" % (n // MiB)
    return "%.1fM" % (n / MiB)


# action, peer saw, got/sent, wire client/server, TIME_WAIT holder | the log
ROW_FMT = "%-8s %-10s %-9s %-9s %-6s %s"
LOG_FMT = "%-4s %-11s %-7s %-3s %s"
LOG_COLUMN = len(ROW_FMT % ("", "", "", "", "", ""))


def header(subject):
    top = " " * LOG_COLUMN + "the library's log (in the %s)" % subject
    return [top, ROW_FMT % ("action", "peer saw", "got/sent", "wire c/s", "TW",
                            LOG_FMT % ("wire", "why", "closer", "tw", "lost"))]


def close_wire(run, subject):
    """What close() itself sent, as tcpdump saw it: a FIN sent earlier by
    the program's own shutdown() is left out."""
    seen = run.wire.get(subject, "-").split(">")
    if run.shutdown_fin() and seen[0] == "FIN":
        seen = seen[1:] or ["-"]
    return seen[0]


def log_agrees(run, subject):
    """Does the library's close event name what tcpdump saw from that side?"""
    ev = run.close_event()
    wire = close_wire(run, subject)
    if ev.get("wire") == "none":
        # close() sent nothing new: the connection was over, or its FIN
        # had gone already (why = "fin-sent")
        return wire == "-" or (wire == "FIN" and ev.get("why") == "fin-sent")
    return ev.get("wire") == wire


def format_log(run, subject):
    if run.action == "none":
        return "(not loaded)"
    ev = run.close_event()
    if ev is None:
        return "(no close event)"
    mark = "" if log_agrees(run, subject) else "*"
    return (LOG_FMT % ((ev.get("wire") or "?") + mark, ev.get("why") or "-",
                       ev.get("closer") or "-", "yes" if ev.get("time_wait") else "no",
                       human(ev["lost"]) if ev.get("lost") else "")).rstrip()


def as_expected(run, scen):
    """Is the row what this demo's lessons describe?  ("pass" changes nothing.)"""
    want = scen.expect.get(run.action, scen.expect["none"])
    return "%s %s" % (run.saw, run.time_wait) == want


def format_run(run, scen):
    subject = scen.subject
    if run.error:
        return "%-8s failed: %s" % (run.action, run.error)
    action = run.action + ("" if as_expected(run, scen) else "!")
    return (ROW_FMT % (action, run.saw, "%s/%s" % (human(run.got), human(run.sent)),
                       "%s/%s" % (run.wire.get("client", "?"), run.wire.get("server", "?")),
                       run.time_wait, format_log(run, subject))).rstrip()


def run_scenario(tmp, scen, first_port):
    runs = []
    with Capture(tmp, "capture-" + scen.key) as cap:
        for i, action in enumerate(ACTIONS):
            try:
                runs.append(scen.run(tmp, first_port + i, action))
            except Exception as exc:   # one failed run must not hide the others
                run = Run(action, 0, first_port + i)
                run.error = str(exc)
                runs.append(run)
    socks = ss_sockets()
    for run in runs:
        c, s = run.client_port, run.server_port
        run.wire = {"client": cap.ending(c, s), "server": cap.ending(s, c)}
        holders = [who for who, lp, pp in (("client", c, s), ("server", s, c))
                   if ("TIME-WAIT", lp, pp) in socks]
        run.time_wait = "both" if len(holders) == 2 else (holders or ["nobody"])[0]
    return runs


def inside(verbose):
    if os.environ.get(HOST_NETNS) and _netns_id() == os.environ[HOST_NETNS]:
        return _fail("refusing to run: this is not a private network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    tmp = tempfile.mkdtemp(prefix="teardown-demo-")
    started = time.monotonic()
    failures = checked = agreed = unexpected = 0
    try:
        print("teardown demo: real clients and servers on loopback, in a private network")
        print("namespace.  Each row preloads the library into one of them with the policy")
        print('close = "ACTION" (as `teardown --close ACTION` does); none: without it.')
        print()
        print("peer saw, got/sent: how the other program's I/O ended; bytes it got/were sent.")
        print("wire c/s: FIN or RST from client/server (tcpdump).  TW: TIME_WAIT holder (ss).")
        for n, scen in enumerate(SCENARIOS):
            print()
            print("(%s) %s" % (scen.key, scen.title))
            port = 20000 + 100 * n
            cmds = scen.commands(port)
            for role in ("server", "client"):
                print("    %s: %s" % (role, scen.about[role]))
                if verbose:
                    print("      $ %s" % shlex.join(cmds[role]))
            if isinstance(scen, HttpScenario) and not shutil.which("curl"):
                print("    (skipped: curl is not installed)")
                continue
            runs = run_scenario(tmp, scen, port)
            for line in header(scen.subject):
                print(line)
            for run in runs:
                print(format_run(run, scen))
                failures += run.error is not None
                unexpected += not run.error and not as_expected(run, scen)
                if run.action != "none" and not run.error and run.close_event():
                    checked += 1
                    agreed += log_agrees(run, scen.subject)
            for line in scen.lesson:
                print("  " + line)
        print()
        print("In %d of %d runs the library's log named the FIN or RST that tcpdump saw."
              % (agreed, checked))
        if agreed < checked:
            print("* The log says what close() did.  An RST the kernel sends later, when the")
            print("  peer's data reaches the closed socket, is not in it: that is what drain")
            print("  is for.")
        if unexpected:
            print("! %d row(s) differ from what the notes describe (seen on Linux 6.x): on this"
                  % unexpected)
            print("  machine (kernel %s) those notes do not hold as written." % os.uname().release)
        print("Done in %.1f s.  Try: build/teardown --close drain --role server -- ./server"
              % (time.monotonic() - started))
    finally:
        for proc in Proc.started:
            proc.kill()
        if os.environ.get("TD_DEMO_KEEP"):
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


def main():
    args = sys.argv[1:]
    if any(a not in ("-v", "--verbose") for a in args):
        print("usage: %s [-v]   (-v: print each program's command line)"
              % os.path.basename(sys.argv[0]), file=sys.stderr)
        return 2
    try:
        if os.environ.get(INSIDE) == "1":
            return inside(verbose=bool(args))
        return enter_namespace()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:   # e.g. piped into head
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
