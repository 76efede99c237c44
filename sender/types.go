package sender

import (
	"context"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/delivery"
)

// Alert is one alert leased for delivery.
type Alert struct {
	ID        string
	ConfigID  string
	WebhookID string // stable across attempts: the receiver's dedupe key
	RunID     string
	Event     string
	Payload   []byte // sent verbatim on every attempt
	// Vendor names the receiver whose answers ClassifyVendor reads
	// (VendorSlack, …); "" is a plain webhook (Classify).
	Vendor            string
	TargetURL         string // opened (plaintext) URL
	Secrets           []string
	MeshHookSignature bool
	Headers           map[string]string
	// TLS is the rule's custom CA and client certificate; nil uses the
	// system roots and no client certificate.
	TLS      *TLSConfig
	Attempts int // attempts made so far
	// AttemptBase is how many of Attempts were made before the alert was
	// last redelivered: Schedule.MaxAttempts counts only the attempts after
	// it, so a redelivery gets a fresh set.
	AttemptBase int
	CreatedAt   time.Time
	// RedeliveredAt is when the alert was last redelivered, zero if never:
	// Schedule.MaxAge counts from it instead of CreatedAt.
	RedeliveredAt time.Time
	// OccurredAt is when the change that raised the alert was committed;
	// the dispatch latency observed on the first attempt starts there.
	OccurredAt time.Time
	// ReceivedAt is when the daemon received the change that raised the
	// alert, when it is known (zero otherwise); the daemon's own share of
	// the dispatch latency is measured from there.
	ReceivedAt time.Time
	// Lease is when this sender's lease on the alert expires: the value of
	// alert_logs.next_attempt_at while the alert is delivering. Reports
	// carry it so that a sender whose lease was taken over cannot overwrite
	// the new holder's state.
	Lease time.Time
	// Refusal, when set by the Store, fails or postpones the alert without
	// an attempt (for example when its rule was deleted or its secrets
	// cannot be opened).
	Refusal *Refusal
}

// Refusal is why an alert cannot be attempted.
type Refusal struct {
	Reason string // snake_case outcome reason, e.g. "rule_gone"
	Detail string // human-readable; must not contain secrets or URLs
	// RetryAfter, when positive, means not yet rather than never: the
	// alert is put back, pending, for that long (for example while the
	// rules are still loading), and fails only past the schedule's
	// maximum age.
	RetryAfter time.Duration
}

// TLSConfig is a rule's custom trust anchor and client identity (mTLS),
// PEM-encoded. Empty fields are not used.
type TLSConfig struct {
	CAPEM   string // trust only these CAs for this rule's endpoint
	CertPEM string // client certificate chain
	KeyPEM  string // client private key
}

// The record of a delivery step, shared with the store that writes it.
type (
	// Attempt is the record of one delivery attempt.
	Attempt = delivery.Attempt
	// Update is an alert's new delivery state.
	Update = delivery.Update
	// Report is what one delivery step leaves behind: the attempt (nil
	// when nothing was sent) and the alert's new state, applied only while
	// the reporter still holds Lease.
	Report = delivery.Report
)

// Alert statuses the sender writes.
const (
	StatusPending    = delivery.StatusPending
	StatusDelivering = delivery.StatusDelivering
	StatusSucceeded  = delivery.StatusSucceeded
	StatusFailed     = delivery.StatusFailed
)

// Store is what the sender needs from the database.
type Store interface {
	// LeaseDue atomically takes up to limit alerts that are due at now —
	// pending with next_attempt_at <= now, or delivering with an expired
	// lease (its holder died) — and marks them delivering with
	// next_attempt_at = until. Two senders never lease the same alert. An
	// expired lease is recorded as an "interrupted" attempt and counted in
	// Attempts.
	LeaseDue(ctx context.Context, now, until time.Time, limit int) ([]Alert, error)
	// Report durably applies a batch: it records every attempt and applies
	// each update whose alert is still delivering under the report's lease.
	// applied holds the AlertIDs whose update was applied. It must be
	// idempotent: repeating a batch changes nothing.
	Report(ctx context.Context, reports []Report) (applied map[string]bool, err error)
	// DisableConfig disables a rule whose endpoint is gone (410).
	DisableConfig(ctx context.Context, configID, reason string) error
}

// usedAttempts is how many attempts the alert has made within its current
// retry budget: since its latest redelivery, if any.
func (a *Alert) usedAttempts() int { return max(a.Attempts-a.AttemptBase, 0) }

// budgetStart is when the alert's current retry budget started: its latest
// redelivery, else its creation.
func (a *Alert) budgetStart() time.Time {
	if !a.RedeliveredAt.IsZero() {
		return a.RedeliveredAt
	}
	return a.CreatedAt
}
