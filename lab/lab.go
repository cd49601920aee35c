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

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/tun"
)

// Options tune a lab.
type Options struct {
	// Seed makes emulated loss repeatable.
	Seed uint64
	// NoDelay turns the topology's delays and losses off (fast tests).
	NoDelay bool
	Log     *slog.Logger
	// Setup, if set, is called for each node after it is built and before
	// it starts (mobility engines and services hook in here).
	Setup func(*node.Node) error
}

// Lab is a running topology.
type Lab struct {
	Topo  *config.Topology
	Nodes map[string]*node.Node
	Names []string // in topology order

	opts   Options
	netems map[string]*overlay.Netem
	spare  map[string]overlay.Bind // opened binds not yet owned by a node
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
	l := &Lab{Topo: topo, Nodes: map[string]*node.Node{}, opts: o, netems: map[string]*overlay.Netem{}, spare: map[string]overlay.Bind{}}
	binds := map[string]*openedBind{}
	endpoints := map[string]netip.AddrPort{}
	for _, nc := range topo.Nodes {
		sb := overlay.NewStdBind()
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
	zero := uint16(0)
	for i, nc := range topo.Nodes {
		var b overlay.Bind = binds[nc.Name]
		if !o.NoDelay {
			ne := overlay.NewNetem(b, node.TopologyShape(topo, nc.Name, endpoints), o.Seed*1000+uint64(i))
			l.netems[nc.Name] = ne
			b = ne
		}
		n, err := node.New(topo, nc.Name, node.Options{
			Backend: tun.BackendUserspace, Bind: b, Port: &zero, Endpoints: endpoints, Log: o.Log,
		})
		delete(l.spare, nc.Name)
		if err != nil {
			b.Close()
			l.Close()
			return nil, err
		}
		l.Nodes[nc.Name] = n
		l.Names = append(l.Names, nc.Name)
		if o.Setup != nil {
			if err := o.Setup(n); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	// Routers first, so that hosts' first solicitations find them.
	for _, pass := range []bool{true, false} {
		for _, name := range l.Names {
			n := l.Nodes[name]
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
		n := l.Nodes[name]
		if n.Host != nil && n.Cfg.AutoAttach {
			if _, err := n.WaitAttached(ctx, n.Cfg.Start); err != nil {
				l.Close()
				return nil, err
			}
		}
	}
	return l, nil
}

// Node returns the node called name; it panics on a name the topology lacks,
// which is a bug in the caller.
func (l *Lab) Node(name string) *node.Node {
	n, ok := l.Nodes[name]
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
		n := l.Nodes[name]
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
