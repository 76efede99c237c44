package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/supabase-community/postgrest-go"

	"github.com/meshhook/meshhook-alerts/internal/delivery"
)

// AlertStatus is alert_logs.status.
type AlertStatus = delivery.Status

// The alert statuses allowed by the schema.
const (
	StatusPending    = delivery.StatusPending
	StatusDelivering = delivery.StatusDelivering
	StatusSucceeded  = delivery.StatusSucceeded
	StatusFailed     = delivery.StatusFailed
	StatusSuppressed = delivery.StatusSuppressed
)

// AlertLog is one alert (a row of alert_logs). Nullable columns read as their
// zero value when NULL.
type AlertLog struct {
	ID           string
	ConfigID     string
	ProjectID    string
	WorkflowSlug string
	RunID        string
	Event        string
	WebhookID    string // Standard Webhooks id, stable across attempts
	Status       AlertStatus
	Attempts     int
	// AttemptBase is how many of Attempts were made before the alert was
	// last redelivered; RedeliveredAt is when that was (zero: never). The
	// sender's retry budget (attempts and age) starts there.
	AttemptBase    int
	RedeliveredAt  time.Time
	NextAttemptAt  time.Time // zero when NULL
	Payload        []byte    // the exact body sent on every attempt
	TargetURL      string    // rendered URL (may be sealed)
	OccurredAt     time.Time
	LastStatusCode int // 0 when NULL
	LastError      string
	OutcomeReason  string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    time.Time // zero when NULL
}

func decodeAlert(raw []byte) (AlertLog, error) {
	d, err := newRowDecoder("alert log", raw)
	if err != nil {
		return AlertLog{}, err
	}
	var (
		id, configID, projectID, slug, runID, event, webhookID, status nullString
		payload, target, lastErr, reason                               nullString
		attempts, base, lastCode                                       flexInt
		next, occurred, created, updated, completed, redelivered       pgTime
	)
	d.field("id", &id)
	d.field("config_id", &configID)
	d.field("project_id", &projectID)
	d.field("workflow_slug", &slug)
	d.field("run_id", &runID)
	d.field("event", &event)
	d.field("webhook_id", &webhookID)
	d.field("status", &status)
	d.field("attempts", &attempts)
	d.field("attempt_base", &base)
	d.field("redelivered_at", &redelivered)
	d.field("next_attempt_at", &next)
	d.field("payload", &payload)
	d.field("target_url", &target)
	d.field("occurred_at", &occurred)
	d.field("last_status_code", &lastCode)
	d.field("last_error", &lastErr)
	d.field("outcome_reason", &reason)
	d.field("created_at", &created)
	d.field("updated_at", &updated)
	d.field("completed_at", &completed)
	if err := d.err(); err != nil {
		return AlertLog{}, err
	}
	return AlertLog{
		ID: string(id), ConfigID: string(configID), ProjectID: string(projectID), WorkflowSlug: string(slug),
		RunID: string(runID), Event: string(event), WebhookID: string(webhookID), Status: AlertStatus(status),
		Attempts: int(attempts), AttemptBase: int(base), RedeliveredAt: redelivered.Time, NextAttemptAt: next.Time,
		Payload: []byte(payload), TargetURL: string(target), OccurredAt: occurred.Time, LastStatusCode: int(lastCode),
		LastError: string(lastErr), OutcomeReason: string(reason), CreatedAt: created.Time, UpdatedAt: updated.Time, CompletedAt: completed.Time,
	}, nil
}

// alertWire is an alert_logs row as PostgREST returns it (typed JSON), for
// decoding whole result sets in one pass with the standard decoder's fast
// paths. decodeAlert, column by column and lenient, costs several times more.
type alertWire struct {
	ID             *string `json:"id"`
	ConfigID       *string `json:"config_id"`
	ProjectID      *string `json:"project_id"`
	WorkflowSlug   *string `json:"workflow_slug"`
	RunID          *string `json:"run_id"`
	Event          *string `json:"event"`
	WebhookID      *string `json:"webhook_id"`
	Status         *string `json:"status"`
	Attempts       *int64  `json:"attempts"`
	AttemptBase    *int64  `json:"attempt_base"`
	RedeliveredAt  *string `json:"redelivered_at"`
	NextAttemptAt  *string `json:"next_attempt_at"`
	Payload        *string `json:"payload"`
	TargetURL      *string `json:"target_url"`
	OccurredAt     *string `json:"occurred_at"`
	LastStatusCode *int64  `json:"last_status_code"`
	LastError      *string `json:"last_error"`
	OutcomeReason  *string `json:"outcome_reason"`
	CreatedAt      *string `json:"created_at"`
	UpdatedAt      *string `json:"updated_at"`
	CompletedAt    *string `json:"completed_at"`
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

// decodeAlerts decodes a JSON array of alert_logs rows. Input the fast path
// cannot take (values in Postgres' text forms, or malformed rows) goes
// through decodeAlert, which is lenient and names the column at fault.
func decodeAlerts(body []byte) ([]AlertLog, error) {
	out, err := func() ([]AlertLog, error) {
		rows, err := decodeAlertRows(body)
		if err != nil {
			return nil, err
		}
		out := make([]AlertLog, len(rows))
		for i, w := range rows {
			var times [6]time.Time
			for j, p := range []*string{w.NextAttemptAt, w.OccurredAt, w.CreatedAt, w.UpdatedAt, w.CompletedAt, w.RedeliveredAt} {
				if p == nil {
					continue
				}
				t, err := ParseTimestamp(*p)
				if err != nil {
					return nil, err
				}
				times[j] = t
			}
			out[i] = AlertLog{
				ID: deref(w.ID), ConfigID: deref(w.ConfigID), ProjectID: deref(w.ProjectID), WorkflowSlug: deref(w.WorkflowSlug),
				RunID: deref(w.RunID), Event: deref(w.Event), WebhookID: deref(w.WebhookID), Status: AlertStatus(deref(w.Status)),
				Attempts: int(deref(w.Attempts)), AttemptBase: int(deref(w.AttemptBase)), RedeliveredAt: times[5], NextAttemptAt: times[0], Payload: []byte(deref(w.Payload)), TargetURL: deref(w.TargetURL),
				OccurredAt: times[1], LastStatusCode: int(deref(w.LastStatusCode)), LastError: deref(w.LastError),
				OutcomeReason: deref(w.OutcomeReason), CreatedAt: times[2], UpdatedAt: times[3], CompletedAt: times[4],
			}
		}
		return out, nil
	}()
	if err == nil {
		return out, nil
	}
	raws, err := decodeArray(body)
	if err != nil {
		return nil, err
	}
	out = make([]AlertLog, 0, len(raws))
	for _, raw := range raws {
		l, err := decodeAlert(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// NewAlert is an alert to claim: the (ConfigID, RunID, Event) key plus
// everything the sender needs to deliver it without the rule.
type NewAlert struct {
	ConfigID     string // required
	ProjectID    string // "" = NULL
	WorkflowSlug string // "" = NULL
	RunID        string // required
	Event        string // required
	WebhookID    string // required; unique across alerts
	Payload      []byte
	TargetURL    string    // required
	OccurredAt   time.Time // required
	// Status defaults to pending. A throttled alert may be recorded as
	// suppressed directly.
	Status AlertStatus
	// NextAttemptAt is when a pending alert is due; zero means now.
	NextAttemptAt time.Time
	OutcomeReason string    // "" = NULL
	CompletedAt   time.Time // zero = NULL
}

// alertInsert is NewAlert on the wire.
type alertInsert struct {
	ConfigID      string  `json:"config_id"`
	ProjectID     *string `json:"project_id"`
	WorkflowSlug  *string `json:"workflow_slug"`
	RunID         string  `json:"run_id"`
	Event         string  `json:"event"`
	WebhookID     string  `json:"webhook_id"`
	Status        string  `json:"status"`
	NextAttemptAt *string `json:"next_attempt_at"`
	Payload       string  `json:"payload"`
	TargetURL     string  `json:"target_url"`
	OccurredAt    string  `json:"occurred_at"`
	OutcomeReason *string `json:"outcome_reason"`
	CompletedAt   *string `json:"completed_at"`
}

func (a NewAlert) wire(now time.Time) (alertInsert, error) {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"config_id", a.ConfigID}, {"run_id", a.RunID}, {"event", a.Event},
		{"webhook_id", a.WebhookID}, {"target_url", a.TargetURL},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s: required", f.name))
		}
	}
	if a.OccurredAt.IsZero() {
		errs = append(errs, errors.New("occurred_at: required"))
	}
	status := a.Status
	if status == "" {
		status = StatusPending
	}
	if !status.Valid() {
		errs = append(errs, fmt.Errorf("status: %q is not a valid status", status))
	}
	if err := errors.Join(errs...); err != nil {
		return alertInsert{}, fmt.Errorf("supabase: claim alert: %w", err)
	}
	next := a.NextAttemptAt
	if next.IsZero() && status == StatusPending {
		next = now
	}
	return alertInsert{
		ConfigID: a.ConfigID, ProjectID: nullable(a.ProjectID), WorkflowSlug: nullable(a.WorkflowSlug),
		RunID: a.RunID, Event: a.Event, WebhookID: a.WebhookID, Status: string(status),
		NextAttemptAt: nullableTime(next), Payload: string(a.Payload), TargetURL: a.TargetURL,
		OccurredAt: bodyTime(a.OccurredAt), OutcomeReason: nullable(a.OutcomeReason),
		CompletedAt: nullableTime(a.CompletedAt),
	}, nil
}

// GetAlert returns one alert, or an error satisfying IsNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (AlertLog, error) {
	return getByID(ctx, s, "get alert", TableAlertLogs, "*", id, decodeAlert)
}

// Attempt is one delivery attempt (a row of alert_attempts).
type Attempt = delivery.Attempt

// attemptInsert is Attempt on the wire. Every key is always present: a
// PostgREST bulk insert takes its columns from the objects' keys.
type attemptInsert struct {
	AlertID         string  `json:"alert_id"`
	Attempt         int     `json:"attempt"`
	StartedAt       string  `json:"started_at"`
	LatencyMS       int64   `json:"latency_ms"`
	StatusCode      *int    `json:"status_code"`
	Error           *string `json:"error"`
	ResponseExcerpt *string `json:"response_excerpt"`
	Outcome         string  `json:"outcome"`
}

// ListAttempts returns an alert's attempts in attempt order.
func (s *Store) ListAttempts(ctx context.Context, alertID string) ([]Attempt, error) {
	const op = "list attempts"
	var out []Attempt
	err := s.scan(ctx, keysetQuery{
		op: op, table: TableAlertAttempts, columns: "*", keys: []string{"attempt"},
		filter: func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Eq("alert_id", alertID) },
	}, func(_ map[string]any, raw json.RawMessage) error {
		a, err := decodeAttempt(raw)
		if err != nil {
			return fmt.Errorf("supabase: %s: %w", op, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeAttempt(raw []byte) (Attempt, error) {
	d, err := newRowDecoder("alert attempt", raw)
	if err != nil {
		return Attempt{}, err
	}
	var (
		id, attempt, latency, code flexInt
		alertID, errText, excerpt  nullString
		outcome                    nullString
		started                    pgTime
	)
	d.field("id", &id)
	d.field("alert_id", &alertID)
	d.field("attempt", &attempt)
	d.field("started_at", &started)
	d.field("latency_ms", &latency)
	d.field("status_code", &code)
	d.field("error", &errText)
	d.field("response_excerpt", &excerpt)
	d.field("outcome", &outcome)
	if err := d.err(); err != nil {
		return Attempt{}, err
	}
	return Attempt{
		ID: int64(id), AlertID: string(alertID), Attempt: int(attempt), StartedAt: started.Time,
		Latency: time.Duration(latency) * time.Millisecond, StatusCode: int(code), Error: string(errText),
		ResponseExcerpt: string(excerpt), Outcome: string(outcome),
	}, nil
}
