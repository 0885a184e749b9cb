/*
 * host_stress: drives the preloaded library from the places where a host
 * program surprises a wrapper most: signal handlers that close sockets,
 * fork() while other threads are inside the library, vfork(),
 * posix_spawn() with file actions, and long exec chains.
 *
 *   host_stress sigclose N      handler closes sockets while main closes
 *   host_stress itimer N        SIGALRM at a high rate during N closes
 *   host_stress fork FORKS      fork while threads churn matched sockets
 *   host_stress vfork N K [socket]
 *                               vfork children close, then dup (or
 *                               socket) onto the freed numbers, _exit
 *   host_stress spawn N         posix_spawn with addclose/adddup2
 *   host_stress exec LEVELS     an exec chain carrying an open socket
 *   host_stress spawnkeep MODE  a spawned child serves the connection
 *                               its parent closed (MODE: late|early)
 *   host_stress ownfds          leave the library's own fds open, wait
 *   host_stress hijack HOW      take the library's fd numbers over
 *                               (HOW: dup2 onto them | close then reuse)
 *
 * Each mode prints one JSON line {"mode": ..., "ok": true|false, ...}
 * and exits 0 when every check it makes held, 1 when one failed, 2 on a
 * setup error.  Every socket is on 127.0.0.1 with an in-process listener,
 * so the program needs nothing but loopback.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <arpa/inet.h>

#include "hostutil.h"

extern char **environ;

static const char *g_self;

static void stress_die(const char *what)
{
	fprintf(stdout, "{\"mode\": \"setup\", \"ok\": false, \"error\": \"%s: %s\"}\n",
		what, strerror(errno));
	fflush(stdout);
	_exit(2);
}

/* Every open fd, the library's included. */
static int count_all_fds(void)
{
	return host_count_fds_below(1 << 30);
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A listener on 127.0.0.1 (port 0: any); *port gets the real one. */
static int listen_on(int *port)
{
	int l = host_listen(port);

	if (l < 0)
		stress_die("listen");
	return l;
}

static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/*
 * A connected client socket.  A signal may interrupt a blocking
 * connect(): it then completes in the background, so wait for it.
 */
static int connect_to(int port, int cloexec)
{
	struct sockaddr_in a = host_loopback(port);
	int c = socket(AF_INET, SOCK_STREAM | (cloexec ? SOCK_CLOEXEC : 0), 0);

	if (c < 0)
		return -1;
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int err = 0;
		socklen_t el = sizeof(err);

		if ((errno != EINTR && errno != EINPROGRESS) ||
		    wait_fd(c, POLLOUT, 10000) != 1 ||
		    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
			int saved = errno;

			close(c);
			errno = err ? err : saved;
			return -1;
		}
	}
	return c;
}

static int accept_r(int l)
{
	int s;

	do
		s = accept(l, NULL, NULL);
	while (s < 0 && errno == EINTR);
	return s;
}

static ssize_t send_r(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

/* One connection to the in-process listener: *c the client, *s the server. */
static void pair(int l, int port, int *c, int *s)
{
	*c = connect_to(port, 0);
	if (*c < 0)
		stress_die("connect");
	*s = accept_r(l);
	if (*s < 0)
		stress_die("accept");
}

static int finish(const char *mode, int ok, const char *fmt_tail)
{
	printf("{\"mode\": \"%s\", \"ok\": %s%s}\n", mode, ok ? "true" : "false", fmt_tail);
	fflush(stdout);
	return ok ? 0 : 1;
}

/* ---- sigclose: a handler that closes sockets while main closes ------ */

#define RING 1024
static volatile int g_ring[RING];
static _Atomic unsigned g_head, g_tail;
static _Atomic long g_h_closed, g_h_errors, g_signals;
static _Atomic int g_stop;

static void on_usr1(int sig)
{
	int saved = errno;
	unsigned t = atomic_load(&g_tail);

	(void)sig;
	atomic_fetch_add(&g_signals, 1);
	while (t != atomic_load(&g_head)) {
		int fd = g_ring[t % RING];

		atomic_store(&g_tail, ++t);
		errno = EXDEV;
		if (close(fd) != 0 || errno != EXDEV)
			atomic_fetch_add(&g_h_errors, 1);
		else
			atomic_fetch_add(&g_h_closed, 1);
	}
	errno = 0;
	if (close(-1) != -1 || errno != EBADF)
		atomic_fetch_add(&g_h_errors, 1);
	errno = saved;
}

static void *signaller(void *arg)
{
	pthread_t target = *(pthread_t *)arg;

	while (!atomic_load(&g_stop)) {
		pthread_kill(target, SIGUSR1);
		sleep_us(20);
	}
	return NULL;
}

static int mode_sigclose(int n)
{
	struct sigaction sa;
	pthread_t self = pthread_self(), th;
	sigset_t usr1;
	int port = 0, l, start, end;
	long main_closed = 0, main_errors = 0, errno_changed = 0;
	char tail[256];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	l = listen_on(&port);
	start = host_count_program_fds();
	if (pthread_create(&th, NULL, signaller, &self) != 0)
		stress_die("pthread_create");
	for (int i = 0; i < n; i++) {
		int c, s;

		pair(l, port, &c, &s);
		/* unread input at the client: "graceful" must discard it */
		if (send_r(s, "0123456789", 10) != 10 || wait_fd(c, POLLIN, 10000) != 1)
			stress_die("send");
		if (i % 2 && atomic_load(&g_head) - atomic_load(&g_tail) < RING) {
			unsigned h = atomic_load(&g_head);

			g_ring[h % RING] = c;
			atomic_store(&g_head, h + 1);
		} else {
			errno = EXDEV;
			if (close(c) != 0)
				main_errors++;
			else if (errno != EXDEV)
				errno_changed++;
			else
				main_closed++;
		}
		if (close(s) != 0)
			main_errors++;
	}
	atomic_store(&g_stop, 1);
	pthread_join(th, NULL);
	/* what the handler has not closed yet, with the handler kept out */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	while (atomic_load(&g_tail) != atomic_load(&g_head)) {
		unsigned t = atomic_load(&g_tail);

		if (close(g_ring[t % RING]) != 0)
			main_errors++;
		else
			main_closed++;
		atomic_store(&g_tail, t + 1);
	}
	end = host_count_program_fds();
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"port\": %d, \"main_closed\": %ld, \"handler_closed\": %ld, "
		 "\"main_errors\": %ld, \"handler_errors\": %ld, \"errno_changed\": %ld, "
		 "\"signals\": %ld, \"fds_start\": %d, \"fds_end\": %d",
		 port, main_closed, atomic_load(&g_h_closed), main_errors,
		 atomic_load(&g_h_errors), errno_changed, atomic_load(&g_signals), start, end);
	return finish("sigclose", main_errors == 0 && atomic_load(&g_h_errors) == 0 &&
				  errno_changed == 0 && start == end &&
				  main_closed + atomic_load(&g_h_closed) == n,
		      tail);
}

/* ---- itimer: SIGALRM at a high rate while closing ------------------ */

static void on_alrm(int sig)
{
	int saved = errno;

	(void)sig;
	atomic_fetch_add(&g_signals, 1);
	/* a handler that uses the library too, and clobbers errno in between */
	errno = EIO;
	if (close(-1) != -1 || errno != EBADF)
		atomic_fetch_add(&g_h_errors, 1);
	errno = saved;
}

static int mode_itimer(int n)
{
	struct sigaction sa;
	struct itimerval it = {{0, 37}, {0, 37}}, off = {{0, 0}, {0, 0}};
	int port = 0, l, start, end;
	long errors = 0, errno_changed = 0;
	char tail[256];

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alrm;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	l = listen_on(&port);
	start = host_count_program_fds();
	setitimer(ITIMER_REAL, &it, NULL);
	for (int i = 0; i < n; i++) {
		int c, s;

		pair(l, port, &c, &s);
		if (send_r(s, "0123456789", 10) != 10 || wait_fd(c, POLLIN, 10000) != 1)
			stress_die("send");
		errno = EXDEV;
		if (close(c) != 0)
			errors++;
		else if (errno != EXDEV)
			errno_changed++;
		errno = EXDEV;
		if (close(s) != 0)
			errors++;
		else if (errno != EXDEV)
			errno_changed++;
	}
	setitimer(ITIMER_REAL, &off, NULL);
	end = host_count_program_fds();
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"port\": %d, \"errors\": %ld, \"handler_errors\": %ld, "
		 "\"errno_changed\": %ld, \"signals\": %ld, \"fds_start\": %d, \"fds_end\": %d",
		 port, errors, atomic_load(&g_h_errors), errno_changed,
		 atomic_load(&g_signals), start, end);
	return finish("itimer", errors == 0 && errno_changed == 0 &&
				atomic_load(&g_h_errors) == 0 && start == end, tail);
}

/* ---- fork while threads are inside the library ---------------------- */

static int g_port;
static _Atomic long g_t_conns, g_t_errors;

static void *churner(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_stop)) {
		int c = connect_to(g_port, 0);

		if (c < 0 || close(c) != 0)
			atomic_fetch_add(&g_t_errors, 1);
		else
			atomic_fetch_add(&g_t_conns, 1);
	}
	return NULL;
}

static void *acceptor(void *arg)
{
	int l = *(int *)arg;

	while (!atomic_load(&g_stop)) {
		int s = accept_r(l);

		if (s >= 0)
			close(s);
	}
	return NULL;
}

/* Wait for pid for up to ms; kill it if it is still there (a hang). */
static int wait_child(pid_t pid, int ms, int *status)
{
	for (int waited = 0; waited < ms; waited++) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		sleep_us(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return 1;
}

static int mode_fork(int forks)
{
	enum { K = 4, T = 2 };
	pthread_t th[T], acc;
	int l, pre[K], srv[K], start, end, hung = 0, bad = 0;
	char tail[320];

	l = listen_on(&g_port);
	for (int k = 0; k < K; k++)
		pair(l, g_port, &pre[k], &srv[k]);
	start = host_count_program_fds();
	pthread_create(&acc, NULL, acceptor, &l);
	for (int t = 0; t < T; t++)
		pthread_create(&th[t], NULL, churner, NULL);
	for (int i = 0; i < forks; i++) {
		int status = 0;
		pid_t pid = fork();

		if (pid < 0)
			stress_die("fork");
		if (pid == 0) {
			/* the inherited sockets, then whatever the threads held */
			for (int k = 0; k < K; k++)
				if (close(pre[k]) != 0)
					_exit(3);
			for (int fd = 3; fd < 64; fd++)
				close(fd);
			_exit(0);
		}
		if (wait_child(pid, 10000, &status) != 0) {
			hung++;
			break; /* one hang says it all; the rest would only wait */
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	atomic_store(&g_stop, 1);
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	{
		int wake = connect_to(g_port, 0);

		pthread_join(acc, NULL);
		if (wake >= 0)
			close(wake);
	}
	for (int k = 0; k < K; k++) {
		if (close(pre[k]) != 0)
			bad++;
		close(srv[k]);
	}
	end = host_count_program_fds() + 2 * K;
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"forks\": %d, \"hung\": %d, \"bad_exits\": %d, \"thread_conns\": %ld, "
		 "\"thread_errors\": %ld, \"fds_start\": %d, \"fds_end\": %d",
		 forks, hung, bad, atomic_load(&g_t_conns), atomic_load(&g_t_errors), start,
		 end);
	return finish("fork", hung == 0 && bad == 0 && atomic_load(&g_t_errors) == 0 &&
				      atomic_load(&g_t_conns) > 0 && start == end,
		      tail);
}

/* ---- vfork: the child shares our memory, not our fd table ---------- */

static volatile int g_vfork_bad;
static int g_vk, g_vc[64], g_vbase, g_vsocket;

/*
 * What a child does before exec: close what it must not keep (our
 * sockets, then everything, the library's own descriptors included),
 * and put something else on the freed numbers (dup(), or new sockets).  It reads only globals,
 * so that nothing of the caller's frame is live across vfork().
 */
static __attribute__((noinline)) pid_t vfork_child(void)
{
	pid_t pid = vfork();

	if (pid != 0)
		return pid;
	for (int j = 0; j < g_vk; j++)
		if (close(g_vc[j]) != 0)
			g_vfork_bad++;
	for (int fd = 3; fd < g_vbase + 64; fd++)
		close(fd);
	for (int j = 0; j < 2 * g_vk + 1; j++)
		if ((g_vsocket ? socket(AF_INET, SOCK_STREAM, 0) : dup(0)) < 0)
			g_vfork_bad++;
	_exit(0);
}

static int mode_vfork(int n, int k, int sockets)
{
	int port = 0, l, s[64], bad = 0, open_after = 0;
	char tail[256];

	g_vsocket = sockets;
	g_vk = k > 64 ? 64 : k;
	g_vbase = host_lib_fd_base();
	l = listen_on(&port);
	for (int i = 0; i < g_vk; i++)
		pair(l, port, &g_vc[i], &s[i]);
	for (int i = 0; i < n; i++) {
		int status = 0;
		pid_t pid = vfork_child();

		if (pid < 0)
			stress_die("vfork");
		if (wait_child(pid, 10000, &status) != 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			bad++;
	}
	/* Our sockets are still ours; unread input makes "graceful" work. */
	for (int i = 0; i < g_vk; i++) {
		if (fcntl(g_vc[i], F_GETFD) < 0)
			open_after++;
		if (send_r(s[i], "0123456789", 10) != 10 ||
		    wait_fd(g_vc[i], POLLIN, 10000) != 1)
			stress_die("send");
	}
	for (int i = 0; i < g_vk; i++) {
		if (close(g_vc[i]) != 0)
			bad++;
		close(s[i]);
	}
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"port\": %d, \"pid\": %d, \"bad\": %d, \"child_bad\": %d, \"lost_fds\": %d",
		 port, (int)getpid(), bad, g_vfork_bad, open_after);
	return finish("vfork", bad == 0 && g_vfork_bad == 0 && open_after == 0, tail);
}

/* ---- posix_spawn with file actions ---------------------------------- */

/* The spawned side: B arrives as fd 10, A must be gone. */
static int mode_spawned(int a, int b_as)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(b_as, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
		return 3;
	if (a != b_as && fcntl(a, F_GETFD) >= 0)
		return 4;
	/* an inherited, adopted socket: closing our copy must not end it */
	if (close(b_as) != 0)
		return 5;
	return 0;
}

static int mode_spawn(int n)
{
	int port = 0, l, a, as, b, bs, bad = 0, hung = 0, alive = 0;
	char abuf[16], tail[256];

	l = listen_on(&port);
	pair(l, port, &a, &as);
	pair(l, port, &b, &bs);
	snprintf(abuf, sizeof(abuf), "%d", a);
	for (int i = 0; i < n; i++) {
		posix_spawn_file_actions_t fa;
		char *argv[] = {(char *)g_self, "spawned", abuf, "10", NULL};
		pid_t pid;
		int status = 0, rc;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addclose(&fa, a);
		posix_spawn_file_actions_adddup2(&fa, b, 10);
		rc = posix_spawn(&pid, g_self, &fa, NULL, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		if (rc != 0) {
			errno = rc;
			stress_die("posix_spawn");
		}
		rc = wait_child(pid, 10000, &status);
		if (rc > 0)
			hung++;
		else if (rc < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			bad++;
	}
	/* both connections survived every child, both ways */
	if (send_r(as, "x", 1) == 1 && send_r(bs, "y", 1) == 1 &&
	    wait_fd(a, POLLIN, 5000) == 1 && wait_fd(b, POLLIN, 5000) == 1 &&
	    send_r(a, "x", 1) == 1 && send_r(b, "y", 1) == 1 &&
	    wait_fd(as, POLLIN, 5000) == 1 && wait_fd(bs, POLLIN, 5000) == 1)
		alive = 1;
	if (close(a) != 0 || close(b) != 0)
		bad++;
	close(as);
	close(bs);
	close(l);
	snprintf(tail, sizeof(tail), ", \"spawns\": %d, \"hung\": %d, \"bad\": %d, \"alive\": %s",
		 n, hung, bad, alive ? "true" : "false");
	return finish("spawn", hung == 0 && bad == 0 && alive, tail);
}

/* ---- exec chains ----------------------------------------------------- */

/*
 * Level n: the listener and a carried socket come in open (no
 * close-on-exec); one connection is made and closed; then exec level
 * n-1.  The count of open fds must be the same at every level: a
 * descriptor of the library without close-on-exec would pile up.
 */
static int mode_exec(int argc, char **argv)
{
	int levels = atoi(argv[2]), l, port = 0, carry, carry_srv, fds;
	int c, s;
	char a[4][16];

	if (argc < 7) {
		l = listen_on(&port);
		carry = connect_to(port, 0);
		carry_srv = accept_r(l);
		if (carry < 0 || carry_srv < 0)
			stress_die("carry");
		fds = count_all_fds();
	} else {
		l = atoi(argv[3]);
		carry = atoi(argv[4]);
		carry_srv = atoi(argv[5]);
		fds = atoi(argv[6]);
		{
			struct sockaddr_in sa;
			socklen_t sl = sizeof(sa);

			if (getsockname(l, (struct sockaddr *)&sa, &sl) != 0)
				stress_die("inherited listener");
			port = ntohs(sa.sin_port);
		}
		if (count_all_fds() != fds) {
			char tail[128];

			snprintf(tail, sizeof(tail), ", \"level\": %d, \"fds\": %d, \"want\": %d",
				 levels, count_all_fds(), fds);
			return finish("exec", 0, tail);
		}
	}
	pair(l, port, &c, &s);
	if (close(c) != 0 || close(s) != 0)
		stress_die("close");
	if (levels <= 0) {
		char tail[128];
		int ok = send_r(carry_srv, "z", 1) == 1 && wait_fd(carry, POLLIN, 5000) == 1;

		ok = ok && close(carry) == 0 && close(carry_srv) == 0;
		snprintf(tail, sizeof(tail), ", \"fds\": %d, \"carried\": %s", fds,
			 ok ? "true" : "false");
		return finish("exec", ok, tail);
	}
	snprintf(a[0], sizeof(a[0]), "%d", levels - 1);
	snprintf(a[1], sizeof(a[1]), "%d", l);
	snprintf(a[2], sizeof(a[2]), "%d", carry);
	snprintf(a[3], sizeof(a[3]), "%d", carry_srv);
	{
		char fbuf[16];
		char *nargv[] = {(char *)g_self, "exec", a[0], a[1], a[2], a[3], fbuf, NULL};

		snprintf(fbuf, sizeof(fbuf), "%d", fds);
		execve(g_self, nargv, environ);
	}
	stress_die("execve");
	return 2;
}

/* ---- spawnkeep: a spawned child serves the parent's connection ------ */

/*
 * The child (fd 3 is the connection, fd 4 the go-ahead pipe): wait until
 * the parent has closed its copy, then for the request byte, answer
 * "hello" and exit.  Exit 3: no request came; 5: the answer could not be
 * sent (EPIPE: the connection was shut down under it).
 */
static int mode_spawnchild(void)
{
	char req;

	if (wait_fd(4, POLLIN, 5000) != 1 || read(4, &req, 1) != 1)
		return 6;
	if (wait_fd(3, POLLIN, 2000) != 1 || recv(3, &req, 1, 0) != 1)
		return 3;
	if (send(3, "hello", 5, MSG_NOSIGNAL) != 5)
		return 5;
	return 0;
}

static int mode_spawnkeep(const char *when)
{
	int port = 0, l, c, s, go[2], status = 0, early = strcmp(when, "early") == 0;
	char got[64] = "", tail[256];
	size_t have = 0;
	int eof = 0;
	posix_spawn_file_actions_t fa;
	char *argv[] = {(char *)g_self, "spawnchild", NULL};
	pid_t pid;

	l = listen_on(&port);
	pair(l, port, &c, &s);
	if (pipe(go) != 0)
		stress_die("pipe");
	/* early: the request is already queued when the parent lets go */
	if (early && (send_r(s, "?", 1) != 1 || wait_fd(c, POLLIN, 5000) != 1))
		stress_die("send");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, c, 3);
	posix_spawn_file_actions_adddup2(&fa, go[0], 4);
	if ((errno = posix_spawn(&pid, g_self, &fa, NULL, argv, environ)) != 0)
		stress_die("posix_spawn");
	posix_spawn_file_actions_destroy(&fa);
	close(go[0]);
	/* the parent's copy goes at once, as inetd-style servers do */
	if (close(c) != 0)
		stress_die("close");
	if (!early && send_r(s, "?", 1) != 1)
		stress_die("send");
	if (write(go[1], "g", 1) != 1)
		stress_die("go");
	close(go[1]);
	while (have < sizeof(got) - 1 && wait_fd(s, POLLIN, 5000) == 1) {
		ssize_t n = recv(s, got + have, sizeof(got) - 1 - have, 0);

		if (n <= 0) {
			eof = n == 0;
			break;
		}
		have += (size_t)n;
	}
	got[have] = '\0';
	if (wait_child(pid, 10000, &status) != 0)
		status = -1;
	close(s);
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"when\": \"%s\", \"port\": %d, \"reply\": \"%s\", \"eof\": %s, "
		 "\"child_status\": %d",
		 when, port, got, eof ? "true" : "false",
		 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return finish("spawnkeep", strcmp(got, "hello") == 0 && eof &&
					   WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      tail);
}

/* ---- ownfds: leave the library's descriptors open for inspection ---- */

/*
 * A pending drain (private fd, worker eventfd and epoll), the refusing
 * and black-hole fault targets and the log: then print our own fds and
 * wait for stdin to close, so the test can read /proc/PID/fdinfo.
 * Run with a policy that drains port A, refuses port B, times out port C.
 */
static int mode_ownfds(int refuse_port, int timeout_port)
{
	int port = 0, l, c, s, r, t;
	char buf[1];

	l = listen_on(&port);
	pair(l, port, &c, &s);
	close(c); /* drain: the peer (s) never closes while we wait */
	r = connect_to(refuse_port, 0);
	t = connect_to(timeout_port, 0);
	printf("{\"mode\": \"ownfds\", \"ok\": true, \"pid\": %d, \"port\": %d, "
	       "\"program_fds\": [0, 1, 2, %d, %d], \"refused\": %s, \"timed_out\": %s}\n",
	       (int)getpid(), port, l, s, r < 0 ? "true" : "false",
	       t < 0 ? "true" : "false");
	fflush(stdout);
	while (read(0, buf, 1) > 0)
		;
	return 0;
}

/* ---- hijack: the program takes over the library's fd numbers ------- */


/*
 * A program may dup2() onto any number it likes, including the ones the
 * library holds (it cannot know them): from then on those numbers are
 * the program's, and nothing of the library's may be written there.
 * First a drain starts the background worker (its eventfd and epoll fd
 * sit at the library's numbers); then the program puts a pipe on every
 * number in [base, base + 32), with dup2() over them, or after a close()
 * loop that closed them; then more drains.  The pipe must
 * receive nothing, and the drains must still finish.
 */
static int mode_hijack(const char *how)
{
	int port = 0, l, c, s, c2, s2, p[2], base = host_lib_fd_base(), drained = 0;
	long cpu_ms;
	ssize_t got = 0;
	char buf[256], tail[256];

	l = listen_on(&port);
	pair(l, port, &c, &s);
	close(c); /* drain: pending until s closes */
	if (pipe2(p, O_NONBLOCK) != 0)
		stress_die("pipe");
	if (strcmp(how, "close") == 0) {
		/*
		 * A close() loop over every number but the program's own (as
		 * daemons do), then enough files of the program's that the
		 * freed high numbers are taken again.
		 */
		for (int fd = 3; fd < base + 32; fd++)
			if (fd != l && fd != s && fd != p[0] && fd != p[1])
				close(fd);
		for (int fd = base; fd < base + 32; fd++)
			if (fcntl(p[1], F_DUPFD, base) < 0)
				stress_die("F_DUPFD");
	} else {
		for (int fd = base; fd < base + 32; fd++)
			if (dup2(p[1], fd) != fd)
				stress_die("dup2");
	}
	pair(l, port, &c2, &s2);
	close(c2);
	close(s);
	close(s2);
	for (int i = 0; i < 300 && !drained; i++) {
		drained = host_lib_sockets(base + 32) == 0;
		if (!drained)
			sleep_us(10000);
	}
	for (;;) {
		ssize_t n = read(p[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		got += n;
	}
	/*
	 * CPU used by the whole process while this thread sleeps 300 ms: a
	 * background thread spinning on an fd that is no longer its own
	 * shows up here; an idle process uses next to none.
	 */
	{
		struct rusage r0, r1;

		getrusage(RUSAGE_SELF, &r0);
		sleep_us(300000);
		getrusage(RUSAGE_SELF, &r1);
		cpu_ms = ((r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1000000L +
			  (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
			  (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1000000L +
			  (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1000;
	}
	for (int fd = base; fd < base + 32; fd++)
		close(fd);
	close(p[0]);
	close(p[1]);
	close(l);
	snprintf(tail, sizeof(tail),
		 ", \"port\": %d, \"foreign_bytes\": %zd, \"drained\": %s, \"idle_cpu_ms\": %ld",
		 port, got, drained ? "true" : "false", cpu_ms);
	return finish("hijack", got == 0 && drained && cpu_ms < 150, tail);
}

int main(int argc, char **argv)
{
	g_self = "/proc/self/exe";
	if (argc < 2)
		return 2;
	{
		/* exec needs a path that stays valid: resolve our own */
		static char path[4096];
		ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

		if (n > 0) {
			path[n] = '\0';
			g_self = path;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[1], "sigclose") == 0 && argc > 2)
		return mode_sigclose(atoi(argv[2]));
	if (strcmp(argv[1], "itimer") == 0 && argc > 2)
		return mode_itimer(atoi(argv[2]));
	if (strcmp(argv[1], "fork") == 0 && argc > 2)
		return mode_fork(atoi(argv[2]));
	if (strcmp(argv[1], "vfork") == 0 && argc > 3)
		return mode_vfork(atoi(argv[2]), atoi(argv[3]),
				  argc > 4 && strcmp(argv[4], "socket") == 0);
	if (strcmp(argv[1], "spawn") == 0 && argc > 2)
		return mode_spawn(atoi(argv[2]));
	if (strcmp(argv[1], "spawned") == 0 && argc > 3)
		return mode_spawned(atoi(argv[2]), atoi(argv[3]));
	if (strcmp(argv[1], "exec") == 0 && argc > 2)
		return mode_exec(argc, argv);
	if (strcmp(argv[1], "spawnkeep") == 0 && argc > 2)
		return mode_spawnkeep(argv[2]);
	if (strcmp(argv[1], "spawnchild") == 0)
		return mode_spawnchild();
	if (strcmp(argv[1], "ownfds") == 0 && argc > 3)
		return mode_ownfds(atoi(argv[2]), atoi(argv[3]));
	if (strcmp(argv[1], "hijack") == 0 && argc > 2)
		return mode_hijack(argv[2]);
	fprintf(stderr, "usage: see the comment at the top of host_stress.c\n");
	return 2;
}
