"""Never break the host: hostile and broken input around the library.

A policy file that must be refused, a program name built to forge log
lines, a log target that cannot be written, a stderr that is closed, a
network socket or a pipe nobody reads: in every case the program must run
exactly as it would without the library (same output, same exit status,
no SIGPIPE death, no stray bytes in its own descriptors), and what the
library says about it must be one line that names the culprit (a log
that cannot be written adds, at exit, the count of lines it lost).

The program under test is tdpeer: a client that connects to a tdpeer
server (run without the library), sends 10 bytes and closes.  The
policies that must be refused would make that connection end with an RST
and write an audit log, so a policy wrongly accepted shows at the server
(ECONNRESET instead of EOF) and as a log file that should not exist.
"""

import codecs
import json
import os
import re
import socket
import subprocess

import tdlib

NEEDS = ("root", "netns", "tdpeer", "lib")

MIB = 1024 * 1024


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def _abort_policy(log_path, fmt="json"):
    """A valid policy with an observable effect: RST on close, and a log."""
    return tdlib.policy_text([{"name": "hostile", "close": "abort"}], log_path, fmt=fmt)


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    return path


def _client_problems(label, run, peer):
    """What went wrong for a client that should have run as without the library.

    peer: the server's result for this client's connection (or None)."""
    problems = []
    if run.rc != 0:
        problems.append("%s: exit status %s, want 0" % (label, run.rc))
    if len(run.results) != 1:
        problems.append("%s: %d result lines" % (label, len(run.results)))
        return problems
    res = run.result
    if res["connect_error"] is not None or res["close_rc"] != 0 or res["bytes_sent"] != 10:
        problems.append("%s: client result changed: %r" % (label, res))
    if run.summary is None:
        problems.append("%s: no summary line (the program did not finish)" % label)
    if peer is None:
        problems.append("%s: the server never saw the connection" % label)
    elif peer["recv_end"] != "EOF" or peer["bytes_received"] != 10:
        problems.append("%s: server read %s bytes and then %s, want 10 and EOF"
                        " (a refused policy must not apply)"
                        % (label, peer["bytes_received"], peer["recv_end"]))
    return problems


def _one_warning_problems(label, stderr, pattern):
    """stderr must be exactly one line matching pattern (a regex)."""
    lines = stderr.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != 1:
        return ["%s: want exactly one warning line on stderr, got %d: %r"
                % (label, len(lines), stderr)]
    if not re.fullmatch(pattern, lines[0]):
        return ["%s: warning %r does not match %r" % (label, lines[0], pattern)]
    return []


def _serve(count):
    return tdlib.Server("--count", count, "--read-until-eof", "--timeout", 8000)


def _by_peer(srv):
    return {r["remote_port"]: r for r in srv.results(timeout=15)}


def _local_port(run):
    return run.results[0]["local_port"] if len(run.results) == 1 else None


# ---------------------------------------------------------------------------
# 2. Policy files that must be refused
# ---------------------------------------------------------------------------

def _refused_cases(d):
    """(label, path, warning regex or None for "accepted") for each case."""
    log = os.path.join(d, "must-not-exist.log")
    good = _abort_policy(log)
    lines_in_good = good.count("\n")
    cases = []

    def case(label, path, msg):
        cases.append((label, path, None if msg is None else
                      r"teardown: %s%s; running unchanged" % (re.escape(path), msg)))

    # The control: the same policy as a plain file is applied (RST, log).
    case("control", _write(os.path.join(d, "good.conf"), good), None)
    # libconfig 1.5 exit()s the process on "@include" of a directory.
    case("include-dir", _write(os.path.join(d, "inc-dir.conf"), '@include "/etc"\n' + good),
         r":1: @include is not allowed in a policy")
    # Included or not, a file with the abort policy must not be read.
    case("include-file", _write(os.path.join(d, "inc-file.conf"),
                                "# nothing else here\n  @include \"%s\"\n"
                                % os.path.join(d, "good.conf")),
         r":2: @include is not allowed in a policy")
    os.mkdir(os.path.join(d, "dir.conf"))
    case("directory", os.path.join(d, "dir.conf"), r": is a directory, not a regular file")
    os.mkfifo(os.path.join(d, "fifo.conf"))
    case("fifo", os.path.join(d, "fifo.conf"), r": is a FIFO, not a regular file")
    # Over 1 MiB by one byte: refused; exactly 1 MiB: read and applied.
    pad = MIB - len(good.encode()) - 1
    case("1MiB+1", _write(os.path.join(d, "big.conf"), good + "#" * (pad + 1) + "\n"),
         r": is larger than 1 MiB")
    case("1MiB", _write(os.path.join(d, "exactly-1mib.conf"), good + "#" * pad + "\n"), None)
    os.symlink("good.conf", os.path.join(d, "link.conf"))
    case("symlink", os.path.join(d, "link.conf"), r": is a symbolic link; refusing to follow it")
    case("deep-nesting", _write(os.path.join(d, "deep.conf"),
                                good + "x = " + "(" * 100 + ")" * 100 + ";\n"),
         r":%d: nesting deeper than 64 levels" % (lines_in_good + 1))
    # Read as a C string, the text before the NUL is the whole abort policy.
    case("embedded-NUL", _write(os.path.join(d, "nul.conf"), good + "\0rules = ();\n"),
         r":%d: embedded NUL byte \(a policy is text\)" % (lines_in_good + 1))
    case("syntax-error", _write(os.path.join(d, "syntax.conf"),
                                good.replace('close = "abort"', 'close = = "abort"', 1)),
         r":%d: syntax error \('=' where a value was expected\)" % lines_in_good)
    return cases, log


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_refused_policy_files_run_unchanged():
    """Each policy file that must be refused (@include of a directory or of
    a file, a directory, a FIFO, 1 MiB + 1 byte, a symlink, nesting deeper
    than 64, an embedded NUL, a syntax error) leaves the program exactly
    as without the library: exit 0, its connection closes with a FIN (the
    file's abort rule is not applied), no audit log, and exactly one
    warning line naming the file (and the line).  The FIFO must not hang
    the start.  Controls: the same policy as a plain file, and one of
    exactly 1 MiB, are applied (RST at the server, a log).

    Catches: a policy parser that follows @include (libconfig would exit()
    the host or read the included abort policy), reads a FIFO blocking,
    follows symlinks, accepts oversize, deep or NUL-cut text, or warns
    with zero or several lines."""
    d = os.path.join(tdlib.tmpdir(), "policies")
    os.mkdir(d)
    cases, log = _refused_cases(d)
    problems = []
    with _serve(len(cases)) as srv:
        runs = []
        for label, path, _ in cases:
            runs.append(tdlib.run_client(srv.port, "--send", 10, env=tdlib.shim_env(config=path),
                                         name="client-" + label, timeout=10))
        peers = _by_peer(srv)
    for (label, path, pattern), run in zip(cases, runs):
        peer = peers.get(_local_port(run))
        if pattern is None:
            if run.rc != 0 or peer is None or peer["recv_end"] != "ECONNRESET":
                problems.append("%s: the valid policy was not applied (rc %s, server %r)"
                                % (label, run.rc, peer and peer["recv_end"]))
            if run.proc.stderr():
                problems.append("%s: unexpected stderr %r" % (label, run.proc.stderr()))
            continue
        problems += _client_problems(label, run, peer)
        problems += _one_warning_problems(label, run.proc.stderr(), pattern)
    assert os.path.exists(log), "the control policy wrote no log: the test proves nothing"
    os.unlink(log)
    # Only the accepted controls may have written it; run the refused ones again.
    for label, path, pattern in cases:
        if pattern is not None:
            tdlib.run([tdlib.tdpeer(), "client", "--connect", "127.0.0.1:1"],
                      env=tdlib.shim_env(config=path), name="again-" + label, timeout=10)
    if os.path.exists(log):
        problems.append("a refused policy opened its log %s" % log)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_writable_policy_refused_when_privileged():
    """As root (a privileged process), a policy file writable by others or
    by its group, or owned by another user, is refused with one warning
    saying why, and the program runs unchanged; the same file 0644 and
    root's is applied.

    Catches: the privileged checks (sshd's StrictModes for one file)
    missing or inverted: whoever can write the policy could make root's
    programs reset their connections."""
    d = os.path.join(tdlib.tmpdir(), "perm")
    os.mkdir(d)
    log = os.path.join(d, "perm.log")
    text = _abort_policy(log)
    cases = [
        ("others-writable", 0o646, 0, r": is writable by group or others; refusing it in a "
                                      r"privileged process"),
        ("group-writable", 0o664, 0, r": is writable by group or others; refusing it in a "
                                     r"privileged process"),
        ("foreign-owner", 0o644, 12345, r": is owned by uid 12345, not root or the effective "
                                        r"user; refusing it in a privileged process"),
        ("root-0644", 0o644, 0, None),
    ]
    problems = []
    with _serve(len(cases)) as srv:
        runs = []
        for label, mode, uid, _ in cases:
            path = _write(os.path.join(d, label + ".conf"), text, mode)
            os.chown(path, uid, uid)
            runs.append((path, tdlib.run_client(srv.port, "--send", 10, name="client-" + label,
                                                env=tdlib.shim_env(config=path), timeout=10)))
        peers = _by_peer(srv)
    for (label, _, _, msg), (path, run) in zip(cases, runs):
        peer = peers.get(_local_port(run))
        if msg is None:
            assert run.rc == 0 and peer and peer["recv_end"] == "ECONNRESET", \
                "the 0644 root-owned policy was not applied: %r" % (peer,)
            assert not run.proc.stderr(), run.proc.stderr()
            continue
        problems += _client_problems(label, run, peer)
        problems += _one_warning_problems(
            label, run.proc.stderr(),
            r"teardown: %s%s; running unchanged" % (re.escape(path), msg))
    events = tdlib.read_log(log)
    assert {e["event"] for e in events} == {"connect", "close"}, events
    assert len(events) == 2, "only the accepted run may log: %r" % events
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_on_error_exit_stops_with_78():
    """on_error = "exit" in a policy with an error: the program does not
    start (exit status 78, EX_CONFIG, nothing on stdout) and stderr has
    one line naming the file, the line and the key, ending in 'exiting'.
    It holds when on_error comes after the error in the file, and for
    TEARDOWN_POLICY text; with on_error = "pass" the same error runs the
    program unchanged.

    Catches: on_error ignored, read too late (after the failing key), the
    wrong status, or a message without file/line/key."""
    d = tdlib.tmpdir()
    bad_rule = '  { name = "x"; colse = "abort"; }\n'
    first = _write(os.path.join(d, "exit-first.conf"),
                   'on_error = "exit";\nrules = (\n' + bad_rule + ');\n')
    last = _write(os.path.join(d, "exit-last.conf"),
                  'rules = (\n' + bad_rule + ');\non_error = "exit";\n')
    passing = _write(os.path.join(d, "pass.conf"),
                     'on_error = "pass";\nrules = (\n' + bad_rule + ');\n')
    key = r'rules\[0\]: unknown key "colse" \(known: [a-z_, ]+\)'
    cmd = [tdlib.tdpeer(), "client", "--connect", "127.0.0.1:1"]
    problems = []
    for label, env, line, source in (
            ("exit-first", tdlib.shim_env(config=first), 3, first),
            ("exit-last", tdlib.shim_env(config=last), 2, last),
            ("policy-text", tdlib.shim_env(policy=open(first).read()), 3, "TEARDOWN_POLICY")):
        proc = tdlib.run(cmd, env=env, name=label)
        if proc.rc != 78:
            problems.append("%s: exit status %s, want 78" % (label, proc.rc))
        if proc.stdout():
            problems.append("%s: the program ran: %r" % (label, proc.stdout()))
        problems += _one_warning_problems(
            label, proc.stderr(), r'teardown: %s:%d: %s; exiting \(on_error = "exit"\)'
            % (re.escape(source), line, key))
    # Without a server, tdpeer's own outcome: connect refused, status 1.
    plain = tdlib.run(cmd, name="plain")
    proc = tdlib.run(cmd, env=tdlib.shim_env(config=passing), name="pass")
    if proc.rc != plain.rc or proc.stdout().count("\n") != plain.stdout().count("\n"):
        problems.append("on_error=pass: rc %s / %r, without the library rc %s"
                        % (proc.rc, proc.stdout(), plain.rc))
    problems += _one_warning_problems("pass", proc.stderr(), r"teardown: %s:3: %s; running unchanged"
                                      % (re.escape(passing), key))
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(20)
def test_policy_path_cannot_forge_warning_lines():
    """TEARDOWN_CONFIG is a path of the user's choosing and ends up in the
    warning: a file named "x<newline>teardown: forged.conf:1: ..." with a
    syntax error must still give exactly one warning line, with the
    newline escaped; an escape byte must not reach the terminal raw.

    Catches: a warning that copies the path raw, letting a file name
    forge extra teardown lines (or terminal escapes) on stderr."""
    d = tdlib.tmpdir()
    name = "x\nteardown: forged.conf:1: all fine; running unchanged\x1b[2J.conf"
    path = _write(os.path.join(d, name), "version = 1;\nrules = ( { close = \"abort\" } ;\n")
    proc = tdlib.run([tdlib.tdpeer(), "client", "--connect", "127.0.0.1:1"],
                     env=tdlib.shim_env(config=path), name="forge")
    lines = proc.stderr().split("\n")
    assert lines[-1] == "", "the warning does not end in a newline: %r" % proc.stderr()
    assert len(lines) == 2, "one warning line expected, got %r" % proc.stderr()
    line = lines[0]
    assert line.startswith("teardown: %s" % d), line
    assert "/x\\x0ateardown: forged.conf" in line, "the newline is not escaped: %r" % line
    assert ":2: syntax error (';' where ',' or ')' was expected); running unchanged" in line, line
    assert "\x1b" not in line and not any(ord(c) < 0x20 for c in line), repr(line)
    assert proc.rc == 1, "tdpeer's own status for a refused connect is 1, got %s" % proc.rc


# ---------------------------------------------------------------------------
# 3. Log injection through the program name
# ---------------------------------------------------------------------------

# Newline, CR, tab, quotes, backslash, '=', ESC, DEL, a control byte,
# invalid UTF-8 (lone 0xff, 0xfe, a truncated sequence, a surrogate) and
# valid UTF-8, with a forged log line after the newline.
EVIL_NAME = (b'ev\nil "q" \\ a=b\r\t\x01\x1b[31m\x7f\xff\xfe\xe2\x82 \xed\xa0\x80 \xc3\xa9\xe6\x97\xa5'
             b'\n2026-01-01T00:00:00.000000Z 1 fake close fd=3 {"event":"x"}')


def _latin1_fallback(err):
    return err.object[err.start:err.end].decode("latin-1"), err.end


codecs.register_error("td_latin1_fallback", _latin1_fallback)


def _json_expected(raw):
    """What a JSON reader must get back: our escapes map a byte that is not
    UTF-8 to U+00XX, and everything else to itself."""
    return raw.decode("utf-8", errors="td_latin1_fallback")


_TEXT_LINE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\d+)/(\d+) (.*)\n$", re.S)


def _text_value(s):
    """Decode one value of a text log line at the start of s (bytes):
    bare up to a space, or quoted with C escapes.  Returns (bytes, rest)."""
    if not s.startswith(b'"'):
        end = s.find(b" ")
        return (s, b"") if end < 0 else (s[:end], s[end:])
    out, i = bytearray(), 1
    escapes = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord('"'): b'"', ord("\\"): b"\\"}
    while True:
        c = s[i]
        if c == ord('"'):
            return bytes(out), s[i + 1:]
        if c != ord("\\"):
            out.append(c)
            i += 1
        elif s[i + 1] == ord("x"):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += escapes[s[i + 1]]
            i += 2


def _run_named(argv0, executable, config, name):
    """Run a tdpeer client with argv[0] = argv0 (bytes); return (rc, stdout, stderr)."""
    out_path = os.path.join(tdlib.tmpdir(), name + ".out")
    err_path = os.path.join(tdlib.tmpdir(), name + ".err")
    tdlib.note("$ (argv[0] = %r) tdpeer client ... [%s]" % (argv0, name))
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.run([argv0] + [a.encode() for a in config["args"]],
                              executable=executable, stdout=out, stderr=err,
                              env=tdlib.shim_env(config=config["path"]),
                              stdin=subprocess.DEVNULL, timeout=10)
    with open(out_path, "rb") as f, open(err_path, "rb") as g:
        return proc.returncode, f.read(), g.read()


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_program_name_cannot_forge_log_lines():
    """A program whose name (argv[0]'s basename, as a symlink's name or as
    a bare argv[0]) holds newlines, quotes, backslashes, control bytes,
    an escape sequence, invalid and valid UTF-8 and a whole forged log
    line: in the text log every event stays one line of printable ASCII
    whose prog decodes (C escapes) to exactly the name's bytes; in the
    JSON log every line parses and prog round-trips through the JSON
    escapes (bytes that are not UTF-8 come back as U+00XX).

    Catches: names written raw (a forged event line, a broken JSON line,
    terminal escapes in a log), or escaped so that they cannot be read
    back."""
    d = tdlib.tmpdir()
    link = os.path.join(d.encode(), EVIL_NAME)
    os.symlink(tdlib.tdpeer(), link)
    problems = []
    with _serve(4) as srv:
        configs = {}
        for fmt in ("text", "json"):
            log = os.path.join(d, "names.%s.log" % fmt)
            path = _write(os.path.join(d, "names-%s.conf" % fmt),
                          tdlib.policy_text([{"name": "names"}], log, fmt=fmt))
            configs[fmt] = {"path": path, "log": log,
                            "args": ["client", "--connect", "127.0.0.1:%d" % srv.port,
                                     "--send", "10"]}
        for fmt, cfg in configs.items():
            for how, argv0, exe in (("symlink", link, None), ("argv0", EVIL_NAME, tdlib.tdpeer())):
                rc, out, err = _run_named(argv0, exe, cfg, "%s-%s" % (how, fmt))
                if rc != 0 or out.count(b'"event":"result"') != 1:
                    problems.append("%s/%s: rc %s, stdout %r" % (how, fmt, rc, out))
                if err:
                    problems.append("%s/%s: stderr %r" % (how, fmt, err))
        srv.results(timeout=15)
    with open(configs["text"]["log"], "rb") as f:
        text_lines = f.read().split(b"\n")
    assert text_lines[-1] == b"", "the text log does not end in a newline"
    text_lines = [l + b"\n" for l in text_lines[:-1]]
    assert len(text_lines) == 4, "2 runs x (connect, close) = 4 lines, got %d:\n%s" % (
        len(text_lines), b"".join(text_lines).decode("latin-1"))
    for line in text_lines:
        m = _TEXT_LINE.match(line)
        if not m:
            problems.append("text: not one event line: %r" % line)
            continue
        if any(c < 0x20 or c >= 0x7f for c in line[:-1]):
            problems.append("text: raw control or non-ASCII byte in %r" % line)
        prog, rest = _text_value(m.group(4))
        if prog != EVIL_NAME:
            problems.append("text: prog decodes to %r" % prog)
        if rest.split(b" ")[1] not in (b"connect", b"close"):
            problems.append("text: event is not connect/close: %r" % rest)
    events = tdlib.read_log(configs["json"]["log"])   # every line must be JSON
    assert [e["event"] for e in events] == ["connect", "close"] * 2, events
    for e in events:
        if e["prog"] != _json_expected(EVIL_NAME):
            problems.append("json: prog %r, want %r" % (e["prog"], _json_expected(EVIL_NAME)))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# 4. Log targets that fail, and stderr that is not a terminal
# ---------------------------------------------------------------------------

def _pass_policy(target, fmt="json"):
    """Audit only (close = pass): the program's behaviour must not change at all."""
    return "version = 1;\nlog = { target = %s; format = \"%s\"; };\n" \
           "rules = ( { name = \"audit\"; } );\n" % (tdlib.to_libconfig(target), fmt)


def _wrapped(script, cmd, policy_path, extra_env=None):
    """Run cmd under `sh -c script` in a private mount namespace.  The
    library reaches only the program: its preload travels as
    TDX_LD_PRELOAD and the script sets LD_PRELOAD for the final command,
    so the helpers (sh, mount, dd) never load it."""
    shim = tdlib.shim_env(config=policy_path)
    env = tdlib.shim_env(preload=False)
    env["TDX_LD_PRELOAD"] = shim["LD_PRELOAD"]
    env["TEARDOWN_CONFIG"] = policy_path
    env.update(extra_env or {})
    return ["unshare", "-m", "--propagation", "private", "sh", "-euc", script, "sh"] + cmd, env


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_unwritable_log_targets_warn_and_count():
    """The log target cannot be opened (a path in a missing directory, a
    path where a directory is, a read-only file: a read-only bind mount,
    since root ignores file modes) or cannot be written (/dev/full, a file
    on a full tmpfs): the program's output, exit status and connection are
    the same as without the library, and stderr has exactly two lines: the
    warning at the first line lost, naming the target and the reason, and
    at exit the count of lines lost (a connect and a close: 2).  A control
    run with a writable target proves the library was logging, and says
    nothing.

    Catches: a failed open or an ENOSPC write that aborts, blocks, retries
    forever, spills into the program's descriptors, or loses the audit in
    silence."""
    d = tdlib.tmpdir()
    os.mkdir(os.path.join(d, "adir"))
    ro = _write(os.path.join(d, "readonly.log"), "")
    full = os.path.join(d, "full")
    os.mkdir(full)
    client = [tdlib.tdpeer(), "client", "--connect"]
    cases = [
        ("missing-dir", os.path.join(d, "no", "such", "dir", "a.log"), None, "ENOENT"),
        ("is-a-directory", os.path.join(d, "adir"), None, "EISDIR"),
        ("dev-full", "/dev/full", None, "ENOSPC"),
        ("read-only-file", ro, 'mount --bind -o ro "$TDX_RO" "$TDX_RO"\n', "EROFS"),
        ("full-tmpfs", os.path.join(full, "td.log"),
         'mount -t tmpfs -o size=64k tdfull "$TDX_FULL"\n'
         'dd if=/dev/zero of="$TDX_FULL/filler" bs=4096 2>/dev/null || true\n', "ENOSPC"),
        ("control", os.path.join(d, "control.log"), None, None),
    ]
    problems = []
    with _serve(len(cases) + 1) as srv:
        target = "127.0.0.1:%d" % srv.port
        base = tdlib.run_client(srv.port, "--send", 10, name="baseline")
        runs = []
        for label, log, setup, _ in cases:
            policy = _write(os.path.join(d, label + ".conf"), _pass_policy(log))
            script = (setup or "") + (
                'LD_PRELOAD="$TDX_LD_PRELOAD" "$@" && rc=0 || rc=$?\n'
                'if [ -f "$TDX_LOG" ]; then wc -c < "$TDX_LOG" > "$TDX_SIZE"; fi\n'
                'exit $rc\n')
            cmd, env = _wrapped(script, client + [target, "--send", "10"], policy,
                                {"TDX_RO": ro, "TDX_FULL": full, "TDX_LOG": log,
                                 "TDX_SIZE": os.path.join(d, label + ".size")})
            runs.append((label, tdlib.PeerRun(tdlib.run(cmd, env=env, name=label))))
        peers = _by_peer(srv)
    problems += _client_problems("baseline", base, peers.get(_local_port(base)))
    for (label, run), (_, log, _, err) in zip(runs, cases):
        problems += _client_problems(label, run, peers.get(_local_port(run)))
        lines = run.proc.stderr().splitlines()
        if err is None:
            if lines:
                problems.append("%s: stderr %r" % (label, run.proc.stderr()))
            continue
        want = [r"teardown: cannot write the audit log to %s: %s \(.*\); lines that cannot be "
                r"written are counted, and the count is logged at exit \(event \"dropped\"\)"
                % (re.escape(log), err),
                r"teardown: 2 audit lines were not written to %s: %s \(.*\)" % (re.escape(log), err)]
        if len(lines) != 2 or not all(re.fullmatch(w, l) for w, l in zip(want, lines)):
            problems.append("%s: stderr %r, want two lines matching %r" % (label, lines, want))
    sizes = {}
    for label, _, _, _ in cases:
        p = os.path.join(d, label + ".size")
        sizes[label] = int(open(p).read()) if os.path.exists(p) else None
    tdlib.note("log sizes seen inside the namespaces:", sizes)
    assert sizes["control"] and sizes["control"] > 0, "the control logged nothing"
    assert sizes["full-tmpfs"] == 0, "the log on the full tmpfs: %r" % sizes["full-tmpfs"]
    assert os.path.getsize(ro) == 0, "the read-only file was written"
    assert not os.path.exists(os.path.join(d, "no")), "a missing directory was created"
    assert not problems, "\n".join(problems)


def _stderr_cases_policy(d, label, target="stderr", valid=True):
    log_rules = 'rules = ( { name = "audit"; close = "abort"; } );\n'
    text = 'version = 1;\nlog = { target = "%s"; format = "text"; };\n' % target + log_rules
    if not valid:
        text = text.replace('close = "abort"', 'close = = "abort"')
    return _write(os.path.join(d, label + ".conf"), text)


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_closed_stderr_gets_no_log_bytes():
    """The program starts with fd 2 closed and the log target is stderr:
    its first socket then gets descriptor 2, and nothing the library logs
    may land in it.  The server must read exactly the client's 10 bytes,
    then the RST of the policy's abort (proving the library was active).

    Catches: logging to "whatever fd 2 is now" (the peer would receive
    audit lines as application data)."""
    d = tdlib.tmpdir()
    policy = _stderr_cases_policy(d, "closed")
    with _serve(1) as srv:
        script = 'exec 2>&-\nexport LD_PRELOAD="$TDX_LD_PRELOAD"\nexec "$@"\n'
        cmd, env = _wrapped(script, [tdlib.tdpeer(), "client", "--connect",
                                     "127.0.0.1:%d" % srv.port, "--send", "10"], policy)
        run = tdlib.PeerRun(tdlib.run(cmd, env=env, name="closed-stderr"))
        peer = srv.result(timeout=15)
    assert run.rc == 0 and run.result["connect_error"] is None, run.results
    assert peer["bytes_received"] == 10, "the peer got %d bytes: log lines went into fd 2" \
        % peer["bytes_received"]
    assert peer["recv_end"] == "ECONNRESET", "the policy was not applied: %r" % peer


def _tcp_pair():
    """Two connected TCP sockets on loopback: (ours, theirs)."""
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    theirs = socket.create_connection(lst.getsockname())
    ours, _ = lst.accept()
    lst.close()
    return ours, theirs


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_tcp_socket_stderr_gets_nothing():
    """stderr is a TCP socket (under inetd it is the client's connection):
    the library writes nothing there, neither audit lines (target stderr, a
    valid abort policy, which must still apply) nor the one-line warning
    of a policy it refuses; the program runs unchanged.  (A Unix socket
    stderr, journald's stream, does get both: test_logs.)

    Catches: log lines or warnings written into a network socket on fd 2,
    which would corrupt the protocol of an inetd-style service."""
    d = tdlib.tmpdir()
    problems = []
    with _serve(2) as srv:
        for label, valid in (("valid", True), ("refused", False)):
            policy = _stderr_cases_policy(d, label, valid=valid)
            ours, theirs = _tcp_pair()
            out_path = os.path.join(d, label + ".out")
            with open(out_path, "wb") as out:
                rc = subprocess.run([tdlib.tdpeer(), "client", "--connect",
                                     "127.0.0.1:%d" % srv.port, "--send", "10"],
                                    stdout=out, stderr=theirs.fileno(), stdin=subprocess.DEVNULL,
                                    env=tdlib.shim_env(config=policy), timeout=10).returncode
            theirs.close()
            ours.settimeout(5)
            got = b""
            while True:
                chunk = ours.recv(65536)   # until the EOF of theirs.close()
                if not chunk:
                    break
                got += chunk
            ours.close()
            if rc != 0:
                problems.append("%s: exit status %s" % (label, rc))
            if got:
                problems.append("%s: %d bytes written into the stderr socket: %r"
                                % (label, len(got), got))
            if open(out_path).read().count('"event":"result"') != 1:
                problems.append("%s: no result line" % label)
        peers = srv.results(timeout=15)
    ends = sorted(str(p["recv_end"]) for p in peers)
    if ends != ["ECONNRESET", "EOF"]:
        problems.append("the valid policy must apply (RST) and the refused one not (EOF): %r"
                        % ends)
    assert not problems, "\n".join(problems)


def _input_client():
    return tdlib.test_prog("input_client")


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_broken_pipe_stderr_no_sigpipe():
    """stderr is a pipe whose reader is gone: the library's writes there
    (audit lines with target stderr, or the warning of a refused policy)
    fail with EPIPE, and the program, a client that keeps SIGPIPE's
    default action (tests/progs/input_client), must not die of the
    SIGPIPE that comes with it: same exit status and output as without
    the library, with SIGPIPE neither left blocked nor pending.

    Catches: a write to stderr without SIGPIPE blocked and swallowed
    around it (the program would die of signal 13 at its first
    connection, or at start-up for the warning), or a signal mask left
    changed."""
    d = tdlib.tmpdir()
    problems = []
    if not os.path.exists(_input_client()):
        tdlib.skip("needs %s (make testprogs)" % _input_client())
    with _serve(3) as srv:
        cmd = [_input_client(), str(srv.port), "10"]
        for label, policy in (("none", None), ("valid", _stderr_cases_policy(d, "valid")),
                              ("refused", _stderr_cases_policy(d, "refused", valid=False))):
            r, w = os.pipe()
            os.close(r)   # nobody will ever read
            out_path = os.path.join(d, label + ".out")
            env = tdlib.shim_env(config=policy) if policy else tdlib.shim_env(preload=False)
            tdlib.note("$ %s  [%s, stderr a pipe without reader]" % (" ".join(cmd), label))
            with open(out_path, "wb") as out:
                rc = subprocess.run(cmd, stdout=out, stderr=w, stdin=subprocess.DEVNULL,
                                    env=env, timeout=10).returncode
            os.close(w)
            text = open(out_path).read()
            want = {"connect_errno": 0, "send_errno": 0, "sent": 10, "close_rc": 0,
                    "sigpipe_blocked": False, "sigpipe_pending": False}
            if rc != 0:
                problems.append("%s: exit status %s (-13 is SIGPIPE)" % (label, rc))
            elif [json.loads(l) for l in text.splitlines()] != [want]:
                problems.append("%s: output %r, want %r" % (label, text, want))
        peers = srv.results(timeout=15)
    ends = sorted(str(p["recv_end"]) for p in peers)
    if ends != ["ECONNRESET", "EOF", "EOF"]:
        problems.append("want one RST (the valid policy applied) and two EOFs: %r" % ends)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# The command with a large policy
# ---------------------------------------------------------------------------

@tdlib.requires("teardown", "lib")
@tdlib.timeout(20)
def test_cli_large_policy_with_log_option_still_runs():
    """`teardown -c FILE --format json -- CMD` with a valid policy of 400
    small rules (28 KB): the command re-prints the policy in canonical
    form (every default spelled out, ~450 bytes a rule, ~190 KB here),
    which is over Linux's 128 KiB limit for one environment string, so it
    hands the library a private file instead of TEARDOWN_POLICY
    (cli/run.c).  CMD must run (its exit status 3 comes back), as it does
    without the --format option, when the command passes the file's path.

    Catches: a policy the library accepts (up to 1 MiB) that the command
    cannot hand over to it (execve() failing with E2BIG, CMD never run)."""
    d = tdlib.tmpdir()
    rules = ",\n".join('  { name = "r%d"; match = { remote_port = %d; }; close = "pass"; }'
                       % (i, 10000 + i) for i in range(400))
    path = _write(os.path.join(d, "big-rules.conf"), "version = 1;\nrules = (\n%s\n);\n" % rules)
    cmd = ["/bin/sh", "-c", "exit 3"]
    plain = tdlib.run([tdlib.teardown_cmd(), "-c", path, "--"] + cmd, name="as-path")
    assert plain.rc == 3, "control: %s %r" % (plain.rc, plain.stderr())
    proc = tdlib.run([tdlib.teardown_cmd(), "-c", path, "--format", "json", "--"] + cmd,
                     name="with-format")
    assert proc.rc == 3, "the program did not run: exit %s, stderr %r" % (proc.rc, proc.stderr())
