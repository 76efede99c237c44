package sender

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Kind is what to do after an attempt.
type Kind int

// Outcome kinds.
const (
	Success   Kind = iota // 2xx: done
	Retry                 // transient: try again later
	Permanent             // the receiver refused it for good: fail the alert
	Gone                  // 410: fail the alert and disable the rule
)

func (k Kind) String() string {
	switch k {
	case Success:
		return "success"
	case Retry:
		return "retry"
	case Permanent:
		return "permanent"
	case Gone:
		return "gone"
	}
	return "unknown"
}

// Outcome classifies one attempt. Reason is a stable snake_case string used
// in logs, alert_attempts.outcome and metrics.
type Outcome struct {
	Kind       Kind
	Reason     string
	RetryAfter time.Duration // from Retry-After, capped; 0 when absent
	// Detail says in words why a receiver refused an alert, when its
	// answer tells (ClassifyVendor); recorded as the attempt's error. It
	// never holds a URL or a secret.
	Detail string
}

// MaxRetryAfter caps how long a receiver's Retry-After can postpone a retry.
const MaxRetryAfter = time.Hour

// Classify decides what an attempt's response (or error) means. It is pure:
// statusCode is 0 when err is set.
func Classify(statusCode int, err error, header http.Header, now time.Time) Outcome {
	var blocked *BlockedError
	switch {
	case errors.As(err, &blocked):
		// The SSRF guard refused the destination: retrying cannot help.
		return Outcome{Kind: Permanent, Reason: "blocked_address"}
	case err != nil:
		return Outcome{Kind: Retry, Reason: errorReason(err)}
	}
	switch {
	case statusCode >= 200 && statusCode < 300:
		return Outcome{Kind: Success, Reason: "ok"}
	case statusCode == http.StatusGone:
		return Outcome{Kind: Gone, Reason: "gone"}
	case statusCode >= 300 && statusCode < 400:
		// Redirects are not followed: the endpoint's URL should be updated.
		return Outcome{Kind: Permanent, Reason: "redirect_" + strconv.Itoa(statusCode)}
	case statusCode == http.StatusRequestTimeout, statusCode == http.StatusTooEarly,
		statusCode == http.StatusTooManyRequests, statusCode >= 500 && statusCode < 600:
		return Outcome{Kind: Retry, Reason: "http_" + strconv.Itoa(statusCode), RetryAfter: retryAfter(header, now)}
	case statusCode >= 400 && statusCode < 500:
		return Outcome{Kind: Permanent, Reason: "http_" + strconv.Itoa(statusCode)}
	}
	return Outcome{Kind: Permanent, Reason: "http_" + strconv.Itoa(statusCode)}
}

// retryAfter reads Retry-After as seconds or an HTTP date, capped.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// ErrAttemptTimeout is the cause of an attempt cancelled by its deadline
// (Options.RequestTimeout).
var ErrAttemptTimeout = errors.New("webhook attempt timed out")

// errorReason names a transport error.
func errorReason(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.Is(err, ErrAttemptTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recordErr):
		return "tls"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timeout"
	}
	return "connection_error"
}
