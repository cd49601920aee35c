package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// Standard Mobile IPv6 on kernel TUNs: ping and iperf3 between the two
// mobile nodes' home addresses, first through both home agents, then route
// optimised after Return Routability; then mn1 switches its underlay
// network during an iperf3 run, which completes.
func TestKernelStandardMIPv6(t *testing.T) {
	requireRoot(t, "ping", "iperf3")
	b := startBed(t, "../examples/fig4.yaml", "--scheme", "standard")
	b.waitAttached("mn1", "ar1", 10*time.Second)
	b.waitAttached("mn2", "ar2", 10*time.Second)
	b.waitCounter("mn1", "mh.in.BA.home", 1, 10*time.Second)
	b.waitCounter("mn2", "mh.in.BA.home", 1, 10*time.Second)
	const hoa2 = "2001:db8:2::20"
	out, err := b.exec(30*time.Second, "mn1", "ping", "-6", "-c", "10", "-i", "0.2", "-W", "3", hoa2)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping mn1 -> mn2's home address: %v\n%s", err, out)
	}
	b.waitCounter("mn1", "rr.completed", 1, 10*time.Second)
	b.waitCounter("mn2", "rr.completed", 1, 10*time.Second)
	ha2, _ := b.status("ha2")
	out, err = b.exec(30*time.Second, "mn1", "ping", "-6", "-c", "5", "-i", "0.2", hoa2)
	if err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("ping after route optimisation: %v\n%s", err, out)
	}
	ha2After, _ := b.status("ha2")
	if ha2After.Counters["tunnel.encap"] != ha2.Counters["tunnel.encap"] {
		t.Errorf("ha2 still tunnels mn1's pings after route optimisation")
	}
	if st, _ := b.status("mn1"); st.Counters["ro.out"] < 5 || st.Counters["ro.in"] < 5 {
		t.Errorf("mn1 ro.out %d ro.in %d", st.Counters["ro.out"], st.Counters["ro.in"])
	}

	if out, err := b.exec(10*time.Second, "mn2", "iperf3", "-s", "-D"); err != nil {
		t.Fatalf("iperf3 server: %v\n%s", err, out)
	}
	b.waitListening("mn2", 5201)
	bytes, bps := b.iperf("mn1", hoa2, 3)
	t.Logf("iperf3 home address to home address, route optimised: %.0f Mbit/s", bps/1e6)
	if bytes == 0 {
		t.Fatal("iperf3 moved nothing")
	}
	// Move during a transfer.
	done := make(chan float64, 1)
	go func() {
		out, err := b.exec(60*time.Second, "mn1", "iperf3", "-c", hoa2, "-t", "6", "-J")
		if err != nil {
			t.Errorf("iperf3 across the move: %v\n%s", err, out)
		}
		done <- float64(len(out))
	}()
	b.waitFlowing("mn1", 2000)
	if out, err := b.script("switch", "mn1", "ar1p"); err != nil {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	b.waitAttached("mn1", "ar1p", 5*time.Second)
	<-done
	st := b.waitCounter("mn1", "mh.in.BA.home", 2, 10*time.Second)
	if st.Counters["mh.out.CoTI"] < 2 {
		t.Errorf("no Return Routability after the move (CoTI sent %d)", st.Counters["mh.out.CoTI"])
	}
}

// The paper's scheme on kernel TUNs: an iperf3 TCP stream from mn1's care-of
// address survives the underlay switch (through AR1's anchor), and the
// kernel picks the new care-of address for new connections.
func TestKernelHA2RStreamSurvivesSwitch(t *testing.T) {
	requireRoot(t, "iperf3")
	b := startBed(t, "../examples/fig4.yaml", "--scheme", "ha2r")
	b.waitAttached("mn1", "ar1", 10*time.Second)
	st2, _ := b.waitAttached("mn2", "ar2", 10*time.Second)
	b.waitCounter("mn1", "mnauth.completed", 1, 10*time.Second)
	b.waitCounter("mn2", "mnauth.completed", 1, 10*time.Second)
	coa2 := st2.Host.Address
	st1, _ := b.status("mn1")
	coa1 := st1.Host.Address
	if src := routeSource(t, b, "mn1", coa2); src != coa1 {
		t.Fatalf("new connections would come from %s, want the care-of address %s", src, coa1)
	}
	if out, err := b.exec(10*time.Second, "mn2", "iperf3", "-s", "-D", "-B", coa2); err != nil {
		t.Fatalf("iperf3 server: %v\n%s", err, out)
	}
	b.waitListening("mn2", 5201)
	type result struct {
		bytes, bps float64
	}
	done := make(chan result, 1)
	go func() {
		by, bps := b.iperf("mn1", coa2, 10)
		done <- result{by, bps}
	}()
	b.waitFlowing("mn1", 5000)
	if out, err := b.script("switch", "mn1", "ar1p"); err != nil {
		t.Fatalf("switch: %v\n%s", err, out)
	}
	after, _ := b.waitAttached("mn1", "ar1p", 5*time.Second)
	b.waitCounter("mn1", "anchor.bound", 1, 10*time.Second)
	// The new care-of address becomes the source of new connections once
	// AR1' has authenticated the node (until then, the home address).
	b.waitCounter("mn1", "mnauth.completed", 2, 10*time.Second)
	testenv.Poll(t, 100*time.Millisecond, 5*time.Second, "new connections from the new care-of address "+after.Host.Address,
		func() bool { return routeSource(t, b, "mn1", coa2) == after.Host.Address })
	r := <-done
	ar1, _ := b.status("ar1")
	t.Logf("iperf3 CoA1 -> CoA2 across the switch: %.0f MB at %.0f Mbit/s; ar1 tunnelled %d and decapsulated %d packets",
		r.bytes/1e6, r.bps/1e6, ar1.Counters["tunnel.encap"], ar1.Counters["tunnel.decap"])
	if ar1.Counters["tunnel.decap"] == 0 {
		t.Error("the stream did not go through AR1's anchor after the switch")
	}
}

// routeSource asks the kernel of node which source it would use towards dst.
func routeSource(t *testing.T, b *bed, node, dst string) string {
	t.Helper()
	out, err := b.exec(5*time.Second, node, "ip", "-6", "route", "get", dst)
	if err != nil {
		t.Fatalf("ip route get: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "src" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no source in %q", out)
	return ""
}

// mtuTopology writes fig4 with the ar1p access link at IPv6's minimum MTU,
// 1280 bytes, and returns its path.
func mtuTopology(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(b), "router: ar1p,", "router: ar1p, mtu: 1280,", 1)
	if y == string(b) {
		t.Fatal("fig4.yaml has no ar1p link to shrink")
	}
	p := filepath.Join(t.TempDir(), "fig4-1280.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ping1280 pings dst from node with 1280-byte packets (a 1232-byte payload)
// and fails unless most answers come: the first may be lost while the
// tunnel entry learns the path's MTU from a Packet Too Big.
func ping1280(t *testing.T, b *bed, node, src, dst string) {
	t.Helper()
	out, err := b.exec(20*time.Second, node, "ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "2", "-s", "1232", "-I", src, dst)
	var sent, got int
	if _, e := fmt.Sscanf(pingSummary(out), "%d packets transmitted, %d received", &sent, &got); e != nil || got < 3 {
		t.Fatalf("%s: ping -s 1232 %s -> %s: %d of %d answered (%v)\n%s", node, src, dst, got, sent, err, out)
	}
}

func pingSummary(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "packets transmitted") {
			return l
		}
	}
	return ""
}

// With mn1 on a 1280-byte link, 1280-byte packets and a TCP transfer pass
// its home agent's tunnel (standard scheme) and, in the paper's scheme, the
// tunnel of the HA2R that anchors its old care-of address: the tunnel
// entries learn the smaller MTU from Packet Too Big and fragment what the
// sender cannot make smaller (RFC 2473 7.1), on kernel TUNs.
func TestKernelMTU1280(t *testing.T) {
	requireRoot(t, "ping", "iperf3")
	topo := mtuTopology(t)
	const hoa1 = "2001:db8:1::10"
	t.Run("standard", func(t *testing.T) {
		b := startBed(t, topo, "--scheme", "standard")
		b.waitAttached("mn1", "ar1", 10*time.Second)
		b.waitCounter("mn1", "mh.in.BA.home", 1, 10*time.Second)
		if out, err := b.script("switch", "mn1", "ar1p"); err != nil {
			t.Fatalf("switch: %v\n%s", err, out)
		}
		b.waitAttached("mn1", "ar1p", 5*time.Second)
		b.waitCounter("mn1", "mh.in.BA.home", 2, 10*time.Second)
		cn, _ := b.status("cn")
		ping1280(t, b, "cn", cn.Host.Address, hoa1)
		ping1280(t, b, "mn1", hoa1, cn.Host.Address)
		iperfThrough(t, b, "mn1", hoa1, "cn")
		ha1, _ := b.status("ha1")
		if ha1.Counters["tunnel.packet_too_big"] == 0 {
			t.Error("the home agent never learned that its tunnel was too small")
		}
	})
	t.Run("ha2r", func(t *testing.T) {
		b := startBed(t, topo, "--scheme", "ha2r")
		st1, _ := b.waitAttached("mn1", "ar1", 10*time.Second)
		b.waitCounter("mn1", "mnauth.completed", 1, 10*time.Second)
		coa1 := st1.Host.Address
		if out, err := b.script("switch", "mn1", "ar1p"); err != nil {
			t.Fatalf("switch: %v\n%s", err, out)
		}
		b.waitAttached("mn1", "ar1p", 5*time.Second)
		b.waitCounter("mn1", "anchor.bound", 1, 10*time.Second)
		cn, _ := b.status("cn")
		ping1280(t, b, "cn", cn.Host.Address, coa1) // through ar1's anchor tunnel
		ping1280(t, b, "cn", cn.Host.Address, hoa1) // through ha1's tunnel
		iperfThrough(t, b, "mn1", coa1, "cn")
		ar1, _ := b.status("ar1")
		if ar1.Counters["fragments.out"] == 0 {
			t.Error("ar1 never fragmented its anchor tunnel")
		}
	})
}

// iperfThrough runs a 3-second iperf3 TCP transfer from client to an
// iperf3 server on node bound to addr, and fails unless data arrived.
func iperfThrough(t *testing.T, b *bed, node, addr, client string) {
	t.Helper()
	if out, err := b.exec(10*time.Second, node, "iperf3", "-s", "-D", "-1", "-B", addr); err != nil {
		t.Fatalf("iperf3 server on %s: %v\n%s", node, err, out)
	}
	b.waitListening(node, 5201)
	bytes, bps := b.iperf(client, addr, 3)
	if bytes == 0 {
		t.Fatalf("iperf3 %s -> %s moved nothing", client, addr)
	}
	t.Logf("iperf3 %s -> %s over the 1280-byte link: %.1f MB at %.0f Mbit/s", client, addr, bytes/1e6, bps/1e6)
}
