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

	"github.com/ha2r/mip6testbed/internal/testenv"
)

// Planned make-before-break moves of mn1 on kernel TUNs in namespaces,
// between ar1 and ar1p: each time the next network comes up beside the
// current one (testbed.sh add), mn1 moves with node handover
// --make-before-break, and the old network goes down (testbed.sh drop).
//
//  1. Ten moves under a ping every 20 ms from mn2 to mn1's home address:
//     nothing is lost. (It lost one packet a move until the mobile node
//     took packets that came through two tunnels: the home agent's to the
//     old address, then its HA2R's to the new one; the kernel answered
//     those with Parameter Problem.)
//  2. Ten more under a TCP stream from mn1 to mn2 (iperf3): no
//     retransmission timeout (the kernel's TcpExtTCPTimeouts in mn1's
//     namespace). The stream fills the path's queues, so it runs apart
//     from the ping, whose packets it would crowd out.
//  3. Ten more during a call from mn1 to mn2 (node call): neither end
//     loses an RTP packet.
func TestKernelMakeBeforeBreak(t *testing.T) {
	requireRoot(t, "ping", "iperf3", "nstat")
	b := startBed(t, "../examples/fig4.yaml")
	b.waitAttached("mn1", "ar1", 10*time.Second)
	mn2, _ := b.waitAttached("mn2", "ar2", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	at := "ar1"

	// 1. A ping across ten moves; mn1's home address is reachable wherever
	// mn1 is.
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", b.id+"-mn2", "ping", "-6", "-i", "0.02", "-c", "400", "-W", "2", "2001:db8:1::10")
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	at = b.movesBeforeBreak(at, 10)
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping: %v\n%s", err, lastLines(out.String(), 5))
	}
	summary := lastLines(out.String(), 2)
	t.Logf("ping mn2 -> mn1 every 20 ms across 10 make-before-break moves: %s", summary)
	if !strings.Contains(summary, " 0% packet loss") {
		t.Errorf("packets lost across make-before-break moves:\n%s", summary)
	}

	// 2. A TCP stream across ten more.
	if o, err := b.exec(10*time.Second, "mn2", "iperf3", "-s", "-1", "-D", "-B", mn2.Host.Address); err != nil {
		t.Fatalf("iperf3 server: %v\n%s", err, o)
	}
	b.waitListening("mn2", 5201)
	timeouts0 := b.tcpTimeouts("mn1")
	iperf := exec.CommandContext(ctx, "ip", "netns", "exec", b.id+"-mn1", "iperf3", "-c", mn2.Host.Address, "-t", "8", "-J")
	var iperfOut strings.Builder
	iperf.Stdout = &iperfOut
	if err := iperf.Start(); err != nil {
		t.Fatal(err)
	}
	b.movesBeforeBreak(at, 10)
	if err := iperf.Wait(); err != nil {
		t.Fatalf("iperf3: %v\n%s", err, iperfOut.String())
	}
	var res struct {
		End struct {
			SumSent struct {
				Bps         float64 `json:"bits_per_second"`
				Retransmits int     `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(iperfOut.String()), &res); err != nil {
		t.Fatalf("iperf3's report: %v\n%s", err, iperfOut.String())
	}
	timeouts := b.tcpTimeouts("mn1") - timeouts0
	t.Logf("TCP mn1 -> mn2 across 10 make-before-break moves: %.0f Mbit/s, %d segments retransmitted, %d retransmission timeouts",
		res.End.SumSent.Bps/1e6, res.End.SumSent.Retransmits, timeouts)
	if timeouts != 0 {
		t.Errorf("the TCP stream had %d retransmission timeouts across make-before-break moves", timeouts)
	}
	// A packet sent by the wrong link at the switch is dropped by that
	// link's router (ingress filtering): none may be.
	for _, r := range []string{"ar1", "ar1p"} {
		if st, err := b.status(r); err != nil || st.Counters["drop.ingress"] != 0 {
			t.Errorf("%s dropped %d of mn1's packets as from another link's address (%v)", r, st.Counters["drop.ingress"], err)
		}
	}

	// 3. A call across ten more. The callee's loss is read from its
	// status while the call still runs (by RTP sequence numbers, so what
	// is in flight is not counted); the caller's from its final report.
	call := exec.CommandContext(ctx, nodeBin, "call", "sip:user2@domain2", "--control", filepath.Join(b.dir, "mn1.sock"), "--duration", "8s", "--json")
	var callOut strings.Builder
	call.Stdout = &callOut
	if err := call.Start(); err != nil {
		t.Fatal(err)
	}
	callee := func() callReport {
		var st struct {
			SIP struct {
				Calls []callReport `json:"calls"`
			} `json:"sip"`
		}
		out, err := exec.Command(nodeBin, "status", "--control", filepath.Join(b.dir, "mn2.sock"), "--json").Output()
		if err != nil || json.Unmarshal(out, &st) != nil || len(st.SIP.Calls) != 1 {
			return callReport{}
		}
		return st.SIP.Calls[0]
	}
	testenv.Poll(t, 20*time.Millisecond, 15*time.Second, "the call's media at mn2", func() bool { return callee().Received >= 25 })
	b.movesBeforeBreak(at, 10)
	far := callee()
	if err := call.Wait(); err != nil {
		t.Fatalf("node call: %v\n%s", err, callOut.String())
	}
	var near callReport
	if err := json.Unmarshal([]byte(callOut.String()), &near); err != nil {
		t.Fatalf("call report: %v\n%s", err, callOut.String())
	}
	t.Logf("a call across 10 make-before-break moves: mn1 received %d, lost %d, longest gap %.0f ms; mn2 (after the moves) received %d, lost %d, longest gap %.0f ms",
		near.Received, near.Lost, near.MaxGapMs, far.Received, far.Lost, far.MaxGapMs)
	if near.Failure != "" || near.Lost != 0 || far.Received == 0 || far.Lost != 0 {
		t.Errorf("RTP packets lost across make-before-break moves: mn1 %d, mn2 %d (failure %q)", near.Lost, far.Lost, near.Failure)
	}
}

// callReport is the part of a softphone report the kernel tests read.
type callReport struct {
	Received uint64  `json:"packets_received"`
	Lost     int64   `json:"packets_lost"`
	MaxGapMs float64 `json:"max_gap_ms"`
	Failure  string  `json:"failure"`
}

// movesBeforeBreak moves mn1 n times between ar1 and ar1p, starting from
// link at, each move make-before-break with 300 ms of traffic after it
// (mn1's TUN counter), and returns where mn1 ends.
func (b *bed) movesBeforeBreak(at string, n int) string {
	b.t.Helper()
	other := map[string]string{"ar1": "ar1p", "ar1p": "ar1"}
	for i := range n {
		to := other[at]
		st, err := b.status("mn1")
		if err != nil {
			b.t.Fatal(err)
		}
		if o, err := b.script("add", "mn1", to); err != nil {
			b.t.Fatalf("add %s: %v\n%s", to, err, o)
		}
		cmd := exec.Command(nodeBin, "handover", "--control", filepath.Join(b.dir, "mn1.sock"), "--to", to, "--make-before-break")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.t.Fatalf("move %d to %s: %v\n%s", i+1, to, err, o)
		}
		if o, err := b.script("drop", "mn1", at); err != nil {
			b.t.Fatalf("drop %s: %v\n%s", at, err, o)
		}
		at = to
		b.waitCounter("mn1", "packets.to_tun", st.Counters["packets.to_tun"]+15, 5*time.Second)
	}
	return at
}

// tcpTimeouts reads the kernel's count of TCP retransmission timeouts in
// node's namespace.
func (b *bed) tcpTimeouts(node string) int {
	b.t.Helper()
	out, err := b.exec(5*time.Second, node, "nstat", "-az", "TcpExtTCPTimeouts")
	if err != nil {
		b.t.Fatalf("nstat: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "TcpExtTCPTimeouts" {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	b.t.Fatalf("nstat gave no TcpExtTCPTimeouts:\n%s", out)
	return 0
}

// With mobility.standby, mn1's underlay watcher holds the link of a second
// network in reserve as soon as that network is up (testbed.sh add), and
// moves there when the current path dies silently: here blackhole routes
// in mn1's and ar1's namespaces drop everything between them, with no
// link event.
// A ping every 20 ms from mn2 to mn1's home address stops for the
// detection (300 ms) and the re-registration, then goes on.
func TestKernelStandbyTakesOver(t *testing.T) {
	requireRoot(t, "ping")
	src, err := os.ReadFile("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "fig4-standby.yaml")
	if err := os.WriteFile(topo, append(src, "mobility: {standby: true}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBed(t, topo)
	b.waitAttached("mn1", "ar1", 10*time.Second)
	b.waitAttached("mn2", "ar2", 10*time.Second)
	if o, err := b.script("add", "mn1", "ar1p"); err != nil {
		t.Fatalf("add ar1p: %v\n%s", err, o)
	}
	b.waitCounter("mn1", "attach.prepared", 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", b.id+"-mn2", "ping", "-6", "-i", "0.02", "-c", "250", "-W", "2", "2001:db8:1::10")
	var out strings.Builder
	ping.Stdout, ping.Stderr = &out, &out
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	st, _ := b.status("mn1")
	b.waitCounter("mn1", "packets.to_tun", st.Counters["packets.to_tun"]+25, 5*time.Second)
	// The path between mn1 and ar1 dies without a link event.
	start := time.Now()
	if o, err := b.script("blackhole", "mn1", "ar1"); err != nil {
		t.Fatalf("blackhole: %v\n%s", err, o)
	}
	b.waitAttached("mn1", "ar1p", 5*time.Second)
	detected := time.Since(start)
	if err := ping.Wait(); err != nil {
		t.Fatalf("ping: %v\n%s", err, lastLines(out.String(), 5))
	}
	st, _ = b.status("mn1")
	summary := lastLines(out.String(), 2)
	t.Logf("the path to ar1 black-holed: mn1 on its standby ar1p after %v (path.dead %d); ping every 20 ms: %s",
		detected.Round(time.Millisecond), st.Counters["path.dead"], summary)
	if st.Counters["path.dead"] != 1 {
		t.Errorf("path.dead %d, want 1", st.Counters["path.dead"])
	}
	var sent, got int
	fmt.Sscanf(summary, "%d packets transmitted, %d received", &sent, &got)
	if sent == 0 || sent-got > 50 {
		t.Errorf("the ping lost %d of %d: more than a second of packets", sent-got, sent)
	}
}
