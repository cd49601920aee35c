package lab

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ha2r/mip6testbed/ip6"
	"github.com/ha2r/mip6testbed/overlay"
)

// The attacks of issue 15, replayed from a third host on the underlay (a
// UDP socket on loopback that is no node), against the lab with underlay
// security on (the default) and, to show that the test does attack, with
// the underlay in clear:
//
//   - hijack: keepalives that claim mn1's link-layer address on ar1's link,
//     every 5 ms from the attacker's address, while mn2 pings mn1;
//   - injection: a packet with mn1's address as its source, sent to ar1 for
//     mn2;
//   - spray: 3,000 forged messages a second (bit-flipped frames, transport
//     messages with guessed session indices).
//
// In clear the hijack draws mn1's traffic to the attacker and the injected
// packet reaches mn2; with security neither happens, the pings keep
// flowing, and ar1 counts what it dropped.
func TestUnderlayAttacks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secure bool
	}{{"secure", true}, {"in-clear", false}} {
		t.Run(tc.name, func(t *testing.T) {
			l := startFig4(t, Options{NoDelay: true, PlainUnderlay: !tc.secure})
			mn1, mn2 := addrOf(t, l, "mn1"), addrOf(t, l, "mn2")
			att, _ := l.Node("mn1").Host.Current()
			ar1 := l.endpoints["ar1"]
			linkID := l.Topo.LinkByName("ar1").ID

			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var stolen atomic.Int64 // packets for mn1 that reached the attacker
			go func() {
				buf := make([]byte, 65536)
				for {
					n, err := conn.Read(buf)
					if err != nil {
						return
					}
					var h overlay.FrameHeader
					if p, err := overlay.ParseFrame(buf[:n], &h); err == nil && h.Type == overlay.FrameTypePacket &&
						len(p) >= ip6.HeaderLen && netip.AddrFrom16([16]byte(p[24:40])) == mn1 {
						stolen.Add(1)
					}
				}
			}()
			to := net.UDPAddrFromAddrPort(ar1)
			send := func(b []byte) { conn.WriteToUDP(b, to) }

			// Injection: mn1's address as source, for mn2.
			marker := []byte("injected by the attacker")
			injected := tapHost(l, "mn2", overlay.In, func(p []byte) bool { return bytes.Contains(p, marker) })
			pkt := ip6.Build(ip6.Fields{NextHeader: 59, HopLimit: 64, Src: mn1, Dst: mn2}, marker)
			frame := make([]byte, overlay.FrameHeaderLen+len(pkt))
			(&overlay.FrameHeader{Type: overlay.FrameTypePacket, LinkID: linkID, Src: overlay.NodeLinkAddr("mn1"), Epoch: uint16(att.Seq)}).Put(frame)
			copy(frame[overlay.FrameHeaderLen:], pkt)
			for range 5 {
				send(frame)
			}

			// Hijack and spray while mn2 pings mn1.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sprayed := make(chan int)
			go func() {
				r := rand.New(rand.NewPCG(1, 2))
				keep := make([]byte, overlay.FrameHeaderLen)
				n := 0
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						sprayed <- n
						return
					case <-tick.C:
					}
					for e := uint16(att.Seq); e <= uint16(att.Seq)+1; e++ {
						(&overlay.FrameHeader{Type: overlay.FrameTypeKeep, LinkID: linkID, Src: overlay.NodeLinkAddr("mn1"), Epoch: e}).Put(keep)
						send(keep)
					}
					for range 15 { // 3,000 a second
						b := append([]byte(nil), frame...)
						if r.IntN(2) == 0 {
							b[r.IntN(len(b))] ^= 1 << r.IntN(8)
						} else {
							b = make([]byte, 16+r.IntN(1400)+16)
							b[0] = 4
							binary.BigEndian.PutUint32(b[4:8], r.Uint32())
							binary.BigEndian.PutUint64(b[8:16], r.Uint64())
						}
						send(b)
						n++
					}
				}
			}()
			// 50 pings, one per 20 ms, so that the attack runs a second;
			// in clear, until the attack has shown.
			ok, pings := 0, 0
			pace := time.NewTicker(20 * time.Millisecond)
			defer pace.Stop()
			for ; pings < 50; pings++ {
				if !tc.secure && pings >= 5 && stolen.Load() > 0 && injected.count() > 0 {
					break
				}
				<-pace.C
				pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				if _, err := l.Userspace("mn2").Ping(pctx, mn2, mn1, []byte("are you there")); err == nil {
					ok++
				}
				pcancel()
			}
			cancel()
			n := <-sprayed
			got := injected.count()
			t.Logf("%s: %d of %d pings answered during the attack, %d packets for mn1 reached the attacker, %d injected packets reached mn2, %d forged messages sprayed",
				tc.name, ok, pings, stolen.Load(), got, n)
			if !tc.secure {
				if stolen.Load() == 0 && got == 0 {
					t.Error("in clear, neither the hijack nor the injection worked: the test does not attack")
				}
				return
			}
			if stolen.Load() != 0 {
				t.Errorf("%d packets for mn1 reached the attacker", stolen.Load())
			}
			if got != 0 {
				t.Errorf("%d injected packets with mn1's source reached mn2", got)
			}
			if n < 2000 {
				t.Errorf("only %d forged messages were sprayed: the attack did not run its second", n)
			}
			if ok < pings*9/10 {
				t.Errorf("only %d of %d pings were answered during the attack", ok, pings)
			}
			c := l.Node("ar1").Metrics
			if c.Get("secure.drop.plaintext") == 0 || c.Get("secure.drop.unknown_index")+c.Get("secure.drop.malformed") == 0 {
				t.Errorf("ar1 did not count the forged messages: %v", c.Snapshot())
			}
		})
	}
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}
