/*
 * teardown: shutdown() — "half" turns the program's SHUT_RD/SHUT_RDWR
 * into SHUT_WR (half-close, keep reading); "skip" sends nothing, so that
 * with "abort" the hangup is a pure RST.
 */
#include <linux/tcp.h>
#include <netinet/in.h>

#include "../rt/rt.h"
#include "teardown/predict.h"

/*
 * What shutdown() would have returned, without doing it: EINVAL for a bad
 * how, the socket's own error for a bad fd, ENOTCONN when closed.
 */
static int td__validate(int fd, int how)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (how < SHUT_RD || how > SHUT_RDWR) {
		errno = EINVAL;
		return -1;
	}
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return -1;
	if (ti.tcpi_state == TD_TCP_CLOSE) {
		errno = ENOTCONN;
		return -1;
	}
	return 0;
}

TD_EXPORT int shutdown(int fd, int how)
{
	const struct td_policy *p = td_active();
	const struct td_rule *r;
	struct td_sock *s;
	struct td_event ev;
	struct td_facts f;
	int saved, rc, err, done = how;

	if (p == NULL || (s = td_fd_live(fd)) == NULL || !s->decided ||
	    (r = td_sock_rule(p, s)) == NULL)
		return td_real_shutdown(fd, how);
	saved = errno;
	if (r->shutdown == TD_SHUT_HALF && (how == SHUT_RD || how == SHUT_RDWR))
		done = SHUT_WR;
	else if (r->shutdown == TD_SHUT_SKIP)
		done = TD_HOW_NONE;
	if ((done == SHUT_WR || done == SHUT_RDWR) && td_facts_read(fd, &f, false) == 0 &&
	    (f.state == TD_TCP_CLOSE_WAIT || f.state == TD_TCP_LAST_ACK))
		atomic_fetch_or(&s->flags, TD_SF_PASSIVE);
	errno = saved;
	rc = done == TD_HOW_NONE ? td__validate(fd, how) : td_real_shutdown(fd, done);
	err = errno;
	if (rc == 0 && (done == SHUT_WR || done == SHUT_RDWR) &&
	    !(atomic_fetch_or(&s->flags, TD_SF_SHUT_WR) & (TD_SF_SHUT_WR | TD_SF_PASSIVE)) &&
	    td_diag_we_closed_first(fd, &s->local, &s->remote) == 0)
		/* the peer's FIN slipped in between the check and our FIN */
		atomic_fetch_or(&s->flags, TD_SF_PASSIVE);
	if (r->log) {
		td_event_from_sock(&ev, p, s, fd, TD_EV_SHUTDOWN);
		ev.how = (int8_t)how;
		ev.how_done = (int8_t)(rc == 0 ? done : TD_HOW_NONE);
		td_log(p, &ev);
	}
	errno = rc == 0 ? saved : err;
	return rc;
}
