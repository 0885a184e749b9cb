/*
 * host_exit_reply: a forked child answers its connection and ends while
 * the connection is still open, in a way where code of the program still
 * runs, or could, after the library's exit-time work
 * (tests/e2e/test_host_calls.py).
 *
 *   host_exit_reply stdio|thread|plain
 *
 * The parent makes a connected pair on loopback, forks, closes its copy of
 * the server end at once and tells the child so (a pipe), waits for the
 * child, then reads the client end to EOF.  The child, once told:
 *   stdio   fdopen()s the server end, fputs() its reply (fully buffered:
 *           nothing is written yet) and exit()s: stdio's final flush,
 *           after every destructor, sends the reply;
 *   thread  starts a thread that sleeps, write()s its reply and _exit()s:
 *           that other thread could still use the fd until the end;
 *   plain   write()s its reply and exit()s: nothing of it touches the fd
 *           after the library's destructor.
 * Prints one JSON line: the parent's and child's pids, the client's
 * port, the server end's fd and the reply the client read.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "hostutil.h"

#define REPLY "reply from the child\n"

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd, c, s, go[2];
	char buf[128];
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (argc != 2 || (strcmp(argv[1], "stdio") != 0 && strcmp(argv[1], "thread") != 0 &&
			  strcmp(argv[1], "plain") != 0)) {
		fprintf(stderr, "usage: host_exit_reply stdio|thread|plain\n");
		return 2;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
		host_die("listen");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		host_die("connect");
	if ((s = accept(lfd, NULL, NULL)) < 0)
		host_die("accept");
	fflush(stdout);
	/* the child answers only once its parent has dropped its copy: else
	 * the child's copy may not be the last at its exit (a busy machine ran
	 * the child to its end first) */
	if (pipe(go) != 0)
		host_die("pipe");
	if ((pid = fork()) < 0)
		host_die("fork");
	if (pid == 0) {
		char b;

		close(lfd);
		close(c);
		close(go[1]);
		if (read(go[0], &b, 1) != 1)
			_exit(4);
		close(go[0]);
		if (strcmp(argv[1], "stdio") == 0) {
			FILE *f = fdopen(s, "w");

			if (f == NULL)
				_exit(3);
			setvbuf(f, NULL, _IOFBF, 4096);
			fputs(REPLY, f);
			exit(0);
		} else if (strcmp(argv[1], "plain") == 0) {
			if (write(s, REPLY, strlen(REPLY)) != (ssize_t)strlen(REPLY))
				_exit(3);
			exit(0);
		} else {
			pthread_t th;

			if (pthread_create(&th, NULL, sleeper, NULL) != 0 ||
			    write(s, REPLY, strlen(REPLY)) != (ssize_t)strlen(REPLY))
				_exit(3);
			_exit(0);
		}
	}
	close(s);
	close(go[0]);
	if (write(go[1], "g", 1) != 1)
		host_die("write");
	close(go[1]);
	if (waitpid(pid, NULL, 0) != pid)
		host_die("waitpid");
	while (got < sizeof(buf) - 1 && (n = read(c, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	len = sizeof(sa);
	if (getsockname(c, (struct sockaddr *)&sa, &len) != 0)
		host_die("getsockname");
	printf("{\"parent\": %d, \"child\": %d, \"cport\": %d, \"sfd\": %d, \"reply\": \"%.*s\"}\n",
	       (int)getpid(), (int)pid, ntohs(sa.sin_port), s,
	       got > 0 && buf[got - 1] == '\n' ? (int)got - 1 : (int)got, buf);
	close(c);
	close(lfd);
	return 0;
}
