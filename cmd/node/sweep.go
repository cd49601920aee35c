package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/examples"
	"github.com/ha2r/mip6testbed/sweep"
)

// cmdSweep measures figures across a parameter range in this process.
func cmdSweep(args []string) error {
	if len(args) > 0 && args[0] == "calls" {
		return sweepCalls(args[1:])
	}
	return sweepGrid(args)
}

// parseSchemes reads a --scheme value: standard, ha2r or both.
func parseSchemes(cmd, s string) ([]config.Scheme, error) {
	switch s {
	case "both":
		return []config.Scheme{config.SchemeStandard, config.SchemeHA2R}, nil
	case string(config.SchemeStandard), string(config.SchemeHA2R):
		return []config.Scheme{config.Scheme(s)}, nil
	}
	return nil, usageErr("%s: --scheme %q: use standard, ha2r or both", cmd, s)
}

// readTopology reads and checks --config FILE for a command that runs the
// topology in the lab; empty means the built-in fig4.
func readTopology(path string) ([]byte, string, error) {
	if path == "" {
		return examples.Fig4, "fig4.yaml (built in)", nil
	}
	b, err := config.Read(path)
	if err != nil {
		return nil, "", err
	}
	if _, err := config.Parse(path, b); err != nil {
		return nil, "", err
	}
	return b, path, nil
}

// sweepCalls is "node sweep calls": call setup and survival of a move as
// loss on every underlay traversal grows, for each scheme.
func sweepCalls(args []string) error {
	fs := newFlags("sweep calls", "node sweep calls [--loss 0,5,10,20,30] [--calls 50] [--batch 10] [--talk 2s] [--scheme standard|ha2r|both] [--seed N] [--answer-t2 D] [--config FILE] [--json]")
	lossList := fs.String("loss", "0,5,10,20,30", "loss rates to measure, in percent, on every underlay traversal (every hop)")
	calls := fs.Int("calls", 50, "calls per loss rate and scheme")
	batchSize := fs.Int("batch", 10, "calls placed at once; MN1 moves once while each batch talks")
	talk := fs.Duration("talk", 2*time.Second, "how long each batch talks before and after its move")
	scheme := fs.String("scheme", "both", "standard, ha2r or both (side by side, a lab each)")
	seed := fs.Uint64("seed", 1, "seed of the emulated loss")
	cfgPath := fs.String("config", "", "topology file (default: the built-in examples/fig4.yaml): mn1 calls mn2 and moves between ar1 and ar1p")
	answerT2 := fs.Duration("answer-t2", 0, "cap on the interval between a phone's 2xx retransmissions (RFC 3261 T2; default: the topology's timers.sip_t2)")
	asJSON := fs.Bool("json", false, "print the points as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	o := sweep.CallOptions{Topology: examples.Fig4, TopologyName: "fig4.yaml (built in)", Calls: *calls, Batch: *batchSize, Talk: *talk, Seed: *seed, AnswerT2: *answerT2}
	for _, f := range strings.Split(*lossList, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v < 0 || v > 60 {
			return usageErr("sweep calls: --loss %q: give percentages from 0 to 60, like 0,5,10", f)
		}
		o.Loss = append(o.Loss, v/100)
	}
	var err error
	if o.Schemes, err = parseSchemes("sweep calls", *scheme); err != nil {
		return err
	}
	if *calls < 1 || *batchSize < 1 {
		return usageErr("sweep calls: --calls and --batch must be at least 1")
	}
	if o.Topology, o.TopologyName, err = readTopology(*cfgPath); err != nil {
		return err
	}
	o.Progress = func(p sweep.CallPoint) {
		fmt.Fprintf(os.Stderr, "%s at %.0f %% loss: %d of %d calls set up, %d survived the move\n",
			p.Scheme, 100*p.Loss, p.SetUp, p.Calls, p.Survived)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pts, err := sweep.Calls(ctx, o)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(pts); e != nil {
			return e
		}
	} else {
		writeCallTable(os.Stdout, pts)
	}
	return err
}

// writeCallTable prints the sweep's points, one row each, then what went
// wrong, point by point.
func writeCallTable(w io.Writer, pts []sweep.CallPoint) {
	fmt.Fprintf(w, "%-9s %5s  %-10s %-10s %6s %8s %17s %9s %9s\n", "scheme", "loss", "home reg", "MN auth", "calls", "set up", "setup p50 / p95", "survived", "RTP lost")
	seconds := func(d time.Duration, ok bool) string {
		if !ok {
			return "not in 95s"
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	for _, p := range pts {
		auth := "-"
		if p.Scheme == config.SchemeHA2R {
			auth = seconds(p.Authentication, p.Authenticated)
		}
		fmt.Fprintf(w, "%-9s %4.0f%%  %-10s %-10s %6d %7.1f%% %7.2f / %5.2f s %8.1f%% %8.1f%%\n", p.Scheme, 100*p.Loss,
			seconds(p.HomeRegistration, p.HomeRegistered), auth, p.Calls,
			100*p.SetupRate(), p.SetupMedian.Seconds(), p.SetupP95.Seconds(), 100*p.SurvivalRate(), 100*p.RTPLoss)
	}
	for _, p := range pts {
		for _, k := range sortedKeys(p.Failures) {
			fmt.Fprintf(w, "  %s at %.0f %%: %d calls not set up: %s\n", p.Scheme, 100*p.Loss, p.Failures[k], k)
		}
		for _, k := range sortedKeys(p.Broken) {
			fmt.Fprintf(w, "  %s at %.0f %%: %d calls did not survive the move: %s\n", p.Scheme, 100*p.Loss, p.Broken[k], k)
		}
		if len(p.Events) > 0 {
			var ev []string
			for _, k := range sortedKeys(p.Events) {
				ev = append(ev, fmt.Sprintf("%s %d", k, p.Events[k]))
			}
			fmt.Fprintf(w, "  %s at %.0f %%: mn1: %s\n", p.Scheme, 100*p.Loss, strings.Join(ev, ", "))
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
