/*
 * host_raw_fork: a child made by _Fork() (glibc 2.34: fork() without the
 * pthread_atfork handlers, the fork a signal handler may call), for
 * tests/e2e/test_host_concurrency.py.
 *
 *   host_raw_fork [signal]
 *
 * 10 connect/accept/close cycles against a listener of its own (enough
 * lines for the log's spool), then one connection: c connected, s
 * accepted.  _Fork() (from a SIGUSR1 handler with "signal"): the child
 * closes its copy of c, waits 200 ms, writes "hi" on s, closes s (the
 * connection's last copy: the server's FIN), makes one cycle of its own,
 * closes the listener and leaves by exit().
 * The parent closes its copy of s at once (the child holds it: nothing
 * goes out), reads c to its EOF, closes c, reaps the child and makes 10
 * more cycles.  Output: one JSON line, {"parent": PID, "child": PID,
 * "server_port": P, "client_port": P, "got": N, "end": "EOF"|"...",
 * "fork_errno": E}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

static volatile pid_t forked = -2;
static volatile int fork_errno;

static void on_usr1(int sig)
{
	int saved = errno;

	(void)sig;
	forked = _Fork();
	fork_errno = forked < 0 ? errno : 0;
	errno = saved;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa, cl;
	socklen_t len;
	int port = 0, lfd = host_listen(&port), c, s;
	char buf[16];
	ssize_t n, got = 0;
	const char *end = "EOF";
	pid_t child;

	if (lfd < 0) {
		perror("host_raw_fork: listen");
		return 1;
	}
	sa = host_loopback(port);
	for (int i = 0; i < 10; i++)
		if (host_cycle(lfd, &sa) != 0)
			return 1;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (s = accept(lfd, NULL, NULL)) < 0) {
		perror("host_raw_fork: connect");
		return 1;
	}
	len = sizeof(cl);
	getsockname(c, (struct sockaddr *)&cl, &len);
	if (argc > 1 && strcmp(argv[1], "signal") == 0) {
		signal(SIGUSR1, on_usr1);
		raise(SIGUSR1);
		child = forked;
	} else {
		child = _Fork();
		fork_errno = child < 0 ? errno : 0;
	}
	if (child == 0) {
		struct timespec t = {0, 200 * 1000 * 1000};

		close(c);
		nanosleep(&t, NULL);
		if (write(s, "hi", 2) != 2)
			_exit(3);
		close(s);
		if (host_cycle(lfd, &sa) != 0)
			_exit(4);
		close(lfd);
		exit(0);
	}
	if (child < 0) {
		printf("{\"fork_errno\": %d}\n", fork_errno);
		return 1;
	}
	close(s);
	while ((n = read(c, buf, sizeof(buf))) > 0)
		got += n;
	if (n < 0)
		end = strerror(errno);
	close(c);
	if (waitpid(child, NULL, 0) != child)
		return 1;
	for (int i = 0; i < 10; i++)
		if (host_cycle(lfd, &sa) != 0)
			return 1;
	printf("{\"parent\": %d, \"child\": %d, \"server_port\": %d, \"client_port\": %d, "
	       "\"got\": %zd, \"end\": \"%s\", \"fork_errno\": %d}\n",
	       (int)getpid(), (int)child, ntohs(sa.sin_port), ntohs(cl.sin_port), got, end,
	       fork_errno);
	return 0;
}
