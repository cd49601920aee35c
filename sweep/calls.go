// Package sweep measures the testbed's figures across a range of a
// parameter, on in-process labs: how calls fare as loss grows.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/lab"
	"github.com/ha2r/mip6testbed/softphone"
)

// CallOptions is one call-loss sweep.
type CallOptions struct {
	// Topology is a topology file's bytes (its mn1 calls mn2's sip_uri
	// and moves between links ar1 and ar1p): examples/fig4.yaml's shape.
	Topology     []byte
	TopologyName string
	Schemes      []config.Scheme
	Loss         []float64 // per underlay traversal (every hop), 0..1
	Calls        int       // per point and scheme
	Batch        int       // calls placed at once; each batch shares a move
	Talk         time.Duration
	Seed         uint64
	// AnswerT2 caps the phones' 2xx retransmission interval (0: RFC 3261's
	// 4 s); see softphone.PhoneConfig.AnswerT2.
	AnswerT2 time.Duration
	// Progress, if set, is told of each point as it completes.
	Progress func(CallPoint)
}

// CallPoint is what one scheme's calls did at one loss rate.
type CallPoint struct {
	Scheme config.Scheme `json:"scheme"`
	Loss   float64       `json:"loss"`
	// HomeRegistration is how long MN1's home registration took after a
	// move at this loss, before the calls; HomeRegistered says it
	// completed (within 95 s).
	HomeRegistration time.Duration `json:"home_registration_ns"`
	HomeRegistered   bool          `json:"home_registered"`
	// Authentication (paper's scheme) is how long after the move MN1's
	// care-of address became its contact (the MN Authentication Reply);
	// Authenticated says it did within 95 s. A node whose authentication
	// gave up goes on with its home address, as on a plain access router.
	Authentication time.Duration `json:"authentication_ns,omitempty"`
	Authenticated  bool          `json:"authenticated,omitempty"`
	Calls          int           `json:"calls"`
	SetUp          int           `json:"set_up"`
	SetupMedian    time.Duration `json:"setup_median_ns"`
	SetupP95       time.Duration `json:"setup_p95_ns"`
	// Survived counts set-up calls whose media reached both ends in the
	// last two seconds before the hangup, after the move.
	Survived int `json:"survived"`
	// RTPLoss is the mean share of media packets lost, both directions,
	// over the calls set up.
	RTPLoss float64 `json:"rtp_loss"`
	// Failures counts calls that were not set up, by reason.
	Failures map[string]int `json:"failures,omitempty"`
	// Broken counts set-up calls whose media did not survive the move, by
	// which way it stopped and which address the caller's side used.
	Broken map[string]int `json:"broken,omitempty"`
	// Events are MN1's mobility and SIP events over the point (anchors
	// given up or lost, calls moved by re-INVITE, retransmissions).
	Events map[string]uint64 `json:"events,omitempty"`
}

// events are the counters a point reports the change of.
var events = []string{"mh.out.BU.home", "mnauth.completed", "anchor.retransmit", "anchor.gave_up", "anchor.lost", "sip.calls_moved", "sip.register_failed"}

// SetupRate is the share of calls set up.
func (p CallPoint) SetupRate() float64 { return ratio(p.SetUp, p.Calls) }

// SurvivalRate is the share of set-up calls whose media survived the move.
func (p CallPoint) SurvivalRate() float64 { return ratio(p.Survived, p.SetUp) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Calls runs the sweep: for each scheme (side by side, a lab each) and each
// loss rate, batches of calls from MN1 to MN2, each batch with a move of
// MN1 while its calls talk.
func Calls(ctx context.Context, o CallOptions) ([]CallPoint, error) {
	if o.Topology == nil {
		return nil, errors.New("sweep: no topology")
	}
	if o.Calls <= 0 {
		o.Calls = 50
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
	if o.Talk <= 0 {
		o.Talk = 2 * time.Second
	}
	var mu sync.Mutex
	var out []CallPoint
	var first error
	var wg sync.WaitGroup
	for _, scheme := range o.Schemes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pts, err := schemeCalls(ctx, o, scheme)
			mu.Lock()
			defer mu.Unlock()
			out = append(out, pts...)
			if err != nil && first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b CallPoint) int {
		if a.Scheme != b.Scheme {
			return slices.Index(o.Schemes, a.Scheme) - slices.Index(o.Schemes, b.Scheme)
		}
		switch {
		case a.Loss < b.Loss:
			return -1
		case a.Loss > b.Loss:
			return 1
		}
		return 0
	})
	return out, first
}

// schemeCalls runs one scheme's points in one lab, loss rate after loss rate.
func schemeCalls(ctx context.Context, o CallOptions, scheme config.Scheme) ([]CallPoint, error) {
	topo, err := config.Parse(o.TopologyName, o.Topology)
	if err != nil {
		return nil, err
	}
	lab.UseScheme(topo, scheme)
	l, err := lab.Start(ctx, topo, lab.Options{Seed: o.Seed, SIPAnswerT2: o.AnswerT2})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	if err := ready(ctx, l, scheme, 30*time.Second); err != nil {
		return nil, fmt.Errorf("sweep: %s lab: %w", scheme, err)
	}
	var out []CallPoint
	links := []string{"ar1p", "ar1"} // MN1 moves between neighbours
	move := 0
	for _, loss := range o.Loss {
		l.SetLoss(loss)
		p := CallPoint{Scheme: scheme, Loss: loss, Failures: map[string]int{}, Broken: map[string]int{}, Events: map[string]uint64{}}
		before := map[string]uint64{}
		for _, e := range events {
			before[e] = l.Node("mn1").Metrics.Get(e)
		}
		// A move under this loss: how long registration takes.
		reg := moveAndRegister(ctx, l, scheme, links[move%2], 95*time.Second)
		p.HomeRegistration, p.HomeRegistered = reg.home, reg.homeOK
		if scheme == config.SchemeHA2R {
			p.Authentication, p.Authenticated = reg.auth, reg.authOK
		}
		move++
		var setups []time.Duration
		var lossSum float64
		for placed := 0; placed < o.Calls; placed += o.Batch {
			n := min(o.Batch, o.Calls-placed)
			res := batch(ctx, l, scheme, n, o.Talk, links[move%2])
			move++
			for _, r := range res {
				p.Calls++
				if r.failure != "" {
					p.Failures[r.failure]++
					continue
				}
				p.SetUp++
				setups = append(setups, r.setup)
				lossSum += r.rtpLoss
				if r.survived {
					p.Survived++
				} else {
					p.Broken[r.broken]++
				}
			}
		}
		for _, e := range events {
			if d := l.Node("mn1").Metrics.Get(e) - before[e]; d > 0 {
				p.Events[e] = d
			}
		}
		slices.Sort(setups)
		if len(setups) > 0 {
			p.SetupMedian = setups[len(setups)/2]
			p.SetupP95 = setups[min(len(setups)-1, len(setups)*95/100)]
			p.RTPLoss = lossSum / float64(len(setups))
		}
		if o.Progress != nil {
			o.Progress(p)
		}
		out = append(out, p)
	}
	return out, nil
}

// ready waits until both mobile nodes are registered (home, SIP, and in the
// paper's scheme authenticated at their access router).
func ready(ctx context.Context, l *lab.Lab, scheme config.Scheme, limit time.Duration) error {
	for _, mn := range []string{"mn1", "mn2"} {
		counters := []string{"mh.in.BA.home", "sip.registered"}
		if scheme == config.SchemeHA2R {
			counters = append(counters, "mnauth.completed")
		}
		for _, c := range counters {
			if err := waitCounter(ctx, l, mn, c, 1, limit); err != nil {
				return err
			}
		}
	}
	return nil
}

// registration is how a move's registrations went.
type registration struct {
	home, auth     time.Duration
	homeOK, authOK bool
}

// moveAndRegister moves MN1 to link and waits until it is registered
// there: attached, and its home agent's acknowledgement of the new care-of
// address in; in the paper's scheme also until its care-of address is
// authenticated (its contact). Each wait ends at limit after the move.
func moveAndRegister(ctx context.Context, l *lab.Lab, scheme config.Scheme, link string, limit time.Duration) registration {
	var r registration
	n := l.Node("mn1")
	acks := n.Metrics.Get("mh.in.BA.home")
	start := time.Now()
	if err := n.Handover(link); err != nil {
		return r
	}
	deadline := start.Add(limit)
	for {
		st := n.Mobility.MobileNode.Status()
		att, attached := n.Host.Current()
		here := attached && att.Link.Name == link && st.CareOf == att.Address
		if !r.homeOK && here && st.HomeBound && n.Metrics.Get("mh.in.BA.home") > acks {
			r.home, r.homeOK = time.Since(start), true
		}
		if !r.authOK && here && st.Contact == st.CareOf {
			r.auth, r.authOK = time.Since(start), true
		}
		if r.homeOK && (r.authOK || scheme != config.SchemeHA2R) {
			return r
		}
		if time.Now().After(deadline) {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func waitCounter(ctx context.Context, l *lab.Lab, node, counter string, want uint64, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for l.Node(node).Metrics.Get(counter) < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's %s did not reach %d within %v", node, counter, want, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// answerWithin is how long a caller waits for the answer: Timer B for the
// INVITE to be answered at all, then the callee's 2xx retransmissions.
func answerWithin() time.Duration { return 2 * 64 * sip.T1 }

// callResult is one call of a batch.
type callResult struct {
	failure  string
	setup    time.Duration
	survived bool
	broken   string // why not, when not
	rtpLoss  float64
}

// batch places n calls from MN1 to MN2 at once, lets them talk, moves MN1
// to link (waiting for its registration there), lets them talk again, and
// hangs up.
func batch(ctx context.Context, l *lab.Lab, scheme config.Scheme, n int, talk time.Duration, link string) []callResult {
	caller := l.Node("mn1").SIP.Phone
	res := make([]callResult, n)
	calls := make([]*softphone.Call, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The caller waits as long as SIP's timers allow an answer:
			// Timer B (64*T1) for any answer to the INVITE (sipgo's client
			// transaction), and the callee retransmits its 2xx for 64*T1
			// after answering (RFC 3261 13.3.1.4), so an answer that takes
			// all of both still counts.
			cctx, cancel := context.WithTimeout(ctx, answerWithin())
			defer cancel()
			c, err := caller.Call(cctx, sip.Uri{User: "user2", Host: "domain2"}, softphone.CallOptions{})
			if err != nil {
				res[i].failure = failureKind(c, err)
				return
			}
			calls[i] = c
			res[i].setup = c.AnsweredAt.Sub(c.InviteAt)
		}()
	}
	wg.Wait()
	pause(ctx, talk)
	moveAndRegister(ctx, l, scheme, link, 95*time.Second)
	pause(ctx, talk)
	// The callee's side of each call, by Call-ID.
	far := map[string]*softphone.Call{}
	for _, c := range l.Node("mn2").SIP.Phone.Calls() {
		far[c.ID] = c
	}
	const window = 2 * time.Second
	before := map[string][2]uint64{}
	for _, c := range calls {
		if c != nil {
			before[c.ID] = [2]uint64{c.Report().PacketsReceived, received(far[c.ID])}
		}
	}
	pause(ctx, window)
	for i, c := range calls {
		if c == nil {
			continue
		}
		b := before[c.ID]
		toCaller, toCallee := c.Report().PacketsReceived > b[0], received(far[c.ID]) > b[1]
		res[i].survived = toCaller && toCallee
		if !res[i].survived {
			res[i].broken = brokenKind(l, c, toCaller, toCallee)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			r := c.Hangup(hctx)
			var farLoss float64
			if f := far[c.ID]; f != nil {
				farLoss = f.Report().LossPercent
			}
			res[i].rtpLoss = (r.LossPercent + farLoss) / 200
		}()
	}
	wg.Wait()
	return res
}

// brokenKind says which way the media of a call stopped after a move, and
// what the caller's address was: the home address (through the home
// agent), or a care-of address and its anchor's state now.
func brokenKind(l *lab.Lab, c *softphone.Call, toCaller, toCallee bool) string {
	way := "both ways"
	switch {
	case toCaller:
		way = "caller to callee"
	case toCallee:
		way = "callee to caller"
	}
	st := l.Node("mn1").Mobility.MobileNode.Status()
	addr := c.LocalAddr()
	switch {
	case addr == st.Home:
		return way + " stopped, on the home address"
	case addr == st.CareOf:
		return way + " stopped, on the current care-of address"
	}
	for _, a := range st.Anchors {
		if a.CareOf == addr {
			return way + " stopped, on an old care-of address (anchor " + a.State + ")"
		}
	}
	return way + " stopped, on an old care-of address (no anchor left)"
}

func received(c *softphone.Call) uint64 {
	if c == nil {
		return 0
	}
	return c.Report().PacketsReceived
}

// failureKind names why a call was not set up, for the table.
func failureKind(c *softphone.Call, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %v", answerWithin())
	case errors.Is(err, softphone.ErrCallRefused):
		return "refused"
	case c != nil && strings.Contains(c.Report().Failure, "Timer_B"):
		return "no answer to the INVITE within Timer B (64*T1)"
	case c != nil && c.Report().Failure != "":
		return c.Report().Failure
	}
	return err.Error()
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
