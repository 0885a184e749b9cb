#!/bin/sh
# Install the teardown package, use it, remove it, and check that nothing
# is left: what CI does with the .deb `make deb` builds.  As root, on a
# machine where teardown is not installed otherwise (CI's fresh one).
# usage: scripts/deb-check.sh build/deb/teardown_VERSION_ARCH.deb
set -eu
deb=${1:?usage: $0 PACKAGE.deb}
say() { printf 'deb-check: %s\n' "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (dpkg -i)"
[ -f "$deb" ] || fail "$deb: no such package (make deb)"
if dpkg-query -W -f='${Status}' teardown 2>/dev/null | grep -q ' installed'; then
	fail "a teardown package is already installed here; not touching it"
fi
[ ! -e /usr/bin/teardown ] || fail "/usr/bin/teardown exists and is not from a package"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
lib=/usr/lib/$multiarch/teardown/libteardown.so
tmp=$(mktemp -d)
files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')

cleanup() {
	dpkg -r teardown >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

say "dpkg -i $deb"
dpkg -i "$deb" >/dev/null
[ "$(command -v teardown)" = /usr/bin/teardown ] || fail "teardown is not /usr/bin/teardown"
teardown --version
got=$(teardown -n -- true | sed -n 's/^export LD_PRELOAD=//p')
[ "$got" = "$lib" ] || fail "the installed command preloads '$got', not $lib"
teardown doctor /bin/true | sed 's/^/  /'
man -w teardown >/dev/null && man -w teardown.conf >/dev/null || fail "manual pages not found by man"
[ -f /usr/share/bash-completion/completions/teardown ] || fail "no bash completion"
teardown check --no-target /usr/share/teardown/*.conf >/dev/null || fail "shipped policies invalid"
# built with the package's flags, the code a forked child runs still fits
# one 64 KiB fault-around window (include/teardown/layout.h)
sect=$(readelf -SW "$lib" |
	sed -n 's/.*\] \.text\.td_child *PROGBITS *\([0-9a-f]*\) *[0-9a-f]* *\([0-9a-f]*\) .*/\1 \2/p')
[ -n "$sect" ] || fail "$lib: no .text.td_child section"
set -- $sect
[ $((0x$1 / 65536)) = $(((0x$1 + 0x$2 - 1) / 65536)) ] ||
	fail "$lib: .text.td_child (0x$1, 0x$2 bytes) spans more than one 64 KiB window"

say "teardown -- curl, in a private network namespace"
cat >"$tmp/run.sh" <<'INNER'
set -eu
ip link set lo up
cd "$1"
echo hello >index.html
python3 -m http.server --bind 127.0.0.1 8080 >server.log 2>&1 &
for _ in $(seq 100); do
	curl -s -o /dev/null http://127.0.0.1:8080/ && break
	sleep 0.05
done
teardown --log "$1/audit.jsonl" --format json --role client --close abort -- \
	curl -fsS http://127.0.0.1:8080/index.html
kill $!
INNER
out=$(unshare --net -- sh "$tmp/run.sh" "$tmp")
[ "$out" = hello ] || fail "curl under teardown printed '$out'"
teardown report "$tmp/audit.jsonl" | tee "$tmp/report" | sed 's/^/  /'
grep -q '"prog":"curl".*"event":"close".*"wire":"RST".*"why":"policy"' "$tmp/audit.jsonl" ||
	fail "no close event with wire RST (abort) from curl in the audit log"
grep -q '== curl ==' "$tmp/report" || fail "the report has no curl section"

say "dpkg -r teardown"
dpkg -r teardown >/dev/null
left=""
for f in $files; do
	[ -e "$f" ] && left="$left $f"
done
for d in "/usr/lib/$multiarch/teardown" /usr/share/teardown /usr/share/doc/teardown; do
	[ -e "$d" ] && left="$left $d"
done
[ -z "$left" ] || fail "left behind after dpkg -r:$left"
if dpkg-query -W -f='${Status}' teardown 2>/dev/null | grep -q ' installed'; then
	fail "dpkg still lists teardown as installed"
fi
say "ok: installed, used and removed without a trace"
