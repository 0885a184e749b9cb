#!/usr/bin/env bash
# cut_replies.sh: a server whose replies are cut short by a reset.
#
# A small Python server answers each request with a 100000-byte reply.
# teardown lets each of its connections carry 4096 bytes
# (--rst-after-bytes 4096): the write that crosses the limit is shortened
# to reach it exactly, the library waits until the client has acknowledged
# those bytes, then resets the connection for real (an RST on the wire).
#
# What to look for:
#   * "client: got 4096 bytes, then ECONNRESET": the client, which runs
#     WITHOUT the library, received exactly the allowed bytes and then a
#     reset; a client that trusted EOF as "reply complete" would be caught
#     here, one that checks lengths reports the truncation;
#   * "server: ... ConnectionResetError": the server's own next send fails
#     as after any reset by the peer;
#   * the library's log lines (text, from the server): a "fault" line with
#     fault=rst_after_bytes, written when the connection was accepted,
#     and the close line (wire=RST why=fault: that RST was how the
#     connection ended, sent before the close).
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make): build/teardown.
set -euo pipefail

. "$(dirname "$0")/../common.sh"

cat >"$DIR/server.py" <<'PYEOF'
import socket

reply = b"x" * 100000
with socket.create_server(("127.0.0.1", 7001)) as lsock:
    print("server: listening", flush=True)
    conn, _ = lsock.accept()
    conn.recv(100)
    sent = 0
    try:
        while sent < len(reply):
            sent += conn.send(reply[sent:])
        print("server: sent all %d bytes" % sent, flush=True)
    except OSError as e:
        print("server: sent %d of %d bytes, then %s" % (sent, len(reply), type(e).__name__),
              flush=True)
    conn.close()
PYEOF

cat >"$DIR/client.py" <<'PYEOF'
import errno
import socket

s = socket.create_connection(("127.0.0.1", 7001), timeout=5)
s.sendall(b"GET /big\n")
got = 0
try:
    while True:
        data = s.recv(65536)
        if not data:
            print("client: got %d bytes, then EOF" % got)
            break
        got += len(data)
except ConnectionResetError as e:
    print("client: got %d bytes, then %s (%s)" % (got, errno.errorcode[e.errno], e.strerror))
s.close()
PYEOF

# The server under teardown: each accepted connection may send 4096 bytes.
# The text log goes to stderr, here merged into the output.
"$TEARDOWN" --role server --rst-after-bytes 4096 -- "$PY" "$DIR/server.py" \
    >"$DIR/server.out" 2>&1 &
SERVER=$!
wait_listening "$DIR/server.out"

# The client runs without the library.
"$PY" "$DIR/client.py"
wait "$SERVER" || true
echo
echo "The server's output and the library's log lines:"
grep -v 'listening' "$DIR/server.out" | sed 's/^/  /'
