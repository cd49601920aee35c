package lab

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
)

// authTimes records how long each of a mobile node's MN Authentications
// took, from its request to the reply it got.
type authTimes struct {
	mu    sync.Mutex
	sent  time.Time
	times []time.Duration
}

func (a *authTimes) record(e mobility.SignalEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case e.Dir == overlay.Out && e.Msg == "MNAuthReq" && a.sent.IsZero():
		a.sent = e.At // the first send: retransmissions count against it
	case e.Dir == overlay.In && e.Msg == "MNAuthRep" && !a.sent.IsZero():
		a.times = append(a.times, e.At.Sub(a.sent))
		a.sent = time.Time{}
	}
}

func (a *authTimes) get() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Duration(nil), a.times...)
}

// MN Authentication after a home agent restart goes through at once: the
// restarted home agent continues its AH sequence numbers above those the
// HA2R has seen (its state store), so the HA2R's replay window accepts its
// first reply instead of dropping replies until the numbers catch up. It
// used to take about 1.5 s instead of one round trip. The times are logged;
// what is asserted is that no request had to be sent twice and no reply
// was refused, which is what made it slow.
func TestMNAuthAfterHomeAgentRestart(t *testing.T) {
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	UseScheme(topo, config.SchemeHA2R)
	topo.Mobility.AnchorIdle = time.Second // release ar1's anchor soon after leaving
	at := &authTimes{}
	l := startTopo(t, topo, Options{Seed: 1, Setup: func(n *node.Node) error {
		if n.Cfg.Name == "mn1" {
			n.Mobility.Signals.SetRecorder(at.record)
		}
		return nil
	}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Before: at ar1 (on start), then at ar1p.
	waitCounter(t, l, "mn1", "mnauth.completed", 1, 10*time.Second)
	if _, err := l.Handover(ctx, "mn1", "ar1p"); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, l, "mn1", "mnauth.completed", 2, 10*time.Second)
	testenv.WaitFor(t, 10*time.Second, "ar1 to release the idle anchor", func() bool {
		return l.Node("ar1").Mobility.HA2R.Anchors().Len() == 0
	})

	if err := l.Restart(ctx, "ha1", true); err != nil {
		t.Fatal(err)
	}
	retransmits := l.Node("mn1").Metrics.Get("anchor.retransmit")
	// After: back at ar1, whose replay window saw the home agent's replies
	// before the restart.
	if _, err := l.Handover(ctx, "mn1", "ar1"); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, l, "mn1", "mnauth.completed", 3, 10*time.Second)
	if n := l.Node("ar1").Metrics.Get("mobility.drop.mnauth.ah_replay"); n != 0 {
		t.Errorf("ar1 refused %d replies of the restarted home agent as replays", n)
	}
	if n := l.Node("mn1").Metrics.Get("anchor.retransmit") - retransmits; n != 0 {
		t.Errorf("the authentication after the restart needed %d retransmissions", n)
	}
	times := at.get()
	if len(times) != 3 {
		t.Fatalf("measured %d authentications: %v", len(times), times)
	}
	t.Logf("MN Authentication before the home agent's restart: %v at ar1, %v at ar1p; after it, at ar1: %v",
		times[0].Round(time.Millisecond), times[1].Round(time.Millisecond), times[2].Round(time.Millisecond))
}
