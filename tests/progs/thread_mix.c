/*
 * thread_mix: every way threads of one program meet inside the library
 * at once, for `make tsan` (tests/tsan/run.py).
 *
 *   thread_mix THREADS MILLISECONDS
 *
 * Worker threads share one listener on 127.0.0.1 and run cycles of
 * socket(), connect(), accept(), a request and an answer, then close in
 * one of four ways, in turn: close() both ends; dup() the client end and
 * close both copies from two threads (the dup share count); shut the
 * client down for writing first; or hand the accepted end to the next
 * cycle of another thread (an fd closed by a thread that did not open
 * it).  Meanwhile one thread fork()s every few milliseconds (the child
 * opens and closes a socket and exits), one sends the process SIGUSR1,
 * whose handler closes a socket of its own, and the library's worker
 * drains the connections the policy says to drain.  Fd numbers are
 * reused by other threads at once throughout.
 *
 * Prints one JSON line {"cycles": C, "failed": F, "forks": K} and exits 1
 * when any cycle failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXT 64

static int lfd;
static struct sockaddr_in sa;
static atomic_int stop;
static atomic_long cycles, failed, forks;
/* an accepted fd handed from one cycle to another thread's next one */
static atomic_int handoff = -1;

static void sleep_us(long us)
{
	struct timespec d = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

/* write all of n bytes; read exactly n (or fail) */
static int xfer(int wfd, int rfd, size_t n)
{
	char buf[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";
	size_t got = 0;

	if (write(wfd, buf, n) != (ssize_t)n)
		return -1;
	while (got < n) {
		ssize_t r = read(rfd, buf, n - got);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

struct pair {
	int c, a;
};

static void *close_it(void *arg)
{
	close(*(int *)arg);
	return NULL;
}

static void one_cycle(long k)
{
	struct pair p;
	int old;

	p.c = socket(AF_INET, SOCK_STREAM, 0);
	if (p.c < 0 || connect(p.c, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		atomic_fetch_add(&failed, 1);
		if (p.c >= 0)
			close(p.c);
		return;
	}
	p.a = accept(lfd, NULL, NULL);
	if (p.a < 0 || xfer(p.c, p.a, 16) != 0 || xfer(p.a, p.c, 32) != 0) {
		atomic_fetch_add(&failed, 1);
		close(p.c);
		if (p.a >= 0)
			close(p.a);
		return;
	}
	switch (k % 4) {
	case 0:
		close(p.c);
		close(p.a);
		break;
	case 1: {
		int d = dup(p.c);
		pthread_t th;

		if (d >= 0 && pthread_create(&th, NULL, close_it, &d) == 0) {
			close(p.c);
			pthread_join(th, NULL);
		} else {
			if (d >= 0)
				close(d);
			close(p.c);
		}
		close(p.a);
		break;
	}
	case 2:
		shutdown(p.c, SHUT_WR);
		close(p.a);
		close(p.c);
		break;
	default:
		close(p.c);
		old = atomic_exchange(&handoff, p.a);
		if (old >= 0)
			close(old);
		break;
	}
	atomic_fetch_add(&cycles, 1);
}

static void *worker(void *arg)
{
	long k = (long)(intptr_t)arg;

	while (!atomic_load(&stop))
		one_cycle(k++);
	return NULL;
}

static void *forker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pid_t pid = fork();

		if (pid == 0) {
			/* the child of a parent whose threads are inside the
			 * library: a socket and a close through it, then out
			 * (host_stress fork has children close what they
			 * inherited; a drain there would start a thread, which
			 * ThreadSanitizer does not support after a fork) */
			int s = socket(AF_INET, SOCK_STREAM, 0);

			if (s >= 0)
				close(s);
			_exit(0);
		}
		if (pid > 0) {
			waitpid(pid, NULL, 0);
			atomic_fetch_add(&forks, 1);
		}
		sleep_us(5000);
	}
	return NULL;
}

static void on_usr1(int sig)
{
	int saved = errno, s = socket(AF_INET, SOCK_STREAM, 0);

	(void)sig;
	if (s >= 0)
		close(s);
	errno = saved;
}

static void *signaller(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		kill(getpid(), SIGUSR1);
		sleep_us(2000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int t = argc > 1 ? atoi(argv[1]) : 4;
	long ms = argc > 2 ? atol(argv[2]) : 1000;
	pthread_t th[MAXT + 2];
	struct sigaction act;
	socklen_t len = sizeof(sa);
	int old;

	if (t < 1 || t > MAXT || ms < 1) {
		fprintf(stderr, "usage: thread_mix THREADS(1..%d) MILLISECONDS\n", MAXT);
		return 2;
	}
	memset(&act, 0, sizeof(act));
	act.sa_handler = on_usr1;
	act.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &act, NULL);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1024) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("thread_mix: listen");
		return 2;
	}
	/* one connection at a time per thread: accept() takes whichever is
	 * queued, so a thread may finish another's pair; counts still add up */
	for (int i = 0; i < t; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
	pthread_create(&th[t], NULL, forker, NULL);
	pthread_create(&th[t + 1], NULL, signaller, NULL);
	sleep_us(ms * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < t + 2; i++)
		pthread_join(th[i], NULL);
	old = atomic_exchange(&handoff, -1);
	if (old >= 0)
		close(old);
	close(lfd);
	printf("{\"cycles\": %ld, \"failed\": %ld, \"forks\": %ld}\n", atomic_load(&cycles),
	       atomic_load(&failed), atomic_load(&forks));
	return atomic_load(&failed) ? 1 : 0;
}
