package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/tun"
	"github.com/mdlayher/ndp"
)

// HostLink is an access link a host may attach to.
type HostLink struct {
	Name    string
	ID      uint32
	Router  netip.AddrPort // the serving router's underlay endpoint
	Prefix  netip.Prefix   // expected prefix (the RA is authoritative)
	Network netip.Prefix   // the underlay network that leads to it, if any
}

// HostConfig describes one host (mobile node or fixed correspondent).
type HostConfig struct {
	Name  string
	Links []HostLink
	// Keepalive is how often the host sends a keepalive frame to its router
	// to hold NAT mappings (25 s, below common UDP NAT timeouts).
	Keepalive time.Duration
	// RSInterval is the Router Solicitation retransmission period while
	// attaching.
	RSInterval time.Duration
	// ManageAddresses puts the address formed on the current link on the
	// device and removes the previous one; a mobility engine that decides
	// addresses itself turns it off.
	ManageAddresses bool
	// StaticAddr is used instead of the autoconfigured address on the link
	// whose prefix contains it.
	StaticAddr netip.Addr
	Clock      clock.Clock
	Log        *slog.Logger
	Metrics    *metrics.Set
}

// Attachment is the host's state on an access link once a Router
// Advertisement has been received there.
type Attachment struct {
	Link     HostLink
	Prefix   netip.Prefix
	Address  netip.Addr // formed from Prefix with the stable interface identifier
	RouterLL netip.Addr
	MTU      int
	At       time.Time
	Seq      uint64 // increases with every attach
}

// HostHook is how a mobility engine sees a host's packets.
type HostHook interface {
	// Outbound is offered packets from applications before they leave; it
	// may rewrite them in place (tunnel, Home Address option, routing header).
	Outbound(p *Packet) Verdict
	// Inbound is offered packets from the link before they reach
	// applications; it may rewrite them (decapsulate) or consume them
	// (mobility signalling).
	Inbound(p *Packet) Verdict
}

// Host attaches to one access link at a time, forms its address there from
// Router Advertisements, and carries its applications' packets to and from
// the link's router.
type Host struct {
	cfg  HostConfig
	ll   LinkAddr
	log  *slog.Logger
	clk  clock.Clock
	m    *metrics.Set
	bind Bind
	dev  tun.Device
	hook atomic.Pointer[hostHookBox]
	tap  Tap

	links map[string]HostLink

	mu       sync.Mutex
	cur      atomic.Pointer[hostState]
	rsTimer  clock.Timer
	rsCount  int
	keepT    clock.Timer
	seq      uint64
	onAttach []func(Attachment)
	onMove   []func(link string)

	c       hostCounters
	port    uint16
	wg      sync.WaitGroup
	closing atomic.Bool
}

type hostHookBox struct{ h HostHook }

// hostState is the current link; att is nil until the router answered.
type hostState struct {
	link HostLink
	att  *Attachment
}

type hostCounters struct {
	framesIn, framesOut, fromTun, toTun, keepOut *atomic.Uint64
	drop                                         map[string]*atomic.Uint64
}

var hostDropReasons = []string{
	"frame.short", "frame.magic", "frame.version", "frame.flags", "frame.type", "frame.not_ipv6",
	"ipv6.malformed", "not_attached", "multicast", "nd.invalid", "underlay.send", "tun.write", "too_big",
}

// NewHost builds a host; Start makes it run and Attach puts it on a link.
func NewHost(cfg HostConfig, bind Bind, dev tun.Device) (*Host, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Set{}
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 25 * time.Second
	}
	if cfg.RSInterval == 0 {
		cfg.RSInterval = 200 * time.Millisecond
	}
	h := &Host{
		cfg: cfg, ll: NodeLinkAddr(cfg.Name), log: cfg.Log.With("node", cfg.Name), clk: cfg.Clock, m: cfg.Metrics,
		bind: bind, dev: dev, links: map[string]HostLink{},
	}
	for _, l := range cfg.Links {
		h.links[l.Name] = l
	}
	m := cfg.Metrics
	h.c = hostCounters{
		framesIn: m.Counter("frames.in"), framesOut: m.Counter("frames.out"),
		fromTun: m.Counter("packets.from_tun"), toTun: m.Counter("packets.to_tun"),
		keepOut: m.Counter("keepalive.out"), drop: map[string]*atomic.Uint64{},
	}
	for _, r := range hostDropReasons {
		h.c.drop[r] = m.Counter("drop." + r)
	}
	return h, nil
}

func (h *Host) drop(reason string) { h.c.drop[reason].Add(1) }

// Name, LinkAddr, Metrics, Device and Clock describe the host.
func (h *Host) Name() string          { return h.cfg.Name }
func (h *Host) LinkAddr() LinkAddr    { return h.ll }
func (h *Host) Metrics() *metrics.Set { return h.m }
func (h *Host) Device() tun.Device    { return h.dev }
func (h *Host) Clock() clock.Clock    { return h.clk }
func (h *Host) Port() uint16          { return h.port }
func (h *Host) Links() []HostLink     { return h.cfg.Links }

// SetHook installs the mobility engine (nil removes it).
func (h *Host) SetHook(k HostHook) {
	if k == nil {
		h.hook.Store(nil)
		return
	}
	h.hook.Store(&hostHookBox{k})
}

// SetTap installs a function that sees every packet the host sends and
// receives on its link.
func (h *Host) SetTap(f TapFunc) { h.tap.Set(f) }

// OnAttach registers f to be called (from the host's receive goroutine)
// every time the host completes an attach to a link.
func (h *Host) OnAttach(f func(Attachment)) {
	h.mu.Lock()
	h.onAttach = append(h.onAttach, f)
	h.mu.Unlock()
}

// OnMove registers f to be called whenever an attach to a link begins (a
// handover starts), before any packet of the move is sent.
func (h *Host) OnMove(f func(link string)) {
	h.mu.Lock()
	h.onMove = append(h.onMove, f)
	h.mu.Unlock()
}

// Current returns the current attachment, or false while attaching.
func (h *Host) Current() (Attachment, bool) {
	s := h.cur.Load()
	if s == nil || s.att == nil {
		return Attachment{}, false
	}
	return *s.att, true
}

// CurrentLink returns the link the host is on or attaching to.
func (h *Host) CurrentLink() (HostLink, bool) {
	s := h.cur.Load()
	if s == nil {
		return HostLink{}, false
	}
	return s.link, true
}

// Start opens the underlay (port 0 picks one) and runs the host.
func (h *Host) Start(port uint16) error {
	fns, actual, err := h.bind.Open(port)
	if err != nil {
		return fmt.Errorf("overlay: host %s: opening underlay port %d: %w", h.cfg.Name, port, err)
	}
	h.port = actual
	for _, fn := range fns {
		h.wg.Add(1)
		go h.receiveLoop(fn)
	}
	if h.dev != nil {
		h.wg.Add(1)
		go h.tunLoop()
	}
	h.mu.Lock()
	h.keepT = h.clk.AfterFunc(h.cfg.Keepalive, h.keepalive)
	h.mu.Unlock()
	return nil
}

// Close stops the host.
func (h *Host) Close() error {
	if h.closing.Swap(true) {
		return nil
	}
	h.mu.Lock()
	if h.rsTimer != nil {
		h.rsTimer.Stop()
	}
	if h.keepT != nil {
		h.keepT.Stop()
	}
	h.mu.Unlock()
	err := h.bind.Close()
	if h.dev != nil {
		h.dev.Close()
	}
	h.wg.Wait()
	return err
}

// ErrUnknownLink is returned by Attach for a link the host may not use.
var ErrUnknownLink = errors.New("overlay: not one of this host's access links")

// Attach moves the host to link: it solicits the link's router, and once the
// Router Advertisement arrives it forms its address there and announces the
// attach to OnAttach subscribers.
func (h *Host) Attach(link string) error {
	l, ok := h.links[link]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownLink, link)
	}
	h.mu.Lock()
	h.cur.Store(&hostState{link: l})
	h.rsCount = 0
	if h.rsTimer != nil {
		h.rsTimer.Stop()
	}
	h.rsTimer = h.clk.AfterFunc(0, h.solicitRouter)
	moves := append([]func(string){}, h.onMove...)
	h.mu.Unlock()
	for _, f := range moves {
		f(link)
	}
	h.m.Add("attach.started", 1)
	h.log.Info("attaching", "link", link, "router", l.Router)
	return nil
}

// solicitRouter sends a Router Solicitation and schedules the next one until
// an advertisement arrives: quickly at first, then every 2 s.
func (h *Host) solicitRouter() {
	if h.closing.Load() {
		return
	}
	s := h.cur.Load()
	if s == nil || s.att != nil {
		return
	}
	ll := LinkLocal(h.cfg.Name, s.link.Name)
	sent := false
	if rs, err := buildRS(ll, h.ll); err == nil {
		h.m.Add("nd.rs.out", 1)
		sent = h.sendFrame(s.link, rs)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cur.Load() != s {
		return
	}
	h.rsCount++
	// A network that has just come up often loses the first packets (no
	// route yet, or a device still activating), so the first retries come
	// quickly: 50 ms, 100 ms, then RSInterval three times, then every 2 s.
	// Faster than RFC 4861's 4 s, in the spirit of RFC 6059's quick
	// reattachment; a lost solicitation must not cost a handover seconds.
	next := h.cfg.RSInterval
	switch {
	case !sent:
		next = 20 * time.Millisecond // not routable yet
	case h.rsCount == 1:
		next = min(50*time.Millisecond, h.cfg.RSInterval)
	case h.rsCount == 2:
		next = min(100*time.Millisecond, h.cfg.RSInterval)
	case h.rsCount >= 5:
		next = 2 * time.Second
	}
	h.rsTimer = h.clk.AfterFunc(next, h.solicitRouter)
}

func (h *Host) keepalive() {
	if h.closing.Load() {
		return
	}
	if s := h.cur.Load(); s != nil {
		var b [FrameHeaderLen]byte
		fh := FrameHeader{Type: FrameTypeKeep, LinkID: s.link.ID, Src: h.ll}
		fh.Put(b[:])
		if err := h.bind.Send([][]byte{b[:]}, s.link.Router); err == nil {
			h.c.keepOut.Add(1)
		}
	}
	h.mu.Lock()
	h.keepT = h.clk.AfterFunc(h.cfg.Keepalive, h.keepalive)
	h.mu.Unlock()
}

// sendFrame sends one packet on link l (control path).
func (h *Host) sendFrame(l HostLink, pkt []byte) bool {
	p := NewPacket(pkt)
	b := p.frame(&FrameHeader{Type: FrameTypePacket, LinkID: l.ID, Src: h.ll})
	if h.tap.Tapping() {
		h.tap.see(Out, l.ID, h.clk.Now(), pkt)
	}
	if err := h.bind.Send([][]byte{b}, l.Router); err != nil {
		h.drop("underlay.send")
		return false
	}
	h.c.framesOut.Add(1)
	return true
}

// Send sends a packet the host (its mobility engine) originates, as it is,
// to the current router. It reports false when the host is not attached.
func (h *Host) Send(pkt []byte) bool {
	s := h.cur.Load()
	if s == nil || s.att == nil {
		h.drop("not_attached")
		return false
	}
	h.sendFrame(s.link, pkt)
	return true
}

// Deliver hands a packet to the host's applications.
func (h *Host) Deliver(pkt []byte) {
	if h.dev == nil {
		return
	}
	p := NewPacket(pkt)
	if _, err := h.dev.Write([][]byte{p.Buf[p.Off-FrameHeaderLen : p.Off+p.Len]}, FrameHeaderLen); err != nil {
		h.drop("tun.write")
		return
	}
	h.c.toTun.Add(1)
}

func (h *Host) receiveLoop(fn ReceiveFunc) {
	defer h.wg.Done()
	bs := h.bind.BatchSize()
	bufs := make([][]byte, bs)
	rbufs := make([][]byte, bs)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+MaxDatagram)
		rbufs[i] = bufs[i][Headroom:]
	}
	sizes := make([]int, bs)
	from := make([]netip.AddrPort, bs)
	var toTun [][]byte
	p := new(Packet) // reused: hooks see a pointer, so it must not be per packet
	for {
		n, err := fn(rbufs, sizes, from)
		if err != nil {
			if h.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		h.c.framesIn.Add(uint64(n))
		s := h.cur.Load()
		var now time.Time
		if h.tap.Tapping() {
			now = h.clk.Now()
		}
		for i := 0; i < n; i++ {
			var fh FrameHeader
			if _, err := ParseFrame(bufs[i][Headroom:Headroom+sizes[i]], &fh); err != nil {
				h.drop(frameDropReason[err])
				continue
			}
			if s == nil || fh.LinkID != s.link.ID {
				h.drop("not_attached")
				continue
			}
			if fh.Type != FrameTypePacket {
				continue
			}
			*p = Packet{Buf: bufs[i], Off: Headroom + FrameHeaderLen, Len: sizes[i] - FrameHeaderLen}
			data, err := ip6.Check(p.Data())
			if err != nil {
				h.drop("ipv6.malformed")
				continue
			}
			p.Len = len(data)
			if h.tap.Tapping() {
				h.tap.see(In, fh.LinkID, now, data)
			}
			if isND(data) {
				h.handleND(data, s, fh.Src)
				s = h.cur.Load()
				continue
			}
			if hb := h.hook.Load(); hb != nil {
				if hb.h.Inbound(p) == Consumed {
					continue
				}
			}
			if h.dev != nil {
				toTun = append(toTun, p.Buf[p.Off-FrameHeaderLen:p.Off+p.Len])
			}
		}
		if len(toTun) > 0 {
			if _, err := h.dev.Write(toTun, FrameHeaderLen); err != nil {
				h.c.drop["tun.write"].Add(uint64(len(toTun)))
			} else {
				h.c.toTun.Add(uint64(len(toTun)))
			}
			clear(toTun)
			toTun = toTun[:0]
		}
	}
}

// isND reports whether a packet is ICMPv6 neighbour discovery without
// extension headers (ND never carries any).
func isND(pkt []byte) bool {
	return pkt[6] == ip6.ProtoICMPv6 && len(pkt) > ip6.HeaderLen && pkt[ip6.HeaderLen] >= icmpRS && pkt[ip6.HeaderLen] <= icmpRedirect
}

func (h *Host) handleND(pkt []byte, s *hostState, srcLL LinkAddr) {
	msg, err := parseND(pkt)
	if err != nil {
		h.drop("nd.invalid")
		return
	}
	switch m := msg.(type) {
	case *ndp.RouterAdvertisement:
		h.m.Add("nd.ra.in", 1)
		h.handleRA(m, ip6.Header(pkt).Src(), s)
	case *ndp.NeighborSolicitation:
		h.m.Add("nd.ns.in", 1)
		if !h.isMine(m.TargetAddress, s) {
			return
		}
		src := ip6.Header(pkt).Src()
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		if na, err := buildNA(m.TargetAddress, dst, h.ll, false, !src.IsUnspecified()); err == nil {
			h.m.Add("nd.na.out", 1)
			h.sendFrame(s.link, na)
		}
	default:
		h.m.Add("nd.other.in", 1)
	}
}

// isMine reports whether the host answers for a on the current link: its
// link-local and the address it formed there.
func (h *Host) isMine(a netip.Addr, s *hostState) bool {
	if a == LinkLocal(h.cfg.Name, s.link.Name) {
		return true
	}
	return s.att != nil && s.att.Address == a
}

func (h *Host) handleRA(ra *ndp.RouterAdvertisement, from netip.Addr, s *hostState) {
	var prefix netip.Prefix
	mtu := 0
	for _, o := range ra.Options {
		switch v := o.(type) {
		case *ndp.PrefixInformation:
			if v.AutonomousAddressConfiguration && v.PrefixLength == 64 && v.ValidLifetime > 0 {
				prefix = netip.PrefixFrom(v.Prefix, 64)
			}
		case *ndp.MTU:
			mtu = int(v.MTU)
		}
	}
	if !prefix.IsValid() {
		h.drop("nd.invalid")
		return
	}
	if s.att != nil && s.att.Prefix == prefix && s.att.RouterLL == from {
		return // a periodic advertisement: nothing changed
	}
	addr := AddrFromIID(prefix, StableIID(h.cfg.Name, prefix))
	if h.cfg.StaticAddr.IsValid() && prefix.Contains(h.cfg.StaticAddr) {
		addr = h.cfg.StaticAddr
	}
	h.mu.Lock()
	if h.cur.Load() != s { // moved on meanwhile
		h.mu.Unlock()
		return
	}
	h.seq++
	att := &Attachment{Link: s.link, Prefix: prefix, Address: addr, RouterLL: from, MTU: mtu, At: h.clk.Now(), Seq: h.seq}
	var prev *Attachment
	if old := s.att; old != nil {
		prev = old
	}
	h.cur.Store(&hostState{link: s.link, att: att})
	if h.rsTimer != nil {
		h.rsTimer.Stop()
		h.rsTimer = nil
	}
	subs := append([]func(Attachment){}, h.onAttach...)
	h.mu.Unlock()
	h.m.Add("attach.completed", 1)
	h.log.Info("attached", "link", s.link.Name, "prefix", prefix, "address", addr)
	// Announce the new address at once so the router need not resolve it.
	if na, err := buildNA(addr, ip6.AllNodes, h.ll, false, false); err == nil {
		h.m.Add("nd.na.out", 1)
		h.sendFrame(s.link, na)
	}
	if h.cfg.ManageAddresses && h.dev != nil {
		h.manageAddress(prev, att)
	}
	for _, f := range subs {
		f(*att)
	}
}

// manageAddress keeps exactly the current link's address on the device.
func (h *Host) manageAddress(prev, cur *Attachment) {
	if err := h.dev.AddAddress(netip.PrefixFrom(cur.Address, 64), true); err != nil {
		h.log.Error("adding address", "addr", cur.Address, "err", err)
	}
	for _, a := range h.dev.Addresses() {
		if a.Prefix.Addr() != cur.Address && a.Prefix.Addr() != h.cfg.StaticAddr {
			h.dev.RemoveAddress(a.Prefix.Addr())
		}
	}
	_ = prev
}

// tunLoop carries applications' packets to the current router.
func (h *Host) tunLoop() {
	defer h.wg.Done()
	bs := h.dev.BatchSize()
	bufs := make([][]byte, bs)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+MaxDatagram)
	}
	sizes := make([]int, bs)
	out := make([][]byte, 0, bs)
	p := new(Packet)
	for {
		n, err := h.dev.Read(bufs, sizes, Headroom)
		if err != nil && !errors.Is(err, tun.ErrTooManySegments) {
			if h.closing.Load() {
				return
			}
			h.log.Debug("tun read", "err", err)
			return
		}
		h.c.fromTun.Add(uint64(n))
		s := h.cur.Load()
		if s == nil || s.att == nil {
			h.c.drop["not_attached"].Add(uint64(n))
			continue
		}
		fh := FrameHeader{Type: FrameTypePacket, LinkID: s.link.ID, Src: h.ll}
		hb := h.hook.Load()
		var now time.Time
		if h.tap.Tapping() {
			now = h.clk.Now()
		}
		for i := 0; i < n; i++ {
			*p = Packet{Buf: bufs[i], Off: Headroom, Len: sizes[i]}
			data, err := ip6.Check(p.Data())
			if err != nil {
				h.drop("ipv6.malformed")
				continue
			}
			p.Len = len(data)
			if ip6.Header(data).Dst().IsMulticast() {
				h.drop("multicast")
				continue
			}
			if hb != nil && hb.h.Outbound(p) == Consumed {
				continue
			}
			if s.att.MTU > 0 && p.Len > s.att.MTU {
				// Tell the local stack, as a kernel would for its own link.
				h.drop("too_big")
				if mayAnswerWithError(p.Data(), icmpPacketTooBig) {
					h.Deliver(buildICMPError(icmpPacketTooBig, 0, uint32(s.att.MTU), s.att.RouterLL, p.Data()))
				}
				continue
			}
			if h.tap.Tapping() {
				h.tap.see(Out, s.link.ID, now, p.Data())
			}
			out = append(out, p.frame(&fh))
		}
		if len(out) > 0 {
			if err := h.bind.Send(out, s.link.Router); err != nil {
				h.c.drop["underlay.send"].Add(uint64(len(out)))
			} else {
				h.c.framesOut.Add(uint64(len(out)))
			}
			clear(out)
			out = out[:0]
		}
	}
}

// HostStatus is what `node status` shows for a host.
type HostStatus struct {
	Name      string      `json:"name"`
	LinkAddr  string      `json:"lladdr"`
	Port      uint16      `json:"underlay_port"`
	Link      string      `json:"link,omitempty"`
	Router    string      `json:"router,omitempty"`
	Attached  bool        `json:"attached"`
	Prefix    string      `json:"prefix,omitempty"`
	Address   netip.Addr  `json:"address,omitempty"`
	RouterLL  netip.Addr  `json:"router_link_local,omitempty"`
	Addresses []string    `json:"device_addresses"`
	Links     []string    `json:"access_links"`
	Since     time.Time   `json:"attached_since,omitempty"`
	Device    string      `json:"device,omitempty"`
	Routes    []RouteInfo `json:"routes,omitempty"`
}

// Status reports the host's attachment and addresses.
func (h *Host) Status() HostStatus {
	st := HostStatus{Name: h.cfg.Name, LinkAddr: h.ll.String(), Port: h.port}
	for _, l := range h.cfg.Links {
		st.Links = append(st.Links, l.Name)
	}
	if s := h.cur.Load(); s != nil {
		st.Link, st.Router = s.link.Name, s.link.Router.String()
		if s.att != nil {
			st.Attached, st.Prefix, st.Address, st.RouterLL, st.Since = true, s.att.Prefix.String(), s.att.Address, s.att.RouterLL, s.att.At
			st.Routes = []RouteInfo{{Prefix: "::/0", Via: fmt.Sprintf("router %s on link %s", s.att.RouterLL, s.link.Name)}}
		}
	}
	if h.dev != nil {
		st.Device = h.dev.Name()
		for _, a := range h.dev.Addresses() {
			s := a.Prefix.String()
			if !a.Preferred {
				s += " (not preferred)"
			}
			st.Addresses = append(st.Addresses, s)
		}
	}
	return st
}
