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

// LinkConfig describes an access link a router serves.
type LinkConfig struct {
	Name   string
	ID     uint32
	Prefix netip.Prefix
	MTU    int
}

// Peer is another router, reached directly over the underlay.
type Peer struct {
	Name     string
	Endpoint netip.AddrPort
	Prefixes []netip.Prefix
}

type peer struct {
	Peer
}

// RouterConfig describes one router.
type RouterConfig struct {
	Name     string
	Address  netip.Addr // the router's global address
	Links    []LinkConfig
	Prefixes []netip.Prefix // owned prefixes without a link: delivered locally
	Peers    []Peer
	// BackboneMTU is the MTU of router-to-router paths.
	BackboneMTU int
	// RAInterval is the period of unsolicited Router Advertisements.
	RAInterval time.Duration
	// MemberTimeout forgets hosts not heard from for this long (they send
	// keepalives every 25 s); 0 means 3 x 25 s.
	MemberTimeout time.Duration
	Clock         clock.Clock
	Log           *slog.Logger
	Metrics       *metrics.Set
}

// Verdict is a mobility engine's decision about a packet offered to it.
type Verdict uint8

const (
	// Continue: not the engine's business; the router goes on as usual with
	// the packet (which the engine may have rewritten in place).
	Continue Verdict = iota
	// Consumed: the engine took the packet (delivered, re-sent or dropped).
	Consumed
	// Reinput: the engine rewrote the packet (decapsulated it); process it
	// again from the start as if it had just arrived from the backbone.
	Reinput
)

// RouterHook is how a mobility engine (home agent, HA2R) sees packets.
type RouterHook interface {
	// Local is offered packets addressed to the router other than neighbour
	// discovery. in is the access link they came from, nil for the backbone.
	Local(p *Packet, in *LinkConfig) Verdict
	// Forward is offered every packet the router is about to route, whether
	// it forwards it or originated it.
	Forward(p *Packet) Verdict
}

// Router forwards IPv6 between its access links and the backbone, answers
// neighbour discovery on its links, and sends ICMPv6 errors as RFC 4443 asks.
type Router struct {
	cfg  RouterConfig
	ll   LinkAddr
	log  *slog.Logger
	clk  clock.Clock
	m    *metrics.Set
	c    routerCounters
	bind Bind
	dev  tun.Device

	links     map[uint32]*accessLink
	linkList  []*accessLink
	fib       fib
	peersByEP map[netip.AddrPort]*peer
	own       map[netip.Addr]*accessLink // own addresses; the link for link-locals
	hook      atomic.Pointer[hookBox]
	icmpLimit *tokenBucket
	tap       Tap

	port    uint16
	wg      sync.WaitGroup
	closing atomic.Bool
	timers  []clock.Timer
	tmu     sync.Mutex
}

type hookBox struct{ h RouterHook }

type routerCounters struct {
	framesIn, framesOut, forwarded, local, toTun, fromTun *atomic.Uint64
	icmpSent, icmpLimited, keepIn                         *atomic.Uint64
	drop                                                  map[string]*atomic.Uint64
}

var routerDropReasons = []string{
	"frame.short", "frame.magic", "frame.version", "frame.flags", "frame.type", "frame.not_ipv6",
	"ipv6.malformed", "ipv6.chain", "link.unknown", "peer.unknown", "ingress", "multicast", "scope",
	"no_route", "hop_limit", "too_big", "neighbour.unresolved", "neighbour.queue_full", "nd.invalid",
	"local.unhandled", "underlay.send", "tun.write", "loop",
}

func newRouterCounters(m *metrics.Set) routerCounters {
	c := routerCounters{
		framesIn: m.Counter("frames.in"), framesOut: m.Counter("frames.out"),
		forwarded: m.Counter("packets.forwarded"), local: m.Counter("packets.local"),
		toTun: m.Counter("packets.to_tun"), fromTun: m.Counter("packets.from_tun"),
		icmpSent: m.Counter("icmp.errors.sent"), icmpLimited: m.Counter("icmp.errors.ratelimited"),
		keepIn: m.Counter("keepalive.in"),
		drop:   map[string]*atomic.Uint64{},
	}
	for _, r := range routerDropReasons {
		c.drop[r] = m.Counter("drop." + r)
	}
	return c
}

// NewRouter builds a router; Start makes it run.
func NewRouter(cfg RouterConfig, bind Bind) (*Router, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Set{}
	}
	if cfg.RAInterval == 0 {
		cfg.RAInterval = 30 * time.Second
	}
	if cfg.MemberTimeout == 0 {
		cfg.MemberTimeout = 75 * time.Second
	}
	if cfg.BackboneMTU == 0 {
		cfg.BackboneMTU = 1448
	}
	if !cfg.Address.IsValid() {
		return nil, errors.New("overlay: router needs an address")
	}
	r := &Router{
		cfg: cfg, ll: NodeLinkAddr(cfg.Name), log: cfg.Log.With("node", cfg.Name), clk: cfg.Clock, m: cfg.Metrics,
		bind: bind, links: map[uint32]*accessLink{}, peersByEP: map[netip.AddrPort]*peer{},
		own: map[netip.Addr]*accessLink{cfg.Address: nil}, icmpLimit: newTokenBucket(200, 100),
	}
	r.c = newRouterCounters(cfg.Metrics)
	var routes []route
	for _, lc := range cfg.Links {
		if lc.MTU == 0 {
			lc.MTU = cfg.BackboneMTU
		}
		l := newAccessLink(lc, cfg.Name)
		r.links[lc.ID] = l
		r.linkList = append(r.linkList, l)
		r.own[l.linkLocal] = l
		routes = append(routes, route{prefix: lc.Prefix, kind: routeLink, link: l})
	}
	for _, p := range cfg.Prefixes {
		routes = append(routes, route{prefix: p, kind: routeLocal})
	}
	for _, pc := range cfg.Peers {
		p := &peer{pc}
		r.peersByEP[pc.Endpoint] = p
		for _, pfx := range pc.Prefixes {
			routes = append(routes, route{prefix: pfx, kind: routePeer, peer: p})
		}
	}
	r.fib = newFIB(routes)
	return r, nil
}

// SetDevice gives the router a TUN/stack for its own applications (a home
// agent's SIP proxy). Call before Start.
func (r *Router) SetDevice(d tun.Device) { r.dev = d }

// SetHook installs (or, with nil, removes) the mobility engine.
func (r *Router) SetHook(h RouterHook) {
	if h == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&hookBox{h})
}

// Name, Address, LinkAddr and Metrics describe the router.
func (r *Router) Name() string            { return r.cfg.Name }
func (r *Router) Address() netip.Addr     { return r.cfg.Address }
func (r *Router) LinkAddr() LinkAddr      { return r.ll }
func (r *Router) Metrics() *metrics.Set   { return r.m }
func (r *Router) Clock() clock.Clock      { return r.clk }
func (r *Router) Device() tun.Device      { return r.dev }
func (r *Router) Port() uint16            { return r.port }
func (r *Router) Links() []LinkConfig     { return r.cfg.Links }
func (r *Router) Config() RouterConfig    { return r.cfg }
func (r *Router) IsOwn(a netip.Addr) bool { _, ok := r.own[a]; return ok }

// Start opens the underlay on port and runs the router.
func (r *Router) Start(port uint16) error {
	fns, actual, err := r.bind.Open(port)
	if err != nil {
		return fmt.Errorf("overlay: router %s: opening underlay port %d: %w", r.cfg.Name, port, err)
	}
	r.port = actual
	for _, fn := range fns {
		r.wg.Add(1)
		go r.receiveLoop(fn)
	}
	if r.dev != nil {
		if err := r.dev.AddAddress(netip.PrefixFrom(r.cfg.Address, 128), true); err != nil {
			return err
		}
		r.wg.Add(1)
		go r.tunLoop()
	}
	r.every(r.cfg.RAInterval, r.advertiseAll)
	r.every(5*time.Second, func() {
		cutoff := r.clk.Now().Add(-r.cfg.MemberTimeout)
		for _, l := range r.linkList {
			if n := l.expire(cutoff); n > 0 {
				r.m.Add("hosts.expired", uint64(n))
			}
		}
	})
	return nil
}

// every runs f periodically until Close.
func (r *Router) every(d time.Duration, f func()) {
	var t clock.Timer
	var tick func()
	tick = func() {
		if r.closing.Load() {
			return
		}
		f()
		t.Reset(d)
	}
	r.tmu.Lock()
	t = r.clk.AfterFunc(d, tick)
	r.timers = append(r.timers, t)
	r.tmu.Unlock()
}

// Close stops the router and releases its underlay and device.
func (r *Router) Close() error {
	if r.closing.Swap(true) {
		return nil
	}
	r.tmu.Lock()
	for _, t := range r.timers {
		t.Stop()
	}
	r.tmu.Unlock()
	err := r.bind.Close()
	if r.dev != nil {
		r.dev.Close()
	}
	r.wg.Wait()
	return err
}

func (r *Router) drop(reason string) { r.c.drop[reason].Add(1) }

// rx is the per-goroutine state of one processing round.
type rx struct {
	out   sendBatch
	tun   [][]byte
	from  netip.AddrPort
	depth int
	fwd   bool // the packet being routed is forwarded: its hop limit was decremented
	pkt   Packet
}

func (r *Router) receiveLoop(fn ReceiveFunc) {
	defer r.wg.Done()
	bs := r.bind.BatchSize()
	bufs := make([][]byte, bs)
	rbufs := make([][]byte, bs)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+MaxDatagram)
		rbufs[i] = bufs[i][Headroom:]
	}
	sizes := make([]int, bs)
	from := make([]netip.AddrPort, bs)
	var st rx
	for {
		n, err := fn(rbufs, sizes, from)
		if err != nil {
			if r.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("underlay receive", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		now := r.clk.Now()
		r.c.framesIn.Add(uint64(n))
		for i := 0; i < n; i++ {
			st.from = from[i]
			r.handleFrame(bufs[i], sizes[i], now, &st)
		}
		r.flush(&st)
	}
}

func (r *Router) flush(st *rx) {
	nOut := len(st.out.items)
	if failed := st.out.flush(r.bind); failed > 0 {
		r.c.drop["underlay.send"].Add(uint64(failed))
		nOut -= failed
	}
	r.c.framesOut.Add(uint64(nOut))
	if len(st.tun) > 0 {
		if _, err := r.dev.Write(st.tun, FrameHeaderLen); err != nil {
			r.c.drop["tun.write"].Add(uint64(len(st.tun)))
		} else {
			r.c.toTun.Add(uint64(len(st.tun)))
		}
		clear(st.tun)
		st.tun = st.tun[:0]
	}
}

var frameDropReason = map[error]string{
	ErrShortFrame: "frame.short", ErrBadMagic: "frame.magic", ErrVersion: "frame.version",
	ErrFlags: "frame.flags", ErrFrameType: "frame.type", ErrNotIPv6: "frame.not_ipv6",
}

func (r *Router) handleFrame(buf []byte, size int, now time.Time, st *rx) {
	var fh FrameHeader
	if _, err := ParseFrame(buf[Headroom:Headroom+size], &fh); err != nil {
		r.drop(frameDropReason[err])
		return
	}
	var in *accessLink
	if fh.LinkID == 0 {
		if _, ok := r.peersByEP[st.from]; !ok {
			r.drop("peer.unknown")
			return
		}
	} else {
		if in = r.links[fh.LinkID]; in == nil {
			r.drop("link.unknown")
			return
		}
		in.touch(fh.Src, st.from, now)
	}
	if fh.Type == FrameTypeKeep {
		r.c.keepIn.Add(1)
		return
	}
	// The Packet lives in st, not on the heap: hooks see a pointer to it.
	p := &st.pkt
	*p = Packet{Buf: buf, Off: Headroom + FrameHeaderLen, Len: size - FrameHeaderLen}
	data, err := ip6.Check(p.Data())
	if err != nil {
		r.drop("ipv6.malformed")
		return
	}
	p.Len = len(data)
	if r.tap.Tapping() {
		r.tap.see(In, fh.LinkID, now, p.Data())
	}
	r.input(p, in, fh.Src, st)
}

// input processes a packet that arrived on link in (nil: backbone).
func (r *Router) input(p *Packet, in *accessLink, srcLL LinkAddr, st *rx) {
	h := ip6.Header(p.Data())
	src, dst := h.Src(), h.Dst()
	if in != nil && !src.IsUnspecified() && !ip6.IsLinkLocal(src) && !in.cfg.Prefix.Contains(src) {
		// Ingress filtering (BCP 38): a host may only use addresses of the
		// link it is on. It is why Mobile IPv6 tunnels home-address traffic.
		r.drop("ingress")
		return
	}
	if dst.IsMulticast() {
		if in != nil && h.NextHeader() == ip6.ProtoICMPv6 && (dst == ip6.AllRouters || dst == ip6.AllNodes || isSolicitedNode(dst)) {
			r.handleND(p, in, srcLL, st)
			return
		}
		r.drop("multicast")
		return
	}
	if l, ok := r.own[dst]; ok {
		if l != nil && l != in {
			r.drop("scope") // a link-local of another link
			return
		}
		r.local(p, in, srcLL, st)
		return
	}
	if ip6.IsLinkLocal(src) || ip6.IsLinkLocal(dst) {
		r.drop("scope") // link-local packets are never forwarded (RFC 4291 2.5.6)
		return
	}
	if h.HopLimit() <= 1 {
		r.drop("hop_limit")
		r.icmpError(icmpTimeExceeded, codeHopLimit, 0, p.Data())
		return
	}
	h.SetHopLimit(h.HopLimit() - 1)
	r.c.forwarded.Add(1)
	st.fwd = true
	r.route(p, st)
	st.fwd = false
}

func isSolicitedNode(a netip.Addr) bool {
	b := a.As16()
	return b[0] == 0xff && b[1] == 0x02 && b[11] == 0x01 && b[12] == 0xff
}

// route sends a packet towards its destination: mobility engine first, then
// the forwarding table.
func (r *Router) route(p *Packet, st *rx) {
	if hb := r.hook.Load(); hb != nil {
		if hb.h.Forward(p) == Consumed {
			return
		}
	}
	data := p.Data()
	dst := ip6.Header(data).Dst()
	if _, ok := r.own[dst]; ok {
		if st.depth > 4 {
			r.drop("loop")
			return
		}
		st.depth++
		r.local(p, nil, LinkAddr{}, st)
		st.depth--
		return
	}
	rt := r.fib.lookup(dst)
	if rt == nil {
		r.drop("no_route")
		r.routeError(st, icmpDstUnreach, codeNoRoute, 0, data)
		return
	}
	switch rt.kind {
	case routeLocal:
		r.drop("no_route")
		r.routeError(st, icmpDstUnreach, codeAddrUnreach, 0, data)
	case routePeer:
		if len(data) > r.cfg.BackboneMTU {
			r.drop("too_big")
			r.routeError(st, icmpPacketTooBig, 0, uint32(r.cfg.BackboneMTU), data)
			return
		}
		r.emit(st, rt.peer.Endpoint, p, 0)
	case routeLink:
		l := rt.link
		if len(data) > l.cfg.MTU {
			r.drop("too_big")
			r.routeError(st, icmpPacketTooBig, 0, uint32(l.cfg.MTU), data)
			return
		}
		if ep, ok := l.endpointOf(dst); ok {
			r.emit(st, ep, p, l.cfg.ID)
			return
		}
		r.resolve(l, dst, data, st.fwd)
	}
}

// routeError answers a packet the router could not route. The error quotes
// the packet as it arrived, so a forwarded packet's hop limit is restored.
func (r *Router) routeError(st *rx, typ, code uint8, param uint32, data []byte) {
	if st.fwd {
		h := ip6.Header(data)
		h.SetHopLimit(h.HopLimit() + 1)
		defer h.SetHopLimit(h.HopLimit() - 1)
	}
	r.icmpError(typ, code, param, data)
}

// emit queues p as a frame of link id (0: backbone) to ep.
func (r *Router) emit(st *rx, ep netip.AddrPort, p *Packet, id uint32) {
	if r.tap.Tapping() {
		r.tap.see(Out, id, r.clk.Now(), p.Data())
	}
	st.out.add(ep, p.frame(&FrameHeader{Type: FrameTypePacket, LinkID: id, Src: r.ll}))
}

// SetTap installs a function that sees every packet the router receives and
// sends (nil removes it).
func (r *Router) SetTap(f TapFunc) { r.tap.Set(f) }

// local handles a packet addressed to the router.
func (r *Router) local(p *Packet, in *accessLink, srcLL LinkAddr, st *rx) {
	r.c.local.Add(1)
	data := p.Data()
	var c ip6.Chain
	if err := ip6.Walk(data, &c); err != nil {
		r.drop("ipv6.chain")
		return
	}
	if c.Upper == ip6.ProtoICMPv6 && !c.Fragmented && c.UpperOff < len(data) {
		if t := data[c.UpperOff]; t >= icmpRS && t <= icmpRedirect {
			if in != nil {
				r.handleND(p, in, srcLL, st)
			} else {
				r.drop("nd.invalid")
			}
			return
		}
	}
	if hb := r.hook.Load(); hb != nil {
		var lc *LinkConfig
		if in != nil {
			lc = &in.cfg
		}
		switch hb.h.Local(p, lc) {
		case Consumed:
			return
		case Reinput:
			if st.depth > 4 {
				r.drop("loop")
				return
			}
			st.depth++
			if d, err := ip6.Check(p.Data()); err == nil {
				p.Len = len(d)
				r.input(p, nil, LinkAddr{}, st)
			} else {
				r.drop("ipv6.malformed")
			}
			st.depth--
			return
		}
		data = p.Data()
	}
	if r.dev != nil {
		st.tun = append(st.tun, p.Buf[p.Off-FrameHeaderLen:p.Off+p.Len])
		return
	}
	switch {
	case c.Upper == ip6.ProtoICMPv6 && c.UpperOff+8 <= len(data) && data[c.UpperOff] == icmpEchoRequest:
		r.Send(buildEchoReply(data, c.UpperOff))
	case c.Upper == ip6.ProtoTCP || c.Upper == ip6.ProtoUDP:
		r.drop("local.unhandled")
		r.icmpError(icmpDstUnreach, codePortUnreach, 0, data)
	default:
		r.drop("local.unhandled")
	}
}

// Send routes a packet the router (or its mobility engine) originates.
func (r *Router) Send(pkt []byte) {
	var st rx
	r.SendPacket(NewPacket(pkt), &st)
}

// SendPacket routes p now; st may be nil.
func (r *Router) SendPacket(p *Packet, st *rx) {
	if st == nil {
		st = &rx{}
	}
	data, err := ip6.Check(p.Data())
	if err != nil {
		r.drop("ipv6.malformed")
		return
	}
	p.Len = len(data)
	r.route(p, st)
	r.flush(st)
}

// icmpError sends an ICMPv6 error about invoking, unless RFC 4443 forbids it
// or the rate limit is exhausted.
func (r *Router) icmpError(typ, code uint8, param uint32, invoking []byte) {
	if !mayAnswerWithError(invoking, typ) {
		return
	}
	if !r.icmpLimit.allow(r.clk.Now()) {
		r.c.icmpLimited.Add(1)
		return
	}
	r.c.icmpSent.Add(1)
	r.m.Add(fmt.Sprintf("icmp.out.%d.%d", typ, code), 1)
	r.Send(buildICMPError(typ, code, param, r.cfg.Address, invoking))
}

// ParamProblem sends an ICMPv6 Parameter Problem (code 0, erroneous header
// field) about invoking, pointing at byte pointer of it (RFC 4443 3.4).
func (r *Router) ParamProblem(pointer uint32, invoking []byte) {
	r.icmpError(icmpParamProblem, codeErrHeaderFld, pointer, invoking)
}

// PacketTooBig tells the source of invoking that mtu is the most that fits
// (a tunnel entry point's answer, RFC 2473 7.1).
func (r *Router) PacketTooBig(mtu int, invoking []byte) {
	r.icmpError(icmpPacketTooBig, 0, uint32(mtu), invoking)
}

// resolve queues a packet for an on-link destination whose link-layer
// address is unknown and solicits it.
func (r *Router) resolve(l *accessLink, dst netip.Addr, data []byte, fwd bool) {
	l.mu.Lock()
	n, ok := l.neigh[dst]
	if !ok {
		n = &neighbour{state: neighIncomplete}
		l.neigh[dst] = n
	}
	if len(n.pending) >= maxPending {
		l.mu.Unlock()
		r.drop("neighbour.queue_full")
		return
	}
	n.pending = append(n.pending, pendingPacket{data: append([]byte(nil), data...), fwd: fwd})
	start := n.timer == nil
	if start {
		n.probes = 1
		n.timer = r.clk.AfterFunc(retransTimer, func() { r.resolveTimeout(l, dst) })
	}
	l.mu.Unlock()
	if start {
		r.solicit(l, dst)
	}
}

func (r *Router) resolveTimeout(l *accessLink, dst netip.Addr) {
	l.mu.Lock()
	n, ok := l.neigh[dst]
	if !ok || n.state == neighReachable {
		l.mu.Unlock()
		return
	}
	if n.probes < maxMulticastSolt {
		n.probes++
		n.timer = r.clk.AfterFunc(retransTimer, func() { r.resolveTimeout(l, dst) })
		l.mu.Unlock()
		r.solicit(l, dst)
		return
	}
	pending := n.pending
	delete(l.neigh, dst)
	l.mu.Unlock()
	for _, pkt := range pending {
		r.drop("neighbour.unresolved")
		r.routeError(&rx{fwd: pkt.fwd}, icmpDstUnreach, codeAddrUnreach, 0, pkt.data)
	}
}

func (r *Router) solicit(l *accessLink, target netip.Addr) {
	pkt, err := buildNS(target, l.linkLocal, r.ll, netip.Addr{})
	if err != nil {
		return
	}
	r.m.Add("nd.ns.out", 1)
	r.sendOnLink(l, pkt, l.memberEndpoints()...)
}

// sendOnLink sends a packet as frames of link l to the given hosts.
func (r *Router) sendOnLink(l *accessLink, pkt []byte, eps ...netip.AddrPort) {
	p := NewPacket(pkt)
	b := p.frame(&FrameHeader{Type: FrameTypePacket, LinkID: l.cfg.ID, Src: r.ll})
	if r.tap.Tapping() {
		r.tap.see(Out, l.cfg.ID, r.clk.Now(), pkt)
	}
	for _, ep := range eps {
		if err := r.bind.Send([][]byte{b}, ep); err != nil {
			r.drop("underlay.send")
		} else {
			r.c.framesOut.Add(1)
		}
	}
}

// handleND answers neighbour discovery from hosts on link l.
func (r *Router) handleND(p *Packet, l *accessLink, srcLL LinkAddr, st *rx) {
	data := p.Data()
	msg, err := parseND(data)
	if err != nil {
		r.drop("nd.invalid")
		return
	}
	h := ip6.Header(data)
	src := h.Src()
	switch m := msg.(type) {
	case *ndp.RouterSolicitation:
		r.m.Add("nd.rs.in", 1)
		if ll, ok := toLinkAddr(sourceLL(m.Options)); ok && !src.IsUnspecified() {
			r.flushPending(l, l.learn(src, ll))
		}
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		// Answered at once and unicast to the soliciting host: the overlay
		// has no shared medium to protect (RFC 4861 6.2.6 allows unicast).
		r.advertise(l, dst, st.from)
	case *ndp.NeighborSolicitation:
		r.m.Add("nd.ns.in", 1)
		if ll, ok := toLinkAddr(sourceLL(m.Options)); ok && !src.IsUnspecified() {
			r.flushPending(l, l.learn(src, ll))
		}
		if owner, ok := r.own[m.TargetAddress]; !ok || (owner != nil && owner != l) {
			return // not ours; hosts answer for themselves
		}
		dst := src
		if src.IsUnspecified() {
			dst = ip6.AllNodes
		}
		na, err := buildNA(m.TargetAddress, dst, r.ll, true, !src.IsUnspecified())
		if err == nil {
			r.m.Add("nd.na.out", 1)
			r.sendOnLink(l, na, st.from)
		}
	case *ndp.NeighborAdvertisement:
		r.m.Add("nd.na.in", 1)
		ll, ok := toLinkAddr(targetLL(m.Options))
		if !ok {
			ll = srcLL
		}
		// Unsolicited advertisements create entries too (as Linux does with
		// accept_untracked_na): a host announces a new address at once.
		r.flushPending(l, l.learn(m.TargetAddress, ll))
	default:
		r.m.Add("nd.other.in", 1)
	}
}

// flushPending sends packets that waited for a neighbour.
func (r *Router) flushPending(l *accessLink, pending []pendingPacket) {
	for _, pkt := range pending {
		dst := ip6.Header(pkt.data).Dst()
		if ep, ok := l.endpointOf(dst); ok {
			r.sendOnLink(l, pkt.data, ep)
		}
	}
}

// advertise sends a Router Advertisement for link l to dst at ep.
func (r *Router) advertise(l *accessLink, dst netip.Addr, eps ...netip.AddrPort) {
	ra, err := buildRA(RAParams{Prefix: l.cfg.Prefix, MTU: l.cfg.MTU, Router: r.ll, Lifetime: 30 * time.Minute}, l.linkLocal, dst)
	if err != nil {
		r.log.Error("building router advertisement", "err", err)
		return
	}
	r.m.Add("nd.ra.out", uint64(len(eps)))
	r.sendOnLink(l, ra, eps...)
}

func (r *Router) advertiseAll() {
	for _, l := range r.linkList {
		if eps := l.memberEndpoints(); len(eps) > 0 {
			r.advertise(l, ip6.AllNodes, eps...)
		}
	}
}

// tunLoop routes what the router's own applications send.
func (r *Router) tunLoop() {
	defer r.wg.Done()
	bs := r.dev.BatchSize()
	bufs := make([][]byte, bs)
	for i := range bufs {
		bufs[i] = make([]byte, Headroom+MaxDatagram)
	}
	sizes := make([]int, bs)
	var st rx
	for {
		n, err := r.dev.Read(bufs, sizes, Headroom)
		if err != nil {
			if r.closing.Load() {
				return
			}
			if errors.Is(err, tun.ErrTooManySegments) {
				continue
			}
			r.log.Debug("tun read", "err", err)
			return
		}
		r.c.fromTun.Add(uint64(n))
		for i := 0; i < n; i++ {
			p := &st.pkt
			*p = Packet{Buf: bufs[i], Off: Headroom, Len: sizes[i]}
			data, err := ip6.Check(p.Data())
			if err != nil {
				r.drop("ipv6.malformed")
				continue
			}
			p.Len = len(data)
			if ip6.Header(data).Dst().IsMulticast() {
				r.drop("multicast")
				continue
			}
			r.route(p, &st)
		}
		r.flush(&st)
	}
}

// ForgetNeighbour drops the neighbour entry for a on whichever link has it.
func (r *Router) ForgetNeighbour(a netip.Addr) {
	for _, l := range r.linkList {
		if l.cfg.Prefix.Contains(a) {
			l.forget(a)
		}
	}
}

// LinkFor returns the served link whose prefix contains a.
func (r *Router) LinkFor(a netip.Addr) (LinkConfig, bool) {
	for _, l := range r.linkList {
		if l.cfg.Prefix.Contains(a) {
			return l.cfg, true
		}
	}
	return LinkConfig{}, false
}

// RouterStatus is what `node status` shows for a router.
type RouterStatus struct {
	Name       string          `json:"name"`
	LinkAddr   string          `json:"lladdr"`
	Address    netip.Addr      `json:"address"`
	Port       uint16          `json:"underlay_port"`
	Links      []LinkStatus    `json:"links"`
	Neighbours []NeighbourInfo `json:"neighbours"`
	Routes     []RouteInfo     `json:"routes"`
}

// LinkStatus describes one served link.
type LinkStatus struct {
	Name      string     `json:"name"`
	ID        uint32     `json:"id"`
	Prefix    string     `json:"prefix"`
	MTU       int        `json:"mtu"`
	LinkLocal netip.Addr `json:"link_local"`
	Hosts     int        `json:"hosts"`
}

// RouteInfo is one forwarding table entry.
type RouteInfo struct {
	Prefix string `json:"prefix"`
	Via    string `json:"via"`
}

// Status reports the router's links, neighbours and routes.
func (r *Router) Status() RouterStatus {
	s := RouterStatus{Name: r.cfg.Name, LinkAddr: r.ll.String(), Address: r.cfg.Address, Port: r.port}
	for _, l := range r.linkList {
		l.mu.RLock()
		hosts := len(l.members)
		l.mu.RUnlock()
		s.Links = append(s.Links, LinkStatus{Name: l.cfg.Name, ID: l.cfg.ID, Prefix: l.cfg.Prefix.String(), MTU: l.cfg.MTU, LinkLocal: l.linkLocal, Hosts: hosts})
		s.Neighbours = append(s.Neighbours, l.neighbours()...)
	}
	for _, rt := range r.fib {
		ri := RouteInfo{Prefix: rt.prefix.String()}
		switch rt.kind {
		case routeLink:
			ri.Via = "link " + rt.link.cfg.Name
		case routePeer:
			ri.Via = fmt.Sprintf("router %s at %s", rt.peer.Name, rt.peer.Endpoint)
		case routeLocal:
			ri.Via = "local"
		}
		s.Routes = append(s.Routes, ri)
	}
	return s
}
