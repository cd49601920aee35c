// Package mobility holds the mobility engines that hook into the overlay:
// the home agent and the HA2R on routers, the mobile node and the
// correspondent on hosts. The wire codec lives in mobility/mh, the
// cryptography in mobility/auth.
//
// The engines see packets through overlay.RouterHook and overlay.HostHook and
// rewrite them in place, in the headroom the overlay leaves in front of every
// packet: an IPv6-in-IPv6 header for the tunnels (RFC 2473), a Home Address
// option and a type 2 routing header for route optimisation (RFC 6275 6.3,
// 6.4). Applications never see a care-of address in the standard scheme: the
// rewrites happen below the device.
package mobility
