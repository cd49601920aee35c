#!/usr/bin/env bash
# The test entry point (README "Run the tests"): formatting, module
# hygiene, vet (Linux 64- and 32-bit, macOS) and staticcheck, every test with
# the race detector (the root tests in testbed/ run when this is root and
# skip otherwise), then every fuzz target for a bounded time.
#
#   FUZZTIME=600000x   how long each fuzz target runs (0 skips fuzzing): a
#                      count of executions (about 10-20 s each on a 2-core VM),
#                      not a duration: Go 1.26's fuzz coordinator can fail a
#                      target with "context deadline exceeded" when a -fuzztime
#                      duration ends (go.dev/issue/75804, fixed in Go 1.27).
#   MIP6_REQUIRE_ROOT_TESTS=1   fail instead of skipping root tests (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/find-go.sh
FUZZTIME=${FUZZTIME:-600000x}
STATICCHECK_VERSION=v0.8.2

echo "== gofmt, go mod tidy, go vet, staticcheck"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
if ! go mod tidy -diff; then
	echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1
fi
go vet ./...
GOOS=darwin go vet ./...              # the userspace backend must keep building for Macs
GOOS=linux GOARCH=386 go vet ./...    # and 32-bit Linux (Raspberry Pi OS, old laptops)
GOOS=linux GOARCH=arm go vet ./...
go run "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" ./...

echo "== go test -race"
# -parallel 4: the randomized walks (lab) mostly wait on timers; four run
# side by side on two cores.
go test -race -count=1 -parallel 4 -timeout 25m ./...

if [ "$FUZZTIME" != 0 ]; then
	echo "== fuzzing, $FUZZTIME per target"
	grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
		pkg=./$(dirname "${f#./}")
		# shellcheck disable=SC2013 # one identifier per line
		for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
			echo "-- $pkg $name"
			# A bounded minimisation, so that a target spends its budget
			# executing rather than shrinking an interesting input.
			go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 5s "$pkg"
		done
	done
fi
echo "== all tests passed"
