/*
 * teardown: the wrapped libc calls, listed once.  Every line is
 *
 *   TD_CALL(return type, name, (parameters), (arguments), fallback)
 *   TD_CALLV(name, (parameters), (arguments), fallback)      for void
 *
 * where fallback is what td_real_<name>() does when no real symbol is
 * bound: the raw system call where there is one (a hook runs before the
 * library's constructor bound the symbols, or libc lacks the call), else
 * a late bind and the real call, or ENOSYS.  From this list come the typed
 * table of real symbols, each entry starting at its fallback, and its
 * binder (real.c), the td_real_<name>() callers every hook uses (inline,
 * in real.h), and the version script (shim/teardown.map.in): the library
 * exports exactly these names.  Adding a wrapped call is one line here
 * plus its hook in shim/hook/.
 *
 * Include it only with TD_CALL and TD_CALLV defined.
 */
/* socket() unbound is socket() before start-up: see shim/hook/socket.c */
TD_CALL(int, socket, (int d, int t, int p), (d, t, p), td_socket_unbound(d, t, p))
TD_CALL(int, accept, (int fd, struct sockaddr *a, socklen_t *l), (fd, a, l),
	td_real_sys(SYS_accept4, fd, (long)a, (long)l, 0, 0, 0))
TD_CALL(int, accept4, (int fd, struct sockaddr *a, socklen_t *l, int f), (fd, a, l, f),
	td_real_sys(SYS_accept4, fd, (long)a, (long)l, f, 0, 0))
TD_CALL(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l),
	td_real_sys3(SYS_connect, fd, a, l))
TD_CALL(int, bind, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l),
	td_real_sys3(SYS_bind, fd, a, l))
TD_CALL(int, setsockopt, (int fd, int lv, int nm, const void *v, socklen_t l),
	(fd, lv, nm, v, l), td_real_sys(SYS_setsockopt, fd, lv, nm, (long)v, l, 0))
TD_CALL(int, getsockopt, (int fd, int lv, int nm, void *v, socklen_t *l), (fd, lv, nm, v, l),
	td_real_sys(SYS_getsockopt, fd, lv, nm, (long)v, (long)l, 0))
TD_CALL(int, shutdown, (int fd, int how), (fd, how), td_real_sys2(SYS_shutdown, fd, how))
TD_CALL(int, close, (int fd), (fd), td_real_sys1(SYS_close, fd))
TD_CALL(int, fclose, (FILE *f), (f), TD_LATE(fclose, (f), EOF))
TD_CALL(int, close_range, (unsigned a, unsigned b, int f), (a, b, f),
	td_real_sys3(SYS_close_range, a, b, f))
TD_CALLV(closefrom, (int lo), (lo), (void)td_real_sys3(SYS_close_range, lo, ~0u, 0))
/* variadic: the real one is called with the program's one argument word */
TD_CALL(int, fcntl, (int fd, int cmd, void *arg), (fd, cmd, arg),
	td_real_sys3(SYS_fcntl, fd, cmd, arg))
TD_CALL(int, fcntl64, (int fd, int cmd, void *arg), (fd, cmd, arg),
	td_real_sys3(SYS_fcntl, fd, cmd, arg))
TD_CALL(int, dup, (int fd), (fd), td_real_sys1(SYS_dup, fd))
TD_CALL(int, dup2, (int o, int n), (o, n), td_real_sys_dup2(o, n))
TD_CALL(int, dup3, (int o, int n, int f), (o, n, f), td_real_sys3(SYS_dup3, o, n, f))
TD_CALL(pid_t, fork, (void), (), TD_LATE(fork, (), -1))
/* glibc 2.34's fork() that runs no pthread_atfork handler (shim/hook/fork.c) */
TD_CALL(pid_t, _Fork, (void), (), TD_LATE(_Fork, (), -1))
TD_CALL(pid_t, wait, (int *s), (s), (pid_t)td_real_sys(SYS_wait4, -1, (long)s, 0, 0, 0, 0))
TD_CALL(pid_t, waitpid, (pid_t p, int *s, int o), (p, s, o),
	(pid_t)td_real_sys(SYS_wait4, p, (long)s, o, 0, 0, 0))
TD_CALL(pid_t, wait3, (int *s, int o, struct rusage *u), (s, o, u),
	(pid_t)td_real_sys(SYS_wait4, -1, (long)s, o, (long)u, 0, 0))
TD_CALL(pid_t, wait4, (pid_t p, int *s, int o, struct rusage *u), (p, s, o, u),
	(pid_t)td_real_sys(SYS_wait4, p, (long)s, o, (long)u, 0, 0))
TD_CALL(int, waitid, (idtype_t t, id_t i, siginfo_t *f, int o), (t, i, f, o),
	(int)td_real_sys(SYS_waitid, t, i, (long)f, o, 0, 0))
TD_CALL(long, syscall, (long n, long a, long b, long c, long d, long e, long f),
	(n, a, b, c, d, e, f), td_real_sys(n, a, b, c, d, e, f))
TD_CALL(int, prctl, (int o, unsigned long a, unsigned long b, unsigned long c, unsigned long d),
	(o, a, b, c, d), (int)td_real_sys(SYS_prctl, o, (long)a, (long)b, (long)c, (long)d, 0))
/* glibc's own: in a threaded process they change every thread's ids */
TD_CALL(int, setuid, (uid_t u), (u), TD_LATE(setuid, (u), -1))
TD_CALL(int, seteuid, (uid_t e), (e), TD_LATE(seteuid, (e), -1))
TD_CALL(int, setreuid, (uid_t r, uid_t e), (r, e), TD_LATE(setreuid, (r, e), -1))
TD_CALL(int, setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s),
	TD_LATE(setresuid, (r, e, s), -1))
TD_CALL(ssize_t, read, (int fd, void *b, size_t n), (fd, b, n), td_real_sys3(SYS_read, fd, b, n))
TD_CALL(ssize_t, readv, (int fd, const struct iovec *v, int n), (fd, v, n),
	td_real_sys3(SYS_readv, fd, v, n))
TD_CALL(ssize_t, recv, (int fd, void *b, size_t n, int fl), (fd, b, n, fl),
	td_real_sys(SYS_recvfrom, fd, (long)b, (long)n, fl, 0, 0))
TD_CALL(ssize_t, recvfrom,
	(int fd, void *b, size_t n, int fl, struct sockaddr *a, socklen_t *l),
	(fd, b, n, fl, a, l), td_real_sys(SYS_recvfrom, fd, (long)b, (long)n, fl, (long)a, (long)l))
TD_CALL(ssize_t, recvmsg, (int fd, struct msghdr *m, int fl), (fd, m, fl),
	td_real_sys3(SYS_recvmsg, fd, m, fl))
TD_CALL(int, recvmmsg, (int fd, struct mmsghdr *v, unsigned int n, int fl, struct timespec *t),
	(fd, v, n, fl, t), td_real_sys(SYS_recvmmsg, fd, (long)v, n, fl, (long)t, 0))
TD_CALL(ssize_t, write, (int fd, const void *b, size_t n), (fd, b, n),
	td_real_sys3(SYS_write, fd, b, n))
TD_CALL(ssize_t, writev, (int fd, const struct iovec *v, int n), (fd, v, n),
	td_real_sys3(SYS_writev, fd, v, n))
TD_CALL(ssize_t, send, (int fd, const void *b, size_t n, int fl), (fd, b, n, fl),
	td_real_sys(SYS_sendto, fd, (long)b, (long)n, fl, 0, 0))
TD_CALL(ssize_t, sendto,
	(int fd, const void *b, size_t n, int fl, const struct sockaddr *a, socklen_t l),
	(fd, b, n, fl, a, l), td_real_sys(SYS_sendto, fd, (long)b, (long)n, fl, (long)a, l))
TD_CALL(ssize_t, sendmsg, (int fd, const struct msghdr *m, int fl), (fd, m, fl),
	td_real_sys3(SYS_sendmsg, fd, m, fl))
TD_CALL(int, sendmmsg, (int fd, struct mmsghdr *v, unsigned int n, int fl), (fd, v, n, fl),
	td_real_sys(SYS_sendmmsg, fd, (long)v, n, fl, 0, 0))
TD_CALL(int, system, (const char *c), (c), TD_LATE(system, (c), -1))
TD_CALL(FILE *, popen, (const char *c, const char *m), (c, m), TD_LATE(popen, (c, m), NULL))
TD_CALL(int, posix_spawn,
	(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
	 const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
	(pid, path, fa, at, argv, envp), TD_LATE_RC(posix_spawn, (pid, path, fa, at, argv, envp)))
TD_CALL(int, posix_spawnp,
	(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
	 const posix_spawnattr_t *at, char *const argv[], char *const envp[]),
	(pid, file, fa, at, argv, envp), TD_LATE_RC(posix_spawnp, (pid, file, fa, at, argv, envp)))
TD_CALL(int, posix_spawn_file_actions_adddup2,
	(posix_spawn_file_actions_t *fa, int fd, int newfd), (fa, fd, newfd),
	TD_LATE_RC(posix_spawn_file_actions_adddup2, (fa, fd, newfd)))
TD_CALL(int, execve, (const char *p, char *const a[], char *const e[]), (p, a, e),
	(int)td_real_sys3(SYS_execve, p, a, e))
TD_CALL(int, execv, (const char *p, char *const a[]), (p, a), TD_LATE(execv, (p, a), -1))
TD_CALL(int, execvp, (const char *f, char *const a[]), (f, a), TD_LATE(execvp, (f, a), -1))
TD_CALL(int, execvpe, (const char *f, char *const a[], char *const e[]), (f, a, e),
	TD_LATE(execvpe, (f, a, e), -1))
TD_CALL(int, fexecve, (int fd, char *const a[], char *const e[]), (fd, a, e),
	TD_LATE(fexecve, (fd, a, e), -1))
TD_CALL(int, execveat, (int d, const char *p, char *const a[], char *const e[], int f),
	(d, p, a, e, f), (int)td_real_sys(SYS_execveat, d, (long)p, (long)a, (long)e, f, 0))
TD_CALLV(_exit, (int st), (st), (void)td_real_sys1(SYS_exit_group, st))
TD_CALLV(_Exit, (int st), (st), (void)td_real_sys1(SYS_exit_group, st))
