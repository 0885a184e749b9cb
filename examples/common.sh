# Sourced by the example scripts (examples/*/*.sh): find the build, and
# re-run the calling script inside a private network namespace (its own
# loopback, its own sysctls, nothing else; as root, or through an
# unprivileged user namespace).  Sets HERE, BUILD, TEARDOWN (the build's,
# or $TEARDOWN: an installed one), TDPEER, PY and DIR (a temporary
# directory removed at exit, as is any $SERVER still running), and
# defines wait_listening and wait_port.

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${TD_BUILD:-$HERE/../../build}
TEARDOWN=${TEARDOWN:-$BUILD/teardown}
TDPEER=$BUILD/examples/tdpeer
# The system python, by path: a wrapper script found on PATH (pyenv) would
# run under the library too.
PY=${PY:-/usr/bin/python3}
NAME=$(basename "$0")

for f in "$TEARDOWN" "$TDPEER" "$PY"; do
    command -v "$f" >/dev/null || { echo "$NAME: $f not found (run make)" >&2; exit 1; }
done

if [ -z "${TD_EXAMPLE_NETNS:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        exec env TD_EXAMPLE_NETNS=1 unshare --net -- bash "$0" "$@"
    fi
    exec env TD_EXAMPLE_NETNS=1 unshare --net --map-root-user -- bash "$0" "$@"
fi
ip link set lo up

DIR=$(mktemp -d -t td-example.XXXXXX)
trap 'kill ${SERVER:-} 2>/dev/null || true; rm -rf "$DIR"' EXIT

# wait_listening FILE: wait (at most 5 s) until the server writing FILE
# says "listening"; exit with a message if it never does.
wait_listening() {
    for _ in $(seq 250); do
        grep -q listening "$1" 2>/dev/null && return 0
        sleep 0.02
    done
    echo "$NAME: the server did not start" >&2
    exit 1
}

# wait_port PORT: wait (at most 5 s) until something listens on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 250); do
        ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.02
    done
    echo "$NAME: nothing listens on port $1" >&2
    exit 1
}

# count_state STATE: sockets in that TCP state in this namespace (ss).
count_state() {
    ss -Htan state "$1" | wc -l
}

# settle PORT: wait (at most 5 s) until no connection of PORT is still
# open or closing (ESTAB, FIN-WAIT, CLOSE-WAIT, LAST-ACK, ...), so that counts of
# TIME_WAIT are final.
settle() {
    for _ in $(seq 250); do
        ss -Htan "( sport = :$1 or dport = :$1 )" |
            grep -Eq '^(SYN-|ESTAB|FIN-WAIT|CLOSE-WAIT|LAST-ACK|CLOSING)' || return 0
        sleep 0.02
    done
}
