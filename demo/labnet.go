package demo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/lab"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
)

// runScheme runs the experiment for one scheme in this process.
func runScheme(ctx context.Context, o Options, scheme config.Scheme) (*Result, error) {
	topo, err := prepare(o, scheme)
	if err != nil {
		return nil, err
	}
	tr, proxies := newTracerFor(topo)
	o.say("%s: starting %d nodes of %s", scheme, len(topo.Nodes), o.Name)
	start := time.Now()
	setup := func(n *node.Node) error {
		if sig := n.Mobility.Signals; sig != nil {
			sig.SetRecorder(tr.signal)
		}
		n.SetTap(tr.tap(n.Cfg.Name))
		if n.Host != nil {
			name := n.Cfg.Name
			n.Host.OnAttach(func(a overlay.Attachment) { tr.addOwner(a.Address, name) })
			n.Host.OnPrepared(func(a overlay.Attachment) { tr.addOwner(a.Address, name) })
		}
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	l, err := lab.Start(sctx, topo, lab.Options{Seed: o.Seed, Setup: setup})
	cancel()
	if err != nil {
		return nil, err
	}
	return measure(ctx, o, scheme, topo, tr, proxies, &labNetwork{l: l, close: sync.OnceFunc(l.Close), beforeBreak: o.MakeBeforeBreak}, start)
}

// labNetwork is the experiment's network in this process.
type labNetwork struct {
	l           *lab.Lab
	close       func()
	call1       *softphone.Call
	beforeBreak bool // moves are make-before-break
}

func (n *labNetwork) status(name string) (nodeStatus, error) {
	nd := n.l.Node(name)
	st := nodeStatus{Counters: nd.Metrics.Snapshot()}
	if mn := nd.Mobility.MobileNode; mn != nil {
		st.HomeBound = mn.Status().HomeBound
	}
	return st, nil
}

func (n *labNetwork) call(ctx context.Context, uri string) error {
	var target sip.Uri
	if err := sip.ParseUri(uri, &target); err != nil {
		return fmt.Errorf("sip_uri %q: %w", uri, err)
	}
	target = sip.Uri{User: target.User, Host: target.Host}
	// Test patterns both ways, so that the caller can check that what it
	// hears is what MN2 sent.
	n.l.Node("mn2").SIP.Phone.SetAudio(func(string, bool) (softphone.Source, softphone.Sink) {
		return &softphone.TestPattern{Seed: 2}, softphone.Discard{}
	})
	c, err := n.l.Node("mn1").SIP.Phone.Call(ctx, target, softphone.CallOptions{Source: &softphone.TestPattern{Seed: 1},
		Sink: softphone.Discard{}, Verify: &softphone.TestPattern{Seed: 2}})
	n.call1 = c
	return err
}

func (n *labNetwork) move(ctx context.Context, name, link string) (netip.Addr, error) {
	move := n.l.Handover
	if n.beforeBreak {
		move = n.l.HandoverBeforeBreak
	}
	att, err := move(ctx, name, link)
	return att.Address, err
}

func (n *labNetwork) hangup(ctx context.Context) (softphone.Report, softphone.Report, error) {
	if n.call1 == nil {
		return softphone.Report{}, softphone.Report{}, errors.New("no call to hang up")
	}
	var far *softphone.Call
	for _, c := range n.l.Node("mn2").SIP.Phone.Calls() {
		far = c
	}
	caller := n.call1.Hangup(ctx)
	var callee softphone.Report
	if far != nil {
		select {
		case <-far.Done():
		case <-ctx.Done():
		}
		callee = far.Report()
	}
	return caller, callee, nil
}

func (n *labNetwork) stop() (map[string]map[string]uint64, error) {
	n.close()
	out := map[string]map[string]uint64{}
	for _, name := range n.l.Names {
		out[name] = n.l.Node(name).Metrics.Snapshot()
	}
	return out, nil
}
