/*
 * teardown: the checks behind the fuzz targets, shared with the unit test
 * that replays the committed corpus (tests/unit/test_fuzz_corpus.c), so
 * that `make test` catches a regression on any input the fuzzers ever
 * kept, without libFuzzer.
 *
 * Each function takes one input, runs it through the code under test and
 * checks the promises that code makes.  It returns NULL when they hold,
 * else a one-line description of the broken promise (a static buffer).
 * Memory errors are the sanitizers' business, not these checks'.
 */
#ifndef TEARDOWN_FUZZ_HARNESS_H
#define TEARDOWN_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Policy text: parse; a refusal must come with a one-line message and
 * leave nothing owned; an accepted policy must print back (canonical
 * text), parse again to an equal policy, and print to the same text.
 */
const char *td_fuzz_policy(const uint8_t *data, size_t size);

/*
 * A JSON audit log: split into lines, each parsed by the log reader
 * (parsed strings must be valid UTF-8 without NUL) and fed to `teardown
 * report`'s aggregation; render both formats to /dev/null.  Lines are
 * counted exactly once, malformed ones included.
 */
const char *td_fuzz_report(const uint8_t *data, size_t size);

/*
 * An audit event built from the bytes (any strings, numbers, addresses,
 * unknown enum values), formatted as text and as JSON: every line must
 * be complete, shorter than TD_EVENT_MAX, end in its only newline, carry
 * no raw control byte, and (JSON) parse with our log reader, with prog,
 * rule, action and fault decoding to (a prefix of) what was given.
 */
const char *td_fuzz_event(const uint8_t *data, size_t size);

/*
 * Bytes as an ELF file and as an ld.so.cache (what `teardown doctor`
 * reads): td_elf_inspect_mem and td_elf_dynamic_mem never refuse a
 * buffer and agree on what they both report; every string the symbol
 * reader hands out lies in its own copy of the string table, counts stay
 * within their caps, no undefined symbol is called exported, and the
 * cache lookup always moves forward and returns terminated paths.
 */
const char *td_fuzz_elf(const uint8_t *data, size_t size);

/*
 * Bytes as a spool left by a dead process (what the library's recovery
 * and `teardown report` read): the first 16 bytes its tail and head, the
 * rest its slot words and lines (and, when the first byte is odd, its
 * header too).  A damaged header is refused; otherwise reading from the
 * tail as the owner (waiting at an unfinished line) and as a recoverer
 * (stepping over it) always moves forward, stops at the head, and hands
 * out only lines inside the ring that end in their only newline.
 */
const char *td_fuzz_spool(const uint8_t *data, size_t size);

#endif
