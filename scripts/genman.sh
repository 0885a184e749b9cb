#!/bin/sh
# Make a manual page from its template (man/*.in): @VERSION@, @LIBDIR@ and
# @DATADIR@ replaced, and each "@OPTIONS SUB@" or "@KEYS@" line replaced by
# what the built command prints for it (teardown help options --man SUB,
# teardown help keys --man), so that the manual's lists come from the
# same tables as the parser's and cannot drift from them.
# usage: scripts/genman.sh TEARDOWN TEMPLATE OUT VERSION LIBDIR DATADIR
set -eu
[ $# -eq 6 ] || { echo "usage: $0 TEARDOWN TEMPLATE OUT VERSION LIBDIR DATADIR" >&2; exit 2; }
cli=$1 in=$2 out=$3
tmp=$out.tmp
trap 'rm -f "$tmp"' EXIT
sed -e "s|@VERSION@|$4|g" -e "s|@LIBDIR@|$5|g" -e "s|@DATADIR@|$6|g" "$in" |
while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	"@OPTIONS "*"@")
		sub=${line#@OPTIONS }
		"$cli" help options --man "${sub%@}" ;;
	"@KEYS@")
		"$cli" help keys --man ;;
	*)
		printf '%s\n' "$line" ;;
	esac
done >"$tmp"
mv "$tmp" "$out"
trap - EXIT
