package sender

import (
	"context"
	"errors"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// OneShot is the result of SendOnce.
type OneShot struct {
	// StatusCode is the receiver's HTTP status; 0 when there was no response.
	StatusCode int
	// Outcome is how the sender would classify the attempt: Kind and the
	// snake_case Reason ("ok", "http_500", "timeout", "blocked_address",
	// "insecure_url", …).
	Outcome Outcome
	// Error says why there was no usable response (redacted: no URL, no
	// secret); "" when the receiver answered.
	Error string
	// ResponseExcerpt is the start of the response body, at most
	// Options.ResponseExcerptBytes long.
	ResponseExcerpt string
	// Latency is how long the attempt took.
	Latency time.Duration
}

// SendOnce makes one signed attempt of a, exactly as a delivery attempt is
// made — the same URL checks, SSRF guard, TLS settings, headers and
// Standard Webhooks signature over a.WebhookID, the current time and
// a.Payload — but records nothing, retries nothing and ignores the circuit
// breakers. It is meant for test sends. It is safe for concurrent use and
// works whether or not Run was called; ctx bounds the attempt together with
// Options.RequestTimeout.
func (s *Sender) SendOnce(ctx context.Context, a Alert) OneShot {
	start := s.opts.Now()
	code, header, answer, err := s.post(ctx, a, start)
	res := OneShot{StatusCode: code, ResponseExcerpt: s.excerpt(answer), Latency: s.opts.Now().Sub(start)}
	var refused *refusedError
	if errors.As(err, &refused) {
		res.Outcome = Outcome{Kind: Permanent, Reason: refused.reason}
	} else {
		res.Outcome = ClassifyVendor(a.Vendor, code, err, header, answer, s.opts.Now())
	}
	if err != nil {
		res.Error = logging.RedactError(err)
	} else if res.Outcome.Detail != "" {
		res.Error = res.Outcome.Detail
	}
	return res
}
