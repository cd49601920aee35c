package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// docSection maps docs/topology.md's headings to the sections of Sections.
func docSection(heading string) (string, bool) {
	if heading == "Top level" {
		return "", true
	}
	if s, ok := strings.CutPrefix(heading, "`"); ok {
		return strings.TrimSuffix(s, "`"), true
	}
	return "", false
}

type docRow struct{ typ, def string }

// readTopologyDoc returns the field tables of docs/topology.md by section,
// and its example.
func readTopologyDoc(t *testing.T) (map[string]map[string]docRow, string) {
	b, err := os.ReadFile("../docs/topology.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	tables := map[string]map[string]docRow{}
	row := regexp.MustCompile("^\\| `([a-z_0-9]+)` \\|([^|]*)\\|([^|]*)\\|")
	section, in := "", false
	for _, line := range strings.Split(doc, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section, in = docSection(h)
			if in {
				tables[section] = map[string]docRow{}
			}
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			tables[section][m[1]] = docRow{strings.TrimSpace(m[2]), strings.TrimSpace(m[3])}
		}
	}
	_, example, _ := strings.Cut(doc, "```yaml\n")
	example, _, _ = strings.Cut(example, "```")
	return tables, example
}

// docs/topology.md documents exactly the fields the decoder knows, each
// with a type, with the defaults it applies, and its example loads.
func TestTopologyDoc(t *testing.T) {
	tables, example := readTopologyDoc(t)
	for section, fields := range Sections {
		doc, ok := tables[section]
		if !ok {
			t.Errorf("docs/topology.md has no table for section %q", section)
			continue
		}
		for _, f := range fields {
			if r, ok := doc[f]; !ok {
				t.Errorf("docs/topology.md does not document %s", join(section, f))
			} else if r.typ == "" {
				t.Errorf("docs/topology.md gives %s no type", join(section, f))
			}
		}
		for f := range doc {
			if !slices.Contains(fields, f) {
				t.Errorf("docs/topology.md documents %s, which the decoder does not know", join(section, f))
			}
		}
	}
	for section := range tables {
		if _, ok := Sections[section]; !ok {
			t.Errorf("docs/topology.md has a table for %q, which is not a section", section)
		}
	}

	// The defaults, as the decoder applies them to a file that sets none.
	topo, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	mn := topo.NodeByName("mn")
	applied := map[string]any{
		"mtu": topo.MTU, "scheme": topo.Scheme,
		"timers.keepalive": topo.Timers.Keepalive, "timers.ra_interval": topo.Timers.RAInterval, "timers.rs_interval": topo.Timers.RSInterval, "timers.sip_t2": topo.Timers.SIPT2, "timers.dead_after": topo.Timers.DeadAfter,
		"mobility.rr_trigger": topo.Mobility.RRTrigger, "mobility.anchor_idle": topo.Mobility.AnchorIdle,
		"mobility.mn_auth": topo.Mobility.MNAuth, "mobility.standby": topo.Mobility.Standby, "mobility.bicast": topo.Mobility.Bicast, "mobility.handover": topo.Mobility.Handover, "mobility.home_lifetime": topo.Mobility.HomeLifetime,
		"links[].delay": topo.Links[1].Delay, "links[].loss": topo.Links[1].Loss,
		"nodes[].ha2r": topo.NodeByName("r1").HA2R, "nodes[].auto_answer": mn.AutoAnswer, "nodes[].auto_attach": mn.AutoAttach,
		"nodes[].watch_underlay": mn.WatchUnderlay, "nodes[].accept_direct": mn.AcceptDirect, "nodes[].access[].default": mn.Access[0].Default,
		"backbone.loss": topo.Backbone.Loss,
	}
	for path, v := range applied {
		i := strings.LastIndex(path, ".")
		section, field := "", path
		if i >= 0 {
			section, field = path[:i], path[i+1:]
		}
		documented := tables[section][field].def
		if !sameValue(documented, v) {
			t.Errorf("docs/topology.md gives %s the default %q, the decoder applies %v", path, documented, v)
		}
	}

	ex, err := Parse("example.yaml", []byte(example))
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if len(ex.Placeholders) > 0 {
		t.Errorf("the example has placeholder secrets: %v", ex.Placeholders)
	}
	for section, fields := range Sections {
		for _, f := range fields {
			if !strings.Contains(example, f+":") {
				t.Errorf("the example does not use %s", join(section, f))
			}
		}
	}
}

// sameValue compares a documented default with an applied one.
func sameValue(doc string, v any) bool {
	switch x := v.(type) {
	case time.Duration:
		d, err := time.ParseDuration(doc)
		return err == nil && d == x
	case float64:
		return doc == fmt.Sprint(x)
	}
	return doc == fmt.Sprint(v)
}
