// Package state keeps what a node must not lose when it restarts: a home
// agent's bindings and AH sequence numbers, an HA2R's anchors and keys, a
// registrar's registrations. Each part of a node has its own Store (a JSON
// file on a real node, memory in the lab), and a Saver writes a part's
// snapshot at most once a second when it changed, at once when asked.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Store holds one part's saved state.
type Store interface {
	// Load decodes the saved state into v; os.ErrNotExist when there is
	// none yet.
	Load(v any) error
	// Save replaces the saved state with v, atomically.
	Save(v any) error
}

// Stores hands out a node's stores, one per part ("mobility",
// "registrar").
type Stores interface {
	Store(part string) Store
}

// Dir keeps each part of node Node in Path/Node.part.json.
type Dir struct {
	Path, Node string
}

func (d Dir) Store(part string) Store {
	return File{Path: filepath.Join(d.Path, d.Node+"."+part+".json")}
}

// File is a Store in one JSON file, written to a temporary file and renamed
// over the old one, readable by its owner only (it may hold keys).
type File struct{ Path string }

func (f File) Load(v any) error {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("state file %s: %w (delete it to start afresh)", f.Path, err)
	}
	return nil
}

func (f File) Save(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), filepath.Base(f.Path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Path)
}

// Memory is a Store in memory.
type Memory struct {
	mu sync.Mutex
	b  []byte
}

func (m *Memory) Load(v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return os.ErrNotExist
	}
	return json.Unmarshal(m.b, v)
}

func (m *Memory) Save(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.b = b
	m.mu.Unlock()
	return nil
}

// Memories keeps a node's parts in memory: the lab keeps one per node, so
// that a node it restarts finds its state as a real one finds its files.
type Memories struct {
	mu    sync.Mutex
	parts map[string]*Memory
}

func (m *Memories) Store(part string) Store {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parts == nil {
		m.parts = map[string]*Memory{}
	}
	s, ok := m.parts[part]
	if !ok {
		s = &Memory{}
		m.parts[part] = s
	}
	return s
}

// Load reads the saved state into v; no store, or no state yet, is not an
// error.
func Load(s Store, v any) error {
	if s == nil {
		return nil
	}
	if err := s.Load(v); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Saver saves a part's snapshot when told it changed (Flush, called once a
// second by its owner), at once when asked (Now: before using an AH
// sequence number above the last reservation), and never when it has no
// store (a nil Saver does nothing).
type Saver struct {
	store Store
	snap  func() any
	onErr func(error)
	mu    sync.Mutex // serialises saves
	dirty bool
}

// NewSaver returns a Saver of snap's result into store, or nil without a
// store.
func NewSaver(store Store, snap func() any, onErr func(error)) *Saver {
	if store == nil {
		return nil
	}
	return &Saver{store: store, snap: snap, onErr: onErr}
}

// Changed marks the state as changed since the last save.
func (s *Saver) Changed() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// Flush saves if something changed since the last save.
func (s *Saver) Flush() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty {
		s.saveLocked()
	}
}

// Now saves at once.
func (s *Saver) Now() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saveLocked()
}

func (s *Saver) saveLocked() {
	if err := s.store.Save(s.snap()); err != nil {
		s.onErr(err)
		return
	}
	s.dirty = false
}
