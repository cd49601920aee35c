package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/tun"
	"golang.org/x/time/rate"
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
	// PoisonBuffers overwrites every packet buffer once its round is done,
	// so that a hook that kept a reference sees garbage (tests).
	PoisonBuffers bool
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

// RouterHook is how a mobility engine (home agent, HA2R) sees packets. Both
// methods run on the router's loops, once per packet; they may rewrite p in
// place but must not keep it (see Packet).
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
// See doc.go for the path a packet takes through it.
type Router struct {
	cfg  RouterConfig
	ll   LinkAddr
	log  *slog.Logger
	clk  clock.Clock
	m    *metrics.Set
	c    *counters
	bind Bind
	dev  tun.Device
	run  *loops

	links     map[uint32]*accessLink
	linkList  []*accessLink
	fib       fib
	peersByEP map[netip.AddrPort]*Peer
	own       map[netip.Addr]*accessLink // own addresses; the link for link-locals
	hook      atomic.Pointer[hookBox]
	icmp      icmpErrors
	tap       Tap

	port   uint16
	tmu    sync.Mutex
	timers []clock.Timer
	sends  sync.Pool // *rx for Send
}

type hookBox struct{ h RouterHook }

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
		cfg.BackboneMTU = 1416 // config.DefaultMTU
	}
	if !cfg.Address.IsValid() {
		return nil, errors.New("overlay: router needs an address")
	}
	log := cfg.Log.With("node", cfg.Name)
	c := newCounters(cfg.Metrics)
	r := &Router{
		cfg: cfg, ll: NodeLinkAddr(cfg.Name), log: log, clk: cfg.Clock, m: cfg.Metrics, c: c,
		bind: bind, links: map[uint32]*accessLink{}, peersByEP: map[netip.AddrPort]*Peer{},
		own:  map[netip.Addr]*accessLink{cfg.Address: nil},
		icmp: icmpErrors{limit: rate.NewLimiter(200, 100), c: c},
		run:  newLoops(cfg.Name, log, cfg.Clock, c, cfg.PoisonBuffers),
	}
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
	for i := range cfg.Peers {
		p := &cfg.Peers[i]
		r.peersByEP[p.Endpoint] = p
		for _, pfx := range p.Prefixes {
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
func (r *Router) Name() string          { return r.cfg.Name }
func (r *Router) Address() netip.Addr   { return r.cfg.Address }
func (r *Router) LinkAddr() LinkAddr    { return r.ll }
func (r *Router) Metrics() *metrics.Set { return r.m }
func (r *Router) Clock() clock.Clock    { return r.clk }
func (r *Router) Device() tun.Device    { return r.dev }
func (r *Router) Port() uint16          { return r.port }
func (r *Router) Links() []LinkConfig   { return r.cfg.Links }
func (r *Router) Config() RouterConfig  { return r.cfg }

// BackboneMTU is the MTU of the router's paths to other routers.
func (r *Router) BackboneMTU() int { return r.cfg.BackboneMTU }

// Start opens the underlay on port and runs the router.
func (r *Router) Start(port uint16) error {
	fns, actual, err := r.bind.Open(port)
	if err != nil {
		return fmt.Errorf("overlay: router %s: opening underlay port %d: %w", r.cfg.Name, port, err)
	}
	r.port = actual
	for _, fn := range fns {
		var st rx
		r.run.receive(fn, r.bind.BatchSize(), func(bufs [][]byte, sizes []int, from []netip.AddrPort, n int) {
			r.receiveBatch(&st, bufs, sizes, from, n)
		})
	}
	if r.dev != nil {
		if err := r.dev.AddAddress(netip.PrefixFrom(r.cfg.Address, 128), true); err != nil {
			return err
		}
		var st rx
		r.run.readTUN(r.dev, func(bufs [][]byte, sizes []int, n int) { r.tunBatch(&st, bufs, sizes, n) })
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
	r.tmu.Lock()
	defer r.tmu.Unlock()
	var t clock.Timer
	t = r.clk.AfterFunc(d, func() {
		if r.run.closing.Load() {
			return
		}
		f()
		// t is read under the lock it was assigned under: the first tick
		// may fire before AfterFunc has returned.
		r.tmu.Lock()
		t.Reset(d)
		r.tmu.Unlock()
	})
	r.timers = append(r.timers, t)
}

// Close stops the router and releases its underlay and device.
func (r *Router) Close() error {
	if !r.run.stop() {
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
	r.run.wg.Wait()
	return err
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
