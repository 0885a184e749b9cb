/*
 * teardown: setsockopt() — the program's SO_LINGER is recorded (the audit
 * reports it), made by the real call (so every error is the kernel's),
 * and then overridden when the rule says how this socket must end.
 */
#include <string.h>

#include "../rt/rt.h"

static void td__linger(const struct td_policy *p, int fd, struct td_fdent *s,
		       const struct linger *lg)
{
	const struct td_rule *r;
	struct td_event ev;
	struct td_sock c;
	struct linger want;
	uint32_t flags;

	td_fdent_linger_set(s, lg->l_onoff, lg->l_linger);
	flags = atomic_fetch_or(&s->flags, TD_SF_APP_LINGER) | TD_SF_APP_LINGER;
	r = s->d.decided ? td_decide_rule(p, &s->d) : NULL;
	if (r != NULL) {
		bool set = true;

		if ((flags & TD_SF_FAULT_RST) || r->close == TD_CLOSE_ABORT)
			want = (struct linger){1, 0};
		else if (r->close == TD_CLOSE_GRACEFUL || r->close == TD_CLOSE_DRAIN)
			want = (struct linger){0, 0};
		else
			set = false;
		if (set)
			(void)td_real_setsockopt(fd, SOL_SOCKET, SO_LINGER, &want,
						 sizeof(want));
	} else {
		r = td_decide_rule(p, &s->d); /* a listener's bind rule, for the log */
	}
	if (r == NULL || !r->log || !td_fdtab_read(fd, &c, NULL))
		return;
	td_logw_event_from_sock(&ev, p, &c, fd, TD_EV_LINGER);
	td_logw_event(p, &ev);
}

TD_EXPORT int setsockopt(int fd, int level, int name, const void *v, socklen_t len)
{
	const struct td_policy *p = td_init_active();
	struct td_fdent *s;
	struct linger lg;
	int saved, rc, err, family;

	if (p == NULL || level != SOL_SOCKET || name != SO_LINGER)
		return td_real_setsockopt(fd, level, name, v, len);
	saved = errno;
	rc = td_real_setsockopt(fd, level, name, v, len);
	err = errno;
	if (rc == 0 && v != NULL && len >= (socklen_t)sizeof(lg)) {
		s = td_fdtab_live_or_born(fd);
		if (s == NULL && td_info_is_tcp(fd, &family))
			s = td_decide_adopt(fd, family);
		if (s != NULL && !(atomic_load(&s->flags) & (TD_SF_OWN | TD_SF_NOT_TCP))) {
			memcpy(&lg, v, sizeof(lg));
			td__linger(p, fd, s, &lg);
		}
	}
	td_errno_set(rc == 0 ? saved : err);
	return rc;
}
