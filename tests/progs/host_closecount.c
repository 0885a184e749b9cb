/*
 * host_closecount: each way a program closes a socket, with
 * libhost_count.so preloaded after libteardown.so counting what really
 * gets closed.  One program call must make exactly one real closing
 * operation on the program's fd, whatever the action (a drain keeps a
 * private duplicate, which must not change that), also when the real
 * close() reports EINTR after closing (the library must not retry: the
 * number may belong to someone else by then).
 *
 *   host_closecount PORT PORT2
 *
 * Paths: close, close that returns EINTR, fclose of an fdopen()ed
 * stream, dup2 and dup3 over the socket, close_range(fd, fd),
 * closefrom(fd), syscall(SYS_close), and close of a socket no rule
 * matches.  The test's policy matches clients of PORT; the last client
 * connects to PORT2 instead.  Every client has 10 bytes of unread input,
 * so graceful and drain have work to do.
 *
 * Prints one JSON line per path and a summary with the number of
 * close() calls the library made on its own descriptors (at or above
 * the library's fd range), counted once every drain has finished.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hostutil.h"

static int (*g_start)(void);
static int (*g_ops)(int);
static int (*g_closes)(int);
static void (*g_watch)(int, unsigned long);
static int (*g_watched)(void);
static void (*g_eintr)(int);

static int listen_on(int port)
{
	int l = host_listen(&port);

	if (l < 0)
		host_die("listen");
	return l;
}

/* A client with 10 unread bytes (*c) and its server side (*s). */
static void conn(int l, int port, int *c, int *s)
{
	struct sockaddr_in a = host_loopback(port);
	struct pollfd p;

	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)) != 0)
		host_die("connect");
	*s = accept(l, NULL, NULL);
	if (*s < 0 || send(*s, "0123456789", 10, 0) != 10)
		host_die("accept");
	p.fd = *c;
	p.events = POLLIN;
	if (poll(&p, 1, 5000) != 1)
		host_die("poll");
}

int main(int argc, char **argv)
{
	static const char *const paths[] = {"close", "close_eintr", "fclose", "dup2", "dup3",
					    "close_range", "closefrom", "syscall", "unmatched"};
	int port, port2, l, l2, devnull, base = host_lib_fd_base(), servers[16], ns = 0;
	int all_ok = 1, lib_closes = 0;

	if (argc != 3)
		return 2;
	port = atoi(argv[1]);
	port2 = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	*(void **)&g_start = dlsym(RTLD_DEFAULT, "host_count_start");
	*(void **)&g_ops = dlsym(RTLD_DEFAULT, "host_count_ops");
	*(void **)&g_closes = dlsym(RTLD_DEFAULT, "host_count_closes");
	*(void **)&g_eintr = dlsym(RTLD_DEFAULT, "host_count_eintr");
	*(void **)&g_watch = dlsym(RTLD_DEFAULT, "host_count_watch");
	*(void **)&g_watched = dlsym(RTLD_DEFAULT, "host_count_watched");
	if (!g_start || !g_ops || !g_closes || !g_eintr || !g_watch || !g_watched) {
		errno = ENOENT;
		host_die("libhost_count.so is not preloaded");
	}
	l = listen_on(port);
	l2 = listen_on(port2);
	devnull = open("/dev/null", O_RDWR);
	printf("{\"ports\": [%d, %d]}\n", port, port2);
	fflush(stdout);
	/*
	 * One matched close before counting: the library's first drain
	 * starts its worker thread, whose eventfd and epoll fd are made at
	 * the lowest free number (the one just closed) and then moved up;
	 * that close of the library's own short-lived fd is not the program's.
	 */
	{
		int c, s;

		conn(l, port, &c, &s);
		close(c);
		close(s);
		for (int i = 0; i < 500 && host_lib_sockets(base) > 0; i++) {
			struct timespec ms10 = {0, 10 * 1000 * 1000};

			nanosleep(&ms10, NULL);
		}
	}
	g_start();
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *path = paths[i];
		int c, s, target, rc, err, ops, gone, bystanders;

		if (!strcmp(path, "unmatched"))
			conn(l2, port2, &c, &s);
		else
			conn(l, port, &c, &s);
		target = c;
		if (!strcmp(path, "closefrom")) {
			/* above every other fd of the program */
			target = dup2(c, 900);
			close(c);
		}
		{
			struct stat st;

			if (fstat(target, &st) != 0)
				host_die("fstat");
			g_watch(target, (unsigned long)st.st_ino);
		}
		bystanders = g_ops(l) + g_ops(l2) + g_ops(s) + g_ops(devnull);
		errno = EXDEV;
		if (!strcmp(path, "close_eintr"))
			g_eintr(1);
		if (!strcmp(path, "close") || !strcmp(path, "close_eintr") ||
		    !strcmp(path, "unmatched")) {
			rc = close(target);
		} else if (!strcmp(path, "fclose")) {
			FILE *fp = fdopen(target, "r+");

			rc = fp ? fclose(fp) : -2;
		} else if (!strcmp(path, "dup2")) {
			rc = dup2(devnull, target) == target ? 0 : -1;
		} else if (!strcmp(path, "dup3")) {
			rc = dup3(devnull, target, 0) == target ? 0 : -1;
		} else if (!strcmp(path, "close_range")) {
			rc = close_range((unsigned)target, (unsigned)target, 0);
		} else if (!strcmp(path, "closefrom")) {
			closefrom(target);
			rc = 0;
		} else {
			rc = (int)syscall(SYS_close, target);
		}
		err = errno;
		g_eintr(0);
		ops = g_watched();
		g_watch(-1, 0);
		bystanders = g_ops(l) + g_ops(l2) + g_ops(s) + g_ops(devnull) - bystanders;
		/* really closed: gone, or (dup2/dup3) no longer a socket */
		{
			int type;
			socklen_t tl = sizeof(type);

			gone = getsockopt(target, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 &&
			       (errno == EBADF || errno == ENOTSOCK);
		}
		{
			int want_rc = !strcmp(path, "close_eintr") ? -1 : 0;
			int want_err = !strcmp(path, "close_eintr") ? EINTR : EXDEV;
			int ok = rc == want_rc && err == want_err && ops == 1 && gone &&
				 bystanders == 0;

			all_ok &= ok;
			printf("{\"path\": \"%s\", \"ok\": %s, \"fd\": %d, \"rc\": %d, "
			       "\"errno\": \"%s\", \"closing_ops\": %d, \"gone\": %s, "
			       "\"bystander_ops\": %d}\n",
			       path, ok ? "true" : "false", target, rc, strerrorname_np(err), ops,
			       gone ? "true" : "false", bystanders);
			fflush(stdout);
		}
		if (!strcmp(path, "dup2") || !strcmp(path, "dup3"))
			close(target); /* now a copy of /dev/null */
		servers[ns++] = s;
	}
	/* the servers' closes end the drains; wait for the library to let go */
	for (int i = 0; i < ns; i++)
		close(servers[i]);
	for (int i = 0; i < 500 && host_lib_sockets(base) > 0; i++) {
		struct timespec ms10 = {0, 10 * 1000 * 1000};

		nanosleep(&ms10, NULL);
	}
	printf("{\"summary\": true, \"ok\": %s, \"lib_fd_base\": %d, \"lib_closes_by_fd\": {",
	       all_ok ? "true" : "false", base);
	for (int fd = base; fd < 4096; fd++) {
		if (g_closes(fd) == 0)
			continue;
		printf("%s\"%d\": %d", lib_closes ? ", " : "", fd, g_closes(fd));
		lib_closes += g_closes(fd);
	}
	printf("}, \"lib_closes\": %d, \"lib_sockets_left\": %d}\n", lib_closes,
	       host_lib_sockets(base));
	close(l);
	close(l2);
	close(devnull);
	return all_ok ? 0 : 1;
}
