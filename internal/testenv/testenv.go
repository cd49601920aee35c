// Package testenv decides whether a test that needs root or an outside tool
// may run here. Without them a test skips, unless MIP6_REQUIRE_ROOT_TESTS=1
// (set by .ci/run), where skipping would hide that CI did not test
// something, so the test fails instead.
package testenv

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Strict reports whether tests must not skip for want of root or tools.
func Strict() bool { return os.Getenv("MIP6_REQUIRE_ROOT_TESTS") == "1" }

func miss(t testing.TB, why string) {
	t.Helper()
	if Strict() {
		t.Fatalf("cannot run: %s (MIP6_REQUIRE_ROOT_TESTS=1 forbids skipping)", why)
	}
	t.Skip(why)
}

// RequireTools skips (or fails, when strict) unless every tool is on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			miss(t, tool+" is not installed")
		}
	}
}

// RequireRoot skips (or fails, when strict) unless this is Linux, run as
// root, with the tools on PATH.
func RequireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		miss(t, "needs Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		miss(t, "needs root for network namespaces and kernel TUN")
	}
	RequireTools(t, append([]string{"ip", "tc"}, tools...)...)
}
