#!/bin/sh
# teardown: build and run the libFuzzer harnesses.
#
#   tests/fuzz/run.sh [RUNS]      run each harness for RUNS executions
#                                 (default 200000; `make fuzz FUZZ_RUNS=N`)
#   FUZZ_TIME=S tests/fuzz/run.sh  run each harness for S seconds instead
#   FUZZ_ONLY=policy tests/fuzz/run.sh   one harness (policy, report, event, elf, spool)
#   tests/fuzz/run.sh merge       minimize the committed corpus and what the
#                                 runs found into tests/fuzz/corpus/: the
#                                 fewest inputs that reach every edge
#                                 reached (set cover, edges only), so the
#                                 corpus stays small
#
# Harnesses (checks in tests/fuzz/harness.c):
#   policy  bytes -> td_policy_parse_text -> canonical text -> parse again
#   report  bytes -> JSON log lines -> logparse + report -> render
#   event   bytes -> struct td_event -> td_event_format (text and JSON)
#   elf     bytes -> td_elf_inspect_mem, td_elf_dynamic_mem (symbols,
#           versions, search paths) and td_ldcache_find (teardown doctor)
#   spool   bytes -> a dead process's spool -> read as its owner and as a
#           recoverer (shim/core/spool.c)
#
# Built with clang into $BUILD/fuzz/ (BUILD defaults to build).  Seeds come
# from tests/fuzz/corpus/<harness>/ and the unit test fixtures (policies,
# logs; read only); new inputs go to
# $BUILD/fuzz/work/<harness>/ and crashes to $BUILD/fuzz/artifacts/.
# Prints executions, corpus size and coverage per harness.  Exits non-zero
# on any crash, leak, timeout, out-of-memory or failed check.
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=$BUILD/fuzz
CC=${FUZZ_CC:-clang}
HARNESSES=${FUZZ_ONLY:-policy report event elf spool}
MODE=run
RUNS=200000
case ${1:-} in
merge) MODE=merge ;;
'') ;;
*[!0-9]*) echo "usage: $0 [RUNS|merge]" >&2; exit 2 ;;
*) RUNS=$1 ;;
esac

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (apt-get install clang)" >&2
	exit 1
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-unknown-attributes -Iinclude -D_GNU_SOURCE"
CFLAGS="$CFLAGS -DTD_VERSION=\"fuzz\" -DTD_LIBDIR=\"/nonexistent\""
SRCS="$(ls shim/core/*.c) cli/lib/logparse.c cli/lib/report.c cli/lib/out.c cli/lib/elfinfo.c cli/lib/ldscope.c tests/fuzz/harness.c"

build() {
	mkdir -p "$OUT/obj"
	objs=""
	for src in $SRCS; do
		obj=$OUT/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')
		# shellcheck disable=SC2086
		$CC $CFLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$obj" "$src"
		objs="$objs $obj"
	done
	for h in $HARNESSES; do
		# shellcheck disable=SC2086
		$CC $CFLAGS $SAN -fsanitize=fuzzer -o "$OUT/fuzz_$h" \
			"tests/fuzz/fuzz_$h.c" $objs -lm
	done
}

# Seed directories besides the committed corpus: the unit tests' fixtures.
seeds() {
	case $1 in
	policy) echo "tests/unit/fixtures/good config" ;;
	report) echo "tests/unit/fixtures/logs" ;;
	event) echo "" ;;
	elf) echo "" ;;
	spool) echo "" ;;
	esac
}

max_len() {
	case $1 in
	policy) echo 4096 ;;
	report) echo 4096 ;;
	event) echo 2048 ;;
	elf) echo 16384 ;;
	spool) echo 9000 ;;
	esac
}

# The figures of one run, from libFuzzer's own output.
summary() {
	h=$1 log=$2
	last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1 || true)
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
	rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.*corp: \([^ ]*\).*/\1/p')
	seeds=$(find "tests/fuzz/corpus/$h" -type f | wc -l)
	work=$(find "$OUT/work/$h" -type f | wc -l)
	printf '%-7s executions %s (%s/s)  cov %s  ft %s  corpus %s (units/size; %s seeds, %s in work dir)  new %s  peak rss %s MB\n' \
		"$h" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
		"$seeds" "$work" "${newu:-?}" "${rss:-?}"
}

build
mkdir -p "$OUT/artifacts" "$OUT/logs"
status=0
for h in $HARNESSES; do
	mkdir -p "$OUT/work/$h"
	dict=""
	[ "$h" = policy ] && dict="-dict=$ROOT/tests/fuzz/policy.dict"
	if [ "$MODE" = merge ]; then
		rm -rf "$OUT/merged/$h"
		mkdir -p "$OUT/merged/$h"
		"$OUT/fuzz_$h" -set_cover_merge=1 -use_counters=0 \
			-max_len="$(max_len "$h")" -timeout=5 \
			-rss_limit_mb=2048 "$OUT/merged/$h" "tests/fuzz/corpus/$h" \
			"$OUT/work/$h" >"$OUT/logs/$h.merge.log" 2>&1 || {
			echo "fuzz: merging $h failed (see $OUT/logs/$h.merge.log)" >&2
			status=1
			continue
		}
		rm -f "tests/fuzz/corpus/$h"/*
		cp "$OUT/merged/$h"/* "tests/fuzz/corpus/$h/"
		echo "$h: corpus minimized to $(find "tests/fuzz/corpus/$h" -type f | wc -l) files"
		continue
	fi
	if [ -n "${FUZZ_TIME:-}" ]; then
		limit="-max_total_time=$FUZZ_TIME"
	else
		limit="-runs=$RUNS"
	fi
	log=$OUT/logs/$h.log
	rc=0
	# shellcheck disable=SC2086
	"$OUT/fuzz_$h" $limit $dict -max_len="$(max_len "$h")" -timeout=5 \
		-rss_limit_mb=2048 -print_final_stats=1 -print_pcs=0 \
		-artifact_prefix="$OUT/artifacts/$h-" \
		"$OUT/work/$h" "tests/fuzz/corpus/$h" $(seeds "$h") >"$log" 2>&1 || rc=$?
	summary "$h" "$log"
	if [ "$rc" -ne 0 ]; then
		echo "fuzz: $h FAILED (exit $rc); the end of $log:" >&2
		tail -n 40 "$log" >&2
		ls -1 "$OUT/artifacts/$h-"* 2>/dev/null | sed 's/^/  artifact: /' >&2 || true
		status=1
	fi
done
exit $status
