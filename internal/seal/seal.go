// Package seal encrypts short secrets at rest: webhook URLs, signing
// secrets, custom header values and TLS keys stored in alert_configs.
//
// A sealed value is a versioned envelope
//
//	mhsealed:v1:<key id>:<base64url(nonce || AES-256-GCM ciphertext)>
//
// where the key id is a short fingerprint of the key that sealed it, so a
// Keyring holding the current key and older ones opens values sealed with any
// of them (rotation) while sealing always uses the current one. The envelope
// prefix and key id are authenticated as additional data: a value cannot be
// moved to another key id or version without failing to open.
//
// Errors never contain plaintext, ciphertext or key material.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value.
const Prefix = "mhsealed:"

// version1 is the only envelope version: AES-256-GCM, 12-byte nonce.
const version1 = "v1"

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// Errors returned by Open. They wrap nothing secret.
var (
	// ErrNotSealed: the value does not start with Prefix.
	ErrNotSealed = errors.New("value is not sealed (no mhsealed: prefix)")
	// ErrMalformed: the envelope is not mhsealed:v1:<key id>:<base64>.
	ErrMalformed = errors.New("sealed value is malformed")
	// ErrUnknownVersion: an envelope version this build cannot open.
	ErrUnknownVersion = errors.New("sealed value has an unknown envelope version")
	// ErrUnknownKey: no key in the keyring has the envelope's key id.
	ErrUnknownKey = errors.New("sealed value was sealed with a key that is not configured")
	// ErrAuth: the key id matched but the ciphertext did not authenticate
	// (tampered or truncated).
	ErrAuth = errors.New("sealed value failed authentication")
	// ErrNoKey: Seal was called on a keyring without a current key.
	ErrNoKey = errors.New("no encryption key is configured")
)

// IsSealed reports whether s looks like a sealed envelope (it may still fail
// to open).
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

// KeyID returns the short fingerprint of key used in envelopes: the first 8
// hex digits of SHA-256 over a domain-separation label and the key. It
// reveals nothing useful about a random 256-bit key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("meshhook-alerts seal key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// Keyring seals with its current key and opens with any of its keys. It is
// safe for concurrent use.
type Keyring struct {
	current *sealKey
	byID    map[string]*sealKey
}

// NewKeyring builds a keyring. current may be nil (open only, with the
// previous keys); every key must be KeySize bytes.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{byID: map[string]*sealKey{}}
	add := func(what string, key []byte) (*sealKey, error) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("seal: %s is %d bytes, want %d", what, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", what, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: %s: %w", what, err)
		}
		sk := &sealKey{id: KeyID(key), aead: aead}
		if _, dup := k.byID[sk.id]; !dup {
			k.byID[sk.id] = sk
		}
		return sk, nil
	}
	if current != nil {
		sk, err := add("current key", current)
		if err != nil {
			return nil, err
		}
		k.current = sk
	}
	for i, p := range previous {
		if _, err := add(fmt.Sprintf("previous key %d", i), p); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// CurrentKeyID is the id of the sealing key, or "" when there is none.
func (k *Keyring) CurrentKeyID() string {
	if k == nil || k.current == nil {
		return ""
	}
	return k.current.id
}

// CanSeal reports whether the keyring has a current key.
func (k *Keyring) CanSeal() bool { return k != nil && k.current != nil }

func header(id string) string { return Prefix + version1 + ":" + id + ":" }

// Seal encrypts plaintext with the current key and returns the envelope.
func (k *Keyring) Seal(plaintext string) (string, error) {
	if !k.CanSeal() {
		return "", ErrNoKey
	}
	c := k.current
	hdr := header(c.id)
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plaintext)+c.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: random nonce: %w", err)
	}
	out := c.aead.Seal(nonce, nonce, []byte(plaintext), []byte(hdr))
	return hdr + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts an envelope with whichever key sealed it.
func (k *Keyring) Open(sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return "", ErrNotSealed
	}
	version, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return "", ErrMalformed
	}
	if version != version1 {
		return "", fmt.Errorf("%w %q", ErrUnknownVersion, truncate(version, 8))
	}
	id, data, ok := strings.Cut(rest, ":")
	if !ok || id == "" || data == "" {
		return "", ErrMalformed
	}
	var key *sealKey
	if k != nil {
		key = k.byID[id]
	}
	if key == nil {
		return "", fmt.Errorf("%w (key id %s)", ErrUnknownKey, truncate(id, 16))
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("%w: ciphertext is not base64url", ErrMalformed)
	}
	ns := key.aead.NonceSize()
	if len(raw) < ns+key.aead.Overhead() {
		return "", fmt.Errorf("%w: ciphertext is too short", ErrMalformed)
	}
	plain, err := key.aead.Open(nil, raw[:ns], raw[ns:], []byte(header(id)))
	if err != nil {
		return "", ErrAuth
	}
	return string(plain), nil
}

// truncate bounds attacker-controlled text quoted in errors.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
