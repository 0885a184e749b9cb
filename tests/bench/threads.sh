#!/bin/sh
# Thread scaling of the teardown library, alone: builds what it needs
# (make all testprogs) and prints the 1/2/4/8/16-thread table.  Needs only
# this repository, a C compiler, make and python3.
#   tests/bench/threads.sh [--threads 1,2,4,8,16] [--seconds S] [--rounds R]
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/bench/threads.py "$@"
