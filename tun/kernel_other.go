//go:build !linux

package tun

// KernelAvailable reports false: the kernel backend (netlink configuration)
// is Linux-only; the userspace backend serves elsewhere.
func KernelAvailable() bool { return false }

func openKernel(Options) (Device, error) { return nil, ErrKernelUnavailable }
