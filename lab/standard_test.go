package lab

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

func startFig4Scheme(t testing.TB, scheme config.Scheme, o Options) *Lab {
	t.Helper()
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	UseScheme(topo, scheme)
	return startTopo(t, topo, o)
}

// waitCounter waits until a node's counter reaches at least want.
func waitCounter(t testing.TB, l *Lab, node, counter string, want uint64, limit time.Duration) {
	t.Helper()
	testenv.WaitFor(t, limit, fmt.Sprintf("%s's %s to reach %d", node, counter, want), func() bool {
		return l.Node(node).Metrics.Get(counter) >= want
	})
}

// udpFlow sends datagrams from one node's stack to another's every
// interval until stopped, and counts what arrives.
type udpFlow struct {
	mu       sync.Mutex
	received int
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startUDPFlow(t *testing.T, l *Lab, from, to string, dst netip.Addr, port uint16, interval time.Duration) *udpFlow {
	t.Helper()
	f := &udpFlow{stop: make(chan struct{})}
	rx, err := l.Userspace(to).ListenUDP(netip.AddrPortFrom(netip.IPv6Unspecified(), port))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := l.Userspace(from).DialUDP(netip.AddrPort{}, netip.AddrPortFrom(dst, port))
	if err != nil {
		t.Fatal(err)
	}
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, 2000)
		for {
			rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := rx.Read(buf); err == nil {
				f.mu.Lock()
				f.received++
				f.mu.Unlock()
			}
			select {
			case <-f.stop:
				rx.Close()
				return
			default:
			}
		}
	}()
	go func() {
		defer f.wg.Done()
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-f.stop:
				tx.Close()
				return
			case <-tk.C:
				tx.Write([]byte("standard mobile ipv6 test datagram"))
			}
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *udpFlow) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
}

func (f *udpFlow) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received
}

// Fig. 1 of the paper: two mobile nodes away from home exchange traffic,
// first through both home agents, then, after Return Routability in both
// directions, directly between their care-of addresses with the Home Address
// option and the type 2 routing header.
func TestStandardMIPv6Fig1(t *testing.T) {
	l := startFig4Scheme(t, config.SchemeStandard, Options{})
	hoa1, hoa2 := l.Topo.NodeByName("mn1").HomeAddress, l.Topo.NodeByName("mn2").HomeAddress
	// Home registration first (step 1), and the phones' SIP registrations,
	// which go through the home agents too, out of the way.
	for _, mn := range []string{"mn1", "mn2"} {
		waitCounter(t, l, mn, "mh.in.BA.home", 1, 5*time.Second)
		waitCounter(t, l, mn, "sip.registered", 1, 10*time.Second)
	}
	for _, mn := range []string{"mn1", "mn2"} {
		st := l.Node(mn).Mobility.MobileNode.Status()
		if !st.HomeBound || st.AtHome {
			t.Fatalf("%s not registered: %+v", mn, st)
		}
		for _, a := range l.Node(mn).Dev.Addresses() {
			if a.Prefix.Addr() != st.Home {
				t.Errorf("%s's applications see %s; only the home address may appear", mn, a.Prefix)
			}
		}
	}
	coa1, coa2 := l.Node("mn1").Mobility.MobileNode.Status().CareOf, l.Node("mn2").Mobility.MobileNode.Status().CareOf

	// Watch what arrives at mn2 from mn1 on the link: tunnelled or direct.
	var mu sync.Mutex
	var direct, tunnelled, directWithHeaders int
	l.Node("mn2").Host.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		if d != overlay.In {
			return
		}
		h := ip6.Header(pkt)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case h.NextHeader() == ip6.ProtoIPv6 && ip6.Header(pkt[ip6.HeaderLen:]).Src() == hoa1:
			tunnelled++
		case h.Src() == coa1 && h.Dst() == coa2:
			direct++
			var c ip6.Chain
			if ip6.Walk(pkt, &c) == nil {
				_, rh := c.Find(ip6.ProtoRouting)
				_, do := c.Find(ip6.ProtoDstOpts)
				if rh && do && c.Upper == ip6.ProtoUDP {
					directWithHeaders++
				}
			}
		}
	})
	ha1Before := l.Node("ha1").Metrics.Get("tunnel.decap")
	ha2Before := l.Node("ha2").Metrics.Get("tunnel.encap")

	f12 := startUDPFlow(t, l, "mn1", "mn2", hoa2, 7000, 20*time.Millisecond)
	f21 := startUDPFlow(t, l, "mn2", "mn1", hoa1, 7001, 20*time.Millisecond)
	waitCounter(t, l, "mn1", "rr.completed", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "rr.completed", 1, 10*time.Second)
	counts := func() (tun, dir, dirHdr int) {
		mu.Lock()
		defer mu.Unlock()
		return tunnelled, direct, directWithHeaders
	}
	// Route optimisation is in place once packets arrive directly, and the
	// tunnels are drained once each end has what the other put in: the
	// home agents decapsulated all that mn1 and mn2 tunnelled, and they
	// received all that the home agents tunnelled to them.
	m := func(node, c string) uint64 { return l.Node(node).Metrics.Get(c) }
	testenv.WaitFor(t, 5*time.Second, "direct packets and drained tunnels", func() bool {
		_, d, _ := counts()
		return d >= 10 && m("ha1", "tunnel.decap") == m("mn1", "tunnel.encap") && m("ha2", "tunnel.decap") == m("mn2", "tunnel.encap") &&
			m("mn1", "tunnel.decap") == m("ha1", "tunnel.encap") && m("mn2", "tunnel.decap") == m("ha2", "tunnel.encap")
	})
	tunBefore, dirBefore, _ := counts()
	if tunBefore == 0 {
		t.Error("no packet went through the home agents before Return Routability")
	}
	if l.Node("ha1").Metrics.Get("tunnel.decap") == ha1Before || l.Node("ha2").Metrics.Get("tunnel.encap") == ha2Before {
		t.Error("the home agents' counters do not show the detour")
	}
	ha1Mid, ha2Mid := l.Node("ha1").Metrics.Get("tunnel.decap"), l.Node("ha2").Metrics.Get("tunnel.encap")
	testenv.WaitFor(t, 5*time.Second, "30 more direct packets", func() bool { _, d, _ := counts(); return d >= dirBefore+30 })
	tunAfter, dirAfter, dirHdr := counts()
	if tunAfter != tunBefore {
		t.Errorf("%d more packets came through the tunnel after route optimisation", tunAfter-tunBefore)
	}
	if dirAfter-dirBefore < 30 || dirHdr < 30 {
		t.Errorf("only %d direct packets (%d with HAO and RH2) after route optimisation", dirAfter-dirBefore, dirHdr)
	}
	if ha1Mid != l.Node("ha1").Metrics.Get("tunnel.decap") || ha2Mid != l.Node("ha2").Metrics.Get("tunnel.encap") {
		t.Errorf("home agents still carry mn1's traffic after route optimisation: ha1 decap %d -> %d, ha2 encap %d -> %d\nmn1 %v\nmn2 %v",
			ha1Mid, m("ha1", "tunnel.decap"), ha2Mid, m("ha2", "tunnel.encap"), l.Node("mn1").Metrics.Snapshot(), l.Node("mn2").Metrics.Snapshot())
	}
	f12.close()
	f21.close()
	if f12.count() < 50 || f21.count() < 50 {
		t.Errorf("datagrams received: %d and %d", f12.count(), f21.count())
	}

	// The signalling of Fig. 1, message by message, at each mobile node.
	want := map[string]uint64{
		"mh.out.BU.home": 1, "mh.in.BA.home": 1,
		"mh.out.HoTI": 1, "mh.out.CoTI": 1, "mh.in.HoT": 1, "mh.in.CoT": 1, "mh.out.BU": 1, "mh.in.BA": 1,
		"mh.in.HoTI": 1, "mh.in.CoTI": 1, "mh.out.HoT": 1, "mh.out.CoT": 1, "mh.in.BU": 1, "mh.out.BA": 1,
	}
	for _, mn := range []string{"mn1", "mn2"} {
		m := l.Node(mn).Metrics
		for k, v := range want {
			if got := m.Get(k); got != v {
				t.Errorf("%s: %s = %d, want %d", mn, k, got, v)
			}
		}
	}
	for _, ha := range []string{"ha1", "ha2"} {
		m := l.Node(ha).Metrics
		if m.Get("mh.in.BU.home") != 1 || m.Get("mh.out.BA.home") != 1 {
			t.Errorf("%s: BU.home in %d, BA.home out %d", ha, m.Get("mh.in.BU.home"), m.Get("mh.out.BA.home"))
		}
	}
	_ = context.Background
}

// MN1 moves from AR1 to AR1' during a TCP transfer with MN2: it registers
// its new care-of address, runs Return Routability with MN2 again, and the
// transfer completes without a reset. The test reports the interruption.
func TestStandardMoveDuringTCP(t *testing.T) {
	l := startFig4Scheme(t, config.SchemeStandard, Options{})
	hoa2 := l.Topo.NodeByName("mn2").HomeAddress
	waitCounter(t, l, "mn1", "mh.in.BA.home", 1, 5*time.Second)
	waitCounter(t, l, "mn2", "mh.in.BA.home", 1, 5*time.Second)
	x := startTCPTransfer(t, l, "mn1", "mn2", netip.AddrPortFrom(hoa2, 5001), 3<<20, 1<<20)
	waitCounter(t, l, "mn1", "rr.completed", 1, 10*time.Second)
	waitCounter(t, l, "mn2", "rr.completed", 1, 10*time.Second)
	testenv.WaitFor(t, 30*time.Second, "1 MiB of the transfer", func() bool { return x.progress() >= 1<<20 })
	moved := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	att, err := l.Handover(ctx, "mn1", "ar1p")
	if err != nil {
		t.Fatal(err)
	}
	x.wait(t, 60*time.Second)
	m1 := l.Node("mn1").Metrics
	if m1.Get("mh.out.BU.home") < 2 || m1.Get("mh.in.BA.home") < 2 {
		t.Errorf("no re-registration: BU.home %d, BA.home %d", m1.Get("mh.out.BU.home"), m1.Get("mh.in.BA.home"))
	}
	if m1.Get("mh.out.CoTI") < 2 || m1.Get("mh.out.BU") < 2 || m1.Get("mh.in.BA") < 2 {
		t.Errorf("no Return Routability after the move: CoTI %d, BU %d, BA %d", m1.Get("mh.out.CoTI"), m1.Get("mh.out.BU"), m1.Get("mh.in.BA"))
	}
	if b, ok := l.Node("mn2").Mobility.MobileNode.Correspondent().Bindings().Get(l.Topo.NodeByName("mn1").HomeAddress); !ok || b.CareOf != att.Address {
		t.Errorf("mn2's binding for mn1 is %+v, want care-of %s", b, att.Address)
	}
	gap := x.maxGap(moved.Add(-50*time.Millisecond), moved.Add(2*time.Second))
	t.Logf("standard MIPv6: TCP interruption around the move: %v (home token reused: HoTI sent %d times)", gap, m1.Get("mh.out.HoTI"))
}
