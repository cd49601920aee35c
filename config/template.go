package config

import (
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretValue matches a secret written in a topology file: the value of
// ha2r_key_seed or of a key's secret, when given as hex.
var secretValue = regexp.MustCompile(`((?:ha2r_key_seed|secret):\s*"?)hex:([0-9a-fA-F]+)`)

// replaceMarker is how the templates mark what a user must change.
var replaceMarker = regexp.MustCompile(`[ \t]*# REPLACE[ \t]*(\n|$)`)

// FreshSecrets rewrites a topology file's text with every hex secret
// replaced by random bytes (at least 32) from rand, and the templates'
// "# REPLACE" markers on them removed; everything else, comments included,
// stays as written. It returns the new text and how many secrets it
// replaced.
func FreshSecrets(src []byte, rand io.Reader) ([]byte, int, error) {
	var err error
	n := 0
	out := secretValue.ReplaceAllFunc(src, func(m []byte) []byte {
		sub := secretValue.FindSubmatch(m)
		b := make([]byte, max(len(sub[2])/2, 32))
		if _, e := io.ReadFull(rand, b); e != nil && err == nil {
			err = fmt.Errorf("generating a secret: %w", e)
		}
		n++
		return append(append([]byte{}, sub[1]...), "hex:"+hex.EncodeToString(b)...)
	})
	if err != nil {
		return nil, 0, err
	}
	return replaceMarker.ReplaceAll(out, []byte("$1")), n, nil
}

// WithKeys rewrites a topology file's text so that every node has the
// given public key and private_key_file (node init's key pairs), written
// right after the node's name; everything else, comments and layout
// included, stays as written.
func WithKeys(src []byte, public, files map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the topology is not a mapping")
	}
	root := doc.Content[0]
	var nodes *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "nodes" {
			nodes = root.Content[i+1]
		}
	}
	if nodes == nil || nodes.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("the topology has no list of nodes")
	}
	lines := strings.SplitAfter(string(src), "\n")
	// Edits go from the last node up, so earlier positions stay valid.
	for j := len(nodes.Content) - 1; j >= 0; j-- {
		n := nodes.Content[j]
		var key, val *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "name" {
				key, val = n.Content[i], n.Content[i+1]
			}
		}
		if key == nil {
			return nil, fmt.Errorf("node %d has no name", j)
		}
		pub, ok := public[val.Value]
		if !ok {
			return nil, fmt.Errorf("no key for node %q", val.Value)
		}
		pair := [2]string{fmt.Sprintf("public_key: %q", pub), "private_key_file: " + files[val.Value]}
		if n.Style&yaml.FlowStyle != 0 {
			// {name: X, ...}: at the end of the mapping when it closes on
			// its line, else after the name's value.
			l := lines[val.Line-1]
			at := strings.LastIndexByte(l, '}')
			if at < 0 || val.Line != n.Line {
				at = valueEnd(l, val.Column-1)
			}
			lines[val.Line-1] = l[:at] + ", " + pair[0] + ", " + pair[1] + l[at:]
			continue
		}
		// Block style: two lines under the name, at its indentation.
		indent := strings.Repeat(" ", key.Column-1)
		add := indent + pair[0] + "\n" + indent + pair[1] + "\n"
		if !strings.HasSuffix(lines[key.Line-1], "\n") {
			lines[key.Line-1] += "\n"
		}
		lines[key.Line-1] += add
	}
	return []byte(strings.Join(lines, "")), nil
}

// valueEnd returns where the scalar that starts at byte i of a flow
// mapping's line ends.
func valueEnd(line string, i int) int {
	if i < len(line) && (line[i] == '"' || line[i] == '\'') {
		q := line[i]
		for j := i + 1; j < len(line); j++ {
			if line[j] == '\\' && q == '"' {
				j++
				continue
			}
			if line[j] == q {
				return j + 1
			}
		}
		return len(line)
	}
	j := i
	for j < len(line) && !strings.ContainsRune(",}] \t\n", rune(line[j])) {
		j++
	}
	return j
}
