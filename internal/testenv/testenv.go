// Package testenv decides whether a test that needs root or an outside tool
// may run here. Without them a test skips, unless MIP6_REQUIRE_ROOT_TESTS=1
// (set by .ci/run), where skipping would hide that CI did not test
// something, so the test fails instead.
package testenv

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
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

// WaitFor waits until cond holds, looking every millisecond, and fails the
// test saying what it waited for if that takes longer than timeout. Tests
// wait on the condition they need (a counter, a state), never for a fixed
// time.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, time.Millisecond, timeout, what, cond)
}

// Poll is WaitFor looking every interval: for conditions that cost a
// process to check (a node's status over its control socket).
func Poll(t testing.TB, interval, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if cond() {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case <-tick.C:
			if cond() {
				return
			}
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("waited %v for %s", timeout, what)
		}
	}
}

// Buffer collects a process's output while it runs, safe to read from
// another goroutine meanwhile.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
