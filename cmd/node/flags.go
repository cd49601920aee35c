package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ha2r/mip6testbed/control"
)

// newFlags returns a flag set whose errors and help follow node's conventions.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(os.Stdout, "Usage: %s\n\nFlags:\n", synopsis)
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args, turning -h into errHelp and other mistakes into usage
// errors (exit status 2).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp // flag has printed the usage
		}
		return usageErr("%s: %v (see node %s --help)", fs.Name(), err, fs.Name())
	}
	return nil
}

// controlFlags are shared by the commands that talk to a running node.
type controlFlags struct {
	name string
	path string
}

func (c *controlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.name, "name", "", "the running node's name (its control socket is found from it)")
	fs.StringVar(&c.path, "control", "", "the running node's control socket (default: from --name, "+strings.Replace(control.DefaultPath("NAME"), "NAME.sock", "NAME.sock", 1)+")")
}

func (c *controlFlags) socket() (string, error) {
	switch {
	case c.path != "":
		return c.path, nil
	case c.name != "":
		return control.DefaultPath(c.name), nil
	}
	return "", usageErr("say which node: --name NAME or --control PATH")
}
