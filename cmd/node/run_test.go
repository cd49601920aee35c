package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ha2r/mip6testbed/config"
)

// Every node of a testbed started with the same --pcap writes its own
// file (a literal path shared by all of them came out corrupt).
func TestCapturePathPerNode(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new") + "/"
	cases := []struct{ arg, want string }{
		{dir, filepath.Join(dir, "mn1.pcap")},                                       // an existing directory
		{fresh, filepath.Join(dir, "new", "mn1.pcap")},                              // a directory to create
		{filepath.Join(dir, "cap-{name}.pcap"), filepath.Join(dir, "cap-mn1.pcap")}, // a pattern
		{filepath.Join(dir, "one.pcap"), filepath.Join(dir, "one.pcap")},            // a file
	}
	for _, c := range cases {
		got, err := capturePath(c.arg, "mn1")
		if err != nil || got != c.want {
			t.Errorf("capturePath(%q) = %q, %v; want %q", c.arg, got, err, c.want)
		}
	}
	if fi, err := os.Stat(fresh); err != nil || !fi.IsDir() {
		t.Errorf("%s was not created: %v", fresh, err)
	}
	a, _ := capturePath(dir, "mn1")
	b, _ := capturePath(dir, "mn2")
	if a == b {
		t.Errorf("two nodes share the capture %s", a)
	}
}

// The same kind of error exits with the same status whatever the
// subcommand: a missing or bad topology file is 2 (a missing file was 1
// with run and 2 with demo).
func TestBadTopologyExitStatus(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: t\nlinks: [{name: l\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{missing, bad} {
		for _, args := range [][]string{
			{"run", "--config", file, "--name", "x"},
			{"demo", "--config", file},
			{"sweep", "calls", "--config", file},
			{"testbed-plan", "--config", file},
		} {
			if got := run(args); got != 2 {
				t.Errorf("node %v exited %d, want 2", args, got)
			}
		}
	}
}

// node init writes a topology that loads, with fresh secrets, readable by
// its owner only, and will not overwrite one; a real node refuses a
// template's placeholder secrets (exit 2) and runs with init's.
func TestInitAndPlaceholders(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if got := run([]string{"init", "--template", "laptop-cloud", file}); got != 0 {
		t.Fatalf("init exited %d", got)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("init wrote %v, %v; want mode 0600", fi, err)
	}
	topo, err := config.Load(file)
	if err != nil || len(topo.Placeholders) != 0 {
		t.Fatalf("init's file: %v, placeholders %v", err, topo.Placeholders)
	}
	if got := run([]string{"init", file}); got != 2 {
		t.Errorf("init over an existing file exited %d, want 2", got)
	}
	if got := run([]string{"init", "--force", "--template", "two-node", file}); got != 0 {
		t.Errorf("init --force exited %d", got)
	}
	if got := run([]string{"run", "--config", "../../examples/laptop-cloud.yaml", "--name", "mn1"}); got != 2 {
		t.Errorf("run with the template's placeholder secrets exited %d, want 2", got)
	}
	if got := run([]string{"keygen"}); got != 0 {
		t.Errorf("keygen exited %d", got)
	}
}
