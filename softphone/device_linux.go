package softphone

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindToDevice ties a socket to one interface (SO_BINDTODEVICE; since
// Linux 5.7 no privilege is needed before the socket is bound), so that
// it takes only what arrives through that interface.
func bindToDevice(dev string) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev)
		}); err != nil {
			return err
		}
		return serr
	}
}
