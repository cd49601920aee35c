// Package tun is the host side of a node: where applications' IPv6 packets
// leave and enter. Device has two backends: Kernel, a real TUN interface
// (golang.zx2c4.com/wireguard/tun, with offloads, configured over netlink),
// and Userspace, a gVisor network stack inside the process that applications
// of the same process dial and listen through.
package tun

import (
	"errors"
	"net/netip"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// ErrTooManySegments is returned by Read when a segmentation-offload packet
// did not fit the buffers given; the packets that fit are returned.
var ErrTooManySegments = wgtun.ErrTooManySegments

// MinOffset is the smallest offset callers pass to Read and Write: the kernel
// backend needs room for a virtio-net header in front of each packet.
const MinOffset = 16

// Device moves batches of IPv6 packets between the node and its applications,
// and holds the node's addresses and routes.
type Device interface {
	// Read fills bufs[i][offset:] with packets from applications and their
	// lengths into sizes; it blocks until at least one packet is there.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write hands packets bufs[i][offset:] to applications.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the most packets one Read returns or one Write takes.
	BatchSize() int
	MTU() int
	Name() string

	// AddAddress assigns an address (with its on-link prefix length).
	// A preferred address may be chosen as source of new connections; one
	// that is not preferred stays valid for connections that use it
	// (RFC 4862 "deprecated").
	AddAddress(a netip.Prefix, preferred bool) error
	SetPreferred(a netip.Addr, preferred bool) error
	RemoveAddress(a netip.Addr) error
	Addresses() []Address
	// AddRoute sends traffic for p into the overlay through this device.
	AddRoute(p netip.Prefix) error

	// Close removes what the device added (addresses, routes) and stops it.
	Close() error
}

// Address is an address assigned to a Device.
type Address struct {
	Prefix    netip.Prefix
	Preferred bool
}

// Backend names.
const (
	BackendAuto      = "auto"
	BackendKernel    = "kernel"
	BackendUserspace = "userspace"
)

// Options open a Device.
type Options struct {
	Backend string // auto, kernel or userspace
	Name    string // interface name for the kernel backend
	MTU     int
	// GSOMaxSegments caps the segments of the kernel backend's
	// segmentation-offload packets (the interface's gso_max_segs); 0
	// leaves the kernel's default.
	GSOMaxSegments int
}

// ErrKernelUnavailable means the kernel backend cannot be used here.
var ErrKernelUnavailable = errors.New("tun: kernel TUN is not available (needs /dev/net/tun and CAP_NET_ADMIN on Linux)")

// Open opens a Device of the requested backend. Auto picks the kernel backend
// where /dev/net/tun and CAP_NET_ADMIN are there, otherwise userspace.
func Open(o Options) (Device, error) {
	switch o.Backend {
	case BackendKernel:
		return openKernel(o)
	case BackendUserspace:
		return NewUserspace(o.Name, o.MTU)
	case BackendAuto, "":
		if KernelAvailable() {
			return openKernel(o)
		}
		return NewUserspace(o.Name, o.MTU)
	}
	return nil, errors.New("tun: unknown backend " + o.Backend + " (use auto, kernel or userspace)")
}
