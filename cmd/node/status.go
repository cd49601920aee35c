package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/control"
	"github.com/ha2r/mip6testbed/node"
)

func cmdStatus(args []string) error {
	fs := newFlags("status", "node status [--name NAME | --control PATH] [--json] [--watch]")
	var cf controlFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the status as JSON (with --watch, one JSON document per line)")
	watch := fs.Bool("watch", false, "refresh every second until interrupted")
	if err := parse(fs, args); err != nil {
		return err
	}
	path, err := cf.socket()
	if err != nil {
		return err
	}
	if !*watch {
		return showStatus(context.Background(), os.Stdout, path, *asJSON, false)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := showStatus(ctx, os.Stdout, path, *asJSON, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(os.Stdout, "%s\n", err) // the node may come back: keep watching
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// showStatus asks the node at path for its status and prints it; refresh
// clears the terminal first (text) or writes one line (JSON).
func showStatus(ctx context.Context, out io.Writer, path string, asJSON, refresh bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	raw, err := control.Call(ctx, path, control.Request{Cmd: "status"})
	if err != nil {
		return err
	}
	if asJSON {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("reading status: %w", err)
		}
		enc := json.NewEncoder(out)
		if !refresh {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
	var st node.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	if refresh {
		fmt.Fprint(out, "\033[H\033[2J") // home, clear screen
	}
	printStatus(out, st, time.Now())
	return nil
}

func cmdHandover(args []string) error {
	fs := newFlags("handover", "node handover --to LINK [--make-before-break | --break-before-make | --standby] [--name NAME | --control PATH]\n\n"+
		"Without --make-before-break or --break-before-make the move goes as the topology's mobility.handover says (default: break-before-make).")
	var cf controlFlags
	cf.register(fs)
	to := fs.String("to", "", "the access link to move to (required)")
	mbb := fs.Bool("make-before-break", false, "attach to LINK and register there while the current link carries the traffic, and switch only then")
	bbm := fs.Bool("break-before-make", false, "leave the current link, then attach to LINK and register there")
	standby := fs.Bool("standby", false, "attach to LINK as well and hold it in reserve: the node moves there by itself when its current path goes silent (300 ms)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageErr("handover: --to LINK is required")
	}
	mode := ""
	switch {
	case *mbb && *bbm:
		return usageErr("handover: --make-before-break and --break-before-make: choose one")
	case *mbb:
		mode = "true"
	case *bbm:
		mode = "false"
	}
	path, err := cf.socket()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	raw, err := control.Call(ctx, path, control.Request{Cmd: "handover", Args: map[string]string{"to": *to, "make_before_break": mode, "standby": fmt.Sprint(*standby)}})
	if err != nil {
		return err
	}
	var r struct {
		Link    string  `json:"link"`
		Address string  `json:"address"`
		Prefix  string  `json:"prefix"`
		TookMS  float64 `json:"took_ms"`
	}
	json.Unmarshal(raw, &r)
	if *standby {
		fmt.Printf("holding %s in reserve: the node moves there if its current path goes silent\n", *to)
		return nil
	}
	fmt.Printf("attached to %s (prefix %s) as %s in %.1f ms\n", r.Link, r.Prefix, r.Address, r.TookMS)
	return nil
}
