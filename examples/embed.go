// Package examples holds the example topologies; fig4.yaml is also built
// into the node binary, so that `node demo` runs from any directory.
package examples

import _ "embed"

// Fig4 is examples/fig4.yaml, the paper's Fig. 4.
//
//go:embed fig4.yaml
var Fig4 []byte
