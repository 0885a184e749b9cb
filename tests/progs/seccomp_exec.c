/*
 * seccomp_exec: run a program under a seccomp filter it inherits across
 * exec(), as systemd's SystemCallFilter= runs a service: the library in
 * it never sees the filter installed (tests/e2e/test_audit.py).
 *
 *   seccomp_exec PROGRAM [ARG...]
 *
 * The filter allows every system call but connect(), which kills the
 * process (SIGSYS): a server that never connects out, under an
 * allow-list that says so.  Exit 127 where the filter or the exec fails.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct sock_filter insns[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, 0, 1),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

int main(int argc, char **argv)
{
	struct sock_fprog prog = { .len = sizeof(insns) / sizeof(insns[0]), .filter = insns };

	if (argc < 2) {
		fprintf(stderr, "usage: seccomp_exec PROGRAM [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
		perror("seccomp_exec: filter");
		return 127;
	}
	execvp(argv[1], argv + 1);
	perror("seccomp_exec: exec");
	return 127;
}
