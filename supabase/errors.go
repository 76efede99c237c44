package supabase

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrNotFound is returned when a row that must exist does not.
	ErrNotFound = errors.New("supabase: not found")
	// ErrStale is returned by a conditional update of an alert rule whose
	// row changed since the caller read it, so nothing was changed.
	ErrStale = errors.New("supabase: changed concurrently")
	// errBodyTooLarge is returned when a response exceeds Options.MaxResponseBytes.
	errBodyTooLarge = errors.New("supabase: response body too large")
)

// Error is a non-2xx response from the REST API. Code, Message, Details and
// Hint come from PostgREST's JSON error body; for a body that is not
// PostgREST's JSON (a gateway's HTML 502 page, for instance) Code is empty
// and Message holds the status text and a short excerpt of the body.
type Error struct {
	Status  int    // HTTP status code
	Code    string // PostgREST or SQLSTATE code, e.g. "23505", "PGRST205"
	Message string
	Details string
	Hint    string
	// RetryAfter is the server's Retry-After, if it sent one.
	RetryAfter time.Duration
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Details != "" {
		b.WriteString("; details: ")
		b.WriteString(e.Details)
	}
	if e.Hint != "" {
		b.WriteString("; hint: ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Retryable reports whether the status is worth retrying: 408, 429, 500,
// 502, 503 and 504.
func (e *Error) Retryable() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func asError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports whether err says the row, table or function does not
// exist: ErrNotFound, any 404 (PGRST205 unknown table, PGRST202 unknown
// function, 42P01), or 406 PGRST116 (a single object was asked for and zero
// rows matched).
func IsNotFound(err error) bool {
	if errors.Is(err, ErrNotFound) {
		return true
	}
	e, ok := asError(err)
	return ok && (e.Status == http.StatusNotFound || e.Code == "PGRST116" || e.Code == "PGRST205" ||
		e.Code == "PGRST202" || e.Code == "42P01")
}

// IsAuth reports whether err is an authentication or authorization failure:
// 401, 403, or the codes PGRST301/302/303 (bad, missing or expired JWT) and
// 42501 (insufficient privilege).
func IsAuth(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	switch e.Code {
	case "PGRST301", "PGRST302", "PGRST303", "42501":
		return true
	}
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// IsRetryable reports whether err is a transient failure worth retrying:
// network errors, request timeouts, and the statuses 408, 429, 500, 502, 503
// and 504. Other 4xx responses, TLS certificate problems, canceled contexts
// and malformed responses are not retryable.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := asError(err); ok {
		return e.Retryable()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, errBodyTooLarge) {
		return false
	}
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
	)
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalidCert) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var (
		netErr net.Error
		urlErr *url.Error
	)
	return errors.As(err, &netErr) || errors.As(err, &urlErr)
}

// retryAfter returns the Retry-After carried by err, if any.
func retryAfter(err error) time.Duration {
	if e, ok := asError(err); ok {
		return e.RetryAfter
	}
	return 0
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
