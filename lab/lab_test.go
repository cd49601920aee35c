package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

func startFig4(t *testing.T, o Options) *Lab {
	t.Helper()
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return startTopo(t, topo, o)
}

func startTopo(t testing.TB, topo *config.Topology, o Options) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Start(ctx, topo, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// capture records copies of the packets a node sees that match keep.
type capture struct {
	mu   sync.Mutex
	pkts [][]byte
	ch   chan []byte
}

func tapHost(l *Lab, name string, dir overlay.Direction, keep func([]byte) bool) *capture {
	c := &capture{ch: make(chan []byte, 1024)}
	l.Node(name).Host.SetTap(func(d overlay.Direction, _ uint32, _ time.Time, pkt []byte) {
		if d != dir || !keep(pkt) {
			return
		}
		cp := append([]byte(nil), pkt...)
		c.mu.Lock()
		c.pkts = append(c.pkts, cp)
		c.mu.Unlock()
		select {
		case c.ch <- cp:
		default:
		}
	})
	return c
}

func (c *capture) wait(t *testing.T, d time.Duration) []byte {
	t.Helper()
	select {
	case p := <-c.ch:
		return p
	case <-time.After(d):
		t.Fatal("no matching packet captured")
		return nil
	}
}

func icmpType(pkt []byte) int {
	if len(pkt) <= ip6.HeaderLen || pkt[6] != ip6.ProtoICMPv6 {
		return -1
	}
	return int(pkt[ip6.HeaderLen])
}

// echoRequest builds an ICMPv6 echo request with a given hop limit and size.
func echoRequest(src, dst netip.Addr, hopLimit uint8, size int, id uint16) []byte {
	body := make([]byte, size-ip6.HeaderLen)
	body[0] = 128
	binary.BigEndian.PutUint16(body[4:], id)
	binary.BigEndian.PutUint16(body[2:], ip6.Checksum(src, dst, ip6.ProtoICMPv6, body))
	return ip6.Build(ip6.Fields{NextHeader: ip6.ProtoICMPv6, HopLimit: hopLimit, Src: src, Dst: dst}, body)
}

func addrOf(t *testing.T, l *Lab, host string) netip.Addr {
	t.Helper()
	a, ok := l.Node(host).Host.Current()
	if !ok {
		t.Fatalf("%s is not attached", host)
	}
	return a.Address
}

// A host under AR1 pings a host under AR2 across the backbone and sends it
// 10 MB over TCP; the bytes arrive intact and each router on the way
// decrements the hop limit once.
func TestFig4PingAndTCPAcrossBackbone(t *testing.T) {
	l := startFig4(t, Options{})
	mn1, mn2 := addrOf(t, l, "mn1"), addrOf(t, l, "mn2")
	if !l.Topo.LinkByName("ar1").Prefix.Contains(mn1) || !l.Topo.LinkByName("ar2").Prefix.Contains(mn2) {
		t.Fatalf("addresses %s, %s are not from their links' prefixes", mn1, mn2)
	}
	arrived := tapHost(l, "mn2", overlay.In, func(p []byte) bool {
		return icmpType(p) == 128 && ip6.Header(p).Src() == mn1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, err := l.Userspace("mn1").Ping(ctx, mn1, mn2, []byte("hello"))
	if err != nil {
		t.Fatalf("ping %s: %v", mn2, err)
	}
	// 2 ms radio + 15 ms AR1-AR2 + 2 ms radio, each way.
	if rtt < 38*time.Millisecond {
		t.Errorf("rtt %v is below the emulated 38 ms", rtt)
	}
	req := arrived.wait(t, time.Second)
	sent := uint8(64) // gVisor's default hop limit
	if got := ip6.Header(req).HopLimit(); got != sent-2 {
		t.Errorf("echo request arrived with hop limit %d, want %d (two routers)", got, sent-2)
	}

	const size = 10 << 20
	ln, err := l.Userspace("mn2").ListenTCP(netip.AddrPortFrom(mn2, 5001))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan [32]byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- [32]byte{}
			return
		}
		defer c.Close()
		h := sha256.New()
		io.Copy(h, c)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		got <- sum
	}()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	c, err := l.Userspace("mn1").DialTCPFrom(ctx, mn1, netip.AddrPortFrom(mn2, 5001))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case sum := <-got:
		if sum != want {
			t.Fatal("the 10 MB arrived corrupted")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the 10 MB did not arrive")
	}
	t.Logf("10 MB in %v over a 38 ms RTT path", time.Since(start))
	if f := l.Node("ar1").Metrics.Get("packets.forwarded"); f < size/1500 {
		t.Errorf("ar1 forwarded %d packets for 10 MB", f)
	}
}

const errTopo = `name: errors
mtu: 1448
links:
  - {name: a, prefix: "2001:db8:a::/64", router: r1}
  - {name: b, prefix: "2001:db8:b::/64", router: r2, mtu: 1280}
nodes:
  - {name: r1, role: ar, underlay: "127.0.0.1:1"}
  - {name: r2, role: ar, underlay: "127.0.0.1:2"}
  - {name: h1, role: cn, access: [{link: a}]}
  - {name: h2, role: cn, access: [{link: b}]}
`

// ICMPv6 errors as RFC 4443 wants them, each from the router that saw the
// problem.
func TestICMPErrors(t *testing.T) {
	topo, err := config.Parse("errors.yaml", []byte(errTopo))
	if err != nil {
		t.Fatal(err)
	}
	l := startTopo(t, topo, Options{NoDelay: true})
	h1, h2 := addrOf(t, l, "h1"), addrOf(t, l, "h2")
	r1, r2 := l.Node("r1").Router.Address(), l.Node("r2").Router.Address()
	errs := tapHost(l, "h1", overlay.In, func(p []byte) bool { t := icmpType(p); return t >= 1 && t <= 4 })
	cases := []struct {
		name       string
		pkt        []byte
		typ, code  uint8
		from       netip.Addr
		param      uint32
		waitLonger bool
		hops       uint8 // routers the packet crossed before the one that answers
	}{
		{"unknown prefix", echoRequest(h1, netip.MustParseAddr("2001:db8:ffff::1"), 64, 100, 1), 1, 0, r1, 0, false, 0},
		{"hop limit 1 expires at the first router", echoRequest(h1, h2, 1, 100, 2), 3, 0, r1, 0, false, 0},
		{"hop limit 2 expires at the second router", echoRequest(h1, h2, 2, 100, 3), 3, 0, r2, 0, false, 1},
		{"too big for the 1280-byte link", echoRequest(h1, h2, 64, 1400, 4), 2, 0, r2, 1280, false, 1},
		{"nobody has the address", echoRequest(h1, netip.MustParseAddr("2001:db8:b::dead"), 64, 100, 5), 1, 3, r2, 0, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !l.Node("h1").Host.Send(c.pkt) {
				t.Fatal("h1 could not send")
			}
			wait := time.Second
			if c.waitLonger {
				wait = 5 * time.Second // three solicitations, one second apart
			}
			e := errs.wait(t, wait)
			h := ip6.Header(e)
			body := e[ip6.HeaderLen:]
			if body[0] != c.typ || body[1] != c.code {
				t.Fatalf("got ICMPv6 type %d code %d, want %d/%d", body[0], body[1], c.typ, c.code)
			}
			if h.Src() != c.from || h.Dst() != h1 {
				t.Errorf("error from %s to %s, want from %s to %s", h.Src(), h.Dst(), c.from, h1)
			}
			if got := binary.BigEndian.Uint32(body[4:8]); got != c.param {
				t.Errorf("parameter %d, want %d", got, c.param)
			}
			if ip6.Checksum(h.Src(), h.Dst(), ip6.ProtoICMPv6, body) != 0 && ip6.Fold(ip6.Sum(body, ip6.PseudoHeaderSum(h.Src(), h.Dst(), ip6.ProtoICMPv6, len(body)))) != 0 {
				t.Error("bad checksum")
			}
			// The quote is the packet as it reached the answering router.
			quoted := append([]byte(nil), c.pkt[:ip6.HeaderLen]...)
			quoted[7] -= c.hops
			if !bytes.Equal(body[8:8+ip6.HeaderLen], quoted) {
				t.Errorf("the error quotes hop limit %d, want the header as it arrived (hop limit %d)", body[8+7], quoted[7])
			}
			if len(e) > ip6.MinMTU {
				t.Errorf("error is %d bytes, more than the minimum MTU", len(e))
			}
		})
	}
	// No error about an error.
	before := l.Node("r1").Metrics.Get("icmp.errors.sent")
	noRoute := l.Node("r1").Metrics.Get("drop.no_route")
	bad := echoRequest(h1, netip.MustParseAddr("2001:db8:ffff::2"), 64, 100, 9)
	bad[ip6.HeaderLen] = 1 // a destination unreachable, not an echo
	l.Node("h1").Host.Send(bad)
	testenv.WaitFor(t, 5*time.Second, "r1 to drop the error without a route", func() bool {
		return l.Node("r1").Metrics.Get("drop.no_route") > noRoute
	})
	if after := l.Node("r1").Metrics.Get("icmp.errors.sent"); after != before {
		t.Errorf("r1 answered an ICMPv6 error with an error")
	}
	if l.Node("r1").Metrics.Get("drop.no_route") < 2 {
		t.Error("drops without a route were not counted")
	}
}
