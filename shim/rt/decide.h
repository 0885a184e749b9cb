/*
 * teardown runtime: deciding a socket's rule and applying it (decide.c).
 */
#ifndef TD_RT_DECIDE_H
#define TD_RT_DECIDE_H

#include "fdtab.h"
#include "holders.h"

/* Make newfd track the socket oldfd's entry tracks (a dup). */
void td_decide_copy(int oldfd, int newfd) TD_HIDDEN;
/* A dup made fd from oldfd (dup(), fcntl(F_DUPFD*)): fd shares oldfd's
 * socket, or drops a stale entry; safe in a vfork()ed child. */
void td_decide_dup(int oldfd, int fd) TD_HIDDEN;
/* A connected TCP socket this process got open (across exec(), at
 * start-up, or in an SCM_RIGHTS message); flags: more TD_SF_ for its entry. */
void td_decide_inherited(const struct td_policy *p, int fd, int family, bool handed,
			 uint32_t flags) TD_HIDDEN;
/* Start tracking a TCP socket the library did not see created. */
struct td_fdent *td_decide_adopt(int fd, int family) TD_HIDDEN;
/*
 * A bare entry for a socket, made now, in the current fork epoch (the
 * adopted sockets'; socket()'s for an inet socket but TCP adds flags of
 * its own).  No clock here: most sockets are never matched; connect,
 * accept and a matched bind set the time their events count from.
 */
static inline struct td_fdent *td_decide_new(int fd, int family, uint32_t flags)
{
	return td_fdtab_publish_bare(fd, (uint8_t)family,
				     atomic_load_explicit(&td_holders_epoch, memory_order_relaxed),
				     flags);
}
/*
 * A new TCP socket from socket(): its born entry, which stands for the
 * entry td_decide_new(fd, family, TD_SF_BARE) would publish now, epoch
 * included, until a use needs it (td_fdtab_live_or_born()).  Most are
 * closed unused, and their close only clears the born bit.  fd is
 * socket()'s result, -1 included (the slow path returns it); returns it
 * (td_fdtab_bear_fast(), else td_decide_born_slow()).
 */
int td_decide_born_slow(int fd, int family, uint32_t epoch) TD_HIDDEN;
static inline int td_decide_born(int fd, int family)
{
	/* acquire: an epoch near the word's top comes after the gate shut
	 * (td_holders_epoch_next()) */
	uint32_t epoch = atomic_load_explicit(&td_holders_epoch, memory_order_acquire);

	if (td_likely(td_fdtab_bear_fast(fd, (uint8_t)family, epoch)))
		return fd;
	return td_decide_born_slow(fd, family, epoch);
}

/*
 * Decisions and the options they put into the socket (decide.c).  Each
 * reads fd's entry, decides, and publishes the result as new plain data
 * (td_fdtab_update()); none writes a published entry's plain fields.
 */
void td_decide_bind(const struct td_policy *p, int fd, const struct sockaddr *sa,
		    socklen_t len) TD_HIDDEN;
void td_decide_after_bind(const struct td_policy *p, int fd) TD_HIDDEN;
/* Before the real connect; may redirect it (fault). The plan says what to
 * connect to (sa itself, or a library-owned address in alt). */
struct td_connect_plan {
	const struct sockaddr *sa;
	socklen_t len;
	struct sockaddr_storage alt;
	uint32_t delay_ms;
	int fault;		/* 0, or TD_FK_CONNECT_REFUSE/TIMEOUT */
	bool restore_uto;	/* put TCP_USER_TIMEOUT back after */
	int old_uto;
};
/* Before a real call that connects fd (connect(), a MSG_FASTOPEN send):
 * true when the library decided it and plan says where the call goes. */
bool td_decide_connecting(const struct td_policy *p, int fd, const struct sockaddr *sa,
			  socklen_t len, struct td_connect_plan *plan) TD_HIDDEN;
/* The matched rule's index, or -1 (no rule: the caller forgets fd). */
int td_decide_connect(const struct td_policy *p, int fd, const struct sockaddr *sa,
		      socklen_t len, struct td_connect_plan *plan) TD_HIDDEN;
void td_decide_after_connect(const struct td_policy *p, int fd,
		      const struct td_connect_plan *plan, int rc, int err) TD_HIDDEN;
void td_decide_accept(const struct td_policy *p, int lfd, int fd,
		      const struct sockaddr *peer, socklen_t plen) TD_HIDDEN;
/* The rule of an entry's (or a copy's) plain data, or NULL: one of the
 * policy's, or one's observing twin (see decide.c). */
const struct td_rule *td_decide_rule(const struct td_policy *p,
				   const struct td_sock_data *d) TD_HIDDEN;
/* Whether the entry is only observed (its rule is a twin). */
bool td_decide_observed(const struct td_policy *p, const struct td_sock_data *d) TD_HIDDEN;
/* Make p's observing twins (p->observe), at start-up and at a reload. */
void td_decide_make_observers(struct td_policy *p) TD_HIDDEN;

#endif
