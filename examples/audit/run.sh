#!/usr/bin/env bash
# audit/run.sh: what does an unknown program do with its connections?
# One command to record it, one to read the answer.
#
#   teardown doctor PROGRAM                  can the library see its calls?
#   teardown --log audit.jsonl --format json -- PROGRAM ARGS...
#   teardown report audit.jsonl              per program: connections,
#                                            who closed first (and holds
#                                            TIME_WAIT), FIN or RST, bytes
#                                            lost, leaks, faults
#
# Nothing is changed (no policy option: the library only observes).
# Here the "unknown program" is a shell script that fetches three pages
# with curl, and the server a small HTTP/1.0 server (the end of a reply
# is the end of the connection), audited into the same log: teardown
# report shows both sides of the same connections, and that the server,
# closing first, is the one that holds TIME_WAIT.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, curl, and a build (make).
set -euo pipefail

. "$(dirname "$0")/../common.sh"

command -v curl >/dev/null || { echo "$NAME: needs curl" >&2; exit 1; }
cat >"$DIR/server.py" <<'PYEOF'
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 7400))
s.listen(16)
def serve(c):
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = c.recv(4096)
        if not chunk:
            break
        req += chunk
    page = req.split(b" ")[1] if req.count(b" ") >= 2 else b"?"
    # HTTP/1.0 without Content-Length: the reply ends where the connection does
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npage " + page + b"\n")
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
cat >"$DIR/fetch.sh" <<'SHEOF'
#!/bin/sh
# the unknown program
for page in a b c; do
    curl -sS -o /dev/null "http://127.0.0.1:7400/$page.html"
done
echo "fetched 3 pages"
SHEOF
chmod +x "$DIR/fetch.sh"

echo "\$ teardown doctor curl"
"$TEARDOWN" doctor curl | head -1

# The server, audited too (same log: each process appends its lines).
"$TEARDOWN" --log "$DIR/audit.jsonl" --format json -- "$PY" "$DIR/server.py" &
SERVER=$!
wait_port 7400

echo "\$ teardown --log audit.jsonl --format json -- ./fetch.sh"
"$TEARDOWN" --log "$DIR/audit.jsonl" --format json -- "$DIR/fetch.sh"
settle 7400
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
SERVER=

echo "\$ teardown report audit.jsonl"
"$TEARDOWN" report "$DIR/audit.jsonl"
