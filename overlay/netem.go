package overlay

import (
	"container/heap"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
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
	rng    *rand.Rand
	queue  delayQueue
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once

	Dropped atomic.Uint64 // datagrams lost on purpose
	Delayed atomic.Uint64
}

// NewNetem wraps inner; seed makes the loss pattern repeatable.
func NewNetem(inner Bind, shape Shape, seed uint64) *Netem {
	n := &Netem{
		Bind:   inner,
		shape:  shape,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
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

var netemSeq atomic.Uint64

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
	if delay <= 0 && loss <= 0 {
		return n.Bind.Send(bufs, to)
	}
	now := time.Now()
	var keep [][]byte
	n.mu.Lock()
	for _, b := range bufs {
		if loss > 0 && n.rng.Float64() < loss {
			n.Dropped.Add(1)
			continue
		}
		if delay <= 0 {
			keep = append(keep, b)
			continue
		}
		heap.Push(&n.queue, &delayed{due: now.Add(delay), seq: netemSeq.Add(1), to: to, data: append([]byte(nil), b...)})
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
