// Package secure is the underlay's security: a Bind that wraps another
// (overlay.Bind) and lets through only frames that authenticate as coming
// from a node the topology lists, in the manner of WireGuard and Nebula.
// Every node has a static Curve25519 key pair; each pair of nodes that talk
// runs a Noise IK handshake (handshake.go) and then seals every overlay
// frame with AES-GCM under a counter that a sliding window checks
// (replay.go). The overlay above it is unchanged: it sends frames to
// endpoints and learns endpoints from what it receives, and because only
// authenticated frames reach it, a host's endpoint is learned only from
// frames that host sealed (roaming behind NAT keeps working; a hijack by a
// forged keepalive does not). A frame must also claim its sender's own
// link-layer address, so that a node with valid keys cannot pose as
// another.
package secure

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
	"golang.org/x/time/rate"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/overlay"
)

// Peer is a node this one may talk to.
type Peer struct {
	Name      string
	PublicKey Key
	// Endpoint is where the peer listens, if known in advance (routers);
	// hosts' endpoints are learned from their authenticated frames.
	Endpoint netip.AddrPort
	// Warm starts a handshake with the peer when the bind opens, so the
	// first packet does not wait for one (a host's access routers).
	Warm bool
}

// Config configures a Bind.
type Config struct {
	PrivateKey Key
	Peers      []Peer
	// Timers and limits; zero picks WireGuard's values (rekey after 120 s
	// or 2^60 messages, reject after 180 s or 2^64-2^13-1).
	RekeyAfterTime      time.Duration
	RejectAfterTime     time.Duration
	RekeyAfterMessages  uint64
	RejectAfterMessages uint64
	// RetryInterval is how long an initiation waits for its response
	// before it is sent again (default 1 s; up to MaxAttempts times).
	RetryInterval time.Duration
	MaxAttempts   int
	// HandshakesPerSecond bounds the initiations this node answers (a
	// Diffie-Hellman each) so that a flood costs a bounded share of a core
	// (default 1000/s, burst 200).
	HandshakesPerSecond float64
	Clock               clock.Clock
	Metrics             *metrics.Set
	Log                 *slog.Logger
}

const (
	defaultRekeyAfterTime      = 120 * time.Second
	defaultRejectAfterTime     = 180 * time.Second
	defaultRekeyAfterMessages  = 1 << 60
	defaultRejectAfterMessages = ^uint64(0) - (1 << 13)
	defaultRetryInterval       = time.Second
	defaultMaxAttempts         = 20
	stagedMax                  = 128 // frames held per peer while a handshake runs
)

// Bind seals what the overlay sends and opens what it receives.
type Bind struct {
	inner      overlay.Bind
	cfg        Config
	clk        clock.Clock
	log        *slog.Logger
	private    Key
	public     Key
	mac1       [32]byte // key of the mac1 on messages to this node
	peers      map[Key]*peer
	limiter    *rate.Limiter
	hints      *rate.Limiter // unknown-session answers sent
	cookies    cookieJar
	cookieSeal cipher.AEAD // seals the cookies this node hands out
	suite      noise.CipherSuite
	c          counters
	batches    sync.Pool // of *batch

	lastStamp atomic.Uint64
	sessions  atomic.Uint64 // numbers sessions in the order this node took them up

	mu         sync.RWMutex
	byEndpoint map[netip.AddrPort]*peer
	byIndex    map[uint32]*keypair
	pending    map[uint32]*handshake
	closed     bool
}

// peer is a Peer's state.
type peer struct {
	Peer
	public Key
	link   overlay.LinkAddr
	mac1   [32]byte // key of the mac1 on messages to this peer

	current    atomic.Pointer[keypair]
	known      atomic.Pointer[netip.AddrPort] // the endpoint byEndpoint maps to this peer
	cookie     atomic.Pointer[heldCookie]     // the peer's last cookie reply
	cookieOpen cipher.AEAD                    // opens the peer's cookie replies

	mu       sync.Mutex
	endpoint netip.AddrPort
	// retired are the sessions rotated out, newest first, still open to
	// frames: one sealed just before its sender rotated can arrive after
	// the keepalive of the sender's next rotation (the seal and the
	// handshake run in different goroutines), when both ends rekeying
	// have rotated this end more than once meanwhile. With one kept, 40
	// of 450 runs of TestRekeyLosesNothing under load lost a frame; with
	// two, 1; with three, none.
	retired   [2]*keypair
	next      *keypair // a session p initiated, not yet confirmed
	hs        *handshake
	attempts  int
	retry     clock.Timer
	staged    [][]byte
	lastStamp uint64 // newest initiation timestamp accepted from it
}

// New wraps inner.
func New(inner overlay.Bind, cfg Config) (*Bind, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("secure: no private key (run `node keygen` and name the file in the node's private_key_file)")
	}
	if cfg.RekeyAfterTime <= 0 {
		cfg.RekeyAfterTime = defaultRekeyAfterTime
	}
	if cfg.RejectAfterTime <= 0 {
		cfg.RejectAfterTime = defaultRejectAfterTime
	}
	if cfg.RekeyAfterMessages == 0 {
		cfg.RekeyAfterMessages = defaultRekeyAfterMessages
	}
	if cfg.RejectAfterMessages == 0 {
		cfg.RejectAfterMessages = defaultRejectAfterMessages
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = defaultRetryInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	if cfg.HandshakesPerSecond <= 0 {
		cfg.HandshakesPerSecond = 1000
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Set{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	b := &Bind{inner: inner, cfg: cfg, clk: cfg.Clock, log: cfg.Log, private: cfg.PrivateKey, public: cfg.PrivateKey.Public(),
		peers: map[Key]*peer{}, byEndpoint: map[netip.AddrPort]*peer{}, byIndex: map[uint32]*keypair{}, pending: map[uint32]*handshake{},
		limiter: rate.NewLimiter(rate.Limit(cfg.HandshakesPerSecond), handshakeBurst(cfg.HandshakesPerSecond)), hints: rate.NewLimiter(50, 50)}
	b.cookies.init(cfg.HandshakesPerSecond)
	b.mac1 = mac1Key(b.public)
	b.cookieSeal = cookieKey(b.public)
	// Noise_IK_25519_AESGCM_SHA256; see handshake.go for the choices.
	b.suite = noise.NewCipherSuite(&x25519{}, noise.CipherAESGCM, noise.HashSHA256)
	b.c.resolve(cfg.Metrics)
	for _, pc := range cfg.Peers {
		if pc.PublicKey.IsZero() {
			return nil, fmt.Errorf("secure: peer %s has no public key", pc.Name)
		}
		if pc.PublicKey == b.public {
			continue // this node itself
		}
		if _, dup := b.peers[pc.PublicKey]; dup {
			return nil, fmt.Errorf("secure: peers share the public key %s (each node needs its own key pair)", pc.PublicKey)
		}
		p := &peer{Peer: pc, public: pc.PublicKey, link: overlay.NodeLinkAddr(pc.Name), mac1: mac1Key(pc.PublicKey), endpoint: pc.Endpoint,
			cookieOpen: cookieKey(pc.PublicKey)}
		b.peers[pc.PublicKey] = p
		if pc.Endpoint.IsValid() {
			b.byEndpoint[pc.Endpoint] = p
		}
	}
	return b, nil
}

// PublicKey is this node's public key.
func (b *Bind) PublicKey() Key { return b.public }

func (b *Bind) BatchSize() int { return b.inner.BatchSize() }

// Open opens the inner bind and starts handshakes with the warm peers.
func (b *Bind) Open(port uint16) ([]overlay.ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]overlay.ReceiveFunc, len(fns))
	for i, fn := range fns {
		out[i] = b.receiveFunc(fn)
	}
	for _, p := range b.peers {
		if p.Warm && p.Endpoint.IsValid() {
			b.initiate(p, p.Endpoint)
		}
	}
	return out, actual, nil
}

func (b *Bind) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	for _, p := range b.peers {
		p.mu.Lock()
		if p.retry != nil {
			p.retry.Stop()
		}
		p.staged = nil
		p.mu.Unlock()
	}
	return b.inner.Close()
}

// Send seals bufs for the peer at to. A peer without a session gets its
// frames staged while a handshake runs; an endpoint no authenticated peer
// has used is refused.
func (b *Bind) Send(bufs [][]byte, to netip.AddrPort) error {
	b.mu.RLock()
	p := b.byEndpoint[to]
	b.mu.RUnlock()
	if p == nil {
		b.c.noPeer.Add(uint64(len(bufs)))
		return nil
	}
	now := b.clk.Now()
	kp := p.current.Load()
	if kp == nil || !b.usable(kp, now) {
		b.stage(p, bufs)
		b.initiate(p, to)
		return nil
	}
	if b.wantsRekey(kp, now) {
		b.initiate(p, to)
	}
	batch := b.getBatch(bufs)
	defer b.batches.Put(batch)
	sc := &batch.scratch
	off := 0
	for i, f := range bufs {
		ctr := kp.sent.Add(1) - 1
		n := headerLen + len(f) + tagLen
		// Sealed datagrams lie end to end in one arena, each with the
		// arena's remaining capacity: the underlay's UDP GSO coalesces a
		// batch by appending each datagram to the one before, which is
		// then a copy onto itself instead of a refusal for want of room.
		out := batch.arena[off : off+n]
		putTransportHeader(out, kp.remoteIndex, ctr)
		copy(sc.ad[:], out[:headerLen]) // AEAD wants dst and ad apart
		batch.bufs[i] = kp.send.Seal(out[:headerLen], sc.nonceFor(ctr), f, sc.ad[:])
		off += n
	}
	b.c.sealed.Add(uint64(len(bufs)))
	return b.inner.Send(batch.bufs[:len(bufs)], to)
}

// usable says kp may still seal: young enough and not worn out.
func (b *Bind) usable(kp *keypair, now time.Time) bool {
	return now.Sub(kp.created) < b.cfg.RejectAfterTime && kp.sent.Load() < b.cfg.RejectAfterMessages
}

// wantsRekey: the session's initiator rekeys after RekeyAfterTime, the
// responder 10 s later (so they rarely both do), either after
// RekeyAfterMessages.
func (b *Bind) wantsRekey(kp *keypair, now time.Time) bool {
	after := b.cfg.RekeyAfterTime
	if !kp.initiator {
		after += 10 * time.Second
	}
	return now.Sub(kp.created) >= after || kp.sent.Load() >= b.cfg.RekeyAfterMessages
}

func (b *Bind) stage(p *peer, bufs [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range bufs {
		if len(p.staged) >= stagedMax {
			p.staged = p.staged[1:]
			b.c.stagedDropped.Add(1)
		}
		p.staged = append(p.staged, append([]byte(nil), f...))
	}
}

// initiate starts a handshake with p at to unless one is in flight.
func (b *Bind) initiate(p *peer, to netip.AddrPort) {
	p.mu.Lock()
	if p.hs != nil && b.clk.Now().Sub(p.hs.sent) < b.cfg.RetryInterval {
		p.mu.Unlock()
		return
	}
	if p.hs == nil {
		p.attempts = 0
	}
	p.mu.Unlock()
	b.sendInitiation(p, to)
}

// sendInitiation sends a fresh initiation (a retry is a new one, with a
// new ephemeral key and timestamp, as in WireGuard) and arms the retry.
func (b *Bind) sendInitiation(p *peer, to netip.AddrPort) {
	hs, msg, err := b.createInitiation(p)
	if err != nil {
		b.log.Error("underlay handshake", "peer", p.Name, "err", err)
		return
	}
	hs.to = to
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.pending[hs.localIndex] = hs
	b.mu.Unlock()
	p.mu.Lock()
	if old := p.hs; old != nil {
		b.forgetPending(old.localIndex)
	}
	p.hs = hs
	p.attempts++
	attempts := p.attempts
	if p.retry == nil {
		p.retry = b.clk.AfterFunc(b.cfg.RetryInterval, func() { b.retryHandshake(p, to) })
	} else {
		p.retry.Reset(b.cfg.RetryInterval)
	}
	p.mu.Unlock()
	b.c.initiations.Add(1)
	if attempts > 1 {
		b.c.retries.Add(1)
	}
	if err := b.inner.Send([][]byte{msg}, to); err != nil {
		b.log.Debug("underlay handshake: send", "peer", p.Name, "err", err)
	}
}

func (b *Bind) forgetPending(idx uint32) {
	b.mu.Lock()
	delete(b.pending, idx)
	b.mu.Unlock()
}

// retryHandshake runs when an initiation went unanswered.
func (b *Bind) retryHandshake(p *peer, to netip.AddrPort) {
	p.mu.Lock()
	if p.hs == nil {
		p.mu.Unlock()
		return
	}
	if p.attempts >= b.cfg.MaxAttempts {
		dropped := len(p.staged)
		b.forgetPending(p.hs.localIndex)
		p.hs, p.staged = nil, nil
		p.mu.Unlock()
		b.c.handshakeGaveUp.Add(1)
		b.c.stagedDropped.Add(uint64(dropped))
		b.log.Warn("underlay handshake unanswered", "peer", p.Name, "endpoint", to, "attempts", b.cfg.MaxAttempts)
		return
	}
	p.mu.Unlock()
	b.sendInitiation(p, to)
}

// install makes kp (the session of hs, which this node initiated) p's
// current one, keeps the one before it for what is still in flight, and
// sends what waited for it, or an empty keepalive that confirms the
// session to the responder. A response to an initiation that a retry or
// a crossed initiation has since replaced is stale: the peer has offered
// a session for the newer one and forgotten this one's.
func (b *Bind) install(hs *handshake, kp *keypair, from netip.AddrPort) {
	p := hs.peer
	p.mu.Lock()
	if p.hs != hs {
		p.mu.Unlock()
		b.c.staleResponse.Add(1)
		return
	}
	p.hs = nil
	if p.retry != nil {
		p.retry.Stop()
	}
	b.addIndex(kp)
	b.rotateLocked(p, kp)
	staged := p.staged
	p.staged = nil
	p.mu.Unlock()
	b.learn(p, from)
	b.c.sessions.Add(1)
	if len(staged) == 0 {
		staged = [][]byte{nil}
	}
	b.Send(staged, from)
}

// offer keeps kp (a session p initiated) as p's next one until p's first
// frame under it confirms it: until then p may still send under the
// current one, which must stay open. A peer without a session uses it at
// once.
func (b *Bind) offer(p *peer, kp *keypair, from netip.AddrPort) {
	b.addIndex(kp)
	p.mu.Lock()
	if p.next != nil {
		b.forgetIndex(p.next.localIndex)
	}
	p.next = nil
	var staged [][]byte
	if p.current.Load() == nil {
		b.rotateLocked(p, kp)
		staged, p.staged = p.staged, nil
	} else {
		p.next = kp
	}
	p.mu.Unlock()
	b.learn(p, from)
	b.c.sessions.Add(1)
	if len(staged) > 0 {
		b.Send(staged, from)
	}
}

// confirm promotes p's next session once a frame authenticated under it,
// unless this node has since installed a newer one it initiated itself (the
// two handshakes overlapped): the peer will confirm that one in turn, and
// both ends then send under it. Promoting the older would leave each end
// sending under the session the other initiated, and each would retire at
// its next rekey the one the other still uses. The offer stays open for
// what the peer sends under it meanwhile.
func (b *Bind) confirm(p *peer, kp *keypair) {
	p.mu.Lock()
	if p.next == kp && kp.order > p.current.Load().order {
		p.next = nil
		b.rotateLocked(p, kp)
	}
	p.mu.Unlock()
}

// rotateLocked makes kp current and retires the current one; the oldest
// retired session beyond len(p.retired) is closed.
func (b *Bind) rotateLocked(p *peer, kp *keypair) {
	old := p.current.Swap(kp)
	keep := [len(p.retired)]*keypair{old}
	n := 1
	for _, r := range p.retired {
		switch {
		case r == nil || r == kp || r == old:
		case n < len(keep):
			keep[n] = r
			n++
		default:
			b.forgetIndex(r.localIndex)
		}
	}
	p.retired = keep
}

// addIndex opens kp to frames under its index.
func (b *Bind) addIndex(kp *keypair) {
	kp.order = b.sessions.Add(1)
	b.mu.Lock()
	b.byIndex[kp.localIndex] = kp
	b.mu.Unlock()
}

func (b *Bind) forgetIndex(idx uint32) {
	b.mu.Lock()
	delete(b.byIndex, idx)
	b.mu.Unlock()
}

// learn records from as p's endpoint: called only for messages that
// authenticated as p's, so once per frame; the endpoint rarely changes,
// so the common case is one atomic load.
func (b *Bind) learn(p *peer, from netip.AddrPort) {
	if k := p.known.Load(); k != nil && *k == from {
		return
	}
	p.mu.Lock()
	old := p.endpoint
	p.endpoint = from
	p.mu.Unlock()
	b.mu.Lock()
	if old.IsValid() && old != from && old != p.Endpoint && b.byEndpoint[old] == p {
		delete(b.byEndpoint, old)
	}
	if prev := b.byEndpoint[from]; prev != nil && prev != p {
		prev.known.Store(nil) // from is p's now
	}
	b.byEndpoint[from] = p
	known := from // only this copy escapes: &from would put every call's from on the heap
	p.known.Store(&known)
	b.mu.Unlock()
}

// newIndex picks a random local index not in use.
func (b *Bind) newIndex() uint32 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for {
		idx := rand.Uint32()
		if _, used := b.byIndex[idx]; used {
			continue
		}
		if _, used := b.pending[idx]; used {
			continue
		}
		return idx
	}
}

// receiveFunc opens what inner reads: transport messages become overlay
// frames in bufs, handshakes are answered here, the rest is dropped.
func (b *Bind) receiveFunc(inner overlay.ReceiveFunc) overlay.ReceiveFunc {
	sc := new(scratch)
	return func(bufs [][]byte, sizes []int, from []netip.AddrPort) (int, error) {
		for {
			n, err := inner(bufs, sizes, from)
			sc.now = b.clk.Now() // once per batch, not per frame
			out := 0
			for i := 0; i < n; i++ {
				frame, ok := b.process(bufs[i][:sizes[i]], from[i], sc)
				if !ok {
					continue
				}
				sizes[out] = copy(bufs[out], frame)
				from[out] = from[i]
				out++
			}
			if out > 0 || err != nil || n == 0 {
				return out, err
			}
		}
	}
}

// process takes one underlay datagram: a transport message that opens
// gives its frame (decrypted in place); handshakes are answered here; the
// rest is dropped, counted.
func (b *Bind) process(msg []byte, from netip.AddrPort, sc *scratch) ([]byte, bool) {
	if len(msg) == 0 {
		b.c.malformed.Add(1)
		return nil, false
	}
	switch msg[0] {
	case typeTransport:
		return b.open(msg, from, sc)
	case typeInitiation, typeResponse, typeCookie:
		b.handshake(msg, from)
	case typeUnknown:
		b.unknownSession(msg, from)
	case plainFrameMagic:
		b.c.plaintext.Add(1)
	default:
		b.c.malformed.Add(1)
	}
	return nil, false
}

// open authenticates and decrypts a transport message in place.
func (b *Bind) open(msg []byte, from netip.AddrPort, sc *scratch) ([]byte, bool) {
	idx, ctr, sealed, err := parseTransport(msg)
	if err != nil {
		b.c.malformed.Add(1)
		return nil, false
	}
	b.mu.RLock()
	kp := b.byIndex[idx]
	b.mu.RUnlock()
	if kp == nil {
		b.c.unknownIndex.Add(1)
		b.tellUnknown(idx, from)
		return nil, false
	}
	if sc.now.IsZero() {
		sc.now = b.clk.Now()
	}
	if ctr >= b.cfg.RejectAfterMessages || sc.now.Sub(kp.created) >= b.cfg.RejectAfterTime {
		b.c.expired.Add(1)
		return nil, false
	}
	copy(sc.ad[:], msg[:headerLen])
	frame, err := kp.recv.Open(sealed[:0], sc.nonceFor(ctr), sealed, sc.ad[:])
	if err != nil {
		b.c.authFailed.Add(1)
		return nil, false
	}
	kp.mu.Lock()
	fresh := kp.window.Accept(ctr)
	kp.mu.Unlock()
	if !fresh {
		b.c.replayed.Add(1)
		return nil, false
	}
	p := kp.peer
	// Offsets of overlay.FrameHeader: the sender's link-layer address
	// is bytes 8-13. An empty frame is a session's keepalive.
	if len(frame) > 0 && (len(frame) < overlay.FrameHeaderLen || overlay.LinkAddr(frame[8:14]) != p.link) {
		b.c.wrongLinkAddr.Add(1)
		return nil, false
	}
	if !kp.initiator && p.current.Load() != kp {
		b.confirm(p, kp)
	}
	b.learn(p, from)
	if len(frame) == 0 {
		b.c.keepalives.Add(1) // confirms a session; nothing for the overlay
		return nil, false
	}
	b.c.opened.Add(1)
	return frame, true
}

// handshake answers an initiation or completes ours with a response.
func (b *Bind) handshake(msg []byte, from netip.AddrPort) {
	if err := checkHandshake(msg); err != nil {
		b.c.malformed.Add(1)
		return
	}
	if msg[0] == typeCookie {
		b.cookieReply(msg) // sealed for us: no mac1
		return
	}
	if !mac1Valid(&b.mac1, msg) {
		b.c.badMAC1.Add(1)
		return
	}
	switch msg[0] {
	case typeInitiation:
		if !b.admit(msg, from) {
			return
		}
		kp, res, err := b.consumeInitiation(msg)
		if err != nil {
			b.handshakeFailed(err)
			return
		}
		if b.crossed(kp.peer, from) {
			b.c.crossedInitiation.Add(1)
			return
		}
		b.c.responses.Add(1)
		if err := b.inner.Send([][]byte{res}, from); err != nil {
			b.log.Debug("underlay handshake: send response", "peer", kp.peer.Name, "err", err)
		}
		b.offer(kp.peer, kp, from)
	case typeResponse:
		idx := binary.BigEndian.Uint32(msg[8:12])
		b.mu.Lock()
		hs := b.pending[idx]
		delete(b.pending, idx)
		b.mu.Unlock()
		if hs == nil {
			b.c.staleResponse.Add(1) // abandoned, superseded, or forged
			return
		}
		kp, err := b.consumeResponse(hs, msg)
		if err != nil {
			b.handshakeFailed(err)
			return
		}
		b.install(hs, kp, from)
	}
}

// crossed settles two initiations that crossed on the wire (both ends
// rekeyed at once, on the same message count or after a pause). Answered
// both, they leave each end holding as current the session the other
// initiated, and each then retires the one the other still sends under
// at the next rekey. As WireGuard (one handshake per peer), only one may
// complete: the initiation of the end with the lower public key wins,
// provided it went to where the other's came from (one sent to a stale
// endpoint would never be answered). The loser abandons its own
// initiation and answers; the winner drops the other's and waits for
// its answer.
//
// Only a rekey is settled so: before the first session both initiations
// are answered and used at once (a responder without a session sends
// under the new one at once), which is what a node that starts wants,
// and the next rekey settles on one session again.
func (b *Bind) crossed(p *peer, from netip.AddrPort) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hs == nil || p.current.Load() == nil {
		return false
	}
	if p.hs.to == from && bytes.Compare(b.public[:], p.public[:]) < 0 {
		return true
	}
	b.forgetPending(p.hs.localIndex)
	p.hs = nil
	if p.retry != nil {
		p.retry.Stop()
	}
	return false
}

// tellUnknown answers a transport message for a session this node does
// not have (it restarted, or forgot an expired one) so that its peer
// handshakes again at once rather than at its next rekey.
func (b *Bind) tellUnknown(idx uint32, to netip.AddrPort) {
	if !b.hints.AllowN(b.clk.Now(), 1) {
		return
	}
	msg := make([]byte, unknownLen)
	msg[0] = typeUnknown
	binary.BigEndian.PutUint32(msg[4:8], idx)
	b.c.hintsSent.Add(1)
	b.inner.Send([][]byte{msg}, to)
}

// unknownSession handles a peer's word that it lacks the session this
// node sends under: a handshake, if the word names the current session
// with the peer at that endpoint.
func (b *Bind) unknownSession(msg []byte, from netip.AddrPort) {
	if len(msg) != unknownLen || msg[1]|msg[2]|msg[3] != 0 {
		b.c.malformed.Add(1)
		return
	}
	idx := binary.BigEndian.Uint32(msg[4:8])
	b.mu.RLock()
	p := b.byEndpoint[from]
	b.mu.RUnlock()
	if p == nil {
		b.c.hintsIgnored.Add(1)
		return
	}
	cur := p.current.Load()
	if cur == nil || cur.remoteIndex != idx {
		b.c.hintsIgnored.Add(1)
		return
	}
	b.c.hintsHeeded.Add(1)
	b.initiate(p, from)
}

func (b *Bind) handshakeFailed(err error) {
	switch {
	case errors.Is(err, errStaleTimestamp):
		b.c.staleInitiation.Add(1)
	case errors.Is(err, errUnknownKey):
		b.c.unknownKey.Add(1)
	default:
		b.c.authFailed.Add(1)
	}
}
