#!/bin/sh
# Install the Debian packages a make target needs, or say exactly which.
# usage: scripts/deps.sh build|test|demo|bench|deb
set -eu
build="gcc make libc6-dev"
# The real programs of the compatibility suite (tests/e2e/test_compat*.py).
compat="util-linux redis-server redis-tools haproxy memcached apache2 lighttpd socat ncat openssh-server openssh-client vsftpd git \
wget openssl openjdk-17-jdk-headless busybox \
postgresql postgresql-client nodejs libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 \
varnish squid tinyproxy stunnel4 mosquitto ruby ruby-webrick rsync exim4-daemon-light pgbouncer"
case "${1:-build}" in
build) pkgs="$build" ;;
test)  pkgs="$build libconfig-dev libcriterion-dev python3 iproute2 tcpdump tshark bpftrace curl nginx-light wrk strace valgrind spin clang libclang-rt-14-dev logrotate prometheus systemd gzip groff man-db bash-completion dpkg-dev $compat" ;;
demo)  pkgs="$build python3 iproute2 tcpdump curl" ;;
bench) pkgs="$build python3 iproute2 util-linux strace valgrind linux-perf wrk nginx-light redis-server redis-tools haproxy apache2 busybox postgresql" ;;
deb)   pkgs="$build dpkg-dev debhelper lintian python3 iproute2 curl" ;;
*) echo "usage: $0 build|test|demo|bench|deb" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
	# nginx-light is satisfied by any nginx flavour, nodejs by any node
	# (e.g. NodeSource's)
	case "$p" in
	nginx-light) command -v nginx >/dev/null 2>&1 && continue ;;
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	esac
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
	# The servers must not start as services: the tests start their own,
	# each in its own network namespace.
	norc=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		norc=1
	fi
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
	[ -z "$norc" ] || rm -f /usr/sbin/policy-rc.d
else
	echo "teardown: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
