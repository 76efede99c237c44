package supabase

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/supabase-community/postgrest-go"
)

// AlertFilter selects alerts (rows of alert_logs). Empty fields do not
// filter.
type AlertFilter struct {
	// ProjectID selects one project's alerts; NoProject selects the alerts
	// without a project instead.
	ProjectID string
	NoProject bool
	// WorkflowSlug selects the alerts of one workflow (all its versions).
	WorkflowSlug string
	ConfigID     string
	RunID        string
	// Statuses selects alerts in any of these statuses.
	Statuses []AlertStatus
	// From and To bound created_at (when the alert was claimed): From
	// inclusive, To exclusive.
	From, To time.Time
	// CompletedSince selects alerts completed at or after this time.
	CompletedSince time.Time
	// MinAttempts selects alerts with at least this many attempts made
	// (1: alerts retried after a failed attempt, when pending).
	MinAttempts int
}

// apply adds the filter's conditions to fb. Every column is filtered at
// most once, and the time bounds go last as one and=(…) tree: postgrest-go
// folds a second filter on a column into and=, which the tree would replace.
func (f AlertFilter) apply(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
	switch {
	case f.NoProject:
		fb = fb.Is("project_id", "null")
	case f.ProjectID != "":
		fb = fb.Eq("project_id", f.ProjectID)
	}
	if f.WorkflowSlug != "" {
		fb = fb.Eq("workflow_slug", f.WorkflowSlug)
	}
	if f.ConfigID != "" {
		fb = fb.Eq("config_id", f.ConfigID)
	}
	if f.RunID != "" {
		fb = fb.Eq("run_id", f.RunID)
	}
	if len(f.Statuses) > 0 {
		st := make([]string, len(f.Statuses))
		for i, s := range f.Statuses {
			st[i] = string(s)
		}
		fb = fb.Filter("status", "in", inList(st))
	}
	if f.MinAttempts > 0 {
		fb = fb.Gte("attempts", strconv.Itoa(f.MinAttempts))
	}
	var tree []string
	if !f.From.IsZero() {
		tree = append(tree, "created_at.gte."+quoteValue(filterTime(f.From)))
	}
	if !f.To.IsZero() {
		tree = append(tree, "created_at.lt."+quoteValue(filterTime(f.To)))
	}
	if !f.CompletedSince.IsZero() {
		tree = append(tree, "completed_at.gte."+quoteValue(filterTime(f.CompletedSince)))
	}
	if len(tree) > 0 {
		fb = fb.And(strings.Join(tree, ","), "")
	}
	return fb
}

func (f AlertFilter) check() error {
	for _, s := range f.Statuses {
		if !s.Valid() {
			return fmt.Errorf("status: %q is not a valid status", s)
		}
	}
	return nil
}

// AlertCursor is the position after an alert in newest-first order.
type AlertCursor struct {
	CreatedAt time.Time
	ID        string
}

// MaxAlertPage caps the alerts returned by one ListAlerts call.
const MaxAlertPage = 500

// ListAlerts returns up to limit alerts matching f, newest first (by
// created_at, then id), starting after cursor (nil: from the newest). next
// is the cursor of the following page, nil when there is none. limit is
// clamped to 1..MaxAlertPage.
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter, after *AlertCursor, limit int) (alerts []AlertLog, next *AlertCursor, err error) {
	const op = "list alerts"
	if err := f.check(); err != nil {
		return nil, nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	limit = min(max(limit, 1), MaxAlertPage, s.opts.PageSize)
	desc := &postgrest.OrderOpts{Ascending: false}
	body, err := s.exec(ctx, op, nil, func() *postgrest.FilterBuilder {
		fb := f.apply(s.client.From(TableAlertLogs).Select("*", "", false))
		if after != nil {
			at := quoteValue(filterTime(after.CreatedAt))
			fb = fb.Or(fmt.Sprintf("created_at.lt.%s,and(created_at.eq.%s,id.lt.%s)", at, at, quoteValue(after.ID)), "")
		}
		return fb.Order("created_at", desc).Order("id", desc).Limit(limit+1, "")
	})
	if err != nil {
		return nil, nil, err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return nil, nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	for _, raw := range rows {
		if len(alerts) == limit {
			last := alerts[len(alerts)-1]
			next = &AlertCursor{CreatedAt: last.CreatedAt, ID: last.ID}
			break
		}
		l, err := decodeAlert(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("supabase: %s: %w", op, err)
		}
		alerts = append(alerts, l)
	}
	return alerts, next, nil
}

// OldestAlert returns the oldest alert (by created_at) matching f, or nil
// when none does.
func (s *Store) OldestAlert(ctx context.Context, f AlertFilter) (*AlertLog, error) {
	const op = "find the oldest alert"
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	asc := &postgrest.OrderOpts{Ascending: true}
	body, err := s.exec(ctx, op, nil, func() *postgrest.FilterBuilder {
		return f.apply(s.client.From(TableAlertLogs).Select("*", "", false)).Order("created_at", asc).Order("id", asc).Limit(1, "")
	})
	if err != nil {
		return nil, err
	}
	rows, err := decodeArray(body)
	if err != nil || len(rows) == 0 {
		if err != nil {
			err = fmt.Errorf("supabase: %s: %w", op, err)
		}
		return nil, err
	}
	l, err := decodeAlert(rows[0])
	if err != nil {
		return nil, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return &l, nil
}

// CountAlerts returns how many alerts match f (an exact count).
func (s *Store) CountAlerts(ctx context.Context, f AlertFilter) (int64, error) {
	const op = "count alerts"
	if err := f.check(); err != nil {
		return 0, fmt.Errorf("supabase: %s: %w", op, err)
	}
	var n int64
	err := s.retry(ctx, op, func(ctx context.Context) error {
		_, count, err := f.apply(s.client.From(TableAlertLogs).Select("id", "exact", true)).ExecuteWithContext(ctx)
		if err != nil {
			return err
		}
		n = count
		return nil
	})
	return n, err
}

// maxAttemptLookup bounds the alert ids sent in one AttemptsOf request.
const maxAttemptLookup = 100

// AttemptsOf returns the attempts of the given alerts, by alert id, each
// list in attempt order.
func (s *Store) AttemptsOf(ctx context.Context, alertIDs []string) (map[string][]Attempt, error) {
	const op = "list attempts of alerts"
	out := make(map[string][]Attempt, len(alertIDs))
	for start := 0; start < len(alertIDs); start += maxAttemptLookup {
		ids := inList(alertIDs[start:min(start+maxAttemptLookup, len(alertIDs))])
		err := s.scan(ctx, keysetQuery{
			op: op, table: TableAlertAttempts, columns: "*", keys: []string{"id"},
			filter: func(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder { return fb.Filter("alert_id", "in", ids) },
		}, func(_ map[string]any, raw json.RawMessage) error {
			a, err := decodeAttempt(raw)
			if err != nil {
				return fmt.Errorf("supabase: %s: %w", op, err)
			}
			out[a.AlertID] = append(out[a.AlertID], a)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b Attempt) int { return cmp.Compare(a.Attempt, b.Attempt) })
	}
	return out, nil
}

// ErrNotRedeliverable is returned by RequeueAlert for an alert that is not
// finished (pending or delivering) or was never meant to be sent
// (suppressed).
var ErrNotRedeliverable = errors.New("supabase: only a succeeded or failed alert can be redelivered")

// RequeueAlert makes a finished (succeeded or failed) alert pending again,
// due at now, so the sender delivers it once more: same payload, same
// webhook-id, the next attempt number. The alert gets a fresh retry budget:
// attempt_base is set to the attempts made so far (the sender counts
// max_attempts from there) and redelivered_at to now (max_age counts from
// there); the attempts already made stay recorded. A failed alert that a
// resolved alert resolved takes that resolved alert along (made pending
// again the same way, when finished): the receiver then gets the trigger
// and after it, once more, its resolve, which alert_lease_due holds back
// until the trigger is delivered (otherwise a re-sent PagerDuty trigger
// would open an incident nothing closes). It returns the updated alert, an
// error satisfying IsNotFound when there is no such alert, or
// ErrNotRedeliverable (wrapped) when the alert is not finished.
func (s *Store) RequeueAlert(ctx context.Context, id string, now time.Time) (AlertLog, error) {
	l, err := s.requeueAlert(ctx, id, now)
	if err != nil || l.Event != "failed" {
		return l, err
	}
	if err := s.requeueResolve(ctx, id, now); err != nil {
		return l, fmt.Errorf("supabase: requeue alert: alert %s is pending again but its resolved alert is not: %w", id, err)
	}
	return l, nil
}

// requeueResolve makes the resolved alert that resolved the failed alert
// failedID pending again, if there is one and it is finished. One that is
// still pending waits for the trigger anyway.
func (s *Store) requeueResolve(ctx context.Context, failedID string, now time.Time) error {
	by, err := getByID(ctx, s, "get resolving alert", TableAlertLogs, "resolved_by", failedID,
		func(raw []byte) (string, error) {
			var w struct {
				ResolvedBy *string `json:"resolved_by"`
			}
			err := json.Unmarshal(raw, &w)
			return deref(w.ResolvedBy), err
		})
	if err != nil || by == "" {
		return err
	}
	_, err = s.requeueAlert(ctx, by, now)
	if errors.Is(err, ErrNotRedeliverable) || IsNotFound(err) {
		return nil
	}
	return err
}

func (s *Store) requeueAlert(ctx context.Context, id string, now time.Time) (AlertLog, error) {
	const op = "requeue alert"
	finished := inList([]string{string(StatusSucceeded), string(StatusFailed)})
	for round := 0; ; round++ {
		cur, err := s.GetAlert(ctx, id)
		if err != nil {
			return AlertLog{}, err
		}
		if cur.Status != StatusSucceeded && cur.Status != StatusFailed {
			return AlertLog{}, fmt.Errorf("%w (alert %s is %s)", ErrNotRedeliverable, id, cur.Status)
		}
		// A finished alert's attempts do not change, so this compare-and-set
		// fails only when the alert was redelivered (and maybe finished
		// again) meanwhile.
		patch := map[string]any{
			"status": string(StatusPending), "next_attempt_at": bodyTime(now), "completed_at": nil,
			"outcome_reason": "redeliver_requested", "attempt_base": cur.Attempts, "redelivered_at": bodyTime(now),
		}
		tries := 0
		body, err := s.exec(ctx, op, preferHeader("return=representation"), func() *postgrest.FilterBuilder {
			tries++
			return s.client.From(TableAlertLogs).Update(patch, "representation", "").Eq("id", id).
				Filter("status", "in", finished).Eq("attempts", strconv.Itoa(cur.Attempts))
		})
		if err != nil {
			return AlertLog{}, err
		}
		rows, err := decodeArray(body)
		if err != nil {
			return AlertLog{}, fmt.Errorf("supabase: %s: %w", op, err)
		}
		if len(rows) > 0 {
			l, err := decodeAlert(rows[0])
			if err != nil {
				return AlertLog{}, fmt.Errorf("supabase: %s: %w", op, err)
			}
			return l, nil
		}
		after, err := s.GetAlert(ctx, id)
		if err != nil {
			return AlertLog{}, err
		}
		if tries > 1 && after.Status == StatusPending && after.OutcomeReason == "redeliver_requested" &&
			after.AttemptBase == cur.Attempts && after.RedeliveredAt.Equal(now.Truncate(time.Microsecond)) {
			return after, nil // an earlier try of this call applied, and its answer was lost
		}
		if round >= 2 || (after.Status != StatusSucceeded && after.Status != StatusFailed) {
			return AlertLog{}, fmt.Errorf("%w (alert %s is %s)", ErrNotRedeliverable, id, after.Status)
		}
	}
}
