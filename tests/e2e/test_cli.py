"""The teardown command, and how the library behaves with a broken, missing
or absent policy.

`teardown [options] -- CMD` builds a policy, checks it, puts the library
first in LD_PRELOAD and exec()s the command.  These tests run it against
real connections (tdpeer on loopback, in the test's own network namespace)
and check the wire (tcpdump), the peer's view and the log it writes, and
check its other promises: -n prints and runs nothing, an LD_PRELOAD
already set is kept, the library is the one next to the command (never
one in the current directory), `teardown check` reports file:line,
`teardown doctor` tells which programs the library can reach and checks
the library a run would preload.

The last tests preload the library directly: a policy error (with
on_error "pass" and "exit"), a machine without libconfig (simulated in a
private mount namespace) and no policy at all.
"""

import json
import os
import re
import shutil
import subprocess

import tdlib

NEEDS = ("root", "netns", "tcpdump", "tdpeer", "lib", "teardown")
LIBCONFIG = "/usr/lib/x86_64-linux-gnu/libconfig.so.9"
SYSTEM_POLICY = "/etc/teardown.conf"

# A text log line: "2024-01-02T03:04:05.123456Z PID/TID PROG EVENT k=v ...".
_TEXT_LINE = re.compile(r"^\S+Z (\d+)/(\d+) (\S+) (\w+)((?: \w+=\S*)*)$")


def _mark_lib():
    """The preloadable marker (tests/progs/libcore_mark.c, make testprogs)."""
    path = tdlib.test_prog("libcore_mark.so")
    assert os.path.exists(path), "%s is missing: run make testprogs" % path
    return path


def _text_events(stderr):
    """Parse the library's text log lines; return (events, other lines).

    Each event is a dict of its key=value fields plus "event", "pid" and
    "prog"; the other lines are whatever else was written to stderr.
    """
    events, other = [], []
    for line in stderr.splitlines():
        m = _TEXT_LINE.match(line)
        if not m:
            other.append(line)
            continue
        ev = dict(kv.split("=", 1) for kv in m.group(5).split())
        ev.update(pid=int(m.group(1)), prog=m.group(3), event=m.group(4))
        events.append(ev)
    return events, other


def _plain_env(**extra):
    """A clean environment: no library, no policy, plus ``extra``."""
    return tdlib.shim_env(preload=False, extra=extra)


def _write(name, text):
    path = os.path.join(tdlib.tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _teardown(*args, env=None, cwd=None, name="teardown", cmd=None):
    """Run ``teardown ARGS`` to completion; returns its Proc."""
    return tdlib.run([cmd or tdlib.teardown_cmd()] + [str(a) for a in args],
                     env=env or _plain_env(), cwd=cwd, name=name)


def _peer_result(proc):
    return tdlib.PeerRun(proc).result


# ---------------------------------------------------------------------------
# teardown -- CMD
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_observe_changes_nothing_and_logs_text():
    """`teardown -- CMD` with no options only observes.

    A client that resets (SO_LINGER {1,0}) still resets and a plain one
    still sends FIN, exactly as in test_baseline; the server under
    `teardown --` too is unchanged (it reads ECONNRESET, then EOF).  Every
    teardown is logged to stderr as text lines, and nothing else is
    written there: the clients' close events say wire=RST why=linger0 and
    wire=FIN why=close, action=pass, and the server logs its two closes.
    """
    with tdlib.Capture() as cap:
        srv_proc = tdlib.spawn([tdlib.teardown_cmd(), "--", tdlib.tdpeer(), "server",
                                "--listen", "127.0.0.1:0", "--count", 2, "--read-until-eof"],
                               env=_plain_env(), name="server")
        listening = srv_proc.wait_for_json(lambda r: r.get("event") == "listening",
                                           what="its listening line")
        port = listening["port"]
        rst_run = _teardown("--", *tdlib.client_cmd(port, "--send", 100, "--linger", "1,0"),
                            name="client-linger0")
        fin_run = _teardown("--", *tdlib.client_cmd(port, "--send", 100), name="client-plain")
        srv_proc.wait(10)
    rst, fin = _peer_result(rst_run), _peer_result(fin_run)
    assert rst["connect_error"] is None and fin["connect_error"] is None, (rst, fin)
    rport, fport = rst["local_port"], fin["local_port"]
    by_peer = {r["remote_port"]: r for r in tdlib.peer_results(srv_proc)}
    # The wire and the peer's view: as without the library.
    assert cap.teardown_flags(rport, port) == "RST" and not cap.fin_from(rport)
    assert cap.teardown_flags(fport, port) == "FIN" and not cap.rst_from(fport)
    assert by_peer[rport]["recv_end"] == "ECONNRESET" and by_peer[fport]["recv_end"] == "EOF"
    tw = {r.local_port for r in tdlib.time_wait_on()}
    assert fport in tw and rport not in tw, tw
    # The log: text on stderr, one close event per connection on each side.
    for run, port_, wire, why in ((rst_run, rport, "RST", "linger0"),
                                  (fin_run, fport, "FIN", "close")):
        events, other = _text_events(run.stderr())
        assert other == [], "stderr holds more than log lines: %r" % other
        assert [e["event"] for e in events if e["event"] != "linger"] == ["connect", "close"]
        close = events[-1]
        assert tdlib.port_of(close["local"]) == port_, close
        assert (close["wire"], close["why"], close["action"]) == (wire, why, "pass"), close
    events, other = _text_events(srv_proc.stderr())
    assert other == [], other
    closes = {tdlib.port_of(e["remote"]): e for e in events if e["event"] == "close"
              and e["role"] == "server"}
    assert set(closes) == {rport, fport}, events
    assert closes[fport]["wire"] == "FIN", closes[fport]


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_config_file_option():
    """`teardown -c FILE -- CMD`: the file's policy applies (here: abort for
    clients, a JSON log), so the client's close is an RST, the server
    reads ECONNRESET, and the log file records wire=RST why=policy.

    With options as well (`-c FILE --close graceful --role client`), the
    options' rule goes in front of the file's rules and the file's log
    settings stay: a client that sets SO_LINGER {1,0} now ends with FIN,
    logged by rule "cli" in the same JSON file.
    """
    log = os.path.join(tdlib.tmpdir(), "td.jsonl")
    conf = _write("abort.conf", tdlib.policy_text(
        [{"name": "clients", "match": {"role": "client"}, "close": "abort"}], log))
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--read-until-eof")
        run = _teardown("-c", conf, "--", *tdlib.client_cmd(srv.port, "--send", 100))
        both = _teardown("-c", conf, "--close", "graceful", "--role", "client", "--",
                         *tdlib.client_cmd(srv.port, "--send", 100, "--linger", "1,0"),
                         name="teardown-options")
        by_peer = {r["remote_port"]: r for r in srv.results()}
    cli, cli2 = _peer_result(run), _peer_result(both)
    assert run.rc == 0 and cli["connect_error"] is None, cli
    assert both.rc == 0 and cli2["connect_error"] is None, cli2
    port, port2 = cli["local_port"], cli2["local_port"]
    assert cap.teardown_flags(port, srv.port) == "RST" and not cap.fin_from(port)
    assert by_peer[port]["recv_end"] == "ECONNRESET", by_peer[port]
    assert not tdlib.time_wait_on(port)
    assert cap.teardown_flags(port2, srv.port) == "FIN" and not cap.rst_from(port2)
    assert by_peer[port2]["recv_end"] == "EOF", by_peer[port2]
    assert tdlib.time_wait_on(port2)
    closes = {tdlib.port_of(e["local"]): e for e in tdlib.read_log(log) if e["event"] == "close"}
    assert set(closes) == {port, port2}, closes
    assert (closes[port]["wire"], closes[port]["why"], closes[port]["rule"]) == (
        "RST", "policy", "clients"), closes[port]
    assert (closes[port2]["wire"], closes[port2]["why"], closes[port2]["rule"]) == (
        "FIN", "policy", "cli"), closes[port2]
    assert run.stderr() == "" and both.stderr() == "", "the log goes to the file, not stderr"
    # -n with only a file hands the library the file's path, not its text.
    dry = _teardown("-n", "-c", conf, "--", "true", name="dry")
    assert tdlib.sourced(dry.stdout())["TEARDOWN_CONFIG"] == os.path.realpath(conf), \
        dry.stdout()


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_options_make_a_rule():
    """`teardown --close abort --role client -- CMD` builds a rule from the
    options: the client resets (RST, no FIN, no TIME_WAIT), the server
    reads ECONNRESET, and the text log on stderr names the rule "cli" and
    says wire=RST why=policy, with nothing else on stderr."""
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        run = _teardown("--close", "abort", "--role", "client", "--",
                        *tdlib.client_cmd(srv.port, "--send", 100))
        srv_res = srv.result()
    cli = _peer_result(run)
    assert run.rc == 0 and cli["connect_error"] is None, cli
    events, other = _text_events(run.stderr())
    assert other == [], "unexpected stderr: %r" % other
    assert cap.teardown_flags(cli["local_port"], srv.port) == "RST"
    assert cap.count_fin() == 0
    assert srv_res["recv_end"] == "ECONNRESET", srv_res
    assert tdlib.time_wait_on() == []
    closes = [e for e in events if e["event"] == "close"]
    assert len(closes) == 1, events
    assert (closes[0]["wire"], closes[0]["why"], closes[0]["rule"],
            closes[0]["action"]) == ("RST", "policy", "cli", "abort"), closes[0]


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_command_is_execed_in_place():
    """The command replaces teardown (exec, no process in between): its
    exit status is the command's own (7 here), a signal that kills it
    shows as that signal, and it runs with teardown's pid.  A command that
    does not exist gives 127 and one message naming it."""
    run = _teardown("--", "/bin/sh", "-c", "echo $$; exit 7", name="exit7")
    assert run.rc == 7, (run.rc, run.stderr())
    assert run.stdout().strip() == str(run.pid), "the shell is not teardown's process"
    run = _teardown("--", "/bin/sh", "-c", "kill -TERM $$", name="killed")
    assert run.rc == -15, run.rc
    missing = os.path.join(tdlib.tmpdir(), "no-such-command")
    run = _teardown("--", missing, name="missing")
    assert run.rc == 127, run.rc
    lines = run.stderr().splitlines()
    assert len(lines) == 1 and missing in lines[0], lines


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_a_run_without_faults_leaves_no_counters_file():
    """A run's counters file (what fault numbers are drawn from) is made
    only by a teardown whose policy has a fault: observing runs leave the
    private directory empty, however many there are; a fault run makes
    one file under the run's name; a fault run started inside an
    observing run makes the file under the outer run's name, and a second
    one inside it joins that file.

    Catches: a file for every run, kept a day (16,618 of them on a test
    machine, on a tmpfs in production), swept at every start (21 ms)."""
    rt = os.path.join(tdlib.tmpdir(), "rt")
    os.makedirs(rt, mode=0o700)
    env = _plain_env(XDG_RUNTIME_DIR=rt)
    private = os.path.join(rt, "teardown")

    def files():
        return sorted(os.listdir(private)) if os.path.isdir(private) else []

    for i in range(3):
        run = _teardown("--log", "/dev/null", "--", "/bin/sh", "-c", 'echo "$TEARDOWN_RUN"',
                        env=env, name="observe%d" % i)
        assert run.rc == 0, run.stderr()
        assert run.stdout().strip().startswith(private + "/run-"), run.stdout()
    assert files() == [], files()
    run = _teardown("--rst", "0.5", "--log", "/dev/null", "--", "/bin/sh", "-c",
                    'echo "$TEARDOWN_RUN"', env=env, name="fault")
    assert run.rc == 0, run.stderr()
    name = run.stdout().strip()
    assert files() == [os.path.basename(name)], (files(), name)
    assert os.path.getsize(name) == 4096
    inner = "%s --rst 0.5 --log /dev/null -- /bin/sh -c 'echo \"$TEARDOWN_RUN\"'" % tdlib.teardown_cmd()
    run = _teardown("--log", "/dev/null", "--", "/bin/sh", "-c",
                    'echo "$TEARDOWN_RUN"; %s; %s' % (inner, inner), env=env, name="nested")
    assert run.rc == 0, run.stderr()
    outer, first, second = run.stdout().split()
    assert outer == first == second, run.stdout()
    assert files() == sorted([os.path.basename(name), os.path.basename(outer)]), files()


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_dry_run_prints_and_runs_nothing():
    """-n and --dry-run print the environment the command would get as
    shell lines (export LD_PRELOAD with the library, export
    TEARDOWN_POLICY with the policy built from the options, unset
    TEARDOWN_CONFIG, which the library would read first; the command as a
    comment) and run nothing: the command's marker file is never created.
    Sourced by /bin/sh, the lines give exactly those values, and the
    printed policy is valid: `teardown check` accepts it."""
    marker = os.path.join(tdlib.tmpdir(), "ran it")
    for flag in ("-n", "--dry-run"):
        run = _teardown(flag, "--close", "abort", "--role", "client", "--", "touch", marker)
        assert run.rc == 0, run.stderr()
        assert not os.path.exists(marker), "%s ran the command" % flag
        out = run.stdout()
        env = tdlib.sourced(out)
        assert env["LD_PRELOAD"] == os.path.realpath(tdlib.lib_path()), out
        assert env["TEARDOWN_CONFIG"] is None, out
        policy_text = env["TEARDOWN_POLICY"]
        assert re.search(r'close = "abort";', policy_text), policy_text
        assert re.search(r'role = "client";', policy_text), policy_text
        assert out.splitlines()[-1] == "# exec: touch '%s'" % marker, out
        policy = _write("printed%s.conf" % flag, policy_text)
        check = _teardown("check", policy, name="check")
        assert check.rc == 0, "the printed policy is invalid: %s%s" % (
            check.stdout(), check.stderr())


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_every_rule_option_reaches_the_policy():
    """Each rule option, flags included, lands in the printed policy under
    its own key with its value, and the policy passes `teardown check`.

    Catches: an option dropped or filed under the wrong key, a flag
    (--reuseaddr, no argument) mishandled, a 64-bit value that loses
    libconfig's L suffix (seed and rst_after_bytes above 2^31 would be
    refused)."""
    opts = [("--close", "drain", 'close = "drain";'),
            ("--drain-timeout", "500", "drain_timeout_ms = 500;"),
            ("--shutdown", "half", 'shutdown = "half";'),
            ("--reuseaddr", None, "reuseaddr = true;"),
            ("--fin-timeout", "5", "fin_timeout_s = 5;"),
            ("--leak-after", "9", "leak_after_s = 9;"),
            ("--role", "client", 'role = "client";'),
            ("--remote", "10.0.0.0/8", None),
            ("--remote", "::1", 'remote = [ "10.0.0.0/8", "::1" ];'),
            ("--remote-port", "443", 'remote_port = [ "443" ];'),
            ("--local-port", "1000-2000", 'local_port = [ "1000-2000" ];'),
            ("--rst", "0.5", "rst = 0.5;"),
            ("--rst-after-ms", "40", "rst_after_ms = 40;"),
            ("--rst-after-bytes", "4294967296", "rst_after_bytes = 4294967296L;"),
            ("--connect-refuse", "0.1", "connect_refuse = 0.1;"),
            ("--connect-timeout", "0.2", "connect_timeout = 0.2;"),
            ("--connect-timeout-ms", "1500", "connect_timeout_ms = 1500;"),
            ("--connect-delay", "3", "connect_delay_ms = 3;"),
            ("--close-delay", "4", "close_delay_ms = 4;"),
            ("--seed", "8589934592", "seed = 8589934592L;")]
    args = []
    for opt, val, _ in opts:
        args += [opt] if val is None else [opt, val]
    run = _teardown("-n", *args, "--", "true")
    assert run.rc == 0, run.stderr()
    policy_text = tdlib.sourced(run.stdout())["TEARDOWN_POLICY"]
    lines = [line.strip() for line in policy_text.splitlines()]
    for opt, _, want in opts:
        if want is not None:
            assert want in lines, "%s: no %r in\n%s" % (opt, want, policy_text)
    policy = _write("every-option.conf", policy_text)
    check = _teardown("check", policy, name="check")
    assert check.rc == 0, "the printed policy is invalid: %s%s" % (check.stdout(), check.stderr())


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_existing_preload_is_kept_after_the_library():
    """An LD_PRELOAD already set is kept, after the library: the command
    sees "LIBRARY:OLD" and both libraries are loaded (the old one's
    marker line is written, and both are mapped)."""
    mark = _mark_lib()
    marks = os.path.join(tdlib.tmpdir(), "marks")
    env = _plain_env(LD_PRELOAD=mark, CORE_MARK_FILE=marks)
    run = _teardown("--", "/bin/sh", "-c", 'echo "LD_PRELOAD=$LD_PRELOAD"; cat /proc/$$/maps',
                    env=env)
    assert run.rc == 0, run.stderr()
    lines = run.stdout().splitlines()
    lib = os.path.realpath(tdlib.lib_path())
    assert lines[0] == "LD_PRELOAD=%s:%s" % (lib, mark), lines[0]
    maps = "\n".join(lines[1:])
    assert lib in maps and mark in maps, "both libraries must be loaded"
    # The marker is loaded in teardown itself too (the variable was set
    # when it started); what matters is the command's line.
    with open(marks) as f:
        loaded = [line.split() for line in f.read().splitlines()]
    assert ["core_mark", str(run.pid), "sh", mark] in loaded, loaded


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_library_next_to_the_command_never_the_cwd():
    """The command preloads the libteardown.so next to itself, wherever it
    is run from, and never one in the current directory.

    The command and the library are copied into a directory of their own
    and run, by absolute path, by relative path and through PATH, from
    another directory that holds a planted libteardown.so (a marker
    library that would record being loaded).  Each time the command's
    LD_PRELOAD names the copy, the copy is what the command maps, and the
    planted library is never loaded.
    """
    bindir = os.path.join(tdlib.tmpdir(), "bin")
    work = os.path.join(tdlib.tmpdir(), "work")
    os.makedirs(bindir)
    os.makedirs(work)
    shutil.copy2(tdlib.teardown_cmd(), bindir)
    shutil.copy2(tdlib.lib_path(), bindir)
    shutil.copy2(_mark_lib(), os.path.join(work, "libteardown.so"))
    marks = os.path.join(tdlib.tmpdir(), "marks")
    copy = os.path.join(bindir, "libteardown.so")
    path_env = _plain_env(CORE_MARK_FILE=marks,
                          PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    script = 'echo "LD_PRELOAD=$LD_PRELOAD"; cat /proc/$$/maps'
    for label, cmd in (("absolute", os.path.join(bindir, "teardown")),
                       ("relative", os.path.join("..", "bin", "teardown")),
                       ("PATH", "teardown")):
        dry = _teardown("-n", "--", "true", cmd=cmd, cwd=work, env=path_env,
                        name="dry-" + label)
        assert dry.rc == 0, dry.stderr()
        assert tdlib.sourced(dry.stdout())["LD_PRELOAD"] == copy, (label, dry.stdout())
        run = _teardown("--", "/bin/sh", "-c", script, cmd=cmd, cwd=work, env=path_env,
                        name="run-" + label)
        assert run.rc == 0, run.stderr()
        lines = run.stdout().splitlines()
        assert lines[0] == "LD_PRELOAD=" + copy, (label, lines[0])
        maps = "\n".join(lines[1:])
        assert copy in maps, "%s: the copy is not loaded" % label
        assert os.path.join(work, "libteardown.so") not in maps, label
    assert not os.path.exists(marks), "the planted library was loaded: %s" % open(marks).read()


# ---------------------------------------------------------------------------
# One command line: help, usage errors, options anywhere, -q, --library
# ---------------------------------------------------------------------------

SUBCOMMANDS = ("run", "check", "report", "doctor", "systemd", "help")


@tdlib.requires("teardown")
@tdlib.timeout(30)
def test_help_everywhere():
    """`teardown --help` (and -h, and `teardown help`) lists every
    subcommand and run's options, on stdout, exit 0.  Each subcommand
    answers -h and --help with the same text as `teardown help SUB`,
    starting with its usage line.  `teardown help NAME` for no such topic
    is a usage error (125), not an attempt to run a program called help.
    teardown alone prints a short usage on stderr, exit 125."""
    outs = [_teardown(*a, name="help") for a in (("--help",), ("-h",), ("help",))]
    for out in outs:
        assert out.rc == 0 and out.stderr() == "", (out.rc, out.stderr())
        assert out.stdout() == outs[0].stdout()
    text = outs[0].stdout()
    for sub in SUBCOMMANDS:
        assert re.search(r"^  %s +\S" % sub, text, re.M), (sub, text)
    assert "--close ACTION" in text and "--config FILE" in text, text
    for sub in SUBCOMMANDS:
        ref = _teardown("help", sub, name="help-" + sub)
        assert ref.rc == 0, (sub, ref.stderr())
        assert ref.stdout().startswith("usage: teardown %s " % sub), ref.stdout()
        assert "-h, --help" in ref.stdout(), ref.stdout()
        for flag in ("-h", "--help"):
            out = _teardown(sub, flag, name="%s%s" % (sub, flag))
            assert out.rc == 0 and out.stdout() == ref.stdout(), (sub, flag, out.rc)
    keys = _teardown("help", "keys", name="help-keys")
    assert keys.rc == 0 and "rules[].close = pass | graceful | drain | abort" in keys.stdout()
    bad = _teardown("help", "frobnicate", name="help-bad")
    assert bad.rc == 125 and "no help on 'frobnicate'" in bad.stderr(), bad.stderr()
    bare = _teardown(name="bare")
    assert bare.rc == 125 and bare.stdout() == "" and "usage: teardown" in bare.stderr()


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_usage_errors_exit_125_and_exec_failures_126_127():
    """teardown's own errors give 125 (as env and timeout do), with one
    line naming the problem and "Try 'teardown SUB --help'.": an unknown
    option, an option without its value, no command, a bad value, an
    invalid policy, a missing library, in every subcommand.  A command
    that cannot be executed gives 126, one that is not found 127, and
    otherwise the status is the command's own (test_command_is_execed_in_place)."""
    bad_policy = _write("bad.conf", 'rules = ( { close = "abrot"; } );\n')
    cases = [(("--frobnicate", "--", "true"), "run", "unknown option '--frobnicate'"),
             (("--close",), "run", "option '--close' needs a value"),
             (("-c",), "run", "option '-c' needs a value"),
             (("--close", "abort"), "run", "no command given"),
             (("check",), "check", "no policy file given"),
             (("check", "--json", bad_policy), "check", "--json goes with --system"),
             (("report", "--format", "xml", "-"), "report", "--format is text, json or "
              "prometheus, not 'xml'"),
             (("report",), "report", "no log given"),
             (("doctor", "-x"), "doctor", "unknown option '-x'"),
             (("systemd",), "systemd", "want enable or disable, and a UNIT"),
             (("help", "--frob"), "help", "unknown option '--frob'")]
    for args, sub, said in cases:
        run = _teardown(*args, name="usage")
        lines = run.stderr().splitlines()
        assert run.rc == 125, (args, run.rc, run.stderr())
        assert lines == ["teardown %s: %s" % (sub, said), "Try 'teardown %s --help'." % sub], \
            (args, lines)
    for args, said in ((("--close", "sometimes", "--", "true"), "--close: bad value"),
                       (("-c", bad_policy, "--", "true"), "%s:1:" % bad_policy),
                       (("--library", "/nonexistent/libteardown.so", "--", "true"),
                        "/nonexistent/libteardown.so: No such file or directory")):
        run = _teardown(*args, name="own-error")
        assert run.rc == 125 and said in run.stderr(), (args, run.rc, run.stderr())
    script = _write("not-executable.sh", "#!/bin/sh\nexit 0\n")
    run = _teardown("--", script, name="noexec")
    assert run.rc == 126 and script in run.stderr(), (run.rc, run.stderr())
    run = _teardown("--", "no-such-command-anywhere", name="notfound")
    assert run.rc == 127, run.rc


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_options_anywhere_among_the_files():
    """check, report and doctor take their options before, between or
    after the files (getopt_long's order); "--" ends the options, and "-"
    is a file (standard input)."""
    good = _write("good.conf", 'version = 1;\nrules = ( { name = "r"; close = "drain"; } );\n')
    first = _teardown("check", "--canonical", "--no-target", good, good, name="check-first")
    last = _teardown("check", good, "--canonical", good, "--no-target", name="check-last")
    assert first.rc == 0 and last.rc == 0, (first.stderr(), last.stderr())
    assert first.stdout() == last.stdout() and 'close = "drain";' in last.stdout()
    log = _write("audit.jsonl", '{"v":1,"ts":"2026-01-01T00:00:00.000000Z","pid":1,"tid":1,'
                 '"prog":"x","event":"connect","fd":3,"role":"client","local":"-",'
                 '"remote":"127.0.0.1:80","rule":"r","action":"pass"}\n')
    rep = _teardown("report", log, "--format", "json", name="report-last")
    assert rep.rc == 0 and json.loads(rep.stdout())["x"]["connections"] == 1, rep.stdout()
    rep = _teardown("report", "-f", "json", "--", log, name="report-dashdash")
    assert rep.rc == 0 and json.loads(rep.stdout())["x"]["connections"] == 1
    doc = _teardown("doctor", "/bin/true", "--json", name="doctor-last")
    assert doc.rc == 0 and json.loads(doc.stdout().splitlines()[0])["binary"] == "/bin/true"
    stdin = _write("stdin.conf", 'rules = ( { close = "abort"; } );')
    with open(stdin) as f:
        check = tdlib.Proc([tdlib.teardown_cmd(), "check", "--no-target", "-"],
                           env=_plain_env(), name="check-stdin", stdin=f)
        check.wait(10)
    assert check.rc == 0 and check.stdout().startswith("<stdin>: ok, 1 rule"), check.stdout()


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_quiet_keeps_the_policy_and_drops_the_log():
    """-q: the options' rule (or the observing rule) writes no events:
    nothing on stderr, yet the policy still acts (--close abort: the
    client's close is an RST, the server reads ECONNRESET).  Its dry run
    shows log = false in that rule.  Without options, -q observes
    nothing, silently."""
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--read-until-eof")
        run = _teardown("-q", "--close", "abort", "--role", "client", "--",
                        *tdlib.client_cmd(srv.port, "--send", 100), name="quiet-abort")
        obs = _teardown("-q", "--", *tdlib.client_cmd(srv.port, "--send", 100),
                        name="quiet-observe")
        by_peer = {r["remote_port"]: r for r in srv.results()}
    cli, cli2 = _peer_result(run), _peer_result(obs)
    assert run.rc == 0 and obs.rc == 0, (run.stderr(), obs.stderr())
    assert run.stderr() == "" and obs.stderr() == "", (run.stderr(), obs.stderr())
    assert cap.teardown_flags(cli["local_port"], srv.port) == "RST"
    assert by_peer[cli["local_port"]]["recv_end"] == "ECONNRESET"
    assert cap.teardown_flags(cli2["local_port"], srv.port) == "FIN"
    for args in (("-q", "--close", "abort"), ("-q",)):
        dry = _teardown("-n", *args, "--", "true", name="quiet-dry")
        policy = tdlib.sourced(dry.stdout())["TEARDOWN_POLICY"]
        assert re.search(r"name = \"(cli|observe)\";(.|\n)*log = false;", policy), policy


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_library_option_and_environment():
    """--library PATH (and -l, and TEARDOWN_LIBRARY) choose the library to
    preload, given as a real absolute path even when named relatively;
    the option wins over the variable; a library that is not there is an
    error (125) naming it, never a silent fallback to another one.  The
    doctor checks the library TEARDOWN_LIBRARY names."""
    other = os.path.join(tdlib.tmpdir(), "other")
    os.makedirs(other)
    shutil.copy2(tdlib.lib_path(), other)
    lib = os.path.join(other, "libteardown.so")
    for args, env, want in ((("--library", lib), None, lib),
                            (("-l", "other/libteardown.so"), None, lib),
                            ((), {"TEARDOWN_LIBRARY": lib}, lib),
                            (("--library", tdlib.lib_path()), {"TEARDOWN_LIBRARY": lib},
                             os.path.realpath(tdlib.lib_path()))):
        dry = _teardown("-n", *args, "--", "true", cwd=tdlib.tmpdir(),
                        env=_plain_env(**(env or {})), name="library")
        assert dry.rc == 0, (args, dry.stderr())
        assert tdlib.sourced(dry.stdout())["LD_PRELOAD"] == want, (args, env, dry.stdout())
    run = _teardown("-n", "--", "true", env=_plain_env(TEARDOWN_LIBRARY=lib + ".missing"),
                    name="library-missing")
    assert run.rc == 125 and "TEARDOWN_LIBRARY=%s.missing" % lib in run.stderr(), run.stderr()
    doc = _teardown("doctor", "--json", "/bin/true", env=_plain_env(TEARDOWN_LIBRARY=lib),
                    name="doctor-library")
    checks = [json.loads(l) for l in doc.stdout().splitlines() if '"check"' in l]
    assert [c["path"] for c in checks] == [lib], doc.stdout()


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_check_system_is_checks_own_option():
    """`teardown check --system FILE` runs doctor's system checks
    (/etc/ld.so.preload, /etc/teardown.conf, the library) and then checks
    FILE; --json makes the system lines JSON.  (It used to go from main.c
    to doctor.c and back into check.)"""
    good = _write("good.conf", 'rules = ( { name = "r"; close = "graceful"; } );\n')
    run = _teardown("check", "--system", good, "--no-target", name="check-system")
    lines = run.stdout().splitlines()
    assert any(l.startswith("/etc/ld.so.preload") for l in lines), lines
    assert any(l.startswith("libteardown.so") for l in lines), lines
    assert any(l.startswith("%s: ok, 1 rule" % good) for l in lines), lines
    run = _teardown("check", "--system", "--json", name="check-system-json")
    objs = [json.loads(l) for l in run.stdout().splitlines()]
    assert {o["check"] for o in objs} >= {"/etc/ld.so.preload", "libteardown.so"}, objs


# ---------------------------------------------------------------------------
# teardown check
# ---------------------------------------------------------------------------

BAD_VALUE = """version = 1;
rules = (
  {
    name = "typo";
    close = "abrot";
  }
);
"""

BAD_SYNTAX = """version = 1;
rules = (
  { name = "a"; close = "abort"; }
  { name = "b"; close = ; }
);
"""


@tdlib.requires("teardown")
@tdlib.timeout(20)
def test_check_good_and_bad_files():
    """`teardown check FILE`: exit 0 for a valid policy (the reference
    config/teardown.conf and a small one), exit 1 for an invalid one with
    the message naming FILE:LINE of the mistake, both for a bad value
    (line 5) and for a syntax error (line 4)."""
    good = _write("good.conf", 'version = 1;\nrules = ( { name = "r"; close = "graceful"; } );\n')
    for path in (os.path.join(tdlib.REPO_ROOT, "config", "teardown.conf"), good):
        run = _teardown("check", path, name="check-good")
        assert run.rc == 0, (path, run.stdout(), run.stderr())
        assert "ok" in run.stdout(), run.stdout()
    for name, text, line in (("value.conf", BAD_VALUE, 5), ("syntax.conf", BAD_SYNTAX, 4)):
        path = _write(name, text)
        run = _teardown("check", path, name="check-" + name)
        assert run.rc == 1, (name, run.rc, run.stdout(), run.stderr())
        said = run.stdout() + run.stderr()
        assert "%s:%d:" % (path, line) in said, "want %s:%d in %r" % (path, line, said)


MANY_ERRORS = """version = 1;
rules = (
  { name = "a"; close = "abrot"; drain_timeout_ms = 0; },
  { name = "b"; match = { role = "clint"; remote_port = "99999"; }; },
  { name = "a"; shutdown = "sometimes"; }
);
"""

SHADOWED = """version = 1;
rules = (
  { name = "web"; match = { role = "client"; remote_port = (80, 443); }; close = "abort"; },
  { name = "tls"; match = { role = "client"; remote_port = 443; }; close = "graceful"; },
  { name = "rest"; close = "pass"; },
  { name = "db"; match = { program = "psql"; remote_port = 5432; }; close = "drain"; }
);
"""


@tdlib.requires("teardown")
@tdlib.timeout(20)
def test_check_reports_every_error_and_dead_rules():
    """`teardown check` reports every error of a file, not only the first:
    one "FILE:LINE: key: problem" line each, in line order (two on line
    3, two on line 4, two on line 5: a bad value and the duplicate
    name), exit status 1.  A valid file whose rules an earlier rule
    always wins over is accepted (exit 0) with one warning per dead rule
    on stderr, naming it, its line and the rule that wins; a later rule
    that an earlier one only partly covers gets none.  Options may come
    after the file names."""
    bad = _write("many.conf", MANY_ERRORS)
    run = _teardown("check", bad, name="check-many")
    assert run.rc == 1, (run.rc, run.stdout(), run.stderr())
    lines = run.stderr().splitlines()
    want = [(3, "rules[0].close: bad value"), (3, "rules[0].drain_timeout_ms: 0 is out of range"),
            (4, "rules[1].match.role: bad value"), (4, "rules[1].match.remote_port: bad port"),
            (5, "rules[2].shutdown: bad value"), (5, "rules[2].name: duplicate rule name")]
    assert len(lines) == len(want), lines
    for line, (n, what) in zip(lines, want):
        assert line.startswith("%s:%d: %s" % (bad, n, what)), (line, n, what)

    good = _write("shadowed.conf", SHADOWED)
    run = _teardown("check", good, "--no-target", name="check-shadowed")
    assert run.rc == 0, (run.rc, run.stdout(), run.stderr())
    assert run.stdout().startswith("%s: ok, 4 rules" % good), run.stdout()
    warnings = run.stderr().splitlines()
    assert warnings == [
        '%s:4: warning: rule 2 "tls" never matches: rule 1 "web" (line 3) comes first and '
        'matches every socket it does' % good,
        '%s:6: warning: rule 4 "db" never matches: rule 3 "rest" (line 5) comes first and '
        'matches every socket' % good], warnings


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_catch_all_options_rule_hiding_the_file_is_reported():
    """A rule from the options with no match criterion goes in front of a
    -c file's rules and decides every socket: teardown says so before
    running, naming each of the file's rules with its line.  With a
    criterion (--role client) it is a deliberate override: no warning.
    Only a log option adds no rule: no warning either."""
    conf = _write("two.conf", 'version = 1;\nrules = (\n  { name = "clients"; match = '
                  '{ role = "client"; }; close = "abort"; },\n  { name = "servers"; match = '
                  '{ role = "server"; }; close = "drain"; }\n);\n')
    run = _teardown("-n", "-c", conf, "--close", "graceful", "--", "true", name="catch-all")
    assert run.rc == 0, run.stderr()
    lines = run.stderr().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teardown: warning: the rule from the options "
                                                   "has no match criterion"), lines
    assert lines[0].endswith("the rules of %s never apply: clients (line 3), servers (line 4)"
                             % conf), lines
    for args in (("--close", "graceful", "--role", "client"), ("--format", "json")):
        run = _teardown("-n", "-c", conf, *args, "--", "true", name="narrow")
        assert run.rc == 0 and run.stderr() == "", (args, run.stderr())


# ---------------------------------------------------------------------------
# teardown doctor: the ELF reading is unit-tested (tests/unit/test_elfinfo.c);
# these run the command on real files.
# ---------------------------------------------------------------------------

def _static_program():
    """A statically linked program, built here (libc6-dev's libc.a)."""
    src = _write("static.c", "int main(void) { return 0; }\n")
    out = os.path.join(tdlib.tmpdir(), "static-prog")
    r = subprocess.run(["gcc", "-static", "-o", out, src], capture_output=True, text=True)
    assert r.returncode == 0, "gcc -static failed: %s" % r.stderr
    return out


def _doctor_script(name, line):
    path = _write(name, line + "\nexit 0\n")
    os.chmod(path, 0o755)
    return path


def _json_lines(proc):
    return [json.loads(line) for line in proc.stdout().splitlines()]


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_doctor_verdicts_and_exit_status():
    """Each program gets the verdict of what really runs it, and the exit
    status is 1 when any of them is out of the library's reach.

    Catches: a static binary reported as reachable (LD_PRELOAD never runs
    there), a script judged by its own text rather than by its
    interpreter (#!/usr/bin/env NAME resolves NAME in PATH), a missing
    program or a directory not reported as such, a wrong exit status."""
    static = _static_program()
    bindir = os.path.dirname(static)
    sh_script = _doctor_script("via-sh", "#!/bin/sh")
    env_script = _doctor_script("via-env-static", "#!/usr/bin/env static-prog")
    env = _plain_env(PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))

    run = _teardown("doctor", "--json", "/bin/true", static, sh_script, env_script,
                  "no-such-program-here", tdlib.tmpdir(), env=env)
    assert run.rc == 1, (run.rc, run.stdout(), run.stderr())
    got = {d["binary"]: d for d in _json_lines(run) if "binary" in d}
    want = {"/bin/true": (True, "dynamic"),
            static: (False, "static"),
            sh_script: (True, "script"),
            env_script: (False, "script"),
            "no-such-program-here": (False, "error"),
            tdlib.tmpdir(): (False, "error")}
    for name, (ok, kind) in want.items():
        assert name in got, (name, run.stdout())
        assert (got[name]["ok"], got[name]["kind"]) == (ok, kind), got[name]
    assert got["/bin/true"]["needed"] == ["libc.so.6"], got["/bin/true"]
    assert got[static]["needed"] == [], got[static]
    assert got[env_script]["interpreter"] == static, got[env_script]
    assert "static" in got[env_script]["reason"], got[env_script]
    assert got["no-such-program-here"]["reason"] == "not found in PATH"
    assert "directory" in got[tdlib.tmpdir()]["reason"]

    # only reachable programs: exit status 0, one plain line each
    run = _teardown("doctor", "/bin/true", sh_script, env=env, name="doctor-ok")
    assert run.rc == 0, (run.stdout(), run.stderr())
    lines = run.stdout().splitlines()
    assert lines[0].startswith("/bin/true: dynamically linked"), lines
    assert lines[1].startswith(sh_script + ": script run by /bin/sh"), lines


@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_doctor_checks_the_library_a_run_would_preload():
    """The library line names the library `teardown -- CMD` would preload
    (its dry run prints the same path) and says whether it is safe to
    preload: it needs only libc.so.6 (an ASan build also needs the
    sanitizer runtime, and is then reported as not safe system-wide).
    A command with no library next to it checks none, and says so with
    --system."""
    lib = os.path.realpath(tdlib.lib_path())
    run = _teardown("doctor", "--json", "/bin/true")
    assert run.rc == 0, (run.stdout(), run.stderr())
    checks = [d for d in _json_lines(run) if "check" in d]
    assert len(checks) == 1, run.stdout()
    line = checks[0]
    assert line["check"] == "libteardown.so" and line["path"] == lib, line
    if tdlib.sanitize():
        assert not line["ok"] and "libasan" in line["reason"], line
    else:
        assert line["ok"] and "needs only libc.so.6" in line["reason"], line
    dry = tdlib.run([tdlib.teardown_cmd(), "-n", "--", "true"], env=_plain_env(), name="dry")
    assert tdlib.sourced(dry.stdout())["LD_PRELOAD"] == lib, dry.stdout()

    # The command alone in a directory: no library next to it.  A run
    # would then take the installed one, if any (make install): the
    # doctor must check that same one, or none.
    alone = os.path.join(tdlib.tmpdir(), "alone")
    os.makedirs(alone)
    shutil.copy2(tdlib.teardown_cmd(), alone)
    cmd = os.path.join(alone, "teardown")
    dry = tdlib.run([cmd, "-n", "--", "true"], env=_plain_env(), name="dry-alone")
    installed = tdlib.sourced(dry.stdout())["LD_PRELOAD"] if dry.rc == 0 else None
    run = _teardown("doctor", "--json", "/bin/true", cmd=cmd, name="doctor-alone")
    checks = [d for d in _json_lines(run) if "check" in d]
    if installed is None:
        assert "not found" in dry.stderr(), dry.stderr()
        assert run.rc == 0, (run.stdout(), run.stderr())
        assert checks == [], run.stdout()
        run = _teardown("doctor", "--json", "--system", cmd=cmd, name="doctor-alone-system")
        lib_lines = [d for d in _json_lines(run) if d.get("check") == "libteardown.so"]
        assert len(lib_lines) == 1 and lib_lines[0]["ok"], run.stdout()
        assert "not found next to the teardown command" in lib_lines[0]["reason"], lib_lines
    else:
        tdlib.note("an installed library is found:", installed)
        assert [d["path"] for d in checks] == [installed], (installed, run.stdout())


@tdlib.requires("teardown")
@tdlib.timeout(10)
def test_doctor_usage_errors():
    """No program (and no --system), or an unknown option: one line
    saying what is wrong and "Try 'teardown doctor --help'." on stderr,
    exit status 125 (teardown's own error), nothing on stdout."""
    for args in ((), ("--frobnicate", "/bin/true")):
        run = _teardown("doctor", *args, name="doctor-usage")
        assert run.rc == 125, (args, run.rc)
        assert run.stdout() == "", (args, run.stdout())
        lines = run.stderr().splitlines()
        assert len(lines) == 2 and lines[0].startswith("teardown doctor: "), lines
        assert lines[1] == "Try 'teardown doctor --help'.", lines


# ---------------------------------------------------------------------------
# The library with a broken, unreadable or absent policy
# ---------------------------------------------------------------------------

def _bad_policy(on_error):
    """A policy whose rule (an abort, were it valid) has a bad value on line 6."""
    return ('version = 1;\non_error = "%s";\nrules = (\n  {\n    name = "broken";\n'
            '    close = "abort"; shutdown = "sometimes";\n  }\n);\n' % on_error)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_policy_error_pass_runs_unchanged():
    """A policy error with on_error = "pass": the program runs unchanged
    (the rule would have made its close an RST; it stays a FIN and the
    server reads EOF), and stderr holds exactly one warning line, which
    names the file and the line of the mistake."""
    conf = _write("broken.conf", _bad_policy("pass"))
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        run = tdlib.run(tdlib.client_cmd(srv.port, "--send", 100),
                        env=tdlib.shim_env(config=conf), name="client")
        srv_res = srv.result()
    cli = _peer_result(run)
    assert run.rc == 0 and cli["connect_error"] is None, cli
    assert cap.teardown_flags(cli["local_port"], srv.port) == "FIN"
    assert cap.count_rst() == 0
    assert srv_res["recv_end"] == "EOF" and srv_res["bytes_received"] == 100, srv_res
    lines = run.stderr().splitlines()
    assert len(lines) == 1, "want exactly one warning, got %r" % lines
    assert lines[0].startswith("teardown: %s:6:" % conf), lines[0]


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_policy_error_exit_stops_before_anything():
    """A policy error with on_error = "exit": the program exits with 78
    (EX_CONFIG) before doing anything: tdpeer prints nothing, not one
    segment reaches the server, and stderr holds one line naming the file
    and line."""
    conf = _write("broken.conf", _bad_policy("exit"))
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--timeout", 1000)
        run = tdlib.run(tdlib.client_cmd(srv.port, "--send", 100),
                        env=tdlib.shim_env(config=conf), name="client")
    assert run.rc == 78, (run.rc, run.stderr())
    assert run.stdout() == "", "the program ran: %r" % run.stdout()
    assert [p for p in cap.packets() if srv.port in (p.sport, p.dport)] == []
    lines = run.stderr().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teardown: %s:6:" % conf), lines


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_policy_needs_no_libconfig():
    """The library reads its policy without libconfig: with libconfig
    made unloadable the policy still applies, nothing is printed, and
    libconfig is never mapped.

    libconfig is hidden in a private mount namespace only (unshare -m,
    then an empty file bind-mounted over libconfig.so.9; the real file is
    never touched).  The policy makes the client's close an RST, and the
    server sees ECONNRESET.

    Catches: a run-time dependency on libconfig coming back (it was
    dlopen()ed once, and a program exporting config_init, as lighttpd
    does, captured its internal calls and crashed at start-up).
    """
    empty = _write("empty.so", "")
    policy = 'version = 1; rules = ( { name = "r"; close = "abort"; log = false; } );'
    env = tdlib.shim_env(policy=policy)
    # Only the client gets the library: the shell and mount run without it.
    setup = 'mount --bind "$1" "$2" && shift 2 && exec env "$@"'
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        cmd = (["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c", setup, "sh",
                empty, LIBCONFIG, "LD_PRELOAD=" + env["LD_PRELOAD"],
                "TEARDOWN_POLICY=" + policy] + tdlib.client_cmd(srv.port, "--send", 100))
        run = tdlib.run(cmd, name="client")
        srv_res = srv.result()
    cli = _peer_result(run)
    assert run.rc == 0 and cli["connect_error"] is None, (run.rc, run.stderr())
    assert cap.teardown_flags(cli["local_port"], srv.port) == "RST"
    assert srv_res["recv_end"] == "ECONNRESET", srv_res
    assert run.stderr() == "", run.stderr()
    assert os.path.getsize(os.path.realpath(LIBCONFIG)) > 0, "the real libconfig was touched"


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_no_policy_prints_nothing_and_changes_nothing():
    """With the library preloaded but no policy anywhere (no TEARDOWN_*
    variable, no /etc/teardown.conf) it prints nothing and changes
    nothing: a client with SO_LINGER {1,0} still resets, a plain one still
    sends FIN, stderr stays empty, and libconfig is never loaded."""
    assert not os.path.exists(SYSTEM_POLICY), (
        "this test needs a machine without %s" % SYSTEM_POLICY)
    env = tdlib.shim_env()
    assert not any(k.startswith("TEARDOWN_") for k in env)
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--count", 2, "--read-until-eof")
        rst_run = tdlib.run(tdlib.client_cmd(srv.port, "--send", 100, "--linger", "1,0"),
                            env=env, name="client-linger0")
        held = tdlib.spawn(tdlib.client_cmd(srv.port, "--send", 100, "--hold", 2000),
                           env=env, name="client-plain")
        fin = held.wait_for_json(lambda r: r.get("event") == "result", what="its result")
        with open("/proc/%d/maps" % held.pid) as f:
            maps = f.read()
        held.kill()
        by_peer = {r["remote_port"]: r for r in srv.results()}
    rst = _peer_result(rst_run)
    rport, fport = rst["local_port"], fin["local_port"]
    assert cap.teardown_flags(rport, srv.port) == "RST" and not cap.fin_from(rport)
    assert cap.teardown_flags(fport, srv.port) == "FIN" and not cap.rst_from(fport)
    assert by_peer[rport]["recv_end"] == "ECONNRESET" and by_peer[fport]["recv_end"] == "EOF"
    assert rst_run.stderr() == "" and held.stderr() == "", (rst_run.stderr(), held.stderr())
    assert "libteardown.so" in maps, "the library is preloaded"
    assert "libconfig" not in maps, "the library never loads libconfig"
