#!/usr/bin/env bash
# seeded_replay.sh: the same seed replays the same faults.
#
# A client makes 20 connections in a row; teardown turns about half of
# their closes into RSTs (--rst 0.5).  Whether connection number N is
# reset depends only on (seed, N), so:
#
#   * run 1 and run 2, both with --seed 42, reset the same connections;
#   * a run without --seed draws a random seed, and the library writes it
#     in every fault event ("seed=..."): that is the line to keep from a
#     run that went wrong;
#   * a replay with --seed set to that number resets the same connections
#     as the seedless run did.
#
# What to look for: the lists of faulted connection numbers, and that the
# pairs that should match do.  "Faulted" is read from the library's log:
# one line "fault ... fault=rst conn=N run_conn=R seed=S" per reset connection.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make): build/teardown, build/examples/tdpeer.
set -euo pipefail

. "$(dirname "$0")/../common.sh"

# One server, without the library, for the 4 runs of 20 connections.
"$TDPEER" server --listen 127.0.0.1:7002 --count 80 --read-until-eof >"$DIR/server.out" &
SERVER=$!
wait_listening "$DIR/server.out"

# run LOG [teardown options]: 20 client connections under teardown, the
# text log in LOG; prints the faulted connection numbers.
run() {
    local log=$1
    shift
    "$TEARDOWN" --role client --rst 0.5 "$@" --log "$log" \
        -- "$TDPEER" client --connect 127.0.0.1:7002 --count 20 --send 10 >/dev/null
    sed -n 's/.* fault=rst conn=\([0-9]*\) .*/\1/p' "$log" | tr '\n' ' ' | sed 's/ $//'
}

one=$(run "$DIR/run1.log" --seed 42)
two=$(run "$DIR/run2.log" --seed 42)
echo "run 1 (--seed 42): faulted connections: $one"
echo "run 2 (--seed 42): faulted connections: $two"
[ "$one" = "$two" ] && echo "  same seed, same faults: yes" || echo "  same seed, same faults: NO"

free=$(run "$DIR/seedless.log")
seed=$(sed -n 's/.* fault=rst conn=[0-9]* run_conn=[-0-9]* seed=\([0-9]*\).*/\1/p' "$DIR/seedless.log" | head -n 1)
echo "seedless run: faulted connections: $free"
echo "seedless run drew seed=$seed"
echo "  its first fault line:"
grep ' fault=rst ' "$DIR/seedless.log" | head -n 1 | sed 's/^/    /'

again=$(run "$DIR/replay.log" --seed "$seed")
echo "replay (--seed $seed): faulted connections: $again"
[ "$free" = "$again" ] && echo "  replay reproduces the seedless run: yes" \
    || echo "  replay reproduces the seedless run: NO"
wait "$SERVER" || true
