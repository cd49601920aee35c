package mobility

import (
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/tun"
)

// Engine tests drive one engine at a time on a fake clock, through fakes of
// the node it runs on that record what it sends: every step is synchronous,
// so a test advances the clock and looks at what went out.

var (
	quiet   = slog.New(slog.DiscardHandler)
	epoch   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	homeP   = netip.MustParsePrefix("2001:db8:1::/64")
	haAddr  = netip.MustParseAddr("2001:db8:1::1")
	hoa     = netip.MustParseAddr("2001:db8:1::10")
	arP     = netip.MustParsePrefix("2001:db8:11::/64")
	arAddr  = netip.MustParseAddr("2001:db8:11::1")
	careOf1 = netip.MustParseAddr("2001:db8:11::aa")
	ar2P    = netip.MustParsePrefix("2001:db8:12::/64")
	ar2     = netip.MustParseAddr("2001:db8:12::1")
	careOf2 = netip.MustParseAddr("2001:db8:12::bb")
	cnAddr  = netip.MustParseAddr("2001:db8:c::5")
	mnKey   = []byte("0123456789abcdef")
	mnSPI   = uint32(4097)
)

// outbox records the packets an engine sends.
type outbox struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (o *outbox) add(pkt []byte) {
	o.mu.Lock()
	o.pkts = append(o.pkts, append([]byte(nil), pkt...))
	o.mu.Unlock()
}

// take returns what was sent since the last take.
func (o *outbox) take() [][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.pkts
	o.pkts = nil
	return p
}

// messages returns the Mobility Header messages sent since the last take
// (decapsulating what went through a tunnel), with their addressing.
func (o *outbox) messages(t *testing.T) []sentMsg {
	t.Helper()
	var out []sentMsg
	for _, p := range o.take() {
		if inner, err := ip6.Decapsulate(p); err == nil {
			p = inner
		}
		var c ip6.Chain
		if ip6.Walk(p, &c) != nil || c.Upper != ip6.ProtoMH {
			out = append(out, sentMsg{pkt: p})
			continue
		}
		var m mh.Message
		info, err := mh.ParsePacket(p, &m)
		if err != nil {
			t.Fatalf("engine sent a malformed Mobility Header: %v", err)
		}
		out = append(out, sentMsg{pkt: p, info: info, m: m, ok: true})
	}
	return out
}

type sentMsg struct {
	pkt  []byte
	info mh.PacketInfo
	m    mh.Message
	ok   bool // a Mobility Header message
}

// fakeRouter is a RouterPort that records what the engine sends.
type fakeRouter struct {
	outbox
	name  string
	addr  netip.Addr
	clk   *clock.Fake
	links []overlay.LinkConfig
	mtu   int
	hook  overlay.RouterHook

	mu        sync.Mutex
	tooBig    []int
	forgotten []netip.Addr
}

func newFakeRouter(name string, addr netip.Addr, clk *clock.Fake, links ...overlay.LinkConfig) *fakeRouter {
	return &fakeRouter{name: name, addr: addr, clk: clk, links: links, mtu: 1448}
}

func (r *fakeRouter) Name() string                 { return r.name }
func (r *fakeRouter) Address() netip.Addr          { return r.addr }
func (r *fakeRouter) Clock() clock.Clock           { return r.clk }
func (r *fakeRouter) Links() []overlay.LinkConfig  { return r.links }
func (r *fakeRouter) BackboneMTU() int             { return r.mtu }
func (r *fakeRouter) Send(pkt []byte)              { r.add(pkt) }
func (r *fakeRouter) SetHook(h overlay.RouterHook) { r.hook = h }
func (r *fakeRouter) PacketTooBig(mtu int, _ []byte) {
	r.mu.Lock()
	r.tooBig = append(r.tooBig, mtu)
	r.mu.Unlock()
}
func (r *fakeRouter) ForgetNeighbour(a netip.Addr) {
	r.mu.Lock()
	r.forgotten = append(r.forgotten, a)
	r.mu.Unlock()
}

// fakeHost is a HostPort that records what the engine sends.
type fakeHost struct {
	outbox
	delivered outbox // what the engine handed the host's own stack
	announced []netip.Addr
	name      string
	clk       *clock.Fake
	dev       tun.Device
	hook      overlay.HostHook
	onAttach  []func(overlay.Attachment)
	onPrep    []func(overlay.Attachment)
	next      *overlay.Attachment // prepared (make-before-break)
	commits   int
}

func (h *fakeHost) Name() string                          { return h.name }
func (h *fakeHost) Clock() clock.Clock                    { return h.clk }
func (h *fakeHost) Device() tun.Device                    { return h.dev }
func (h *fakeHost) Send(pkt []byte) bool                  { h.add(pkt); return true }
func (h *fakeHost) Announce(a netip.Addr)                 { h.announced = append(h.announced, a) }
func (h *fakeHost) Deliver(pkt []byte)                    { h.delivered.add(pkt) }
func (h *fakeHost) SetHook(k overlay.HostHook)            { h.hook = k }
func (h *fakeHost) OnAttach(f func(overlay.Attachment))   { h.onAttach = append(h.onAttach, f) }
func (h *fakeHost) Current() (overlay.Attachment, bool)   { return overlay.Attachment{}, false }
func (h *fakeHost) attach(a overlay.Attachment)           { h.onAttach[0](a) }
func (h *fakeHost) OnPrepared(f func(overlay.Attachment)) { h.onPrep = append(h.onPrep, f) }

// prepare completes a make-before-break attachment to a.
func (h *fakeHost) prepare(a overlay.Attachment) {
	a.Prepared = true
	h.next = &a
	h.onPrep[0](a)
}

func (h *fakeHost) Commit() (overlay.Attachment, error) {
	if h.next == nil {
		return overlay.Attachment{}, overlay.ErrNotAttached
	}
	a := *h.next
	h.next = nil
	h.commits++
	h.onAttach[0](a)
	return a, nil
}
func (h *fakeHost) deliver(pkt []byte) overlay.Verdict { return h.hook.Inbound(overlay.NewPacket(pkt)) }
func (h *fakeHost) outbound(pkt []byte) *overlay.Packet {
	p := overlay.NewPacket(pkt)
	h.hook.Outbound(p)
	return p
}
func newSignals(name string, clk clock.Clock) *Signals { return NewSignals(name, &metrics.Set{}, clk) }
func counter(s *Signals, name string) uint64           { return s.Metrics().Get(name) }
func dropped(s *Signals, d Drop) uint64                { return s.Metrics().Get("mobility.drop." + d.String()) }
func linkTo(name string, p netip.Prefix) overlay.HostLink {
	return overlay.HostLink{Name: name, Prefix: p}
}

// attachment is where a mobile node is after a Router Advertisement.
func attachment(link string, p netip.Prefix, addr netip.Addr) overlay.Attachment {
	return overlay.Attachment{Link: linkTo(link, p), Prefix: p, Address: addr, RouterLL: overlay.LinkLocal("r", link)}
}

// homeBU builds a home registration BU as a mobile node at careOf sends it.
func homeBU(seq uint16, lifetime time.Duration, careOf netip.Addr, at time.Time) []byte {
	bu := &mh.Message{Type: mh.TypeBU, Sequence: seq, Flags: mh.FlagA | mh.FlagH}
	bu.SetLifetime(lifetime)
	cred := mnhaCredential{spi: mnSPI, key: mnKey}
	a := mh.Addressing{Src: careOf, Dst: haAddr, HomeAddress: hoa}
	if careOf == hoa {
		a = mh.Addressing{Src: hoa, Dst: haAddr}
	}
	return mh.BuildPacket(a, 64, bu, cred.authenticate(bu, at, careOf, hoa))
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
