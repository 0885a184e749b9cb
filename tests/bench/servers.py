#!/usr/bin/env python3
"""3. Real servers from Debian, a new connection per request: requests per
second under the library as a ratio to bare.

Each server runs in a private network namespace of its own (as root) on
loopback, under three modes, a server for each, all up at once:

  bare      the server alone
  observe   the policy of teardown --log FILE --format json, as a file:
            teardown -c POLICY -- SERVER: every teardown logged as JSON to a
            file, nothing changed
  drain     the policy of teardown --close drain --role server --log FILE
            --format json, as a file: every accepted connection ends with a
            lingering close (shutdown(SHUT_WR), read to the peer's FIN,
            close), logged

and, for the servers that fork per connection, where a child's start and
end cost what the library's pages, descriptors and lines add to them, and
for apache2's prefork processes, two more that split observe's cost:

  preload   build/tests/progs/libfloor.so preloaded: every call the
            library wraps, forwarded, nothing else (what any preload costs)
  quiet     the policy of teardown -q, as a file: the library deciding
            and counting as observe does, no line written

A policy file, as an operator deploys one, not the options' text: a file
is watched, and the watcher was a thread that text never started.

The servers and their load (every request on a new connection):

  nginx        static file, its workers as www-data; wrk -H "Connection: close"
  redis        redis-server; redis-benchmark -k 0 -t get
  haproxy      haproxy (http mode) in front of nginx, both under the mode;
               wrk -H "Connection: close" to haproxy
  busybox      busybox httpd (forks a child per connection); wrk as above
  apache2      apache2, mpm_prefork, KeepAlive Off; wrk as above
  postgres     postgres (a backend forked per connection); pgbench -C -S

The load goes to one mode's server at a time, a slice of --seconds
(default 1; busybox twice and postgres three times that, whose requests
are slow) each, in rounds (--rounds, default 9), the order rotated each
round; each mode divided by the bare slice of its own round, medians.
The servers stay up between slices: this VM's slow and fast spells last
seconds (a bare nginx moves between 14,000 and 20,000 requests a second
from one to the next), and started afresh for each 3-second run, rounds
of one measurement gave 0.56 and 1.02; side by side, a second apart,
they agree to a few hundredths.  Every mode's server is started afresh 3
times (EPOCHS) in one measurement, the rounds split among the starts, so
that one start's luck is not all its rounds' (one bare apache2 start
cost 139 us a request for all its rounds where the others cost 110 to
122).  Beside requests per second, the server's CPU
time per request (its whole process tree, the library's worker thread
and every forked child included, also those the kernel reaps itself for
a server that ignores SIGCHLD: a cgroup the server starts in,
_bench.TreeMeter; where none can be made, /proc's counts of its session,
reaped children included, _bench.session_cpu()), as bare's over the
mode's; for servers that fork per connection, the page faults per
request counted the same way; for servers that do not fork per connection,
the thread switches of the server's processes per request (a count,
steadier than time on a busy machine: the drain worker's wake-ups show
there).  The server runs on the first half of the CPUs and the load
generator on the other half (pinned): sharing them, throughput and CPU
time moved with the scheduler from round to round.  A server whose
programs are not installed is skipped with a note.  Targets (issue 9):
observing at least 0.97 of bare on every server; drain + log at least
0.95 on nginx and redis; the fork-per-connection servers (busybox,
apache2, postgres) at least 0.90 observing and 0.85 draining.

Run alone: TD_BUILD=build python3 tests/bench/servers.py [NAME...] [--seconds S] [--rounds R]
"""

import argparse
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import _bench

# one nginx configuration for the tests and the benchmarks
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import nginxconf  # noqa: E402

def _pg_bin():
    """Debian's newest postgresql-N server binaries."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else "/usr/lib/postgresql/15/bin"


PG_BIN = _pg_bin()
SECTION = ("3. real servers, a new connection per request: requests/s, and the server's "
           "CPU per request, ratio to bare (medians of alternating runs, each server in its "
           "own network namespace)")
MODES = ("bare", "observe", "drain")
SPLIT = ("preload", "quiet")   # fork-per-connection servers only
SPLIT_ROWS = {"preload": "preload", "quiet": "quiet (-q)"}
TARGETS = {  # (observe, drain + log): issue 9
    "nginx": (0.97, 0.95), "redis": (0.97, 0.95), "haproxy": (0.97, None),
    "busybox": (0.90, 0.85), "apache2": (0.90, 0.85), "postgres": (0.90, 0.85),
}
# The load generator and the server share the machine: half the CPUs each,
# pinned (sched_setaffinity), so that neither runs on the other's CPUs and
# the kernel's work for a packet is charged to the side that sent it, not
# to whichever process happened to run there (unpinned, one round of nginx
# gave 0.51 and the next 0.82 by CPU).  With one CPU nothing is pinned.
_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS = set(_CPUS[:len(_CPUS) // 2]) if len(_CPUS) > 1 else None
CLIENT_CPUS = set(_CPUS[len(_CPUS) // 2:]) if len(_CPUS) > 1 else None
SERVER_WORKERS = max(1, len(_CPUS) // 2)
CLIENT_THREADS = max(1, len(_CPUS) - len(_CPUS) // 2)


def _pinned(cpus):
    """A preexec_fn that moves the child onto cpus (None: unchanged)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _cpu_list(cpus):
    return ",".join(str(c) for c in sorted(cpus))
CONNS = 32
# Starts of every mode's server in one measurement: its rounds split
# among them (servers.measure())
EPOCHS = 3


_TAKEN = set()   # ports handed out: every mode's server is up at once


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def wait_port(port, procs, timeout=15):
    """Wait until 127.0.0.1:port accepts; False if a process died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def _mode_options(mode, log):
    """The teardown options of a mode."""
    if mode == "quiet":
        return ["-q"]
    if mode == "observe":
        return ["--log", log, "--format", "json"]
    return ["--close", "drain", "--role", "server", "--log", log, "--format", "json"]


def wrap(mode, argv, log):
    """The command line that runs argv under the mode: the policy the
    mode's options make, written to a file and given with -c, as an
    operator deploys one (a file is watched, TEARDOWN_POLICY text is not:
    its watcher thread made every fork of a fork-per-connection server
    dearer, which text never showed)."""
    if mode == "bare":
        return list(argv)
    if mode == "preload":
        return ["env", "LD_PRELOAD=" + _bench.FLOOR] + list(argv)
    out = subprocess.run([_bench.CLI, "-n"] + _mode_options(mode, log) + ["--", "true"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^export TEARDOWN_POLICY='(.*?)'\nunset ", out, re.S | re.M)
    if not m:
        raise RuntimeError("teardown -n printed no policy:\n" + out)
    conf = "%s.%s.conf" % (log, mode)
    with open(conf, "w") as f:
        f.write(m.group(1).replace("'\\''", "'"))
    os.chmod(conf, 0o644)
    return [_bench.CLI, "-c", conf, "--"] + list(argv)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop(procs, sig=signal.SIGTERM):
    """Stop the server processes and everything in their process groups
    (forked children that still hold the listening socket included), and
    wait until all of them are gone, so the next run can bind the port."""
    for p in procs:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + 10
    for p in procs:
        while _group_alive(p.pid):
            if time.monotonic() > deadline:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        p.wait()


def wrk(port, seconds, path="/"):
    """wrk with a new connection per request: (requests/s, errors)."""
    r = subprocess.run(["wrk", "-t%d" % CLIENT_THREADS, "-c%d" % CONNS, "-d%ds" % seconds,
                        "-H", "Connection: close", "http://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, text=True, timeout=seconds + 60,
                       preexec_fn=_pinned(CLIENT_CPUS))
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    if r.returncode != 0 or not m:
        raise RuntimeError("wrk failed (rc %d): %s %s" % (r.returncode, r.stdout[-1000:],
                                                         r.stderr[-1000:]))
    errors = 0
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                   r.stdout)
    if m2:
        errors += sum(int(x) for x in m2.groups())
    m3 = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    if m3:
        errors += int(m3.group(1))
    m4 = re.search(r"(\d+) requests in", r.stdout)
    return float(m.group(1)), errors, int(m4.group(1)) if m4 else 0


class Server:
    """One server: setup() once in the namespace, then start(mode) and
    load(seconds) for each run."""

    needs = ()
    name = ""
    forks = False   # a process per connection: its switches die with it
    # a recorded slice is this many times --seconds: busybox serves some
    # 600 requests a second here, postgres's pgbench -C 50, and their
    # rounds spread from 0.74 to 1.13 in 1-second slices
    slice_scale = 1
    # the preload and quiet runs too (what any preload, the library's own
    # work and its lines each add); None: where the server forks per
    # connection
    split = None

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_port()

    def available(self):
        """None, or why this server cannot run here."""
        gone = [p for p in self.needs if not (shutil.which(p) or os.path.exists(p))]
        return "not installed: %s" % ", ".join(gone) if gone else None

    def setup(self):
        pass

    def start(self, mode, log):
        """Start under mode; return the processes."""
        raise NotImplementedError

    def ready(self, procs):
        """Wait until it serves; False if it died or never listened."""
        return wait_port(self.port, procs)

    def load(self, seconds):
        """(requests/s, errors, requests)."""
        return wrk(self.port, seconds)

    def stop(self, procs):
        stop(procs)

    # the run's _bench.TreeMeter (set by measure()): the server joins its group
    meter = None

    def popen(self, argv, out, user=None, env=None):
        pin = _pinned(SERVER_CPUS)
        meter = self.meter if self.meter is not None and self.meter.ok else None

        uid = pwd.getpwnam(user).pw_uid if isinstance(user, str) else user

        # into the group while still root (Popen's user= switches before
        # a preexec_fn runs, and a user may not move itself), then as
        # Popen's user= does: the real and effective uid
        def pre():
            if meter is not None:
                meter.join()
            if pin is not None:
                pin()
            if uid is not None:
                os.setreuid(uid, uid)
        with open(out, "ab") as f:
            return subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env=env or _bench.clean_env(), preexec_fn=pre)

    def webroot(self):
        www = os.path.join(self.tmp, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("<!doctype html><title>bench</title>\n" + "<p>teardown bench page</p>\n" * 20)
        for d in (self.tmp, www):
            os.chmod(d, 0o755)
        os.chmod(os.path.join(www, "index.html"), 0o644)
        return www


def _www_data():
    """"www-data" where that user exists, else None (nginx's workers stay
    root)."""
    try:
        pwd.getpwnam("www-data")
        return "www-data"
    except KeyError:
        return None


class Nginx(Server):
    name = "nginx"
    needs = ("nginx", "wrk")

    def conf(self, port):
        d = os.path.join(self.tmp, "nginx-%d" % port)
        os.makedirs(d, exist_ok=True)
        www = self.webroot()
        # (its workers as www-data, as Debian's nginx runs them, where the
        # user exists: they give up root with the log in a directory only
        # root may write)
        argv = nginxconf.write(d, port, www, workers=SERVER_WORKERS, master=True,
                               connections=4096, error_log=os.path.join(d, "error.log"),
                               error_level="error", user=_www_data())
        return argv, d

    def setup(self):
        self.argv, self.dir = self.conf(self.port)

    def start(self, mode, log):
        return [self.popen(wrap(mode, self.argv, log), os.path.join(self.dir, "out.log"))]


class Redis(Server):
    name = "redis"
    needs = ("redis-server", "redis-benchmark")
    requests = 20000

    def argv(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                "--dir", self.tmp, "--logfile", os.path.join(self.tmp, "redis.log")]

    def start(self, mode, log):
        return [self.popen(wrap(mode, self.argv(), log), os.path.join(self.tmp, "redis.out"))]

    def load(self, seconds):
        r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port), "-k", "0",
                            "-c", str(CONNS), "-n", str(self.requests), "-t", "get", "--csv"],
                           capture_output=True, text=True, timeout=seconds * 10 + 60,
                           preexec_fn=_pinned(CLIENT_CPUS))
        m = re.search(r'^"GET","([\d.]+)"', r.stdout, re.M)
        if r.returncode != 0 or not m:
            raise RuntimeError("redis-benchmark failed (rc %d): %s %s"
                               % (r.returncode, r.stdout[-1000:], r.stderr[-1000:]))
        rps, done = float(m.group(1)), self.requests
        # size the next runs to last about `seconds`
        self.requests = max(2000, int(rps * seconds))
        return rps, 0, done


class Haproxy(Nginx):
    name = "haproxy"
    needs = ("haproxy", "nginx", "wrk")

    def setup(self):
        self.backend = free_port()
        self.argv, self.dir = self.conf(self.backend)
        self.hcfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.hcfg, "w") as f:
            f.write("""global
    maxconn 8192
    nbthread %d
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:%d
    default_backend be
backend be
    server s1 127.0.0.1:%d
""" % (SERVER_WORKERS, self.port, self.backend))

    def start(self, mode, log):
        out = os.path.join(self.dir, "out.log")
        procs = [self.popen(wrap(mode, self.argv, log), out)]
        if not wait_port(self.backend, procs):
            return procs
        procs.append(self.popen(wrap(mode, ["haproxy", "-db", "-f", self.hcfg], log), out))
        return procs


class Busybox(Server):
    name = "busybox"
    forks = True
    slice_scale = 2
    needs = ("busybox", "wrk")

    def available(self):
        why = Server.available(self)
        if why is None:
            r = subprocess.run(["busybox", "--list"], capture_output=True, text=True)
            if "httpd" not in r.stdout.split():
                why = "this busybox has no httpd applet"
        return why

    def setup(self):
        self.www = self.webroot()

    def start(self, mode, log):
        return [self.popen(wrap(mode, ["busybox", "httpd", "-f", "-p", "127.0.0.1:%d" % self.port,
                                       "-h", self.www], log),
                           os.path.join(self.tmp, "busybox.out"))]

    def load(self, seconds):
        return wrk(self.port, seconds, "/index.html")


class Apache(Server):
    name = "apache2"
    needs = ("apache2", "wrk", "/usr/lib/apache2/modules/mod_mpm_prefork.so")
    # prefork: 8 to 16 processes, each with the library's own state and,
    # once it logs enough, its own spool and worker; where observe's cost
    # goes, split as for the servers that fork per connection
    split = True

    def setup(self):
        www = self.webroot()
        mods = "/usr/lib/apache2/modules"
        self.dir = os.path.join(self.tmp, "apache")
        os.makedirs(self.dir, exist_ok=True)
        self.cfg = os.path.join(self.dir, "apache2.conf")
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data\n"
        with open(self.cfg, "w") as f:
            f.write("""ServerRoot %s
ServerName localhost
DefaultRuntimeDir %s
PidFile %s/apache2.pid
ErrorLog %s/error.log
LogLevel warn
%sLoadModule mpm_prefork_module %s/mod_mpm_prefork.so
LoadModule authz_core_module %s/mod_authz_core.so
LoadModule mime_module %s/mod_mime.so
LoadModule dir_module %s/mod_dir.so
TypesConfig /etc/mime.types
Listen 127.0.0.1:%d
KeepAlive Off
StartServers 8
MinSpareServers 8
MaxSpareServers 16
MaxRequestWorkers 64
DocumentRoot %s
DirectoryIndex index.html
<Directory %s>
    Require all granted
</Directory>
""" % (self.dir, self.dir, self.dir, self.dir, user, mods, mods, mods, mods, self.port, www, www))

    def start(self, mode, log):
        return [self.popen(wrap(mode, ["apache2", "-f", self.cfg, "-DFOREGROUND"], log),
                           os.path.join(self.dir, "out.log"))]


class Postgres(Server):
    name = "postgres"
    forks = True
    slice_scale = 3
    needs = (PG_BIN + "/postgres", PG_BIN + "/initdb", "pgbench")

    def available(self):
        why = Server.available(self)
        if why is None and os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                why = "no postgres user to run it as"
        return why

    def setup(self):
        self.user = "postgres" if os.geteuid() == 0 else None
        self.data = os.path.join(self.tmp, "pgdata")
        self.sock = os.path.join(self.tmp, "pgsock")
        os.makedirs(self.sock, exist_ok=True)
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        os.chmod(self.tmp, 0o755)
        if self.user:
            pw = pwd.getpwnam(self.user)
            for d in (self.sock, self.data):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        self.env = dict(_bench.clean_env(), LC_ALL="C", LANG="C")
        r = subprocess.run([PG_BIN + "/initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                            "-E", "UTF8", "--no-sync"], capture_output=True, text=True,
                           user=self.user, env=self.env, cwd=self.tmp, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: %s" % (r.stdout + r.stderr)[-1500:])
        procs = self.start("bare", None)
        try:
            if not self.ready(procs):
                raise RuntimeError("postgres did not start: %s" % self.tail())
            r = subprocess.run(["pgbench", "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p",
                                str(self.port), "-U", "postgres", "postgres"],
                               capture_output=True, text=True, env=self.env, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("pgbench -i failed: %s" % (r.stdout + r.stderr)[-1500:])
        finally:
            self.stop(procs)

    def setup_like(self, other):
        """A copy of other's initialised database (initdb and pgbench -i
        once, for every mode)."""
        self.user, self.env = other.user, other.env
        self.data = os.path.join(self.tmp, "pgdata")
        self.sock = os.path.join(self.tmp, "pgsock")
        os.makedirs(self.sock, exist_ok=True)
        subprocess.run(["cp", "-a", other.data, self.data], check=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)

    def tail(self):
        try:
            with open(os.path.join(self.tmp, "postgres.out"), errors="replace") as f:
                return f.read()[-1500:]
        except OSError:
            return ""

    def start(self, mode, log):
        return [self.popen(wrap(mode, [PG_BIN + "/postgres", "-D", self.data, "-p", str(self.port),
                                       "-k", self.sock, "-c", "listen_addresses=127.0.0.1",
                                       "-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off", "-c", "max_connections=100",
                                       "-c", "shared_buffers=32MB"], log),
                           os.path.join(self.tmp, "postgres.out"), user=self.user, env=self.env)]

    def ready(self, procs):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs):
                return False
            r = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                               env=self.env)
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self, procs):
        stop(procs, signal.SIGINT)   # fast shutdown

    def load(self, seconds):
        r = subprocess.run(["pgbench", "-C", "-S", "-n", "-T", str(seconds), "-c", "4", "-j",
                            str(CLIENT_THREADS), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                            "postgres", "postgres"],
                           capture_output=True, text=True, env=self.env, timeout=seconds + 120,
                           preexec_fn=_pinned(CLIENT_CPUS))
        m = re.search(r"tps = ([\d.]+)", r.stdout)
        if r.returncode != 0 or not m:
            raise RuntimeError("pgbench failed (rc %d): %s %s" % (r.returncode, r.stdout[-1000:],
                                                                 r.stderr[-1000:]))
        f = re.search(r"number of failed transactions: (\d+)", r.stdout)
        n = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
        return float(m.group(1)), int(f.group(1)) if f else 0, int(n.group(1)) if n else 0


SERVERS = {c.name: c for c in (Nginx, Redis, Haproxy, Busybox, Apache, Postgres)}


def _args(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", help="servers (default: all): " + " ".join(SERVERS))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("TD_BENCH_SERVER_SECONDS",
                                                                      "1")))
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


class _Instance:
    """One mode's server, started once and kept running for the whole
    measurement: its own directory, port, log file and cgroup."""

    def __init__(self, name, mode, tmp, template=None):
        self.mode = mode
        self.dir = os.path.join(tmp, mode)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.srv = SERVERS[name](self.dir)
        # a directory only root may make files in, as /var/log: servers that
        # give up root (nginx's and apache2's workers) make their spools
        # before they do (shim/hook/setuid.c); the log itself is made
        # before the start, writable by those that run as another user
        # from the start (postgres)
        logdir = os.path.join(self.dir, "log")
        os.makedirs(logdir)
        os.chmod(logdir, 0o755)
        self.log = os.path.join(logdir, "audit.jsonl")
        with open(self.log, "w"):
            pass
        os.chmod(self.log, 0o666)
        if template is not None and hasattr(self.srv, "setup_like"):
            self.srv.setup_like(template.srv)
        else:
            self.srv.setup()
        self.meter = None
        self.procs = []
        self.sids = []
        self.marks = []     # (cpu us, faults, switches) before each recorded slice of
        #                     this start, and at its end
        self.reqs = []      # requests of each recorded slice of this start
        self.all_reqs = 0   # every slice's, warm-up included (for lines per request)
        self.errors = 0
        self.counted = None

    def start(self):
        self.meter = self.srv.meter = _bench.TreeMeter()
        self.procs = self.srv.start(self.mode, self.log)
        if not self.srv.ready(self.procs):
            raise RuntimeError("%s (%s) did not start" % (self.srv.name, self.mode))
        self.sids = [p.pid for p in self.procs]
        if self.meter.ok and not all(self.meter.holds(p.pid) for p in self.procs):
            self.meter.ok = False   # a server that left the group: count through /proc
        if self.meter.ok:
            self.counted = "cgroup" + ("" if self.meter.faults() is not None else ", CPU only")
        else:
            self.counted = "proc"

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def mark(self):
        """(CPU microseconds, minor faults, thread switches) of the server's
        tree so far: its cgroup (children the kernel reaps itself
        included), else /proc."""
        if self.meter.ok:
            cpu = self.meter.cpu_s()
            flt = self.meter.faults()
        else:
            cpu, flt = _bench.session_cpu(self.sids), None
        if flt is None:
            flt = _bench.session_faults(self.sids)
        return 1e6 * cpu, flt, _bench.session_switches(self.sids)

    def stop(self):
        procs, meter, self.procs, self.meter = self.procs, self.meter, [], None
        try:
            if procs:
                self.srv.stop(procs)
        finally:
            self.srv.meter = None
            if meter is not None:
                meter.close()

    def lines(self):
        """Log lines per request, every slice's (read after the stop: what
        the exit flushed is in)."""
        try:
            with open(self.log, "rb") as f:
                return sum(1 for _ in f) / max(self.all_reqs, 1)
        except OSError:
            return None


def measure(name, seconds, rounds):
    """Measure one server (in its namespace already); add its rows.

    Every mode's server is started once, side by side on the server's
    CPUs, and stays up; the load then goes to one at a time, a slice of
    `seconds` each, the order rotated each round (_bench.alternate).  The
    machine's slow and fast spells (this 2-CPU VM's last for seconds and
    move a bare nginx between 14,000 and 20,000 requests a second) then
    fall on every mode alike, which fresh starts a few seconds apart did
    not: rounds of one run gave 0.56 and 1.02.  A server's CPU, faults
    and switches are read before each of its slices: what it does after
    a slice ends (a drain's last reads, the worker's last lines) counts
    for it, in the reading before its next slice or the last one."""
    table = _bench.Table(SECTION)
    tmp = tempfile.mkdtemp(prefix="td-bench-%s-" % name)
    os.chmod(tmp, 0o755)
    probe = SERVERS[name](tmp)
    why = probe.available()
    if why:
        table.note("%s skipped: %s" % (name, why))
        table.done()
        return 0
    # (without the floor built, ld.so would run the server bare, and say so
    # only on its stderr)
    wanted = probe.split if probe.split is not None else probe.forks
    split = wanted and os.path.exists(_bench.FLOOR)
    if wanted and not split:
        table.note("%s: no preload and quiet rows: %s not built (make testprogs)"
                   % (name, _bench.FLOOR))
    modes = MODES + (SPLIT if split else ())
    retries = []
    autoreap = []                  # a server process ignores SIGCHLD
    inst = {}
    if CLIENT_CPUS is not None:
        # this script polls and reads /proc between loads: not on the server's CPUs
        os.sched_setaffinity(0, CLIENT_CPUS)
    try:
        _bench.say("servers: %s: setup, %s" % (name, ", ".join(modes)))
        first = None
        for mode in modes:
            inst[mode] = _Instance(name, mode, tmp, first)
            first = first or inst[mode]

        def run(mode, r):
            i = inst[mode]
            if not i.alive():
                raise RuntimeError("%s (%s) exited" % (name, mode))
            if r >= 0:
                i.marks.append(i.mark())
            # (a warm-up slice is a second; a recorded one the server's
            # own length where its requests are slow: a few hundred at least)
            t = 1 if r < 0 else seconds * i.srv.slice_scale
            try:
                rps, err, reqs = i.srv.load(t)
            except RuntimeError as e:   # one retry: a busy machine
                _bench.say("servers: %s %s: %s; once more" % (name, mode, str(e)[:300]))
                retries.append("%s %s" % (mode, str(e).splitlines()[0][:80]))
                rps, err, reqs = i.srv.load(t)
            i.all_reqs += reqs
            if r >= 0:
                i.errors += err
                i.reqs.append(reqs)
            _bench.say("servers: %s %-8s %9.0f req/s%s"
                       % (name, mode, rps, "  (warm-up)" if r < 0 else ""))
            return rps

        s = {m: [] for m in modes}
        cpu = {m: [] for m in modes}   # server CPU microseconds per request, per slice
        flt = {m: [] for m in modes}   # the server's minor page faults per request, per slice
        sw = {m: [] for m in modes}    # the server's thread switches per request, per slice
        for e in range(EPOCHS):
            # every mode's server started afresh each epoch, in a rotated
            # order: one start's luck (where its pages and children fell)
            # is not all its rounds'
            order = modes[e % len(modes):] + modes[:e % len(modes)]
            for mode in order:
                try:
                    inst[mode].start()
                except RuntimeError as why:   # one retry: a busy machine, a slow start
                    _bench.say("servers: %s: %s; once more" % (name, str(why)[:300]))
                    retries.append("%s start: %s" % (mode, str(why).splitlines()[0][:80]))
                    inst[mode].stop()
                    inst[mode].start()
                if _bench.session_ignores_sigchld(inst[mode].sids) and not autoreap:
                    autoreap.append(mode)
            time.sleep(0.3)   # start-up work done
            n = rounds // EPOCHS + (1 if e < rounds % EPOCHS else 0)
            got = _bench.alternate(order, n, run, warmup=True)
            time.sleep(0.5)   # the last drains, lines and children's exits
            for mode in modes:
                i = inst[mode]
                i.marks.append(i.mark())
                i.stop()
                s[mode] += got[mode]
                # per recorded slice: what the server did from that slice's
                # start to its next slice's (or the epoch's end), per
                # request of the slice
                for k, out in ((0, cpu), (1, flt), (2, sw)):
                    out[mode] += [(i.marks[j + 1][k] - i.marks[j][k]) / max(i.reqs[j], 1)
                                  for j in range(len(i.reqs))]
                i.marks, i.reqs = [], []
        errors = {m: inst[m].errors for m in modes}
        lines = {m: inst[m].lines() for m in modes}
        counted = set(inst[m].counted for m in modes)
        bare = _bench.median(s["bare"])
        t_obs, t_drain = TARGETS.get(name, (None, None))
        for mode, tgt in (("observe", t_obs), ("drain", t_drain)):
            ratio = _bench.paired(s, mode)
            table.row("%s: %s" % (name, "observe, JSON log" if mode == "observe"
                                  else "drain + log"),
                      "%.0f/s" % bare, None, "%.0f/s" % _bench.median(s[mode]),
                      _bench.fmt_ratio(ratio), ">= %.2fx" % tgt if tgt else None,
                      ratio >= tgt if tgt else None)
            # the same cost as CPU: bare's CPU per request over the mode's,
            # round by round (1 = free, 0.5 = twice bare's CPU)
            cratio = statistics.median(b / x for x, b in zip(cpu[mode], cpu["bare"]) if x > 0)
            table.row("%s: %s, server CPU per request" % (
                name, "observe" if mode == "observe" else "drain"),
                "%.0f us" % _bench.median(cpu["bare"]), None,
                "%.0f us" % _bench.median(cpu[mode]), _bench.fmt_ratio(cratio),
                ">= %.2fx" % tgt if tgt else None, cratio >= tgt if tgt else None)
        # observe's cost split: any preload, the library's own work, its log
        for mode in modes[len(MODES):]:
            cratio = statistics.median(b / x for x, b in zip(cpu[mode], cpu["bare"]) if x > 0)
            table.row("%s: %s, server CPU per request" % (name, SPLIT_ROWS[mode]),
                      "%.0f us" % _bench.median(cpu["bare"]), None,
                      "%.0f us" % _bench.median(cpu[mode]), _bench.fmt_ratio(cratio), None, None)
        if split:
            step = [_bench.median(cpu[m]) for m in ("bare", "preload", "quiet", "observe")]
            d = [step[i + 1] - step[i] for i in range(3)]
            table.note("%s: observe's CPU per request over bare, split: any preload %+.0f us, "
                       "the library's work %+.0f us, its log lines %+.0f us (medians; each "
                       "step the next mode's less the one before%s)" % (
                           name, d[0], d[1], d[2],
                           "; a step below zero is the rounds' spread, not a gain"
                           if min(d) < 0 else ""))
        for what in retries:
            table.note("%s: a slice or a start failed and was made again: %s" % (name, what))
        if name == "haproxy":
            table.note("haproxy: haproxy and the nginx behind it both run under the mode")
        if SERVER_CPUS is not None:
            table.note("%s: the server on CPU %s, the load on CPU %s" % (
                name, _cpu_list(SERVER_CPUS), _cpu_list(CLIENT_CPUS)))
        table.note("%s: ratio to bare in each round: observe %s; drain %s" % (
            name, " ".join("%.2f" % (x / b) for x, b in zip(s["observe"], s["bare"])),
            " ".join("%.2f" % (x / b) for x, b in zip(s["drain"], s["bare"]))))
        table.note("%s: bare CPU per request over the mode's, each round: observe %s; drain %s" % (
            name, " ".join("%.2f" % (b / x) for x, b in zip(cpu["observe"], cpu["bare"]) if x),
            " ".join("%.2f" % (b / x) for x, b in zip(cpu["drain"], cpu["bare"]) if x)))
        if autoreap and counted == {"proc"}:
            table.note("%s ignores SIGCHLD: the kernel reaps its children, whose CPU time and "
                       "faults reach no parent's count; its CPU and fault figures are the "
                       "parent's alone (no cgroup could be made here to count them)" % name)
        table.note("%s: CPU and faults counted by %s" % (
            name, " and ".join(sorted(counted)).replace(
                "cgroup", "a cgroup of the server's tree").replace(
                "proc", "/proc (the server's processes and the children they reaped)")))
        if probe.forks:
            table.note("%s: page faults per request (medians): %s"
                       % (name, ", ".join("%s %.1f" % (m, _bench.median(flt[m]))
                                          for m in modes if flt[m])))
        else:
            table.note("%s: thread switches per request, the server's live processes (medians): %s"
                       % (name, ", ".join("%s %.2f" % (m, _bench.median(sw[m]))
                                          for m in modes if sw[m])))
        lpr = ", ".join("%s %.2f" % (m, lines[m]) for m in ("observe", "drain")
                        if lines[m] is not None)
        table.note("%s: %s log lines per request%s" % (
            name, lpr or "no", "; load errors: " + ", ".join(
                "%s %d" % (m, errors[m]) for m in modes if errors[m]) if any(errors.values())
            else ""))
    finally:
        for i in inst.values():
            i.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    table.done()
    return 0


def main(argv):
    a = _args(argv)
    if a.one:
        if _bench.in_netns():
            _bench.netns_setup()
        return measure(a.one, a.seconds, a.rounds)
    names = a.names or list(SERVERS)
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        print("servers: unknown: %s (have: %s)" % (" ".join(unknown), " ".join(SERVERS)),
              file=sys.stderr)
        return 2
    if _bench.missing(_bench.LIB, _bench.CLI):
        table = _bench.Table(SECTION)
        return table.skip("the library and the command are not built (make)")
    rc = 0
    with _bench.collecting():
        if not _bench.can_netns():
            t = _bench.Table(SECTION)
            t.note("not root: the servers share this machine's network namespace")
            t.done()
        for name in names:
            extra = ["--one", name, "--seconds", str(a.seconds), "--rounds", str(a.rounds)]
            if _bench.can_netns():
                env = dict(os.environ, TD_BENCH_NETNS="1", TD_BENCH_WIDE="1")
                argv = ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__)] + extra
            else:
                env = dict(os.environ)
                argv = [sys.executable, os.path.abspath(__file__)] + extra
            r = subprocess.run(argv, env=env)
            if r.returncode != 0:
                t = _bench.Table(SECTION)
                t.note("%s FAILED (exit status %d): see the messages above" % (name, r.returncode))
                t.done()
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
