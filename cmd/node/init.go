package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/examples"
)

// cmdInit writes a new topology file from one of the built-in templates,
// with fresh secrets.
func cmdInit(args []string) error {
	names := make([]string, 0, len(examples.Templates))
	for n := range examples.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	flagSet := newFlags("init", "node init [--template "+strings.Join(names, "|")+"] [--force] FILE")
	template := flagSet.String("template", "fig4", "the topology to start from: "+strings.Join(names, ", ")+" (the files in examples/)")
	force := flagSet.Bool("force", false, "overwrite FILE if it exists")
	if err := parse(flagSet, args); err != nil {
		return err
	}
	if flagSet.NArg() != 1 {
		return usageErr("init: name the file to write, e.g. node init --template laptop-cloud topology.yaml")
	}
	file := flagSet.Arg(0)
	src, ok := examples.Templates[*template]
	if !ok {
		return usageErr("init: --template %q: use one of %s", *template, strings.Join(names, ", "))
	}
	out, n, err := config.FreshSecrets(src, rand.Reader)
	if err != nil {
		return err
	}
	// What init writes must load: a template that stopped parsing is a bug
	// to catch here, not at the user's first run.
	if _, err := config.Parse(file, out); err != nil {
		return fmt.Errorf("init: template %s does not load: %w", *template, err)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	// 0600: the file holds the deployment's secrets.
	f, err := os.OpenFile(file, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageErr("init: %s exists; choose another name or add --force", file)
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return fmt.Errorf("init: writing %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("init: writing %s: %w", file, err)
	}
	fmt.Printf("wrote %s from template %s with %d fresh secrets (readable by you only); edit its addresses, then: node run --config %s --name NODE\n",
		file, *template, n, file)
	return nil
}

// cmdKeygen prints a fresh secret in the topology file's notation.
func cmdKeygen(args []string) error {
	fs := newFlags("keygen", "node keygen [--bytes 32]")
	size := fs.Int("bytes", 32, "length of the secret in bytes (16 to 64)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("keygen: unexpected argument %q", fs.Arg(0))
	}
	if *size < 16 || *size > 64 {
		return usageErr("keygen: --bytes %d: use 16 to 64", *size)
	}
	b := make([]byte, *size)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	fmt.Println("hex:" + hex.EncodeToString(b))
	return nil
}
