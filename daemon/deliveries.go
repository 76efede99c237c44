package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// Deliveries connects the engine, the sender and the database: it is the
// sender's Store (alerts are leased from alert_logs and completed with the
// rule's opened signing material) and wakes the sender when the engine
// claims an alert.
type Deliveries struct {
	Store *supabase.Store
	// Rules is the engine's rule cache; set before the sender runs.
	Rules *alerts.RuleSet
	// Opener opens sealed target URLs; nil uses stored values as they are.
	Opener *rulerow.Opener
	// Loaded, when set, reports whether the rule cache has been loaded;
	// until then alerts are postponed rather than refused.
	Loaded func() bool
	// OnDisabled, when set, is told about every rule disabled because its
	// endpoint is gone (for the operator's internal alerts).
	OnDisabled func(configID, reason string)

	// received remembers when the changes behind freshly claimed alerts
	// arrived, by alert id, until the sender leases them.
	receivedMu sync.Mutex
	received   map[string]time.Time
}

// maxReceived bounds the arrival times remembered (alerts another daemon
// leased are never taken): when full, those older than receivedTTL are
// forgotten, and if it is still full new ones are not recorded (only the
// daemon-share metric misses them).
const (
	maxReceived = 20000
	receivedTTL = time.Minute
)

func (d *Deliveries) noteReceived(id string, at time.Time) {
	if at.IsZero() {
		return
	}
	d.receivedMu.Lock()
	if d.received == nil {
		d.received = map[string]time.Time{}
	}
	if len(d.received) >= maxReceived {
		for k, t := range d.received {
			if at.Sub(t) > receivedTTL {
				delete(d.received, k)
			}
		}
	}
	if len(d.received) < maxReceived {
		d.received[id] = at
	}
	d.receivedMu.Unlock()
}

// takeReceived returns and forgets when alert id's change arrived.
func (d *Deliveries) takeReceived(id string) time.Time {
	d.receivedMu.Lock()
	defer d.receivedMu.Unlock()
	at, ok := d.received[id]
	if ok {
		delete(d.received, id)
		if len(d.received) == 0 {
			d.received = nil // a map keeps the room it grew to in a burst
		}
	}
	return at
}

// Submitter returns the engine's Submitter feeding snd: a claim is already
// a pending row, so submitting only wakes the sender to lease it now.
func (d *Deliveries) Submitter(snd *sender.Sender) alerts.Submitter { return submitter{d, snd} }

type submitter struct {
	d   *Deliveries
	snd *sender.Sender
}

// Submit hands an alert claimed leased straight to the sender; any other
// is pending in the database, and the sender is woken to lease it.
func (s submitter) Submit(c alerts.Claimed) bool {
	if c.Lease.IsZero() {
		s.d.noteReceived(c.ID, c.ReceivedAt)
		s.snd.Wake()
		return true
	}
	return s.snd.Deliver(s.d.alertOf(c))
}

// Reserve implements Leaser.
func (s submitter) Reserve(n int) (int, time.Time) { return s.snd.Reserve(n) }

// Unreserve implements Leaser.
func (s submitter) Unreserve(n int) { s.snd.Unreserve(n) }

// alertOf is the sender's view of an alert claimed leased: everything is in
// hand (the rendered, not yet sealed, URL and the rule's signing material),
// so nothing is read back from the database.
func (d *Deliveries) alertOf(c alerts.Claimed) sender.Alert {
	r := c.Rule
	a := sender.Alert{
		ID: c.ID, ConfigID: c.ConfigID, WebhookID: c.WebhookID, RunID: c.RunID, Event: string(c.Event),
		Payload: r.FillSecrets(c.Payload), Vendor: vendor(r), TargetURL: c.TargetURL, Secrets: r.Secrets(), MeshHookSignature: r.MeshHookSignature(),
		Headers: r.Headers(), TLS: rulerow.SenderTLS(r.TLS()), CreatedAt: time.Now(), OccurredAt: c.OccurredAt,
		ReceivedAt: c.ReceivedAt, Lease: c.Lease,
	}
	return a
}

// vendor is the sender's name for the receiver of r's alerts, whose
// answers it classifies.
func vendor(r *alerts.Rule) string { return sender.VendorOf(string(r.Destination())) }

// LeaseDue leases due alerts and completes them with their rule's signing
// material. An alert whose rule is gone, disabled or rejected, or whose
// target URL cannot be opened, carries a Refusal: the sender fails it
// without an attempt.
func (d *Deliveries) LeaseDue(ctx context.Context, now, until time.Time, limit int) ([]sender.Alert, error) {
	logs, err := d.Store.LeaseDueAlerts(ctx, now, until, limit)
	if err != nil {
		return nil, err
	}
	out := make([]sender.Alert, 0, len(logs))
	for _, l := range logs {
		a := sender.Alert{
			ID: l.ID, ConfigID: l.ConfigID, WebhookID: l.WebhookID, RunID: l.RunID, Event: l.Event,
			Payload: l.Payload, TargetURL: l.TargetURL, Attempts: l.Attempts, AttemptBase: l.AttemptBase,
			CreatedAt: l.CreatedAt, RedeliveredAt: l.RedeliveredAt, Lease: l.NextAttemptAt, OccurredAt: l.OccurredAt,
		}
		if l.Attempts == 0 {
			a.ReceivedAt = d.takeReceived(l.ID)
		}
		if d.Opener != nil {
			u, err := d.Opener.OpenValue(l.TargetURL)
			if err != nil {
				a.TargetURL = ""
				a.Refusal = &sender.Refusal{Reason: "sealed_url", Detail: "the alert's target URL cannot be opened: " + err.Error()}
				out = append(out, a)
				continue
			}
			a.TargetURL = u
		}
		var r *alerts.Rule
		ok := false
		if d.Rules != nil {
			r, ok = d.Rules.Get(l.ConfigID)
		}
		if !ok || !r.Enabled() {
			a.Refusal = d.refusal(ctx, l.ConfigID)
			out = append(out, a)
			continue
		}
		a.Secrets, a.MeshHookSignature, a.Headers, a.TLS = r.Secrets(), r.MeshHookSignature(), r.Headers(), rulerow.SenderTLS(r.TLS())
		a.Payload, a.Vendor = r.FillSecrets(a.Payload), vendor(r)
		out = append(out, a)
	}
	return out, nil
}

// ruleRetryDelay is how long an alert whose rule is not (yet) in the cache
// waits before it is tried again.
const ruleRetryDelay = 5 * time.Second

// refusal says why an alert whose rule is not in the cache cannot be sent.
// The rule may be gone (deleted, disabled, rejected): the alert fails. Or
// the cache may not have it yet (rules still loading after a start, or a
// rule created moments ago whose change has not arrived): the alert waits.
func (d *Deliveries) refusal(ctx context.Context, configID string) *sender.Refusal {
	gone := &sender.Refusal{Reason: "rule_gone", Detail: "the alert's rule no longer exists, is disabled or was rejected"}
	wait := &sender.Refusal{Reason: "rule_not_loaded", RetryAfter: ruleRetryDelay,
		Detail: "the alert's rule is not loaded yet"}
	if d.Loaded != nil && !d.Loaded() {
		return wait
	}
	if d.Rules != nil {
		if _, rejected := d.Rules.Rejected()[configID]; rejected {
			return gone
		}
	}
	c, err := d.Store.GetAlertConfig(ctx, configID)
	switch {
	case supabase.IsNotFound(err):
		return gone
	case err != nil:
		return wait // cannot tell now
	case !c.Enabled || c.DisabledReason != "":
		return gone
	default:
		return wait // exists and enabled: the cache will have it shortly
	}
}

// Report records a batch of delivery outcomes in one request.
func (d *Deliveries) Report(ctx context.Context, reports []sender.Report) (map[string]bool, error) {
	return d.Store.ReportDeliveries(ctx, reports)
}

// DisableConfig disables a rule (410 Gone) and drops it from the cache.
func (d *Deliveries) DisableConfig(ctx context.Context, configID, reason string) error {
	if err := d.Store.SetConfigDisabledReason(ctx, configID, reason); err != nil {
		return err
	}
	if d.Rules != nil {
		d.Rules.Delete(configID)
	}
	if d.OnDisabled != nil {
		d.OnDisabled(configID, reason)
	}
	return nil
}
