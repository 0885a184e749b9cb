"""`teardown doctor`: which programs the library can act on, and whether
the library itself is safe to preload.

The ELF reading is unit-tested (tests/unit/test_elfinfo.c); these tests
run the command itself on real files: a dynamic program, a static one
built here, scripts whose interpreter is one or the other, a missing name
and a directory.  They check each verdict, the exit status (1 as soon as
one program is out of reach), the JSON lines, and the library line: the
library a run would preload (the same lookup as `teardown -- CMD`), or
none when no library stands next to the command.
"""

import json
import os
import shutil
import subprocess

import tdlib


def _env(**extra):
    return tdlib.shim_env(preload=False, extra=extra)


def _doctor(*args, env=None, cmd=None, name="doctor"):
    return tdlib.run([cmd or tdlib.teardown_cmd(), "doctor"] + list(args),
                     env=env or _env(), name=name)


def _static_program():
    """A statically linked program, built here (libc6-dev's libc.a)."""
    src = os.path.join(tdlib.tmpdir(), "static.c")
    out = os.path.join(tdlib.tmpdir(), "static-prog")
    with open(src, "w") as f:
        f.write("int main(void) { return 0; }\n")
    r = subprocess.run(["gcc", "-static", "-o", out, src], capture_output=True, text=True)
    assert r.returncode == 0, "gcc -static failed: %s" % r.stderr
    return out


def _script(name, line):
    path = os.path.join(tdlib.tmpdir(), name)
    with open(path, "w") as f:
        f.write(line + "\nexit 0\n")
    os.chmod(path, 0o755)
    return path


def _lines(proc):
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
    sh_script = _script("via-sh", "#!/bin/sh")
    env_script = _script("via-env-static", "#!/usr/bin/env static-prog")
    env = _env(PATH=bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))

    run = _doctor("--json", "/bin/true", static, sh_script, env_script,
                  "no-such-program-here", tdlib.tmpdir(), env=env)
    assert run.rc == 1, (run.rc, run.stdout(), run.stderr())
    got = {d["binary"]: d for d in _lines(run) if "binary" in d}
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
    run = _doctor("/bin/true", sh_script, env=env, name="doctor-ok")
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
    run = _doctor("--json", "/bin/true")
    assert run.rc == 0, (run.stdout(), run.stderr())
    checks = [d for d in _lines(run) if "check" in d]
    assert len(checks) == 1, run.stdout()
    line = checks[0]
    assert line["check"] == "libteardown.so" and line["path"] == lib, line
    if tdlib.sanitize():
        assert not line["ok"] and "libasan" in line["reason"], line
    else:
        assert line["ok"] and "needs only libc.so.6" in line["reason"], line
    dry = tdlib.run([tdlib.teardown_cmd(), "-n", "--", "true"], env=_env(), name="dry")
    assert dry.stdout().splitlines()[0] == "LD_PRELOAD=" + lib, dry.stdout()

    # The command alone in a directory: no library next to it.  A run
    # would then take the installed one, if any (make install): the
    # doctor must check that same one, or none.
    alone = os.path.join(tdlib.tmpdir(), "alone")
    os.makedirs(alone)
    shutil.copy2(tdlib.teardown_cmd(), alone)
    cmd = os.path.join(alone, "teardown")
    dry = tdlib.run([cmd, "-n", "--", "true"], env=_env(), name="dry-alone")
    installed = dry.stdout().splitlines()[0][len("LD_PRELOAD="):] if dry.rc == 0 else None
    run = _doctor("--json", "/bin/true", cmd=cmd, name="doctor-alone")
    checks = [d for d in _lines(run) if "check" in d]
    if installed is None:
        assert "not found" in dry.stderr(), dry.stderr()
        assert run.rc == 0, (run.stdout(), run.stderr())
        assert checks == [], run.stdout()
        run = _doctor("--json", "--system", cmd=cmd, name="doctor-alone-system")
        lib_lines = [d for d in _lines(run) if d.get("check") == "libteardown.so"]
        assert len(lib_lines) == 1 and lib_lines[0]["ok"], run.stdout()
        assert "not found next to the teardown command" in lib_lines[0]["reason"], lib_lines
    else:
        tdlib.note("an installed library is found:", installed)
        assert [d["path"] for d in checks] == [installed], (installed, run.stdout())


@tdlib.requires("teardown")
@tdlib.timeout(10)
def test_doctor_usage_errors():
    """No program (and no --system), or an unknown option: usage on
    stderr and exit status 2, nothing on stdout."""
    for args in ((), ("--frobnicate", "/bin/true")):
        run = _doctor(*args, name="doctor-usage")
        assert run.rc == 2, (args, run.rc)
        assert run.stdout() == "", (args, run.stdout())
        assert "usage: teardown doctor" in run.stderr(), (args, run.stderr())
