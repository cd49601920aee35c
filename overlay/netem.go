package overlay

import (
	"container/heap"
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
)

// Shape tells Netem the one-way delay and loss of a frame of link linkID
// (0: the backbone) sent to peer to.
type Shape func(to netip.AddrPort, linkID uint32) (delay time.Duration, loss float64)

// Netem wraps a Bind with emulated one-way delay and random loss on the
// sending side, like tc netem does for the namespace testbed. It copies
// delayed datagrams, so it is for the lab, not for the fast path.
type Netem struct {
	Bind
	shape Shape

	mu     sync.Mutex
	seed   uint64
	rngs   map[lossStream]*rand.Rand
	seq    uint64 // orders datagrams due at the same instant
	queue  delayQueue
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once

	Dropped atomic.Uint64 // datagrams lost on purpose
	Delayed atomic.Uint64
	extra   atomic.Uint64 // math.Float64bits of the loss added to every frame
}

// SetExtraLoss adds a loss probability to every frame on top of the shape's
// (0 removes it), for tests and experiments that change loss mid-run.
func (n *Netem) SetExtraLoss(p float64) { n.extra.Store(math.Float64bits(p)) }

// lossStream is one sequence of loss decisions. Each signalling flow (the
// source and destination of a Mobility Header or SIP packet, inside a
// tunnel if there is one) draws from its own stream, and the rest of a
// link's traffic from another, so that which signalling messages are lost
// depends on the seed and on each flow's own order, not on how media and
// other flows happened to interleave with it: the same seed gives the same
// message counts.
type lossStream struct {
	link     uint32
	src, dst netip.Addr // zero for traffic other than signalling
}

// NewNetem wraps inner; seed makes the loss pattern repeatable.
func NewNetem(inner Bind, shape Shape, seed uint64) *Netem {
	n := &Netem{
		Bind:   inner,
		shape:  shape,
		seed:   seed,
		rngs:   map[lossStream]*rand.Rand{},
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	go n.run()
	return n
}

type delayed struct {
	due  time.Time
	seq  uint64
	to   netip.AddrPort
	data []byte
}

type delayQueue []*delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(*delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

func (n *Netem) Send(bufs [][]byte, to netip.AddrPort) error {
	if len(bufs) == 0 {
		return nil
	}
	// Frames to one peer all belong to one link; the first one tells which.
	var id uint32
	if len(bufs[0]) >= 8 {
		id = binary.BigEndian.Uint32(bufs[0][4:8])
	}
	delay, loss := n.shape(to, id)
	if extra := math.Float64frombits(n.extra.Load()); extra > 0 {
		loss = 1 - (1-loss)*(1-extra)
	}
	if delay <= 0 && loss <= 0 {
		return n.Bind.Send(bufs, to)
	}
	now := time.Now()
	var keep [][]byte
	n.mu.Lock()
	for _, b := range bufs {
		if loss > 0 && n.rng(id, b).Float64() < loss {
			n.Dropped.Add(1)
			continue
		}
		if delay <= 0 {
			keep = append(keep, b)
			continue
		}
		n.seq++
		heap.Push(&n.queue, &delayed{due: now.Add(delay), seq: n.seq, to: to, data: append([]byte(nil), b...)})
		n.Delayed.Add(1)
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	if len(keep) > 0 {
		return n.Bind.Send(keep, to)
	}
	return nil
}

// rng returns the loss stream of frame b on link id; n.mu is held.
func (n *Netem) rng(id uint32, b []byte) *rand.Rand {
	k := lossStream{link: id}
	if len(b) > FrameHeaderLen {
		k.src, k.dst, _ = signallingFlow(b[FrameHeaderLen:])
	}
	r, ok := n.rngs[k]
	if !ok {
		h := fnv.New64a()
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], id)
		h.Write(buf[:])
		h.Write(k.src.AsSlice())
		h.Write(k.dst.AsSlice())
		s := n.seed ^ h.Sum64()
		r = rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
		n.rngs[k] = r
	}
	return r
}

// signallingFlow returns the source and destination of an IPv6 packet, or
// of the packet it tunnels, that carries a Mobility Header or SIP (UDP port
// 5060).
func signallingFlow(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) > 2*ip6.HeaderLen && ip6.Header(pkt).NextHeader() == ip6.ProtoIPv6 {
		pkt = pkt[ip6.HeaderLen:]
	}
	var c ip6.Chain
	if ip6.Walk(pkt, &c) != nil {
		return src, dst, false
	}
	switch c.Upper {
	case ip6.ProtoMH:
	case ip6.ProtoUDP:
		if c.UpperOff+4 > len(pkt) {
			return src, dst, false
		}
		u := pkt[c.UpperOff:]
		if binary.BigEndian.Uint16(u) != 5060 && binary.BigEndian.Uint16(u[2:]) != 5060 {
			return src, dst, false
		}
	default:
		return src, dst, false
	}
	h := ip6.Header(pkt)
	return h.Src(), h.Dst(), true
}

func (n *Netem) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		now := time.Now()
		var due []*delayed
		for n.queue.Len() > 0 && !n.queue[0].due.After(now) {
			due = append(due, heap.Pop(&n.queue).(*delayed))
		}
		wait := time.Hour
		if n.queue.Len() > 0 {
			wait = n.queue[0].due.Sub(now)
		}
		n.mu.Unlock()
		// Consecutive datagrams to the same peer go out as one batch.
		for i := 0; i < len(due); {
			j := i
			var batch [][]byte
			for j < len(due) && due[j].to == due[i].to && len(batch) < n.BatchSize() {
				batch = append(batch, due[j].data)
				j++
			}
			_ = n.Bind.Send(batch, due[i].to)
			i = j
		}
		if len(due) > 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-n.closed:
			return
		case <-n.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}

func (n *Netem) Close() error {
	n.once.Do(func() { close(n.closed) })
	return n.Bind.Close()
}
