package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/supabase-community/postgrest-go"
)

// AlertStatus is alert_logs.status.
type AlertStatus string

// The alert statuses allowed by the schema.
const (
	StatusPending    AlertStatus = "pending"
	StatusDelivering AlertStatus = "delivering"
	StatusSucceeded  AlertStatus = "succeeded"
	StatusFailed     AlertStatus = "failed"
	StatusSuppressed AlertStatus = "suppressed"
)

// Valid reports whether s is one of the schema's statuses.
func (s AlertStatus) Valid() bool {
	switch s {
	case StatusPending, StatusDelivering, StatusSucceeded, StatusFailed, StatusSuppressed:
		return true
	}
	return false
}

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

// ClaimAlert records a new alert unless one already exists for
// (ConfigID, RunID, Event): an INSERT … ON CONFLICT DO NOTHING, atomic across
// processes. claimed is true and log the new row when this call inserted it;
// otherwise claimed is false and log is the existing row (zero if it vanished
// meanwhile).
//
// After an ambiguous failure (for example a timeout after the server
// committed) a retried claim may report false for a row this call inserted.
// That row is pending and due, so DueAlerts still returns it: an alert is
// never lost, and never claimed twice.
func (s *Store) ClaimAlert(ctx context.Context, a NewAlert) (log AlertLog, claimed bool, err error) {
	const op = "claim alert"
	row, err := a.wire(time.Now())
	if err != nil {
		return AlertLog{}, false, err
	}
	body, err := s.exec(ctx, op, preferHeader("resolution=ignore-duplicates", "return=representation"),
		func() *postgrest.FilterBuilder {
			return s.client.From(TableAlertLogs).Insert(row, true, "config_id,run_id,event", "representation", "")
		})
	if err != nil {
		return AlertLog{}, false, err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return AlertLog{}, false, fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) > 0 {
		l, err := decodeAlert(rows[0])
		if err != nil {
			return AlertLog{}, false, fmt.Errorf("supabase: %s: %w", op, err)
		}
		return l, true, nil
	}
	existing, _, err := s.findClaim(ctx, a)
	if err != nil {
		return AlertLog{}, false, err
	}
	return existing, false, nil
}

// findClaim reads the alert holding a's claim key, if any.
func (s *Store) findClaim(ctx context.Context, a NewAlert) (AlertLog, bool, error) {
	const op = "get claimed alert"
	raw, err := s.firstRow(ctx, op, "", TableAlertLogs, "*",
		func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
			return fb.Eq("config_id", a.ConfigID).Eq("run_id", a.RunID).Eq("event", a.Event)
		})
	if errorsIsNotFound(err) {
		return AlertLog{}, false, nil
	}
	if err != nil {
		return AlertLog{}, false, err
	}
	l, err := decodeAlert(raw)
	if err != nil {
		return AlertLog{}, false, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return l, true, nil
}

// GetAlert returns one alert, or an error satisfying IsNotFound.
func (s *Store) GetAlert(ctx context.Context, id string) (AlertLog, error) {
	return getByID(ctx, s, "get alert", TableAlertLogs, "*", id, decodeAlert)
}

// DueAlerts returns up to limit pending alerts whose next_attempt_at is at or
// before now, earliest first. limit <= 0 means PageSize.
func (s *Store) DueAlerts(ctx context.Context, now time.Time, limit int) ([]AlertLog, error) {
	const op = "list due alerts"
	if limit <= 0 || limit > s.opts.PageSize {
		limit = s.opts.PageSize
	}
	body, err := s.exec(ctx, op, nil, func() *postgrest.FilterBuilder {
		return s.client.From(TableAlertLogs).Select("*", "", false).
			Eq("status", string(StatusPending)).
			Lte("next_attempt_at", filterTime(now)).
			Order("next_attempt_at", ascending).Order("id", ascending).
			Limit(limit, "")
	})
	if err != nil {
		return nil, err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	out := make([]AlertLog, 0, len(rows))
	for _, raw := range rows {
		l, err := decodeAlert(raw)
		if err != nil {
			return nil, fmt.Errorf("supabase: %s: %w", op, err)
		}
		out = append(out, l)
	}
	return out, nil
}

// Ptr returns a pointer to v, for AlertUpdate fields.
func Ptr[T any](v T) *T { return &v }

// AlertUpdate changes some columns of an alert. Only non-nil fields are
// sent. For the nullable columns a pointer to the zero value writes NULL
// (e.g. Ptr(time.Time{}) clears next_attempt_at, Ptr(0) clears
// last_status_code).
type AlertUpdate struct {
	Status         *AlertStatus
	Attempts       *int
	NextAttemptAt  *time.Time
	LastStatusCode *int
	LastError      *string
	OutcomeReason  *string
	CompletedAt    *time.Time
	// ExpectStatus, if set, applies the update only while the alert still
	// has this status (a compare-and-set, e.g. pending → delivering to take
	// an alert for delivery); otherwise UpdateAlert returns ErrStale.
	ExpectStatus AlertStatus
}

func (u AlertUpdate) fields() (map[string]any, error) {
	m := map[string]any{}
	if u.Status != nil {
		if !u.Status.Valid() {
			return nil, fmt.Errorf("status: %q is not a valid status", *u.Status)
		}
		m["status"] = string(*u.Status)
	}
	if u.Attempts != nil {
		if *u.Attempts < 0 {
			return nil, fmt.Errorf("attempts: %d is negative", *u.Attempts)
		}
		m["attempts"] = *u.Attempts
	}
	if u.NextAttemptAt != nil {
		m["next_attempt_at"] = nullableTime(*u.NextAttemptAt)
	}
	if u.LastStatusCode != nil {
		m["last_status_code"] = nullable(*u.LastStatusCode)
	}
	if u.LastError != nil {
		m["last_error"] = nullable(*u.LastError)
	}
	if u.OutcomeReason != nil {
		m["outcome_reason"] = nullable(*u.OutcomeReason)
	}
	if u.CompletedAt != nil {
		m["completed_at"] = nullableTime(*u.CompletedAt)
	}
	if u.ExpectStatus != "" && !u.ExpectStatus.Valid() {
		return nil, fmt.Errorf("expect status: %q is not a valid status", u.ExpectStatus)
	}
	if len(m) == 0 {
		return nil, errors.New("nothing to update")
	}
	return m, nil
}

// applied reports whether l already shows the update's status and attempts.
func (u AlertUpdate) applied(l AlertLog) bool {
	if u.Status != nil && l.Status != *u.Status {
		return false
	}
	if u.Attempts != nil && l.Attempts != *u.Attempts {
		return false
	}
	return u.Status != nil || u.Attempts != nil
}

// UpdateAlert writes the set fields of u to alert id. It returns an error
// satisfying IsNotFound if there is no such alert, and ErrStale if
// u.ExpectStatus no longer matches. If the update was applied by an attempt
// whose response was lost, the retry sees the changed status; UpdateAlert
// then re-reads the row and succeeds when it already shows u's status and
// attempts.
func (s *Store) UpdateAlert(ctx context.Context, id string, u AlertUpdate) error {
	const op = "update alert"
	patch, err := u.fields()
	if err != nil {
		return fmt.Errorf("supabase: %s %s: %w", op, id, err)
	}
	tries := 0
	body, err := s.exec(ctx, op, preferHeader("return=representation"), func() *postgrest.FilterBuilder {
		tries++
		fb := s.client.From(TableAlertLogs).Update(patch, "representation", "").Eq("id", id)
		if u.ExpectStatus != "" {
			fb = fb.Eq("status", string(u.ExpectStatus))
		}
		return fb
	})
	if err != nil {
		return err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) > 0 {
		return nil
	}
	if u.ExpectStatus == "" {
		return fmt.Errorf("supabase: %s %s: %w", op, id, ErrNotFound)
	}
	cur, err := s.GetAlert(ctx, id)
	if err != nil {
		return err
	}
	if tries > 1 && u.applied(cur) {
		return nil
	}
	return fmt.Errorf("supabase: %s %s: status is %s, not %s: %w", op, id, cur.Status, u.ExpectStatus, ErrStale)
}

// Attempt is one delivery attempt (a row of alert_attempts).
type Attempt struct {
	ID              int64 // set by the database; ignored by RecordAttempts
	AlertID         string
	Attempt         int // 1 for the first attempt
	StartedAt       time.Time
	Latency         time.Duration // stored in whole milliseconds
	StatusCode      int           // 0 = no response (NULL)
	Error           string        // "" = NULL
	ResponseExcerpt string        // "" = NULL; the caller caps its size
	Outcome         string        // reason, e.g. "2xx", "http_500", "timeout"
}

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

// maxAttemptBatch bounds one RecordAttempts request.
const maxAttemptBatch = 500

// RecordAttempts inserts attempts in batches. It is idempotent: an attempt
// whose (AlertID, Attempt) is already recorded is skipped, so a retried or
// repeated call never duplicates rows.
func (s *Store) RecordAttempts(ctx context.Context, attempts []Attempt) error {
	const op = "record attempts"
	rows := make([]attemptInsert, 0, len(attempts))
	for i, a := range attempts {
		if a.AlertID == "" || a.Outcome == "" || a.StartedAt.IsZero() || a.Attempt < 0 {
			return fmt.Errorf("supabase: %s: attempt %d: alert_id, outcome and started_at are required and attempt must be >= 0", op, i)
		}
		rows = append(rows, attemptInsert{
			AlertID: a.AlertID, Attempt: a.Attempt, StartedAt: bodyTime(a.StartedAt),
			LatencyMS: a.Latency.Milliseconds(), StatusCode: nullable(a.StatusCode), Error: nullable(a.Error),
			ResponseExcerpt: nullable(a.ResponseExcerpt), Outcome: a.Outcome,
		})
	}
	for len(rows) > 0 {
		batch := rows[:min(len(rows), maxAttemptBatch)]
		rows = rows[len(batch):]
		_, err := s.exec(ctx, op, preferHeader("resolution=ignore-duplicates", "return=minimal"),
			func() *postgrest.FilterBuilder {
				return s.client.From(TableAlertAttempts).Insert(batch, true, "alert_id,attempt", "minimal", "")
			})
		if err != nil {
			return err
		}
	}
	return nil
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
