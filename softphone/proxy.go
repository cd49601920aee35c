package softphone

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/metrics"
	"github.com/ha2r/mip6testbed/state"
)

// ProxyConfig configures a domain's proxy and registrar.
type ProxyConfig struct {
	Domain string
	// Addr is the proxy's address (Via, Record-Route).
	Addr netip.Addr
	Port int
	Net  Network
	// Domains maps other domains to their proxies.
	Domains map[string]netip.AddrPort
	// Users are the domain's known users: a call to one of them that is not
	// registered gets 480 Temporarily Unavailable, to anyone else 404.
	Users []string
	// MaxExpiry caps registrations (default 3600 s); MinExpiry refuses
	// shorter ones with 423 Interval Too Brief (default 10 s).
	MaxExpiry, MinExpiry time.Duration
	// TransactionTimeout ends a forwarded request without a final
	// answer with 408 Request Timeout (default 32 s, Timer B).
	TransactionTimeout time.Duration
	// Passwords, when set, are the domain's users' digest passwords: a
	// REGISTER must then authenticate as the user it registers (RFC 3261
	// 22, SHA-256 or MD5), and a user without one cannot register.
	Passwords map[string]string
	// DigestAlgorithms are offered in this order (default SHA-256, then
	// MD5). Some old clients answer only the first challenge and know only
	// MD5 (Debian 12's baresip 1.0.0): offer MD5 alone for them.
	DigestAlgorithms []string
	// Overlay, when set, are the only prefixes the proxy sends requests
	// to and accepts Contacts in: never loopback, the underlay or any
	// other address a hostile REGISTER or Request-URI names.
	Overlay []netip.Prefix
	// State keeps the registrations across a restart (nil: none kept), so
	// that a restarted proxy still knows where its users are.
	State   state.Store
	Metrics *metrics.Set
	Log     *slog.Logger
}

// Proxy is a stateful proxy (RFC 3261 16) with Record-Route, and the
// registrar (RFC 3261 10.3) of one domain, keyed on the To address of
// record.
type Proxy struct {
	cfg    ProxyConfig
	log    *slog.Logger
	m      *metrics.Set
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	conn   net.PacketConn
	self   string       // host:port of the proxy
	guard  *digestGuard // nil: registrations need no credentials

	mu       sync.Mutex
	location map[string][]contactBinding // "user@domain" -> contacts
	known    map[string]bool
	saver    *state.Saver
	stop     chan struct{}
}

type contactBinding struct {
	uri     sip.Uri
	expires time.Time
}

// NewProxy starts the proxy on [Addr]:Port of its network.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Port == 0 {
		cfg.Port = 5060
	}
	if cfg.MaxExpiry == 0 {
		cfg.MaxExpiry = time.Hour
	}
	if cfg.MinExpiry == 0 {
		cfg.MinExpiry = 10 * time.Second
	}
	if cfg.TransactionTimeout == 0 {
		cfg.TransactionTimeout = 32 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = &metrics.Set{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	var p *Proxy
	// 2xx retransmissions arrive after the client transaction ended (RFC
	// 3261 17.1.1.2): a proxy forwards them upstream statelessly.
	ua, err := newUA("mip6-proxy", cfg.Domain, cfg.Log, nil, sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
		if p != nil {
			p.relayStray(r)
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
	at := netip.AddrPortFrom(cfg.Addr, uint16(cfg.Port))
	conn, err := listen(cfg.Net, at)
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip proxy: listening on %s: %w", at, err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname(cfg.Addr.String()), sipgo.WithClientPort(cfg.Port),
		sipgo.WithClientConnectionAddr(conn.LocalAddr().String()), sipgo.WithClientLogger(cfg.Log))
	if err != nil {
		ua.Close()
		conn.Close()
		return nil, err
	}
	pin(ua, client, conn)
	p = &Proxy{cfg: cfg, log: cfg.Log.With("sip_domain", cfg.Domain), m: cfg.Metrics, ua: ua, srv: srv, client: client,
		conn: conn, self: at.String(), location: map[string][]contactBinding{}, known: map[string]bool{}, stop: make(chan struct{})}
	for _, u := range cfg.Users {
		p.known[u] = true
	}
	if cfg.Passwords != nil {
		p.guard = newDigestGuard(cfg.Domain, cfg.Passwords, cfg.DigestAlgorithms)
	}
	if err := p.restore(); err != nil {
		ua.Close()
		conn.Close()
		return nil, fmt.Errorf("sip proxy: registrations: %w", err)
	}
	srv.OnRegister(p.onRegister)
	srv.OnAck(p.onAck)
	srv.OnNoRoute(p.route)
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.BYE, sip.CANCEL, sip.OPTIONS, sip.MESSAGE, sip.INFO, sip.UPDATE,
		sip.PRACK, sip.REFER, sip.NOTIFY, sip.SUBSCRIBE} {
		srv.OnRequest(m, p.route)
	}
	if err := serveUDP(srv, conn); err != nil {
		conn.Close()
		ua.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the proxy and saves its registrations.
func (p *Proxy) Close() error {
	close(p.stop)
	p.saver.Now()
	p.srv.Close()
	p.ua.Close()
	return p.conn.Close()
}

// savedRegistration is a registration as the state store holds it.
type savedRegistration struct {
	Contact string    `json:"contact"`
	Expires time.Time `json:"expires"`
}

// restore takes up the registrations a previous run saved that have not
// expired, and saves from now on (at most once a second).
func (p *Proxy) restore() error {
	if p.cfg.State == nil {
		return nil
	}
	var saved map[string][]savedRegistration
	if err := state.Load(p.cfg.State, &saved); err != nil {
		return err
	}
	now, n := time.Now(), 0
	for aor, regs := range saved {
		for _, r := range regs {
			var u sip.Uri
			if r.Expires.After(now) && sip.ParseUri(r.Contact, &u) == nil {
				p.location[aor] = append(p.location[aor], contactBinding{uri: u, expires: r.Expires})
				n++
			}
		}
	}
	if n > 0 {
		p.m.Add("sip.proxy.registrations_restored", uint64(n))
		p.log.Info("registrations restored", "count", n)
	}
	p.saver = state.NewSaver(p.cfg.State, p.snapshot, func(err error) { p.log.Error("saving registrations", "err", err) })
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				p.saver.Flush()
			}
		}
	}()
	return nil
}

func (p *Proxy) snapshot() any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]savedRegistration{}
	for aor, bs := range p.location {
		for _, b := range bs {
			out[aor] = append(out[aor], savedRegistration{Contact: b.uri.String(), Expires: b.expires})
		}
	}
	return out
}

// Lookup returns the live contacts registered for user@domain.
func (p *Proxy) Lookup(aor string) []sip.Uri {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var out []sip.Uri
	for _, b := range p.location[aor] {
		if now.Before(b.expires) {
			out = append(out, b.uri)
		}
	}
	return out
}

func (p *Proxy) reply(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	p.m.Add("sip.proxy.answered."+strconv.Itoa(code), 1)
	tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// onRegister is the registrar: bindings keyed on the To address of record
// (not on the Contact's user part), with per-contact expiry.
func (p *Proxy) onRegister(req *sip.Request, tx sip.ServerTransaction) {
	p.m.Add("sip.proxy.register", 1)
	to := req.To()
	if to == nil || !strings.EqualFold(req.Recipient.Host, p.cfg.Domain) || !strings.EqualFold(to.Address.Host, p.cfg.Domain) {
		p.reply(tx, req, 404, "Not Found (not this registrar's domain)")
		return
	}
	aor := to.Address.User + "@" + p.cfg.Domain
	if p.guard != nil {
		if !p.authenticated(req, tx, asRegistrar, to.Address.User) {
			return
		}
	}
	defExp := 3600 * time.Second
	if e := req.GetHeader("Expires"); e != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(e.Value())); err == nil && v >= 0 {
			defExp = time.Duration(v) * time.Second
		} else {
			p.reply(tx, req, 400, "Bad Request (Expires)")
			return
		}
	}
	now := time.Now()
	p.mu.Lock()
	bindings := p.location[aor]
	for _, h := range req.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if ch.Address.Wildcard || ch.Address.Host == "*" {
			if defExp != 0 {
				p.mu.Unlock()
				p.reply(tx, req, 400, "Bad Request (Contact: * needs Expires: 0)")
				return
			}
			bindings = nil
			continue
		}
		if !p.reachable(ch.Address.Host) {
			p.mu.Unlock()
			p.m.Add("sip.proxy.refused.contact", 1)
			p.reply(tx, req, 403, "Forbidden (a Contact must be an address inside the overlay)")
			return
		}
		exp := defExp
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				exp = time.Duration(n) * time.Second
			}
		}
		if exp > 0 && exp < p.cfg.MinExpiry {
			p.mu.Unlock()
			res := sip.NewResponseFromRequest(req, 423, "Interval Too Brief", nil)
			res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(int(p.cfg.MinExpiry/time.Second))))
			tx.Respond(res)
			return
		}
		exp = min(exp, p.cfg.MaxExpiry)
		uri := ch.Address
		uri.UriParams = nil
		kept := bindings[:0]
		for _, b := range bindings {
			if b.uri.Host != uri.Host || b.uri.Port != uri.Port || b.uri.User != uri.User {
				kept = append(kept, b)
			}
		}
		bindings = kept
		if exp > 0 {
			bindings = append(bindings, contactBinding{uri: uri, expires: now.Add(exp)})
		}
	}
	if len(bindings) == 0 {
		delete(p.location, aor)
	} else {
		p.location[aor] = bindings
	}
	current := append([]contactBinding(nil), bindings...)
	p.mu.Unlock()
	p.saver.Changed()
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	for _, b := range current {
		c := &sip.ContactHeader{Address: b.uri, Params: sip.NewParams()}
		c.Params.Add("expires", strconv.Itoa(int(time.Until(b.expires)/time.Second)))
		res.AppendHeader(c)
	}
	if len(current) > 0 {
		res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(time.Until(current[len(current)-1].expires)/time.Second))))
	}
	p.m.Add("sip.proxy.answered.200", 1)
	tx.Respond(res)
}

// target decides where a request goes: the top Route (loose routing), or by
// Request-URI: a registered contact of our domain, another domain's proxy,
// or an address literal.
func (p *Proxy) target(req *sip.Request) (dest string, code int, reason string) {
	// Remove our own Route entry (we asked to stay on the path).
	if r := req.Route(); r != nil && p.isSelf(r.Address) {
		req.RemoveHeader("Route") // the topmost one
	}
	if r := req.Route(); r != nil && !p.isSelf(r.Address) {
		if !p.reachable(r.Address.Host) && !p.isDomainProxy(r.Address) {
			return "", 403, "Forbidden (a Route outside the overlay)"
		}
		return r.Address.HostPort(), 0, ""
	}
	u := req.Recipient
	switch {
	case strings.EqualFold(u.Host, p.cfg.Domain) || p.isSelf(u) && u.User != "":
		// Our domain, or our own address (as sipp and others address a
		// proxy): look the user up.
		contacts := p.Lookup(u.User + "@" + p.cfg.Domain)
		if len(contacts) == 0 {
			if p.known[u.User] {
				return "", 480, "Temporarily Unavailable"
			}
			return "", 404, "Not Found"
		}
		c := contacts[len(contacts)-1] // the most recent registration
		a, err := netip.ParseAddr(strings.Trim(c.Host, "[]"))
		if err != nil || !p.reachable(c.Host) {
			// A registration by name would send the request to DNS; the
			// proxy routes its own users only to addresses they registered.
			return "", 480, "Temporarily Unavailable"
		}
		port := c.Port
		if port == 0 {
			port = 5060
		}
		req.Recipient = c
		return netip.AddrPortFrom(a, uint16(port)).String(), 0, ""
	default:
		if ap, ok := p.cfg.Domains[strings.ToLower(u.Host)]; ok {
			return ap.String(), 0, ""
		}
		if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err == nil {
			port := u.Port
			if port == 0 {
				port = 5060
			}
			if netip.AddrPortFrom(a, uint16(port)).String() == p.self {
				return "", 404, "Not Found"
			}
			if !p.reachable(u.Host) {
				return "", 403, "Forbidden (an address outside the overlay)"
			}
			return netip.AddrPortFrom(a, uint16(port)).String(), 0, ""
		}
	}
	return "", 404, "Not Found"
}

// authenticated checks req's digest credentials for user, and challenges
// (or, for a user without a password, refuses) when they do not hold.
func (p *Proxy) authenticated(req *sip.Request, tx sip.ServerTransaction, role authRole, user string) bool {
	if _, known := p.cfg.Passwords[user]; !known {
		p.m.Add("sip.proxy.auth.refused", 1)
		p.reply(tx, req, 403, "Forbidden (no credentials for this user here)")
		return false
	}
	ok, stale := p.guard.check(req, role, user)
	if ok {
		return true
	}
	if req.GetHeader(role.credentialsHdr) != nil && !stale {
		p.m.Add("sip.proxy.auth.failed", 1)
	}
	p.m.Add("sip.proxy.auth.challenged", 1)
	p.m.Add("sip.proxy.answered."+strconv.Itoa(role.code), 1)
	tx.Respond(p.guard.challenge(req, role, stale))
	return false
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	if to == nil || to.Params == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

// reachable reports whether the proxy may send to host: an address inside
// the overlay's prefixes (any address when none are configured, as for a
// stand-alone proxy).
func (p *Proxy) reachable(host string) bool {
	if len(p.cfg.Overlay) == 0 {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, pf := range p.cfg.Overlay {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// isDomainProxy reports whether u is the proxy of a domain the topology
// names.
func (p *Proxy) isDomainProxy(u sip.Uri) bool {
	a, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return false
	}
	for _, ap := range p.cfg.Domains {
		if ap.Addr() == a.Unmap() {
			return true
		}
	}
	return false
}

func (p *Proxy) isSelf(u sip.Uri) bool {
	port := u.Port
	if port == 0 {
		port = 5060
	}
	a, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	return err == nil && netip.AddrPortFrom(a, uint16(port)).String() == p.self
}

// route forwards a request statefully and relays the answers.
func (p *Proxy) route(req *sip.Request, tx sip.ServerTransaction) {
	p.m.Add("sip.proxy.request."+strings.ToLower(req.Method.String()), 1)
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 1 {
		p.reply(tx, req, 483, "Too Many Hops")
		return
	}
	// A call from one of our own users must come from that user (RFC 3261
	// 22.3): the first INVITE of a dialog, From our domain. The
	// credentials are for us and go no further.
	if from := req.From(); p.guard != nil && req.IsInvite() && from != nil && strings.EqualFold(from.Address.Host, p.cfg.Domain) &&
		!hasToTag(req) {
		if !p.authenticated(req, tx, asProxy, from.Address.User) {
			return
		}
		req.RemoveHeader("Proxy-Authorization")
	}
	dest, code, reason := p.target(req)
	if code != 0 {
		p.reply(tx, req, code, reason)
		return
	}
	req.SetDestination(dest)
	opts := []sipgo.ClientRequestOption{sipgo.ClientRequestDecreaseMaxForward, sipgo.ClientRequestAddVia, p.pinConnection}
	if req.IsInvite() {
		opts = append(opts, sipgo.ClientRequestAddRecordRoute)
	}
	if req.IsInvite() {
		// A stateful proxy answers an INVITE with its own 100 Trying at
		// once, which stops the previous hop's retransmissions (RFC 3261
		// sections 16.2 and 17.2.1); a 100 from downstream is never relayed.
		p.reply(tx, req, 100, "Trying")
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.TransactionTimeout)
	defer cancel()
	clTx, err := p.client.TransactionRequest(ctx, req, opts...)
	if err != nil {
		p.log.Debug("forward failed", "err", err, "dest", dest)
		p.reply(tx, req, 503, "Service Unavailable")
		return
	}
	defer clTx.Terminate()
	p.m.Add("sip.proxy.forwarded", 1)
	if req.IsInvite() {
		// The callee retransmits its 2xx until the caller's ACK comes
		// (RFC 3261 13.3.1.4); the client transaction, in RFC 6026's
		// Accepted state, passes the retransmissions here and the proxy
		// forwards each (RFC 3261 16.7 step 5): a lost 2xx below the
		// proxy must not cost the call.
		clTx.OnRetransmission(func(res *sip.Response) {
			if res.IsSuccess() {
				p.relay2xx(tx, req, res)
			}
		})
		tx.OnCancel(func(*sip.Request) {
			cancelReq := newCancel(req)
			p.client.WriteRequest(cancelReq, p.pinConnection)
			p.m.Add("sip.proxy.cancelled", 1)
		})
	}
	final := false
	for {
		select {
		case res, more := <-clTx.Responses():
			if !more {
				if !final {
					p.reply(tx, req, 408, "Request Timeout")
				}
				return
			}
			if res.StatusCode == 100 {
				continue // hop by hop (RFC 3261 16.7 step 5)
			}
			p.relayResponse(tx, req, res)
			if res.StatusCode >= 200 {
				final = true
				if !req.IsInvite() {
					return
				}
			}
		case ack := <-tx.Acks():
			// The ACK for a non-2xx final answer ends here (hop by hop).
			_ = ack
		case <-tx.Done():
			return
		case <-clTx.Done():
			if !final {
				p.reply(tx, req, 408, "Request Timeout")
			}
			return
		case <-ctx.Done():
			if !final {
				p.reply(tx, req, 408, "Request Timeout")
			}
			return
		}
	}
}

// relayResponse passes a response of a forwarded request back through the
// server transaction: without its own Via (the topmost, RFC 3261 16.7), to
// where the request came from (deriving that from an IPv6 Via sent-by trips
// sipgo, "too many colons").
func (p *Proxy) relayResponse(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	res.RemoveHeader("Via")
	res.SetDestination(req.Source())
	if err := tx.Respond(res); err != nil {
		p.log.Debug("relay response", "err", err, "status", res.StatusCode)
	}
}

// relay2xx forwards a retransmitted 2xx for INVITE; the server transaction,
// Accepted as well (RFC 6026 7.1), passes it to the transport.
func (p *Proxy) relay2xx(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) {
	p.m.Add("sip.proxy.relayed_retransmission", 1)
	p.relayResponse(tx, req, res)
}

// pinConnection makes forwarded requests leave through the proxy's own
// socket (and so through the node's stack).
func (p *Proxy) pinConnection(c *sipgo.Client, req *sip.Request) error {
	ap, err := netip.ParseAddrPort(p.conn.LocalAddr().String())
	if err != nil {
		return err
	}
	req.Laddr = sip.Addr{IP: ap.Addr().AsSlice(), Port: int(ap.Port()), Hostname: ap.Addr().String()}
	return nil
}

// relayStray forwards a response no transaction wants (a 2xx
// retransmission) to the next Via, once the top one is ours.
func (p *Proxy) relayStray(r *sip.Response) {
	vias := r.GetHeaders("Via")
	if len(vias) == 0 {
		return
	}
	top, ok := vias[0].(*sip.ViaHeader)
	if !ok || top.Port != p.cfg.Port || strings.Trim(top.Host, "[]") != p.cfg.Addr.String() {
		return
	}
	r.RemoveHeader("Via")
	next := r.Via()
	if next == nil {
		return
	}
	host, port := strings.Trim(next.Host, "[]"), next.Port
	if rcv, ok := next.Params.Get("received"); ok {
		host = strings.Trim(rcv, "[]")
	}
	if rp, ok := next.Params.Get("rport"); ok {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return
	}
	r.SetDestination(netip.AddrPortFrom(a, uint16(port)).String())
	p.m.Add("sip.proxy.relayed_retransmission", 1)
	p.ua.TransportLayer().WriteMsg(r)
}

// onAck forwards the ACK of a 2xx (its own transaction) statelessly.
func (p *Proxy) onAck(req *sip.Request, tx sip.ServerTransaction) {
	p.m.Add("sip.proxy.request.ack", 1)
	dest, code, _ := p.target(req)
	if code != 0 {
		return
	}
	req.SetDestination(dest)
	if err := p.client.WriteRequest(req, sipgo.ClientRequestDecreaseMaxForward, sipgo.ClientRequestAddVia, p.pinConnection); err != nil {
		p.log.Debug("forward ACK", "err", err)
	}
}

// newCancel builds the CANCEL for a forwarded INVITE: same Request-URI,
// Call-ID, From, To, CSeq number and top Via (RFC 3261 9.1).
func newCancel(inv *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, inv.Recipient)
	if via := inv.Via(); via != nil {
		c.AppendHeader(sip.HeaderClone(via))
	}
	for _, name := range []string{"From", "To", "Call-ID", "Route"} {
		if h := inv.GetHeader(name); h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	c.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	c.SetDestination(inv.Destination())
	c.SetTransport(inv.Transport())
	return c
}

// Registrations lists the registrar's bindings, for status output.
func (p *Proxy) Registrations() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string][]string{}
	now := time.Now()
	for aor, bs := range p.location {
		for _, b := range bs {
			if now.Before(b.expires) {
				out[aor] = append(out[aor], b.uri.String())
			}
		}
		sort.Strings(out[aor])
	}
	return out
}
