// Package control is the local control socket of a running node: `node
// status`, `node handover` and `node call` talk to it. One JSON request per
// connection, one JSON response back.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
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

// StreamHandler answers a command that streams: it reads what the client
// sends after the request from in, and writes Frames to out.
type StreamHandler func(ctx context.Context, args map[string]string, in io.Reader, out *FrameWriter) error

// Frame types of a streaming answer.
const (
	FrameData   = 'D' // payload bytes (audio)
	FrameResult = 'R' // the final JSON result
	FrameError  = 'E' // a final error message
)

// FrameWriter writes length-prefixed frames: type (1 byte), length (4
// bytes, big-endian), payload.
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write sends one frame.
func (f *FrameWriter) Write(typ byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	hdr := []byte{typ, byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}
	if _, err := f.w.Write(hdr); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

// ReadFrame reads one frame.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1])<<24 | int(hdr[2])<<16 | int(hdr[3])<<8 | int(hdr[4])
	if n > 16<<20 {
		return 0, nil, fmt.Errorf("control: frame of %d bytes", n)
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return hdr[0], p, err
}

// MaxRequest bounds a request's JSON; RequestTimeout is how long a client
// may take to send it. A request beyond either is refused with a fixed
// message that echoes nothing of what was sent.
const (
	MaxRequest     = 64 << 10
	RequestTimeout = 5 * time.Second
)

// Server serves a node's commands on a unix socket.
type Server struct {
	path string
	ln   net.Listener
	// timeout is RequestTimeout (tests shorten it).
	timeout time.Duration

	mu       sync.Mutex
	handlers map[string]Handler
	streams  map[string]StreamHandler
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
	return &Server{path: path, ln: ln, timeout: RequestTimeout, handlers: map[string]Handler{}, streams: map[string]StreamHandler{}}, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Handle registers a command.
func (s *Server) Handle(cmd string, h Handler) {
	s.mu.Lock()
	s.handlers[cmd] = h
	s.mu.Unlock()
}

// HandleStream registers a streaming command.
func (s *Server) HandleStream(cmd string, h StreamHandler) {
	s.mu.Lock()
	s.streams[cmd] = h
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
	c.SetReadDeadline(time.Now().Add(s.timeout))
	// The limit bounds the request only: what a streaming command reads
	// after it comes from the connection itself.
	dec := json.NewDecoder(io.LimitReader(c, MaxRequest))
	if err := dec.Decode(&req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: fmt.Sprintf("bad request: not one JSON request of at most %d KiB sent within %v", MaxRequest>>10, s.timeout)})
		return
	}
	c.SetReadDeadline(time.Time{})
	s.mu.Lock()
	sh, streaming := s.streams[req.Cmd]
	s.mu.Unlock()
	if streaming {
		// What the decoder read ahead belongs to the stream.
		in := io.MultiReader(dec.Buffered(), c)
		out := &FrameWriter{w: c}
		if err := sh(ctx, req.Args, in, out); err != nil {
			out.Write(FrameError, []byte(err.Error()))
		}
		return
	}
	s.mu.Lock()
	h, ok := s.handlers[req.Cmd]
	var names []string
	for k := range s.handlers {
		names = append(names, k)
	}
	for k := range s.streams {
		names = append(names, k)
	}
	s.mu.Unlock()
	if !ok {
		sort.Strings(names)
		json.NewEncoder(c).Encode(Response{Error: "unknown command (this node knows: " + strings.Join(names, ", ") + ")"})
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

// Stream sends a streaming request and returns the connection: write the
// stream to it (CloseWrite ends it), read frames from it.
func Stream(ctx context.Context, path string, req Request) (*net.UnixConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("no node answers on %s (is it running? pass --control if it uses another socket): %w", path, err)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		c.Close()
		return nil, err
	}
	return c.(*net.UnixConn), nil
}
