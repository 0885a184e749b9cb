/*
 * Benchmark program: open N connected TCP sockets to a listener of its
 * own, then close them all inside one function, bench_close_phase(), so
 * that callgrind (--toggle-collect=bench_close_phase) counts exactly the
 * instructions spent in close() and everything it calls.  The connect
 * phase (where a rule is decided) is counted separately in
 * bench_connect_phase().
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXN 4096

static int fds[MAXN], acc[MAXN];

__attribute__((noinline)) void bench_connect_phase(int n, const struct sockaddr_in *sa);
__attribute__((noinline)) void bench_close_phase(int n);

__attribute__((noinline)) void bench_connect_phase(int n, const struct sockaddr_in *sa)
{
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
			perror("connect");
			exit(1);
		}
	}
}

__attribute__((noinline)) void bench_close_phase(int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (n < 1 || n > MAXN)
		n = 1000;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, MAXN) != 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &len) != 0) {
		perror("listen");
		return 1;
	}
	bench_connect_phase(n, &sa);
	for (int i = 0; i < n; i++)
		acc[i] = accept(l, NULL, NULL);
	bench_close_phase(n);
	for (int i = 0; i < n; i++)
		if (acc[i] >= 0)
			close(acc[i]);
	printf("%d\n", n);
	return 0;
}
