#!/bin/sh
# Install the Debian packages a make target needs, or say exactly which.
# usage: scripts/deps.sh build|test|demo|deb
set -eu
build="gcc make libc6-dev"
case "${1:-build}" in
build) pkgs="$build" ;;
test)  pkgs="$build libconfig-dev libcriterion-dev python3 iproute2 tcpdump tshark bpftrace curl nginx-light redis-server lighttpd wrk strace valgrind clang libclang-rt-14-dev logrotate prometheus systemd gzip groff man-db bash-completion dpkg-dev" ;;
demo)  pkgs="$build python3 iproute2 tcpdump curl" ;;
deb)   pkgs="$build dpkg-dev debhelper lintian python3 iproute2 curl" ;;
*) echo "usage: $0 build|test|demo|deb" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
	# nginx-light is satisfied by any nginx flavour
	case "$p" in nginx-light) command -v nginx >/dev/null 2>&1 && continue ;; esac
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "teardown: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null || true
	# tshark asks whether non-root users may capture; answer no.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
	echo "teardown: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
