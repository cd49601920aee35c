package sweep

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/report"
)

// GridReport is a finished sweep: its settings and every sample.
type GridReport struct {
	Param   string          `json:"param"`
	Unit    string          `json:"unit"`
	Values  []float64       `json:"values"`
	Runs    int             `json:"runs"`
	Seed    uint64          `json:"first_seed"`
	Schemes []config.Scheme `json:"schemes"`
	Samples []Sample        `json:"samples"`
}

// axis names the swept parameter with its unit.
func (g *GridReport) axis() string {
	if g.Unit == "" {
		return g.Param
	}
	return fmt.Sprintf("%s (%s)", g.Param, g.Unit)
}

// crossoverMeaning says, for the metrics where ha2r starts lower, what it
// means when the standard scheme's line is reached.
var crossoverMeaning = map[string]string{
	"signalling messages per call": "ha2r's cost per move (MN Authentication and re-REGISTER) outweighs its saving at session start",
	"handover gap":                 "the detour through the old access router makes ha2r's handover gap longer than the standard scheme's",
}

// Plots draws every metric against the parameter, both schemes on each;
// the messages plot marks where ha2r's count reaches the standard
// scheme's, if it does in the range.
func (g *GridReport) Plots() []report.LinePlot {
	var out []report.LinePlot
	for _, m := range Metrics {
		sums := Summarise(g.Samples, m, g.Schemes)
		p := report.LinePlot{Title: fmt.Sprintf("%s against %s", m.Name, g.Param), XLabel: g.axis(), YLabel: fmt.Sprintf("%s (%s)", m.Name, m.Unit),
			Caption: fmt.Sprintf("Median of %d run(s) per point; the whiskers span the smallest and largest run.", g.Runs)}
		for _, scheme := range g.Schemes {
			s := report.Series{Name: string(scheme), Colour: report.SchemeColour(string(scheme))}
			for _, v := range sums[scheme] {
				s.Points = append(s.Points, report.Point{X: v.Value, Y: v.Median, Lo: v.Min, Hi: v.Max})
			}
			p.Series = append(p.Series, s)
		}
		// Where ha2r stops being the cheaper scheme, if it does here.
		if meaning, ok := crossoverMeaning[m.Name]; ok {
			if x, ok := Crossover(sums[config.SchemeHA2R], sums[config.SchemeStandard]); ok {
				at := strconv.FormatFloat(x, 'g', 3, 64) + " " + g.Unit
				p.Mark, p.MarkLabel = &x, "crossover at "+at
				p.Caption += fmt.Sprintf(" From %s on, %s.", at, meaning)
			} else if len(sums[config.SchemeHA2R]) > 0 && len(sums[config.SchemeStandard]) > 0 {
				p.Caption += " No crossover in this range."
			}
		}
		out = append(out, p)
	}
	return out
}

// WriteDir writes the sweep as sweep.csv (a row per sample), sweep.json,
// index.html (the plots as inline SVG, no external assets) and each plot
// as an SVG file of its own (handover-gap.svg ...), to embed elsewhere.
func (g *GridReport) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]func(io.Writer) error{"sweep.csv": g.WriteCSV, "sweep.json": g.WriteJSON, "index.html": g.WriteHTML}
	for i, p := range g.Plots() {
		files[fileName(Metrics[i].Name)+".svg"] = func(w io.Writer) error { _, err := io.WriteString(w, p.SVG()); return err }
	}
	for name, write := range files {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		if err := write(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes a row per sample; NaN marks a figure the run could not
// measure (no move, no direct media).
func (g *GridReport) WriteCSV(w io.Writer) error {
	c := csv.NewWriter(w)
	c.Write([]string{g.Param + "_" + strings.TrimSpace(g.Unit), "scheme", "run", "seed", "handover_gap_ms", "path_stretch", "invite_to_direct_media_ms", "messages_per_call", "media_lost_percent"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for _, s := range g.Samples {
		c.Write([]string{f(s.Value), string(s.Scheme), strconv.Itoa(s.Run + 1), strconv.FormatUint(s.Seed, 10), f(s.GapMs), f(s.Stretch), f(s.DirectMs),
			strconv.Itoa(s.Messages), f(s.LostPercent)})
	}
	c.Flush()
	return c.Error()
}

// WriteJSON writes the sweep for machines (NaN figures as null).
func (g *GridReport) WriteJSON(w io.Writer) error {
	type jsample struct {
		Sample
		GapMs    *float64 `json:"handover_gap_ms"`
		Stretch  *float64 `json:"path_stretch"`
		DirectMs *float64 `json:"invite_to_direct_media_ms"`
	}
	opt := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	out := struct {
		*GridReport
		Samples []jsample `json:"samples"`
	}{GridReport: g}
	for _, s := range g.Samples {
		out.Samples = append(out.Samples, jsample{Sample: s, GapMs: opt(s.GapMs), Stretch: opt(s.Stretch), DirectMs: opt(s.DirectMs)})
	}
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(out)
}

// WriteHTML writes one offline page with a plot per metric.
func (g *GridReport) WriteHTML(w io.Writer) error {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sweep: ` + html.EscapeString(g.Param) + `</title>
<style>body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}.plots{display:flex;flex-wrap:wrap;gap:24px}
figure{margin:0}figcaption{font-size:13px;color:#555;max-width:560px}</style></head><body>`)
	fmt.Fprintf(&b, "<h1>The demo's scenario against %s</h1>\n", html.EscapeString(g.axis()))
	fmt.Fprintf(&b, `<p>Values %s; %d run(s) per value and scheme, seeds from %d; schemes %s. Every point is measured (sweep.csv has each run).</p>`,
		html.EscapeString(joinFloats(g.Values)), g.Runs, g.Seed, html.EscapeString(joinSchemes(g.Schemes)))
	b.WriteString(`<div class="plots">`)
	for _, p := range g.Plots() {
		fmt.Fprintf(&b, "<figure>%s<figcaption>%s</figcaption></figure>\n", p.SVG(), html.EscapeString(p.Caption))
	}
	b.WriteString("</div></body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func joinFloats(vs []float64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatFloat(v, 'g', 6, 64)
	}
	return strings.Join(s, ", ")
}

func joinSchemes(ss []config.Scheme) string {
	s := make([]string, len(ss))
	for i, v := range ss {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// fileName turns a metric's name into a file name: "handover gap" is
// handover-gap.
func fileName(name string) string {
	return strings.Join(strings.Fields(strings.ToLower(name)), "-")
}
