// Package lab runs a whole topology inside one process: every node on a
// userspace stack, the underlay on loopback UDP, and the topology's link
// delays and losses emulated on the sending side. Tests use it, and so does
// `node demo`.
package lab

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/state"
	"github.com/ha2r/mip6testbed/tun"
)

// Options tune a lab.
type Options struct {
	// Seed makes emulated loss repeatable.
	Seed uint64
	// NoDelay turns the topology's delays and losses off (fast tests).
	NoDelay bool
	// PlainUnderlay runs the underlay in clear, without the key pairs the
	// lab otherwise makes for every node (to measure what security costs).
	PlainUnderlay bool
	// SIPAnswerT2 caps the phones' 2xx retransmission interval (0: 4 s).
	SIPAnswerT2 time.Duration
	Log         *slog.Logger
	// Setup, if set, is called for each node after it is built and before
	// it starts (mobility engines and services hook in here).
	Setup func(*node.Node) error
}

// Lab is a running topology.
type Lab struct {
	Topo  *config.Topology
	Names []string // in topology order

	// mu guards nodes: Restart replaces a node while tests and probes ask
	// for others.
	mu    sync.RWMutex
	nodes map[string]*node.Node

	opts      Options
	netems    map[string]*overlay.Netem
	spare     map[string]overlay.Bind // opened binds not yet owned by a node
	endpoints map[string]netip.AddrPort
	loss      float64                    // SetLoss's, for nodes restarted later
	keys      *node.Keys                 // nil: the underlay runs in clear
	stores    map[string]*state.Memories // each node's state, kept across restarts
}

// openedBind hands out a Bind that was opened before the node was built, so
// that every router's loopback port is known before any node needs it.
type openedBind struct {
	overlay.Bind
	fns  []overlay.ReceiveFunc
	port uint16
}

func (b *openedBind) Open(uint16) ([]overlay.ReceiveFunc, uint16, error) { return b.fns, b.port, nil }

// Start builds and starts every node of topo and waits until every host
// that attaches at boot is attached.
func Start(ctx context.Context, topo *config.Topology, o Options) (*Lab, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{Topo: topo, nodes: map[string]*node.Node{}, opts: o, netems: map[string]*overlay.Netem{}, spare: map[string]overlay.Bind{},
		stores: map[string]*state.Memories{}}
	if !o.PlainUnderlay {
		var err error
		names := make([]string, 0, len(topo.Nodes))
		for _, nc := range topo.Nodes {
			names = append(names, nc.Name)
		}
		if l.keys, err = node.NewKeys(names); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
	}
	binds := map[string]*openedBind{}
	endpoints := map[string]netip.AddrPort{}
	for _, nc := range topo.Nodes {
		sb := overlay.NewUDPBind()
		fns, port, err := sb.Open(0)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("lab: opening loopback underlay for %s: %w", nc.Name, err)
		}
		ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		binds[nc.Name] = &openedBind{Bind: sb, fns: fns, port: port}
		l.spare[nc.Name] = sb
		endpoints[nc.Name] = ep
	}
	l.endpoints = endpoints
	for i, nc := range topo.Nodes {
		l.stores[nc.Name] = &state.Memories{}
		n, err := l.build(nc.Name, binds[nc.Name], uint64(i))
		delete(l.spare, nc.Name)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.setNode(nc.Name, n)
		l.Names = append(l.Names, nc.Name)
	}
	// Routers first, so that hosts' first solicitations find them.
	for _, pass := range []bool{true, false} {
		for _, name := range l.Names {
			n := l.Node(name)
			if n.Cfg.Role.IsRouter() != pass {
				continue
			}
			if err := n.Start(false); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	for _, name := range l.Names {
		n := l.Node(name)
		if n.Host != nil && n.Cfg.AutoAttach {
			if _, err := n.WaitAttached(ctx, n.Cfg.Start); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	return l, nil
}

// build makes node name on its opened underlay b.
func (l *Lab) build(name string, b overlay.Bind, i uint64) (*node.Node, error) {
	var wrap func(overlay.Bind) overlay.Bind
	if !l.opts.NoDelay {
		// Inside underlay security's sealing, the emulation sees frames
		// in clear: their link and signalling flow pick delay and loss.
		wrap = func(sealed overlay.Bind) overlay.Bind {
			ne := overlay.NewNetem(sealed, node.TopologyShape(l.Topo, name, l.endpoints), l.opts.Seed*1000+i)
			ne.SetExtraLoss(l.loss)
			l.netems[name] = ne
			return ne
		}
	}
	zero := uint16(0)
	n, err := node.New(l.Topo, name, node.Options{
		Backend: tun.BackendUserspace, Bind: b, Port: &zero, Endpoints: l.endpoints, Log: l.opts.Log,
		State: l.stores[name], PoisonBuffers: true, SIPAnswerT2: l.opts.SIPAnswerT2, Keys: l.keys, WrapBind: wrap,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	if l.opts.Setup != nil {
		if err := l.opts.Setup(n); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Restart stops node name and starts it again on the same underlay port,
// as a process restarted on the same machine would be: routers find their
// state again (their state store survives, as a state file would). A host
// attaches to its start link; pass keepState false to start a router
// afresh, as on a new machine.
func (l *Lab) Restart(ctx context.Context, name string, keepState bool) error {
	old := l.Node(name)
	port := old.Port()
	old.Close()
	if !keepState {
		l.stores[name] = &state.Memories{}
	}
	sb := overlay.NewUDPBind()
	fns, actual, err := sb.Open(port)
	if err != nil {
		return fmt.Errorf("lab: reopening %s's underlay port %d: %w", name, port, err)
	}
	var i uint64
	for j, n := range l.Names {
		if n == name {
			i = uint64(j)
		}
	}
	n, err := l.build(name, &openedBind{Bind: sb, fns: fns, port: actual}, i+1000)
	if err != nil {
		return err
	}
	l.setNode(name, n)
	if err := n.Start(false); err != nil {
		return err
	}
	if n.Host != nil && n.Cfg.AutoAttach {
		_, err = n.WaitAttached(ctx, n.Cfg.Start)
	}
	return err
}

func (l *Lab) setNode(name string, n *node.Node) {
	l.mu.Lock()
	l.nodes[name] = n
	l.mu.Unlock()
}

// Kill stops a node for good, as a machine that crashed: it answers
// nothing from now on (Close later is harmless).
func (l *Lab) Kill(name string) error { return l.Node(name).Close() }

// Node returns the node called name; it panics on a name the topology lacks,
// which is a bug in the caller.
func (l *Lab) Node(name string) *node.Node {
	l.mu.RLock()
	n, ok := l.nodes[name]
	l.mu.RUnlock()
	if !ok {
		panic("lab: no node " + name)
	}
	return n
}

// Userspace returns a node's userspace stack, through which the test or
// demo acts as that node's applications.
func (l *Lab) Userspace(name string) *tun.Userspace {
	u, _ := l.Node(name).Dev.(*tun.Userspace)
	return u
}

// Handover moves host name to link and waits until it is attached there.
func (l *Lab) Handover(ctx context.Context, name, link string) (overlay.Attachment, error) {
	n := l.Node(name)
	if err := n.Handover(link); err != nil {
		return overlay.Attachment{}, err
	}
	return n.WaitAttached(ctx, link)
}

// HandoverBeforeBreak moves host name to link make-before-break and waits
// until it has switched there.
func (l *Lab) HandoverBeforeBreak(ctx context.Context, name, link string) (overlay.Attachment, error) {
	n := l.Node(name)
	if err := n.HandoverBeforeBreak(link); err != nil {
		return overlay.Attachment{}, err
	}
	return n.WaitAttached(ctx, link)
}

// SetLoss adds loss probability p to every frame every node sends (on top
// of the topology's), from now on; the lab must run with delays (not
// NoDelay) for it to apply.
func (l *Lab) SetLoss(p float64) {
	l.loss = p
	for _, ne := range l.netems {
		ne.SetExtraLoss(p)
	}
}

// BlackHole makes node name's underlay silently lose everything it sends
// (on: a router whose uplink died without a link event), or stops that.
func (l *Lab) BlackHole(name string, on bool) {
	ne, ok := l.netems[name]
	if !ok {
		panic("lab: BlackHole needs the lab's emulated links (not NoDelay)")
	}
	if on {
		ne.SetExtraLoss(1)
	} else {
		ne.SetExtraLoss(l.loss)
	}
}

// LostOnPurpose returns how many frames each node's emulated links dropped.
func (l *Lab) LostOnPurpose() map[string]uint64 {
	out := map[string]uint64{}
	for name, ne := range l.netems {
		out[name] = ne.Dropped.Load()
	}
	return out
}

// Close stops every node.
func (l *Lab) Close() {
	names := append([]string(nil), l.Names...)
	sort.Strings(names)
	var wg sync.WaitGroup
	for _, name := range names {
		l.mu.RLock()
		n, ok := l.nodes[name]
		l.mu.RUnlock()
		if !ok {
			continue // its start failed
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.Close() }()
	}
	wg.Wait()
	for _, b := range l.spare {
		b.Close()
	}
}

// UseScheme sets the mobility scheme of every mobile node of topo.
func UseScheme(topo *config.Topology, scheme config.Scheme) {
	topo.Scheme = scheme
	for _, n := range topo.Nodes {
		if n.Role == config.RoleMN {
			n.Scheme = scheme
		}
	}
}
