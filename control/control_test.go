package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T) *Server {
	t.Helper()
	s, err := Listen(filepath.Join(t.TempDir(), "n.sock"))
	if err != nil {
		t.Fatal(err)
	}
	s.timeout = 300 * time.Millisecond
	s.Handle("status", func(context.Context, map[string]string) (any, error) { return "fine", nil })
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx)
	t.Cleanup(func() { cancel(); s.Close() })
	return s
}

// answer sends raw bytes as a request and returns the node's response.
func answer(t *testing.T, s *Server, raw []byte) Response {
	t.Helper()
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	go c.Write(raw) // may block on a large request the node stopped reading
	var r Response
	b, _ := io.ReadAll(c)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("answer %q: %v", b, err)
	}
	return r
}

// A 50 MB command is refused once 64 KiB are read, and the answer echoes
// none of it (it once read the whole command and quoted it back).
func TestOversizedRequestRefused(t *testing.T) {
	s := serve(t)
	huge := append(append([]byte(`{"cmd":"`), bytes.Repeat([]byte("A"), 50<<20)...), `"}`...)
	r := answer(t, s, huge)
	if r.OK || len(r.Error) > 200 || strings.Contains(r.Error, "AAAA") {
		t.Fatalf("answer to 50 MB: ok %v, error of %d bytes: %.80q", r.OK, len(r.Error), r.Error)
	}
	// An unknown command is not quoted back either.
	r = answer(t, s, []byte(`{"cmd":"`+strings.Repeat("B", 60<<10)+`"}`))
	if r.OK || strings.Contains(r.Error, "BBBB") || !strings.Contains(r.Error, "status") {
		t.Fatalf("unknown command: %.120q", r.Error)
	}
	// A request that never ends is cut off at the timeout.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte(`{"cmd":`))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if !strings.Contains(string(b), "bad request") {
		t.Fatalf("a request left open got %q", b)
	}
	// And a good one still works.
	if r := answer(t, s, []byte(`{"cmd":"status"}`)); !r.OK {
		t.Fatalf("status: %+v", r)
	}
}
