package alerts

import (
	"context"
	"errors"
	"time"

	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// Deliveries connects the engine, the sender and the database: it is the
// sender's Store (alerts come from alert_logs, signing material from the
// rule cache) and turns the engine's claims into sender alerts.
type Deliveries struct {
	Store *supabase.Store
	// Rules is the engine's rule cache; set before the sender runs.
	Rules *RuleSet
}

// errRuleGone marks an alert whose rule was deleted or disabled before it
// could be delivered.
var errRuleGone = errors.New("the alert's rule no longer exists or is disabled")

// Submitter returns the engine's Submitter feeding snd.
func (d *Deliveries) Submitter(snd *sender.Sender) Submitter { return submitter{snd} }

type submitter struct{ snd *sender.Sender }

func (s submitter) Submit(c Claimed) bool {
	return s.snd.Submit(sender.Alert{
		ID: c.ID, ConfigID: c.ConfigID, WebhookID: c.WebhookID, RunID: c.RunID, Event: string(c.Event),
		Payload: c.Payload, TargetURL: c.TargetURL, Secrets: c.Rule.Spec.Secrets,
		MeshHookSignature: c.Rule.Spec.MeshHookSignature, Headers: c.Rule.Spec.Headers, CreatedAt: time.Now(),
	})
}

// DueAlerts returns pending alerts whose next attempt is due, with their
// rule's signing material.
func (d *Deliveries) DueAlerts(ctx context.Context, now time.Time, limit int) ([]sender.Alert, error) {
	logs, err := d.Store.DueAlerts(ctx, now, limit)
	if err != nil {
		return nil, err
	}
	out := make([]sender.Alert, 0, len(logs))
	for _, l := range logs {
		a := sender.Alert{
			ID: l.ID, ConfigID: l.ConfigID, WebhookID: l.WebhookID, RunID: l.RunID, Event: l.Event,
			Payload: l.Payload, TargetURL: l.TargetURL, Attempts: l.Attempts, CreatedAt: l.CreatedAt,
		}
		r, ok := d.Rules.Get(l.ConfigID)
		if !ok || !r.Spec.Enabled {
			// Nothing can sign it any more: close it with the reason.
			reason := "rule_gone"
			if uerr := d.Store.UpdateAlert(ctx, l.ID, supabase.AlertUpdate{
				Status: supabase.Ptr(supabase.StatusFailed), OutcomeReason: &reason,
				LastError: supabase.Ptr(errRuleGone.Error()), CompletedAt: supabase.Ptr(now),
				NextAttemptAt: supabase.Ptr(time.Time{}),
			}); uerr != nil {
				return nil, uerr
			}
			continue
		}
		a.Secrets, a.MeshHookSignature, a.Headers = r.Spec.Secrets, r.Spec.MeshHookSignature, r.Spec.Headers
		out = append(out, a)
	}
	return out, nil
}

// RecordAttempts writes attempts to alert_attempts.
func (d *Deliveries) RecordAttempts(ctx context.Context, attempts []sender.Attempt) error {
	rows := make([]supabase.Attempt, 0, len(attempts))
	for _, a := range attempts {
		rows = append(rows, supabase.Attempt{
			AlertID: a.AlertID, Attempt: a.Attempt, StartedAt: a.StartedAt, Latency: a.Latency,
			StatusCode: a.StatusCode, Error: a.Error, ResponseExcerpt: a.ResponseExcerpt, Outcome: a.Outcome,
		})
	}
	return d.Store.RecordAttempts(ctx, rows)
}

// UpdateAlert writes an alert's new delivery state.
func (d *Deliveries) UpdateAlert(ctx context.Context, id string, u sender.Update) error {
	st := supabase.AlertStatus(u.Status)
	return d.Store.UpdateAlert(ctx, id, supabase.AlertUpdate{
		Status: &st, Attempts: &u.Attempts, NextAttemptAt: u.NextAttemptAt, LastStatusCode: u.LastStatusCode,
		LastError: &u.LastError, OutcomeReason: &u.OutcomeReason, CompletedAt: u.CompletedAt,
	})
}

// DisableConfig disables a rule (410 Gone) and drops it from the cache.
func (d *Deliveries) DisableConfig(ctx context.Context, configID, reason string) error {
	if err := d.Store.SetConfigDisabledReason(ctx, configID, reason); err != nil {
		return err
	}
	if d.Rules != nil {
		d.Rules.Delete(configID)
	}
	return nil
}
