// Package sender delivers claimed alerts: it signs each attempt per Standard
// Webhooks, posts it with bounded concurrency and timeouts, classifies the
// outcome, schedules retries with exponential backoff and jitter, and records
// every attempt through its Store.
package sender

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Standard Webhooks headers, and MeshHook's own inbound signature header.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	HeaderMeshHook  = "X-Signature"
)

// secretPrefix marks a Standard Webhooks symmetric secret.
const secretPrefix = "whsec_"

// DefaultTolerance is how far a webhook-timestamp may be from the receiver's
// clock, as in every Standard Webhooks reference library.
const DefaultTolerance = 5 * time.Minute

// ParseSecret decodes a "whsec_<base64>" secret (the prefix is optional).
func ParseSecret(s string) ([]byte, error) {
	raw := strings.TrimPrefix(strings.TrimSpace(s), secretPrefix)
	if raw == "" {
		return nil, errors.New("signing secret is empty")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("signing secret is not whsec_<base64>: %w", err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("signing secret is %d bytes; want at least 16 (24 to 64 recommended)", len(key))
	}
	return key, nil
}

// GenerateSecret returns a new random 32-byte secret in whsec_ form.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// Sign returns the webhook-signature header value for one attempt: one
// "v1,<base64 HMAC-SHA256>" per key over "id.timestamp.body", space-separated,
// so receivers accept the message during a secret rotation.
func Sign(keys [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, 0, len(keys))
	unix := strconv.FormatInt(ts.Unix(), 10)
	for _, k := range keys {
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(k, id, unix, body)))
	}
	return strings.Join(sigs, " ")
}

func mac(key []byte, id, unix string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(unix))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// MeshHookSignature is MeshHook's inbound webhook signature:
// "sha256=<hex HMAC-SHA256 of the raw body>", keyed with the secret string
// exactly as configured (MeshHook's DEFAULT_WEBHOOK_SECRET must equal it).
func MeshHookSignature(secret string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(body)
	return "sha256=" + hex.EncodeToString(h.Sum(nil))
}

// Verification errors.
var (
	ErrMissingHeaders   = errors.New("missing webhook-id, webhook-timestamp or webhook-signature header")
	ErrBadTimestamp     = errors.New("webhook-timestamp is not a Unix time")
	ErrTimestampTooOld  = errors.New("webhook-timestamp is too old")
	ErrTimestampTooNew  = errors.New("webhook-timestamp is too far in the future")
	ErrNoMatchingSigner = errors.New("no webhook-signature matches")
)

// Verify checks a received webhook against secret (receivers can import
// this): the headers must be present, the timestamp within tolerance of now
// (0 means DefaultTolerance) and one v1 signature must match. It compares in
// constant time.
func Verify(secret string, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := ParseSecret(secret)
	if err != nil {
		return err
	}
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sent := time.Unix(unix, 0)
	if now.Sub(sent) > tolerance {
		return ErrTimestampTooOld
	}
	if sent.Sub(now) > tolerance {
		return ErrTimestampTooNew
	}
	want := mac(key, id, ts, body)
	for _, s := range strings.Fields(sigs) {
		version, sig, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSigner
}
