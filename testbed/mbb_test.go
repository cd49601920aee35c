package testbed

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ten planned make-before-break moves of mn1 on kernel TUNs in
// namespaces, between ar1 and ar1p: each time the next network comes up
// beside the current one (testbed.sh add), mn1 moves with node handover
// --make-before-break, and the old network goes down (testbed.sh drop).
// A ping every 20 ms from mn2 to mn1's home address across all of it
// loses nothing. (It lost one packet a move until the mobile node took
// packets that came through two tunnels: the home agent's to the old
// address, then its HA2R's to the new one; the kernel answered those with
// Parameter Problem.)
func TestKernelMakeBeforeBreak(t *testing.T) {
	requireRoot(t, "ping")
	b := startBed(t, "../examples/fig4.yaml")
	mn1, _ := b.waitAttached("mn1", "ar1", 10*time.Second)
	b.waitAttached("mn2", "ar2", 10*time.Second)
	// mn1's home address: reachable wherever mn1 is.
	home := "2001:db8:1::10"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", b.id+"-mn2", "ping", "-6", "-i", "0.02", "-c", "500", "-W", "2", home)
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	b.waitCounter("mn1", "packets.to_tun", mn1.Counters["packets.to_tun"]+25, 5*time.Second)
	links := []string{"ar1p", "ar1"}
	from := "ar1"
	for i := range 10 {
		to := links[i%2]
		if o, err := b.script("add", "mn1", to); err != nil {
			t.Fatalf("add %s: %v\n%s", to, err, o)
		}
		cmd := exec.Command(nodeBin, "handover", "--control", filepath.Join(b.dir, "mn1.sock"), "--to", to, "--make-before-break")
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("move %d to %s: %v\n%s", i+1, to, err, o)
		}
		if o, err := b.script("drop", "mn1", from); err != nil {
			t.Fatalf("drop %s: %v\n%s", from, err, o)
		}
		from = to
		st, err := b.status("mn1")
		if err != nil {
			t.Fatal(err)
		}
		b.waitCounter("mn1", "packets.to_tun", st.Counters["packets.to_tun"]+15, 5*time.Second)
	}
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping: %v\n%s", err, lastLines(out.String(), 5))
	}
	summary := lastLines(out.String(), 2)
	t.Logf("ping mn2 -> mn1 every 20 ms across 10 make-before-break moves: %s", summary)
	if !strings.Contains(summary, " 0% packet loss") {
		t.Errorf("packets lost across make-before-break moves:\n%s", summary)
	}
}
