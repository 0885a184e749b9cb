#!/usr/bin/env bash
# dies_after_request.sh: a server that dies after reading the request,
# twice, and a client that retries.
#
# The server answers each request ("GET n") with "OK n".  teardown resets
# each connection once the server has read 6 bytes (--rst-after-bytes-in
# 6, the whole request), but only the rule's first two connections
# (--when 1..2): exactly what a crashed worker behind a load balancer
# looks like to a client.  The client (without the library) retries on
# ECONNRESET, up to three attempts.
#
# What to look for:
#   * "client: attempt 1: ECONNRESET after sending the request", the same
#     for attempt 2, then "client: attempt 3: got 'OK 3'": the retry
#     logic is exercised exactly, and the request was read by the server
#     each time (a non-idempotent request would have run three times);
#   * the log's fault lines: fault=rst_after_bytes_in for connections 1
#     and 2 only.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make): build/teardown.
set -euo pipefail

. "$(dirname "$0")/../common.sh"

cat >"$DIR/server.py" <<'PYEOF'
import socket

with socket.create_server(("127.0.0.1", 7002)) as lsock:
    print("server: listening", flush=True)
    for _ in range(3):
        conn, _ = lsock.accept()
        try:
            req = conn.recv(6)
            print("server: read %r" % req, flush=True)
            conn.sendall(b"OK " + req[4:])
        except OSError as e:
            print("server: %s" % type(e).__name__, flush=True)
        conn.close()
PYEOF

cat >"$DIR/client.py" <<'PYEOF'
import errno
import socket

for attempt in (1, 2, 3):
    s = socket.create_connection(("127.0.0.1", 7002), timeout=5)
    s.sendall(b"GET %d\n" % attempt)
    try:
        reply = s.recv(100)
        print("client: attempt %d: got %r" % (attempt, reply.decode()))
        break
    except ConnectionResetError as e:
        print("client: attempt %d: %s after sending the request"
              % (attempt, errno.errorcode[e.errno]))
    finally:
        s.close()
PYEOF

"$TEARDOWN" --role server --rst-after-bytes-in 6 --when 1..2 -- "$PY" "$DIR/server.py" \
    >"$DIR/server.out" 2>&1 &
SERVER=$!
wait_listening "$DIR/server.out"

"$PY" "$DIR/client.py"
wait "$SERVER" || true
echo
echo "The server's output and the library's fault lines:"
grep -E '^server:|fault=' "$DIR/server.out" | grep -v listening | sed 's/^/  /'
