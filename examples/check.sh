#!/usr/bin/env bash
# Run the worked examples and check each against its expected output:
# every examples/DIR/NAME.sh that has an examples/DIR/NAME.expected.  An
# .expected file holds extended regular expressions, one per line (# starts
# a comment), that must match lines of the script's output (stdout and
# stderr) in that order.  make examples runs this; FILTER arguments keep
# the scripts whose path contains one of them.
# usage: examples/check.sh [FILTER...]
set -uo pipefail
cd "$(dirname "$0")"
pass=0 fail=0
for expected in */*.expected; do
	script=${expected%.expected}.sh
	if [ $# -gt 0 ]; then
		keep=0
		for f in "$@"; do
			case $script in *"$f"*) keep=1 ;; esac
		done
		[ $keep = 1 ] || continue
	fi
	out=$(timeout 120 bash "$script" 2>&1)
	rc=$?
	why=""
	if [ $rc -ne 0 ]; then
		why="exit status $rc"
	else
		# each expectation must match a line after the previous match
		rest=$out
		while IFS= read -r want; do
			case $want in '' | '#'*) continue ;; esac
			n=$(printf '%s\n' "$rest" | grep -n -E -m1 -- "$want" | cut -d: -f1)
			if [ -z "$n" ]; then
				why="no line matches (after the ones before): $want"
				break
			fi
			rest=$(printf '%s\n' "$rest" | tail -n +"$((n + 1))")
		done <"$expected"
	fi
	if [ -z "$why" ]; then
		echo "PASS  examples/$script"
		pass=$((pass + 1))
	else
		echo "FAIL  examples/$script: $why"
		printf '%s\n' "$out" | sed 's/^/    | /'
		fail=$((fail + 1))
	fi
done
echo "examples: $pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
