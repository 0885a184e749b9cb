"""Never break the host: the calls themselves, symbols and descriptors.

A wrapper is only invisible if every wrapped call returns what libc alone
would (value, errno, even the fd number), closes exactly what the program
asked to close and nothing else, keeps working when its view of libc is
unusual (a real symbol missing, a malloc interposer, any optimisation
level), and if its own descriptors never leak into the program's world
(close-on-exec, numbers the program may take over).  These tests drive
that with the programs tests/progs/host_errno.c, host_closecount.c and
host_stress.c and the test doubles libhost_count.so, libhost_malloc.so
and libhost_nosym.so, preloaded after the library.
"""

import collections
import contextlib
import concurrent.futures
import itertools
import json
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess

import compat
import tdlib

NEEDS = ("root", "netns", "lib")
ACTIONS = ("pass", "graceful", "drain", "abort")
# Every name libteardown.so exports: the libc calls it wraps, nothing else.
WRAPPED = ("accept accept4 bind close close_range closefrom connect dup dup2 dup3 fclose "
           "fcntl fcntl64 fork getsockopt popen send sendmmsg sendmsg sendto setsockopt "
           "shutdown socket syscall system write writev").split()
# Wrapped too: the spawn calls, which record spawned children.  host_errno
# never calls them, so the missing-symbol test below leaves them out.
SPAWN = "posix_spawn posix_spawnp posix_spawn_file_actions_adddup2".split()
# And the read side, for rst_after_bytes_in and to see a socket read to its end.
READS = "read readv recv recvfrom recvmsg recvmmsg".split()
# And vfork (x86-64), which marks its child so the library needs no
# getpid() to know it runs there.
# And the ways out without exit(), which write the log's spool out first.
EXITS = ["_exit", "_Exit"]
# And the exec family: the close-on-exec copies of a socket leave its
# holder count before the kernel closes them (shim/hook/exec.c).
EXECS = "execve execv execvp execvpe fexecve execveat execl execlp execle".split()
# And the wait family: a reaped child that died without its exit hook
# gives back the copies it held, and its connections' ends are reported
# (shim/hook/wait.c).
WAITS = "wait waitpid wait3 wait4 waitid".split()
# And prctl: a thread that enters a seccomp sandbox (PR_SET_SECCOMP) makes
# no system call of the library's from then on (shim/hook/prctl.c).
SANDBOX = ["prctl"]
# And _Fork (glibc 2.34), which runs no pthread_atfork handler: the
# library runs its own around it (shim/hook/fork.c).  host_errno never
# calls it, so the missing-symbol test leaves it out.
RAW_FORK = ["_Fork"]
# And the setuid family: a process about to give up root makes its log's
# spool file while it still may (shim/hook/setuid.c).  host_errno never
# calls them, so the missing-symbol test leaves them out.
UIDS = "setuid seteuid setreuid setresuid".split()
EXPORTED = sorted(WRAPPED + SPAWN + READS + EXITS + EXECS + WAITS + SANDBOX + RAW_FORK + UIDS +
                  ["vfork"])


def _log(stem="audit"):
    return os.path.join(tdlib.tmpdir(), stem + ".jsonl")


def _policy_env(rules, log, preload=None, extra=None, **top):
    """An environment with the policy; preload: the LD_PRELOAD list (default: the library)."""
    env = tdlib.shim_env(policy=tdlib.policy_text(rules, log, **top), extra=extra)
    if preload is not None:
        # an ASan build's programs need the ASan runtime first, as shim_env does
        env["LD_PRELOAD"] = " ".join(([tdlib.asan_runtime()] if tdlib.sanitize() else [])
                                     + list(preload))
    return env


def _last_json(proc):
    records = proc.json_lines()
    assert records, "%s printed nothing (rc %s): %s" % (proc.name, proc.rc, proc.stderr())
    return records[-1]


def _script(prog, name):
    """The Python program prog in a file of the test's own: its path."""
    script = os.path.join(tdlib.tmpdir(), name + ".py")
    with open(script, "w") as f:
        f.write(prog)
    return script


def _python(prog, name, args, rules, timeout=20):
    """Run the Python program prog with args and a policy of rules logging
    to _log(name); it must succeed.  Returns (the Proc, the log's path)."""
    log = _log(name)
    proc = tdlib.run(["python3", _script(prog, name)] + [str(a) for a in args],
                     env=_policy_env(rules, log), name=name, timeout=timeout)
    assert proc.rc == 0, (name, proc.stderr())
    return proc, log


def _state_read(line, fds):
    """What a read of the state alone (TCP_INFO's first byte, as strace
    prints it: "\\7" is CLOSE) on one of fds (ints) returned, or None for
    any other line."""
    m = re.search(r'getsockopt\((\d+), SOL_TCP, TCP_INFO, "([^"]*)", \[1\]\)', line)
    return m.group(2) if m and int(m.group(1)) in fds else None


def _is_lookup(line):
    """A sock_diag lookup's request (a netlink message names no socket)."""
    return "sendto(" in line and "nlmsg_len=" in line


def _straced(prog, name, args, rules, calls, timeout=20):
    """Run the Python program prog with args under `strace -f -e trace=calls`
    and a policy of rules logging to _log(name); it must succeed.  Returns
    (the Proc, the log's path, the lines strace wrote)."""
    script = _script(prog, name)
    log = _log(name)
    trace = os.path.join(tdlib.tmpdir(), name + ".strace")
    proc = tdlib.run(["strace", "-f", "-qq", "-o", trace, "-e", "trace=" + calls,
                      "python3", script] + [str(a) for a in args],
                     env=_policy_env(rules, log), name=name, timeout=timeout)
    assert proc.rc == 0, proc.stderr()
    tdlib.diagnose_file(trace, "strace of " + name)
    with open(trace) as f:
        return proc, log, f.read().splitlines()


# ---------------------------------------------------------------------------
# Symbols and dependencies
# ---------------------------------------------------------------------------

def _exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True,
                         text=True, check=True).stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


@tdlib.requires("lib")
def test_exported_symbols_are_exactly_the_wrapped_calls():
    """nm -D --defined-only lists exactly the wrapped libc names.

    Catches: a helper that lost its hidden visibility (it would interpose
    on, or be interposed by, a program's function of the same name), a
    version-script change that drops a wrapper (that call would silently
    go unhandled), and any extra exported name."""
    got = _exported(tdlib.lib_path())
    assert got == EXPORTED, "extra: %s; missing: %s" % (
        sorted(set(got) - set(EXPORTED)), sorted(set(EXPORTED) - set(got)))


@tdlib.requires("lib")
def test_the_cost_floor_wraps_what_the_library_wraps():
    """The forwarding-only preload the benchmarks measure the library
    against (tests/progs/libfloor.c) exports the library's names, but for
    vfork() and the execl() family, which cannot be passed on as they are.

    Catches: a call added to shim/rt/calls.h and not to the floor, whose
    missing PLT hop the library would then be charged with (the floor is
    part 1's and part 3's zero)."""
    floor = tdlib.test_prog("libfloor.so")
    assert os.path.exists(floor), "make testprogs"
    got = set(_exported(floor))
    want = set(_exported(tdlib.lib_path())) - {"vfork", "execl", "execle", "execlp"}
    assert got == want, "extra: %s; missing: %s" % (sorted(got - want), sorted(want - got))


@tdlib.requires("lib")
def test_only_libc_is_needed():
    """readelf -d lists libc.so.6 as the only NEEDED library.

    Catches: a hard dependency sneaking in (libconfig, libpthread,
    libdl...): a program on a machine without it would not start at all,
    where the library promises to run it unchanged.  (An ASan build also
    needs the sanitizer runtimes; those are left out of the comparison.)"""
    out = subprocess.run(["readelf", "-d", tdlib.lib_path()], capture_output=True,
                         text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    if tdlib.sanitize():
        # an ASan/UBSan build links their runtimes too, by construction
        needed = [n for n in needed if not n.startswith(("libasan.", "libubsan."))]
    assert needed == ["libc.so.6"], needed


def _section(lib, name):
    """(address, size) of the library's section name, from readelf."""
    out = subprocess.run(["readelf", "-SW", lib], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"\]\s+%s\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)"
                  % re.escape(name), out)
    assert m, "no %s section:\n%s" % (name, out)
    return int(m.group(1), 16), int(m.group(2), 16)


def _code_symbols(lib):
    """The library's functions (nm: t and T) by name, each name's addresses."""
    addrs = collections.defaultdict(list)
    for line in subprocess.run(["nm", "--defined-only", lib], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tT":
            addrs[parts[2]].append(int(parts[0], 16))
    return addrs


@tdlib.requires("lib")
def test_child_written_variables_share_one_page():
    """The variables a forked child writes (TD_CHILD_WRITTEN) are in one
    section, td_child, that starts a page; the fd table's first entries
    (td_fdtab_page0) follow them, and those of fds 0 to 15 are on that
    same page.

    Catches: the linker script (shim/td_child.ld) dropped from the link,
    or so many such variables that they spill onto a second page or push
    the low fds' entries off it: each page a fork-per-connection server's
    child writes is one more page copied, a page fault of several
    microseconds, in every child, and its parent, which writes its
    connection's entry at accept() and close() between two forks, copies
    that page too.  (A sanitized build adds to the variables: there only
    the section's start is checked.)"""
    lib = tdlib.lib_path()
    addr, size = _section(lib, "td_child")
    assert addr % 4096 == 0 and size > 0, (hex(addr), size)
    syms = subprocess.run(["nm", "--defined-only", lib], capture_output=True, text=True,
                          check=True).stdout
    page0 = [int(l.split()[0], 16) for l in syms.splitlines() if l.endswith(" td_fdtab_page0")]
    assert len(page0) == 1, page0
    assert addr <= page0[0] < addr + size, (hex(addr), hex(page0[0]))
    if not tdlib.sanitize():
        assert (page0[0] + 16 * 64 - 1) // 4096 == addr // 4096, \
            "fd 15's entry is not on the variables' page: entries start at %#x" % page0[0]


@tdlib.requires("lib")
def test_what_a_forked_child_reads_lies_on_one_page():
    """The variables a forked child reads but no one writes between two
    forks (TD_CHILD_READ: the policy, the real calls, the log's identity,
    the fd table's watermarks) are in one section, td_child_ro, that
    starts a page, with the fd table's directory (td_fdtab_dir) after
    them and its first entry (fds 0 to 1023) on that same first page; and
    the names an event line writes (its event, role, state, closer, wire
    and why, and the close actions') are read-only constants in the code's
    own window (.text.td_child: shim/td_child.ld), not in the relocated
    data nor in .rodata, a segment of its own that took every child one
    fault more.

    Catches: a variable or table moved back into the bss or .data, where
    such variables lay on six pages and the name tables on a seventh: on
    the virtual machine the project is measured on, a forked child's
    first read of a page its parent wrote costs about 7 us, so every
    child of a fork-per-connection server paid about 40 us for them
    (README, Tests and benchmarks).  (A sanitized build adds to the
    variables: there only the section is checked.)"""
    lib = tdlib.lib_path()
    out = subprocess.run(["readelf", "-SW", lib], capture_output=True, text=True,
                         check=True).stdout
    sec = {}
    for m in re.finditer(r"\]\s+(\S+)\s+(?:PROGBITS|NOBITS)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)",
                         out):
        sec[m.group(1)] = (int(m.group(2), 16), int(m.group(3), 16))
    assert "td_child_ro" in sec, "no td_child_ro section:\n" + out
    start, size = sec["td_child_ro"]
    assert start % 4096 == 0 and size > 0, (hex(start), size)
    syms = {}
    for line in subprocess.run(["nm", "-S", "--defined-only", lib], capture_output=True,
                               text=True, check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            syms.setdefault(parts[3], []).append(int(parts[0], 16))
    for name in ("td_fdtab_dir", "td_init_state", "td_init_policy", "td_real",
                 "td_fdtab_prog_high_"):
        assert name in syms, name
        assert all(start <= a < start + size for a in syms[name]), (name, hex(start))
    if not tdlib.sanitize():
        dir0 = syms["td_fdtab_dir"][0]
        assert (dir0 + 16 - 1) // 4096 == start // 4096, \
            "the variables push the directory's first entry off the first page: %#x" % dir0
    ro_start, ro_size = sec[".text.td_child"]
    for name in ("td__event_names", "td__why_names", "td__wire_names", "td__closer_names",
                 "td__tcp_states", "td__c_pass", "td__c_abort"):
        assert name in syms, name
        assert all(ro_start <= a < ro_start + ro_size for a in syms[name]), \
            "%s is not with the code a child runs (.text.td_child)" % name


def _child_runs_names():
    """The functions the sources mark TD_CHILD_RUNS (include/teardown/layout.h)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    names = set()
    for sub in ("shim", "include"):
        for d, _, files in os.walk(os.path.join(root, sub)):
            for fn in files:
                if fn.endswith((".c", ".h")):
                    with open(os.path.join(d, fn)) as f:
                        names.update(re.findall(r"^TD_CHILD_RUNS\b[^(]*?\b(\w+)\(", f.read(),
                                                re.M))
    return names


@tdlib.requires("lib")
def test_code_a_forked_child_runs_is_one_fault_around_window():
    """The functions a forked child runs (TD_CHILD_RUNS) are in one
    section, .text.td_child, that lies inside one 64 KiB-aligned window of
    the text, and each of them that the build kept out of line is in it.

    Catches: the linker script (shim/td_child.ld) dropped from the link, a
    marked function that landed elsewhere, or so much marked code that it
    spills into a second window: the kernel faults a child's text in one
    aligned 64 KiB window at a time, and each window more is one more
    page fault in every child of a fork-per-connection server.  (A
    sanitized build's code is larger by design: there only the placement
    is checked.)"""
    lib = tdlib.lib_path()
    start, size = _section(lib, ".text.td_child")
    end = start + size
    if not tdlib.sanitize():
        assert size > 0 and start // 65536 == (end - 1) // 65536, (hex(start), hex(end))
    marked = _child_runs_names()
    assert len(marked) > 50, sorted(marked)
    outside = [name for name, addrs in sorted(_code_symbols(lib).items()) for a in addrs
               if name.split(".")[0] in marked and not start <= a < end]
    assert not outside, "marked TD_CHILD_RUNS but outside the section: %s" % outside


@tdlib.requires("lib")
def test_the_library_is_one_mapping_per_segment():
    """Loaded into a program, the library is one mapping per loadable
    segment (the data's read-only start, RELRO, one more), with no
    PROT_NONE gap between two of them; and the code a forked child runs
    (.text.td_child) starts a 64 KiB window in memory, not only in the
    file: glibc honours the text segment's alignment.

    Catches: segments aligned on 64 KiB again (-z max-page-size=0x10000
    left three gaps, which glibc maps PROT_NONE: three mappings more in
    every program the library is in, and each mapping is work in every
    fork() and exit(), about 0.7 us an empty one and a fork on the
    machine the project is measured on); a linker script whose alignment no longer
    reaches the segment, which would put the child's code across two
    windows."""
    lib = os.path.realpath(tdlib.lib_path())
    r = tdlib.run(["cat", "/proc/self/maps"], env=tdlib.shim_env(), name="maps")
    assert r.rc == 0, r.stderr()
    ours = [l.split() for l in r.stdout().splitlines() if l.split()[-1:] == [lib]]
    phdrs = subprocess.run(["readelf", "-lW", lib], capture_output=True, text=True,
                           check=True).stdout
    loads = len(re.findall(r"^\s+LOAD\s", phdrs, re.M))
    relro = 1 if re.search(r"^\s+GNU_RELRO\s", phdrs, re.M) else 0
    # (x86 alone links 4 KiB segments: elsewhere a kernel's pages may be
    # 16 or 64 KiB, and the linker's default alignment stays: the Makefile)
    if platform.machine() in ("x86_64", "i386", "i486", "i586", "i686"):
        assert loads >= 3 and [m[1] for m in ours if m[1] == "---p"] == [], ours
        assert len(ours) == loads + relro, (loads, relro, ours)
    base = min(int(m[0].split("-")[0], 16) for m in ours if int(m[2], 16) == 0)
    start, _ = _section(lib, ".text.td_child")
    assert (base + start) % 65536 == 0, (hex(base), hex(start))


def _written(out, server):
    """The children's callgrind files that are whole (a file ends with its
    totals line: one still being written is left out)."""
    done = []
    for n in sorted(os.listdir(out)):
        if n == "cg.%d" % server:
            continue
        with open(os.path.join(out, n), errors="replace") as f:
            if re.search(r"^totals: \d+", f.read(), re.M):
                done.append(n)
    return done


# A forked child of busybox httpd under callgrind, its counts zeroed as
# it enters the library's fork handler: the functions it runs from then
# on, by object.  (In a forked child, valgrind 3.19 names the library's
# object "???": the names are looked up in the library itself.)
def _child_functions(path):
    funcs, ob = set(), None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("fn=") and ob is not None and (
                    ob == "???" or "libteardown" in ob):
                funcs.add(line[3:].strip().split("'")[0])
    return funcs


@tdlib.requires(*NEEDS, "teardown", "valgrind")
@tdlib.timeout(180)
def test_the_library_code_a_forked_child_runs_lies_in_its_window():
    """Every function of the library that each child of busybox httpd
    runs, observed with a log, lies in .text.td_child, the one 64 KiB
    window a forked child faults in (shim/td_child.ld): three requests
    under callgrind, each child's calls counted from the library's fork
    handler on, and the functions all three ran looked up in the library.

    Catches: a function on a child's path left unmarked (TD_CHILD_RUNS):
    its code is in another window, one more page fault in every child of
    a fork-per-connection server.  Six were (the line's uid and
    identity, the log's checks, the read-to-end marks): with them and the
    family's hints moved next to the slots, a busybox request took 45.7
    page faults, against 47.2 before (bare 42).  A sanitized build's
    library cannot run under valgrind, nor is its code one window: this
    checks the plain build's, as the compat tests run it."""
    if not shutil.which("busybox"):
        tdlib.skip("needs busybox (not installed)")
    plain = tdlib.build_dir()
    if tdlib.sanitize():
        plain = os.path.dirname(os.path.abspath(plain))
    lib, cmd = os.path.join(plain, "libteardown.so"), os.path.join(plain, "teardown")
    assert os.path.exists(lib) and os.path.exists(cmd), "run make first: " + plain
    tmp = tdlib.tmpdir()
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello\n")
    out = os.path.join(tmp, "cg")
    os.makedirs(out)
    port = 7797
    proc = tdlib.spawn([cmd, "-l", lib, "--log", os.path.join(tmp, "log.jsonl"),
                        "--format", "json", "--", "valgrind", "-q", "--tool=callgrind",
                        "--zero-before=td__atfork_child", "--compress-strings=no",
                        "--callgrind-out-file=" + os.path.join(out, "cg.%p"),
                        "busybox", "httpd", "-f", "-p", "127.0.0.1:%d" % port, "-h", www],
                       env=tdlib.shim_env(preload=False), name="busybox")
    compat.wait_listening(port, proc, timeout=60)
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            while c.recv(65536):
                pass
    tdlib.wait_until(lambda: len(_written(out, proc.pid)) >= 3, timeout=60,
                     what="three children's counts written out")
    proc.signal(signal.SIGTERM)
    proc.wait(timeout=60)
    files = _written(out, proc.pid)
    ran = None
    for name in files:
        got = _child_functions(os.path.join(out, name))
        ran = got if ran is None else ran & got
    start, size = _section(lib, ".text.td_child")
    addrs = _code_symbols(lib)
    known = [n for n in ran if n in addrs]
    tdlib.note("server %d, its children's counts: %s; library functions all of them ran: %d"
               % (proc.pid, files, len(known)))
    assert len(known) > 30, sorted(ran)
    outside = sorted(n for n in known if not any(start <= a < start + size for a in addrs[n]))
    assert not outside, "run by every child, outside .text.td_child: %s" % outside


def _client_own_calls(tag, log_on, client_args):
    """Run a tdpeer client with client_args under strace, with one rule
    for clients (close = "pass", log = log_on) logging to _log(tag).
    Returns (the library's system calls after the client's connect(): the
    socket's state, unread and unsent bytes, SO_LINGER, sock_diag; the
    log's path)."""
    log = _log(tag)
    env = _policy_env([{"name": "quiet", "match": {"role": "client"}, "close": "pass",
                        "log": log_on}], log)
    trace = os.path.join(tdlib.tmpdir(), tag + ".strace")
    srv = tdlib.Server("--read-until-eof")
    cmd = ["strace", "-f", "-qq", "-o", trace, "-e",
           "trace=connect,getsockopt,ioctl,socket,sendto,recvfrom,shutdown,exit_group"]
    proc = tdlib.run(cmd + tdlib.client_cmd(srv.port, *client_args), env=env, name=tag)
    srv.result()
    assert proc.rc == 0, proc.stderr()
    tdlib.diagnose_file(trace, "strace of the client, " + tag)
    with open(trace) as f:
        lines = f.read().splitlines()
    after = lines[next(i for i, l in enumerate(lines) if " connect(" in l) + 1:]
    return [l for l in after
            if "TCP_INFO" in l or "FIONREAD" in l or "TIOCOUTQ" in l or "SO_LINGER" in l
            or "NETLINK" in l or ("sendto(" in l and "nlmsg" in l)], log


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_silent_rule_reads_nothing_at_shutdown_or_close():
    """A rule that neither logs nor acts at close (close = "pass",
    log = false) on a client that half-closes, reads to EOF and closes:
    from its connect() on, the library makes no system call of its own
    (no TCP_INFO, no SIOCINQ, no SO_LINGER, no sock_diag lookup).  With
    log = true the same client gets its shutdown and close events, and
    pays for them.

    Catches: the shutdown hook reading the socket's state and asking
    sock_diag who closed first for events nobody writes: twelve system
    calls per connection in a fork-per-connection server's child (busybox
    httpd shuts its connection down before it exits), each about a
    microsecond on the test machine."""
    calls = {}
    for log_on in (False, True):
        calls[log_on], log = _client_own_calls(
            "silent-%s" % log_on, log_on, ["--send", 100, "--half-close", "--read-until-eof"])
        if log_on:
            kinds = [r["event"] for r in tdlib.read_log(log) if r.get("role") == "client"]
            assert "shutdown" in kinds and "close" in kinds, kinds
    assert calls[False] == [], "a silent rule made calls of its own:\n" + "\n".join(calls[False])
    assert calls[True], "log = true: no TCP_INFO at all? the test no longer sees the calls"


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_silent_rule_reads_nothing_at_exit():
    """A rule that neither logs nor acts at close (close = "pass",
    log = false) on a client that leaves its connection open when it
    exits (exit() and _exit()): the library's exit path makes no system
    call of its own for it either (no TCP_INFO, no SIOCINQ or SIOCOUTQ).
    With log = true the same client gets its exit event, and pays for it.

    Catches: the exit path reading the socket's state, unread and unsent
    bytes (three system calls) for every socket still open, before it
    looked at whether the rule logs or has work to do: paid by every
    exiting child of a fork-per-connection server under a silent rule
    (busybox httpd's child exits with its connection on 0 and 1)."""
    for how in ("exit", "_exit"):
        calls = {}
        for log_on in (False, True):
            calls[log_on], log = _client_own_calls(
                "silent-exit-%s-%s" % (how, log_on), log_on, ["--send", 100, "--close", how])
            if log_on:
                kinds = [r["event"] for r in tdlib.read_log(log) if r.get("role") == "client"]
                assert kinds.count("exit") == 1, (how, kinds)
        assert calls[False] == [], ("%s: a silent rule made calls of its own at exit:\n" % how
                                    + "\n".join(calls[False]))
        assert calls[True], "%s, log = true: no TCP_INFO at exit? the test no longer sees them" % how


# Three connections in one process, each closed first by its client (an
# active close from ESTABLISHED: who sent the first FIN is asked of
# sock_diag after the close), then by its server end.
THREE_ACTIVE_CLOSES = r"""
import socket
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
for i in range(3):
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    c.close()
    assert s.recv(1) == b""
    s.close()
ls.close()
"""


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_a_process_keeps_a_lookup_socket_from_its_second_lookup_on():
    """A process's first sock_diag lookup opens a netlink socket and closes
    it after the answer, at the number the kernel gave; its second opens
    one that it moves to the library's numbers (1024 and up) and keeps;
    its third uses that one.  A forked child of a fork-per-connection
    server asks once in its life, if at all: a kept socket cost it a dup,
    a close, two fstat()s and two copied pages of the fd table.

    Catches: every lookup opening a socket (a pool that keeps none), or
    the first one kept (the child's cost back)."""
    proc, log, lines = _straced(THREE_ACTIVE_CLOSES, "three-lookups", [],
                                [{"name": "all", "close": "pass"}],
                                "socket,fcntl,close,sendto")
    closes = [r for r in tdlib.read_log(log) if r["event"] == "close" and r["role"] == "client"]
    assert [(r["closer"], r["time_wait"]) for r in closes] == [("active", True)] * 3, closes
    opened = [int(l.rsplit("=", 1)[1]) for l in lines
              if "socket(AF_NETLINK" in l and "NETLINK_SOCK_DIAG" in l]
    assert len(opened) == 2, "\n".join(lines)
    first, second = opened
    assert first < 1024, "\n".join(lines)
    kept = [int(l.rsplit("=", 1)[1]) for l in lines if "fcntl(%d, F_DUPFD" % second in l]
    assert len(kept) == 1 and kept[0] >= 1024, "\n".join(lines)
    asked = [int(re.search(r"sendto\((\d+),", l).group(1)) for l in lines
             if "sendto(" in l and "nlmsg" in l]
    assert asked == [first, kept[0], kept[0]], "\n".join(lines)
    # the first one closed after its answer, before the second was opened
    netlink = [i for i, l in enumerate(lines) if "socket(AF_NETLINK" in l]
    asked_at = next(i for i, l in enumerate(lines) if "sendto(%d," % first in l)
    closed_at = next(i for i, l in enumerate(lines) if i > asked_at and "close(%d)" % first in l)
    assert netlink[0] < asked_at < closed_at < netlink[1], "\n".join(lines)


# One process, both ends on loopback: the client sends 100 bytes and its FIN
# (or, for the shut modes, 50 bytes once the server has shut its reading
# side; for all_open, 100 bytes and no FIN); the server reads as the mode
# says (to EOF, 10 bytes, exactly the 100, or peeks at the 100), waits for
# the input to be in, and closes.  Prints the server connection's fd.
EOF_PROG = r"""
import ctypes, json, socket, sys, time
mode = sys.argv[1]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
cli = socket.create_connection(lst.getsockname())
srv, _ = lst.accept()
if mode in ("eof", "partial", "all", "all_open", "peek"):
    cli.sendall(b"x" * 100)
    if mode != "all_open":
        cli.shutdown(socket.SHUT_WR)
    if mode == "eof":
        while srv.recv(1000):
            pass
    elif mode == "partial":
        srv.recv(10)
    elif mode == "peek":
        while len(srv.recv(1000, socket.MSG_PEEK)) < 100:
            time.sleep(0.01)
    else:
        got = 0
        while got < 100:
            got += len(srv.recv(100 - got))
else:
    if mode == "shut_rd":
        srv.shutdown(socket.SHUT_RD)
    else:   # syscall(SYS_shutdown, fd, SHUT_RD), through libc's syscall()
        assert ctypes.CDLL(None, use_errno=True).syscall(48, srv.fileno(), 0) == 0
    assert srv.recv(1000) == b""     # 0 at once: no FIN has come
    cli.sendall(b"y" * 50); cli.shutdown(socket.SHUT_WR)
time.sleep(0.3)
print(json.dumps({"fd": srv.fileno()}), flush=True)
srv.close(); cli.close(); lst.close()
"""


def test_close_after_reading_to_eof_asks_nothing_unread():
    """A server that reads its connection to the peer's EOF and closes: the
    library's close asks no SIOCINQ (the read of 0 said nothing is left),
    and the event still says unread 0 and a FIN.  The same server reading
    10 of the 100 bytes is asked, and the event says 90 unread and an RST.
    One that reads exactly the 100 bytes and not the EOF is not asked
    either (the read hooks counted every byte TCP_INFO says came in), with
    the client's FIN in or not; one that only peeked at them is (a peek
    takes nothing out), and the event says 100 unread and an RST.
    A server that shut its reading side (shutdown(SHUT_RD), or the same
    through syscall()) also reads 0 at once, before any FIN, and input still
    comes in after that: its close is asked, and the 50 bytes that came are
    reported unread with the RST the kernel sends for them.

    Catches: trusting a read's 0 as the end of input after SHUT_RD (the log
    would say FIN and nothing lost while the kernel resets and drops 50
    bytes); a peek counted as a read (the same lie, 100 bytes); and losing
    the mark or the count (an ioctl per close of every server that reads
    its client's EOF, such as redis, or reads its request and closes first,
    such as nginx)."""
    want = {"eof": (0, "fin", 0), "partial": (90, "rst", 1),
            "all": (0, "fin", 0), "all_open": (0, "fin", 0), "peek": (100, "rst", 1),
            "shut_rd": (50, "rst", 1), "syscall_shut_rd": (50, "rst", 1)}
    for mode, (unread, wire, ioctls) in want.items():
        proc, log, lines = _straced(EOF_PROG, "eof-" + mode, [mode],
                                    [{"name": "all", "close": "pass", "log": True}], "ioctl")
        fd = _last_json(proc)["fd"]
        asked = [l for l in lines if re.search(r"ioctl\(%d, FIONREAD" % fd, l)]
        closes = [r for r in tdlib.read_log(log)
                  if r["event"] == "close" and r.get("role") == "server"]
        assert len(closes) == 1, tdlib.read_log(log)
        got = (closes[0]["unread"], closes[0]["wire"].lower(), len(asked))
        assert got == (unread, wire, ioctls), (mode, got, closes[0], asked)


# A server half-closes (shutdown(SHUT_WR)) and then closes, with its
# client's FIN coming after its own ("first"), or before it: read to EOF
# ("after_eof") or left unread, the request read to its last byte only
# ("after_fin").  Prints the ports and the server connection's fd.
SHUT_PROG = r"""
import json, socket, sys, time
mode = sys.argv[1]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
cli = socket.create_connection(lst.getsockname())
srv, _ = lst.accept()
if mode in ("first", "first_unread"):
    if mode == "first_unread":
        cli.sendall(b"z" * 5)   # never read by the server
    time.sleep(0.1)
    srv.shutdown(socket.SHUT_WR)
    assert cli.recv(100) == b""
    cli.close()
    time.sleep(0.1)
else:
    cli.sendall(b"x" * 10); cli.shutdown(socket.SHUT_WR)
    if mode == "after_eof":
        while srv.recv(100):
            pass
    else:
        got = b""
        while len(got) < 10:
            got += srv.recv(10 - len(got))
        time.sleep(0.1)   # the FIN is in, unread
    srv.shutdown(socket.SHUT_WR)
    assert cli.recv(100) == b""
time.sleep(0.1)
print(json.dumps({"fd": srv.fileno(), "server": lst.getsockname()[1],
                  "client": cli.getsockname()[1] if not mode.startswith("first") else None}),
      flush=True)
srv.close()
if not mode.startswith("first"):
    cli.close()
lst.close()
"""


def test_shutdown_learns_who_was_first():
    """A logged server that half-closes, then closes: its close event says
    who sent the first FIN, and the kernel agrees (TIME_WAIT is the first
    closer's).  The library reads the state once, after the shutdown()
    (FIN_WAIT: the server was first; read CLOSE, the client's FIN was in
    and ours acknowledged at once on loopback, or the client answered
    ours at once: a sock_diag lookup tells which); not at all when the
    program has read its client's EOF: the FIN was in, so the client was
    first.  A socket CLOSE by its close counts
    the client's FIN in TCP_INFO's bytes received, or not (a reset): where
    the client's FIN is known to be in (it came first, "after_fin"; or the
    state after the shutdown proved it, which on loopback needs a client
    answering within microseconds: haproxy's), the close asks no SIOCINQ and
    says nothing unread; where it is not known ("first": the client answered
    after the check) it asks.  Bytes the server never read ("first_unread":
    5) are asked for, and reported.

    Catches: a server that read its peer's EOF called the active closer, or
    its shutdown still paying state reads; a state read before the call as
    well as after; a shutdown after an unread FIN
    (no EOF read, no mark) called active; a SIOCINQ at the close of a
    socket whose every byte was read, or unread bytes hidden by the FIN's."""
    want = {"first": ("active", "server"), "after_eof": ("passive", "client"),
            "after_fin": ("passive", "client"), "first_unread": ("active", "server")}
    # state reads: one, after the call, unless the program read the EOF
    reads_want = {"first": 1, "after_eof": 0, "after_fin": 1, "first_unread": 1}
    # (SIOCINQ at the close, unread in its event)
    unread_want = {"first": (1, 0), "after_eof": (0, 0), "after_fin": (0, 0),
                   "first_unread": (1, 5)}
    for mode, (closer, holder) in want.items():
        proc, log, lines = _straced(SHUT_PROG, "shut-" + mode, [mode],
                                    [{"name": "all", "close": "pass", "log": True}],
                                    "getsockopt,shutdown,sendto,ioctl")
        out = _last_json(proc)
        closes = [r for r in tdlib.read_log(log)
                  if r["event"] == "close" and r.get("role") == "server"]
        assert len(closes) == 1, tdlib.read_log(log)
        assert closes[0]["closer"] == closer, (mode, closes[0])
        tw = tdlib.time_wait_on(out["server"] if holder == "server" else out["client"])
        assert tw, (mode, "no TIME_WAIT on the %s's side" % holder, tdlib.ss_rows())
        at = next(i for i, l in enumerate(lines) if "shutdown(%d, SHUT_WR" % out["fd"] in l)
        reads = [i for i, l in enumerate(lines) if _state_read(l, {out["fd"]}) is not None]
        assert len(reads) == reads_want[mode], (mode, lines)
        assert all(i > at for i in reads), (mode, "a state read before the call", lines)
        # a sock_diag lookup follows the server's state read exactly where
        # that read said CLOSE ("\7"): after_fin's LAST_ACK, acknowledged
        # before the read unless the softirq that carries the client's
        # ACK ran late (a netlink message names no socket; the client's
        # own shutdown may ask later)
        after = lines[reads[0] + 1:reads[0] + 2] if reads else []
        lookups = [l for l in after if _is_lookup(l)]
        closed = bool(reads) and _state_read(lines[reads[0]], {out["fd"]}) == "\\7"
        assert len(lookups) == (1 if closed else 0), (mode, lines)
        assert mode == "after_fin" or not closed, (mode, lines)
        asked = [l for l in lines if re.search(r"ioctl\(%d, FIONREAD" % out["fd"], l)]
        assert (len(asked), closes[0]["unread"]) == unread_want[mode], (mode, closes[0], lines)


def _server_ends(prog, name, args, calls, event, n, want):
    """Run the Python program prog (which prints {"fds": [...]}, its server
    sockets' numbers) under strace (calls) and one rule logging its server
    sockets; its n connections each end with one event of kind event, whose
    (closer, time_wait) is want.  Returns (the fds, strace's lines)."""
    proc, log, lines = _straced(prog, name, args,
                                [{"name": "srv", "match": {"role": "server"},
                                  "close": "pass", "log": True}], calls)
    ends = [r for r in tdlib.read_log(log) if r["event"] == event and r.get("role") == "server"]
    assert len(ends) == n, (name, tdlib.read_log(log))
    assert all((r["closer"], r["time_wait"]) == want for r in ends), (name, ends)
    return set(_last_json(proc)["fds"]), lines


# N times a client half-closes first; the server, which never reads its
# EOF, shuts down after it, then both close.
PEER_FIRST_PROG = r"""
import json, socket, sys, time
n = int(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
fds = []
for _ in range(n):
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    cli.shutdown(socket.SHUT_WR)
    time.sleep(0.02)        # the client's FIN is in, unread
    srv.shutdown(socket.SHUT_WR)
    assert cli.recv(10) == b""
    fds.append(srv.fileno())
    srv.close(); cli.close()
print(json.dumps({"fds": sorted(set(fds))}), flush=True)
"""


def test_shutdown_reads_before_the_call_where_the_peer_is_often_first():
    """Which read tells a logged shutdown() who was first adapts to what
    the program does.  After the call alone: one read where our FIN was
    first, but where the peer's was, the socket reads CLOSE (LAST_ACK,
    acknowledged at once on loopback), which takes a sock_diag lookup.
    So a thread whose shutdowns found the peer first more than a third of
    the time reads the state before the call too: CLOSE_WAIT settles it.
    Here 12 clients each half-close first: the first shutdown reads after
    the call (LAST_ACK, or CLOSE and a lookup), the 11 after it one read
    before the call and no lookup; every close event says passive, no
    TIME_WAIT on the server's side.

    Catches: the lookup at every such shutdown (three system calls where
    one does), or a read before the call for a server whose FIN is first
    (test_shutdown_learns_who_was_first counts that one)."""
    n = 12
    fds, lines = _server_ends(PEER_FIRST_PROG, "peer-first", [n], "getsockopt,shutdown,sendto",
                              "close", n, ("passive", False))
    shut = [i for i, l in enumerate(lines)
            if any("shutdown(%d, SHUT_WR" % fd in l for fd in fds)]
    assert len(shut) == n, lines
    # the first: a read after the call; a lookup only where it said CLOSE
    # (LAST_ACK's acknowledgement in before the read: its softirq on time)
    first = _state_read(lines[shut[0] + 1], fds)
    assert first is not None, lines
    lookups = [l for l in lines if _is_lookup(l)]
    assert len(lookups) == (1 if first == "\\7" else 0), (first, lookups)
    assert all(i < shut[1] for i, l in enumerate(lines) if l in lookups), lookups
    # CLOSE_WAIT: 8, "\\10" to strace
    before = [i for i in shut[1:] if _state_read(lines[i - 1], fds) == "\\10"]
    assert len(before) == n - 1, (before, lines)


# Each connection served by a forked child that shuts it down and exits
# (a fork-per-connection server: busybox httpd); the parent closes its
# copy after the fork and reaps the child before the next.  The child
# waits for that close (a pipe): a child that exited first would leave
# the end to the parent's close.  "peer": the client half-closes first;
# "ours": the client waits for the server's FIN.
FORKED_SHUT_PROG = r"""
import json, os, socket, sys, time
mode, n = sys.argv[1], int(sys.argv[2])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
fds = []
for _ in range(n):
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    if mode == "peer":
        cli.shutdown(socket.SHUT_WR)
        time.sleep(0.02)        # the client's FIN is in, unread
    fds.append(srv.fileno())
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(wr)
        lst.close()
        os.read(rd, 1)          # the parent's copy is closed
        srv.shutdown(socket.SHUT_WR)
        os._exit(0)
    os.close(rd)
    srv.close()
    os.write(wr, b"x"); os.close(wr)
    os.waitpid(pid, 0)
    assert cli.recv(10) == b""
    cli.close()
print(json.dumps({"fds": sorted(set(fds))}), flush=True)
"""


def test_a_forked_child_reads_before_its_shutdown_what_its_siblings_learned():
    """A child of a fork-per-connection server shuts down one connection
    and exits: what its thread learned of who is first dies with it.  So
    the family (the holder counts' shared mapping) counts what the reads
    before the call of threads with no answers of their own found, and
    such a thread reads before where more than a third found the peer
    first; one in eight reads before anyway, to find out.  Each case runs
    16 children:
      - "peer" (each client half-closes first): the first child reads
        before the call (the first of eight), finds CLOSE_WAIT, and so do
        the 15 after it: one read each, no lookup, no netlink socket
        (after the call alone: LAST_ACK, or CLOSE and a lookup, which in a
        child that made none before opens and closes a netlink socket);
      - "ours" (the server's FIN is first): the 1st and the 9th read before
        the call and find ESTABLISHED, the others read after it only.
    Every end the log reports is the wire's: passive and no TIME_WAIT on
    the server's side, or active and TIME_WAIT.

    Catches: each child paying the lookup (five system calls where one
    does); a count a child kept in a mapping of its own, which its
    siblings never see; reads before the call for a server whose FIN is
    first."""
    n = 16
    for mode, closer in (("peer", ("passive", False)), ("ours", ("active", True))):
        fds, lines = _server_ends(FORKED_SHUT_PROG, "forked-shut-" + mode, [mode, n],
                                  "getsockopt,shutdown,sendto,socket", "exit", n, closer)
        # each child's lines (strace -f starts each with its pid), in order
        children = {}
        for l in lines:
            children.setdefault(l.split()[0], []).append(l)
        shut = [ls for ls in children.values()
                if any("shutdown(%d, SHUT_WR" % fd in l for fd in fds for l in ls)]
        assert len(shut) == n, (mode, lines)
        shut.sort(key=lambda ls: lines.index(ls[0]))
        for k, ls in enumerate(shut):
            at = next(i for i, l in enumerate(ls) if re.search(r"shutdown\(\d+, SHUT_WR", l))
            reads = [(i, _state_read(l, fds)) for i, l in enumerate(ls)
                     if _state_read(l, fds) is not None]
            before = [r for i, r in reads if i < at]
            after = [r for i, r in reads if i > at]
            if mode == "peer":
                # CLOSE_WAIT: "\\10" to strace
                assert (before, after) == (["\\10"], []), (mode, k, ls)
                assert not any(_is_lookup(l) or "AF_NETLINK" in l for l in ls), (mode, k, ls)
            else:
                # ESTABLISHED: "\\1"; FIN_WAIT1 or 2 after ("\\4", "\\5")
                assert before == (["\\1"] if k % 8 == 0 else []), (mode, k, ls)
                assert len(after) == 1 and after[0] != "\\10", (mode, k, ls)


# A forking server whose children exit with its listener still open (as
# Python's ForkingMixIn's do): n children, each reaped before the next,
# then the parent closes the listener.
FORKED_LISTENER_PROG = r"""
import json, os, socket, sys
n = int(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
fd = lst.fileno()
lst.close()
print(json.dumps({"fd": fd}), flush=True)
"""


def test_a_forked_child_exiting_with_its_parents_listener_reads_nothing_of_it():
    """A child that exits with the listener it inherited still open, while
    its parent holds it too, ends nothing: the count says another holder
    is left, and the socket is older than the child, so no event is due.
    It reads nothing of the socket either (TCP_INFO, SIOCINQ): 8 children
    make no state read at all; the parent's close of the listener at the
    end is the one exit of it the log reports, as a close.

    Catches: the exit path reading the facts of every counted socket
    before asking whether an event is due (a state read and, in a child
    that had read no clock yet, a page fault of the clock's page, in
    every child of such a server)."""
    n = 8
    proc, log, lines = _straced(FORKED_LISTENER_PROG, "forked-listener", [n],
                                [{"name": "all", "close": "pass", "log": True}],
                                "getsockopt,ioctl,exit_group")
    fd = _last_json(proc)["fd"]
    ends = [r for r in tdlib.read_log(log) if r.get("fd") == fd and r["event"] in
            ("close", "exit")]
    assert [(r["event"], r["role"]) for r in ends] == [("close", "listener")], \
        tdlib.read_log(log)
    parent = str(ends[0]["pid"])
    pids = {l.split()[0] for l in lines}
    reads = [l for l in lines if "TCP_INFO" in l or "SIOCINQ" in l or "FIONREAD" in l]
    assert len(pids - {parent}) == n, (parent, pids)
    assert [l for l in reads if l.split()[0] != parent] == [], reads


# A server under "abort" closes a connection whose client sent 5 bytes:
# read by it ("read"), or left unread ("unread").  The client waits for the
# reset before it closes.
ABORT_PROG = r"""
import json, socket, sys, time
mode = sys.argv[1]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
cli = socket.create_connection(lst.getsockname())
srv, _ = lst.accept()
cli.sendall(b"z" * 5)
time.sleep(0.1)
if mode == "read":
    got = b""
    while len(got) < 5:
        got += srv.recv(5 - len(got))
fd = srv.fileno()
srv.close()
try:
    seen = "eof" if cli.recv(100) == b"" else "data"
except ConnectionResetError:
    seen = "reset"
cli.close()
lst.close()
print(json.dumps({"fd": fd, "seen": seen}), flush=True)
"""


def test_abort_close_reads_the_state_last_before_the_close():
    """An RST from an ESTABLISHED socket is logged from a state read with
    no system call between it and the real close: a peer FIN in between
    would make the RST its answer (passive).  Where the facts ask nothing
    after their TCP_INFO (every byte read: no SIOCINQ; the linger the rule
    set: no SO_LINGER), that read is the last, and the close reads nothing
    more; where a SIOCINQ followed it (5 bytes unread), the state is read
    once more, right before the close.  Either way the wire is an RST,
    the client reads ECONNRESET, and the log says RST, closer active.

    Catches: the second state read coming back where nothing came between
    (one system call a logged abort close, haproxy's backend every
    request), or going where a SIOCINQ did."""
    for mode, reads_want, inq_want in (("read", 0, 0), ("unread", 1, 1)):
        proc, log, lines = _straced(ABORT_PROG, "abort-" + mode, [mode],
                                    [{"name": "all", "close": "abort", "log": True}],
                                    "getsockopt,ioctl,close")
        out = _last_json(proc)
        assert out["seen"] == "reset", (mode, out)
        fd = out["fd"]
        closes = [r for r in tdlib.read_log(log)
                  if r["event"] == "close" and r.get("role") == "server"]
        assert len(closes) == 1, tdlib.read_log(log)
        assert (closes[0]["wire"], closes[0]["closer"]) == ("RST", "active"), (mode, closes[0])
        end = next(i for i, l in enumerate(lines) if re.search(r"close\(%d\)" % fd, l))
        facts = [i for i, l in enumerate(lines[:end])
                 if re.search(r"getsockopt\(%d, SOL_TCP, TCP_INFO, .*\[232\]\)" % fd, l)]
        assert facts, (mode, lines)
        after = lines[facts[-1] + 1:end]
        state_reads = [l for l in after if _state_read(l, {fd}) is not None]
        inq = [l for l in after if re.search(r"ioctl\(%d, FIONREAD" % fd, l)]
        assert (len(state_reads), len(inq)) == (reads_want, inq_want), (mode, after)
        if reads_want:
            assert after[-1] is state_reads[-1], (mode, "not the last call", after)


# A server that drains: N times a client connects and sends a request, the
# server reads it and closes (its drain's FIN goes out, the client's has
# not come: the drain goes to the worker), then the client reads to EOF and
# closes.  The program waits for the N server close events in the log
# before it exits, so every drain ends by the client's FIN.
DRAIN_PROG = r"""
import json, os, socket, sys, time
n, log = int(sys.argv[1]), sys.argv[2]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(8)
eofs = 0
for _ in range(n):
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    cli.sendall(b"GET"); assert srv.recv(3) == b"GET"
    srv.close()
    eofs += cli.recv(10) == b""
    cli.close()
    time.sleep(0.005)   # a trickle: too slow for the worker's rounds
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    with open(log) as f:
        if sum('"event":"close"' in l and '"role":"server"' in l for l in f) >= n:
            break
    time.sleep(0.02)
print(json.dumps({"eofs": eofs}), flush=True)
"""


def test_drain_wakes_the_worker_for_the_fin_alone():
    """Each drain the worker waits on is put into its epoll set by the
    closing thread (one epoll_ctl with EPOLLONESHOT), so the worker wakes
    for the peer's FIN alone: no eventfd kick per drain (only one, for the
    worker's first look), and no epoll_ctl of the worker's (the one-shot
    event leaves nothing armed to delete before the close).  Each drain
    still ends as a drain should: the client reads EOF, the log has a
    close event with a FIN for every connection.

    A trickle, one drain every 5 ms or more: faster than two a
    millisecond the worker works in rounds, where drains are handed over
    unwatched and read first (test_a_stream_of_drains_each_ends_as_a_drain).

    Catches: a kick (write and read of the eventfd, a wake-up of the worker
    to be told) or the worker's own EPOLL_CTL_ADD/DEL coming back for every
    drain; a drain lost between the closing thread and the worker."""
    n = 3   # 14 lines: fewer than the 16 that start a spool, whose flushes kick too
    log = _log("drain-wake")
    open(log, "w").close()   # the program watches it for its close events
    proc, _, lines = _straced(DRAIN_PROG, "drain-wake", [n, log],
                              [{"name": "all", "close": "drain", "log": True}],
                              "epoll_ctl,epoll_pwait,write,read,eventfd2,clone,clone3",
                              timeout=30)
    assert _last_json(proc)["eofs"] == n
    closes = [r for r in tdlib.read_log(log) if r["event"] == "close" and r["role"] == "server"]
    assert len(closes) == n and all(r["wire"] == "FIN" for r in closes), closes
    lines = [l.split(None, 1) for l in lines if l.strip()]
    main = lines[0][0]
    worker = {l[0] for l in lines if l[1].startswith("epoll_pwait(")}
    assert len(worker) == 1 and main not in worker, lines
    adds = [l for t, l in lines if t == main and "EPOLL_CTL_ADD" in l]
    assert len(adds) == n and all("EPOLLONESHOT" in l for l in adds), adds
    # the eventfd's 8-byte counter
    kicks = [l for t, l in lines if t == main and re.match(r"write\(\d+, \"\\1\\0{7}\", 8\)", l)]
    assert len(kicks) <= 1, kicks
    wt = worker.pop()
    # (its eventfd, once, at its start: data 2^32-1)
    assert not [l for t, l in lines if t == wt and l.startswith("epoll_ctl(")
                and "u32=4294967295" not in l], lines
    assert len([l for t, l in lines if t == wt and l.startswith("read(")]) <= 1, lines


# A stream of drains on two listeners: every connection to HELD_PORT keeps
# its client open (its drain ends at its rule's short drain_timeout_ms);
# every other one, to FREE_PORT, is closed by its client at its EOF (its
# rule's deadline is long: only the peer's FIN ends it in time).  Waits
# for one server close event per connection, then prints what it saw.
STREAM_PROG = r"""
import json, socket, sys, time
n, log, free_port, held_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lsts = {}
for port in (free_port, held_port):
    lsts[port] = socket.socket(); lsts[port].bind(("127.0.0.1", port)); lsts[port].listen(8)
eofs, held = 0, []
for i in range(n):
    port = held_port if i % 10 == 0 else free_port
    cli = socket.create_connection(("127.0.0.1", port))
    srv, _ = lsts[port].accept()
    cli.sendall(b"GET"); assert srv.recv(3) == b"GET"
    srv.close()
    eofs += cli.recv(10) == b""
    if port == held_port:
        held.append(cli)
    else:
        cli.close()
t0, seen = time.monotonic(), 0
while time.monotonic() < t0 + 20:
    with open(log) as f:
        seen = sum('"event":"close"' in l and '"role":"server"' in l for l in f)
    if seen >= n:
        break
    time.sleep(0.02)
print(json.dumps({"eofs": eofs, "seen": seen}), flush=True)
"""


def test_a_stream_of_drains_each_ends_as_a_drain():
    """Drains handed over faster than two a millisecond are ended in
    rounds: the worker waits for its eventfd or the round's end, not for
    each FIN, then takes every FIN that came with one epoll_wait() that
    does not block (shim/rt/worker.c, td__round_wait).  A tight loop of
    300 connections, each closed by the server under drain, hands them
    over at that rate.  Nine in ten clients close at their EOF, under a
    rule whose drain_timeout_ms is 60 s: only their FIN, taken in some
    round, ends those drains before the program stops waiting (20 s).
    Every tenth client stays open, under a rule with 300 ms: a round must
    expire those.  Every drain ends as one: each client reads EOF, and the
    log has one close event per connection, a FIN, the server the active
    closer, nothing lost.

    Catches: a FIN that came during a round left unwatched (its drain
    would wait out its 60 s), a round that drops events past the first 64,
    a deadline not looked at while in rounds."""
    n, free_port, held_port = 300, 18601, 18602
    log = _log("drain-stream")
    open(log, "w").close()
    script = os.path.join(tdlib.tmpdir(), "drain-stream.py")
    with open(script, "w") as f:
        f.write(STREAM_PROG)
    rules = [{"name": "held", "match": {"local_port": held_port}, "close": "drain",
              "log": True, "drain_timeout_ms": 300},
             {"name": "free", "close": "drain", "log": True, "drain_timeout_ms": 60000}]
    proc = tdlib.run(["python3", script, n, log, free_port, held_port],
                     env=_policy_env(rules, log), name="drain-stream", timeout=60)
    assert proc.rc == 0, proc.stderr()
    out = _last_json(proc)
    assert out["eofs"] == n
    # every drain ended while the program was still running (at exit the
    # library would end the stragglers itself, and log them as well)
    assert out["seen"] == n, out
    closes = [r for r in tdlib.read_log(log) if r["event"] == "close" and r["role"] == "server"]
    assert len(closes) == n, len(closes)
    bad = [r for r in closes if r["wire"] != "FIN" or r["closer"] != "active" or r["lost"] != 0]
    assert not bad, bad[:3]
    # one close per accepted connection (a client port may come back: the
    # client, closing second, holds no TIME_WAIT)
    accepts = [r for r in tdlib.read_log(log) if r["event"] == "accept"]
    assert sorted(r["remote"] for r in closes) == sorted(r["remote"] for r in accepts)
    assert sum(r["rule"] == "held" for r in closes) == n // 10


# A stream of drains whose clients stay silent (their drains pending,
# handed over unwatched to the worker's next round), then the program
# dup2()s one end of a connected pair of its own, 5 bytes waiting in it,
# onto the last drain's private fd (the one number above the others that
# the last close added) right after that close, before the worker's next
# round.  Prints how many of the 5 bytes are still there to read.
TAKEOVER_PROG = r"""
import json, os, socket, stat, sys, time
n = int(sys.argv[1])
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(64)
a = socket.create_connection(lst.getsockname())
b, _ = lst.accept()
a.sendall(b"hello")
held = []
def drain():
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    held.append(cli)
    srv.close()                 # a drain, its peer silent: pending
for i in range(n - 1):
    drain()
top = max(int(x) for x in os.listdir("/proc/self/fd"))
drain()
taken = None
for fd in range(top + 1, top + 8):
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.dup2(b.fileno(), fd)
            taken = fd
            break
    except OSError:
        pass
time.sleep(0.3)                 # several of the worker's rounds
b.setblocking(False)
try:
    got = b.recv(100)
except BlockingIOError:
    got = b""
print(json.dumps({"left": len(got), "taken": taken}), flush=True)
"""


def test_drains_handed_over_unwatched_never_read_the_programs_fds():
    """In rounds a drain is handed to the worker unwatched, and the worker
    reads its private fd first (td__adopt(), td__drain_try()).  A program
    that dup2()s its own socket onto that number (a daemon's "every fd is
    mine" loop does) takes the fd over: the dup2 hook drops the library's
    mark, and the worker must then end the drain without a read, or its
    recv(MSG_TRUNC) would throw away the program's input.  After 200
    drains (their clients silent, so the worker is in rounds), the
    program's socket, 5 bytes waiting in it, goes onto the last drain's
    private fd right after that close: after several rounds the 5 bytes
    are still there.  (Without the mark check the worker's read took them
    in 4 runs of 5: the program must win the race to its next round.)

    Catches: a read of a drain's private fd without checking that the
    library still owns the number."""
    log = _log("drain-takeover")
    script = os.path.join(tdlib.tmpdir(), "drain-takeover.py")
    with open(script, "w") as f:
        f.write(TAKEOVER_PROG)
    proc = tdlib.run(["python3", script, 200],
                     env=_policy_env([{"name": "all", "close": "drain", "log": True,
                                       "drain_timeout_ms": 60000}], log),
                     name="drain-takeover", timeout=60)
    assert proc.rc == 0, proc.stderr()
    out = _last_json(proc)
    assert out["taken"] is not None, out
    assert out["left"] == 5, out


# A server under drain whose client closes first: the client sends 100
# bytes and its FIN; the server reads them all ("all") or 10 ("part"),
# waits for the FIN to be in, and closes; then the client reads what the
# server's close sent it.  Prints the server's fd, the client's port and
# what the client read ("eof", or the error's name).
PASSIVE_DRAIN_PROG = r"""
import json, socket, sys, time
mode = sys.argv[1]
lst = socket.socket(); lst.bind(("127.0.0.1", 0)); lst.listen(1)
cli = socket.create_connection(lst.getsockname())
srv, _ = lst.accept()
cli.sendall(b"x" * 100); cli.shutdown(socket.SHUT_WR)
want = 100 if mode == "all" else 10
got = b""
while len(got) < want:
    got += srv.recv(want - len(got))
time.sleep(0.1)   # the FIN is in
fd = srv.fileno()
srv.close()
try:
    seen = "eof" if cli.recv(100) == b"" else "data"
except OSError as e:
    seen = type(e).__name__
print(json.dumps({"fd": fd, "client": cli.getsockname()[1], "seen": seen}), flush=True)
time.sleep(0.1)
cli.close(); lst.close()
"""


def test_drain_after_the_peers_fin_is_a_graceful_close():
    """Under drain, a server whose client's FIN is already in when it
    closes has nothing to wait for: the library makes no private fd, no
    shutdown() and no read to EOF, and the program's own close sends the
    FIN (input left unread is thrown away first, so it is a FIN and not
    the kernel's RST).  The client reads EOF, the client holds TIME_WAIT,
    and the close event says so: FIN, closer passive.

    Catches: the three calls coming back (what made a drained redis cost
    three system calls a request more than an observed one); a drain
    that skips its private fd but not the discard, so the unread 90
    bytes make the close an RST."""
    for mode, unread in (("all", 0), ("part", 90)):
        proc, log, lines = _straced(PASSIVE_DRAIN_PROG, "passive-drain-" + mode, [mode],
                                    [{"name": "all", "close": "drain", "log": True}],
                                    "shutdown,fcntl,close,recvfrom")
        out = _last_json(proc)
        assert out["seen"] == "eof", (mode, out)
        closes = [r for r in tdlib.read_log(log)
                  if r["event"] == "close" and r.get("role") == "server"]
        assert len(closes) == 1, tdlib.read_log(log)
        got = (closes[0]["wire"], closes[0]["closer"], closes[0]["unread"], closes[0]["action"])
        assert got == ("FIN", "passive", unread, "drain"), (mode, closes[0])
        assert tdlib.time_wait_on(out["client"]), (mode, tdlib.ss_rows())
        fd = out["fd"]
        mine = [l for l in lines if re.search(r"(shutdown|fcntl)\(%d, " % fd, l)]
        assert mine == [], (mode, mine)
        # one close of the server's connection: the program's own
        assert len([l for l in lines if re.search(r"close\(%d\)" % fd, l)]) == 1, (mode, lines)


# ---------------------------------------------------------------------------
# The library's own descriptors
# ---------------------------------------------------------------------------

O_CLOEXEC = 0o2000000


def _fd_table(pid):
    """{fd: (target, flags)} of a running process."""
    table = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        fd = int(name)
        try:
            target = os.readlink("/proc/%d/fd/%d" % (pid, fd))
            with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
                flags = int(re.search(r"^flags:\s+([0-7]+)", f.read(), re.M).group(1), 8)
        except FileNotFoundError:
            continue
        table[fd] = (target, flags)
    return table


def _ownfds_run(env, stderr):
    """Start host_stress ownfds; return (Popen, its first JSON line)."""
    cmd = [tdlib.test_prog("host_stress"), "ownfds", "20041", "20042"]
    tdlib.note("$", " ".join(cmd))
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    line = proc.stdout.readline()
    assert line, "host_stress ownfds printed nothing (rc %s)" % proc.poll()
    return proc, json.loads(line)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_library_fds_are_close_on_exec_and_out_of_the_way():
    """With every kind of descriptor the library opens in use at once (a
    log file, a pending drain's private socket, the worker's eventfd and
    epoll fd, the refusing port and the black-hole listener with its
    filler connection), and again with the log on stderr (a pipe, which
    the library reopens through /proc/self/fd/2), every fd of the process
    that is not the program's has O_CLOEXEC in /proc/PID/fdinfo and sits
    at or above the library's fd base (1024 under this rlimit).

    Catches: a descriptor that would leak into every program the host
    execs (holding connections open, or a log file, in unrelated
    processes), or that sits at a low number a program expects free."""
    rules = [{"name": "refuse", "match": {"remote_port": 20041},
              "fault": {"connect_refuse": 1.0}},
             {"name": "blackhole", "match": {"remote_port": 20042},
              "fault": {"connect_timeout": 1.0, "connect_timeout_ms": 200}},
             {"name": "all", "close": "drain", "drain_timeout_ms": 30000}]
    problems = []
    for target in ("file", "stderr-pipe"):
        log = _log(target) if target == "file" else "stderr"
        env = _policy_env(rules, log)
        proc, info = _ownfds_run(env, subprocess.PIPE if target != "file" else subprocess.DEVNULL)
        try:
            assert info["refused"] and info["timed_out"], info
            table = _fd_table(info["pid"])
            tdlib.note(target, json.dumps({str(k): v for k, v in sorted(table.items())}))
            theirs = {fd: v for fd, v in table.items() if fd not in info["program_fds"]}
            kinds = collections.Counter(t.split(":")[0] if ":" in t else "file"
                                        for t, _ in theirs.values())
            # log (file or the stderr pipe), 4 sockets, eventfd, epoll
            if kinds["socket"] < 4 or kinds["anon_inode"] < 2 or len(theirs) < 7:
                problems.append("%s: not every kind of library fd was open: %r"
                                % (target, theirs))
            for fd, (where, flags) in sorted(theirs.items()):
                if not flags & O_CLOEXEC:
                    problems.append("%s: fd %d (%s) lacks O_CLOEXEC" % (target, fd, where))
                if fd < 1024:
                    problems.append("%s: fd %d (%s) below the library's range"
                                    % (target, fd, where))
        finally:
            proc.stdin.close()
            proc.wait(10)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_program_may_take_over_the_librarys_fd_numbers():
    """A program cannot know which numbers the library holds, so it may
    dup2() its own files onto them, or close() them in a loop over every
    number and get them back from later opens.  Here a pipe ends up on
    the numbers of the library's worker (eventfd, epoll fd) and of a
    pending drain's private socket, and then more drains happen.

    Catches: the library writing into the program's file (the worker's
    8-byte wake-up counter went into the program's pipe), reading from
    it, and a worker whose epoll fd is gone spinning at 100 % CPU for ever
    (CPU time of the process while its main thread sleeps 300 ms: an idle
    process uses ~0, a spinning thread ~300 ms; the limit is 150 ms)."""
    problems = []
    for how in ("dup2", "close"):
        log = _log(how)
        env = _policy_env([{"name": "all", "close": "drain", "drain_timeout_ms": 2000}], log)
        proc = tdlib.run([tdlib.test_prog("host_stress"), "hijack", how], env=env, timeout=30,
                         name="hijack-" + how)
        res = _last_json(proc)
        if proc.rc != 0 or not res["ok"]:
            problems.append("%s: %r" % (how, res))
        closes = [e for e in tdlib.read_log(log) if e["event"] == "close"
                  and e["role"] == "client"]
        if len(closes) != 2:
            problems.append("%s: %d client close events, want 2" % (how, len(closes)))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# errno and return values
# ---------------------------------------------------------------------------

def _errno_run(env, name):
    proc = tdlib.run([tdlib.test_prog("host_errno")], env=env, timeout=30, name=name)
    return proc, proc.stdout().splitlines()


def _diff(want, got, limit=12):
    out = []
    for i in range(max(len(want), len(got))):
        a = want[i] if i < len(want) else "(missing)"
        b = got[i] if i < len(got) else "(missing)"
        if a != b:
            out.append("  line %d: want %r, got %r" % (i + 1, a, b))
    return out[:limit]


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_errno_and_results_match_libc_alone():
    """host_errno makes every wrapped call (socket, accept, accept4,
    connect, bind, setsockopt, shutdown, close, fclose, close_range,
    closefrom, dup, dup2, dup3, write, send, sendto, sendmsg, writev,
    syscall(SYS_close...), fork, and the wait family on children that
    held counted sockets, killed or not) in success and failure cases, with errno
    preset before each, and prints rc and errno per case.  Run bare and
    under a policy matching every socket with logging, for each action,
    the outputs must be identical byte for byte; with shutdown = "half" or
    "skip" the shutdown() cases must still return exactly what the real
    call would (the calls after them may differ: that is the point of
    those settings).

    Catches: a hook that changes a return value or errno, clobbers errno
    on success, returns a different fd number (the library taking a low
    number), or answers a failing shutdown() it skipped with success."""
    bare, bare_lines = _errno_run(tdlib.shim_env(preload=False), "bare")
    assert bare.rc == 0 and bare_lines[-1] == "done", bare.stdout()
    problems = []
    for action in ACTIONS:
        log = _log(action)
        env = _policy_env([{"name": "all", "close": action, "drain_timeout_ms": 2000}], log)
        proc, lines = _errno_run(env, action)
        if lines != bare_lines or proc.rc != 0:
            problems.append("%s (rc %s):\n%s" % (action, proc.rc, "\n".join(_diff(bare_lines, lines))))
        events = tdlib.read_log(log)
        if sum(1 for e in events if e["event"] == "close") < 20:
            problems.append("%s: only %d events logged: the policy did not act" % (action, len(events)))
    shut = [l for l in bare_lines if l.startswith("shutdown_")]
    for mode in ("half", "skip"):
        env = _policy_env([{"name": "all", "shutdown": mode}], _log("shutdown-" + mode))
        proc, lines = _errno_run(env, "shutdown-" + mode)
        got = [l for l in lines if l.startswith("shutdown_")]
        if got != shut or proc.rc != 0:
            problems.append("shutdown=%s:\n%s" % (mode, "\n".join(_diff(shut, got))))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Exactly one real close per program call
# ---------------------------------------------------------------------------

@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_each_close_call_closes_exactly_once():
    """libhost_count.so, preloaded after the library, counts the real
    closing operations per fd (close, fclose, dup2/dup3 over it,
    close_range covering it).  For each action (pass, graceful, drain,
    abort) the program closes a matched socket with unread input through
    close, close returning EINTR after really closing, fclose, dup2,
    dup3, close_range(fd, fd), closefrom(fd), syscall(SYS_close), plus an
    unmatched socket: each must be exactly one closing operation on the
    program's fd, leave it closed, return what the real call returned
    (-1/EINTR passed through, never retried) and touch no other fd of the
    program.  Under drain, each private duplicate the library kept must
    be closed exactly once too (8 of them), once the drains are over.

    Catches: a retried close after EINTR (which would close another
    thread's new fd on that number), a close_range()/closefrom() that
    closes a tracked socket and then covers its number again in the
    kernel call, a drain's private fd closed twice or never, and closes
    of the program's other descriptors."""
    problems = []
    preload = [tdlib.lib_path(), tdlib.test_prog("libhost_count.so")]
    for action in ACTIONS:
        log = _log(action)
        env = _policy_env([{"name": "cli", "match": {"remote_port": 20011}, "close": action}],
                          log, preload=preload)
        proc = tdlib.run([tdlib.test_prog("host_closecount"), 20011, 20012], env=env, timeout=30,
                         name="closecount-" + action)
        records = proc.json_lines()
        paths = [r for r in records if "path" in r]
        summary = next((r for r in records if r.get("summary")), None)
        if len(paths) != 9 or summary is None:
            problems.append("%s: incomplete run (rc %s): %r" % (action, proc.rc, records))
            continue
        for r in paths:
            if not r["ok"]:
                problems.append("%s: %r" % (action, r))
        want_lib = 8 if action == "drain" else 0
        if summary["lib_closes"] != want_lib or summary["lib_sockets_left"] != 0:
            problems.append("%s: library closed %d of its own fds (want %d): %r"
                            % (action, summary["lib_closes"], want_lib, summary))
        if action == "drain" and any(n != 1 for n in summary["lib_closes_by_fd"].values()):
            problems.append("drain: a private fd closed more than once: %r" % summary)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Missing real symbols
# ---------------------------------------------------------------------------

# The host_errno cases that call each function whose real symbol is hidden
# and that may therefore fail with ENOSYS (the library has no raw system
# call to fall back on for these two).
ENOSYS_CASES = {
    "fork": ("fork_parent",),
    "system": ("system_exit_3",),
    "popen": ("popen_echo",),
    "fclose": ("fclose_socket", "fclose_closed_fd", "fclose_with_buffered_data", "fclose_file"),
}


def _case(line):
    return line.split()[0] if line.strip() else ""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_program_in_a_seccomp_sandbox_is_never_killed_by_the_library():
    """host_seccomp connects (a logged connection), enters a seccomp
    sandbox that kills the process at any system call it does not need
    itself (OpenSSH's pre-authentication child does this), closes the
    connection and exits: through prctl(PR_SET_SECCOMP), through
    syscall(SYS_seccomp), with TSYNC from another thread, and in strict
    mode.  Each must print "done" and exit 0; the connect is logged, and
    nothing after the sandbox (a close there goes straight to libc).

    Catches: the library's own calls at the close or the exit (TCP_INFO,
    the log's write, a sock_diag lookup) inside the sandbox: SIGSYS.
    sshd under the library lost every login this way ("preauth child
    terminated by signal 31")."""
    srv = tdlib.Server("--count", 4, "--read-until-eof")
    problems = []
    for how in ("prctl", "syscall", "tsync", "strict"):
        log = _log("seccomp-" + how)
        proc = tdlib.run([tdlib.test_prog("host_seccomp"), srv.port, how],
                         env=_policy_env([{"name": "all", "close": "pass"}], log),
                         timeout=20, name="seccomp-" + how)
        if proc.rc != 0 or proc.stdout() != "done\n":
            problems.append("%s: rc %s (negative: killed by that signal), out %r"
                            % (how, proc.rc, proc.stdout()))
            continue
        events = [e["event"] for e in tdlib.read_log(log)]
        if events != ["connect"]:
            problems.append("%s: logged %r" % (how, events))
    srv.results(timeout=15)
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_missing_real_symbol_means_enosys_never_a_crash():
    """libhost_nosym.so, preloaded after the library, answers the
    library's dlsym(RTLD_NEXT, NAME) with NULL for one name at a time
    (as a libc without that function, or an interposer hiding it, would).
    host_errno then runs every case under a logging policy, once per
    wrapped name.  Each run must complete (exit 0, "done"); every case
    must print what libc alone prints (the library falls back to the raw
    system call), except fork and fclose, which have no system call to
    fall back on: their cases may only fail with ENOSYS, and the cases
    after a failed fclose (whose fds stayed open) are not compared.

    Catches: a wrapper that calls the missing function through a NULL
    pointer (SIGSEGV: fclose and dup did), one that exits, or one that
    returns a wrong result instead of falling back."""
    bare, bare_lines = _errno_run(tdlib.shim_env(preload=False), "bare")
    assert bare.rc == 0 and bare_lines[-1] == "done", bare.stdout()
    preload = [tdlib.lib_path(), tdlib.test_prog("libhost_nosym.so")]
    problems = []
    for name in WRAPPED + WAITS + SANDBOX:
        env = _policy_env([{"name": "all", "close": "graceful"}], _log("nosym-" + name),
                          preload=preload, extra={"HOST_NOSYM": name})
        proc = tdlib.run([tdlib.test_prog("host_errno")], env=env, timeout=30, name="nosym-" + name)
        lines = proc.stdout().splitlines()
        if proc.rc != 0 or not lines or lines[-1] != "done":
            problems.append("%s: rc %s (negative: killed by that signal), last line %r"
                            % (name, proc.rc, lines[-1:]))
            continue
        asked = re.search(r"nosym-asked:(.*)", proc.stderr())
        if asked is None or name not in asked.group(1).split():
            problems.append("%s: the library never asked for it: %r" % (name, proc.stderr()))
        if [_case(l) for l in lines] != [_case(l) for l in bare_lines]:
            problems.append("%s: the cases differ" % name)
            continue
        enosys = ENOSYS_CASES.get(name, ())
        first_fclose = next(i for i, l in enumerate(bare_lines) if _case(l) == "fclose_socket")
        for i, (want, got) in enumerate(zip(bare_lines, lines)):
            case = _case(want)
            if want == got:
                continue
            if case in enosys and got.split()[1:] == ["rc=-1", "errno=ENOSYS"]:
                continue
            # (without fork the wait cases have no children to wait for)
            if name == "fork" and (case == "fork_child_status" or case.startswith("wait")):
                continue
            if name == "fclose" and i > first_fclose and case not in enosys:
                continue
            problems.append("%s: want %r, got %r" % (name, want, got))
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# Optimisation levels and a malloc interposer
# ---------------------------------------------------------------------------

def _makefile_var(name):
    with open(os.path.join(tdlib.REPO_ROOT, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^%s\s*:=\s*(.*)$" % name, text, re.M)
    assert m, "no %s in the Makefile" % name
    return m.group(1).split()


def _build_variant(name, opts):
    """Build libteardown.so as the Makefile's LIB rule does, with opts."""
    root = tdlib.REPO_ROOT
    srcs = []
    for sub in ("shim/core", "shim/rt", "shim/hook"):
        srcs += sorted(os.path.join(sub, f) for f in os.listdir(os.path.join(root, sub))
                       if f.endswith(".c") and not f.endswith("_linked.c"))
    out_dir = os.path.join(tdlib.tmpdir(), name)
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, "libteardown.so")
    version_map = os.path.join(out_dir, "teardown.map")
    subprocess.run(["cc", "-E", "-P", "-x", "c", "-Ishim", "-o", version_map,
                    "shim/teardown.map.in"], cwd=root, check=True, timeout=60)
    cmd = (["cc", "-std=gnu11"] + opts + _makefile_var("WARN") +
           ["-fPIC", "-fvisibility=hidden", "-Iinclude", "-D_GNU_SOURCE",
            '-DTD_VERSION="%s"' % _makefile_var("VERSION")[0],
            '-DTD_LIBDIR="/usr/local/lib/teardown"', "-shared", "-o", out] + srcs +
           ["-Wl,--version-script=" + version_map, "-Wl,-z,defs", "-Wl,-z,now",
            "-Wl,--as-needed", "-Wl,-soname,libteardown.so"])
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, "%s build failed:\n%s\n%s" % (name, " ".join(cmd), res.stderr)
    return out


VARIANTS = {"O0": ["-O0"], "O2": ["-O2"], "lto": ["-O2", "-flto=auto"]}


@tdlib.requires(*NEEDS, "tdpeer", "tcpdump")
@tdlib.timeout(180)
def test_real_symbols_survive_optimiser_and_malloc_interposer():
    """The library built at -O0, -O2 and -O2 -flto (the Makefile's LIB
    rule, flags from the Makefile), each run as a tdpeer client alone and
    with libhost_malloc.so preloaded after it (an interposer that
    re-enters the library through close() on every call, and reports who
    called it): an "abort" client must send an RST and a "graceful"
    client that set SO_LINGER {1,0} must send a FIN; every variant must
    export exactly the wrapped names; and the interposer must have seen
    no allocation made by libteardown.so itself: the library's policy
    and its parse come from mappings of its own (shim/rt/mem.c), never
    from the program's allocator.

    Catches: a real-symbol lookup or symbol-visibility scheme that only
    works at one optimisation level (LTO merging, a circular lookup
    resolving to our own wrapper, an inlined td_real call), start-up
    that deadlocks, recurses or crashes when malloc is interposed and
    calls back into the library, and a malloc() of the library's
    (start-up through the program's allocator, which may itself be in
    the middle of its own start-up; the library's blocks in the
    program's heap, where they moved a forked child's allocations onto
    two more pages)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        built = dict(zip(VARIANTS, pool.map(lambda kv: _build_variant(*kv), VARIANTS.items())))
    problems = []
    for name, lib in built.items():
        if _exported(lib) != EXPORTED:
            problems.append("%s exports %r" % (name, _exported(lib)))
    runs = []
    # Under ASan its runtime owns malloc (it comes first): no interposer
    # after it is ever called, so that half only runs in normal builds.
    modes = (False,) if tdlib.sanitize() else (False, True)
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof", "--count", len(built) * 2 * len(modes),
                           "--timeout", 20000)
        for name, lib in built.items():
            for interposed in modes:
                for action in ("abort", "graceful"):
                    tag = "%s-%s-%s" % (name, "malloc" if interposed else "plain", action)
                    preload = [lib] + ([tdlib.test_prog("libhost_malloc.so")] if interposed else [])
                    report = os.path.join(tdlib.tmpdir(), tag + ".malloc.json")
                    env = _policy_env([{"name": action, "close": action}], _log(tag),
                                      preload=preload, extra={"HOST_MALLOC_OUT": report})
                    args = ["--send", 10] + (["--linger", "1,0"] if action == "graceful" else [])
                    run = tdlib.run_client(srv.port, *args, env=env, name=tag)
                    runs.append((tag, action, interposed, run, report))
        srv.results(timeout=20)
    for tag, action, interposed, run, report in runs:
        if run.rc != 0:
            problems.append("%s: client exited %s" % (tag, run.rc))
            continue
        port = run.result["local_port"]
        want = "RST" if action == "abort" else "FIN"
        seen = cap.teardown_flags(port, srv.port)
        if seen != want:
            problems.append("%s: %s on the wire, want %s" % (tag, seen, want))
        if interposed:
            with open(report) as f:
                stats = json.load(f)
            tdlib.note(tag, stats)
            if stats["callers"].get("libteardown.so", 0) != 0:
                problems.append("%s: the library allocated through the program's malloc: %r"
                                % (tag, stats))
    assert not problems, "\n".join(problems)


# A listener ls, a client c connected to it, the accepted end s, and
# their numbers cfd and sfd: the start of the fork scripts below; with 4
# bytes sent on c, CONNECTED_PAIR.
LISTENING_PAIR = r"""
import os, socket, sys
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
c = socket.create_connection(ls.getsockname())
s, _ = ls.accept()
cfd, sfd = c.fileno(), s.fileno()
"""
CONNECTED_PAIR = LISTENING_PAIR + r"""
c.sendall(b"ping")
"""
# the end of a forked pair's program: the parent closes its client end
# and the listener, and prints both pids, the client's port and the fds
PAIR_REPORT = r"""
cport = c.getsockname()[1]
c.close()
ls.close()
print(os.getpid(), pid, cport, cfd, sfd, flush=True)
"""

# A forked child serves the connection and closes its copy first; the
# parent closes after it: the parent's close is the last one.
FORK_CHILD_CLOSES_FIRST = CONNECTED_PAIR + r"""
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    assert s.recv(4) == b"ping"
    s.sendall(b"pong")
    s.close()
    os._exit(0)
os.waitpid(pid, 0)
s.close()
assert c.recv(4) == b"pong" and c.recv(1) == b""
""" + PAIR_REPORT


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_fork_server_holders_asked_after_the_close():
    """A parent forks a child per connection.  Here the child closes its
    copies first (the listener, the client end, then the server end after
    its reply) and _exit()s; the parent closes the server end after it,
    then reads the reply and EOF on the client end and closes that.  Under
    a logging pass rule, whether another process still holds a socket is
    asked of sock_diag after each close of a connection, not of
    /proc/<pid>/fd before it: no readlinkat() of their fd links, in either
    process (a listener, which has no 4-tuple to look up, is still asked
    there).  And the
    answers are exact: the child's three closes end nothing (wire none,
    why shared: the parent holds each), the parent's close of the server
    end is the last one (FIN, active, TIME_WAIT), its client end's close
    the passive one.

    Catches: a close that takes the answer "someone still holds it" for
    "last" (the child's closes would claim FINs), or the reverse (the
    parent's would say shared, and the connection's end would go
    unlogged)."""
    proc, log, lines = _straced(FORK_CHILD_CLOSES_FIRST, "fork-child-first", [],
                                [{"name": "all", "close": "pass"}], "readlinkat")
    parent, child, cport, cfd, sfd = (int(x) for x in proc.stdout().split())
    links = [l for l in lines if "readlinkat(" in l and
             ('/fd/%d"' % cfd in l or '/fd/%d"' % sfd in l)]
    assert links == [], "connections' holders read from /proc:\n" + "\n".join(links)
    recs = [r for r in tdlib.read_log(log) if r["event"] == "close"]

    def one(pid, role, port_key):
        found = [r for r in recs if r["pid"] == pid and r["role"] == role and
                 r[port_key] is not None and r[port_key].endswith(":%d" % cport)]
        assert len(found) == 1, (pid, role, recs)
        return found[0]

    for role, key in (("client", "local"), ("server", "remote")):
        kid = one(child, role, key)
        assert (kid["wire"], kid["why"]) == ("none", "shared"), kid
    srv = one(parent, "server", "remote")
    assert (srv["wire"], srv["closer"], srv["time_wait"]) == ("FIN", "active", True), srv
    cli = one(parent, "client", "local")
    assert (cli["wire"], cli["closer"], cli["time_wait"]) == ("FIN", "passive", False), cli
    lis = [r for r in recs if r["pid"] == child and r["role"] == "listener"]
    assert len(lis) == 1 and lis[0]["why"] == "shared", lis


# The parent closes its copy of the server end at once, as a
# fork-per-connection server does; the child moves the connection to
# another fd (a dup, as busybox httpd's dup2() onto 0 and 1), closes the
# first, replies, and closes the dup last.  The parent sends its ping only
# after its close, so the child's last close is the connection's end.
FORK_PARENT_CLOSES_AT_ONCE = LISTENING_PAIR + r"""
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    d = os.dup(sfd)
    s.close()
    assert os.read(d, 4) == b"ping"
    os.write(d, b"pong")
    os.close(d)
    os._exit(0)
s.close()
c.sendall(b"ping")
assert c.recv(4) == b"pong" and c.recv(1) == b""
os.waitpid(pid, 0)
""" + PAIR_REPORT


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_a_close_that_another_copy_outlives_asks_the_kernel_nothing():
    """A copy that the share count shows another copy outlives (the
    parent's copy after the fork, the child's listener and client end, the
    child's first fd once dup()ed) ends nothing: its line says wire none,
    why shared, and the library reads none of the facts it would only
    describe (no TCP_INFO, no SIOCINQ on that fd: state, unread, unsent
    and the byte counts are null).  The copy that goes last reads them and
    its line is the end: FIN, active, TIME_WAIT, the bytes each way.

    Catches: the facts read at every close of a fork-per-connection
    server's copies (seven system calls a connection in busybox httpd), or
    a copy taken for shared that was the last (the end unlogged)."""
    proc, log, lines = _straced(FORK_PARENT_CLOSES_AT_ONCE, "fork-parent-first", [],
                                [{"name": "all", "close": "pass"}], "getsockopt,ioctl")
    parent, child, cport, cfd, sfd = (int(x) for x in proc.stdout().split())
    recs = [r for r in tdlib.read_log(log) if r["event"] == "close"]
    ends = [r for r in recs if r["role"] == "server" and r["remote"].endswith(":%d" % cport)]
    shared = [(r["pid"], r["fd"]) for r in ends if r["why"] == "shared"]
    assert sorted(shared) == sorted([(parent, sfd), (child, sfd)]), ends
    for r in ends:
        if r["why"] == "shared":
            assert r["wire"] == "none" and all(
                r[k] is None for k in ("state", "unread", "unsent", "bytes_in", "bytes_out")), r
    last = [r for r in ends if r["why"] != "shared"]
    assert len(last) == 1 and last[0]["pid"] == child and last[0]["fd"] != sfd, ends
    assert (last[0]["wire"], last[0]["closer"], last[0]["time_wait"], last[0]["state"],
            last[0]["bytes_in"], last[0]["bytes_out"]) == \
        ("FIN", "active", True, "ESTABLISHED", 4, 4), last[0]

    # the facts (TCP_INFO, SIOCINQ) each process read, by fd
    # (strace pads a pid below 10000 with a second space)
    def facts(pid):
        return [int(m.group(2)) for l in lines
                for m in [re.search(r"(?:TCP_INFO|FIONREAD)", l) and
                          re.match(r"^(\d+)\s+\w+\((\d+),", l)]
                if m and int(m.group(1)) == pid]

    assert sfd not in facts(parent), "\n".join(lines)
    # the child's: only its last close's, on the dup (its closes of the
    # listener, the client end and sfd, all shared, read none)
    assert facts(child) and set(facts(child)) == {last[0]["fd"]}, "\n".join(lines)
    lis = [r for r in recs if r["pid"] == child and r["role"] == "listener"]
    assert len(lis) == 1 and lis[0]["why"] == "shared" and lis[0]["state"] is None, lis


# A fork-per-connection server whose child replies (from a dup of the
# connection on every other one), maybe shuts down, and _exit()s while its
# parent closes its copy: the two let go in either order, or at the same
# moment, each after a random wait of a few milliseconds.
RACING_FORK_SERVER = r"""
import os, random, socket, sys, time
n, seed = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
port = ls.getsockname()[1]
ports = []
for i in range(n):
    rng = random.Random(seed * 100003 + i)
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = ls.accept()
    wait_kid, wait_parent = rng.random() * 2e-3, rng.random() * 4e-3
    pid = os.fork()
    if pid == 0:
        ls.close()
        c.close()
        if i & 2:
            # inetd-style: the connection moved onto another number
            fd = os.dup(s.fileno())
            s.close()
            s = socket.socket(fileno=fd)
        time.sleep(wait_kid)
        s.sendall(b"pong")
        if i & 1:
            s.shutdown(socket.SHUT_WR)
        os._exit(0)
    time.sleep(wait_parent)
    s.close()
    got = b""
    while True:
        b = c.recv(16)
        if not b:
            break
        got += b
    assert got == b"pong", got
    ports.append(c.getsockname()[1])
    c.close()
    os.waitpid(pid, 0)
ls.close()
print(" ".join(map(str, ports)), flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(90)
def test_fork_server_each_connection_ends_once_whoever_lets_go_last():
    """A parent forks a child per connection; the child replies (and on
    every other connection shuts down) and _exit()s while the parent
    closes its copy, after random waits, so that either lets go last or
    both at once.  The holders of a socket that crossed the fork are
    counted (fdtab.c's share slots), so for each of 300 connections
    exactly one of the two processes reports the server end's end, the
    other says "shared", and the end is what the wire did: the server's
    FIN, first (active, TIME_WAIT kept), never an RST.

    Catches: each process asking the other about the socket (/proc
    before its close, or the kernel after it) instead of counting: the
    build before the counts lost the end of 94 of these 300 connections
    (each process found the other still holding it: the child's _exit()
    lets go only in the kernel, after the library asked) and reported one
    twice (the parent's look-up after its close found the socket an
    orphan just after the child let go, and took the end for its own;
    busybox httpd under strace did this once in 20 requests)."""
    n = 300
    proc, log = _python(RACING_FORK_SERVER, "racing-fork", [n, 7],
                        [{"name": "all", "close": "pass"}], timeout=80)
    ports = [int(x) for x in proc.stdout().split()]
    assert len(ports) == n
    ends = collections.defaultdict(list)
    for r in tdlib.read_log(log):
        if r["event"] in ("close", "exit") and r["role"] == "server" and r["remote"]:
            ends[tdlib.port_of(r["remote"])].append(r)
    problems = []
    # A client port can serve two of the connections (the server holds the
    # first one's TIME_WAIT, the client none: seen once in CI): a port used
    # k times has exactly k ends.
    for port, uses in sorted(collections.Counter(ports).items()):
        mine = ends.get(port, [])
        last = [r for r in mine if r["why"] != "shared"]
        if len(last) != uses:
            problems.append("port %d, %d connection(s): %d ends: %s" % (
                port, uses, len(last), [(r["pid"], r["event"], r["why"], r["wire"]) for r in mine]))
            continue
        for e in last:
            if e["closer"] != "active" or e["time_wait"] is not True or e["wire"] == "RST":
                problems.append("port %d: %s" % (port, {k: e[k] for k in (
                    "pid", "event", "state", "closer", "wire", "why", "time_wait")}))
    assert not problems, "%d of %d connections:\n%s" % (
        len(problems), n, "\n".join(problems[:20]))


# A socket made before a fork and first used in the child: the child
# connects it, talks and closes it.  argv[1]: "child" (the child closes
# first; the parent closes its never-used copy after the child is gone) or
# "parent" (the parent closes its copy right after the fork).  Prints the
# child's pid, the client's port and the socket's fd number.
BORN_BEFORE_FORK = r"""
import os, socket, sys, time
first = sys.argv[1]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
addr = ls.getsockname()
s = socket.socket()
sfd = s.fileno()
pid = os.fork()
if pid == 0:
    ls.close()
    if first == "parent":
        time.sleep(0.3)
    s.connect(addr)
    cport = s.getsockname()[1]
    s.sendall(b"ping")
    assert s.recv(4) == b"pong"
    s.close()
    print(os.getpid(), cport, sfd, flush=True)
    os._exit(0)
if first == "parent":
    s.close()
a, _ = ls.accept()
assert a.recv(4) == b"ping"
a.sendall(b"pong")
os.waitpid(pid, 0)
if first == "child":
    s.close()
a.close()
ls.close()
"""


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_socket_made_before_fork_and_used_in_the_child_is_counted():
    """A socket() made before fork() and first used (connected) in the
    child is counted across the fork like one the library had an entry
    for: the child's close knows from the count alone whether the parent
    still holds its copy.  Child first: "shared", nothing on the wire, and
    no holder look-up of its own (no readlinkat() of the fd's /proc link,
    no sock_diag query); parent first: the child's close is the last, the
    active FIN.

    Catches: socket() making only a born entry (shim/rt/fdtab.h) and
    the fork's count walking live entries alone: the child's entry,
    published from the word at its connect(), would have no share, and
    its close would ask sock_diag whether another process holds it."""
    for first in ("child", "parent"):
        proc, log, lines = _straced(BORN_BEFORE_FORK, "born-fork-" + first, [first],
                                    [{"name": "all", "close": "pass"}], "readlinkat,sendto")
        child, cport, sfd = (int(x) for x in proc.stdout().split())
        mine = [l for l in lines if l.startswith("%d " % child)]
        asked = [l for l in mine if ("readlinkat(" in l and '/fd/%d"' % sfd in l) or
                 ("sendto(" in l and "nlmsg" in l)]
        if first == "child":
            assert asked == [], "the child asked who holds its socket:\n" + "\n".join(asked)
        closes = [r for r in tdlib.read_log(log) if r["event"] == "close" and
                  r["pid"] == child and r["role"] == "client"]
        assert len(closes) == 1, (first, closes)
        e = closes[0]
        assert e["local"].endswith(":%d" % cport), e
        if first == "child":
            assert (e["wire"], e["why"]) == ("none", "shared"), e
        else:
            assert (e["wire"], e["closer"]) == ("FIN", "active") and e["why"] != "shared", e


# A forked child holds the server end of a connection; the parent closes
# its copy, then the child is killed (SIGKILL) or exits, and the parent
# reaps it with waitpid (argv[2]: or "waitid", or "ignored": SIGCHLD
# ignored, the kernel reaps it, and the parent exits once it is gone).  argv[1]: "fin"
# (nothing unread: the kernel's close at the death sends a FIN), "linger0"
# (the program's own SO_LINGER {1,0}: an RST), "unread"
# (the client's bytes never read: an RST), "exit" (the child _exit()s:
# its own exit hook ends it).  Prints the parent's and child's pids, the
# client's port, the child's status and what the client saw.
KILLED_CHILD = LISTENING_PAIR + r"""
import signal, struct, time
mode, how = sys.argv[1], sys.argv[2]
if mode == "unread":
    c.sendall(b"never read")
if mode == "linger0":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
if how == "ignored":
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    os.write(ready_w, b"x")
    os.read(go_r, 1)
    if mode == "exit":
        os._exit(0)
    signal.pause()
os.read(ready_r, 1)
s.close()
os.write(go_w, b"x")
if mode != "exit":
    os.kill(pid, signal.SIGKILL)
if how == "ignored":
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    status = -9
elif how == "waitid":
    info = os.waitid(os.P_PID, pid, os.WEXITED)
    status = -info.si_status if info.si_code != os.CLD_EXITED else info.si_status
else:
    _, st = os.waitpid(pid, 0)
    status = -os.WTERMSIG(st) if os.WIFSIGNALED(st) else os.WEXITSTATUS(st)
try:
    seen = "EOF" if c.recv(100) == b"" else "data"
except ConnectionResetError:
    seen = "ECONNRESET"
print(os.getpid(), pid, c.getsockname()[1], ls.getsockname()[1], status, seen, flush=True)
c.close()
ls.close()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_killed_childs_connection_is_ended_by_the_parent_that_reaps_it():
    """A forked child holds the server end of a connection its parent
    closed already, and is killed by SIGKILL: no exit hook runs, and the
    kernel's close at its death ends the connection.  The parent reaps
    it (waitpid, or waitid): the library takes the child's copy off the
    count (its holder record) and writes the connection's "exit" event on
    the child's behalf (the child's pid, why "died"), with what the wire
    did, read from the kernel's state after the death: the FIN, first
    (active, TIME_WAIT here), where nothing was left unread; the zero
    linger's RST under "abort", or the program's own SO_LINGER {1,0}
    (recorded in the socket's slot); and "unknown" (never a FIN) where the
    kernel reset it for unread input.  A parent that ignores SIGCHLD (the
    kernel reaps; busybox httpd does) finds the dead child gone with
    kill(pid, 0) at its exit (or when its children's records run out),
    and reports the end then.  A child that _exit()s reports its own end,
    and the parent adds nothing.  Checked against tcpdump, ss
    and the client's view.

    Catches: a count the dead child never gives back (the end went
    without an event: the parent's close said "shared", and nobody
    else was left), and a parent that reports a child's end twice or
    for a child that reported it itself."""
    cases = [("fin", "waitpid", "pass", ("FIN", "active", True), "FIN", "EOF"),
             ("fin", "waitid", "pass", ("FIN", "active", True), "FIN", "EOF"),
             ("fin", "ignored", "pass", ("FIN", "active", True), "FIN", "EOF"),
             ("fin", "waitpid", "abort", ("RST", None, None), "RST", "ECONNRESET"),
             ("linger0", "waitpid", "pass", ("RST", None, None), "RST", "ECONNRESET"),
             ("unread", "waitpid", "pass", (None, None, None), "RST", "ECONNRESET"),
             ("exit", "waitpid", "pass", ("FIN", "active", True), "FIN", "EOF")]
    problems = []
    for mode, how, action, want, wire, view in cases:
        tag = "killed-%s-%s-%s" % (mode, how, action)
        with tdlib.Capture() as cap:
            proc, log = _python(KILLED_CHILD, tag, [mode, how],
                                [{"name": "all", "close": action}])
            parent, child, cport, sport, status, seen = proc.stdout().split()
            parent, child, cport, sport = int(parent), int(child), int(cport), int(sport)
            tw = [r for r in tdlib.time_wait_on(sport, cport)]
        if (status == "-9") != (mode != "exit") or seen != view:
            problems.append("%s: child status %s, the client saw %s (want %s)"
                            % (tag, status, seen, view))
        ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
                r["role"] == "server" and r["remote"] and tdlib.port_of(r["remote"]) == cport]
        last = [r for r in ends if r["why"] != "shared"]
        shared = [r for r in ends if r["why"] == "shared"]
        got = [(r["pid"], r["event"], r["why"], r["wire"], r["closer"], r["time_wait"])
               for r in ends]
        if len(last) != 1 or len(shared) != 1 or shared[0]["pid"] != parent:
            problems.append("%s: want one shared close by the parent and one end: %s"
                            % (tag, got))
            continue
        e = last[0]
        why = "died" if mode != "exit" else "close"
        if (e["pid"], e["event"], e["why"]) != (child, "exit", why) or \
                (e["wire"], e["closer"], e["time_wait"]) != want:
            problems.append("%s: end %s, want pid %d exit %s %s" % (tag, got[-1], child, why, want))
        if cap.teardown_flags(sport, cport) != wire:
            problems.append("%s: %s on the wire from the server, want %s"
                            % (tag, cap.teardown_flags(sport, cport), wire))
        if bool(tw) != (want[2] is True):
            problems.append("%s: TIME_WAIT on the server's side: %s" % (tag, tw))
    assert not problems, "\n".join(problems)


# The parent is the one killed: a forked child holds the server end, and
# kills its parent (SIGKILL: no exit hook) while the parent still holds its
# copy; once the parent is gone the child closes.  Prints the parent's and
# the child's pids and the client's port, from the child.
KILLED_PARENT = LISTENING_PAIR + r"""
import signal, time
parent, sport = os.getpid(), ls.getsockname()[1]
pid = os.fork()
if pid == 0:
    ls.close()
    os.kill(parent, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    s.close()
    assert c.recv(1) == b""
    print(parent, os.getpid(), c.getsockname()[1], sport, flush=True)
    c.close()
    os._exit(0)
signal.pause()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_killed_parents_copy_does_not_keep_the_childs_close_from_ending_it():
    """The other way round: the parent (the family's root, whose copies no
    holder record tells apart) is killed while it still holds its copy
    of the connection, and its forked child closes its own copy once the
    parent is gone.  The count still holds the dead parent's copy; the
    child, finding nothing else counted (no other record's copy, no copy
    untold but the root's) and the root gone (kill(pid, 0): ESRCH), takes
    its close for the last: its event is the end, FIN, active, TIME_WAIT
    on the server's side, as tcpdump and ss show it.

    Catches: the child's close reported as "shared" (nothing sent) while
    it sent the connection's FIN, and the end going without an event."""
    log = _log("killed-parent")
    with tdlib.Capture() as cap:
        proc = tdlib.run(["python3", _script(KILLED_PARENT, "killed-parent")],
                         env=_policy_env([{"name": "all", "close": "pass"}], log),
                         name="killed-parent", timeout=30)
        assert proc.rc == -9, (proc.rc, proc.stderr())
        # (the child outlives the parent: its line comes after)
        out = tdlib.wait_until(lambda: proc.stdout().strip(), timeout=15,
                               what="the child's report")
        parent, child, cport, sport = (int(x) for x in out.split())
        tdlib.wait_until(lambda: not os.path.exists("/proc/%d" % child), timeout=10,
                         what="the child's exit")
        tw = tdlib.time_wait_settled(sport)
    ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
            r["role"] == "server" and r["remote"] and tdlib.port_of(r["remote"]) == cport]
    got = [(r["pid"], r["event"], r["why"], r["wire"], r["closer"], r["time_wait"]) for r in ends]
    assert got == [(child, "close", "close", "FIN", "active", True)], got
    assert cap.teardown_flags(sport, cport) == "FIN", cap.teardown_flags(sport, cport)
    assert [r for r in tw if r.local_port == sport and r.peer_port == cport], tw


# A forked child exec()s sleep; the parent closes its copy of the server
# end once the child runs sleep.  argv[1]: "cloexec" (Python's default:
# the exec closes the child's copy) or "inherit" (sleep keeps it).
EXEC_CHILD = CONNECTED_PAIR + r"""
import time
keep = sys.argv[1] == "inherit"
assert s.recv(4) == b"ping"
s.set_inheritable(keep)
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    os.execv("/bin/sleep", ["sleep", "0.5"])
deadline = time.time() + 5
while os.readlink("/proc/%d/exe" % pid).split("/")[-1] != "sleep" and time.time() < deadline:
    time.sleep(0.005)
s.close()
os.waitpid(pid, 0)
assert c.recv(1) == b""
cport = c.getsockname()[1]
c.close()
ls.close()
print(os.getpid(), pid, cport, flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(30)
def test_exec_takes_the_close_on_exec_copies_off_the_count():
    """A parent forks a child that exec()s sleep, then closes its copy of
    the connection.  The child's copy is counted at the fork; with
    close-on-exec (Python's default) the exec closes it, so the exec hook
    takes it off the count first, and the parent's close is the last: its
    event ends the connection (FIN, active).  Without close-on-exec sleep
    keeps it, and the parent's close ends nothing (shared): the copy sleep
    holds is one the count no longer vouches for, so the holders are asked.

    Catches: an exec the library does not see (the count stays at two, and
    the parent's close, the real last one, would say shared: no end), and
    one that takes every copy off (the parent's close would claim an end
    while sleep still holds the connection)."""
    for mode, want in (("cloexec", ("FIN", "active")), ("inherit", ("none", None))):
        proc, log = _python(EXEC_CHILD, "exec-" + mode, [mode],
                            [{"name": "all", "close": "pass"}])
        parent, child, cport = (int(x) for x in proc.stdout().split())
        ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
                r["role"] == "server" and r["remote"] and tdlib.port_of(r["remote"]) == cport]
        mine = [r for r in ends if r["pid"] == parent]
        assert len(mine) == 1, (mode, ends)
        assert (mine[0]["wire"], mine[0]["closer"]) == want, (mode, mine[0])
        assert (mine[0]["why"] == "shared") == (mode == "inherit"), (mode, mine[0])


# An inetd-style child: the connection onto 0 and 1, its own copy closed,
# the reply, shutdown(SHUT_WR) and _exit() with 0 and 1 still open.  The
# parent drops its copy at once (argv[1] "early") or only after the child
# is gone ("late").
INETD_CHILD = CONNECTED_PAIR + r"""
late = sys.argv[1].endswith("late")
dup = not sys.argv[1].startswith("nodup")
# early: the child exits only once the parent's close has returned (the
# two unordered, a slow parent closed after the child's exit under ASan)
closed_r, closed_w = os.pipe()
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    if dup:
        os.dup2(s.fileno(), 0)
        os.dup2(s.fileno(), 1)
        s.close()
        assert os.read(0, 4) == b"ping"
        os.write(1, b"pong")
        w = socket.socket(fileno=1)
    else:
        assert s.recv(4) == b"ping"
        s.sendall(b"pong")
        w = s
    w.shutdown(socket.SHUT_WR)
    w.detach()
    if not late:
        os.read(closed_r, 1)
    os._exit(0)
if not late:
    s.close()
    os.write(closed_w, b"x")
os.waitpid(pid, 0)
if late:
    s.close()
assert c.recv(4) == b"pong" and c.recv(1) == b""
cport = c.getsockname()[1]
c.close()
ls.close()
print(os.getpid(), pid, cport, sfd, flush=True)
"""


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_inetd_child_that_exits_with_the_connection_open_logs_its_end():
    """busybox httpd's way: the parent forks a child per connection; the
    child dup2()s the connection onto 0 and 1, closes its copy, replies,
    shuts down writing and _exit()s with 0 and 1 still open.  When the
    parent dropped its copy at once, the child's exit ends the connection:
    one "exit" event (not one per dup), the server the active closer, its
    FIN sent by the shutdown, TIME_WAIT its.  When the parent still holds
    its copy (at its own number, not 0 or 1) the child's exit ends
    nothing and logs nothing; the parent's close after it is the end.
    The same child without the dups ("nodup") lets go of the connection
    itself in its exit and asks sock_diag after, never /proc: its exit
    and the parent's close cannot both see the other still holding it.

    Catches: _exit() writing no exit events (the connection's end went
    unlogged), an exit event per dup'd fd, and a child that looks for its
    parent's copy at its own fd numbers (it would find stdin or stdout
    there, and call its exit the end while the parent still holds the
    connection)."""
    script = os.path.join(tdlib.tmpdir(), "inetd.py")
    with open(script, "w") as f:
        f.write(INETD_CHILD)
    for when in ("early", "late", "nodup-early", "nodup-late"):
        log = _log("inetd-" + when)
        trace = os.path.join(tdlib.tmpdir(), "inetd-%s.strace" % when)
        proc = tdlib.run(["strace", "-f", "-qq", "-o", trace, "-e", "trace=readlinkat",
                          "python3", script, when], name="inetd-" + when, timeout=30,
                         env=_policy_env([{"name": "all", "close": "pass"}], log))
        assert proc.rc == 0, proc.stderr()
        parent, child, cport, sfd = (int(x) for x in proc.stdout().split())
        if when.startswith("nodup"):
            with open(trace) as f:
                links = [l for l in f if '/fd/%d"' % sfd in l]
            assert links == [], (when, links)
        recs = tdlib.read_log(log)
        conn = [r for r in recs if r["remote"] is not None and r["role"] == "server" and
                r["remote"].endswith(":%d" % cport)]
        kid_exits = [r for r in conn if r["pid"] == child and r["event"] == "exit"]
        pclose = [r for r in conn if r["pid"] == parent and r["event"] == "close"]
        assert len(pclose) == 1, conn
        if when.endswith("early"):
            assert len(kid_exits) == 1, conn
            ev = kid_exits[0]
            assert (ev["closer"], ev["wire"], ev["why"], ev["time_wait"]) == (
                "active", "none", "fin-sent", True), ev
            assert ev["fd"] == (1 if when == "early" else sfd), ev
            assert pclose[0]["why"] == "shared", pclose
        else:
            assert kid_exits == [], conn
            assert pclose[0]["why"] != "shared", pclose


MANY_DUPS = r"""
import os, socket, sys
n = int(sys.argv[1])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(256)
keep = []
for i in range(n):
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    keep += [c, s, os.dup(s.fileno())]
# per connection: the client's port, and the higher of the server's two fds
print(" ".join("%d:%d" % (keep[i].getsockname()[1], max(keep[i + 1].fileno(), keep[i + 2]))
               for i in range(0, len(keep), 3)), flush=True)
os._exit(0)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_exit_with_many_dupd_sockets_logs_each_connection_once():
    """A process exits holding n connections, each accepted socket on two
    fds (a dup): one exit event per connection, from its higher fd, its
    end (not "shared": both fds were this process's), and as many on the
    client side (and the listener's).  With 10 connections the exit path notes each share in
    a short list; with 80, past its 64 entries, in a table of every share
    slot: both must say the same.

    Catches: a share noted twice or not at all once the list is full (an
    exit event per dup, a connection with none, or its end called
    shared)."""
    script = os.path.join(tdlib.tmpdir(), "many_dups.py")
    with open(script, "w") as f:
        f.write(MANY_DUPS)
    for n in (10, 80):
        log = _log("many-dups-%d" % n)
        proc = tdlib.run(["python3", script, str(n)], name="many-dups-%d" % n, timeout=30,
                         env=_policy_env([{"name": "all", "close": "pass"}], log))
        assert proc.rc == 0, proc.stderr()
        want = dict(tuple(int(v) for v in x.split(":")) for x in proc.stdout().split())
        assert len(want) == n, proc.stdout()
        exits = [r for r in tdlib.read_log(log) if r["event"] == "exit"]
        server = [r for r in exits if r["role"] == "server"]
        client = [r for r in exits if r["role"] == "client"]
        got = {int(r["remote"].rsplit(":", 1)[1]): r["fd"] for r in server}
        # one each, from the higher fd: it speaks for the connection
        assert len(server) == n and got == want, (n, got, want)
        assert all(r["why"] != "shared" for r in server), (n, server)
        assert len(client) == n, (n, client)
        # and the listener's
        assert len(exits) == 2 * n + 1, (n, len(exits))


@tdlib.requires(*NEEDS, "strace")
@tdlib.timeout(60)
def test_exit_leaves_the_programs_fds_to_the_program():
    """A forked child answers its connection and ends with it still open
    (tests/progs/host_exit_reply), its parent having dropped its copy, under
    a logging pass rule:

      stdio   the child fdopen()s the connection, fputs() its reply and
              exit()s: stdio writes the reply in its final flush, after
              every destructor, the library's included;
      thread  the child has a second thread when it write()s its reply
              and _exit()s;
      plain   the child write()s its reply and exit()s.

    Under a logging rule that only observes (pass) and under drain, the
    client reads the whole reply every time, and the child's exit event
    ends the connection (FIN, not shared).  In the first two the library
    neither closes nor shuts down the connection in the child at exit
    (strace), since the program's code (stdio's flush) or another of its
    threads could still write to it: drain's FIN is the kernel's close's,
    behind the reply.  In the third it closes the connection itself
    (after drain's shutdown), so that the event says what that close did
    (the count says the child's copy is the last, nothing else to ask).

    Catches: an exit path that closes a socket under a stdio stream, or
    sends drain's FIN on it (the reply is lost: the client reads EOF at
    once), and one that does either in _exit() with another thread
    alive."""
    prog = tdlib.test_prog("host_exit_reply")
    for action, mode in [(a, m) for a in ("pass", "drain") for m in ("stdio", "thread", "plain")]:
        what = "%s-%s" % (action, mode)
        log = _log("exit-reply-" + what)
        trace = os.path.join(tdlib.tmpdir(), "exit-reply-%s.strace" % what)
        proc = tdlib.run(["strace", "-f", "-qq", "-o", trace, "-e",
                          "trace=close,shutdown,exit_group", prog, mode],
                         name="exit-reply-" + what, timeout=30,
                         env=_policy_env([{"name": "all", "close": action}], log))
        assert proc.rc == 0, (what, proc.stderr())
        out = json.loads(proc.stdout().strip().splitlines()[-1])
        assert out["reply"] == "reply from the child", (what, out)
        with open(trace) as f:
            kid = [l for l in f if l.split()[0] == str(out["child"])]
        calls = [l.split()[1].split(",")[0].rstrip(")") for l in kid]
        want = []
        if mode == "plain":
            want = (["shutdown(%d" % out["sfd"]] if action == "drain" else []) + \
                ["close(%d" % out["sfd"]]
        assert [c for c in calls if c in ("close(%d" % out["sfd"], "shutdown(%d" % out["sfd"])] \
            == want, (what, kid)
        recs = tdlib.read_log(log)
        conn = [r for r in recs if r["remote"] is not None and r["role"] == "server" and
                r["remote"].endswith(":%d" % out["cport"])]
        ends = [r for r in conn if r["pid"] == out["child"] and r["event"] == "exit"]
        assert len(ends) == 1, (what, conn)
        assert ends[0]["why"] != "shared" and ends[0]["wire"] == "FIN", (what, ends)


# The client resets the connection before the forked child closes its
# copy; the parent closes its own after the child is gone.
RESET_THEN_FORKED_CLOSES = CONNECTED_PAIR + r"""
import struct, time
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
pid = os.fork()
if pid == 0:
    ls.close()
    c.close()
    try:
        while s.recv(100):
            pass
    except ConnectionResetError:
        pass
    if sys.argv[1] == "close":
        s.close()
    else:
        s.detach()
    os._exit(0)
cport = c.getsockname()[1]
c.close()
os.waitpid(pid, 0)
s.close()
ls.close()
print(os.getpid(), pid, cport, flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_connection_already_closed_is_ended_once_by_its_last_holder():
    """The client resets its connection (SO_LINGER {1,0}); the server's
    forked child reads the reset and closes its copy while the parent still
    holds one, then exits (or the child just exits with it, "exit"); the
    parent closes its copy after.  The socket is CLOSE by then, in no table
    a sock_diag lookup reads: after a close, a lookup cannot tell whether
    another process still holds it.  So /proc is asked: the child's close
    says shared (its exit says nothing: an inherited socket its parent still
    holds), and the parent's close is the end, once.

    Catches: a close, or an exit, of a CLOSE socket that asks sock_diag
    after (both find nothing, and both report the end)."""
    for how in ("close", "exit"):
        proc, log = _python(RESET_THEN_FORKED_CLOSES, "reset-forked-" + how, [how],
                            [{"name": "all", "close": "pass"}], timeout=30)
        parent, child, cport = (int(x) for x in proc.stdout().split())
        conn = [r for r in tdlib.read_log(log) if r["remote"] is not None and
                r["role"] == "server" and r["remote"].endswith(":%d" % cport) and
                r["event"] in ("close", "exit")]
        ends = [r for r in conn if r["why"] != "shared"]
        assert [(r["pid"], r["event"]) for r in ends] == [(parent, "close")], (how, conn)
        kid = [(r["event"], r["why"]) for r in conn if r["pid"] == child]
        assert kid == ([("close", "shared")] if how == "close" else []), (how, conn)


def _exit_late(action, mode, pre=()):
    """Run tests/progs/host_exit_late MODE (behind pre: strace) under a
    rule closing with action, against a listener of ours: once it is in
    stdio's final flush, send our FIN, read to its end (or a reset), close.
    Returns (its JSON line, the log, our port, the bytes it sent)."""
    what = "exit-late-%s-%s" % (action, mode)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)
    port = ls.getsockname()[1]
    log = _log(what)
    proc = tdlib.spawn(list(pre) + [tdlib.test_prog("host_exit_late"), str(port), mode],
                       name=what, env=_policy_env([{"name": "all", "close": action}], log))
    conn, _ = ls.accept()
    ls.close()
    tdlib.wait_until(lambda: "exiting" in proc.lines() or not proc.running(),
                     timeout=10, what=what + " to reach stdio's flush")
    # the peer's FIN now (refused if a reset came already)
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
    conn.settimeout(10)
    got = b""
    with contextlib.suppress(ConnectionResetError):
        while True:
            b = conn.recv(100)
            if not b:
                break
            got += b
    conn.close()
    assert proc.wait(10) == 0, (what, proc.stderr())
    return json.loads(proc.lines()[0]), log, port, got


@tdlib.requires(*NEEDS, "tcpdump", "strace")
@tdlib.timeout(60)
def test_exit_event_agrees_with_the_wire_when_the_peer_closes_during_exit():
    """A client exits with its connection still open on one fd that
    another fd of it once shared (tests/progs/host_exit_late: "exec", the
    connection inherited on fd 0 across a re-exec, dup()ed and 0 closed,
    as sshd's per-connection process does; "dup", dup()ed in-process and
    the original closed; "stdio-open", on two fds, each under a stdio
    stream with nothing buffered, as git daemon's upload-pack holds it on
    0 and 1), and code of the program runs after the
    library's destructor (a fopencookie() stream flushed by exit()) while
    the peer sends its FIN.  Under pass and abort the exit event's closer
    and wire must be what the capture shows: who sent the first FIN or
    RST, and whether the program's end was a FIN or an RST.  The library
    closes those sockets itself in its destructor (strace: close() of the
    fd before the stdio flush's "exiting"), but never one with the
    program's SO_LINGER {1, 5} ("linger"): its close() could block for
    those 5 s, where the kernel's close in the exit does not.

    Catches: an exit event decided from facts read in the destructor while
    the kernel's close came later, after the peer's FIN (seen in CI with
    sshd under abort: closer=active, while the peer's FIN was first; and
    with git daemon under abort and ASan, its connection on stdin and
    stdout, the peer's FIN 0.9 ms before the kernel's RST), and
    an exit path whose own close waits out the program's linger."""
    cases = []
    with tdlib.Capture() as cap:
        for action, mode in [(a, m) for a in ("pass", "abort")
                             for m in ("exec", "dup", "plain", "stdio-open")] + \
                [("pass", "linger")]:
                what = "%s-%s" % (action, mode)
                trace = os.path.join(tdlib.tmpdir(), "exit-late-%s.strace" % what)
                out, log, port, _ = _exit_late(action, mode, ["strace", "-f", "-qq", "-o", trace,
                                                              "-e", "trace=close,write"])
                with open(trace) as f:
                    calls = [l.split(None, 1)[1] for l in f]
                # from the program's JSON line on: its exit
                calls = calls[next(i for i, c in enumerate(calls) if "cport" in c):]
                closed = [i for i, c in enumerate(calls) if c.startswith("close(%d)" % out["fd"])]
                exiting = [i for i, c in enumerate(calls) if "exiting" in c]
                if mode == "linger":
                    assert closed == [], (what, calls)
                    continue
                # (the number may be closed again: the library's lookup
                # socket is made on the lowest free one, then moved)
                assert closed and len(exiting) == 1 and closed[0] < exiting[0], (what, calls)
                cases.append((what, log, out["cport"], port))
    wrong = []
    for what, log, cport, port in cases:
        c = cap.connection(cport, port)
        first = next(p for p in c.packets() if p.fin or p.rst)
        want = ("active" if first.sport == cport else "passive", c.teardown_flags(cport))
        ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
                r["remote"] is not None and r["local"].endswith(":%d" % cport) and
                r["why"] != "shared"]
        assert len(ends) == 1, (what, ends)
        if (ends[0]["closer"], ends[0]["wire"]) != want:
            wrong.append("%s: the wire says %s %s, the log %s %s (%s event, state %s)" % (
                what, want[0], want[1], ends[0]["closer"], ends[0]["wire"], ends[0]["event"],
                ends[0]["state"]))
    assert not wrong, "\n".join(wrong)


@tdlib.requires(*NEEDS, "tcpdump")
@tdlib.timeout(60)
def test_exit_event_of_a_socket_shut_down_on_stdio_agrees_with_the_wire():
    """busybox httpd's child, in a program of our own (host_exit_late
    "stdio"): the connection on two fds, each with a stdio stream (stdin
    on 0, a stream fdopen()ed on the other, its reply flushed), shut down
    (our FIN out), then exit(), and code of the program runs after the
    library's destructor while the peer sends its FIN.  Under abort, the
    kernel's close of a socket in FIN_WAIT2 with a zero linger sends an
    RST, unless the peer's FIN came first (TIME_WAIT: nothing).  The exit
    event must say what the wire shows: whether the program sent an RST.

    Before, the library left such a socket to the kernel's close (a stdio
    stream on its fds, and two fds), and its event said RST as of its last
    look, while the peer's FIN came before that close: no RST on the wire
    (busybox httpd under abort in CI, 1 run in 4).  Now a socket whose
    FIN is out is closed by the library, all its fds, where no stream on
    them holds output (none can be written any more), and the event says
    what that close did."""
    cases = []
    with tdlib.Capture() as cap:
        for action in ("pass", "abort"):
            out, log, port, got = _exit_late(action, "stdio")
            assert got == b"hi\n", (action, got)
            cases.append((action, log, out["cport"], port))
    wrong = []
    for action, log, cport, port in cases:
        c = cap.connection(cport, port)
        first = next(p for p in c.packets() if p.fin or p.rst)
        assert first.sport == cport and first.fin, (action, "our FIN first")
        rst = c.count_rst(cport) > 0
        ends = [r for r in tdlib.read_log(log) if r["event"] in ("close", "exit") and
                r["remote"] is not None and r["local"].endswith(":%d" % cport) and
                r["why"] != "shared"]
        assert len(ends) == 1, (action, ends)
        if ends[0]["closer"] != "active" or (ends[0]["wire"] == "RST") != rst:
            wrong.append("%s: the wire shows %s from the program, the log closer %s wire %s "
                         "(%s event, state %s)" % (action, "an RST" if rst else "no RST",
                                                   ends[0]["closer"], ends[0]["wire"],
                                                   ends[0]["event"], ends[0]["state"]))
        if action == "pass":
            assert not rst, (action, "pass sent an RST")
    assert not wrong, "\n".join(wrong)


# A node-cluster-style server: a worker forked first waits on a Unix
# socket; the primary accepts a connection, sends it to the worker in an
# SCM_RIGHTS message, and the two close their copies in the order argv[1]
# names ("worker": the worker's close first, told to the primary on the
# Unix socket; "primary": the primary's first), the worker after its reply.
SCM_RIGHTS_HANDOFF = r"""
import ctypes, os, socket, struct, sys
first, via = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)


class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(Iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint)]


def mmsg(data, control):
    # one message in a vector of one: its buffers, and the call's result
    buf = ctypes.create_string_buffer(data, len(data))
    cbuf = ctypes.create_string_buffer(control, len(control))
    iov = Iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    m = Mmsghdr(Msghdr(None, 0, ctypes.pointer(iov), 1, ctypes.cast(cbuf, ctypes.c_void_p),
                       len(control), 0), 0)
    return m, buf, cbuf, iov


def send_fd(u, fd):
    if via == "msg":
        socket.send_fds(u, [b"x"], [fd])
        return
    # sendmmsg(): one cmsghdr (len, SOL_SOCKET, SCM_RIGHTS) and the fd
    control = struct.pack("@Nii", socket.CMSG_LEN(4), socket.SOL_SOCKET,
                          socket.SCM_RIGHTS) + struct.pack("@i", fd)
    control += b"\0" * (socket.CMSG_SPACE(4) - len(control))
    m, *keep = mmsg(b"x", control)
    assert libc.sendmmsg(u.fileno(), ctypes.byref(m), 1, 0) == 1, ctypes.get_errno()


def recv_fd(u):
    if via == "msg":
        return socket.recv_fds(u, 16, 1)[1][0]
    m, buf, cbuf, iov = mmsg(b"\0" * 16, b"\0" * socket.CMSG_SPACE(4))
    assert libc.recvmmsg(u.fileno(), ctypes.byref(m), 1, 0, None) == 1, ctypes.get_errno()
    return struct.unpack_from("@i", cbuf.raw, socket.CMSG_LEN(0))[0]


u_primary, u_worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
pid = os.fork()
if pid == 0:
    u_primary.close()
    s = socket.socket(fileno=recv_fd(u_worker))
    if first == "primary":
        assert u_worker.recv(1) == b"c"
    assert s.recv(4) == b"ping"
    s.sendall(b"pong")
    s.close()
    u_worker.sendall(b"c")
    os._exit(0)
u_worker.close()
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
c = socket.create_connection(ls.getsockname())
s, _ = ls.accept()
c.sendall(b"ping")
send_fd(u_primary, s.fileno())
if first == "worker":
    assert u_primary.recv(1) == b"c"
s.close()
if first == "primary":
    u_primary.sendall(b"c")
    assert u_primary.recv(1) == b"c"
os.waitpid(pid, 0)
assert c.recv(4) == b"pong"
try:
    assert c.recv(1) == b""
except ConnectionResetError:
    pass  # abort
cport = c.getsockname()[1]
c.close()
ls.close()
print(os.getpid(), pid, cport, flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_connection_sent_in_scm_rights_has_one_end_whoever_closes_last():
    """A primary sends each accepted connection to a worker it forked
    before (an SCM_RIGHTS message, as node's cluster module does) and
    closes its copy; the worker replies and closes its own.  Whichever
    closes last reports the end, once; the other's close says shared.
    Under pass, abort, graceful and drain, both orders, sent and received
    with sendmsg()/recvmsg() and with sendmmsg()/recvmmsg().

    Catches: a sender's close never taken for the last one (the socket
    it sent is marked shared for good, and /proc cannot say who holds
    it): when the worker closed first, both closes said shared and the
    end went unlogged (node's cluster under abort); and a receiver that
    looked for the socket in its parent's fd table at its own number
    (where an inherited socket would be), found nothing, and took its
    close for the last under graceful and drain while the primary still
    held the connection (drain shut it down under the primary); and the
    same through sendmmsg()/recvmmsg(), which were not wrapped: the
    sender's close under drain shut the connection down under the
    worker, and the worker's end went unlogged."""
    problems = []
    for action, first, via in itertools.product(("pass", "abort", "graceful", "drain"),
                                                ("worker", "primary"), ("msg", "mmsg")):
        what = "%s-%s-%s" % (action, first, via)
        proc, log = _python(SCM_RIGHTS_HANDOFF, "scm-" + what, [first, via],
                            [{"name": "all", "close": action}])
        parent, worker, cport = (int(x) for x in proc.stdout().split())
        ends = [(r["pid"], r["why"] == "shared") for r in tdlib.read_log(log)
                if r["event"] in ("close", "exit") and r["role"] == "server" and
                r["remote"] is not None and r["remote"].endswith(":%d" % cport)]
        last = parent if first == "worker" else worker
        want = sorted([(parent, last != parent), (worker, last != worker)])
        if sorted(ends) != want:
            problems.append("%s: ends (pid, shared) %s, want %s" % (what, sorted(ends), want))
    assert not problems, "\n".join(problems)


# A server that dups its accepted connection with fcntl() (CPython's
# os.dup(), libuv's uv__dup()) or fcntl(F_DUPFD), closes the original,
# and answers through the dup; the client reads to the end.  Prints
# what the client read, how it ended, and the accepted fd's number.
FCNTL_DUP = r"""
import fcntl, os, socket, sys
how = sys.argv[1]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
c = socket.create_connection(ls.getsockname())
s, _ = ls.accept()
if how == "os.dup":
    d = os.dup(s.fileno())
else:
    d = fcntl.fcntl(s.fileno(), fcntl.F_DUPFD, 0)
first = s.fileno()
s.close()
t = socket.socket(fileno=d)
t.sendall(b"still here")
t.close()
c.settimeout(10)
got, end = b"", "EOF"
try:
    while True:
        b = c.recv(100)
        if not b:
            break
        got += b
except ConnectionResetError:
    end = "reset"
c.close()
ls.close()
print(got.decode(), end, first, d, flush=True)
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_dup_made_with_fcntl_shares_the_socket():
    """A dup made with fcntl(F_DUPFD) or F_DUPFD_CLOEXEC (os.dup() in
    CPython, uv__dup() in libuv) shares the socket as dup() does: closing
    the original is not the connection's end (why "shared", nothing on
    the wire), the dup still works, and its close is the end, with the
    rule's work (abort: RST), under every action.

    Catches: fcntl() not wrapped, so the dup went unseen: under drain the
    original's close shut the connection down under the dup (its send
    failed with EPIPE), and under graceful and abort the original's close
    was logged as the end (FIN, RST) while the connection went on."""
    problems = []
    for action, how in itertools.product(ACTIONS, ("os.dup", "F_DUPFD")):
        what = "%s-%s" % (action, how)
        proc, log = _python(FCNTL_DUP, "fcntl-" + what, [how],
                            [{"name": "all", "close": action}])
        want_end = "reset" if action == "abort" else "EOF"
        fields = proc.stdout().split()
        if fields[:3] != ["still", "here", want_end]:
            problems.append("%s: the client read %s, want 'still here' then %s"
                            % (what, fields[:3], want_end))
        first, dup = int(fields[3]), int(fields[4])
        ends = {r["fd"]: (r["why"], r["wire"]) for r in tdlib.read_log(log)
                if r["event"] == "close" and r["role"] == "server"}
        want = {first: ("shared", "none"),
                dup: ({"pass": "close", "graceful": "close"}.get(action, "policy"),
                      "RST" if action == "abort" else "FIN")}
        if ends != want:
            problems.append("%s: closes (why, wire) by fd %s, want %s" % (what, ends, want))
    assert not problems, "\n".join(problems)


# A server whose accepted connection is inheritable (no close-on-exec,
# as a C program's plain accept() leaves it) runs a command through libc's
# system() or popen() that leaves a shell in the background holding it,
# until a line on a pipe tells it to go.  The server answers and closes
# its copy; the client must see no end before the background shell goes.
# Prints the reply, "early" or "held", how the connection then ended,
# the server's pid, the background shell's pid and the client's port.
SHELL_CHILD = r"""
import ctypes, os, select, socket, sys
how = sys.argv[1]
libc = ctypes.CDLL(None)
libc.popen.restype = ctypes.c_void_p
libc.pclose.argtypes = [ctypes.c_void_p]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4)
c = socket.create_connection(ls.getsockname())
s, _ = ls.accept()
os.set_inheritable(s.fileno(), True)
go_r, go_w = os.pipe()
pid_r, pid_w = os.pipe()
os.set_inheritable(go_r, True)
os.set_inheritable(pid_w, True)
cmd = ("sh -c 'echo $$ >&%d; exec %d>&-; read x' <&%d >/dev/null &"
       % (pid_w, pid_w, go_r)).encode()
if how == "system":
    assert libc.system(cmd) == 0
else:
    fp = libc.popen(cmd, b"r")
    assert fp and libc.pclose(fp) == 0
os.close(go_r)
os.close(pid_w)
bg = int(os.read(pid_r, 100).split()[0])
s.sendall(b"hi")
s.close()
c.settimeout(10)
got = c.recv(10)
early = "early" if select.select([c], [], [], 0.5)[0] else "held"
os.write(go_w, b"go\n")
try:
    end = "EOF" if c.recv(10) == b"" else "data"
except ConnectionResetError:
    end = "reset"
print(got.decode(), early, end, os.getpid(), bg, c.getsockname()[1], flush=True)
c.close()
ls.close()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_shell_from_system_or_popen_holds_inheritable_sockets():
    """A socket without close-on-exec is held by the shell that system()
    or popen() starts, and by what that shell leaves running: the
    program's close of it is not the end.  Its close must say "shared"
    and do no close-time work (no drain shutdown, no RST), and the end is
    the background shell's exit, logged once, by that shell, under every
    action.

    Catches: glibc starting the shell with an internal posix_spawn that
    no hook saw, so the program's close was taken for the last: under
    drain its shutdown ended the connection under the shell (the client
    saw EOF at once), and under pass, graceful and abort the log said the
    end went at that close, then again at the shell's exit."""
    problems = []
    for action, how in itertools.product(ACTIONS, ("system", "popen")):
        what = "%s-%s" % (action, how)
        proc, log = _python(SHELL_CHILD, "shell-" + what, [how],
                            [{"name": "all", "close": action}])
        got, early, end, me, bg, cport = proc.stdout().split()
        # the background shell's exit event follows the client's end
        tdlib.wait_until(lambda: any(r["pid"] == int(bg) and r["event"] == "exit"
                                     for r in tdlib.read_log(log)),
                         timeout=10, interval=0.02, what="the background shell's exit event")
        want_end = "reset" if action == "abort" else "EOF"
        if (got, early, end) != ("hi", "held", want_end):
            problems.append("%s: the client saw %s, %s, %s; want hi, held, %s"
                            % (what, got, early, end, want_end))
        ends = [(r["pid"], r["event"], r["why"] == "shared", r["wire"])
                for r in tdlib.read_log(log)
                if r["event"] in ("close", "exit") and r["role"] == "server" and
                r["remote"] is not None and r["remote"].endswith(":%s" % cport)]
        want = [(int(me), "close", True, "none"),
                (int(bg), "exit", False, "RST" if action == "abort" else "FIN")]
        if sorted(ends) != sorted(want):
            problems.append("%s: ends (pid, event, shared, wire) %s, want %s"
                            % (what, sorted(ends), sorted(want)))
    assert not problems, "\n".join(problems)


# A TCP Fast Open client: no connect(), the request goes with the SYN in a
# sendto() or sendmsg() with MSG_FASTOPEN to the server's address; reads
# the reply to EOF (or a reset) and closes.  Prints its port and what it
# read, or "refused".
TFO_CLIENT = r"""
import socket, sys
how, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
req = b"hello\n"
try:
    if how == "sendto":
        s.sendto(req, socket.MSG_FASTOPEN, ("127.0.0.1", port))
    else:
        s.sendmsg([req], [], socket.MSG_FASTOPEN, ("127.0.0.1", port))
except ConnectionRefusedError:
    print("refused", flush=True)
    sys.exit(0)
got, end = b"", "EOF"
try:
    while True:
        d = s.recv(100)
        if not d:
            break
        got += d
except ConnectionResetError:
    end = "reset"
print(s.getsockname()[1], got.decode().strip(), end, flush=True)
s.close()
"""


@tdlib.requires(*NEEDS, "tcpdump")
@tdlib.timeout(60)
def test_tcp_fast_open_client_is_decided_like_connect():
    """A client that never calls connect(): TCP Fast Open's sendto() or
    sendmsg() with MSG_FASTOPEN to the server's address connects and sends
    the request with the SYN.  Its rule must be decided there as at a
    connect(): a connect event, its close's end matching the wire under
    pass (FIN) and abort (RST), and a refused connect under connect_refuse
    (the send fails with ECONNREFUSED, as against a closed port).

    Catches: such a connection unseen (no connect event, no close event:
    the log silent about it), its rule unapplied (no RST under abort) and
    its connect faults not injected."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                if c.recv(100):
                    c.sendall(b"hi\n")
    th = concurrent.futures.ThreadPoolExecutor(1)
    th.submit(serve)
    problems = []
    try:
        with tdlib.Capture() as cap:
            runs = []
            for how in ("sendto", "sendmsg"):
                for action in ("pass", "abort", "refuse"):
                    rule = {"name": "all", "close": "abort" if action == "abort" else "pass"}
                    if action == "refuse":
                        rule["fault"] = {"connect_refuse": 1.0}
                    proc, log = _python(TFO_CLIENT, "tfo-%s-%s" % (how, action), [how, port],
                                        [rule])
                    runs.append((how, action, proc.stdout().split(), log))
        for how, action, out, log in runs:
            what = "%s/%s" % (how, action)
            recs = tdlib.read_log(log)
            if action == "refuse":
                if out != ["refused"]:
                    problems.append("%s: the client printed %s, want refused" % (what, out))
                if not any(r["event"] == "fault" and r.get("fault") == "connect_refuse"
                           for r in recs):
                    problems.append("%s: no connect_refuse fault event: %s" % (what, recs))
                continue
            cport = int(out[0])
            if out[1:] != ["hi", "EOF"]:
                problems.append("%s: the client read %s" % (what, out[1:]))
            mine = [r for r in recs if r["local"] is not None and
                    r["local"].endswith(":%d" % cport)]
            if [r["event"] for r in mine] != ["connect", "close"]:
                problems.append("%s: events %s, want connect, close" % (
                    what, [r["event"] for r in mine]))
                continue
            wire = cap.teardown_flags(cport, port)
            close = mine[1]
            want = "RST" if action == "abort" else "FIN"
            if (close["wire"], wire) != (want, want):
                problems.append("%s: the close says %s, the wire %s, want %s" % (
                    what, close["wire"], wire, want))
    finally:
        # (a close alone would not wake the thread's accept())
        with contextlib.suppress(OSError):
            srv.shutdown(socket.SHUT_RDWR)
        th.shutdown(wait=True)
        srv.close()
    assert not problems, "\n".join(problems)


# A client whose connection times out on loopback: the peer never reads,
# its receive window closes, and TCP_USER_TIMEOUT (500 ms) ends the
# zero-window probing with ETIMEDOUT.  argv[2] says who learns of it: a
# blocking send() ("send"), a blocking recv() ("recv"), or no call at all,
# the program sleeping until it is over ("none"); "reset": the peer
# resets the connection instead (the control).  Prints what the call got.
TIMEOUT_CLIENT = r"""
import errno, socket, sys, time
port, how = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(how.encode() + b"\n")
if how != "reset":
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 500)
    s.setblocking(False)
    try:
        while True:
            s.send(b"x" * 1024)
    except BlockingIOError:
        pass
    s.setblocking(True)
got = "none"
try:
    if how == "send":
        while True:
            s.send(b"x" * 1024)
    elif how in ("recv", "reset"):
        s.recv(100)
    elif how == "sockerr":
        # an event loop's way: wait for the failure, then ask SO_ERROR
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                s.getsockopt(socket.SOL_TCP, socket.TCP_INFO, 1)[0] != 7:
            time.sleep(0.05)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        got = errno.errorcode.get(err, str(err))
    else:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                s.getsockopt(socket.SOL_TCP, socket.TCP_INFO, 1)[0] != 7:
            time.sleep(0.05)
except OSError as e:
    got = type(e).__name__
print(got, flush=True)
s.close()
"""


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_connection_that_timed_out_says_timeout_not_reset():
    """A connection that ends by a timeout (retransmissions, keepalive
    probes or TCP_USER_TIMEOUT running out) sent nothing and got nothing:
    its close must say why "timeout", whether the program learnt of it
    from a send(), from a recv(), from getsockopt(SO_ERROR) (each takes
    the kernel's pending error) or not at all (the close reads it); one
    the peer reset says
    "reset".  Made on loopback: the peer never reads, and the client's
    TCP_USER_TIMEOUT ends its zero-window probing.

    Catches: every such close logged as a reset (why "reset"), telling an
    auditor the peer reset a connection that in fact went silent."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held, problems = [], []
    try:
        for how, want_got, want_why in (("send", "TimeoutError", "timeout"),
                                        ("recv", "TimeoutError", "timeout"),
                                        ("sockerr", "ETIMEDOUT", "timeout"),
                                        ("none", "none", "timeout"),
                                        ("reset", "ConnectionResetError", "reset")):
            log = _log("timeout-" + how)
            proc = tdlib.spawn(["python3", _script(TIMEOUT_CLIENT, "timeout-client"), str(port),
                                how], env=_policy_env([{"name": "all", "close": "pass"}], log),
                               name="timeout-" + how)
            c, _ = srv.accept()
            held.append(c)
            if how == "reset":
                c.settimeout(10)
                assert c.recv(100) == b"reset\n"
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            assert proc.wait(20) == 0, (how, proc.stderr())
            got = proc.stdout().strip()
            closes = [r for r in tdlib.read_log(log) if r["event"] == "close"]
            whys = [(r["state"], r["wire"], r["why"]) for r in closes]
            if got != want_got or whys != [("CLOSE", "none", want_why)]:
                problems.append("%s: the client got %s, its close says %s; want %s, %s" % (
                    how, got, whys, want_got, [("CLOSE", "none", want_why)]))
    finally:
        for c in held:
            c.close()
        srv.close()
    assert not problems, "\n".join(problems)


# A client that connects to argv[1]'s port, sends "ping" and then, by
# argv[2]: "exec" exec()s sh with the connection's only fd still open
# (close-on-exec: Python's default), "bare" the same with the library
# left out of the new program (LD_PRELOAD unset), "fail" an exec() that
# fails (no such file), after which it closes the connection itself.
EXEC_ENDS = r"""
import os, socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"ping")
print(os.getpid(), c.getsockname()[1], flush=True)
mode = sys.argv[2]
if mode == "fail":
    try:
        os.execv("/nonexistent/teardown-test", ["x"])
    except OSError:
        pass
    c.close()
    sys.exit(0)
env = dict(os.environ)
if mode == "bare":
    env.pop("LD_PRELOAD", None)
os.execve("/bin/sh", ["sh", "-c", "exit 0"], env)
"""


def _spools(log):
    """The spool files (an exec file too) next to log."""
    d, base = os.path.split(log)
    return sorted(n for n in os.listdir(d) if n.startswith("." + base + ".spool"))


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_a_connection_ended_by_exec_gets_its_exec_event():
    """A client exec()s a new program with its connection's only fd open,
    close-on-exec: the kernel ends the connection inside the exec, after
    which nothing of the old program runs.  The log gets one "exec" event
    for it (the pid's, with what the close sent: FIN, active, TIME_WAIT,
    against tcpdump and ss), written by the new program's library at its
    start; under abort the event and the wire say RST.  An exec() that
    fails writes nothing and leaves no file: the program's own close is
    the end.  A new program without the library leaves the event in its
    file, which the next start of the library on the log appends.

    Catches: a connection that ends at exec() with no event (the log went
    silent), and an event written before the call, which a failing call
    (execvp() tries each PATH entry) would make a lie."""
    problems = []
    for mode, action in (("exec", "pass"), ("exec", "abort"), ("fail", "pass"),
                         ("bare", "pass")):
        tag = "exec-%s-%s" % (mode, action)
        log = _log(tag)
        env = _policy_env([{"name": "all", "close": action}], log)
        with tdlib.Capture() as cap:
            srv = tdlib.Server("--read-until-eof")
            proc = tdlib.run(["python3", _script(EXEC_ENDS, tag), str(srv.port), mode],
                             env=env, name=tag, timeout=20)
            srv.result()
        assert proc.rc == 0, (tag, proc.stderr())
        pid, cport = (int(x) for x in proc.stdout().split())
        tw = tdlib.time_wait_on(cport, srv.port)
        wire = cap.teardown_flags(cport, srv.port)
        if mode == "bare":
            # sh ran without the library: the event waits in its file
            if [r for r in tdlib.read_log(log) if r["event"] == "exec"]:
                problems.append("%s: an exec event before any start of the library" % tag)
            if len(_spools(log)) != 1:
                problems.append("%s: want the exec file, found %r" % (tag, _spools(log)))
            tdlib.run(["/bin/true"], env=env, name=tag + "-next")
        recs = [r for r in tdlib.read_log(log) if r.get("local") and
                tdlib.port_of(r["local"]) == cport]
        ends = [(r["event"], r["pid"], r["wire"], r["closer"], r["time_wait"])
                for r in recs if r["event"] in ("close", "exit", "exec")]
        want_wire = "RST" if action == "abort" else "FIN"
        want = [("close" if mode == "fail" else "exec", pid, want_wire, "active",
                 action != "abort")]
        if ends != want:
            problems.append("%s: ends %r, want %r" % (tag, ends, want))
        if [r["event"] for r in recs][:1] != ["connect"]:
            problems.append("%s: the connect is not the connection's first line: %r"
                            % (tag, [r["event"] for r in recs]))
        if wire != want_wire:
            problems.append("%s: the wire shows %s, want %s" % (tag, wire, want_wire))
        if bool(tw) != (action != "abort"):
            problems.append("%s: ss TIME-WAIT %r" % (tag, tw))
        if _spools(log):
            problems.append("%s: files left next to the log: %r" % (tag, _spools(log)))
    assert not problems, "\n".join(problems)


@tdlib.requires(*NEEDS)
@tdlib.timeout(60)
def test_an_exec_event_that_cannot_be_kept_is_said():
    """The log in a directory on ramfs, where no spool is made (a store
    into a shared mapping there could need a block the file system cannot
    give): the exec file cannot be made either, so the exec event of a
    connection the exec() ends is not written, and the program's stderr
    says so once, naming the log and the reason, while the connection
    still ends on the wire (FIN) and the exec goes ahead.

    Catches: an exec event lost in silence, and an exec file made where
    recovery's stores into it could kill the next program (SIGBUS)."""
    d = os.path.join(tdlib.tmpdir(), "ram")
    os.makedirs(d)
    log = os.path.join(d, "exec.jsonl")
    env = _policy_env([{"name": "all", "close": "pass"}], log)
    with tdlib.Capture() as cap:
        srv = tdlib.Server("--read-until-eof")
        script = ('mount -t ramfs td-ram "$1" && shift && "$@" && '
                  'echo "lines: $(grep -c . "$TD_LOG" || true)"; '
                  'echo "files: $(ls -A "$TD_DIR" | grep -c spool || true)"')
        env["TD_LOG"], env["TD_DIR"] = log, d
        proc = tdlib.run(["unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                          script, "sh", d, "python3", _script(EXEC_ENDS, "exec-ram"),
                          str(srv.port), "exec"], env=env, name="exec-ram", timeout=20)
        srv.result()
    assert proc.rc == 0, proc.stderr()
    out = proc.stdout().split("\n")
    pid, cport = (int(x) for x in out[0].split())
    warnings = [l for l in proc.stderr().splitlines() if "cannot write the audit log" in l]
    assert len(warnings) == 1 and log in warnings[0] and "EOPNOTSUPP" in warnings[0], \
        proc.stderr()
    # the connect line only: no exec event, and no file left next to the log
    assert "lines: 1" in out and "files: 0" in out, out
    assert cap.teardown_flags(cport, srv.port) == "FIN", cap.teardown_flags(cport, srv.port)
