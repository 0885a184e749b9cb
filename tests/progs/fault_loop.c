/*
 * fault_loop: the benchmark program of tests/bench/fault_cost.py.
 *
 * fault_loop_phase() makes N connections one after the other, each a
 * socket(), a connect() to a listener of this process, a one-byte write()
 * and a close(): every call the fault-injection code touches on a
 * client's path.  callgrind (--toggle-collect=fault_loop_phase) counts
 * the instructions spent there, callees and the library included, so the
 * per-iteration cost is exact and the same run after run.  The server
 * side is accepted and closed after the phase, outside the count.
 *
 *   fault_loop [N]       (default 1000, at most 4000)
 *
 * It prints N and how many of its connects failed (the bench checks 0).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define FL_MAX 4000

__attribute__((noinline)) int fault_loop_phase(int n, const struct sockaddr_in *sa);

__attribute__((noinline)) int fault_loop_phase(int n, const struct sockaddr_in *sa)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 ||
		    write(fd, "x", 1) != 1)
			failed++;
		if (fd >= 0)
			close(fd);
	}
	return failed;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000, l, failed;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);

	if (n < 1 || n > FL_MAX)
		n = 1000;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	/* The whole run waits in the accept queue: nothing is accepted
	 * during the counted phase. */
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, FL_MAX) != 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) != 0) {
		perror("fault_loop: listen");
		return 1;
	}
	failed = fault_loop_phase(n, &sa);
	for (int i = 0; i < n; i++) {
		int fd = accept(l, NULL, NULL);

		if (fd >= 0)
			close(fd);
	}
	printf("%d %d\n", n, failed);
	return failed != 0;
}
