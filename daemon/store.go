package daemon

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// MappingFromConfig builds the run-table mapping from the watch section.
func MappingFromConfig(w config.Watch) alerts.Mapping {
	m := alerts.Mapping{
		Schema: w.Schema, Table: w.Table, IDColumn: w.IDColumn, StatusColumn: w.StatusColumn,
		WorkflowColumn: w.WorkflowColumn, ProjectColumn: w.ProjectColumn, StartedAtColumn: w.StartedAtColumn,
		FinishedAtColumn: w.FinishedAtColumn, UpdatedAtColumn: w.UpdatedAtColumn,
		ResolveWorkflows: w.WorkflowLookup == config.WorkflowLookupMeshHook,
		Statuses:         map[string]alerts.State{},
	}
	for state, values := range map[alerts.State][]string{
		alerts.StateSucceeded: w.Statuses.Succeeded, alerts.StateFailed: w.Statuses.Failed, alerts.StateCanceled: w.Statuses.Canceled,
		alerts.StatePaused: w.Statuses.Paused, alerts.StateRunning: w.Statuses.Running,
	} {
		for _, v := range values {
			m.Statuses[v] = state
		}
	}
	return m
}

// rejectedRulesKey is the alert_daemon_state key holding {rule_id: reason}
// for every rule the daemon rejected.
const rejectedRulesKey = "rejected_rules"

// SupabaseStore is the engine's Store over the Supabase REST API.
type SupabaseStore struct {
	db      *supabase.Store
	mapping alerts.Mapping
	runs    supabase.RunsTable
	// pageColumns are the columns the reconciler's pages read: those the
	// matcher needs; wholeRows is set once the table lacked one of them.
	pageColumns []string
	wholeRows   atomic.Bool
}

// NewSupabaseStore adapts a supabase.Store to the engine.
func NewSupabaseStore(db *supabase.Store, m alerts.Mapping) *SupabaseStore {
	return &SupabaseStore{db: db, mapping: m, runs: supabase.RunsTable{
		Schema: m.Schema, Table: m.Table, IDColumn: m.IDColumn, UpdatedAtColumn: m.UpdatedAtColumn,
	}, pageColumns: m.Columns()}
}

// LoadRules reads every rule.
func (s *SupabaseStore) LoadRules(ctx context.Context, load alerts.RuleSink) error {
	return s.db.EachAlertConfig(ctx, func(c supabase.AlertConfig) error {
		load.Add(rulerow.Spec(c))
		return nil
	})
}

// DecodeRule reads a rule from a Realtime change record.
func (s *SupabaseStore) DecodeRule(row map[string]any) (alerts.RuleSpec, error) {
	c, err := supabase.DecodeAlertConfig(row)
	if err != nil {
		return alerts.RuleSpec{}, err
	}
	return rulerow.Spec(c), nil
}

// GetRun re-reads a run by id.
func (s *SupabaseStore) GetRun(ctx context.Context, id string) (map[string]any, bool, error) {
	return s.db.GetRow(ctx, s.runs, id)
}

// RunsInStatuses scans runs whose status is one of statuses.
func (s *SupabaseStore) RunsInStatuses(ctx context.Context, statuses []string, fn func(map[string]any) error) error {
	return s.db.RowsWhere(ctx, s.runs, s.mapping.StatusColumn, statuses, fn)
}

// ConditionClaims returns the delayed and stalled alerts ruleIDs claimed
// for runID, leaving out suppressed ones.
func (s *SupabaseStore) ConditionClaims(ctx context.Context, runID string, ruleIDs []string) ([]alerts.ConditionClaim, error) {
	refs, err := s.db.ClaimsOfRun(ctx, runID, ruleIDs, []string{string(alerts.EventDelayed), string(alerts.EventStalled)})
	if err != nil {
		return nil, err
	}
	out := make([]alerts.ConditionClaim, 0, len(refs))
	for _, r := range refs {
		if r.Status != supabase.StatusSuppressed {
			out = append(out, alerts.ConditionClaim{RuleID: r.ConfigID, Event: alerts.Event(r.Event)})
		}
	}
	return out, nil
}

// SaveRejected records the rejected rules under alert_daemon_state key
// "rejected_rules" as {rule_id: reason}.
func (s *SupabaseStore) SaveRejected(ctx context.Context, reasons map[string]string) error {
	if reasons == nil {
		reasons = map[string]string{}
	}
	return s.db.PutState(ctx, rejectedRulesKey, reasons)
}

// Workflow resolves a MeshHook workflow_definitions id.
func (s *SupabaseStore) Workflow(ctx context.Context, id string) (alerts.Workflow, bool, error) {
	d, ok, err := s.db.GetWorkflowDefinition(ctx, id)
	if err != nil || !ok {
		return alerts.Workflow{}, ok, err
	}
	return alerts.Workflow{WorkflowInfo: alerts.WorkflowInfo{ID: d.ID, Slug: d.Slug, Name: d.Name, Version: d.Version}, ProjectID: d.ProjectID}, true, nil
}

// Claim records the alerts that are not claimed yet, in one request. A
// suppressed alert is recorded as such, already complete, with
// outcome_reason "throttled". When the batch request fails for a reason
// other than availability (for example one alert the database refuses), the
// alerts are claimed one by one so that one bad alert does not hold back
// the others.
func (s *SupabaseStore) Claim(ctx context.Context, cs []alerts.Claim) ([]alerts.ClaimResult, error) {
	now := time.Now()
	batch := make([]supabase.NewAlert, len(cs))
	for i, c := range cs {
		a := supabase.NewAlert{
			ConfigID: c.ConfigID, ProjectID: c.ProjectID, WorkflowSlug: c.WorkflowSlug, RunID: c.RunID,
			Event: string(c.Event), WebhookID: c.WebhookID, Payload: c.Payload, TargetURL: c.TargetURL,
			OccurredAt: c.OccurredAt,
		}
		switch {
		case c.Suppressed:
			a.Status, a.OutcomeReason, a.CompletedAt = supabase.StatusSuppressed, "throttled", now
		case !c.LeaseUntil.IsZero():
			a.Status, a.NextAttemptAt = supabase.StatusDelivering, c.LeaseUntil
		}
		batch[i] = a
	}
	claimed, err := s.db.ClaimAlerts(ctx, batch)
	if err != nil {
		if len(batch) == 1 || supabase.IsRetryable(err) || ctx.Err() != nil {
			return nil, err
		}
		return s.claimEach(ctx, batch), nil
	}
	byKey := make(map[supabase.ClaimKey]supabase.ClaimedAlert, len(claimed))
	for _, c := range claimed {
		byKey[c.Key()] = c
	}
	out := make([]alerts.ClaimResult, len(batch))
	for i, a := range batch {
		out[i] = claimResult(byKey[a.Key()])
	}
	return out, nil
}

// claimResult is the result of an inserted alert (zero: not inserted).
func claimResult(c supabase.ClaimedAlert) alerts.ClaimResult {
	r := alerts.ClaimResult{ID: c.ID}
	if c.Status == supabase.StatusDelivering {
		r.Lease = c.NextAttemptAt
	}
	return r
}

// claimEach claims alerts one request at a time, each with its own result.
func (s *SupabaseStore) claimEach(ctx context.Context, batch []supabase.NewAlert) []alerts.ClaimResult {
	out := make([]alerts.ClaimResult, len(batch))
	for i, a := range batch {
		got, err := s.db.ClaimAlerts(ctx, []supabase.NewAlert{a})
		switch {
		case err != nil:
			out[i].Err = err
		case len(got) == 1:
			out[i] = claimResult(got[0])
		}
	}
	return out
}

// reconcileKey is the alert_daemon_state key of the reconcile lease and
// cursor, one per watched table.
func reconcileKey(m alerts.Mapping) string { return "reconcile:" + m.Schema + "." + m.Table }

// Reconcile renews the reconcile lease, saves the cursor and reads the
// horizon in one call.
func (s *SupabaseStore) Reconcile(ctx context.Context, holder string, lease time.Duration, save *alerts.Cursor) (alerts.ReconcileState, error) {
	var cur *supabase.RowKey
	if save != nil {
		cur = &supabase.RowKey{At: save.At, ID: save.ID}
	}
	st, err := s.db.Reconcile(ctx, reconcileKey(s.mapping), holder, lease, cur)
	if err != nil {
		return alerts.ReconcileState{}, err
	}
	out := alerts.ReconcileState{Held: st.Held, Holder: st.Holder, Horizon: st.Horizon, Hidden: st.Hidden, Now: st.Now}
	if st.Cursor != nil {
		out.Cursor = &alerts.Cursor{At: st.Cursor.At, ID: st.Cursor.ID}
	}
	return out, nil
}

// RunsPage reads the mapping's columns of the runs after a cursor. A
// mapping may name an optional column the table lacks (a run without it
// is read as without that value); the page then reads whole rows instead.
func (s *SupabaseStore) RunsPage(ctx context.Context, after alerts.Cursor, before time.Time, limit int, whole bool) ([]map[string]any, error) {
	key := supabase.RowKey{At: after.At, ID: after.ID}
	if !whole && !s.wholeRows.Load() {
		rows, err := s.db.RowsPage(ctx, s.runs, s.pageColumns, key, before, limit)
		var apiErr *supabase.Error
		if !errors.As(err, &apiErr) || apiErr.Code != undefinedColumn {
			return rows, err
		}
		s.wholeRows.Store(true)
	}
	return s.db.RowsPage(ctx, s.runs, nil, key, before, limit)
}

// undefinedColumn is PostgreSQL's SQLSTATE for a column that does not exist.
const undefinedColumn = "42703"

// RunsByID reads whole run rows by id.
func (s *SupabaseStore) RunsByID(ctx context.Context, ids []string) ([]map[string]any, error) {
	return s.db.RowsByID(ctx, s.runs, ids)
}

var _ alerts.Store = (*SupabaseStore)(nil)

// ClaimResolves claims resolved alerts in one request, each only while its
// rule has an unresolved failed alert for its workflow, resolving those
// (see supabase.Store.ClaimResolves).
func (s *SupabaseStore) ClaimResolves(ctx context.Context, cs []alerts.Claim) ([]alerts.ClaimResult, error) {
	batch := make([]supabase.NewAlert, len(cs))
	for i, c := range cs {
		batch[i] = supabase.NewAlert{
			ConfigID: c.ConfigID, ProjectID: c.ProjectID, WorkflowSlug: c.WorkflowSlug, RunID: c.RunID,
			Event: string(c.Event), WebhookID: c.WebhookID, Payload: c.Payload, TargetURL: c.TargetURL,
			OccurredAt: c.OccurredAt,
		}
	}
	got, err := s.db.ClaimResolves(ctx, batch)
	if err != nil {
		return nil, err
	}
	out := make([]alerts.ClaimResult, len(got))
	for i, g := range got {
		out[i].ID = g.ID
	}
	return out, nil
}

var _ alerts.ResolveClaimer = (*SupabaseStore)(nil)
