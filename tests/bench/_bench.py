"""What the benchmarks share: where the build is, a clean environment,
callgrind instruction counts, strace system-call counts, private network
namespaces, alternating timed runs, policies, and the one table every
part adds its rows to.  (A helper, not a benchmark: run.py skips "_" files.)

The table.  Each part (calls.py, loop.py, ...) makes a Table and adds
rows: what was measured, the figures (bare, a reference such as the
forwarding-only floor or strace, the library), the figure that matters
(a ratio or a difference), its target and whether the target is met.
Targets are reported, never asserted: no part fails on a figure.  When
$TD_BENCH_ROWS names a file (run.py sets it) the rows are appended to it
as JSON lines and run.py prints one table of every part at the end;
otherwise the part prints its own rows as that table.
"""

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TD_BUILD", "build")
BUILD = BUILD if os.path.isabs(BUILD) else os.path.join(REPO, BUILD)
LIB = os.path.join(BUILD, "libteardown.so")
CLI = os.path.join(BUILD, "teardown")


def build_path(*parts):
    """A path under the build directory ($TD_BUILD, default build)."""
    return os.path.join(BUILD, *parts)


def prog(name):
    """A test program (tests/progs/NAME.c) or preloadable double (libNAME.c)."""
    if name.startswith("lib"):
        return build_path("tests", "progs", name + ".so")
    return build_path("tests", "progs", name)


FLOOR = prog("libfloor")


def missing(*paths):
    """The paths (programs, the library) that are not built."""
    return [p for p in paths if not os.path.exists(p)]


def clean_env():
    """This environment without the library or a policy in it."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("TEARDOWN_")}


def say(*args):
    """A progress line on stderr (run.py shows it as it comes)."""
    print(*args, file=sys.stderr, flush=True)


# --- policies -------------------------------------------------------------

def policy(rules, log=None, fmt="json"):
    """Policy text: rules is a list of rule bodies ("close = \\"abort\\";
    log = false;"), log an absolute path for the audit log (or None: the
    default, stderr, which rules with log = false never write to)."""
    text = "version = 1;\n"
    if log:
        text += 'log = { target = "%s"; format = "%s"; };\n' % (log, fmt)
    body = ",\n".join("  { %s }" % r for r in rules)
    return text + "rules = (\n%s\n);\n" % body


def policy_env(text, lib=LIB, base=None):
    """The environment that preloads lib with the policy text."""
    return dict(base if base is not None else clean_env(), LD_PRELOAD=lib, TEARDOWN_POLICY=text)


def write_policy(path, text):
    """Write a policy file (for TEARDOWN_CONFIG); return its path."""
    with open(path, "w") as f:
        f.write(text)
    return path


# --- counting -------------------------------------------------------------

def callgrind(argv, env, phase, per, what=None):
    """Run argv under callgrind, counting user-space instructions only
    inside the function phase (--toggle-collect); return (instructions /
    per, the CompletedProcess).  A failed run raises RuntimeError, named
    by what (default: the program's name)."""
    fd, out = tempfile.mkstemp(prefix="cg.")
    os.close(fd)
    # --fair-sched=yes: valgrind runs one thread at a time, and without it
    # a thread woken by another (the library's worker, woken to write the
    # spool out) may wait for the big lock until the ring is full, and
    # the program's thread formats the lines itself, which on a machine
    # with a core to spare it does not
    try:
        r = subprocess.run(["valgrind", "--tool=callgrind", "--fair-sched=yes",
                            "--callgrind-out-file=" + out,
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


_STRACE_LINE = re.compile(r"^(\d+)\s+(\w+)\(")


def strace_phase(argv, env, marker="/td-bench-phase-marker", what=None):
    """Run argv under strace -f and count system calls by name: those the
    first thread makes between the first two calls whose line holds the
    string marker (the measured phase; the markers themselves not counted;
    tests/progs/bench_calls.c makes them with access()), and those every
    other thread or process makes during the whole run (background work,
    such as a drain's).  Returns ({call: n}, {call: n}).  A failed run, or
    one without two markers, raises RuntimeError."""
    fd, out = tempfile.mkstemp(prefix="st.")
    os.close(fd)
    try:
        r = subprocess.run(["strace", "-f", "-qq", "-o", out] + [str(a) for a in argv],
                           env=env, capture_output=True, text=True, timeout=600)
        with open(out, errors="replace") as f:
            lines = f.readlines()
    finally:
        os.unlink(out)
    name = what or os.path.basename(str(argv[0]))
    if r.returncode != 0:
        raise RuntimeError("%s: strace failed (rc %d): %s" % (name, r.returncode,
                                                               r.stderr[-2000:]))
    main_pid, inside, markers = None, False, 0
    phase, other = {}, {}
    for line in lines:
        m = _STRACE_LINE.match(line)   # "<... x resumed>", "---", "+++" lines do not match
        if not m:
            continue
        pid, call = m.group(1), m.group(2)
        if main_pid is None:
            main_pid = pid
        if pid != main_pid:
            other[call] = other.get(call, 0) + 1
        elif marker in line and markers < 2:
            markers += 1
            inside = markers == 1
        elif inside:
            phase[call] = phase.get(call, 0) + 1
    if markers < 2:
        raise RuntimeError("%s: strace saw %d %s markers, not 2" % (name, markers, marker))
    return phase, other


# --- timing ---------------------------------------------------------------

def alternate(cases, reps, run, warmup=False):
    """Timed runs side by side: reps rounds, each running every case once,
    the order rotated each round so that a slow moment of the machine hits
    every case alike.  run(case, round) returns a figure; returns
    {case: [figure per round]}.  With warmup, one unrecorded round first."""
    cases = list(cases)
    if warmup:
        for c in cases:
            run(c, -1)
    out = {c: [] for c in cases}
    for r in range(reps):
        k = r % len(cases)
        for c in cases[k:] + cases[:k]:
            out[c].append(run(c, r))
    return out


def paired(samples, case, base="bare", f=lambda x, b: x / b):
    """The median over rounds of f(case's figure, base's figure in the same
    round): each case against the bare run next to it."""
    return statistics.median(f(x, b) for x, b in zip(samples[case], samples[base]))


def median(values):
    return statistics.median(values)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _session_stats(sids):
    """(pid, the fields of /proc/PID/stat after the command) of every
    process in the sessions sids; fields[0] is the state (field 3 of
    proc(5)), so the session (field 6) is fields[3] and utime..cstime
    (fields 14..17) are fields[11:15].  A process gone meanwhile is left
    out."""
    sids = set(sids)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[3]) in sids:
            yield d, fields


def session_cpu(sids):
    """CPU seconds (user + system) of every process in the sessions sids,
    children it has reaped included (/proc/PID/stat: utime, stime,
    cutime, cstime; a zombie still shows its own).  Sampled before and
    after a load, the difference is what the server (its threads, its
    workers and forked children, the library's worker thread) spent on
    it: unlike requests per second it does not move with what else the
    machine runs, as long as each process is reaped inside the session.
    (A process gone meanwhile: its time is in its reaper's cutime.)"""
    ticks = sum(sum(int(x) for x in fields[11:15]) for _, fields in _session_stats(sids))
    return ticks / _TICK


def session_faults(sids):
    """Minor page faults of every process in the sessions sids, children
    it has reaped included (/proc/PID/stat: minflt and cminflt, fields 10
    and 11).  A count, exact where time is not: on a virtual machine a
    fault can cost more than ten system calls, and a fork-per-connection
    server pays for every page its child touches first (the library's
    text, its stack, the data it writes)."""
    return sum(int(fields[7]) + int(fields[8]) for _, fields in _session_stats(sids))


class TreeMeter:
    """CPU time and minor page faults of a whole process tree, every
    descendant included, also children the kernel reaps itself (a server
    that ignores SIGCHLD: /proc's cutime and cminflt never see them): a
    cgroup made for the run under this process's own, CPU from the v2
    hierarchy's cpu.stat or v1's cpuacct.usage, faults from v1's or v2's
    memory.stat (pgfault).  join() is a preexec_fn: the server enters the
    group before it runs, and all it forks stays in.  Where no group can
    be made (not root, no cgroup file system), ok is False and callers
    count through /proc as before."""

    _n = 0

    def __init__(self):
        TreeMeter._n += 1
        name = "td-bench-%d-%d" % (os.getpid(), TreeMeter._n)
        self.dirs = []       # groups made, removed by close()
        self.cpu = None      # (path, kind) of the CPU counter
        self.mem = None      # memory.stat path
        for hier, mount in self._mounts():
            d = os.path.join(mount, self._own(hier).lstrip("/"), name)
            try:
                os.mkdir(d)
            except OSError:
                continue
            self.dirs.append(d)
            if hier == "" and os.path.exists(os.path.join(d, "cpu.stat")) and self.cpu is None:
                self.cpu = (os.path.join(d, "cpu.stat"), "v2")
            if "cpuacct" in hier.split(",") and self.cpu is None:
                self.cpu = (os.path.join(d, "cpuacct.usage"), "v1")
            if os.path.exists(os.path.join(d, "memory.stat")) and self.mem is None:
                self.mem = os.path.join(d, "memory.stat")
        self.ok = self.cpu is not None

    @staticmethod
    def _mounts():
        """(controllers, mount point) of each cgroup hierarchy: "" for v2."""
        out = []
        with open("/proc/self/mounts") as f:
            for line in f:
                dev, mnt, fstype, opts = line.split()[:4]
                if fstype == "cgroup2":
                    out.append(("", mnt))
                elif fstype == "cgroup":
                    ctl = [o for o in opts.split(",") if o in ("cpuacct", "memory", "cpu")]
                    if ctl:
                        out.append((",".join(ctl), mnt))
        return out

    @staticmethod
    def _own(hier):
        """This process's group in the hierarchy with those controllers."""
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctl, path = line.rstrip("\n").split(":", 2)
                if (hier == "" and ctl == "") or (hier and set(hier.split(",")) <= set(ctl.split(","))):
                    return path
        return "/"

    def join(self):
        """In the forked child, before exec: into every group made."""
        for d in self.dirs:
            try:
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass

    def holds(self, pid):
        """Whether pid joined the group that counts CPU."""
        try:
            with open(os.path.join(os.path.dirname(self.cpu[0]), "cgroup.procs")) as f:
                return str(pid) in f.read().split()
        except OSError:
            return False

    def cpu_s(self):
        path, kind = self.cpu
        with open(path) as f:
            if kind == "v1":
                return int(f.read()) / 1e9
            for line in f:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        return 0.0

    def faults(self):
        """Minor and major faults so far, or None where no memory group is."""
        if self.mem is None:
            return None
        with open(self.mem) as f:
            for line in f:
                if line.startswith("pgfault "):
                    return int(line.split()[1])
        return None

    def close(self):
        """Remove the groups (their processes have exited)."""
        for d in self.dirs:
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.02)


def session_ignores_sigchld(sids):
    """Whether a process in the sessions sids ignores SIGCHLD
    (/proc/PID/status SigIgn): the kernel then reaps its children itself,
    and their CPU time and faults never reach its cutime and cminflt
    (busybox httpd), so session_cpu() and session_faults() count the
    parent alone."""
    for pid, _ in _session_stats(sids):
        try:
            with open("/proc/%s/status" % pid) as f:
                for line in f:
                    if line.startswith("SigIgn:") and int(line.split()[1], 16) & (1 << 16):
                        return True
        except (OSError, ValueError):
            continue
    return False


def session_switches(sids):
    """Context switches (voluntary + involuntary) of every thread of every
    live process in the sessions sids (/proc/PID/task/TID/status).  Unlike
    CPU time, a reaped child's are not kept: a figure for servers that do
    not fork per request.  Sampled before and after a load, the difference
    counts how often the server's threads, the library's worker among
    them, slept or were preempted: a count, steadier than time on a busy
    machine."""
    n = 0
    for pid, _ in _session_stats(sids):
        try:
            for t in os.listdir("/proc/%s/task" % pid):
                with open("/proc/%s/task/%s/status" % (pid, t)) as f:
                    for line in f:
                        if "ctxt_switches:" in line:
                            n += int(line.split()[-1])
        except (OSError, ValueError):
            continue   # gone meanwhile
    return n


# --- namespaces -----------------------------------------------------------

def netns_setup():
    """Inside a fresh network namespace: loopback up; with TD_BENCH_WIDE=1
    the whole port range for outgoing connections (load generators that
    open tens of thousands of short connections)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if os.environ.get("TD_BENCH_WIDE") == "1":
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
                f.write("1024 65535")
        except OSError:
            pass


_CAN_NETNS = []


def can_netns():
    """Whether this process can make private network namespaces (root,
    unshare and ip, and a kernel or container that allows it: tried once)."""
    if not _CAN_NETNS:
        ok = os.geteuid() == 0 and bool(shutil.which("unshare")) and bool(shutil.which("ip"))
        if ok:
            try:
                ok = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    timeout=30).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
        _CAN_NETNS.append(ok)
    return _CAN_NETNS[0]


def enter_netns(script, args=None):
    """As root, re-run script (with this command line, or args) in a private
    network namespace, so its connections and their TIME_WAIT entries stay
    out of the host's tables; return its exit status, or None to go on
    here (in the namespace already, or not root)."""
    if os.environ.get("TD_BENCH_NETNS") == "1":
        netns_setup()
        return None
    if not can_netns():
        return None
    env = dict(os.environ, TD_BENCH_NETNS="1")
    argv = sys.argv[1:] if args is None else list(args)
    return subprocess.run(["unshare", "--net", "--", sys.executable, os.path.abspath(script)]
                          + argv, env=env).returncode


def in_netns():
    """Whether this process runs in a namespace enter_netns() made."""
    return os.environ.get("TD_BENCH_NETNS") == "1"


# --- the machine ----------------------------------------------------------

def machine():
    """One line naming the machine: CPU model, cores, memory, kernel, glibc."""
    model = platform.processor() or "unknown CPU"
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break   # the first CPU's block is enough
                k, _, v = line.partition(":")
                info[k.strip()] = v.strip()
    except OSError:
        pass
    if info.get("model name"):
        model = info["model name"]
        if "cpu family" in info and "model" in info:
            model += " (family %s, model %s)" % (info["cpu family"], info["model"])
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        mem = ", %.1f GiB RAM" % (kb / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    online = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    u = os.uname()
    libc = " ".join(platform.libc_ver()) or "libc ?"
    return "%s, %d cores (%d usable here)%s, Linux %s %s, %s" % (
        model, os.cpu_count() or 0, online, mem, u.release, u.machine, libc)


def build_id():
    """The commit the build was made from, if the repository says: the
    one the build directory sits in (TD_BUILD may name another checkout's
    build, measured beside this one's), else this one."""
    top = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(BUILD)), "rev-parse",
                          "--show-toplevel"], capture_output=True, text=True,
                         timeout=10).stdout.strip() if os.path.isdir(BUILD) else ""
    repo = top or REPO
    try:
        rev = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%h %cs"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + (" + local changes" if dirty else "")) if rev else "unknown commit"
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"


def header():
    """The lines that head the table."""
    try:
        load = " ".join("%.2f" % x for x in os.getloadavg())
    except OSError:
        load = "?"
    return [
        "teardown benchmarks: figures measured side by side in one run (a report: "
        "no figure fails it)",
        "machine: " + machine(),
        "build:   %s (%s), %s UTC, load average %s at the start"
        % (BUILD, build_id(), time.strftime("%Y-%m-%d %H:%M", time.gmtime()), load),
    ]


# --- the table ------------------------------------------------------------

COLS = (("what", 42, "<"), ("bare", 10, ">"), ("ref", 10, ">"), ("teardown", 10, ">"),
        ("figure", 13, ">"), ("target", 15, ">"), ("met", 4, ">"))


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "%.0f" % v if abs(v) >= 1000 else "%.1f" % v if abs(v) >= 10 else "%.2f" % v
    return str(v)


def format_table(rows, head=True):
    """The lines of the one table: a header naming the machine, then for
    each section its title, its rows and its notes."""
    out = header() + [""] if head else []
    out.append("  ".join("%*s" % (-w if a == "<" else w, n) for n, w, a in COLS))
    out.append("  ".join("-" * w for _, w, _ in COLS))
    section = None
    notes = []

    def flush_notes():
        for n in notes:
            out.append("    note: " + n)
        del notes[:]

    for r in rows:
        if r.get("section") != section:
            flush_notes()
            section = r.get("section")
            out.append("== %s" % section)
        if "note" in r:
            notes.append(r["note"])
            continue
        met = r.get("met")
        cells = [r.get("what", ""), _cell(r.get("bare")), _cell(r.get("ref")), _cell(r.get("td")),
                 _cell(r.get("figure")), _cell(r.get("target")),
                 "" if met is None else ("yes" if met else "NO")]
        out.append("  ".join("%*s" % (-w if a == "<" else w, c) for c, (_, w, a) in zip(cells, COLS)))
    flush_notes()
    return out


class Table:
    """The rows one part adds to the table, under its section title."""

    def __init__(self, section):
        self.section = section
        self.rows = []

    def row(self, what, bare=None, ref=None, td=None, figure=None, target=None, met=None):
        """One measurement: figures may be numbers or ready-made strings."""
        self.rows.append({"section": self.section, "what": what, "bare": bare, "ref": ref,
                          "td": td, "figure": figure, "target": target,
                          "met": None if met is None else bool(met)})

    def note(self, text):
        self.rows.append({"section": self.section, "note": text})

    def skip(self, why):
        """The part cannot run here: say why (one note) and hand the table
        over; returns the part's exit status, 0."""
        self.note("skipped: " + why)
        self.done()
        return 0

    def done(self):
        """Hand the rows to run.py (TD_BENCH_ROWS), or print them as the table."""
        sink = os.environ.get("TD_BENCH_ROWS")
        if sink:
            with open(sink, "a") as f:
                for r in self.rows:
                    f.write(json.dumps(r) + "\n")
        else:
            print("\n".join(format_table(self.rows)), flush=True)


def read_rows(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
    return rows


@contextlib.contextmanager
def collecting():
    """For a part that runs pieces of itself as child processes (each in
    its own namespace): the children's rows go to one file, printed as the
    table at the end unless run.py collects them."""
    if os.environ.get("TD_BENCH_ROWS"):
        yield
        return
    fd, path = tempfile.mkstemp(prefix="td-rows.")
    os.close(fd)
    os.environ["TD_BENCH_ROWS"] = path
    try:
        yield
        print("\n".join(format_table(read_rows(path))), flush=True)
    finally:
        del os.environ["TD_BENCH_ROWS"]
        os.unlink(path)


def fmt_ratio(x):
    return "%.3fx" % x


