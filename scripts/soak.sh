#!/usr/bin/env bash
# Soak: the lab's randomized walk (lab/walk_test.go), seed after seed, for
# as long as asked. Each round walks a mobile node over every access link
# of fig4, its home link included, in each scheme side by side, with random
# dwell times, loss on every hop, home agent and access router restarts, a
# call, pings and TCP streams, and checks the invariants after every move.
# It stops at the first failure, which prints its seed and moves; replay it
# with the command it prints. No root needed.
#
# Usage: scripts/soak.sh [--duration 10m] [--moves 8] [--race]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-go.sh
DURATION=10m
MOVES=8
RACE=()
while [ $# -gt 0 ]; do
	case "$1" in
		--duration) DURATION=$2; shift 2 ;;
		--moves) MOVES=$2; shift 2 ;;
		--race) RACE=(-race); shift ;;
		*) echo "usage: $0 [--duration 10m] [--moves N] [--race]" >&2; exit 2 ;;
	esac
done
to_seconds() {
	local d=$1
	case "$d" in
		*h) echo $((${d%h} * 3600)) ;;
		*m) echo $((${d%m} * 60)) ;;
		*s) echo "${d%s}" ;;
		*) echo "soak: --duration takes a whole number of s, m or h, like 10m" >&2; exit 2 ;;
	esac
}
secs=$(to_seconds "$DURATION")
# The last round may start just before the end and take a few minutes (a
# walk under heavy loss waits out TCP's backed-off retransmissions).
LOG=$(mktemp -t soak.XXXXXX.log)
echo "soak: $DURATION of randomized walks, $MOVES moves each; full log in $LOG"
status=0
go test "${RACE[@]}" -count=1 -parallel 2 -timeout "$((secs + 900))s" -run 'TestRandomWalk' -v ./lab \
	-walk.soak "${secs}s" -walk.moves "$MOVES" >"$LOG" 2>&1 || status=$?
grep -E 'walk_test.go:[0-9]+: (standard|ha2r) seed|soak (standard|ha2r):' "$LOG" | sed 's/^ *//' || true
if [ "$status" != 0 ]; then
	echo "soak: FAILED; the failing walk's report:"
	grep -E -A200 -- '--- FAIL' "$LOG" | head -400
	exit "$status"
fi
echo "soak: passed"
