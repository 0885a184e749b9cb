"""The spool: a file target's lines in a shared mapping, written out in
batches (shim/rt/spool.c).

What must hold, however a process ends: every line reaches the log
whole, exactly once, and in its process's order (per connection: open
before close); a child's lines never come before its parent's earlier
ones; a process killed with lines still in its spool gets them into the
log at the next start of the library on that log (and `teardown report`
counts them before that); where no spool can be made, lines are written
one by one as before.

Timing is never asserted: a test that kills a process right after its
closes does not know whether the worker wrote the last batch first, so
it asserts only what holds either way.
"""

import collections
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import textwrap

import tdlib

import nginxconf

NEEDS = ("root", "netns", "lib", "teardown")
OBSERVE = [{"name": "observe", "close": "pass"}]
# shim/rt/spool.c: the first TD_SPOOL_AFTER lines of a process are written
# one by one, the spool is made at that line
SPOOL_AFTER = 16


def _env(log, extra=None):
    return tdlib.shim_env(policy=tdlib.policy_text(OBSERVE, log), extra=extra)


def _spools(log, pid=None):
    """The spool files next to log (".NAME.spool.PID.HEX"), of pid or all."""
    d, base = os.path.split(log)
    pat = re.compile(r"\.%s\.spool\.(\d+)\.[0-9a-f]{16}" % re.escape(base))
    found = []
    for name in os.listdir(d):
        m = pat.fullmatch(name)
        if m and (pid is None or int(m.group(1)) == pid):
            found.append(os.path.join(d, name))
    return found


def _root_slots(log):
    """The spool files that processes which gave up root took
    (".NAME.spool.root-K", shim/rt/spool.c): slots, not named for a pid."""
    d, base = os.path.split(log)
    pat = re.compile(r"\.%s\.spool\.root-\d+" % re.escape(base))
    return sorted(os.path.join(d, n) for n in os.listdir(d) if pat.fullmatch(n))


def _lines(log):
    """The log's lines, each checked whole: JSON, one object, newline-ended."""
    with open(log, "rb") as f:
        data = f.read()
    assert b"\0" not in data, "NUL bytes in %s" % log
    assert data == b"" or data.endswith(b"\n"), "%s ends mid-line" % log
    recs = []
    for i, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError("%s:%d is not one JSON line: %r" % (log, i, line[:300])) from None
        assert isinstance(rec, dict) and "event" in rec, (i, line[:300])
        recs.append(rec)
    return recs


def _check_connections(recs, pid):
    """Per connection of process pid (its role and both addresses): open
    (connect or accept), then close, then the next one on the same
    addresses; each line once.  Returns {role: connections}."""
    seq = collections.defaultdict(list)
    for r in recs:
        if r["pid"] != pid or r["event"] not in ("connect", "accept", "close"):
            continue
        if r["role"] not in ("client", "server"):
            continue
        seq[(r["role"], r["local"], r["remote"])].append(r["event"])
    count = collections.Counter()
    for (role, local, remote), events in seq.items():
        opening = "connect" if role == "client" else "accept"
        want = [opening, "close"] * (len(events) // 2)
        assert events == want, "%s %s -> %s: %r" % (role, local, remote, events)
        count[role] += len(events) // 2
    return count


def _burst(log, threads, cycles, *end, env=None, name="burst"):
    return tdlib.run([tdlib.test_prog("log_burst"), threads, cycles] + list(end),
                     env=env or _env(log), name=name, timeout=60)


def _expected(threads, cycles):
    return threads * (4 * cycles + 2)


def _need_burst():
    if not os.path.exists(tdlib.test_prog("log_burst")):
        tdlib.skip("needs %s (make testprogs)" % tdlib.test_prog("log_burst"))


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_many_threads_every_line_whole_none_missing_in_order():
    """16 threads make 300 connect/accept/close cycles each at once, all
    logged: the log holds exactly 16 * (4 * 300 + 2) lines, each one JSON
    object on its own line, each connection's open before its close, every
    connection of every thread once; the process's spool is gone after its
    exit."""
    _need_burst()
    log = os.path.join(tdlib.tmpdir(), "threads.jsonl")
    threads, cycles = 16, 300
    proc = _burst(log, threads, cycles)
    assert proc.rc == 0, (proc.rc, proc.stderr())
    assert proc.stderr() == "", proc.stderr()
    recs = _lines(log)
    assert len(recs) == _expected(threads, cycles), (len(recs), _expected(threads, cycles))
    assert {r["pid"] for r in recs} == {proc.pid}
    count = _check_connections(recs, proc.pid)
    assert count == {"client": threads * cycles, "server": threads * cycles}, count
    events = collections.Counter(r["event"] for r in recs)
    assert events == {"bind": threads, "connect": threads * cycles, "accept": threads * cycles,
                      "close": threads * (2 * cycles + 1)}, events
    assert _spools(log) == [], _spools(log)


# A worker that does not write its spool out on its own (shim/rt/spool.c:
# TEARDOWN_SPOOL_FLUSH_MS, for tests): with a burst that stays under the
# ring's mark (a quarter of 256 kB; 2 x 10 cycles fill about 500 slots of
# 4096), every line after the first few is still in the spool when the
# process dies, and no batch can be half-written at that moment (a kill
# during a write of the log is the one case that can cut a line or repeat
# a batch: README, Limits).
HOLD = {"TEARDOWN_SPOOL_FLUSH_MS": "600000"}


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_sigkill_lines_reach_the_log_at_the_next_start():
    """A process (two threads, 10 cycles each) SIGKILLs itself right after
    its closes: no destructor, no last flush, and its worker holds its
    lines (HOLD).  Only the lines written before its spool was made are in
    the log; its spool file stays, named for it.  `teardown report` then
    counts every one of its lines, those in the log and those still in the
    spool (listed as a spool input, counted in _spooled).  The next
    program that starts the library on that log appends what the spool
    held: the log then has every line once, in order per connection, and
    the spool is gone; a further start appends nothing."""
    _need_burst()
    log = os.path.join(tdlib.tmpdir(), "killed.jsonl")
    proc = _burst(log, 2, 10, "kill", env=_env(log, HOLD))
    assert proc.rc == -signal.SIGKILL, proc.rc
    want = _expected(2, 10)
    spools = _spools(log, proc.pid)
    assert len(spools) == 1, os.listdir(tdlib.tmpdir())
    in_log = len(_lines(log))
    tdlib.note("in the log before recovery: %d of %d lines" % (in_log, want))
    assert SPOOL_AFTER <= in_log < want, (in_log, want)

    rep = tdlib.run([tdlib.teardown_cmd(), "report", "--format", "json", log], name="report")
    assert rep.rc == 0, rep.stderr()
    report = json.loads(rep.stdout())
    assert report["log_burst"]["events"] == want, report["log_burst"]
    assert report["_spooled"] == want - in_log, (report["_spooled"], want, in_log)
    assert report["_files"][spools[0]] == {"lines": want - in_log, "malformed": 0, "text": 0,
                                           "other": 0, "spool": True}, report["_files"]
    assert report["_files"][log]["lines"] == in_log, report["_files"]
    text = tdlib.run([tdlib.teardown_cmd(), "report", log], name="report-text").stdout()
    assert re.search(r"\n  %d lines are still in the spool of 1 process that ended before "
                     r"writing them to the log" % (want - in_log), text), text

    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    recs = _lines(log)
    assert len(recs) == want, (len(recs), want)
    assert _check_connections(recs, proc.pid) == {"client": 20, "server": 20}
    # the spool held events, formatted by `true`: each names its writer
    # (the header's host and prog), never the process that recovered it
    who = {(r["pid"], r["prog"], r["host"]) for r in recs}
    assert who == {(proc.pid, "log_burst", os.uname().nodename)}, who
    assert _spools(log) == [], _spools(log)
    tdlib.run(["true"], env=_env(log), name="again")
    assert len(_lines(log)) == want


def _spool_records(path):
    """(offset of each committed record's first byte, its length) in a
    spool file (include/teardown/spool.h): the lanes' words and slots lie
    one after another, so slot i's word is word i; from version 3 a record
    starts with its 8-byte key."""
    with open(path, "rb") as f:
        data = f.read()
    version = int.from_bytes(data[8:12], "little")
    nslots = int.from_bytes(data[20:24], "little")
    words, base = 4096, 4096 + nslots * 8
    key = 8 if version >= 3 else 0
    recs = []
    for i in range(nslots):
        w = int.from_bytes(data[words + 8 * i:words + 8 * i + 8], "little")
        if (w >> 16) & 3 == 2:  # TD_SW_COMMIT
            recs.append((base + 64 * i + key, (w & 0xffff) - key))
    return recs


def _spool_lanes(path):
    """{lane: committed records} of a spool file (include/teardown/spool.h:
    version 3 names its lanes at byte 28 and splits the slots evenly)."""
    with open(path, "rb") as f:
        data = f.read(4096)
    nslots = int.from_bytes(data[20:24], "little")
    nlanes = int.from_bytes(data[28:32], "little")
    assert int.from_bytes(data[8:12], "little") >= 3 and nlanes >= 1, data[:32]
    per = nslots // nlanes
    lanes = collections.Counter()
    for off, _ in _spool_records(path):
        lanes[(off - 4096 - nslots * 8) // 64 // per] += 1
    return nlanes, lanes


@tdlib.requires(*NEEDS)
@tdlib.timeout(120)
def test_lanes_keep_each_connections_order_across_cpus():
    """Lines go into the lane of the CPU their thread runs on.  Two
    threads pinned to two CPUs each connect and accept, and hand both ends
    to the other, which closes them at once (spool_handoff): each close
    line is caused by an accept line in the other CPU's lane, both ways.
    (Read lane by lane instead of by key, the log fails this.)  Written out by the
    worker as the program runs (a flush every millisecond: many merges of
    lanes still being written), at the program's exit, and, after a
    SIGKILL with the worker holding every line, by the next start's
    recovery and by `teardown report`: every connection's lines are in the
    log once, open before close, and the killed spool held lines in both
    CPUs' lanes."""
    prog = tdlib.test_prog("spool_handoff")
    if not os.path.exists(prog):
        tdlib.skip("needs %s (make testprogs)" % prog)
    if len(os.sched_getaffinity(0)) < 2:
        tdlib.skip("needs two CPUs to pin the two threads to")
    cycles = 1000
    want = 8 * cycles + 4
    log = os.path.join(tdlib.tmpdir(), "handoff.jsonl")
    proc = tdlib.run([prog, cycles], env=_env(log, {"TEARDOWN_SPOOL_FLUSH_MS": "1"}),
                     name="handoff", timeout=90)
    assert proc.rc == 0, (proc.rc, proc.stdout(), proc.stderr())
    recs = _lines(log)
    assert len(recs) == want, (len(recs), want)
    assert _check_connections(recs, proc.pid) == {"client": 2 * cycles, "server": 2 * cycles}
    assert _spools(log) == [], _spools(log)

    log = os.path.join(tdlib.tmpdir(), "handoff-killed.jsonl")
    cycles = 50
    want = 8 * cycles + 4
    proc = tdlib.run([prog, cycles, "kill"], env=_env(log, HOLD), name="handoff-kill",
                     timeout=90)
    assert proc.rc == -signal.SIGKILL, (proc.rc, proc.stderr())
    spools = _spools(log, proc.pid)
    assert len(spools) == 1, os.listdir(tdlib.tmpdir())
    nlanes, lanes = _spool_lanes(spools[0])
    tdlib.note("lanes %d, records by lane %r" % (nlanes, dict(lanes)))
    assert nlanes >= 2 and len(lanes) == 2, (nlanes, lanes)
    in_log = len(_lines(log))
    rep = tdlib.run([tdlib.teardown_cmd(), "report", "--format", "json", log], name="report")
    assert rep.rc == 0, rep.stderr()
    assert json.loads(rep.stdout())["spool_handoff"]["events"] == want, rep.stdout()[:2000]
    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    recs = _lines(log)
    assert len(recs) == want, (len(recs), want, in_log)
    assert _check_connections(recs, proc.pid) == {"client": 2 * cycles, "server": 2 * cycles}
    assert _spools(log) == [], _spools(log)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_unreadable_records_of_a_dead_spool_are_said_not_lost_in_silence():
    """A dead process's spool whose event records this build cannot read
    (another build's layout: here its layout word changed in the file)
    is recovered without them: the next start appends nothing wrong and
    says, once, how many lines of which process and spool were lost."""
    _need_burst()
    log = os.path.join(tdlib.tmpdir(), "other.jsonl")
    proc = _burst(log, 1, 10, "kill", env=_env(log, HOLD))
    assert proc.rc == -signal.SIGKILL, proc.rc
    spools = _spools(log, proc.pid)
    assert len(spools) == 1, os.listdir(tdlib.tmpdir())
    in_log = len(_lines(log))
    recs = _spool_records(spools[0])
    assert recs, "no record in the spool"
    with open(spools[0], "r+b") as f:
        for off, _ in recs:
            f.seek(off)
            assert f.read(1) == b"\x01", "not an event record at %d" % off
            f.seek(off + 4)  # the layout word
            f.write(b"\xff")
    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    assert len(_lines(log)) == in_log
    said = re.findall(r"(\d+) audit line\(s\) that process (\d+) left unfinished or "
                      r"unreadable in its spool (\S+) were lost", nxt.stderr())
    assert said == [(str(len(recs)), str(proc.pid), os.path.basename(spools[0]))], nxt.stderr()
    assert _spools(log) == [], _spools(log)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_abort_and_exec_lines_reach_the_log():
    """abort() (SIGABRT, no destructor) leaves its lines in the spool (the
    worker holds them: HOLD): the next start appends them.  A process that
    exec()s another program under the library leaves its spool behind
    (close-on-exec: the lock goes with the old image), and the new image
    appends it before its own lines: once it has exited the log holds both
    images' lines, the first's all before the second's."""
    _need_burst()
    log = os.path.join(tdlib.tmpdir(), "abort.jsonl")
    proc = tdlib.run(["sh", "-c", 'ulimit -c 0; exec "$@"', "sh",
                      tdlib.test_prog("log_burst"), 2, 10, "abort"], env=_env(log, HOLD),
                     name="abort")
    assert proc.rc == 128 + signal.SIGABRT or proc.rc == -signal.SIGABRT, proc.rc
    assert len(_lines(log)) < _expected(2, 10)
    assert len(_spools(log)) == 1, os.listdir(tdlib.tmpdir())
    tdlib.run(["true"], env=_env(log), name="next-start")
    recs = _lines(log)
    burst = [r for r in recs if r["prog"] == "log_burst"]
    assert len(burst) == _expected(2, 10), len(burst)
    _check_connections(burst, burst[0]["pid"])
    assert _spools(log) == [], _spools(log)

    log = os.path.join(tdlib.tmpdir(), "exec.jsonl")
    burst = tdlib.test_prog("log_burst")
    proc = _burst(log, 2, 10, "exec", burst, "second", "1", "10", env=_env(log, HOLD),
                  name="exec")
    assert proc.rc == 0, (proc.rc, proc.stderr())
    recs = _lines(log)
    assert {r["pid"] for r in recs} == {proc.pid}   # exec keeps the pid
    first, second = _expected(2, 10), _expected(1, 10)
    progs = [r["prog"] for r in recs]
    assert progs == ["log_burst"] * first + ["second"] * second, collections.Counter(progs)
    _check_connections(recs, proc.pid)
    assert _spools(log) == [], _spools(log)


# Python for the scripts below: n connect/accept/close cycles on a new
# listener (bind, then per cycle connect, accept and two closes, then the
# listener's close: _expected()'s count)
CYCLES = """
def cycles(n):
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    l.listen(64)
    for _ in range(n):
        c = socket.create_connection(l.getsockname())
        a, _ = l.accept()
        a.close()
        c.close()
    l.close()
"""

FORKER = r"""
import os, socket, sys
""" + CYCLES + r"""
cycles(int(sys.argv[1]))          # the parent, before the fork
pid = os.fork()
if pid == 0:
    cycles(int(sys.argv[2]))      # the child
    if sys.argv[3] == "_exit":
        os._exit(0)
    sys.exit(0)
cycles(int(sys.argv[1]))          # the parent, after
_, status = os.waitpid(pid, 0)
print(pid, status, flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_fork_child_lines_never_before_the_parents():
    """A parent logs 30 cycles (its spool holds lines), forks; the child
    logs 30 cycles of its own and ends, by exit() once and by _exit() once
    (no destructor: the library writes its spool out in _exit); the parent
    logs 30 more.  Every line of the parent's from before the fork comes
    before every line of the child's, all lines of both are there, each
    connection open before close, and no spool is left."""
    script = os.path.join(tdlib.tmpdir(), "forker.py")
    with open(script, "w") as f:
        f.write(FORKER)
    for how in ("exit", "_exit"):
        log = os.path.join(tdlib.tmpdir(), "fork-%s.jsonl" % how)
        proc = tdlib.run(["python3", script, "30", "30", how], env=_env(log), name="fork-" + how,
                         timeout=30)
        assert proc.rc == 0, (proc.rc, proc.stderr())
        child, status = (int(x) for x in proc.stdout().split())
        assert status == 0, status
        recs = _lines(log)
        parent = proc.pid
        mine = [i for i, r in enumerate(recs) if r["pid"] == parent]
        theirs = [i for i, r in enumerate(recs) if r["pid"] == child]
        # each side: 30 cycles of 4 lines and a listener's bind and close;
        # the parent twice; the child also has "exit" lines for the
        # parent's sockets it inherited (none here: all closed before)
        assert len(mine) == 2 * (4 * 30 + 2), len(mine)
        assert len(theirs) == 4 * 30 + 2, (len(theirs), [recs[i] for i in theirs[:3]])
        before_fork = mine[:4 * 30 + 2]
        assert max(before_fork) < min(theirs), (max(before_fork), min(theirs))
        assert _check_connections(recs, parent) == {"client": 60, "server": 60}
        assert _check_connections(recs, child) == {"client": 30, "server": 30}
        assert _spools(log) == [], (how, _spools(log))


# A fork-per-connection server: the parent accepts, forks a child that
# answers and closes, closes its own copies and waits; 4 lines of its own
# between forks.
FORK_PER_CONN = r"""
import os, socket, sys
n, logdir = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
kids = []
for _ in range(n):
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    pid = os.fork()
    if pid == 0:
        ls.close()
        c.close()
        s.sendall(b"x")
        s.close()
        os._exit(0)
    kids.append(pid)
    s.close()
    c.recv(1)
    c.close()
    os.waitpid(pid, 0)
threads = len(os.listdir("/proc/self/task"))
spools = [f for f in os.listdir(logdir) if ".spool." in f]
ls.close()
print(threads, len(spools), " ".join(map(str, kids)), flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_fork_per_connection_parent_stays_direct():
    """A parent that forks a child per connection writes 4 lines between
    forks, never 16 in a row: it makes no spool and starts no thread (its
    ring would be written out at every fork anyway, and a second thread
    makes every fork dearer).  Its 40 connections' lines and each child's
    are all there, whole, and each child's lines come after the parent's
    accept of that connection."""
    script = os.path.join(tdlib.tmpdir(), "fork_per_conn.py")
    with open(script, "w") as f:
        f.write(FORK_PER_CONN)
    n = 40
    log = os.path.join(tdlib.tmpdir(), "fpc.jsonl")
    proc = tdlib.run(["python3", script, str(n), tdlib.tmpdir()], env=_env(log), name="fpc",
                     timeout=40)
    assert proc.rc == 0, (proc.rc, proc.stderr())
    out = proc.stdout().split()
    threads, spools, kids = int(out[0]), int(out[1]), [int(x) for x in out[2:]]
    assert threads == 1, "the library started a thread in a forking parent: %d" % threads
    assert spools == 0, "a spool was made while the parent ran"
    assert _spools(log) == [], _spools(log)
    assert len(kids) == n, kids
    recs = _lines(log)
    parent = proc.pid
    mine = [i for i, r in enumerate(recs) if r["pid"] == parent]
    # bind, then per connection connect, accept and two closes, then the
    # listener's close
    assert len(mine) == 4 * n + 2, len(mine)
    accepts = [i for i in mine if recs[i]["event"] == "accept"]
    assert len(accepts) == n, len(accepts)
    for k, kid in enumerate(kids):
        theirs = [i for i, r in enumerate(recs) if r["pid"] == kid]
        # the listener's, the client's and the served connection's closes
        assert len(theirs) == 3, (kid, [recs[i] for i in theirs])
        assert min(theirs) > accepts[k], (k, accepts[k], theirs)
    assert _check_connections(recs, parent) == {"client": n, "server": n}


@tdlib.requires(*NEEDS, "setpriv")
@tdlib.timeout(60)
def test_no_spool_where_the_directory_is_not_writable():
    """The log file is writable by the program's user (nobody) but its
    directory is not: no spool can be made there, so lines are written one
    by one, as before the spool existed.  Nothing is lost and nothing is
    said: the log holds every line of 4 threads' 100 cycles, whole and in
    order, stderr is empty, and the directory holds no spool."""
    _need_burst()
    d = os.path.join(tdlib.tmpdir(), "ro")
    os.mkdir(d, 0o755)     # root's: nobody cannot create files in it
    log = os.path.join(d, "audit.jsonl")
    open(log, "w").close()
    os.chown(log, 65534, 65534)
    os.chmod(log, 0o600)
    os.chmod(tdlib.tmpdir(), 0o755)
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--"]
    env = _env(log)
    proc = tdlib.run(nobody + ["env", "LD_PRELOAD=" + env.pop("LD_PRELOAD"),
                               tdlib.test_prog("log_burst"), "4", "100"],
                     env=env, name="nobody", timeout=60)
    assert proc.rc == 0, (proc.rc, proc.stderr())
    assert proc.stderr() == "", proc.stderr()
    recs = _lines(log)
    assert len(recs) == _expected(4, 100), len(recs)
    pid = recs[0]["pid"]
    assert _check_connections(recs, pid) == {"client": 400, "server": 400}
    assert sorted(os.listdir(d)) == ["audit.jsonl"], os.listdir(d)


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_a_process_that_gives_up_root_makes_its_spool_first():
    """A server's worker (nginx's, apache2's children) starts as root and
    gives up root (setgid, setuid) before its work, while its log lies in
    a directory only root may write: after the drop no spool could be
    made there, and each of its lines would be one write().  The library
    takes the spool's file in setuid(), while the process still may: a
    slot (".NAME.spool.root-K") that the next such process takes up again.

    Killed with lines in its spool (2 threads, 10 cycles, HOLD), the
    process left its slot, owned by root, and only its first lines are in
    the log: its later lines went through the spool.  The next start of
    the library on that log, as root, appends them and removes the spool:
    every line once, in order per connection.  Ending normally, the
    process writes its spool out but may not remove it: `teardown report`
    counts no line in it and lists no spool, and the next start removes
    it.

    Catches: the spool never made after the drop (the build before: every
    line in the log at the kill, no spool); a spool the process cannot
    write out, or one written out twice."""
    _need_burst()
    d = os.path.join(tdlib.tmpdir(), "rootonly")
    os.mkdir(d, 0o755)     # root's: nobody cannot make files in it
    os.chmod(tdlib.tmpdir(), 0o755)
    log = os.path.join(d, "audit.jsonl")
    want = _expected(2, 10)
    drop = {"LOG_BURST_UID": "65534"}

    proc = _burst(log, 2, 10, "kill", env=_env(log, dict(HOLD, **drop)), name="killed")
    assert proc.rc == -signal.SIGKILL, (proc.rc, proc.stderr())
    spools = _root_slots(log)
    assert len(spools) == 1 and _spools(log) == [], os.listdir(d)
    st = os.stat(spools[0])
    assert st.st_uid == 0 and st.st_size > 0, st
    in_log = len(_lines(log))
    assert SPOOL_AFTER <= in_log < want, (in_log, want)
    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    recs = _lines(log)
    assert len(recs) == want, (len(recs), want)
    assert _check_connections(recs, proc.pid) == {"client": 20, "server": 20}
    # every line after the drop names the user it dropped to
    assert {r["uid"] for r in recs} == {65534}, collections.Counter(r["uid"] for r in recs)
    assert _root_slots(log) == [], os.listdir(d)

    proc = _burst(log, 2, 10, env=_env(log, drop), name="ended")
    assert proc.rc == 0, (proc.rc, proc.stderr())
    recs = _lines(log)
    assert len(recs) == 2 * want, (len(recs), want)
    assert _check_connections(recs, proc.pid) == {"client": 20, "server": 20}
    left = _root_slots(log)
    assert len(left) == 1, os.listdir(d)
    rep = tdlib.run([tdlib.teardown_cmd(), "report", "--format", "json", log], name="report")
    assert rep.rc == 0, rep.stderr()
    report = json.loads(rep.stdout())
    assert report.get("_spooled", 0) == 0, report["_spooled"]
    assert list(report["_files"]) == [log], report["_files"]
    nxt = tdlib.run(["true"], env=_env(log), name="last-start")
    assert nxt.rc == 0, nxt.stderr()
    assert _root_slots(log) == [] and _spools(log) == [], os.listdir(d)
    assert len(_lines(log)) == 2 * want


@tdlib.requires(*NEEDS, "nginx")
@tdlib.timeout(90)
def test_nginx_workers_as_www_data_make_their_spools():
    """nginx as Debian runs it: a root master and a worker that gives up
    root for www-data ("user www-data"), its log in a directory only root
    may make files in.  The worker makes its spool in setuid(), before the
    drop, and its lines go through it: 30 requests, each on a new
    connection, and every accept and close of the worker is in the log
    once, accept first; the worker's spool, a slot owned by root, is
    left once nginx quits (the worker may not remove it), and
    the next start of the library on that log as root removes it.  Every
    line of the worker names www-data's uid, from its first.

    Catches: a worker that writes each line on its own (the build before:
    no spool of the worker's), and lines that name root for up to 100 ms
    after the drop (the uid was read again only that often)."""
    try:
        www = pwd.getpwnam("www-data").pw_uid
    except KeyError:
        tdlib.skip("no www-data user")
    os.chmod(tdlib.tmpdir(), 0o755)
    d = os.path.join(tdlib.tmpdir(), "rootonly")
    os.mkdir(d, 0o755)
    log = os.path.join(d, "audit.jsonl")
    root = os.path.join(tdlib.tmpdir(), "www")
    os.mkdir(root, 0o755)
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("hello\n")
    os.chmod(os.path.join(root, "index.html"), 0o644)
    port = 8093
    argv = nginxconf.write(os.path.join(tdlib.tmpdir(), "nginx"), port, root, workers=1,
                           master=True, http=["keepalive_timeout 0;"], user="www-data")
    nginx = tdlib.spawn(argv, env=_env(log), name="nginx")
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return not nginx.running()
        tdlib.wait_until(up, what="nginx listening")
        assert nginx.running(), nginx.stderr()
        for _ in range(30):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                while c.recv(4096):
                    pass
        nginx.signal(signal.SIGQUIT)
        assert nginx.wait(20) == 0, nginx.stderr()
    finally:
        nginx.kill()
    recs = _lines(log)
    workers = {r["pid"] for r in recs if r["event"] == "accept"}
    assert len(workers) == 1, workers
    worker = workers.pop()
    assert {r["uid"] for r in recs if r["pid"] == worker} == {www}, [
        r for r in recs if r["pid"] == worker][:3]
    # (the 30, and the probes that waited for nginx to listen)
    accepts = sum(1 for r in recs if r["pid"] == worker and r["event"] == "accept")
    assert accepts >= 30, accepts
    assert _check_connections(recs, worker) == {"server": accepts}, recs
    left = _root_slots(log)
    assert len(left) == 1 and _spools(log) == [], os.listdir(d)
    st = os.stat(left[0])
    assert st.st_uid == 0 and st.st_size > 0, st
    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    assert _root_slots(log) == [], os.listdir(d)
    assert len(_lines(log)) == len(recs)


# A fork-per-connection server that gives up root in each child, as
# vsftpd does: each child drops to nobody, makes one connection (a few
# lines, never a spool's worth) and exits.
DROP_PER_CHILD = r"""
import json, os, socket, sys
n = int(sys.argv[1])
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        # (nothing is imported after the drop: nobody may not read python's
        # own files where it is installed under root's home)
        os.setgid(65534); os.setuid(65534)
        lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
        cli = socket.socket(); cli.connect(lst.getsockname())
        srv, _ = lst.accept()
        srv.close(); cli.close(); lst.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    kids.append(pid)
print(json.dumps({"kids": kids}), flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_children_that_give_up_root_one_after_another_share_one_slot():
    """A server that forks and gives up root for every connection (vsftpd,
    sshd's sessions): each child takes the spool slot its predecessor
    left, empty, rather than a file of its own that it could not remove
    (one open and a lock a child, no directory entry made or removed).  20
    children one after another: the directory holds one slot, empty, and
    the log every line of every child (6 each: the listener's bind and
    close, connect, accept, two closes), each naming uid 65534.

    Catches: a file left per child (a spool named for each pid), or the
    slot's lines lost."""
    d = os.path.join(tdlib.tmpdir(), "rootonly")
    os.mkdir(d, 0o755)
    os.chmod(tdlib.tmpdir(), 0o755)
    log = os.path.join(d, "audit.jsonl")
    script = os.path.join(tdlib.tmpdir(), "drop_per_child.py")
    with open(script, "w") as f:
        f.write(DROP_PER_CHILD)
    proc = tdlib.run(["python3", script, "20"], env=_env(log), name="dropper", timeout=30)
    assert proc.rc == 0, proc.stderr()
    kids = json.loads(proc.stdout().splitlines()[-1])["kids"]
    slots = _root_slots(log)
    assert len(slots) == 1 and _spools(log) == [], os.listdir(d)
    assert os.stat(slots[0]).st_size == 0, os.stat(slots[0])
    recs = _lines(log)
    for kid in kids:
        mine = [r for r in recs if r["pid"] == kid]
        assert len(mine) == 6, (kid, mine)
        assert {r["uid"] for r in mine} == {65534}, mine
    nxt = tdlib.run(["true"], env=_env(log), name="next-start")
    assert nxt.rc == 0, nxt.stderr()
    assert _root_slots(log) == [], os.listdir(d)


LOCK_KEEPER = r"""
import os, socket, sys, time
""" + CYCLES + r"""
cycles(30)
# a daemon's way of closing what it inherited: every number, one by one
for fd in range(3, 4096):
    try:
        os.close(fd)
    except OSError:
        pass
print("closed", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
cycles(30)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_program_closing_every_fd_keeps_its_spool():
    """A program that closes every descriptor number one by one (as
    daemons do) after its spool was made still owns its spool: another
    program starting the library on the same log meanwhile leaves the
    spool alone (its lock is held: it moved to a new number before the
    close), and once the first one has gone on and exited, the log holds
    each of its lines exactly once, in order per connection."""
    script = os.path.join(tdlib.tmpdir(), "keeper.py")
    with open(script, "w") as f:
        f.write(LOCK_KEEPER)
    log = os.path.join(tdlib.tmpdir(), "keeper.jsonl")
    go = os.path.join(tdlib.tmpdir(), "go")
    proc = tdlib.spawn(["python3", script, go], env=_env(log), name="keeper")
    tdlib.wait_until(lambda: "closed" in proc.stdout() or not proc.running(), timeout=30,
                     what="the program to close its fds")
    assert proc.running(), proc.stderr()
    assert len(_spools(log, proc.pid)) == 1, os.listdir(tdlib.tmpdir())
    other = tdlib.run(["true"], env=_env(log), name="other-start")
    assert other.rc == 0
    assert len(_spools(log, proc.pid)) == 1, "another start took a live process's spool"
    open(go, "w").close()
    assert proc.wait(30) == 0, proc.stderr()
    recs = _lines(log)
    assert len(recs) == 2 * (4 * 30 + 2), len(recs)
    assert _check_connections(recs, proc.pid) == {"client": 60, "server": 60}
    assert _spools(log) == [], _spools(log)


MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "spool_wake.pml")


def _spin(*defines):
    """Check tests/model/spool_wake.pml with spin under the defines; return
    pan's output."""
    d = os.path.join(tdlib.tmpdir(), "spin" + "".join(defines).replace("-D", "_"))
    os.makedirs(d)
    shutil.copy(MODEL, d)
    for cmd in (["spin"] + list(defines) + ["-a", "spool_wake.pml"],
                ["gcc", "-O2", "-o", "pan", "pan.c"]):
        r = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
    r = subprocess.run(["./pan"], cwd=d, capture_output=True, text=True, timeout=120)
    m = re.search(r"errors: (\d+)", r.stdout)
    assert m, r.stdout[-2000:]
    return int(m.group(1)), r.stdout


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_the_flusher_asks_who_was_first_in_batches():
    """An active close's question, who sent the first FIN, goes with its
    record: the closing thread makes no lookup once its lines go through
    the spool, and the worker asks a batch's lookups with one sendto()
    and one recvmmsg() (a count, not a time).  audit_loop's 1,000 cycles
    under strace: the server's close of each is active, and its line
    says so, with TIME_WAIT.  Before, each close made its own lookup
    (sendto() and recv() on the closing thread, 1,000 of each); with a
    flusher that asked only the first 32 records of each batch, the rest
    one by one, the worker made 700 of each."""
    log = os.path.join(tdlib.tmpdir(), "batch.jsonl")
    trace = os.path.join(tdlib.tmpdir(), "batch.strace")
    n = 1000
    proc = tdlib.run(["strace", "-f", "-qq", "-o", trace, "-e", "trace=sendto,recvmmsg,recvfrom",
                      tdlib.test_prog("audit_loop"), str(n)], env=_env(log), name="audit_loop",
                     timeout=50)
    assert proc.rc == 0, proc.stderr()
    closes = [r for r in _lines(log) if r["event"] == "close" and r["role"] == "server"]
    assert len(closes) == n
    calls = collections.Counter()
    for line in open(trace):
        m = re.match(r"(\d+) +(sendto|recvmmsg|recvfrom)\(", line)
        if m:
            calls[(int(m.group(1)) == closes[0]["tid"], m.group(2))] += 1
    assert all(r["closer"] == "active" and r["time_wait"] is True for r in closes), \
        [r for r in closes if r["closer"] != "active"][:3]
    # the first SPOOL_AFTER lines (4 a cycle) are written one by one by
    # the closing thread, each close asking at once (recvfrom); after
    # that it asks only as a flusher, in batches (recvmmsg): when the
    # ring is full, and at exit
    assert calls[(True, "recvfrom")] <= SPOOL_AFTER // 4 + 1, calls
    assert calls[(True, "sendto")] == calls[(True, "recvfrom")] + calls[(True, "recvmmsg")]
    assert calls[(False, "recvfrom")] == 0, calls
    assert calls[(False, "sendto")] == calls[(False, "recvmmsg")] > 0, calls
    assert calls[(True, "recvmmsg")] + calls[(False, "recvmmsg")] <= n // 8, calls


def _calls_by_thread(trace):
    """strace -f's lines from the first connect() on (the program's and
    the library's start left out) counted by (tid, system call); an
    8-byte write() of 1, a wake-up of the flusher through its eventfd,
    as "wake"."""
    calls = collections.Counter()
    started = False
    for line in open(trace):
        m = re.match(r"(\d+) +(\w+)\(", line)
        started = started or (m is not None and m.group(2) == "connect")
        if m and started:
            name = m.group(2)
            if name == "write" and re.search(r'write\(\d+, "\\1\\0\\0\\0\\0\\0\\0\\0", 8', line):
                name = "wake"
            calls[(int(m.group(1)), name)] += 1
    return calls


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(90)
def test_an_observed_loop_thread_makes_the_limits_system_calls():
    """The loop bench's limit (tests/bench/loop.py): `audit_loop N limit`
    makes, with no library, the system calls a close event's facts need,
    one getsockname() after each connect and one TCP_INFO before each
    close, and writes its records to shared memory with none.  Observed
    with a JSON log, the library's loop thread makes those and, past the
    spool's first lines, nothing else of its own but a rare wake-up of
    its flusher: the limit row measures the same work the library must
    do.  (A count, not a time; the worker's calls are its own thread's.)"""
    n = 1000
    counts = {}
    for case in ("limit", "observe"):
        log = os.path.join(tdlib.tmpdir(), "limit-%s.jsonl" % case)
        trace = os.path.join(tdlib.tmpdir(), "limit-%s.strace" % case)
        argv = [tdlib.test_prog("audit_loop"), str(n)]
        env = _env(log)
        if case == "limit":
            argv.append("limit")
            env = tdlib.shim_env(preload=False)
        proc = tdlib.run(["strace", "-f", "-qq", "-o", trace] + argv, env=env,
                         name="audit_loop " + case, timeout=60)
        assert proc.rc == 0, proc.stderr()
        calls = _calls_by_thread(trace)
        # the loop's thread: the one that connects (the worker never does)
        main = max((k, t) for (t, c), k in calls.items() if c == "connect")[1]
        counts[case] = collections.Counter({c: k for (t, c), k in calls.items() if t == main})
        if case == "observe":
            ends = [r for r in _lines(log) if r["event"] in ("connect", "accept", "close") and
                    r["role"] in ("client", "server")]
            assert len(ends) == 4 * n, len(ends)
    lim, obs = counts["limit"], counts["observe"]
    # the limit: the loop's own calls and the facts' three a cycle
    assert lim["getsockname"] == n and lim["getsockopt"] == 2 * n, lim
    for name in ("socket", "connect", "accept", "close", "getsockname"):
        assert abs(obs[name] - lim[name]) <= 2 * SPOOL_AFTER, (name, obs[name], lim[name])
    # TCP_INFO before each close (the listener's at the end too), never
    # a second read of the same close
    assert 2 * n <= obs["getsockopt"] <= 2 * n + 1, obs
    # the flusher's wake-ups: how many depends on when it sleeps, at most
    # one a line (td_spool_record()); here about one in 35
    assert obs["wake"] <= 4 * n, obs
    # beyond those: the first lines, written and asked one by one, the
    # spool's making, and the exit's last lines: none a cycle
    extra = sum(obs.values()) - sum(obs[c] for c in lim) - obs["wake"]
    assert extra <= 100, (extra, obs)


@tdlib.requires("spin", "gcc")
@tdlib.timeout(120)
def test_wake_protocol_leaves_no_line_behind():
    """The writers' wake-up of the flusher (tests/model/spool_wake.pml,
    checked by spin over every interleaving of 3 writers and the flusher):
    once the writers are done and the flusher sleeps, every line has been
    written out.  The commit is a release store, so a writer may look at
    the flag before its line is seen; the flusher that stops at such a line
    re-arms itself.  Without the re-arming spin finds a line left behind
    (so the model can fail); with the old seq_cst commit it needed none."""
    errors, out = _spin()
    assert errors == 0, out[-3000:]
    assert "assertion violated" not in out, out[-3000:]
    errors, out = _spin("-DNO_REARM")
    assert errors >= 1 and "assertion violated" in out, out[-3000:]
    errors, out = _spin("-DNO_REARM", "-DSEQ_CST_COMMIT")
    assert errors == 0, out[-3000:]
