package node

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
)

// Frames of the control socket's "trace" stream, which lets a process
// outside the node (`node demo --testbed`) record what the in-process demo
// records: signalling events, packets, and new addresses.
const (
	TraceSignal = 'S' // JSON mobility.SignalEvent
	TracePacket = 'P' // direction (1) | time, Unix ns (8) | packet
	TraceAttach = 'A' // JSON {"address": ...}: the host formed an address
	TraceLost   = 'L' // JSON {"events": n}: events dropped, the reader was too slow
	TraceReady  = 'Y' // empty: the trace is installed, nothing is missed from here on
)

// traceQueue is how many events wait for a slow reader before they are
// dropped (and counted): a node never blocks on its tracer.
const traceQueue = 1 << 14

type traceEvent struct {
	typ  byte
	data []byte
}

// traceCommand streams the node's signalling and its packets (Mobility
// Header and UDP, the rest is of no interest) until the client goes away.
func (n *Node) traceCommand(ctx context.Context, _ map[string]string, in io.Reader, out *control.FrameWriter) error {
	if !n.tracing.CompareAndSwap(false, true) {
		return errors.New("this node is already being traced")
	}
	defer n.tracing.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // the client closing its side ends the trace
		io.Copy(io.Discard, in)
		cancel()
	}()
	ch := make(chan traceEvent, traceQueue)
	var lost atomic.Uint64
	send := func(e traceEvent) {
		select {
		case ch <- e:
		default:
			lost.Add(1)
		}
	}
	if sig := n.Mobility.Signals; sig != nil {
		sig.SetRecorder(func(e mobility.SignalEvent) {
			b, _ := json.Marshal(e)
			send(traceEvent{TraceSignal, b})
		})
		defer sig.SetRecorder(nil)
	}
	n.SetTap(func(dir overlay.Direction, _ uint32, at time.Time, pkt []byte) {
		if !traced(pkt) {
			return
		}
		b := make([]byte, 9+len(pkt))
		b[0] = byte(dir)
		binary.BigEndian.PutUint64(b[1:], uint64(at.UnixNano()))
		copy(b[9:], pkt)
		send(traceEvent{TracePacket, b})
	})
	defer n.SetTap(nil)
	f := func(a overlay.Attachment) {
		b, _ := json.Marshal(map[string]string{"address": a.Address.String()})
		send(traceEvent{TraceAttach, b})
	}
	n.onAttachTrace.Store(&f)
	defer n.onAttachTrace.Store(nil)
	if n.Host != nil {
		if a, ok := n.Host.Current(); ok {
			f(a)
		}
	}
	if err := out.Write(TraceReady, nil); err != nil {
		return nil
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case e := <-ch:
			if err := out.Write(e.typ, e.data); err != nil {
				return nil // the client went away
			}
		case <-tick.C:
			if l := lost.Swap(0); l > 0 {
				b, _ := json.Marshal(map[string]uint64{"events": l})
				if out.Write(TraceLost, b) != nil {
					return nil
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// traced reports whether a packet carries a Mobility Header or UDP, in a
// tunnel or not.
func traced(pkt []byte) bool {
	if len(pkt) > 2*ip6.HeaderLen && ip6.Header(pkt).NextHeader() == ip6.ProtoIPv6 {
		pkt = pkt[ip6.HeaderLen:]
	}
	var c ip6.Chain
	if ip6.Walk(pkt, &c) != nil {
		return false
	}
	return c.Upper == ip6.ProtoMH || c.Upper == ip6.ProtoUDP
}

// Release attaches a host started with Options.Hold to its start link and
// starts watching its underlay, as Start would have.
func (n *Node) Release() error {
	if n.Host == nil {
		return nil
	}
	if !n.held.CompareAndSwap(true, false) {
		return errors.New("node " + n.Cfg.Name + " is not held (it attached when it started)")
	}
	return n.attachAndWatch(n.watch)
}

// hangupAll ends every call in progress and returns their reports.
func (n *Node) hangupAll(ctx context.Context) []softphone.Report {
	if n.SIP.Phone == nil {
		return nil
	}
	var out []softphone.Report
	for _, c := range n.SIP.Phone.Calls() {
		out = append(out, c.Hangup(ctx))
	}
	return out
}

// callReports returns the reports of the calls the node has had, oldest
// first.
func (n *Node) callReports() []softphone.Report {
	n.mu.Lock()
	calls := append([]*softphone.Call(nil), n.allCalls...)
	n.mu.Unlock()
	out := make([]softphone.Report, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.Report())
	}
	return out
}
