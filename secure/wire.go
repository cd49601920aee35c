package secure

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
)

// Wire format. Every underlay datagram between two nodes with underlay
// security on is one of four messages. Integers are big-endian.
//
// Handshake initiation (type 1, 140 bytes): Noise IK's first message
// (-> e, es, s, ss) with an 8-byte timestamp as its payload:
//
//	type(1)=1 | reserved(3)=0 | sender index(4) | ephemeral(32) |
//	static, encrypted(32+16) | timestamp, encrypted(8+16) | mac1(16) |
//	mac2(16)
//
// mac2 is zero, or, from an initiator that got a cookie reply in the last
// two minutes, HMAC-SHA256 (first 16 bytes) over the message up to it,
// keyed with the cookie (cookie.go).
//
// Handshake response (type 2, 76 bytes): Noise IK's second message
// (<- e, ee, se) with an empty payload:
//
//	type(1)=2 | reserved(3)=0 | sender index(4) | receiver index(4) |
//	ephemeral(32) | empty, encrypted(0+16) | mac1(16)
//
// Cookie reply (type 5, 48 bytes): what a node under a flood of
// initiations answers instead of a handshake (cookie.go):
//
//	type(1)=5 | reserved(3)=0 | receiver index(4) | nonce(12) |
//	cookie, encrypted(16+16)
//
// Unknown session (type 3, 8 bytes): the answer to a transport message
// whose receiver index names no session here, typically because this node
// restarted and its peer still uses the keys of before:
//
//	type(1)=3 | reserved(3)=0 | the unknown index(4)
//
// It is not authenticated (the node has no keys to do so). A peer that
// gets it for the index of its current session with the sender's
// endpoint starts a new handshake (at most one per retry interval) and
// keeps the old session until the new one is up, so a forged one costs a
// handshake, not the connection. Senders rate-limit them.
//
// Transport (type 4, 16 + frame + 16 bytes): one overlay frame, sealed
// with the session's key; the 16-byte header is the additional data:
//
//	type(1)=4 | reserved(3)=0 | receiver index(4) | counter(8) |
//	overlay frame, encrypted(n+16)
//
// Indices are random 32-bit numbers each side picks for a session, so
// that a receiver finds the key without trying them all (WireGuard's
// scheme). mac1 is HMAC-SHA256 (first 16 bytes) over the message before
// it, keyed with SHA-256("mip6 mac1" || the receiver's public key): a
// receiver drops a handshake that is not even addressed to its key before
// spending a Diffie-Hellman on it.
//
// An overlay frame in clear starts with 0x6D (overlay.FrameMagic), which
// no type above has, so a node that gets one knows its peer runs without
// underlay security and says so.
const (
	typeInitiation = 1
	typeResponse   = 2
	typeUnknown    = 3
	typeTransport  = 4
	typeCookie     = 5
	unknownLen     = 8

	headerLen       = 16 // transport header
	tagLen          = 16 // AEAD tag
	Overhead        = headerLen + tagLen
	mac1Len         = 16
	mac2Len         = 16
	cookieLen       = 8 + 12 + 16 + tagLen
	initiationNoise = 32 + 32 + tagLen + 8 + tagLen
	initiationLen   = 8 + initiationNoise + mac1Len + mac2Len
	responseNoise   = 32 + tagLen
	responseLen     = 12 + responseNoise + mac1Len
	plainFrameMagic = 0x6D
)

var (
	errShort    = errors.New("secure: message too short")
	errType     = errors.New("secure: unknown message type")
	errReserved = errors.New("secure: reserved bytes are not zero")
	errLength   = errors.New("secure: handshake message of the wrong length")
)

// parseTransport splits a transport message into its receiver index,
// counter and sealed frame.
func parseTransport(b []byte) (index uint32, counter uint64, sealed []byte, err error) {
	if len(b) < headerLen+tagLen {
		return 0, 0, nil, errShort
	}
	if b[1]|b[2]|b[3] != 0 {
		return 0, 0, nil, errReserved
	}
	return binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint64(b[8:16]), b[headerLen:], nil
}

func putTransportHeader(b []byte, index uint32, counter uint64) {
	_ = b[headerLen-1]
	b[0], b[1], b[2], b[3] = typeTransport, 0, 0, 0
	binary.BigEndian.PutUint32(b[4:8], index)
	binary.BigEndian.PutUint64(b[8:16], counter)
}

// checkHandshake checks a handshake message's type, length and reserved
// bytes (not its mac1).
func checkHandshake(b []byte) error {
	if len(b) < 4 {
		return errShort
	}
	if b[1]|b[2]|b[3] != 0 {
		return errReserved
	}
	switch b[0] {
	case typeInitiation:
		if len(b) != initiationLen {
			return errLength
		}
	case typeResponse:
		if len(b) != responseLen {
			return errLength
		}
	case typeCookie:
		if len(b) != cookieLen {
			return errLength
		}
	default:
		return errType
	}
	return nil
}

// mac1Key is the key of the mac1 of messages to the holder of public.
func mac1Key(public Key) [32]byte {
	return sha256.Sum256(append([]byte("mip6 mac1"), public[:]...))
}

func mac1(key *[32]byte, msg []byte) [mac1Len]byte {
	h := hmac.New(sha256.New, key[:])
	h.Write(msg)
	var out [mac1Len]byte
	copy(out[:], h.Sum(nil))
	return out
}

// mac1Valid checks a handshake message's mac1: the last 16 bytes of a
// response, the 16 before mac2 of an initiation.
func mac1Valid(key *[32]byte, msg []byte) bool {
	if msg[0] == typeInitiation {
		msg = msg[:len(msg)-mac2Len]
	}
	body := msg[:len(msg)-mac1Len]
	want := mac1(key, body)
	return hmac.Equal(want[:], msg[len(msg)-mac1Len:])
}
