package secure

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkAEAD compares the two AEADs a Noise suite can name, sealing a
// 1400-byte frame: why the underlay uses AES-GCM (handshake.go).
func BenchmarkAEAD(b *testing.B) {
	key := make([]byte, 32)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	chacha, _ := chacha20poly1305.New(key)
	for _, tc := range []struct {
		name string
		aead cipher.AEAD
	}{{"AES-256-GCM", gcm}, {"ChaCha20-Poly1305", chacha}} {
		b.Run(tc.name, func(b *testing.B) {
			plain := make([]byte, 1400)
			out := make([]byte, 0, 1500)
			nonce := make([]byte, 12)
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				tc.aead.Seal(out[:0], nonce, plain, nil)
			}
		})
	}
}
