/*
 * audit_daemon: a program that treats every descriptor it did not open as
 * its own to close or overwrite, the way daemons do at start-up.  The
 * end-to-end tests run it under the library to show that the audit log
 * survives such programs and never writes into their files.
 *
 *   audit_daemon MODE OWNFILE PORT COUNT [LOGPATH]
 *
 * MODE says how the descriptors the program did not open are disposed of:
 *   loop         close(fd) for every fd from 3 to 1023;
 *   closefrom    closefrom(3);
 *   close_range  close_range(3, ~0U, 0);
 *   raw          close_range(3, ~0U, 0) as a bare system call instruction,
 *                which no preloaded library can see;
 *   dup2log      find the descriptor open on LOGPATH in /proc/self/fd and
 *                dup2() OWNFILE's descriptor over it.
 * Then (except in dup2log) OWNFILE's descriptor is duplicated onto every
 * free number from 700 to 900, so that whatever number the library's log
 * used is now, in all likelihood, the program's own file.  Then COUNT
 * times: connect to 127.0.0.1:PORT, send "ping\n", close, and write
 * "conn N done\n" to OWNFILE.  Last, one JSON line on stdout says what
 * was done.  Exit status: 0, or 1 when anything failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>

#define FILL_FIRST 700
#define FILL_LAST 900

/*
 * close_range() without libc, so that an interposed close_range(),
 * closefrom() or syscall() never learns of it: the library finds out only
 * when it next looks at its own descriptor.
 */
static long raw_close_range(unsigned int first, unsigned int last)
{
#if defined(__x86_64__)
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"((long)SYS_close_range), "D"((long)first), "S"((long)last),
			   "d"(0L)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = SYS_close_range;
	register long x0 __asm__("x0") = (long)first;
	register long x1 __asm__("x1") = (long)last;
	register long x2 __asm__("x2") = 0;

	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
#else
	return syscall(SYS_close_range, first, last, 0);
#endif
}

/* The descriptor open on path, found the way a program could: by name. */
static int find_fd_of(const char *path)
{
	char want[PATH_MAX], link[300], got[PATH_MAX];
	DIR *d;
	struct dirent *e;
	int found = -1;

	if (realpath(path, want) == NULL)
		return -1;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		n = readlink(link, got, sizeof(got) - 1);
		if (n < 0)
			continue;
		got[n] = '\0';
		if (strcmp(got, want) == 0 && atoi(e->d_name) != dirfd(d)) {
			found = atoi(e->d_name);
			break;
		}
	}
	closedir(d);
	return found;
}

/* Put the own file on every free number of the window; returns how many. */
static int fill(int own)
{
	int n = 0;

	for (int fd = FILL_FIRST; fd <= FILL_LAST; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		if (dup2(own, fd) == fd)
			n++;
	}
	return n;
}

/* One connection: connect, a short request, close.  0 or -1. */
static int one_connection(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5) {
		close(fd);
		return -1;
	}
	return close(fd);
}

int main(int argc, char **argv)
{
	const char *mode, *own_path;
	int port, count, own, filled = 0, log_fd = -1, failures = 0;
	char line[64];

	if (argc < 5) {
		fputs("usage: audit_daemon loop|closefrom|close_range|raw|dup2log "
		      "OWNFILE PORT COUNT [LOGPATH]\n", stderr);
		return 2;
	}
	mode = argv[1];
	own_path = argv[2];
	port = atoi(argv[3]);
	count = atoi(argv[4]);

	if (strcmp(mode, "loop") == 0) {
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	} else if (strcmp(mode, "closefrom") == 0) {
		closefrom(3);
	} else if (strcmp(mode, "close_range") == 0) {
		if (close_range(3, ~0U, 0) != 0)
			failures++;
	} else if (strcmp(mode, "raw") == 0) {
		if (raw_close_range(3, ~0U) != 0)
			failures++;
	} else if (strcmp(mode, "dup2log") == 0) {
		if (argc < 6) {
			fputs("audit_daemon: dup2log needs LOGPATH\n", stderr);
			return 2;
		}
		log_fd = find_fd_of(argv[5]);
	} else {
		fprintf(stderr, "audit_daemon: unknown mode '%s'\n", mode);
		return 2;
	}

	own = open(own_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (own < 0) {
		perror("audit_daemon: open");
		return 1;
	}
	if (log_fd >= 0) {
		if (dup2(own, log_fd) != log_fd)
			failures++;
	} else if (strcmp(mode, "dup2log") == 0) {
		fputs("audit_daemon: no descriptor open on the log\n", stderr);
		failures++;
	} else {
		filled = fill(own);
	}

	for (int i = 0; i < count; i++) {
		int n;

		if (one_connection(port) != 0)
			failures++;
		n = snprintf(line, sizeof(line), "conn %d done\n", i);
		if (write(own, line, (size_t)n) != n)
			failures++;
	}
	printf("{\"event\":\"daemon\",\"mode\":\"%s\",\"pid\":%d,\"own_fd\":%d,"
	       "\"filled\":%d,\"log_fd\":%d,\"failures\":%d}\n",
	       mode, (int)getpid(), own, filled, log_fd, failures);
	return failures ? 1 : 0;
}
