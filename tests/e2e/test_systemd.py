"""`teardown systemd enable|disable UNIT`: the drop-in that preloads the
library into a service, written under a staging root (--root), so no
running systemd is needed.

systemd itself checks the result: `systemd-analyze verify --root ROOT`
loads the unit with its drop-ins exactly as PID 1 would, warns about any
line it cannot use, and at debug level dumps the unit as it understood
it, Environment= values included.  So the tests read what LD_PRELOAD and
TEARDOWN_CONFIG the service would get from systemd's own parser, not
from the file's text.
"""

import os
import re
import shutil
import stat
import subprocess

import tdlib

UNIT = """[Unit]
Description=a legacy service
DefaultDependencies=no

[Service]
ExecStart=/usr/local/bin/legacy --port 8080
Environment="LD_PRELOAD=/usr/lib/libfirst.so" OTHER=1
"""


def _root(drop_ins=None):
    """A staging root with /usr/lib/systemd/system/legacy.service (and its
    executable), plus drop-ins {name: text} in /etc/systemd/system/legacy.service.d."""
    root = os.path.join(tdlib.tmpdir(), "root")
    units = os.path.join(root, "usr", "lib", "systemd", "system")
    os.makedirs(units)
    with open(os.path.join(units, "legacy.service"), "w") as f:
        f.write(UNIT)
    exe = os.path.join(root, "usr", "local", "bin", "legacy")
    os.makedirs(os.path.dirname(exe))
    shutil.copy2("/bin/true", exe)
    if drop_ins:
        d = os.path.join(root, "etc", "systemd", "system", "legacy.service.d")
        os.makedirs(d)
        for name, text in drop_ins.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
    return root


def _teardown(*args, name="teardown"):
    return tdlib.run([tdlib.teardown_cmd()] + [str(a) for a in args],
                     env=tdlib.shim_env(preload=False), name=name, timeout=30)


def _files(root):
    out = []
    for top, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(top, n), root) for n in files]
    return sorted(out)


def _verify(root, unit="legacy.service"):
    """systemd-analyze verify under root: (its complaints, {var: value} of
    the unit's Environment as systemd parsed it)."""
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="debug")
    res = subprocess.run(["systemd-analyze", "verify", "--root", root, unit],
                         capture_output=True, text=True, timeout=60, env=env)
    tdlib.note("systemd-analyze verify rc", res.returncode, "\n" + res.stdout + res.stderr)
    out = res.stdout + res.stderr
    environ = {}
    for m in re.finditer(r"^\s*Environment: ([A-Za-z_][A-Za-z0-9_]*)=(.*)$", out, re.M):
        environ[m.group(1)] = m.group(2)
    quiet = subprocess.run(["systemd-analyze", "verify", "--root", root, unit],
                           capture_output=True, text=True, timeout=60)
    complaints = [l for l in (quiet.stdout + quiet.stderr).splitlines() if l.strip()]
    return quiet.returncode, complaints, environ


@tdlib.requires("teardown", "lib", "systemd-analyze")
@tdlib.timeout(60)
def test_enable_with_run_options_then_disable():
    """enable with run options writes the drop-in and the policy under
    the staging root, and prints the systemctl command to run; systemd
    accepts the drop-in without a warning, and the service would get
    LD_PRELOAD = the library, then what the unit already preloaded (the
    unit file's value, replaced by an earlier drop-in's, as systemd
    applies them), and TEARDOWN_CONFIG = /etc/teardown/legacy.service.conf,
    a valid policy with the options' rule.  disable removes exactly what
    enable wrote (the other drop-in stays), and a second disable has
    nothing to do."""
    root = _root({"10-local.conf": "[Service]\nEnvironment=LD_PRELOAD=/opt/second.so\n"})
    before = _files(root)
    run = _teardown("systemd", "enable", "legacy", "--root", root, "--close", "abort",
                    "--role", "client", "--log", "journal", name="enable")
    assert run.rc == 0, (run.rc, run.stdout(), run.stderr())
    dropin = os.path.join(root, "etc/systemd/system/legacy.service.d/teardown.conf")
    policy = os.path.join(root, "etc/teardown/legacy.service.conf")
    assert run.stdout().splitlines()[:2] == ["wrote " + policy, "wrote " + dropin], run.stdout()
    assert _files(root) == sorted(before + [os.path.relpath(dropin, root),
                                            os.path.relpath(policy, root)])
    for path in (dropin, policy):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644, path

    rc, complaints, environ = _verify(root)
    assert rc == 0 and complaints == [], complaints
    lib = os.path.realpath(tdlib.lib_path())
    assert environ["LD_PRELOAD"] == lib + ":/opt/second.so", environ
    assert environ["TEARDOWN_CONFIG"] == "/etc/teardown/legacy.service.conf", environ
    assert environ["OTHER"] == "1", environ
    check = _teardown("check", "--no-target", policy, name="check-policy")
    assert check.rc == 0, check.stderr()
    assert re.search(r'rule 1 "cli".*role=client.*-> close=abort', check.stdout()), check.stdout()
    assert "target=journal" in check.stdout(), check.stdout()

    # enabling again replaces the drop-in: the library is not preloaded twice
    run = _teardown("systemd", "enable", "legacy.service", "--root", root, name="enable-again")
    assert run.rc == 0, run.stderr()
    rc, complaints, environ = _verify(root)
    assert environ["LD_PRELOAD"] == lib + ":/opt/second.so", environ

    run = _teardown("systemd", "disable", "legacy", "--root", root, name="disable")
    assert run.rc == 0, (run.stdout(), run.stderr())
    assert _files(root) == before, _files(root)
    assert not os.path.exists(os.path.join(root, "etc", "teardown"))
    rc, complaints, environ = _verify(root)
    assert rc == 0 and "TEARDOWN_CONFIG" not in environ, environ
    assert environ["LD_PRELOAD"] == "/opt/second.so", environ
    run = _teardown("systemd", "disable", "legacy", "--root", root, name="disable-again")
    assert run.rc == 0 and "nothing to do" in run.stdout(), run.stdout()


@tdlib.requires("teardown", "lib", "systemd-analyze")
@tdlib.timeout(60)
def test_enable_with_a_policy_file_and_odd_paths():
    """enable -c FILE (and nothing else) names the file itself (its real
    path) and writes no policy; a file others may write is refused (a
    service may run as root), as is a policy with an error (exit 125,
    nothing written).  A library path with a space, a quote and a '%'
    reaches systemd intact (systemd's quoting and its % specifiers).
    With no LD_PRELOAD in the unit, the library alone is preloaded.
    -n prints the drop-in and writes nothing."""
    root = _root()
    with open(os.path.join(root, "usr/lib/systemd/system/legacy.service"), "w") as f:
        f.write(UNIT.replace('Environment="LD_PRELOAD=/usr/lib/libfirst.so" OTHER=1\n', ""))
    conf = os.path.join(tdlib.tmpdir(), "policy.conf")
    with open(conf, "w") as f:
        f.write('version = 1;\nrules = ( { name = "drain"; close = "drain"; } );\n')
    os.chmod(conf, 0o644)
    odd = os.path.join(tdlib.tmpdir(), "odd 100% \"lib\"")
    os.makedirs(odd)
    shutil.copy2(tdlib.lib_path(), odd)
    lib = os.path.join(odd, "libteardown.so")

    before = _files(root)
    dry = _teardown("systemd", "enable", "legacy", "--root", root, "-c", conf, "-n",
                    "--library", lib, name="dry")
    assert dry.rc == 0, dry.stderr()
    assert "[Service]" in dry.stdout() and "TEARDOWN_CONFIG=%s" % conf in dry.stdout()
    assert _files(root) == before, "-n wrote files"

    run = _teardown("systemd", "enable", "legacy", "--root", root, "-c", conf,
                    "--library", lib, name="enable")
    assert run.rc == 0, (run.stdout(), run.stderr())
    assert not os.path.exists(os.path.join(root, "etc", "teardown"))
    rc, complaints, environ = _verify(root)
    assert rc == 0 and complaints == [], complaints
    assert environ["LD_PRELOAD"] == lib, environ
    assert environ["TEARDOWN_CONFIG"] == os.path.realpath(conf), environ
    assert _teardown("systemd", "disable", "legacy", "--root", root).rc == 0
    assert _files(root) == before

    os.chmod(conf, 0o666)
    run = _teardown("systemd", "enable", "legacy", "--root", root, "-c", conf, name="writable")
    assert run.rc == 125 and "writable" in run.stderr(), (run.rc, run.stderr())
    os.chmod(conf, 0o644)
    with open(conf, "w") as f:
        f.write('rules = ( { close = "abrot"; } );\n')
    run = _teardown("systemd", "enable", "legacy", "--root", root, "-c", conf, name="invalid")
    assert run.rc == 125 and "%s:1:" % conf in run.stderr(), (run.rc, run.stderr())
    assert _files(root) == before


@tdlib.requires("teardown", "lib")
@tdlib.timeout(30)
def test_systemd_refusals():
    """What enable and disable refuse, each with one message: a unit that
    is not a service or not a unit name (125), a unit with no file under
    the root (1), --now with a staging root (125), policy options to
    disable (125), and a teardown.conf drop-in someone else wrote, which
    disable leaves alone (1)."""
    root = _root({"teardown.conf": "[Service]\nEnvironment=FOO=1\n"})
    for args, rc, said in (
            (("enable", "legacy.socket"), 125, "only a service"),
            (("enable", "../../etc/passwd"), 125, "is not a unit name"),
            (("enable", "missing"), 1, "no unit missing.service under"),
            (("enable", "legacy", "--now"), 125, "--now"),
            (("disable", "legacy", "--close", "abort"), 125, "no policy options"),
            (("disable", "legacy"), 1, "was not written by teardown systemd enable"),
            (("frobnicate", "legacy"), 125, "want enable or disable")):
        run = _teardown("systemd", *args, "--root", root, name="refused")
        assert run.rc == rc and said in run.stderr(), (args, run.rc, run.stderr())
    assert os.path.exists(os.path.join(root, "etc/systemd/system/legacy.service.d/teardown.conf"))
