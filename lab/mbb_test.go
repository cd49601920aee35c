package lab

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/softphone"
)

// callMN2 has MN1 call MN2 once both are registered, and waits until MN1
// has received n packets of media.
func callMN2(ctx context.Context, t *testing.T, l *Lab, n uint64) *softphone.Call {
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
	l := startFig4Scheme(t, scheme, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := callMN2(ctx, t, l, 10)
	move := l.Handover
	if beforeBreak {
		move = l.HandoverBeforeBreak
	}
	links := []string{"ar1p", "ar1"}
	var took []time.Duration
	for i := range 20 {
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
		if got := l.Node("mn1").Metrics.Get("attach.committed"); got != 20 {
			t.Errorf("attach.committed %d, want 20", got)
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
			r, fr := movesDuringCall(t, scheme, true)
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
