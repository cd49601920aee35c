package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
)

// The MN-HA2R key travels in the MN Authentication Reply twice, sealed with
// AES-256-GCM: once for the HA2R under a key derived from the HA-HA2R secret,
// once for the mobile node under one derived from the MN-HA secret. The
// associated data binds it to the home address, the care-of address, the
// sequence number and the recipient, so a sealed key cannot be replayed for
// another registration or handed to the other party.
const (
	MNHA2RKeyLen = 32
	sealNonceLen = 12
	// SealedLen is the size of a sealed MN-HA2R key: nonce, key, GCM tag.
	SealedLen = sealNonceLen + MNHA2RKeyLen + 16
)

// Recipients of a sealed key.
const (
	ForHA2R = "ha2r"
	ForMN   = "mn"
)

// ErrOpen means a sealed key did not authenticate.
var ErrOpen = errors.New("auth: sealed key does not open (wrong key, tampered, or for another registration)")

func sealAEAD(secret []byte, recipient string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, "mip6 mn-ha2r key wrap for "+recipient, 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func sealAD(recipient string, home, careOf netip.Addr, seq uint16) []byte {
	h, c := home.As16(), careOf.As16()
	ad := make([]byte, 0, 34+len(recipient))
	ad = append(ad, h[:]...)
	ad = append(ad, c[:]...)
	ad = binary.BigEndian.AppendUint16(ad, seq)
	return append(ad, recipient...)
}

// SealKey seals key for recipient (ForHA2R or ForMN) under secret.
func SealKey(secret []byte, recipient string, home, careOf netip.Addr, seq uint16, key []byte, rnd io.Reader) ([]byte, error) {
	aead, err := sealAEAD(secret, recipient)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, sealNonceLen, SealedLen)
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, key, sealAD(recipient, home, careOf, seq)), nil
}

// OpenKey opens a sealed key.
func OpenKey(secret []byte, recipient string, home, careOf netip.Addr, seq uint16, sealed []byte) ([]byte, error) {
	if len(sealed) != SealedLen {
		return nil, ErrOpen
	}
	aead, err := sealAEAD(secret, recipient)
	if err != nil {
		return nil, err
	}
	key, err := aead.Open(nil, sealed[:sealNonceLen], sealed[sealNonceLen:], sealAD(recipient, home, careOf, seq))
	if err != nil {
		return nil, ErrOpen
	}
	return key, nil
}

// DeriveHA2RSA derives one direction of the AH security association between
// home agent ha and access router ar from the operator's seed (the topology
// file's ha2r_key_seed): the paper's "each AR and each HA share a secret".
// toHA selects the HA2R-to-home-agent direction. The SPI avoids the
// reserved range 0-255.
func DeriveHA2RSA(seed []byte, ha, ar string, toHA bool) SA {
	dir := "ha->ha2r"
	if toHA {
		dir = "ha2r->ha"
	}
	label := "\x00" + ha + "\x00" + ar + "\x00" + dir
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("mip6 ha-ha2r sa" + label))
	k := m.Sum(nil)
	spi := binary.BigEndian.Uint32(k[:4])&0x7fffffff | 0x100
	m.Reset()
	m.Write([]byte("mip6 ha-ha2r key" + label))
	return SA{SPI: spi, Key: m.Sum(nil)}
}

// DeriveHA2RSecret derives the HA-HA2R secret that seals keys for the HA2R.
func DeriveHA2RSecret(seed []byte, ha, ar string) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("mip6 ha-ha2r seal\x00" + ha + "\x00" + ar))
	return m.Sum(nil)
}
