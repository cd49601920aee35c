// Package report renders the demo's measurements: a side-by-side text
// comparison of the schemes, JSON, and an offline HTML page with sequence
// diagrams and RTP arrival timelines.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/softphone"
)

// Report is one demo run, ready to render.
type Report struct {
	Params  Params         `json:"params"`
	Results []*demo.Result `json:"results"`
	// Claims are the paper's claims checked on the results, with the
	// figures each verdict rests on (when both schemes ran).
	Claims []demo.Claim `json:"claims,omitempty"`
	// Runs, for a repeated experiment (--runs N), are every run's results
	// and claims, Results and Claims being the first's; Summary has every
	// figure as median [min-max] over them.
	Runs    []Run   `json:"runs,omitempty"`
	Summary []Table `json:"summary,omitempty"`
}

// Run is one of a repeated experiment's runs.
type Run struct {
	Seed    uint64         `json:"seed"`
	Results []*demo.Result `json:"results"`
	Claims  []demo.Claim   `json:"claims,omitempty"`
}

// AllHold reports whether every claim checked holds, in every run.
func (rep *Report) AllHold() bool {
	claims := rep.Claims
	for _, r := range rep.Runs {
		claims = append(claims, r.Claims...)
	}
	for _, c := range claims {
		if c.Verdict != demo.VerdictHolds {
			return false
		}
	}
	return true
}

// NewRepeated wraps the results of the same experiment run with several
// seeds (runs[i] with seed o.Seed+i).
func NewRepeated(o demo.Options, runs [][]*demo.Result) *Report {
	rep := New(o, runs[0])
	if len(runs) < 2 {
		return rep
	}
	rep.Params.Runs = len(runs)
	var each [][]Table
	for i, rs := range runs {
		r := Run{Seed: o.Seed + uint64(i), Results: rs, Claims: CheckClaims(rs)}
		rep.Runs = append(rep.Runs, r)
		each = append(each, tablesOf(rs, r.Claims))
	}
	rep.Summary = mergeTables(each)
	return rep
}

// Params are the run's settings, repeated in every rendering so that a
// report says what produced it.
type Params struct {
	// Where says what the nodes ran on.
	Where    string   `json:"where"`
	Topology string   `json:"topology"`
	Schemes  []string `json:"schemes"`
	Moves    int      `json:"moves"`
	// Handover is how MN1 moved: break-before-make or make-before-break.
	Handover      string  `json:"handover,omitempty"`
	AccessDelay   string  `json:"access_delay"`
	BackboneDelay string  `json:"backbone_delay"`
	LossPercent   float64 `json:"added_loss_percent"`
	Seed          uint64  `json:"seed"`
	// Runs is how many seeded runs the figures summarise (seeds Seed on).
	Runs int       `json:"runs,omitempty"`
	At   time.Time `json:"at"`
}

// New wraps a run's results.
func New(o demo.Options, rs []*demo.Result) *Report {
	p := Params{Where: "one process: userspace IPv6 stacks over loopback UDP, link delays emulated in userspace", Topology: o.Name, Moves: o.Moves, LossPercent: o.Loss * 100, Seed: o.Seed, At: time.Now().UTC(),
		AccessDelay: "as in the file", BackboneDelay: "as in the file", Handover: "break-before-make"}
	if o.MakeBeforeBreak {
		p.Handover = "make-before-break"
	}
	if p.Topology == "" {
		p.Topology = "fig4.yaml (built in)"
	}
	if o.AccessDelay >= 0 {
		p.AccessDelay = o.AccessDelay.String()
	}
	if o.BackboneDelay >= 0 {
		p.BackboneDelay = o.BackboneDelay.String()
	}
	for _, r := range rs {
		p.Schemes = append(p.Schemes, r.Scheme)
	}
	return &Report{Params: p, Results: rs, Claims: CheckClaims(rs)}
}

// CheckClaims checks the paper's claims when rs has both schemes' results.
func CheckClaims(rs []*demo.Result) []demo.Claim {
	var std, ha2r *demo.Result
	for _, r := range rs {
		switch r.Scheme {
		case "standard":
			std = r
		case "ha2r":
			ha2r = r
		}
	}
	if std == nil || ha2r == nil {
		return nil
	}
	return demo.Claims(std, ha2r)
}

// Table is one section of the comparison: a row per figure, a column per
// scheme.
type Table struct {
	Title   string
	Columns []string
	Rows    []Row
}

// Row is one figure; Sub rows are a breakdown of the row above.
type Row struct {
	Label string
	Cells []string
	Sub   bool
}

func (t *Table) add(label string, sub bool, cell func(r *demo.Result) string, rs []*demo.Result) {
	row := Row{Label: label, Sub: sub}
	for _, r := range rs {
		row.Cells = append(row.Cells, cell(r))
	}
	t.Rows = append(t.Rows, row)
}

// Tables builds the comparison: of one run, or the summary of several.
func (rep *Report) Tables() []Table {
	if len(rep.Summary) > 0 {
		return rep.Summary
	}
	return tablesOf(rep.Results, rep.Claims)
}

// tablesOf builds one run's comparison.
func tablesOf(rs []*demo.Result, claimed []demo.Claim) []Table {
	cols := make([]string, len(rs))
	for i, r := range rs {
		cols[i] = r.Scheme
	}
	var out []Table

	sig := Table{Title: "Signalling messages per phase: count (bytes on the wire)", Columns: cols}
	for _, phase := range []string{demo.PhaseAttach, demo.PhaseSetup, demo.PhaseHandover, demo.PhaseSteady, demo.PhaseTeardown} {
		sig.add(phase, false, func(r *demo.Result) string {
			p := r.Phase(phase)
			return fmt.Sprintf("%d (%d B) in %.1f s", p.Messages, p.Bytes, p.DurationS)
		}, rs)
		sig.add("mobility / SIP", true, func(r *demo.Result) string {
			p := r.Phase(phase)
			return fmt.Sprintf("%d / %d", p.Mobility, p.SIP)
		}, rs)
		for _, typ := range typesOf(rs, phase) {
			sig.add(typ, true, func(r *demo.Result) string {
				p := r.Phase(phase)
				if p.ByType[typ] == 0 {
					return "-"
				}
				return fmt.Sprintf("%d (%d B)", p.ByType[typ], p.BytesBy[typ])
			}, rs)
		}
	}
	sig.add("steady state, per minute", false, func(r *demo.Result) string {
		return fmt.Sprintf("%.1f (over %.1f s)", r.SteadyPerMinute, r.Phase(demo.PhaseSteady).DurationS)
	}, rs)
	out = append(out, sig)

	start := Table{Title: "Session start", Columns: cols}
	for i, mn := range []string{"MN1", "MN2"} {
		start.add("INVITE to first media at "+mn, false, func(r *demo.Result) string { return demo.MsOrNever(r.InviteToMedia[i]) }, rs)
	}
	for i, mn := range []string{"MN1", "MN2"} {
		start.add("INVITE to first direct media at "+mn, false, func(r *demo.Result) string { return demo.MsOrNever(r.InviteToDirect[i]) }, rs)
	}
	out = append(out, start)

	moves := 0
	for _, r := range rs {
		moves = max(moves, len(r.Handovers))
	}
	for k := range moves {
		h := Table{Columns: cols}
		h.Title = fmt.Sprintf("Handover %d", k+1)
		row := func(label string, f func(x demo.Handover) string) {
			h.add(label, false, func(r *demo.Result) string {
				if k < len(r.Handovers) {
					return f(r.Handovers[k])
				}
				return "-"
			}, rs)
		}
		row("MN1 moved to", func(x demo.Handover) string { return x.Link })
		row("attached after", func(x demo.Handover) string { return fmt.Sprintf("%.1f ms", x.AttachMs) })
		row("media gap MN2 -> MN1", func(x demo.Handover) string { return fmt.Sprintf("%.1f ms", x.GapToMN1) })
		row("media gap MN1 -> MN2", func(x demo.Handover) string { return fmt.Sprintf("%.1f ms", x.GapToMN2) })
		out = append(out, h)
	}

	media := Table{Title: "Media (G.711, 20 ms packets)", Columns: cols}
	for i, mn := range []string{"MN1", "MN2"} {
		rep := func(r *demo.Result) softphone.Report {
			if i == 0 {
				return r.Caller
			}
			return r.Callee
		}
		// Loss against what the peer reported sending while this end
		// listened (its RTCP), so "lost" is expected - received; the peer's
		// own total also counts what it sent after this end hung up.
		media.add("at "+mn+": received / expected", false, func(r *demo.Result) string {
			return fmt.Sprintf("%d / %d", rep(r).PacketsReceived, rep(r).PacketsExpected)
		}, rs)
		media.add("lost", true, func(r *demo.Result) string {
			return fmt.Sprintf("%d (%.2f%%)", rep(r).PacketsLost, rep(r).LossPercent)
		}, rs)
		media.add("sent by the peer in all", true, func(r *demo.Result) string {
			other := r.Callee
			if i == 1 {
				other = r.Caller
			}
			return fmt.Sprint(other.PacketsSent)
		}, rs)
		media.add("jitter / longest gap", true, func(r *demo.Result) string {
			return fmt.Sprintf("%.1f / %.1f ms", rep(r).JitterMs, rep(r).MaxGapMs)
		}, rs)
		media.add("MOS (E-model)", true, func(r *demo.Result) string { return fmt.Sprintf("%.2f", rep(r).MOS) }, rs)
	}
	out = append(out, media)

	path := Table{Title: "Media path (overlay hops, one-way delay)", Columns: cols}
	for _, when := range []string{"before", "after"} {
		for _, dir := range []string{"mn1 -> mn2", "mn2 -> mn1"} {
			path.add(dir+", "+when+" the handover", false, func(r *demo.Result) string {
				ps := r.PathAfter
				if when == "before" {
					ps = r.PathBefore
				}
				for _, p := range ps {
					if p.Direction == dir {
						return pathString(p)
					}
				}
				return "not observed end to end"
			}, rs)
		}
	}
	out = append(out, path)

	if len(claimed) > 0 {
		claims := Table{Title: "The paper's claims, checked on these figures", Columns: []string{"verdict"}}
		for _, c := range claimed {
			v := c.Verdict
			switch c.Verdict {
			case demo.VerdictFails:
				v = "DOES NOT HOLD: " + strings.Join(c.Why, "; ")
			case demo.VerdictUnknown:
				v = "CANNOT TELL: a sender sent nothing to judge by"
			}
			if len(c.Notes) > 0 {
				v += " (" + strings.Join(c.Notes, "; ") + ")"
			}
			claims.Rows = append(claims.Rows, Row{Label: c.Claim, Cells: []string{v}})
		}
		out = append(out, claims)
	}

	check := Table{Title: "Cross-check", Columns: cols}
	check.add("mobility messages and bytes = senders' counters", false, func(r *demo.Result) string { return checkString(r, false) }, rs)
	check.add("SIP requests = proxies' counters", false, func(r *demo.Result) string { return checkString(r, true) }, rs)
	out = append(out, check)
	return out
}

func typesOf(rs []*demo.Result, phase string) []string {
	seen := map[string]bool{}
	for _, r := range rs {
		for t := range r.Phase(phase).ByType {
			seen[t] = true
		}
	}
	var out []string
	for t := range seen {
		out = append(out, t)
	}
	// Mobility messages first, then SIP, each alphabetically.
	sort.Slice(out, func(i, j int) bool {
		si, sj := strings.HasPrefix(out[i], "SIP "), strings.HasPrefix(out[j], "SIP ")
		if si != sj {
			return sj
		}
		return out[i] < out[j]
	})
	return out
}

func pathString(p demo.PathSample) string {
	s := fmt.Sprintf("%s (%d hops, %.1f ms)", strings.Join(p.Hops, " > "), len(p.Hops)-1, p.DelayMs)
	if p.Tunnelled {
		s += ", tunnelled"
	}
	return s
}

// checkString says whether the recorded messages agree with the nodes'
// own counters.
func checkString(r *demo.Result, sip bool) string {
	var bad []string
	n := 0
	for typ, c := range r.CounterCheck {
		if strings.HasPrefix(typ, "SIP ") != sip {
			continue
		}
		n += c.Counted
		if !c.OK() {
			bad = append(bad, fmt.Sprintf("%s %d/%d", typ, c.Recorded, c.Counted))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return "NO: " + strings.Join(bad, ", ")
	}
	return fmt.Sprintf("yes (%d messages)", n)
}

// handoverNote names how MN1 moved, for the parameters line.
func handoverNote(h string) string {
	if h == "" {
		return ""
	}
	return ", " + h
}

// WriteText prints the comparison as aligned columns.
func (rep *Report) WriteText(w io.Writer) error {
	p := rep.Params
	fmt.Fprintf(w, "%s\n", p.Where)
	fmt.Fprintf(w, "Topology %s, seed %d, %d move(s)%s; access delay %s, backbone delay %s, added loss %.1f%%\n",
		p.Topology, p.Seed, p.Moves, handoverNote(p.Handover), p.AccessDelay, p.BackboneDelay, p.LossPercent)
	if p.Runs > 1 {
		fmt.Fprintf(w, "%d runs, seeds %d to %d: figures that varied as median [min-max] (from 6 runs on, with the median's 95%% interval)\n",
			p.Runs, p.Seed, p.Seed+uint64(p.Runs)-1)
	}
	for _, t := range rep.Tables() {
		t.writeText(w)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// writeText prints t as aligned columns under its title.
func (t Table) writeText(w io.Writer) {
	width := []int{0}
	for _, c := range t.Columns {
		width = append(width, len(c))
	}
	for _, r := range t.Rows {
		width[0] = max(width[0], len(r.Label)+2)
		for i, c := range r.Cells {
			width[i+1] = max(width[i+1], len(c))
		}
	}
	fmt.Fprintf(w, "\n%s\n", t.Title)
	line := func(label string, cells []string) {
		var b strings.Builder
		fmt.Fprintf(&b, "  %-*s", width[0], label)
		for i, c := range cells {
			fmt.Fprintf(&b, "  %-*s", width[i+1], c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line("", t.Columns)
	for _, r := range t.Rows {
		label := r.Label
		if r.Sub {
			label = "  " + label
		}
		line(label, r.Cells)
	}
}
