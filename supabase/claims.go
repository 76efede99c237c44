package supabase

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// FuncClaim is the batch claim function (20261128000006_alert_claims.sql).
const FuncClaim = "alert_claim"

// ClaimedAlert is an alert that a ClaimAlerts call inserted.
type ClaimedAlert struct {
	ID       string
	ConfigID string
	RunID    string
	Event    string
	Status   AlertStatus
	// NextAttemptAt is when a pending alert is due, or the lease expiry of
	// an alert inserted already leased (delivering).
	NextAttemptAt time.Time
}

// Key is the alert's claim key: config, run and event.
func (c ClaimedAlert) Key() ClaimKey { return ClaimKey{c.ConfigID, c.RunID, c.Event} }

// ClaimKey identifies an alert: one per rule, run and event.
type ClaimKey struct{ ConfigID, RunID, Event string }

// Key is the alert's claim key.
func (a NewAlert) Key() ClaimKey { return ClaimKey{a.ConfigID, a.RunID, a.Event} }

type claimedWire struct {
	ID            string  `json:"id"`
	ConfigID      string  `json:"config_id"`
	RunID         string  `json:"run_id"`
	Event         string  `json:"event"`
	Status        string  `json:"status"`
	NextAttemptAt *string `json:"next_attempt_at"`
}

// ClaimAlerts records many alerts in one request, skipping every alert
// already claimed (by key or webhook_id) and those whose rule no longer
// exists; it returns the alerts it inserted. An alert given with Status
// delivering and NextAttemptAt its lease expiry is inserted already leased
// to the caller, as LeaseDueAlerts would return it.
//
// After an ambiguous failure (a timeout after the server committed) a
// retried call reports the alerts the lost call inserted as already claimed:
// they are pending (or leased, and taken over when the lease expires), so
// they are still delivered. An alert is never lost and never claimed twice.
func (s *Store) ClaimAlerts(ctx context.Context, alerts []NewAlert) ([]ClaimedAlert, error) {
	const op = "claim alerts"
	if len(alerts) == 0 {
		return nil, nil
	}
	now := time.Now()
	rows := make([]alertInsert, len(alerts))
	for i, a := range alerts {
		row, err := a.wire(now)
		if err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
		rows[i] = row
	}
	body, err := s.rpc(ctx, op, FuncClaim, claimArgs(rows), "p_alerts")
	if err != nil {
		return nil, err
	}
	wire, err := decodeClaimed(body)
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: decode response: %w", op, err)
	}
	out := make([]ClaimedAlert, len(wire))
	for i, w := range wire {
		c := ClaimedAlert{ID: w.ID, ConfigID: w.ConfigID, RunID: w.RunID, Event: w.Event, Status: AlertStatus(w.Status)}
		if w.NextAttemptAt != nil {
			t, err := ParseTimestamp(*w.NextAttemptAt)
			if err != nil {
				return nil, fmt.Errorf("supabase: %s: next_attempt_at: %w", op, err)
			}
			c.NextAttemptAt = t
		}
		if c.ID == "" {
			return nil, fmt.Errorf("supabase: %s: a claimed alert has no id", op)
		}
		out[i] = c
	}
	return out, nil
}

// ClaimedResolve is a resolved alert that ClaimResolve or ClaimResolves
// inserted.
type ClaimedResolve struct {
	ClaimedAlert
	// Resolved is how many failed alerts it resolved.
	Resolved int
}

// ClaimResolve claims one resolved alert (a, its Event "resolved") only
// while a's rule has a failed alert for a's workflow that is not resolved
// yet (nor suppressed, nor newer than a, nor more than 7 days older), and
// marks those failed alerts resolved by it, atomically: of concurrent
// calls for the same failure, from any number of daemons, exactly one
// claims. ok is false when there was nothing to resolve (or a was claimed
// before).
func (s *Store) ClaimResolve(ctx context.Context, a NewAlert) (claimed ClaimedResolve, ok bool, err error) {
	got, err := s.ClaimResolves(ctx, []NewAlert{a})
	if err != nil {
		return ClaimedResolve{}, false, err
	}
	return got[0], got[0].ID != "", nil
}

// FuncClaimResolves is the resolve claim function
// (20261211000002_alert_claim_resolves.sql, which claims each alert with
// alert_claim_resolve of 20261209000001_alert_destinations.sql).
const FuncClaimResolves = "alert_claim_resolves"

// ClaimResolves claims many resolved alerts in one request, each as
// ClaimResolve claims one, and returns one result per alert, in order: a
// ClaimedResolve with an empty ID where there was nothing to resolve (or
// the alert was claimed before).
func (s *Store) ClaimResolves(ctx context.Context, alerts []NewAlert) ([]ClaimedResolve, error) {
	const op = "claim resolves"
	if len(alerts) == 0 {
		return nil, nil
	}
	now := time.Now()
	rows := make([]alertInsert, len(alerts))
	for i, a := range alerts {
		a.Status, a.NextAttemptAt = "", time.Time{}
		row, err := a.wire(now)
		if err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
		rows[i] = row
	}
	body, err := s.rpc(ctx, op, FuncClaimResolves, claimArgs(rows), "p_alerts")
	if err != nil {
		return nil, err
	}
	var wire []struct {
		claimedWire
		Resolved int `json:"resolved"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, fmt.Errorf("supabase: %s: decode response: %w", op, err)
	}
	if len(wire) != len(alerts) {
		return nil, fmt.Errorf("supabase: %s: %d alerts answered with %d results", op, len(alerts), len(wire))
	}
	out := make([]ClaimedResolve, len(wire))
	for i, w := range wire {
		if w.ID == "" {
			continue
		}
		c := ClaimedResolve{ClaimedAlert: ClaimedAlert{ID: w.ID, ConfigID: w.ConfigID, RunID: w.RunID, Event: w.Event,
			Status: AlertStatus(w.Status)}, Resolved: w.Resolved}
		if w.NextAttemptAt != nil {
			if c.NextAttemptAt, err = ParseTimestamp(*w.NextAttemptAt); err != nil {
				return nil, fmt.Errorf("supabase: %s: next_attempt_at: %w", op, err)
			}
		}
		out[i] = c
	}
	return out, nil
}
