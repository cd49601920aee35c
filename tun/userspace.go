package tun

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const nicID = 1

// Userspace is a Device backed by a gVisor network stack in this process.
// Applications of the process use it through DialTCP, ListenTCP, DialUDP,
// ListenUDP and Ping. Unlike golang.zx2c4.com/wireguard/tun/netstack, it lets
// addresses be added, deprecated and removed while it runs, which mobility
// needs (a care-of address that is kept for old connections only).
type Userspace struct {
	name  string
	mtu   int
	ep    *channel.Endpoint
	stack *stack.Stack

	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	addrs map[netip.Addr]Address
}

// NewUserspace starts a gVisor stack with one NIC whose other side is this
// Device.
func NewUserspace(name string, mtu int) (*Userspace, error) {
	if name == "" {
		name = "gvisor"
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	sack := tcpip.TCPSACKEnabled(true)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); err != nil {
		return nil, fmt.Errorf("tun: enabling TCP SACK: %v", err)
	}
	// Room for a bandwidth-delay product of tens of milliseconds at a few
	// hundred Mbit/s, as the lab's emulated paths have.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd)
	ep := channel.New(1024, uint32(mtu), "")
	if err := s.CreateNIC(nicID, ep); err != nil {
		return nil, fmt.Errorf("tun: creating gVisor NIC: %v", err)
	}
	s.AddRoute(tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	ctx, cancel := context.WithCancel(context.Background())
	return &Userspace{name: name, mtu: mtu, ep: ep, stack: s, ctx: ctx, cancel: cancel, addrs: map[netip.Addr]Address{}}, nil
}

func (u *Userspace) Name() string   { return u.name }
func (u *Userspace) MTU() int       { return u.mtu }
func (u *Userspace) BatchSize() int { return 64 }

// Stack exposes the gVisor stack for statistics.
func (u *Userspace) Stack() *stack.Stack { return u.stack }

func (u *Userspace) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	pkt := u.ep.ReadContext(u.ctx)
	if pkt == nil {
		return 0, os.ErrClosed
	}
	n := 0
	for pkt != nil {
		v := pkt.ToView()
		pkt.DecRef()
		sizes[n], _ = v.Read(bufs[n][offset:])
		v.Release()
		n++
		if n == len(bufs) {
			break
		}
		pkt = u.ep.Read()
	}
	return n, nil
}

func (u *Userspace) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 || p[0]>>4 != 6 {
			continue
		}
		pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		u.ep.InjectInbound(header.IPv6ProtocolNumber, pkb)
		pkb.DecRef()
	}
	return len(bufs), nil
}

func (u *Userspace) AddAddress(a netip.Prefix, preferred bool) error {
	u.mu.Lock()
	_, exists := u.addrs[a.Addr()]
	u.mu.Unlock()
	if exists {
		return u.SetPreferred(a.Addr(), preferred)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom16(a.Addr().As16()), PrefixLen: a.Bits()},
	}
	props := stack.AddressProperties{PEB: stack.CanBePrimaryEndpoint}
	props.Lifetimes.Deprecated = !preferred
	props.Lifetimes.ValidUntil = tcpip.MonotonicTimeInfinite()
	if !preferred {
		props.Lifetimes.PreferredUntil = tcpip.MonotonicTime{}
	} else {
		props.Lifetimes.PreferredUntil = tcpip.MonotonicTimeInfinite()
	}
	if err := u.stack.AddProtocolAddress(nicID, pa, props); err != nil {
		return fmt.Errorf("tun: adding %s: %v", a, err)
	}
	u.mu.Lock()
	u.addrs[a.Addr()] = Address{Prefix: a, Preferred: preferred}
	u.mu.Unlock()
	return nil
}

func (u *Userspace) SetPreferred(a netip.Addr, preferred bool) error {
	lt := stack.AddressLifetimes{Deprecated: !preferred, ValidUntil: tcpip.MonotonicTimeInfinite()}
	if preferred {
		lt.PreferredUntil = tcpip.MonotonicTimeInfinite()
	}
	if err := u.stack.SetAddressLifetimes(nicID, tcpip.AddrFrom16(a.As16()), lt); err != nil {
		return fmt.Errorf("tun: marking %s preferred=%v: %v", a, preferred, err)
	}
	u.mu.Lock()
	if ad, ok := u.addrs[a]; ok {
		ad.Preferred = preferred
		u.addrs[a] = ad
	}
	u.mu.Unlock()
	return nil
}

func (u *Userspace) RemoveAddress(a netip.Addr) error {
	if err := u.stack.RemoveAddress(nicID, tcpip.AddrFrom16(a.As16())); err != nil {
		return fmt.Errorf("tun: removing %s: %v", a, err)
	}
	u.mu.Lock()
	delete(u.addrs, a)
	u.mu.Unlock()
	return nil
}

func (u *Userspace) Addresses() []Address {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Address, 0, len(u.addrs))
	for _, a := range u.addrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.Addr().Less(out[j].Prefix.Addr()) })
	return out
}

// AddRoute is a no-op beyond bookkeeping: the stack's only NIC is this
// device, so every destination already routes into the overlay.
func (u *Userspace) AddRoute(p netip.Prefix) error { return nil }

func (u *Userspace) Close() error {
	u.cancel()
	u.stack.Close()
	u.ep.Close()
	return nil
}

func fullAddr(ap netip.AddrPort) tcpip.FullAddress {
	fa := tcpip.FullAddress{NIC: nicID, Port: ap.Port()}
	if ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
		fa.Addr = tcpip.AddrFrom16(ap.Addr().As16())
	}
	return fa
}

// DialTCP opens a TCP connection through the stack.
func (u *Userspace) DialTCP(ctx context.Context, to netip.AddrPort) (*gonet.TCPConn, error) {
	return gonet.DialContextTCP(ctx, u.stack, fullAddr(to), ipv6.ProtocolNumber)
}

// DialTCPFrom opens a TCP connection from a chosen local address.
func (u *Userspace) DialTCPFrom(ctx context.Context, from netip.Addr, to netip.AddrPort) (*gonet.TCPConn, error) {
	return gonet.DialTCPWithBind(ctx, u.stack, fullAddr(netip.AddrPortFrom(from, 0)), fullAddr(to), ipv6.ProtocolNumber)
}

// ListenTCP listens for TCP connections; an unspecified address listens on all.
func (u *Userspace) ListenTCP(at netip.AddrPort) (*gonet.TCPListener, error) {
	return gonet.ListenTCP(u.stack, fullAddr(at), ipv6.ProtocolNumber)
}

// DialUDP opens a UDP socket bound to local (port 0 picks one) and, if remote
// is valid, connected to it.
func (u *Userspace) DialUDP(local, remote netip.AddrPort) (*gonet.UDPConn, error) {
	l := fullAddr(local)
	var r *tcpip.FullAddress
	if remote.IsValid() {
		fa := fullAddr(remote)
		r = &fa
	}
	return gonet.DialUDP(u.stack, &l, r, ipv6.ProtocolNumber)
}

// ListenUDP opens a UDP socket bound to local.
func (u *Userspace) ListenUDP(local netip.AddrPort) (*gonet.UDPConn, error) {
	return u.DialUDP(local, netip.AddrPort{})
}

// ErrPingTimeout is returned when no echo reply arrives in time.
var ErrPingTimeout = errors.New("ping: no reply")

// Ping sends one ICMPv6 echo request to dst and waits for the reply. from may
// be the zero Addr to let the stack choose the source.
func (u *Userspace) Ping(ctx context.Context, from, dst netip.Addr, payload []byte) (time.Duration, error) {
	var wq waiter.Queue
	ep, terr := u.stack.NewEndpoint(icmp.ProtocolNumber6, ipv6.ProtocolNumber, &wq)
	if terr != nil {
		return 0, fmt.Errorf("ping: %v", terr)
	}
	defer ep.Close()
	if from.IsValid() {
		if terr := ep.Bind(fullAddr(netip.AddrPortFrom(from, 0))); terr != nil {
			return 0, fmt.Errorf("ping: binding %s: %v", from, terr)
		}
	}
	req := make([]byte, header.ICMPv6EchoMinimumSize+len(payload))
	req[0] = byte(header.ICMPv6EchoRequest)
	copy(req[header.ICMPv6EchoMinimumSize:], payload)
	entry, ch := waiter.NewChannelEntry(waiter.EventIn)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	to := fullAddr(netip.AddrPortFrom(dst, 0))
	start := time.Now()
	if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{To: &to}); terr != nil {
		return 0, fmt.Errorf("ping %s: %v", dst, terr)
	}
	buf := make([]byte, len(req)+64)
	for {
		w := tcpip.SliceWriter(buf)
		res, terr := ep.Read(&w, tcpip.ReadOptions{})
		if terr == nil {
			if res.Count >= 1 && buf[0] == byte(header.ICMPv6EchoReply) {
				return time.Since(start), nil
			}
			continue
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("ping %s: %v", dst, terr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ErrPingTimeout
		}
	}
}

var _ net.Conn = (*gonet.TCPConn)(nil)
