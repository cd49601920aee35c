// Package node assembles one node of a topology: its underlay bind, its
// router or host, its TUN device, and its mobility engine and SIP
// services. `node run` uses it for one real node; the lab uses it for every
// node of a topology inside one process.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/secure"
	"github.com/ha2r/mip6testbed/softphone"
	"github.com/ha2r/mip6testbed/state"
	"github.com/ha2r/mip6testbed/tun"
)

// MobilityReserve is the room a node's device MTU leaves below the link MTU
// for what mobility adds to a packet: a Home Address option and a type 2
// routing header (48 bytes), or an IPv6-in-IPv6 tunnel header (40).
const MobilityReserve = 48

// Options tell New how to build a node.
type Options struct {
	// Backend is the TUN backend: auto, kernel or userspace.
	Backend string
	// TunName names the kernel interface (default mip6%d).
	TunName string
	// Bind replaces the real UDP underlay (the lab's emulated one).
	Bind overlay.Bind
	// Port overrides the underlay port from the topology file (the lab).
	Port *uint16
	// Endpoints overrides routers' underlay endpoints by node name (the lab).
	Endpoints map[string]netip.AddrPort
	// EmulateDelays applies the topology's link delays and losses to what
	// this node sends, in userspace (where tc netem is missing).
	EmulateDelays bool
	// Seed makes emulated loss repeatable.
	Seed uint64
	// Hold keeps a host from attaching when it starts, until Release (so
	// that a tracer can see its first message).
	Hold bool
	// State is where the node keeps what must survive a restart: its
	// mobility engine's bindings, anchors and AH sequence numbers, its
	// registrar's registrations; nil keeps nothing.
	State state.Stores
	// PoisonBuffers makes the overlay scribble over packet buffers after
	// each round, so that a hook keeping a reference shows (tests).
	PoisonBuffers bool
	// Keys, if set, are the underlay's key pairs (the lab's); otherwise the
	// topology's public keys and the node's private_key_file are used.
	Keys *Keys
	// WrapBind, if set, wraps the node's underlay after underlay security,
	// so that what it sees is frames in clear (the lab's emulated delays).
	WrapBind func(overlay.Bind) overlay.Bind
	// SIPAnswerT2 caps the interval between a phone's 2xx retransmissions
	// (softphone.PhoneConfig.AnswerT2; 0: the topology's timers.sip_t2).
	SIPAnswerT2 time.Duration
	Clock       clock.Clock
	Log         *slog.Logger
}

// Node is one running node.
type Node struct {
	Topo     *config.Topology
	Cfg      *config.Node
	Router   *overlay.Router // set for routers
	Host     *overlay.Host   // set for hosts
	Dev      tun.Device      // the node's device, if it has one
	Metrics  *metrics.Set
	Log      *slog.Logger
	Mobility Mobility
	SIP      SIP

	opts Options
	// secure is the underlay's security, nil when it runs in clear.
	secure *secure.Bind
	calls  []*softphone.Call // calls in progress, for handover marks
	// allCalls are the last maxCallReports calls, for `calls`.
	allCalls []*softphone.Call
	// tracing is set while a control client traces the node;
	// onAttachTrace passes it new addresses.
	tracing       atomic.Bool
	onAttachTrace atomic.Pointer[func(overlay.Attachment)]
	// held: a host started with Options.Hold waits for Release; watch is
	// what Start was told about the underlay watcher.
	held    atomic.Bool
	watch   bool
	bind    overlay.Bind
	cancel  context.CancelFunc
	ctx     context.Context
	mu      sync.Mutex
	closers []func() error
}

// New builds the node called name of topo.
func New(topo *config.Topology, name string, o Options) (*Node, error) {
	nc := topo.NodeByName(name)
	if nc == nil {
		return nil, fmt.Errorf("no node called %q in %s", name, topo.File)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	n := &Node{Topo: topo, Cfg: nc, Metrics: &metrics.Set{}, Log: o.Log.With("node", name), opts: o}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.bind = o.Bind
	if n.bind == nil {
		n.bind = overlay.NewUDPBind()
	}
	var err error
	if n.bind, err = n.secureUnderlay(n.bind); err != nil {
		return nil, err
	}
	if o.EmulateDelays {
		n.bind = overlay.NewNetem(n.bind, TopologyShape(topo, name, o.Endpoints), o.Seed)
	}
	if o.WrapBind != nil {
		n.bind = o.WrapBind(n.bind)
	}
	if nc.Role.IsRouter() {
		err = n.buildRouter()
	} else {
		err = n.buildHost()
	}
	if err == nil {
		err = n.setupMobility()
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// endpoint returns where router r is reached.
func (n *Node) endpoint(r string) netip.AddrPort {
	if ep, ok := n.opts.Endpoints[r]; ok {
		return ep
	}
	return n.Topo.NodeByName(r).Underlay
}

func (n *Node) devMTU() int { return n.Topo.MTU - MobilityReserve }

func (n *Node) openDevice() error {
	// The largest datagram a device packet becomes: tunnelled up to the
	// topology's MTU, framed, sealed.
	segs := overlay.GSOSegments(n.Topo.MTU + overlay.FrameHeaderLen + secure.Overhead)
	dev, err := tun.Open(tun.Options{Backend: n.opts.Backend, Name: n.opts.TunName, MTU: n.devMTU(), GSOMaxSegments: segs})
	if err != nil {
		return fmt.Errorf("node %s: opening its device: %w", n.Cfg.Name, err)
	}
	n.Dev = dev
	return nil
}

func (n *Node) buildRouter() error {
	nc := n.Cfg
	rc := overlay.RouterConfig{
		Name: nc.Name, Address: nc.Address, Prefixes: nc.Prefixes, BackboneMTU: n.Topo.MTU,
		RAInterval: n.Topo.Timers.RAInterval, MemberTimeout: 3 * n.Topo.Timers.Keepalive,
		PoisonBuffers: n.opts.PoisonBuffers, Clock: n.opts.Clock, Log: n.opts.Log, Metrics: n.Metrics,
	}
	for _, l := range nc.ServedLink {
		rc.Links = append(rc.Links, overlay.LinkConfig{Name: l.Name, ID: l.ID, Prefix: l.Prefix, MTU: l.MTU})
	}
	for _, other := range n.Topo.Routers() {
		if other.Name == nc.Name {
			continue
		}
		rc.Peers = append(rc.Peers, overlay.Peer{Name: other.Name, Endpoint: n.endpoint(other.Name), Prefixes: other.OwnedPrefixes()})
	}
	r, err := overlay.NewRouter(rc, n.bind)
	if err != nil {
		return err
	}
	n.Router = r
	if nc.HostStack {
		if err := n.openDevice(); err != nil {
			return err
		}
		r.SetDevice(n.Dev)
		for _, p := range n.Topo.AllPrefixes() {
			if err := n.Dev.AddRoute(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (n *Node) buildHost() error {
	nc := n.Cfg
	hc := overlay.HostConfig{
		Name: nc.Name, Keepalive: n.Topo.Timers.Keepalive, RSInterval: n.Topo.Timers.RSInterval, DeadAfter: n.Topo.Timers.DeadAfter,
		// A mobile node's engine decides its device addresses; at home
		// it uses its home address on the home link.
		ManageAddresses: nc.Role != config.RoleMN, StaticAddr: nc.StaticAddr, HoldStandby: n.Topo.Mobility.Standby,
		PoisonBuffers: n.opts.PoisonBuffers, Clock: n.opts.Clock, Log: n.opts.Log, Metrics: n.Metrics,
	}
	if nc.Role == config.RoleMN {
		hc.StaticAddr = nc.HomeAddress
	}
	for _, a := range nc.Access {
		l := n.Topo.LinkByName(a.Link)
		hc.Links = append(hc.Links, overlay.HostLink{Name: l.Name, ID: l.ID, Router: n.endpoint(l.Router), Prefix: l.Prefix,
			Match: overlay.UnderlayMatch{Interface: a.Interface, Network: a.Network, Gateway: a.Gateway, GatewayMAC: a.GatewayMAC, Default: a.Default}})
	}
	if err := n.openDevice(); err != nil {
		return err
	}
	for _, p := range n.Topo.AllPrefixes() {
		if err := n.Dev.AddRoute(p); err != nil {
			return err
		}
	}
	h, err := overlay.NewHost(hc, n.bind, n.Dev)
	if err != nil {
		return err
	}
	n.Host = h
	h.OnAttach(func(a overlay.Attachment) {
		if f := n.onAttachTrace.Load(); f != nil {
			(*f)(a)
		}
	})
	// A host without a mobility engine has nothing to register first: it
	// switches as soon as a make-before-break attachment is made.
	h.OnPrepared(func(overlay.Attachment) {
		if n.Mobility.MobileNode == nil {
			go h.Commit()
		}
	})
	return nil
}

// Start runs the node: opens the underlay, and for a host attaches to its
// start link (or, with watchUnderlay, to whichever link's network is up).
func (n *Node) Start(watchUnderlay bool) error {
	port := n.Cfg.Underlay.Port()
	if n.opts.Port != nil {
		port = *n.opts.Port
	}
	if n.Router != nil {
		if err := n.Router.Start(port); err != nil {
			return err
		}
		return n.startSIP()
	}
	if err := n.Host.Start(port); err != nil {
		return err
	}
	if err := n.startSIP(); err != nil {
		return err
	}
	if n.opts.Hold {
		n.held.Store(true)
		n.watch = watchUnderlay
		return nil
	}
	return n.attachAndWatch(watchUnderlay)
}

func (n *Node) attachAndWatch(watchUnderlay bool) error {
	if n.Cfg.AutoAttach || n.opts.Hold {
		if err := n.Host.Attach(n.Cfg.Start); err != nil {
			return err
		}
	}
	if watchUnderlay && n.Cfg.WatchUnderlay {
		if err := n.Host.WatchUnderlay(n.ctx); err != nil {
			return err
		}
	}
	return nil
}

// Handover moves a host to another access link.
func (n *Node) Handover(link string) error {
	if err := n.mayMoveTo(link); err != nil {
		return err
	}
	return n.Host.Attach(link)
}

// HoldStandby attaches a host to link as well and holds it in reserve: the
// host moves there by itself when its current path goes silent (overlay
// HostConfig.DeadAfter), without the Router Solicitation a move otherwise
// starts with.
func (n *Node) HoldStandby(link string) error {
	if err := n.mayMoveTo(link); err != nil {
		return err
	}
	return n.Host.PrepareStandby(link)
}

// mayMoveTo checks that the node is a host and link one of its access
// links.
func (n *Node) mayMoveTo(link string) error {
	if n.Host == nil {
		return fmt.Errorf("node %s is a %s; only hosts change links", n.Cfg.Name, n.Cfg.Role)
	}
	if _, ok := n.Cfg.AccessTo(link); !ok {
		return fmt.Errorf("%q is not an access link of %s (its links: %s)", link, n.Cfg.Name, accessList(n.Cfg))
	}
	return nil
}

// HandoverBeforeBreak moves a host to link make-before-break: it attaches
// there while its current link carries the traffic, makes the move's
// registrations from the new address, and switches once they are
// acknowledged (a mobile node; another host switches once attached).
func (n *Node) HandoverBeforeBreak(link string) error {
	if err := n.mayMoveTo(link); err != nil {
		return err
	}
	return n.Host.Prepare(link)
}

func accessList(nc *config.Node) string {
	s := ""
	for i, a := range nc.Access {
		if i > 0 {
			s += ", "
		}
		s += a.Link
	}
	return s
}

// WaitAttached waits until the host is attached to link (any link if empty).
func (n *Node) WaitAttached(ctx context.Context, link string) (overlay.Attachment, error) {
	if n.Host == nil {
		return overlay.Attachment{}, errors.New("not a host")
	}
	for {
		if a, ok := n.Host.Current(); ok && (link == "" || a.Link.Name == link) {
			return a, nil
		}
		select {
		case <-ctx.Done():
			return overlay.Attachment{}, fmt.Errorf("node %s: not attached to %q: %w", n.Cfg.Name, link, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Port is the node's underlay port.
func (n *Node) Port() uint16 {
	if n.Router != nil {
		return n.Router.Port()
	}
	return n.Host.Port()
}

// AddCloser registers something to close with the node (in reverse order).
func (n *Node) AddCloser(f func() error) {
	n.mu.Lock()
	n.closers = append(n.closers, f)
	n.mu.Unlock()
}

// Context is cancelled when the node closes.
func (n *Node) Context() context.Context { return n.ctx }

// Close stops the node and removes what it added to the host.
func (n *Node) Close() error {
	n.cancel()
	n.mu.Lock()
	closers := n.closers
	n.closers = nil
	n.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	switch {
	case n.Router != nil:
		return n.Router.Close()
	case n.Host != nil:
		return n.Host.Close()
	}
	if n.Dev != nil {
		n.Dev.Close()
	}
	return nil
}

// Status is what `node status` reports.
type Status struct {
	Name     string                `json:"name"`
	Role     string                `json:"role"`
	Backend  string                `json:"device_backend,omitempty"`
	Router   *overlay.RouterStatus `json:"router,omitempty"`
	Host     *overlay.HostStatus   `json:"host,omitempty"`
	Mobility *MobilityStatus       `json:"mobility,omitempty"`
	SIP      *SIPStatus            `json:"sip,omitempty"`
	Underlay secure.Status         `json:"underlay_security"`
	Counters map[string]uint64     `json:"counters"`
}

// Status reports the node's state and counters.
func (n *Node) Status() Status {
	s := Status{Name: n.Cfg.Name, Role: string(n.Cfg.Role), Counters: n.Metrics.Snapshot()}
	switch n.Dev.(type) {
	case *tun.Userspace:
		s.Backend = tun.BackendUserspace
	case nil:
	default:
		s.Backend = tun.BackendKernel
	}
	if n.Router != nil {
		rs := n.Router.Status()
		s.Router = &rs
	}
	if n.Host != nil {
		hs := n.Host.Status()
		s.Host = &hs
	}
	s.Mobility = n.mobilityStatus()
	s.SIP = n.sipStatus()
	if n.secure != nil {
		s.Underlay = n.secure.Status()
	}
	return s
}

// SetTap installs a packet observer on the node's overlay side.
func (n *Node) SetTap(f overlay.TapFunc) {
	if n.Router != nil {
		n.Router.SetTap(f)
	}
	if n.Host != nil {
		n.Host.SetTap(f)
	}
}
