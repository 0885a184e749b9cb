#!/usr/bin/env bash
# timewait/run.sh: TIME_WAIT that runs a client out of ports, and a server
# that cannot restart; the cures: --close abort and --reuseaddr.
#
# The side that closes first keeps the connection in TIME_WAIT for 60 s.
# A client making many short connections to one service therefore holds
# one ephemeral port per connection for a minute, and runs out: connect()
# fails with EADDRNOTAVAIL ("Cannot assign requested address").  A server
# that closes first holds TIME_WAIT on its own port, and a new instance
# that binds without SO_REUSEADDR gets EADDRINUSE until it expires.
#
# To make it fast, the network namespace gets 100 ephemeral ports
# (ip_local_port_range 40000-40099) instead of ~28,000, and
# tcp_tw_reuse = 0: Linux's default (2) reuses TIME_WAIT ports for new
# connects on loopback only, which a client talking to another host
# cannot count on.
#
# Needs: root (or unprivileged user namespaces) for a private network
# namespace, and a build (make).
set -euo pipefail

. "$(dirname "$0")/../common.sh"

sysctl -q -w net.ipv4.ip_local_port_range="40000 40099"
sysctl -q -w net.ipv4.tcp_tw_reuse=0

# The service: accepts, reads until the client closes, closes.  Without
# the library.
cat >"$DIR/service.py" <<'PYEOF'
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(512)
def serve(c):
    try:
        while c.recv(4096):
            pass
    except ConnectionResetError:
        pass  # the client reset (--close abort): as good as its FIN here
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF

# The client: 300 short connections, each closed by the client first.
cat >"$DIR/client.py" <<'PYEOF'
import errno, socket, sys
ok = failed = 0
errors = {}
for _ in range(300):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        s.sendall(b"ping")
        ok += 1
    except OSError as e:
        failed += 1
        errors[errno.errorcode.get(e.errno, str(e.errno))] = 1
    finally:
        s.close()
print("%s: 300 connects, %d ok, %d failed%s" % (sys.argv[2], ok, failed,
      " with " + ", ".join(sorted(errors)) if errors else ""), flush=True)
PYEOF

echo "== 1. a client runs out of ephemeral ports =="
# Each run talks to its own port of the service, so the TIME_WAIT left by
# one run (on another 4-tuple) does not take the next run's ports.
for port in 7001 7002; do
    "$PY" "$DIR/service.py" "$port" &
    SERVICES="${SERVICES:-} $!"
done
SERVER=$SERVICES
wait_port 7001
wait_port 7002

"$PY" "$DIR/client.py" 7001 "plain client"
settle 7001
echo "TIME_WAIT after the plain client: $(count_state time-wait) (the namespace has 100 ports)"

# The cure: the client's closes become RSTs (SO_LINGER {1,0}): no
# TIME_WAIT, the port is free at once.  -q: no log line per connection.
"$TEARDOWN" -q --role client --remote-port 7002 --close abort -- \
    "$PY" "$DIR/client.py" 7002 "client under teardown --close abort"
settle 7002
tw=$(ss -Htan state time-wait "( dport = :7002 )" | wc -l)
echo "TIME_WAIT left by the client under --close abort: $tw"

echo
echo "== 2. a server that closes first cannot restart =="
# A legacy server: binds without SO_REUSEADDR, answers each connection
# and closes it first (so the server holds TIME_WAIT on its port), exits
# after 3 connections.
cat >"$DIR/legacy.py" <<'PYEOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError as e:
    print("%s: bind 127.0.0.1:%s failed: %s" % (sys.argv[2], sys.argv[1], e.strerror), flush=True)
    sys.exit(1)
s.listen(8)
print("%s: listening on %s" % (sys.argv[2], sys.argv[1]), flush=True)
for _ in range(3):
    c, _ = s.accept()
    c.recv(100)
    c.sendall(b"bye\n")
    c.close()
PYEOF
cat >"$DIR/three.py" <<'PYEOF'
import socket, sys, time
for _ in range(3):
    for attempt in range(250):
        try:
            c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            break
        except ConnectionRefusedError:
            time.sleep(0.02)
    c.sendall(b"hi")
    c.recv(100)
    c.recv(100)
    c.close()
PYEOF

start() { # PORT LABEL [teardown options]: one server lifetime, 3 clients
    local port=$1 label=$2
    shift 2
    if [ $# -gt 0 ]; then
        "$TEARDOWN" -q "$@" -- "$PY" "$DIR/legacy.py" "$port" "$label" &
    else
        "$PY" "$DIR/legacy.py" "$port" "$label" &
    fi
    local pid=$!
    "$PY" "$DIR/three.py" "$port" &
    local cli=$!
    if ! wait "$pid"; then
        kill "$cli" 2>/dev/null || true
        wait "$cli" 2>/dev/null || true
        return 0
    fi
    wait "$cli"
}
start 7100 "plain server, first run"
settle 7100
echo "TIME_WAIT held by the server on port 7100: $(ss -Htan state time-wait '( sport = :7100 )' | wc -l)"
start 7100 "plain server, restarted"

# The cure: run the server under --reuseaddr, the first time as every
# time (the TIME_WAIT sockets keep the SO_REUSEADDR of the listener they
# came from, and only those let a new listener share the port).
start 7101 "server under --reuseaddr, first run" --role server --reuseaddr
settle 7101
echo "TIME_WAIT held by the server on port 7101: $(ss -Htan state time-wait '( sport = :7101 )' | wc -l)"
start 7101 "server under --reuseaddr, restarted" --role server --reuseaddr
