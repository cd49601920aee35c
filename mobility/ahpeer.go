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

	mu     sync.Mutex
	window auth.ReplayWindow
	seq    uint32 // the last sequence number sent
}

// protect returns pkt with an Authentication Header under the next
// sequence number.
func (p *ahPeer) protect(pkt []byte) ([]byte, error) {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	return p.out.Protect(pkt, seq)
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
