package mobility

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility/auth"
)

// ahPeer is the other end of a pair of manually keyed IPsec AH security
// associations (RFC 4302 with HMAC-SHA-256-128): a home agent as an HA2R
// knows it, or an HA2R as a home agent knows it. out protects what we send
// to it, in what it sends to us; the replay window and our sequence number
// live here too, under one lock.
type ahPeer struct {
	addr    netip.Addr
	out, in auth.SA

	mu       sync.Mutex
	window   auth.ReplayWindow
	seq      uint32 // the last sequence number sent
	reserved uint32 // numbers up to this one may have been sent (saved)
	// persist saves the engine's state, reservations included, before a
	// number above the last reservation goes out; nil keeps nothing.
	persist func()
}

// protect returns pkt with an Authentication Header under the next
// sequence number.
func (p *ahPeer) protect(pkt []byte) ([]byte, error) {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	reserve := seq > p.reserved && p.persist != nil
	if reserve {
		p.reserved = seq + ahSeqBlock
	}
	p.mu.Unlock()
	if reserve {
		p.persist()
	}
	return p.out.Protect(pkt, seq)
}

// resume continues after a restart above every number that may have been
// sent before it.
func (p *ahPeer) resume(reserved uint32) {
	p.mu.Lock()
	p.seq, p.reserved = reserved, reserved
	p.mu.Unlock()
}

// reservation is what the state file keeps of the peer.
func (p *ahPeer) reservation() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reserved
}

// ahPeers finds the peer an AH-protected packet comes from.
type ahPeers struct {
	bySPI  map[uint32]*ahPeer // by the SPI of what the peer sends us
	byAddr map[netip.Addr]*ahPeer
}

func newAHPeers() ahPeers {
	return ahPeers{bySPI: map[uint32]*ahPeer{}, byAddr: map[netip.Addr]*ahPeer{}}
}

func (ps ahPeers) add(p *ahPeer) {
	ps.bySPI[p.in.SPI] = p
	ps.byAddr[p.addr] = p
}

// reservations returns every peer's saved reservation, by address.
func (ps ahPeers) reservations() map[netip.Addr]uint32 {
	out := map[netip.Addr]uint32{}
	for a, p := range ps.byAddr {
		out[a] = p.reservation()
	}
	return out
}

// resume restores saved reservations and makes every peer save through
// persist from now on.
func (ps ahPeers) resume(saved map[netip.Addr]uint32, persist func()) {
	for a, p := range ps.byAddr {
		p.resume(saved[a])
		p.persist = persist
	}
}

// errAHWrongSender: the packet authenticated under an SA of a peer other
// than its source.
var errAHWrongSender = errors.New("mobility: AH-protected packet from an address that is not its SA's peer")

// open verifies the AH of pkt against the SA its SPI names, checks and
// advances that SA's replay window (RFC 4302 3.4.3), and checks that the
// packet comes from the SA's peer. It returns the packet without AH.
func (ps ahPeers) open(pkt []byte) ([]byte, *ahPeer, error) {
	var peer *ahPeer
	inner, _, err := auth.Open(pkt, func(spi uint32) (*auth.SA, *auth.ReplayWindow, bool) {
		p, ok := ps.bySPI[spi]
		if !ok {
			return nil, nil, false
		}
		peer = p
		p.mu.Lock() // released below: the window is checked and moved under it
		return &p.in, &p.window, true
	})
	if peer != nil {
		peer.mu.Unlock()
	}
	if err != nil {
		return nil, nil, err
	}
	if peer.addr != ip6.Header(pkt).Src() {
		return nil, nil, errAHWrongSender
	}
	return inner, peer, nil
}

// ahDrop names the reason an AH-protected message was refused.
func ahDrop(err error) Drop {
	switch {
	case errors.Is(err, auth.ErrAHSPI):
		return DropMNAuthAHUnknownSPI
	case errors.Is(err, auth.ErrAHReplay):
		return DropMNAuthAHReplay
	case errors.Is(err, errAHWrongSender):
		return DropMNAuthAHWrongSender
	}
	return DropMNAuthAHBad
}
