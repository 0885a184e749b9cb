/*
 * log_load: a steady stream of audit events until told to stop, for the
 * log rotation tests (tests/e2e/test_logs.py).
 *
 *   log_load STOPFILE
 *
 * Connect/accept/close cycles against a listener of its own, one after
 * the other, until STOPFILE exists (looked for every 16 cycles).  Each
 * cycle makes exactly four events (connect, accept, and a close of each
 * end), plus one bind and one close for the listener: the log must hold
 * 4 * cycles + 2 lines from this process.  Output: one JSON line,
 * {"cycles": N, "failed": F}.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hostutil.h"

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	long cycles = 0, failed = 0;

	if (argc != 2) {
		fputs("usage: log_load STOPFILE\n", stderr);
		return 2;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 128) != 0 || getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("log_load: listen");
		return 1;
	}
	for (;;) {
		if (cycles % 16 == 0 && access(argv[1], F_OK) == 0)
			break;
		cycles++;
		if (host_cycle(lfd, &sa) != 0)
			failed++;
	}
	close(lfd);
	printf("{\"cycles\": %ld, \"failed\": %ld}\n", cycles, failed);
	return failed ? 1 : 0;
}
