/*
 * teardown: deterministic fault decisions.
 *
 * A connection's fate is a pure function of (seed, connection number,
 * fault kind): the same seed replays the same faults on the same
 * connection numbers, run after run.
 */
#ifndef TEARDOWN_FAULT_H
#define TEARDOWN_FAULT_H

#include <stdbool.h>
#include <stdint.h>

#include "teardown/policy.h"

enum td_fault_kind {
	TD_FK_RST = 1,
	TD_FK_CONNECT_REFUSE,
	TD_FK_CONNECT_TIMEOUT,
	TD_FK_RST_ON_ACCEPT,
};

/* Whether position n (1-based) is one of w's (an unset w has them all). */
bool td_when_match(const struct td_when *w, uint64_t n);
/* Parse "3", "3+", "3..5" or "3+2" into w; 0 or -EINVAL. */
int td_when_parse(struct td_when *w, const char *s);
/* w as it parses back, into buf. */
const char *td_when_format(const struct td_when *w, char *buf, size_t cap);

/* Set a probability from a value in [0, 1]. */
void td_prob_set(struct td_prob *pr, double p);

/* splitmix64-based mix of (seed, conn, kind), uniform over 2^64. */
uint64_t td_fault_hash(uint64_t seed, uint64_t conn, uint32_t kind);

/* Whether connection conn gets fault kind under probability pr. */
bool td_fault_draw(const struct td_prob *pr, uint64_t seed, uint64_t conn,
		   uint32_t kind);

/*
 * A connect's fate under the rule's fault group: TD_FK_CONNECT_REFUSE,
 * TD_FK_CONNECT_TIMEOUT or 0.  One draw decides both, so the two shares
 * split [0, 1] between them (the parser refuses a sum above 1).
 */
int td_fault_connect_fate(const struct td_fault *f, uint64_t seed, uint64_t conn);

#endif
