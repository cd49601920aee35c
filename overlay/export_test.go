package overlay

import (
	"net/netip"
	"time"
)

// Internals the external tests (package overlay_test) and benchmarks drive
// directly.

// Round is a router's processing round, driven by a test.
type Round struct{ st rx }

// HandleFrame processes one frame in buf[Headroom:Headroom+size] as if it
// had arrived from from, without the loop.
func (r *Router) HandleFrame(round *Round, buf []byte, size int, from netip.AddrPort, now time.Time) {
	round.st.from = from
	r.handleFrame(buf, size, now, &round.st)
}

// Flush ends a round: what it queued goes out.
func (r *Router) Flush(round *Round) { r.flush(&round.st) }

// HandleND offers a router an ND packet from a host on link id.
func (r *Router) HandleND(round *Round, pkt []byte, id uint32, from netip.AddrPort, srcLL LinkAddr) {
	round.st.from = from
	round.st.begin()
	r.handleND(pkt, r.links[id], srcLL, &round.st)
	r.end(&round.st)
}

// EndpointOf is where the router would send a frame for address a on link id.
func (r *Router) EndpointOf(id uint32, a netip.Addr) (netip.AddrPort, bool) {
	return r.links[id].endpointOf(a)
}

// HandleND offers a host an ND packet on its current link.
func (h *Host) HandleND(pkt []byte) {
	var st hostRx
	h.handleND(&st, pkt, h.cur.Load())
}

// ND builders, for tests that craft neighbour discovery.
func BuildRS(src netip.Addr, ll LinkAddr) []byte { var w ndBuilder; return clone(w.rs(src, ll)) }
func BuildRA(p RAParams, src, dst netip.Addr) []byte {
	var w ndBuilder
	return clone(w.ra(p, src, dst))
}
func BuildNS(target, src netip.Addr, ll LinkAddr) []byte {
	var w ndBuilder
	return clone(w.ns(target, src, ll, netip.Addr{}))
}
func BuildNA(target, dst netip.Addr, ll LinkAddr, router, solicited bool) []byte {
	var w ndBuilder
	return clone(w.na(target, dst, ll, router, solicited))
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// ParseNDForTest decodes an ND packet into the fields tests check.
func ParseNDForTest(pkt []byte) (typ uint8, target netip.Addr, prefix netip.Prefix, mtu int, err error) {
	var m ndMsg
	err = parseND(pkt, &m)
	return m.typ, m.target, m.prefix, m.mtu, err
}

// PickLink is pickLink.
var PickLink = pickLink

// SpareLink is spareLink.
var SpareLink = spareLink

// RouterTimers is how many periodic timers a router runs.
func (r *Router) RouterTimers() int {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return len(r.timers)
}

// LookupRoute is the forwarding table lookup alone.
func (r *Router) LookupRoute(dst netip.Addr) bool { return r.fib.lookup(dst) != nil }

// BatchSend queues frames to one peer and flushes them, as a round does.
type BatchSend struct{ b sendBatch }

func (s *BatchSend) Add(to netip.AddrPort, frame []byte) { s.b.add(to, frame) }
func (s *BatchSend) Flush(b Bind) int                    { return s.b.flush(b) }

// HostReceive processes one batch of frames as the host's receive loop does.
type HostReceive struct{ st hostRx }

func (h *Host) Receive(rcv *HostReceive, bufs [][]byte, sizes []int, n int) {
	h.receiveBatch(&rcv.st, bufs, sizes, n)
}
