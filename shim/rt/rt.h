/*
 * teardown runtime: what the interposed calls (shim/hook/) share, one
 * header per module of shim/rt/, each function named after its file
 * (td_fdtab_* in fdtab.c, td_closing_* in closing.c, td_logw_* in logw.c).
 *
 * Rules for everything reachable from a hook: no malloc, no stdio, no
 * locks (signal handlers call close(); forked children of threaded
 * programs may too), errno preserved, and the program's own call made
 * exactly once.  State is published with atomics; the policy is
 * immutable once loaded.
 */
#ifndef TD_RT_H
#define TD_RT_H

#include "base.h"
#include "clock.h"
#include "init.h"
#include "fdtab.h"
#include "holders.h"
#include "info.h"
#include "decide.h"
#include "closing.h"
#include "diag.h"
#include "ownfd.h"
#include "logw.h"
#include "worker.h"
#include "runwide.h"
#include "reload.h"
#include "faults.h"
#include "spool.h"
#include "rights.h"

#endif
