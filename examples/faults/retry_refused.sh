#!/usr/bin/env bash
# retry_refused.sh: does a client's retry loop survive refused connects?
#
# A small Python client makes 5 requests to a local server.  Each request
# connects, and on ECONNREFUSED waits (50 ms, doubling) and tries again,
# up to 8 attempts.  teardown refuses half of its connects for real
# (--connect-refuse 0.5): the SYN goes to a port the library holds bound
# but not listening, the kernel answers with an RST, and the program gets
# ECONNREFUSED exactly as from a server that is down.
#
# What to look for:
#   * "attempt N refused (ECONNREFUSED)" lines: the injected refusals, as
#     the client saw them;
#   * every request ends "ok after N attempts": the retry loop copes;
#   * the library's fault lines: one per refused connect, numbered by
#     connection (every attempt is a new connection);
#   * the last line: refusals the client counted = fault events logged.
#
# With --seed 7 the same attempts are refused on every run; change the
# seed to try other draws, or drop it to get a new draw (logged) each time.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make): build/teardown, build/examples/tdpeer.
set -euo pipefail

. "$(dirname "$0")/../common.sh"

# The server, without the library: 5 connections, each reads a 5-byte
# request and sends a 5-byte reply.
"$TDPEER" server --listen 127.0.0.1:7000 --count 5 --read 5 --send 5 >"$DIR/server.out" &
SERVER=$!
wait_listening "$DIR/server.out"

cat >"$DIR/client.py" <<'PYEOF'
import socket
import sys
import time

refused = 0
for request in range(1, 6):
    delay = 0.05
    for attempt in range(1, 9):
        try:
            s = socket.create_connection(("127.0.0.1", 7000), timeout=5)
        except ConnectionRefusedError:
            refused += 1
            print("request %d: attempt %d refused (ECONNREFUSED), retrying in %d ms"
                  % (request, attempt, delay * 1000), flush=True)
            time.sleep(delay)
            delay *= 2
            continue
        s.sendall(b"hello")
        reply = s.recv(5)
        s.close()
        print("request %d: ok after %d attempt%s, reply %r"
              % (request, attempt, "s" if attempt > 1 else "", reply.decode()), flush=True)
        break
    else:
        print("request %d: gave up after 8 attempts" % request, flush=True)
print("client: %d refused attempts" % refused, flush=True)
sys.exit(0)
PYEOF

# The client under teardown: half of its connects refused, seed 7.
"$TEARDOWN" --role client --connect-refuse 0.5 --seed 7 --log "$DIR/faults.log" \
    -- "$PY" "$DIR/client.py" | tee "$DIR/client.out"
wait "$SERVER" || true

echo
echo "The library's fault events (text log):"
grep ' fault ' "$DIR/faults.log" | sed 's/^/  /'
refused=$(sed -n 's/^client: \([0-9]*\) refused attempts$/\1/p' "$DIR/client.out")
logged=$(grep -c 'fault=connect_refuse' "$DIR/faults.log" || true)
echo "refused attempts: $refused, fault events in the log: $logged"
