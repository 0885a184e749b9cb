/*
 * teardown: an event packed as a record, and unpacked again (see
 * include/teardown/evrec.h).  Pure and async-signal-safe: the program's
 * thread packs inside close(); the worker, a flush at fork or exit, the
 * next process and `teardown report` unpack.
 */
#include <stdbool.h>
#include <string.h>

#include "teardown/evrec.h"

struct td__rhead {
	uint8_t magic, format;
	uint16_t mask;
	uint32_t layout;
};

/* The string fields, in the order a record carries them: host and prog
 * first (the two an own record leaves out).  One list, for the packer's
 * code and the unpacker's table. */
#define TD__STRINGS(X)                                                                     \
	X(0, host) X(1, prog) X(2, rule) X(3, action) X(4, fault) X(5, target) X(6, source) \
	X(7, problem)
#define TD__OFF(i, field) offsetof(struct td_event, field),
static const size_t td__str_off[] = {TD__STRINGS(TD__OFF)};
#undef TD__OFF
#define TD__NSTR (sizeof(td__str_off) / sizeof(td__str_off[0]))
#define TD__OWN 0x8000u
#define TD__ALL ((1u << TD__NSTR) - 1)

/*
 * A changed struct td_event changes what a record means: this fails to
 * build until TD_EVREC_VERSION is bumped with the new size, so that a
 * spool another build left is refused, never misread.
 */
#if __SIZEOF_POINTER__ == 8
_Static_assert(sizeof(struct td_event) == 288 && TD_EVREC_VERSION == 2,
	       "struct td_event changed: bump TD_EVREC_VERSION and the size here");
#endif

static void td__str_set(void *ev, size_t i, const char *s)
{
	memcpy((char *)ev + td__str_off[i], &s, sizeof(s));
}

/*
 * Copy s with its NUL to p + *n, within cap: false when it does not fit.
 * A byte loop: the strings are names of a few bytes, where strnlen() and
 * memcpy() calls cost more than the copy.
 */
static inline bool td__put_str(char *p, size_t *n, size_t cap, const char *s)
{
	size_t i = *n;

	do {
		if (i >= cap)
			return false;
		p[i] = *s;
		i++;
	} while (*s++ != '\0');
	*n = i;
	return true;
}

size_t td_evrec_pack(void *buf, size_t cap, const struct td_event *ev, int format, bool own)
{
	struct td__rhead h = {TD_EVREC_MAGIC, (uint8_t)format, own ? TD__OWN : 0, TD_EVREC_LAYOUT};
	char *p = buf, *body = p + sizeof(h);
	size_t n = sizeof(h) + sizeof(*ev);

	if (cap > TD_EVREC_MAX)
		cap = TD_EVREC_MAX;
	if (buf == NULL || cap < n)
		return 0;
	memcpy(body, ev, sizeof(*ev));
	/*
	 * The strings after the struct, in TD__STRINGS's order, then no
	 * pointer left in the copy.  (Code for each field, not a loop over
	 * td__str_off: each offset is then a constant, and every logged
	 * event is packed.  The body sits 8 bytes into a buffer that may not
	 * be aligned: the pointers are cleared byte-wise.)
	 */
#define TD__PUT(i, field)                                                                  \
	if (ev->field != NULL && !(own && (i) < 2)) {                                     \
		if (!td__put_str(p, &n, cap, ev->field))                                   \
			return 0;                                                          \
		h.mask |= (uint16_t)(1u << (i));                                           \
	}
#define TD__CLEAR(i, field) memset(body + offsetof(struct td_event, field), 0, sizeof(void *));
	TD__STRINGS(TD__PUT)
	TD__STRINGS(TD__CLEAR)
#undef TD__PUT
#undef TD__CLEAR
	memset(body + offsetof(struct td_event, who), 0, sizeof(void *));
	memcpy(p, &h, sizeof(h));
	return n;
}

/* rec's head, where its length and this build's layout fit a record. */
static bool td__head(const void *rec, size_t len, struct td__rhead *h)
{
	if (rec == NULL || len < sizeof(*h) + sizeof(struct td_event) || len > TD_EVREC_MAX)
		return false;
	memcpy(h, rec, sizeof(*h));
	return h->magic == TD_EVREC_MAGIC && h->layout == TD_EVREC_LAYOUT;
}

int td_evrec_asks(const void *rec, size_t len, struct td_addr *local, struct td_addr *remote)
{
	const char *body = (const char *)rec + sizeof(struct td__rhead);
	struct td__rhead h;
	uint8_t ask;

	if (!td__head(rec, len, &h))
		return TD_ASK_NONE;
	memcpy(&ask, body + offsetof(struct td_event, ask), 1);
	if (ask == TD_ASK_NONE)
		return TD_ASK_NONE;
	memcpy(local, body + offsetof(struct td_event, local), sizeof(*local));
	memcpy(remote, body + offsetof(struct td_event, remote), sizeof(*remote));
	return ask;
}

int td_evrec_unpack(const void *rec, size_t len, struct td_event *ev, int *format,
		    const struct td_event_who *who)
{
	const char *p = rec, *body = p + sizeof(struct td__rhead);
	size_t n = sizeof(struct td__rhead) + sizeof(*ev);
	struct td__rhead h;
	uint8_t b;

	if (!td__head(rec, len, &h) || (h.format != TD_FMT_TEXT && h.format != TD_FMT_JSON) ||
	    (h.mask & ~(TD__ALL | TD__OWN)) || ((h.mask & TD__OWN) && (h.mask & 3u)))
		return -1;
	memcpy(ev, body, sizeof(*ev));
	/* what a damaged file may hold: bools that are neither 0 nor 1,
	 * pointers; the numbers and names are checked where they are
	 * written (a name out of its table's range is null) */
	memcpy(&b, body + offsetof(struct td_event, app_linger_set), 1);
	ev->app_linger_set = b != 0;
	memcpy(&b, body + offsetof(struct td_event, applied), 1);
	ev->applied = b != 0;
	ev->who = NULL;
	for (size_t i = 0; i < TD__NSTR; i++) {
		const char *end;

		td__str_set(ev, i, NULL);
		if (!(h.mask & (1u << i)))
			continue;
		end = memchr(p + n, '\0', len - n);
		if (end == NULL)
			return -1;
		td__str_set(ev, i, p + n);
		n = (size_t)(end - p) + 1;
	}
	if (n != len)
		return -1;
	if ((h.mask & TD__OWN) && who != NULL) {
		ev->host = who->host;
		ev->prog = who->prog;
		if (ev->pid == who->pid)
			ev->who = who;
	}
	*format = h.format;
	return 0;
}

size_t td_evrec_line_settled(const void *rec, size_t len, const struct td_event_who *who,
			     char *buf, size_t cap, td_evrec_settle_fn *settle, void *ctx)
{
	struct td_event ev;
	int format;

	if (cap < TD_EVENT_MAX || td_evrec_unpack(rec, len, &ev, &format, who) != 0)
		return 0;
	if (settle != NULL && ev.ask != TD_ASK_NONE)
		settle(&ev, ctx);
	return td_event_format(buf, cap, &ev, format);
}

size_t td_evrec_line(const void *rec, size_t len, const struct td_event_who *who, char *buf,
		     size_t cap)
{
	return td_evrec_line_settled(rec, len, who, buf, cap, NULL, NULL);
}
