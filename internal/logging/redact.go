package logging

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Secret returns a field that shows whether a secret is set without showing
// it: "[redacted]" for a non-empty value, "" for an empty one.
func Secret(key, value string) zap.Field {
	if value == "" {
		return zap.String(key, "")
	}
	return zap.String(key, Redacted)
}

// Fingerprint returns a field identifying a secret without revealing it:
// "sha256:" and the first 6 hex digits of its SHA-256, or "" when empty. Use it
// only for high-entropy secrets (keys, signing secrets), where 24 bits of
// hash reveal nothing useful, e.g. to tell which encryption key was used.
func Fingerprint(key, value string) zap.Field {
	if value == "" {
		return zap.String(key, "")
	}
	sum := sha256.Sum256([]byte(value))
	return zap.String(key, "sha256:"+hex.EncodeToString(sum[:3]))
}

// URL returns a field holding RedactURL(raw). Webhook URLs often carry tokens
// in their path or query, so they are never logged in clear.
func URL(key, raw string) zap.Field {
	return zap.String(key, RedactURL(raw))
}

// RedactURL keeps only the scheme and host of raw. When raw has user info, a
// path other than "/", a query or a fragment, "/[redacted]" is appended:
// "https://hooks.example.com/T0/B1?token=x" → "https://hooks.example.com/[redacted]".
// A value that is not an absolute URL with a host (including sealed
// "mhsealed:v1:" envelopes) becomes "[redacted]"; "" stays "".
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return Redacted
	}
	base := u.Scheme + "://" + u.Host
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return base + "/" + Redacted
	}
	return base + u.Path
}

// Error returns an "error" field like zap.Error, but with the URL of every
// *url.Error in err's chain passed through RedactURL. net/http reports
// request failures as *url.Error, whose text includes the full request URL.
func Error(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error", RedactError(err))
}

// RedactError returns err's text with the URLs of *url.Error values in its
// chain redacted by RedactURL.
func RedactError(err error) string {
	msg := err.Error()
	var pairs []string
	for _, ue := range urlErrors(err) {
		if ue.URL == "" {
			continue
		}
		red := RedactURL(ue.URL)
		pairs = append(pairs, strconv.Quote(ue.URL), strconv.Quote(red), ue.URL, red)
	}
	if len(pairs) == 0 {
		return msg
	}
	return strings.NewReplacer(pairs...).Replace(msg)
}

// urlErrors returns every *url.Error in err's tree.
func urlErrors(err error) []*url.Error {
	var out []*url.Error
	var visit func(error)
	visit = func(e error) {
		if ue, ok := e.(*url.Error); ok {
			out = append(out, ue)
		}
		switch x := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range x.Unwrap() {
				visit(c)
			}
		case interface{ Unwrap() error }:
			if inner := x.Unwrap(); inner != nil {
				visit(inner)
			}
		}
	}
	visit(err)
	return out
}
