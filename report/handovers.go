package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/ha2r/mip6testbed/demo"
)

// HandoverComparison sets the same experiment moved break-before-make and
// make-before-break side by side (node demo --handover both): a column per
// scheme and way of moving.
type HandoverComparison struct {
	Params Params `json:"params"`
	Table  Table  `json:"table"`
}

// CompareHandovers builds the comparison from a break-before-make and a
// make-before-break report of the same experiment.
func CompareHandovers(bbm, mbb *Report) *HandoverComparison {
	type col struct {
		r    *demo.Result
		name string
	}
	var cols []col
	for _, r := range bbm.Results {
		cols = append(cols, col{r, r.Scheme + " bbm"})
		for _, m := range mbb.Results {
			if m.Scheme == r.Scheme {
				cols = append(cols, col{m, m.Scheme + " mbb"})
			}
		}
	}
	t := Table{Title: "Break-before-make (bbm) and make-before-break (mbb), the same call and moves"}
	for _, c := range cols {
		t.Columns = append(t.Columns, c.name)
	}
	add := func(label string, cell func(r *demo.Result) string) {
		row := Row{Label: label}
		for _, c := range cols {
			row.Cells = append(row.Cells, cell(c.r))
		}
		t.Rows = append(t.Rows, row)
	}
	add("RTP packets lost, MN2 -> MN1", func(r *demo.Result) string { return fmt.Sprint(r.Caller.PacketsLost) })
	add("RTP packets lost, MN1 -> MN2", func(r *demo.Result) string { return fmt.Sprint(r.Callee.PacketsLost) })
	perMove := func(r *demo.Result, f func(demo.Handover) float64) string {
		var xs []float64
		for _, h := range r.Handovers {
			xs = append(xs, f(h))
		}
		return msSpread(xs)
	}
	add("media gap at a move, MN2 -> MN1", func(r *demo.Result) string {
		return perMove(r, func(h demo.Handover) float64 { return h.GapToMN1 })
	})
	add("media gap at a move, MN1 -> MN2", func(r *demo.Result) string {
		return perMove(r, func(h demo.Handover) float64 { return h.GapToMN2 })
	})
	add("move started to traffic moved", func(r *demo.Result) string {
		return perMove(r, func(h demo.Handover) float64 { return h.AttachMs })
	})
	add("signalling in the handover phases", func(r *demo.Result) string {
		p := r.Phase(demo.PhaseHandover)
		return fmt.Sprintf("%d (%d B)", p.Messages, p.Bytes)
	})
	p := bbm.Params
	p.Handover = "both"
	return &HandoverComparison{Params: p, Table: t}
}

// msSpread is "max (min-max)" of per-move figures, or the one figure.
func msSpread(xs []float64) string {
	switch len(xs) {
	case 0:
		return "-"
	case 1:
		return fmt.Sprintf("%.1f ms", xs[0])
	}
	return fmt.Sprintf("%.1f-%.1f ms", slices.Min(xs), slices.Max(xs))
}

// WriteText prints the comparison.
func (c *HandoverComparison) WriteText(w io.Writer) error {
	p := c.Params
	fmt.Fprintf(w, "%s\n", p.Where)
	fmt.Fprintf(w, "Topology %s, seed %d, %d move(s) each way; access delay %s, backbone delay %s, added loss %.1f%%\n",
		p.Topology, p.Seed, p.Moves, p.AccessDelay, p.BackboneDelay, p.LossPercent)
	fmt.Fprintln(w, "A move's gap is the longest silence around it; \"move started\" is the handover command, \"traffic moved\"")
	fmt.Fprintln(w, "the node's switch to the new link (bbm: attached there; mbb: registered there and committed).")
	c.Table.writeText(w)
	_, err := fmt.Fprintln(w)
	return err
}

// WriteJSON writes the comparison as JSON.
func (c *HandoverComparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}
