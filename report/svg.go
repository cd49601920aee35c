package report

import (
	"fmt"
	"html"
	"strings"
	"time"

	"github.com/ha2r/mip6testbed/demo"
)

// Colours of the drawings: mobility signalling, SIP, direct and tunnelled
// media, handovers.
const (
	colourMobility  = "#1f5fa8"
	colourSIP       = "#2a7f3a"
	colourLost      = "#c0392b"
	colourDirect    = "#1f5fa8"
	colourTunnelled = "#e07b00"
	colourHandover  = "#c0392b"
)

// SequenceSVG draws a run's signalling in the manner of the paper's Fig. 1
// and Fig. 5: a lane per node, a row per message, an arrow per hop (a relay
// is a node that tunnelled or de-tunnelled the message), and the time the
// message was sent.
func SequenceSVG(r *demo.Result) string {
	const (
		laneW  = 96
		left   = 88
		top    = 44
		rowH   = 19
		phaseH = 24
	)
	lane := map[string]int{}
	for i, n := range r.Lanes {
		lane[n] = i
	}
	x := func(node string) int { return left + lane[node]*laneW + laneW/2 }
	var body strings.Builder
	y := top
	phase := ""
	for _, m := range r.Messages {
		if m.Phase != phase {
			phase = m.Phase
			y += 4
			fmt.Fprintf(&body, `<rect x="0" y="%d" width="%d" height="%d" fill="#eef1f5"/>`+
				`<text x="6" y="%d" class="ph">%s</text>`, y, left+len(r.Lanes)*laneW, phaseH-6, y+13, html.EscapeString(phase))
			y += phaseH
		}
		y += rowH
		colour, dash := colourMobility, ""
		if m.Kind == "sip" {
			colour = colourSIP
		}
		stops := []string{m.From}
		for _, h := range m.Via {
			stops = append(stops, h.Node)
		}
		stops = append(stops, m.To)
		if m.Received.IsZero() {
			colour, dash = colourLost, ` stroke-dasharray="4 3"`
		}
		fmt.Fprintf(&body, `<g><title>%s</title>`, html.EscapeString(describe(r, m)))
		for i := 0; i+1 < len(stops); i++ {
			x1, x2 := x(stops[i]), x(stops[i+1])
			if x1 == x2 {
				continue
			}
			fmt.Fprintf(&body, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s marker-end="url(#a%s)"/>`,
				x1, y, x2, y, colour, dash, colour[1:])
		}
		xa, xb := x(stops[0]), x(stops[len(stops)-1])
		fmt.Fprintf(&body, `<text x="%d" y="%d" class="m">%s</text>`, (xa+xb)/2, y-3, html.EscapeString(m.Type))
		fmt.Fprintf(&body, `<text x="4" y="%d" class="t">%s</text></g>`, y+3, seconds(m.Sent.Sub(r.Start)))
	}
	height := y + 16
	width := left + len(r.Lanes)*laneW
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`,
		width, height, width, height)
	s.WriteString(`<style>.m{font-size:10px;text-anchor:middle}.t{font-size:10px;fill:#555}.ph{font-size:11px;font-weight:bold}.ln{font-size:12px;font-weight:bold;text-anchor:middle}</style><defs>`)
	for _, c := range []string{colourMobility, colourSIP, colourLost} {
		fmt.Fprintf(&s, `<marker id="a%s" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="%s"/></marker>`, c[1:], c)
	}
	s.WriteString(`</defs>`)
	for i, n := range r.Lanes {
		cx := left + i*laneW + laneW/2
		fmt.Fprintf(&s, `<text x="%d" y="%d" class="ln">%s</text><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999" stroke-dasharray="2 3"/>`,
			cx, top-20, html.EscapeString(n), cx, top-12, cx, height-4)
	}
	s.WriteString(body.String())
	s.WriteString(`</svg>`)
	return s.String()
}

func describe(r *demo.Result, m demo.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", m.Kind, m.Type, m.From)
	for _, h := range m.Via {
		fmt.Fprintf(&b, " > %s (+%s)", h.Node, millis(h.At.Sub(m.Sent)))
	}
	fmt.Fprintf(&b, " > %s, %d bytes, sent at %s", m.To, m.Bytes, seconds(m.Sent.Sub(r.Start)))
	if m.Received.IsZero() {
		b.WriteString(", never accepted")
	} else {
		fmt.Fprintf(&b, ", arrived after %s", millis(m.Received.Sub(m.Sent)))
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// TimelineSVG draws every RTP packet's arrival at MN1 and at MN2 after the
// INVITE, direct and tunnelled in different colours, with the handovers
// marked.
func TimelineSVG(r *demo.Result) string {
	const (
		left, plotW = 70, 820
		rowH        = 34
		top         = 24
	)
	end := r.End.Sub(r.InviteAt).Seconds()
	if end <= 0 {
		end = 1
	}
	x := func(t float64) float64 { return left + t/end*plotW }
	height := top + 2*rowH + 34
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`,
		left+plotW+20, height, left+plotW+20, height)
	for i, name := range []string{"at MN1", "at MN2"} {
		y := top + i*rowH
		fmt.Fprintf(&s, `<text x="4" y="%d">%s</text><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ccc"/>`,
			y+rowH/2+4, name, left, y+rowH-4, left+plotW, y+rowH-4)
		var direct, tunnelled strings.Builder
		for _, a := range r.Arrivals[i] {
			p := &direct
			if a.Tunnelled {
				p = &tunnelled
			}
			fmt.Fprintf(p, "M%.1f %dv%d", x(a.T), y+6, rowH-12)
		}
		for _, c := range []struct {
			d      string
			colour string
		}{{direct.String(), colourDirect}, {tunnelled.String(), colourTunnelled}} {
			if c.d != "" {
				fmt.Fprintf(&s, `<path d="%s" stroke="%s" stroke-width="1"/>`, c.d, c.colour)
			}
		}
	}
	axis := top + 2*rowH
	fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, left, axis, left+plotW, axis)
	step := 1.0
	if end > 20 {
		step = 5
	}
	for t := 0.0; t <= end; t += step {
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/><text x="%.1f" y="%d" text-anchor="middle">%g s</text>`,
			x(t), axis, x(t), axis+4, x(t), axis+16, t)
	}
	for _, h := range r.Handovers {
		t := h.At.Sub(r.InviteAt).Seconds()
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/><text x="%.1f" y="%d" fill="%s" text-anchor="middle">MN1 to %s</text>`,
			x(t), top-6, x(t), axis, colourHandover, x(t), top-10, colourHandover, html.EscapeString(h.Link))
	}
	if !r.TeardownAt.IsZero() {
		t := r.TeardownAt.Sub(r.InviteAt).Seconds()
		fmt.Fprintf(&s, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="2 2"/><text x="%.1f" y="%d" fill="#555" text-anchor="middle">BYE</text>`,
			x(t), top-6, x(t), axis, x(t), top-10)
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#555">0 = INVITE sent; <tspan fill="%s">direct</tspan>, <tspan fill="%s">tunnelled</tspan></text>`,
		left, axis+30, colourDirect, colourTunnelled)
	s.WriteString(`</svg>`)
	return s.String()
}
