// Package scripts holds the shell entry points; this file tests
// find-go.sh, which every one of them sources to find a Go for go.mod.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo makes root/bin/go print version v as `go version` does.
func fakeGo(t *testing.T, root, v string) {
	t.Helper()
	bin := filepath.Join(root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"go version go" + v + " linux/amd64\"\n"
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// findGo sources find-go.sh with only the given Go roots to look in (and
// none on PATH) and returns its exit status, the go it chose, GOTOOLCHAIN
// and what it printed on stderr.
func findGo(t *testing.T, roots ...string) (ok bool, chosen, toolchain, stderr string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", `. scripts/find-go.sh || exit 1; echo "$(command -v go) $GOTOOLCHAIN"`)
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + toolsOnly(t), "HOME=" + t.TempDir(), "FIND_GO_DIRS=" + strings.Join(roots, " ")}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	f := strings.Fields(out.String())
	if len(f) > 0 {
		chosen = f[0]
	}
	if len(f) > 1 {
		toolchain = f[1]
	}
	return err == nil, chosen, toolchain, errb.String()
}

// toolsOnly is a PATH with the commands find-go.sh uses and no go.
func toolsOnly(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, name := range []string{"dirname", "sed", "sort", "head"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Skipf("no %s", name)
		}
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func goModVersion(t *testing.T) string {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

func TestFindGo(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	need := goModVersion(t)
	dir := t.TempDir()
	old, older, newer := filepath.Join(dir, "old"), filepath.Join(dir, "older"), filepath.Join(dir, "newer")
	fakeGo(t, old, "1.22.1")
	fakeGo(t, older, "1.19.8")
	fakeGo(t, newer, "1.99.0")

	t.Run("recent enough is used as is", func(t *testing.T) {
		ok, chosen, tc, stderr := findGo(t, older, newer, old)
		if !ok || chosen != filepath.Join(newer, "bin", "go") || tc != "" {
			t.Fatalf("ok=%v chosen=%q GOTOOLCHAIN=%q stderr=%q; want the 1.99 one, no GOTOOLCHAIN", ok, chosen, tc, stderr)
		}
	})
	t.Run("1.21 or later fetches the toolchain", func(t *testing.T) {
		ok, chosen, tc, stderr := findGo(t, older, old)
		if !ok || chosen != filepath.Join(old, "bin", "go") || tc != "go"+need+"+auto" {
			t.Fatalf("ok=%v chosen=%q GOTOOLCHAIN=%q stderr=%q; want the 1.22 one with GOTOOLCHAIN=go%s+auto", ok, chosen, tc, stderr, need)
		}
	})
	t.Run("too old is refused with the version to install", func(t *testing.T) {
		ok, _, _, stderr := findGo(t, older)
		if ok || !strings.Contains(stderr, "too old") || !strings.Contains(stderr, need) {
			t.Fatalf("ok=%v stderr=%q; want a failure naming Go %s", ok, stderr, need)
		}
	})
	t.Run("none at all", func(t *testing.T) {
		ok, _, _, stderr := findGo(t, filepath.Join(dir, "missing"))
		if ok || !strings.Contains(stderr, "No Go found") || !strings.Contains(stderr, need) {
			t.Fatalf("ok=%v stderr=%q; want a failure naming Go %s", ok, stderr, need)
		}
	})
}
