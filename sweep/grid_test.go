package sweep

import (
	"context"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/demo"
)

func TestParseVary(t *testing.T) {
	cases := []struct {
		in   string
		want []float64
	}{
		{"backbone-delay=5ms..20ms/5ms", []float64{5, 10, 15, 20}},
		{"neighbour-delay=1ms..41ms", []float64{1, 11, 21, 31, 41}},
		{"loss=0..10/2", []float64{0, 2, 4, 6, 8, 10}},
		{"moves=0..3", []float64{0, 1, 2, 3}},
		{"ha-delay=5ms,1s", []float64{5, 1000}},
	}
	for _, c := range cases {
		v, err := ParseVary(c.in)
		if err != nil || len(v.Values) != len(c.want) {
			t.Errorf("%s: %v, %v; want %v", c.in, v.Values, err, c.want)
			continue
		}
		for i := range c.want {
			if v.Values[i] != c.want[i] {
				t.Errorf("%s: %v; want %v", c.in, v.Values, c.want)
			}
		}
	}
	for _, bad := range []string{"colour=1..2", "loss", "moves=0..1.5/0.5", "backbone-delay=5..10", "loss=10..0", "loss=0..90/10"} {
		if _, err := ParseVary(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestCrossover(t *testing.T) {
	s := func(pts ...float64) []Summary {
		var out []Summary
		for i := 0; i < len(pts); i += 2 {
			out = append(out, Summary{Value: pts[i], Median: pts[i+1]})
		}
		return out
	}
	if x, ok := Crossover(s(0, 20, 2, 30, 4, 40), s(0, 30, 2, 32, 4, 34)); !ok || math.Abs(x-2.5) > 1e-9 {
		t.Errorf("crossover at %v, %v; want 2.5", x, ok)
	}
	if _, ok := Crossover(s(0, 20, 2, 25), s(0, 30, 2, 32)); ok {
		t.Error("a crossover where a stays below b")
	}
}

// The sweep's page draws what was measured: every point of every plot is
// a median of the samples at its value, for its scheme.
func TestGridPlotsCarryTheMeasuredPoints(t *testing.T) {
	o := demo.Defaults()
	o.Before, o.Between, o.After = 700*time.Millisecond, 700*time.Millisecond, 700*time.Millisecond
	v, err := ParseVary("neighbour-delay=2ms,30ms")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	samples, err := Grid(ctx, GridOptions{Base: o, Vary: v, Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 4 {
		t.Fatalf("%d samples, want 2 values x 2 schemes", len(samples))
	}
	g := &GridReport{Param: v.Param.Name, Unit: v.Param.Unit, Values: v.Values, Runs: 1, Seed: o.Seed, Schemes: o.Schemes, Samples: samples}
	var page strings.Builder
	if err := g.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page.String(), -1)
	if len(svgs) != len(Metrics) {
		t.Fatalf("%d plots, want one per metric (%d)", len(svgs), len(Metrics))
	}
	point := regexp.MustCompile(`data-series="([a-z0-9]+)" data-x="([^"]+)" data-y="([^"]+)"`)
	for i, m := range Metrics {
		if !strings.Contains(svgs[i], m.Name) || !strings.Contains(svgs[i], "neighbour-delay (ms)") {
			t.Errorf("plot %d lacks its title or axis label", i)
		}
		drawn := map[string]float64{}
		for _, p := range point.FindAllStringSubmatch(svgs[i], -1) {
			y, _ := strconv.ParseFloat(p[3], 64)
			drawn[p[1]+"@"+p[2]] = y
		}
		want := 0
		for _, s := range samples {
			y := m.Of(s)
			if math.IsNaN(y) {
				continue
			}
			want++
			key := string(s.Scheme) + "@" + strconv.FormatFloat(s.Value, 'g', 6, 64)
			got, ok := drawn[key]
			if !ok || math.Abs(got-y) > 1e-3*math.Max(1, math.Abs(y)) {
				t.Errorf("%s: %s drawn as %v (%v), measured %v", m.Name, key, got, ok, y)
			}
		}
		if len(drawn) != want {
			t.Errorf("%s: %d points drawn, %d measured", m.Name, len(drawn), want)
		}
	}
	// What the paper assumes small, measured: ha2r's path through the old
	// router stretches with its distance, the standard scheme's does not.
	stretch := Summarise(samples, Metrics[1], []config.Scheme{config.SchemeStandard, config.SchemeHA2R})
	if h := stretch[config.SchemeHA2R]; len(h) != 2 || h[1].Median <= h[0].Median {
		t.Errorf("ha2r's stretch %+v does not grow with the neighbour distance", h)
	}
}
