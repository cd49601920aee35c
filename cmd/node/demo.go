package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ha2r/mip6testbed/demo"
	"github.com/ha2r/mip6testbed/report"
)

// cmdDemo runs the paper's experiment in this process for each scheme and
// prints the comparison (the README's main job).
func cmdDemo(args []string) error {
	o := demo.Defaults()
	fs := newFlags("demo", "node demo [--scheme standard|ha2r|both] [--moves N] [--talk D] [--access-delay D] [--backbone-delay D] [--loss PCT] [--handover bbm|mbb|both] [--seed N] [--runs N] [--config FILE] [--out DIR] [--json]\n\n"+
		"Exit status: 0 when every claim of the paper checked holds, 3 when one does not (or cannot be told),\n1 when the run itself failed, 2 for bad usage or a bad topology file.")
	cfgPath := fs.String("config", "", "topology file (default: the built-in examples/fig4.yaml); it needs mobile nodes mn1 and mn2 with sip_uri")
	scheme := fs.String("scheme", "both", "which scheme to run: standard (RFC 6275 with Return Routability), ha2r (the paper's), or both")
	fs.IntVar(&o.Moves, "moves", o.Moves, "how many times MN1 moves during the call (through its access links in file order)")
	talk := fs.Duration("talk", o.Before, "how long the call runs before the first move, between moves and after the last")
	fs.Func("access-delay", "one-way delay of every access link (default: the file's)", durationFlag(&o.AccessDelay))
	fs.Func("backbone-delay", "one-way delay between every pair of routers (default: the file's)", durationFlag(&o.BackboneDelay))
	loss := fs.Float64("loss", 0, "packet loss, in percent, added on every access link")
	handover := fs.String("handover", "bbm", "how MN1 moves: bbm (break-before-make: leave, then attach and register), mbb (make-before-break: attach and register on the next link while the old one carries the call), or both (the experiment each way, and a table that compares them; reports in --out/bbm and --out/mbb)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "seed of the emulated losses and delays (same seed, same message counts)")
	out := fs.String("out", "demo-report", "directory to write the report to (index.html, report.json, report.txt)")
	asJSON := fs.Bool("json", false, "print the comparison as JSON instead of text")
	runs := fs.Int("runs", 1, "run the experiment this many times, with seeds --seed, --seed+1, ...; every figure is then shown as median [min-max] (and from 6 runs on the median's 95 % interval)")
	testbed := fs.String("testbed", "", "run one scheme (--scheme) on the running namespace testbed whose state directory this is, instead of in this process (scripts/testbed.sh demo)")
	switchCmd := fs.String("switch", "", "with --testbed: the command that moves a host's underlay, given HOST LINK (scripts/testbed.sh switch)")
	where := fs.String("where", "", "with --testbed: what the nodes run on, for the report")
	save := fs.String("save", "", "also write the results as JSON to this file (to render later with --from)")
	from := fs.String("from", "", "render saved results (comma-separated files written with --save) instead of running")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from != "" {
		return renderSaved(strings.Split(*from, ","), *out, *asJSON)
	}
	if fs.NArg() > 0 {
		return usageErr("demo: unexpected argument %q (see node demo --help)", fs.Arg(0))
	}
	switch *handover {
	case "bbm":
	case "mbb", "both":
		if *testbed != "" {
			return usageErr("demo: --handover %s runs in the lab only (the testbed's --switch takes the old network down first)", *handover)
		}
		if *handover == "both" && *runs != 1 {
			return usageErr("demo: --handover both runs the experiment once each way: leave out --runs")
		}
		o.MakeBeforeBreak = *handover == "mbb"
	default:
		return usageErr("demo: --handover %q: use bbm, mbb or both", *handover)
	}
	var err error
	if o.Schemes, err = parseSchemes("demo", *scheme); err != nil {
		return err
	}
	if *runs < 1 || *runs > 100 || (*runs > 1 && *testbed != "") {
		return usageErr("demo: --runs %d: use 1 to 100 (and 1 with --testbed)", *runs)
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
		if o.Topology, o.Name, err = readTopology(*cfgPath); err != nil {
			return err
		}
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *handover == "both" {
		return demoBothWays(ctx, o, *out, *asJSON)
	}
	var rs []*demo.Result
	if *testbed != "" {
		if o.Topology == nil {
			// The topology the testbed runs.
			path, err := os.ReadFile(filepath.Join(*testbed, "topology"))
			if err != nil {
				return fmt.Errorf("demo: %s is not a running testbed's directory (no topology file): %w", *testbed, err)
			}
			name := strings.TrimSpace(string(path))
			if o.Topology, err = os.ReadFile(name); err != nil {
				return err
			}
			o.Name = filepath.Base(name)
		}
		rs, err = runOnTestbed(ctx, o, *testbed, *switchCmd)
	} else {
		rs, err = demo.Run(ctx, o)
	}
	if err != nil {
		return err
	}
	all := [][]*demo.Result{rs}
	for i := 1; i < *runs && ctx.Err() == nil; i++ {
		oi := o
		oi.Seed = o.Seed + uint64(i)
		oi.Progress = nil
		fmt.Fprintf(os.Stderr, "run %d of %d (seed %d)\n", i+1, *runs, oi.Seed)
		more, err := demo.Run(ctx, oi)
		if err != nil {
			return fmt.Errorf("demo: run %d (seed %d): %w", i+1, oi.Seed, err)
		}
		all = append(all, more)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("demo: interrupted")
	}
	rep := report.NewRepeated(o, all)
	if *where != "" {
		rep.Params.Where = *where
	}
	if *save != "" {
		if err := writeFile(*save, rep.WriteJSON); err != nil {
			return err
		}
	}
	return emit(rep, *out, *asJSON)
}

// demoBothWays runs the experiment break-before-make and then
// make-before-break, writes each one's report (out/bbm, out/mbb) and prints
// the table that compares them.
func demoBothWays(ctx context.Context, o demo.Options, out string, asJSON bool) error {
	var reps [2]*report.Report
	for i, mbb := range []bool{false, true} {
		oi := o
		oi.MakeBeforeBreak = mbb
		rs, err := demo.Run(ctx, oi)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("demo: interrupted")
		}
		reps[i] = report.New(oi, rs)
		dir := filepath.Join(out, map[bool]string{false: "bbm", true: "mbb"}[mbb])
		if err := reps[i].WriteDir(dir); err != nil {
			return err
		}
		abs, _ := filepath.Abs(filepath.Join(dir, "index.html"))
		fmt.Fprintf(os.Stderr, "report written to %s\n", abs)
	}
	cmp := report.CompareHandovers(reps[0], reps[1])
	if err := writeFile(filepath.Join(out, "handovers.txt"), cmp.WriteText); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(out, "handovers.json"), cmp.WriteJSON); err != nil {
		return err
	}
	if err := printOut(cmp, asJSON); err != nil {
		return err
	}
	for _, rep := range reps {
		if !rep.AllHold() {
			return errClaimFails(rep)
		}
	}
	return nil
}

// printOut prints a report or a comparison on standard output, as JSON or
// as text.
func printOut(r interface {
	WriteText(io.Writer) error
	WriteJSON(io.Writer) error
}, asJSON bool) error {
	if asJSON {
		return r.WriteJSON(os.Stdout)
	}
	return r.WriteText(os.Stdout)
}

// errClaimFails is the exit status 3: the run worked, and one of the
// paper's claims does not hold on its figures (or cannot be told).
func errClaimFails(rep *report.Report) error {
	var bad []string
	for _, c := range rep.Claims {
		if c.Verdict != demo.VerdictHolds {
			bad = append(bad, fmt.Sprintf("%q %s", c.Claim, c.Verdict))
		}
	}
	return &exitCode{3, fmt.Errorf("demo: on this run %s (the report has the figures)", strings.Join(bad, ", "))}
}

// emit prints the comparison and writes the report directory; a claim that
// does not hold makes it return the exit status 3.
func emit(rep *report.Report, out string, asJSON bool) error {
	if err := printOut(rep, asJSON); err != nil {
		return err
	}
	if err := rep.WriteDir(out); err != nil {
		return err
	}
	abs, _ := filepath.Abs(filepath.Join(out, "index.html"))
	fmt.Fprintf(os.Stderr, "report written to %s\n", abs)
	if !rep.AllHold() {
		return errClaimFails(rep)
	}
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

// runOnTestbed runs the chosen scheme on a namespace testbed brought up by
// scripts/testbed.sh with --hold and --scheme.
func runOnTestbed(ctx context.Context, o demo.Options, dir, switchCmd string) ([]*demo.Result, error) {
	if len(o.Schemes) != 1 {
		return nil, usageErr("demo: --testbed runs one scheme: add --scheme standard or --scheme ha2r (the testbed's nodes run it)")
	}
	sw := strings.Fields(switchCmd)
	if len(sw) == 0 {
		return nil, usageErr("demo: --testbed needs --switch (the command that moves a host's underlay, e.g. scripts/testbed.sh switch)")
	}
	tb := demo.Testbed{
		Socket: func(n string) string { return filepath.Join(dir, n+".sock") },
		Switch: func(ctx context.Context, host, link string) error {
			cmd := exec.CommandContext(ctx, sw[0], append(sw[1:], host, link)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", switchCmd, err, strings.TrimSpace(string(out)))
			}
			return nil
		},
	}
	r, err := demo.RunTestbed(ctx, o, o.Schemes[0], tb)
	if err != nil {
		return nil, err
	}
	return []*demo.Result{r}, nil
}

// renderSaved merges results saved with --save into one report.
func renderSaved(files []string, out string, asJSON bool) error {
	var rep *report.Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return usageErr("demo: %v", err)
		}
		var one report.Report
		if err := json.Unmarshal(b, &one); err != nil {
			return fmt.Errorf("demo: %s is not a saved demo result: %w", f, err)
		}
		if rep == nil {
			rep = &one
			continue
		}
		rep.Results = append(rep.Results, one.Results...)
		rep.Params.Schemes = append(rep.Params.Schemes, one.Params.Schemes...)
	}
	rep.Claims = report.CheckClaims(rep.Results) // the merged runs, checked together
	return emit(rep, out, asJSON)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
