package supabase

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/delivery"
	"github.com/meshhook/meshhook-alerts/internal/jsonenc"
)

// Functions of the delivery migration (20261128000004_alert_delivery_leases.sql).
const (
	FuncLeaseDue        = "alert_lease_due"
	FuncReportDelivered = "alert_report_deliveries"
)

// OutcomeInterrupted is the outcome recorded for an attempt whose sender
// stopped (its lease expired) before recording the result.
const OutcomeInterrupted = "interrupted"

// LeaseDueAlerts atomically takes up to limit alerts due at now (pending
// with next_attempt_at <= now, or delivering with an expired lease) and marks
// them delivering with next_attempt_at = until, which the caller keeps as
// its lease. Concurrent callers never get the same alert. An expired lease
// is recorded as an OutcomeInterrupted attempt and counted in Attempts.
//
// The call is not idempotent: if it is retried after the server committed
// but the response was lost, the alerts leased by the lost call stay
// delivering until their lease expires and are then taken over (at least
// once, never lost).
func (s *Store) LeaseDueAlerts(ctx context.Context, now, until time.Time, limit int) ([]AlertLog, error) {
	const op = "lease due alerts"
	if limit <= 0 || limit > s.opts.PageSize {
		limit = s.opts.PageSize
	}
	if !until.After(now) {
		return nil, fmt.Errorf("supabase: %s: lease expiry %s is not after %s", op, bodyTime(until), bodyTime(now))
	}
	args := append(jsonenc.AppendString([]byte(`{"p_now":`), bodyTime(now)), `,"p_until":`...)
	args = append(jsonenc.AppendString(args, bodyTime(until)), `,"p_limit":`...)
	args = append(strconv.AppendInt(args, int64(limit), 10), '}')
	body, err := s.rpc(ctx, op, FuncLeaseDue, args, "p_now", "p_until", "p_limit")
	if err != nil {
		return nil, err
	}
	out, err := decodeAlerts(body)
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return out, nil
}

// DeliveryReport is one sender step to record: an attempt (nil when nothing
// was sent) and the alert's new state, applied only while the alert is
// still delivering under Lease.
type DeliveryReport = delivery.Report

// DeliveryUpdate is an alert's state after a delivery step.
type DeliveryUpdate = delivery.Update

// reportUpdate is DeliveryUpdate on the wire.
type reportUpdate struct {
	ID             string  `json:"id"`
	Lease          string  `json:"lease"`
	Status         string  `json:"status"`
	Attempts       int     `json:"attempts"`
	NextAttemptAt  *string `json:"next_attempt_at"`
	OutcomeReason  *string `json:"outcome_reason"`
	CompletedAt    *string `json:"completed_at"`
	SetLast        bool    `json:"set_last"`
	LastStatusCode *int    `json:"last_status_code"`
	LastError      *string `json:"last_error"`
}

// ReportDeliveries records a batch of delivery steps in one request: every
// attempt (skipping ones already recorded, so a repeated batch is harmless)
// and every update whose alert is still delivering under its report's
// lease. applied holds the AlertIDs whose update took effect; a missing id
// means another sender took the alert over (or it was deleted).
func (s *Store) ReportDeliveries(ctx context.Context, reports []DeliveryReport) (applied map[string]bool, err error) {
	const op = "report deliveries"
	attempts := make([]attemptInsert, 0, len(reports))
	updates := make([]reportUpdate, 0, len(reports))
	for i, r := range reports {
		if r.AlertID == "" || r.Lease.IsZero() {
			return nil, fmt.Errorf("supabase: %s: report %d: alert id and lease are required", op, i)
		}
		if !r.Update.Status.Valid() || r.Update.Attempts < 0 {
			return nil, fmt.Errorf("supabase: %s: report %d: invalid status %q or attempts %d", op, i, r.Update.Status, r.Update.Attempts)
		}
		if a := r.Attempt; a != nil {
			if a.Outcome == "" || a.StartedAt.IsZero() || a.Attempt < 0 {
				return nil, fmt.Errorf("supabase: %s: report %d: attempt needs an outcome, a start time and attempt >= 0", op, i)
			}
			attempts = append(attempts, attemptInsert{
				AlertID: r.AlertID, Attempt: a.Attempt, StartedAt: bodyTime(a.StartedAt), LatencyMS: a.Latency.Milliseconds(),
				StatusCode: nullable(a.StatusCode), Error: nullable(a.Error), ResponseExcerpt: nullable(a.ResponseExcerpt),
				Outcome: a.Outcome,
			})
		}
		u := r.Update
		updates = append(updates, reportUpdate{
			ID: r.AlertID, Lease: bodyTime(r.Lease), Status: string(u.Status), Attempts: u.Attempts,
			NextAttemptAt: nullableTime(u.NextAttemptAt), OutcomeReason: nullable(u.OutcomeReason),
			CompletedAt: nullableTime(u.CompletedAt), SetLast: u.SetLast,
			LastStatusCode: nullable(u.LastStatusCode), LastError: nullable(u.LastError),
		})
	}
	body, err := s.rpc(ctx, op, FuncReportDelivered, reportArgs(attempts, updates), "p_attempts", "p_updates")
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(body, &ids); err != nil {
		return nil, fmt.Errorf("supabase: %s: decode response: %w", op, err)
	}
	applied = make(map[string]bool, len(ids))
	for _, id := range ids {
		applied[id] = true
	}
	return applied, nil
}
