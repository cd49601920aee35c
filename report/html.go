package report

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
)

// WriteJSON writes the report for machines.
func (rep *Report) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(rep)
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>HA2R vs Mobile IPv6: demo report</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 20px}
th,td{border:1px solid #ccd;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}
th{background:#eef1f5}td.sub{padding-left:22px;color:#444}
.schemes{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.note{color:#555;font-size:13px}
</style></head><body>
<h1>HA2R with SIP vs Mobile IPv6 with Return Routability</h1>
<p class="note">Every figure below was measured in this run ({{.Params.At.Format "2006-01-02 15:04:05 UTC"}}), on {{.Params.Where}}:
topology {{.Params.Topology}}, seed {{.Params.Seed}}, {{.Params.Moves}} move(s) of MN1{{if .Params.Handover}} ({{.Params.Handover}}){{end}},
access delay {{.Params.AccessDelay}}, backbone delay {{.Params.BackboneDelay}}, added loss {{printf "%.1f" .Params.LossPercent}}%.
MN1 calls MN2 through both home agents' SIP proxies, talks, moves, talks and hangs up.
{{if .Params.Runs}}The tables summarise {{.Params.Runs}} runs with seeds {{.Params.Seed}} on: every figure that varied is shown as
median [min-max] over the runs (and, from six runs on, the 95 % interval of the median); values that are not numbers list how many runs had each.
The diagrams below are the first run's.{{end}}</p>
{{range .Tables}}
<h2>{{.Title}}</h2>
<table><tr><th></th>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td{{if .Sub}} class="sub"{{end}}>{{.Label}}</td>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
<h2>Signalling, message by message</h2>
<p class="note">A lane per node, a row per message (time sent on the left, seconds after the nodes started).
An arrow stops at a node that tunnelled or de-tunnelled the message on its way.
<span style="color:#1f5fa8">Mobility Header</span>, <span style="color:#2a7f3a">SIP</span>,
<span style="color:#c0392b">never accepted</span>. Hover an arrow for its details.</p>
<div class="schemes">{{range .Diagrams}}<div><h3>{{.Scheme}}</h3>{{.Sequence}}</div>{{end}}</div>
<h2>RTP arrivals</h2>
{{range .Diagrams}}<h3>{{.Scheme}}</h3>{{.Timeline}}{{end}}
</body></html>
`))

type diagrams struct {
	Scheme             string
	Sequence, Timeline template.HTML
}

// WriteHTML writes the report as one page with no external assets.
func (rep *Report) WriteHTML(w io.Writer) error {
	var ds []diagrams
	for _, r := range rep.Results {
		// The SVGs are built with every text escaped.
		ds = append(ds, diagrams{Scheme: r.Scheme, Sequence: template.HTML(SequenceSVG(r)), Timeline: template.HTML(TimelineSVG(r))})
	}
	return page.Execute(w, struct {
		Params   Params
		Tables   []Table
		Diagrams []diagrams
	}{rep.Params, rep.Tables(), ds})
}

// WriteDir writes index.html, report.json and report.txt into dir,
// creating it if needed.
func (rep *Report) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"index.html": rep.WriteHTML, "report.json": rep.WriteJSON, "report.txt": rep.WriteText,
	} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		err = write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("report: writing %s: %w", name, err)
		}
	}
	return nil
}
