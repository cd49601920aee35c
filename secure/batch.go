package secure

import (
	"encoding/binary"
	"time"
)

// batch is a Send's sealed datagrams, in one arena.
type batch struct {
	bufs    [][]byte
	arena   []byte
	scratch scratch
}

// scratch is a goroutine's nonce and additional data: on the heap once,
// not once per frame (an AEAD is an interface, so they would escape).
type scratch struct {
	nonce [12]byte
	ad    [headerLen]byte
	now   time.Time // the receive batch's time
}

// nonceFor is Noise's AESGCM nonce: 32 zero bits, then the counter.
func (s *scratch) nonceFor(counter uint64) []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], counter)
	return s.nonce[:]
}

// getBatch returns a batch with room to seal frames.
func (b *Bind) getBatch(frames [][]byte) *batch {
	bt, _ := b.batches.Get().(*batch)
	if bt == nil {
		bt = &batch{}
	}
	if len(bt.bufs) < len(frames) {
		bt.bufs = make([][]byte, len(frames))
	}
	total := 0
	for _, f := range frames {
		total += len(f) + Overhead
	}
	if len(bt.arena) < total {
		bt.arena = make([]byte, max(total, 64<<10))
	}
	return bt
}
