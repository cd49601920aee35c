package lab

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/softphone"
)

// callMN2 has MN1 call MN2 once both are registered, and waits until MN1
// has received n packets of media.
func callMN2(ctx context.Context, t testing.TB, l *Lab, n uint64) *softphone.Call {
	t.Helper()
	waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "sip.registered", 1, 10*time.Second)
	c, err := l.Node("mn1").SIP.Phone.Call(ctx, sip.Uri{User: "user2", Host: "domain2"}, softphone.CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "media both ways", func() bool { return c.Report().PacketsReceived >= n })
	return c
}

// movesDuringCall calls MN2 from MN1 and moves MN1 20 times between ar1 and
// ar1p, 300 ms of talk apart, make-before-break or not; it returns both
// ends' reports.
func movesDuringCall(t *testing.T, scheme config.Scheme, beforeBreak bool) (mn1, mn2 softphone.Report) {
	t.Helper()
	return movesDuringCallOn(t, startFig4Scheme(t, scheme, Options{}), scheme, beforeBreak, 20)
}

// movesDuringCallOn is movesDuringCall on a lab already started.
func movesDuringCallOn(t testing.TB, l *Lab, scheme config.Scheme, beforeBreak bool, moves int) (mn1, mn2 softphone.Report) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := callMN2(ctx, t, l, 10)
	// The longest gap over a second of talk without moves: the lab's own
	// timing jitter, the yardstick for the gaps the moves leave.
	far0 := l.Node("mn2").SIP.Phone.Calls()
	sent0 := c.Report().PacketsSent
	testenv.WaitFor(t, 5*time.Second, "a second of talk", func() bool { return c.Report().PacketsSent >= sent0+50 })
	if len(far0) == 1 {
		t.Logf("before the moves: largest gap mn1 %.0f ms, mn2 %.0f ms", c.Report().MaxGapMs, far0[0].Report().MaxGapMs)
	}
	move := l.Handover
	if beforeBreak {
		move = l.HandoverBeforeBreak
	}
	links := []string{"ar1p", "ar1"}
	var took []time.Duration
	for i := range moves {
		start := time.Now()
		if _, err := move(ctx, "mn1", links[i%2]); err != nil {
			t.Fatalf("move %d to %s: %v", i+1, links[i%2], err)
		}
		took = append(took, time.Since(start).Round(time.Millisecond))
		sent := c.Report().PacketsSent
		testenv.WaitFor(t, 5*time.Second, "300 ms of talk", func() bool { return c.Report().PacketsSent >= sent+15 })
	}
	t.Logf("%s, make-before-break %v: the moves took %v", scheme, beforeBreak, took)
	var far *softphone.Call
	for _, x := range l.Node("mn2").SIP.Phone.Calls() {
		far = x
	}
	r := c.Hangup(ctx)
	if far == nil {
		t.Fatal("the callee has no call")
	}
	<-far.Done()
	fr := far.Report()
	t.Logf("mn1: sent %d, received %d, lost %d, largest gap %.0f ms; mn2: sent %d, received %d, lost %d, largest gap %.0f ms",
		r.PacketsSent, r.PacketsReceived, r.PacketsLost, r.MaxGapMs, fr.PacketsSent, fr.PacketsReceived, fr.PacketsLost, fr.MaxGapMs)
	if beforeBreak {
		if got := l.Node("mn1").Metrics.Get("attach.committed"); got != uint64(moves) {
			t.Errorf("attach.committed %d, want %d", got, moves)
		}
	}
	return r, fr
}

// A call across 20 planned make-before-break moves of MN1, in each scheme:
// not one RTP packet is lost in either direction. The largest gap is the
// packet interval plus the difference between the old and the new path's
// delay, which no switch can hide.
func TestMakeBeforeBreakLosesNothing(t *testing.T) {
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		t.Run(string(scheme), func(t *testing.T) {
			l := startFig4Scheme(t, scheme, Options{})
			r, fr := movesDuringCallOn(t, l, scheme, true, 20)
			// A standard node sends from the address it left, by the link
			// it left, while Return Routability for the new one runs: the
			// home agent's tunnel would lengthen the path for that time.
			if left := l.Node("mn1").Metrics.Get("ro.out.left"); scheme == config.SchemeStandard && left == 0 {
				t.Error("the standard node sent nothing route-optimised from the address it left")
			}
			// Lost by sequence number (RFC 3550), so what was still on the
			// way when the call ended is not counted; that is a handful.
			if r.PacketsLost != 0 || fr.PacketsLost != 0 || r.PacketsReceived+5 < fr.PacketsSent || fr.PacketsReceived+5 < r.PacketsSent {
				t.Errorf("%s: packets lost across 20 make-before-break moves: mn1 lost %d (received %d of %d sent), mn2 lost %d (received %d of %d sent)",
					scheme, r.PacketsLost, r.PacketsReceived, fr.PacketsSent, fr.PacketsLost, fr.PacketsReceived, r.PacketsSent)
			}
		})
	}
}

// The same 20 moves break-before-make: each costs the packets of the time
// between leaving the old link and the new path's registration, which is
// what make-before-break saves (and shows that the test above can fail).
func TestBreakBeforeMakeLoses(t *testing.T) {
	r, fr := movesDuringCall(t, config.SchemeHA2R, false)
	if r.PacketsLost+fr.PacketsLost == 0 {
		t.Errorf("20 break-before-make moves lost nothing (mn1 %d, mn2 %d): the lab no longer shows what make-before-break saves", r.PacketsLost, fr.PacketsLost)
	}
}

// A standby link takes over from a path that dies silently: mn1 talks to
// mn2 through ar1 and holds ar1p in reserve; ar1 then loses everything it
// sends, with no link event. mn1 notices the silence within its DeadAfter
// (300 ms: a probe after 150 ms, unanswered for 150 ms more), moves to
// ar1p without soliciting it first, and the call goes on both ways.
func TestStandbyTakesOverFromADeadPath(t *testing.T) {
	l := startFig4Scheme(t, config.SchemeStandard, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := callMN2(ctx, t, l, 25)
	defer c.Hangup(ctx)
	mn1 := l.Node("mn1")
	if err := mn1.HoldStandby("ar1p"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the standby attachment", func() bool { _, ok := mn1.Host.Prepared(); return ok })
	if cur, _ := mn1.Host.CurrentLink(); cur.Name != "ar1" {
		t.Fatalf("holding a standby moved mn1 to %s", cur.Name)
	}
	start := time.Now()
	l.BlackHole("ar1", true)
	if _, err := mn1.WaitAttached(ctx, "ar1p"); err != nil {
		t.Fatalf("mn1 did not move to its standby link: %v", err)
	}
	detected := time.Since(start)
	var far *softphone.Call
	for _, x := range l.Node("mn2").SIP.Phone.Calls() {
		far = x
	}
	rx, frx := c.Report().PacketsReceived, far.Report().PacketsReceived
	testenv.WaitFor(t, 10*time.Second, "media both ways after the move", func() bool {
		return c.Report().PacketsReceived >= rx+25 && far.Report().PacketsReceived >= frx+25
	})
	resumed := time.Since(start)
	t.Logf("ar1 black-holed: mn1 on ar1p after %v (path.probes %d, path.dead %d); media both ways again by %v; longest gaps %.0f ms (mn1), %.0f ms (mn2)",
		detected.Round(time.Millisecond), mn1.Metrics.Get("path.probes"), mn1.Metrics.Get("path.dead"), resumed.Round(time.Millisecond),
		c.Report().MaxGapMs, far.Report().MaxGapMs)
	if mn1.Metrics.Get("path.dead") != 1 {
		t.Errorf("path.dead %d, want 1", mn1.Metrics.Get("path.dead"))
	}
	if detected > time.Second {
		t.Errorf("the move to the standby link took %v after the path died, want within about 300 ms", detected)
	}
}

// Bicasting covers the switch with the old path: here ar1p's access link
// loses 10 % of frames each way and ar1's none, and MN1 moves make-before-
// break between them 10 times, 300 ms of talk apart, in the paper's
// scheme. With a bicast window longer than a stay on ar1p, ar1 sends what
// it tunnels to MN1 also to MN1's address on its own link (still heard),
// and MN1 sends what it tunnels to ar1 also by that link: not one RTP
// packet is lost, where without bicasting the lossy link costs packets.
// The second copies are dropped by the tunnels' exits, and none reaches
// a phone (received never exceeds what the other end sent).
func TestBicastCoversALossyNewPath(t *testing.T) {
	run := func(bicast time.Duration) (softphone.Report, softphone.Report, *Lab) {
		topo, err := config.Load("../examples/fig4.yaml")
		if err != nil {
			t.Fatal(err)
		}
		UseScheme(topo, config.SchemeHA2R)
		topo.LinkByName("ar1p").Loss = 0.1
		topo.Mobility.Bicast = bicast
		l := startTopo(t, topo, Options{})
		r, fr := movesDuringCallOn(t, l, config.SchemeHA2R, true, 10)
		return r, fr, l
	}
	r, fr, l := run(0)
	t.Logf("without bicasting: mn1 lost %d, mn2 lost %d", r.PacketsLost, fr.PacketsLost)
	if r.PacketsLost+fr.PacketsLost == 0 {
		t.Error("the lossy link cost nothing without bicasting: this test shows nothing")
	}
	l.Close()
	r, fr, l = run(mobility.MaxBicast)
	mn1, ar1 := l.Node("mn1").Metrics, l.Node("ar1").Metrics
	t.Logf("bicasting: mn1 lost %d, mn2 lost %d; copies sent by mn1 %d, by ar1 %d; duplicates dropped at mn1 %d, at ar1 %d",
		r.PacketsLost, fr.PacketsLost, mn1.Get("tunnel.bicast"), ar1.Get("tunnel.bicast"),
		mn1.Get("mobility.drop.tunnel.bicast_duplicate"), ar1.Get("mobility.drop.tunnel.bicast_duplicate"))
	if r.PacketsLost != 0 || fr.PacketsLost != 0 {
		t.Errorf("with bicasting: mn1 lost %d, mn2 lost %d; want 0", r.PacketsLost, fr.PacketsLost)
	}
	if r.PacketsReceived > fr.PacketsSent || fr.PacketsReceived > r.PacketsSent {
		t.Errorf("a phone got duplicates: mn1 received %d of %d sent, mn2 %d of %d", r.PacketsReceived, fr.PacketsSent, fr.PacketsReceived, r.PacketsSent)
	}
	for _, c := range []struct {
		name string
		got  uint64
	}{{"copies sent by mn1", mn1.Get("tunnel.bicast")}, {"copies sent by ar1", ar1.Get("tunnel.bicast")},
		{"duplicates dropped at mn1", mn1.Get("mobility.drop.tunnel.bicast_duplicate")},
		{"duplicates dropped at ar1", ar1.Get("mobility.drop.tunnel.bicast_duplicate")}} {
		if c.got == 0 {
			t.Errorf("%s: 0", c.name)
		}
	}
}

// A commanded move that does not say how goes as the topology's
// mobility.handover says; one that says goes as it says.
func TestHandoverModeFromTopology(t *testing.T) {
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo.Mobility.Handover = "make_before_break"
	l := startTopo(t, topo, Options{})
	mn1 := l.Node("mn1")
	srv, err := control.Listen(filepath.Join(t.TempDir(), "mn1.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	mn1.RegisterControl(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go srv.Serve(ctx)
	waitCounter(t, l, "mn1", "sip.registered", 1, 10*time.Second)
	move := func(to, mbb string) {
		t.Helper()
		if _, err := control.Call(ctx, srv.Path(), control.Request{Cmd: "handover", Args: map[string]string{"to": to, "make_before_break": mbb}}); err != nil {
			t.Fatalf("handover to %s: %v", to, err)
		}
	}
	move("ar1p", "")
	if got := mn1.Metrics.Get("attach.committed"); got != 1 {
		t.Fatalf("a move that did not say how: attach.committed %d, want 1 (make-before-break, as the topology says)", got)
	}
	move("ar1", "false")
	move("ar1p", "true")
	if got := mn1.Metrics.Get("attach.committed"); got != 2 {
		t.Errorf("after a break-before-make and a make-before-break move: attach.committed %d, want 2", got)
	}
}
