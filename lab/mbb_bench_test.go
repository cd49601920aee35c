package lab

import (
	"context"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/softphone"
)

// BenchmarkMakeBeforeBreakGap measures, per scheme, the longest media gap
// of a call across 20 make-before-break moves against that of a call as
// long without any move, in the same run (the lab's own timing jitter on
// this machine): the yardstick for a move is the packet interval
// plus that jitter. It reports both gaps (the larger of the two
// directions) and their ratio.
//
//	go test ./lab -run X -bench MakeBeforeBreakGap -benchtime 3x
func BenchmarkMakeBeforeBreakGap(b *testing.B) {
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		b.Run(string(scheme), func(b *testing.B) {
			var still, moving float64
			for b.Loop() {
				r, fr := callWithoutMoves(b, startFig4Scheme(b, scheme, Options{}))
				s := max(r.MaxGapMs, fr.MaxGapMs)
				r, fr = movesDuringCallOn(b, startFig4Scheme(b, scheme, Options{}), scheme, true, 20)
				if r.PacketsLost != 0 || fr.PacketsLost != 0 {
					b.Errorf("packets lost across the moves: mn1 %d, mn2 %d", r.PacketsLost, fr.PacketsLost)
				}
				still, moving = max(still, s), max(moving, max(r.MaxGapMs, fr.MaxGapMs))
			}
			b.ReportMetric(still, "gap-ms-still")
			b.ReportMetric(moving, "gap-ms-moving")
			b.ReportMetric(moving/still, "ratio")
		})
	}
}

// callWithoutMoves has MN1 call MN2 for as many packets as
// movesDuringCallOn's call sends, without moving, and returns both
// ends' reports.
func callWithoutMoves(t testing.TB, l *Lab) (mn1, mn2 softphone.Report) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := callMN2(ctx, t, l, 10)
	sent := c.Report().PacketsSent
	testenv.WaitFor(t, 30*time.Second, "the talk", func() bool { return c.Report().PacketsSent >= sent+50+20*15 })
	calls := l.Node("mn2").SIP.Phone.Calls()
	r := c.Hangup(ctx)
	if len(calls) != 1 {
		t.Fatalf("the callee has %d calls", len(calls))
	}
	<-calls[0].Done()
	return r, calls[0].Report()
}
