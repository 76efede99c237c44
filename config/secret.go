package config

import (
	"github.com/meshhook/meshhook-alerts/internal/logging"

	"encoding/base64"
	"errors"
	"fmt"
)

// Redacted is what a non-empty Secret prints as.
const Redacted = logging.Redacted

// Secret is a string that never prints its value: fmt (every verb),
// encoding/json, YAML, zap's reflection encoder and Config.String all show
// Redacted instead, or "" when the secret is empty. Use Value to read it.
type Secret string

// Value returns the secret in clear. Never log it.
func (s Secret) Value() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String returns Redacted, or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString returns the redacted form quoted, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format implements fmt.Formatter so that no verb prints the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'), verb == 'q':
		_, _ = fmt.Fprint(f, s.GoString())
	default:
		_, _ = fmt.Fprint(f, s.String())
	}
}

// MarshalText returns the redacted form, so encoders never see the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// DecodeKey decodes a 32-byte key from standard or URL-safe base64, padded or
// not. It is used for Secrets.EncryptionKey and Secrets.PreviousKeys.
func DecodeKey(s Secret) ([]byte, error) {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		if key, err := enc.DecodeString(s.Value()); err == nil {
			if len(key) != 32 {
				return nil, fmt.Errorf("must be base64 of 32 bytes, got %d bytes", len(key))
			}
			return key, nil
		}
	}
	return nil, errors.New("must be base64 of 32 bytes: not valid base64")
}

// Keys decodes the current and previous encryption keys. current is nil when
// EncryptionKey is empty. The error names the offending field.
func (s Secrets) Keys() (current []byte, previous [][]byte, err error) {
	if s.EncryptionKey.IsSet() {
		if current, err = DecodeKey(s.EncryptionKey); err != nil {
			return nil, nil, &FieldError{Field: "secrets.encryption_key", Problem: err.Error()}
		}
	}
	for i, k := range s.PreviousKeys {
		key, err := DecodeKey(k)
		if err != nil {
			return nil, nil, &FieldError{Field: fmt.Sprintf("secrets.previous_keys[%d]", i), Problem: err.Error()}
		}
		previous = append(previous, key)
	}
	return current, previous, nil
}
