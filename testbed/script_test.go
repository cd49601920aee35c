package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `testbed.sh down` deletes only the namespaces its testbed created and
// kills only processes that are still its nodes: with TESTBED_ID=x it once
// deleted testbed x-s's namespaces too (a prefix match), and it killed
// whatever PID a leftover pid file named.
func TestTestbedDownTouchesOnlyItsOwn(t *testing.T) {
	requireRoot(t)
	id := fmt.Sprintf("own%d", os.Getpid()%100000)
	other := id + "-s-core" // another testbed's (TESTBED_ID=<id>-s) namespace
	if out, err := exec.Command("ip", "netns", "add", other).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", other).Run() })

	dir := t.TempDir()
	// A pid file from an earlier boot that now names an unrelated process.
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	if err := os.WriteFile(filepath.Join(dir, "mn1.pid"), []byte(fmt.Sprint(bystander.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	b := &bed{t: t, id: id, dir: dir}
	if out, err := b.script("down"); err != nil {
		t.Fatalf("testbed down: %v\n%s", err, out)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	found := false
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == other {
			found = true
		}
	}
	if !found {
		t.Errorf("down with TESTBED_ID=%s deleted %s", id, other)
	}
	// down returns after waiting for what it killed: a killed bystander is
	// a zombie (state Z) by then, a spared one is still sleeping.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", bystander.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) == 0 || f[0] == "Z" {
		t.Errorf("down killed an unrelated process named by a stale pid file (state %q)", f[:min(1, len(f))])
	}
}
