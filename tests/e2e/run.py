#!/usr/bin/env python3
"""Run the end-to-end tests of teardown.

    TD_BUILD=build python3 tests/e2e/run.py [options] [FILTER ...]

Tests are the ``test_*`` functions of ``tests/e2e/test_*.py``.  A FILTER
keeps the tests whose id ("module::function", e.g.
"test_baseline::test_plain_close") contains it.

Each test runs in a child process of its own.  As root, that child is
started with ``unshare --net`` and brings up ``lo`` first, so the test
has a private network namespace: it cannot touch the host's network, and
ss and nstat see only its own sockets and counters.  Where the kernel
refuses new namespaces (some containers), tests that require "netns" are
skipped with the reason.  Each test also gets
a private temporary directory (kept when the test fails) and a timeout
(60 s unless the test says otherwise with ``@tdlib.timeout``).

A test whose requirements (``@tdlib.requires``) are not met is skipped
with a one-line reason.  With TEARDOWN_REQUIRE_ROOT_TESTS=1 in the
environment (as in CI) a skip counts as a failure.

Exit status: 0 when every test passed or was skipped, 1 otherwise.
"""

import argparse
import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, E2E_DIR)

import tdlib  # noqa: E402  (needs the path above)

DEFAULT_TIMEOUT = 60.0
# How long a timed-out test gets to print its diagnostics before SIGKILL.
GRACE_SECONDS = 5.0


class TestTimeout(Exception):
    """Raised inside a test process when the runner's timeout expires."""


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------

def load_module(name):
    """Import tests/e2e/NAME.py as module NAME."""
    path = os.path.join(E2E_DIR, name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover():
    """Return [(test_id, function or None, import error or None)] in file order.

    The suite is tests/e2e/test_*.py; TD_E2E_SUITE=NAME runs NAME_*.py
    instead (``make tsan``: tsan_*.py, against a ThreadSanitizer build)."""
    found = []
    prefix = os.environ.get("TD_E2E_SUITE", "test") + "_"
    for fname in sorted(os.listdir(E2E_DIR)):
        if not (fname.startswith(prefix) and fname.endswith(".py")):
            continue
        name = fname[:-3]
        try:
            module = load_module(name)
        except Exception:
            found.append((name + "::<import>", None, traceback.format_exc()))
            continue
        for attr, value in vars(module).items():
            if attr.startswith("test_") and callable(value):
                found.append(("%s::%s" % (name, attr), value, None))
    return found


# ---------------------------------------------------------------------------
# The child side: one test, in its own process
# ---------------------------------------------------------------------------

def _on_sigterm(signum, frame):
    raise TestTimeout()


def _bring_up_loopback():
    """A new network namespace starts with lo down; the tests need it up."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)


def _one_line(exc):
    text = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
    return text.strip().split("\n")[0][:200]


def child_main(test_id, tmp, result_path, limit):
    """Run one test and write {"status", "reason"} to result_path."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    status, reason, failed = "pass", None, False
    tdlib.begin_test(tmp)
    try:
        if tdlib.in_netns():
            _bring_up_loopback()
        module_name, func_name = test_id.split("::", 1)
        func = getattr(load_module(module_name), func_name)
        func()
    except tdlib.Skip as exc:
        status, reason = "skip", str(exc) or "skipped"
    except TestTimeout:
        status, reason, failed = "fail", "timed out after %g s" % limit, True
        traceback.print_exc()
    except BaseException as exc:  # every failure, including SystemExit
        status, reason, failed = "fail", _one_line(exc), True
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.stdout.flush()
        tdlib.finish_test(failed)
        with open(result_path, "w") as f:
            json.dump({"status": status, "reason": reason}, f)
    return 0


# ---------------------------------------------------------------------------
# The parent side
# ---------------------------------------------------------------------------

class Outcome:
    """The result of one test as the runner reports it."""

    def __init__(self, test_id, status, reason=None, seconds=0.0, output="", tmp=None):
        self.test_id = test_id
        self.status = status          # "pass", "fail" or "skip"
        self.reason = reason
        self.seconds = seconds
        self.output = output
        self.tmp = tmp


def _child_command(test_id, tmp, result_path, limit):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", test_id,
           "--tmp", tmp, "--result", result_path, "--limit", str(limit)]
    if os.geteuid() == 0 and not tdlib.netns_error():
        cmd = ["unshare", "--net", "--"] + cmd
    return cmd


def _kill_group(pgid):
    """Kill what is left of a test's process group (its servers, captures...)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_child(proc, limit):
    """Wait for a test process; return True if it ran out of time.

    On timeout the test gets SIGTERM first, which it turns into a failure
    with the usual diagnostics; only if that takes too long is its whole
    process group killed.
    """
    try:
        proc.wait(timeout=limit)
        return False
    except subprocess.TimeoutExpired:
        pass
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
    return True


def run_test(test_id, func, base_tmp):
    """Run one test in a child process and return its Outcome."""
    reason = tdlib.unmet_requirement(getattr(func, "td_requires", ()))
    if reason:
        return Outcome(test_id, "skip", reason)
    limit = float(getattr(func, "td_timeout", DEFAULT_TIMEOUT))
    tmp = tempfile.mkdtemp(prefix=test_id.replace("::", ".") + ".", dir=base_tmp)
    os.chmod(tmp, 0o755)
    result_path = os.path.join(tmp, ".result.json")
    output_path = os.path.join(tmp, ".output.txt")
    isolated = os.geteuid() == 0 and not tdlib.netns_error()
    env = dict(os.environ, TD_E2E_NETNS="1" if isolated else "0")
    start = time.monotonic()
    with open(output_path, "wb") as out:
        proc = subprocess.Popen(_child_command(test_id, tmp, result_path, limit),
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        timed_out = _wait_child(proc, limit)
    _kill_group(proc.pid)
    seconds = time.monotonic() - start
    with open(output_path, "r", errors="replace") as f:
        output = f.read()
    try:
        with open(result_path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        why = ("timed out after %g s (killed)" % limit if timed_out
               else "test process died (rc %s)" % proc.returncode)
        result = {"status": "fail", "reason": why}
    return Outcome(test_id, result["status"], result.get("reason"), seconds, output, tmp)


def _indent(text, prefix="    | "):
    return "\n".join(prefix + line for line in text.rstrip("\n").split("\n"))


def report(outcome, require_all, verbose):
    """Print one test's line (and, for failures, its captured output)."""
    status = outcome.status
    reason = outcome.reason
    if status == "skip" and require_all:
        status = "fail"
        reason = "skipped (%s), but TEARDOWN_REQUIRE_ROOT_TESTS=1 forbids skips" % reason
        outcome.status = "fail"
    timing = "%6.2fs" % outcome.seconds if status != "skip" else "       "
    line = "%-4s %s  %s" % (status.upper(), timing, outcome.test_id)
    if reason:
        line += "  -- %s" % reason
    print(line, flush=True)
    if (status == "fail" or verbose) and outcome.output.strip():
        print(_indent(outcome.output), flush=True)
    if status == "fail" and outcome.tmp:
        print("    files kept in %s" % outcome.tmp, flush=True)


def _finish_tmp(outcome, keep):
    if outcome.tmp and outcome.status != "fail" and not keep:
        shutil.rmtree(outcome.tmp, ignore_errors=True)


def parse_args(argv):
    """The command line of the runner (the --child options are internal)."""
    p = argparse.ArgumentParser(description="Run teardown's end-to-end tests.")
    p.add_argument("filters", nargs="*", metavar="FILTER",
                   help="run only tests whose module::function id contains FILTER")
    p.add_argument("--list", action="store_true", help="list the tests and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the captured output of passing tests too")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    p.add_argument("--keep", action="store_true", help="keep every test's temporary directory")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=float, default=DEFAULT_TIMEOUT, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _selected(tests, filters):
    if not filters:
        return tests
    return [t for t in tests if any(f in t[0] for f in filters)]


def _closed_ancestor(path):
    """The first directory on the way to ``path`` that other users cannot
    pass through (no o+x), or None."""
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        d = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(d)
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return d
    return None


def main(argv):
    """Discover, filter and run the tests; return the exit status."""
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, args.tmp, args.result, args.limit)
    tests = _selected(discover(), args.filters)
    if args.list:
        for test_id, _, _ in tests:
            print(test_id)
        return 0
    if not tests:
        print("no tests match %s" % " ".join(args.filters), file=sys.stderr)
        return 1
    require_all = os.environ.get("TEARDOWN_REQUIRE_ROOT_TESTS") == "1"
    if os.geteuid() != 0:
        mode = "not root: tests that need root are skipped"
    elif tdlib.netns_error():
        mode = "root, but %s" % tdlib.netns_error()
    else:
        mode = "root: one network namespace per test"
    print("teardown e2e: %d test(s), build %s, %s" % (len(tests), tdlib.build_dir(), mode),
          flush=True)
    closed = os.geteuid() == 0 and _closed_ancestor(tdlib.build_dir())
    if closed:
        # tests run programs as nobody, postgres, www-data..., through
        # build/teardown and build/libteardown.so: each would fail alone
        # with "libteardown.so not found"
        print("teardown e2e: %s is mode %o: other users cannot reach %s, and the tests run "
              "programs as other users; chmod o+x %s (or work in another directory)"
              % (closed, stat.S_IMODE(os.stat(closed).st_mode), tdlib.build_dir(), closed),
              file=sys.stderr, flush=True)
        return 2
    base_tmp = tempfile.mkdtemp(prefix="td-e2e-")
    os.chmod(base_tmp, 0o755)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    start = time.monotonic()
    try:
        for test_id, func, import_error in tests:
            if import_error:
                outcome = Outcome(test_id, "fail", "import failed", output=import_error)
            else:
                outcome = run_test(test_id, func, base_tmp)
            report(outcome, require_all, args.verbose)
            counts[outcome.status] += 1
            _finish_tmp(outcome, args.keep)
            if args.exitfirst and outcome.status == "fail":
                break
    finally:
        if not os.listdir(base_tmp):
            os.rmdir(base_tmp)
    print("%d passed, %d failed, %d skipped in %.1f s" % (
        counts["pass"], counts["fail"], counts["skip"], time.monotonic() - start), flush=True)
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
