/*
 * teardown runtime: what every module of shim/rt/ and every hook needs:
 * the system headers, the export and branch-hint macros, and the real
 * libc functions (real.h).
 */
#ifndef TD_RT_BASE_H
#define TD_RT_BASE_H

#include <errno.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include "teardown/event.h"
#include "teardown/policy.h"
#include "teardown/predict.h"
#include "real.h"

#define TD_EXPORT __attribute__((visibility("default")))
#define td_likely(x) __builtin_expect(!!(x), 1)
#define td_unlikely(x) __builtin_expect(!!(x), 0)
#define TD_STR_(x) #x
#define TD_STR(x) TD_STR_(x)

#endif
