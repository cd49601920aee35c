// Package control is the local control socket of a running node: `node
// status`, `node handover` and `node call` talk to it. One JSON request per
// connection, one JSON response back.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Request is a command to a node.
type Request struct {
	Cmd  string            `json:"cmd"`
	Args map[string]string `json:"args,omitempty"`
}

// Response is a node's answer.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Handler answers one command.
type Handler func(ctx context.Context, args map[string]string) (any, error)

// Server serves a node's commands on a unix socket.
type Server struct {
	path string
	ln   net.Listener

	mu       sync.Mutex
	handlers map[string]Handler
	wg       sync.WaitGroup
}

// DefaultPath is where a node called name listens unless told otherwise:
// $XDG_RUNTIME_DIR/mip6/NAME.sock, or /tmp/mip6-UID/NAME.sock.
func DefaultPath(name string) string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir != "" {
		dir = filepath.Join(dir, "mip6")
	} else {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("mip6-%d", os.Getuid()))
	}
	return filepath.Join(dir, name+".sock")
}

// Listen creates the socket at path (removing a stale one).
func Listen(path string) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("control: creating %s: %w", filepath.Dir(path), err)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s is in use by a running node; stop it or pass another --control path", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listening on %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	return &Server{path: path, ln: ln, handlers: map[string]Handler{}}, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Handle registers a command.
func (s *Server) Handle(cmd string, h Handler) {
	s.mu.Lock()
	s.handlers[cmd] = h
	s.mu.Unlock()
}

// Serve answers requests until Close.
func (s *Server) Serve(ctx context.Context) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	var req Request
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewDecoder(c).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	c.SetReadDeadline(time.Time{})
	s.mu.Lock()
	h, ok := s.handlers[req.Cmd]
	var names []string
	for k := range s.handlers {
		names = append(names, k)
	}
	s.mu.Unlock()
	if !ok {
		json.NewEncoder(c).Encode(Response{Error: fmt.Sprintf("unknown command %q (this node knows: %s)", req.Cmd, strings.Join(names, ", "))})
		return
	}
	data, err := h(ctx, req.Args)
	resp := Response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
	} else if data != nil {
		raw, merr := json.Marshal(data)
		if merr != nil {
			resp = Response{Error: merr.Error()}
		} else {
			resp.Data = raw
		}
	}
	json.NewEncoder(c).Encode(resp)
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	os.Remove(s.path)
	return err
}

// Call sends one request to the node listening at path.
func Call(ctx context.Context, path string, req Request) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("no node answers on %s (is it running? pass --control if it uses another socket): %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	if !resp.OK {
		return nil, errors.New(resp.Error)
	}
	return resp.Data, nil
}
