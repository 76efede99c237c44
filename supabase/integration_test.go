package supabase_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/supabase"
	"github.com/meshhook/meshhook-alerts/supabase/supabasetest"
)

// serveREST serves the PostgREST stand-in over pool under /rest/v1, as
// Supabase does, and returns the project URL.
func serveREST(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	url, _ := serveRESTWith(t, pool, 0)
	return url
}

func serveRESTWith(t *testing.T, pool *pgxpool.Pool, maxRows int) (string, *supabasetest.REST) {
	t.Helper()
	rest := supabasetest.NewREST(pool, supabasetest.RESTOptions{JWTSecret: pgtest.JWTSecret, MaxRows: maxRows})
	mux := http.NewServeMux()
	mux.Handle("/rest/v1/", http.StripPrefix("/rest/v1", rest))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// Runs before srv.Close: a stalled request whose client gave up must not
	// keep the server from closing.
	t.Cleanup(rest.ReleaseStalled)
	return srv.URL, rest
}

func newStore(t *testing.T, url, key string, mod func(*supabase.Options)) *supabase.Store {
	t.Helper()
	opts := supabase.Options{URL: url, ServiceKey: key, Timeout: 20 * time.Second,
		RetryInitialInterval: 10 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	s, err := supabase.New(opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// fixture is a MeshHook project with one workflow and one alert rule.
type fixture struct {
	db         *pgtest.DB
	store      *supabase.Store
	url        string
	projectID  string
	workflowID string
	configID   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := pgtest.Shared(t).NewDatabase(t)
	f := &fixture{db: db, url: serveREST(t, db.Pool)}
	f.store = newStore(t, f.url, pgtest.ServiceRoleKey(), nil)
	ctx := context.Background()
	require.NoError(t, db.Pool.QueryRow(ctx,
		`insert into projects (owner, name) values (gen_random_uuid(), 'p') returning id::text`).Scan(&f.projectID))
	require.NoError(t, db.Pool.QueryRow(ctx,
		`insert into workflow_definitions (project_id, slug, version, definition, name)
		 values ($1, 'lead-sync', 3, '{}', 'Lead sync') returning id::text`, f.projectID).Scan(&f.workflowID))
	require.NoError(t, db.Pool.QueryRow(ctx,
		`insert into alert_configs (project_id, workflow_slug, name, events, delay_threshold_seconds, webhook_url,
		   signing_secrets, meshhook_signature, custom_headers, throttle_max, throttle_window_seconds)
		 values ($1, 'lead-sync', 'ops', '{failed,delayed}', 300, 'https://hooks.example/{{run.id}}',
		   '{whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}', true, '{"X-Team":"ops"}', 10, 60)
		 returning id::text`, f.projectID).Scan(&f.configID))
	return f
}

func (f *fixture) newAlert(runID, webhookID string) supabase.NewAlert {
	return supabase.NewAlert{
		ConfigID: f.configID, ProjectID: f.projectID, WorkflowSlug: "lead-sync", RunID: runID,
		Event: "failed", WebhookID: webhookID, Payload: []byte(`{"type":"workflow_run.failed","run":"` + runID + `"}`),
		TargetURL: "https://hooks.example/" + runID, OccurredAt: time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC),
	}
}

// claim records one alert through ClaimAlerts, the daemon's claim path, and
// reads it back. claimed is false, and the row zero, when an alert with its
// key was claimed before.
func claim(t *testing.T, s *supabase.Store, a supabase.NewAlert) (l supabase.AlertLog, claimed bool) {
	t.Helper()
	got, err := s.ClaimAlerts(t.Context(), []supabase.NewAlert{a})
	require.NoError(t, err)
	if len(got) == 0 {
		return supabase.AlertLog{}, false
	}
	require.Len(t, got, 1)
	l, err = s.GetAlert(t.Context(), got[0].ID)
	require.NoError(t, err)
	return l, true
}

// alertConfigs reads every rule through EachAlertConfig, as the daemon does.
func alertConfigs(ctx context.Context, s *supabase.Store) ([]supabase.AlertConfig, error) {
	var out []supabase.AlertConfig
	err := s.EachAlertConfig(ctx, func(c supabase.AlertConfig) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

func TestIntegration_AlertConfigs(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	cfgs, err := alertConfigs(ctx, f.store)
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	c := cfgs[0]
	assert.Equal(t, f.configID, c.ID)
	assert.Equal(t, f.projectID, c.ProjectID)
	assert.Equal(t, "lead-sync", c.WorkflowSlug)
	assert.True(t, c.Enabled)
	assert.Equal(t, []string{"failed", "delayed"}, c.Events)
	assert.Equal(t, 300, c.DelayThresholdSeconds)
	assert.Zero(t, c.StallThresholdSeconds)
	assert.Equal(t, []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, c.SigningSecrets)
	assert.True(t, c.MeshHookSignature)
	assert.Equal(t, map[string]string{"X-Team": "ops"}, c.CustomHeaders)
	assert.Equal(t, 10, c.ThrottleMax)
	assert.Equal(t, 60, c.ThrottleWindowSeconds)
	assert.WithinDuration(t, time.Now(), c.CreatedAt, time.Hour)

	require.NoError(t, f.store.SetConfigDisabledReason(ctx, f.configID, "endpoint answered 410 Gone"))
	c, err = f.store.GetAlertConfig(ctx, f.configID)
	require.NoError(t, err)
	assert.False(t, c.Enabled)
	assert.Equal(t, "endpoint answered 410 Gone", c.DisabledReason)
	assert.True(t, c.UpdatedAt.After(c.CreatedAt) || c.UpdatedAt.Equal(c.CreatedAt))

	missing := "00000000-0000-0000-0000-000000000000"
	_, err = f.store.GetAlertConfig(ctx, missing)
	assert.True(t, supabase.IsNotFound(err), "%v", err)
	assert.True(t, supabase.IsNotFound(f.store.SetConfigDisabledReason(ctx, missing, "x")))
}

func TestIntegration_EachAlertConfigPaginates(t *testing.T) {
	f := newFixture(t)
	_, err := f.db.Pool.Exec(t.Context(), `insert into alert_configs (project_id, name, events, webhook_url)
		select $1, 'r' || g, '{succeeded}', 'https://h' from generate_series(1, 1204) g`, f.projectID)
	require.NoError(t, err)
	s := newStore(t, f.url, pgtest.ServiceRoleKey(), func(o *supabase.Options) { o.PageSize = 500 })
	cfgs, err := alertConfigs(t.Context(), s)
	require.NoError(t, err)
	require.Len(t, cfgs, 1205)
	seen := map[string]bool{}
	for i, c := range cfgs {
		seen[c.ID] = true
		if i > 0 {
			assert.Less(t, cfgs[i-1].ID, c.ID, "in id order")
		}
	}
	assert.Len(t, seen, 1205)
}

func TestIntegration_ClaimTwice(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	first, claimed := claim(t, f.store, f.newAlert("run-1", "msg_run1_failed"))
	require.True(t, claimed)
	assert.NotEmpty(t, first.ID)
	assert.Equal(t, supabase.StatusPending, first.Status)
	assert.Equal(t, f.projectID, first.ProjectID)
	assert.Equal(t, "lead-sync", first.WorkflowSlug)
	assert.Equal(t, time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC), first.OccurredAt.UTC())
	assert.False(t, first.NextAttemptAt.IsZero(), "a claim is due at once")
	assert.Zero(t, first.Attempts)

	again := f.newAlert("run-1", "msg_run1_again")
	again.Payload = []byte(`{"different":true}`)
	_, claimed = claim(t, f.store, again)
	assert.False(t, claimed, "the second claim of (config, run, event) loses")
	kept, err := f.store.GetAlert(ctx, first.ID)
	require.NoError(t, err)
	assert.Equal(t, string(first.Payload), string(kept.Payload), "the first claim's payload stays")

	// A different event of the same run is a different alert.
	other := f.newAlert("run-1", "msg_run1_delayed")
	other.Event = "delayed"
	_, claimed = claim(t, f.store, other)
	assert.True(t, claimed)

	// An unknown rule (one deleted meanwhile) claims nothing.
	bad := f.newAlert("run-3", "msg_run3")
	bad.ConfigID = "00000000-0000-0000-0000-000000000000"
	_, claimed = claim(t, f.store, bad)
	assert.False(t, claimed)
	var n int
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select count(*) from alert_logs`).Scan(&n))
	assert.Equal(t, 2, n)
}

func TestIntegration_ConcurrentClaimsOneWinner(t *testing.T) {
	// Racing claims of one alert: exactly one wins and the others are told
	// it is already claimed, never an error.
	f := newFixture(t)
	const alerts, racers = 20, 8
	for i := range alerts {
		run := fmt.Sprintf("run-%d", i)
		type result struct {
			claimed bool
			err     error
		}
		results := make(chan result, racers)
		start := make(chan struct{})
		for range racers {
			go func() {
				<-start
				got, err := f.store.ClaimAlerts(context.Background(), []supabase.NewAlert{f.newAlert(run, "msg_"+run)})
				results <- result{len(got) == 1, err}
			}()
		}
		close(start)
		wins := 0
		for range racers {
			r := <-results
			require.NoError(t, r.err, run)
			if r.claimed {
				wins++
			}
		}
		require.Equal(t, 1, wins, run)
	}
}

// A claimed alert is due at its next_attempt_at; a suppressed one never.
func TestIntegration_ClaimedAlertsAreDueByNextAttempt(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	now := time.Now()

	due := f.newAlert("run-due", "msg_due")
	due.NextAttemptAt = now.Add(-time.Minute)
	later := f.newAlert("run-later", "msg_later")
	later.NextAttemptAt = now.Add(time.Hour)
	suppressed := f.newAlert("run-sup", "msg_sup")
	suppressed.Status = supabase.StatusSuppressed
	suppressed.OutcomeReason = "throttled"
	suppressed.CompletedAt = now
	var dueID string
	for i, a := range []supabase.NewAlert{due, later, suppressed} {
		l, claimed := claim(t, f.store, a)
		require.True(t, claimed)
		if i == 0 {
			dueID = l.ID
		}
		if i == 2 {
			assert.True(t, l.NextAttemptAt.IsZero())
			assert.Equal(t, "throttled", l.OutcomeReason)
			assert.False(t, l.CompletedAt.IsZero())
		}
	}

	until := now.Add(time.Minute)
	list, err := f.store.LeaseDueAlerts(ctx, now, until, 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, dueID, list[0].ID)

	// Finish it: clear next_attempt_at, record the outcome.
	done := now.Add(time.Second)
	applied, err := f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: dueID, Lease: list[0].NextAttemptAt,
		Update: supabase.DeliveryUpdate{Status: supabase.StatusSucceeded, Attempts: 1, OutcomeReason: "2xx",
			CompletedAt: done, SetLast: true, LastStatusCode: 204}}})
	require.NoError(t, err)
	assert.True(t, applied[dueID])
	got, err := f.store.GetAlert(ctx, dueID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusSucceeded, got.Status)
	assert.Equal(t, 1, got.Attempts)
	assert.True(t, got.NextAttemptAt.IsZero())
	assert.Equal(t, 204, got.LastStatusCode)
	assert.Equal(t, "2xx", got.OutcomeReason)
	assert.True(t, got.CompletedAt.Equal(done.Truncate(time.Microsecond)), "%s vs %s", got.CompletedAt, done)
	assert.True(t, got.UpdatedAt.After(got.CreatedAt) || got.UpdatedAt.Equal(got.CreatedAt))

	list, err = f.store.LeaseDueAlerts(ctx, now, until, 10)
	require.NoError(t, err)
	assert.Empty(t, list, "the later alert is not due yet, the suppressed one never")

	missing := "00000000-0000-0000-0000-000000000000"
	applied, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: missing, Lease: until,
		Update: supabase.DeliveryUpdate{Status: supabase.StatusSucceeded, Attempts: 1}}})
	require.NoError(t, err)
	assert.False(t, applied[missing], "a report for no alert applies to nothing")
}

func TestIntegration_AttemptsBatch(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l, _ := claim(t, f.store, f.newAlert("run-a", "msg_a"))
	leased, err := f.store.LeaseDueAlerts(ctx, time.Now(), time.Now().Add(time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, leased, 1)
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	report := func(n int) supabase.DeliveryReport {
		a := supabase.Attempt{Attempt: n, StartedAt: start.Add(time.Duration(n) * time.Minute),
			Latency: time.Duration(n*100) * time.Millisecond, StatusCode: 500, ResponseExcerpt: "oops", Outcome: "http_500"}
		if n == 1 {
			a.StatusCode, a.ResponseExcerpt, a.Error, a.Outcome = 0, "", "dial tcp: connection refused", "network"
		}
		return supabase.DeliveryReport{AlertID: l.ID, Lease: leased[0].NextAttemptAt, Attempt: &a,
			Update: supabase.DeliveryUpdate{Status: supabase.StatusDelivering, Attempts: n, NextAttemptAt: leased[0].NextAttemptAt}}
	}
	_, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{report(1), report(2), report(3)})
	require.NoError(t, err)
	// Overlapping batch: 2 and 3 are skipped, 4 is added.
	_, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{report(2), report(3), report(4)})
	require.NoError(t, err)

	got, err := f.store.ListAttempts(ctx, l.ID)
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, a := range got {
		assert.Equal(t, i+1, a.Attempt)
		assert.NotZero(t, a.ID)
		assert.True(t, a.StartedAt.Equal(start.Add(time.Duration(i+1)*time.Minute)))
		assert.Equal(t, time.Duration((i+1)*100)*time.Millisecond, a.Latency)
	}
	assert.Zero(t, got[0].StatusCode)
	assert.Equal(t, "dial tcp: connection refused", got[0].Error)
	assert.Empty(t, got[0].ResponseExcerpt)
	assert.Equal(t, 500, got[1].StatusCode)
	assert.Equal(t, "oops", got[1].ResponseExcerpt)

	none, err := f.store.ListAttempts(ctx, "00000000-0000-0000-0000-000000000000")
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestIntegration_StateRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	type watermark struct {
		At  time.Time `json:"at"`
		Seq int       `json:"seq"`
	}
	stored := func() (w watermark) {
		t.Helper()
		require.NoError(t, f.db.Pool.QueryRow(ctx, `select value from alert_daemon_state where key = 'catchup'`).Scan(&w))
		return w
	}

	want := watermark{At: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Seq: 7}
	require.NoError(t, f.store.PutState(ctx, "catchup", want))
	assert.Equal(t, want, stored())

	want.Seq = 8
	require.NoError(t, f.store.PutState(ctx, "catchup", want))
	assert.Equal(t, 8, stored().Seq)

	var n int
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select count(*) from alert_daemon_state`).Scan(&n))
	assert.Equal(t, 1, n)
}

// insertRuns inserts n runs of the fixture's workflow in one statement (one
// transaction, so they share updated_at = now()).
func (f *fixture) insertRuns(t *testing.T, n int, statusExpr string) {
	t.Helper()
	_, err := f.db.Pool.Exec(context.Background(), fmt.Sprintf(`insert into workflow_runs (project_id, workflow_id, status)
		select $1, $2, %s from generate_series(1, %d) g`, statusExpr, n), f.projectID, f.workflowID)
	require.NoError(t, err)
}

// pageRuns reads the runs after `after` and before `before` through
// RowsPage, limit rows a request, moving the cursor to each page's last row
// as the reconciler does, until a page comes back empty.
func pageRuns(t *testing.T, s *supabase.Store, after supabase.RowKey, before time.Time, limit int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for {
		page, err := s.RowsPage(t.Context(), supabase.DefaultRunsTable, nil, after, before, limit)
		require.NoError(t, err)
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		last := page[len(page)-1]
		after = supabase.RowKey{At: last["updated_at"].(string), ID: last["id"].(string)}
	}
}

func TestIntegration_RowsPagePaginatesIdenticalTimestamps(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.insertRuns(t, 2500, `case when g % 5 = 0 then 'paused' else 'running' end`)

	var distinct int
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select count(distinct updated_at) from workflow_runs`).Scan(&distinct))
	require.Equal(t, 1, distinct, "one transaction, one updated_at")

	var ids []string
	for _, row := range pageRuns(t, f.store, supabase.RowKey{At: "2000-01-01T00:00:00Z"}, time.Now().Add(time.Hour), 1000) {
		ids = append(ids, row["id"].(string))
	}
	require.Len(t, ids, 2500)
	assert.True(t, sort.StringsAreSorted(ids), "ties are broken by id")
	seen := map[string]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	assert.Len(t, seen, 2500)

	// status in (running, paused) pages the same way.
	counts := map[string]int{}
	err := f.store.RowsWhere(ctx, supabase.DefaultRunsTable, "status", []string{"running", "paused"}, func(row map[string]any) error {
		counts[row["status"].(string)]++
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"running": 2000, "paused": 500}, counts)

	// One run by id.
	row, found, err := f.store.GetRow(ctx, supabase.DefaultRunsTable, ids[42])
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, f.workflowID, row["workflow_id"])
	_, found, err = f.store.GetRow(ctx, supabase.DefaultRunsTable, "00000000-0000-0000-0000-000000000000")
	require.NoError(t, err)
	assert.False(t, found)
}

func TestIntegration_RowsPageWithOffsetTimestamps(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	// Session time zone with a positive offset: PostgREST-style output then
	// carries "+05:30", which must survive URL encoding in the cursor.
	_, err := f.db.Pool.Exec(ctx, fmt.Sprintf(`alter database %q set timezone to 'Asia/Kolkata'`, f.db.Name))
	require.NoError(t, err)
	f.db.Pool.Reset()
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for i := range 5 {
		_, err := f.db.Pool.Exec(ctx, `insert into workflow_runs (project_id, workflow_id, status, updated_at)
			values ($1, $2, 'succeeded', $3)`, f.projectID, f.workflowID, base.Add(time.Duration(i)*time.Microsecond))
		require.NoError(t, err)
	}
	ist := time.FixedZone("IST", 5*3600+1800)

	collect := func(after supabase.RowKey, before time.Time) []time.Time {
		var out []time.Time
		for _, row := range pageRuns(t, f.store, after, before, 2) {
			at := row["updated_at"].(string)
			assert.Contains(t, at, "+05:30")
			ts, err := supabase.ParseTimestamp(at)
			require.NoError(t, err)
			out = append(out, ts)
		}
		return out
	}
	from := supabase.RowKey{At: base.Format(time.RFC3339Nano)}
	got := collect(from, base.Add(time.Hour))
	require.Len(t, got, 5, "paged two at a time past cursors with an offset")
	for i, ts := range got {
		assert.True(t, ts.Equal(base.Add(time.Duration(i)*time.Microsecond)), "%d: %s", i, ts)
	}
	assert.Len(t, collect(from, base.Add(2*time.Microsecond).In(ist)), 2, "before is exclusive")
	assert.Len(t, collect(from, base.Add(2*time.Microsecond+500*time.Nanosecond).In(ist)), 2,
		"a sub-microsecond bound rounds down")
	assert.Empty(t, collect(supabase.RowKey{At: base.Add(time.Hour).Format(time.RFC3339Nano)}, base.Add(2*time.Hour)))
}

func TestIntegration_WorkflowDefinition(t *testing.T) {
	f := newFixture(t)
	wd, found, err := f.store.GetWorkflowDefinition(t.Context(), f.workflowID)
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, supabase.WorkflowDefinition{ID: f.workflowID, ProjectID: f.projectID, Slug: "lead-sync",
		Name: "Lead sync", Version: 3}, wd)
	_, found, err = f.store.GetWorkflowDefinition(t.Context(), "00000000-0000-0000-0000-000000000000")
	require.NoError(t, err)
	assert.False(t, found)
}

func TestIntegration_ErrorsFromTheServer(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	_, _, err := f.store.GetRow(ctx, supabase.RunsTable{Table: "no_such_runs", IDColumn: "id", UpdatedAtColumn: "updated_at"}, "x")
	var e *supabase.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 404, e.Status)
	assert.Equal(t, "PGRST205", e.Code)
	assert.True(t, supabase.IsNotFound(err))

	bad := newStore(t, f.url, pgtest.SignClaims(map[string]any{"role": "service_role", "exp": time.Now().Add(-time.Hour).Unix()}), nil)
	_, err = alertConfigs(ctx, bad)
	require.Error(t, err)
	assert.True(t, supabase.IsAuth(err), "%v", err)
	assert.False(t, supabase.IsRetryable(err))

	// The anon key sees nothing through RLS, which is not an error.
	anon := newStore(t, f.url, pgtest.AnonKey(), nil)
	cfgs, err := alertConfigs(ctx, anon)
	require.NoError(t, err)
	assert.Empty(t, cfgs)
}

func TestIntegration_BareSupabaseProject(t *testing.T) {
	db := pgtest.Shared(t).NewBareDatabase(t, repoMigrations(t))
	ctx := t.Context()
	s := newStore(t, serveREST(t, db.Pool), pgtest.ServiceRoleKey(), nil)

	var configID string
	require.NoError(t, db.Pool.QueryRow(ctx, `insert into alert_configs (name, events, webhook_url)
		values ('r', '{failed}', 'https://h') returning id::text`).Scan(&configID))
	cfgs, err := alertConfigs(ctx, s)
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	assert.Empty(t, cfgs[0].ProjectID)

	l, claimed := claim(t, s, supabase.NewAlert{ConfigID: configID, RunID: "job-17", Event: "failed",
		WebhookID: "msg_job17", Payload: []byte(`{}`), TargetURL: "https://h", OccurredAt: time.Now()})
	require.True(t, claimed)
	assert.Equal(t, "job-17", l.RunID)
	assert.Empty(t, l.ProjectID)

	_, _, err = s.GetWorkflowDefinition(ctx, "00000000-0000-0000-0000-000000000000")
	assert.True(t, supabase.IsNotFound(err), "no MeshHook tables: %v", err)
}

func TestIntegration_PagesPastASilentRowCap(t *testing.T) {
	// The server caps every read at 300 rows without saying so; a page size
	// above the cap must still return every row.
	f := newFixture(t)
	url, _ := serveRESTWith(t, f.db.Pool, 300)
	s := newStore(t, url, pgtest.ServiceRoleKey(), func(o *supabase.Options) { o.PageSize = 5000 })
	f.insertRuns(t, 1001, `'running'`)
	_, err := f.db.Pool.Exec(t.Context(), `insert into alert_configs (project_id, name, events, webhook_url)
		select $1, 'r' || g, '{succeeded}', 'https://h' from generate_series(1, 1000) g`, f.projectID)
	require.NoError(t, err)
	cfgs, err := alertConfigs(t.Context(), s)
	require.NoError(t, err)
	assert.Len(t, cfgs, 1001, "every rule is loaded")
	n := 0
	require.NoError(t, s.RowsWhere(t.Context(), supabase.DefaultRunsTable, "status", []string{"running"}, func(map[string]any) error {
		n++
		return nil
	}))
	assert.Equal(t, 1001, n)
}

func TestIntegration_TransientFaultsAreRetried(t *testing.T) {
	f := newFixture(t)
	url, rest := serveRESTWith(t, f.db.Pool, 0)
	s := newStore(t, url, pgtest.ServiceRoleKey(), func(o *supabase.Options) { o.Timeout = 300 * time.Millisecond })
	ctx := t.Context()

	for _, status := range []int{502, 503, 504, 429} {
		before := rest.Requests()
		rest.FailNext(2, status)
		require.NoError(t, s.PutState(ctx, fmt.Sprintf("k%d", status), status), "status %d", status)
		assert.EqualValues(t, 3, rest.Requests()-before, "status %d: two failures, then success", status)
	}

	// A stalled request times out and the retry goes through.
	before := rest.Requests()
	rest.StallNext(1)
	claimed, err := s.ClaimAlerts(ctx, []supabase.NewAlert{f.newAlert("run-stall", "msg_stall")})
	require.NoError(t, err)
	assert.Len(t, claimed, 1)
	assert.EqualValues(t, 2, rest.Requests()-before)

	// Permanent failures are not retried.
	before = rest.Requests()
	rest.FailNext(1, 400)
	_, err = alertConfigs(ctx, s)
	var e *supabase.Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 400, e.Status)
	assert.EqualValues(t, 1, rest.Requests()-before)

	// Retries are bounded.
	before = rest.Requests()
	rest.FailNext(100, 502)
	t.Cleanup(func() { rest.FailNext(0, 0) })
	_, err = alertConfigs(ctx, s)
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 502, e.Status)
	assert.EqualValues(t, 1+supabase.DefaultMaxRetries, rest.Requests()-before)
}
