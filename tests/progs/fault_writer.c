/*
 * fault_writer: a program that writes to one TCP connection until a write
 * fails, with the system call chosen on the command line, and then reports
 * what its next calls see.  It is the "program under the library" of the
 * fault-injection tests (tests/e2e/test_faults.py).
 *
 * tdpeer always writes with send(); the library cuts rst_after_bytes on
 * write(), send(), sendto(), sendmsg() and writev() alike, so this program
 * can use each of them.  sendmsg() and writev() split every chunk over two
 * iovecs, so that the cut can fall inside a vector.
 *
 * After the first failed write it makes one more write with the same call
 * and then one recv(), and prints what each returned: after a real reset
 * Linux reports ECONNRESET once, then EPIPE on writes, and a read returns
 * 0.  The tests compare that sequence with and without the library.
 *
 *   fault_writer server [--listen PORT] [options]   accept one connection
 *   fault_writer client --connect PORT [options]    connect to 127.0.0.1
 *
 * options: --call write|send|sendto|sendmsg|writev (default send)
 *          --chunk N (bytes per call, default 1000)
 *          --delay MS (between calls, default 0)
 *          --max-ms MS (give up writing after this long, default 10000)
 *
 * --read-call read|recv|recvfrom|recvmsg|readv|recvmmsg makes it a reader instead:
 * it writes nothing and blocks in that call until the call fails or the
 * stream ends ("first_error", "none" at EOF), then makes the same call
 * once more ("read_rc", "read_error") and one send() ("next_error").  A
 * thread blocked in a read when a real RST arrives gets ECONNRESET, the
 * next read 0 and a send EPIPE.
 *
 * Output: JSON lines on stdout, each written with one write(2): a
 * "listening" line (server), then one "result" line.  The bytes follow
 * tdpeer's pattern ('a' + offset % 26), so "tdpeer client" can check them.
 * SIGPIPE is ignored: write() and writev() cannot take MSG_NOSIGNAL, and
 * the program must live to report its errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum fw_call { FW_WRITE, FW_SEND, FW_SENDTO, FW_SENDMSG, FW_WRITEV };

static const char *const fw_call_names[] = {"write", "send", "sendto", "sendmsg", "writev"};

enum fw_rcall { FW_NOREAD = -1, FW_READ, FW_RECV, FW_RECVFROM, FW_RECVMSG, FW_READV, FW_RECVMMSG };

static const char *const fw_rcall_names[] = {"read", "recv", "recvfrom", "recvmsg", "readv",
					     "recvmmsg"};

static struct {
	bool server;
	int port;
	enum fw_call call;
	size_t chunk;
	long delay_ms;
	long max_ms;
	enum fw_rcall rcall;
} fw = {false, 0, FW_SEND, 1000, 0, 10000, FW_NOREAD};

static double fw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void fw_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One line of output, in a single write(2). */
static void fw_print(const char *line)
{
	size_t n = strlen(line);

	if (write(STDOUT_FILENO, line, n) != (ssize_t)n)
		exit(3);
}

static const char *fw_errname(int err)
{
	switch (err) {
	case 0: return "none";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	case ENOTCONN: return "ENOTCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EAGAIN: return "EAGAIN";
	default: return strerrorname_np(err) ? strerrorname_np(err) : "unknown";
	}
}

/* One write with the chosen call; returns its result, errno preserved. */
static ssize_t fw_write(int fd, const unsigned char *buf, size_t n)
{
	struct iovec iov[2] = {{(void *)buf, n / 2}, {(void *)(buf + n / 2), n - n / 2}};
	struct msghdr m;

	switch (fw.call) {
	case FW_WRITE:
		return write(fd, buf, n);
	case FW_SENDTO:
		return sendto(fd, buf, n, MSG_NOSIGNAL, NULL, 0);
	case FW_SENDMSG:
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		return sendmsg(fd, &m, MSG_NOSIGNAL);
	case FW_WRITEV:
		return writev(fd, iov, 2);
	default:
		return send(fd, buf, n, MSG_NOSIGNAL);
	}
}

/* One blocking read with the chosen read call; errno preserved. */
static ssize_t fw_read(int fd, unsigned char *buf, size_t n)
{
	struct iovec iov[2] = {{buf, n / 2}, {buf + n / 2, n - n / 2}};
	struct msghdr m;

	switch (fw.rcall) {
	case FW_RECV:
		return recv(fd, buf, n, 0);
	case FW_RECVFROM:
		return recvfrom(fd, buf, n, 0, NULL, NULL);
	case FW_RECVMSG:
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		return recvmsg(fd, &m, 0);
	case FW_READV:
		return readv(fd, iov, 2);
	case FW_RECVMMSG: {
		/* one message: its length (0 at the peer's EOF), or the error */
		struct mmsghdr mm;
		int r;

		memset(&mm, 0, sizeof(mm));
		mm.msg_hdr.msg_iov = iov;
		mm.msg_hdr.msg_iovlen = 2;
		r = recvmmsg(fd, &mm, 1, 0, NULL);
		return r < 0 ? -1 : r == 0 ? 0 : (ssize_t)mm.msg_len;
	}
	default:
		return read(fd, buf, n);
	}
}

static int fw_port_of(int fd, bool peer)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int rc = peer ? getpeername(fd, (struct sockaddr *)&sa, &len)
		      : getsockname(fd, (struct sockaddr *)&sa, &len);

	return rc == 0 ? ntohs(sa.sin_port) : 0;
}

static int fw_open(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	char line[128];
	int fd, lfd, one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)fw.port);
	if (!fw.server) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			snprintf(line, sizeof(line), "{\"event\":\"result\",\"connect_error\":\"%s\"}\n",
				 fw_errname(errno));
			fw_print(line);
			exit(1);
		}
		return fd;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
		perror("fault_writer: listen");
		exit(1);
	}
	snprintf(line, sizeof(line), "{\"event\":\"listening\",\"port\":%d}\n", ntohs(sa.sin_port));
	fw_print(line);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		perror("fault_writer: accept");
		exit(1);
	}
	close(lfd);
	return fd;
}

static void fw_usage(void)
{
	fprintf(stderr, "usage: fault_writer server|client [--listen PORT|--connect PORT]\n"
			"       [--call write|send|sendto|sendmsg|writev] [--chunk N]\n"
			"       [--delay MS] [--max-ms MS]\n"
			"       [--read-call read|recv|recvfrom|recvmsg|readv|recvmmsg]\n");
	exit(2);
}

/* The index of arg among the n names, or the usage message. */
static int fw_pick(const char *const *names, int n, const char *arg)
{
	for (int i = 0; i < n; i++)
		if (strcmp(arg, names[i]) == 0)
			return i;
	fw_usage();
	return -1;
}

static void fw_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'}, {"connect", required_argument, NULL, 'c'},
		{"call", required_argument, NULL, 'k'},	  {"chunk", required_argument, NULL, 'n'},
		{"delay", required_argument, NULL, 'd'},  {"max-ms", required_argument, NULL, 'm'},
		{"read-call", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0},
	};
	int c;

	if (argc < 2)
		fw_usage();
	if (strcmp(argv[1], "server") == 0)
		fw.server = true;
	else if (strcmp(argv[1], "client") != 0)
		fw_usage();
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
		case 'c':
			fw.port = atoi(optarg);
			break;
		case 'k':
			fw.call = (enum fw_call)fw_pick(fw_call_names, 5, optarg);
			break;
		case 'r':
			fw.rcall = (enum fw_rcall)fw_pick(fw_rcall_names, 6, optarg);
			break;
		case 'n':
			fw.chunk = (size_t)atol(optarg);
			break;
		case 'd':
			fw.delay_ms = atol(optarg);
			break;
		case 'm':
			fw.max_ms = atol(optarg);
			break;
		default:
			fw_usage();
		}
	}
	if (fw.chunk < 2 || fw.chunk > 1 << 20 || (!fw.server && fw.port <= 0))
		fw_usage();
}

int main(int argc, char **argv)
{
	unsigned char *buf;
	long long written = 0;
	double t0, first_ms = -1;
	int fd, first = 0, next = 0, read_errno = 0, linger_on = -1, linger_secs = -1;
	int lport, rport, close_rc;
	ssize_t r, read_rc;
	struct linger lg;
	socklen_t len = sizeof(lg);
	char line[1024], c;

	fw_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	buf = malloc(fw.chunk);
	if (buf == NULL)
		return 1;
	fd = fw_open();
	t0 = fw_now_ms();
	/* Taken now: after a reset the socket has no peer name any more. */
	lport = fw_port_of(fd, false);
	rport = fw_port_of(fd, true);
	/* What the socket carries right after connect/accept: a faulted RST is
	 * SO_LINGER {1,0}, an unmatched socket must still show the default. */
	if (getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &len) == 0) {
		linger_on = lg.l_onoff;
		linger_secs = lg.l_linger;
	}
	while (fw.rcall != FW_NOREAD) {
		r = fw_read(fd, buf, fw.chunk);
		if (r > 0 || (r < 0 && errno == EINTR))
			continue;
		first = r < 0 ? errno : 0;
		first_ms = fw_now_ms() - t0;
		read_rc = fw_read(fd, buf, fw.chunk);
		read_errno = read_rc < 0 ? errno : 0;
		r = send(fd, "x", 1, MSG_NOSIGNAL);
		next = r < 0 ? errno : 0;
		goto report;
	}
	while (fw_now_ms() - t0 < (double)fw.max_ms) {
		for (size_t i = 0; i < fw.chunk; i++)
			buf[i] = (unsigned char)('a' + (written + (long long)i) % 26);
		r = fw_write(fd, buf, fw.chunk);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			first = errno;
			first_ms = fw_now_ms() - t0;
			break;
		}
		written += r;
		if (fw.delay_ms > 0)
			fw_sleep_ms(fw.delay_ms);
	}
	if (first != 0) {
		r = fw_write(fd, buf, fw.chunk);
		next = r < 0 ? errno : 0;
	}
	read_rc = recv(fd, &c, 1, MSG_DONTWAIT);
	read_errno = read_rc < 0 ? errno : 0;
report:
	close_rc = close(fd);
	snprintf(line, sizeof(line),
		 "{\"event\":\"result\",\"role\":\"%s\",\"call\":\"%s\",\"local_port\":%d,"
		 "\"remote_port\":%d,\"connect_error\":null,\"linger_on\":%d,\"linger_secs\":%d,"
		 "\"bytes_written\":%lld,\"first_error\":\"%s\",\"first_error_ms\":%.3f,"
		 "\"next_error\":\"%s\",\"read_rc\":%zd,\"read_error\":\"%s\",\"close_rc\":%d}\n",
		 fw.server ? "server" : "client",
		 fw.rcall != FW_NOREAD ? fw_rcall_names[fw.rcall] : fw_call_names[fw.call], lport, rport,
		 linger_on, linger_secs, written, fw_errname(first), first_ms, fw_errname(next),
		 read_rc, fw_errname(read_errno), close_rc);
	fw_print(line);
	free(buf);
	return 0;
}
