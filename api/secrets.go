package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// sealValue seals a secret-bearing value for storage.
func (a *API) sealValue(field, plain string) (string, error) {
	s, err := a.opts.Keyring.Seal(plain)
	if err != nil {
		return "", fmt.Errorf("seal %s: %w", field, err)
	}
	return s, nil
}

// redactedURL shows a stored webhook URL as scheme://host/[redacted]; a
// value that cannot be opened shows as "[redacted]".
func (a *API) redactedURL(stored string) string {
	plain, err := a.opts.Opener.OpenValue(stored)
	if err != nil {
		return logging.RedactURL(stored) // an envelope redacts to "[redacted]"
	}
	return logging.RedactURL(plain)
}

// fingerprintLen is the length of a secret's fingerprint in hex digits.
const fingerprintLen = 16

// fingerprint identifies a signing secret without revealing it: 64 bits of
// a domain-separated SHA-256 of the secret in clear, in hex. For a random
// 256-bit secret it reveals nothing useful.
func fingerprint(plain string) string {
	h := sha256.New()
	h.Write([]byte("meshhook-alerts signing secret\x00"))
	h.Write([]byte(plain))
	return hex.EncodeToString(h.Sum(nil))[:fingerprintLen]
}

// secretInfo is one stored signing secret as the API shows it.
type secretInfo struct {
	Fingerprint string `json:"fingerprint"`
	// Readable is false when the secret is sealed with a key the daemon
	// no longer has; its fingerprint is then that of the stored envelope.
	Readable bool `json:"readable"`
}

// describeSecret fingerprints a stored secret.
func (a *API) describeSecret(stored string) secretInfo {
	plain, err := a.opts.Opener.OpenValue(stored)
	if err != nil {
		return secretInfo{Fingerprint: fingerprint(stored), Readable: false}
	}
	return secretInfo{Fingerprint: fingerprint(plain), Readable: true}
}

// newWebhookID returns a fresh Standard Webhooks message id for a test send.
func newWebhookID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "msg_test_" + hex.EncodeToString(b), nil
}
