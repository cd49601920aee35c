package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/report"
)

// cmdDemo runs the paper's experiment in this process for each scheme and
// prints the comparison (the README's main job).
func cmdDemo(args []string) error {
	o := demo.Defaults()
	fs := newFlags("demo", "node demo [--scheme standard|ha2r|both] [--moves N] [--talk D] [--access-delay D] [--backbone-delay D] [--loss PCT] [--seed N] [--config FILE] [--out DIR] [--json]")
	cfgPath := fs.String("config", "", "topology file (default: the built-in examples/fig4.yaml); it needs mobile nodes mn1 and mn2 with sip_uri")
	scheme := fs.String("scheme", "both", "which scheme to run: standard (RFC 6275 with Return Routability), ha2r (the paper's), or both")
	fs.IntVar(&o.Moves, "moves", o.Moves, "how many times MN1 moves during the call (through its access links in file order)")
	talk := fs.Duration("talk", o.Before, "how long the call runs before the first move, between moves and after the last")
	fs.Func("access-delay", "one-way delay of every access link (default: the file's)", durationFlag(&o.AccessDelay))
	fs.Func("backbone-delay", "one-way delay between every pair of routers (default: the file's)", durationFlag(&o.BackboneDelay))
	loss := fs.Float64("loss", 0, "packet loss, in percent, added on every access link")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the emulated losses and delays (same seed, same message counts)")
	out := fs.String("out", "demo-report", "directory to write the report to (index.html, report.json, report.txt)")
	asJSON := fs.Bool("json", false, "print the comparison as JSON instead of text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("demo: unexpected argument %q (see node demo --help)", fs.Arg(0))
	}
	switch *scheme {
	case "both":
	case string(config.SchemeStandard), string(config.SchemeHA2R):
		o.Schemes = []config.Scheme{config.Scheme(*scheme)}
	default:
		return usageErr("demo: --scheme %q: use standard, ha2r or both", *scheme)
	}
	if o.Moves < 0 || o.Moves > 20 {
		return usageErr("demo: --moves %d: use 0 to 20", o.Moves)
	}
	if *talk < time.Second || *talk > 10*time.Minute {
		return usageErr("demo: --talk %v: use 1s to 10m", *talk)
	}
	o.Before, o.Between, o.After = *talk, *talk, *talk
	if *loss < 0 || *loss > 50 {
		return usageErr("demo: --loss %v: use a percentage from 0 to 50", *loss)
	}
	o.Loss = *loss / 100
	if *cfgPath != "" {
		b, err := os.ReadFile(*cfgPath)
		if err != nil {
			return usageErr("demo: %v", err)
		}
		if _, err := config.Parse(*cfgPath, b); err != nil {
			return err
		}
		o.Topology, o.Name = b, *cfgPath
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := demo.Run(ctx, o)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted")
	}
	rep := report.New(o, rs)
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	if err != nil {
		return err
	}
	if err := rep.WriteDir(*out); err != nil {
		return err
	}
	abs, _ := filepath.Abs(filepath.Join(*out, "index.html"))
	fmt.Fprintf(os.Stderr, "report written to %s\n", abs)
	return nil
}

// durationFlag parses a non-negative duration into d.
func durationFlag(d *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if v < 0 || v > 10*time.Second {
			return fmt.Errorf("%v: use 0 to 10s", v)
		}
		*d = v
		return nil
	}
}
