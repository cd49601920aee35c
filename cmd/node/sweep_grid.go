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
	"github.com/ha2r/mip6testbed/sweep"
)

// sweepGrid is "node sweep --vary NAME=FROM..TO[/STEP]": the demo's
// scenario over a parameter's range, both schemes, several runs per point,
// written as CSV, JSON and a page of SVG plots.
func sweepGrid(args []string) error {
	fs := newFlags("sweep", "node sweep --vary NAME=FROM..TO[/STEP] [--runs 3] [--scheme both] [--talk 1s] [--seed N] [--config FILE] [--out DIR]\n"+
		"       node sweep calls ...   (call setup and survival under loss: node sweep calls --help)\n\n"+
		"NAME is backbone-delay, ha-delay (between the two home agents), neighbour-delay (old to new access\n"+
		"router), access-delay, loss (percent on every access link) or moves (per call).")
	vary := fs.String("vary", "", "the parameter and its values, like neighbour-delay=1ms..40ms, loss=0..10/2, moves=0..6 or ha-delay=5ms,20ms,50ms (required)")
	runs := fs.Int("runs", 3, "runs per value and scheme (seeds --seed, --seed+1, ...)")
	scheme := fs.String("scheme", "both", "standard, ha2r or both")
	talk := fs.Duration("talk", time.Second, "how long the call runs before the first move, between moves and after the last")
	seed := fs.Uint64("seed", 1, "seed of the first run")
	cfgPath := fs.String("config", "", "topology file (default: the built-in examples/fig4.yaml)")
	out := fs.String("out", "sweep-report", "directory for sweep.csv, sweep.json and index.html")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *vary == "" || fs.NArg() > 0 {
		return usageErr("sweep: give --vary NAME=FROM..TO[/STEP] (see node sweep --help)")
	}
	v, err := sweep.ParseVary(*vary)
	if err != nil {
		return usageErr("sweep: %v", err)
	}
	if *runs < 1 || *runs > 50 || *talk < 500*time.Millisecond {
		return usageErr("sweep: --runs from 1 to 50 and --talk from 500ms")
	}
	o := demo.Defaults()
	o.Before, o.Between, o.After, o.Seed = *talk, *talk, *talk, *seed
	if o.Schemes, err = parseSchemes("sweep", *scheme); err != nil {
		return err
	}
	if *cfgPath != "" {
		if o.Topology, o.Name, err = readTopology(*cfgPath); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	total := len(v.Values) * *runs * len(o.Schemes)
	done := 0
	start := time.Now()
	samples, err := sweep.Grid(ctx, sweep.GridOptions{Base: o, Vary: v, Runs: *runs, Progress: func(x float64, s config.Scheme, run int) {
		done++
		fmt.Fprintf(os.Stderr, "[%d/%d] %s=%g %s, run %d\n", done, total, v.Param.Name, x, s, run+1)
	}})
	if err != nil {
		return err
	}
	g := &sweep.GridReport{Param: v.Param.Name, Unit: v.Param.Unit, Values: v.Values, Runs: *runs, Seed: *seed, Schemes: o.Schemes, Samples: samples}
	if err := g.WriteDir(*out); err != nil {
		return err
	}
	abs, _ := filepath.Abs(filepath.Join(*out, "index.html"))
	fmt.Printf("%d runs in %v; plots in %s, every sample in sweep.csv and sweep.json\n", len(samples), time.Since(start).Round(time.Second), abs)
	return nil
}
