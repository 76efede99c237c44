package supabase_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// Tests of the store methods behind the HTTP API.

func TestAPIStore_ConfigWritesAndUserTokens(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var owner string
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select owner::text from projects where id = $1`, f.projectID).Scan(&owner))
	asOwner := supabase.WithUserToken(ctx, pgtest.UserToken(owner, time.Hour))
	asStranger := supabase.WithUserToken(ctx, pgtest.UserToken("a1a1a1a1-0000-4000-8000-0000000000ee", time.Hour))

	w := supabase.AlertConfigWrite{ProjectID: f.projectID, WorkflowSlug: `odd,slug (v2)`, Name: "n", Enabled: true,
		Events: []string{"failed"}, WebhookURL: "https://h/x", SigningSecrets: []string{"s1"},
		CustomHeaders: map[string]string{"X-A": "a"}, ThrottleMax: 2, ThrottleWindowSeconds: 60}
	c, err := f.store.InsertAlertConfig(asOwner, w)
	require.NoError(t, err)
	assert.Equal(t, `odd,slug (v2)`, c.WorkflowSlug)
	assert.Equal(t, map[string]string{"X-A": "a"}, c.CustomHeaders)
	assert.Zero(t, c.DelayThresholdSeconds)

	// A stranger may not insert into the project, nor see, change or delete the rule.
	_, err = f.store.InsertAlertConfig(asStranger, w)
	assert.True(t, supabase.IsAuth(err), "%v", err)
	_, err = f.store.GetAlertConfig(asStranger, c.ID)
	assert.True(t, supabase.IsNotFound(err), "%v", err)
	_, err = f.store.UpdateAlertConfig(asStranger, c.ID, w, c.UpdatedAt, false)
	assert.True(t, supabase.IsNotFound(err), "%v", err)
	assert.True(t, supabase.IsNotFound(f.store.DeleteAlertConfig(asStranger, c.ID)))
	found, err := f.store.FindAlertConfigs(asStranger, supabase.ConfigFilter{ProjectID: f.projectID}, 0)
	require.NoError(t, err)
	assert.Empty(t, found)

	// A project that does not exist is a foreign-key violation for the service role.
	bad := w
	bad.ProjectID = "b2b2b2b2-0000-4000-8000-0000000000ff"
	_, err = f.store.InsertAlertConfig(ctx, bad)
	assert.True(t, supabase.IsForeignKeyViolation(err), "%v", err)

	// Compare-and-set on updated_at.
	w.Name = "renamed"
	c2, err := f.store.UpdateAlertConfig(asOwner, c.ID, w, c.UpdatedAt, false)
	require.NoError(t, err)
	assert.Equal(t, "renamed", c2.Name)
	_, err = f.store.UpdateAlertConfig(asOwner, c.ID, w, c.UpdatedAt, false)
	assert.ErrorIs(t, err, supabase.ErrStale)
	_, err = f.store.SetAlertConfigSecrets(asOwner, c.ID, []string{"s1", "s2"}, c.UpdatedAt)
	assert.ErrorIs(t, err, supabase.ErrStale)
	c3, err := f.store.SetAlertConfigSecrets(asOwner, c.ID, []string{"s1", "s2"}, c2.UpdatedAt)
	require.NoError(t, err)
	assert.Equal(t, []string{"s1", "s2"}, c3.SigningSecrets)
	assert.Equal(t, "renamed", c3.Name)

	// clearDisabledReason.
	require.NoError(t, f.store.SetConfigDisabledReason(ctx, c.ID, "gone"))
	c4, err := f.store.GetAlertConfig(ctx, c.ID)
	require.NoError(t, err)
	c5, err := f.store.UpdateAlertConfig(asOwner, c.ID, w, c4.UpdatedAt, true)
	require.NoError(t, err)
	assert.Empty(t, c5.DisabledReason)
	assert.True(t, c5.Enabled)

	// Filters: by slug with reserved characters, with and without the
	// project-wide rules (the fixture's rule is for lead-sync; add one for
	// the whole project).
	wide := w
	wide.WorkflowSlug = ""
	cw, err := f.store.InsertAlertConfig(asOwner, wide)
	require.NoError(t, err)
	found, err = f.store.FindAlertConfigs(asOwner, supabase.ConfigFilter{ProjectID: f.projectID, WorkflowSlug: `odd,slug (v2)`}, 0)
	require.NoError(t, err)
	assert.Equal(t, []string{c.ID}, configIDs(found))
	found, err = f.store.FindAlertConfigs(asOwner, supabase.ConfigFilter{ProjectID: f.projectID, WorkflowSlug: `odd,slug (v2)`, ProjectWide: true}, 0)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{c.ID, cw.ID}, configIDs(found))
	found, err = f.store.FindAlertConfigs(ctx, supabase.ConfigFilter{}, 2)
	require.NoError(t, err)
	assert.Len(t, found, 2, "limit")
	found, err = f.store.FindAlertConfigs(ctx, supabase.ConfigFilter{NoProject: true}, 0)
	require.NoError(t, err)
	assert.Empty(t, found)

	// Ids only: the caller's rules, as row-level security lets them see.
	all, err := f.store.FindAlertConfigs(ctx, supabase.ConfigFilter{}, 0)
	require.NoError(t, err)
	ids, err := f.store.AlertConfigIDs(ctx, supabase.ConfigFilter{})
	require.NoError(t, err)
	assert.Equal(t, configIDs(all), ids, "the service role sees every rule, in id order")
	ids, err = f.store.AlertConfigIDs(asOwner, supabase.ConfigFilter{})
	require.NoError(t, err)
	assert.Subset(t, ids, []string{c.ID, cw.ID})
	ids, err = f.store.AlertConfigIDs(asOwner, supabase.ConfigFilter{ProjectID: f.projectID, WorkflowSlug: `odd,slug (v2)`})
	require.NoError(t, err)
	assert.Equal(t, []string{c.ID}, ids)
	ids, err = f.store.AlertConfigIDs(asStranger, supabase.ConfigFilter{})
	require.NoError(t, err)
	assert.Empty(t, ids, "a stranger sees none")

	require.NoError(t, f.store.DeleteAlertConfig(asOwner, c.ID))
	assert.True(t, supabase.IsNotFound(f.store.DeleteAlertConfig(asOwner, c.ID)))
}

func configIDs(cs []supabase.AlertConfig) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestAPIStore_ListCountRequeueAlerts(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	// Twelve alerts; created_at ties in threes so pages split ties.
	base := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	var all []string
	for i := range 12 {
		a := f.newAlert(fmt.Sprintf("run-%02d", i), fmt.Sprintf("msg_%02d", i))
		l, claimed := claim(t, f.store, a)
		require.True(t, claimed)
		status := []string{"pending", "failed", "succeeded"}[i%3]
		_, err := f.db.Pool.Exec(ctx, `update alert_logs set created_at = $2, status = $3,
			completed_at = case when $3 = 'pending' then null else $2::timestamptz end where id = $1`,
			l.ID, base.Add(time.Duration(i/3)*time.Second), status)
		require.NoError(t, err)
		all = append(all, l.ID)
	}

	var got []supabase.AlertLog
	var cursor *supabase.AlertCursor
	for page := 0; ; page++ {
		require.Less(t, page, 10)
		logs, next, err := f.store.ListAlerts(ctx, supabase.AlertFilter{ConfigID: f.configID}, cursor, 5)
		require.NoError(t, err)
		got = append(got, logs...)
		if next == nil {
			break
		}
		cursor = next
	}
	require.Len(t, got, 12)
	seen := map[string]bool{}
	for i, l := range got {
		assert.False(t, seen[l.ID], "alert %s listed twice", l.ID)
		seen[l.ID] = true
		if i > 0 {
			prev := got[i-1]
			assert.True(t, prev.CreatedAt.After(l.CreatedAt) || (prev.CreatedAt.Equal(l.CreatedAt) && prev.ID > l.ID),
				"newest first, ties by id descending")
		}
	}

	// Filters and counts.
	window := supabase.AlertFilter{From: base.Add(time.Second), To: base.Add(3 * time.Second),
		Statuses: []supabase.AlertStatus{supabase.StatusFailed, supabase.StatusSucceeded}}
	logs, _, err := f.store.ListAlerts(ctx, window, nil, 100)
	require.NoError(t, err)
	assert.Len(t, logs, 4)
	n, err := f.store.CountAlerts(ctx, window)
	require.NoError(t, err)
	assert.EqualValues(t, 4, n)
	n, err = f.store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{supabase.StatusSucceeded},
		CompletedSince: base.Add(2 * time.Second)})
	require.NoError(t, err)
	assert.EqualValues(t, 2, n)
	n, err = f.store.CountAlerts(ctx, supabase.AlertFilter{RunID: "run-00", ProjectID: f.projectID, WorkflowSlug: "lead-sync"})
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
	_, err = f.store.CountAlerts(ctx, supabase.AlertFilter{Statuses: []supabase.AlertStatus{"bogus"}})
	assert.ErrorContains(t, err, "not a valid status")

	// Attempts of a page.
	_, err = f.db.Pool.Exec(ctx, `insert into alert_attempts (alert_id, attempt, started_at, latency_ms, status_code, outcome)
		values ($1, 2, $3, 0, 500, 'http_500'), ($1, 1, $3, 0, null, 'timeout'), ($2, 1, $3, 0, 200, 'ok')`, all[1], all[2], base)
	require.NoError(t, err)
	at, err := f.store.AttemptsOf(ctx, []string{all[0], all[1], all[2]})
	require.NoError(t, err)
	require.Len(t, at[all[1]], 2)
	assert.Equal(t, []int{1, 2}, []int{at[all[1]][0].Attempt, at[all[1]][1].Attempt})
	assert.Len(t, at[all[2]], 1)
	assert.Empty(t, at[all[0]])

	// Requeue: only finished alerts.
	now := time.Now()
	l, err := f.store.RequeueAlert(ctx, all[1], now)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusPending, l.Status)
	assert.True(t, l.CompletedAt.IsZero())
	assert.WithinDuration(t, now, l.NextAttemptAt, time.Millisecond)
	_, err = f.store.RequeueAlert(ctx, all[1], now)
	assert.True(t, errors.Is(err, supabase.ErrNotRedeliverable), "%v", err)
	_, err = f.store.RequeueAlert(ctx, "00000000-0000-4000-8000-000000000000", now)
	assert.True(t, supabase.IsNotFound(err), "%v", err)
}
