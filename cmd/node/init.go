package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ha2r/mip6testbed/config"
	"github.com/ha2r/mip6testbed/examples"
	"github.com/ha2r/mip6testbed/secure"
)

// cmdInit writes a new topology file from one of the built-in templates,
// with fresh secrets.
func cmdInit(args []string) error {
	names := make([]string, 0, len(examples.Templates))
	for n := range examples.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	flagSet := newFlags("init", "node init [--template "+strings.Join(names, "|")+" | --from TOPOLOGY] [--force] FILE")
	template := flagSet.String("template", "fig4", "the topology to start from: "+strings.Join(names, ", ")+" (the files in examples/)")
	from := flagSet.String("from", "", "start from this topology file instead, keeping its secrets: FILE is it with a key pair per node")
	force := flagSet.Bool("force", false, "overwrite FILE if it exists")
	if err := parse(flagSet, args); err != nil {
		return err
	}
	if flagSet.NArg() != 1 {
		return usageErr("init: name the file to write, e.g. node init --template laptop-cloud topology.yaml")
	}
	file := flagSet.Arg(0)
	var out []byte
	n := 0
	if *from != "" {
		src, err := os.ReadFile(*from)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		topo, err := config.Parse(*from, src)
		if err != nil {
			return err
		}
		if topo.Secure() {
			return usageErr("init: %s already has key pairs", *from)
		}
		out, *template = src, *from
	} else {
		src, ok := examples.Templates[*template]
		if !ok {
			return usageErr("init: --template %q: use one of %s", *template, strings.Join(names, ", "))
		}
		var err error
		if out, n, err = config.FreshSecrets(src, rand.Reader); err != nil {
			return err
		}
	}
	out, keyFiles, err := withKeyPairs(out, file)
	if err != nil {
		return fmt.Errorf("init: %w", err)
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
	for name, key := range keyFiles {
		if err := writeKeyFile(filepath.Join(filepath.Dir(file), name+".key"), key, *force); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}
	fmt.Printf("wrote %s from %s with %d fresh secrets and a key pair per node (readable by you only);\n"+
		"each NAME.key beside it is that node's private key: copy it to that node's machine only.\n"+
		"Edit the addresses, then: node run --config %s --name NODE\n", file, *template, n, file)
	return nil
}

// withKeyPairs gives every node of the topology text a fresh key pair:
// the public key into the text, the private one returned by node name,
// for a file NAME.key beside the topology.
func withKeyPairs(src []byte, file string) ([]byte, map[string]secure.Key, error) {
	topo, err := config.Parse(file, src)
	if err != nil {
		return nil, nil, err
	}
	public, files, private := map[string]string{}, map[string]string{}, map[string]secure.Key{}
	for _, nc := range topo.Nodes {
		k, err := secure.GenerateKey()
		if err != nil {
			return nil, nil, err
		}
		private[nc.Name], public[nc.Name], files[nc.Name] = k, k.Public().String(), nc.Name+".key"
	}
	out, err := config.WithKeys(src, public, files)
	return out, private, err
}

// writeKeyFile writes a private key readable by its owner only.
func writeKeyFile(path string, k secure.Key, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return usageErr("%s exists; choose another name or add --force", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil { // an existing file kept its mode
		f.Close()
		return err
	}
	if _, err := fmt.Fprintln(f, k.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cmdKeygen prints a fresh secret in the topology file's notation, or
// writes an underlay key pair's private key to a file and prints its
// public key.
func cmdKeygen(args []string) error {
	fs := newFlags("keygen", "node keygen [--bytes 32] | node keygen --pair FILE [--force]")
	size := fs.Int("bytes", 32, "length of the secret in bytes (16 to 64)")
	pair := fs.String("pair", "", "write a new underlay private key to FILE (mode 0600) and print the public_key line for the topology")
	force := fs.Bool("force", false, "with --pair: overwrite FILE")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *pair != "" {
		if fs.NArg() > 0 {
			return usageErr("keygen: unexpected argument %q", fs.Arg(0))
		}
		k, err := secure.GenerateKey()
		if err != nil {
			return err
		}
		if err := writeKeyFile(*pair, k, *force); err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		fmt.Printf("public_key: %q\nprivate_key_file: %s\n", k.Public().String(), *pair)
		return nil
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
