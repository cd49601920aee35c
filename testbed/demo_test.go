package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/demo"
)

// TestDemoOnNamespaces runs scripts/testbed.sh demo: the demo's scenario on
// kernel TUNs in network namespaces, for both schemes, and checks its report
// as the in-process demo's test does. MN1 moves three times during the call,
// the third time back to its home link: media must flow after each move.
func TestDemoOnNamespaces(t *testing.T) {
	requireRoot(t, "ip", "tc")
	id := fmt.Sprintf("d%d", os.Getpid()%100000)
	dir := filepath.Join(t.TempDir(), "bed")
	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/testbed.sh", "demo", "--", "--talk", "2s", "--moves", "3", "--out", out)
	cmd.Env = append(os.Environ(), "TESTBED_ID="+id, "TESTBED_DIR="+dir, "NODE_BIN="+nodeBin)
	output, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		// The script tears down on every exit; make sure of it.
		down := exec.Command("../scripts/testbed.sh", "down")
		down.Env = append(os.Environ(), "TESTBED_ID="+id, "TESTBED_DIR="+dir)
		down.Run()
	})
	if err != nil {
		t.Fatalf("testbed.sh demo: %v\n%s", err, lastLines(string(output), 40))
	}
	var rep struct {
		Params struct {
			Where string `json:"where"`
		} `json:"params"`
		Results []*demo.Result `json:"results"`
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Params.Where, "kernel TUN") || len(rep.Results) != 2 {
		t.Fatalf("report from %q with %d results", rep.Params.Where, len(rep.Results))
	}
	std, ha2r := rep.Results[0], rep.Results[1]
	if std.Scheme != "standard" || ha2r.Scheme != "ha2r" {
		t.Fatalf("schemes %s, %s", std.Scheme, ha2r.Scheme)
	}
	for _, r := range rep.Results {
		if n := len(r.Handovers); n != 3 || r.Handovers[2].Link != "home1" {
			t.Errorf("%s: %d handovers (%+v), want 3 ending on home1", r.Scheme, n, r.Handovers)
		}
	}
	for _, r := range rep.Results {
		for _, p := range r.CounterProblems() {
			t.Error(p)
		}
	}
	for _, c := range demo.Claims(std, ha2r) {
		if !c.Holds {
			t.Errorf("claim %q does not hold: %s", c.Claim, strings.Join(c.Why, "; "))
		}
	}
	if page, err := os.ReadFile(filepath.Join(out, "index.html")); err != nil || !strings.Contains(string(page), "<svg") {
		t.Errorf("index.html: %v", err)
	}
	if left, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(left), id+"-") {
		t.Errorf("namespaces left behind:\n%s", left)
	}
	t.Logf("%s", lastLines(string(output), 12))
}
