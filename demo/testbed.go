package demo

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/node"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
)

// Testbed points the demo at nodes that run as processes (scripts/testbed.sh
// demo: kernel TUNs in network namespaces), started with --hold and with
// the scheme to measure.
type Testbed struct {
	// Socket returns a node's control socket.
	Socket func(node string) string
	// Switch moves a host's underlay to the network of one of its access
	// links (the Wi-Fi switch).
	Switch func(ctx context.Context, host, link string) error
}

// RunTestbed runs the experiment for one scheme on a testbed. The
// topology options (delays, loss) are the testbed's, not o's.
func RunTestbed(ctx context.Context, o Options, scheme config.Scheme, tb Testbed) (*Result, error) {
	topo, err := prepare(Options{Topology: o.Topology, Name: o.Name, AccessDelay: -1, BackboneDelay: -1}, scheme)
	if err != nil {
		return nil, err
	}
	tr, proxies := newTracerFor(topo)
	rn := &remoteNetwork{tb: tb, tr: tr, topo: topo}
	for _, n := range topo.Nodes {
		if err := rn.trace(ctx, n.Name); err != nil {
			rn.closeTraces()
			return nil, err
		}
	}
	o.say("%s: tracing %d nodes; releasing the hosts", scheme, len(topo.Nodes))
	start := time.Now()
	for _, n := range topo.Nodes {
		if n.Role.IsRouter() {
			continue
		}
		if _, err := control.Call(ctx, tb.Socket(n.Name), control.Request{Cmd: "release"}); err != nil {
			rn.closeTraces()
			return nil, fmt.Errorf("releasing %s (was it started with --hold?): %w", n.Name, err)
		}
	}
	res, err := measure(ctx, o, scheme, topo, tr, proxies, rn, start)
	if err != nil {
		return nil, err
	}
	if rn.lost.Load() > 0 {
		return nil, fmt.Errorf("the nodes dropped %d trace events (the demo read them too slowly); the figures would be incomplete", rn.lost.Load())
	}
	return res, nil
}

// remoteNetwork drives nodes through their control sockets.
type remoteNetwork struct {
	tb   Testbed
	tr   *tracer
	topo *config.Topology

	mu      sync.Mutex
	conns   []*net.UnixConn
	readers sync.WaitGroup
	lost    atomic.Uint64 // trace events the nodes dropped
	callErr chan error
	caller  chan softphone.Report
}

// trace subscribes to one node's trace and feeds the tracer until the
// stream ends.
func (rn *remoteNetwork) trace(ctx context.Context, name string) error {
	conn, err := control.Stream(ctx, rn.tb.Socket(name), control.Request{Cmd: "trace"})
	if err != nil {
		return fmt.Errorf("tracing %s: %w", name, err)
	}
	typ, p, err := control.ReadFrame(conn)
	if err != nil || typ != node.TraceReady {
		conn.Close()
		if err == nil {
			err = errors.New(string(p))
		}
		return fmt.Errorf("tracing %s: %w", name, err)
	}
	rn.mu.Lock()
	rn.conns = append(rn.conns, conn)
	rn.mu.Unlock()
	tap := rn.tr.tap(name)
	rn.readers.Add(1)
	go func() {
		defer rn.readers.Done()
		for {
			typ, p, err := control.ReadFrame(conn)
			if err != nil {
				return
			}
			switch typ {
			case node.TraceSignal:
				var e mobility.SignalEvent
				if json.Unmarshal(p, &e) == nil {
					rn.tr.signal(e)
				}
			case node.TracePacket:
				if len(p) > 9 {
					at := time.Unix(0, int64(binary.BigEndian.Uint64(p[1:9])))
					tap(overlay.Direction(p[0]), 0, at, p[9:])
				}
			case node.TraceAttach:
				var a struct{ Address netip.Addr }
				if json.Unmarshal(p, &a) == nil {
					rn.tr.addOwner(a.Address, name)
				}
			case node.TraceLost:
				var l struct{ Events uint64 }
				if json.Unmarshal(p, &l) == nil {
					rn.lost.Add(l.Events)
				}
			}
		}
	}()
	return nil
}

func (rn *remoteNetwork) closeTraces() {
	rn.mu.Lock()
	conns := rn.conns
	rn.conns = nil
	rn.mu.Unlock()
	for _, c := range conns {
		c.CloseWrite() // the node ends the stream, after what it has queued
	}
	done := make(chan struct{})
	go func() { rn.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		for _, c := range conns {
			c.Close()
		}
		<-done
	}
	for _, c := range conns {
		c.Close()
	}
}

// remoteStatus is the part of `node status` the demo reads.
type remoteStatus struct {
	Counters map[string]uint64 `json:"counters"`
	Host     *struct {
		Link     string     `json:"link"`
		Attached bool       `json:"attached"`
		Address  netip.Addr `json:"address"`
	} `json:"host"`
	Mobility *struct {
		MobileNode *struct {
			HomeBound bool `json:"home_registered"`
		} `json:"mobile_node"`
	} `json:"mobility"`
}

func (rn *remoteNetwork) rawStatus(ctx context.Context, name string) (remoteStatus, error) {
	var st remoteStatus
	raw, err := control.Call(ctx, rn.tb.Socket(name), control.Request{Cmd: "status"})
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(raw, &st)
}

func (rn *remoteNetwork) status(name string) (nodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := rn.rawStatus(ctx, name)
	if err != nil {
		return nodeStatus{}, err
	}
	out := nodeStatus{Counters: st.Counters}
	if st.Mobility != nil && st.Mobility.MobileNode != nil {
		out.HomeBound = st.Mobility.MobileNode.HomeBound
	}
	return out, nil
}

// call starts MN1's call over its control socket (the call lasts until
// hangup) and waits for MN1 to receive the 200 OK.
func (rn *remoteNetwork) call(ctx context.Context, uri string) error {
	t0 := time.Now()
	conn, err := control.Stream(context.Background(), rn.tb.Socket("mn1"), control.Request{Cmd: "call",
		Args: map[string]string{"to": uri, "duration": "1h"}})
	if err != nil {
		return err
	}
	rn.callErr = make(chan error, 1)
	rn.caller = make(chan softphone.Report, 1)
	go func() {
		defer conn.Close()
		for {
			typ, p, err := control.ReadFrame(conn)
			if err != nil {
				rn.callErr <- fmt.Errorf("mn1's call: %w", err)
				return
			}
			switch typ {
			case 'R':
				var r softphone.Report
				rn.callErr <- json.Unmarshal(p, &r)
				rn.caller <- r
				return
			case 'E':
				rn.callErr <- errors.New(string(p))
				return
			}
		}
	}()
	for !rn.tr.arrived("mn1", "200 INVITE", t0) {
		select {
		case err := <-rn.callErr:
			if err == nil {
				err = errors.New("the call ended before it was answered")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func (rn *remoteNetwork) move(ctx context.Context, name, link string) (netip.Addr, error) {
	if err := rn.tb.Switch(ctx, name, link); err != nil {
		return netip.Addr{}, fmt.Errorf("switching %s to %s: %w", name, link, err)
	}
	for {
		st, err := rn.rawStatus(ctx, name)
		if err == nil && st.Host != nil && st.Host.Attached && st.Host.Link == link {
			return st.Host.Address, nil
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("%s did not attach to %s: %w", name, link, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (rn *remoteNetwork) hangup(ctx context.Context) (softphone.Report, softphone.Report, error) {
	var caller, callee softphone.Report
	if _, err := control.Call(ctx, rn.tb.Socket("mn1"), control.Request{Cmd: "hangup"}); err != nil {
		return caller, callee, fmt.Errorf("hanging up: %w", err)
	}
	select {
	case err := <-rn.callErr:
		if err != nil {
			return caller, callee, err
		}
		caller = <-rn.caller
	case <-ctx.Done():
		return caller, callee, fmt.Errorf("mn1's call did not end: %w", ctx.Err())
	}
	// MN2's call ends with the BYE; its report is its last call's.
	for {
		raw, err := control.Call(ctx, rn.tb.Socket("mn2"), control.Request{Cmd: "calls"})
		if err != nil {
			return caller, callee, err
		}
		var rs []softphone.Report
		if err := json.Unmarshal(raw, &rs); err != nil {
			return caller, callee, err
		}
		if len(rs) > 0 && rs[len(rs)-1].Ended {
			return caller, rs[len(rs)-1], nil
		}
		select {
		case <-ctx.Done():
			return caller, callee, fmt.Errorf("mn2's call did not end: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop reads every node's counters, then ends the traces. Signalling is
// quiet by then (the call is over; refreshes are minutes away), so the two
// describe the same run.
func (rn *remoteNetwork) stop() (map[string]map[string]uint64, error) {
	out := map[string]map[string]uint64{}
	var firstErr error
	for _, n := range rn.topo.Nodes {
		st, err := rn.status(n.Name)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("reading %s's counters: %w", n.Name, err)
		}
		out[n.Name] = st.Counters
	}
	time.Sleep(100 * time.Millisecond)
	rn.closeTraces()
	return out, firstErr
}
