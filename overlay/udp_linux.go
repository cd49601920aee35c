//go:build linux

package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDPBind is the underlay on the host's UDP sockets, one for IPv4 and one for
// IPv6 on the same port: recvmmsg and sendmmsg, with UDP GSO (UDP_SEGMENT) to
// send a run of equal-sized datagrams as one and UDP GRO to receive them so.
// It follows wireguard-go's StdNetBind (conn/bind_std.go), with three
// differences that the data-path profiles asked for: a socket's message
// headers are built once and only the ones a call used are touched again
// (StdNetBind resets all 128 per call: 5-8 % of a node's CPU under TCP, 16 %
// of what a forged datagram costs), no allocation per datagram (StdNetBind
// makes an endpoint for each), and a GSO run is gathered from the senders'
// buffers by iovecs (one, when they lie end to end) rather than copied into
// the first.
type UDPBind struct {
	mu     sync.Mutex
	v4, v6 *udpSocket
}

// udpSocket is one of a UDPBind's two sockets.
type udpSocket struct {
	conn      *net.UDPConn
	raw       syscall.RawConn
	is6       bool
	txOffload atomic.Bool // UDP_SEGMENT works; cleared if the device refuses it
	rxOffload bool        // UDP_GRO is on: one datagram read may hold a run
	sends     sync.Pool   // *mmsgHeaders for send
}

const (
	// udpBatch is how many datagrams a call reads or writes at most.
	udpBatch = 128
	// socketBuffer is the send and receive buffer asked of the kernel
	// (wireguard-go's choice; beyond rmem_max only with CAP_NET_ADMIN).
	socketBuffer = 7 << 20
)

// segmentControl is the room for one UDP_SEGMENT or UDP_GRO control message
// (a uint16).
var segmentControl = unix.CmsgSpace(2)

// NewUDPBind returns an unopened UDPBind.
func NewUDPBind() Bind { return &UDPBind{} }

// Open listens on port on IPv4 and IPv6 (either may be missing on the host).
// With port 0 the kernel picks one free for both.
func (b *UDPBind) Open(port uint16) ([]ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.v4 != nil || b.v6 != nil {
		return nil, 0, errors.New("underlay: bind already open")
	}
	for tries := 0; ; tries++ {
		v4, actual, err := listenUDP("udp4", int(port))
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			return nil, 0, err
		}
		v6, actual6, err := listenUDP("udp6", actual)
		if err != nil && port == 0 && errors.Is(err, syscall.EADDRINUSE) && tries < 100 {
			v4.close()
			continue // the IPv4 port is taken on IPv6: try another
		}
		if err != nil && !errors.Is(err, syscall.EAFNOSUPPORT) {
			v4.close()
			return nil, 0, err
		}
		if v4 == nil && v6 == nil {
			return nil, 0, fmt.Errorf("underlay: listen on UDP port %d: %w", port, syscall.EAFNOSUPPORT)
		}
		if v4 == nil {
			actual = actual6
		}
		var fns []ReceiveFunc
		for _, s := range []*udpSocket{v4, v6} {
			if s != nil {
				fns = append(fns, s.receiveFunc())
			}
		}
		b.v4, b.v6 = v4, v6
		return fns, uint16(actual), nil
	}
}

// listenUDP opens one socket (network "udp4" or "udp6") and turns on what
// the kernel has of the offloads.
func listenUDP(network string, port int) (*udpSocket, int, error) {
	s := &udpSocket{is6: network == "udp6"}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			// Best effort: a smaller buffer only costs speed on fast links.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer)
			if s.is6 {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
			}
			s.probeOffloads(int(fd))
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), network, ":"+strconv.Itoa(port))
	if err != nil {
		return nil, 0, err
	}
	s.conn = pc.(*net.UDPConn)
	if s.raw, err = s.conn.SyscallConn(); err != nil {
		s.conn.Close()
		return nil, 0, err
	}
	return s, s.conn.LocalAddr().(*net.UDPAddr).Port, nil
}

// probeOffloads turns on what the kernel has of GSO (since 4.18) and GRO
// (since 5.0), before the socket is bound, so that no datagram arrives
// under a setting the bind does not know.
func (s *udpSocket) probeOffloads(fd int) {
	_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	s.txOffload.Store(err == nil)
	if unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) != nil {
		return
	}
	// Read back (kernels since 5.12 answer). An older kernel took the
	// option but cannot say so; it is turned off again there, as
	// wireguard-go leaves it off, since a run read without knowing it is
	// one would pass for one long datagram.
	on, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO)
	s.rxOffload = err == nil && on == 1
	if !s.rxOffload {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 0)
	}
}

func (s *udpSocket) close() error {
	if s == nil {
		return nil
	}
	return s.conn.Close()
}

func (b *UDPBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := errors.Join(b.v4.close(), b.v6.close())
	b.v4, b.v6 = nil, nil
	return err
}

func (b *UDPBind) BatchSize() int { return udpBatch }

// Send writes bufs to one peer, a GSO run for each stretch of equal-sized
// datagrams when the kernel can.
func (b *UDPBind) Send(bufs [][]byte, to netip.AddrPort) error {
	if len(bufs) == 0 {
		return nil
	}
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	b.mu.Lock()
	s, closed := b.v4, b.v4 == nil && b.v6 == nil
	if to.Addr().Is6() {
		s = b.v6
	}
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("underlay: send to %s: %w", to, net.ErrClosed)
	}
	if s == nil {
		return fmt.Errorf("underlay: send to %s: %w", to, syscall.EAFNOSUPPORT)
	}
	return s.send(bufs, to)
}

// udpAddrPort reads the sender's address that recvmmsg wrote.
func udpAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := func(p *uint16) uint16 { // network byte order in memory
		b := (*[2]byte)(unsafe.Pointer(p))
		return uint16(b[0])<<8 | uint16(b[1])
	}
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port))
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port))
	}
	return netip.AddrPort{}
}

// putSockaddr writes to as the sockaddr for s's family, and returns its
// length.
func putSockaddr(sa *unix.RawSockaddrInet6, to netip.AddrPort, is6 bool) uint32 {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	if is6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: to.Addr().As16()}
		p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
		return unix.SizeofSockaddrInet6
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
	p = (*[2]byte)(unsafe.Pointer(&sa4.Port))
	p[0], p[1] = byte(to.Port()>>8), byte(to.Port())
	return unix.SizeofSockaddrInet4
}

// segmentSize reads a UDP_GRO control message's segment size; 0 if control
// has none.
func segmentSize(control []byte) int {
	for len(control) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
		if uint64(h.Len) < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(control)) {
			return 0
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && int(h.Len) >= unix.CmsgLen(2) {
			return int(*(*uint16)(unsafe.Pointer(&control[unix.CmsgLen(0)])))
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(control) {
			return 0
		}
		control = control[next:]
	}
	return 0
}

// putSegmentSize writes a UDP_SEGMENT control message into control, which
// has segmentControl bytes.
func putSegmentSize(control []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&control[unix.CmsgLen(0)])) = uint16(size)
}
