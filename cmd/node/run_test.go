package main

import (
	"os"
	"path/filepath"
	"testing"
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
