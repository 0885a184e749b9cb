#!/usr/bin/env bash
# closewait/run.sh: a legacy server that never closes idle connections.
#
# The server answers one request per connection and then waits for the
# next one, forever: it never notices that the client has gone (recv()
# returning 0) and never calls close().  Every connection the client
# closes stays in CLOSE_WAIT on the server, holding a descriptor and a
# socket, until the process dies; `ss -tan state close-wait` grows until
# the server runs out of descriptors.
#
# Finding it: run the server under teardown with --leak-after 1.  Each
# socket left in CLOSE_WAIT for a second gets one "leak" event naming the
# program, the local port, the peer and the rule; teardown report counts
# them per program.  The fix is in the server (close on end of stream);
# the same audit then shows no leak.  (No close action can cure a program
# that never calls close(): the library acts when the program closes.)
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make).
set -euo pipefail

. "$(dirname "$0")/../common.sh"

# The legacy server: one thread per connection, and it only ever waits
# for the next request.  With "fixed", it closes when the client has gone.
cat >"$DIR/server.py" <<'PYEOF'
import socket, sys, threading
fixed = sys.argv[2] == "fixed"
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
print("server (%s) listening" % sys.argv[2], flush=True)
def serve(c):
    while True:
        req = c.recv(100)
        if not req:
            if fixed:
                c.close()  # the fix: the client has gone, so do we
                return
            # the bug: treat end of stream as "no request yet" and wait
            threading.Event().wait()
        c.sendall(b"pong\n")
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF

# 20 clients: connect, one request, read the answer, close.
cat >"$DIR/clients.py" <<'PYEOF'
import socket, sys
for _ in range(20):
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    c.sendall(b"ping\n")
    c.recv(100)
    c.close()
print("clients: 20 requests answered", flush=True)
PYEOF

# wait_leaks LOG N: until the audit log holds N leak events (at most 10 s).
wait_leaks() {
    for _ in $(seq 500); do
        [ "$(grep -c '"event":"leak"' "$1" 2>/dev/null)" -ge "$2" ] && return 0
        sleep 0.02
    done
}

for version in legacy fixed; do
    port=$([ $version = legacy ] && echo 7200 || echo 7201)
    log=$DIR/$version.jsonl
    echo "== the $version server, under teardown --leak-after 1 =="
    "$TEARDOWN" --role server --leak-after 1 --log "$log" --format json -- \
        "$PY" "$DIR/server.py" "$port" "$version" &
    SERVER=$!
    wait_port "$port"
    "$PY" "$DIR/clients.py" "$port"
    if [ $version = legacy ]; then
        wait_leaks "$log" 20
    else
        sleep 1.5 # as long as a leak would take to be reported
    fi
    echo "CLOSE_WAIT on port $port: $(ss -Htan state close-wait "( sport = :$port )" | wc -l)"
    echo "leak events in the log: $(grep -c '"event":"leak"' "$log" || true)"
    grep -m1 '"event":"leak"' "$log" | "$PY" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print("first leak: prog=%s local=%s remote=%s rule=%s state=%s age_ms>=%s" % (
        e["prog"], e["local"], e["remote"], e["rule"], e.get("state"), 1000 if e["age_ms"] >= 1000 else e["age_ms"]))
' || true
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    echo "teardown report $version.jsonl:"
    "$TEARDOWN" report "$log" | grep -E '^== |connections|closes  |CLOSE_WAIT leaks' | sed 's/^/  /'
    echo
done
