#!/usr/bin/env bash
# halfclose/run.sh: HTTP/1.0-style exchanges, where the end of a message
# is the end of the connection, and the two ways legacy code loses the
# answer.
#
# 1. A client sends its request, then says "no more from me" with
#    shutdown(SHUT_RDWR) where it meant SHUT_WR: SHUT_RD makes its own
#    recv() return end-of-stream at once, and the answer, when it comes,
#    makes Linux reset the connection (data for a side that will never
#    read it): the client never sees the answer the server sent.  teardown --shutdown half turns the
#    program's SHUT_RDWR (and SHUT_RD) into SHUT_WR: the request still
#    ends with a FIN, and the answer is read whole.
#
# 2. A server reads the request line, answers and closes, leaving the
#    rest of the upload unread.  Closing a socket with unread data makes
#    Linux send an RST instead of a FIN; the client, still uploading,
#    gets ECONNRESET and never reads the answer that had arrived.
#    teardown --close drain makes that close a lingering one: FIN first,
#    then read and discard the rest until the client's FIN: the client
#    finishes its upload and reads the answer.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make).
set -euo pipefail

. "$(dirname "$0")/../common.sh"

# -- 1. the client that shuts down both ways ---------------------------------
# The server (without the library): reads the request to its end (the
# client's FIN), then answers and closes.
cat >"$DIR/eof_server.py" <<'PYEOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7300))
s.listen(8)
print("server listening", flush=True)
for _ in range(2):
    c, _ = s.accept()
    req = b""
    while True:
        chunk = c.recv(4096)
        if not chunk:
            break
        req += chunk
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 10000)
    c.close()
PYEOF
cat >"$DIR/rdwr_client.py" <<'PYEOF'
import socket, sys
c = socket.create_connection(("127.0.0.1", 7300))
c.sendall(b"POST /report HTTP/1.0\r\n\r\nsome data")
c.shutdown(socket.SHUT_RDWR)  # the bug: SHUT_WR was meant
answer = b""
try:
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        answer += chunk
except ConnectionResetError:
    # Linux resets a connection whose reading side is shut when data
    # arrives for it (RFC 1122): the answer is lost either way
    print("%s: no answer (ECONNRESET: the answer arrived after SHUT_RD)" % sys.argv[1])
    sys.exit(0)
c.close()
if answer:
    print("%s: answer of %d bytes (%s)" % (sys.argv[1], len(answer),
          answer.split(b"\r\n")[0].decode()), flush=True)
else:
    print("%s: no answer (end of stream at once: SHUT_RD)" % sys.argv[1], flush=True)
PYEOF

echo "== 1. a client that shuts down both ways =="
"$PY" "$DIR/eof_server.py" >"$DIR/eof_server.out" &
SERVER=$!
wait_listening "$DIR/eof_server.out"
"$PY" "$DIR/rdwr_client.py" "plain client"
"$TEARDOWN" -q --role client --shutdown half -- \
    "$PY" "$DIR/rdwr_client.py" "client under --shutdown half"
wait "$SERVER"
SERVER=

# -- 2. the server that closes with the upload unread ------------------------
cat >"$DIR/upload_server.py" <<'PYEOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("server listening", flush=True)
while True:  # a server keeps running (a drain is done while it does)
    c, _ = s.accept()
    line = b""
    while not line.endswith(b"\r\n"):
        line += c.recv(1)
    # the request line is enough for this server: answer, close, never read the body
    c.sendall(b"HTTP/1.0 413 Payload Too Large\r\n\r\nsend less\n")
    c.close()
PYEOF
cat >"$DIR/upload_client.py" <<'PYEOF'
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = b"y" * (32 << 20)
try:
    c.sendall(b"PUT /big HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        answer += chunk
    print("%s: upload sent, answer: %s" % (sys.argv[2], answer.split(b"\r\n")[0].decode()),
          flush=True)
except (ConnectionResetError, BrokenPipeError) as e:
    print("%s: upload failed: %s; the answer is lost" % (sys.argv[2], e.strerror), flush=True)
PYEOF

echo
echo "== 2. a server that closes with the upload unread =="
for mode in plain drain; do
    port=$([ $mode = plain ] && echo 7301 || echo 7302)
    if [ $mode = plain ]; then
        "$PY" "$DIR/upload_server.py" $port >"$DIR/up.out" &
        label="client of the plain server"
    else
        "$TEARDOWN" --role server --close drain --drain-timeout 10000 --log "$DIR/drain.log" -- \
            "$PY" "$DIR/upload_server.py" $port >"$DIR/up.out" &
        label="client of the server under --close drain"
    fi
    SERVER=$!
    wait_listening "$DIR/up.out"
    "$PY" "$DIR/upload_client.py" $port "$label"
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=
done
echo "the drained close, as the library logged it:"
grep ' close ' "$DIR/drain.log" | grep -o 'action=drain .*wire=[A-Z]* why=[a-z-]*' | sed 's/^/  /'
