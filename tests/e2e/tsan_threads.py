"""No data race: the library under ThreadSanitizer (``make tsan``).

Run only by ``make tsan`` (TD_E2E_SUITE=tsan, TD_TSAN=1), against a build
of the library and of the test programs with clang -fsanitize=thread:
threads closing while others open, dup()ed sockets closed from two
threads, fork() and signal handlers among them, the worker draining and
firing timers while the program closes, and fd numbers reused at once.
Each test fails on any ThreadSanitizer report (data race, signal-unsafe
call in a handler, ...), and checks that the program saw no error and
that the policy did its work (the audit log).
"""

import os

import tdlib

NEEDS = ("root", "netns", "lib")


def _log():
    return os.path.join(tdlib.tmpdir(), "audit.jsonl")


def _run(args, rules, log, timeout=120.0, rcs=(0,), **top):
    env = tdlib.shim_env(policy=tdlib.policy_text(rules, log, **top))
    proc = tdlib.run([tdlib.test_prog(args[0])] + [str(a) for a in args[1:]], env=env,
                     timeout=timeout, name=args[0])
    reports = tdlib.tsan_reports()
    assert reports == [], "ThreadSanitizer: %d report(s); the first:\n%s" % (
        len(reports), reports[0][:6000])
    records = proc.json_lines()
    assert records, "%s printed nothing (rc %s): %s" % (proc.name, proc.rc, proc.stderr())
    assert proc.rc in rcs, "%s exited %s: %r %s" % (proc.name, proc.rc, records[-1],
                                                    proc.stderr()[-2000:])
    return records[-1]


def _events(log, kind):
    return [e for e in tdlib.read_log(log) if e["event"] == kind]


@tdlib.requires(*NEEDS)
@tdlib.timeout(180)
def test_mix_under_drain_with_log():
    """thread_mix (4 threads, dup/fork/signals/hand-offs) under "drain"
    with a JSON log: the worker drains while the threads close."""
    log = _log()
    res = _run(["thread_mix", 4, 4000],
               [{"name": "all", "close": "drain", "drain_timeout_ms": 1000}], log)
    assert res["cycles"] > 0 and res["failed"] == 0 and res["forks"] > 0, res
    closes = [e for e in _events(log, "close") if e["action"] == "drain"]
    assert len(closes) >= res["cycles"], (len(closes), res)


@tdlib.requires(*NEEDS)
@tdlib.timeout(180)
def test_mix_under_abort_with_timed_resets():
    """thread_mix under "abort" with a reset 1 ms after each connect: the
    worker's timers fire on fd numbers the threads are reusing."""
    log = _log()
    res = _run(["thread_mix", 4, 4000],
               [{"name": "all", "close": "abort", "reuseaddr": True, "fin_timeout_s": 5,
                 "fault": {"rst_after_ms": 1}}], log, rcs=(0, 1))
    faults = _events(log, "fault")
    assert res["cycles"] > 0 and faults, "no timed reset fired: %r" % res
    # a cycle fails only where a reset landed inside its exchange
    assert res["failed"] <= len(faults), (res, len(faults))


@tdlib.requires(*NEEDS)
@tdlib.timeout(180)
def test_mix_observed_graceful_and_leaks():
    """thread_mix under "graceful" with the CLOSE_WAIT watcher on."""
    log = _log()
    res = _run(["thread_mix", 4, 4000],
               [{"name": "all", "close": "graceful", "leak_after_s": 1}], log)
    assert res["cycles"] > 0 and res["failed"] == 0, res
    assert _events(log, "close")


@tdlib.requires(*NEEDS)
@tdlib.timeout(180)
def test_close_socket_race():
    """host_race: threads racing close() and socket() on the same numbers,
    one port under "abort" with timed resets, one under no rule."""
    x, y = 20001, 20002
    log = _log()
    res = _run(["host_race", x, y, 5],
               [{"name": "x", "match": {"remote_port": x}, "close": "abort",
                 "reuseaddr": True, "fin_timeout_s": 7, "fault": {"rst_after_ms": 1}}], log)
    assert res["ok"] and res["reuse"] > 0, res


@tdlib.requires(*NEEDS)
@tdlib.timeout(180)
def test_fork_while_threads_are_inside_the_library():
    """host_stress fork: fork() while threads churn matched, drained sockets."""
    log = _log()
    res = _run(["host_stress", "fork", 60],
               [{"name": "all", "close": "drain", "drain_timeout_ms": 2000}], log)
    assert res["ok"] and res["hung"] == 0 and res["bad_exits"] == 0, res
