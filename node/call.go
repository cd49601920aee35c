package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/softphone"
)

// CallRequest describes a call to place from the node's phone.
type CallRequest struct {
	To       string
	Duration time.Duration // 0 with a streamed source: until it ends
	Source   softphone.Source
	Sink     softphone.Sink
}

// PlaceCall calls req.To, keeps the call up for its duration (or until the
// source ends, or the far end hangs up), hangs up and returns the report.
// A call that could not be set up returns its report (Failure says why)
// with the error.
func (n *Node) PlaceCall(ctx context.Context, req CallRequest) (softphone.Report, error) {
	if n.SIP.Phone == nil {
		return softphone.Report{}, fmt.Errorf("node %s has no phone (give it a sip_uri in the topology)", n.Cfg.Name)
	}
	var target sip.Uri
	if err := sip.ParseUri(req.To, &target); err != nil || target.User == "" {
		return softphone.Report{}, fmt.Errorf("%q is not a SIP URI like sip:user2@domain2", req.To)
	}
	ended := make(chan struct{})
	src := req.Source
	if src != nil {
		src = &endingSource{Source: src, ended: ended}
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := n.SIP.Phone.Call(setup, target, softphone.CallOptions{Source: src, Sink: req.Sink})
	if err != nil {
		if c != nil {
			return c.Report(), err
		}
		return softphone.Report{}, err
	}
	var limit <-chan time.Time
	if req.Duration > 0 {
		t := time.NewTimer(req.Duration)
		defer t.Stop()
		limit = t.C
	}
	select {
	case <-limit:
	case <-ended:
	case <-c.Done():
		return c.Report(), nil
	case <-ctx.Done():
	}
	bye, cancelBye := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelBye()
	return c.Hangup(bye), nil
}

// endingSource closes ended when its source runs out.
type endingSource struct {
	softphone.Source
	ended chan struct{}
	once  sync.Once
}

func (s *endingSource) ReadFrame(pcm []int16) error {
	err := s.Source.ReadFrame(pcm)
	if errors.Is(err, io.EOF) {
		s.once.Do(func() { close(s.ended) })
	}
	return err
}

// frameSink streams received audio to a control client.
type frameSink struct{ out *control.FrameWriter }

func (f frameSink) WriteFrame(pcm []int16) error {
	var b strings.Builder
	softphone.RawSink{W: &b}.WriteFrame(pcm)
	return f.out.Write(control.FrameData, []byte(b.String()))
}

// callCommand is the control socket's "call": audio_in and audio_out are
// files (WAV when they end in .wav, raw 8 kHz S16_LE otherwise), "-" to
// stream over the control connection, or empty (a tone; discard).
func (n *Node) callCommand(ctx context.Context, args map[string]string, in io.Reader, out *control.FrameWriter) error {
	req := CallRequest{To: args["to"]}
	if d := args["duration"]; d != "" {
		v, err := time.ParseDuration(d)
		if err != nil {
			return fmt.Errorf("duration %q: %v", d, err)
		}
		req.Duration = v
	}
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	switch p := args["audio_in"]; {
	case p == "-":
		req.Source = softphone.RawSource{R: in}
	case strings.HasSuffix(strings.ToLower(p), ".wav"):
		s, c, err := softphone.OpenWAV(p)
		if err != nil {
			return err
		}
		req.Source = s
		closers = append(closers, c.Close)
	case p != "":
		s, c, err := openRaw(p)
		if err != nil {
			return err
		}
		req.Source = s
		closers = append(closers, c.Close)
	}
	switch p := args["audio_out"]; {
	case p == "-":
		req.Sink = frameSink{out}
	case strings.HasSuffix(strings.ToLower(p), ".wav"):
		w, err := softphone.CreateWAV(filepath.Clean(p))
		if err != nil {
			return err
		}
		req.Sink = w
		closers = append(closers, w.Close)
	case p != "":
		w, c, err := createRaw(p)
		if err != nil {
			return err
		}
		req.Sink = w
		closers = append(closers, c.Close)
	}
	if req.Duration == 0 && args["audio_in"] != "-" && args["audio_in"] == "" {
		req.Duration = 10 * time.Second
	}
	rep, err := n.PlaceCall(ctx, req)
	if err != nil && rep.Failure == "" {
		return err
	}
	// A failed call still has a report: it says what failed, and the
	// client exits non-zero.
	b, _ := json.Marshal(rep)
	return out.Write(control.FrameResult, b)
}

// makeBeforeBreak says whether a commanded move goes make-before-break:
// as its command says ("true", "false"), else as the topology's
// mobility.handover says.
func (n *Node) makeBeforeBreak(said string) bool {
	switch said {
	case "true":
		return true
	case "false":
		return false
	}
	return n.Topo.Mobility.Handover == "make_before_break"
}

// RegisterControl answers the control commands every node knows.
func (n *Node) RegisterControl(srv *control.Server) {
	srv.Handle("status", func(context.Context, map[string]string) (any, error) {
		return n.Status(), nil
	})
	srv.Handle("handover", func(ctx context.Context, args map[string]string) (any, error) {
		link := args["to"]
		start := time.Now()
		if args["standby"] == "true" {
			if err := n.HoldStandby(link); err != nil {
				return nil, err
			}
			return map[string]any{"link": link, "standby": true}, nil
		}
		move := n.Handover
		if n.makeBeforeBreak(args["make_before_break"]) {
			move = n.HandoverBeforeBreak
		}
		if err := move(link); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		att, err := n.WaitAttached(ctx, link)
		if err != nil {
			return nil, err
		}
		return map[string]any{"link": att.Link.Name, "address": att.Address, "prefix": att.Prefix.String(), "took_ms": float64(time.Since(start).Microseconds()) / 1000}, nil
	})
	srv.HandleStream("call", n.callCommand)
	srv.HandleStream("trace", n.traceCommand)
	srv.Handle("release", func(context.Context, map[string]string) (any, error) {
		return nil, n.Release()
	})
	srv.Handle("hangup", func(ctx context.Context, _ map[string]string) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return n.hangupAll(ctx), nil
	})
	srv.Handle("calls", func(context.Context, map[string]string) (any, error) {
		return n.callReports(), nil
	})
}
