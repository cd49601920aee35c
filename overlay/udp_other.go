//go:build !linux

package overlay

// NewUDPBind returns the underlay on the host's UDP sockets: wireguard-go's
// StdNetBind where this package has no bind of its own (only Linux has).
func NewUDPBind() Bind { return NewStdBind() }
