package examples

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ha2r/mip6testbed/config"
)

// TestExamplesParse checks that every example topology is valid, and that
// the ones meant for `node demo` have what it needs.
func TestExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) < 3 {
		t.Fatalf("found %d example topologies", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		topo, err := config.Parse(f, b)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if f == "two-node.yaml" || f == "line.yaml" {
			continue
		}
		for _, mn := range []string{"mn1", "mn2"} {
			if n := topo.NodeByName(mn); n == nil || n.SIPURI == "" || n.Role != config.RoleMN {
				t.Errorf("%s: no mobile node %s with a sip_uri, which node demo needs", f, mn)
			}
		}
	}
	if string(Fig4) == "" {
		t.Error("fig4.yaml is not embedded")
	}
}

// Every example is a template for node init, and only the one meant for a
// real deployment carries placeholder secrets (which a real node refuses).
func TestTemplates(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) != len(Templates) {
		t.Errorf("%d example files but %d templates: embed the new one in embed.go", len(files), len(Templates))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		name := f[:len(f)-len(".yaml")]
		if string(Templates[name]) != string(b) {
			t.Errorf("template %s is not %s", name, f)
		}
		topo, err := config.Parse(f, b)
		if err != nil {
			t.Fatal(err)
		}
		wantPlaceholders := 0
		if f == "laptop-cloud.yaml" {
			wantPlaceholders = 3
		}
		if len(topo.Placeholders) != wantPlaceholders {
			t.Errorf("%s has placeholder secrets %v, want %d", f, topo.Placeholders, wantPlaceholders)
		}
	}
}
