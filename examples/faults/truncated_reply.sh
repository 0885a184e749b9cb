#!/usr/bin/env bash
# truncated_reply.sh: a reply cut short by a polite FIN.
#
# Python's http.server serves a 200,000-byte file; teardown ends each of
# its connections with a FIN once 50,000 bytes are written
# (--fin-after-bytes 50000): no reset, a clean end of stream, and the
# server's later writes fail (EPIPE) as after a real peer's close.
#
# What to look for:
#   * "curl: exit 18": curl checks Content-Length and reports a partial
#     file; a client that trusted EOF as "reply complete" would have kept a
#     truncated file without a word;
#   * "file: N bytes", N under 50,000 (the headers took the rest).
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, curl, and a build (make): build/teardown.
set -euo pipefail

. "$(dirname "$0")/../common.sh"

mkdir -p "$DIR/www"
head -c 200000 /dev/zero >"$DIR/www/big.bin"
"$TEARDOWN" --role server --fin-after-bytes 50000 -- \
    "$PY" -u -c 'import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 7003), handler)
print("server: listening", flush=True)
srv.serve_forever()' "$DIR/www" >"$DIR/server.out" 2>&1 &
SERVER=$!
wait_listening "$DIR/server.out"
rc=0
curl -sS -o "$DIR/got.bin" http://127.0.0.1:7003/big.bin 2>"$DIR/curl.err" || rc=$?
echo "curl: exit $rc ($(tr -d '\n' <"$DIR/curl.err"))"
echo "file: $(stat -c %s "$DIR/got.bin") bytes"
echo
echo "The library's fault line:"
grep -E 'fault=' "$DIR/server.out" | sed 's/^/  /'
