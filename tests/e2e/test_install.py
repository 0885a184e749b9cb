"""`make install` into a staging DESTDIR, the installed command run from
there, its manual pages and bash completion, and `make uninstall`.

The layout is faketime's: the library in a private folder of the
multiarch lib directory, where the installed command finds it (relative
to itself, so a staged tree works before it is moved anywhere).  The
manual pages are generated from the same tables as the parser: every
option of every subcommand and every policy key must appear in them,
checked against what the command itself accepts (its --help and the
canonical policy), not against the generator.
"""

import os
import re
import subprocess

import tdlib


def _multiarch():
    for cmd in (["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], ["gcc", "-print-multiarch"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            continue
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return ""


def _make(*args, timeout=300):
    """make ARGS in the repository, on the build under test (nothing is
    rebuilt when it is up to date)."""
    build = os.path.relpath(tdlib.build_dir(), tdlib.REPO_ROOT)
    cmd = ["make", "--no-print-directory", "BUILD=" + build] + list(args)
    if tdlib.sanitize():
        cmd += ["SAN=1", "OPT=-O1"]
    return tdlib.run(cmd, cwd=tdlib.REPO_ROOT, env=tdlib.shim_env(preload=False),
                     name="make-" + args[0], timeout=timeout)


def _tree(root):
    files, dirs = [], []
    for top, ds, fs in os.walk(root):
        files += [os.path.relpath(os.path.join(top, f), root) for f in fs]
        dirs += [os.path.relpath(os.path.join(top, d), root) for d in ds]
    return sorted(files), sorted(dirs)


def _expected_files(multiarch):
    confs = sorted(f for f in os.listdir(os.path.join(tdlib.REPO_ROOT, "config"))
                   if f.endswith(".conf"))
    lib = "usr/lib/%s/teardown/libteardown.so" % multiarch if multiarch else \
        "usr/lib/teardown/libteardown.so"
    return sorted(["usr/bin/teardown", lib,
                   "usr/share/teardown/logrotate.d/teardown",
                   "usr/share/man/man1/teardown.1", "usr/share/man/man5/teardown.conf.5",
                   "usr/share/bash-completion/completions/teardown",
                   "usr/share/doc/teardown/README.md"] +
                  ["usr/share/teardown/" + c for c in confs])


@tdlib.requires("root", "netns", "tdpeer", "lib", "teardown", "man", "groff", "bash")
@tdlib.timeout(300)
def test_install_run_and_uninstall():
    """make install DESTDIR=... PREFIX=/usr installs exactly the command,
    the library under lib/MULTIARCH/teardown/, the policies under
    share/teardown/, two manual pages, the bash completion and the
    README.  The installed command preloads the installed library (its
    dry run says so, its doctor checks that one) and acts on a real
    connection (--close abort: the client's close is an RST, logged).
    The manual pages render without one warning (man --warnings, groff
    -ww).  bash-completion's own loader finds the completion next to the
    installed tree (XDG_DATA_DIRS) and it completes a subcommand, an option and an
    option's values.  make uninstall removes every file and teardown's
    own folders."""
    dest = os.path.join(tdlib.tmpdir(), "dest")
    multiarch = _multiarch()
    res = _make("install", "DESTDIR=" + dest, "PREFIX=/usr")
    assert res.rc == 0, res.stderr()
    files, _ = _tree(dest)
    assert files == _expected_files(multiarch), files
    cmd = os.path.join(dest, "usr", "bin", "teardown")
    lib = os.path.join(dest, _expected_files(multiarch)[[
        f.endswith("libteardown.so") for f in _expected_files(multiarch)].index(True)])

    env = tdlib.shim_env(preload=False)
    dry = tdlib.run([cmd, "-n", "--", "true"], env=env, name="dry")
    assert dry.rc == 0, dry.stderr()
    assert tdlib.sourced(dry.stdout())["LD_PRELOAD"] == lib, dry.stdout()
    doc = tdlib.run([cmd, "doctor", "--json", "/bin/true"], env=env, name="doctor")
    checks = [l for l in doc.stdout().splitlines() if '"check"' in l]
    assert len(checks) == 1 and lib in checks[0], doc.stdout()

    srv = tdlib.Server("--read-until-eof")
    run = tdlib.run([cmd, "--close", "abort", "--role", "client", "--"] +
                    tdlib.client_cmd(srv.port, "--send", 100), env=env, name="installed")
    assert run.rc == 0, run.stderr()
    assert srv.result()["recv_end"] == "ECONNRESET"
    closes = [l for l in run.stderr().splitlines() if " close " in l]
    assert len(closes) == 1 and "wire=RST why=policy" in closes[0], run.stderr()

    for page in ("usr/share/man/man1/teardown.1", "usr/share/man/man5/teardown.conf.5"):
        path = os.path.join(dest, page)
        for check in (["man", "--warnings", "-l", path], ["groff", "-ww", "-Tutf8", "-man", path]):
            out = subprocess.run(check, capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
            assert out.returncode == 0 and out.stderr == "", (check, out.stderr)
            assert len(out.stdout) > 2000, check

    loader = "/usr/share/bash-completion/bash_completion"
    if not os.path.exists(loader):
        tdlib.skip("needs bash-completion (%s)" % loader)
    script = r'''
. %s
__load_completion "$1" || { echo "not loaded"; exit 1; }
complete -p teardown
c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _teardown
      echo "${COMPREPLY[*]}"; }
c teardown chec
c teardown --clo
c teardown --close ""
c teardown report --format ""
''' % loader
    out = subprocess.run(["bash", "-c", script, "bash", cmd], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, HOME=tdlib.tmpdir(),
                                              XDG_DATA_DIRS=os.path.join(dest, "usr", "share")))
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[0] == "complete -F _teardown teardown", (
        out.stdout, out.stderr)
    assert lines[1].split()[0] == "check", lines
    assert lines[2] == "--close --close-delay", lines
    assert lines[3] == "pass graceful drain abort", lines
    assert lines[4] == "text json prometheus", lines

    res = _make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
    assert res.rc == 0, res.stderr()
    files, dirs = _tree(dest)
    assert files == [], files
    assert not [d for d in dirs if d.endswith("teardown")], dirs


def _help_options(sub):
    """The long options `teardown SUB --help` lists."""
    out = tdlib.run([tdlib.teardown_cmd()] + ([sub] if sub else []) + ["--help"],
                    env=tdlib.shim_env(preload=False), name="help-" + (sub or "run"))
    assert out.rc == 0, out.stderr()
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", out.stdout(), re.M))


@tdlib.requires("teardown")
@tdlib.timeout(60)
def test_manual_pages_name_every_option_and_key():
    """Every option of every subcommand (as its --help lists it) is in
    teardown(1), written as roff writes it (\\-\\-name); every policy key
    (as the canonical form of a policy with a fault spells them out) is
    in teardown.conf(5); every key of the log's close-event table in the
    README is in teardown.conf(5).  The pages are those of the build
    (make builds them from the tables)."""
    man = os.path.join(tdlib.build_dir(), "man")
    with open(os.path.join(man, "teardown.1")) as f:
        page1 = f.read()
    with open(os.path.join(man, "teardown.conf.5")) as f:
        page5 = f.read()
    subs = ["", "check", "report", "doctor", "systemd", "help"]
    missing = []
    for sub in subs:
        opts = _help_options(sub)
        assert opts, sub
        for opt in opts:
            if opt.replace("-", "\\-") not in page1:
                missing.append("%s %s" % (sub or "run", opt))
    assert missing == [], "teardown(1) lacks: %s" % ", ".join(sorted(missing))

    # a rule with a fault group: the canonical form then names every key
    conf = os.path.join(tdlib.tmpdir(), "fault.conf")
    with open(conf, "w") as f:
        f.write("rules = ( { fault = { rst = 0.1; }; } );\n")
    canon = tdlib.run([tdlib.teardown_cmd(), "check", "--canonical", "--no-target", conf],
                      env=tdlib.shim_env(preload=False), name="canonical")
    assert canon.rc == 0, canon.stderr()
    keys = set(re.findall(r"^\s*(?:# )?([a-z_]+)(?: = |:)", canon.stdout(), re.M))
    keys -= {"rule"}
    assert {"version", "target", "close", "program", "rst", "seed", "leak_after_s"} <= keys, keys
    lacking = [k for k in keys if not re.search(r"\\fB%s\\fR = " % re.escape(k), page5)]
    assert lacking == [], "teardown.conf(5) lacks the keys %s" % lacking

    with open(os.path.join(tdlib.REPO_ROOT, "README.md")) as f:
        readme = f.read()
    table = readme[readme.index("| `state` |"):]
    table = table[:table.index("\n\n")]
    fields = re.findall(r"`([a-z_]+)`", "\n".join(l.split("|")[1] for l in table.splitlines()))
    assert "lost_in_flight" in fields and "closer" in fields, fields
    absent = [k for k in fields if not re.search(r"\\fB%s\\fR" % re.escape(k), page5)
              and not re.search(r"^\.B %s$" % re.escape(k), page5, re.M)
              and not re.search(r"^\.BR .*\b%s\b" % re.escape(k), page5, re.M)]
    assert absent == [], "teardown.conf(5) lacks the log fields %s" % absent


@tdlib.requires("dpkg-buildflags")
@tdlib.timeout(60)
def test_debian_build_flags_reach_every_command():
    """With Debian's build flags in the environment (dpkg-buildflags,
    hardening=+all), every compile line carries the builder's CPPFLAGS
    and CFLAGS, with the project's -Werror warnings after them (so they
    stay errors) and -O from CFLAGS winning over OPT; every link line
    carries LDFLAGS.  (make -n: nothing is built here; the package build
    in CI builds with them for real.)"""
    env = tdlib.shim_env(preload=False, extra={"DEB_BUILD_MAINT_OPTIONS": "hardening=+all"})
    flags = {}
    for name in ("CPPFLAGS", "CFLAGS", "LDFLAGS"):
        out = subprocess.run(["dpkg-buildflags", "--get", name], capture_output=True,
                             text=True, env=env, timeout=30)
        flags[name] = out.stdout.strip()
        env[name] = flags[name]
    assert "-D_FORTIFY_SOURCE" in flags["CPPFLAGS"] and "relro" in flags["LDFLAGS"], flags
    build = os.path.join(tdlib.tmpdir(), "build")
    out = subprocess.run(["make", "-n", "--no-print-directory", "BUILD=" + build, "V=1", "all"],
                         cwd=tdlib.REPO_ROOT, capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    compiles = [l for l in out.stdout.splitlines() if " -c -o " in l]
    links = [l for l in out.stdout.splitlines()
             if re.search(r" -o %s/(teardown|libteardown\.so)( |$)" % re.escape(build), l)]
    assert compiles and len(links) == 2, out.stdout[:2000]
    for line in compiles:
        assert flags["CPPFLAGS"] in line and flags["CFLAGS"] in line, line
        assert line.index(flags["CFLAGS"]) < line.index("-Werror"), line
        assert line.index("-O2 ") < line.index(flags["CFLAGS"]), line
    for line in links:
        assert flags["LDFLAGS"] in line, line
