package mobility

import "fmt"

// Scheme is a mobility scheme a mobile node runs. The topology file names
// it; this type is the one every package uses.
type Scheme string

const (
	// SchemeStandard is RFC 6275 Mobile IPv6 with Return Routability and
	// route optimisation; applications and SIP use the home address.
	SchemeStandard Scheme = "standard"
	// SchemeHA2R is the paper's scheme: the access router that hands out a
	// care-of address anchors it, and new sessions use the care-of address.
	SchemeHA2R Scheme = "ha2r"
)

// Schemes are the schemes in the order reports show them.
var Schemes = []Scheme{SchemeStandard, SchemeHA2R}

// ParseScheme reads a scheme's name.
func ParseScheme(s string) (Scheme, error) {
	for _, x := range Schemes {
		if string(x) == s {
			return x, nil
		}
	}
	return "", fmt.Errorf("unknown mobility scheme %q (use standard or ha2r)", s)
}
