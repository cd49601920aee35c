#!/usr/bin/env bash
# The test entry point (README "Run the tests"): formatting and vet, every
# test with the race detector (the root tests in testbed/ run when this is
# root and skip otherwise), then every fuzz target for a bounded time.
#
#   FUZZTIME=20s   how long each fuzz target runs (0 skips fuzzing)
#   MIP6_REQUIRE_ROOT_TESTS=1   fail instead of skipping root tests (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-20s}

echo "== gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
GOOS=darwin go vet ./... # the userspace backend must keep building for Macs

echo "== go test -race"
go test -race -count=1 -timeout 25m ./...

if [ "$FUZZTIME" != 0 ]; then
	echo "== fuzzing, $FUZZTIME per target"
	grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
		pkg=./$(dirname "${f#./}")
		# shellcheck disable=SC2013 # one identifier per line
		for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
			echo "-- $pkg $name"
			go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg"
		done
	done
fi
echo "== all tests passed"
