package report

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// number matches the figures in a table cell.
var number = regexp.MustCompile(`-?\d+(\.\d+)?`)

// mergeTables summarises the same comparison over several runs: each cell
// becomes its runs' values, figure by figure, as median [min-max] (with a
// 95 % interval for the median from N = 6 runs on), when the cells differ
// only in their numbers; cells that differ otherwise (a verdict, a path)
// list their distinct values with how many runs had each.
func mergeTables(each [][]Table) []Table {
	var out []Table
	for _, t := range each[0] {
		m := Table{Title: t.Title + fmt.Sprintf(" (%d runs: median [min-max])", len(each)), Columns: t.Columns}
		seen := map[string]int{} // rows with the same label (MN1's and MN2's "lost")
		for _, r := range t.Rows {
			row := Row{Label: r.Label, Sub: r.Sub}
			nth := seen[r.Label]
			seen[r.Label]++
			for ci := range r.Cells {
				var vals []string
				for _, run := range each {
					if v, ok := cellAt(run, t.Title, r.Label, nth, ci); ok {
						vals = append(vals, v)
					}
				}
				row.Cells = append(row.Cells, summarise(vals))
			}
			m.Rows = append(m.Rows, row)
		}
		out = append(out, m)
	}
	return out
}

// cellAt finds a cell of one run's tables: the same table and the nth row
// with the label (by title and label, since runs may list different
// message types).
func cellAt(tables []Table, title, label string, nth, ci int) (string, bool) {
	for _, t := range tables {
		if t.Title != title {
			continue
		}
		for _, r := range t.Rows {
			if r.Label != label {
				continue
			}
			if nth > 0 {
				nth--
				continue
			}
			if ci < len(r.Cells) {
				return r.Cells[ci], true
			}
			return "", false
		}
	}
	return "", false
}

// summarise merges one cell's values over the runs.
func summarise(vals []string) string {
	if len(vals) == 0 {
		return "-"
	}
	if allSame(vals) {
		return vals[0]
	}
	shape := number.ReplaceAllString(vals[0], "#")
	nums := make([][]float64, len(number.FindAllString(vals[0], -1)))
	for _, v := range vals {
		if number.ReplaceAllString(v, "#") != shape {
			return distinct(vals)
		}
		for i, n := range number.FindAllString(v, -1) {
			f, _ := strconv.ParseFloat(n, 64)
			nums[i] = append(nums[i], f)
		}
	}
	decimals := make([]int, len(nums))
	for i, n := range number.FindAllString(vals[0], -1) {
		if _, frac, ok := strings.Cut(n, "."); ok {
			decimals[i] = len(frac)
		}
	}
	i := 0
	return number.ReplaceAllStringFunc(vals[0], func(string) string {
		s := spread(nums[i], decimals[i])
		i++
		return s
	})
}

func allSame(vals []string) bool {
	for _, v := range vals[1:] {
		if v != vals[0] {
			return false
		}
	}
	return true
}

// distinct lists the different values with their counts, most common first.
func distinct(vals []string) string {
	count := map[string]int{}
	var order []string
	for _, v := range vals {
		if count[v] == 0 {
			order = append(order, v)
		}
		count[v]++
	}
	slices.SortStableFunc(order, func(a, b string) int { return count[b] - count[a] })
	parts := make([]string, len(order))
	for i, v := range order {
		parts[i] = fmt.Sprintf("%s (%d of %d runs)", v, count[v], len(vals))
	}
	return strings.Join(parts, "; ")
}

// spread prints one figure over the runs: median [min-max], and from six
// runs on the 95 % interval of the median.
func spread(xs []float64, decimals int) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', decimals, 64) }
	if s[0] == s[len(s)-1] {
		return f(s[0])
	}
	med := f(Median(s))
	if m := Median(s); decimals == 0 && m != math.Trunc(m) {
		med = strconv.FormatFloat(m, 'f', 1, 64) // the middle of two whole figures
	}
	out := fmt.Sprintf("%s [%s-%s]", med, f(s[0]), f(s[len(s)-1]))
	if lo, hi, ok := MedianInterval(s); ok {
		out += fmt.Sprintf(" (95%%: %s-%s)", f(lo), f(hi))
	}
	return out
}

// Median of sorted values.
func Median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MedianInterval is a distribution-free 95 % confidence interval for the
// median of sorted values, from order statistics: [s(j), s(n-j+1)] with
// the largest j whose binomial tail P(B(n, 1/2) < j) is at most 2.5 %. It
// needs six values (with five, even the whole range covers only 94 %).
func MedianInterval(s []float64) (lo, hi float64, ok bool) {
	n := len(s)
	j := 0
	for k := 1; k <= n/2; k++ {
		if binomTail(n, k) > 0.025 {
			break
		}
		j = k
	}
	if j == 0 {
		return 0, 0, false
	}
	return s[j-1], s[n-j], true
}

// binomTail is P(B(n, 1/2) < k).
func binomTail(n, k int) float64 {
	p := 0.0
	for i := range k {
		p += math.Exp(lchoose(n, i) - float64(n)*math.Ln2)
	}
	return p
}

func lchoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}
