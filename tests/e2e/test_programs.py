"""Real programs under the library: curl as a client, Python's http.server
and nginx as servers, each under close = "graceful" and close = "abort".

These programs were written with no thought of the library, which is the
point: the library must change how their connections end, and only that.
Every request must still get its whole response, the servers must keep
serving, and the library's audit log must agree with what tcpdump sees
each program send (FIN or RST) and with who holds TIME_WAIT in ss.

Python runs as /usr/bin/python3 (the pyenv python3 on PATH is a shell
script, which would get the library preloaded too).  Ports are fixed:
each test has its own network namespace.
"""

import os

import compat
import nginxconf
import tdlib

NEEDS = ("root", "netns", "tcpdump", "lib", "curl")
PYTHON = "/usr/bin/python3"
BODY = b"teardown " * 600   # 5400 bytes: one response, a few segments


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _policy_env(role, action, name, **extra):
    """The environment for a program under one rule; returns (env, log)."""
    log = os.path.join(tdlib.tmpdir(), "%s.jsonl" % name)
    open(log, "w").close()
    rule = {"name": "%s-%s" % (role, action), "match": {"role": role}, "close": action}
    rule.update(extra)
    return tdlib.shim_env(policy=tdlib.policy_text([rule], log)), log


def _curl_env(env):
    """curl's environment under the library: Debian's curl deadlocks in
    setlocale() at start-up when gcc's libasan is preloaded into it, so in
    a sanitizer run it gets the plain build's library
    (tdlib.plain_library_env)."""
    return tdlib.plain_library_env(env)


def _docroot(name):
    """A directory holding hello.txt with BODY; returns its path."""
    path = os.path.join(tdlib.tmpdir(), name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "hello.txt"), "wb") as f:
        f.write(BODY)
    return path


def _serve_two_fetches(port, server, log, action, what):
    """Once ``server`` (spawned under the policy logging to ``log``)
    listens on ``port``: two curl fetches, each checked, the server still
    running, and its two close events written.  Returns the Fetches."""
    compat.wait_listening(port, server)
    fetches = [Fetch(port, name="curl-%s-%d" % (action, i)) for i in (1, 2)]
    for fetch in fetches:
        fetch.check()
    assert server.running(), "%s died: %s" % (what, server.stderr())
    tdlib.wait_until(lambda: len([e for e in tdlib.read_log(log)
                                  if e["event"] == "close" and e["role"] == "server"])
                     >= 2, timeout=5, what="%s's close events" % what)
    return fetches


class Fetch:
    """One curl request: its Proc, its local port and whether it got BODY."""

    def __init__(self, port, env=None, name="curl"):
        out = os.path.join(tdlib.tmpdir(), "%s.body" % name)
        self.proc = tdlib.run(["curl", "-sS", "--max-time", "10", "-o", out,
                               "-w", "%{local_port}", "http://127.0.0.1:%d/hello.txt" % port],
                              env=env, name=name, timeout=15)
        self.rc = self.proc.rc
        text = self.proc.stdout().strip()
        self.local_port = int(text) if text.isdigit() else 0
        with open(out, "rb") as f:
            self.ok = self.rc == 0 and f.read() == BODY

    def check(self):
        assert self.ok and self.local_port, "curl failed (rc %s): %s" % (
            self.rc, self.proc.stderr().strip())


def _agreement_problems(label, cap, from_port, to_port, close_ev, shut_ev=None):
    """Where the log and the wire disagree about how ``from_port`` ended
    its connection to ``to_port``.  close_ev is that side's close event;
    shut_ev its shutdown event if the program called shutdown()."""
    problems = []
    seen = cap.teardown_flags(from_port, to_port)
    rst = cap.rst_from(from_port, to_port)
    if close_ev is None:
        return ["%s: no close event" % label]
    if close_ev["wire"] in ("FIN", "RST"):
        if seen != close_ev["wire"] and not (close_ev["wire"] == "RST" and rst):
            problems.append("%s: the log says %s, the wire shows %s"
                            % (label, close_ev["wire"], seen))
    elif close_ev["wire"] == "none":
        # Nothing at close: the FIN (if any) went out at shutdown, and no RST.
        if rst:
            problems.append("%s: the log says wire=none but an RST was sent" % label)
        if seen == "FIN" and not (shut_ev and shut_ev["sent"] in ("SHUT_WR", "SHUT_RDWR")):
            problems.append("%s: a FIN went out that no event accounts for" % label)
    else:
        problems.append("%s: the log says wire=%r" % (label, close_ev["wire"]))
    tw = [r for r in tdlib.time_wait_on(from_port) if r.peer_port == to_port]
    if close_ev["time_wait"] != bool(tw):
        # After a shutdown() that raced the peer's FIN this is the known
        # bug that test_actions.test_shutdown_racing_peer_fin_is_logged_passive
        # reproduces every time.
        problems.append("%s: the log says time_wait=%s (closer=%s), ss shows %r"
                        % (label, close_ev["time_wait"], close_ev["closer"], tw))
    return problems


def _server_events(log, client_port):
    """(close event, shutdown event or None) of the server side of one connection."""
    events = [e for e in tdlib.read_log(log) if tdlib.port_of(e["remote"]) == client_port]
    close = [e for e in events if e["event"] == "close"]
    shut = [e for e in events if e["event"] == "shutdown"]
    assert len(close) == 1, "want one close event for port %d: %r" % (client_port, events)
    return close[0], (shut[0] if shut else None)


# ---------------------------------------------------------------------------
# curl as the client
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_curl_client_graceful_and_abort():
    """curl under a client rule, against Python's http.server (not under
    the library).

    curl closes its connection as soon as it has the whole response.
    Under graceful it closes with a FIN (TIME_WAIT where the log says);
    under abort with an RST, and nobody holds TIME_WAIT.  Either way curl
    exits 0 with the whole file, its close event's wire matches tcpdump,
    and the server goes on serving: a last request without the library
    succeeds and the server is still running.
    """
    root = _docroot("www")
    httpd = tdlib.spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1",
                         "--directory", root, "8000"], name="httpd")
    compat.wait_listening(8000, httpd)
    problems = []
    with tdlib.Capture() as cap:
        fetches = {}
        for action in ("graceful", "abort"):
            env, log = _policy_env("client", action, "curl-" + action)
            fetch = Fetch(8000, env=_curl_env(env), name="curl-" + action)
            fetch.check()
            fetches[action] = (fetch, log)
        last = Fetch(8000, name="curl-plain")
    last.check()
    assert httpd.running(), "the server died: %s" % httpd.stderr()
    for action, (fetch, log) in fetches.items():
        want = "FIN" if action == "graceful" else "RST"
        seen = cap.teardown_flags(fetch.local_port, 8000)
        if seen != want:
            problems.append("%s: curl ended with %s, want %s" % (action, seen, want))
        closes = [e for e in tdlib.read_log(log) if e["event"] == "close"
                  and tdlib.port_of(e["local"]) == fetch.local_port]
        if len(closes) != 1 or closes[0]["action"] != action or closes[0]["role"] != "client":
            problems.append("%s: want one close event for curl, got %r" % (action, closes))
            continue
        problems += _agreement_problems("curl " + action, cap, fetch.local_port, 8000,
                                        closes[0])
        if action == "abort":
            if closes[0]["why"] != "policy":
                problems.append("abort: why=%s, want policy" % closes[0]["why"])
            if any(8000 in (r.local_port, r.peer_port) and fetch.local_port in
                   (r.local_port, r.peer_port) for r in tdlib.time_wait_on()):
                problems.append("abort: a TIME_WAIT is left after the RST")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Python's http.server as the server
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_python_http_server_graceful_and_abort():
    """Python's http.server under a server rule, curl (not under the
    library) as its client, two requests per action.

    The server ends every connection with shutdown(SHUT_WR) and close().
    Under graceful the FIN comes from that shutdown and the close sends
    nothing more (wire=none why=fin-sent), with no RST.  Under abort the
    rule also says shutdown = "skip": the program's shutdown would
    otherwise race the client's FIN, and the close would find both FINs
    exchanged and nothing to reset; with skip every connection ends in
    one pure RST from the server, logged wire=RST why=policy.  In both
    cases curl gets the whole file each time, and the second request
    shows the server keeps serving after the first was torn down.
    """
    root = _docroot("www")
    problems = []
    for action, extra in (("graceful", {}), ("abort", {"shutdown": "skip"})):
        port = 8000 if action == "graceful" else 8001
        env, log = _policy_env("server", action, "httpd-" + action, **extra)
        with tdlib.Capture(name="tcpdump-" + action) as cap:
            httpd = tdlib.spawn([PYTHON, "-m", "http.server", "--bind", "127.0.0.1",
                                 "--directory", root, str(port)],
                                env=env, name="httpd-" + action)
            fetches = _serve_two_fetches(port, httpd, log, action, "the server")
        for fetch in fetches:
            label = "%s, port %d" % (action, fetch.local_port)
            close, shut = _server_events(log, fetch.local_port)
            seen = cap.teardown_flags(port, fetch.local_port)
            if action == "graceful":
                if seen != "FIN" or cap.rst_from(port, fetch.local_port):
                    problems.append("%s: the server ended with %s" % (label, seen))
                if (close["wire"], close["why"]) != ("none", "fin-sent"):
                    problems.append("%s: close event %r" % (label, close))
            else:
                if seen != "RST" or cap.fin_from(port, fetch.local_port):
                    problems.append("%s: the server ended with %s (and FIN %s)" % (
                        label, seen, cap.fin_from(port, fetch.local_port)))
                if (close["wire"], close["why"]) != ("RST", "policy"):
                    problems.append("%s: close event %r" % (label, close))
                if shut is None or shut["sent"] != "none":
                    problems.append("%s: shutdown event %r, want sent=none" % (label, shut))
            problems += _agreement_problems("httpd " + label, cap, port, fetch.local_port,
                                            close, shut)
        httpd.kill()
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# nginx as the server
# ---------------------------------------------------------------------------



@tdlib.requires(*(NEEDS + ("nginx",)))
@tdlib.timeout(40)
def test_nginx_graceful_and_abort():
    """nginx (one process: daemon off, master_process off, a private
    prefix) under a server rule, curl as its client, two requests per
    action.

    nginx, told not to keep connections alive, closes each one after its
    response.  Under graceful that close is a FIN, under abort an RST (no
    TIME_WAIT anywhere); nginx's close event says so, and says where
    TIME_WAIT is, in agreement with tcpdump and ss.  curl gets the whole
    file every time and nginx keeps serving.
    """
    problems = []
    for action, port in (("graceful", 8080), ("abort", 8081)):
        prefix = os.path.join(tdlib.tmpdir(), "nginx-" + action)
        # no keep-alive: nginx ends every connection itself
        argv = nginxconf.write(prefix, port, _docroot("www"), http=["keepalive_timeout 0;"])
        env, log = _policy_env("server", action, "nginx-" + action)
        with tdlib.Capture(name="tcpdump-" + action) as cap:
            nginx = tdlib.spawn(argv, env=env, name="nginx-" + action)
            fetches = _serve_two_fetches(port, nginx, log, action, "nginx")
        want = "FIN" if action == "graceful" else "RST"
        for fetch in fetches:
            label = "%s, port %d" % (action, fetch.local_port)
            close, shut = _server_events(log, fetch.local_port)
            seen = cap.teardown_flags(port, fetch.local_port)
            if seen != want:
                problems.append("%s: nginx ended with %s, want %s" % (label, seen, want))
            if close["wire"] != want or close["action"] != action:
                problems.append("%s: close event %r" % (label, close))
            if action == "abort" and close["why"] != "policy":
                problems.append("%s: why=%s, want policy" % (label, close["why"]))
            problems += _agreement_problems("nginx " + label, cap, port, fetch.local_port,
                                            close, shut)
        nginx.kill()
    assert not problems, "\n".join(problems)
