"""Helpers for the end-to-end tests of teardown.

The runner (run.py) executes every test function in its own process,
inside a fresh network namespace when it runs as root, with a private
temporary directory.  This module gives the tests what they need there:

* paths of the build products (``lib_path()``, ``tdpeer()``, ...);
* environments for preloading the library (``shim_env``, ``policy_text``);
* process control that never hangs and always cleans up (``spawn``,
  ``run``, ``Server``, ``run_client``);
* observers of the wire and of the kernel: ``Capture`` (tcpdump),
  ``ss_state`` and friends, ``nstat_delta``, ``Bpftrace``;
* ``read_log`` for the library's JSON-lines audit log;
* the decorators ``requires`` and ``timeout``, and ``skip``.

Everything a helper starts or reads is remembered, and when a test fails
the runner prints it: each process's command line, exit status, stdout
and stderr, the packet summary of each capture, the audit logs, and the
counter deltas.  A failure should be diagnosable from the output alone.

Only the standard library is used.
"""

import calendar
import collections
import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    """Return the absolute build directory: $TD_BUILD (default ``build``).

    A relative TD_BUILD is taken relative to the repository root, so the
    tests work from any current directory.
    """
    path = os.environ.get("TD_BUILD", "build")
    return path if os.path.isabs(path) else os.path.join(REPO_ROOT, path)


def lib_path():
    """Return the path of the preloaded library, build/libteardown.so."""
    return os.path.join(build_dir(), "libteardown.so")


def plain_library_env(env):
    """env with the plain build's library instead of a sanitizer build's.

    For the programs a preloaded sanitizer runtime changes on its own,
    with or without this library (Debian's curl deadlocks in setlocale()
    under libasan; libasan's malloc replaces redis's jemalloc): in a
    sanitizer run (TD_SANITIZE=1) they get the library `make test` built
    before `make sanitize` runs, and every other program the sanitized
    one.  Outside a sanitizer run, env as it is."""
    if not sanitize():
        return env
    plain = os.path.join(os.path.dirname(os.path.abspath(build_dir())), "libteardown.so")
    assert os.path.exists(plain), "%s is missing: run make before make sanitize" % plain
    env = dict(env)
    env["LD_PRELOAD"] = plain
    env.pop("ASAN_OPTIONS", None)
    return env


def tdpeer():
    """Return the path of the test peer program, build/examples/tdpeer."""
    return os.path.join(build_dir(), "examples", "tdpeer")


def teardown_cmd():
    """Return the path of the ``teardown`` command, build/teardown."""
    return os.path.join(build_dir(), "teardown")


def test_prog(name):
    """Return the path of a test program or library, build/tests/progs/NAME
    (tests/progs/, built by make testprogs)."""
    return os.path.join(build_dir(), "tests", "progs", name)


def sanitize():
    """Return True when the build under test is an ASan/UBSan build (TD_SANITIZE=1)."""
    return os.environ.get("TD_SANITIZE", "") == "1"


_ASAN_RUNTIME = None


def asan_runtime():
    """Return the path of gcc's libasan.so, which must come first in LD_PRELOAD.

    A sanitized library preloaded alone aborts with "ASan runtime does not
    come first in initial library list", hence this lookup.
    """
    global _ASAN_RUNTIME
    if _ASAN_RUNTIME is None:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                             capture_output=True, text=True, check=True)
        _ASAN_RUNTIME = out.stdout.strip()
    return _ASAN_RUNTIME


# ---------------------------------------------------------------------------
# Test metadata: requirements, timeouts, skips
# ---------------------------------------------------------------------------

ROOT_REASON = "needs root (network namespace, packet capture)"

# Tools a test may require; each is found on PATH.
_TOOLS = ("tshark", "nginx", "curl", "strace", "valgrind", "socat", "redis-server",
          "lighttpd", "logrotate", "promtool", "journalctl", "gzip", "setpriv",
          "systemd-analyze", "man", "groff", "dpkg-buildflags", "bash", "spin", "gcc")
# Requirements that need root, and what else they need.
_ROOT_TOOLS = {"root": (), "netns": ("unshare", "ip"), "tcpdump": ("tcpdump",),
               "bpftrace": ("bpftrace",)}
_BUILT = {"tdpeer": tdpeer, "lib": lib_path, "teardown": teardown_cmd}
KNOWN_REQUIREMENTS = frozenset(_TOOLS) | frozenset(_ROOT_TOOLS) | frozenset(_BUILT)


class Skip(Exception):
    """Raised (by ``skip``) to end a test as skipped; the message is the reason."""


def skip(reason):
    """End the running test as skipped, with a one-line reason."""
    raise Skip(reason)


def requires(*names):
    """Decorator: the test needs all of ``names``, or it is skipped.

    Names: "root", "netns", "tcpdump", "bpftrace" (these need root);
    "tshark", "nginx", "curl", "strace", "valgrind", "socat",
    "redis-server", "lighttpd", "logrotate", "promtool", "journalctl",
    "gzip", "setpriv", "systemd-analyze", "man", "groff", "dpkg-buildflags",
    "bash", "spin", "gcc" (found on PATH); "tdpeer", "lib", "teardown" (built
    by make).
    """
    unknown = set(names) - KNOWN_REQUIREMENTS
    if unknown:
        raise ValueError("unknown requirement(s): %s" % ", ".join(sorted(unknown)))

    def mark(func):
        func.td_requires = tuple(getattr(func, "td_requires", ())) + tuple(names)
        return func
    return mark


def timeout(seconds):
    """Decorator: the runner kills the test after ``seconds`` (default 60)."""
    def mark(func):
        func.td_timeout = float(seconds)
        return func
    return mark


_NETNS_ERROR = None


def netns_error():
    """Return why ``unshare --net`` does not work here, or None if it does.

    Checked once per process: containers often refuse new namespaces even
    to root, and then no test may pretend to be isolated.
    """
    global _NETNS_ERROR
    if _NETNS_ERROR is None:
        if os.geteuid() != 0:
            _NETNS_ERROR = ROOT_REASON
        elif not shutil.which("unshare") or not shutil.which("ip"):
            _NETNS_ERROR = "needs unshare and ip (util-linux, iproute2)"
        else:
            probe = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                                   capture_output=True, text=True, timeout=10)
            _NETNS_ERROR = "" if probe.returncode == 0 else (
                "needs a network namespace (unshare --net failed: %s)"
                % (probe.stderr.strip().split("\n")[-1] or "rc %d" % probe.returncode))
    return _NETNS_ERROR or None


def _tracefs_ok():
    return (os.path.isdir("/sys/kernel/tracing/events")
            or os.path.isdir("/sys/kernel/tracing"))


def unmet_requirement(names):
    """Return the reason the first unmet requirement in ``names`` fails, or None."""
    for name in names:
        if name in _ROOT_TOOLS:
            if os.geteuid() != 0:
                return ROOT_REASON
            for tool in _ROOT_TOOLS[name]:
                if not shutil.which(tool):
                    return "needs %s (not installed)" % tool
            if name == "netns" and netns_error():
                return netns_error()
            if name == "bpftrace" and not _tracefs_ok():
                return "needs tracefs (/sys/kernel/tracing) for bpftrace"
        elif name in _TOOLS:
            if not shutil.which(name):
                return "needs %s (not installed)" % name
        elif name in _BUILT:
            path = _BUILT[name]()
            if not os.path.exists(path):
                return "needs %s (not built: run make)" % os.path.relpath(path, REPO_ROOT)
    return None


# ---------------------------------------------------------------------------
# Per-test state: temporary directory, processes, diagnostics
# ---------------------------------------------------------------------------

class _TestState:
    """What one test has started and what should be shown if it fails."""

    def __init__(self, directory):
        self.dir = directory
        self.procs = []
        self.diagnostics = []   # (title, callable returning text)
        self.counter = collections.Counter()

    def unique(self, stem):
        """Return a file name in the test directory that no other helper uses."""
        self.counter[stem] += 1
        n = self.counter[stem]
        return os.path.join(self.dir, stem if n == 1 else "%s.%d" % (stem, n))


_STATE = None


def _state():
    global _STATE
    if _STATE is None:
        # Used outside the runner (e.g. from an interactive session).
        _STATE = _TestState(tempfile.mkdtemp(prefix="td-e2e-"))
    return _STATE


def begin_test(directory):
    """Called by the runner before a test: use ``directory`` as its tmpdir."""
    global _STATE
    _STATE = _TestState(directory)


def tmpdir():
    """Return the running test's private temporary directory (a str path)."""
    return _state().dir


def in_netns():
    """Return True when the runner placed this test in its own network namespace."""
    return os.environ.get("TD_E2E_NETNS") == "1"


def note(*parts):
    """Print a line to the test's captured output (shown when it fails)."""
    print(" ".join(str(p) for p in parts), flush=True)


def add_diagnostic(title, produce):
    """Register ``produce()`` (returning text) to be printed if the test fails."""
    _state().diagnostics.append((title, produce))


def diagnose_file(path, title=None):
    """Print the file at ``path`` if the test fails (e.g. a log or a config)."""
    def produce():
        if not os.path.exists(path):
            return "(missing)"
        with open(path, "r", errors="replace") as f:
            return f.read()
    add_diagnostic(title or path, produce)


def _tail(text, max_lines=150):
    lines = text.rstrip("\n").split("\n")
    if len(lines) > max_lines:
        skipped = len(lines) - max_lines
        lines = ["... (%d earlier lines omitted)" % skipped] + lines[-max_lines:]
    return "\n".join(lines)


def finish_test(failed):
    """Called by the runner after a test: stop its processes, print diagnostics.

    Every process the test started and did not reap is killed first, so
    the outputs printed below are complete.
    """
    state = _state()
    for proc in state.procs:
        proc.kill()
    if not failed:
        return
    for proc in state.procs:
        print(proc.describe(), flush=True)
    for title, produce in state.diagnostics:
        try:
            text = produce()
        except Exception as exc:  # a diagnostic must never hide the failure
            text = "(could not produce: %r)" % (exc,)
        print("----- %s -----\n%s" % (title, _tail(text or "(empty)")), flush=True)


# ---------------------------------------------------------------------------
# Environments and policies
# ---------------------------------------------------------------------------

def tsan():
    """Whether the build under test is a ThreadSanitizer build (TD_TSAN=1,
    ``make tsan``): its library runs only in programs built the same way."""
    return os.environ.get("TD_TSAN", "") == "1"


def _symbolize(text):
    """Frames "(module+0xOFFSET)" of a report with function, file and line
    (addr2line on the module of the build under test)."""
    progs = os.path.join(build_dir(), "tests", "progs")

    def one(m):
        mod, off = m.group(1), m.group(2)
        path = os.path.join(build_dir(), mod)
        if not os.path.exists(path):
            path = os.path.join(progs, mod)
        if not os.path.exists(path):
            return m.group(0)
        r = subprocess.run(["addr2line", "-f", "-C", "-e", path, "0x" + off],
                           capture_output=True, text=True, timeout=30)
        where = " ".join(r.stdout.split()) if r.returncode == 0 else "?"
        return "%s [%s+0x%s]" % (where.replace(REPO_ROOT + "/", ""), mod, off)
    return re.sub(r"\(([\w.+-]+)\+0x([0-9a-f]+)\)", one, text)


def tsan_reports():
    """The ThreadSanitizer reports written so far in this test, as text."""
    out = []
    for name in sorted(os.listdir(tmpdir())):
        if name.startswith("tsan."):
            with open(os.path.join(tmpdir(), name), errors="replace") as f:
                out.append(_symbolize(f.read()))
    return out


def shim_env(policy=None, config=None, extra=None, preload=True):
    """Return an environment dict for a child program.

    preload: put the library in LD_PRELOAD (under TD_SANITIZE=1, gcc's
    libasan.so goes first).  policy: libconfig text for TEARDOWN_POLICY.
    config: a path for TEARDOWN_CONFIG.  extra: more variables, applied
    last.  Any LD_PRELOAD or TEARDOWN_* inherited from the runner is
    dropped, so ``shim_env(preload=False)`` is a clean "without the
    library" environment.  So is PYTHONUNBUFFERED: a Python program under
    test that forks and prints from both processes relies on print()
    making one write() of its line and newline, which unbuffered it does
    not (two processes' lines then run together on one line).
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "PYTHONUNBUFFERED") and not k.startswith("TEARDOWN_")}
    if preload:
        libs = [lib_path()]
        if sanitize():
            libs.insert(0, asan_runtime())
        env["LD_PRELOAD"] = " ".join(libs)
    if sanitize():
        env["ASAN_OPTIONS"] = "verify_asan_link_order=0:detect_leaks=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    if tsan():
        # every report goes to a file of its own in the test's directory
        # (tsan_reports() reads them); the program runs on
        # (symbolized afterwards: the runtime's own symbolizer would start
        # with this LD_PRELOAD, which only a ThreadSanitizer program loads)
        env["TSAN_OPTIONS"] = ("log_path=%s:halt_on_error=0:report_signal_unsafe=1:"
                               "symbolize=0:die_after_fork=0" % os.path.join(tmpdir(), "tsan"))
    if policy is not None:
        env["TEARDOWN_POLICY"] = policy
    if config is not None:
        env["TEARDOWN_CONFIG"] = str(config)
    env.update(extra or {})
    return env


def sourced(text, names=("LD_PRELOAD", "TEARDOWN_POLICY", "TEARDOWN_CONFIG")):
    """Source ``text`` (what ``teardown -n`` prints) in /bin/sh, which runs
    nothing else, and return {name: value, or None when unset} for
    ``names``.  The shell starts with TEARDOWN_CONFIG and TEARDOWN_POLICY
    set to "stale", so an ``unset`` in the text shows."""
    show = "".join('if [ "${%s+set}" = set ]; then printf "%%s=%%s\\0" %s "$%s"; fi\n'
                   % (n, n, n) for n in names)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TEARDOWN_CONFIG": "stale",
           "TEARDOWN_POLICY": "stale"}
    res = subprocess.run(["/bin/sh", "-c", text + "\n" + show], env=env, capture_output=True,
                         timeout=10)
    assert res.returncode == 0 and not res.stderr, "not sourceable: %r\n%s" % (res.stderr, text)
    got = dict.fromkeys(names)
    for item in res.stdout.decode().split("\0")[:-1]:
        name, _, value = item.partition("=")
        got[name] = value
    return got


class Raw(str):
    """A string that ``to_libconfig`` emits as is (e.g. a libconfig expression)."""


def _libconfig_str(text):
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_libconfig(value):
    """Format a Python value as libconfig text.

    dict -> group ``{ k = v; }``; a list of scalars -> array ``[ ]``; any
    other list -> list ``( )``; bool -> true/false; int (with an L suffix
    beyond 32 bits); float; str (quoted and escaped); Raw -> as is.
    """
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return "%dL" % value if not -2**31 <= value < 2**31 else str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eEn") else text + ".0"
    if isinstance(value, str):
        return _libconfig_str(value)
    if isinstance(value, dict):
        body = " ".join("%s = %s;" % (k, to_libconfig(v)) for k, v in value.items())
        return "{ %s }" % body
    if isinstance(value, (list, tuple)):
        items = ", ".join(to_libconfig(v) for v in value)
        scalar = all(not isinstance(v, (dict, list, tuple)) for v in value)
        return ("[ %s ]" if scalar and value else "( %s )") % items
    raise TypeError("cannot express %r in libconfig" % (value,))


def policy_text(rules, log_path, fmt="json", **top):
    """Build the text of a policy.

    rules: a list of dicts, e.g. ``[{"name": "r", "match": {"role":
    "client"}, "close": "abort"}]``.  log_path: the audit log target (None
    for no log section); it is also shown if the test fails.  fmt: the log
    format.  top: more top-level settings, e.g. ``faults={...}``.
    """
    settings = {"version": top.pop("version", 1)}
    if log_path is not None:
        settings["log"] = {"target": str(log_path), "format": fmt}
        diagnose_file(str(log_path), "audit log %s" % log_path)
    settings.update(top)
    settings["rules"] = list(rules)
    return "\n".join("%s = %s;" % (k, to_libconfig(v)) for k, v in settings.items()) + "\n"


def read_log(path):
    """Read a JSON-lines audit log into a list of dicts.

    Every non-empty line must be a JSON object; otherwise ValueError
    names the file, the line number and the offending line.
    """
    records = []
    with open(path, "r", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ValueError("%s:%d: not JSON (%s): %r" % (path, lineno, exc, line)) from None
            if not isinstance(rec, dict):
                raise ValueError("%s:%d: not a JSON object: %r" % (path, lineno, line))
            records.append(rec)
    return records


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

def wait_until(predicate, timeout=5.0, interval=0.01, what="condition"):
    """Poll ``predicate()`` until it returns a true value, which is returned.

    Raises AssertionError naming ``what`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """A child process whose stdout and stderr go to files in the test's tmpdir.

    Files rather than pipes: a chatty child can never block on a full
    pipe, and the output survives for the failure report.  The process is
    killed at the end of the test if it is still running.
    """

    def __init__(self, cmd, env=None, name=None, cwd=None, stdin=None):
        state = _state()
        self.cmd = [str(c) for c in cmd]
        self.name = name or os.path.basename(self.cmd[0])
        self.out_path = state.unique(self.name + ".out")
        self.err_path = self.out_path[:-4] + ".err"
        if env is None:
            env = shim_env(preload=False)
        note("$", shlex.join(self.cmd), " [%s]" % self.name)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.popen = subprocess.Popen(self.cmd, stdout=out, stderr=err, env=env, cwd=cwd,
                                          stdin=stdin if stdin is not None else subprocess.DEVNULL)
        self.pid = self.popen.pid
        state.procs.append(self)

    @property
    def rc(self):
        """The exit status (negative: killed by that signal), or None while running."""
        return self.popen.poll()

    def running(self):
        """Return True while the process has not exited."""
        return self.popen.poll() is None

    def wait(self, timeout=10.0):
        """Wait for the exit and return the status; on timeout kill it and fail."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s (pid %d) still running after %.1f s; killed"
                                 % (self.name, self.pid, timeout)) from None

    def signal(self, sig):
        """Send ``sig`` to this process (and only to it) if it is still running."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self):
        """Kill the process with SIGKILL if it is still running, and reap it."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def stdout(self):
        """Return everything the process has written to stdout so far."""
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        """Return everything the process has written to stderr so far."""
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def lines(self):
        """Return the complete stdout lines written so far."""
        text = self.stdout()
        lines = text.split("\n")
        return lines[:-1]  # the last piece is empty or an unfinished line

    def json_lines(self):
        """Return stdout parsed as JSON lines; a non-JSON line raises AssertionError."""
        records = []
        for line in self.lines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError("%s printed a non-JSON line: %r" % (self.name, line)) from None
        return records

    def wait_for_json(self, predicate, timeout=5.0, what="a line"):
        """Wait until a JSON stdout line satisfies ``predicate`` and return it.

        Fails early if the process exits without printing one.
        """
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.json_lines():
                if predicate(rec):
                    return rec
            if not self.running():
                for rec in self.json_lines():  # lines written just before the exit
                    if predicate(rec):
                        return rec
                raise AssertionError("%s exited (rc %s) before printing %s"
                                     % (self.name, self.rc, what))
            if time.monotonic() > deadline:
                raise AssertionError("%s printed no %s within %.1f s" % (self.name, what, timeout))
            time.sleep(0.005)

    def describe(self):
        """Return a report of the command, its status and its output."""
        status = "running" if self.running() else "rc %s" % self.rc
        parts = ["===== %s (pid %d, %s) =====" % (self.name, self.pid, status),
                 "$ " + shlex.join(self.cmd)]
        for label, path in (("stdout", self.out_path), ("stderr", self.err_path)):
            with open(path, "r", errors="replace") as f:
                text = f.read()
            if text:
                parts.append("--- %s ---\n%s" % (label, _tail(text)))
        return "\n".join(parts)


def spawn(cmd, env=None, name=None, cwd=None):
    """Start ``cmd`` in the background and return its Proc.

    env None means a clean environment without the library.
    """
    return Proc(cmd, env=env, name=name, cwd=cwd)


def run(cmd, env=None, timeout=10.0, name=None, cwd=None):
    """Run ``cmd`` to completion (killed and failed after ``timeout`` s); return its Proc.

    The Proc has ``rc``, ``stdout()`` and ``stderr()``.
    """
    proc = Proc(cmd, env=env, name=name, cwd=cwd)
    proc.wait(timeout)
    return proc


# ---------------------------------------------------------------------------
# tdpeer
# ---------------------------------------------------------------------------

def peer_results(proc, forked=Ellipsis):
    """Return the "result" records a tdpeer process printed.

    forked: None, "parent" or "child" to keep only those lines; the
    default keeps all of them.
    """
    return [r for r in proc.json_lines()
            if r.get("event") == "result" and (forked is Ellipsis or r.get("forked") == forked)]


def _only(results, who):
    if len(results) != 1:
        raise AssertionError("%s: expected exactly one result line, got %d: %r"
                             % (who, len(results), results))
    return results[0]


def _connect_host(addr):
    """The address a client should use to reach a server listening on ``addr``."""
    host, _, _ = addr.rpartition(":")
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "[::]":
        return "[::1]"
    return host


class Server:
    """A ``tdpeer server`` in the background; the port is known once it listens.

    Usage::

        srv = tdlib.Server("--read", "100", "--send", "1000")
        tdlib.run_client(srv.port, "--request", "100")
        res = srv.result()
    """

    def __init__(self, *args, env=None, listen="127.0.0.1:0", name="server", timeout=5.0,
                 prefix=()):
        # prefix: a command that runs the server (a launcher that execs it)
        cmd = list(prefix) + [tdpeer(), "server", "--listen", listen] + [str(a) for a in args]
        self.proc = spawn(cmd, env=env, name=name)
        first = self.proc.wait_for_json(lambda r: r.get("event") in ("listening", "result"),
                                        timeout=timeout, what="its listening line")
        if first["event"] != "listening":
            raise AssertionError("%s could not listen on %s: %r" % (name, listen, first))
        self.port = first["port"]
        self.addr = first["addr"]
        self.host = _connect_host(self.addr)

    def wait(self, timeout=10.0):
        """Wait for the server to exit; return its exit status."""
        return self.proc.wait(timeout)

    def results(self, timeout=10.0, forked=Ellipsis):
        """Wait for the exit and return its result records (see ``peer_results``)."""
        self.wait(timeout)
        return peer_results(self.proc, forked)

    def result(self, timeout=10.0, forked=Ellipsis):
        """Wait for the exit and return its single result record."""
        return _only(self.results(timeout, forked), self.proc.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        return False


class PeerRun:
    """A finished ``tdpeer`` run: its Proc, exit status and result records."""

    def __init__(self, proc):
        self.proc = proc
        self.rc = proc.rc
        self.results = peer_results(proc)
        self.summary = next((r for r in proc.json_lines() if r.get("event") == "summary"), None)

    @property
    def result(self):
        """The single result record (AssertionError unless there is exactly one)."""
        return _only(self.results, self.proc.name)


def client_cmd(target, *args):
    """Return the command line of a tdpeer client; target is a port or "ADDR:PORT"."""
    if isinstance(target, int):
        target = "127.0.0.1:%d" % target
    return [tdpeer(), "client", "--connect", target] + [str(a) for a in args]


def start_client(target, *args, env=None, name="client"):
    """Start a tdpeer client in the background; return its Proc."""
    return spawn(client_cmd(target, *args), env=env, name=name)


def check_connected(*results):
    """Every tdpeer result connected (client) or accepted (server) without error."""
    for res in results:
        assert res["connect_error"] is None and res["accept_error"] is None, res


def leave_time_wait(*server_args, env=None):
    """Serve one connection that the server (tdpeer, run with server_args
    and env) closes first, so TIME_WAIT sits on the listening port after
    the server exits, and no listener; return that port."""
    srv = Server("--send", 10, *server_args, env=env, name="first-instance")
    cli = run_client(srv.port, "--read-until-eof").result
    srv_res = srv.result()
    check_connected(cli, srv_res)
    assert cli["recv_end"] == "EOF" and cli["bytes_received"] == 10, cli
    wait_until(lambda: time_wait_on(srv.port), timeout=2,
               what="TIME_WAIT on the server's port %d" % srv.port)
    assert not [r for r in ss_state(srv.port) if r.state == "LISTEN"]
    return srv.port


def run_client(target, *args, env=None, name="client", timeout=15.0):
    """Run a tdpeer client to completion and return a PeerRun.

    target: a port on 127.0.0.1, or "ADDR:PORT" (IPv6 as "[::1]:PORT").
    """
    proc = run(client_cmd(target, *args), env=env, name=name, timeout=timeout)
    return PeerRun(proc)


# ---------------------------------------------------------------------------
# Packet capture
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Packet:
    """One TCP segment as tcpdump printed it."""
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: frozenset   # subset of {'S', 'F', 'R', 'P', '.', 'U', 'E', 'W'}
    length: int
    line: str

    @property
    def syn(self):
        """True for SYN and SYN-ACK segments."""
        return "S" in self.flags

    @property
    def fin(self):
        """True for segments carrying FIN."""
        return "F" in self.flags

    @property
    def rst(self):
        """True for RST segments, with or without ACK (``R`` or ``R.``)."""
        return "R" in self.flags


_PACKET_RE = re.compile(
    r"^(?P<ts>\d+\.\d+) IP6? (?P<src>\S+)\.(?P<sport>\d+) > (?P<dst>\S+)\.(?P<dport>\d+): "
    r"Flags \[(?P<flags>[^\]]*)\](?P<rest>.*)$")
_LENGTH_RE = re.compile(r"\blength (\d+)")


def parse_tcpdump(text):
    """Parse ``tcpdump -nn -tt`` text into Packets; non-TCP lines are ignored."""
    packets = []
    for line in text.splitlines():
        m = _PACKET_RE.match(line)
        if not m:
            continue
        length = _LENGTH_RE.search(m.group("rest"))
        packets.append(Packet(ts=float(m.group("ts")), src=m.group("src"),
                              sport=int(m.group("sport")), dst=m.group("dst"),
                              dport=int(m.group("dport")),
                              flags=frozenset(m.group("flags")),
                              length=int(length.group(1)) if length else 0, line=line))
    return packets


class _Segments:
    """Questions about a list of TCP segments (``packets()``), asked of a
    whole Capture or of one Connection in it.

    A port alone can name several connections of one capture.  A server's
    port is every client's.  A client's local port is shared with
    connections to other destinations: connect() draws each destination's
    ports from a sequence of its own (offset by a hash of the address and
    port) and takes a port already in use (connected, in TIME_WAIT, or
    just freed by a reset or a refusal) whenever the 4-tuple is new, so
    two clients of different servers get the same port now and then.  To
    one destination the sequence moves on at each connect and comes back
    only after going round the whole range (thousands of connects).  So
    give both ports, or select the connection first with
    ``Capture.connection()`` (by its SYN's time when the peer's port is
    unknown, as for a connect the library sent elsewhere).
    """

    def packets(self):
        raise NotImplementedError

    def from_port(self, port, to_port=None):
        """Return the segments sent by the endpoint with local port ``port``.

        to_port narrows them to one connection (the peer's port).
        """
        return [p for p in self.packets()
                if p.sport == port and (to_port is None or p.dport == to_port)]

    def teardown_flags(self, from_port, to_port=None):
        """Return "FIN" or "RST": which the endpoint with ``from_port`` sent first
        after the handshake, or None if it sent neither."""
        for p in self.from_port(from_port, to_port):
            if p.syn:
                continue
            if p.rst:
                return "RST"
            if p.fin:
                return "FIN"
        return None

    def count_rst(self, from_port=None, to_port=None):
        """Count RST segments, all of them or those sent from ``from_port``.

        A bare "R" answering a segment that carried an ACK, sent after the
        connection's own reset, is left out: it is the kernel's reply to a
        late segment (the peer's delayed ACK) reaching a port whose socket
        is already gone; it ends nothing.  Every reset a socket sends
        (tcp_send_active_reset, and refusals of a SYN) carries ACK ("R.").
        """
        return sum(1 for p in self.packets() if p.rst and not self._stray(p)
                   and (from_port is None or p.sport == from_port)
                   and (to_port is None or p.dport == to_port))

    def _stray(self, pkt):
        """True for a bare RST (no ACK) that follows an RST of the same
        connection: the kernel's answer to a late segment, see count_rst."""
        if "." in pkt.flags:
            return False
        return any(p.rst and "." in p.flags and p.ts <= pkt.ts and p.sport == pkt.sport
                   and p.dport == pkt.dport for p in self.packets())

    def count_fin(self, from_port=None, to_port=None):
        """Count FIN segments, all of them or those sent from ``from_port``."""
        return sum(1 for p in self.packets() if p.fin
                   and (from_port is None or p.sport == from_port)
                   and (to_port is None or p.dport == to_port))

    def rst_from(self, port, to_port=None):
        """Return True if the endpoint with local port ``port`` sent an RST."""
        return self.count_rst(port, to_port) > 0

    def fin_from(self, port, to_port=None):
        """Return True if the endpoint with local port ``port`` sent a FIN."""
        return self.count_fin(port, to_port) > 0

    def first_fin(self):
        """Return the first FIN segment (of the capture, or of the connection), or None."""
        return next((p for p in self.packets() if p.fin), None)


class Capture(_Segments):
    """A tcpdump capture on lo for the duration of a ``with`` block.

    Starting waits until tcpdump really captures (its "listening on"
    message); stopping waits ``settle`` seconds for the last segments,
    then sends SIGINT and waits for tcpdump to write the file.  snaplen
    (e.g. 128) keeps only the headers of bulk transfers.  It uses
    ``-U --immediate-mode``: without them, short captures were lost on
    this machine (TPACKET_V3 block buffering).
    """

    def __init__(self, filter="tcp", iface="lo", settle=0.1, snaplen=None, name="tcpdump"):
        self.filter = filter
        self.snaplen = snaplen
        self.iface = iface
        self.settle = settle
        self.name = name
        self.path = None
        self.proc = None
        self._packets = None
        self._connections = None
        self._text = None

    def __enter__(self):
        self.path = _state().unique(self.name + ".pcap")
        # -B: a large kernel buffer.  In immediate mode each packet takes a
        # frame of the snapshot length, and with the default 2 MiB a burst
        # of short connections was dropped by the kernel ("572 packets
        # dropped by kernel" for 40 connections on a busy machine).
        cmd = ["tcpdump", "-i", self.iface, "-U", "--immediate-mode", "-B", "65536", "-nn",
               "-w", self.path]
        if self.snaplen:
            cmd += ["-s", str(self.snaplen)]
        cmd += shlex.split(self.filter)
        self.proc = spawn(cmd, name=self.name)
        wait_until(lambda: "listening on" in self.proc.stderr() or not self.proc.running(),
                   timeout=10, what="tcpdump to start")
        if not self.proc.running():
            raise AssertionError("tcpdump failed to start: %s" % self.proc.stderr().strip())
        add_diagnostic("packets (%s)" % os.path.basename(self.path), self.text)
        return self

    def __exit__(self, *exc):
        # tcpdump writes each packet as it reads it (-U), and may still be
        # behind the traffic: stop it only once the file has stopped
        # growing for `settle` seconds (at most 10 s).
        deadline = time.monotonic() + 10
        size, still = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = os.path.getsize(self.path) if os.path.exists(self.path) else 0
            if now != size:
                size, still = now, time.monotonic()
            elif time.monotonic() - still >= self.settle:
                break
            time.sleep(0.02)
        self.proc.signal(signal.SIGINT)
        self.proc.wait(10)
        return False

    def text(self):
        """Return the capture as ``tcpdump -r FILE -nn -tt`` prints it."""
        if self._text is None:
            if self.proc is None or self.proc.running():
                raise RuntimeError("the capture is still running")
            out = subprocess.run(["tcpdump", "-r", self.path, "-nn", "-tt"],
                                 capture_output=True, text=True, timeout=30)
            self._text = out.stdout
        return self._text

    def packets(self):
        """Return the captured TCP segments as Packets, in capture order."""
        if self._packets is None:
            self._packets = parse_tcpdump(self.text())
        return self._packets

    def connections(self, port=None, peer_port=None, since=None, until=None):
        """Return the capture's connections (Connection views) with an
        endpoint on ``port`` (and the other on ``peer_port``), whose SYN
        was sent between ``since`` and ``until``, in the order of their
        SYNs.

        since and until are seconds since the epoch (time.time(), taken
        around the program that made the connection: the same clock as
        tcpdump's timestamps); with either one, a connection whose SYN is
        not in the capture is left out.  Each use of a 4-tuple is a
        connection of its own, from its SYN on (see Connection).
        """
        if self._connections is None:
            self._connections = _split_connections(self.packets())
        found = []
        for conn in self._connections:
            ends = (conn.client_port, conn.server_port)
            if port is not None and port not in ends:
                continue
            if peer_port is not None:
                others = [b for a, b in (ends, ends[::-1]) if port is None or a == port]
                if peer_port not in others:
                    continue
            if since is not None or until is not None:
                if conn.syn_ts is None or (since is not None and conn.syn_ts < since) or \
                        (until is not None and conn.syn_ts > until):
                    continue
            found.append(conn)
        return found

    def connection(self, port, peer_port=None, since=None, until=None):
        """Return the one connection ``connections()`` selects with these
        arguments; AssertionError, naming the candidates, unless there is
        exactly one."""
        found = self.connections(port, peer_port, since, until)
        if len(found) != 1:
            raise AssertionError("want one connection on port %s (peer %s, SYN in [%s, %s]), "
                                 "found %d: %r" % (port, peer_port, since, until, len(found),
                                                   found))
        return found[0]


class Connection(_Segments):
    """The segments of one TCP connection in a capture: one 4-tuple, from
    its client's SYN (and that SYN sent again) to the next SYN that starts
    another connection on the same 4-tuple, or the end of the capture.

    client and server are (address, port); the client is the SYN's sender
    (for a connection already open when the capture began, with syn_ts
    None, the sender of its first segment).  It answers every question a
    Capture does (from_port, teardown_flags, count_rst, ...), about this
    connection only.
    """

    def __init__(self, client, server, syn_ts, syn_seq=None):
        self.client = client
        self.server = server
        self.syn_ts = syn_ts
        self.syn_seq = syn_seq
        self._segments = []

    @property
    def client_port(self):
        return self.client[1]

    @property
    def server_port(self):
        return self.server[1]

    def packets(self):
        return self._segments

    def _sent_again(self, pkt, seq):
        """Whether SYN ``pkt`` (sequence number seq) is this connection's
        own SYN sent again: same sender and number, nothing answered yet."""
        if self.syn_ts is None or (pkt.src, pkt.sport) != self.client:
            return False
        if seq is not None and self.syn_seq is not None and seq != self.syn_seq:
            return False
        return all(p.syn and "." not in p.flags and p.sport == pkt.sport
                   for p in self._segments)

    def __repr__(self):
        return "<Connection %s.%d > %s.%d, SYN at %s, %d segments>" % (
            self.client + self.server + (self.syn_ts, len(self._segments)))


_SEQ_RE = re.compile(r", seq (\d+)")


def _split_connections(packets):
    """Cut packets into Connections, in the order of their first segments."""
    conns, current = [], {}
    for p in packets:
        a, b = (p.src, p.sport), (p.dst, p.dport)
        key = (a, b) if a <= b else (b, a)
        conn = current.get(key)
        if p.syn and "." not in p.flags:
            m = _SEQ_RE.search(p.line)
            seq = int(m.group(1)) if m else None
            if conn is None or not conn._sent_again(p, seq):
                conn = current[key] = Connection(a, b, p.ts, seq)
                conns.append(conn)
        elif conn is None:
            conn = current[key] = Connection(a, b, None)
            conns.append(conn)
        conn._segments.append(p)
    return conns


# ---------------------------------------------------------------------------
# Socket states (ss) and counters (nstat)
# ---------------------------------------------------------------------------

SsRow = collections.namedtuple("SsRow", "state local peer local_port peer_port recv_q send_q")


def ts_seconds(text):
    """A log timestamp ("2026-11-21T08:25:38.347685Z", UTC) as seconds
    since the epoch, as tcpdump -tt prints a segment's time."""
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float(text[19:-1] or 0)


def event_time(ev):
    """When a log event was stamped, in seconds since the epoch."""
    return ts_seconds(ev["ts"])


def port_of(addr):
    """The port of "ADDR:PORT" as the log, tdpeer and ss write it
    ("127.0.0.1:80", "[::1]:80"); 0 when there is none (None, "", the
    log's "-", ss's "*")."""
    try:
        return int(addr.rpartition(":")[2]) if addr else 0
    except ValueError:
        return 0


def ss_rows():
    """Return every TCP socket of this network namespace (``ss -tanH``) as SsRows.

    The state is as ss prints it: "ESTAB", "TIME-WAIT", "CLOSE-WAIT",
    "FIN-WAIT-2", "LISTEN", ...
    """
    out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, check=True, timeout=10)
    rows = []
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        state, recv_q, send_q, local, peer = fields[:5]
        rows.append(SsRow(state, local, peer, port_of(local), port_of(peer),
                          int(recv_q), int(send_q)))
    note("ss:", *["\n  %s %s -> %s" % (r.state, r.local, r.peer) for r in rows] or ["(none)"])
    return rows


def ss_state(port=None):
    """Return the SsRows whose local or peer port is ``port`` (all rows if None)."""
    return [r for r in ss_rows() if port is None or port in (r.local_port, r.peer_port)]


def time_wait_on(local_port=None, peer_port=None):
    """Return the TIME-WAIT rows held by the endpoint with ``local_port``
    (of its connection to ``peer_port``, if given: a port alone may be
    another connection's too, see Capture).

    TIME_WAIT belongs to the side whose local address is shown (the side
    that closed first).  None returns every TIME-WAIT row.
    """
    return [r for r in ss_rows() if r.state == "TIME-WAIT"
            and (local_port is None or r.local_port == local_port)
            and (peer_port is None or r.peer_port == peer_port)]


CLOSING_STATES = ("FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK", "CLOSING")


def time_wait_settled(port, timeout=3.0):
    """The TIME-WAIT rows of the connections to or from ``port``, once none
    of them is still closing (FIN-WAIT, LAST-ACK, CLOSING).

    The kernel's close can lose the peer's FIN on the way in: a FIN that
    lands in the closing socket's backlog just as __tcp_close() hands the
    connection over to a FIN-WAIT-2 timewait entry is processed later by
    the old socket, now CLOSE, and dropped (the kernel's own comment in
    tcp_rcv_state_process(): "We still can lose it now").  Seen with an
    exit() close 80 us before the peer's FIN.  The closer then sits in
    FIN-WAIT-2 and the peer in LAST-ACK until the FIN is sent again,
    about 200 ms later on loopback; only then is the closer's TIME_WAIT
    there to be seen."""
    def settled():
        rows = ss_state(port)
        if any(r.state in CLOSING_STATES for r in rows):
            return None
        return [[r for r in rows if r.state == "TIME-WAIT"]]
    return wait_until(settled, timeout=timeout, what="the closes on port %d to settle" % port)[0]


def close_wait_on(port=None):
    """Return the CLOSE-WAIT rows whose local port is ``port`` (all if None)."""
    return [r for r in ss_rows() if r.state == "CLOSE-WAIT"
            and (port is None or r.local_port == port)]


def nstat_counters():
    """Return this namespace's SNMP/netstat counters (``nstat -asz``) as a dict."""
    out = subprocess.run(["nstat", "-asz"], capture_output=True, text=True, check=True, timeout=10)
    counters = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not line.startswith("#") and fields[1].isdigit():
            counters[fields[0]] = int(fields[1])
    return counters


class nstat_delta:
    """Counter increments over a ``with`` block, e.g. ``d["TcpExtTCPAbortOnClose"]``.

    Counters are per network namespace, so inside the runner's namespace
    they count exactly this test's connections.  Leave the block only
    after the processes involved have finished.
    """

    def __init__(self):
        self.before = {}
        self.delta = {}

    def __enter__(self):
        self.before = nstat_counters()
        return self

    def __exit__(self, *exc):
        after = nstat_counters()
        self.delta = {k: v - self.before.get(k, 0) for k, v in after.items()}
        note("nstat deltas:", json.dumps(self.nonzero(), sort_keys=True))
        return False

    def __getitem__(self, name):
        return self.delta.get(name, 0)

    def get(self, name, default=0):
        """Return the increment of counter ``name`` (``default`` if unknown)."""
        return self.delta.get(name, default)

    def nonzero(self):
        """Return the counters that changed, as a dict."""
        return {k: v for k, v in self.delta.items() if v}


# ---------------------------------------------------------------------------
# bpftrace
# ---------------------------------------------------------------------------

# RSTs the kernel sends, with the reason (enum sk_rst_reason).  saddr and
# daddr are sockaddr_in6-sized arrays; the port is bytes 2..3, big endian.
RST_SCRIPT = r"""
tracepoint:tcp:tcp_send_reset {
  printf("rst sport=%d dport=%d state=%d reason=%d\n",
         (args->saddr[2] << 8) | args->saddr[3], (args->daddr[2] << 8) | args->daddr[3],
         args->state, args->reason);
}
"""

# TCP state changes of every socket.
STATE_SCRIPT = r"""
tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  printf("state sport=%d dport=%d old=%d new=%d\n",
         args->sport, args->dport, args->oldstate, args->newstate);
}
"""

RST_REASONS = {0: "NOT_SPECIFIED", 1: "NO_SOCKET", 8: "TCP_ABORT_ON_DATA",
               9: "TCP_TIMEWAIT_SOCKET", 11: "TCP_ABORT_ON_CLOSE", 12: "TCP_ABORT_ON_LINGER",
               13: "TCP_ABORT_ON_MEMORY", 14: "TCP_STATE", 15: "TCP_KEEPALIVE_TIMEOUT",
               16: "TCP_DISCONNECT_WITH_DATA"}
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING", 12: "NEW_SYN_RECV"}

_KV_RE = re.compile(r"(\w+)=(-?\d+)")


def _parse_kv(lines, prefix, ports):
    events = []
    for line in lines:
        if not line.startswith(prefix + " "):
            continue
        ev = {k: int(v) for k, v in _KV_RE.findall(line)}
        if ports is None or ev.get("sport") in ports or ev.get("dport") in ports:
            events.append(ev)
    return events


def parse_rst(lines, ports=None):
    """Parse RST_SCRIPT output into dicts (sport, dport, state, reason, reason_name).

    ports: keep only events whose source or destination port is in it.
    bpftrace sees every namespace, so filter by this test's ports.
    """
    events = _parse_kv(lines, "rst", None if ports is None else set(ports))
    for ev in events:
        ev["reason_name"] = RST_REASONS.get(ev.get("reason"), str(ev.get("reason")))
    return events


def parse_states(lines, ports=None):
    """Parse STATE_SCRIPT output into dicts (sport, dport, old, new, and their names)."""
    events = _parse_kv(lines, "state", None if ports is None else set(ports))
    for ev in events:
        ev["old_name"] = TCP_STATES.get(ev.get("old"), str(ev.get("old")))
        ev["new_name"] = TCP_STATES.get(ev.get("new"), str(ev.get("new")))
    return events


def _ensure_tracefs():
    if os.path.isdir("/sys/kernel/tracing/events"):
        return
    subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                   capture_output=True, check=True, timeout=10)


class Bpftrace:
    """A bpftrace program running for the duration of a ``with`` block.

    Entering waits until the probes are attached (a marker printed from
    BEGIN); leaving waits ``settle`` seconds, stops bpftrace with SIGINT
    and collects its output in ``lines`` (the marker and bpftrace's own
    banner excluded).  Attaching happens in the host kernel, so events of
    every namespace arrive: filter them by the test's ports.

    ``missed``: how many times the kernel skipped one of its programs
    because a BPF program was already running on that CPU (the
    recursion_misses of each program, from bpftrace's fdinfo, read before
    it stops): a tracepoint hit in a softirq that interrupted another
    program's run, say a state change of the peer's socket while our own
    was being traced.  Such a trace lacks events and says nothing else
    about it (no "Lost" line).
    """

    MARKER = "TD_BPFTRACE_ATTACHED"

    def __init__(self, script, settle=0.1, attach_timeout=30.0, name="bpftrace"):
        self.script = 'BEGIN { printf("%s\\n"); }\n%s' % (self.MARKER, script)
        self.settle = settle
        self.attach_timeout = attach_timeout
        self.name = name
        self.proc = None
        self.lines = []
        self.missed = 0

    def _recursion_misses(self):
        total = 0
        d = "/proc/%d/fdinfo" % self.proc.pid
        with contextlib.suppress(OSError):
            for name in os.listdir(d):
                with contextlib.suppress(OSError), open(os.path.join(d, name)) as f:
                    for line in f:
                        if line.startswith("recursion_misses:"):
                            total += int(line.split()[1])
        return total

    def __enter__(self):
        _ensure_tracefs()
        self.proc = spawn(["bpftrace", "-B", "line", "-e", self.script], name=self.name)
        wait_until(lambda: self.MARKER in self.proc.stdout() or not self.proc.running(),
                   timeout=self.attach_timeout, what="bpftrace to attach")
        if not self.proc.running():
            raise AssertionError("bpftrace failed: %s" % self.proc.stderr().strip())
        return self

    def __exit__(self, *exc):
        time.sleep(self.settle)
        self.missed = self._recursion_misses()
        self.proc.signal(signal.SIGINT)
        self.proc.wait(15)
        out = self.proc.lines()
        start = out.index(self.MARKER) + 1 if self.MARKER in out else 0
        self.lines = [l for l in out[start:] if l.strip()]
        return False
