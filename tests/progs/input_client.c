/*
 * teardown test program: a plain TCP client that keeps SIGPIPE's default
 * action (tdpeer ignores it), for tests where the library's own writes
 * could raise SIGPIPE in the program.
 *
 *   input_client PORT BYTES
 *
 * Connects to 127.0.0.1:PORT, sends BYTES bytes, closes, and prints one
 * JSON line: connect and send errors, close's return, and whether SIGPIPE
 * is blocked or pending afterwards (the library must leave neither).
 * Writes nothing to stderr.  Exit status 0, or 1 if connect or send failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd, cerr = 0, serr = 0, crc;
	sigset_t mask, pending;
	char buf[4096];
	long want, sent = 0;

	if (argc != 3)
		return 2;
	want = atol(argv[2]);
	sin.sin_port = htons((unsigned short)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(buf, 'x', sizeof(buf));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 2;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		cerr = errno;
	while (!cerr && sent < want) {
		size_t n = (size_t)(want - sent) < sizeof(buf) ? (size_t)(want - sent) : sizeof(buf);
		ssize_t k = send(fd, buf, n, MSG_NOSIGNAL);

		if (k < 0) {
			serr = errno;
			break;
		}
		sent += k;
	}
	crc = close(fd);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	sigpending(&pending);
	printf("{\"connect_errno\":%d,\"send_errno\":%d,\"sent\":%ld,\"close_rc\":%d,"
	       "\"sigpipe_blocked\":%s,\"sigpipe_pending\":%s}\n",
	       cerr, serr, sent, crc, sigismember(&mask, SIGPIPE) ? "true" : "false",
	       sigismember(&pending, SIGPIPE) ? "true" : "false");
	fflush(stdout);
	return cerr || serr ? 1 : 0;
}
