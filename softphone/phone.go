package softphone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Network opens UDP sockets on a node's addresses: the userspace stack's in
// the lab, the kernel's on a real node.
type Network interface {
	ListenUDP(at netip.AddrPort) (net.PacketConn, error)
}

// KernelNetwork opens ordinary sockets; with Device set, tied to that
// interface (the node's TUN), so that a phone or proxy listening on the
// unspecified address takes nothing that arrives from the underlay, and
// one bound to an overlay address takes nothing sent to it through
// another interface (Linux accepts a packet for any local address on any
// interface).
type KernelNetwork struct{ Device string }

func (k KernelNetwork) ListenUDP(at netip.AddrPort) (net.PacketConn, error) {
	if k.Device == "" {
		return net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
	}
	lc := net.ListenConfig{Control: bindToDevice(k.Device)}
	c, err := lc.ListenPacket(context.Background(), "udp", net.UDPAddrFromAddrPort(at).String())
	if err != nil {
		return nil, fmt.Errorf("softphone: listening on %v on interface %s only: %w", at, k.Device, err)
	}
	return c, nil
}

// PhoneConfig configures a softphone.
type PhoneConfig struct {
	// AOR is the address of record, sip:user@domain.
	AOR sip.Uri
	// Proxy is the domain's proxy, where every request goes first.
	Proxy netip.AddrPort
	Net   Network
	// Contact returns the address to register and to use for new sessions
	// now: the home address (standard scheme) or the current care-of
	// address (the paper's scheme).
	Contact func() netip.Addr
	// Port is the SIP port (5060).
	Port int
	// RTPPort is the first media port; each call takes two (RTP, RTCP).
	RTPPort int
	// AutoAnswer answers incoming calls at once; otherwise they are
	// declined with 486 Busy Here.
	AutoAnswer bool
	// AnswerDelay is how long an auto-answering phone rings (after its 180
	// Ringing) before it answers.
	AnswerDelay time.Duration
	// AnswerT2 caps the interval between retransmissions of a 2xx answer
	// (RFC 3261 13.3.1.4's T2; default sip.T2, 4 s). A 2xx crosses every
	// hop end to end with nothing but these retransmissions behind it, so
	// on a lossy path a shorter cap sends more copies within 64*T1.
	AnswerT2 time.Duration
	// Codecs in order of preference (PCMU, PCMA).
	Codecs []Codec
	// RegisterExpiry is the registration lifetime asked for.
	RegisterExpiry time.Duration
	// Audio supplies a call's audio (default: a tone, received audio
	// discarded).
	Audio func(peer string, outgoing bool) (Source, Sink)
	// OnCall, if set, is told of every call that starts (incoming or
	// outgoing), e.g. to mark handovers in it.
	OnCall func(*Call)
	// OnRegister, if set, is told of every REGISTER's outcome (err nil:
	// registered).
	OnRegister func(contact netip.Addr, err error)
	// AcceptDirect takes SIP from anyone; by default the phone takes it
	// only from its proxy and, within a call, from its peer.
	AcceptDirect bool
	// Password answers the registrar's digest challenges (user: AOR's).
	Password string
	Log      *slog.Logger
}

// Phone is a SIP user agent with G.711 media.
type Phone struct {
	cfg  PhoneConfig
	log  *slog.Logger
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	conn net.PacketConn

	// regMu serialises registrations, so that a contact change and the
	// first registration racing at start-up send one REGISTER, not two.
	regMu sync.Mutex

	mu         sync.Mutex
	clients    map[netip.Addr]*sipgo.Client
	registered netip.Addr // contact currently registered
	regCallID  string
	regCSeq    uint32
	regTimer   *time.Timer // the next refresh, or retry after a failure
	regExpires time.Time
	regFails   int // REGISTERs failed in a row
	regErr     error
	// The registrar's last digest challenge and the nonce count used with
	// it, for refreshes that need no new challenge.
	regChallenge *digest.Challenge
	regNC        int
	calls        map[string]*Call
	nextPort     int
	closed       bool

	rings   atomic.Int32  // incoming calls ringing, not answered yet
	refused atomic.Uint64 // datagrams from neither the proxy nor a peer
}

// Refused counts SIP datagrams the phone dropped for coming from neither
// its proxy nor the peer of one of its calls.
func (p *Phone) Refused() uint64 { return p.refused.Load() }

// NewPhone starts a phone listening on [::]:Port of its network.
func NewPhone(cfg PhoneConfig) (*Phone, error) {
	if cfg.Port == 0 {
		cfg.Port = 5060
	}
	if cfg.RTPPort == 0 {
		cfg.RTPPort = 20000
	}
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []Codec{PCMU, PCMA}
	}
	if cfg.RegisterExpiry == 0 {
		cfg.RegisterExpiry = 300 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Audio == nil {
		cfg.Audio = func(string, bool) (Source, Sink) { return &Tone{}, Discard{} }
	}
	var p *Phone
	// A 2xx that arrives after its INVITE transaction ended means our ACK
	// was lost: the UAC core acknowledges every 2xx (RFC 3261 13.2.2.4).
	filter := func(info sip.TransportReadProps, data []byte) ([]byte, error) {
		if p == nil {
			return nil, nil // not started yet
		}
		return p.acceptFilter(info, data)
	}
	ua, err := newUA(cfg.AOR.User, cfg.AOR.Host, cfg.Log, filter, sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
		if p != nil {
			p.strayResponse(r)
		}
	}))
	if err != nil {
		return nil, err
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(cfg.Log))
	if err != nil {
		ua.Close()
		return nil, err
	}
	// One socket on every address of the node: the stack picks the source
	// (the preferred address), and requests to any of our addresses arrive.
	conn, err := listen(cfg.Net, netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(cfg.Port)))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("softphone: SIP socket: %w", err)
	}
	p = &Phone{cfg: cfg, log: cfg.Log.With("sip", cfg.AOR.String()), ua: ua, srv: srv, conn: conn,
		clients: map[netip.Addr]*sipgo.Client{}, calls: map[string]*Call{}, nextPort: cfg.RTPPort,
		regCallID: fmt.Sprintf("reg-%x", rand.Uint64())}
	srv.OnInvite(p.onInvite)
	srv.OnAck(p.onAck)
	srv.OnBye(p.onBye)
	srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	if err := serveUDP(srv, conn); err != nil {
		conn.Close()
		ua.Close()
		return nil, err
	}
	return p, nil
}

// SetAudio replaces the function that supplies calls' audio.
func (p *Phone) SetAudio(f func(peer string, outgoing bool) (Source, Sink)) {
	p.mu.Lock()
	p.cfg.Audio = f
	p.mu.Unlock()
}

func (p *Phone) audio(peer string, outgoing bool) (Source, Sink) {
	p.mu.Lock()
	f := p.cfg.Audio
	p.mu.Unlock()
	return f(peer, outgoing)
}

// Close hangs up every call and stops the phone.
func (p *Phone) Close() error {
	p.mu.Lock()
	p.closed = true
	calls := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	if p.regTimer != nil {
		p.regTimer.Stop()
	}
	p.mu.Unlock()
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c.Hangup(ctx)
		cancel()
	}
	p.srv.Close()
	p.ua.Close()
	return p.conn.Close()
}

// client returns a SIP client whose Via and Contact name addr and whose
// requests leave through the phone's socket (never an OS socket of its own).
func (p *Phone) client(addr netip.Addr) (*sipgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c, nil
	}
	c, err := sipgo.NewClient(p.ua, sipgo.WithClientHostname(addr.String()), sipgo.WithClientPort(p.cfg.Port),
		sipgo.WithClientConnectionAddr(p.conn.LocalAddr().String()), sipgo.WithClientLogger(p.cfg.Log))
	if err != nil {
		return nil, err
	}
	pin(p.ua, c, p.conn)
	p.clients[addr] = c
	return c, nil
}

func (p *Phone) contactHeader(addr netip.Addr) sip.ContactHeader {
	return sip.ContactHeader{Address: sip.Uri{User: p.cfg.AOR.User, Host: addr.String(), Port: p.cfg.Port}}
}

// Register registers the current contact address with the registrar (and
// removes a previous one in the same request), and keeps it registered.
func (p *Phone) Register(ctx context.Context) error {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	return p.registerLocked(ctx)
}

func (p *Phone) registerLocked(ctx context.Context) error {
	contact := p.cfg.Contact()
	if !contact.IsValid() {
		return errors.New("softphone: no address to register yet")
	}
	cli, err := p.client(contact)
	if err != nil {
		return err
	}
	p.mu.Lock()
	old := p.registered
	p.regCSeq++
	cseq := p.regCSeq
	p.mu.Unlock()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Host: p.cfg.AOR.Host})
	to := sip.ToHeader{Address: sip.Uri{User: p.cfg.AOR.User, Host: p.cfg.AOR.Host}}
	from := sip.FromHeader{Address: to.Address}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(10))
	callID := sip.CallIDHeader(p.regCallID)
	req.AppendHeader(&to)
	req.AppendHeader(&from)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.REGISTER})
	if old.IsValid() && old != contact {
		gone := p.contactHeader(old)
		gone.Params = sip.NewParams()
		gone.Params.Add("expires", "0")
		req.AppendHeader(&gone)
	}
	cur := p.contactHeader(contact)
	req.AppendHeader(&cur)
	exp := sip.ExpiresHeader(p.cfg.RegisterExpiry / time.Second)
	req.AppendHeader(&exp)
	req.SetDestination(p.cfg.Proxy.String())
	if p.cfg.Password != "" {
		p.authorize(req, asRegistrar)
	}
	res, err := cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 && p.cfg.Password != "" {
		// A first registration, a stale nonce, or a restarted registrar:
		// answer the challenge, and keep it for the refreshes.
		p.learnChallenge(res)
		req.RemoveHeader("Authorization")
		res, err = cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: p.cfg.AOR.User, Password: p.cfg.Password})
		p.mu.Lock()
		p.regCSeq = max(p.regCSeq, req.CSeq().SeqNo)
		p.regNC = max(p.regNC, 1) // DoDigestAuth used count 1
		p.mu.Unlock()
	}
	switch {
	case err != nil:
		err = fmt.Errorf("softphone: REGISTER: %w", err)
	case res.StatusCode != 200:
		err = fmt.Errorf("softphone: REGISTER refused: %d %s", res.StatusCode, res.Reason)
	}
	if err != nil {
		p.registrationFailed(err)
		if p.cfg.OnRegister != nil {
			p.cfg.OnRegister(contact, err)
		}
		return err
	}
	granted := p.cfg.RegisterExpiry
	if e := res.GetHeader("Expires"); e != nil {
		if v, err := strconv.Atoi(e.Value()); err == nil && v > 0 {
			granted = time.Duration(v) * time.Second
		}
	}
	p.mu.Lock()
	p.registered = contact
	p.regExpires = time.Now().Add(granted)
	p.regFails, p.regErr = 0, nil
	p.scheduleRegister(granted * 4 / 5)
	p.mu.Unlock()
	p.log.Debug("registered", "contact", contact, "expires", granted)
	if p.cfg.OnRegister != nil {
		p.cfg.OnRegister(contact, nil)
	}
	return nil
}

// registrationFailed schedules the next attempt after a failed REGISTER:
// soon after the first failure (a lost message, a proxy restarting), then
// with RFC 5626 4.5's back-off (30 s doubling up to 30 min, each wait
// drawn between half and all of it), so a registrar that comes back finds
// its users again without a storm of REGISTERs.
func (p *Phone) registrationFailed(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.regFails++
	p.regErr = err
	wait := registerRetryWait(p.regFails)
	p.scheduleRegister(wait)
	p.log.Warn("registration failed", "err", err, "failures", p.regFails, "retry_in", wait.Round(time.Millisecond))
}

// registerRetryWait is the wait before attempt n+1 after n failures.
func registerRetryWait(n int) time.Duration {
	const base, ceiling = 30 * time.Second, 30 * time.Minute
	w := 2 * time.Second
	if n > 1 {
		w = min(ceiling, base<<min(n-2, 10))
	}
	return w/2 + rand.N(w/2+1)
}

// scheduleRegister registers again after d (a refresh, or a retry). Call
// with mu held.
func (p *Phone) scheduleRegister(d time.Duration) {
	if p.regTimer != nil {
		p.regTimer.Stop()
	}
	if p.closed {
		return
	}
	p.regTimer = time.AfterFunc(d, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Register(ctx) // a failure schedules the next attempt
	})
}

// Reregister registers at once, whatever the state (the registrar may
// have lost it: its host restarted).
func (p *Phone) Reregister(ctx context.Context) error { return p.Register(ctx) }

// RegistrationStatus says what the phone's registration is.
type RegistrationStatus struct {
	Contact   netip.Addr `json:"contact"`
	Expires   time.Time  `json:"expires"`
	Failures  int        `json:"failures_in_a_row"`
	LastError string     `json:"last_error,omitempty"`
}

// Registration returns the registration's status.
func (p *Phone) Registration() RegistrationStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := RegistrationStatus{Contact: p.registered, Expires: p.regExpires, Failures: p.regFails}
	if p.regErr != nil {
		st.LastError = p.regErr.Error()
	}
	return st
}

// Registered returns the contact address last registered.
func (p *Phone) Registered() netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.registered
}

// ContactChanged re-registers when the contact address moved (the paper's
// scheme, after a handover).
func (p *Phone) ContactChanged(ctx context.Context) error {
	p.regMu.Lock()
	defer p.regMu.Unlock()
	if c := p.cfg.Contact(); c.IsValid() && c != p.Registered() {
		return p.registerLocked(ctx)
	}
	return nil
}

// mediaSockets opens RTP and RTCP sockets on addr.
func (p *Phone) mediaSockets(addr netip.Addr) (net.PacketConn, net.PacketConn, int, error) {
	for tries := 0; tries < 50; tries++ {
		p.mu.Lock()
		port := p.nextPort
		p.nextPort += 2
		if p.nextPort > p.cfg.RTPPort+2000 {
			p.nextPort = p.cfg.RTPPort
		}
		p.mu.Unlock()
		rtpc, err := p.cfg.Net.ListenUDP(netip.AddrPortFrom(addr, uint16(port)))
		if err != nil {
			continue
		}
		rtcpc, err := p.cfg.Net.ListenUDP(netip.AddrPortFrom(addr, uint16(port+1)))
		if err != nil {
			rtpc.Close()
			continue
		}
		return rtpc, rtcpc, port, nil
	}
	return nil, nil, 0, errors.New("softphone: no free media ports")
}

func (p *Phone) register(c *Call) {
	p.mu.Lock()
	p.calls[c.ID] = c
	p.mu.Unlock()
	if p.cfg.OnCall != nil {
		p.cfg.OnCall(c)
	}
}

func (p *Phone) forget(c *Call) {
	p.mu.Lock()
	delete(p.calls, c.ID)
	p.mu.Unlock()
}

// MoveCalls moves every call on local address from to the phone's contact
// address now, each with a re-INVITE (the address died: the HA2R that
// anchored it stopped answering). It returns how many moved, and the first
// error.
func (p *Phone) MoveCalls(ctx context.Context, from netip.Addr) (int, error) {
	to := p.cfg.Contact()
	if !to.IsValid() || to == from {
		return 0, errors.New("softphone: no other address to move the calls to")
	}
	var first error
	n := 0
	for _, c := range p.Calls() {
		if c.LocalAddr() != from {
			continue
		}
		if err := c.moveTo(ctx, to); err != nil {
			p.log.Warn("moving a call", "call", c.ID, "from", from, "to", to, "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		p.log.Info("call moved", "call", c.ID, "from", from, "to", to)
		n++
	}
	return n, first
}

// strayResponse takes a response no transaction wants: a retransmitted 2xx
// for one of our calls is acknowledged again; anything else is dropped.
func (p *Phone) strayResponse(r *sip.Response) {
	cseq, id := r.CSeq(), r.CallID()
	if !r.IsSuccess() || cseq == nil || cseq.MethodName != sip.INVITE || id == nil {
		return
	}
	p.mu.Lock()
	c := p.calls[id.Value()]
	p.mu.Unlock()
	if c == nil || c.dc == nil || c.dc.InviteResponse == nil || cseq.SeqNo != c.dc.InviteRequest.CSeq().SeqNo {
		return // a re-INVITE's answer, or no call of ours
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c.dc.Ack(ctx)
}

// ringing reports how many incoming calls ring, unanswered.
func (p *Phone) ringing() int { return int(p.rings.Load()) }

// Calls returns the calls in progress.
func (p *Phone) Calls() []*Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		out = append(out, c)
	}
	return out
}

func (p *Phone) findCall(req *sip.Request) *Call {
	id := req.CallID()
	if id == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[id.Value()]
}

// serveUDP serves conn and returns once the transport layer knows it, so
// that clients pinned to it find it (otherwise sipgo would open an OS socket
// of its own).
func serveUDP(srv *sipgo.Server, conn net.PacketConn) error {
	go srv.ServeUDP(conn)
	addr := conn.LocalAddr().String()
	for i := 0; i < 500; i++ {
		if c, err := srv.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("softphone: SIP socket %s did not come up", addr)
}

// boundConn reports the address a socket was opened on as a *net.UDPAddr.
// Sockets of the userspace stack bound to the unspecified address call
// themselves ":5060", which sipgo cannot pin a client to; "[::]:5060" it can.
type boundConn struct {
	net.PacketConn
	at *net.UDPAddr
}

func (c boundConn) LocalAddr() net.Addr { return c.at }

func listen(n Network, at netip.AddrPort) (net.PacketConn, error) {
	c, err := n.ListenUDP(at)
	if err != nil {
		return nil, err
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil && ap.Port() != 0 {
		at = ap
	}
	return boundConn{PacketConn: c, at: net.UDPAddrFromAddrPort(at)}, nil
}

// errNoDNS is what a name lookup gets: the testbed routes SIP by its
// topology (every phone sends through its proxy, proxies know each other),
// and must never send a packet off the overlay, DNS queries included.
var errNoDNS = errors.New("softphone: SIP names are never looked up in DNS: address the request, or route it through a proxy the topology names")

// noDNS is a resolver that sends nothing.
var noDNS = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDNS }}

// newUA makes a sipgo user agent whose layers log to log (not to the
// process-wide default, and malformed datagrams summed up, not each with
// its payload), that never asks DNS, and whose transport drops what filter
// refuses (nil: nothing).
func newUA(name, host string, log *slog.Logger, filter sip.TransportReadFilter, txOpts ...sip.TransactionLayerOption) (*sipgo.UserAgent, error) {
	tlOpts := []sip.TransportLayerOption{sip.WithTransportLayerLogger(quietMalformed(log))}
	if filter != nil {
		tlOpts = append(tlOpts, sip.WithTransportLayerReadFilter(filter))
	}
	return sipgo.NewUA(sipgo.WithUserAgent(name), sipgo.WithUserAgentHostname(host), sipgo.WithUserAgentDNSResolver(noDNS),
		sipgo.WithUserAgentTransportLayerOptions(tlOpts...),
		sipgo.WithUserAgentTransactionLayerOptions(append(txOpts, sip.WithTransactionLayerLogger(log))...))
}

// pinnedRequester sends every request of a client through one socket: the
// one the phone or proxy serves. sipgo's in-dialog requests (ACK, BYE,
// re-INVITE) skip the client's connection-address option and would
// otherwise open an OS socket, which on the userspace stack cannot reach
// the overlay at all.
type pinnedRequester struct {
	ua    *sipgo.UserAgent
	laddr sip.Addr
}

func (p pinnedRequester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	p.laddr.Copy(&req.Laddr)
	if req.IsAck() {
		return nil, p.ua.TransportLayer().WriteMsg(req)
	}
	tx, err := p.ua.TransactionLayer().Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

// pin makes client send only through conn.
func pin(ua *sipgo.UserAgent, client *sipgo.Client, conn net.PacketConn) {
	ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	client.TxRequester = pinnedRequester{ua: ua, laddr: sip.Addr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Hostname: ap.Addr().String()}}
}
