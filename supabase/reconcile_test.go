package supabase_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/supabase"
)

func TestIntegration_ReconcileLeaseIsHeldByOneAndTakenOver(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const key = "reconcile:public.workflow_runs"

	a, err := f.store.Reconcile(ctx, key, "daemon-a", time.Second, nil)
	require.NoError(t, err)
	assert.True(t, a.Held, "a free lease is taken")
	assert.Nil(t, a.Cursor)
	assert.False(t, a.Hidden, "the function sees every session")

	b, err := f.store.Reconcile(ctx, key, "daemon-b", time.Second, &supabase.RowKey{At: "2026-01-01T00:00:00Z"})
	require.NoError(t, err)
	assert.False(t, b.Held, "a second daemon waits")
	assert.Equal(t, "daemon-a", b.Holder)
	assert.Nil(t, b.Cursor, "a daemon without the lease cannot store a cursor")

	cur := supabase.RowKey{At: "2026-02-03T04:05:06.789012+00:00", ID: "run-1"}
	a, err = f.store.Reconcile(ctx, key, "daemon-a", time.Second, &cur)
	require.NoError(t, err)
	require.True(t, a.Held)
	require.NotNil(t, a.Cursor)
	assert.Equal(t, cur, *a.Cursor, "the holder stores its cursor")

	// Daemon a stops renewing; b takes over once the lease lapses and
	// resumes from a's cursor.
	require.Eventually(t, func() bool {
		b, err = f.store.Reconcile(ctx, key, "daemon-b", time.Second, nil)
		require.NoError(t, err)
		return b.Held
	}, 20*time.Second, 50*time.Millisecond)
	require.NotNil(t, b.Cursor)
	assert.Equal(t, cur, *b.Cursor)
	a, err = f.store.Reconcile(ctx, key, "daemon-a", time.Second, nil)
	require.NoError(t, err)
	assert.False(t, a.Held, "the old holder lost it")
}

func TestIntegration_ReconcileIdlePassWritesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const key = "reconcile:idle"
	rowVersion := func() (v string) {
		require.NoError(t, f.db.Pool.QueryRow(ctx, `select xmin::text from alert_daemon_state where key = $1`, key).Scan(&v))
		return v
	}
	cur := supabase.RowKey{At: "2026-02-03T04:05:06Z"}
	_, err := f.store.Reconcile(ctx, key, "daemon-a", time.Minute, &cur)
	require.NoError(t, err)
	v := rowVersion()
	for range 3 {
		st, err := f.store.Reconcile(ctx, key, "daemon-a", time.Minute, nil)
		require.NoError(t, err)
		require.True(t, st.Held)
		_, err = f.store.Reconcile(ctx, key, "daemon-a", time.Minute, &cur)
		require.NoError(t, err)
	}
	assert.Equal(t, v, rowVersion(), "renewing a fresh lease with the same cursor writes no row version")
	next := supabase.RowKey{At: "2026-02-03T04:05:07Z"}
	_, err = f.store.Reconcile(ctx, key, "daemon-a", time.Minute, &next)
	require.NoError(t, err)
	assert.NotEqual(t, v, rowVersion(), "a moved cursor is written")
}

func TestIntegration_ReconcileHorizonWaitsForOpenTransactions(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	tx, err := f.db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	var started time.Time
	require.NoError(t, tx.QueryRow(ctx, `select now()`).Scan(&started))

	require.Eventually(t, func() bool {
		st, err := f.store.Reconcile(ctx, "reconcile:h", "daemon-a", time.Minute, nil)
		require.NoError(t, err)
		// Time passes; the horizon stays at the open transaction's start.
		return !st.Horizon.After(started) && st.Now.After(started)
	}, 10*time.Second, 20*time.Millisecond)

	// A row the open transaction writes carries its start time.
	_, err = tx.Exec(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed')`,
		f.projectID, f.workflowID)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var updated time.Time
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select max(updated_at) from workflow_runs`).Scan(&updated))
	assert.False(t, updated.After(started), "updated_at is the transaction's start")

	st, err := f.store.Reconcile(ctx, "reconcile:h", "daemon-a", time.Minute, nil)
	require.NoError(t, err)
	assert.True(t, st.Horizon.After(started), "the horizon moves on once it committed")
}

func TestIntegration_RowsPageByKeysetBeforeTheHorizon(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.insertRuns(t, 7, `'running'`)
	var horizon time.Time
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select clock_timestamp()`).Scan(&horizon))
	f.insertRuns(t, 3, `'failed'`) // after the horizon: left for the next pass

	cols := []string{"id", "status", "updated_at"}
	var ids []string
	after := supabase.RowKey{At: "2000-01-01T00:00:00Z"}
	for {
		page, err := f.store.RowsPage(ctx, supabase.DefaultRunsTable, cols, after, horizon, 3)
		require.NoError(t, err)
		for _, row := range page {
			assert.Len(t, row, 3, "only the columns asked for")
			assert.Equal(t, "running", row["status"])
			ids = append(ids, row["id"].(string))
			after = supabase.RowKey{At: row["updated_at"].(string), ID: row["id"].(string)}
		}
		if len(page) < 3 {
			break
		}
	}
	assert.Len(t, ids, 7, "every row before the horizon, once")

	rows, err := f.store.RowsByID(ctx, supabase.DefaultRunsTable, ids[:2])
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Contains(t, rows[0], "workflow_id", "whole rows")
}
