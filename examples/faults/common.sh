# Sourced by the fault scenarios in this directory: find the build, and
# re-run the calling script inside a private network namespace (its own
# loopback, nothing else; as root, or through an unprivileged user
# namespace).  Sets HERE, BUILD, TEARDOWN, TDPEER, PY and DIR (a temporary
# directory removed at exit, as is any $SERVER still running), and
# defines wait_listening.

HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${TD_BUILD:-$HERE/../../build}
TEARDOWN=$BUILD/teardown
TDPEER=$BUILD/examples/tdpeer
# The system python, by path: a wrapper script found on PATH (pyenv) would
# run under the library too.
PY=${PY:-/usr/bin/python3}
NAME=$(basename "$0")

for f in "$TEARDOWN" "$TDPEER" "$PY"; do
    [ -x "$f" ] || { echo "$NAME: $f not found (run make)" >&2; exit 1; }
done

if [ -z "${TD_EXAMPLE_NETNS:-}" ]; then
    if [ "$(id -u)" = 0 ]; then
        exec env TD_EXAMPLE_NETNS=1 unshare --net -- bash "$0" "$@"
    fi
    exec env TD_EXAMPLE_NETNS=1 unshare --net --map-root-user -- bash "$0" "$@"
fi
ip link set lo up

DIR=$(mktemp -d)
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
