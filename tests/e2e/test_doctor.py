"""`teardown doctor` on programs whose own symbols meet the library's.

The loader binds every reference of the preloaded library to the first
definition in the global scope: the program, then the libraries it loads,
before libc.  A program that defines and exports a libc function the
library calls therefore gives the library its own function; a replacement
malloc (jemalloc in redis-server) takes the library's allocations.  The
doctor reads this from the files (dynamic symbols, DT_NEEDED, the loader's
search path) and must agree with what happens when the program runs:

- redis-server: jemalloc is named, and is a complete allocator (no
  warning); the server then runs and answers under the library;
- lighttpd: exports config_init/config_read (libconfig's names), which the
  library no longer uses: no warning; it serves a page under the library;
- tests/progs/exports_config: the same names, flagged exactly when the
  library's own references include them;
- tests/progs/exports_libc: exports strlen and clock_gettime: flagged, and
  under the library the library's calls do land in the program's
  functions (counted by the program).

What the library references is read with readelf here, independently of
the doctor's own ELF reader.  A library built before the issue 8 fix still
reads its policy through a dlopen()ed libconfig and initialises inside
its hooks; redis-server then hangs and lighttpd crashes under it, which no
reading of the library's imports can show: the runs that need the fixed
library skip, saying so.
"""

import json
import os
import socket
import subprocess

import tdlib

BODY = b"teardown doctor\n"


def _doctor(*args, name="doctor"):
    return tdlib.run([tdlib.teardown_cmd(), "doctor"] + [str(a) for a in args],
                     env=tdlib.shim_env(preload=False), name=name, timeout=30)


def _programs(proc):
    """The per-program JSON lines of ``doctor --json``, by argument."""
    lines = [json.loads(line) for line in proc.stdout().splitlines()]
    return {d["binary"]: d for d in lines if "binary" in d}


def _dynsyms(path):
    """(defined, undefined) dynamic symbols of path per readelf: sets of
    (name, version, bind); version is "" when there is none."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", path], capture_output=True,
                         text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].endswith(":") or not f[0][:-1].isdigit():
            continue
        name, _, version = f[7].partition("@")
        entry = (name, version.lstrip("@").split(" ")[0], f[4])
        if f[6] == "UND":
            undefined.add(entry)
        elif f[4] in ("GLOBAL", "WEAK", "UNIQUE") and f[3] not in ("SECTION", "FILE"):
            defined.add(entry)
    return defined, undefined


def _imports():
    """The libc names the library under test calls: its undefined dynamic
    symbols, less the weak unversioned hooks (__gmon_start__, _ITM_*)."""
    _, undefined = _dynsyms(tdlib.lib_path())
    return {name for name, version, bind in undefined if bind != "WEAK" or version}


def _exports(path):
    defined, _ = _dynsyms(path)
    return {name for name, _, _ in defined}


def _copies(path):
    """The program's copies of libc variables (copy relocations: OBJECT
    symbols it defines under a GLIBC version, environ, in6addr_loopback):
    the library's references to them reach the same object, never flagged."""
    out = subprocess.run(["readelf", "--dyn-syms", "--wide", path], capture_output=True,
                         text=True, check=True).stdout
    return {f[7].partition("@")[0] for f in (l.split() for l in out.splitlines())
            if len(f) >= 8 and f[3] == "OBJECT" and f[6] != "UND"
            and "@GLIBC_" in f[7]}


def _library_predates_fix():
    """Does the library under test still dlopen() libconfig (before the
    issue 8 fix, which also moved initialisation out of the hooks)?"""
    with open(tdlib.lib_path(), "rb") as f:
        return b"libconfig.so" in f.read()


PREFIX_REASON = ("the library still dlopen()s libconfig and initialises in its hooks "
                 "(built before the issue 8 fix)")


def _observe_env(name):
    """The library preloaded with a policy that logs every connection."""
    log = os.path.join(tdlib.tmpdir(), name + ".log")
    policy = tdlib.policy_text([{"name": "observe"}], log)
    return tdlib.shim_env(policy=policy), log


def _exchange(port, request, want, timeout=10.0):
    """Connect to 127.0.0.1:port once it listens, send request, read until
    want is in the reply (or EOF); returns the reply."""
    def attempt():
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            return None
    sock = tdlib.wait_until(attempt, timeout=timeout, what="127.0.0.1:%d listening" % port)
    with sock:
        sock.settimeout(timeout)
        sock.sendall(request)
        reply = b""
        while want not in reply:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    return reply


def _accepted_on(log, port):
    """The library's accept events for connections to port (the program
    name is not used: redis-server rewrites its argv for its title)."""
    return [e for e in tdlib.read_log(log)
            if e["event"] == "accept" and e["local"].endswith(":%d" % port)]


# ---------------------------------------------------------------------------
# redis-server: jemalloc
# ---------------------------------------------------------------------------

@tdlib.requires("teardown", "lib", "redis-server")
@tdlib.timeout(30)
def test_doctor_names_jemalloc_in_redis():
    """redis-server loads libjemalloc, which replaces malloc, free, calloc
    and realloc for the whole process, the library included.  The doctor
    names it, says it is a complete allocator (the four come from it), and
    does not warn: ok, exit status 0.  The names it reports as taken are
    exactly the library's references that libjemalloc exports."""
    run = _doctor("--json", "redis-server")
    assert run.rc == 0, (run.stdout(), run.stderr())
    got = _programs(run)["redis-server"]
    assert got["ok"] and got["reachable"] and got["warnings"] == [], got
    alloc = got["allocator"]
    assert alloc is not None and alloc["name"] == "jemalloc" and alloc["complete"], got
    assert os.path.basename(alloc["defined_in"]).startswith("libjemalloc.so"), alloc
    want = _imports() & _exports(alloc["defined_in"])
    assert {"malloc", "free"} <= want, want
    taken = {h["symbol"] for h in got["interposed"]}
    assert taken == want, (taken, want)
    assert all(h["allocator"] and h["defined_in"] == alloc["defined_in"]
               for h in got["interposed"]), got["interposed"]
    assert got["library"] == os.path.realpath(tdlib.lib_path()), got
    assert got["library_imports"] == len(_imports()), (got["library_imports"], len(_imports()))

    text = _doctor("redis-server", name="doctor-text")
    lines = text.stdout().splitlines()
    assert lines[0].startswith("redis-server: dynamically linked"), lines
    assert lines[1].startswith("  note: jemalloc (") and "complete allocator" in lines[1], lines


@tdlib.requires("root", "netns", "lib", "redis-server")
@tdlib.timeout(40)
def test_redis_runs_under_the_library_as_the_doctor_says():
    """What the doctor's "ok" promises: redis-server (jemalloc) starts
    under the library, answers PING over TCP, and the library sees that
    connection (its accept event); SHUTDOWN ends it with status 0."""
    assert _programs(_doctor("--json", "redis-server"))["redis-server"]["ok"]
    if _library_predates_fix():
        tdlib.skip(PREFIX_REASON + ": redis-server hangs at start under it")
    env, log = _observe_env("redis")
    # under ASan libasan's malloc would replace jemalloc: not the process
    # the doctor judged, so a sanitizer run gives redis the plain library
    env = tdlib.plain_library_env(env)
    redis = tdlib.spawn(["redis-server", "--port", "6379", "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--dir", tdlib.tmpdir()], env=env, name="redis")
    reply = _exchange(6379, b"PING\r\n", b"+PONG\r\n")
    assert reply == b"+PONG\r\n", (reply, redis.stderr())
    _exchange(6379, b"SHUTDOWN NOSAVE\r\n", b"\n")
    assert redis.wait(10) == 0, redis.stderr()
    assert _accepted_on(log, 6379), tdlib.read_log(log)


# ---------------------------------------------------------------------------
# lighttpd and exports_config: libconfig's names
# ---------------------------------------------------------------------------

@tdlib.requires("teardown", "lib", "lighttpd")
@tdlib.timeout(30)
def test_doctor_on_lighttpd_checks_the_library_imports():
    """lighttpd exports config_init and config_read.  They are flagged
    exactly when the library's own references include them (before the
    fix the library reached them through a dlopen()ed libconfig, which is
    not a reference of its own; since, it calls none).  Its copies of
    libc's variables (copy relocations: in6addr_loopback, environ, which
    the library also references) are never flagged."""
    prog = "/usr/sbin/lighttpd" if os.path.exists("/usr/sbin/lighttpd") else "lighttpd"
    run = _doctor("--json", prog)
    got = _programs(run)[prog]
    exports = _exports(got["path"])
    assert {"config_init", "config_read"} <= exports, sorted(exports)[:20]
    taken = {h["symbol"] for h in got["interposed"]}
    copies = _copies(got["path"])
    assert "in6addr_loopback" in copies, copies
    assert taken == exports & _imports() - copies, taken
    assert "in6addr_loopback" not in taken
    if not taken:
        assert run.rc == 0 and got["ok"] and got["warnings"] == [], got
        assert got["allocator"] is None and got["shadowed"] == [], got


@tdlib.requires("root", "netns", "lib", "lighttpd")
@tdlib.timeout(40)
def test_lighttpd_runs_under_the_library_as_the_doctor_says():
    """lighttpd, judged safe, starts under the library and serves a page;
    the library logs the connection."""
    prog = "/usr/sbin/lighttpd" if os.path.exists("/usr/sbin/lighttpd") else "lighttpd"
    got = _programs(_doctor("--json", prog))[prog]
    assert got["ok"], got
    if _library_predates_fix():
        tdlib.skip(PREFIX_REASON + ": lighttpd crashes at start under it")
    www = os.path.join(tdlib.tmpdir(), "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "wb") as f:
        f.write(BODY)
    conf = os.path.join(tdlib.tmpdir(), "lighttpd.conf")
    with open(conf, "w") as f:
        f.write('server.document-root = "%s"\nserver.port = 8080\nserver.bind = "127.0.0.1"\n'
                'server.errorlog = "/dev/stderr"\n' % www)
    env, log = _observe_env("lighttpd")
    server = tdlib.spawn([got["path"], "-D", "-f", conf], env=env, name="lighttpd")
    reply = _exchange(8080, b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n", BODY)
    assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(BODY), (reply, server.stderr())
    assert server.running(), server.stderr()
    tdlib.wait_until(lambda: _accepted_on(log, 8080), what="lighttpd's accept event")
    server.kill()


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_doctor_on_libconfig_names_follows_the_library():
    """tests/progs/exports_config exports libconfig's names (-rdynamic).
    The doctor flags exactly those the library references; with the
    library that parses its policy itself, none: ok, and under the
    library with a policy none of them is ever called."""
    prog = tdlib.test_prog("exports_config")
    assert os.path.exists(prog), "%s is missing: run make testprogs" % prog
    run = _doctor("--json", prog)
    got = _programs(run)[prog]
    exports = {n for n in _exports(prog) if n.startswith("config_")}
    assert "config_init" in exports, exports
    flagged = exports & _imports()
    assert {h["symbol"] for h in got["interposed"]} == flagged, got
    assert got["ok"] == (not flagged) and run.rc == (1 if flagged else 0), got
    if flagged:
        assert all(h["defined_in"] == prog for h in got["interposed"]), got
        return
    if _library_predates_fix():
        tdlib.skip(PREFIX_REASON + ": libconfig calls the program's config_* (no import shows it)")
    env, _ = _observe_env("config")
    ran = tdlib.run([prog], env=env, name="exports_config")
    assert ran.rc == 0, ran.stderr()
    assert json.loads(ran.stdout())["config_calls"] == 0, ran.stdout()


# ---------------------------------------------------------------------------
# exports_libc: libc names the library calls
# ---------------------------------------------------------------------------

@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_doctor_flags_a_program_exporting_libc_names():
    """tests/progs/exports_libc exports its own strlen and clock_gettime.
    Both are libc functions the library calls: the doctor names each with
    the program as where it is defined, warns, and says no (ok false, exit
    status 1); `teardown -- PROG` warns on stderr before it runs it.  And
    that is what happens: run under the library, the program's clock_gettime
    is called (by the library, stamping its events), while without the
    library it is never called."""
    prog = tdlib.test_prog("exports_libc")
    assert os.path.exists(prog), "%s is missing: run make testprogs" % prog
    flagged = {"strlen", "clock_gettime"} & _imports()
    assert {"strlen", "clock_gettime"} <= _exports(prog)
    assert "clock_gettime" in flagged, "the library no longer calls clock_gettime: pick another name"
    run = _doctor("--json", prog)
    got = _programs(run)[prog]
    assert run.rc == 1 and not got["ok"] and got["reachable"], got
    assert {h["symbol"] for h in got["interposed"]} == flagged, got
    assert all(h["defined_in"] == prog and not h["allocator"] for h in got["interposed"]), got
    assert len(got["warnings"]) == 1, got["warnings"]
    for name in flagged:
        assert name in got["warnings"][0] and name in got["reason"], got
    assert got["allocator"] is None, got

    text = _doctor(prog, name="doctor-text").stdout().splitlines()
    assert text[0].startswith(prog + ": dynamically linked") and "see the warning" in text[0], text
    assert text[1].startswith("  warning: this program (%s) defines " % prog), text

    plain = tdlib.run([prog], env=tdlib.shim_env(preload=False), name="plain")
    assert json.loads(plain.stdout()) == {"strlen": 0, "clock_gettime": 0}, plain.stdout()
    env, _ = _observe_env("exports_libc")
    under = tdlib.run([prog], env=env, name="preloaded")
    assert under.rc == 0, under.stderr()
    assert json.loads(under.stdout())["clock_gettime"] > 0, under.stdout()

    wrapped = tdlib.run([tdlib.teardown_cmd(), "--", prog], env=tdlib.shim_env(preload=False),
                        name="teardown-run")
    assert wrapped.rc == 0, wrapped.stderr()
    warning = wrapped.stderr().splitlines()[0]
    assert warning.startswith("teardown: warning: %s: " % prog) and "clock_gettime" in warning, \
        wrapped.stderr()


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_doctor_system_lists_what_the_library_calls():
    """`doctor --system` is consistent with the program checks: its
    library line carries the names the library calls (as readelf sees
    them), and says how many in text."""
    run = _doctor("--json", "--system", name="doctor-system")
    lines = [json.loads(line) for line in run.stdout().splitlines()]
    lib = [d for d in lines if d.get("check") == "libteardown.so"]
    assert len(lib) == 1, run.stdout()
    assert set(lib[0]["imports"]) == _imports(), set(lib[0]["imports"]) ^ _imports()
    text = _doctor("--system", name="doctor-system-text").stdout()
    assert "it calls %d functions of libc" % len(_imports()) in text, text
