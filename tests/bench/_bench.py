"""What the benchmarks share: where the build is, a clean environment,
callgrind instruction counts, strace system-call counts and a private
network namespace.  (A helper, not a benchmark: run.py skips "_" files.)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TD_BUILD", "build")
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(REPO, BUILD)
LIB = os.path.join(BUILD, "libteardown.so")


def build_path(*parts):
    """A path under the build directory ($TD_BUILD, default build)."""
    return os.path.join(BUILD, *parts)


def clean_env():
    """This environment without the library or a policy in it."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("TEARDOWN_")}


def callgrind(argv, env, phase, per, what=None):
    """Run argv under callgrind, counting user-space instructions only
    inside the function phase (--toggle-collect); return (instructions /
    per, the CompletedProcess).  A failed run raises RuntimeError, named
    by what (default: the program's name)."""
    fd, out = tempfile.mkstemp(prefix="cg.")
    os.close(fd)
    try:
        r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                            "--toggle-collect=" + phase] + [str(a) for a in argv],
                           env=env, capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(out)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError("%s: callgrind failed (rc %d): %s"
                           % (what or os.path.basename(str(argv[0])), r.returncode,
                              r.stderr[-2000:]))
    return int(m.group(1)) / per, r


def strace_calls(argv, env, what=None):
    """Run argv under strace -f -c; return {system call: calls}, every
    process of the run counted.  A failed run raises RuntimeError, named
    by what (default: the program's name)."""
    fd, out = tempfile.mkstemp(prefix="sc.")
    os.close(fd)
    try:
        r = subprocess.run(["strace", "-f", "-c", "-o", out] + [str(a) for a in argv],
                           env=env, capture_output=True, text=True, timeout=600)
        with open(out) as f:
            text = f.read()
    finally:
        os.unlink(out)
    if r.returncode != 0:
        raise RuntimeError("%s: strace -c failed (rc %d): %s"
                           % (what or os.path.basename(str(argv[0])), r.returncode,
                              r.stderr[-2000:]))
    calls = {}
    for line in text.splitlines():
        fields = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(fields) >= 5 and fields[-1] != "total" and fields[3].isdigit():
            calls[fields[-1]] = int(fields[3])
    return calls


def enter_netns(script):
    """As root, re-run script (with this command line) in a private network
    namespace, so its connections and their TIME_WAIT entries stay out of
    the host's tables; return its exit status, or None to go on here (in
    the namespace already, or not root)."""
    if os.environ.get("TD_BENCH_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return None
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return None
    env = dict(os.environ, TD_BENCH_NETNS="1")
    return subprocess.run(["unshare", "--net", "--", sys.executable, os.path.abspath(script)]
                          + sys.argv[1:], env=env).returncode
