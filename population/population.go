// Package population runs many mobile nodes in one lab, with a seeded
// random pattern of moves and calls, and measures what the population
// costs the routers (signalling per second at each home agent and HA2R,
// anchors held) and what its calls got (setup, loss, MOS), per scheme.
package population

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/lab"
	"github.com/ha2r/mip6testbed/softphone"
)

// Options describe a population run.
type Options struct {
	MNs     int // mobile nodes, half homed at each of two home agents
	Routers int // access routers (HA2Rs in the paper's scheme), in a ring
	Schemes []config.Scheme
	// Duration is how long the pattern runs once every node registered.
	Duration time.Duration
	// MoveEvery and CallEvery are each node's mean time between moves and
	// between calls it places (exponential); Talk is a call's length.
	MoveEvery, CallEvery, Talk time.Duration
	Seed                       uint64
	Progress                   func(string)
}

// Defaults are a population of 200 that moves every 30 s and calls every
// 60 s for 10 s, over a minute.
func Defaults() Options {
	return Options{MNs: 200, Routers: 8, Schemes: []config.Scheme{config.SchemeStandard, config.SchemeHA2R}, Duration: time.Minute,
		MoveEvery: 30 * time.Second, CallEvery: time.Minute, Talk: 10 * time.Second, Seed: 1}
}

// Topology writes the population's topology: home agents ha1 and ha2 with
// their home links, access routers ar1..arN on a ring of neighbours, and
// mobile nodes mn1..mnM, each able to attach to every access link.
func Topology(o Options, scheme config.Scheme) (*config.Topology, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "name: population\nscheme: %s\nha2r_key_seed: hex:5d2b8e41c7a9f3061e4d7b2a9c5f8e31d6a4b7c2e9f1038a5b6c7d8e9f0a1b2c\n", scheme)
	b.WriteString("links:\n")
	for h := 1; h <= 2; h++ {
		fmt.Fprintf(&b, "  - {name: home%d, prefix: \"2001:db8:%x::/64\", router: ha%d, delay: 1ms}\n", h, h, h)
	}
	for r := 1; r <= o.Routers; r++ {
		fmt.Fprintf(&b, "  - {name: ar%d, prefix: \"2001:db8:1%02x::/64\", router: ar%d, delay: 3ms}\n", r, r, r)
	}
	b.WriteString("nodes:\n")
	for h := 1; h <= 2; h++ {
		fmt.Fprintf(&b, "  - {name: ha%d, role: ha, underlay: \"127.0.0.1:%d\", sip_domain: domain%d}\n", h, 40000+h, h)
	}
	for r := 1; r <= o.Routers; r++ {
		fmt.Fprintf(&b, "  - {name: ar%d, role: ar, underlay: \"127.0.0.1:%d\", ha2r: true}\n", r, 40100+r)
	}
	for m := 1; m <= o.MNs; m++ {
		h := 1 + (m-1)%2
		fmt.Fprintf(&b, "  - name: mn%d\n    role: mn\n    home_agent: ha%d\n    home_address: \"2001:db8:%x::%x\"\n    sip_uri: \"sip:user%d@domain%d\"\n",
			m, h, h, 0x100+m, m, h)
		fmt.Fprintf(&b, "    mn_ha_key: {spi: %d, secret: \"hex:%016x%016x\"}\n    start: ar%d\n    access:\n", 1000+m,
			uint64(m)*0x9e3779b97f4a7c15+0x0123456789abcdef, uint64(m)*0xc2b2ae3d27d4eb4f+0x165667b19e3779f9, 1+(m-1)%o.Routers)
		for r := 1; r <= o.Routers; r++ {
			fmt.Fprintf(&b, "      - {link: ar%d}\n", r)
		}
	}
	b.WriteString("backbone:\n  delay: 10ms\n  pairs:\n")
	for r := 1; r <= o.Routers; r++ {
		fmt.Fprintf(&b, "    - {from: [ar%d], to: [ar%d], delay: 2ms}\n", r, 1+r%o.Routers)
	}
	return config.Parse("population.yaml", []byte(b.String()))
}

// Result is what one scheme's population did.
type Result struct {
	Scheme        config.Scheme `json:"scheme"`
	MNs           int           `json:"mobile_nodes"`
	AccessRouters int           `json:"access_routers"`
	Ready         time.Duration `json:"ready_ns"`    // start until every node was registered (mobility and SIP)
	Duration      time.Duration `json:"duration_ns"` // the pattern's run
	Moves         int           `json:"moves"`
	// MovesFailed are moves whose attachment did not complete in 10 s.
	MovesFailed int `json:"moves_failed"`
	Calls       int `json:"calls"`
	CallsSetUp  int `json:"calls_set_up"`
	// MOS and LossPercent are the 5th, 50th and 95th percentiles over both
	// ends of every call set up.
	MOS         [3]float64   `json:"mos_p5_p50_p95"`
	LossPercent [3]float64   `json:"loss_percent_p5_p50_p95"`
	Loads       []RouterLoad `json:"routers"`
	// CPUSeconds is the process's CPU time over the pattern (user+system,
	// every node together: they share one process); HeapMB the live Go
	// heap at the end, every node still up.
	CPUSeconds float64 `json:"cpu_seconds"`
	HeapMB     float64 `json:"heap_mb"`
	// RSSMB is the process's resident memory at the end (Linux; 0
	// elsewhere): the heap counts receive buffers the kernel never had to
	// back, this does not.
	RSSMB float64 `json:"rss_mb"`
}

// RouterLoad is one router's signalling over the pattern.
type RouterLoad struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Mobility Header messages and bytes in and out, per second.
	MHPerSec      float64 `json:"mh_messages_per_s"`
	MHBytesPerSec float64 `json:"mh_bytes_per_s"`
	// SIP requests the proxy handled per second (home agents).
	SIPPerSec float64 `json:"sip_requests_per_s"`
	// Bindings (home agents) or anchors (HA2Rs) held at the end.
	Held int `json:"bindings_or_anchors"`
}

// Run runs the population once per scheme.
func Run(ctx context.Context, o Options) ([]Result, error) {
	var out []Result
	for _, s := range o.Schemes {
		r, err := runScheme(ctx, o, s)
		if err != nil {
			return out, fmt.Errorf("population, %s: %w", s, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (o Options) say(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

func runScheme(ctx context.Context, o Options, scheme config.Scheme) (Result, error) {
	res := Result{Scheme: scheme, MNs: o.MNs, AccessRouters: o.Routers}
	topo, err := Topology(o, scheme)
	if err != nil {
		return res, err
	}
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	l, err := lab.Start(sctx, topo, lab.Options{Seed: o.Seed})
	cancel()
	if err != nil {
		return res, err
	}
	defer l.Close()
	mns := make([]string, o.MNs)
	for i := range mns {
		mns[i] = fmt.Sprintf("mn%d", i+1)
	}
	if err := waitAll(ctx, l, mns, 3*time.Minute); err != nil {
		return res, err
	}
	res.Ready = time.Since(start)
	o.say("%s: %d mobile nodes registered in %v", scheme, o.MNs, res.Ready.Round(time.Millisecond))

	before := routerCounters(l)
	cpu0 := cpuTime()
	t0 := time.Now()
	p := &pattern{o: o, l: l, mns: mns, rng: rand.New(rand.NewPCG(o.Seed, uint64(len(scheme)))), busy: map[string]bool{},
		moving: map[string]bool{}}
	p.run(ctx)
	res.Duration = time.Since(t0)
	res.CPUSeconds = (cpuTime() - cpu0).Seconds()
	after := routerCounters(l)
	secs := res.Duration.Seconds()
	for _, name := range l.Names {
		n := l.Node(name)
		if !n.Cfg.Role.IsRouter() {
			continue
		}
		d := func(k string) float64 { return float64(after[name][k] - before[name][k]) }
		rl := RouterLoad{Name: name, Role: string(n.Cfg.Role)}
		var msgs, bytes float64
		for k := range after[name] {
			switch {
			case strings.HasPrefix(k, "mh.in.bytes.") || strings.HasPrefix(k, "mh.out.bytes."):
				bytes += d(k)
			case strings.HasPrefix(k, "mh.in.") || strings.HasPrefix(k, "mh.out."):
				msgs += d(k)
			case strings.HasPrefix(k, "sip.proxy.request."):
				rl.SIPPerSec += d(k)
			}
		}
		rl.MHPerSec, rl.MHBytesPerSec, rl.SIPPerSec = msgs/secs, bytes/secs, rl.SIPPerSec/secs
		switch {
		case n.Mobility.HomeAgent != nil:
			rl.Held = len(n.Mobility.HomeAgent.Bindings().All())
		case n.Mobility.HA2R != nil:
			rl.Held = len(n.Mobility.HA2R.Anchors().All())
		}
		res.Loads = append(res.Loads, rl)
	}
	res.Moves, res.MovesFailed, res.Calls, res.CallsSetUp = p.moves, p.movesFailed, p.calls, p.setUp
	var mos, loss []float64
	for _, r := range p.reports {
		if r.PacketsReceived > 0 {
			mos = append(mos, r.MOS)
		}
		loss = append(loss, r.LossPercent)
	}
	res.MOS, res.LossPercent = percentiles(mos), percentiles(loss)
	var ms runtime.MemStats
	runtime.GC() // the live heap, not what awaits collection
	runtime.ReadMemStats(&ms)
	res.HeapMB = float64(ms.HeapAlloc) / (1 << 20)
	res.RSSMB = residentMB()
	return res, nil
}

// waitAll waits until every mobile node is registered with its home agent
// and its proxy.
func waitAll(ctx context.Context, l *lab.Lab, mns []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		missing := 0
		for _, name := range mns {
			n := l.Node(name)
			if n.Metrics.Get("mh.in.BA.home") == 0 || n.Metrics.Get("sip.registered") == 0 {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d mobile nodes not registered within %v", missing, len(mns), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func routerCounters(l *lab.Lab) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, name := range l.Names {
		if n := l.Node(name); n.Cfg.Role.IsRouter() {
			out[name] = n.Metrics.Snapshot()
		}
	}
	return out
}

// pattern drives the population's moves and calls.
type pattern struct {
	o   Options
	l   *lab.Lab
	mns []string
	rng *rand.Rand

	mu                 sync.Mutex
	busy               map[string]bool // in a call
	moving             map[string]bool // a move under way (one at a time per node)
	moves, movesFailed int
	calls, setUp       int
	reports            []softphone.Report
}

// run plays the pattern for o.Duration: events drawn in advance from the
// seed (a Poisson process of moves and one of calls over the whole
// population), each started in its own goroutine at its time; calls still
// running at the end are hung up.
func (p *pattern) run(ctx context.Context) {
	type event struct {
		at   time.Duration
		call bool
		who  int
	}
	var evs []event
	n := float64(len(p.mns))
	for _, kind := range []struct {
		call  bool
		every time.Duration
	}{{false, p.o.MoveEvery}, {true, p.o.CallEvery}} {
		if kind.every <= 0 {
			continue
		}
		rate := n / kind.every.Seconds() // events per second, population-wide
		for t := p.rng.ExpFloat64() / rate; t < p.o.Duration.Seconds(); t += p.rng.ExpFloat64() / rate {
			evs = append(evs, event{at: time.Duration(t * float64(time.Second)), call: kind.call, who: p.rng.IntN(len(p.mns))})
		}
	}
	slices.SortFunc(evs, func(a, b event) int { return int(a.at - b.at) })
	start := time.Now()
	var wg sync.WaitGroup
	for _, ev := range evs {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(start.Add(ev.at))):
		}
		name := p.mns[ev.who]
		if ev.call {
			callee := p.mns[p.rng.IntN(len(p.mns))]
			wg.Add(1)
			go func() { defer wg.Done(); p.call(ctx, name, callee) }()
		} else {
			link := fmt.Sprintf("ar%d", 1+p.rng.IntN(p.o.Routers))
			wg.Add(1)
			go func() { defer wg.Done(); p.move(ctx, name, link) }()
		}
	}
	wg.Wait()
}

func (p *pattern) move(ctx context.Context, name, link string) {
	n := p.l.Node(name)
	if cur, ok := n.Host.Current(); ok && cur.Link.Name == link {
		return // already there
	}
	p.mu.Lock()
	if p.moving[name] {
		p.mu.Unlock()
		return // still on its way to the last one
	}
	p.moving[name] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.moving[name] = false
		p.mu.Unlock()
	}()
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.l.Handover(mctx, name, link)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.moves++
	if err != nil {
		p.movesFailed++
	}
}

func (p *pattern) call(ctx context.Context, caller, callee string) {
	p.mu.Lock()
	if caller == callee || p.busy[caller] || p.busy[callee] {
		p.mu.Unlock()
		return
	}
	p.busy[caller], p.busy[callee] = true, true
	p.calls++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.busy[caller], p.busy[callee] = false, false
		p.mu.Unlock()
	}()
	uri := p.l.Topo.NodeByName(callee).SIPURI
	target := sip.Uri{}
	if err := sip.ParseUri(uri, &target); err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 2*64*sip.T1)
	c, err := p.l.Node(caller).SIP.Phone.Call(cctx, target, softphone.CallOptions{})
	cancel()
	if err != nil {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(p.o.Talk):
	}
	far := findCall(p.l.Node(callee).SIP.Phone, c.ID)
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	r := c.Hangup(hctx)
	hcancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setUp++
	p.reports = append(p.reports, r)
	if far != nil {
		p.reports = append(p.reports, far.Report())
	}
}

func findCall(ph *softphone.Phone, id string) *softphone.Call {
	for _, c := range ph.Calls() {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// percentiles returns the 5th, 50th and 95th percentile (nearest rank).
func percentiles(xs []float64) [3]float64 {
	if len(xs) == 0 {
		return [3]float64{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return [3]float64{at(0.05), at(0.5), at(0.95)}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// residentMB reads the process's resident set size from /proc (Linux).
func residentMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
