package lab

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/tun"
)

// pingUntil pings dst from src (of node) with a payload of size bytes,
// until an answer comes or tries run out: the first packets of a path whose
// MTU is not known yet may be lost to a Packet Too Big.
func pingUntil(t *testing.T, l *Lab, node string, src, dst netip.Addr, size, tries int) {
	t.Helper()
	var err error
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = l.Userspace(node).Ping(ctx, src, dst, make([]byte, size))
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, tun.ErrPingTimeout) {
			break
		}
	}
	t.Fatalf("%s: ping %s -> %s with %d bytes: %v", node, src, dst, size, err)
}

// startMTU starts fig4 with the ar1p access link at IPv6's minimum MTU.
func startMTU(t *testing.T, scheme config.Scheme) *Lab {
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	UseScheme(topo, scheme)
	topo.LinkByName("ar1p").MTU = 1280
	return startTopo(t, topo, Options{NoDelay: true})
}

// With mn1 on a 1280-byte link, 1280-byte packets reach it through its home
// agent's tunnel (fragmented by the home agent, reassembled by mn1) and
// leave it through the reverse tunnel (fragmented by mn1), and a TCP
// transfer whose segments are bigger adapts to the Packet Too Big the
// tunnel entry points send.
func TestMTU1280HomeAgentTunnel(t *testing.T) {
	l := startMTU(t, config.SchemeStandard)
	waitCounter(t, l, "mn1", "mh.in.BA.home", 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.Handover(ctx, "mn1", "ar1p"); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, l, "mn1", "mh.in.BA.home", 2, 5*time.Second)
	hoa1 := l.Topo.NodeByName("mn1").HomeAddress
	cn := addrOf(t, l, "cn")
	pingUntil(t, l, "cn", cn, hoa1, 1232, 5)
	if l.Node("mn1").Metrics.Get("fragments.reassembled") == 0 || l.Node("mn1").Metrics.Get("fragments.out") == 0 {
		t.Errorf("no tunnel fragments: %v", l.Node("mn1").Metrics.Snapshot())
	}
	// TCP from cn to mn1's home address, segments as big as the stacks'
	// 1400-byte MTU allows: the home agent's Packet Too Big brings them
	// down to 1280, which the tunnel then fragments.
	x := startTCPTransfer(t, l, "cn", "mn1", netip.AddrPortFrom(hoa1, 5003), 1<<20, 4<<20)
	x.wait(t, 60*time.Second)
	if l.Node("ha1").Metrics.Get("tunnel.packet_too_big") == 0 {
		t.Error("the home agent never heard that its tunnel was too small")
	}
}

// The same for an HA2R anchor: after mn1 moves from ar1 to the 1280-byte
// link, packets for its old care-of address cross ar1's tunnel.
func TestMTU1280AnchorTunnel(t *testing.T) {
	l := startMTU(t, config.SchemeHA2R)
	waitCounter(t, l, "mn1", "mnauth.completed", 1, 5*time.Second)
	waitCounter(t, l, "mn2", "mnauth.completed", 1, 5*time.Second)
	coa1, coa2 := addrOf(t, l, "mn1"), addrOf(t, l, "mn2")
	x := startTCPTransfer(t, l, "mn2", "mn1", netip.AddrPortFrom(coa1, 5004), 2<<20, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := l.Handover(ctx, "mn1", "ar1p"); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, l, "mn1", "anchor.bound", 1, 5*time.Second)
	pingUntil(t, l, "mn2", coa2, coa1, 1232, 5)
	pingUntil(t, l, "mn1", coa1, coa2, 1232, 5)
	x.wait(t, 60*time.Second)
	if l.Node("ar1").Metrics.Get("fragments.out") == 0 || l.Node("mn1").Metrics.Get("fragments.out") == 0 {
		t.Errorf("the anchor tunnel was not fragmented: ar1 %d, mn1 %d", l.Node("ar1").Metrics.Get("fragments.out"), l.Node("mn1").Metrics.Get("fragments.out"))
	}
}
