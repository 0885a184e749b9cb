/*
 * teardown: audit events as one text or JSON line.
 *
 * Everything here runs inside the preloaded library, inside close() and
 * friends, which a signal handler may call.  So: no malloc, no stdio, no
 * locale, no strerror; only the td_buf_* writers of fmt.h, td_addr_format
 * and plain loops.  The caller's buffer is the only large memory used.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "teardown/event.h"
#include "teardown/fields.h"
#include "teardown/fmt.h"
#include "teardown/layout.h"

/*
 * Output budgets for the free-form strings, in bytes of escaped output
 * including the quotes.  They are what keeps every line within
 * TD_EVENT_MAX: the fixed part of the longest event (close, with every
 * number at its widest, a 15-letter errno name and two full IPv6
 * addresses) is under 650 bytes, and 170 + 170 + 48 more keeps the sum
 * near 1050; JSON adds v, host (100) and uid, about 130 more, below the
 * 1407 a line may use.  test_event.c formats that worst case and checks
 * the bound.
 */
#define TD__PROG_IN 128	  /* input bytes kept of prog */
#define TD__PROG_OUT 170  /* output bytes for prog */
#define TD__RULE_IN 128
#define TD__RULE_OUT 170
#define TD__SHORT_IN 32	  /* action, fault */
#define TD__SHORT_OUT 48
#define TD__HOST_IN 64	  /* a nodename has at most 64 bytes */
#define TD__HOST_OUT 100

/*
 * A fixed name, both ways a line writes it: plain (text, and the getters
 * below) and quoted (JSON), with its length, so that a line copies it in
 * one known-length move instead of measuring it first.  One literal
 * makes both.  An entry left out of a table is all zero: no name.
 */
#define TD__NM_S 13 /* the longest name, "simultaneous", and its NUL */
struct td__nm {
	char s[TD__NM_S], q[TD__NM_S + 2];
	uint8_t n;
};
/*
 * The strings are in the entry, not pointed at: a table of pointers needs
 * relocating at load, which puts it on a page of the process's own (the
 * library's data.rel.ro), and a forked child that writes a line reads
 * that page, at a cost above a system call's on a virtual machine; a
 * table without pointers stays in the file's read-only data, which the
 * kernel maps in around the code's fault.
 */
#define TD__NM(x)                                                              \
	{x, "\"" x "\"",                                                         \
	 (uint8_t)(sizeof(x) - 1 + 0 * sizeof(char[sizeof(x) <= TD__NM_S ? 1 : -1]))}

static const struct td__nm td__event_names[TD_EV__COUNT] = {
	[TD_EV_CONNECT] = TD__NM("connect"), [TD_EV_ACCEPT] = TD__NM("accept"),
	[TD_EV_BIND] = TD__NM("bind"),	     [TD_EV_LINGER] = TD__NM("linger"),
	[TD_EV_SHUTDOWN] = TD__NM("shutdown"), [TD_EV_CLOSE] = TD__NM("close"),
	[TD_EV_FAULT] = TD__NM("fault"),     [TD_EV_LEAK] = TD__NM("leak"),
	[TD_EV_EXIT] = TD__NM("exit"),	     [TD_EV_DROPPED] = TD__NM("dropped"),
	[TD_EV_POLICY] = TD__NM("policy"),   [TD_EV_EXEC] = TD__NM("exec"),
};

static const struct td__nm td__why_names[TD_WHY__COUNT] = {
	[TD_WHY_CLOSE] = TD__NM("close"),
	[TD_WHY_POLICY] = TD__NM("policy"),
	[TD_WHY_LINGER0] = TD__NM("linger0"),
	[TD_WHY_UNREAD] = TD__NM("unread-data"),
	[TD_WHY_FAULT] = TD__NM("fault"),
	[TD_WHY_SHARED] = TD__NM("shared"),
	[TD_WHY_RESET] = TD__NM("reset"),
	[TD_WHY_FIN_SENT] = TD__NM("fin-sent"),
	[TD_WHY_UNCONNECTED] = TD__NM("unconnected"),
	[TD_WHY_UNACCEPTED] = TD__NM("unaccepted"),
	[TD_WHY_DIED] = TD__NM("died"),
	[TD_WHY_TIMEOUT] = TD__NM("timeout"),
};

static const struct td__nm td__wire_names[] = {
	[TD_WIRE_FIN] = TD__NM("FIN"), [TD_WIRE_RST] = TD__NM("RST"),
	[TD_WIRE_NONE] = TD__NM("none"),
};

static const struct td__nm td__closer_names[] = {
	[TD_CLOSER_ACTIVE] = TD__NM("active"), [TD_CLOSER_PASSIVE] = TD__NM("passive"),
	[TD_CLOSER_SIMULTANEOUS] = TD__NM("simultaneous"),
};

static const struct td__nm td__role_names[] = {
	[TD_SOCK_UNKNOWN] = TD__NM("unknown"), [TD_SOCK_CLIENT] = TD__NM("client"),
	[TD_SOCK_SERVER] = TD__NM("server"), [TD_SOCK_LISTENER] = TD__NM("listener"),
};

/* shutdown's how, offset by one: TD_HOW_NONE is -1 */
static const struct td__nm td__how_names[] = {
	[TD_HOW_NONE + 1] = TD__NM("none"), [SHUT_RD + 1] = TD__NM("SHUT_RD"),
	[SHUT_WR + 1] = TD__NM("SHUT_WR"), [SHUT_RDWR + 1] = TD__NM("SHUT_RDWR"),
	[TD_HOW_RST + 1] = TD__NM("RST"),
};

#define TD__N(t) ((int)(sizeof(t) / sizeof((t)[0])))
/* t[i], or NULL when i is outside t or names nothing */
#define TD__NM_AT(t, i) ((i) >= 0 && (i) < TD__N(t) && (t)[i].n != 0 ? &(t)[i] : NULL)

/* Linux's TCP_ESTABLISHED.. numbering (include/net/tcp_states.h). */
static const struct td__nm td__tcp_states[] = {
	{"", "", 0},
	TD__NM("ESTABLISHED"), TD__NM("SYN_SENT"),  TD__NM("SYN_RECV"),   TD__NM("FIN_WAIT1"),
	TD__NM("FIN_WAIT2"),   TD__NM("TIME_WAIT"), TD__NM("CLOSE"),      TD__NM("CLOSE_WAIT"),
	TD__NM("LAST_ACK"),    TD__NM("LISTEN"),    TD__NM("CLOSING"),    TD__NM("NEW_SYN_RECV"),
};

/*
 * A table, not a switch: on Linux some names share a value (EAGAIN and
 * EWOULDBLOCK, EOPNOTSUPP and ENOTSUP) and a switch would not compile.
 * The first entry with a value wins.
 */
static const struct {
	int err;
	const char *name;
} td__errnos[] = {
	{EBADF, "EBADF"},
	{EINTR, "EINTR"},
	{EIO, "EIO"},
	{ENOTSOCK, "ENOTSOCK"},
	{EINVAL, "EINVAL"},
	{ECONNREFUSED, "ECONNREFUSED"},
	{ETIMEDOUT, "ETIMEDOUT"},
	{ECONNRESET, "ECONNRESET"},
	{EPIPE, "EPIPE"},
	{ENOTCONN, "ENOTCONN"},
	{EINPROGRESS, "EINPROGRESS"},
	{EALREADY, "EALREADY"},
	{EISCONN, "EISCONN"},
	{EADDRINUSE, "EADDRINUSE"},
	{EADDRNOTAVAIL, "EADDRNOTAVAIL"},
	{ENETUNREACH, "ENETUNREACH"},
	{EHOSTUNREACH, "EHOSTUNREACH"},
	{ENETDOWN, "ENETDOWN"},
	{EHOSTDOWN, "EHOSTDOWN"},
	{ENETRESET, "ENETRESET"},
	{ECONNABORTED, "ECONNABORTED"},
	{EAGAIN, "EAGAIN"},
	{EACCES, "EACCES"},
	{EPERM, "EPERM"},
	{EAFNOSUPPORT, "EAFNOSUPPORT"},
	{EPROTONOSUPPORT, "EPROTONOSUPPORT"},
	{ESOCKTNOSUPPORT, "ESOCKTNOSUPPORT"},
	{EPROTOTYPE, "EPROTOTYPE"},
	{ENOPROTOOPT, "ENOPROTOOPT"},
	{EPROTO, "EPROTO"},
	{EDESTADDRREQ, "EDESTADDRREQ"},
	{EMSGSIZE, "EMSGSIZE"},
	{ESHUTDOWN, "ESHUTDOWN"},
	{EMFILE, "EMFILE"},
	{ENFILE, "ENFILE"},
	{ENOBUFS, "ENOBUFS"},
	{ENOMEM, "ENOMEM"},
	{EFAULT, "EFAULT"},
	{ENOSYS, "ENOSYS"},
	{ENOENT, "ENOENT"},
	{ENOSPC, "ENOSPC"},
	{EDQUOT, "EDQUOT"},
	{EOPNOTSUPP, "EOPNOTSUPP"},
	{EBUSY, "EBUSY"},
	{ENXIO, "ENXIO"},
	{ENODEV, "ENODEV"},
	{ELOOP, "ELOOP"},
	{ENAMETOOLONG, "ENAMETOOLONG"},
	{ENOTDIR, "ENOTDIR"},
	{EROFS, "EROFS"},
	{EISDIR, "EISDIR"},
	{EFBIG, "EFBIG"},
	{ECHILD, "ECHILD"},
	{ESRCH, "ESRCH"},
};

/* The fixed names of an event's keys, by value: each table's entry. */
static const struct td__nm *td__event_nm(int v) { return TD__NM_AT(td__event_names, v); }
static const struct td__nm *td__wire_nm(int v) { return TD__NM_AT(td__wire_names, v); }
static const struct td__nm *td__why_nm(int v) { return TD__NM_AT(td__why_names, v); }
static const struct td__nm *td__closer_nm(int v) { return TD__NM_AT(td__closer_names, v); }
static const struct td__nm *td__role_nm(int v) { return TD__NM_AT(td__role_names, v); }
static const struct td__nm *td__state_nm(int v) { return TD__NM_AT(td__tcp_states, v); }
static const struct td__nm *td__how_nm(int v)
{
	return v >= TD_HOW_NONE ? TD__NM_AT(td__how_names, v + 1) : NULL;
}

static const char *td__plain_name(const struct td__nm *nm)
{
	return nm != NULL ? nm->s : NULL;
}

const char *td_event_name(int type) { return td__plain_name(td__event_nm(type)); }
const char *td_wire_name(int wire) { return td__plain_name(td__wire_nm(wire)); }
const char *td_why_name(int why) { return td__plain_name(td__why_nm(why)); }
const char *td_closer_name(int closer) { return td__plain_name(td__closer_nm(closer)); }
const char *td_sock_role_name(int role) { return td__plain_name(td__role_nm(role)); }
const char *td_tcp_state_name(int state) { return td__plain_name(td__state_nm(state)); }

const char *td_errno_name(int err)
{
	for (size_t i = 0; i < sizeof(td__errnos) / sizeof(td__errnos[0]); i++)
		if (td__errnos[i].err == err)
			return td__errnos[i].name;
	return NULL;
}

const char *td_how_name(int how) { return td__plain_name(td__how_nm(how)); }

/* One line being written: the buffer and which of the two formats. */
struct td__line {
	struct td_buf b;
	int json;
};

typedef void td__str_fn(struct td_buf *b, const char *s, size_t max);

/*
 * A key with its separators, both spellings built by the compiler:
 * `,"key":` for JSON (the first key, ts, is written by the caller) and
 * ` key=` for text.  Written with one copy of a known length.
 */
struct td__k {
	const char *j, *t;
	uint8_t jn, tn;
};

#define TD__K(name)                                                          \
	((struct td__k){",\"" name "\":", " " name "=",                        \
			sizeof(",\"" name "\":") - 1, sizeof(" " name "=") - 1})

/*
 * Inline at every call, so that each key is a copy of a length the
 * compiler knows (a few moves, not a loop); the value writers below stay
 * out of line, one copy each.  A close line has some thirty keys: this
 * took td_event_format() from 3,450 to 2,750 instructions a JSON line,
 * 3,020 to 2,550 a text one (callgrind, tests/progs/bench_calls
 * connected, a "pass" rule logging).
 */
__attribute__((always_inline)) static inline void td__key(struct td__line *l, struct td__k k)
{
	if (l->json)
		td_buf_putn(&l->b, k.j, k.jn);
	else
		td_buf_putn(&l->b, k.t, k.tn);
}

static void td__null(struct td__line *l)
{
	td_buf_puts(&l->b, l->json ? "null" : "-");
}

/*
 * Where to cut s so that no character is split: n itself, unless s[n]
 * continues a UTF-8 character, in which case that character's first byte.
 * (s[n] is readable: the caller only cuts inside the string.)
 */
static size_t td__utf8_cut(const char *s, size_t n)
{
	size_t k = n;

	while (k > 0 && k + 3 > n && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	return k < n && ((unsigned char)s[k] & 0xc0) == 0xc0 ? k : n;
}

/*
 * Write an escaped string in at most out_max bytes (quotes included).
 * Escaping can grow a byte sixfold, so cutting the input at in_max bytes
 * alone cannot bound the line: when the escaped text does not fit, the
 * longest input prefix whose escaped form fits is found by bisection and
 * written straight into the caller's buffer (no copy on the stack).  Cuts
 * fall on UTF-8 boundaries, so a kept character is never turned into
 * escapes of its first bytes.
 */
static void td__bounded(struct td_buf *b, td__str_fn *fn, const char *s,
			size_t in_max, size_t out_max)
{
	size_t room = b->cap > b->len ? b->cap - b->len : 0;
	size_t lo = 0, hi, n = 0;
	struct td_buf t;

	/* t.cap counts the NUL slot td_buf keeps free, hence the + 1 */
	if (room > out_max + 1)
		room = out_max + 1;
	while (n < in_max && s[n] != '\0')
		n++;
	if (s[n] != '\0')
		n = td__utf8_cut(s, n);
	td_buf_init(&t, b->p + b->len, room);
	fn(&t, s, n);
	if (t.lost == 0 || n == 0)
		goto done;
	/* invariant: a prefix of lo bytes fits, one of hi + 1 bytes does not */
	hi = n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		td_buf_init(&t, b->p + b->len, room);
		fn(&t, s, mid);
		if (t.lost == 0)
			lo = mid;
		else
			hi = mid - 1;
	}
	lo = td__utf8_cut(s, lo);
	td_buf_init(&t, b->p + b->len, room);
	fn(&t, s, lo);
done:
	/* if not even "" fits, the overflow shows in b->lost */
	b->len += t.len;
	b->lost += t.lost;
}

/* Bytes a name may hold to be written without quoting or escaping. */
static const uint8_t td__plain[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

TD_CHILD_RUNS
__attribute__((noinline)) static void td__str_val(struct td__line *l, const char *s,
						size_t in_max, size_t out_max)
{
	size_t n = 0;

	if (s == NULL) {
		td__null(l);
		return;
	}
	/*
	 * The usual string (a program or rule name) is short plain ASCII that
	 * needs no escaping: written as it is, quoted in JSON.  In text, a
	 * bare value must also be free of spaces and '='.
	 */
	while (n < in_max && n + 2 < out_max && td__plain[(unsigned char)s[n]])
		n++;
	if (s[n] == '\0' && n > 0) {
		if (l->json)
			td_buf_putc(&l->b, '"');
		td_buf_putn(&l->b, s, n);
		if (l->json)
			td_buf_putc(&l->b, '"');
		return;
	}
	td__bounded(&l->b, l->json ? td_buf_json_str : td_buf_text_str, s, in_max, out_max);
}

__attribute__((always_inline)) static inline void td__str(struct td__line *l, struct td__k key,
							 const char *s, size_t in_max,
							 size_t out_max)
{
	td__key(l, key);
	td__str_val(l, s, in_max, out_max);
}

/* A fixed name from one of the tables above: one copy of a known length. */
TD_CHILD_RUNS
__attribute__((noinline)) static void td__name_val(struct td__line *l, const struct td__nm *nm)
{
	if (nm == NULL)
		td__null(l);
	else if (l->json)
		td_buf_putn(&l->b, nm->q, (size_t)nm->n + 2);
	else
		td_buf_putn(&l->b, nm->s, nm->n);
}

__attribute__((always_inline)) static inline void td__name(struct td__line *l, struct td__k key,
							  const struct td__nm *nm)
{
	td__key(l, key);
	td__name_val(l, nm);
}

__attribute__((always_inline)) static inline void td__i64(struct td__line *l, struct td__k key,
							 int64_t v)
{
	td__key(l, key);
	td_buf_i64(&l->b, v);
}

/* A count or duration: negative means the library could not measure it. */
TD_CHILD_RUNS
__attribute__((noinline)) static void td__count_val(struct td__line *l, int64_t v)
{
	if (v < 0)
		td__null(l);
	else if (v < 10) /* the usual count: 0 */
		td_buf_putc(&l->b, (char)('0' + v));
	else
		td_buf_u64(&l->b, (uint64_t)v);
}

__attribute__((always_inline)) static inline void td__count(struct td__line *l, struct td__k key,
							   int64_t v)
{
	td__key(l, key);
	td__count_val(l, v);
}

static void td__conn(struct td__line *l, uint64_t conn)
{
	td__key(l, TD__K(TD_FN_CONN));
	if (conn == 0)
		td__null(l);
	else
		td_buf_u64(&l->b, conn);
}

/*
 * An address is formatted straight into the line when there is room for
 * the longest one and its quotes (the usual case: a line's buffer is
 * TD_EVENT_MAX), else through a copy that td_buf bounds.
 */
TD_CHILD_RUNS
__attribute__((noinline)) static void td__addr_val(struct td__line *l, const struct td_addr *a)
{
	char s[TD_ADDR_STRLEN];
	size_t n, q = l->json ? 1 : 0;
	struct td_buf *b = &l->b;

	if (b->len + TD_ADDR_STRLEN + 2 < b->cap) {
		n = td_addr_format(b->p + b->len + q, TD_ADDR_STRLEN, a, 1);
		if (n == 0) {
			td__null(l);
			return;
		}
		if (q) {
			b->p[b->len] = '"';
			b->p[b->len + 1 + n] = '"';
		}
		b->len += n + 2 * q;
		return;
	}
	n = td_addr_format(s, sizeof(s), a, 1);
	if (n == 0) {
		td__null(l);
		return;
	}
	if (q)
		td_buf_putc(b, '"');
	td_buf_putn(b, s, n);
	if (q)
		td_buf_putc(b, '"');
}

__attribute__((always_inline)) static inline void td__addr(struct td__line *l, struct td__k key,
							  const struct td_addr *a)
{
	td__key(l, key);
	td__addr_val(l, a);
}

/* error: the errno's name, or "E<n>" for one outside the table. */
TD_CHILD_RUNS
static void td__error(struct td__line *l, int32_t err)
{
	const char *name;
	uint64_t v;

	td__key(l, TD__K(TD_FN_ERROR));
	if (err == 0) {
		td__null(l);
		return;
	}
	/* some callers keep the negative-errno convention; both mean err */
	v = err < 0 ? (uint64_t)0 - (uint64_t)(int64_t)err : (uint64_t)err;
	name = v <= 4095 ? td_errno_name((int)v) : NULL;
	if (l->json)
		td_buf_putc(&l->b, '"');
	if (name != NULL) {
		td_buf_puts(&l->b, name);
	} else {
		td_buf_putc(&l->b, 'E');
		td_buf_u64(&l->b, v);
	}
	if (l->json)
		td_buf_putc(&l->b, '"');
}

TD_CHILD_RUNS
static void td__app_linger(struct td__line *l, const struct td_event *ev)
{
	td__key(l, TD__K(TD_FN_APP_LINGER));
	if (!ev->app_linger_set) {
		td__null(l);
		return;
	}
	if (l->json)
		td_buf_putc(&l->b, '"');
	td_buf_i64(&l->b, ev->app_linger_onoff);
	td_buf_putc(&l->b, ',');
	td_buf_i64(&l->b, ev->app_linger_secs);
	if (l->json)
		td_buf_putc(&l->b, '"');
}

static void td__time_wait(struct td__line *l, int8_t tw)
{
	td__key(l, TD__K(TD_FN_TIME_WAIT));
	if (tw < 0 || tw > 1)
		td__null(l);
	else if (l->json)
		td_buf_puts(&l->b, tw ? "true" : "false");
	else
		td_buf_puts(&l->b, tw ? "yes" : "no");
}

/*
 * The pieces of a line's head that td_event_who caches, each written the
 * one way both paths share: JSON `,"host":…,"pid":N,"tid":` and
 * `,"prog":…`, text ` N/` and ` prog`.
 */
TD_CHILD_RUNS
static void td__who_jhead(struct td__line *l, const char *host, int32_t pid)
{
	td__str(l, TD__K(TD_FN_HOST), host, TD__HOST_IN, TD__HOST_OUT);
	td__i64(l, TD__K(TD_FN_PID), pid);
	td__key(l, TD__K(TD_FN_TID));
}

static void td__who_jprog(struct td__line *l, const char *prog)
{
	td__str(l, TD__K(TD_FN_PROG), prog, TD__PROG_IN, TD__PROG_OUT);
}

static void td__who_tpid(struct td__line *l, int32_t pid)
{
	td_buf_putc(&l->b, ' ');
	td_buf_i64(&l->b, pid);
	td_buf_putc(&l->b, '/');
}

static void td__who_tprog(struct td__line *l, const char *prog)
{
	td_buf_putc(&l->b, ' ');
	if (prog == NULL)
		td__null(l);
	else
		td__bounded(&l->b, td_buf_text_str, prog, TD__PROG_IN, TD__PROG_OUT);
}

/* One piece into buf[cap]: its length, or -1 when it did not fit. */
static int td__who_piece(char *buf, size_t cap, int json, const struct td_event_who *w, int which)
{
	struct td__line l;

	td_buf_init(&l.b, buf, cap);
	l.json = json;
	switch (which) {
	case 0: td__who_jhead(&l, w->host, w->pid); break;
	case 1: td__who_jprog(&l, w->prog); break;
	case 2: td__who_tpid(&l, w->pid); break;
	default: td__who_tprog(&l, w->prog); break;
	}
	return l.b.lost != 0 ? -1 : (int)l.b.len;
}

void td_event_who_render(struct td_event_who *w, const char *host, int32_t pid,
			 const char *prog)
{
	int n[4];

	w->ok = false;
	w->pid = pid;
	w->host = host;
	w->prog = prog;
	w->memo = NULL; /* the flusher's own is set after (spool.c) */
	n[0] = td__who_piece(w->jhead, sizeof(w->jhead), 1, w, 0);
	n[1] = td__who_piece(w->jprog, sizeof(w->jprog), 1, w, 1);
	n[2] = td__who_piece(w->tpid, sizeof(w->tpid), 0, w, 2);
	n[3] = td__who_piece(w->tprog, sizeof(w->tprog), 0, w, 3);
	if (n[0] < 0 || n[1] < 0 || n[2] < 0 || n[3] < 0)
		return;
	w->jhead_n = (uint16_t)n[0];
	w->jprog_n = (uint16_t)n[1];
	w->tpid_n = (uint16_t)n[2];
	w->tprog_n = (uint16_t)n[3];
	w->ok = true;
}

/* ---- the connection keys, and their memo (struct td_event_memo) ------- */

/* (the address bytes as two words: no call to memcmp for 16 bytes) */
static bool td__addr_eq(const struct td_addr *a, const struct td_addr *b)
{
	uint64_t x[2], y[2];

	__builtin_memcpy(x, a->addr, sizeof(x));
	__builtin_memcpy(y, b->addr, sizeof(y));
	return a->family == b->family && a->port == b->port && x[0] == y[0] && x[1] == y[1];
}

/* Whether s is what an entry kept (set: it was not NULL). */
static bool td__memo_str_eq(bool set, const char *kept, const char *s)
{
	if (s == NULL || !set)
		return s == NULL && !set;
	for (size_t i = 0; i < TD_EVENT_MEMO_STR; i++) {
		if (kept[i] != s[i])
			return false;
		if (s[i] == '\0')
			return true;
	}
	return false;
}

/* Keep s in an entry; false when it is too long to keep. */
static bool td__memo_str_put(uint8_t *set, char *kept, const char *s)
{
	*set = s != NULL;
	kept[0] = '\0';
	if (s == NULL)
		return true;
	for (size_t i = 0; i < TD_EVENT_MEMO_STR; i++) {
		kept[i] = s[i];
		if (s[i] == '\0')
			return true;
	}
	return false;
}

static bool td__memo_hit(const struct td_event_memo_ent *e, const struct td__line *l,
			 const struct td_event *ev)
{
	return e->conn != 0 && e->fd == ev->fd && e->role == ev->role &&
	       e->json == (l->json != 0) && td__addr_eq(&e->local, &ev->local) &&
	       td__addr_eq(&e->remote, &ev->remote) &&
	       td__memo_str_eq(e->rule_set, e->rule, ev->rule) &&
	       td__memo_str_eq(e->action_set, e->action, ev->action);
}

/*
 * fd role local remote rule action: copied from the memo where it holds
 * them for these very inputs, else written, and kept there for the
 * connection's next line.  Only for a line with room for any event
 * (cap >= TD_EVENT_MAX): nothing is cut, so the text depends on the
 * inputs alone.
 */
static void td__conn_keys(struct td__line *l, const struct td_event *ev)
{
	struct td_event_memo *m = ev->who != NULL && ev->conn != 0 && l->b.cap >= TD_EVENT_MAX
					  ? ev->who->memo
					  : NULL;
	struct td_event_memo_ent *e = m != NULL ? &m->e[ev->conn % TD_EVENT_MEMO_N] : NULL;
	size_t start = l->b.len, n;

	if (e != NULL && td__memo_hit(e, l, ev)) {
		td_buf_putn(&l->b, e->text, e->n);
		return;
	}
	td__count(l, TD__K(TD_FN_FD), ev->fd);
	td__name(l, TD__K(TD_FN_ROLE), td__role_nm(ev->role));
	td__addr(l, TD__K(TD_FN_LOCAL), &ev->local);
	td__addr(l, TD__K(TD_FN_REMOTE), &ev->remote);
	td__str(l, TD__K(TD_FN_RULE), ev->rule, TD__RULE_IN, TD__RULE_OUT);
	td__str(l, TD__K(TD_FN_ACTION), ev->action, TD__SHORT_IN, TD__SHORT_OUT);
	n = l->b.len - start;
	/* (a close, exit or exec is the connection's last line: nothing to
	 * keep) */
	if (e == NULL || l->b.lost != 0 || n > sizeof(e->text) || ev->type == TD_EV_CLOSE ||
	    ev->type == TD_EV_EXIT || ev->type == TD_EV_EXEC)
		return;
	e->conn = 0;
	if (!td__memo_str_put(&e->rule_set, e->rule, ev->rule) ||
	    !td__memo_str_put(&e->action_set, e->action, ev->action))
		return;
	e->fd = ev->fd;
	e->role = ev->role;
	e->json = l->json != 0;
	e->local = ev->local;
	e->remote = ev->remote;
	memcpy(e->text, l->b.p + start, n);
	e->n = (uint16_t)n;
	e->conn = ev->conn;
}

/* The keys every event starts with, ts to action. */
static void td__head(struct td__line *l, const struct td_event *ev)
{
	const struct td__nm *event = td__event_nm(ev->type);
	const struct td_event_who *w = ev->who;
	/* (a line cut to a small cap keeps the keys' own way of cutting) */
	bool who = w != NULL && w->ok && w->pid == ev->pid && w->host == ev->host &&
		   w->prog == ev->prog && l->b.cap >= TD_EVENT_MAX;

	if (l->json) {
		/* the schema version first, then where and who */
		td_buf_puts(&l->b, "{\"" TD_FN_V "\":");
		td_buf_u64(&l->b, TD_EVENT_SCHEMA);
		td_buf_puts(&l->b, ",\"" TD_FN_TS "\":\"");
		td_buf_time_utc(&l->b, ev->ts_us);
		td_buf_putc(&l->b, '"');
		if (who)
			td_buf_putn(&l->b, w->jhead, w->jhead_n);
		else
			td__who_jhead(l, ev->host, ev->pid);
		td_buf_i64(&l->b, ev->tid);
		td__count(l, TD__K(TD_FN_UID), ev->uid);
		if (who)
			td_buf_putn(&l->b, w->jprog, w->jprog_n);
		else
			td__who_jprog(l, ev->prog);
		td__name(l, TD__K(TD_FN_EVENT), event);
	} else {
		/* text: "ts pid/tid prog event", then key=value pairs */
		td_buf_time_utc(&l->b, ev->ts_us);
		if (who)
			td_buf_putn(&l->b, w->tpid, w->tpid_n);
		else
			td__who_tpid(l, ev->pid);
		td_buf_i64(&l->b, ev->tid);
		if (who)
			td_buf_putn(&l->b, w->tprog, w->tprog_n);
		else
			td__who_tprog(l, ev->prog);
		td_buf_putc(&l->b, ' ');
		if (event != NULL)
			td_buf_putn(&l->b, event->s, event->n);
		else
			td_buf_putc(&l->b, '-');
	}
	td__conn_keys(l, ev);
}

/* close and exit share their keys; close adds error at the end. */
TD_CHILD_RUNS
static void td__outcome(struct td__line *l, const struct td_event *ev)
{
	td__name(l, TD__K(TD_FN_STATE), td__state_nm(ev->state));
	td__name(l, TD__K(TD_FN_CLOSER), td__closer_nm(ev->closer));
	td__count(l, TD__K(TD_FN_UNREAD), ev->unread);
	td__count(l, TD__K(TD_FN_UNSENT), ev->unsent);
	td__app_linger(l, ev);
	td__name(l, TD__K(TD_FN_WIRE), td__wire_nm(ev->wire));
	td__name(l, TD__K(TD_FN_WHY), td__why_nm(ev->why));
	td__time_wait(l, ev->time_wait);
	td__count(l, TD__K(TD_FN_LOST), ev->lost);
	td__count(l, TD__K(TD_FN_LOST_IN_FLIGHT), ev->lost_in_flight);
	td__count(l, TD__K(TD_FN_AGE_MS), ev->age_ms);
	td__count(l, TD__K(TD_FN_BYTES_IN), ev->bytes_in);
	td__count(l, TD__K(TD_FN_BYTES_OUT), ev->bytes_out);
}

static void td__body(struct td__line *l, const struct td_event *ev)
{
	switch (ev->type) {
	case TD_EV_CONNECT:
		td__conn(l, ev->conn);
		td__error(l, ev->err);
		break;
	case TD_EV_ACCEPT:
		td__conn(l, ev->conn);
		break;
	case TD_EV_LINGER:
		td__app_linger(l, ev);
		break;
	case TD_EV_SHUTDOWN:
		td__name(l, TD__K(TD_FN_HOW), td__how_nm(ev->how));
		td__name(l, TD__K(TD_FN_SENT), td__how_nm(ev->how_done));
		break;
	case TD_EV_CLOSE:
		td__outcome(l, ev);
		td__error(l, ev->err);
		break;
	case TD_EV_EXIT:
	case TD_EV_EXEC:
		td__outcome(l, ev);
		break;
	case TD_EV_FAULT:
		td__str(l, TD__K(TD_FN_FAULT), ev->fault, TD__SHORT_IN, TD__SHORT_OUT);
		td__conn(l, ev->conn);
		td__key(l, TD__K(TD_FN_RUN_CONN));
		if (ev->run_conn)
			td_buf_u64(&l->b, ev->run_conn);
		else
			td__null(l);
		td__key(l, TD__K(TD_FN_SEED));
		td_buf_u64(&l->b, ev->seed);
		break;
	case TD_EV_LEAK:
		td__name(l, TD__K(TD_FN_STATE), td__state_nm(ev->state));
		td__count(l, TD__K(TD_FN_AGE_MS), ev->age_ms);
		td__count(l, TD__K(TD_FN_CLOSE_WAIT_MS), ev->close_wait_ms);
		break;
	case TD_EV_DROPPED:
		td__key(l, TD__K(TD_FN_DROPPED));
		td_buf_u64(&l->b, ev->dropped);
		td__str(l, TD__K(TD_FN_TARGET), ev->target, TD__RULE_IN, TD__RULE_OUT);
		td__error(l, ev->err);
		break;
	case TD_EV_POLICY: {
		char hash[17];
		struct td_buf hb;

		td_buf_init(&hb, hash, sizeof(hash));
		td_buf_hex(&hb, ev->hash, 16);
		td_buf_cstr(&hb);
		td__str(l, TD__K(TD_FN_SOURCE), ev->source, TD__RULE_IN, TD__RULE_OUT);
		td__str(l, TD__K(TD_FN_HASH), hash, TD__SHORT_IN, TD__SHORT_OUT);
		td__key(l, TD__K(TD_FN_RULES));
		td_buf_u64(&l->b, ev->rules);
		td__key(l, TD__K(TD_FN_APPLIED));
		td_buf_puts(&l->b, ev->applied ? (l->json ? "true" : "yes") : (l->json ? "false" : "no"));
		td__str(l, TD__K(TD_FN_PROBLEM), ev->problem, TD__RULE_IN, TD__RULE_OUT);
		break;
	}
	default: /* bind, and types this version does not know */
		break;
	}
}

/*
 * The line is built in place in buf.  If anything did not fit (only
 * possible when cap < TD_EVENT_MAX), nothing is returned rather than a
 * cut line: a log reader must never see half a record.
 */
TD_CHILD_RUNS
void td_event_init(struct td_event *ev, int type)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = (uint8_t)type;
	ev->fd = -1;
	ev->state = -1;
	ev->time_wait = -1;
	ev->how = ev->how_done = TD_HOW_NONE;
}

TD_CHILD_RUNS
size_t td_event_format(char *buf, size_t cap, const struct td_event *ev,
		       int format)
{
	struct td__line l;

	if (buf == NULL || cap == 0 || ev == NULL)
		return 0;
	td_buf_init(&l.b, buf, cap);
	l.json = format == TD_FMT_JSON;
	td__head(&l, ev);
	td__body(&l, ev);
	td_buf_puts(&l.b, l.json ? "}\n" : "\n");
	if (l.b.lost != 0) {
		buf[0] = '\0';
		return 0;
	}
	td_buf_cstr(&l.b);
	return l.b.len;
}

/* ---- severity, facilities, journald --------------------------------- */

int td_event_severity(const struct td_event *ev)
{
	switch (ev->type) {
	case TD_EV_CLOSE:
	case TD_EV_EXIT:
	case TD_EV_EXEC:
		return ev->wire == TD_WIRE_RST && ev->lost > 0 ? 4 : 6;
	case TD_EV_LEAK:
	case TD_EV_DROPPED:
		return 4;
	case TD_EV_POLICY:
		return ev->applied ? 6 : 4;
	default:
		return 6;
	}
}

static const char *const td__facilities[24] = {
	[1] = "user",	  [2] = "mail",	    [3] = "daemon",   [4] = "auth",
	[5] = "syslog",	  [6] = "lpr",	    [7] = "news",     [8] = "uucp",
	[9] = "cron",	  [10] = "authpriv", [11] = "ftp",
	[16] = "local0",  [17] = "local1",  [18] = "local2",  [19] = "local3",
	[20] = "local4",  [21] = "local5",  [22] = "local6",  [23] = "local7",
};

int td_log_facility_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < 24; i++)
		if (td__facilities[i] != NULL && __builtin_strcmp(name, td__facilities[i]) == 0)
			return i;
	return -1;
}

const char *td_log_facility_name(int code)
{
	return code >= 0 && code < 24 ? td__facilities[code] : NULL;
}

static int td__hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * One JSON string's content (after its opening quote) as a journal value:
 * \" \\ \/ and \u00XX of a printable character are decoded, everything
 * else is kept as written (so control characters stay escaped and a value
 * never holds a newline).  Returns the position after the closing quote.
 */
static const char *td__jr_string(struct td_buf *b, const char *s, const char *end)
{
	while (s < end && *s != '"') {
		if (*s != '\\' || s + 1 >= end) {
			td_buf_putc(b, *s++);
			continue;
		}
		if (s[1] == '"' || s[1] == '\\' || s[1] == '/') {
			td_buf_putc(b, s[1]);
			s += 2;
			continue;
		}
		if (s[1] == 'u' && end - s >= 6 && s[2] == '0' && s[3] == '0' &&
		    td__hexval(s[4]) >= 0 && td__hexval(s[5]) >= 0) {
			unsigned v = (unsigned)(td__hexval(s[4]) << 4 | td__hexval(s[5]));

			if (v >= 0xa0) { /* U+00A0..U+00FF as UTF-8 */
				td_buf_putc(b, (char)(0xc0 | v >> 6));
				td_buf_putc(b, (char)(0x80 | (v & 0x3f)));
				s += 6;
				continue;
			}
			if (v >= 0x20 && v < 0x7f) {
				td_buf_putc(b, (char)v);
				s += 6;
				continue;
			}
		}
		/* an escape kept as it is: both bytes, so \\" never ends it */
		td_buf_putc(b, s[0]);
		td_buf_putc(b, s[1]);
		s += 2;
	}
	return s < end ? s + 1 : end;
}

size_t td_event_journal(char *buf, size_t cap, const struct td_event *ev,
			int format, int facility)
{
	char json[TD_EVENT_MAX];
	const char *s, *end;
	struct td_buf b;
	size_t n, jn;

	if (buf == NULL || cap == 0 || ev == NULL)
		return 0;
	jn = td_event_format(json, sizeof(json), ev, TD_FMT_JSON);
	if (jn == 0)
		return 0;
	td_buf_init(&b, buf, cap);
	td_buf_puts(&b, "MESSAGE=");
	if (format == TD_FMT_JSON) {
		td_buf_putn(&b, json, jn);
	} else {
		/* the text line straight into place, newline included */
		n = b.len + 1 < cap ? td_event_format(b.p + b.len, cap - b.len, ev, format) : 0;
		if (n == 0)
			return 0;
		b.len += n;
	}
	td_buf_puts(&b, "PRIORITY=");
	td_buf_u64(&b, (uint64_t)td_event_severity(ev));
	td_buf_puts(&b, "\nSYSLOG_FACILITY=");
	td_buf_u64(&b, (uint64_t)(facility > 0 && facility < 24 ? facility : TD_FACILITY_DEFAULT));
	td_buf_puts(&b, "\nSYSLOG_IDENTIFIER=teardown\n");
	/* our own JSON: {"key":value,...} with plain [a-z_] keys */
	s = json + 1;
	end = json + jn - 2; /* before "}\n" */
	while (s < end && *s == '"') {
		const char *k = s + 1, *ke = k;

		while (ke < end && *ke != '"')
			ke++;
		if (end - ke < 2)
			break;
		s = ke + 2; /* past '"' and ':' */
		if (end - s >= 4 && __builtin_memcmp(s, "null", 4) == 0 &&
		    (s + 4 == end || s[4] == ',')) {
			s += 4; /* an unknown value: no field */
		} else {
			td_buf_puts(&b, "TEARDOWN_");
			for (const char *c = k; c < ke; c++)
				td_buf_putc(&b, *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c);
			td_buf_putc(&b, '=');
			if (*s == '"')
				s = td__jr_string(&b, s + 1, end);
			else
				while (s < end && *s != ',')
					td_buf_putc(&b, *s++);
			td_buf_putc(&b, '\n');
		}
		if (s < end && *s == ',')
			s++;
	}
	if (b.lost != 0) {
		buf[0] = '\0';
		return 0;
	}
	td_buf_cstr(&b);
	return b.len;
}
