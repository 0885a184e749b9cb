"""More of Debian's servers under teardown: proxies, TLS, MQTT, mail, rsync, a pooler.

The same harness and checks as test_compat.py (compat.py says them): each
server under observe, graceful, drain and abort, a fresh process on its
own port for each mode, its clients and backends plain; every request
answered, the server's exit status on SIGTERM as without the library, and
every connection's end event agreeing with tcpdump and ss.  What these
add is the shapes of process and close that the first suite's programs
do not have:

  varnish    a root manager and a cache process as another user (vcache),
             which accepts on many threads; a backend fetch per request
  squid      a proxy whose kid runs as the proxy user, with a helper process
  tinyproxy  a proxy that shuts down its sending side before it closes
  stunnel4   TLS in front of a backend (its close_notify after the peer's
             FIN is answered by an RST: a reset end, not a FIN)
  mosquitto  MQTT: the broker ends the connection at the client's DISCONNECT
  WEBrick    Ruby's HTTP server, a thread per connection
  rsync      a daemon forking a child per connection, which ends it
  exim4      an SMTP daemon forking a child per connection that runs as
             Debian-exim with the connection on descriptors 0 and 1; under
             abort its 221 reply is still corked at the child's exit, and
             the end event says so (lost)

  pgbouncer  a connection pooler (libevent, as the user postgres) in front
             of postgres

and varnish, squid and pgbouncer as clients too: their connections to the
backend (pooled, closed by another thread or at a later query) under
every client mode, --rst 1 and --connect-refuse 1 included.

Ports are fixed: each test has its own network namespace.  The pieces
shared with test_compat.py (a server under each mode, curl fetches, the
docroot, a plain nginx, a postgres cluster, psql) are that module's,
imported as tc: one copy of each.
"""

import os
import signal
import socket
import struct

import compat
import tdlib
import test_compat as tc

NEEDS = tc.NEEDS
BACKEND = 8080


def _proxy_fetches(port, mode=None):
    """Two curl fetches of the plain backend's file through the proxy on
    ``port``: one kept alive (curl ends it), one with "Connection: close"
    (the proxy ends it)."""
    url = "http://127.0.0.1:%d/hello.txt" % BACKEND
    proxy = "http://127.0.0.1:%d" % port
    for name, extra in (("keepalive", ()), ("close", ("-H", "Connection: close"))):
        proc = tdlib.run(tc._curl(url, "-x", proxy, *extra), name="curl-%d-%s" % (port, name),
                         timeout=20)
        assert proc.rc == 0, "curl via proxy (%s) exited %s: %s" % (name, proc.rc,
                                                                  proc.stderr().strip())
        with open(proc.out_path, "rb") as f:
            got = f.read()
        assert got == tc.BODY, "curl via proxy (%s) got %d bytes, not the file" % (name, len(got))


# ---------------------------------------------------------------------------
# varnish
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(90)
def test_varnish_server():
    """varnishd in the foreground (its manager as root, its cache process
    as vcache) in front of a plain nginx; curl fetches of a new object each
    time, kept alive and with "Connection: close"."""
    compat.need("varnishd")
    tc._plain_nginx(BACKEND)

    def argv(port, mode):
        work = compat.user_dir("varnish-%d" % port, "root")
        os.chmod(work, 0o755)
        return ["varnishd", "-F", "-a", "127.0.0.1:%d" % port, "-b", "127.0.0.1:%d" % BACKEND,
                "-n", work, "-s", "malloc,16m"]

    tc._serve_modes("varnish", argv, (8100, 8101, 8102, 8103), log_owner="vcache")


# ---------------------------------------------------------------------------
# squid and tinyproxy
# ---------------------------------------------------------------------------

SQUID_CONF = """
http_port 127.0.0.1:%(port)d
http_access allow all
cache deny all
pinger_enable off
shutdown_lifetime 0 seconds
pid_filename %(dir)s/squid.pid
access_log none
cache_log %(dir)s/cache.log
cache_effective_user proxy
coredump_dir %(dir)s
"""


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(90)
def test_squid_server():
    """squid -N (its worker as the proxy user) in front of a plain nginx,
    caching nothing; curl fetches through it."""
    compat.need("squid")
    tc._plain_nginx(BACKEND)

    def argv(port, mode):
        d = compat.user_dir("squid-%d" % port, "proxy")
        conf = compat.write("squid-%d.conf" % port, SQUID_CONF % {"port": port, "dir": d})
        tdlib.diagnose_file(os.path.join(d, "cache.log"))
        return ["squid", "-N", "-f", conf]

    tc._serve_modes("squid", argv, (8110, 8111, 8112, 8113), exercise=_proxy_fetches,
                    log_owner="proxy")


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_tinyproxy_server():
    """tinyproxy in the foreground in front of a plain nginx; curl fetches
    through it.  It shuts down its sending side before each close."""
    compat.need("tinyproxy")
    tc._plain_nginx(BACKEND)

    def argv(port, mode):
        conf = compat.write("tinyproxy-%d.conf" % port,
                            "Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 10\n"
                            "MaxClients 16\nLogLevel Warning\n" % port)
        return ["tinyproxy", "-d", "-c", conf]

    tc._serve_modes("tinyproxy", argv, (8120, 8121, 8122, 8123), exercise=_proxy_fetches)


# ---------------------------------------------------------------------------
# stunnel4
# ---------------------------------------------------------------------------

def _self_signed():
    """A key and self-signed certificate in one PEM file (stunnel's cert=)."""
    pem = os.path.join(tdlib.tmpdir(), "stunnel.pem")
    if not os.path.exists(pem):
        key, crt = pem + ".key", pem + ".crt"
        proc = tdlib.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                          key, "-out", crt, "-days", "2", "-subj", "/CN=localhost"],
                         name="openssl-req", timeout=30)
        assert proc.rc == 0, proc.stderr()
        with open(pem, "wb") as out:
            for part in (key, crt):
                with open(part, "rb") as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
    return pem


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(60)
def test_stunnel_server():
    """stunnel4 in the foreground, TLS in front of a plain nginx; curl
    fetches over https (certificate not checked), kept alive and with
    "Connection: close"."""
    compat.need("stunnel4", "openssl")
    tc._plain_nginx(BACKEND)
    pem = _self_signed()

    def argv(port, mode):
        conf = compat.write("stunnel-%d.conf" % port,
                            "foreground = yes\npid =\n[https]\naccept = 127.0.0.1:%d\n"
                            "connect = 127.0.0.1:%d\ncert = %s\n" % (port, BACKEND, pem))
        return ["stunnel4", conf]

    def exercise(port, mode):
        url = "https://127.0.0.1:%d/hello.txt" % port
        for name, extra in (("keepalive", ()), ("close", ("-H", "Connection: close"))):
            proc = tdlib.run(tc._curl(url, "-k", *extra), name="curl-tls-%d-%s" % (port, name),
                             timeout=20)
            assert proc.rc == 0, "curl over TLS (%s) exited %s: %s" % (name, proc.rc,
                                                                       proc.stderr().strip())
            with open(proc.out_path, "rb") as f:
                assert f.read() == tc.BODY, "curl over TLS (%s): not the file" % name

    tc._serve_modes("stunnel", argv, (8130, 8131, 8132, 8133), exercise=exercise)


# ---------------------------------------------------------------------------
# mosquitto
# ---------------------------------------------------------------------------

def _mqtt(kind, body):
    """One MQTT packet: its type byte, remaining length (under 128), body."""
    assert len(body) < 128
    return bytes([kind, len(body)]) + body


def _mqtt_str(s):
    return struct.pack(">H", len(s)) + s


def _mqtt_exercise(port, mode):
    """Raw MQTT 3.1.1 over plain sockets: CONNECT, PUBLISH and DISCONNECT,
    after which the broker ends the connection; then a CONNECT whose
    client ends the connection itself once the broker accepted it."""
    connect = _mqtt(0x10, _mqtt_str(b"MQTT") + b"\x04\x02\x00\x3c" + _mqtt_str(b"td-%d" % port))
    for who in ("broker", "client"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(connect)
            ack = b""
            while len(ack) < 4:
                data = s.recv(4 - len(ack))
                assert data, "mosquitto closed before its CONNACK: %r" % ack
                ack += data
            assert ack == b"\x20\x02\x00\x00", "CONNACK %r" % ack
            if who == "broker":
                s.sendall(_mqtt(0x30, _mqtt_str(b"td/test") + b"hello") + b"\xe0\x00")
                assert compat.read_to_end(s, mode) == b"", "bytes after DISCONNECT"


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_mosquitto_server():
    """mosquitto (anonymous, one listener) under each server mode."""
    compat.need("mosquitto")

    def argv(port, mode):
        conf = compat.write("mosquitto-%d.conf" % port,
                            "listener %d 127.0.0.1\nallow_anonymous true\n" % port)
        return ["mosquitto", "-c", conf]

    tc._serve_modes("mosquitto", argv, (8140, 8141, 8142, 8143), exercise=_mqtt_exercise)


# ---------------------------------------------------------------------------
# Ruby's WEBrick
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS, "curl")
@tdlib.timeout(60)
def test_webrick_server():
    """ruby -run -e httpd (WEBrick, a thread per connection) serving the
    docroot; curl fetches, kept alive and with "Connection: close"."""
    compat.need("ruby")
    probe = tdlib.run(["ruby", "-e", "require 'webrick'"], name="ruby-webrick", timeout=30)
    if probe.rc != 0:
        tdlib.skip("needs ruby-webrick (not installed)")
    root = tc._docroot()
    tc._serve_modes("webrick", lambda port, mode: ["ruby", "-run", "-e", "httpd", root, "-p",
                                                   str(port), "-b", "127.0.0.1"],
                    (8150, 8151, 8152, 8153))


# ---------------------------------------------------------------------------
# rsync --daemon
# ---------------------------------------------------------------------------

def _rsync_exercise(port, mode):
    """A module listing and a fetch of hello.txt with the rsync client;
    the daemon's child ends each connection.  Under abort its RST may
    reach the client before the client has read the last of the protocol
    (rsync: "Connection reset by peer", exit 10 or 12): the client must
    still exit and say so; the wire and the log are checked as always."""
    dest = os.path.join(tdlib.tmpdir(), "rsync-%d.out" % port)
    for name, argv in (("list", ["rsync", "rsync://127.0.0.1:%d/" % port]),
                       ("fetch", ["rsync", "rsync://127.0.0.1:%d/www/hello.txt" % port, dest])):
        proc = tdlib.run(argv, name="rsync-%d-%s" % (port, name), timeout=20)
        if mode == "abort" and proc.rc != 0:
            assert proc.rc in (10, 12) and "reset by peer" in proc.stderr(), (
                "rsync (%s) exited %s under abort: %s" % (name, proc.rc, proc.stderr()))
            continue
        assert proc.rc == 0, "rsync (%s) exited %s: %s" % (name, proc.rc, proc.stderr())
        if name == "list":
            assert proc.stdout().split()[:1] == ["www"], proc.stdout()
        else:
            with open(dest, "rb") as f:
                assert f.read() == tc.BODY, "rsync fetched something else"
            os.unlink(dest)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_rsync_daemon():
    """rsync --daemon --no-detach (a child per connection) serving the
    docroot as module www."""
    compat.need("rsync")
    root = tc._docroot()

    def argv(port, mode):
        conf = compat.write("rsyncd-%d.conf" % port,
                            "use chroot = no\n[www]\npath = %s\nread only = yes\n" % root)
        return ["rsync", "--daemon", "--no-detach", "--port", str(port), "--address",
                "127.0.0.1", "--config", conf]

    tc._serve_modes("rsync", argv, (8160, 8161, 8162, 8163), exercise=_rsync_exercise)


# ---------------------------------------------------------------------------
# exim4
# ---------------------------------------------------------------------------

def _smtp_reply(s, buf):
    """Read one SMTP reply (its last line "NNN text"); returns (reply, rest)."""
    while True:
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                return b"\r\n".join(lines[:i + 1]), b"\r\n".join(lines[i + 1:])
        data = s.recv(4096)
        assert data, "exim closed mid-reply: %r" % buf
        buf += data


def _smtp_exercise(port, mode):
    """Plain sockets: greeting, EHLO and QUIT, after which exim's child
    ends the connection (under abort its 221 may never be sent: the child
    exits with it still corked, and the RST discards it); then a greeting
    the client answers by closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        hello, rest = _smtp_reply(s, b"")
        assert hello.startswith(b"220 "), hello
        s.sendall(b"EHLO teardown.test\r\n")
        ehlo, rest = _smtp_reply(s, rest)
        assert ehlo.startswith(b"250"), ehlo
        s.sendall(b"QUIT\r\n")
        tail = rest + compat.read_to_end(s, mode)
        if mode != "abort" or tail:
            assert tail.startswith(b"221 "), tail
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        hello, _ = _smtp_reply(s, b"")
        assert hello.startswith(b"220 "), hello


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_exim4_daemon():
    """exim4 -bdf on its own port (Debian's configuration; a child per
    connection, as Debian-exim, the connection on descriptors 0 and 1)."""
    compat.need("exim4")

    def argv(port, mode):
        return ["exim4", "-bdf", "-oX", str(port), "-oP",
                os.path.join(tdlib.tmpdir(), "exim-%d.pid" % port)]

    tc._serve_modes("exim4", argv, (8170, 8171, 8172, 8173), exercise=_smtp_exercise,
                    log_owner="Debian-exim")


# ---------------------------------------------------------------------------
# The proxies' own connections to their backend: client modes
# ---------------------------------------------------------------------------

def _proxy_client_modes(label, argv_of, front0, fetch_url, extra, log_owner):
    """A proxy under each client mode (tc._daemon_client_modes): its
    connections to a plain nginx on BACKEND.  Each mode fetches
    fetch_url(front, n) through it twice (curl with extra(front) too);
    under --connect-refuse 1 the proxy must answer 503, as it does when
    its backend is down, and under --rst 1 each fetch must either be
    answered (the proxy retried on a new connection) or fail as a backend
    failure does (5xx), never hang; the wire and the log are checked as
    always."""
    tc._plain_nginx(BACKEND)

    def exercise(front, mode):
        codes = []
        for n in range(2):
            got = tc._http_status(fetch_url(front, n), *extra(front))
            code = got.stdout()
            codes.append(code)
            if mode == "refuse":
                assert code == "503", "%s fetch %d: %r, want 503" % (mode, n, code)
            elif mode == "rst":
                assert code == "200" or code.startswith("5"), (
                    "%s fetch %d: %r (curl rc %s)" % (mode, n, code, got.rc))
            else:
                assert code == "200", "%s fetch %d: %r (curl rc %s): %s" % (
                    mode, n, code, got.rc, got.stderr())
        tdlib.note("%s under %s: the fetches answered %s" % (label, mode, " ".join(codes)))

    tc._daemon_client_modes(label, argv_of, front0, BACKEND, exercise, log_owner=log_owner)


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(120)
def test_varnish_client():
    """varnishd's backend fetches (on its worker threads, the connections
    pooled and closed by another thread) under each client mode, in front
    of a plain nginx; a new object each fetch, so each goes to the
    backend.  Refused: varnish answers 503, as with its backend down."""
    compat.need("varnishd")

    def argv(front):
        work = compat.user_dir("varnish-c-%d" % front, "root")
        os.chmod(work, 0o755)
        return ["varnishd", "-F", "-a", "127.0.0.1:%d" % front, "-b", "127.0.0.1:%d" % BACKEND,
                "-n", work, "-s", "malloc,16m"]
    _proxy_client_modes("varnish", argv, 8200,
                        lambda front, n: "http://127.0.0.1:%d/hello.txt?%d" % (front, n),
                        lambda front: (), "vcache")


@tdlib.requires(*NEEDS, "nginx", "curl")
@tdlib.timeout(120)
def test_squid_client():
    """squid's connections to a plain nginx under each client mode,
    fetched through it; refused: squid answers 503 (its error page)."""
    compat.need("squid")

    def argv(front):
        d = compat.user_dir("squid-c-%d" % front, "proxy")
        conf = compat.write("squid-c-%d.conf" % front, SQUID_CONF % {"port": front, "dir": d})
        tdlib.diagnose_file(os.path.join(d, "cache.log"))
        return ["squid", "-N", "-f", conf]
    _proxy_client_modes("squid", argv, 8210,
                        lambda front, n: "http://127.0.0.1:%d/hello.txt" % BACKEND,
                        lambda front: ("-x", "http://127.0.0.1:%d" % front), "proxy")


# ---------------------------------------------------------------------------
# pgbouncer
# ---------------------------------------------------------------------------

PGBOUNCER_INI = """
[databases]
* = host=127.0.0.1 port=%(pg)d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %(port)d
unix_socket_dir =
auth_type = trust
auth_file = %(dir)s/users.txt
pool_mode = %(pool)s
logfile = %(dir)s/pgbouncer.log
pidfile = %(dir)s/pgbouncer.pid
server_lifetime = 3600
server_login_retry = 1
query_wait_timeout = 2
"""


def _pgbouncer_argv(port, pg, pool="session"):
    d = compat.user_dir("pgbouncer-%d" % port, "postgres")
    compat.write("pgbouncer-%d/users.txt" % port, '"postgres" ""\n')
    ini = compat.write("pgbouncer-%d/pgbouncer.ini" % port,
                       PGBOUNCER_INI % {"port": port, "pg": pg, "dir": d, "pool": pool})
    tdlib.diagnose_file(os.path.join(d, "pgbouncer.log"))
    return ["pgbouncer", ini]


def _plain_postgres(port):
    top = tc._initdb()
    pg = tdlib.spawn(compat.as_user("postgres", tc._postgres_argv(top, port)),
                     env=compat.plain_env(), name="postgres-plain")
    compat.wait_listening(port, pg)
    return pg


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_pgbouncer_server():
    """pgbouncer (session pooling, as the user postgres, one event loop)
    in front of a plain postgres; plain psql runs two queries through it,
    a connection each.  Its connections to postgres stay pooled until it
    stops (SIGINT: exit 0)."""
    compat.need("pgbouncer", "psql", "setpriv", os.path.join(compat.PG_BIN, "postgres"))
    _plain_postgres(5432)
    tc._serve_modes("pgbouncer", lambda port, mode: _pgbouncer_argv(port, 5432),
                    (6432, 6433, 6434, 6435), exercise=tc._psql_exercise,
                    stop_sig=signal.SIGINT, log_owner="postgres",
                    wrap=lambda argv: compat.as_user("postgres", argv))


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_pgbouncer_client():
    """pgbouncer's own connections to a plain postgres under each client
    mode (transaction pooling: a server connection is taken for each
    query and given back).  Refused: psql gets what it gets from a plain
    pgbouncer whose postgres is down (its query waits query_wait_timeout,
    2 s, then fails: the same exit status); under --rst 1 each query
    either answers or fails that way, never hangs."""
    compat.need("pgbouncer", "psql", "setpriv", os.path.join(compat.PG_BIN, "postgres"))
    down = tdlib.spawn(compat.as_user("postgres", _pgbouncer_argv(6449, tc.CLOSED_PORT,
                                                                  pool="transaction")),
                       env=compat.plain_env(), name="pgbouncer-postgres-down")
    compat.wait_listening(6449, down)
    base = tdlib.run(tc._psql(6449, "select 1"), name="psql-postgres-down", timeout=20)
    assert base.rc not in (0, None), "psql through a pgbouncer with no postgres: rc %s" % base.rc
    compat.stop(down, signal.SIGINT, 0)
    _plain_postgres(5432)

    def exercise(front, mode):
        rcs = []
        for n, (sql, want) in enumerate((("select 6*7", "42"), ("select 'compat'", "compat"))):
            proc = tdlib.run(tc._psql(front, sql), name="psql-%s-%d" % (mode, n), timeout=20)
            rcs.append(proc.rc)
            if mode == "refuse" or (mode == "rst" and proc.rc != 0):
                assert proc.rc == base.rc, "psql under %s: rc %s (%s without a postgres):"\
                    " %s" % (mode, proc.rc, base.rc, proc.stderr())
            else:
                assert proc.rc == 0 and proc.stdout().strip() == want, (
                    "psql %r under %s: rc %s, %r %r" % (sql, mode, proc.rc, proc.stdout(),
                                                       proc.stderr()))
        tdlib.note("pgbouncer under %s: psql exited %s" % (mode, " ".join(map(str, rcs))))

    tc._daemon_client_modes("pgbouncer",
                            lambda front: _pgbouncer_argv(front, 5432, pool="transaction"),
                            6440, 5432, exercise, stop_sig=signal.SIGINT, log_owner="postgres",
                            wrap=lambda argv: compat.as_user("postgres", argv))
