// Command node plays every role of the Mobile IPv6 testbed: home agent,
// access router (HA2R), mobile node and correspondent. See `node --help`.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ha2r/mip6testbed/config"
)

const usage = `node: a userspace Mobile IPv6 testbed (RFC 6275 and the HA2R scheme)

Usage:
  node demo [--scheme standard|ha2r|both] [--out DIR] [--json]
                                               run the paper's experiment (fig4: MN1 calls MN2,
                                               moves, hangs up) in this process for both schemes,
                                               print the comparison and write an HTML report
  node init [--template fig4|laptop-cloud|two-node|line] FILE
                                               write a new topology file from a template, with
                                               fresh secrets
  node keygen                                  print a fresh secret (hex:...) for a topology file
  node run --config FILE --name NAME [flags]   run one node of a topology
  node --role ROLE --config FILE --name NAME   the same, refusing a role the file contradicts
  node status [--name NAME | --control PATH] [--json]
                                               ask a running node for its links, addresses,
                                               neighbours, routes and counters
  node handover --to LINK [--name NAME | --control PATH]
                                               move a running mobile node to another access link
  node call SIP-URI [--name NAME | --control PATH] [--duration D] [--audio-in F] [--audio-out F] [--json]
                                               place a call from a running node's softphone and
                                               print the call report (audio: WAV, raw, or - for
                                               stdin/stdout: arecord ... | node call ... | aplay)
  node sip-proxy --listen [ADDR]:PORT --domain DOMAIN
                                               the SIP proxy/registrar alone, on this host's sockets
  node sweep --vary NAME=FROM..TO[/STEP] [--runs 3]
                                               the demo over a parameter's range, both schemes:
                                               CSV, JSON and SVG plots
  node sweep calls [--loss 0,5,10,20,30] [--calls 50]
                                               call setup and survival of a move as loss grows
  node population [--mns 200] [--duration 60s] many mobile nodes moving and calling at random:
                                               signalling load at each router, call quality

Run 'node COMMAND --help' for the flags of a command.
Exit status: 0 success, 1 failure at run time, 2 bad usage or a bad topology file;
node demo: 3 when one of the paper's claims does not hold on the run's figures.
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// exitCode is carried by errors that want a particular exit status.
type exitCode struct {
	code int
	err  error
}

func (e *exitCode) Error() string { return e.err.Error() }
func (e *exitCode) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitCode{2, fmt.Errorf(format, args...)}
}

func run(args []string) int {
	var err error
	switch {
	case len(args) == 0:
		fmt.Fprint(os.Stderr, usage)
		return 2
	case args[0] == "-h" || args[0] == "--help" || args[0] == "help":
		fmt.Print(usage)
		return 0
	case args[0] == "demo":
		err = cmdDemo(args[1:])
	case args[0] == "run":
		err = cmdRun(args[1:], "")
	case args[0] == "status":
		err = cmdStatus(args[1:])
	case args[0] == "handover":
		err = cmdHandover(args[1:])
	case args[0] == "call":
		err = cmdCall(args[1:])
	case args[0] == "sip-proxy":
		err = cmdSIPProxy(args[1:])
	case args[0] == "sweep":
		err = cmdSweep(args[1:])
	case args[0] == "population":
		err = cmdPopulation(args[1:])
	case args[0] == "init":
		err = cmdInit(args[1:])
	case args[0] == "keygen":
		err = cmdKeygen(args[1:])
	case args[0] == "testbed-plan":
		err = cmdPlan(args[1:])
	case len(args[0]) > 0 && args[0][0] == '-':
		// node --role ROLE --config FILE --name NAME
		err = cmdRun(args, "role")
	default:
		fmt.Fprintf(os.Stderr, "node: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "node:", err)
	var ec *exitCode
	var ce *config.Error
	switch {
	case errors.As(err, &ec):
		return ec.code
	case errors.As(err, &ce):
		return 2
	}
	return 1
}

var errHelp = errors.New("help shown")
