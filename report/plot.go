package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// LinePlot is a line plot with one series per scheme: each point a median
// over runs with its min-max as a whisker.
type LinePlot struct {
	Title          string
	XLabel, YLabel string // with units
	Series         []Series
	// Mark, if set, draws a vertical line at X = *Mark with MarkLabel
	// (a crossover).
	Mark      *float64
	MarkLabel string
	// Caption says what the plot shows, under it.
	Caption string
}

// Series is one line of a plot.
type Series struct {
	Name   string
	Colour string
	Points []Point
}

// Point is one measured point: Y is the median over the runs, Lo and Hi
// the smallest and largest value.
type Point struct {
	X, Y, Lo, Hi float64
}

// SchemeColour is the colour of a scheme's line in every plot.
func SchemeColour(scheme string) string {
	if scheme == "ha2r" {
		return colourTunnelled
	}
	return colourDirect
}

// SVG draws the plot with axes, ticks, labels with units and a legend.
// Every point carries its values as data attributes (data-series, data-x,
// data-y), so that a test or a script can read back what was drawn.
func (p LinePlot) SVG() string {
	const (
		w, h                     = 560, 340
		left, right, top, bottom = 70, 20, 36, 56
	)
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), 0.0, math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
			ymin, ymax = math.Min(ymin, pt.Lo), math.Max(ymax, math.Max(pt.Hi, pt.Y))
		}
	}
	if math.IsInf(xmin, 1) { // nothing measured
		xmin, xmax, ymax = 0, 1, 1
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	ymax += (ymax - ymin) * 0.08
	px := func(x float64) float64 { return left + (x-xmin)/(xmax-xmin)*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - (y-ymin)/(ymax-ymin)*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`, w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="13" font-weight="bold">%s</text>`, left, html.EscapeString(p.Title))
	// Axes with ticks.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, left, h-bottom, w-right, h-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, left, top, left, h-bottom)
	for _, t := range ticks(xmin, xmax) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/><text x="%.1f" y="%d" text-anchor="middle">%s</text>`,
			px(t), h-bottom, px(t), h-bottom+4, px(t), h-bottom+16, tickLabel(t))
	}
	for _, t := range ticks(ymin, ymax) {
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`,
			left, py(t), w-right, py(t), left-6, py(t)+4, tickLabel(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`, (left+w-right)/2, h-bottom+36, html.EscapeString(p.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(16,%d) rotate(-90)" text-anchor="middle">%s</text>`, (top+h-bottom)/2, html.EscapeString(p.YLabel))
	if p.Mark != nil {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="5,4"/><text x="%.1f" y="%d" fill="%s">%s</text>`,
			px(*p.Mark), top, px(*p.Mark), h-bottom, colourHandover, px(*p.Mark)+4, top+12, colourHandover, html.EscapeString(p.MarkLabel))
	}
	for i, s := range p.Series {
		var path []string
		for _, pt := range s.Points {
			path = append(path, fmt.Sprintf("%.1f,%.1f", px(pt.X), py(pt.Y)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, s.Colour, strings.Join(path, " "))
		for _, pt := range s.Points {
			if pt.Hi > pt.Lo {
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`, px(pt.X), py(pt.Lo), px(pt.X), py(pt.Hi), s.Colour)
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" data-series="%s" data-x="%s" data-y="%s"><title>%s: %s, median %s [%s-%s]</title></circle>`,
				px(pt.X), py(pt.Y), s.Colour, html.EscapeString(s.Name), num(pt.X), num(pt.Y), html.EscapeString(s.Name),
				num(pt.X), num(pt.Y), num(pt.Lo), num(pt.Hi))
		}
		// Legend.
		lx, ly := w-right-150, top+8+i*16
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/><text x="%d" y="%d">%s</text>`,
			lx, ly, lx+20, ly, s.Colour, lx+26, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// ticks returns about five round values between lo and hi.
func ticks(lo, hi float64) []float64 {
	span := hi - lo
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 6 {
			step *= m
			break
		}
	}
	var out []float64
	for t := math.Ceil(lo/step) * step; t <= hi+step*1e-9; t += step {
		out = append(out, t)
	}
	return out
}

func tickLabel(v float64) string {
	if math.Abs(v) < 1e-9 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
