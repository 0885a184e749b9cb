/*
 * host_exit_late: a client whose connection is still open at exit(), with
 * code of the program running after the library's exit-time work: a
 * fopencookie() stream, flushed by exit() after every destructor, whose
 * write function lets the peer close first and waits until its FIN is in
 * (tests/e2e/test_host_calls.py).
 *
 *   host_exit_late PORT exec|dup|plain|linger|stdio|stdio-open
 *
 * Connects to 127.0.0.1:PORT, then:
 *   exec  dup2()s the connection onto 0 and re-executes itself with it
 *         there (an sshd re-executed per connection): the new image
 *         dup()s fd 0 and closes 0;
 *   dup   dup()s the connection and closes the original;
 *   plain keeps it on the fd socket() gave;
 *   linger as plain, with SO_LINGER {1, 5} set (a close() of it may
 *         block; the kernel's close in the exit does not);
 *   stdio dup2()s it onto 0 as well (stdin's stream is there), writes
 *         "hi\n" through a stream fdopen()ed on it, flushed, then shuts
 *         it down (SHUT_WR): busybox httpd's child, its connection on
 *         stdio's fds, its FIN out before it exits;
 *   stdio-open the same, not shut down (git daemon's upload-pack).
 * In the first two the connection is left on one fd that another fd of
 * the process once shared.  Prints one JSON line ({"cport", "fd"}) and
 * exit()s.  The cookie's flush prints "exiting" on stdout, then waits
 * up to 5 s for the peer's FIN on the fd (an fd closed meanwhile answers
 * at once).  Whoever reads the exit event learns who sent the first
 * FIN, and whether the close was a reset, from the peer.
 */
#include <poll.h>

#include "hostutil.h"

static int conn_fd = -1;

static ssize_t late_write(void *cookie, const char *buf, size_t n)
{
	struct pollfd pfd = {.fd = conn_fd, .events = POLLRDHUP};

	(void)cookie;
	(void)buf;
	if (write(1, "exiting\n", 8) != 8)
		return -1;
	(void)poll(&pfd, 1, 5000);
	return (ssize_t)n;
}

static int run(int fd)
{
	cookie_io_functions_t io = {.write = late_write};
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	FILE *f;

	conn_fd = fd;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		host_die("getsockname");
	f = fopencookie(NULL, "w", io);
	if (f == NULL)
		host_die("fopencookie");
	setvbuf(f, NULL, _IOFBF, 64);
	fputc('x', f);
	printf("{\"cport\": %d, \"fd\": %d}\n", ntohs(sa.sin_port), fd);
	fflush(stdout);
	exit(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int c, d;

	if (argc == 3 && strcmp(argv[1], "--inherited") == 0) {
		d = dup(0);
		if (d < 0 || close(0) != 0)
			host_die("dup");
		return run(d);
	}
	if (argc != 3 || (strcmp(argv[2], "exec") != 0 && strcmp(argv[2], "dup") != 0 &&
			  strcmp(argv[2], "plain") != 0 && strcmp(argv[2], "linger") != 0 &&
			  strcmp(argv[2], "stdio") != 0 && strcmp(argv[2], "stdio-open") != 0)) {
		fprintf(stderr, "usage: host_exit_late PORT exec|dup|plain|linger|stdio|stdio-open\n");
		return 2;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		host_die("connect");
	if (strcmp(argv[2], "exec") == 0) {
		if (dup2(c, 0) != 0 || close(c) != 0)
			host_die("dup2");
		execl("/proc/self/exe", argv[0], "--inherited", "x", (char *)NULL);
		host_die("exec");
	}
	if (strcmp(argv[2], "linger") == 0) {
		struct linger lg = {.l_onoff = 1, .l_linger = 5};

		if (setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
			host_die("SO_LINGER");
	}
	if (strcmp(argv[2], "plain") == 0 || strcmp(argv[2], "linger") == 0)
		return run(c);
	if (strncmp(argv[2], "stdio", 5) == 0) {
		FILE *out = fdopen(c, "w");

		if (dup2(c, 0) != 0 || out == NULL || fputs("hi\n", out) < 0 || fflush(out) != 0 ||
		    (strcmp(argv[2], "stdio") == 0 && shutdown(c, SHUT_WR) != 0))
			host_die("stdio");
		return run(c);
	}
	d = dup(c);
	if (d < 0 || close(c) != 0)
		host_die("dup");
	return run(d);
}
