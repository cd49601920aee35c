//go:build !linux

package softphone

import (
	"fmt"
	"syscall"
)

// bindToDevice is Linux's SO_BINDTODEVICE; elsewhere a phone cannot be
// kept to its overlay interface, and says so.
func bindToDevice(dev string) func(network, address string, c syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return fmt.Errorf("softphone: binding a socket to interface %s is only possible on Linux", dev)
	}
}
