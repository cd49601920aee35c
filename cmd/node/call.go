package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/softphone"
)

func cmdCall(args []string) error {
	// The SIP URI may come before the flags.
	var uri string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		uri, args = args[0], args[1:]
	}
	fs := newFlags("call", "node call SIP-URI [--name NAME | --control PATH] [--duration D] [--audio-in F] [--audio-out F] [--json]")
	var cf controlFlags
	cf.register(fs)
	duration := fs.Duration("duration", 0, "how long the call lasts (default 10s; with --audio-in -, until standard input ends)")
	in := fs.String("audio-in", "", "what to send: a WAV file (8 kHz mono 16-bit), a raw S16_LE 8 kHz file, or - for standard input (default: a 440 Hz tone)")
	out := fs.String("audio-out", "", "where received audio goes: a .wav file, a raw file, or - for standard output (default: nowhere)")
	asJSON := fs.Bool("json", false, "print the call report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if uri == "" && fs.NArg() > 0 {
		uri = fs.Arg(0)
	}
	if uri == "" {
		return usageErr("call: which SIP URI? e.g. node call sip:user2@domain2 --name mn1")
	}
	path, err := cf.socket()
	if err != nil {
		return err
	}
	abs := func(p string) string {
		if p == "" || p == "-" {
			return p
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	req := control.Request{Cmd: "call", Args: map[string]string{"to": uri, "audio_in": abs(*in), "audio_out": abs(*out)}}
	if *duration > 0 {
		req.Args["duration"] = duration.String()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, err := control.Stream(ctx, path, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	if *in == "-" {
		go func() {
			io.Copy(conn, os.Stdin)
			conn.CloseWrite()
		}()
	} else {
		conn.CloseWrite()
	}
	report := os.Stdout
	if *out == "-" {
		report = os.Stderr // standard output carries the audio
	}
	for {
		typ, p, err := control.ReadFrame(conn)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the node closed the connection without a report")
			}
			return err
		}
		switch typ {
		case control.FrameData:
			os.Stdout.Write(p)
		case control.FrameError:
			return errors.New(string(p))
		case control.FrameResult:
			var r softphone.Report
			if err := json.Unmarshal(p, &r); err != nil {
				return fmt.Errorf("reading the report: %w", err)
			}
			if *asJSON {
				var v any
				json.Unmarshal(p, &v)
				enc := json.NewEncoder(report)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				fmt.Fprint(report, r.Text())
			}
			if r.Failure != "" {
				return &exitCode{code: 1, err: fmt.Errorf("the call failed: %s", r.Failure)}
			}
			return nil
		}
	}
}
