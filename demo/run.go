package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/examples"
	"github.com/ha2r/mip6testbed/lab"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
)

// Options describe one run of the experiment.
type Options struct {
	// Topology is a topology file's bytes (default: examples/fig4.yaml);
	// it must have mobile nodes mn1 and mn2 with SIP URIs.
	Topology []byte
	Name     string // the file name, for messages
	Schemes  []config.Scheme
	// Before is how long the call runs before MN1's first move, After how
	// long after its last; Between separates moves.
	Before, Between, After time.Duration
	// Moves is how many times MN1 moves (through its access links).
	Moves int
	// AccessDelay and BackboneDelay, if not negative, replace the file's
	// delays; Loss is added on every access link.
	AccessDelay, BackboneDelay time.Duration
	// HADelay, if not negative, is the one-way delay between MN1's and
	// MN2's home agents; NeighbourDelay between the routers of MN1's start
	// link and of its first move (the old-to-new access router distance,
	// which the paper assumes small).
	HADelay, NeighbourDelay time.Duration
	Loss                    float64
	Seed                    uint64
	// MakeBeforeBreak moves MN1 make-before-break: it attaches to the next
	// link and registers there while the old one carries the call.
	MakeBeforeBreak bool
	Progress        io.Writer
}

// Defaults returns the demo's standard options.
func Defaults() Options {
	return Options{Schemes: []config.Scheme{config.SchemeStandard, config.SchemeHA2R}, Before: 3 * time.Second,
		Between: 3 * time.Second, After: 3 * time.Second, Moves: 1, AccessDelay: -1, BackboneDelay: -1,
		HADelay: -1, NeighbourDelay: -1, Seed: 1}
}

// Phases of a run.
const (
	PhaseAttach   = "attach"
	PhaseSetup    = "session setup"
	PhaseSteady   = "steady state"
	PhaseHandover = "handover"
	PhaseTeardown = "teardown"
)

// handoverWindow is how long after a move its signalling counts as the
// handover's.
const handoverWindow = 2 * time.Second

// PathSample is the path one RTP packet took.
type PathSample struct {
	Direction string   `json:"direction"`
	Hops      []string `json:"hops"`
	DelayMs   float64  `json:"one_way_delay_ms"`
	Tunnelled bool     `json:"tunnelled"`
}

// Handover is one move and its cost to the media.
type Handover struct {
	Link     string    `json:"link"`
	At       time.Time `json:"at"`
	GapToMN1 float64   `json:"gap_mn2_to_mn1_ms"`
	GapToMN2 float64   `json:"gap_mn1_to_mn2_ms"`
	AttachMs float64   `json:"attach_ms"`
}

// Arrival is one RTP packet reaching a mobile node: seconds after the
// INVITE, and whether it came through a tunnel.
type Arrival struct {
	T         float64 `json:"t"`
	Tunnelled bool    `json:"tunnelled,omitempty"`
}

// PhaseSummary counts the signalling of one phase.
type PhaseSummary struct {
	Phase     string         `json:"phase"`
	DurationS float64        `json:"duration_s"`
	Messages  int            `json:"messages"`
	Bytes     int            `json:"bytes"`
	Mobility  int            `json:"mobility_messages"`
	SIP       int            `json:"sip_messages"`
	ByType    map[string]int `json:"by_type"`
	BytesBy   map[string]int `json:"bytes_by_type"`
}

// Result is everything measured for one scheme.
type Result struct {
	Scheme string `json:"scheme"`
	// Start, InviteAt, TeardownAt and End mark the run: nodes started, MN1
	// sent the INVITE, MN1 hung up, the last answers were in.
	Start      time.Time `json:"start"`
	InviteAt   time.Time `json:"invite_at"`
	TeardownAt time.Time `json:"teardown_at"`
	End        time.Time `json:"end"`

	Phases          []PhaseSummary `json:"phases"`
	SteadyPerMinute float64        `json:"steady_state_messages_per_minute"`
	// InviteToMedia is the time from the INVITE to the first media packet
	// at MN1 and at MN2 (ms, -1 if none came), InviteToDirect to the first
	// one that came on the direct path, not through a tunnel.
	InviteToMedia  [2]float64 `json:"invite_to_first_media_ms"`
	InviteToDirect [2]float64 `json:"invite_to_first_direct_media_ms"`
	Handovers      []Handover `json:"handovers"`
	// Caller and Callee are MN1's and MN2's own call reports.
	Caller     softphone.Report `json:"mn1_report"`
	Callee     softphone.Report `json:"mn2_report"`
	PathBefore []PathSample     `json:"path_before"`
	PathAfter  []PathSample     `json:"path_after"`
	// Arrivals are the RTP packets that reached MN1 and MN2; Departures
	// when MN1 and MN2 sent theirs (seconds after the INVITE).
	Arrivals   [2][]Arrival `json:"arrivals"`
	Departures [2][]float64 `json:"departures"`

	Messages []Message `json:"messages"`
	Lanes    []string  `json:"lanes"`
	// PerNode holds every node's counters at the end; CounterCheck compares
	// them with the recorded messages.
	PerNode      map[string]map[string]uint64 `json:"node_counters"`
	CounterCheck map[string]CounterCheck      `json:"counter_check"`
}

func (o Options) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Run runs the experiment once per scheme.
func Run(ctx context.Context, o Options) ([]*Result, error) {
	if o.Topology == nil {
		o.Topology, o.Name = examples.Fig4, "fig4.yaml (built in)"
	}
	var out []*Result
	for _, s := range o.Schemes {
		r, err := runScheme(ctx, o, s)
		if err != nil {
			return nil, fmt.Errorf("%s scheme: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// prepare applies the options to a topology for one scheme.
func prepare(o Options, scheme config.Scheme) (*config.Topology, error) {
	topo, err := config.Parse(o.Name, o.Topology)
	if err != nil {
		return nil, err
	}
	mn1, mn2 := topo.NodeByName("mn1"), topo.NodeByName("mn2")
	if mn1 == nil || mn2 == nil || mn1.SIPURI == "" || mn2.SIPURI == "" {
		return nil, fmt.Errorf("%s: the demo needs mobile nodes mn1 and mn2 with sip_uri", o.Name)
	}
	lab.UseScheme(topo, scheme)
	for _, l := range topo.Links {
		if o.AccessDelay >= 0 {
			l.Delay = o.AccessDelay
		}
		l.Loss = min(1, l.Loss+o.Loss)
	}
	if o.BackboneDelay >= 0 {
		topo.Backbone.Delay = o.BackboneDelay
		topo.Backbone.Pairs = nil
	}
	// Later pairs override earlier ones.
	if o.HADelay >= 0 && mn1.HomeAgent != mn2.HomeAgent {
		topo.Backbone.Pairs = append(topo.Backbone.Pairs, config.Pair{From: []string{mn1.HomeAgent}, To: []string{mn2.HomeAgent}, Delay: o.HADelay})
	}
	if o.NeighbourDelay >= 0 {
		if moves := moveLinks(mn1, 1); len(moves) > 0 && moves[0] != mn1.Start {
			from, to := topo.LinkByName(mn1.Start).Router, topo.LinkByName(moves[0]).Router
			topo.Backbone.Pairs = append(topo.Backbone.Pairs, config.Pair{From: []string{from}, To: []string{to}, Delay: o.NeighbourDelay})
		}
	}
	return topo, nil
}

// network is where the experiment runs: the in-process lab, or the nodes
// of a namespace testbed reached through their control sockets.
type network interface {
	// status reads a node's counters and whether it is registered with its
	// home agent.
	status(node string) (nodeStatus, error)
	// call has MN1 call uri and returns once the call is answered.
	call(ctx context.Context, uri string) error
	// move moves a host to another access link and returns its new address
	// once it is attached there.
	move(ctx context.Context, node, link string) (netip.Addr, error)
	// hangup has MN1 hang up and returns MN1's and MN2's call reports.
	hangup(ctx context.Context) (caller, callee softphone.Report, err error)
	// stop ends the run (nodes or traces), so that what was recorded and
	// the counters describe the same run, and returns every node's counters.
	stop() (map[string]map[string]uint64, error)
}

type nodeStatus struct {
	Counters  map[string]uint64
	HomeBound bool
}

// newTracerFor prepares a tracer that knows the topology's addresses.
func newTracerFor(topo *config.Topology) (*tracer, map[string]bool) {
	tr := newTracer()
	tr.setPhase(PhaseAttach)
	proxies := map[string]bool{}
	for _, r := range topo.Routers() {
		tr.addOwner(r.Address, r.Name)
		for _, l := range r.ServedLink {
			tr.addOwner(overlay.LinkLocal(r.Name, l.Name), r.Name)
		}
		if r.SIPDomain != "" {
			tr.sipNodes[r.Name] = r.Address
			proxies[r.Name] = true
		}
	}
	for _, n := range topo.Nodes {
		if !n.Role.IsRouter() {
			tr.hosts[n.Name] = true
			tr.addOwner(n.HomeAddress, n.Name)
		}
	}
	return tr, proxies
}

// measure runs the scenario on a started network whose nodes feed tr, from
// attachment (which began at start) to the end of the call.
func measure(ctx context.Context, o Options, scheme config.Scheme, topo *config.Topology, tr *tracer, proxies map[string]bool, net network, start time.Time) (*Result, error) {
	mn1, mn2 := topo.NodeByName("mn1"), topo.NodeByName("mn2")
	res := &Result{Scheme: string(scheme), Start: start}
	stopped := false
	defer func() {
		if !stopped {
			net.stop()
		}
	}()
	metric := func(node, name string) uint64 {
		st, err := net.status(node)
		if err != nil {
			return 0
		}
		return st.Counters[name]
	}

	// Attach: home registration, the HA2R authentication, SIP registration.
	for _, mn := range []string{"mn1", "mn2"} {
		if err := waitFor(ctx, 15*time.Second, func() bool {
			st, err := net.status(mn)
			ok := err == nil && st.HomeBound && st.Counters["sip.registered"] > 0
			if scheme == config.SchemeHA2R {
				ok = ok && st.Counters["mnauth.completed"] > 0
			}
			return ok
		}); err != nil {
			return nil, fmt.Errorf("%s did not register: %w", mn, err)
		}
	}
	o.say("%s: mn1 and mn2 attached and registered (home agent%s, SIP) in %v", scheme,
		map[bool]string{true: ", HA2R", false: ""}[scheme == config.SchemeHA2R], time.Since(start).Round(time.Millisecond))

	// Session setup: MN1 calls MN2 through both proxies.
	tr.setPhase(PhaseSetup)
	setupStart := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err := net.call(cctx, mn2.SIPURI)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("mn1 calling %s: %w", mn2.SIPURI, err)
	}
	answered := time.Now()
	res.InviteAt = tr.firstSent("mn1", "INVITE", setupStart)
	if res.InviteAt.IsZero() {
		return nil, errors.New("the call was answered but no INVITE from mn1 was seen")
	}
	o.say("%s: mn1 called %s: answered after %v", scheme, mn2.SIPURI, answered.Sub(res.InviteAt).Round(time.Millisecond))
	// Setup lasts until the INVITE transaction is over (MN2 has the ACK)
	// and media flows on the direct path both ways; in the standard scheme
	// that takes Return Routability and a binding each way.
	complete := waitFor(ctx, 10*time.Second, func() bool {
		return tr.arrived("mn2", "ACK", res.InviteAt) && !tr.firstRTP("mn1", res.InviteAt, true).IsZero() &&
			!tr.firstRTP("mn2", res.InviteAt, true).IsZero() &&
			(scheme != config.SchemeStandard || metric("mn1", "rr.completed") > 0 && metric("mn2", "rr.completed") > 0)
	}) == nil
	setupEnd := time.Now()
	tr.setPhase(PhaseSteady)
	// The same figure as the tables' "INVITE to first direct media".
	direct := func(mn string) string {
		return MsOrNever(sinceMs(res.InviteAt, tr.firstRTP(mn, res.InviteAt, true)))
	}
	if complete {
		o.say("%s: session set up %v after the INVITE; first direct media at mn1 %s, at mn2 %s after it", scheme,
			setupEnd.Sub(res.InviteAt).Round(time.Millisecond), direct("mn1"), direct("mn2"))
	} else {
		o.say("%s: session setup not complete 10 s after the INVITE (ACK, direct media both ways, Return Routability); first direct media at mn1 %s, at mn2 %s", scheme,
			direct("mn1"), direct("mn2"))
	}
	sleepCtx(ctx, o.Before-time.Since(answered))

	// Handovers.
	moves := moveLinks(mn1, o.Moves)
	for i, link := range moves {
		tr.setPhase(PhaseHandover)
		at := time.Now()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addr, err := net.move(hctx, "mn1", link)
		cancel()
		if err != nil {
			return nil, err
		}
		h := Handover{Link: link, At: at, AttachMs: ms(time.Since(at))}
		o.say("%s: mn1 moved to %s (care-of address %s), attached in %.0f ms", scheme, link, addr, h.AttachMs)
		res.Handovers = append(res.Handovers, h)
		sleepCtx(ctx, handoverWindow)
		tr.setPhase(PhaseSteady)
		wait := o.Between
		if i == len(moves)-1 {
			wait = o.After
		}
		sleepCtx(ctx, wait-handoverWindow)
	}

	// Teardown.
	tr.setPhase(PhaseTeardown)
	res.TeardownAt = time.Now()
	bye, cancelBye := context.WithTimeout(ctx, 10*time.Second)
	defer cancelBye()
	if res.Caller, res.Callee, err = net.hangup(bye); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // let the last answers arrive
	res.End = time.Now()
	stopped = true
	if res.PerNode, err = net.stop(); err != nil {
		return nil, err
	}
	o.say("%s: call ended after %.1f s: mn1 received %d packets (lost %d), mn2 received %d (lost %d)", scheme,
		res.Caller.DurationS, res.Caller.PacketsReceived, res.Caller.PacketsLost, res.Callee.PacketsReceived, res.Callee.PacketsLost)

	res.Messages = tr.messages()
	res.Arrivals[0] = tr.arrivals("mn1", res.InviteAt)
	res.Arrivals[1] = tr.arrivals("mn2", res.InviteAt)
	res.Departures[0] = tr.departures("mn1", res.InviteAt)
	res.Departures[1] = tr.departures("mn2", res.InviteAt)
	for i, mn := range []string{"mn1", "mn2"} {
		res.InviteToMedia[i] = sinceMs(res.InviteAt, tr.firstRTP(mn, res.InviteAt, false))
		res.InviteToDirect[i] = sinceMs(res.InviteAt, tr.firstRTP(mn, res.InviteAt, true))
	}
	for i := range res.Handovers {
		h := &res.Handovers[i]
		at := h.At.Sub(res.InviteAt).Seconds()
		until := at + 5
		if i+1 < len(res.Handovers) {
			// A gap after the next move is that move's, not this one's.
			until = min(until, res.Handovers[i+1].At.Sub(res.InviteAt).Seconds())
		}
		h.GapToMN1 = gapAround(res.Arrivals[0], at, until)
		h.GapToMN2 = gapAround(res.Arrivals[1], at, until)
	}
	res.summarise(setupEnd)
	res.paths(tr, res.InviteAt)
	res.Lanes = lanes(topo, res.Messages)
	res.checkCounters(proxies)
	return res, nil
}

// moveLinks picks MN1's moves: through its other access links in file
// order, home links last.
func moveLinks(mn *config.Node, n int) []string {
	var cand []string
	for _, a := range mn.Access {
		if a.Link != mn.Start {
			cand = append(cand, a.Link)
		}
	}
	cand = append(cand, mn.Start)
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, cand[i%len(cand)])
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MsOrNever prints a time in ms from sinceMs, "never" for -1: the one way
// the text, the tables and the progress lines show such a figure.
func MsOrNever(v float64) string {
	if v < 0 {
		return "never"
	}
	return fmt.Sprintf("%.1f ms", v)
}

// sinceMs is t-t0 in ms, or -1 if t never happened.
func sinceMs(t0, t time.Time) float64 {
	if t.IsZero() {
		return -1
	}
	return ms(t.Sub(t0))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func waitFor(ctx context.Context, limit time.Duration, f func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !f() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// gapAround returns, in ms, the longest silence in arrivals (seconds) that
// ends after at and starts before until.
func gapAround(arr []Arrival, at, until float64) float64 {
	var gap float64
	for i := 1; i < len(arr); i++ {
		if arr[i].T < at || arr[i-1].T >= until {
			continue
		}
		gap = max(gap, arr[i].T-arr[i-1].T)
	}
	return gap * 1000
}

// summarise counts the signalling per phase.
func (r *Result) summarise(setupEnd time.Time) {
	order := []string{PhaseAttach, PhaseSetup, PhaseHandover, PhaseSteady, PhaseTeardown}
	by := map[string]*PhaseSummary{}
	for _, p := range order {
		by[p] = &PhaseSummary{Phase: p, ByType: map[string]int{}, BytesBy: map[string]int{}}
	}
	for _, m := range r.Messages {
		s := by[m.Phase]
		if s == nil {
			continue
		}
		s.Messages++
		s.Bytes += m.Bytes
		name := m.Type
		if m.Kind == "sip" {
			s.SIP++
			name = "SIP " + name
		} else {
			s.Mobility++
		}
		s.ByType[name]++
		s.BytesBy[name] += m.Bytes
	}
	by[PhaseAttach].DurationS = r.InviteAt.Sub(r.Start).Seconds()
	by[PhaseSetup].DurationS = setupEnd.Sub(r.InviteAt).Seconds()
	by[PhaseHandover].DurationS = float64(len(r.Handovers)) * handoverWindow.Seconds()
	by[PhaseSteady].DurationS = r.TeardownAt.Sub(setupEnd).Seconds() - by[PhaseHandover].DurationS
	by[PhaseTeardown].DurationS = r.End.Sub(r.TeardownAt).Seconds()
	for _, p := range order {
		r.Phases = append(r.Phases, *by[p])
	}
	if d := by[PhaseSteady].DurationS; d > 0 {
		r.SteadyPerMinute = float64(by[PhaseSteady].Messages) * 60 / d
	}
}

// Phase returns a phase's summary.
func (r *Result) Phase(p string) PhaseSummary {
	for _, s := range r.Phases {
		if s.Phase == p {
			return s
		}
	}
	return PhaseSummary{}
}

// CounterCheck is, for one message type, what the demo recorded and what
// the nodes' own counters say. Mobility messages are checked against the
// senders' counters (mh.out.TYPE, mh.out.bytes.TYPE); SIP requests against
// the proxies' request counters, counting the first transmission of each
// request that reached a proxy.
type CounterCheck struct {
	Recorded      int `json:"recorded"`
	Counted       int `json:"counted"`
	RecordedBytes int `json:"recorded_bytes,omitempty"`
	CountedBytes  int `json:"counted_bytes,omitempty"`
}

// OK reports whether the record and the counters agree.
func (c CounterCheck) OK() bool { return c.Recorded == c.Counted && c.RecordedBytes == c.CountedBytes }

// checkCounters compares the recorded messages with the nodes' counters.
func (r *Result) checkCounters(proxies map[string]bool) {
	r.CounterCheck = map[string]CounterCheck{}
	bump := func(name string, f func(*CounterCheck)) {
		c := r.CounterCheck[name]
		f(&c)
		r.CounterCheck[name] = c
	}
	for _, m := range r.Messages {
		switch {
		case m.Kind == "mobility":
			bump(m.Type, func(c *CounterCheck) { c.Recorded++; c.RecordedBytes += m.Bytes })
		case proxies[m.To] && !m.Retransmission && !m.Received.IsZero() && !strings.ContainsAny(m.Type[:1], "0123456789"):
			bump("SIP "+m.Type, func(c *CounterCheck) { c.Recorded++ })
		}
	}
	for node, snap := range r.PerNode {
		for k, v := range snap {
			if name, ok := strings.CutPrefix(k, "mh.out.bytes."); ok {
				bump(name, func(c *CounterCheck) { c.CountedBytes += int(v) })
			} else if name, ok := strings.CutPrefix(k, "mh.out."); ok {
				bump(name, func(c *CounterCheck) { c.Counted += int(v) })
			}
			if !proxies[node] {
				continue
			}
			if k == "sip.proxy.register" {
				bump("SIP REGISTER", func(c *CounterCheck) { c.Counted += int(v) })
			} else if method, ok := strings.CutPrefix(k, "sip.proxy.request."); ok {
				bump("SIP "+strings.ToUpper(method), func(c *CounterCheck) { c.Counted += int(v) })
			}
		}
	}
}

// paths reconstructs the path of one RTP packet each way, just before the
// first move and just before the end.
func (r *Result) paths(t *tracer, inviteAt time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// SSRC of each direction, from what each mobile node sent.
	ssrcOf := map[string]uint32{}
	for _, s := range t.rtp {
		if s.dir == overlay.Out && (s.node == "mn1" || s.node == "mn2") {
			if _, ok := ssrcOf[s.node]; !ok {
				ssrcOf[s.node] = s.ssrc
			}
		}
	}
	sample := func(before time.Time) []PathSample {
		var out []PathSample
		for _, dir := range [][2]string{{"mn1", "mn2"}, {"mn2", "mn1"}} {
			ssrc, ok := ssrcOf[dir[0]]
			if !ok {
				continue
			}
			// The last packet the sender sent at least 300 ms before the
			// mark that reached the receiver: under loss the very last
			// one may not have, and a path is shown only as observed
			// end to end.
			var sent []rtpSeen
			for _, s := range t.rtp {
				if s.node == dir[0] && s.dir == overlay.Out && s.ssrc == ssrc && s.at.Before(before.Add(-300*time.Millisecond)) {
					sent = append(sent, s)
				}
			}
			for i := len(sent) - 1; i >= 0 && i >= len(sent)-100; i-- {
				if p, ok := t.pathOf(sent[i], dir); ok {
					out = append(out, p)
					break
				}
			}
		}
		return out
	}
	if len(r.Handovers) > 0 {
		r.PathBefore = sample(r.Handovers[0].At)
	}
	r.PathAfter = sample(r.End.Add(-200 * time.Millisecond))
}

// pathOf follows one sent RTP packet through the nodes that saw it, and
// reports false unless it reached dir's receiver.
func (t *tracer) pathOf(sent rtpSeen, dir [2]string) (PathSample, bool) {
	p := PathSample{Direction: dir[0] + " -> " + dir[1], Hops: []string{dir[0]}}
	var seen []rtpSeen
	for _, s := range t.rtp {
		if s.ssrc == sent.ssrc && s.seq == sent.seq && s.dir == overlay.In && !s.at.Before(sent.at) && s.at.Sub(sent.at) < 2*time.Second {
			seen = append(seen, s)
		}
	}
	sort.Slice(seen, func(i, j int) bool { return seen[i].at.Before(seen[j].at) })
	for _, s := range seen {
		p.Hops = append(p.Hops, s.node)
		if s.tunnelled {
			p.Tunnelled = true
		}
		if s.node == dir[1] {
			p.DelayMs = ms(s.at.Sub(sent.at))
			return p, true
		}
	}
	return p, false
}

// lanes orders the nodes for the sequence diagrams: MN1, its routers, the
// home agents, MN2's routers, MN2.
func lanes(topo *config.Topology, msgs []Message) []string {
	used := map[string]bool{"mn1": true, "mn2": true, "ha1": true, "ha2": true}
	for _, m := range msgs {
		used[m.From] = true
		used[m.To] = true
		for _, h := range m.Via {
			used[h.Node] = true
		}
	}
	var out []string
	pref := []string{"mn1", "ar1", "ar1p", "ar3", "home1", "ha1", "ha2", "ar2", "mn2", "cn", "cr"}
	seen := map[string]bool{}
	for _, n := range pref {
		if used[n] && topo.NodeByName(n) != nil {
			out = append(out, n)
			seen[n] = true
		}
	}
	for _, n := range topo.Nodes {
		if used[n.Name] && !seen[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}
