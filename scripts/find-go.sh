# Sourced by .ci/run and scripts/*.sh: puts a Go that can build this module
# first on PATH, or says which one to install. go.mod's `go` line is the
# minimum. Looked for, in order: `go` on PATH, /usr/local/go (where the
# official archive unpacks; often not on root's PATH), ~/go and ~/sdk
# (golang.org/dl), Debian's /usr/lib/go-*. A Go older than go.mod's but
# at least 1.21 is used with GOTOOLCHAIN set, so that it fetches the right
# toolchain through the module proxy by itself. FIND_GO_DIRS replaces the
# list of Go roots looked in after PATH (tests use it).
# shellcheck shell=bash

find_go() {
	local root need best="" bestv="" g v
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	need=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$root/go.mod")
	local home=${HOME:-/nonexistent}
	local dirs=${FIND_GO_DIRS:-"/usr/local/go $home/go $home/sdk/go* /usr/lib/go-* /usr/lib/go"}
	# shellcheck disable=SC2086 # the globs in dirs are meant to expand
	for g in "$(command -v go 2>/dev/null)" $(printf '%s/bin/go ' $dirs); do
		[ -n "$g" ] && [ -x "$g" ] || continue
		v=$(GOTOOLCHAIN=local "$g" version 2>/dev/null | sed -n 's/^go version go\([0-9][0-9.]*\).*/\1/p')
		[ -n "$v" ] || continue
		if [ -z "$bestv" ] || version_before "$bestv" "$v"; then
			best=$g bestv=$v
		fi
	done
	if [ -z "$best" ]; then
		echo "No Go found (looked on PATH, in /usr/local/go, ~/go, ~/sdk and /usr/lib/go-*)." >&2
		echo "This module needs Go $need or newer: install it from https://go.dev/dl/" >&2
		return 1
	fi
	export PATH="$(dirname "$best"):$PATH"
	if ! version_before "$bestv" "$need"; then
		return 0
	fi
	if version_before "$bestv" 1.21; then
		echo "Go $bestv ($best) is too old: this module needs Go $need or newer (go.mod)." >&2
		echo "Install it from https://go.dev/dl/, or any Go from 1.21 on (Debian: golang-1.21 or newer" >&2
		echo "from bookworm-backports), which then fetches Go $need through the module proxy." >&2
		return 1
	fi
	# Go 1.21 and later switch toolchains themselves; Debian's packages
	# default to GOTOOLCHAIN=local, which would refuse.
	export GOTOOLCHAIN="go$need+auto"
	echo "Go $bestv ($best) is older than go.mod's $need: using GOTOOLCHAIN=$GOTOOLCHAIN (fetched through the module proxy)" >&2
}

# version_before A B: whether version A sorts before version B.
version_before() {
	[ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]
}

find_go
