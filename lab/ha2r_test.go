package lab

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

// signalling snapshots the mobility message counters of some nodes, so a
// test can check what one phase sent.
type signalling map[string]map[string]uint64

func snapshotSignals(l *Lab, nodes ...string) signalling {
	s := signalling{}
	for _, n := range nodes {
		s[n] = map[string]uint64{}
		for k, v := range l.Node(n).Metrics.Snapshot() {
			if len(k) > 3 && k[:3] == "mh." && !contains(k, ".bytes.") {
				s[n][k] = v
			}
		}
	}
	return s
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// delta returns what changed between two snapshots.
func (after signalling) delta(before signalling) signalling {
	d := signalling{}
	for n, m := range after {
		d[n] = map[string]uint64{}
		for k, v := range m {
			if v != before[n][k] {
				d[n][k] = v - before[n][k]
			}
		}
	}
	return d
}

// expect checks that node sent and received exactly want in a phase.
func (d signalling) expect(t *testing.T, phase, node string, want map[string]uint64) {
	t.Helper()
	for k, v := range want {
		if d[node][k] != v {
			t.Errorf("%s: %s %s = %d, want %d (all: %v)", phase, node, k, d[node][k], v, d[node])
		}
	}
	for k, v := range d[node] {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s sent or received %d unexpected %s", phase, node, v, k)
		}
	}
}

var fig5Nodes = []string{"mn1", "mn2", "ha1", "ha2", "ar1", "ar1p", "ar2", "ar3"}

// The paper's Fig. 5: mobile nodes authenticate to their access routers
// through their home agents, use their care-of addresses for sessions with
// no Return Routability at all, and keep a TCP session alive through moves
// to AR1', to AR3 and back to AR1, each older address through its own anchor.
func TestHA2RFig5(t *testing.T) {
	// Snapshot before the lab starts nodes is all zero: attach phase
	// counts are the totals once attached.
	l := startFig4Scheme(t, config.SchemeHA2R, Options{})
	waitCounter(t, l, "mn1", "mnauth.completed", 1, 5*time.Second)
	waitCounter(t, l, "mn2", "mnauth.completed", 1, 5*time.Second)
	waitCounter(t, l, "mn1", "mh.in.BA.home", 1, 5*time.Second)
	waitCounter(t, l, "mn2", "mh.in.BA.home", 1, 5*time.Second)
	attach := snapshotSignals(l, fig5Nodes...).delta(signalling{})
	mnAttach := map[string]uint64{"mh.out.BU.home": 1, "mh.in.BA.home": 1, "mh.out.MNAuthReq": 1, "mh.in.MNAuthRep": 1}
	arAttach := map[string]uint64{"mh.in.MNAuthReq": 1, "mh.out.MNAuthReq": 1, "mh.in.MNAuthRep": 1, "mh.out.MNAuthRep": 1}
	haAttach := map[string]uint64{"mh.in.BU.home": 1, "mh.out.BA.home": 1, "mh.in.MNAuthReq": 1, "mh.out.MNAuthRep": 1}
	attach.expect(t, "attach", "mn1", mnAttach)
	attach.expect(t, "attach", "mn2", mnAttach)
	attach.expect(t, "attach", "ar1", arAttach)
	attach.expect(t, "attach", "ar2", arAttach)
	attach.expect(t, "attach", "ha1", haAttach)
	attach.expect(t, "attach", "ha2", haAttach)
	if n := l.Node("ar1").Mobility.HA2R.Anchors().Len(); n != 1 {
		t.Fatalf("ar1 anchors %d care-of addresses, want 1", n)
	}
	coa1 := l.Node("mn1").Mobility.MobileNode.Status().CareOf
	coa2 := l.Node("mn2").Mobility.MobileNode.Status().CareOf

	// The first packet of a new session goes directly CoA1 -> CoA2.
	var mu sync.Mutex
	var first []byte
	l.Node("mn2").Host.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		mu.Lock()
		defer mu.Unlock()
		// The session's first packet: TCP, or TCP in a tunnel (anything
		// else, such as a late SIP answer through the home agent, is not
		// the session's).
		tcp := pkt[6] == ip6.ProtoTCP || pkt[6] == ip6.ProtoIPv6 && len(pkt) > 2*ip6.HeaderLen && pkt[ip6.HeaderLen+6] == ip6.ProtoTCP
		if d == overlay.In && first == nil && tcp {
			first = append([]byte(nil), pkt...)
		}
	})
	before := snapshotSignals(l, fig5Nodes...)
	haFwd := l.Node("ha1").Metrics.Get("packets.forwarded") + l.Node("ha2").Metrics.Get("packets.forwarded")
	x := startTCPTransfer(t, l, "mn1", "mn2", netip.AddrPortFrom(coa2, 5002), 4<<20, 512<<10)
	testenv.WaitFor(t, 30*time.Second, "256 KiB of the transfer", func() bool { return x.progress() >= 256<<10 })
	mu.Lock()
	if first == nil || ip6.Header(first).Src() != coa1 || ip6.Header(first).Dst() != coa2 || first[6] != ip6.ProtoTCP {
		t.Fatalf("the session's first packet was not direct CoA1 -> CoA2: %x", first)
	}
	mu.Unlock()
	if got := x.conn.LocalAddr().String(); got != netip.AddrPortFrom(coa1, 0).Addr().String() && !contains(got, coa1.String()) {
		t.Errorf("the session's source is %s, want the care-of address %s", got, coa1)
	}
	if f := l.Node("ha1").Metrics.Get("packets.forwarded") + l.Node("ha2").Metrics.Get("packets.forwarded"); f != haFwd {
		t.Errorf("home agents forwarded %d packets of the session", f-haFwd)
	}
	setup := snapshotSignals(l, fig5Nodes...).delta(before)
	for _, n := range fig5Nodes {
		setup.expect(t, "session setup", n, map[string]uint64{})
	}

	// Moves: AR1 -> AR1' -> AR3 -> AR1, the session going on throughout.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	moves := []struct {
		link    string
		anchors map[string]int // router -> anchors it should hold after the move
	}{
		{"ar1p", map[string]int{"ar1": 1, "ar1p": 1}},
		{"ar3", map[string]int{"ar1": 1, "ar1p": 1, "ar3": 1}},
		{"ar1", map[string]int{"ar1": 1, "ar1p": 1, "ar3": 1}},
	}
	var moveTimes []time.Time
	for i, mv := range moves {
		before := snapshotSignals(l, fig5Nodes...)
		moveTimes = append(moveTimes, time.Now())
		att, err := l.Handover(ctx, "mn1", mv.link)
		if err != nil {
			t.Fatal(err)
		}
		// Authenticated at each new HA2R; back at AR1, whose key mn1 still
		// holds, the anchor just points at CoA1 itself again. Every anchor
		// in use follows each move.
		waitCounter(t, l, "mn1", "mnauth.completed", []uint64{2, 3, 3}[i], 5*time.Second)
		waitCounter(t, l, "mn1", "mh.in.BA.home", uint64(2+i), 5*time.Second)
		waitCounter(t, l, "mn1", "anchor.bound", []uint64{1, 3, 6}[i], 5*time.Second)
		// A connection opened after the move uses the new care-of address.
		c, err := l.Userspace("mn1").DialTCP(ctx, netip.AddrPortFrom(coa2, 5002))
		if err != nil {
			t.Fatalf("after moving to %s: a new connection: %v", mv.link, err)
		}
		if la := c.LocalAddr().String(); !contains(la, att.Address.String()) {
			t.Errorf("after moving to %s a new connection comes from %s, want %s", mv.link, la, att.Address)
		}
		c.Close()
		for r, n := range mv.anchors {
			if got := l.Node(r).Mobility.HA2R.Anchors().Len(); got != n {
				t.Errorf("after moving to %s: %s holds %d anchors, want %d", mv.link, r, got, n)
			}
		}
		d := snapshotSignals(l, fig5Nodes...).delta(before)
		if i == 0 {
			// Fig. 5 step 7: BU to the home agent and to HA2R1, plus the
			// authentication at AR1'.
			d.expect(t, "handover to ar1p", "mn1", map[string]uint64{
				"mh.out.BU.home": 1, "mh.in.BA.home": 1, "mh.out.MNAuthReq": 1, "mh.in.MNAuthRep": 1,
				"mh.out.BU.anchor": 1, "mh.in.BA.anchor": 1})
			d.expect(t, "handover to ar1p", "ar1", map[string]uint64{"mh.in.BU.anchor": 1, "mh.out.BA.anchor": 1})
			d.expect(t, "handover to ar1p", "mn2", map[string]uint64{})
			d.expect(t, "handover to ar1p", "ha2", map[string]uint64{})
		}
	}
	// Back at AR1, CoA1 is local again: AR1 tunnels nothing for it.
	if b, ok := l.Node("ar1").Mobility.HA2R.Anchors().Get(coa1); !ok || b.CareOf != coa1 {
		t.Errorf("ar1's anchor for CoA1 after returning: %+v %v", b, ok)
	}
	encap := l.Node("ar1").Metrics.Get("tunnel.encap")
	got := x.progress()
	testenv.WaitFor(t, 10*time.Second, "the transfer to go on", func() bool { return x.progress() >= min(got+128<<10, 4<<20) })
	if l.Node("ar1").Metrics.Get("tunnel.encap") != encap {
		t.Error("ar1 still tunnels after mn1 came back")
	}
	x.wait(t, 60*time.Second)
	for i, mt := range moveTimes {
		t.Logf("ha2r: TCP gap around move %d (to %s): %v", i+1, moves[i].link, x.maxGap(mt.Add(-50*time.Millisecond), mt.Add(time.Second)))
	}
	if n := l.Node("mn1").Metrics.Get("mh.out.HoTI") + l.Node("mn1").Metrics.Get("mh.out.CoTI") + l.Node("mn2").Metrics.Get("mh.out.HoTI"); n != 0 {
		t.Errorf("%d Return Routability messages in the ha2r scheme", n)
	}
}
