"""Never break the host: the library in set-user-ID programs.

In a secure process (AT_SECURE: set-user-ID, set-group-ID, file
capabilities) the environment belongs to the unprivileged caller, so the
library must ignore TEARDOWN_CONFIG and TEARDOWN_POLICY (and with them any
log path they name) and read only /etc/teardown.conf, and refuse that
file too when someone other than root could have written it.

The loader ignores LD_PRELOAD in a secure process; only /etc/ld.so.preload
reaches it.  So each scenario runs in a private mount namespace
(``unshare -m --propagation private``) whose /etc is an overlay of the
real one: /etc/ld.so.preload, /etc/teardown.conf and a directory
/etc/teardown-test (the library, the set-user-ID probe, log directories)
exist only there.  The overlay's upper layer lies in the test's temporary
directory, so the real /etc is never written, and what the processes left
in /etc/teardown-test (logs) can be read after the namespace is gone.

The probe (tests/progs/secure_probe) sets SO_LINGER {1,7}, connects to a
local tdpeer server and reads SO_LINGER back: the system policy's
"graceful" turns it off, the attacker's "abort" makes it {1,0}, no policy
leaves {1,7}.  It runs as nobody (uid 65534), set-user-ID root.
"""

import json
import os
import re

import tdlib

NEEDS = ("root", "netns", "tdpeer", "lib", "teardown")

NOBODY = 65534
TEST_DIR = "/etc/teardown-test"
SYSTEM_LOG = TEST_DIR + "/system/system.log"
ATTACKER_LOG = TEST_DIR + "/attacker/attacker.log"
ATTACKER_CONF = TEST_DIR + "/attacker.conf"

SYSTEM_POLICY = """version = 1;
log = { target = "%s"; format = "json"; };
rules = ( { name = "system"; match = { program = "*_probe"; }; close = "graceful"; } );
""" % SYSTEM_LOG

ATTACKER_POLICY = """version = 1;
log = { target = "%s"; format = "json"; };
rules = ( { name = "attacker"; close = "abort"; } );
""" % ATTACKER_LOG

# Set up the namespace, then exec "$@".  Everything is copied in before
# /etc/ld.so.preload is written: from then on every program loads the
# library, so the helpers left (setpriv, env) get a policy without rules
# in TEARDOWN_POLICY, which keeps the library silent and inactive in them.
SETUP = r"""
mount -t overlay tdetc -o "lowerdir=/etc,upperdir=$TDX_OV/upper,workdir=$TDX_OV/work" /etc
T=/etc/teardown-test
mkdir -m 0755 "$T" "$T/system"
mkdir -m 0777 "$T/attacker"
cp "$TDX_LIB" "$T/libteardown.so"
cp "$TDX_CLI" "$T/teardown"
cp "$TDX_PROBE" "$T/secure_probe"
cp "$TDX_PROBE" "$T/plain_probe"
chmod 0644 "$T/libteardown.so"
chmod 0755 "$T/teardown" "$T/plain_probe"
chown 0:0 "$T/secure_probe"
chmod 4755 "$T/secure_probe"
cp "$TDX_ATTACKER" "$T/attacker.conf"
chmod 0644 "$T/attacker.conf"
cp "$TDX_SYSTEM" /etc/teardown.conf
chown "$TDX_SYSTEM_OWNER" /etc/teardown.conf
chmod "$TDX_SYSTEM_MODE" /etc/teardown.conf
export TEARDOWN_POLICY='version = 1;'
if [ "$TDX_PRELOAD" = 1 ]; then echo "$T/libteardown.so" > /etc/ld.so.preload; fi
exec "$@"
"""


class Scenario:
    """One run in its own mount namespace; after it, the logs it left."""

    def __init__(self, name, cmd, system_mode=0o644, system_owner="0:0", preload=True):
        d = os.path.join(tdlib.tmpdir(), name)
        self.ov = d
        os.makedirs(os.path.join(d, "upper"))
        os.makedirs(os.path.join(d, "work"))
        system = os.path.join(d, "system.conf")
        attacker = os.path.join(d, "attacker.conf")
        with open(system, "w") as f:
            f.write(SYSTEM_POLICY)
        with open(attacker, "w") as f:
            f.write(ATTACKER_POLICY)
        env = tdlib.shim_env(preload=False)
        env.update({"TDX_OV": d, "TDX_LIB": tdlib.lib_path(), "TDX_CLI": tdlib.teardown_cmd(),
                    "TDX_PROBE": tdlib.test_prog("secure_probe"),
                    "TDX_SYSTEM": system, "TDX_ATTACKER": attacker,
                    "TDX_SYSTEM_MODE": "%o" % system_mode, "TDX_SYSTEM_OWNER": system_owner,
                    "TDX_PRELOAD": "1" if preload else "0"})
        for log in (SYSTEM_LOG, ATTACKER_LOG):
            tdlib.diagnose_file(self.host_path(log), "%s (%s)" % (log, name))
        self.proc = tdlib.run(["unshare", "-m", "--propagation", "private",
                               "sh", "-euc", SETUP, "sh"] + cmd, env=env, name=name, timeout=15)
        # The probe must not outlive the test as a set-user-ID file on disk.
        probe = self.host_path(TEST_DIR + "/secure_probe")
        if os.path.exists(probe):
            os.unlink(probe)

    def host_path(self, path):
        """Where a file written under /etc in the namespace is on the host."""
        assert path.startswith("/etc/")
        return os.path.join(self.ov, "upper", path[len("/etc/"):])

    def log(self, path):
        """The JSON events of a log written in the namespace, or None if absent."""
        p = self.host_path(path)
        return tdlib.read_log(p) if os.path.exists(p) else None

    def probe(self):
        """The probe's JSON line."""
        lines = [l for l in self.proc.stdout().split("\n") if l.startswith("{")]
        assert len(lines) == 1, "one probe line expected: %r" % self.proc.stdout()
        return json.loads(lines[0])


def _as_nobody(*cmd):
    return ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", "--"] \
        + list(cmd)


def _hostile(*cmd, config=True, policy=True):
    """cmd with the attacker's environment (and no benign TEARDOWN_POLICY)."""
    env = ["env", "-u", "TEARDOWN_POLICY"]
    if config:
        env.append("TEARDOWN_CONFIG=" + ATTACKER_CONF)
    if policy:
        env.append("TEARDOWN_POLICY=" + ATTACKER_POLICY)
    return env + list(cmd)


def _probe_cmd(kind, port):
    return [TEST_DIR + "/" + kind, str(port)]


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_setuid_ignores_environment_policy():
    """A set-user-ID-root probe run by nobody, with TEARDOWN_CONFIG naming
    a root-owned attacker policy and/or TEARDOWN_POLICY holding one (abort
    every connection, log to a path the attacker chose): the probe is in
    secure mode with the library loaded (from /etc/ld.so.preload), its
    socket is governed by /etc/teardown.conf (graceful: SO_LINGER turned
    off, the server sees EOF, the system log names the probe), and the
    attacker's log is never created.  The control, the same probe without
    the set-user-ID bit, does obey the environment (SO_LINGER {1,0}, the
    server sees ECONNRESET, the attacker's log appears), so the attack
    would be seen if it worked.

    Catches: a library that reads TEARDOWN_CONFIG or TEARDOWN_POLICY in a
    secure process (an unprivileged user choosing the policy, and the
    file it appends to as root, of a set-user-ID program)."""
    problems = []
    with tdlib.Server("--count", 3, "--read-until-eof", "--timeout", 8000) as srv:
        runs = {
            "both": Scenario("secure-both", _as_nobody(*_hostile(*_probe_cmd("secure_probe",
                                                                              srv.port)))),
            "policy-only": Scenario("secure-policy", _as_nobody(*_hostile(
                *_probe_cmd("secure_probe", srv.port), config=False))),
            "control": Scenario("control", _as_nobody(*_hostile(*_probe_cmd("plain_probe",
                                                                              srv.port)))),
        }
        ends = [str(r["recv_end"]) for r in srv.results(timeout=15)]
    for label, sc in runs.items():
        res = sc.probe()
        want_secure = 0 if label == "control" else 1
        if (res["ruid"], res["secure"], res["preloaded"]) != (NOBODY, want_secure, True):
            problems.append("%s: setup wrong (ruid %s, secure %s, preloaded %s)"
                            % (label, res["ruid"], res["secure"], res["preloaded"]))
        if not res["env_policy"]:
            problems.append("%s: the hostile environment did not reach the probe" % label)
        if res["connect_error"] != 0 or sc.proc.rc != 0:
            problems.append("%s: connect failed: %r rc %s" % (label, res, sc.proc.rc))
        if sc.proc.stderr():
            problems.append("%s: stderr %r" % (label, sc.proc.stderr()))
        attacker, system = sc.log(ATTACKER_LOG), sc.log(SYSTEM_LOG)
        if label == "control":
            if res["linger_onoff"] != 1 or res["linger_secs"] != 0:
                problems.append("control: the attacker's abort did not apply: %r" % res)
            if not attacker:
                problems.append("control: no attacker log: the test could not see an attack")
            continue
        if res["linger_onoff"] != 0:
            problems.append("%s: SO_LINGER %d,%d: the system policy (graceful) was not the one "
                            "applied" % (label, res["linger_onoff"], res["linger_secs"]))
        if attacker is not None:
            problems.append("%s: the attacker's log was created: %r" % (label, attacker))
        if not system or {e["prog"] for e in system} != {"secure_probe"} \
                or {e["rule"] for e in system} != {"system"}:
            problems.append("%s: the system log is %r" % (label, system))
    if sorted(ends) != ["ECONNRESET", "EOF", "EOF"]:
        problems.append("server saw %r, want EOF twice (graceful) and one ECONNRESET "
                        "(the control's abort)" % ends)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_setuid_refuses_unsafe_system_policy():
    """In the same set-user-ID probe, an /etc/teardown.conf writable by
    others (0646), by its group (0664), or owned by nobody is refused
    with exactly one warning naming /etc/teardown.conf and why; the probe
    runs as without the library (SO_LINGER still {1,7}) and neither the
    system's nor the attacker's log is written, though the attacker's
    environment is set.

    Catches: the privileged file checks skipped in secure mode, or a
    refused system policy falling back to the environment."""
    cases = [("others-writable", 0o646, "0:0", "is writable by group or others"),
             ("group-writable", 0o664, "0:0", "is writable by group or others"),
             ("nobody-owned", 0o644, "%d:%d" % (NOBODY, NOBODY),
              "is owned by uid %d, not root or the effective user" % NOBODY)]
    problems = []
    with tdlib.Server("--count", len(cases), "--read-until-eof", "--timeout", 8000) as srv:
        runs = [(label, why, Scenario(label, _as_nobody(*_hostile(
            *_probe_cmd("secure_probe", srv.port))), system_mode=mode, system_owner=owner))
            for label, mode, owner, why in cases]
        ends = [str(r["recv_end"]) for r in srv.results(timeout=15)]
    for label, why, sc in runs:
        res = sc.probe()
        if (res["secure"], res["preloaded"], res["euid"]) != (1, True, 0):
            problems.append("%s: setup wrong: %r" % (label, res))
        if (res["linger_onoff"], res["linger_secs"]) != (1, 7):
            problems.append("%s: SO_LINGER %d,%d: some policy was applied"
                            % (label, res["linger_onoff"], res["linger_secs"]))
        want = r"teardown: /etc/teardown\.conf: %s; refusing it in a privileged process; " \
               r"running unchanged\n" % re.escape(why)
        if not re.fullmatch(want, sc.proc.stderr()):
            problems.append("%s: stderr %r, want one line %r" % (label, sc.proc.stderr(), want))
        if sc.log(SYSTEM_LOG) is not None or sc.log(ATTACKER_LOG) is not None:
            problems.append("%s: a log was written" % label)
        if sc.proc.rc != 0:
            problems.append("%s: exit status %s" % (label, sc.proc.rc))
    if ends != ["EOF"] * len(cases):
        problems.append("server saw %r" % ends)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(40)
def test_teardown_command_warns_about_setuid_target():
    """`teardown --close abort -- PROBE` where PROBE is set-user-ID root:
    run by nobody (secure mode: LD_PRELOAD will be ignored) it prints one
    warning naming the program and the reason, and the probe indeed runs
    without the library (SO_LINGER {1,7}); run by root (no secure mode)
    it stays silent and the abort applies (SO_LINGER {1,0}).

    Catches: a command that silently "wraps" a program the library can
    never reach, or that warns where the wrap does work."""
    with tdlib.Server("--count", 2, "--read-until-eof", "--timeout", 8000) as srv:
        wrap = [TEST_DIR + "/teardown", "--close", "abort", "--"] + \
            _probe_cmd("secure_probe", srv.port)
        nobody = Scenario("cli-nobody", _as_nobody(*wrap), preload=False)
        root = Scenario("cli-root", wrap, preload=False)
        srv.results(timeout=15)
    res = nobody.probe()
    assert (res["secure"], res["preloaded"]) == (1, False), res
    assert (res["linger_onoff"], res["linger_secs"]) == (1, 7), res
    lines = nobody.proc.stderr().split("\n")
    assert len(lines) == 2 and lines[1] == "", "one warning line expected: %r" % lines
    assert lines[0].startswith("teardown: warning: %s/secure_probe: set-user-ID program"
                               % TEST_DIR), lines[0]
    assert "ignores LD_PRELOAD" in lines[0], lines[0]
    res = root.probe()
    assert (res["secure"], res["preloaded"]) == (0, True), res
    assert (res["linger_onoff"], res["linger_secs"]) == (1, 0), res
    # (its stderr has the audit lines of the wrapped run, and no warning)
    assert "warning" not in root.proc.stderr(), root.proc.stderr()
    assert " secure_probe close " in root.proc.stderr(), root.proc.stderr()


@tdlib.requires("root")
@tdlib.timeout(10)
def test_host_etc_untouched():
    """The scenarios above change /etc only inside their namespaces: on the
    host there is no /etc/teardown-test, and /etc/ld.so.preload and
    /etc/teardown.conf are what they were before the tests ran (here:
    checked not to mention the test library directory).

    Catches: a mount that leaked out of its namespace (propagation) or a
    setup step that wrote the real /etc."""
    assert not os.path.exists(TEST_DIR), "%s exists on the host" % TEST_DIR
    for path in ("/etc/ld.so.preload", "/etc/teardown.conf"):
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                assert TEST_DIR not in f.read(), "%s mentions %s" % (path, TEST_DIR)
    with open("/proc/self/mountinfo") as f:
        assert not [l for l in f if " /etc " in l and "tdetc" in l], "an overlay on /etc leaked"
