package sweep

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/report"
)

// Param is a demo setting a grid varies.
type Param struct {
	Name string // as written after --vary
	Unit string // of its values: "ms", "%" or "" (a count)
	// set applies value (in Unit) to the demo's options.
	set func(o *demo.Options, v float64)
}

// Params are the settings `node sweep --vary` knows.
var Params = []Param{
	{"backbone-delay", "ms", func(o *demo.Options, v float64) { o.BackboneDelay = msDuration(v) }},
	{"ha-delay", "ms", func(o *demo.Options, v float64) { o.HADelay = msDuration(v) }},
	{"neighbour-delay", "ms", func(o *demo.Options, v float64) { o.NeighbourDelay = msDuration(v) }},
	{"access-delay", "ms", func(o *demo.Options, v float64) { o.AccessDelay = msDuration(v) }},
	{"loss", "%", func(o *demo.Options, v float64) { o.Loss = v / 100 }},
	{"moves", "", func(o *demo.Options, v float64) { o.Moves = int(v) }},
}

func msDuration(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// Vary is one parameter and the values it takes.
type Vary struct {
	Param  Param
	Values []float64
}

// ParseVary reads NAME=FROM..TO[/STEP] (durations with their unit, like
// backbone-delay=5ms..50ms/5ms; loss in percent; moves as a count), or
// NAME=V1,V2,V3. Without a step, moves go by 1 and the others take five
// values from FROM to TO.
func ParseVary(s string) (Vary, error) {
	name, spec, ok := strings.Cut(s, "=")
	var p *Param
	for i := range Params {
		if Params[i].Name == name {
			p = &Params[i]
		}
	}
	if !ok || p == nil {
		names := make([]string, len(Params))
		for i, q := range Params {
			names[i] = q.Name
		}
		return Vary{}, fmt.Errorf("--vary %q: write NAME=FROM..TO[/STEP] with NAME one of %s", s, strings.Join(names, ", "))
	}
	v := Vary{Param: *p}
	value := func(x string) (float64, error) {
		x = strings.TrimSpace(x)
		if p.Unit == "ms" {
			d, err := time.ParseDuration(x)
			if err != nil {
				return 0, fmt.Errorf("--vary %s: %q is not a duration like 5ms", name, x)
			}
			return float64(d) / float64(time.Millisecond), nil
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(x, "%"), 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("--vary %s: %q is not a number", name, x)
		}
		return f, nil
	}
	if strings.Contains(spec, "..") {
		rng, stepS, hasStep := strings.Cut(spec, "/")
		fromS, toS, _ := strings.Cut(rng, "..")
		from, err := value(fromS)
		if err != nil {
			return v, err
		}
		to, err := value(toS)
		if err != nil {
			return v, err
		}
		if to < from {
			return v, fmt.Errorf("--vary %s: %s is below %s", name, toS, fromS)
		}
		step := (to - from) / 4
		if p.Unit == "" {
			step = 1
		}
		if hasStep {
			if step, err = value(stepS); err != nil {
				return v, err
			}
		}
		if step <= 0 && to > from {
			return v, fmt.Errorf("--vary %s: the step must be positive", name)
		}
		for x := from; x <= to+step*1e-9; x += step {
			v.Values = append(v.Values, math.Round(x*1e6)/1e6)
			if step == 0 {
				break
			}
		}
	} else {
		for _, x := range strings.Split(spec, ",") {
			f, err := value(x)
			if err != nil {
				return v, err
			}
			v.Values = append(v.Values, f)
		}
	}
	if len(v.Values) == 0 || len(v.Values) > 50 {
		return v, fmt.Errorf("--vary %s: %d values; give 1 to 50", name, len(v.Values))
	}
	if p.Name == "moves" {
		for _, x := range v.Values {
			if x != math.Trunc(x) || x > 20 {
				return v, fmt.Errorf("--vary moves: %v is not a whole number of moves from 0 to 20", x)
			}
		}
	}
	if p.Name == "loss" && v.Values[len(v.Values)-1] > 50 {
		return v, fmt.Errorf("--vary loss: use percentages up to 50")
	}
	return v, nil
}

// GridOptions describe a sweep of the demo's scenario.
type GridOptions struct {
	Base demo.Options // the scenario; its Seed is the first run's
	Vary Vary
	Runs int
	// Progress, if set, hears of each run.
	Progress func(value float64, scheme config.Scheme, run int)
}

// Sample is what one run of one scheme measured at one value.
type Sample struct {
	Value  float64       `json:"value"`
	Scheme config.Scheme `json:"scheme"`
	Run    int           `json:"run"`
	Seed   uint64        `json:"seed"`
	// GapMs is the first handover's media gap, the longer of the two
	// directions (NaN without a move).
	GapMs float64 `json:"handover_gap_ms"`
	// Stretch is the one-way media delay MN2 -> MN1 after the last move
	// over the one before the first (NaN without both).
	Stretch float64 `json:"path_stretch"`
	// DirectMs is the INVITE to the first media on the direct path, the
	// later of MN1 and MN2 (NaN if none came).
	DirectMs float64 `json:"invite_to_direct_media_ms"`
	// Messages is the signalling of the call: session setup, its moves
	// and teardown, mobility and SIP (attachment excluded).
	Messages int `json:"messages_per_call"`
	// Lost is the share of media lost, both ways.
	LostPercent float64 `json:"media_lost_percent"`
}

// Grid runs the demo's scenario for every value, scheme and run.
func Grid(ctx context.Context, o GridOptions) ([]Sample, error) {
	if o.Runs < 1 {
		o.Runs = 1
	}
	var out []Sample
	for _, v := range o.Vary.Values {
		for run := range o.Runs {
			do := o.Base
			do.Seed = o.Base.Seed + uint64(run)
			do.Progress = nil
			o.Vary.Param.set(&do, v)
			for _, scheme := range o.Base.Schemes {
				if o.Progress != nil {
					o.Progress(v, scheme, run)
				}
				do.Schemes = []config.Scheme{scheme}
				rs, err := demo.Run(ctx, do)
				if err != nil {
					return out, fmt.Errorf("sweep: %s=%v, %s, run %d: %w", o.Vary.Param.Name, v, scheme, run+1, err)
				}
				out = append(out, sampleOf(rs[0], v, run, do.Seed))
			}
		}
	}
	return out, nil
}

func sampleOf(r *demo.Result, v float64, run int, seed uint64) Sample {
	s := Sample{Value: v, Scheme: config.Scheme(r.Scheme), Run: run, Seed: seed, GapMs: math.NaN(), Stretch: math.NaN(), DirectMs: math.NaN()}
	if len(r.Handovers) > 0 {
		s.GapMs = math.Max(r.Handovers[0].GapToMN1, r.Handovers[0].GapToMN2)
	}
	before, after := pathDelay(r.PathBefore, "mn2 -> mn1"), pathDelay(r.PathAfter, "mn2 -> mn1")
	if len(r.Handovers) > 0 && before > 0 && after > 0 {
		s.Stretch = after / before
	}
	if a, b := r.InviteToDirect[0], r.InviteToDirect[1]; a >= 0 && b >= 0 {
		s.DirectMs = math.Max(a, b)
	}
	for _, p := range r.Phases {
		if p.Phase != demo.PhaseAttach {
			s.Messages += p.Messages
		}
	}
	var lost, expected float64
	for _, rep := range []struct{ lost, exp float64 }{
		{float64(max(r.Caller.PacketsLost, 0)), float64(r.Caller.PacketsExpected)},
		{float64(max(r.Callee.PacketsLost, 0)), float64(r.Callee.PacketsExpected)},
	} {
		lost += rep.lost
		expected += rep.exp
	}
	if expected > 0 {
		s.LostPercent = 100 * lost / expected
	}
	return s
}

func pathDelay(ps []demo.PathSample, dir string) float64 {
	for _, p := range ps {
		if p.Direction == dir {
			return p.DelayMs
		}
	}
	return 0
}

// Metric is one figure of the samples, for the plots and tables.
type Metric struct {
	Name, Unit string
	Of         func(Sample) float64
}

// Metrics are the figures a sweep plots against its parameter.
var Metrics = []Metric{
	{"handover gap", "ms", func(s Sample) float64 { return s.GapMs }},
	{"path stretch after the move", "delay after / before", func(s Sample) float64 { return s.Stretch }},
	{"INVITE to direct media", "ms", func(s Sample) float64 { return s.DirectMs }},
	{"signalling messages per call", "messages", func(s Sample) float64 { return float64(s.Messages) }},
	{"media lost", "%", func(s Sample) float64 { return s.LostPercent }},
}

// Summary is one metric of one scheme at one value over the runs.
type Summary struct {
	Value            float64
	Median, Min, Max float64
	N                int // runs that measured it
}

// Summarise gives, per scheme, the metric's median and range at each value
// (values where no run measured it are left out).
func Summarise(samples []Sample, m Metric, schemes []config.Scheme) map[config.Scheme][]Summary {
	out := map[config.Scheme][]Summary{}
	for _, scheme := range schemes {
		byValue := map[float64][]float64{}
		var values []float64
		for _, s := range samples {
			if s.Scheme != scheme {
				continue
			}
			if _, ok := byValue[s.Value]; !ok {
				values = append(values, s.Value)
			}
			if y := m.Of(s); !math.IsNaN(y) {
				byValue[s.Value] = append(byValue[s.Value], y)
			} else if byValue[s.Value] == nil {
				byValue[s.Value] = []float64{}
			}
		}
		slices.Sort(values)
		for _, v := range values {
			ys := byValue[v]
			if len(ys) == 0 {
				continue
			}
			slices.Sort(ys)
			out[scheme] = append(out[scheme], Summary{Value: v, Median: report.Median(ys), Min: ys[0], Max: ys[len(ys)-1], N: len(ys)})
		}
	}
	return out
}

// Crossover is the first value at which a's median reaches b's, by linear
// interpolation between measured values (a below b before it), or false
// when a stays below b (or starts above it) over the whole range.
func Crossover(a, b []Summary) (float64, bool) {
	bAt := map[float64]float64{}
	for _, s := range b {
		bAt[s.Value] = s.Median
	}
	var prevX, prevD float64
	have := false
	for _, s := range a {
		bm, ok := bAt[s.Value]
		if !ok {
			continue
		}
		d := s.Median - bm
		if !have {
			if d >= 0 {
				return 0, false // no saving to lose to begin with
			}
			prevX, prevD, have = s.Value, d, true
			continue
		}
		if d >= 0 {
			return prevX + (s.Value-prevX)*(-prevD)/(d-prevD), true
		}
		prevX, prevD = s.Value, d
	}
	return 0, false
}
