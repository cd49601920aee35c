package report

import (
	"strings"
	"testing"
)

// Over several runs a figure shows its median and range, formatted as the
// runs printed it; other values list their counts.
func TestSummarise(t *testing.T) {
	cases := []struct {
		vals []string
		want string
	}{
		{[]string{"26 (12 / 14)", "26 (12 / 14)"}, "26 (12 / 14)"},
		{[]string{"137.2 ms", "140.0 ms", "120.5 ms"}, "137.2 [120.5-140.0] ms"},
		{[]string{"2 (0.98%)", "0 (0.00%)", "4 (1.90%)", "1 (0.50%)"}, "1.5 [0-4] (0.74 [0.00-1.90]%)"},
		{[]string{"holds", "holds", "DOES NOT HOLD: x"}, "holds (2 of 3 runs); DOES NOT HOLD: x (1 of 3 runs)"},
		{[]string{"never", "12.0 ms"}, "never (1 of 2 runs); 12.0 ms (1 of 2 runs)"},
	}
	for _, c := range cases {
		if got := summarise(c.vals); got != c.want {
			t.Errorf("summarise(%q) = %q, want %q", c.vals, got, c.want)
		}
	}
	// From six runs on, the median's 95 % interval from order statistics.
	got := summarise([]string{"5 ms", "1 ms", "3 ms", "2 ms", "4 ms", "6 ms", "7 ms", "8 ms", "9 ms", "10 ms"})
	if got != "5.5 [1-10] (95%: 2-9) ms" {
		t.Errorf("ten runs: %q", got)
	}
	if !strings.Contains(summarise([]string{"1", "2", "3", "4", "5"}), "[1-5]") || strings.Contains(summarise([]string{"1", "2", "3", "4", "5"}), "95%") {
		t.Errorf("five runs give no interval: %q", summarise([]string{"1", "2", "3", "4", "5"}))
	}
}

// Rows with the same label (MN1's and MN2's "lost") are merged with their
// own kind, not with the first one of that label.
func TestMergeTablesRepeatedLabels(t *testing.T) {
	run := func(a, b string) []Table {
		return []Table{{Title: "Media", Columns: []string{"x"}, Rows: []Row{
			{Label: "at MN1", Cells: []string{"-"}}, {Label: "lost", Cells: []string{a}},
			{Label: "at MN2", Cells: []string{"-"}}, {Label: "lost", Cells: []string{b}}}}}
	}
	m := mergeTables([][]Table{run("1", "10"), run("3", "30")})
	if got := m[0].Rows[1].Cells[0] + " / " + m[0].Rows[3].Cells[0]; got != "2 [1-3] / 20 [10-30]" {
		t.Errorf("merged %q", got)
	}
}
