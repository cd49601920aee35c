// Package overlay is the virtual network: the frame that carries IPv6 in UDP
// between hosts (frame.go), the underlay bind (bind.go; on Linux UDPBind,
// udp_linux.go: recvmmsg/sendmmsg with UDP GSO and GRO), access links with
// neighbour discovery (link.go, nd.go), the router that forwards between
// links and across the backbone (router.go, forward.go, router_nd.go), and
// the host that attaches to one link at a time, or to a second one while a
// make-before-break move or a standby link is prepared (host.go,
// host_rx.go).
//
// Below the Bind, package secure seals each frame for its peer (Noise IK
// sessions, AES-GCM; its wire.go has the byte layout) when the topology has
// key pairs: the overlay sends and receives frames in clear through it and
// learns endpoints only from frames that authenticated.
//
// # How a packet travels, and who owns its buffer
//
// Router, from the underlay (loop.go receive, forward.go):
//
//	ReceiveFunc fills bufs[i][Headroom:]       the loop owns bufs
//	-> handleFrame: ParseFrame, link or peer check, learn the sender
//	-> ip6.Check, then input: ingress filter, ND, own address, hop limit
//	-> route: RouterHook.Forward (may rewrite in place, in the headroom),
//	   then the FIB: emit writes the frame header in front of the packet
//	   and queues the frame in the round's sendBatch (no copy)
//	-> or local: RouterHook.Local (may decapsulate: Reinput goes back to
//	   input), then the router's own device or an ICMP answer
//	-> flush at the end of the batch: one sendmmsg per peer, one device
//	   write; ND answers built in the round's ndArena go with them
//	-> the buffers are reused for the next batch (scribbled over first
//	   with PoisonBuffers, so that a reference kept past here shows)
//
// Router, from its own applications (tunBatch): the device reads into the
// loop's buffers at Headroom, then route as above.
//
// Host, from the underlay (host_rx.go receiveBatch): ParseFrame, ip6.Check,
// ND handled by the host itself, then HostHook.Inbound (decapsulate, swap
// route-optimisation headers back, or consume signalling), then one device
// write for the batch. From applications (tunBatch): HostHook.Outbound
// (tunnel or route-optimise in place), MTU check, frame header, one send.
//
// Ownership: a packet is borrowed by each step for the duration of a call.
// Hooks must not keep the *Packet or its buffer (Packet's doc says how to
// copy); Send, Deliver and the control paths copy what they are given. Each
// packet is checked once (ip6.Check) and its extension-header chain walked
// at most once per rewrite (Packet.Chain), whoever asks for it.
package overlay
