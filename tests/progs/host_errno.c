/*
 * host_errno: every call the library wraps, in success and failure
 * cases, printing "case rc=R errno=NAME" per case.  errno is set to EXDEV
 * before each call, so a successful call that touches errno shows too.
 *
 * The test runs it bare and under the library (a policy matching every
 * socket, with logging, for each close action) and compares the outputs
 * byte for byte: the library must not change a return value, an errno
 * or even the fd number a call returns.
 *
 * Every case that needs a connection makes its own, to an in-process
 * listener on 127.0.0.1, so no case depends on how another one ended.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostutil.h"

static int g_listener, g_port, g_dead_port;
/* -1 the compiler cannot see, for calls it would otherwise refuse */
static volatile int g_minus_one = -1;

static void report(const char *name, long rc, int err)
{
	const char *en = err ? strerrorname_np(err) : "0";

	printf("%-26s rc=%ld errno=%s\n", name, rc, en ? en : "?");
	fflush(stdout);
}

/* Run expr with errno preset to EXDEV; report its result and errno. */
#define CASE(name, expr)                                 \
	do {                                             \
		long rc_;                                \
		int e_;                                  \
		errno = EXDEV;                           \
		rc_ = (long)(expr);                      \
		e_ = errno;                              \
		report(name, rc_, e_);                   \
	} while (0)

static void die(const char *what)
{
	printf("SETUP FAILED: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		die("getsockname");
	return ntohs(a.sin_port);
}

static int tcp(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

static int wait_fd(int fd, short ev)
{
	struct pollfd p = {.fd = fd, .events = ev};

	return poll(&p, 1, 5000);
}

/* A fresh connection: *c the client, *s the accepted server side. */
static void conn(int *c, int *s)
{
	struct sockaddr_in a = host_loopback(g_port);

	*c = tcp();
	if (connect(*c, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("connect");
	*s = accept(g_listener, NULL, NULL);
	if (*s < 0)
		die("accept");
}

static int pipe_w(void)
{
	int p[2];

	if (pipe(p) != 0)
		die("pipe");
	close(p[0]);
	return p[1];
}

static void sockets_and_bind(void)
{
	struct sockaddr_in a = host_loopback(0), taken;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd, u, p;

	CASE("socket_tcp", fd = socket(AF_INET, SOCK_STREAM, 0));
	CASE("socket_tcp6", u = socket(AF_INET6, SOCK_STREAM, 0));
	CASE("close_tcp6", close(u));
	CASE("socket_bad_domain", socket(12345, SOCK_STREAM, 0));
	CASE("socket_bad_type", socket(AF_INET, 12345, 0));
	CASE("socket_bad_proto", socket(AF_INET, SOCK_STREAM, 12345));
	CASE("socket_udp", u = socket(AF_INET, SOCK_DGRAM, 0));
	CASE("close_udp", close(u));
	CASE("socket_unix", u = socket(AF_UNIX, SOCK_STREAM, 0));
	CASE("close_unix", close(u));
	CASE("bind_ok", bind(fd, (struct sockaddr *)&a, sizeof(a)));
	CASE("bind_twice", bind(fd, (struct sockaddr *)&a, sizeof(a)));
	taken = host_loopback(port_of(fd));
	CASE("listen_ok", listen(fd, 16));
	g_listener = fd;
	g_port = port_of(fd);
	fd = tcp();
	CASE("bind_in_use", bind(fd, (struct sockaddr *)&taken, sizeof(taken)));
	CASE("bind_bad_len", bind(fd, (struct sockaddr *)&a, 3));
	CASE("bind_unix_addr_on_tcp", bind(fd, (struct sockaddr *)&un, sizeof(un)));
	CASE("bind_null", bind(fd, NULL, sizeof(a)));
	CASE("bind_badfd", bind(-1, (struct sockaddr *)&a, sizeof(a)));
	CASE("bind_never_opened", bind(999, (struct sockaddr *)&a, sizeof(a)));
	p = pipe_w();
	CASE("bind_notsock", bind(p, (struct sockaddr *)&a, sizeof(a)));
	close(p);
	/* a port bound but not listening: connecting to it is refused */
	CASE("bind_dead_port", bind(fd, (struct sockaddr *)&a, sizeof(a)));
	g_dead_port = port_of(fd);
}

static void connects(void)
{
	struct sockaddr_in a = host_loopback(g_port), dead = host_loopback(g_dead_port);
	struct sockaddr_in6 v6;
	struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/nonexistent/x"};
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	int c, s, p, nb;

	c = tcp();
	CASE("connect_ok", connect(c, (struct sockaddr *)&a, sizeof(a)));
	CASE("connect_again", connect(c, (struct sockaddr *)&a, sizeof(a)));
	s = accept(g_listener, NULL, NULL);
	CASE("close_connected_client", close(c));
	CASE("close_connected_server", close(s));
	c = tcp();
	CASE("connect_refused", connect(c, (struct sockaddr *)&dead, sizeof(dead)));
	CASE("connect_after_refused", connect(c, (struct sockaddr *)&dead, sizeof(dead)));
	CASE("close_refused", close(c));
	CASE("connect_badfd", connect(-1, (struct sockaddr *)&a, sizeof(a)));
	CASE("connect_never_opened", connect(999, (struct sockaddr *)&a, sizeof(a)));
	p = pipe_w();
	CASE("connect_notsock", connect(p, (struct sockaddr *)&a, sizeof(a)));
	close(p);
	c = tcp();
	CASE("connect_bad_len", connect(c, (struct sockaddr *)&a, 3));
	CASE("connect_null", connect(c, NULL, 0));
	CASE("connect_unix_addr", connect(c, (struct sockaddr *)&un, sizeof(un)));
	memset(&v6, 0, sizeof(v6));
	v6.sin6_family = AF_INET6;
	v6.sin6_port = htons((uint16_t)g_port);
	v6.sin6_addr = in6addr_loopback;
	CASE("connect_v6_on_v4", connect(c, (struct sockaddr *)&v6, sizeof(v6)));
	CASE("connect_unspec_unconnected", connect(c, &unspec, sizeof(unspec)));
	close(c);
	nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CASE("connect_nonblock", connect(nb, (struct sockaddr *)&a, sizeof(a)));
	wait_fd(nb, POLLOUT);
	CASE("connect_nonblock_done", connect(nb, (struct sockaddr *)&a, sizeof(a)));
	s = accept(g_listener, NULL, NULL);
	CASE("close_nonblock", close(nb));
	close(s);
	/* a UDP "connect" passes through as well */
	c = socket(AF_INET, SOCK_DGRAM, 0);
	CASE("connect_udp", connect(c, (struct sockaddr *)&a, sizeof(a)));
	close(c);
}

static void accepts(void)
{
	struct sockaddr_in a = host_loopback(g_port), peer;
	socklen_t pl;
	int c, s, p, fl;

	c = tcp();
	connect(c, (struct sockaddr *)&a, sizeof(a));
	pl = sizeof(peer);
	CASE("accept_ok", s = accept(g_listener, (struct sockaddr *)&peer, &pl));
	printf("accept_ok_len %u\n", pl);
	close(s);
	close(c);
	c = tcp();
	connect(c, (struct sockaddr *)&a, sizeof(a));
	CASE("accept4_cloexec", s = accept4(g_listener, NULL, NULL, SOCK_CLOEXEC));
	printf("accept4_cloexec_flags %d\n", fcntl(s, F_GETFD));
	close(s);
	close(c);
	c = tcp();
	connect(c, (struct sockaddr *)&a, sizeof(a));
	pl = 4; /* too small: the kernel truncates and reports the full size */
	CASE("accept_short_addr", s = accept(g_listener, (struct sockaddr *)&peer, &pl));
	printf("accept_short_addr_len %u\n", pl);
	close(s);
	close(c);
	c = tcp();
	connect(c, (struct sockaddr *)&a, sizeof(a));
	CASE("accept_addr_without_len", accept(g_listener, (struct sockaddr *)&peer, NULL));
	close(c);
	c = tcp();
	CASE("accept_not_listening", accept(c, NULL, NULL));
	CASE("accept4_not_listening", accept4(c, NULL, NULL, 0));
	close(c);
	CASE("accept_badfd", accept(-1, NULL, NULL));
	CASE("accept_never_opened", accept(999, NULL, NULL));
	p = pipe_w();
	CASE("accept_notsock", accept(p, NULL, NULL));
	CASE("accept4_notsock", accept4(p, NULL, NULL, 0));
	close(p);
	CASE("accept4_bad_flags", accept4(g_listener, NULL, NULL, 0x7fff));
	fl = fcntl(g_listener, F_GETFL);
	fcntl(g_listener, F_SETFL, fl | O_NONBLOCK);
	CASE("accept_empty_nonblock", accept(g_listener, NULL, NULL));
	CASE("accept4_empty_nonblock", accept4(g_listener, NULL, NULL, SOCK_NONBLOCK));
	fcntl(g_listener, F_SETFL, fl);
}

static void sockopts_and_shutdown(void)
{
	struct linger lg = {1, 5}, off = {0, 0};
	int c, s, one = 1, p, u;

	conn(&c, &s);
	CASE("setsockopt_linger", setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	CASE("setsockopt_linger_off", setsockopt(c, SOL_SOCKET, SO_LINGER, &off, sizeof(off)));
	CASE("setsockopt_linger_short", setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, 1));
	CASE("setsockopt_linger_null", setsockopt(c, SOL_SOCKET, SO_LINGER, NULL, sizeof(lg)));
	CASE("setsockopt_keepalive", setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)));
	CASE("setsockopt_bad_name", setsockopt(c, SOL_SOCKET, 12345, &one, sizeof(one)));
	CASE("setsockopt_bad_level", setsockopt(c, 12345, 1, &one, sizeof(one)));
	CASE("setsockopt_badfd", setsockopt(-1, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	p = pipe_w();
	CASE("setsockopt_notsock", setsockopt(p, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	CASE("shutdown_notsock", shutdown(p, SHUT_WR));
	close(p);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	CASE("setsockopt_udp_linger", setsockopt(u, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	close(u);
	CASE("shutdown_bad_how", shutdown(c, 7));
	CASE("shutdown_bad_how_neg", shutdown(c, -1));
	CASE("shutdown_wr", shutdown(c, SHUT_WR));
	CASE("shutdown_wr_again", shutdown(c, SHUT_WR));
	CASE("shutdown_rd", shutdown(c, SHUT_RD));
	CASE("shutdown_rdwr", shutdown(c, SHUT_RDWR));
	CASE("close_after_shutdown", close(c));
	CASE("close_server_after_shutdown", close(s));
	c = tcp();
	CASE("shutdown_unconnected", shutdown(c, SHUT_WR));
	CASE("shutdown_unconnected_bad_how", shutdown(c, 9));
	CASE("setsockopt_linger_unconnected", setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	CASE("close_unconnected_with_linger", close(c));
	CASE("shutdown_badfd", shutdown(-1, SHUT_WR));
	CASE("shutdown_never_opened", shutdown(999, SHUT_RDWR));
	/* getsockopt: SO_ERROR is looked at, the rest passed through */
	conn(&c, &s);
	{
		int v = -1;
		socklen_t vl = sizeof(v);

		CASE("getsockopt_so_error", getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &vl));
		printf("getsockopt_so_error_value %d %u\n", v, (unsigned)vl);
		vl = 1;
		CASE("getsockopt_so_error_short", getsockopt(c, SOL_SOCKET, SO_ERROR, &v, &vl));
		CASE("getsockopt_so_error_null", getsockopt(c, SOL_SOCKET, SO_ERROR, NULL, &vl));
		vl = sizeof(v);
		CASE("getsockopt_type", getsockopt(c, SOL_SOCKET, SO_TYPE, &v, &vl));
		CASE("getsockopt_badfd", getsockopt(999, SOL_SOCKET, SO_ERROR, &v, &vl));
		p = pipe_w();
		CASE("getsockopt_notsock", getsockopt(p, SOL_SOCKET, SO_ERROR, &v, &vl));
		close(p);
	}
	close(c);
	close(s);
}

static void closes(void)
{
	int c, s, c2, s2, p, fd;
	FILE *fp;

	CASE("close_minus_one", close(-1));
	CASE("close_never_opened", close(999));
	CASE("close_huge", close(1 << 30));
	conn(&c, &s);
	CASE("close_client", close(c));
	CASE("close_client_twice", close(c));
	CASE("close_server", close(s));
	p = pipe_w();
	CASE("close_pipe", close(p));
	conn(&c, &s);
	fp = fdopen(c, "r+");
	CASE("fclose_socket", fclose(fp));
	CASE("close_after_fclose", close(c));
	close(s);
	conn(&c, &s);
	fp = fdopen(c, "r+");
	close(c); /* the stream's fd is gone under it */
	CASE("fclose_closed_fd", fclose(fp));
	close(s);
	conn(&c, &s);
	fp = fdopen(c, "w");
	fputs("unsent by the stream", fp);
	CASE("fclose_with_buffered_data", fclose(fp));
	close(s);
	fp = fopen("/dev/null", "r");
	CASE("fclose_file", fclose(fp));
	conn(&c, &s);
	conn(&c2, &s2);
	CASE("close_range_two_clients", close_range((unsigned)c, (unsigned)c, 0) +
						close_range((unsigned)c2, (unsigned)c2, 0));
	CASE("close_range_reversed", close_range(9, 5, 0));
	CASE("close_range_bad_flags", close_range(900, 901, 0x40000000));
	CASE("close_range_empty", close_range(900, 950, 0));
	CASE("close_range_cloexec", close_range((unsigned)s, (unsigned)s, CLOSE_RANGE_CLOEXEC));
	printf("close_range_cloexec_flags %d\n", fcntl(s, F_GETFD));
	close(s);
	close(s2);
	conn(&c, &s);
	fd = dup2(c, 700); /* closefrom must close 700, above everything else */
	close(c);
	close(s);
	errno = EXDEV;
	closefrom(700);
	report("closefrom_700", 0, errno);
	CASE("fcntl_after_closefrom", fcntl(fd, F_GETFD));
}

static void dups(void)
{
	int c, s, c2, s2, d, p;

	conn(&c, &s);
	CASE("dup_ok", d = dup(c));
	CASE("close_dup", close(d));
	CASE("dup_badfd", dup(-1));
	CASE("dup_never_opened", dup(999));
	conn(&c2, &s2);
	CASE("dup2_over_socket", dup2(c, c2));
	CASE("close_dup2_copy", close(c2));
	CASE("dup2_same_fd", dup2(c, c));
	CASE("dup2_bad_oldfd", dup2(999, c));
	CASE("dup2_bad_oldfd_same", dup2(999, 999));
	CASE("dup2_negative_newfd", dup2(c, -1));
	CASE("dup2_huge_newfd", dup2(c, 1 << 30));
	CASE("dup3_ok", d = dup3(c, 600, O_CLOEXEC));
	printf("dup3_ok_flags %d\n", fcntl(d, F_GETFD));
	CASE("close_dup3_copy", close(d));
	CASE("dup3_same_fd", dup3(c, c, 0));
	CASE("dup3_bad_flags", dup3(c, 601, 0x7fff));
	CASE("dup3_bad_oldfd", dup3(999, 601, 0));
	/* fcntl's dups, and commands that are not dups */
	CASE("fcntl_dupfd", d = fcntl(c, F_DUPFD, 0));
	CASE("close_fcntl_dupfd", close(d));
	CASE("fcntl_dupfd_cloexec_min", d = fcntl(c, F_DUPFD_CLOEXEC, 700));
	printf("fcntl_dupfd_cloexec_flags %d\n", fcntl(d, F_GETFD));
	CASE("close_fcntl_dupfd_cloexec", close(d));
	CASE("fcntl64_dupfd", d = fcntl64(c, F_DUPFD, 0));
	CASE("close_fcntl64_dupfd", close(d));
	CASE("fcntl_dupfd_badfd", fcntl(999, F_DUPFD, 0));
	CASE("fcntl_dupfd_bad_min", fcntl(c, F_DUPFD, -1));
	CASE("fcntl_getfl", fcntl(c, F_GETFL));
	CASE("fcntl_setfl", fcntl(c, F_SETFL, O_NONBLOCK));
	CASE("fcntl_getown", fcntl(c, F_GETOWN));
	CASE("fcntl_bad_cmd", fcntl(c, 12345, 0));
	CASE("fcntl64_getfd", fcntl64(c, F_GETFD));
	p = pipe_w();
	CASE("fcntl_dupfd_pipe", d = fcntl(p, F_DUPFD_CLOEXEC, 0));
	CASE("close_fcntl_pipe_copy", close(d));
	CASE("dup2_pipe_over_socket", dup2(p, c));
	CASE("close_pipe_copy", close(c));
	close(p);
	close(s);
	close(s2);
}

static void writes(void)
{
	struct sockaddr_in a = host_loopback(g_port), udp_to;
	struct iovec iov[2] = {{"ab", 2}, {"cd", 2}};
	struct msghdr mh;
	int c, s, p, u, t, sv[2];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct cmsghdr *cm;

	conn(&c, &s);
	CASE("write_ok", write(c, "hello", 5));
	CASE("send_ok", send(c, "hello", 5, 0));
	CASE("sendto_ok", sendto(c, "hello", 5, 0, NULL, 0));
	CASE("sendto_ok_addr_ignored", sendto(c, "hello", 5, 0, (struct sockaddr *)&a, sizeof(a)));
	CASE("writev_ok", writev(c, iov, 2));
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	CASE("sendmsg_ok", sendmsg(c, &mh, 0));
	CASE("writev_bad_count", writev(c, iov, g_minus_one));
	CASE("write_zero", write(c, "", 0));
	CASE("send_bad_buffer", send(c, (void *)16, 5, 0));
	CASE("shutdown_for_epipe", shutdown(c, SHUT_WR));
	CASE("write_after_shutdown", write(c, "x", 1));
	CASE("send_after_shutdown", send(c, "x", 1, 0));
	CASE("writev_after_shutdown", writev(c, iov, 2));
	CASE("sendmsg_after_shutdown", sendmsg(c, &mh, 0));
	close(c);
	close(s);
	CASE("write_badfd", write(-1, "x", 1));
	CASE("send_badfd", send(-1, "x", 1, 0));
	CASE("sendto_badfd", sendto(999, "x", 1, 0, NULL, 0));
	CASE("sendmsg_badfd", sendmsg(999, &mh, 0));
	CASE("writev_badfd", writev(999, iov, 2));
	p = pipe_w();
	CASE("send_notsock", send(p, "x", 1, 0));
	CASE("write_broken_pipe", write(p, "x", 1));
	close(p);
	t = tcp();
	CASE("send_unconnected", send(t, "x", 1, 0));
	CASE("sendto_unconnected", sendto(t, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	close(t);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	udp_to = host_loopback(g_dead_port);
	CASE("sendto_udp", sendto(u, "x", 1, 0, (struct sockaddr *)&udp_to, sizeof(udp_to)));
	CASE("send_udp_no_dest", send(u, "x", 1, 0));
	close(u);
	/* a tracked socket handed to another process */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		die("socketpair");
	conn(&c, &s);
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c, sizeof(int));
	CASE("sendmsg_scm_rights", sendmsg(sv[0], &mh, 0));
	CASE("close_passed_socket", close(c));
	{
		struct mmsghdr mm[2];
		char rbuf[8], rcbuf[CMSG_SPACE(sizeof(int))];
		struct iovec riov = {rbuf, sizeof(rbuf)};
		int got = -1;

		memset(mm, 0, sizeof(mm));
		mm[0].msg_hdr.msg_iov = &riov;
		mm[0].msg_hdr.msg_iovlen = 1;
		mm[0].msg_hdr.msg_control = rcbuf;
		mm[0].msg_hdr.msg_controllen = sizeof(rcbuf);
		CASE("recvmmsg_scm_rights", recvmmsg(sv[1], mm, 1, 0, NULL));
		if (CMSG_FIRSTHDR(&mm[0].msg_hdr) != NULL)
			memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&mm[0].msg_hdr)), sizeof(int));
		CASE("close_received_socket", close(got));
		conn(&c, &t);
		memcpy(CMSG_DATA(cm), &c, sizeof(int));
		mm[0].msg_hdr = mh;
		mm[1].msg_hdr = mh;
		mm[1].msg_hdr.msg_control = NULL;
		mm[1].msg_hdr.msg_controllen = 0;
		CASE("sendmmsg_scm_rights", sendmmsg(sv[0], mm, 2, 0));
		CASE("close_mpassed_socket", close(c));
		close(t);
		CASE("sendmmsg_badfd", sendmmsg(999, mm, 1, 0));
		CASE("recvmmsg_badfd", recvmmsg(999, mm, 1, 0, NULL));
		CASE("recvmmsg_empty_nonblock", recvmmsg(sv[0], mm, 1, MSG_DONTWAIT, NULL));
	}
	close(s);
	close(sv[0]);
	close(sv[1]);
}

/* popen("echo hi") read to its end and pclose()d: 1 when it read "hi"
 * and the shell exited 0, else -1; errno as popen() left it. */
static int popen_echo(void)
{
	char line[16] = "";
	FILE *f = popen("echo hi", "r");
	int ok, err = errno;

	if (f == NULL)
		return -1;
	ok = fgets(line, sizeof(line), f) != NULL && strcmp(line, "hi\n") == 0;
	ok = pclose(f) == 0 && ok;
	errno = err;
	return ok ? 1 : -1;
}

static void syscalls(void)
{
	int c, s, d;

	conn(&c, &s);
	CASE("syscall_close", syscall(SYS_close, c));
	CASE("syscall_close_again", syscall(SYS_close, c));
	CASE("syscall_close_minus_one", syscall(SYS_close, -1));
	CASE("syscall_dup3_same", syscall(SYS_dup3, s, s, 0));
	CASE("syscall_dup2_bad", syscall(SYS_dup2, 999, s));
	CASE("syscall_close_range_reversed", syscall(SYS_close_range, 9, 5, 0));
	CASE("close_server", close(s));
	/* a fresh connection: the one above ended as the policy says */
	conn(&c, &s);
	CASE("syscall_write_zero", syscall(SYS_write, c, "", 0));
	CASE("syscall_getppid_positive", syscall(SYS_getppid) > 0);
	CASE("syscall_dup", d = (int)syscall(SYS_dup, c));
	CASE("syscall_close_dup", syscall(SYS_close, d));
	CASE("syscall_fcntl_dupfd", d = (int)syscall(SYS_fcntl, c, F_DUPFD_CLOEXEC, 0));
	CASE("syscall_close_fcntl_dup", syscall(SYS_close, d));
	CASE("syscall_fcntl_getfd", syscall(SYS_fcntl, c, F_GETFD));
	CASE("syscall_fcntl_dupfd_bad", syscall(SYS_fcntl, 999, F_DUPFD, 0));
	/* the shell's calls, with a socket open across them */
	CASE("system_exit_3", system("exit 3"));
	CASE("popen_echo", popen_echo());
	CASE("syscall_close_client", syscall(SYS_close, c));
	CASE("close_server_2", close(s));
}

static void forks(void)
{
	pid_t pid;
	int status = 0, c, s, e;

	conn(&c, &s);
	fflush(stdout);
	errno = EXDEV;
	pid = fork();
	e = errno;
	if (pid == 0) {
		close(c);
		_exit(7);
	}
	report("fork_parent", pid > 0 ? 1 : pid, e);
	if (pid > 0 && waitpid(pid, &status, 0) == pid)
		printf("fork_child_status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	else
		printf("fork_child_status none\n");
	CASE("close_after_fork", close(c));
	close(s);
}

/* A child holding copies of a fresh connection, which the parent closes:
 * it exits with 3, or kills itself (killed). */
static pid_t holder_child(bool killed)
{
	int c, s;
	pid_t pid;

	conn(&c, &s);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (killed)
			raise(SIGKILL);
		_exit(3);
	}
	close(c);
	close(s);
	return pid;
}

/* The wait family, on children that held counted sockets (the library's
 * records of them are taken back there): every result and status as
 * libc alone gives them. */
static void waits(void)
{
	struct rusage ru;
	siginfo_t info;
	int st;
	pid_t pid;

	pid = holder_child(false);
	st = -1;
	CASE("waitpid_exited", waitpid(pid, &st, 0) == pid);
	printf("waitpid_exited_status %d\n", st);
	pid = holder_child(true);
	CASE("waitpid_killed_null", waitpid(pid, NULL, 0) == pid);
	pid = holder_child(true);
	st = -1;
	CASE("wait4_killed", wait4(pid, &st, 0, &ru) == pid);
	printf("wait4_killed_status %d %d\n", WIFSIGNALED(st), WTERMSIG(st));
	pid = holder_child(false);
	st = -1;
	CASE("wait_exited", wait(&st) == pid);
	printf("wait_exited_status %d\n", st);
	pid = holder_child(true);
	st = -1;
	CASE("wait3_killed", wait3(&st, 0, NULL) == pid);
	printf("wait3_killed_status %d\n", WTERMSIG(st));
	pid = holder_child(true);
	memset(&info, 0, sizeof(info));
	CASE("waitid_nowait", waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT));
	printf("waitid_nowait_info %d %d\n", info.si_pid == pid, info.si_code);
	memset(&info, 0, sizeof(info));
	CASE("waitid_killed", waitid(P_PID, (id_t)pid, &info, WEXITED));
	printf("waitid_killed_info %d %d %d\n", info.si_pid == pid, info.si_code, info.si_status);
	CASE("waitid_none_left", waitid(P_ALL, 0, &info, WEXITED));
	CASE("waitid_bad_idtype", waitid((idtype_t)77, 0, &info, WEXITED));
	CASE("waitpid_none_left", waitpid(-1, &st, 0));
	CASE("waitpid_nohang_none", waitpid(-1, &st, WNOHANG));
	CASE("wait_none_left", wait(NULL));
	CASE("wait4_bad_options", wait4(-1, &st, 0x7fff0000, NULL));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	sockets_and_bind();
	connects();
	accepts();
	sockopts_and_shutdown();
	closes();
	dups();
	writes();
	syscalls();
	forks();
	waits();
	/* prctl: passed on, result and errno unchanged (PR_SET_SECCOMP is
	 * the only option the library looks at) */
	CASE("prctl_get_dumpable", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	CASE("prctl_bad_option", prctl(-1, 0, 0, 0, 0));
	CASE("prctl_seccomp_bad_mode", prctl(PR_SET_SECCOMP, 77, 0, 0, 0));
	CASE("close_listener", close(g_listener));
	printf("done\n");
	return 0;
}
