/*
 * teardown: rules that can never match because an earlier rule always
 * wins.  Rules are tried in order and the first that matches decides, so
 * rule B is dead when an earlier rule A matches every socket B could
 * match: each of A's criteria is absent or contains B's.  Pure; used by
 * `teardown check` (warnings) and `teardown run` (a rule from the options
 * that hides the rules of a -c file).
 */
#ifndef TEARDOWN_CLI_SHADOW_H
#define TEARDOWN_CLI_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

#include "teardown/policy.h"

/*
 * Whether rule a matches every socket rule b matches.  Criterion by
 * criterion: a's program absent or "*", or the same glob as b's, or a
 * glob that matches b's when b's is a plain name; a's role any or b's;
 * each of b's address blocks inside one of a's (same family); b's ports
 * inside the union of a's ranges.  A criterion a has and b lacks means
 * b matches more.  When unsure (two different globs) the answer is
 * false: a warning is never given for a rule that can match.
 */
bool td_rule_covers(const struct td_rule *a, const struct td_rule *b);

/*
 * For each rule i of p, by[i] = the index of the first earlier rule that
 * covers it, or -1.  The work is quadratic in the number of rules: above
 * max_pairs comparisons only the earlier rules without any criterion are
 * looked at (by[] is still right about those) and false is returned.
 */
bool td_policy_shadowed(const struct td_policy *p, int32_t *by, uint64_t max_pairs);

/* Whether r has no match criterion at all: it matches every TCP socket. */
bool td_rule_matches_all(const struct td_rule *r);

#endif
