package sender

import (
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/logging"
)

// BreakerOptions configures the per-endpoint circuit breakers.
type BreakerOptions struct {
	// Failures is how many consecutive failed attempts to one endpoint open
	// its circuit. Default 5.
	Failures int
	// Cooldown is how long an open circuit refuses attempts before one probe
	// is let through (half-open). Default 30s. Each failed probe doubles it,
	// up to MaxCooldown.
	Cooldown time.Duration
	// MaxCooldown caps the cooldown. Default 10m.
	MaxCooldown time.Duration
}

func (o *BreakerOptions) setDefaults() {
	if o.Failures <= 0 {
		o.Failures = 5
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.MaxCooldown < o.Cooldown {
		o.MaxCooldown = max(10*time.Minute, o.Cooldown)
	}
}

// circuitState is a breaker's state.
type circuitState int

const (
	circuitClosed   circuitState = iota // attempts flow; consecutive failures are counted
	circuitOpen                         // attempts are refused until openUntil
	circuitHalfOpen                     // one probe attempt is in flight
)

type circuit struct {
	state     circuitState
	failures  int // consecutive
	openUntil time.Time
	cooldown  time.Duration
}

// breakers holds one circuit per endpoint (scheme, host, port and path; see
// targetKeys; per rule for PagerDuty, see circuitKey). An endpoint whose
// attempts keep failing (timeouts, connection errors, 5xx, a webhook's
// 429) is cut off for a cooldown so that its alerts
// are rescheduled instead of tying up workers; after the cooldown a single
// probe decides whether it closes again. Other endpoints of the same host
// are not held back: many webhooks share a host (every Slack incoming
// webhook is on hooks.slack.com), and one of them failing says nothing
// about the rest. The host's capacity is still shared through the per-host
// concurrency limit.
type breakers struct {
	opts BreakerOptions
	mu   sync.Mutex
	m    map[string]*circuit
}

func newBreakers(o BreakerOptions) *breakers {
	o.setDefaults()
	return &breakers{opts: o, m: map[string]*circuit{}}
}

// allow decides whether an attempt to an endpoint may start now. When it may not,
// retryAt is when the circuit will let a probe through. probe is true when
// this attempt is the half-open probe; pass it back to record.
func (b *breakers) allow(endpoint string, now time.Time) (ok, probe bool, retryAt time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.m[endpoint]
	if c == nil {
		return true, false, time.Time{}
	}
	switch c.state {
	case circuitOpen:
		if now.Before(c.openUntil) {
			return false, false, c.openUntil
		}
		c.state = circuitHalfOpen
		return true, true, time.Time{}
	case circuitHalfOpen:
		// The probe is in flight: wait for its verdict.
		return false, false, now.Add(min(b.opts.Cooldown, 5*time.Second))
	}
	return true, false, time.Time{}
}

// blocked reports whether an endpoint's circuit refuses attempts at now
// (open, or half-open with its probe in flight) and until when.
func (b *breakers) blocked(endpoint string, now time.Time) (until time.Time, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.m[endpoint]
	switch {
	case c == nil:
		return time.Time{}, false
	case c.state == circuitOpen && now.Before(c.openUntil):
		return c.openUntil, true
	case c.state == circuitHalfOpen:
		return now.Add(min(b.opts.Cooldown, 5*time.Second)), true
	}
	return time.Time{}, false
}

// record feeds an attempt's result back. It returns opened = true when this
// result opened (or re-opened) the circuit, and closed = true when it closed
// a circuit that was open or half-open.
func (b *breakers) record(endpoint string, probe, failed bool, now time.Time) (opened, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.m[endpoint]
	if !failed {
		if c != nil {
			closed = c.state != circuitClosed
			delete(b.m, endpoint)
		}
		return false, closed
	}
	if c == nil {
		c = &circuit{cooldown: b.opts.Cooldown}
		b.m[endpoint] = c
	}
	c.failures++
	switch {
	case probe && c.state == circuitHalfOpen:
		c.cooldown = min(c.cooldown*2, b.opts.MaxCooldown)
		c.state, c.openUntil = circuitOpen, now.Add(c.cooldown)
		return true, false
	case c.state == circuitClosed && c.failures >= b.opts.Failures:
		c.state, c.openUntil = circuitOpen, now.Add(c.cooldown)
		return true, false
	}
	return false, false
}

// openCount is the number of endpoints whose circuit is not closed.
func (b *breakers) openCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.m {
		if c.state != circuitClosed {
			n++
		}
	}
	return n
}

// countsAsFailure reports whether an outcome of an attempt to a vendor
// ("" for a webhook) says the endpoint is unhealthy: transport errors,
// timeouts, 5xx, 408, 425, and a webhook's 429. Permanent refusals (a 4xx,
// a redirect, 410) come from a host that answers, so they do not; nor
// does a vendor's 429 (see rateLimited).
func countsAsFailure(vendor string, o Outcome) bool {
	return o.Kind == Retry && !rateLimited(vendor, o)
}

// rateLimited reports whether an outcome is a vendor's rate limit: a 429
// from Slack, Discord, Teams, Google Chat or PagerDuty limits one hook or
// one routing key (often one tenant flooding its own), asks for a wait
// (Retry-After, which the retry honours) and says nothing of the host's
// health. Counted as a failure, it would open the circuit of an endpoint
// that answers, and PagerDuty's, where every rule posts to one URL,
// for every rule sharing it (see circuitKey). It neither opens nor closes
// a circuit, except that a half-open probe answered so closes it.
func rateLimited(vendor string, o Outcome) bool {
	return vendor != "" && o.Kind == Retry && o.Reason == "http_429"
}

// endpointFields identify an endpoint in a log line without its path, which
// may be the webhook's secret (a Slack incoming webhook's is): the target
// redacted to scheme and host, and endpoint_id, a short hash of the
// endpoint key that tells endpoints of one host apart.
func endpointFields(target, endpoint string, extra ...zap.Field) []zap.Field {
	return append([]zap.Field{logging.URL("target", target), logging.Fingerprint("endpoint_id", endpoint)}, extra...)
}

// Circuit is one endpoint's circuit breaker as the operator sees it: the
// endpoint redacted (its path may be the webhook's secret) and identified
// by EndpointID, the same short hash the sender's log lines carry.
type Circuit struct {
	// Target is the endpoint redacted to scheme and host (with
	// "/[redacted]" when it has a path).
	Target string
	// EndpointID is a short hash of the endpoint (scheme, host, port and
	// path; and the rule, for PagerDuty, see circuitKey) telling endpoints
	// of one host apart, as endpoint_id in logs.
	EndpointID string
	// State is "closed" (attempts flow, some failed in a row), "open"
	// (attempts wait until OpenUntil) or "half_open" (one probe in flight).
	State string
	// Failures counts the consecutive failed attempts.
	Failures int
	// OpenUntil is when an open circuit lets a probe through; zero otherwise.
	OpenUntil time.Time
}

// circuits lists the endpoints that have a circuit (every endpoint whose
// last attempt failed), open ones first, then by target.
func (b *breakers) circuits(now time.Time) []Circuit {
	b.mu.Lock()
	out := make([]Circuit, 0, len(b.m))
	for ep, c := range b.m {
		v := Circuit{Target: logging.RedactURL(ep), EndpointID: logging.Fingerprint("", ep).String, Failures: c.failures}
		switch {
		case c.state == circuitHalfOpen:
			v.State = "half_open"
		case c.state == circuitOpen && now.Before(c.openUntil):
			v.State, v.OpenUntil = "open", c.openUntil
		case c.state == circuitOpen:
			v.State = "half_open" // the next attempt is the probe
		default:
			v.State = "closed"
		}
		out = append(out, v)
	}
	b.mu.Unlock()
	rank := map[string]int{"open": 0, "half_open": 1, "closed": 2}
	sort.Slice(out, func(i, j int) bool {
		if a, b := rank[out[i].State], rank[out[j].State]; a != b {
			return a < b
		}
		if out[i].Target != out[j].Target {
			return out[i].Target < out[j].Target
		}
		return out[i].EndpointID < out[j].EndpointID
	})
	return out
}

// Circuits reports the circuit breakers of the endpoints whose attempts
// failed lately (an endpoint that answers again has none).
func (s *Sender) Circuits() []Circuit { return s.breakers.circuits(s.opts.Now()) }
