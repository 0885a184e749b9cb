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

__asm__(".text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	"vfork:\n"
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
	"1:	ret\n"
	"2:	movq %rax, %rdi\n"
	"	jmp td__vfork_fail\n"
	".size vfork, .-vfork\n");

#endif
