/*
 * teardown: where code goes in the library's text.
 */
#ifndef TEARDOWN_LAYOUT_H
#define TEARDOWN_LAYOUT_H

/*
 * TD_CHILD_RUNS marks a function a forked child runs: fork()'s return,
 * the atfork handlers, the child's reads and writes, its closes, dup2()s
 * and shutdown()s, the lines they log, and its exit.  fork() copies no
 * page-table entry of a file's mapping: the child faults the library's
 * text in, one 64 KiB window at a time (the kernel's fault-around, which
 * max-page-size=64K aligns with the segment).  Spread over the text, the
 * path took three windows; gathered in one section that opens the text
 * segment (shim/td_child.ld), it takes one: two faults fewer for every
 * child of a fork-per-connection server (busybox httpd, postgres), each
 * of which costs more than the system calls of a close on a virtual
 * machine.  The set was measured: the functions callgrind counted in
 * busybox httpd's children (--trace-children=yes, costs zeroed on entry
 * to td__atfork_child), under observe and drain, then the faults left
 * (perf record -e minor-faults -d: README, "Tests and benchmarks").
 * tests/e2e/test_host_calls.py checks that the section stays in one
 * window and that every marked function the build kept is in it.  A
 * function missing here still works; it only costs a child one more
 * fault where it lies in another window.
 */
#define TD_CHILD_RUNS __attribute__((section(".text.td_child")))

/*
 * TD_CHILD_CONST marks constant data such a function reads that lives in
 * a file whose other constants it does not (a table of names among the
 * manual's texts): the linker script puts it in the same window, after
 * the code, with the constants of the files a child's line is made by.
 */
#define TD_CHILD_CONST __attribute__((section(".rodata.td_child")))

#endif
