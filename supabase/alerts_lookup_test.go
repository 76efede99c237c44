package supabase_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/supabase"
)

func TestIntegration_ClaimsOfRun(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var other string
	require.NoError(t, f.db.Pool.QueryRow(ctx, `insert into alert_configs (project_id, name, events, delay_threshold_seconds, webhook_url)
		values ($1, 'other', '{delayed,stalled}', 60, 'https://hooks.example/o') returning id::text`, f.projectID).Scan(&other))

	claim := func(config, run, event string, status supabase.AlertStatus) {
		t.Helper()
		a := f.newAlert(run, fmt.Sprintf("msg_%s_%s_%s", config[:8], run, event))
		a.ConfigID, a.Event, a.Status = config, event, status
		_, claimed := claim(t, f.store, a)
		require.True(t, claimed)
	}
	claim(f.configID, "run-1", "delayed", "")
	claim(f.configID, "run-1", "failed", "")
	claim(other, "run-1", "stalled", supabase.StatusSuppressed)
	claim(other, "run-2", "delayed", "")

	got, err := f.store.ClaimsOfRun(ctx, "run-1", []string{f.configID, other}, []string{"delayed", "stalled"})
	require.NoError(t, err)
	sort.Slice(got, func(i, j int) bool { return got[i].Event < got[j].Event })
	require.Len(t, got, 2)
	assert.Equal(t, f.configID, got[0].ConfigID)
	assert.Equal(t, "delayed", got[0].Event)
	assert.Equal(t, supabase.StatusPending, got[0].Status)
	assert.NotEmpty(t, got[0].ID)
	assert.Equal(t, other, got[1].ConfigID)
	assert.Equal(t, "stalled", got[1].Event)
	assert.Equal(t, supabase.StatusSuppressed, got[1].Status)

	got, err = f.store.ClaimsOfRun(ctx, "run-1", []string{other}, []string{"delayed"})
	require.NoError(t, err)
	assert.Empty(t, got, "filtered by config and event")

	got, err = f.store.ClaimsOfRun(ctx, "run-1", nil, []string{"delayed"})
	require.NoError(t, err)
	assert.Empty(t, got)

	_, err = f.store.ClaimsOfRun(context.Background(), "", []string{other}, []string{"delayed"})
	assert.ErrorContains(t, err, "run id is required")
}

func TestIntegration_ClaimsOfRunManyConfigs(t *testing.T) {
	// More config ids than fit one request are split over several.
	f := newFixture(t)
	ctx := t.Context()
	rows, err := f.db.Pool.Query(ctx, `insert into alert_configs (project_id, name, events, delay_threshold_seconds, webhook_url)
		select $1, 'r' || g, '{delayed}', 60, 'https://hooks.example/r' from generate_series(1, 250) g returning id::text`, f.projectID)
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	for _, id := range ids[200:] {
		a := f.newAlert("run-x", "msg_"+id)
		a.ConfigID, a.Event = id, "delayed"
		_, claimed := claim(t, f.store, a)
		require.True(t, claimed)
	}
	got, err := f.store.ClaimsOfRun(ctx, "run-x", ids, []string{"delayed"})
	require.NoError(t, err)
	assert.Len(t, got, 50)
}
