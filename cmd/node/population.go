package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ha2r/mip6testbed/population"
)

// cmdPopulation is "node population": many mobile nodes in one process,
// moving and calling at random, and what that costs the routers.
func cmdPopulation(args []string) error {
	o := population.Defaults()
	fs := newFlags("population", "node population [--mns 200] [--routers 8] [--scheme both] [--duration 60s] [--move-every 30s] [--call-every 60s] [--talk 10s] [--seed N] [--json]")
	fs.IntVar(&o.MNs, "mns", o.MNs, "mobile nodes (half homed at each of two home agents)")
	fs.IntVar(&o.Routers, "routers", o.Routers, "access routers, each an HA2R in the paper's scheme")
	scheme := fs.String("scheme", "both", "standard, ha2r or both (one after the other)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long the pattern runs once every node registered")
	fs.DurationVar(&o.MoveEvery, "move-every", o.MoveEvery, "each node's mean time between moves (0: no moves)")
	fs.DurationVar(&o.CallEvery, "call-every", o.CallEvery, "each node's mean time between the calls it places (0: no calls)")
	fs.DurationVar(&o.Talk, "talk", o.Talk, "how long each call talks")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the moves, calls and emulated delays")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.MNs < 2 || o.MNs > 2000 || o.Routers < 2 || o.Routers > 200 || o.Duration <= 0 {
		return usageErr("population: --mns from 2 to 2000, --routers from 2 to 200, --duration above 0")
	}
	var err error
	if o.Schemes, err = parseSchemes("population", *scheme); err != nil {
		return err
	}
	o.Progress = func(s string) { fmt.Fprintln(os.Stderr, s) }
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := population.Run(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	writePopulation(os.Stdout, rs)
	return nil
}

func writePopulation(out io.Writer, rs []population.Result) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer w.Flush()
	for _, r := range rs {
		fmt.Fprintf(w, "%s: %d mobile nodes, %d access routers; all registered after %v; pattern ran %v\n", r.Scheme, r.MNs, r.AccessRouters,
			r.Ready.Round(time.Millisecond), r.Duration.Round(time.Second))
		fmt.Fprintf(w, "  moves %d (%d did not attach in 10 s); calls %d, set up %d\n", r.Moves, r.MovesFailed, r.Calls, r.CallsSetUp)
		fmt.Fprintf(w, "  call quality, both ends (p5 / p50 / p95): MOS %.2f / %.2f / %.2f, loss %.2f / %.2f / %.2f %%\n",
			r.MOS[0], r.MOS[1], r.MOS[2], r.LossPercent[0], r.LossPercent[1], r.LossPercent[2])
		fmt.Fprintf(w, "  process: %.1f CPU seconds over the pattern (%.0f %% of one core); resident memory %.0f MB (Go heap %.0f MB, mostly receive buffers never touched)\n",
			r.CPUSeconds, 100*r.CPUSeconds/r.Duration.Seconds(), r.RSSMB, r.HeapMB)
		fmt.Fprintf(w, "\n  ROUTER\tROLE\tMH MSG/S\tMH BYTES/S\tSIP REQ/S\tBINDINGS / ANCHORS\n")
		for _, l := range r.Loads {
			fmt.Fprintf(w, "  %s\t%s\t%.1f\t%.0f\t%.1f\t%d\n", l.Name, l.Role, l.MHPerSec, l.MHBytesPerSec, l.SIPPerSec, l.Held)
		}
		fmt.Fprintln(w)
	}
}
