package softphone

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Call is one call in progress or finished.
type Call struct {
	ID       string
	Peer     string
	Outgoing bool
	Local    netip.Addr // the address the call's media and contact use
	// Setup timings (outgoing calls): when the INVITE left and when the
	// 200 OK came back.
	InviteAt, AnsweredAt time.Time

	p      *Phone
	media  *Media
	dc     *sipgo.DialogClientSession
	ds     *sipgo.DialogServerSession
	answer *answerTx // the callee's answer, retransmitted until the ACK
	rtp    net.PacketConn
	rtcp   net.PacketConn
	port   int
	codec  Codec

	mu     sync.Mutex
	done   chan struct{}
	report *Report
	closer func() error // audio files to close when the call ends
}

// CallOptions tune an outgoing call.
type CallOptions struct {
	Source Source
	Sink   Sink
	Verify *TestPattern
	Closer func() error
}

// ErrBusy and friends are the far end's refusals.
var ErrCallRefused = errors.New("softphone: call refused")

// Call places a call to target through the domain's proxy and returns once
// it is answered (or refused, or ctx ends, which cancels it). A call that
// failed after its INVITE went out is returned with the error, ended, its
// report saying what failed.
func (p *Phone) Call(ctx context.Context, target sip.Uri, o CallOptions) (*Call, error) {
	contact := p.cfg.Contact()
	if !contact.IsValid() {
		return nil, errors.New("softphone: no address to call from yet")
	}
	cli, err := p.client(contact)
	if err != nil {
		return nil, err
	}
	rtpc, rtcpc, port, err := p.mediaSockets(contact)
	if err != nil {
		return nil, err
	}
	offer, err := Offer(contact, uint16(port), p.cfg.Codecs)
	if err != nil {
		rtpc.Close()
		rtcpc.Close()
		return nil, err
	}
	req := sip.NewRequest(sip.INVITE, target)
	from := sip.FromHeader{Address: sip.Uri{User: p.cfg.AOR.User, Host: p.cfg.AOR.Host}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(&from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{User: target.User, Host: target.Host}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	req.SetDestination(p.cfg.Proxy.String())
	if p.cfg.Password != "" {
		// Our proxy authenticates its users' calls: credentials from the
		// registration's challenge spare a 407 round trip.
		p.authorize(req, asProxy)
	}
	dua := &sipgo.DialogUA{Client: cli, ContactHDR: p.contactHeader(contact)}
	c := &Call{Peer: target.String(), Outgoing: true, Local: contact, p: p, rtp: rtpc, rtcp: rtcpc, port: port,
		done: make(chan struct{}), closer: o.Closer, InviteAt: time.Now()}
	// The INVITE transaction lives on its own timers (B, and the CANCEL's):
	// tied to ctx, sipgo would end it at ctx's end, and the 487 the CANCEL
	// brings would then go unacknowledged.
	dc, err := dua.WriteInvite(context.WithoutCancel(ctx), req)
	if err != nil {
		c.release()
		return nil, fmt.Errorf("softphone: INVITE: %w", err)
	}
	c.dc = dc
	c.ID = req.CallID().Value()
	p.register(c)
	if err := c.waitAnswer(ctx); err != nil {
		return c, err
	}
	c.AnsweredAt = time.Now()
	answer, err := ParseSDP(dc.InviteResponse.Body())
	if err != nil {
		dc.Ack(ctx)
		dc.Bye(ctx)
		c.fail(fmt.Sprintf("the answer's SDP: %v", err))
		return c, fmt.Errorf("softphone: answer: %w", err)
	}
	if err := dc.Ack(ctx); err != nil {
		c.fail(fmt.Sprintf("sending the ACK: %v", err))
		return c, fmt.Errorf("softphone: ACK: %w", err)
	}
	src, sink := o.Source, o.Sink
	if src == nil {
		src, sink = p.audio(c.Peer, true)
	}
	c.start(answer.Addr, answer.Codecs[0], src, sink, o.Verify, false) // the answer is the callee's consent
	return c, nil
}

// waitAnswer waits for the final answer to the INVITE until ctx ends. A
// refusal or a transaction that failed ends the call with what happened;
// at ctx's end the call is given up at once: a CANCEL goes out (once a
// provisional answer has come, RFC 3261 9.1) and, should the callee answer
// regardless, the answer is acknowledged and the call ended with BYE, all
// in the background, so that the caller's deadline holds.
func (c *Call) waitAnswer(ctx context.Context) error {
	var provisional atomic.Bool
	gotProvisional := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- c.dc.WaitAnswer(context.Background(), sipgo.AnswerOptions{Username: c.p.cfg.AOR.User, Password: c.p.cfg.Password, OnResponse: func(r *sip.Response) error {
			if r.IsProvisional() && !provisional.Swap(true) {
				once.Do(func() { close(gotProvisional) })
			}
			return nil
		}})
	}()
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		var refusal *sipgo.ErrDialogResponse
		if errors.As(err, &refusal) {
			c.fail(fmt.Sprintf("refused: %d %s", refusal.Res.StatusCode, refusal.Res.Reason))
			return fmt.Errorf("%w: %d %s", ErrCallRefused, refusal.Res.StatusCode, refusal.Res.Reason)
		}
		if errors.Is(err, sip.ErrTransactionCanceled) {
			// A BYE ended the dialog before any 2xx got here: the callee
			// answered, got no ACK for 64*T1 and hung up (RFC 3261
			// 13.3.1.4), every one of its 2xx having been lost.
			c.fail("the callee hung up: none of its answers got through")
			return fmt.Errorf("softphone: the callee hung up before its answer got through: %w", err)
		}
		c.fail(fmt.Sprintf("no answer: %v", err))
		return fmt.Errorf("softphone: no answer: %w", err)
	case <-ctx.Done():
	}
	reason := fmt.Sprintf("no answer before the deadline (%v after the INVITE)", time.Since(c.InviteAt).Round(time.Millisecond))
	c.fail(reason)
	go c.abandon(gotProvisional, done)
	return fmt.Errorf("softphone: %s: %w", reason, ctx.Err())
}

// abandon cancels an INVITE the caller gave up on, and cleans up after a
// callee that answered anyway.
func (c *Call) abandon(gotProvisional <-chan struct{}, done <-chan error) {
	limit := time.NewTimer(64 * sip.T1)
	defer limit.Stop()
	select {
	case <-gotProvisional:
		ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
		defer cancel()
		cli := c.dc.UA.Client
		if _, err := cli.Do(ctx, newCancel(c.dc.InviteRequest)); err != nil {
			c.p.log.Debug("CANCEL", "err", err)
		}
	case err := <-done:
		c.afterAbandon(err)
		return
	case <-limit.C:
		return // no answer of any kind: the INVITE transaction timed out
	}
	select {
	case err := <-done:
		c.afterAbandon(err)
	case <-limit.C:
	}
}

// afterAbandon acknowledges and ends a dialog the callee set up after the
// caller had given up.
func (c *Call) afterAbandon(err error) {
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	c.dc.Ack(ctx)
	c.dc.Bye(ctx)
}

// start starts the call's media. The call is already listed (its Report
// may be asked for meanwhile), so the media is published under the lock.
func (c *Call) start(remote netip.AddrPort, codec Codec, src Source, sink Sink, verify *TestPattern, hold bool) {
	m := StartMedia(MediaConfig{RTP: c.rtp, RTCP: c.rtcp, Remote: remote, Codec: codec, Source: src, Sink: sink,
		Verify: verify, SSRC: rand.Uint32(), Hold: hold, Log: c.p.log})
	c.mu.Lock()
	c.codec, c.media = codec, m
	c.mu.Unlock()
}

// release closes the call's sockets and audio.
func (c *Call) release() {
	c.rtp.Close()
	c.rtcp.Close()
	if c.closer != nil {
		c.closer()
	}
}

// LocalAddr is the address the call's media and contact use now (a call
// moves when its address dies).
func (c *Call) LocalAddr() netip.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Local
}

// Media returns the call's media session (nil before it is answered).
func (c *Call) Media() *Media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media
}

// Done is closed when the call ends.
func (c *Call) Done() <-chan struct{} { return c.done }

// end stops media and records the report; it runs once.
func (c *Call) end() Report { return c.finish("") }

// fail ends a call that could not be set up (or kept), saying why.
func (c *Call) fail(reason string) { c.finish(reason) }

func (c *Call) finish(failure string) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.report != nil {
		return *c.report
	}
	var r Report
	if c.media != nil {
		r = c.media.Stop()
	}
	r.Peer = c.Peer
	r.Ended = true
	r.Failure = failure
	c.report = &r
	if c.answer != nil {
		c.answer.ack() // stop retransmitting the answer
	}
	c.release()
	c.p.forget(c)
	close(c.done)
	return r
}

// Report returns the final report (after Done) or the figures so far.
func (c *Call) Report() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.report != nil {
		return *c.report
	}
	if c.media != nil {
		r := c.media.Report()
		r.Peer = c.Peer
		return r
	}
	return Report{Peer: c.Peer}
}

// Hangup sends BYE and returns the call's report.
func (c *Call) Hangup(ctx context.Context) Report {
	select {
	case <-c.done:
		return c.Report()
	default:
	}
	var err error
	switch {
	case c.dc != nil:
		err = c.dc.Bye(ctx)
	case c.ds != nil:
		err = c.ds.Bye(ctx)
	}
	if err != nil {
		c.p.log.Warn("BYE", "err", err)
	}
	return c.end()
}

// ReInvite refreshes the session in the dialog (RFC 3261 14, a target
// refresh), from either end: a new offer and Contact for the call's local
// address; the answer may move the peer's media.
func (c *Call) ReInvite(ctx context.Context) error {
	c.mu.Lock()
	local, port, codec := c.Local, c.port, c.codec
	c.mu.Unlock()
	offer, err := Offer(local, uint16(port), []Codec{codec})
	if err != nil {
		return err
	}
	var target sip.Uri
	switch {
	case c.dc != nil:
		target = c.dc.InviteResponse.Contact().Address
	case c.ds != nil:
		target = c.ds.InviteRequest.Contact().Address
	}
	cont := c.p.contactHeader(local)
	req := sip.NewRequest(sip.INVITE, target)
	req.AppendHeader(&cont)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	var res *sip.Response
	if c.dc != nil {
		res, err = c.dc.Do(ctx, req)
	} else {
		res, err = c.ds.Do(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("softphone: re-INVITE: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("softphone: re-INVITE refused: %d %s", res.StatusCode, res.Reason)
	}
	// The ACK of a 2xx is a request of its own (RFC 3261 13.2.2.4): the
	// dialog adds its route set.
	ack := sip.NewRequest(sip.ACK, req.Recipient)
	if via := req.Via(); via != nil {
		v := via.Clone()
		v.Params.Add("branch", sip.GenerateBranchN(16))
		ack.AppendHeader(v)
	}
	for _, h := range []string{"From", "Call-ID"} {
		if hv := req.GetHeader(h); hv != nil {
			ack.AppendHeader(sip.HeaderClone(hv))
		}
	}
	ack.AppendHeader(sip.HeaderClone(res.To()))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
	ack.AppendHeader(sip.NewHeader("Max-Forwards", "70"))
	ack.AppendHeader(&cont)
	if c.dc != nil {
		err = c.dc.WriteRequest(ack)
	} else {
		err = c.ds.WriteRequest(ack)
	}
	if err != nil {
		return err
	}
	if r, err := ParseSDP(res.Body()); err == nil && c.Media() != nil {
		c.Media().SetRemote(r.Addr)
	}
	return nil
}

// moveTo moves the call to local address to: its media to new sockets
// there, and the peer with a re-INVITE carrying the new Contact and SDP
// (the paper's scheme has no rule for an anchor that died; SIP mobility
// takes over).
func (c *Call) moveTo(ctx context.Context, to netip.Addr) error {
	rtpc, rtcpc, port, err := c.p.mediaSockets(to)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.report != nil { // ended meanwhile
		c.mu.Unlock()
		rtpc.Close()
		rtcpc.Close()
		return errors.New("softphone: the call ended")
	}
	c.Local, c.port, c.rtp, c.rtcp = to, port, rtpc, rtcpc
	m := c.media
	c.mu.Unlock()
	if m != nil {
		m.Move(rtpc, rtcpc)
	}
	return c.ReInvite(ctx)
}

// onInvite answers a new call, or a re-INVITE in an existing one.
func (p *Phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if c := p.findCall(req); c != nil {
		c.reInvited(req, tx)
		return
	}
	offer, err := ParseSDP(req.Body())
	if err != nil {
		code, reason := 488, "Not Acceptable Here"
		if errors.Is(err, ErrSDPMalformed) {
			code, reason = 400, "Bad Request (malformed SDP)"
		}
		tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
		return
	}
	contact := p.cfg.Contact()
	cli, err := p.client(contact)
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		return
	}
	dua := &sipgo.DialogUA{Client: cli, ContactHDR: p.contactHeader(contact)}
	atx := newAnswerTx(tx, p.cfg.AnswerT2)
	ds, err := dua.ReadInvite(req, atx)
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	from := req.From()
	peer := "unknown"
	if from != nil {
		peer = from.Address.String()
	}
	// No 100 Trying: the phone answers well within the 200 ms after which
	// RFC 3261 section 17.2.1 asks for one.
	if !p.cfg.AutoAnswer {
		ds.Respond(486, "Busy Here", nil)
		return
	}
	cancelled := make(chan struct{})
	var once sync.Once
	tx.OnCancel(func(*sip.Request) { once.Do(func() { close(cancelled) }) })
	ds.Respond(180, "Ringing", nil)
	p.rings.Add(1)
	defer p.rings.Add(-1)
	if d := p.cfg.AnswerDelay; d > 0 {
		// Ring before answering. Sent back to back, a 180 and a 200 reach
		// a sipgo proxy together, its transaction layer handles each on its
		// own goroutine, and a 180 handled after the 200 is dropped.
		select {
		case <-time.After(d):
		case <-cancelled: // the transaction layer answered 487
			return
		case <-tx.Done():
			return
		}
	}
	rtpc, rtcpc, port, err := p.mediaSockets(contact)
	if err != nil {
		ds.Respond(503, "Service Unavailable", nil)
		return
	}
	answer, codec, err := Answer(offer, contact, uint16(port))
	if err != nil {
		rtpc.Close()
		rtcpc.Close()
		ds.Respond(488, "Not Acceptable Here", nil)
		return
	}
	c := &Call{ID: req.CallID().Value(), Peer: peer, Local: contact, p: p, ds: ds, answer: atx, rtp: rtpc, rtcp: rtcpc, port: port,
		done: make(chan struct{})}
	p.register(c)
	src, sink := p.audio(peer, false)
	// Receiving starts now; sending waits for the ACK or the caller's media.
	c.start(offer.Addr, codec, src, sink, nil, true)
	if err := ds.RespondSDP(answer); err != nil {
		c.unacknowledged(err)
	}
}

// unacknowledged decides about a call whose answer got no ACK. RFC 3261
// 13.3.1.4 says the session SHOULD then end with a BYE; but media from the
// caller proves the answer arrived and only ACKs were lost (all of them,
// over heavy loss), so such a call goes on.
func (c *Call) unacknowledged(err error) {
	select {
	case <-c.done:
		return // ended meanwhile (a BYE, a hangup)
	default:
	}
	if c.ds.LoadState() == sip.DialogStateEnded {
		return // a BYE came before the ACK: onBye ends the call
	}
	if m := c.Media(); errors.Is(err, errNoACK) && m != nil && m.Report().PacketsReceived > 0 {
		c.p.log.Info("no ACK for the answer, but the caller's media arrives: keeping the call", "call", c.ID)
		return
	}
	c.p.log.Warn("answer", "err", err, "call", c.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	c.ds.Bye(ctx)
	c.fail(fmt.Sprintf("answered, but no ACK came: %v", err))
}

// reInvited answers a re-INVITE: same media here, the peer's may move, and
// so may its Contact, the dialog's remote target (RFC 3261 12.2.2).
func (c *Call) reInvited(req *sip.Request, tx sip.ServerTransaction) {
	offer, err := ParseSDP(req.Body())
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	c.mu.Lock()
	local, port := c.Local, c.port
	c.mu.Unlock()
	answer, _, err := Answer(offer, local, uint16(port))
	if err != nil {
		tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	if m := c.Media(); m != nil {
		m.SetRemote(offer.Addr)
	}
	if ct := req.Contact(); ct != nil {
		c.retarget(ct)
	}
	res := sip.NewSDPResponseFromRequest(req, answer)
	cont := c.p.contactHeader(local)
	res.AppendHeader(&cont)
	tx.Respond(res)
}

// retarget makes the peer's new Contact the dialog's remote target, where
// its in-dialog requests (BYE, re-INVITE) go: sipgo reads it from the
// INVITE (callee) or its answer (caller).
func (c *Call) retarget(ct *sip.ContactHeader) {
	var m interface{ ReplaceHeader(sip.Header) }
	switch {
	case c.dc != nil && c.dc.InviteResponse != nil:
		m = c.dc.InviteResponse
	case c.ds != nil:
		m = c.ds.InviteRequest
	default:
		return
	}
	m.ReplaceHeader(sip.HeaderClone(ct))
}

func (p *Phone) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if c := p.findCall(req); c != nil && c.ds != nil {
		c.answer.ack()
		if m := c.Media(); m != nil {
			m.Release()
		}
		c.ds.ReadAck(req, tx)
	}
}

func (p *Phone) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := p.findCall(req)
	if c == nil {
		tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	switch {
	case c.dc != nil:
		c.dc.ReadBye(req, tx)
	case c.ds != nil:
		c.ds.ReadBye(req, tx)
	}
	c.end()
}
