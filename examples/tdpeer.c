/*
 * tdpeer: a TCP client and server for the end-to-end tests of teardown.
 *
 * One binary plays either side of a connection ("tdpeer server ..." or
 * "tdpeer client ...").  Options choose what it sends and reads, which
 * socket options it sets and, above all, how it ends each connection:
 * close(), fclose(), dup2() over the descriptor, close_range(), a raw
 * syscall, exit() without closing, and so on.  Every way a real program
 * can let go of a socket is one --close METHOD away, so the tests can
 * check that a policy holds on all of them.
 *
 * The output is meant for programs, not people: JSON lines on stdout, one
 * "listening" line as soon as a server listens and one "result" line per
 * connection.  Each line is written with a single write(2), so lines from
 * threads and forked children never interleave and nothing sits in a
 * stdio buffer when the process dies.
 *
 * Every wait (connect, accept, each read or write) is bounded by
 * --timeout, so a test that goes wrong ends with a "timeout" in the result
 * instead of hanging.  All I/O goes through poll() and non-blocking
 * send()/recv() calls; the descriptor itself stays blocking (unless
 * --nonblock), as it would in an ordinary program, because that matters
 * to how close() lingers.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* Error codes of our own, kept apart from errno values (which are > 0). */
#define TP_ERR_NONE 0
#define TP_ERR_TIMEOUT (-1)
#define TP_ERR_EOF (-2)

#define TP_LINE_MAX 2048
#define TP_ADDR_MAX 64
#define TP_BUF_SIZE 65536

enum tp_role { TP_SERVER, TP_CLIENT };

enum tp_close {
	TP_CLOSE_CLOSE,
	TP_CLOSE_FCLOSE,
	TP_CLOSE_DUP2,
	TP_CLOSE_DUP3,
	TP_CLOSE_RANGE,
	TP_CLOSE_FROM,
	TP_CLOSE_SYSCALL,
	TP_CLOSE_EXIT,
	TP_CLOSE_UEXIT,
	TP_CLOSE_NONE,
	TP_CLOSE_KILL,
	TP_CLOSE__COUNT
};

static const char *const tp_close_names[TP_CLOSE__COUNT] = {
	[TP_CLOSE_CLOSE] = "close",     [TP_CLOSE_FCLOSE] = "fclose",
	[TP_CLOSE_DUP2] = "dup2",       [TP_CLOSE_DUP3] = "dup3",
	[TP_CLOSE_RANGE] = "close_range", [TP_CLOSE_FROM] = "closefrom",
	[TP_CLOSE_SYSCALL] = "syscall", [TP_CLOSE_EXIT] = "exit",
	[TP_CLOSE_UEXIT] = "_exit",     [TP_CLOSE_NONE] = "none",
	[TP_CLOSE_KILL] = "kill",
};

struct tp_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	bool set;
};

struct tp_linger {
	bool set;
	int on;
	int secs;
};

/* Everything the command line can ask for; read-only once parsed. */
struct tp_opts {
	enum tp_role role;
	struct tp_addr listen, connect, bind;
	int backlog;
	long count;
	bool reuseaddr, bind_only, nonblock;
	int timeout_ms;
	struct tp_linger linger, linger_listener;
	int rcvbuf, sndbuf;
	long long send_bytes, read_bytes, request_bytes;
	bool no_read, read_until_eof, write_until_error, half_close, wait_input;
	size_t write_chunk;
	int write_delay_ms, read_delay_ms;
	int shutdown_how; /* -1 = no shutdown */
	int sleep_before_close_ms;
	enum tp_close close_method, child_close;
	int hold_ms;
	bool fork_mode;
	int child_delay_ms;
	int threads;
	bool quiet;
};

/* What one connection did, as printed on its result line. */
struct tp_result {
	const char *role;
	const char *forked; /* NULL, "parent" or "child" */
	long conn;
	char local[TP_ADDR_MAX], remote[TP_ADDR_MAX];
	int local_port, remote_port;
	int bind_error, connect_error, accept_error;
	long long bytes_sent, bytes_received;
	bool data_ok;
	int recv_end, send_error;
	const char *shutdown;
	int shutdown_errno;
	const char *close_method;
	bool closed;
	int close_rc, close_errno;
	double close_ms, elapsed_ms;
};

/* One live connection: the descriptor, its stdio stream for "fclose". */
struct tp_conn {
	int fd;
	FILE *fp;
	struct tp_result res;
	double started_ms;
};

/* Totals for the closing "summary" line, shared by client threads. */
struct tp_summary {
	pthread_mutex_t lock;
	long connections, failures, resets, eofs;
	long long bytes_sent, bytes_received;
};

static struct tp_opts tp_opts;
static struct tp_summary tp_sum = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */
/* ------------------------------------------------------------------ */

static double tp_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void tp_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (ms > 0 && nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Usage errors end the program with status 2 so a test can tell them
 * apart from network results, which never change the exit status to 2. */
__attribute__((noreturn, format(printf, 1, 2)))
static void tp_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tdpeer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (try --help)\n", stderr);
	exit(2);
}

/* Writes a whole line with as few write(2) calls as the kernel allows:
 * stdio would keep the line in a buffer that a fork duplicates and that
 * _exit() or SIGKILL throws away. */
static void tp_write_line(const char *line, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, line, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		line += n;
		len -= (size_t)n;
	}
}

/* The name of an error for the JSON output: the errno name, or one of
 * our own pseudo-errors. */
static const char *tp_err_name(int err)
{
	const char *name;

	if (err == TP_ERR_TIMEOUT)
		return "timeout";
	if (err == TP_ERR_EOF)
		return "EOF";
	name = strerrorname_np(err);
	return name ? name : "EUNKNOWN";
}

/* The byte at a given offset of every stream tdpeer sends.  Letters keep
 * packet dumps readable, and the receiver can check the data it got. */
static unsigned char tp_pattern(long long off)
{
	return (unsigned char)('a' + off % 26);
}

/* ------------------------------------------------------------------ */
/* JSON output                                                         */
/* ------------------------------------------------------------------ */

struct tp_json {
	char buf[TP_LINE_MAX];
	size_t len;
};

__attribute__((format(printf, 2, 3)))
static void tp_json_raw(struct tp_json *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->len >= sizeof(j->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		j->len += (size_t)n;
	if (j->len >= sizeof(j->buf))
		j->len = sizeof(j->buf) - 1;
}

static void tp_json_key(struct tp_json *j, const char *key)
{
	tp_json_raw(j, "%s\"%s\":", j->len > 1 ? "," : "", key);
}

/* Strings here are addresses and error names, but escape anyway: a test
 * harness that chokes on one bad line is worse than a slower printer. */
static void tp_json_str(struct tp_json *j, const char *key, const char *val)
{
	tp_json_key(j, key);
	if (!val) {
		tp_json_raw(j, "null");
		return;
	}
	tp_json_raw(j, "\"");
	for (; *val; val++) {
		unsigned char c = (unsigned char)*val;

		if (c == '"' || c == '\\')
			tp_json_raw(j, "\\%c", c);
		else if (c < 0x20)
			tp_json_raw(j, "\\u%04x", c);
		else
			tp_json_raw(j, "%c", c);
	}
	tp_json_raw(j, "\"");
}

static void tp_json_int(struct tp_json *j, const char *key, long long val)
{
	tp_json_key(j, key);
	tp_json_raw(j, "%lld", val);
}

static void tp_json_ms(struct tp_json *j, const char *key, double val)
{
	tp_json_key(j, key);
	tp_json_raw(j, "%.3f", val);
}

static void tp_json_bool(struct tp_json *j, const char *key, bool val)
{
	tp_json_key(j, key);
	tp_json_raw(j, "%s", val ? "true" : "false");
}

/* An error field: null when there was no error. */
static void tp_json_err(struct tp_json *j, const char *key, int err)
{
	tp_json_str(j, key, err == TP_ERR_NONE ? NULL : tp_err_name(err));
}

static void tp_json_begin(struct tp_json *j, const char *event)
{
	j->len = 0;
	tp_json_raw(j, "{");
	tp_json_str(j, "event", event);
}

static void tp_json_end(struct tp_json *j)
{
	if (j->len > sizeof(j->buf) - 3)
		j->len = sizeof(j->buf) - 3;
	tp_json_raw(j, "}\n");
	tp_write_line(j->buf, j->len);
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/* Parses "1.2.3.4:80" or "[::1]:80".  Only numeric addresses: a name
 * lookup would open sockets of its own and muddy what the tests see. */
static bool tp_parse_addr(const char *text, struct tp_addr *out)
{
	char host[TP_ADDR_MAX];
	const char *colon, *port_text;
	size_t hlen;
	char *end;
	long port;

	colon = strrchr(text, ':');
	if (!colon)
		return false;
	port_text = colon + 1;
	hlen = (size_t)(colon - text);
	if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
		text++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(port_text, &end, 10);
	if (errno || end == port_text || *end || port < 0 || port > 65535)
		return false;
	memset(out, 0, sizeof(*out));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*sin6);
		out->set = inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		out->set = inet_pton(AF_INET, host, &sin->sin_addr) == 1;
	}
	return out->set;
}

/* Formats an address the way the tests parse it back; returns the port. */
static int tp_format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
		return ntohs(sin6->sin6_port);
	}
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
		return ntohs(sin->sin_port);
	}
	out[0] = '\0';
	return 0;
}

/* Records both ends of a socket in its result; either may be unknown. */
static void tp_note_addrs(int fd, struct tp_result *r)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		r->local_port = tp_format_addr(&ss, r->local, sizeof(r->local));
	len = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
		r->remote_port = tp_format_addr(&ss, r->remote, sizeof(r->remote));
}

/* ------------------------------------------------------------------ */
/* Results                                                             */
/* ------------------------------------------------------------------ */

static void tp_result_init(struct tp_result *r, long conn)
{
	memset(r, 0, sizeof(*r));
	r->role = tp_opts.role == TP_SERVER ? "server" : "client";
	r->conn = conn;
	r->data_ok = true;
	r->close_method = tp_close_names[TP_CLOSE_CLOSE];
}

static void tp_summary_add(const struct tp_result *r)
{
	pthread_mutex_lock(&tp_sum.lock);
	tp_sum.connections++;
	if (r->bind_error || r->connect_error || r->accept_error)
		tp_sum.failures++;
	if (r->recv_end == ECONNRESET || r->send_error == ECONNRESET ||
	    r->send_error == EPIPE)
		tp_sum.resets++;
	if (r->recv_end == TP_ERR_EOF)
		tp_sum.eofs++;
	tp_sum.bytes_sent += r->bytes_sent;
	tp_sum.bytes_received += r->bytes_received;
	pthread_mutex_unlock(&tp_sum.lock);
}

static void tp_result_fields(struct tp_json *j, const struct tp_result *r)
{
	tp_json_str(j, "role", r->role);
	tp_json_int(j, "conn", r->conn);
	tp_json_int(j, "pid", getpid());
	tp_json_str(j, "forked", r->forked);
	tp_json_str(j, "local", r->local[0] ? r->local : NULL);
	tp_json_str(j, "remote", r->remote[0] ? r->remote : NULL);
	tp_json_int(j, "local_port", r->local_port);
	tp_json_int(j, "remote_port", r->remote_port);
	tp_json_err(j, "bind_error", r->bind_error);
	tp_json_err(j, "connect_error", r->connect_error);
	tp_json_err(j, "accept_error", r->accept_error);
	tp_json_int(j, "bytes_sent", r->bytes_sent);
	tp_json_int(j, "bytes_received", r->bytes_received);
	tp_json_bool(j, "data_ok", r->data_ok);
	tp_json_err(j, "recv_end", r->recv_end);
	tp_json_err(j, "send_error", r->send_error);
	tp_json_str(j, "shutdown", r->shutdown);
	tp_json_err(j, "shutdown_errno", r->shutdown_errno);
	tp_json_str(j, "close_method", r->close_method);
}

/* Prints the result line of one connection and adds it to the totals. */
static void tp_result_print(const struct tp_result *r)
{
	struct tp_json j;

	tp_summary_add(r);
	if (tp_opts.quiet)
		return;
	tp_json_begin(&j, "result");
	tp_result_fields(&j, r);
	if (r->closed) {
		tp_json_int(&j, "close_rc", r->close_rc);
	} else {
		tp_json_key(&j, "close_rc");
		tp_json_raw(&j, "null");
	}
	tp_json_err(&j, "close_errno", r->close_errno);
	tp_json_ms(&j, "close_ms", r->close_ms);
	tp_json_ms(&j, "elapsed_ms", r->elapsed_ms);
	tp_json_end(&j);
}

static void tp_summary_print(double started_ms)
{
	struct tp_json j;

	tp_json_begin(&j, "summary");
	tp_json_str(&j, "role", tp_opts.role == TP_SERVER ? "server" : "client");
	tp_json_int(&j, "pid", getpid());
	tp_json_int(&j, "connections", tp_sum.connections);
	tp_json_int(&j, "failures", tp_sum.failures);
	tp_json_int(&j, "resets", tp_sum.resets);
	tp_json_int(&j, "eofs", tp_sum.eofs);
	tp_json_int(&j, "bytes_sent", tp_sum.bytes_sent);
	tp_json_int(&j, "bytes_received", tp_sum.bytes_received);
	tp_json_ms(&j, "elapsed_ms", tp_now_ms() - started_ms);
	tp_json_end(&j);
}

/* ------------------------------------------------------------------ */
/* Waiting and data transfer                                           */
/* ------------------------------------------------------------------ */

/* Waits until fd is ready for events, for at most --timeout ms.
 * Returns 1 when ready, 0 on timeout, or a negative errno. */
static int tp_wait(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	double deadline = tp_now_ms() + tp_opts.timeout_ms;

	for (;;) {
		int left = (int)(deadline - tp_now_ms());
		int n;

		if (left < 0)
			left = 0;
		n = poll(&p, 1, left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* Counts received bytes and checks them against the sender's pattern. */
static void tp_account_received(struct tp_result *r, const unsigned char *buf, size_t n)
{
	for (size_t i = 0; i < n && r->data_ok; i++)
		if (buf[i] != tp_pattern(r->bytes_received + (long long)i))
			r->data_ok = false;
	r->bytes_received += (long long)n;
}

/* Reads up to limit bytes (limit < 0: until the stream ends).  Stops
 * early at EOF, an error or a timeout and records why in recv_end; a read
 * that simply got its bytes leaves recv_end alone. */
static void tp_read(struct tp_conn *c, long long limit)
{
	static __thread unsigned char buf[TP_BUF_SIZE];
	long long got = 0;

	while (limit < 0 || got < limit) {
		size_t want = sizeof(buf);
		ssize_t n;
		int w;

		if (limit >= 0 && (long long)want > limit - got)
			want = (size_t)(limit - got);
		w = tp_wait(c->fd, POLLIN);
		if (w <= 0) {
			c->res.recv_end = w == 0 ? TP_ERR_TIMEOUT : -w;
			return;
		}
		n = recv(c->fd, buf, want, MSG_DONTWAIT);
		if (n == 0) {
			c->res.recv_end = TP_ERR_EOF;
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			c->res.recv_end = errno;
			return;
		}
		tp_account_received(&c->res, buf, (size_t)n);
		got += n;
	}
}

/* Fills buf with the pattern continuing at stream offset off. */
static void tp_fill(unsigned char *buf, size_t n, long long off)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = tp_pattern(off + (long long)i);
}

/* Sends one chunk, waiting for room as needed.  Returns 0 or an error
 * code (an errno value or TP_ERR_TIMEOUT). */
static int tp_send_chunk(struct tp_conn *c, const unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t s;
		int w = tp_wait(c->fd, POLLOUT);

		if (w <= 0)
			return w == 0 ? TP_ERR_TIMEOUT : -w;
		s = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (s < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return errno;
		}
		c->res.bytes_sent += s;
		buf += s;
		n -= (size_t)s;
	}
	return 0;
}

/* Sends total bytes of the pattern (total < 0: until an error or until
 * --timeout has passed), in --write-chunk pieces --write-delay apart. */
static void tp_send(struct tp_conn *c, long long total)
{
	static __thread unsigned char buf[TP_BUF_SIZE];
	double deadline = tp_now_ms() + tp_opts.timeout_ms;
	long long done = 0;

	while (total < 0 || done < total) {
		size_t n = tp_opts.write_chunk;
		int err;

		if (total >= 0 && (long long)n > total - done)
			n = (size_t)(total - done);
		if (total < 0 && tp_now_ms() > deadline) {
			c->res.send_error = TP_ERR_TIMEOUT;
			return;
		}
		tp_fill(buf, n, c->res.bytes_sent);
		err = tp_send_chunk(c, buf, n);
		if (err) {
			c->res.send_error = err;
			return;
		}
		done += (long long)n;
		if (tp_opts.write_delay_ms > 0)
			tp_sleep_ms(tp_opts.write_delay_ms);
	}
}

/* ------------------------------------------------------------------ */
/* One connection's life                                               */
/* ------------------------------------------------------------------ */

static void tp_set_linger(int fd, const struct tp_linger *l)
{
	struct linger lg = { .l_onoff = l->on, .l_linger = l->secs };

	if (l->set && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0)
		fprintf(stderr, "tdpeer: SO_LINGER: %s\n", strerror(errno));
}

static void tp_open_stream(struct tp_conn *c)
{
	c->fp = fdopen(c->fd, "r+");
	if (!c->fp)
		fprintf(stderr, "tdpeer: fdopen: %s\n", strerror(errno));
}

/* Prepares a fresh connection: the per-connection socket options, and
 * the stdio stream that "--close fclose" will close.  The stream exists
 * from the start, as in a program that talks through it. */
static void tp_conn_setup(struct tp_conn *c)
{
	c->fp = NULL;
	tp_note_addrs(c->fd, &c->res);
	tp_set_linger(c->fd, &tp_opts.linger);
	if (tp_opts.close_method == TP_CLOSE_FCLOSE)
		tp_open_stream(c);
}

/* Waits until the peer's data (or its FIN or RST) is here, without
 * reading it: a server that "ignores the request" must still close only
 * after the request arrived, or the kernel has nothing unread to punish. */
static void tp_wait_input(struct tp_conn *c)
{
	int w = tp_wait(c->fd, POLLIN);

	if (w <= 0)
		c->res.recv_end = w == 0 ? TP_ERR_TIMEOUT : -w;
}

/* The data exchange, in a fixed order: the request, the wait for input,
 * the exact read, the send, the optional half-close, and the read to the
 * end. */
static void tp_exchange(struct tp_conn *c)
{
	bool reading = !tp_opts.no_read;

	if (tp_opts.request_bytes > 0)
		tp_send(c, tp_opts.request_bytes);
	if (tp_opts.wait_input)
		tp_wait_input(c);
	if (reading && tp_opts.read_delay_ms > 0 &&
	    (tp_opts.read_bytes > 0 || tp_opts.read_until_eof))
		tp_sleep_ms(tp_opts.read_delay_ms);
	if (reading && tp_opts.read_bytes > 0)
		tp_read(c, tp_opts.read_bytes);
	if (tp_opts.write_until_error)
		tp_send(c, -1);
	else if (tp_opts.send_bytes > 0)
		tp_send(c, tp_opts.send_bytes);
	if (tp_opts.half_close) {
		c->res.shutdown = "wr";
		if (shutdown(c->fd, SHUT_WR) < 0)
			c->res.shutdown_errno = errno;
	}
	if (reading && tp_opts.read_until_eof && c->res.recv_end == TP_ERR_NONE)
		tp_read(c, -1);
}

/* Replaces the socket's descriptor with /dev/null, closing the socket as
 * a side effect, the way daemons retire descriptors. */
static int tp_close_by_dup(int fd, bool use_dup3)
{
	int nfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	int rc, err;

	if (nfd < 0)
		return -1;
	rc = use_dup3 ? dup3(nfd, fd, O_CLOEXEC) : dup2(nfd, fd);
	err = errno;
	close(nfd);
	/* The /dev/null copy is closed too, to keep the descriptor table
	 * small over --count loops; the socket is already gone. */
	if (rc == fd)
		close(fd);
	errno = err;
	return rc == fd ? 0 : -1;
}

/* Closes the connection with one of the close-like calls.  Returns the
 * call's status (0 or -1 with errno).  Methods that end the process are
 * not handled here. */
static int tp_close_with(struct tp_conn *c, enum tp_close method)
{
	switch (method) {
	case TP_CLOSE_FCLOSE:
		if (c->fp)
			return fclose(c->fp);
		return close(c->fd);
	case TP_CLOSE_DUP2:
		return tp_close_by_dup(c->fd, false);
	case TP_CLOSE_DUP3:
		return tp_close_by_dup(c->fd, true);
	case TP_CLOSE_RANGE:
		return close_range((unsigned)c->fd, (unsigned)c->fd, 0);
	case TP_CLOSE_FROM:
		closefrom(c->fd);
		return 0;
	case TP_CLOSE_SYSCALL:
		return (int)syscall(SYS_close, c->fd);
	default:
		return close(c->fd);
	}
}

static const char *tp_how_name(int how)
{
	return how == SHUT_RD ? "rd" : how == SHUT_WR ? "wr" : "rdwr";
}

/* Closes the connection with the chosen method and prints its result.
 * For the methods that end the process, the result line goes out first,
 * since nothing runs afterwards. */
static void tp_end(struct tp_conn *c, enum tp_close method)
{
	double t0;

	c->res.close_method = tp_close_names[method];
	c->res.elapsed_ms = tp_now_ms() - c->started_ms;
	switch (method) {
	case TP_CLOSE_EXIT:
		tp_result_print(&c->res);
		exit(0);
	case TP_CLOSE_UEXIT:
		tp_result_print(&c->res);
		_exit(0);
	case TP_CLOSE_KILL:
		tp_result_print(&c->res);
		raise(SIGKILL);
		_exit(1);
	case TP_CLOSE_NONE:
		tp_result_print(&c->res);
		return;
	default:
		break;
	}
	t0 = tp_now_ms();
	c->res.closed = true;
	c->res.close_rc = tp_close_with(c, method);
	if (c->res.close_rc < 0)
		c->res.close_errno = errno;
	c->res.close_ms = tp_now_ms() - t0;
	c->res.elapsed_ms = tp_now_ms() - c->started_ms;
	tp_result_print(&c->res);
}

/* Ends a connection the way the options say: shutdown, then the pause
 * (so a test can look at the half-closed state), then the close. */
static void tp_finish(struct tp_conn *c, enum tp_close method)
{
	if (tp_opts.shutdown_how >= 0) {
		c->res.shutdown = tp_how_name(tp_opts.shutdown_how);
		if (shutdown(c->fd, tp_opts.shutdown_how) < 0)
			c->res.shutdown_errno = errno;
	}
	if (tp_opts.sleep_before_close_ms > 0)
		tp_sleep_ms(tp_opts.sleep_before_close_ms);
	tp_end(c, method);
}

/* Applies the buffer sizes and SO_REUSEADDR, which must come before
 * bind, connect or listen to have their effect. */
static void tp_presocket_options(int fd)
{
	int one = 1;

	if (tp_opts.reuseaddr &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		fprintf(stderr, "tdpeer: SO_REUSEADDR: %s\n", strerror(errno));
	if (tp_opts.rcvbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &tp_opts.rcvbuf, sizeof(int)) < 0)
		fprintf(stderr, "tdpeer: SO_RCVBUF: %s\n", strerror(errno));
	if (tp_opts.sndbuf > 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &tp_opts.sndbuf, sizeof(int)) < 0)
		fprintf(stderr, "tdpeer: SO_SNDBUF: %s\n", strerror(errno));
}

/* ------------------------------------------------------------------ */
/* Client                                                              */
/* ------------------------------------------------------------------ */

/* A blocking connect, bounded by --timeout through SO_SNDTIMEO (the
 * kernel reports the expiry as EINPROGRESS).  Returns 0 or an error. */
static int tp_connect_blocking(int fd)
{
	struct timeval tv = { tp_opts.timeout_ms / 1000, (tp_opts.timeout_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&tp_opts.connect.ss, tp_opts.connect.len) == 0)
		return 0;
	if (errno == EINPROGRESS)
		return TP_ERR_TIMEOUT;
	return errno;
}

/* The non-blocking connect that event-driven programs do: start it, wait
 * for writability, then ask SO_ERROR how it went. */
static int tp_connect_nonblocking(int fd)
{
	int err = 0, w;
	socklen_t len = sizeof(err);

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (connect(fd, (struct sockaddr *)&tp_opts.connect.ss, tp_opts.connect.len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	w = tp_wait(fd, POLLOUT);
	if (w == 0)
		return TP_ERR_TIMEOUT;
	if (w < 0)
		return -w;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

/* Makes the socket and connects it; on failure the result says why and
 * the socket is already closed.  Returns the descriptor or -1. */
static int tp_client_socket(struct tp_result *r)
{
	int fd = socket(tp_opts.connect.ss.ss_family, SOCK_STREAM, 0);
	int err;

	if (fd < 0) {
		r->connect_error = errno;
		return -1;
	}
	tp_presocket_options(fd);
	if (tp_opts.bind.set &&
	    bind(fd, (struct sockaddr *)&tp_opts.bind.ss, tp_opts.bind.len) < 0) {
		r->bind_error = errno;
		close(fd);
		return -1;
	}
	err = tp_opts.nonblock ? tp_connect_nonblocking(fd) : tp_connect_blocking(fd);
	if (err) {
		r->connect_error = err;
		tp_note_addrs(fd, r);
		r->closed = true;
		r->close_rc = close(fd);
		return -1;
	}
	return fd;
}

static void tp_client_one(long index)
{
	struct tp_conn c;

	tp_result_init(&c.res, index);
	c.started_ms = tp_now_ms();
	c.fd = tp_client_socket(&c.res);
	if (c.fd < 0) {
		c.res.elapsed_ms = tp_now_ms() - c.started_ms;
		tp_result_print(&c.res);
		return;
	}
	tp_conn_setup(&c);
	tp_exchange(&c);
	tp_finish(&c, tp_opts.close_method);
}

/* One client thread: --count connections, one after the other. */
static void *tp_client_thread(void *arg)
{
	long t = (long)(intptr_t)arg;

	for (long i = 0; i < tp_opts.count; i++)
		tp_client_one(t * tp_opts.count + i);
	return NULL;
}

static int tp_client_run(void)
{
	pthread_t tids[256];
	int threads = tp_opts.threads;

	if (threads <= 1) {
		tp_client_thread((void *)(intptr_t)0);
	} else {
		for (int t = 0; t < threads; t++)
			pthread_create(&tids[t], NULL, tp_client_thread, (void *)(intptr_t)t);
		for (int t = 0; t < threads; t++)
			pthread_join(tids[t], NULL);
	}
	return tp_sum.failures ? 1 : 0;
}

/* ------------------------------------------------------------------ */
/* Server                                                              */
/* ------------------------------------------------------------------ */

/* Creates the listening socket.  Returns it, or -1 with the error in
 * r->bind_error (bind and listen failures are both reported there). */
static int tp_listen(struct tp_result *r)
{
	int fd = socket(tp_opts.listen.ss.ss_family, SOCK_STREAM, 0);

	if (fd < 0) {
		r->bind_error = errno;
		return -1;
	}
	tp_presocket_options(fd);
	tp_set_linger(fd, &tp_opts.linger_listener);
	if (bind(fd, (struct sockaddr *)&tp_opts.listen.ss, tp_opts.listen.len) < 0 ||
	    listen(fd, tp_opts.backlog) < 0) {
		r->bind_error = errno;
		close(fd);
		return -1;
	}
	tp_note_addrs(fd, r);
	return fd;
}

static void tp_print_listening(const struct tp_result *r)
{
	struct tp_json j;

	tp_json_begin(&j, "listening");
	tp_json_int(&j, "port", r->local_port);
	tp_json_str(&j, "addr", r->local);
	tp_json_int(&j, "pid", getpid());
	tp_json_end(&j);
}

/* Waits for the next connection.  Returns its descriptor, or -1 with the
 * error (an errno value or TP_ERR_TIMEOUT) in *err.  The peer's address
 * is taken from accept() itself: for a connection reset while it waited
 * in the queue, getpeername() fails with ENOTCONN, but accept() still
 * says who it was. */
static int tp_accept(int lfd, struct tp_result *r, int *err)
{
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int w = tp_wait(lfd, POLLIN);
		int fd;

		if (w <= 0) {
			*err = w == 0 ? TP_ERR_TIMEOUT : -w;
			return -1;
		}
		memset(&peer, 0, sizeof(peer));
		fd = accept(lfd, (struct sockaddr *)&peer, &len);
		if (fd >= 0) {
			r->remote_port = tp_format_addr(&peer, r->remote, sizeof(r->remote));
			return fd;
		}
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
			*err = errno;
			return -1;
		}
	}
}

/* Serves one connection in this process, start to finish. */
static void tp_serve(struct tp_conn *c, enum tp_close method)
{
	tp_exchange(c);
	tp_finish(c, method);
}

/* The fork-per-connection model of inetd-style servers: the child owns
 * the connection, and the parent drops its copy of the descriptor at
 * once.  This is the case where a close in one process must not tear
 * down a socket another process still uses. */
static void tp_serve_forked(int lfd, struct tp_conn *c)
{
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "tdpeer: fork: %s\n", strerror(errno));
		tp_serve(c, tp_opts.close_method);
		return;
	}
	if (pid == 0) {
		close(lfd);
		c->res.forked = "child";
		if (tp_opts.child_close == TP_CLOSE_FCLOSE && !c->fp)
			tp_open_stream(c);
		tp_sleep_ms(tp_opts.child_delay_ms);
		tp_serve(c, tp_opts.child_close);
		exit(0);
	}
	/* No shutdown here: it would act on the socket the child serves. */
	c->res.forked = "parent";
	tp_end(c, tp_opts.close_method);
}

/* Collects exited children; with block set, waits for all of them. */
static void tp_reap(bool block)
{
	while (waitpid(-1, NULL, block ? 0 : WNOHANG) > 0)
		;
}

/* Accepts --count connections (0: until an accept times out). */
static int tp_accept_loop(int lfd)
{
	for (long i = 0; tp_opts.count == 0 || i < tp_opts.count; i++) {
		struct tp_conn c;
		int err = 0;

		tp_result_init(&c.res, i);
		tp_note_addrs(lfd, &c.res); /* the listening address, if accept fails */
		c.fd = tp_accept(lfd, &c.res, &err);
		c.started_ms = tp_now_ms();
		if (c.fd < 0) {
			c.res.accept_error = err;
			tp_result_print(&c.res);
			return tp_opts.count == 0 && err == TP_ERR_TIMEOUT ? 0 : 1;
		}
		tp_conn_setup(&c);
		if (tp_opts.fork_mode)
			tp_serve_forked(lfd, &c);
		else
			tp_serve(&c, tp_opts.close_method);
		tp_reap(false);
	}
	return 0;
}

static int tp_server_run(void)
{
	struct tp_result r;
	int lfd, rc;

	tp_result_init(&r, 0);
	lfd = tp_listen(&r);
	if (tp_opts.bind_only || lfd < 0) {
		if (lfd >= 0)
			close(lfd);
		tp_result_print(&r);
		return lfd < 0 ? 1 : 0;
	}
	tp_print_listening(&r);
	rc = tp_accept_loop(lfd);
	close(lfd);
	tp_reap(true);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static const char tp_help[] =
	"usage: tdpeer server --listen ADDR:PORT [options]\n"
	"       tdpeer client --connect ADDR:PORT [options]\n"
	"\n"
	"setup:     --listen A:P --backlog N --connect A:P --bind A:P --count K\n"
	"           --reuseaddr --bind-only --nonblock --timeout MS (default 10000)\n"
	"           --linger ON,SECS --linger-listener ON,SECS --rcvbuf N --sndbuf N\n"
	"data:      --request N --read N --send N --no-read --read-delay MS\n"
	"           --read-until-eof --write-until-error --write-chunk N\n"
	"           --write-delay MS --half-close --wait-input\n"
	"teardown:  --shutdown rd|wr|rdwr --sleep-before-close MS --hold MS\n"
	"           --close close|fclose|dup2|dup3|close_range|closefrom|syscall|\n"
	"                   exit|_exit|none|kill\n"
	"processes: --fork --child-delay MS --child-close METHOD --threads T --quiet\n"
	"\n"
	"Output: JSON lines on stdout (\"listening\", one \"result\" per\n"
	"connection, \"summary\").  Exit status: 0, 1 if a bind, connect or\n"
	"accept failed, 2 on a usage error.\n";

enum tp_optid {
	TP_O_LISTEN = 256, TP_O_BACKLOG, TP_O_CONNECT, TP_O_COUNT, TP_O_REUSEADDR,
	TP_O_BIND_ONLY, TP_O_BIND, TP_O_NONBLOCK, TP_O_TIMEOUT, TP_O_LINGER,
	TP_O_LINGER_LISTENER, TP_O_RCVBUF, TP_O_SNDBUF, TP_O_SEND, TP_O_READ,
	TP_O_NO_READ, TP_O_READ_DELAY, TP_O_READ_UNTIL_EOF, TP_O_WRITE_UNTIL_ERROR,
	TP_O_WRITE_CHUNK, TP_O_WRITE_DELAY, TP_O_REQUEST, TP_O_HALF_CLOSE,
	TP_O_WAIT_INPUT, TP_O_SHUTDOWN, TP_O_SLEEP_BEFORE_CLOSE, TP_O_CLOSE,
	TP_O_HOLD, TP_O_FORK, TP_O_CHILD_DELAY, TP_O_CHILD_CLOSE, TP_O_THREADS,
	TP_O_QUIET, TP_O_HELP,
};

static const struct option tp_longopts[] = {
	{ "listen", required_argument, NULL, TP_O_LISTEN },
	{ "backlog", required_argument, NULL, TP_O_BACKLOG },
	{ "connect", required_argument, NULL, TP_O_CONNECT },
	{ "count", required_argument, NULL, TP_O_COUNT },
	{ "reuseaddr", no_argument, NULL, TP_O_REUSEADDR },
	{ "bind-only", no_argument, NULL, TP_O_BIND_ONLY },
	{ "bind", required_argument, NULL, TP_O_BIND },
	{ "nonblock", no_argument, NULL, TP_O_NONBLOCK },
	{ "timeout", required_argument, NULL, TP_O_TIMEOUT },
	{ "linger", required_argument, NULL, TP_O_LINGER },
	{ "linger-listener", required_argument, NULL, TP_O_LINGER_LISTENER },
	{ "rcvbuf", required_argument, NULL, TP_O_RCVBUF },
	{ "sndbuf", required_argument, NULL, TP_O_SNDBUF },
	{ "send", required_argument, NULL, TP_O_SEND },
	{ "read", required_argument, NULL, TP_O_READ },
	{ "no-read", no_argument, NULL, TP_O_NO_READ },
	{ "read-delay", required_argument, NULL, TP_O_READ_DELAY },
	{ "read-until-eof", no_argument, NULL, TP_O_READ_UNTIL_EOF },
	{ "write-until-error", no_argument, NULL, TP_O_WRITE_UNTIL_ERROR },
	{ "write-chunk", required_argument, NULL, TP_O_WRITE_CHUNK },
	{ "write-delay", required_argument, NULL, TP_O_WRITE_DELAY },
	{ "request", required_argument, NULL, TP_O_REQUEST },
	{ "half-close", no_argument, NULL, TP_O_HALF_CLOSE },
	{ "wait-input", no_argument, NULL, TP_O_WAIT_INPUT },
	{ "shutdown", required_argument, NULL, TP_O_SHUTDOWN },
	{ "sleep-before-close", required_argument, NULL, TP_O_SLEEP_BEFORE_CLOSE },
	{ "close", required_argument, NULL, TP_O_CLOSE },
	{ "hold", required_argument, NULL, TP_O_HOLD },
	{ "fork", no_argument, NULL, TP_O_FORK },
	{ "child-delay", required_argument, NULL, TP_O_CHILD_DELAY },
	{ "child-close", required_argument, NULL, TP_O_CHILD_CLOSE },
	{ "threads", required_argument, NULL, TP_O_THREADS },
	{ "quiet", no_argument, NULL, TP_O_QUIET },
	{ "help", no_argument, NULL, TP_O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* A non-negative number no larger than max, or a usage error. */
static long long tp_num(const char *opt, const char *text, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end || v < 0 || v > max)
		tp_usage_error("--%s: bad number '%s'", opt, text);
	return v;
}

static void tp_parse_linger(const char *opt, const char *text, struct tp_linger *l)
{
	int on, secs, used = 0;

	if (sscanf(text, "%d,%d%n", &on, &secs, &used) != 2 || text[used] ||
	    on < 0 || secs < 0)
		tp_usage_error("--%s: want ON,SECS, got '%s'", opt, text);
	l->set = true;
	l->on = on;
	l->secs = secs;
}

static enum tp_close tp_parse_close(const char *text)
{
	for (int m = 0; m < TP_CLOSE__COUNT; m++)
		if (strcmp(text, tp_close_names[m]) == 0)
			return (enum tp_close)m;
	tp_usage_error("unknown close method '%s'", text);
}

static int tp_parse_how(const char *text)
{
	if (strcmp(text, "rd") == 0)
		return SHUT_RD;
	if (strcmp(text, "wr") == 0)
		return SHUT_WR;
	if (strcmp(text, "rdwr") == 0)
		return SHUT_RDWR;
	tp_usage_error("--shutdown: want rd, wr or rdwr, got '%s'", text);
}

static void tp_parse_addr_opt(const char *opt, const char *text, struct tp_addr *a)
{
	if (!tp_parse_addr(text, a))
		tp_usage_error("--%s: want ADDR:PORT or [ADDR6]:PORT, got '%s'", opt, text);
}

/* Options about addresses, counts and socket setup. */
static bool tp_apply_setup_opt(int id, const char *name, const char *arg)
{
	switch (id) {
	case TP_O_LISTEN: tp_parse_addr_opt(name, arg, &tp_opts.listen); break;
	case TP_O_CONNECT: tp_parse_addr_opt(name, arg, &tp_opts.connect); break;
	case TP_O_BIND: tp_parse_addr_opt(name, arg, &tp_opts.bind); break;
	case TP_O_BACKLOG: tp_opts.backlog = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_COUNT: tp_opts.count = (long)tp_num(name, arg, LONG_MAX); break;
	case TP_O_REUSEADDR: tp_opts.reuseaddr = true; break;
	case TP_O_BIND_ONLY: tp_opts.bind_only = true; break;
	case TP_O_NONBLOCK: tp_opts.nonblock = true; break;
	case TP_O_TIMEOUT: tp_opts.timeout_ms = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_LINGER: tp_parse_linger(name, arg, &tp_opts.linger); break;
	case TP_O_LINGER_LISTENER: tp_parse_linger(name, arg, &tp_opts.linger_listener); break;
	case TP_O_RCVBUF: tp_opts.rcvbuf = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_SNDBUF: tp_opts.sndbuf = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_FORK: tp_opts.fork_mode = true; break;
	case TP_O_CHILD_DELAY: tp_opts.child_delay_ms = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_THREADS: tp_opts.threads = (int)tp_num(name, arg, 256); break;
	case TP_O_QUIET: tp_opts.quiet = true; break;
	default: return false;
	}
	return true;
}

/* Options about the data exchange and the teardown. */
static bool tp_apply_io_opt(int id, const char *name, const char *arg)
{
	switch (id) {
	case TP_O_SEND: tp_opts.send_bytes = tp_num(name, arg, LLONG_MAX); break;
	case TP_O_READ: tp_opts.read_bytes = tp_num(name, arg, LLONG_MAX); break;
	case TP_O_REQUEST: tp_opts.request_bytes = tp_num(name, arg, LLONG_MAX); break;
	case TP_O_NO_READ: tp_opts.no_read = true; break;
	case TP_O_READ_DELAY: tp_opts.read_delay_ms = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_READ_UNTIL_EOF: tp_opts.read_until_eof = true; break;
	case TP_O_WRITE_UNTIL_ERROR: tp_opts.write_until_error = true; break;
	case TP_O_WRITE_CHUNK: tp_opts.write_chunk = (size_t)tp_num(name, arg, TP_BUF_SIZE); break;
	case TP_O_WRITE_DELAY: tp_opts.write_delay_ms = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_HALF_CLOSE: tp_opts.half_close = true; break;
	case TP_O_WAIT_INPUT: tp_opts.wait_input = true; break;
	case TP_O_SHUTDOWN: tp_opts.shutdown_how = tp_parse_how(arg); break;
	case TP_O_SLEEP_BEFORE_CLOSE: tp_opts.sleep_before_close_ms = (int)tp_num(name, arg, INT_MAX); break;
	case TP_O_CLOSE: tp_opts.close_method = tp_parse_close(arg); break;
	case TP_O_CHILD_CLOSE: tp_opts.child_close = tp_parse_close(arg); break;
	case TP_O_HOLD: tp_opts.hold_ms = (int)tp_num(name, arg, INT_MAX); break;
	default: return false;
	}
	return true;
}

static void tp_defaults(void)
{
	memset(&tp_opts, 0, sizeof(tp_opts));
	tp_opts.backlog = 128;
	tp_opts.count = 1;
	tp_opts.timeout_ms = 10000;
	tp_opts.write_chunk = TP_BUF_SIZE;
	tp_opts.shutdown_how = -1;
	tp_opts.close_method = TP_CLOSE_CLOSE;
	tp_opts.child_close = TP_CLOSE_CLOSE;
	tp_opts.threads = 1;
}

/* Rejects combinations that cannot do what they say. */
static void tp_check_opts(void)
{
	if (tp_opts.role == TP_SERVER && !tp_opts.listen.set)
		tp_usage_error("server: --listen ADDR:PORT is required");
	if (tp_opts.role == TP_CLIENT && !tp_opts.connect.set)
		tp_usage_error("client: --connect ADDR:PORT is required");
	if (tp_opts.role == TP_CLIENT && tp_opts.count == 0)
		tp_usage_error("client: --count must be at least 1");
	if (tp_opts.write_chunk == 0)
		tp_usage_error("--write-chunk must be at least 1");
	if (tp_opts.threads > 1 && tp_opts.close_method == TP_CLOSE_FROM)
		tp_usage_error("--close closefrom would close the other threads' sockets");
	if (tp_opts.request_bytes > 0 && tp_opts.read_bytes == 0)
		tp_opts.read_until_eof = true;
}

static void tp_parse_args(int argc, char **argv)
{
	int id, idx = -1;

	tp_defaults();
	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		fputs(tp_help, argc < 2 ? stderr : stdout);
		exit(argc < 2 ? 2 : 0);
	}
	if (strcmp(argv[1], "server") == 0)
		tp_opts.role = TP_SERVER;
	else if (strcmp(argv[1], "client") == 0)
		tp_opts.role = TP_CLIENT;
	else
		tp_usage_error("first argument must be 'server' or 'client'");
	optind = 2;
	while ((id = getopt_long(argc, argv, "", tp_longopts, &idx)) != -1) {
		const char *name = idx >= 0 ? tp_longopts[idx].name : "?";

		if (id == TP_O_HELP) {
			fputs(tp_help, stdout);
			exit(0);
		}
		if (!tp_apply_setup_opt(id, name, optarg) &&
		    !tp_apply_io_opt(id, name, optarg))
			tp_usage_error("bad option");
		idx = -1;
	}
	if (optind < argc)
		tp_usage_error("unexpected argument '%s'", argv[optind]);
	tp_check_opts();
}

int main(int argc, char **argv)
{
	double started = tp_now_ms();
	int rc;

	tp_parse_args(argc, argv);
	/* Writing to a reset connection must come back as EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	rc = tp_opts.role == TP_SERVER ? tp_server_run() : tp_client_run();
	if (tp_opts.hold_ms > 0)
		tp_sleep_ms(tp_opts.hold_ms);
	tp_summary_print(started);
	return rc;
}
