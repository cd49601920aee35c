// Package examples holds the example topologies. They are also built into
// the node binary: fig4.yaml so that `node demo` runs from any directory,
// and all of them as templates for `node init`.
package examples

import _ "embed"

// Fig4 is examples/fig4.yaml, the paper's Fig. 4.
//
//go:embed fig4.yaml
var Fig4 []byte

//go:embed two-node.yaml
var twoNode []byte

//go:embed laptop-cloud.yaml
var laptopCloud []byte

//go:embed line.yaml
var line []byte

// Templates are the topologies `node init` starts from, by name.
var Templates = map[string][]byte{
	"fig4":         Fig4,
	"two-node":     twoNode,
	"laptop-cloud": laptopCloud,
	"line":         line,
}
