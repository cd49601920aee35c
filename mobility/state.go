package mobility

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// StateStore keeps what a router's engine must not lose when it restarts:
// the AH sequence numbers it may have used with each peer (a restarted node
// that started again from 1 would be refused by its peers' replay windows,
// RFC 4302 3.4.3), and its bindings and anchors, so that a restart costs
// only its own downtime instead of every mobile node's next refresh.
type StateStore interface {
	// Load decodes the saved state into v; os.ErrNotExist when there is
	// none yet.
	Load(v any) error
	// Save replaces the saved state with v, atomically.
	Save(v any) error
}

// FileStore is a StateStore in one JSON file, written to a temporary file
// and renamed over the old one, readable by its owner only (it holds
// MN-HA2R keys).
type FileStore struct{ Path string }

func (f FileStore) Load(v any) error {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("mobility: state file %s: %w (delete it to start afresh)", f.Path, err)
	}
	return nil
}

func (f FileStore) Save(v any) error {
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

// MemoryStore is a StateStore in memory: the lab keeps one per node, so
// that a node it restarts finds its state as a real one finds its file.
type MemoryStore struct {
	mu sync.Mutex
	b  []byte
}

func (m *MemoryStore) Load(v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.b == nil {
		return os.ErrNotExist
	}
	return json.Unmarshal(m.b, v)
}

func (m *MemoryStore) Save(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.b = b
	m.mu.Unlock()
	return nil
}

// ahSeqBlock is how many AH sequence numbers an engine reserves at once: it
// saves its state before using a number above the last reservation, so a
// restart continues above every number that may have been sent.
const ahSeqBlock = 1024

// savedBinding is a binding as a state file holds it (Binding hides Key
// from JSON, for status output).
type savedBinding struct {
	Binding
	Key []byte `json:"key,omitempty"`
}

func saveBindings(c *BindingCache) []savedBinding {
	var out []savedBinding
	for _, b := range c.All() {
		out = append(out, savedBinding{Binding: b, Key: b.Key})
	}
	return out
}

// restoreBindings puts saved bindings that have not expired back.
func restoreBindings(c *BindingCache, saved []savedBinding) int {
	now := c.clk.Now()
	n := 0
	for _, s := range saved {
		if left := s.Expires.Sub(now); left > 0 {
			b := s.Binding
			b.Key = s.Key
			c.Put(b, left)
			n++
		}
	}
	return n
}

// persister saves an engine's state at most once a second when it changed,
// at once when asked (an AH reservation), and when the engine closes.
type persister struct {
	store StateStore
	snap  func() any
	onErr func(error)
	mu    sync.Mutex // serialises saves
	dirty bool
}

func (p *persister) changed() {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.dirty = true
	p.mu.Unlock()
}

// flush saves if something changed since the last save.
func (p *persister) flush() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.dirty {
		return
	}
	p.saveLocked()
}

// now saves at once.
func (p *persister) now() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.saveLocked()
}

func (p *persister) saveLocked() {
	if err := p.store.Save(p.snap()); err != nil {
		p.onErr(err)
		return
	}
	p.dirty = false
}

// load reads the saved state into v; no state yet is not an error.
func loadState(store StateStore, v any) error {
	if store == nil {
		return nil
	}
	if err := store.Load(v); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
