package config

import (
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
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
