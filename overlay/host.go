package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ha2r/mip6testbed/clock"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/tun"
)

// HostLink is an access link a host may attach to.
type HostLink struct {
	Name   string
	ID     uint32
	Router netip.AddrPort // the serving router's underlay endpoint
	Prefix netip.Prefix   // expected prefix (the RA is authoritative)
	Match  UnderlayMatch  // the underlay networks that lead to it, if any
}

// HostConfig describes one host (mobile node or fixed correspondent).
type HostConfig struct {
	Name  string
	Links []HostLink
	// Keepalive is how often the host sends a keepalive frame to its router
	// to hold NAT mappings (25 s, below common UDP NAT timeouts).
	Keepalive time.Duration
	// RSInterval is the Router Solicitation retransmission period while
	// attaching.
	RSInterval time.Duration
	// ManageAddresses puts the address formed on the current link on the
	// device and removes the previous one; a mobility engine that decides
	// addresses itself turns it off.
	ManageAddresses bool
	// StaticAddr is used instead of the autoconfigured address on the link
	// whose prefix contains it.
	StaticAddr netip.Addr
	// LeaveGrace is how long, after a make-before-break move (Commit), the
	// host still takes what arrives on the link it left, before it tells
	// that link's router it has gone (default 2 s): packets its peers sent
	// to the old address before they learned the new one still arrive.
	LeaveGrace time.Duration
	// DeadAfter is how long the current link may stay silent while the
	// host sends, when it holds a standby link (PrepareStandby), before it
	// moves there (default 300 ms): after half of it the host probes its
	// router with a Router Solicitation (answered at once when the path
	// works), and if the other half passes without a frame from the
	// router, the path is taken for dead.
	DeadAfter time.Duration
	// HoldStandby makes the underlay watcher hold the link of a second
	// network in reserve (PrepareStandby) whenever one is up.
	HoldStandby bool
	// PoisonBuffers overwrites every packet buffer once its round is done,
	// so that a hook that kept a reference sees garbage (tests).
	PoisonBuffers bool
	Clock         clock.Clock
	Log           *slog.Logger
	Metrics       *metrics.Set
}

// Attachment is the host's state on an access link once a Router
// Advertisement has been received there.
type Attachment struct {
	Link     HostLink
	Prefix   netip.Prefix
	Address  netip.Addr // formed from Prefix with the stable interface identifier
	RouterLL netip.Addr
	MTU      int
	At       time.Time
	Seq      uint64 // increases with every attach
	// Prepared marks an attachment made before the previous one was left
	// (Prepare, then Commit): its mobility registrations were made while
	// the old link still carried the traffic.
	Prepared bool
	// Standby marks one held in reserve (PrepareStandby): no registration
	// was made for it; the host moves there when the current path dies.
	Standby bool
}

// HostHook is how a mobility engine sees a host's packets. Both methods run
// on the host's loops, once per packet; they may rewrite p in place but
// must not keep it (see Packet).
type HostHook interface {
	// Outbound is offered packets from applications before they leave; it
	// may rewrite them in place (tunnel, Home Address option, routing header).
	Outbound(p *Packet) Verdict
	// Inbound is offered packets from the link before they reach
	// applications; it may rewrite them (decapsulate) or consume them
	// (mobility signalling).
	Inbound(p *Packet) Verdict
}

// Host attaches to one access link at a time, forms its address there from
// Router Advertisements, and carries its applications' packets to and from
// the link's router. See doc.go for the path a packet takes through it.
type Host struct {
	cfg  HostConfig
	ll   LinkAddr
	log  *slog.Logger
	clk  clock.Clock
	m    *metrics.Set
	c    *counters
	bind Bind
	dev  tun.Device
	run  *loops
	hook atomic.Pointer[hostHookBox]
	tap  Tap

	links map[string]HostLink
	byID  map[uint32]*hostLinkState

	mu      sync.Mutex
	cur     atomic.Pointer[hostState]
	rsTimer clock.Timer
	rsCount int
	// Make-before-break: next is a link being attached to while cur still
	// carries the traffic; prev is the link the last Commit left, heard
	// until its grace ends.
	next       atomic.Pointer[hostState]
	nextRS     clock.Timer
	nextCount  int
	prev       atomic.Pointer[hostState]
	prevT      clock.Timer
	onPrepared []func(Attachment)
	// Dead path detection while a standby link is held: when the host last
	// heard a frame on its current link and last sent one (unix ns), and
	// the watch's probe.
	lastRx, lastTx atomic.Int64
	watchT         clock.Timer
	probeAt        int64
	keepT          clock.Timer
	seq            uint64
	onAttach       []func(Attachment)
	onMove         []func(link string)
	ctl            ndBuilder // control packets sent under mu

	port uint16
}

type hostHookBox struct{ h HostHook }

// hostLinkState is what the host keeps per access link it may use.
type hostLinkState struct {
	link      HostLink
	lastLeave atomic.Int64 // unix nanoseconds of the last leave sent on a stray frame
}

// hostState is the current link; att is nil until the router answered.
type hostState struct {
	link    HostLink
	epoch   uint16 // this attachment's number, stamped on its frames
	att     *Attachment
	standby bool // held in reserve (PrepareStandby)
}

// NewHost builds a host; Start makes it run and Attach puts it on a link.
func NewHost(cfg HostConfig, bind Bind, dev tun.Device) (*Host, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Set{}
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 25 * time.Second
	}
	if cfg.RSInterval == 0 {
		cfg.RSInterval = 200 * time.Millisecond
	}
	if cfg.LeaveGrace == 0 {
		cfg.LeaveGrace = 2 * time.Second
	}
	if cfg.DeadAfter == 0 {
		cfg.DeadAfter = 300 * time.Millisecond
	}
	log := cfg.Log.With("node", cfg.Name)
	c := newCounters(cfg.Metrics)
	h := &Host{
		cfg: cfg, ll: NodeLinkAddr(cfg.Name), log: log, clk: cfg.Clock, m: cfg.Metrics, c: c,
		bind: bind, dev: dev, links: map[string]HostLink{}, byID: map[uint32]*hostLinkState{},
		run: newLoops(cfg.Name, log, cfg.Clock, c, cfg.PoisonBuffers),
	}
	for _, l := range cfg.Links {
		h.links[l.Name] = l
		h.byID[l.ID] = &hostLinkState{link: l}
	}
	return h, nil
}

// Name, LinkAddr, Metrics, Device and Clock describe the host.
func (h *Host) Name() string          { return h.cfg.Name }
func (h *Host) LinkAddr() LinkAddr    { return h.ll }
func (h *Host) Metrics() *metrics.Set { return h.m }
func (h *Host) Device() tun.Device    { return h.dev }
func (h *Host) Clock() clock.Clock    { return h.clk }
func (h *Host) Port() uint16          { return h.port }
func (h *Host) Links() []HostLink     { return h.cfg.Links }

// SetHook installs the mobility engine (nil removes it).
func (h *Host) SetHook(k HostHook) {
	if k == nil {
		h.hook.Store(nil)
		return
	}
	h.hook.Store(&hostHookBox{k})
}

// SetTap installs a function that sees every packet the host sends and
// receives on its link.
func (h *Host) SetTap(f TapFunc) { h.tap.Set(f) }

// OnAttach registers f to be called (from the host's receive goroutine)
// every time the host completes an attach to a link.
func (h *Host) OnAttach(f func(Attachment)) {
	h.mu.Lock()
	h.onAttach = append(h.onAttach, f)
	h.mu.Unlock()
}

// OnMove registers f to be called whenever an attach to a link begins (a
// handover starts), before any packet of the move is sent.
func (h *Host) OnMove(f func(link string)) {
	h.mu.Lock()
	h.onMove = append(h.onMove, f)
	h.mu.Unlock()
}

// Current returns the current attachment, or false while attaching.
func (h *Host) Current() (Attachment, bool) {
	s := h.cur.Load()
	if s == nil || s.att == nil {
		return Attachment{}, false
	}
	return *s.att, true
}

// CurrentLink returns the link the host is on or attaching to.
func (h *Host) CurrentLink() (HostLink, bool) {
	s := h.cur.Load()
	if s == nil {
		return HostLink{}, false
	}
	return s.link, true
}

// Start opens the underlay (port 0 picks one) and runs the host.
func (h *Host) Start(port uint16) error {
	fns, actual, err := h.bind.Open(port)
	if err != nil {
		return fmt.Errorf("overlay: host %s: opening underlay port %d: %w", h.cfg.Name, port, err)
	}
	h.port = actual
	for _, fn := range fns {
		st := &hostRx{}
		h.run.receive(fn, h.bind.BatchSize(), func(bufs [][]byte, sizes []int, _ []netip.AddrPort, n int) {
			h.receiveBatch(st, bufs, sizes, n)
		})
	}
	if h.dev != nil {
		st := &hostTx{}
		h.run.readTUN(h.dev, func(bufs [][]byte, sizes []int, n int) { h.tunBatch(st, bufs, sizes, n) })
	}
	h.mu.Lock()
	h.keepT = h.clk.AfterFunc(h.cfg.Keepalive, h.keepalive)
	h.mu.Unlock()
	return nil
}

// Close stops the host.
func (h *Host) Close() error {
	if !h.run.stop() {
		return nil
	}
	h.mu.Lock()
	for _, t := range []clock.Timer{h.rsTimer, h.keepT, h.nextRS, h.prevT, h.watchT} {
		if t != nil {
			t.Stop()
		}
	}
	h.mu.Unlock()
	err := h.bind.Close()
	if h.dev != nil {
		h.dev.Close()
	}
	h.run.wg.Wait()
	return err
}

// ErrUnknownLink is returned by Attach for a link the host may not use.
var ErrUnknownLink = errors.New("overlay: not one of this host's access links")

// Attach moves the host to link: it solicits the link's router, and once the
// Router Advertisement arrives it forms its address there and announces the
// attach to OnAttach subscribers.
func (h *Host) Attach(link string) error {
	l, ok := h.links[link]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownLink, link)
	}
	h.mu.Lock()
	h.cancelPreparationLocked()
	epoch := uint16(1)
	if old := h.cur.Load(); old != nil {
		epoch = old.epoch + 1
		if old.att != nil {
			h.leave(old.link, old.epoch)
		}
	}
	h.cur.Store(&hostState{link: l, epoch: epoch})
	h.rsCount = 0
	if h.rsTimer != nil {
		h.rsTimer.Stop()
	}
	h.rsTimer = h.clk.AfterFunc(0, h.solicitRouter)
	moves := append([]func(string){}, h.onMove...)
	h.mu.Unlock()
	for _, f := range moves {
		f(link)
	}
	h.m.Add("attach.started", 1)
	h.log.Info("attaching", "link", link, "router", l.Router)
	return nil
}

// solicitRouter sends a Router Solicitation and schedules the next one until
// an advertisement arrives: quickly at first, then every 2 s.
func (h *Host) solicitRouter() { h.solicit(&h.cur, &h.rsCount, &h.rsTimer, h.solicitRouter) }

// solicit sends a Router Solicitation on the link in which (the current
// one, or the one being prepared) until it is attached there, each after
// the one before by rsBackoff; count and timer are that link's.
func (h *Host) solicit(which *atomic.Pointer[hostState], count *int, timer *clock.Timer, again func()) {
	if h.run.closing.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := which.Load()
	if s == nil || s.att != nil {
		return
	}
	h.m.Add("nd.rs.out", 1)
	sent := h.sendFrame(s, h.ctl.rs(LinkLocal(h.cfg.Name, s.link.Name), h.ll))
	*count++
	*timer = h.clk.AfterFunc(h.rsBackoff(*count, sent), again)
}

// rsBackoff is the wait before Router Solicitation number count+1. A
// network that has just come up often loses the first packets (no route
// yet, or a device still activating), so the first retries come quickly:
// 50 ms, 100 ms, then RSInterval three times, then every 2 s. Faster than
// RFC 4861's 4 s, in the spirit of RFC 6059's quick reattachment; a lost
// solicitation must not cost a handover seconds.
func (h *Host) rsBackoff(count int, sent bool) time.Duration {
	switch {
	case !sent:
		return 20 * time.Millisecond // not routable yet
	case count == 1:
		return min(50*time.Millisecond, h.cfg.RSInterval)
	case count == 2:
		return min(100*time.Millisecond, h.cfg.RSInterval)
	case count >= 5:
		return 2 * time.Second
	}
	return h.cfg.RSInterval
}

// leave tells the router of link l that this host's attachment epoch (or an
// earlier one) is over. It is best effort: a lost leave is made good by the
// next frame that router sends here (strayFrame), and failing that by the
// router's member timeout.
func (h *Host) leave(l HostLink, epoch uint16) {
	var b [FrameHeaderLen]byte
	(&FrameHeader{Type: FrameTypeLeave, LinkID: l.ID, Src: h.ll, Epoch: epoch}).Put(b[:])
	if err := h.bind.Send([][]byte{b[:]}, l.Router); err == nil {
		h.m.Add("leave.out", 1)
	}
}

// strayFrame answers a frame from a link the host is not on (its router
// missed the leave and still sends packets for the host's old address) with
// another leave, at most once a second per link, as an 802.11 station that
// gets frames from an access point it is not associated with is
// deauthenticated. The current epoch is later than any attachment to that
// link, so the router honours it; were the host to return there, its new
// frames carry a later epoch still.
func (h *Host) strayFrame(id uint32, epoch uint16) {
	ls, ok := h.byID[id]
	if !ok {
		return
	}
	now := h.clk.Now().UnixNano()
	last := ls.lastLeave.Load()
	if last != 0 && now-last < int64(time.Second) || !ls.lastLeave.CompareAndSwap(last, now) {
		return
	}
	h.leave(ls.link, epoch)
}

func (h *Host) keepalive() {
	if h.run.closing.Load() {
		return
	}
	if s := h.cur.Load(); s != nil {
		var b [FrameHeaderLen]byte
		fh := FrameHeader{Type: FrameTypeKeep, LinkID: s.link.ID, Src: h.ll, Epoch: s.epoch}
		fh.Put(b[:])
		if err := h.bind.Send([][]byte{b[:]}, s.link.Router); err == nil {
			h.c.keepOut.Add(1)
		}
	}
	h.mu.Lock()
	h.keepT = h.clk.AfterFunc(h.cfg.Keepalive, h.keepalive)
	h.mu.Unlock()
}

// sendFrame sends one packet on link l (control path); it copies pkt.
func (h *Host) sendFrame(s *hostState, pkt []byte) bool {
	l := s.link
	p := NewPacket(pkt)
	b := p.frame(&FrameHeader{Type: FrameTypePacket, LinkID: l.ID, Src: h.ll, Epoch: s.epoch})
	if h.tap.Tapping() {
		h.tap.see(Out, l.ID, h.clk.Now(), pkt)
	}
	if err := h.bind.Send([][]byte{b}, l.Router); err != nil {
		h.c.dropped(DropUnderlaySend, 1)
		return false
	}
	h.c.framesOut.Add(1)
	return true
}

// Send sends a packet the host (its mobility engine) originates, as it is,
// by the link whose address is its source (linkFor), else by the current
// one. It reports false when the host is not attached.
func (h *Host) Send(pkt []byte) bool {
	next, cur, prev := h.attachments()
	if cur == nil || cur.att == nil {
		h.c.dropped(DropNotAttached, 1)
		return false
	}
	s := cur
	if len(pkt) >= ip6.HeaderLen {
		s = linkFor(ip6.Header(pkt).Src(), cur, next, prev)
	}
	return h.sendFrame(s, pkt)
}

// attachments reads the link being prepared, the current one and the one the
// last Commit left, in the reverse of the order Commit writes them (prev,
// cur, then next): however a Commit interleaves, the links read include
// the one whose address a packet carries, old or new. Read the other way,
// a batch could hold the old current link and no prepared one, and send
// the new address's packets by the old link, whose router drops them
// (seen: dozens of TCP segments per ten moves).
func (h *Host) attachments() (next, cur, prev *hostState) {
	next = h.next.Load()
	cur = h.cur.Load()
	prev = h.prev.Load()
	return next, cur, prev
}

// linkFor picks the link a packet from src leaves by: the one whose
// address src is (a router drops a source that is not on its link),
// among the link being prepared, the current one and the one left (its
// grace), else cur.
func linkFor(src netip.Addr, cur, next, prev *hostState) *hostState {
	switch {
	case next != nil && next.att != nil && next.att.Address == src:
		return next
	case cur.att.Address == src:
		return cur
	case prev != nil && prev.att != nil && prev.att.Address == src:
		return prev
	}
	return cur
}

// Announce sends an unsolicited Neighbor Advertisement (override set) for
// a on the current link, so that the router sends packets for a to this
// host at once (a mobile node back home, RFC 6275 11.5.4).
func (h *Host) Announce(a netip.Addr) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.cur.Load(); s != nil && s.att != nil {
		h.m.Add("nd.na.out", 1)
		h.sendFrame(s, h.ctl.na(a, ip6.AllNodes, h.ll, false, false))
	}
}

// Deliver hands a packet to the host's applications; it copies pkt.
func (h *Host) Deliver(pkt []byte) {
	if h.dev == nil {
		return
	}
	p := NewPacket(pkt)
	if _, err := h.dev.Write([][]byte{p.Buf[p.Off-FrameHeaderLen : p.Off+p.Len]}, FrameHeaderLen); err != nil {
		h.c.dropped(DropTunWrite, 1)
		return
	}
	h.c.toTun.Add(1)
}

// ErrNotAttached is returned by Prepare when there is no attachment to
// keep while the next one is made, and by Commit when nothing is prepared.
var ErrNotAttached = errors.New("overlay: not attached")

// OnPrepared registers f to be called when an attachment Prepare started
// is complete (the link's router answered); the current link still
// carries the traffic until Commit.
func (h *Host) OnPrepared(f func(Attachment)) {
	h.mu.Lock()
	h.onPrepared = append(h.onPrepared, f)
	h.mu.Unlock()
}

// Prepared returns the attachment being prepared, if it is complete.
func (h *Host) Prepared() (Attachment, bool) {
	s := h.next.Load()
	if s == nil || s.att == nil {
		return Attachment{}, false
	}
	return *s.att, true
}

// Prepare starts a make-before-break move to link: the host attaches there
// (Router Solicitation, address) while it stays on the current link, takes
// what arrives on both, and sends what comes from the new address by the
// new link. Commit then makes the new link the current one.
func (h *Host) Prepare(link string) error { return h.prepare(link, false) }

// PrepareStandby attaches to link as Prepare does, but holds it in
// reserve: no mobility registration is made for it (OnPrepared
// subscribers see Attachment.Standby), and the host moves there when its
// current path goes silent (HostConfig.DeadAfter), or on Commit.
func (h *Host) PrepareStandby(link string) error {
	if err := h.prepare(link, true); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastRx.Store(h.clk.Now().UnixNano())
	h.probeAt = 0
	if h.watchT == nil {
		h.watchT = h.clk.AfterFunc(h.cfg.DeadAfter/6, h.watchPath)
	}
	return nil
}

func (h *Host) prepare(link string, standby bool) error {
	l, ok := h.links[link]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownLink, link)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.cur.Load()
	if cur == nil || cur.att == nil {
		return fmt.Errorf("%w: a make-before-break move needs a link to stay on meanwhile (use Attach)", ErrNotAttached)
	}
	if cur.link.Name == link {
		return fmt.Errorf("overlay: already on link %s", link)
	}
	if n := h.next.Load(); n != nil && n.link.Name == link {
		return nil
	}
	h.cancelPreparationLocked()
	h.next.Store(&hostState{link: l, epoch: cur.epoch + 1, standby: standby})
	h.nextCount = 0
	h.nextRS = h.clk.AfterFunc(0, h.solicitNext)
	h.m.Add("attach.prepared_started", 1)
	h.log.Info("preparing", "link", link, "router", l.Router, "staying_on", cur.link.Name)
	return nil
}

// cancelPreparationLocked drops a preparation (an Attach overrides it).
func (h *Host) cancelPreparationLocked() {
	if n := h.next.Swap(nil); n != nil && n.att != nil {
		h.leave(n.link, n.epoch)
	}
	if h.nextRS != nil {
		h.nextRS.Stop()
		h.nextRS = nil
	}
}

// solicitNext solicits the router of the link being prepared.
func (h *Host) solicitNext() { h.solicit(&h.next, &h.nextCount, &h.nextRS, h.solicitNext) }

// Commit makes the prepared link the current one: what the host sends goes
// there from now on, and the link it leaves is still heard for LeaveGrace,
// then told the host has gone. OnMove and OnAttach subscribers hear of it
// as of any move, with Attachment.Prepared set.
func (h *Host) Commit() (Attachment, error) {
	h.mu.Lock()
	n := h.next.Load()
	if n == nil || n.att == nil {
		h.mu.Unlock()
		return Attachment{}, fmt.Errorf("%w: no prepared link to move to", ErrNotAttached)
	}
	old := h.cur.Load()
	// In this order, a frame from either link finds its state at every
	// instant: the old link is prev before it stops being cur, the new one
	// cur before it stops being next.
	if p := h.prev.Swap(old); p != nil && p.link.ID != n.link.ID {
		h.leave(p.link, p.epoch)
	}
	h.cur.Store(n)
	h.next.Store(nil)
	if h.prevT != nil {
		h.prevT.Stop()
	}
	h.prevT = h.clk.AfterFunc(h.cfg.LeaveGrace, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.prev.CompareAndSwap(old, nil) && old != nil {
			h.leave(old.link, old.epoch)
		}
	})
	subs := append([]func(Attachment){}, h.onAttach...)
	moves := append([]func(string){}, h.onMove...)
	att := *n.att
	h.mu.Unlock()
	h.m.Add("attach.committed", 1)
	h.log.Info("moved (make-before-break)", "link", att.Link.Name, "address", att.Address)
	for _, f := range moves {
		f(att.Link.Name)
	}
	if h.cfg.ManageAddresses && h.dev != nil {
		h.manageAddress(&att)
	}
	for _, f := range subs {
		f(att)
	}
	return att, nil
}

// heardState is the state a frame of link id belongs to: the current link,
// the one being prepared, or the one the last Commit left while its grace
// lasts; nil for any other.
func (h *Host) heardState(id uint32, cur *hostState) *hostState {
	if cur != nil && cur.link.ID == id {
		return cur
	}
	if c := h.cur.Load(); c != nil && c.link.ID == id {
		return c // a Commit since the batch began
	}
	if n := h.next.Load(); n != nil && n.link.ID == id {
		return n
	}
	if p := h.prev.Load(); p != nil && p.link.ID == id {
		return p
	}
	return nil
}

// watchPath runs while a standby link is held: a current path that stays
// silent while the host sends is probed, and if the probe goes unanswered
// too, the host moves to the standby link.
func (h *Host) watchPath() {
	if h.run.closing.Load() {
		return
	}
	h.mu.Lock()
	n, s := h.next.Load(), h.cur.Load()
	if n == nil || !n.standby || s == nil || s.att == nil {
		h.watchT = nil // no standby: nothing to move to
		h.mu.Unlock()
		return
	}
	now := h.clk.Now().UnixNano()
	half := int64(h.cfg.DeadAfter / 2)
	rx, tx := h.lastRx.Load(), h.lastTx.Load()
	dead := false
	switch {
	case h.probeAt != 0 && rx >= h.probeAt:
		h.probeAt = 0 // the router answered
	case h.probeAt != 0 && now-h.probeAt >= half:
		dead = n.att != nil
	case h.probeAt == 0 && tx > rx && now-rx >= half:
		h.probeAt = now
		h.m.Add("path.probes", 1)
		h.sendFrame(s, h.ctl.rs(LinkLocal(h.cfg.Name, s.link.Name), h.ll))
	}
	if dead {
		h.watchT = nil
		h.probeAt = 0
	} else {
		h.watchT = h.clk.AfterFunc(h.cfg.DeadAfter/6, h.watchPath)
	}
	h.mu.Unlock()
	if dead {
		h.m.Add("path.dead", 1)
		h.log.Warn("the current link went silent; moving to the standby link", "link", s.link.Name, "standby", n.link.Name,
			"silent_for", time.Duration(now-rx))
		h.Commit()
	}
}
