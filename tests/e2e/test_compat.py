"""Real programs under teardown: the compatibility suite.

Debian's own servers and clients, unmodified, each run under ``teardown``
as a user would run it -- observe (no policy options, log only),
``--close graceful``, ``drain`` and ``abort`` for its role, and the
clients also under ``--rst 1`` and ``--connect-refuse 1`` -- with a fresh
process per mode, and its peer running without the library.  Every run
is checked for:

1. the program still works: every request answered with the right bytes,
   the exit status it has without the library, no crash, no hang
   (everything runs under timeouts);
2. the wire follows the policy (tcpdump: FIN or RST, from which side);
3. every close event's ``wire``, ``closer`` and ``time_wait`` agrees with
   tcpdump and ss for that connection, matched by port.

compat.py holds the harness and the exact rules.  The ``test_regression_*``
tests each pin one failure these programs showed.  Ports are fixed: each
test has its own network namespace.  Python is /usr/bin/python3 (the
python3 on PATH may be a pyenv shim script).
"""

import json
import os
import re
import signal
import socket
import subprocess

import compat
import nginxconf
import tdlib

NEEDS = ("root", "netns", "tcpdump", "lib", "teardown")
PYTHON = compat.PYTHON
BODY = b"teardown compat\n" * 400      # 6400 bytes: a few segments


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------

def _docroot(name="www", files=None):
    """A world-readable directory holding hello.txt (BODY) and ``files``."""
    path = os.path.join(tdlib.tmpdir(), name)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    for fname, data in dict({"hello.txt": BODY}, **(files or {})).items():
        with open(os.path.join(path, fname), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(path, fname), 0o644)
    return path


def _curl(url, *extra):
    return ["curl", "-sS", "--max-time", "10"] + list(extra) + [url]


def _http_fetches(port, mode=None, path="/hello.txt", body=BODY):
    """Two plain curl runs against a server on ``port``: a keep-alive
    fetch that curl ends, and a "Connection: close" fetch the server ends
    (curl reads to Content-Length, so a server's RST after it is fine)."""
    url = "http://127.0.0.1:%d%s" % (port, path)
    for name, extra in (("keepalive", ()), ("close", ("-H", "Connection: close"))):
        proc = tdlib.run(_curl(url, *extra), name="curl-%d-%s" % (port, name), timeout=20)
        assert proc.rc == 0, "curl (%s) exited %s: %s" % (name, proc.rc, proc.stderr().strip())
        with open(proc.out_path, "rb") as f:
            got = f.read()
        assert got == body, "curl (%s) got %d bytes, not the file" % (name, len(got))


def _run_stdin(argv, data, name, env=None, timeout=10):
    """Run ``argv`` to completion with ``data`` on its stdin; returns the Proc."""
    path = os.path.join(tdlib.tmpdir(), name + ".stdin")
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as stdin:
        proc = tdlib.Proc(argv, env=env or compat.plain_env(), name=name, stdin=stdin)
    proc.wait(timeout)
    return proc


def _http_status(url, *extra, name="curl-status"):
    """curl's HTTP status for ``url`` (its stdout), the body thrown away."""
    return tdlib.run(_curl(url, "-o", "/dev/null", "-w", "%{http_code}", *extra), name=name,
                     timeout=20)


def _serve_modes(label, argv_of, ports, exercise=_http_fetches, stop_sig=signal.SIGTERM,
                 stop_rc=0, min_conns=2, modes=compat.SERVER_MODES, log_owner=None,
                 wrap=None, new_group=False, end_action=None):
    """A server under each mode: a fresh process on its own port each
    time, exercised by ``exercise(port, mode)`` (plain clients), left to
    end every connection, then stopped with ``stop_sig`` (it must exit
    ``stop_rc``, as it does without the library).  Verifies the Session.

    argv_of(port, mode): the server's command line.  wrap(argv): a prefix
    (e.g. run as another user).  new_group: start it in a session of its
    own (apache signals its whole process group when it stops).
    end_action: the action every end must say, where not the mode's."""
    with compat.Session() as s:
        for mode, port in zip(modes, ports):
            log = compat.new_log("%s-%s" % (label, mode), owner=log_owner)
            with s.mode(label, mode, "server", port, log, min_conns=min_conns,
                        action=end_action) as run:
                argv = compat.td_argv(mode, "server", log, argv_of(port, mode))
                argv = wrap(argv) if wrap else argv
                srv = tdlib.spawn(["setsid"] + argv if new_group else argv,
                                  env=compat.plain_env(), name="%s-%s" % (label, mode))
                try:
                    compat.wait_listening(port, srv)
                    exercise(port, mode)
                    run.settle()
                    run.wait_logged()
                    compat.stop(srv, stop_sig, stop_rc)
                finally:
                    if new_group and srv.running():
                        compat.kill_group(srv)
                    srv.kill()
    s.verify()


CLOSED_PORT = 9     # nothing listens there: a refused connect


def _daemon_client_modes(label, argv_of, front0, backend, exercise, stop_sig=signal.SIGTERM,
                         log_owner=None, wrap=None):
    """A long-running program that connects to a plain server on
    ``backend`` (a proxy, a pooler) under each client mode: a fresh
    process each mode, listening on front0 + i (its command line
    argv_of(front); wrap(argv): a prefix, e.g. run as another user), its
    log writable by log_owner.  exercise(front, mode) drives it and checks
    its answers; then it is stopped with stop_sig (exit 0: it closes its
    pooled connections), every connection must have ended, and the
    Session is verified."""
    with compat.Session() as s:
        for i, mode in enumerate(compat.CLIENT_MODES):
            front = front0 + i
            log = compat.new_log("%s-client-%s" % (label, mode), owner=log_owner)
            with s.mode(label, mode, "client", backend, log) as run:
                argv = compat.td_argv(mode, "client", log, argv_of(front))
                proc = tdlib.spawn(wrap(argv) if wrap else argv, env=compat.plain_env(),
                                   name="%s-client-%s" % (label, mode))
                try:
                    compat.wait_listening(front, proc)
                    exercise(front, mode)
                    compat.stop(proc, stop_sig, 0)
                finally:
                    proc.kill()
                run.settle()
    s.verify()


def _client_modes(s, label, port, invocations, min_conns=1, modes=compat.CLIENT_MODES,
                  env=None, timeout=10, half_closes=False):
    """A client under each mode against a plain server on ``port``, in
    Session ``s``.

    invocations: [(name, argv_of)] or [(name, argv_of, stdin bytes)];
    argv_of(port) is the client's command line.  Each runs first without
    the library against ``port`` (its output and exit status are what
    every mode must reproduce) and against CLOSED_PORT (what
    --connect-refuse 1 must reproduce).  half_closes: the client shuts
    down its sending side and then waits for the reply; under --rst 1 its
    RST goes at that shutdown, in place of the FIN, so the reply never
    comes: there it must only exit normally (no crash, no hang) with a
    prefix of the reply."""
    def run_one(argv, stdin, name):
        if stdin is None:
            return tdlib.run(argv, env=env, name=name, timeout=timeout)
        return _run_stdin(argv, stdin, name, env=env, timeout=timeout)

    env = env or compat.plain_env()
    invocations = [(tuple(inv) + (None,))[:3] for inv in invocations]
    base, refused = {}, {}
    for name, argv_of, stdin in invocations:
        base[name] = run_one(argv_of(port), stdin, "%s-plain-%s" % (label, name))
        if "refuse" in modes:
            refused[name] = run_one(argv_of(CLOSED_PORT), stdin, "%s-closed-%s" % (label, name))
    for mode in modes:
        log = compat.new_log("%s-%s" % (label, mode))
        with s.mode(label, mode, "client", port, log, min_conns=min_conns):
            for name, argv_of, stdin in invocations:
                proc = run_one(compat.td_argv(mode, "client", log, argv_of(port)), stdin,
                               "%s-%s-%s" % (label, mode, name))
                if mode == "refuse":
                    compat.refused_like(proc, refused[name])
                elif mode == "rst" and half_closes:
                    assert proc.rc is not None and proc.rc >= 0, (proc.name, proc.rc)
                    assert base[name].stdout().startswith(proc.stdout()), (
                        "%s printed %r, not a prefix of %r" % (proc.name, proc.stdout(),
                                                                base[name].stdout()))
                else:
                    compat.same_outcome(proc, base[name])


# ---------------------------------------------------------------------------
# nginx and curl
# ---------------------------------------------------------------------------



def _nginx_argv(port, name=None):
    """nginx in one process (daemon off, master_process off), keep-alive
    on, serving _docroot() on ``port`` from a private prefix."""
    name = name or "nginx-%d" % port
    return nginxconf.write(os.path.join(tdlib.tmpdir(), name), port, _docroot(),
                           http=["keepalive_timeout 60s;"])


def _plain_nginx(port):
    """A plain nginx (no library) serving _docroot() on ``port``."""
    nginx = tdlib.spawn(_nginx_argv(port), name="nginx-plain-%d" % port)
    compat.wait_listening(port, nginx)
    return nginx


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_nginx_server():
    """nginx under each server mode; plain curl fetches a file twice: once
    kept alive (curl ends it: nginx's close is passive) and once with
    "Connection: close" (nginx ends it).  nginx exits 0 on SIGTERM."""
    _serve_modes("nginx", lambda port, mode: _nginx_argv(port), (8080, 8081, 8082, 8083))


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_curl_client():
    """curl under each client mode against a plain nginx: two fetches over
    one kept-alive connection (curl ends it) and one "Connection: close"
    fetch (nginx ends it); under --connect-refuse 1 curl fails exactly as
    against a closed port (exit 7)."""
    _plain_nginx(8080)

    def url(port):
        return "http://127.0.0.1:%d/hello.txt" % port
    with compat.Session() as s:
        _client_modes(s, "curl", 8080,
                      [("keepalive", lambda port: _curl(url(port)) + [url(port)]),
                       ("close", lambda port: _curl(url(port), "-H", "Connection: close"))],
                      min_conns=2)
    s.verify()


# ---------------------------------------------------------------------------
# redis
# ---------------------------------------------------------------------------

def _redis_server_argv(port, mode=None):
    d = os.path.join(tdlib.tmpdir(), "redis-%d" % port)
    os.makedirs(d, exist_ok=True)
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", d, "--daemonize", "no", "--protected-mode", "no",
            "--logfile", ""]


def _plain_redis(port):
    srv = tdlib.spawn(_redis_server_argv(port), name="redis-plain-%d" % port)
    compat.wait_listening(port, srv)
    return srv


def _redis_exercise(port, mode=None):
    """Plain redis-cli: SET, GET and PING, one connection each."""
    for args, want in ((("SET", "k", "v1"), "OK"), (("GET", "k"), "v1"), (("PING",), "PONG")):
        proc = tdlib.run(["redis-cli", "-p", str(port)] + list(args),
                         name="redis-cli-%d-%s" % (port, args[0].lower()))
        assert proc.rc == 0 and proc.stdout().strip() == want, "redis-cli %s: rc %s, %r %r" % (
            " ".join(args), proc.rc, proc.stdout(), proc.stderr())


@tdlib.requires(*NEEDS)
@tdlib.timeout(75)
def test_redis_server():
    """redis-server under each server mode; plain redis-cli runs SET, GET
    and PING, one connection each (the client ends each one).  Exits 0 on
    SIGTERM."""
    compat.need("redis-server", "redis-cli")
    _serve_modes("redis-server", _redis_server_argv, (6379, 6380, 6381, 6382),
                 exercise=_redis_exercise, min_conns=3)


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_redis_cli():
    """redis-cli under each client mode against a plain redis-server."""
    compat.need("redis-server", "redis-cli")
    _plain_redis(6379)
    with compat.Session() as s:
        _client_modes(s, "redis-cli", 6379,
                      [("set", lambda port: ["redis-cli", "-p", str(port), "SET", "k", "v"]),
                       ("get", lambda port: ["redis-cli", "-p", str(port), "GET", "k"])],
                      min_conns=2)
    s.verify()


def _benchmark_lines(text):
    """redis-benchmark -q output with its measurements left out."""
    return [line.split(":")[0] for line in text.replace("\r", "\n").split("\n")
            if "requests per second" in line]


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_redis_benchmark():
    """redis-benchmark (two clients, 20 requests per test) under each
    client mode against a plain redis-server: it reports every test it was
    asked for and exits 0.  Against a refused port it never exits (it
    prints "Connection refused" and retries for ever, with or without
    the library), so under --connect-refuse 1 it must print that message
    the same way, and is then stopped."""
    compat.need("redis-server", "redis-benchmark")
    _plain_redis(6379)
    argv = ["redis-benchmark", "-p", "6379", "-c", "2", "-n", "20", "-t", "ping,set,get", "-q"]
    base = tdlib.run(argv, name="redis-benchmark-plain", timeout=20)
    want = _benchmark_lines(base.stdout())
    assert base.rc == 0 and len(want) == 4, base.stdout()
    with compat.Session() as s:
        for mode in compat.CLIENT_MODES:
            log = compat.new_log("redis-benchmark-" + mode)
            with s.mode("redis-benchmark", mode, "client", 6379, log, min_conns=3):
                if mode == "refuse":
                    bench = tdlib.spawn(compat.td_argv(mode, "client", log, argv),
                                        env=compat.plain_env(), name="redis-benchmark-refuse")
                    tdlib.wait_until(lambda: "Connection refused" in bench.stdout() + bench.stderr()
                                     or not bench.running(), timeout=10,
                                     what="redis-benchmark to report the refused connect")
                    assert bench.running(), "redis-benchmark exited %s" % bench.rc
                    bench.kill()
                    continue
                proc = tdlib.run(compat.td_argv(mode, "client", log, argv), env=compat.plain_env(),
                                 name="redis-benchmark-" + mode, timeout=10)
                assert proc.rc == 0, "redis-benchmark exited %s: %s" % (proc.rc, proc.stderr())
                got = _benchmark_lines(proc.stdout())
                assert got == want, "redis-benchmark reported %r, want %r" % (got, want)
    s.verify()


# ---------------------------------------------------------------------------
# haproxy
# ---------------------------------------------------------------------------

HAPROXY_CONF = """
global
    maxconn 64
defaults
    mode http
    retries 0
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:%(front)d
    default_backend be
backend be
    server s1 127.0.0.1:%(back)d
"""


def _haproxy_argv(front, back):
    conf = compat.write("haproxy-%d.cfg" % front, HAPROXY_CONF % {"front": front, "back": back})
    return ["haproxy", "-db", "-f", conf]


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_haproxy_server():
    """haproxy under each server mode (its frontend connections), in
    front of a plain nginx; plain curl fetches through it, kept alive and
    with "Connection: close".  haproxy exits 0 on SIGUSR1 (soft stop)."""
    compat.need("haproxy")
    _plain_nginx(8080)
    _serve_modes("haproxy", lambda port, mode: _haproxy_argv(port, 8080),
                 (8090, 8091, 8092, 8093), stop_sig=signal.SIGUSR1)


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_haproxy_client():
    """haproxy under each client mode: its connections to a plain nginx
    backend.  Plain curl fetches through it; under --connect-refuse 1
    haproxy answers 503, as it does when its backend is down.  Each mode
    ends with a soft stop (SIGUSR1, exit 0), which closes its pooled
    backend connections."""
    compat.need("haproxy")
    _plain_nginx(8080)
    down = tdlib.spawn(_haproxy_argv(8089, 9), name="haproxy-backend-down")
    compat.wait_listening(8089, down)
    base_503 = _http_status("http://127.0.0.1:8089/hello.txt", name="curl-backend-down")
    assert base_503.stdout() == "503", base_503.stdout()
    compat.stop(down, signal.SIGUSR1, 0)

    def exercise(front, mode):
        if mode == "refuse":
            got = _http_status("http://127.0.0.1:%d/hello.txt" % front, name="curl-refuse")
            assert got.stdout() == "503", "curl got %r, want 503" % got.stdout()
        else:
            _http_fetches(front, mode)

    _daemon_client_modes("haproxy", lambda front: _haproxy_argv(front, 8080), 8090, 8080,
                         exercise, stop_sig=signal.SIGUSR1)


# ---------------------------------------------------------------------------
# memcached
# ---------------------------------------------------------------------------

def _memcached_exercise(port, mode):
    """Plain sockets: set and get (the client ends the connection), then
    version and quit (memcached ends it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"set k 0 0 5\r\nhello\r\nget k\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            data = s.recv(4096)
            assert data, "memcached closed early: %r" % buf
            buf += data
        assert buf == b"STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n", buf
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"version\r\nquit\r\n")
        buf = compat.read_to_end(s, mode)
        assert buf.startswith(b"VERSION ") and buf.endswith(b"\r\n"), buf


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_memcached_server():
    """memcached (one worker thread) under each server mode; exits 0 on
    SIGTERM."""
    compat.need("memcached")
    _serve_modes("memcached", lambda port, mode: ["memcached", "-l", "127.0.0.1", "-p", str(port),
                                                  "-U", "0", "-t", "1", "-m", "16", "-u", "root"],
                 (11211, 11212, 11213, 11214), exercise=_memcached_exercise)


# ---------------------------------------------------------------------------
# PostgreSQL and psql
# ---------------------------------------------------------------------------

def _initdb():
    """A fresh cluster in the test's directory, owned by the unprivileged
    user postgres (the server refuses to run as root); returns its dir."""
    top = compat.user_dir("pg", "postgres")
    data = os.path.join(top, "data")
    proc = tdlib.run(compat.as_user("postgres", [
        os.path.join(compat.PG_BIN, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
        "--no-sync", "-E", "UTF8", "--locale=C"]), name="initdb", timeout=60)
    assert proc.rc == 0, proc.stderr()
    return top


def _postgres_argv(top, port):
    return [os.path.join(compat.PG_BIN, "postgres"), "-D", os.path.join(top, "data"),
            "-k", top, "-h", "127.0.0.1", "-p", str(port), "-c", "fsync=off",
            "-c", "max_connections=8", "-c", "shared_buffers=8MB"]


def _psql(port, sql):
    return ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-Atc", sql]


def _psql_exercise(port, mode=None):
    for sql, want in (("select 6*7", "42"), ("select 'compat'", "compat")):
        proc = tdlib.run(_psql(port, sql), name="psql-%d-%s" % (port, want), timeout=20)
        assert proc.rc == 0 and proc.stdout().strip() == want, "psql %r: rc %s, %r %r" % (
            sql, proc.rc, proc.stdout(), proc.stderr())


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_postgres_server():
    """postgres (initdb in a temporary dir, run as the user postgres) under
    each server mode; plain psql runs two queries, one connection each.
    The postmaster forks a backend per connection: its own close of the
    accepted socket is a shared one (why=shared), the backend's is the
    one checked.  Exits 0 on SIGINT (fast shutdown)."""
    compat.need(os.path.join(compat.PG_BIN, "postgres"), "psql", "setpriv")
    top = _initdb()
    _serve_modes("postgres", lambda port, mode: _postgres_argv(top, port),
                 (5432, 5433, 5434, 5435), exercise=_psql_exercise, stop_sig=signal.SIGINT,
                 log_owner="postgres", wrap=lambda argv: compat.as_user("postgres", argv),
                 new_group=True)


def _pid_on(port):
    """The pid of the process holding the one established connection to
    the local port (ss -tnp), or None."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"pid=(\d+),", out)
    peer = out.split()[3] if len(out.split()) > 3 else None
    return (int(m.group(1)), tdlib.port_of(peer)) if m and peer else None


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_postgres_backend_killed_under_its_client():
    """postgres under observation serves psql (a 20 s pg_sleep); its
    backend is killed with SIGKILL, so no exit hook of the backend runs
    and the kernel closes the connection at its death.  The postmaster
    reaps it (waitpid in its SIGCHLD handler), and the library there
    takes the backend's copy off the count and writes the connection's
    end on the backend's behalf: an "exit" event with the backend's pid,
    why "died", the FIN sent first (active, TIME_WAIT on the server's
    side), as tcpdump and ss show it.  The postmaster's own close of its
    copy stays "shared".

    Catches: the end of a connection whose last holder was killed going
    without any event (the build before: only the postmaster's "shared"
    close)."""
    compat.need(os.path.join(compat.PG_BIN, "postgres"), "psql", "setpriv", "ss")
    top = _initdb()
    port = 5436
    log = compat.new_log("postgres-killed", owner="postgres")
    argv = compat.as_user("postgres", compat.td_argv("observe", "server", log,
                                                     _postgres_argv(top, port)))
    with tdlib.Capture("tcp port %d" % port) as cap:
        pg = tdlib.spawn(["setsid"] + argv, env=compat.plain_env(), name="postgres-killed")
        try:
            compat.wait_listening(port, pg)
            client = tdlib.spawn(_psql(port, "select pg_sleep(20)"), name="psql-sleep")
            tdlib.wait_until(lambda: _pid_on(port) is not None, timeout=10,
                             what="the backend's connection")
            backend, cport = _pid_on(port)
            os.kill(backend, signal.SIGKILL)
            client.wait(15)
            held = tdlib.time_wait_settled(port)
            # (a killed backend sends the postmaster through crash
            # recovery: stopped once it serves again)
            tdlib.wait_until(lambda: tdlib.run(_psql(port, "select 1"), name="psql-again",
                                               timeout=10).rc == 0,
                             timeout=30, interval=0.2, what="postgres to recover")
            compat.stop(pg, signal.SIGINT, 0)
        finally:
            compat.kill_group(pg)
    ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
            r["role"] == "server" and r["remote"] and tdlib.port_of(r["remote"]) == cport]
    got = [(r["pid"], r["event"], r["why"], r["wire"], r["closer"], r["time_wait"]) for r in ends]
    assert [g for g in got if g[2] == "shared"] and \
        [g for g in got if g[2] != "shared"] == [(backend, "exit", "died", "FIN", "active", True)], got
    assert cap.teardown_flags(port, cport) == "FIN", cap.teardown_flags(port, cport)
    assert [r for r in held if r.local_port == port and r.peer_port == cport], held


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_psql_client():
    """psql under each client mode against a plain postgres."""
    compat.need(os.path.join(compat.PG_BIN, "postgres"), "psql", "setpriv")
    top = _initdb()
    pg = tdlib.spawn(["setsid"] + compat.as_user("postgres", _postgres_argv(top, 5432)),
                     name="postgres-plain")
    try:
        compat.wait_listening(5432, pg)
        with compat.Session() as s:
            _client_modes(s, "psql", 5432,
                          [("query", lambda port: _psql(port, "select 6*7")),
                           ("query2", lambda port: _psql(port, "select 'compat'"))],
                          min_conns=2)
        compat.stop(pg, signal.SIGINT, 0)
    finally:
        compat.kill_group(pg)
    s.verify()


# ---------------------------------------------------------------------------
# apache2 (prefork) and lighttpd
# ---------------------------------------------------------------------------

APACHE_CONF = """
ServerName localhost
ServerRoot %(dir)s
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
Listen 127.0.0.1:%(port)d
PidFile %(dir)s/httpd.pid
Mutex file:%(dir)s default
ErrorLog %(dir)s/error.log
LogLevel warn
User www-data
Group www-data
DocumentRoot %(root)s
<Directory %(root)s>
    Require all granted
</Directory>
StartServers 2
MinSpareServers 1
MaxSpareServers 2
MaxRequestWorkers 4
KeepAlive On
KeepAliveTimeout 15
"""


def _apache_argv(port, mode):
    d = compat.user_dir("apache-%d" % port, "www-data")
    conf = compat.write("apache-%d/httpd.conf" % port,
                        APACHE_CONF % {"dir": d, "port": port, "root": _docroot()})
    tdlib.diagnose_file(os.path.join(d, "error.log"))
    return ["apache2", "-f", conf, "-DFOREGROUND"]


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(75)
def test_apache2_server():
    """apache2 with the prefork MPM (its own config in a temporary dir:
    a root parent, www-data children that accept) under each server mode;
    plain curl fetches kept alive and with "Connection: close".  Exits 0
    on SIGTERM, which it also sends to its whole process group (so it
    runs in a session of its own)."""
    compat.need("apache2", "/usr/lib/apache2/modules/mod_mpm_prefork.so")
    _serve_modes("apache2", _apache_argv, (8070, 8071, 8072, 8073), log_owner="www-data",
                 new_group=True)


LIGHTTPD_CONF = """
server.document-root = "%(root)s"
server.port = %(port)d
server.bind = "127.0.0.1"
server.errorlog = "%(dir)s/error.log"
server.username = "www-data"
server.groupname = "www-data"
"""


def _lighttpd_argv(port, mode=None):
    d = compat.user_dir("lighttpd-%d" % port, "www-data")
    conf = compat.write("lighttpd-%d/lighttpd.conf" % port,
                        LIGHTTPD_CONF % {"dir": d, "port": port, "root": _docroot()})
    tdlib.diagnose_file(os.path.join(d, "error.log"))
    return ["lighttpd", "-D", "-f", conf]


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_lighttpd_server():
    """lighttpd (foreground, dropping to www-data) under each server mode;
    plain curl fetches kept alive and with "Connection: close".  Exits 0
    on SIGTERM."""
    compat.need("lighttpd")
    _serve_modes("lighttpd", _lighttpd_argv, (8060, 8061, 8062, 8063), log_owner="www-data")


# ---------------------------------------------------------------------------
# node
# ---------------------------------------------------------------------------

NODE_SERVER = r"""
const http = require('http');
const fs = require('fs');
const body = fs.readFileSync(process.argv[3]);
const srv = http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': body.length});
  res.end(body);
});
srv.listen(+process.argv[2], '127.0.0.1');
process.on('SIGTERM', () => srv.close(() => process.exit(0)));
"""

NODE_CLIENT = r"""
const http = require('http');
const agent = new http.Agent({keepAlive: true});
function get(url) {
  return new Promise((resolve, reject) => {
    http.get(url, {agent}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject);
  });
}
(async () => {
  try {
    for (let i = 0; i < 2; i++)
      process.stdout.write(await get(process.argv[2]));
    agent.destroy();
  } catch (e) {
    console.error('error: ' + e.code + ' ' + e.message);
    process.exitCode = 1;
  }
})();
"""


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_node_server():
    """A node http server under each server mode; plain curl fetches kept
    alive and with "Connection: close".  It exits 0 on SIGTERM."""
    compat.need("node")
    script = compat.write("server.js", NODE_SERVER)
    body = os.path.join(_docroot(), "hello.txt")
    _serve_modes("node-server", lambda port, mode: ["node", script, str(port), body],
                 (3000, 3001, 3002, 3003))


@tdlib.requires(*NEEDS, "nginx")
@tdlib.timeout(60)
def test_node_client():
    """A node http client (keep-alive agent, two fetches over one
    connection, then the agent closes it) under each client mode, against
    a plain nginx."""
    compat.need("node")
    _plain_nginx(8080)
    script = compat.write("client.js", NODE_CLIENT)
    with compat.Session() as s:
        _client_modes(s, "node-client", 8080, [
            ("get", lambda port: ["node", script, "http://127.0.0.1:%d/hello.txt" % port])])
    s.verify()


# ---------------------------------------------------------------------------
# Java (the JDK's own HTTP server and client, run from source)
# ---------------------------------------------------------------------------

JAVA_SERVER = r"""
import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;

public class Server {
    public static void main(String[] args) throws Exception {
        byte[] body = Files.readAllBytes(Path.of(args[1]));
        HttpServer s = HttpServer.create(
            new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 16);
        s.createContext("/", ex -> {
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream o = ex.getResponseBody()) { o.write(body); }
        });
        s.start();
    }
}
"""

JAVA_CLIENT = r"""
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;

public class Client {
    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 2; i++) {
            HttpURLConnection c = (HttpURLConnection) new URL(args[0]).openConnection();
            try (InputStream in = c.getInputStream()) {
                System.out.write(in.readAllBytes());
            }
        }
        System.out.flush();
    }
}
"""


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(120)
def test_java_server():
    """The JDK's HttpServer (a JVM: dozens of threads, its own signal
    handlers) under observe, graceful, drain and abort; plain curl
    fetches kept alive and with "Connection: close".  The JVM exits 143
    on SIGTERM, as without the library.

    Under abort the client's FIN and the server's close meet within
    microseconds: a FIN that the socket takes in between the library's
    last read of its state and the real close makes the close passive on
    the wire while the log says active (README Limits, the RST recheck;
    CI caught it at 9 us, and a loop of this test here about one run in
    six, 10 us).  The event's ts is that read's moment, so the check
    excuses a FIN stamped after it, with a note, and only that."""
    compat.need("java")
    script = compat.write("Server.java", JAVA_SERVER)
    body = os.path.join(_docroot(), "hello.txt")
    _serve_modes("java-server", lambda port, mode: ["java", script, str(port), body],
                 (7300, 7301, 7302, 7303), stop_rc=143, modes=("observe", "graceful", "drain", "abort"))


@tdlib.requires(*NEEDS, "nginx")
@tdlib.timeout(120)
def test_java_client():
    """The JDK's HttpURLConnection (two fetches over one kept-alive
    connection, which its cache still holds when the JVM exits) under each
    client mode, against a plain nginx."""
    compat.need("java")
    _plain_nginx(8080)
    script = compat.write("Client.java", JAVA_CLIENT)
    with compat.Session() as s:
        _client_modes(s, "java-client", 8080, [
            ("get", lambda port: ["java", script, "http://127.0.0.1:%d/hello.txt" % port])],
            timeout=30)
    s.verify()


@tdlib.requires(*NEEDS, "nginx")
@tdlib.timeout(60)
def test_wget_client():
    """GNU wget (two URLs over one kept-alive connection) under each
    client mode, against a plain nginx."""
    compat.need("wget")
    _plain_nginx(8080)
    with compat.Session() as s:
        _client_modes(s, "wget-client", 8080, [
            ("get", lambda port: ["wget", "-q", "-O", "-",
                                  "http://127.0.0.1:%d/hello.txt" % port,
                                  "http://127.0.0.1:%d/hello.txt" % port])])
    s.verify()


# ---------------------------------------------------------------------------
# TLS: openssl s_server (close_notify, then the TCP close)
# ---------------------------------------------------------------------------

def _tls_cert():
    """A throwaway self-signed certificate and key in the test's directory."""
    cert = os.path.join(tdlib.tmpdir(), "cert.pem")
    key = os.path.join(tdlib.tmpdir(), "key.pem")
    if not os.path.exists(cert):
        proc = tdlib.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                          "-subj", "/CN=localhost", "-days", "1", "-keyout", key,
                          "-out", cert], name="openssl-req", timeout=60)
        assert proc.rc == 0, proc.stderr()
    return cert, key


def _tls_fetches(port, mode=None):
    """Two plain curl runs over TLS (each its own connection)."""
    for i in range(2):
        proc = tdlib.run(_curl("https://127.0.0.1:%d/" % port, "-k"),
                         name="curl-tls-%d-%d" % (port, i), timeout=20)
        assert proc.rc == 0, "curl over TLS exited %s: %s" % (proc.rc, proc.stderr().strip())
        with open(proc.out_path, "rb") as f:
            assert b"s_server" in f.read()


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_openssl_tls_server():
    """openssl s_server -www (one connection at a time; each ends with a
    TLS close_notify, then the TCP close) under each server mode; plain
    curl -k fetches its status page.  SIGTERM kills it, as without the
    library."""
    compat.need("openssl")
    cert, key = _tls_cert()
    _serve_modes("openssl-server",
                 lambda port, mode: ["openssl", "s_server", "-quiet", "-www", "-accept",
                                     str(port), "-cert", cert, "-key", key],
                 (7400, 7401, 7402, 7403), exercise=_tls_fetches, stop_rc=-15)


# ---------------------------------------------------------------------------
# Python's http.server (a thread per request) and a forking Perl server
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_python_http_server():
    """python3 -m http.server (ThreadingHTTPServer: each connection served
    in a thread of its own, which shuts its sending side down and then
    closes) under each server mode; plain curl fetches kept alive and with
    "Connection: close".  SIGTERM kills it, as without the library."""
    _serve_modes("python-http", lambda port, mode: ["python3", "-m", "http.server", "--bind",
                                                    "127.0.0.1", "--directory", _docroot(),
                                                    str(port)],
                 (7500, 7501, 7502, 7503), stop_rc=-15)


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_busybox_httpd_server():
    """busybox httpd (a child forked per connection, which serves it and
    exits; the parent closes its copy at once and ignores SIGCHLD) under
    each server mode; plain curl fetches kept alive and with "Connection:
    close".  SIGTERM kills it, as without the library."""
    compat.need("busybox")
    _serve_modes("busybox-httpd", lambda port, mode: ["busybox", "httpd", "-f", "-p",
                                                      "127.0.0.1:%d" % port, "-h", _docroot()],
                 (7700, 7701, 7702, 7703), stop_rc=-15)


PERL_ECHO = r"""
use strict;
use IO::Socket::INET;
$SIG{CHLD} = 'IGNORE';
my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0],
                               Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (1) {
    my $c = $ls->accept() or next;
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        close($ls);
        while (my $line = <$c>) { print $c $line; }
        close($c);
        exit(0);
    }
    close($c);
}
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_perl_forking_server():
    """A forking Perl echo server (IO::Socket::INET, a child per
    connection; the parent closes its copy at once) under each server
    mode.  SIGTERM kills it, as without the library."""
    compat.need("perl")
    script = compat.write("echo.pl", PERL_ECHO)
    _serve_modes("perl-echo", lambda port, mode: ["perl", script, str(port)],
                 (7600, 7601, 7602, 7603), exercise=_echo_exercise, stop_rc=-15)


# ---------------------------------------------------------------------------
# Python asyncio
# ---------------------------------------------------------------------------

ASYNCIO_SERVER = r"""
import asyncio, signal, sys

async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(b"echo " + line)
            await writer.drain()
            if line.strip() == b"bye":
                break
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass

async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()

asyncio.run(main(int(sys.argv[1])))
"""

ASYNCIO_CLIENT = r"""
import asyncio, sys

async def talk(port, lines):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for line in lines:
        writer.write(line + b"\n")
        await writer.drain()
        out.append((await reader.readline()).decode().strip())
    if lines[-1] == b"bye":
        try:
            out.append("eof" if await reader.read() == b"" else "more")
        except ConnectionResetError:
            out.append("reset")
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionResetError:
        pass
    return out

async def main(port):
    print(await talk(port, [b"hello", b"world"]))   # the client ends this one
    print(await talk(port, [b"bye"]))               # the server ends this one

try:
    asyncio.run(main(int(sys.argv[1])))
except OSError as e:
    print("error:", type(e).__name__, e.errno)
    sys.exit(1)
"""


def _asyncio_client_ok(port, mode):
    """The plain asyncio client; a server under abort resets the
    connection it ends, after its reply."""
    proc = tdlib.run([PYTHON, os.path.join(tdlib.tmpdir(), "aclient.py"), str(port)],
                     name="asyncio-client-%d" % port, timeout=20)
    end = "reset" if mode == "abort" else "eof"
    want = "['echo hello', 'echo world']\n['echo bye', '%s']\n" % end
    assert proc.rc == 0 and proc.stdout() == want, "the asyncio client: rc %s, %r %r" % (
        proc.rc, proc.stdout(), proc.stderr())


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_python_asyncio_server():
    """A python3 asyncio line-echo server under each server mode; a plain
    asyncio client talks to it twice: it ends the first connection, the
    server ends the second ("bye").  The server exits 0 on SIGTERM."""
    script = compat.write("aserver.py", ASYNCIO_SERVER)
    compat.write("aclient.py", ASYNCIO_CLIENT)
    _serve_modes("asyncio-server", lambda port, mode: [PYTHON, script, str(port)],
                 (7000, 7001, 7002, 7003), exercise=_asyncio_client_ok)


def _python_client_modes(label, port, server, client, *args):
    """A python3 client (name, source) under each client mode, two
    connections a run, against its python3 server (name, source) run
    plain on port; verified against the wire and ss."""
    server_path = compat.write(*server)
    client_path = compat.write(*client)
    srv = tdlib.spawn([PYTHON, server_path, str(port)], name=label + "-server-plain")
    compat.wait_listening(port, srv)
    with compat.Session() as s:
        _client_modes(s, label, port,
                      [("talk", lambda p: [PYTHON, client_path, str(p)] + list(args))],
                      min_conns=2)
    s.verify()


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_python_asyncio_client():
    """The python3 asyncio client under each client mode against the plain
    asyncio server."""
    _python_client_modes("asyncio-client", 7000, ("aserver.py", ASYNCIO_SERVER),
                         ("aclient.py", ASYNCIO_CLIENT))


# ---------------------------------------------------------------------------
# OpenSSH
# ---------------------------------------------------------------------------

SSHD_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/hostkey
PidFile {dir}/sshd-{port}.pid
AuthorizedKeysFile {dir}/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin yes
StrictModes no
"""


def _sshd_setup():
    """Host and user keys, authorized_keys and sshd's privilege separation
    directory; returns the key directory."""
    compat.need("/usr/sbin/sshd", "ssh", "ssh-keygen")
    d = os.path.join(tdlib.tmpdir(), "ssh")
    os.makedirs(d, exist_ok=True)
    for name in ("hostkey", "userkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, name)], check=True, timeout=30)
    with open(os.path.join(d, "userkey.pub")) as src, \
            open(os.path.join(d, "authorized_keys"), "w") as dst:
        dst.write(src.read())
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return d


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_sshd_server():
    """OpenSSH's sshd under each server mode; a plain ssh client logs in
    twice with a key and runs a command.  sshd forks a child per
    connection, which re-executes sshd with the connection on 0 and 1 and
    forks a pre-authentication child that enters a seccomp sandbox.  Each
    login must print its command's output; each connection has one end,
    matching the wire and ss.

    Catches: the library's own system calls inside the sandbox (sshd:
    "preauth child terminated by signal 31", every login lost), and the
    re-executed sshd's connection, inherited across exec(), never decided:
    no end logged, the mode not applied."""
    d = _sshd_setup()

    def argv_of(port, mode):
        conf = compat.write("ssh/sshd-%d.conf" % port, SSHD_CONFIG.format(port=port, dir=d))
        return ["/usr/sbin/sshd", "-D", "-e", "-f", conf]

    def exercise(port, mode):
        for i in (1, 2):
            proc = tdlib.run(["ssh", "-p", str(port), "-i", os.path.join(d, "userkey"),
                              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                              "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1",
                              "echo login %d" % i], name="ssh-%d-%d" % (port, i), timeout=30)
            assert proc.rc == 0 and proc.stdout() == "login %d\n" % i, (
                "ssh under %s: rc %s, %r %r" % (mode, proc.rc, proc.stdout(), proc.stderr()))

    _serve_modes("sshd", argv_of, (7040, 7041, 7042, 7043), exercise=exercise)

@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_ssh_client():
    """OpenSSH's ssh under each client mode against a plain sshd: a key
    login that runs a command.  It must print what it prints without the
    library and exit the same way (under --connect-refuse 1, as against a
    closed port); each connection has one end, matching the wire and
    ss."""
    d = _sshd_setup()
    conf = compat.write("ssh/sshd-7045.conf", SSHD_CONFIG.format(port=7045, dir=d))
    srv = tdlib.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", conf], name="sshd-plain")
    compat.wait_listening(7045, srv)

    def argv_of(port):
        return ["ssh", "-p", str(port), "-i", os.path.join(d, "userkey"),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1", "echo hi"]
    with compat.Session() as s:
        _client_modes(s, "ssh", 7045, [("command", argv_of)], timeout=30)
    s.verify()

# ---------------------------------------------------------------------------
# vsftpd
# ---------------------------------------------------------------------------

VSFTPD_CONFIG = """listen=YES
listen_address=127.0.0.1
listen_port={port}
anonymous_enable=YES
anon_root={root}
no_anon_password=YES
local_enable=NO
write_enable=NO
pasv_enable=YES
pasv_min_port={pasv}
pasv_max_port={pasv_max}
background=NO
secure_chroot_dir=/run/vsftpd/empty
isolate_network=NO
isolate=NO
seccomp_sandbox=NO
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_vsftpd_server():
    """vsftpd under observe, graceful and drain; curl fetches a file twice over
    anonymous passive-mode FTP.  vsftpd forks a privileged and an
    unprivileged process per session: the privileged one accepts each data
    connection and hands it to the other in an SCM_RIGHTS message, and the
    unprivileged one shuts the control connection down, whose end its
    parent's exit reports.  Each fetch must get the file; each connection
    (control and data) has one end, matching the wire and ss.  (Its seccomp
    sandbox is off: on this kernel it fails without the library too,
    "500 OOPS: priv_sock_get_cmd".)

    Catches: a data connection that came in an SCM_RIGHTS message had no
    entry in its receiver (its end never logged, the mode not applied),
    and a connection whose FINs went out by another holder's shutdown
    reported by the last holder as a reset."""
    compat.need("/usr/sbin/vsftpd")
    root = os.path.join(tdlib.tmpdir(), "ftp")
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    with open(os.path.join(root, "f.txt"), "w") as f:
        f.write("hello ftp\n")
    os.chmod(os.path.join(root, "f.txt"), 0o644)
    os.makedirs("/run/vsftpd/empty", mode=0o755, exist_ok=True)

    def argv_of(port, mode):
        pasv = 30000 + 10 * (port - 7050)
        conf = compat.write("vsftpd-%d.conf" % port, VSFTPD_CONFIG.format(
            port=port, root=root, pasv=pasv, pasv_max=pasv + 9))
        return ["/usr/sbin/vsftpd", conf]

    def exercise(port, mode):
        for i in (1, 2):
            proc = tdlib.run(["curl", "-s", "--max-time", "10", "ftp://127.0.0.1:%d/f.txt" % port],
                             name="ftp-%d-%d" % (port, i), timeout=20)
            assert proc.rc == 0 and proc.stdout() == "hello ftp\n", (
                "curl under %s: rc %s, %r %r" % (mode, proc.rc, proc.stdout(), proc.stderr()))

    # Not under abort: there the parent's exit reports the control
    # connection, shut down by its child, from fd 2, which the exit path
    # may not close itself (stdio's last flush comes after it), so the
    # event is a prediction, and the peer's FIN arriving between it and
    # the kernel's close turns the predicted RST into nothing (seen once
    # in CI: README Limits).
    _serve_modes("vsftpd", argv_of, (7050, 7051, 7052), exercise=exercise,
                 stop_rc=-signal.SIGTERM, modes=("observe", "graceful", "drain"))

# ---------------------------------------------------------------------------
# git daemon
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_git_daemon_server():
    """git daemon under each server mode; git ls-remote lists a bare
    repository twice over git://.  Per connection the daemon forks a child
    that re-executes git with the connection on 0 and 1 (handed over:
    the rule applies in full there), which runs upload-pack on the same
    0 and 1 in turn: three processes hold each connection, two of them
    exec()ed with it open, and the last to exit ends it.  Each listing
    must succeed; each connection has one end, matching the wire and
    ss."""
    compat.need("git")
    base = os.path.join(tdlib.tmpdir(), "git")
    os.makedirs(base, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", os.path.join(base, "r.git")], check=True,
                   env=compat.plain_env())

    def argv_of(port, mode):
        return ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", "--port=%d" % port,
                "--base-path=" + base, "--export-all", base]

    def exercise(port, mode):
        for i in (1, 2):
            proc = tdlib.run(["git", "ls-remote", "git://127.0.0.1:%d/r.git" % port],
                             name="ls-remote-%d-%d" % (port, i), timeout=20)
            assert proc.rc == 0, "git ls-remote under %s: rc %s, %s" % (
                mode, proc.rc, proc.stderr().strip())

    _serve_modes("git-daemon", argv_of, (7080, 7081, 7082, 7083), exercise=exercise,
                 stop_rc=-signal.SIGTERM)

# ---------------------------------------------------------------------------
# ncat --exec
# ---------------------------------------------------------------------------

def _echo_line_exercise(port, mode):
    """Two connections that send a line, read its echo and close."""
    for i in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"hello %d\n" % i)
            got = b""
            while not got.endswith(b"\n"):
                data = c.recv(100)
                assert data, "ncat under %s: EOF after %r" % (mode, got)
                got += data
            assert got == b"hello %d\n" % i, "ncat under %s: %r" % (mode, got)


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_ncat_exec_server():
    """ncat -l -k --exec /bin/cat under each server mode: per connection
    ncat forks a child that relays between the connection and a cat it
    runs on pipes, and cat inherits the connection's fd too (ncat leaves
    it open across the exec).  The child closes its copy when the client
    closes (shared: cat still holds it), and cat's exit is the end: a
    leaked socket, which cat's library observes and never acts on, so the
    end says action pass under every mode (under abort the zero linger
    ncat's library put in at the accept still makes it an RST).  Each
    connection has one end, matching the wire and ss.

    Catches: a leaked inherited socket left untracked under any rule but
    a logging pass: every connection's end went unlogged under graceful,
    drain and abort."""
    compat.need("ncat")
    _serve_modes("ncat", lambda port, mode: ["ncat", "-l", "-k", "127.0.0.1", str(port),
                                             "--exec", "/bin/cat"],
                 (7075, 7076, 7077, 7078), exercise=_echo_line_exercise,
                 stop_rc=-signal.SIGTERM, end_action="pass")

# ---------------------------------------------------------------------------
# socat
# ---------------------------------------------------------------------------

def _socat_server_argv(port, mode=None):
    # cloexec: without it socat's EXEC'd cat inherits the connection's
    # socket, and when socat's child finds cat still holding it at its
    # exit (seen once in a CI run: the child logged its shutdowns, then
    # no exit event), the end is left to cat, whose library never saw the
    # socket made, and has no event (README, Limits: Shared sockets).  The
    # test is about socat's fork-per-connection server, which cloexec
    # leaves as it is.
    return ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,cloexec" % port, "EXEC:cat"]


def _echo_exercise(port, mode):
    """Two plain connections that send a line, half-close and read the
    echo to EOF."""
    for i in range(2):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"hello %d\n" % i)
            s.shutdown(socket.SHUT_WR)
            buf = compat.read_to_end(s, mode)
        assert buf == b"hello %d\n" % i, buf


@tdlib.requires(*NEEDS, "socat")
@tdlib.timeout(60)
def test_socat_server():
    """socat as a forking echo server (TCP-LISTEN,fork EXEC:cat) under each
    server mode: the parent's copy of each accepted socket is a shared
    reference, its child's close is the one checked.  socat exits 143 on
    SIGTERM, as without the library."""
    _serve_modes("socat-server", _socat_server_argv, (7100, 7101, 7102, 7103),
                 exercise=_echo_exercise, stop_rc=143)


@tdlib.requires(*NEEDS, "socat")
@tdlib.timeout(60)
def test_socat_client():
    """socat as a client (stdin to the connection and back; it half-closes
    at the end of its input) under each client mode, against a plain
    socat echo server."""
    srv = tdlib.spawn(_socat_server_argv(7100), name="socat-server-plain")
    compat.wait_listening(7100, srv)
    with compat.Session() as s:
        _client_modes(s, "socat-client", 7100,
                      [("echo", lambda port: ["socat", "-", "TCP:127.0.0.1:%d" % port],
                        b"hello\n")], half_closes=True)
    s.verify()


# ---------------------------------------------------------------------------
# Allocators preloaded beside the library
# ---------------------------------------------------------------------------

PY_FETCH = r"""
import sys, urllib.request
for _ in range(2):
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        sys.stdout.write(r.read().decode())
"""


def _allocator_runs(label, argv_of):
    """``argv_of(port)`` (a client of the plain nginx on 8080) under observe, drain
    and abort with each allocator preloaded beside the library (LD_PRELOAD
    set before teardown, which puts the library in front of it)."""
    missing = [path for path in compat.ALLOCATORS.values() if not os.path.exists(path)]
    if missing:
        tdlib.skip("needs %s (not installed)" % missing[0])
    _plain_nginx(8080)
    with compat.Session() as s:
        for name, path in compat.ALLOCATORS.items():
            _client_modes(s, "%s+%s" % (label, name), 8080, [("get", argv_of)],
                          modes=("observe", "drain", "abort"),
                          env=compat.plain_env(LD_PRELOAD=path))
    s.verify()


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_allocators_curl():
    """curl with jemalloc, tcmalloc and mimalloc preloaded beside the library."""
    def argv_of(port):
        url = "http://127.0.0.1:%d/hello.txt" % port
        return _curl(url) + [url]
    _allocator_runs("curl", argv_of)


@tdlib.requires(*NEEDS, "nginx")
@tdlib.timeout(60)
def test_allocators_python():
    """python3 (urllib, two fetches) with jemalloc, tcmalloc and mimalloc
    preloaded beside the library."""
    script = compat.write("fetch.py", PY_FETCH)
    _allocator_runs("python3", lambda port: [PYTHON, script,
                                             "http://127.0.0.1:%d/hello.txt" % port])


# ---------------------------------------------------------------------------
# Regressions: one test per failure these programs showed
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_regression_jemalloc_init_redis():
    """redis links jemalloc, which calls syscall(SYS_open) from inside its
    init lock; the library must not initialise there (it deadlocked).

    `teardown -- redis-cli -p 1 ping` prints "Connection refused" and
    exits 1, promptly; redis-server starts under teardown and answers
    PING; redis-benchmark starts under teardown and completes."""
    compat.need("redis-server", "redis-cli", "redis-benchmark")
    td = compat.teardown_cmd()
    cli = tdlib.run([td, "--", "redis-cli", "-p", "1", "ping"], env=compat.plain_env(),
                    name="redis-cli-port-1", timeout=10)
    assert cli.rc == 1, "redis-cli exited %s" % cli.rc
    assert "Connection refused" in cli.stdout() + cli.stderr(), cli.stdout() + cli.stderr()
    srv = tdlib.spawn([td, "--"] + _redis_server_argv(6379), env=compat.plain_env(),
                      name="redis-server")
    compat.wait_listening(6379, srv)
    ping = tdlib.run(["redis-cli", "-p", "6379", "PING"], name="ping")
    assert ping.rc == 0 and ping.stdout().strip() == "PONG", ping.stdout()
    bench = tdlib.run([td, "--", "redis-benchmark", "-p", "6379", "-n", "10", "-c", "1",
                       "-t", "ping", "-q"], env=compat.plain_env(), name="redis-benchmark",
                      timeout=10)
    assert bench.rc == 0 and "requests per second" in bench.stdout(), bench.stdout()
    compat.stop(srv, signal.SIGTERM, 0)


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_regression_lighttpd_exported_config_symbols():
    """lighttpd exports its own config_init/config_read, and the library's
    libconfig bound to them: lighttpd died of SIGSEGV at start under any
    policy.  It must start and serve under --close graceful; so must
    host_appsyms, a test program built with -rdynamic that defines both."""
    compat.need("lighttpd")
    prog = tdlib.test_prog("host_appsyms")
    assert os.path.exists(prog), "%s is missing: run make testprogs" % prog
    td = compat.teardown_cmd()
    plain = tdlib.run([prog], name="host_appsyms-plain")
    assert plain.rc == 0 and plain.stdout() == "config_init(main) = 7\n", plain.stdout()
    for args in (["--close", "graceful"], []):
        app = tdlib.run([td] + args + ["--", prog], env=compat.plain_env(),
                        name="host_appsyms" + "".join(args))
        assert (app.rc, app.stdout()) == (plain.rc, plain.stdout()), (
            "host_appsyms under teardown %s: rc %s, %r" % (" ".join(args), app.rc, app.stdout()))
    log = compat.new_log("lighttpd", owner="www-data")
    srv = tdlib.spawn([td, "--close", "graceful", "--role", "server", "--log", log,
                       "--format", "json", "--"] + _lighttpd_argv(8060),
                      env=compat.plain_env(), name="lighttpd")
    compat.wait_listening(8060, srv)
    _http_fetches(8060)
    compat.stop(srv, signal.SIGTERM, 0)


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(40)
def test_regression_rst_in_close_wait_is_passive():
    """An RST sent after the peer's FIN (in CLOSE_WAIT) ends a connection
    the peer closed first: closer must be passive, not active.

    nginx under --close abort, one keep-alive fetch: curl closes first
    (FIN), nginx's close answers with an RST.  The log must say
    closer=passive, wire=RST, time_wait=false, as tcpdump and ss show."""
    log = compat.new_log("nginx-abort")
    with tdlib.Capture(snaplen=128) as cap:
        srv = tdlib.spawn(compat.td_argv("abort", "server", log, _nginx_argv(8080)),
                          env=compat.plain_env(), name="nginx-abort")
        compat.wait_listening(8080, srv)
        fetch = tdlib.run(_curl("http://127.0.0.1:8080/hello.txt", "-w", "\n%{local_port}"),
                          name="curl")
        assert fetch.rc == 0, fetch.stderr()
        port = int(fetch.stdout().rsplit("\n", 1)[1])
        tdlib.wait_until(lambda: [e for e in tdlib.read_log(log) if e["event"] == "close"
                                  and tdlib.port_of(e["remote"]) == port],
                         what="nginx's close event")
        tw = tdlib.time_wait_on(8080)
    conn = [c for c in compat.connections(cap.packets(), 8080) if c.cport == port][0]
    client_fin, server_rst = conn.fin_from(port), conn.rst_from(8080)
    assert client_fin and server_rst and client_fin.ts < server_rst.ts, conn.describe()
    assert not conn.fin_from(8080), conn.describe()
    assert not [r for r in tw if r.peer_port == port], tw
    close = [e for e in tdlib.read_log(log) if e["event"] == "close"
             and tdlib.port_of(e["remote"]) == port][0]
    got = {k: close[k] for k in ("closer", "wire", "time_wait")}
    assert got == {"closer": "passive", "wire": "RST", "time_wait": False}, (
        "nginx's close event says %r: %s" % (got, json.dumps(close)))
    compat.stop(srv, signal.SIGTERM, 0)


# The race this pins is narrow (curl's FIN landing between the library's
# look at the state and the real close) and its rate depends on the load:
# 200 fetches showed it 1 to 54 times on this 2-core machine; 400 make a
# run without it unlikely.
FETCHES = 400


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_regression_abort_meeting_peer_fin():
    """Abort meeting the peer's FIN: Python's http.server sends its FIN
    with shutdown(SHUT_WR) and then closes; under --close abort that close
    is an RST, unless curl's FIN landed first and both FINs were already
    exchanged (FIN_WAIT1/FIN_WAIT2 turned TIME_WAIT): then nothing can go,
    and the log must say so (wire=none why=fin-sent time_wait=true), not
    claim an RST and no TIME_WAIT.  curl reads each reply to EOF
    (--ignore-content-length), so its FIN follows the server's closely;
    FETCHES fetches, 20 per curl run; every close event must agree with
    tcpdump and ss."""
    root = _docroot()
    log = compat.new_log("httpd-abort")
    with compat.Session() as s:
        with s.mode("http.server", "abort", "server", 8000, log, min_conns=FETCHES) as run:
            srv = tdlib.spawn(compat.td_argv("abort", "server", log, [
                PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root, "8000"]),
                env=compat.plain_env(), name="httpd-abort")
            compat.wait_listening(8000, srv)
            for i in range(FETCHES // 20):
                proc = tdlib.run(_curl("http://127.0.0.1:8000/hello.txt", "--ignore-content-length",
                                       *["http://127.0.0.1:8000/hello.txt"] * 19),
                                 name="curl-%d" % i)
                assert proc.rc == 0, "fetch %d: %s" % (i, proc.stderr())
                with open(proc.out_path, "rb") as f:
                    assert f.read() == BODY * 20, "fetches %d: not 20 bodies" % i
            run.settle()
            compat.stop(srv, signal.SIGINT, 0)
    lies = []
    closes = [e for e in tdlib.read_log(log) if e["event"] == "close"]
    # a client port comes back after an abort left it no TIME_WAIT: each
    # use of it is judged by its own close event
    for conn in compat.connections(s.cap.packets(), 8000):
        finals = [e for e in closes if tdlib.port_of(e["remote"]) == conn.cport
                  and conn.owns(tdlib.event_time(e))]
        if (finals and finals[0]["wire"] == "RST" and not finals[0]["time_wait"]
                and not conn.rst_from(8000) and conn.holds_time_wait(run.tw, 8000)):
            lies.append("port %d: the log says wire=RST time_wait=false, tcpdump shows no RST"
                        " and ss its TIME_WAIT: %s" % (conn.cport, json.dumps(finals[0])))
    assert not lies, "%d of %d closes:\n%s" % (len(lies), FETCHES, "\n".join(lies))
    s.verify()


# The crafted pair: one process, many connections to itself from a forked
# child; both ends of connection i close at the same moment (a spin
# barrier in shared memory), so their FINs often cross.
CROSSING_PAIR = r"""
import mmap, os, socket, struct, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port))
ls.listen(n + 8)
mm = mmap.mmap(-1, 16)
def mark(side, i): mm[side * 8:side * 8 + 8] = struct.pack("q", i)
def seen(side): return struct.unpack("q", mm[side * 8:side * 8 + 8])[0]
mark(0, -1); mark(1, -1)
pid = os.fork()
me = 1 if pid == 0 else 0
if pid == 0:
    ls.close()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
else:
    conns = [ls.accept()[0] for _ in range(n)]
for i, c in enumerate(conns):
    mark(me, i)
    while seen(1 - me) < i:
        pass
    c.close()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("done")
"""

# Deterministic crossing: both FINs are held in a tbf qdisc that lets
# nothing through, the qdisc goes, and both are retransmitted.
HELD_PAIR = r"""
import socket, subprocess, sys
port, how = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.bind(("127.0.0.1", port))
ls.listen(4)
c = socket.create_connection(("127.0.0.1", port))
s, _ = ls.accept()
def qdisc(*args):
    subprocess.run(["tc", "qdisc"] + list(args), check=True)
qdisc("add", "dev", "lo", "root", "tbf", "rate", "8bit", "burst", "10", "latency", "10s")
if how == "shutdown":
    c.shutdown(socket.SHUT_WR)
    s.shutdown(socket.SHUT_WR)
else:
    c.close()
    s.close()
qdisc("del", "dev", "lo", "root")
if how == "shutdown":
    assert s.recv(10) == b"" and c.recv(10) == b""
    s.close()
    c.close()
print("done")
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_regression_simultaneous_close_time_wait():
    """A simultaneous close (both FINs crossing) leaves both sides in
    TIME_WAIT; each side's close event must then say time_wait=true (and
    closer simultaneous, or active for a side that only saw its own FIN
    acknowledged before the peer's arrived), and a side that ss shows
    without TIME_WAIT must not claim one.

    A crafted pair under observe: twice a single connection whose FINs are
    made to cross for certain (held in a black-hole qdisc on lo, then
    retransmitted), once after shutdown(SHUT_WR) on both ends and once by
    close() on both; then 200 connections whose two ends close at the same
    moment, where crossings happen by themselves."""
    compat.need("tc")
    held = compat.write("held_pair.py", HELD_PAIR)
    racing = compat.write("crossing_pair.py", CROSSING_PAIR)
    probe = subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "8bit",
                            "burst", "10", "latency", "10s"], capture_output=True, text=True)
    if probe.returncode == 0:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=True)
        helds = ((9100, "shutdown"), (9101, "close"))
    else:
        # no sch_tbf in this kernel: only the racing pair below
        tdlib.note("no tbf qdisc (%s): no held pairs" % probe.stderr.strip())
        helds = ()
    with compat.Session() as s:
        for port, how in helds:
            log = compat.new_log("held-" + how)
            with s.mode("held pair (%s)" % how, "observe", "both", port, log):
                proc = tdlib.run(compat.td_argv("observe", "any", log, [PYTHON, held, port, how]),
                                 env=compat.plain_env(), name="held-" + how, timeout=20)
                assert proc.rc == 0 and proc.stdout() == "done\n", proc.stderr()
        log = compat.new_log("racing")
        with s.mode("racing pair", "observe", "both", 9200, log, min_conns=200):
            proc = tdlib.run(compat.td_argv("observe", "any", log, [PYTHON, racing, 200, 9200]),
                             env=compat.plain_env(), name="racing", timeout=30)
            assert proc.rc == 0 and proc.stdout() == "done\n", proc.stderr()
    crossed = [(r.label, a, b) for r in s.runs for (a, b) in r.tw
               if (b, a) in r.tw and r.port in (a, b) and a == r.port]
    tdlib.note("connections whose FINs crossed:", len(crossed))
    held_crossed = [c for c in crossed if c[0].startswith("held")]
    assert len(held_crossed) == len(helds), (
        "the held pairs did not both end in TIME_WAIT: %r" % crossed)
    s.verify()



# A dual-stack server: one AF_INET6 socket on [::] serving IPv4 clients
# too (Java, node and Go listen so by default).  Per connection the client
# says who closes first: "me" (the server, right after its reply) or
# "you" (the client: the server then reads to the client's EOF).
DUAL_STACK_SERVER = r"""
import signal, socket, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
ls = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("::", int(sys.argv[1])))
ls.listen(16)
while True:
    c, _ = ls.accept()
    try:
        who = c.recv(64)
        c.sendall(b"ok " + who)
        if who.startswith(b"you"):
            while c.recv(64):
                pass
    except OSError:
        pass
    c.close()
"""

# Its client: "4" an AF_INET socket, "mapped" an AF_INET6 one connecting
# to ::ffff:127.0.0.1 (what a Java client's socket is).
DUAL_STACK_CLIENT = r"""
import socket, sys
port, family = int(sys.argv[1]), sys.argv[2]

def talk(who):
    if family == "mapped":
        c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        c.connect(("::ffff:127.0.0.1", port))
    else:
        c = socket.create_connection(("127.0.0.1", port))
    want, got, end = b"ok " + who + b"\n", b"", ""
    try:
        c.sendall(who + b"\n")
        while len(got) < len(want):
            data = c.recv(64)
            if not data:
                break
            got += data
        if who == b"me":
            while c.recv(64):
                pass
    except ConnectionResetError:
        end = " reset"
    c.close()
    return got.decode().strip() + end

try:
    print(talk(b"me"))
    print(talk(b"you"))
except OSError as e:
    print("error:", type(e).__name__, e.errno)
    sys.exit(1)
"""


def _ds_exercise(port, mode):
    """DUAL_STACK_CLIENT (written as ds_client.py) on IPv4 against a server
    that answers as DUAL_STACK_SERVER: it closes first on the first
    connection (an RST under abort), second on the other."""
    proc = tdlib.run([PYTHON, os.path.join(tdlib.tmpdir(), "ds_client.py"), str(port), "4"],
                     name="ds-client-%d" % port, timeout=20)
    want = "ok me%s\nok you\n" % (" reset" if mode == "abort" else "")
    assert proc.rc == 0 and proc.stdout() == want, "the client: rc %s, %r %r" % (
        proc.rc, proc.stdout(), proc.stderr())


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_regression_dual_stack_server():
    """A dual-stack python3 server (AF_INET6 on [::], IPv4 clients) under
    each server mode: it closes first on one connection and second on the
    other, and each close event's closer and time_wait must match the wire
    and ss.

    Catches: the sock_diag answer for such a socket is AF_INET6 with the
    addresses v4-mapped; compared with the IPv4 addresses the library
    records, it read as "gone", so every active close of a Java, node or
    Go server (dual-stack by default) was logged passive, without its
    TIME_WAIT."""
    script = compat.write("ds_server.py", DUAL_STACK_SERVER)
    compat.write("ds_client.py", DUAL_STACK_CLIENT)
    _serve_modes("dual-stack-server", lambda port, mode: [PYTHON, script, str(port)],
                 (7010, 7011, 7012, 7013), exercise=_ds_exercise)


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_regression_dual_stack_client():
    """A python3 client on an AF_INET6 socket connected to
    ::ffff:127.0.0.1 (what a Java client uses) under each client mode,
    against the plain dual-stack server: its first connection the server
    closes first, its second it closes first itself.

    Catches: the same v4-mapped answer, on the client side."""
    _python_client_modes("dual-stack-client", 7014, ("ds_server.py", DUAL_STACK_SERVER),
                         ("ds_client.py", DUAL_STACK_CLIENT), "mapped")

# An inetd-style server: it accepts, and runs a child with the connection
# handed over, closes its own copy, waits.  How the child gets it (argv[2]):
# "stdio" on 0 and 1 (inetd, sshd's re-execution); "listen" on fd 3 with
# LISTEN_PID and LISTEN_FDS=1 (systemd, Accept=yes); "leaked" on fd 3 with
# nothing saying it is the child's (a parent's fd that leaked).  The rest
# of argv is the child's command prefix (a teardown command line for the
# child alone).  The child answers as DUAL_STACK_SERVER does.
INETD_SERVER = r"""
import signal, socket, subprocess, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
CHILD = '''
import os
fd = int(os.environ.get("CONN_FD", "0"))
out = 1 if fd == 0 else fd
who = os.read(fd, 64)
os.write(out, b"ok " + who)
if who.startswith(b"you"):
    while os.read(fd, 64):
        pass
os.close(fd)
if out != fd:
    os.close(out)
'''
MOVE = {"listen": 'exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1 CONN_FD=3 exec "$@"',
        "leaked": 'exec 3<&0 </dev/null; CONN_FD=3 exec "$@"'}
how, prefix = sys.argv[2], sys.argv[3:]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
while True:
    c, _ = ls.accept()
    argv = prefix + [sys.executable, "-c", CHILD]
    if how == "stdio":
        child = subprocess.Popen(argv, stdin=c.fileno(), stdout=c.fileno())
    else:
        child = subprocess.Popen(["/bin/sh", "-c", MOVE[how], "sh"] + argv, stdin=c.fileno())
    c.close()
    child.wait()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_inetd_style_server_wrapped_whole():
    """An inetd-style server (accept, run a child on the connection as its
    stdin and stdout, close the parent's copy) wholly under each server
    mode: the child, started by exec() with the connection already open,
    ends it (it closes first on one connection, second on the other), and
    its rule applies there.  Every connection has one end, matching the
    wire and ss.

    Catches: a socket a process got across exec() had no entry, so the
    child's closes went straight to the kernel: no end was logged, and
    graceful, drain and abort did nothing."""
    script = compat.write("inetd.py", INETD_SERVER)
    compat.write("ds_client.py", DUAL_STACK_CLIENT)
    _serve_modes("inetd-wrapped", lambda port, mode: [PYTHON, script, str(port), "stdio"],
                 (7020, 7021, 7022, 7023), exercise=_ds_exercise)


def _inetd_child_alone(s, label, how, mode, port, want_shared, td_mode=None):
    """The inetd server plain, its children under ``mode`` (the library's
    mode ``td_mode`` where the log must read as ``mode``): run, check each
    connection's ends (shared or not, in order), stop.  Returns the log."""
    script = compat.write("inetd.py", INETD_SERVER)
    compat.write("ds_client.py", DUAL_STACK_CLIENT)
    log = compat.new_log("%s-%s" % (label, td_mode or mode))
    with s.mode(label, mode, "server", port, log, min_conns=2) as run:
        prefix = compat.td_argv(td_mode or mode, "server", log, [])
        srv = tdlib.spawn([PYTHON, script, str(port), how] + prefix, env=compat.plain_env(),
                          name="%s-%s" % (label, mode))
        try:
            compat.wait_listening(port, srv)
            _ds_exercise(port, mode)
            run.settle()
            ends = [e for e in tdlib.read_log(log)
                    if e["event"] in ("close", "exit") and e.get("role") == "server"]
            assert [e.get("why") == "shared" for e in ends] == want_shared * 2, ends
            compat.stop(srv)
        finally:
            srv.kill()
    return log


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_inetd_style_child_alone():
    """The same server with only its children under each server mode (as
    a service socket-activated by systemd: the process that accepts is not
    the program).  A child that gets its connection on 0 and 1, or on fd 3
    named by LISTEN_FDS for its pid, is decided a server (something
    listens on its local port) under its rule, which applies; its last
    close reports the end (on 0 and 1, the close of fd 0 while fd 1 still
    holds the socket says shared).  Checked against the wire and ss."""
    with compat.Session() as s:
        for mode, port in zip(compat.SERVER_MODES, (7024, 7025, 7026, 7027)):
            _inetd_child_alone(s, "inetd-stdio", "stdio", mode, port, [True, False])
        for mode, port in (("observe", 7028), ("abort", 7029)):
            _inetd_child_alone(s, "inetd-listen-fds", "listen", mode, port, [False])
    s.verify()


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_leaked_inherited_socket_is_observed_never_acted_on():
    """A child that gets a connection on fd 3 with nothing saying it is its
    own (a parent's fd that leaked looks the same) is only observed, under
    any rule that logs: its close is logged (the end, matching the wire),
    with action pass; under abort nothing of abort is put into it (no
    zero linger: the wire has no RST, the client sees what it sees without
    the library).

    Catches: acting on an inherited socket another process may still use
    (a first version drained a parent's connection away under its child's
    rule: test_host_concurrency's spawned child), and a leaked socket
    whose end no process logged: ncat --exec leaks each connection into
    the program it runs, whose exit is the end, and under any rule but a
    logging pass the end went unlogged."""
    with compat.Session() as s:
        _inetd_child_alone(s, "inetd-leaked", "leaked", "observe", 7030, [False])
        log = _inetd_child_alone(s, "inetd-leaked", "leaked", "observe", 7031, [False],
                                 td_mode="abort")
    s.verify()
    ends = [e for e in tdlib.read_log(log) if e["event"] in ("close", "exit")]
    assert ends and all(e["action"] == "pass" and e["wire"] != "RST" for e in ends), ends

ECHO_REPORTER = r"""
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
while True:
    c, addr = ls.accept()
    end = "EOF"
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
    except ConnectionResetError:
        end = "ECONNRESET"
    print(addr[1], end, flush=True)
    c.close()
"""

HALF_CLOSER = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(3)
s.sendall(b"hello\n")
s.shutdown(socket.SHUT_WR)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
s.close()
"""


@tdlib.requires(*NEEDS, "socat")
@tdlib.timeout(60)
def test_regression_rst_fault_after_half_close():
    """--rst 1 on programs that half-close first (socat and ncat at the end
    of their input, a python client's shutdown(SHUT_WR)): the fault must
    still put an RST on the wire -- the peer sees ECONNRESET, not EOF --
    and `teardown report` must count it: "faults rst N" matches "RST N"."""
    compat.need("ncat")
    echo = compat.write("echo_reporter.py", ECHO_REPORTER)
    half = compat.write("half_closer.py", HALF_CLOSER)
    srv = tdlib.spawn([PYTHON, echo, "7200"], name="echo-reporter")
    compat.wait_listening(7200, srv)
    log = compat.new_log("rst-half-close")
    clients = (("socat", ["socat", "-", "TCP:127.0.0.1:7200"]),
               ("ncat", ["ncat", "--idle-timeout", "3", "127.0.0.1", "7200"]),
               ("python3", [PYTHON, half, "7200"]))
    with tdlib.Capture(snaplen=128) as cap:
        for name, argv in clients:
            _run_stdin(compat.td_argv("rst", "client", log, argv), b"hello\n", name, timeout=15)
        tdlib.wait_until(lambda: len(srv.lines()) >= len(clients), timeout=10,
                         what="the echo server to see every connection end")
    ends = dict(line.split() for line in srv.lines())
    problems = []
    for conn in compat.connections(cap.packets(), 7200):
        kind, _ = conn.first_end(conn.cport)
        if kind != "RST":
            problems.append("client port %d ended with %s, want an RST" % (conn.cport, kind))
        if ends.get(str(conn.cport)) != "ECONNRESET":
            problems.append("the server saw %s from port %d, want ECONNRESET" % (
                ends.get(str(conn.cport)), conn.cport))
    rsts = sum(1 for conn in compat.connections(cap.packets(), 7200)
               if conn.rst_from(conn.cport))
    rep = tdlib.run([compat.teardown_cmd(), "report", "--format", "json", log], name="report")
    total = json.loads(rep.stdout())["_total"]
    logged = total["RST"] + total["exit_detail"]["RST"]
    if not total["faults"]["rst"] == logged == rsts == len(clients):
        problems.append("faults rst %d, RST %d in the report, %d RSTs on the wire, %d clients"
                        % (total["faults"]["rst"], logged, rsts, len(clients)))
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_regression_lost_counts_only_unsent_bytes():
    """``lost`` is what an RST throws away that had not left the host when
    the close read it.  Under --close abort Python's http.server cuts a
    200 KB reply to a slow curl; what curl is missing must be covered by
    ``lost`` + ``lost_in_flight`` (the RST cannot discard more than was
    queued), and ``lost`` must not exceed what curl is missing.

    One race is the kernel's, and the log table says so: the peer's
    window can open in the instant between the close's reading of the
    queue and the real close (curl reads the first burst of the reply
    just as the server closes), and what leaves then was counted as
    lost.  Seen in about one close in a hundred here (curl got 64 KiB or
    95 KiB more than the queue said had left; reading the queue again
    right before the close did not make it rarer): a fetch where ``lost``
    exceeds what is missing is noted, and at least one cut fetch must
    show the exact claim."""
    big = b"".join(b"%07d\n" % i for i in range(25600))      # 204800 bytes
    root = _docroot(files={"big.bin": big})
    log = compat.new_log("httpd-abort")
    srv = tdlib.spawn(compat.td_argv("abort", "server", log, [
        PYTHON, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root, "8000"]),
        env=compat.plain_env(), name="httpd-abort")
    compat.wait_listening(8000, srv)
    problems, cut, exact = [], 0, 0
    for i in range(4):
        fetch = tdlib.run(["curl", "-s", "--max-time", "10", "--limit-rate", "100k", "-o",
                           os.path.join(tdlib.tmpdir(), "big-%d.bin" % i), "-w",
                           "%{local_port} %{size_header} %{size_download}",
                           "http://127.0.0.1:8000/big.bin"], name="curl-%d" % i, timeout=20)
        port, header, got = (int(x) for x in fetch.stdout().split())
        assert header > 0, "fetch %d: no header: %s" % (i, fetch.stdout())
        missing = len(big) - got
        cut += missing > 0
        events = tdlib.wait_until(lambda: [e for e in tdlib.read_log(log) if e["event"] == "close"
                                           and tdlib.port_of(e["remote"]) == port],
                                  what="the close event of port %d" % port)
        ev = events[0]
        tdlib.note("fetch %d: curl missing %d; lost %s, lost_in_flight %s, unsent %s" % (
            i, missing, ev["lost"], ev.get("lost_in_flight"), ev["unsent"]))
        inflight = ev.get("lost_in_flight")
        if missing > 0 and ev["wire"] != "RST":
            problems.append("fetch %d: wire=%s, want RST (curl is missing %d bytes)"
                            % (i, ev["wire"], missing))
        if not isinstance(inflight, int) or inflight < 0:
            problems.append("fetch %d: lost_in_flight=%r, want a count of bytes" % (i, inflight))
        elif ev["lost"] + inflight < missing:
            problems.append("fetch %d: lost %d + lost_in_flight %d < %d bytes curl is missing"
                            % (i, ev["lost"], inflight, missing))
        if ev["lost"] > missing:
            tdlib.note("fetch %d: lost %d > missing %d: the peer's window opened at the close"
                       % (i, ev["lost"], missing))
        elif missing > 0:
            exact += 1
    assert cut, "no reply was cut: the test proves nothing"
    assert not problems, "\n".join(problems)
    assert exact, "no cut fetch where lost <= what curl is missing"
    compat.stop(srv, signal.SIGINT, 0)
