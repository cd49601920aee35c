package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file store round-trips, is readable by its owner only, and says how to
// recover from a file it cannot read.
func TestFileStore(t *testing.T) {
	dir := t.TempDir()
	s := Dir{Path: filepath.Join(dir, "sub"), Node: "ha1"}.Store("mobility")
	var v map[string]int
	if err := s.Load(&v); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an absent file: %v", err)
	}
	if err := Load(s, &v); err != nil {
		t.Fatalf("Load of nothing yet: %v", err)
	}
	if err := s.Save(map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sub", "ha1.mobility.json")
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("state file %v, %v", fi, err)
	}
	if err := Load(s, &v); err != nil || v["a"] != 1 {
		t.Fatalf("loaded %v, %v", v, err)
	}
	os.WriteFile(p, []byte("{"), 0o600)
	if err := Load(s, &v); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("a corrupt file: %v", err)
	}
}

// A saver writes only what changed, at once when asked, and does nothing
// without a store.
func TestSaver(t *testing.T) {
	m := &Memory{}
	n := 0
	s := NewSaver(m, func() any { n++; return n }, func(err error) { t.Error(err) })
	s.Flush()
	if n != 0 {
		t.Fatal("saved without a change")
	}
	s.Changed()
	s.Flush()
	s.Flush()
	if n != 1 {
		t.Fatalf("%d saves for one change", n)
	}
	s.Now()
	var got int
	if err := m.Load(&got); err != nil || got != 2 {
		t.Fatalf("saved %d, %v", got, err)
	}
	none := NewSaver(nil, nil, nil)
	none.Changed()
	none.Flush()
	none.Now()
	var ms Memories
	if ms.Store("a") != ms.Store("a") || ms.Store("a") == ms.Store("b") {
		t.Error("Memories hands out one store per part")
	}
}
