package lab

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/internal/testenv"
	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/mobility"
	"github.com/ha2r/mip6testbed/mobility/mh"
	"github.com/ha2r/mip6testbed/overlay"
	"github.com/ha2r/mip6testbed/softphone"
)

// The randomized walk: a mobile node moves over every access link of fig4,
// its home link included, with random dwell times (some shorter than a
// round trip to its home agent), under random loss, while its home agent
// and an access router restart at random moments, with a call, pings to its
// home address and TCP streams running throughout. After every move that
// it dwells on, the invariants must hold within a bound derived from the
// timers and the loss (bound); at the end,
// no state may be left behind. A failing run prints its seed and its moves:
//
//	go test ./lab -run TestRandomWalk -walk.seed N
//
// replays it. scripts/soak.sh runs seed after seed for as long as asked.
var (
	walkSeed  = flag.Uint64("walk.seed", 0, "run the randomized walk with this seed only")
	walkMoves = flag.Int("walk.moves", 8, "moves per randomized walk")
	walkSoak  = flag.Duration("walk.soak", 0, "run randomized walks, seed after seed, for this long")
)

// The walk's loss L, drawn from [0, 10 %), is the one-way loss of a path of
// pathHops hops (host, router, router, host). Every hop loses frames on its
// own with perHopLoss(L), so that a longer path (a tunnel through a home
// agent, four hops) loses more than a shorter one, as it would.
const pathHops = 3

func perHopLoss(l float64) float64 { return 1 - math.Pow(1-l, 1.0/pathHops) }

// recoveryTail is the chance a correct node may miss recoveryBound: once in
// a hundred thousand moves.
const recoveryTail = 1e-5

// recoveryBound is how long after a move the home address must answer and
// media flow again, derived from the timers at per-hop loss p. The node
// must attach (a Router Solicitation and its Advertisement, two hops, sent
// at 0, 50, 150, 350, 550, 750 ms and then every 2 s by overlay.Host) and
// register at its home agent (a Binding Update and its Acknowledgement,
// four hops, retransmitted after 1.5 s and then twice as long each time up
// to 32 s, RFC 6275 11.8). Each exchange is allowed as many attempts as it
// needs to succeed but with probability recoveryTail; 3 s more cover the
// new router's neighbour resolution when the node's unsolicited Neighbor
// Advertisement is lost (RFC 4861 7.2, three solicitations a second apart).
func recoveryBound(p float64) time.Duration {
	attempts := func(hops int) int {
		q := 1 - math.Pow(1-p, float64(hops)) // one attempt fails
		n := 1
		for math.Pow(q, float64(n)) > recoveryTail {
			n++
		}
		return n
	}
	rs := []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 350 * time.Millisecond, 550 * time.Millisecond, 750 * time.Millisecond}
	n := attempts(2)
	for len(rs) < n {
		rs = append(rs, rs[len(rs)-1]+2*time.Second)
	}
	bound := rs[n-1] + 3*time.Second
	wait := mobility.InitialHomeBindack
	for range attempts(4) - 1 {
		bound += wait
		wait = min(2*wait, mobility.MaxBindackTimeout)
	}
	return bound
}

// tcpMaxRTO is the userspace stack's longest TCP retransmission timeout.
const tcpMaxRTO = 60 * time.Second

func TestRandomWalk(t *testing.T) {
	seeds := []uint64{1, 2}
	if *walkSeed != 0 {
		seeds = []uint64{*walkSeed}
	}
	if *walkSoak > 0 {
		soak(t, *walkSoak)
		return
	}
	var runs []walkRun
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		for _, seed := range seeds {
			runs = append(runs, walkRun{scheme, seed})
		}
	}
	walkGroup(t, "walks", runs)
}

type walkRun struct {
	scheme config.Scheme
	seed   uint64
}

// walkGroup runs walks side by side (each mostly waits on timers), each in
// a lab of its own, and then checks that their goroutines all ended. It
// returns their figures and whether all passed.
func walkGroup(t *testing.T, name string, runs []walkRun) ([]walkStats, bool) {
	goroutines := runtime.NumGoroutine()
	var mu sync.Mutex
	var all []walkStats
	ok := t.Run(name, func(t *testing.T) {
		for _, r := range runs {
			t.Run(fmt.Sprintf("%s/seed=%d", r.scheme, r.seed), func(t *testing.T) {
				t.Parallel()
				st := runWalk(t, r.scheme, r.seed, *walkMoves)
				t.Logf("%s", st)
				mu.Lock()
				all = append(all, st)
				mu.Unlock()
			})
		}
	})
	testenv.WaitFor(t, 10*time.Second, "the labs' goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutines+5 })
	return all, ok
}

// walkStats summarises a walk for the soak.
type walkStats struct {
	scheme        config.Scheme
	seed          uint64
	loss          float64
	moves         int
	settled       int
	restarts      int
	worstRecovery time.Duration
	recoveries    []time.Duration // per settled move
	bound         time.Duration   // recoveryBound at the walk's loss
	mediaLost     []int           // per settled move, RTP packets lost around it (both directions)
}

func (s walkStats) String() string {
	lost := 0
	for _, n := range s.mediaLost {
		lost += n
	}
	per := 0.0
	if len(s.mediaLost) > 0 {
		per = float64(lost) / float64(len(s.mediaLost))
	}
	return fmt.Sprintf("%s seed %d: loss %.1f %% per path, %d moves (%d settled), %d restarts, worst recovery %v (bound %v), %.1f RTP packets lost per move",
		s.scheme, s.seed, 100*s.loss, s.moves, s.settled, s.restarts, s.worstRecovery.Round(time.Millisecond), s.bound, per)
}

// soak runs a walk of each scheme side by side, seed after seed, for d.
func soak(t *testing.T, d time.Duration) {
	end := time.Now().Add(d)
	var all []walkStats
	for seed := uint64(1000); time.Now().Before(end); seed++ {
		st, ok := walkGroup(t, fmt.Sprintf("seed=%d", seed), []walkRun{{config.SchemeStandard, seed}, {config.SchemeHA2R, seed}})
		all = append(all, st...)
		if !ok {
			return
		}
	}
	for _, scheme := range []config.Scheme{config.SchemeStandard, config.SchemeHA2R} {
		var moves, settled, restarts, lost, walks int
		var worst time.Duration
		var rec []time.Duration
		for _, s := range all {
			if s.scheme != scheme {
				continue
			}
			walks++
			moves += s.moves
			settled += s.settled
			restarts += s.restarts
			worst = max(worst, s.worstRecovery)
			rec = append(rec, s.recoveries...)
			for _, n := range s.mediaLost {
				lost += n
			}
		}
		slices.Sort(rec)
		pct := func(q float64) time.Duration {
			if len(rec) == 0 {
				return 0
			}
			return rec[min(len(rec)-1, int(q*float64(len(rec))))].Round(time.Millisecond)
		}
		t.Logf("soak %s: %d walks, %d moves (%d settled), %d restarts; recovery median %v, 95th percentile %v, worst %v; %.1f RTP packets lost per settled move",
			scheme, walks, moves, settled, restarts, pct(0.5), pct(0.95), worst.Round(time.Millisecond), float64(lost)/float64(max(settled, 1)))
	}
}

// prober pings a node's home address from another node, again and again,
// and remembers when an answer last came.
type prober struct {
	last atomic.Int64 // unix nanoseconds of the last answer
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func startProber(l *Lab, from string, dst netip.Addr) *prober {
	p := &prober{stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if _, err := l.Userspace(from).Ping(ctx, netip.Addr{}, dst, []byte("walk")); err == nil {
				p.last.Store(time.Now().UnixNano())
			}
			cancel()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *prober) answeredSince(t time.Time) bool { return p.last.Load() > t.UnixNano() }

func (p *prober) close() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// stream is a TCP stream opened on one of the mobile node's addresses.
type stream struct {
	src netip.Addr
	x   *tcpTransfer
}

func runWalk(t *testing.T, scheme config.Scheme, seed uint64, moves int) (st walkStats) {
	st = walkStats{scheme: scheme, seed: seed}
	rng := rand.New(rand.NewPCG(seed, seed^0x6d697036))
	var log []string
	defer func() {
		if t.Failed() {
			t.Logf("replay with: go test ./lab -run 'TestRandomWalk//%s' -walk.seed %d -walk.moves %d\nmoves: %s",
				scheme, seed, moves, strings.Join(log, ", "))
		}
	}()
	events := &eventRing{}
	topo, err := config.Load("../examples/fig4.yaml")
	if err != nil {
		t.Fatal(err)
	}
	UseScheme(topo, scheme)
	l := startTopo(t, topo, Options{Seed: seed})
	for _, n := range []string{"mn1", "ha1"} {
		l.Node(n).Mobility.Signals.SetRecorder(events.add)
	}
	trace := traceMH(l)
	hoa1 := topo.NodeByName("mn1").HomeAddress
	for _, mn := range []string{"mn1", "mn2"} {
		waitCounter(t, l, mn, "mh.in.BA.home", 1, 10*time.Second)
		waitCounter(t, l, mn, "sip.registered", 1, 10*time.Second)
		if scheme == config.SchemeHA2R {
			waitCounter(t, l, mn, "mnauth.completed", 1, 10*time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	call, err := l.Node("mn1").SIP.Phone.Call(ctx, sip.Uri{User: "user2", Host: "domain2"}, softphone.CallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var far *softphone.Call
	for _, c := range l.Node("mn2").SIP.Phone.Calls() {
		far = c
	}
	if far == nil {
		t.Fatal("mn2 has no call")
	}
	st.loss = rng.Float64() * 0.10
	perHop := perHopLoss(st.loss)
	l.SetLoss(perHop)
	bound := recoveryBound(perHop)
	st.bound = bound
	log = append(log, fmt.Sprintf("loss %.3f (%.4f per hop, bound %v)", st.loss, perHop, bound))
	fromCN := startProber(l, "cn", hoa1)
	fromMN2 := startProber(l, "mn2", hoa1)
	defer fromCN.close()
	defer fromMN2.close()
	// mn2's address for the streams: its care-of address in the paper's
	// scheme, its home address in the standard one (where applications
	// never see a care-of address).
	dst2 := addrOf(t, l, "mn2")
	if scheme == config.SchemeStandard {
		dst2 = topo.NodeByName("mn2").HomeAddress
	}
	port := uint16(6000)
	var streams []stream
	open := func(src netip.Addr) {
		port++
		streams = append(streams, stream{src: src, x: startTCPTransferFrom(t, l, "mn1", src, "mn2", netip.AddrPortFrom(dst2, port), 8<<20, 20<<10)})
	}
	// alive fails the test if a stream was reset: TCP under the walk's
	// loss may stall for a while (its retransmission timer backs off), but
	// a move must never break it.
	alive := func() {
		t.Helper()
		for _, s := range streams {
			select {
			case err := <-s.x.done:
				t.Fatalf("the TCP stream from %s ended: %v", s.src, err)
			default:
			}
		}
	}
	if scheme == config.SchemeStandard {
		open(hoa1)
	} else {
		open(addrOf(t, l, "mn1"))
	}
	links := []string{}
	for _, a := range topo.NodeByName("mn1").Access {
		links = append(links, a.Link)
	}
	for i := range moves {
		link := links[rng.IntN(len(links))]
		short := rng.IntN(5) == 0
		dwell := time.Duration(rng.Int64N(int64(30 * time.Millisecond)))
		if !short {
			dwell = 300*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))
		}
		restart := ""
		switch r := rng.IntN(10); {
		case r == 0:
			restart = "ha1"
		case r == 1:
			restart = []string{"ar1", "ar1p", "ar3"}[rng.IntN(3)]
		}
		log = append(log, fmt.Sprintf("%d:%s/%v/%s", i, link, dwell.Round(time.Millisecond), restart))
		st.moves++
		before := mediaCounts(call, far)
		moved := time.Now()
		if err := l.Node("mn1").Handover(link); err != nil {
			t.Fatal(err)
		}
		if restart != "" {
			st.restarts++
			if err := l.Restart(ctx, restart, true); err != nil {
				t.Fatalf("restarting %s: %v", restart, err)
			}
		}
		if short {
			testenv.WaitFor(t, dwell+time.Millisecond, "a short dwell", func() bool { return time.Since(moved) >= dwell })
			continue
		}
		// The invariants, within the bound.
		if !eventually(bound, func() bool { return fromCN.answeredSince(moved) && fromMN2.answeredSince(moved) }) {
			dumpWalk(t, l)
			events.dump(t)
			trace.dump(t)
			t.Fatalf("mn1 on %s: its home address was not answered from both within %v (cn: %v, mn2: %v)", link, bound,
				fromCN.answeredSince(moved), fromMN2.answeredSince(moved))
		}
		if !eventually(bound, func() bool {
			now := mediaCounts(call, far)
			return now.mn1Got >= before.mn1Got+10 && now.mn2Got >= before.mn2Got+10
		}) {
			dumpWalk(t, l)
			events.dump(t)
			t.Fatalf("mn1 on %s: media did not flow both ways within %v", link, bound)
		}
		recovered := time.Since(moved)
		st.worstRecovery = max(st.worstRecovery, recovered)
		st.recoveries = append(st.recoveries, recovered)
		alive()
		// A new stream on the new care-of address, once authenticated.
		if c := l.Node("mn1").Mobility.MobileNode.Contact(); scheme == config.SchemeHA2R && c != hoa1 &&
			!slices.ContainsFunc(streams, func(s stream) bool { return s.src == c }) {
			open(c)
		}
		st.settled++
		// Wait for a dwell's worth of steady state before moving on, and
		// count what the move cost the call.
		testenv.WaitFor(t, dwell+bound, "the dwell", func() bool { return time.Since(moved) >= dwell })
		after := mediaCounts(call, far)
		st.mediaLost = append(st.mediaLost, after.lostSince(before))
	}
	fromCN.close()
	fromMN2.close()
	call.Hangup(ctx)
	l.SetLoss(0)

	// Without loss, every stream on an address that is still the node's
	// (anchored, or its home address) flows.
	alive()
	mine := map[netip.Addr]bool{hoa1: true}
	for _, a := range l.Node("mn1").Mobility.MobileNode.Status().Anchors {
		if a.State == "local" || a.State == "tunnelled" || a.State == "binding" {
			mine[a.CareOf] = true
		}
	}
	// A stream whose retransmission timer backed off under the walk's
	// loss resumes at its next retransmission: within TCP's longest
	// retransmission timeout (gVisor's is 60 s) once the path works.
	for _, s := range streams {
		if mine[s.src] {
			got := s.x.progress()
			start := time.Now()
			if !eventually(tcpMaxRTO+bound, func() bool { return s.x.progress() > got }) {
				dumpWalk(t, l)
				events.dump(t)
				t.Fatalf("the TCP stream from %s did not go on within %v", s.src, tcpMaxRTO+bound)
			}
			t.Logf("the TCP stream from %s resumed after %v", s.src, time.Since(start).Round(time.Millisecond))
		}
	}

	// Nothing left behind once the node settles: its home agent holds one
	// binding (none at home), every anchor an HA2R holds that tunnels is one
	// the node knows, no relayed authentication is waiting, and every frame
	// every router read was accounted for once.
	mn1 := l.Node("mn1").Mobility.MobileNode
	var left string // what is left behind, while something is
	if !eventually(bound, func() bool {
		left = ""
		known := map[netip.Addr]bool{}
		for _, a := range mn1.Status().Anchors {
			known[a.CareOf] = true
		}
		for _, r := range []string{"ar1", "ar1p", "ar3", "ar2"} {
			x := l.Node(r).Mobility.HA2R
			if req, _ := x.Pending(); req != 0 {
				left = fmt.Sprintf("%s has %d relayed authentications pending", r, req)
				return false
			}
			if r != "ar2" {
				for _, b := range x.Anchors().All() {
					// An authentication the node moved on from before its
					// reply came leaves an anchor it never heard of: one
					// that points at its own address (tunnels nothing) and
					// ends with its lifetime.
					orphan := b.CareOf == b.Home && time.Until(b.Expires) <= mobility.DefaultAnchorLifetime
					if !known[b.Home] && !orphan {
						left = fmt.Sprintf("%s anchors %s (to %s), which mn1 does not know", r, b.Home, b.CareOf)
						return false
					}
				}
			}
		}
		n := l.Node("ha1").Mobility.HomeAgent.Bindings().Len()
		if (n == 0) != mn1.Status().AtHome || n > 1 {
			left = fmt.Sprintf("ha1 holds %d bindings with mn1 at home: %v", n, mn1.Status().AtHome)
			return false
		}
		return true
	}) {
		dumpWalk(t, l)
		events.dump(t)
		trace.dump(t)
		t.Fatalf("the node's state did not settle within %v: %s", bound, left)
	}
	for _, name := range l.Names {
		m := l.Node(name).Metrics
		if u, twice := m.Get("frames.unsettled"), m.Get("frames.settled_twice"); u != 0 || twice != 0 {
			t.Errorf("%s: %d frames unaccounted for, %d twice", name, u, twice)
		}
	}
	l.Close()
	return st
}

// media is what the call's two ends counted.
type media struct{ mn1Got, mn2Got, mn1Sent, mn2Sent uint64 }

func mediaCounts(caller, callee *softphone.Call) media {
	a, b := caller.Report(), callee.Report()
	return media{mn1Got: a.PacketsReceived, mn2Got: b.PacketsReceived, mn1Sent: a.PacketsSent, mn2Sent: b.PacketsSent}
}

// lostSince is how many packets one end sent and the other did not get
// between two readings (emulated loss included).
func (m media) lostSince(before media) int {
	lost := int(m.mn2Sent-before.mn2Sent) - int(m.mn1Got-before.mn1Got) + int(m.mn1Sent-before.mn1Sent) - int(m.mn2Got-before.mn2Got)
	return max(lost, 0)
}

// dumpWalk logs what the walk's nodes hold, when an invariant fails.
func dumpWalk(t *testing.T, l *Lab) {
	t.Helper()
	st := l.Node("mn1").Mobility.MobileNode.Status()
	t.Logf("mn1: %+v", st)
	t.Logf("mn1 host: %+v", l.Node("mn1").Host.Status())
	t.Logf("ha1 bindings: %+v", l.Node("ha1").Mobility.HomeAgent.Bindings().All())
	t.Logf("cn bindings: %+v", l.Node("cn").Mobility.Correspondent.Correspondent().Bindings().All())
	t.Logf("mn2 bindings: %+v", l.Node("mn2").Mobility.MobileNode.Correspondent().Bindings().All())
	t.Logf("mn2: %+v", l.Node("mn2").Mobility.MobileNode.Status())
	for _, n := range []string{"mn1", "mn2", "ha1", "cn"} {
		t.Logf("%s counters: %v", n, l.Node(n).Metrics.Snapshot())
	}
	// Where the others dropped what they dropped.
	for _, n := range l.Names {
		drops := map[string]uint64{}
		for k, v := range l.Node(n).Metrics.Snapshot() {
			if strings.Contains(k, "drop") || strings.Contains(k, "unreach") || strings.Contains(k, "icmp") {
				drops[k] = v
			}
		}
		if len(drops) > 0 {
			t.Logf("%s drops: %v", n, drops)
		}
	}
}

// eventually reports whether cond held within d, looking every millisecond.
func eventually(d time.Duration, cond func() bool) bool {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// mhTrace is every node's view of the Mobility Header packets it received
// and sent (tunnelled ones included), for following one message along its
// path when a walk fails.
type mhTrace struct {
	mu    sync.Mutex
	lines []string
}

func traceMH(l *Lab) *mhTrace {
	tr := &mhTrace{}
	for _, name := range l.Names {
		l.Node(name).SetTap(func(d overlay.Direction, _ uint32, at time.Time, pkt []byte) {
			inner, outer := pkt, ""
			if len(pkt) > 2*ip6.HeaderLen && ip6.Header(pkt).NextHeader() == ip6.ProtoIPv6 {
				outer = fmt.Sprintf(" (tunnel %s > %s)", ip6.Header(pkt).Src(), ip6.Header(pkt).Dst())
				inner = pkt[ip6.HeaderLen:]
			}
			var c ip6.Chain
			if ip6.Walk(inner, &c) != nil || c.Upper != ip6.ProtoMH || c.UpperOff+3 > len(inner) {
				return
			}
			var m mh.Message
			typ := fmt.Sprintf("MH%d", inner[c.UpperOff+2])
			if mh.Parse(inner[c.UpperOff:], &m) == nil {
				typ = fmt.Sprintf("%s seq %d", mobility.MsgName(&m, false), m.Sequence)
			}
			line := fmt.Sprintf("%s %s %s %s %s > %s%s", at.Format("15:04:05.000"), name, d, typ,
				ip6.Header(inner).Src(), ip6.Header(inner).Dst(), outer)
			tr.mu.Lock()
			tr.lines = append(tr.lines, line)
			if len(tr.lines) > 400 {
				tr.lines = tr.lines[len(tr.lines)-400:]
			}
			tr.mu.Unlock()
		})
	}
	return tr
}

func (tr *mhTrace) dump(t *testing.T) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t.Logf("Mobility Header packets, as each node saw them:\n%s", strings.Join(tr.lines, "\n"))
}

// eventRing keeps the last signalling events, for a failing walk's report.
type eventRing struct {
	mu  sync.Mutex
	evs []mobility.SignalEvent
}

func (r *eventRing) add(e mobility.SignalEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
	if len(r.evs) > 80 {
		r.evs = r.evs[len(r.evs)-80:]
	}
}

func (r *eventRing) dump(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.evs {
		fmt.Fprintf(&b, "%s %s %s %s %s -> %s\n", e.At.Format("15:04:05.000"), e.Node, e.Dir, e.Msg, e.Src, e.Dst)
	}
	t.Logf("last signalling:\n%s", b.String())
}
