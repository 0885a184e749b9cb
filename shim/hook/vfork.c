/*
 * teardown: vfork() — so that the library knows, without a system call,
 * when it runs in a vfork()ed child.
 *
 * Such a child shares the parent's memory (and so the fd table's entries
 * and the library's state) but not its descriptors: a close in the child
 * must not strip the parent's socket of its entry, and the child's own
 * calls must not be mistaken for the parent's.  Asking getpid() on every
 * close to find out cost a system call per close.  Instead vfork() sets a
 * per-thread flag before the child runs: the child runs on the calling
 * thread's stack and thread-local storage, so it sees the flag; the
 * parent, resumed, clears it; the parent's other threads never see it.
 *
 * Written in assembly, like glibc's own vfork: a C function's frame would
 * be clobbered by the child on the shared stack.  The return address is
 * kept in a register across the system call, as glibc does.  On other
 * architectures the libc vfork() is used and the check falls back to
 * getpid() (td_init_in_own_process()).
 *
 * And the child is recorded, as posix_spawn()'s are: before the call,
 * td__vfork_prepare() writes the spool out (the child's lines must not
 * come before ours) and starts a fork epoch; once the parent runs again,
 * td__vfork_parent() records the child with that epoch.  A vfork()ed
 * child usually exec()s, and keeps every socket without close-on-exec at
 * its number (Python's subprocess with pass_fds, for one): without the
 * record, the parent's close of such a socket was taken for the last one,
 * and a drain's shutdown(SHUT_WR) cut the child's connection.  Both are
 * plain C calls on the parent's own stack, before the child exists and
 * after it has left it; the epoch waits in %r8, which the system call
 * keeps.
 */
#include <errno.h>
#include <sys/syscall.h>

#include "../rt/rt.h"

#if defined(__x86_64__)

__thread volatile int td_in_vfork __attribute__((tls_model("initial-exec"), used));

/* The vfork system call failed: errno, and -1 to the caller. */
long td__vfork_fail(long neg_err) TD_HIDDEN __attribute__((used));
long td__vfork_fail(long neg_err)
{
	errno = (int)-neg_err;
	return -1;
}

/* Before the call: the epoch the child is born in, 0 for no record. */
uint32_t td__vfork_prepare(void) TD_HIDDEN __attribute__((used));
uint32_t td__vfork_prepare(void)
{
	int saved = errno;
	uint32_t epoch = 0;

	if (td_init_active() != NULL) {
		td_spool_flush();
		/* a socket older than this child may be held by it from now
		 * on, uncounted */
		epoch = td_holders_epoch_next();
		td_holders_uncounted_child();
	}
	td_errno_set(saved);
	return epoch;
}

/* In the parent, the child gone from its stack (exec()ed or exited). */
void td__vfork_parent(pid_t pid, uint32_t epoch) TD_HIDDEN __attribute__((used));
void td__vfork_parent(pid_t pid, uint32_t epoch)
{
	if (epoch != 0)
		td_holders_child_record(pid, epoch);
}

/*
 * The stack at entry is 8 off 16-byte alignment (the return address);
 * each call below is made with it aligned: 8 bytes reserved around the
 * first, the return address and the pid pushed around the second.
 */
__asm__(".text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
	"	subq $8, %rsp\n"
	"	call td__vfork_prepare\n"
	"	addq $8, %rsp\n"
	"	movl %eax, %r8d\n"
	"	movq td_in_vfork@gottpoff(%rip), %rcx\n"
	"	movl $1, %fs:(%rcx)\n"
	"	popq %rdi\n"
	"	movl $" TD_STR(SYS_vfork) ", %eax\n"
	"	syscall\n"
	"	pushq %rdi\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	movq td_in_vfork@gottpoff(%rip), %rcx\n"
	"	movl $0, %fs:(%rcx)\n"
	"	cmpq $-4095, %rax\n"
	"	jae 2f\n"
	"	pushq %rax\n"
	"	movl %eax, %edi\n"
	"	movl %r8d, %esi\n"
	"	call td__vfork_parent\n"
	"	popq %rax\n"
	"1:	ret\n"
	"2:	movq %rax, %rdi\n"
	"	jmp td__vfork_fail\n"
	".size vfork, .-vfork\n");

#endif
