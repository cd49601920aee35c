package secure

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// Key is a Curve25519 key, private or public, written in base64 like
// WireGuard's keys.
type Key [32]byte

// GenerateKey returns a new private key.
func GenerateKey() (Key, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("secure: generating a key: %w", err)
	}
	var k Key
	copy(k[:], priv.Bytes())
	return k, nil
}

// Public returns the public key of private key k.
func (k Key) Public() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil { // only for a wrong length, which a Key cannot have
		panic(err)
	}
	var p Key
	copy(p[:], priv.PublicKey().Bytes())
	return p
}

// IsZero reports whether k is unset.
func (k Key) IsZero() bool { return k == Key{} }

func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// ParseKey reads a base64 key (44 characters, as `node keygen` and `wg
// genkey` write them).
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return Key{}, fmt.Errorf("secure: %q is not a key: want 44 characters of base64 (32 bytes), as `node keygen` writes", abbreviate(s))
	}
	var k Key
	copy(k[:], b)
	return k, nil
}

func abbreviate(s string) string {
	if len(s) > 16 {
		return s[:8] + "..."
	}
	return s
}
