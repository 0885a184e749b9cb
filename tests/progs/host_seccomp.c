/*
 * host_seccomp: a program that enters a seccomp sandbox with a tracked,
 * logged connection open, then closes it and exits, as OpenSSH's
 * pre-authentication child does (tests/e2e/test_host_calls.py).
 *
 *   host_seccomp PORT prctl|syscall|tsync|strict
 *
 * It connects to 127.0.0.1:PORT and sends "x", then enters the sandbox:
 *   prctl    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, filter);
 *   syscall  syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, filter);
 *   tsync    the same with SECCOMP_FILTER_FLAG_TSYNC, from a second thread
 *            while the main thread waits, then the main thread closes;
 *   strict   prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT): read, write,
 *            exit and sigreturn only.
 * The filter kills the process (SIGSYS) at any system call but read,
 * write, close, exit, exit_group, rt_sigreturn, futex, madvise, munmap, brk,
 * rt_sigprocmask, and sigaltstack, mmap and mprotect (ASan's thread exit): the
 * program's own needs, never the library's (getsockopt, ioctl,
 * sendto, getpid...).  Then it closes the connection (strict: it cannot),
 * writes "done\n" and exits (strict: syscall(SYS_exit)).  Exit 0 with
 * "done" printed, or killed by SIGSYS where the library made a call of its
 * own inside the sandbox.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "hostutil.h"

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		  BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static struct sock_filter insns[] = {
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	ALLOW(SYS_read), ALLOW(SYS_write), ALLOW(SYS_close), ALLOW(SYS_exit),
	ALLOW(SYS_exit_group), ALLOW(SYS_rt_sigreturn), ALLOW(SYS_futex),
	ALLOW(SYS_madvise), ALLOW(SYS_munmap), ALLOW(SYS_brk), ALLOW(SYS_rt_sigprocmask),
	ALLOW(SYS_sigaltstack), ALLOW(SYS_mmap), ALLOW(SYS_mprotect),
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
};
static struct sock_fprog filter = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};
static int g_tsync_rc = -1;

static void *tsync_thread(void *arg)
{
	(void)arg;
	g_tsync_rc = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				  SECCOMP_FILTER_FLAG_TSYNC, &filter);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *how = argc > 2 ? argv[2] : "";
	pthread_t t;
	int fd, rc = -1;

	if (argc < 3)
		host_die("usage: host_seccomp PORT prctl|syscall|tsync|strict");
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, "x", 1) != 1)
		host_die("connect");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		host_die("no_new_privs");
	if (strcmp(how, "prctl") == 0)
		rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter);
	else if (strcmp(how, "syscall") == 0)
		rc = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter);
	else if (strcmp(how, "tsync") == 0) {
		if (pthread_create(&t, NULL, tsync_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
			host_die("thread");
		rc = g_tsync_rc;
	} else if (strcmp(how, "strict") == 0) {
		fflush(stdout);
		rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0);
		if (rc == 0) {
			(void)!write(1, "done\n", 5);
			syscall(SYS_exit, 0);
		}
	}
	if (rc != 0)
		host_die("seccomp");
	if (close(fd) != 0)
		(void)!write(1, "close failed\n", 13);
	(void)!write(1, "done\n", 5);
	return 0;
}
