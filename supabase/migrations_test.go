package supabase_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func repoMigrations(t *testing.T) []pgtest.Migration {
	t.Helper()
	migs, err := pgtest.RepoMigrations()
	require.NoError(t, err)
	require.NotEmpty(t, migs)
	return migs
}

// Every migration tells PostgREST to reload its schema cache, so a function
// or column it adds is served at once.
func TestMigrations_ReloadPostgRESTSchema(t *testing.T) {
	for _, m := range repoMigrations(t) {
		require.Contains(t, m.SQL, "notify pgrst, 'reload schema';", m.Name)
	}
}

func queryStrings(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrations_OnMeshHookSchema(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()

	require.ElementsMatch(t,
		[]string{"alert_attempts", "alert_configs", "alert_daemon_state", "alert_logs"},
		queryStrings(t, db.Pool, `select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
			where n.nspname = 'public' and c.relname like 'alert\_%' and c.relkind = 'r' and c.relrowsecurity`))
	require.ElementsMatch(t,
		[]string{"alert_configs", "workflow_runs"},
		queryStrings(t, db.Pool, `select tablename::text from pg_publication_tables where pubname = 'supabase_realtime'`))
	require.ElementsMatch(t,
		[]string{"alert_attempts_select", "alert_configs_delete", "alert_configs_insert", "alert_configs_select",
			"alert_configs_update", "alert_logs_select"},
		queryStrings(t, db.Pool, `select policyname::text from pg_policies where schemaname = 'public' and tablename like 'alert\_%'`))
	// The charts' aggregate runs as its caller, so that row-level security
	// decides whose attempts a user counts, and finds its window through a
	// BRIN index, which costs an attempt's insert next to nothing.
	require.Equal(t, []string{"false"},
		queryStrings(t, db.Pool, `select prosecdef::text from pg_proc where proname = 'alert_delivery_series'`))
	require.Equal(t, []string{"alert_attempts_started_at_brin"},
		queryStrings(t, db.Pool, `select indexname::text from pg_indexes where tablename = 'alert_attempts' and indexdef like '%USING brin%'`))

	require.Equal(t, []string{"alert_configs_project_id_fkey"},
		queryStrings(t, db.Pool, `select conname::text from pg_constraint
			where conrelid = 'public.alert_configs'::regclass and contype = 'f'`))
	require.Equal(t, []string{"idx_workflow_runs_updated_at_id"},
		queryStrings(t, db.Pool, `select indexname::text from pg_indexes where tablename = 'workflow_runs' and indexdef like '%(updated_at, id)%'`))
	// Every index on alert_logs is paid for on every claim and every status
	// change: only these (webhook_id is derived from the claim key; the
	// unresolved-failures index holds unresolved failed alerts only, the
	// resolving index failed alerts both resolved and not delivered yet).
	require.ElementsMatch(t, []string{"alert_logs_pkey", "alert_logs_claim_key", "alert_logs_lease_idx",
		"alert_logs_unresolved_failures_idx", "alert_logs_resolving_idx"},
		queryStrings(t, db.Pool, `select indexname::text from pg_indexes where schemaname = 'public' and tablename = 'alert_logs'`))
	// The batch functions join by key whatever the table's statistics say;
	// a later CREATE OR REPLACE without these settings would drop them.
	for _, fn := range []string{"alert_claim", "alert_report_deliveries"} {
		settings := queryStrings(t, db.Pool, `select unnest(proconfig)::text from pg_proc where proname = $1`, fn)
		assert.Subset(t, settings, []string{"enable_hashjoin=off", "enable_mergejoin=off", "enable_seqscan=off"}, fn)
	}

	// Applying everything a second time is harmless.
	for _, m := range repoMigrations(t) {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}
	require.Len(t, queryStrings(t, db.Pool, `select tablename::text from pg_publication_tables where pubname = 'supabase_realtime'`), 2)
}

func TestMigrations_OnBareSupabaseProject(t *testing.T) {
	migs := repoMigrations(t)
	db := pgtest.Shared(t).NewBareDatabase(t, migs)
	ctx := context.Background()

	var runs *string
	require.NoError(t, db.Pool.QueryRow(ctx, `select to_regclass('public.workflow_runs')::text`).Scan(&runs))
	require.Nil(t, runs, "a bare project has no MeshHook tables")
	require.Equal(t, []string{"alert_configs"},
		queryStrings(t, db.Pool, `select tablename::text from pg_publication_tables where pubname = 'supabase_realtime'`))
	require.Empty(t, queryStrings(t, db.Pool, `select policyname::text from pg_policies where tablename like 'alert\_%'`))
	require.Empty(t, queryStrings(t, db.Pool, `select conname::text from pg_constraint
		where conrelid = 'public.alert_configs'::regclass and contype = 'f'`))

	for _, m := range migs {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}

	// The tables work without MeshHook: any project_id is accepted.
	_, err := db.Pool.Exec(ctx, `insert into alert_configs (project_id, name, events, webhook_url)
		values (gen_random_uuid(), 'r', '{failed}', 'https://example.test/hook')`)
	require.NoError(t, err)
}

func TestMigrations_Constraints(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	var projectID string
	require.NoError(t, db.Pool.QueryRow(ctx,
		`insert into projects (owner, name) values (gen_random_uuid(), 'p') returning id::text`).Scan(&projectID))

	insertConfig := func(events string, extra string) error {
		_, err := db.Pool.Exec(ctx, `insert into alert_configs (project_id, name, events, webhook_url`+extra+`)
			values ($1, 'r', $2::text[], 'https://example.test/hook'`+map[bool]string{true: ", 0", false: ""}[extra != ""]+`)`,
			projectID, events)
		return err
	}
	require.NoError(t, insertConfig("{succeeded,failed,canceled,paused,delayed,stalled,recovered}", ""))
	require.Error(t, insertConfig("{}", ""), "events must not be empty")
	require.Error(t, insertConfig("{exploded}", ""), "unknown event")
	require.Error(t, insertConfig("{failed,NULL}", ""), "null event")
	require.Error(t, insertConfig("{delayed}", ", delay_threshold_seconds"), "threshold must be positive")
	require.Error(t, insertConfig("{stalled}", ", stall_threshold_seconds"), "threshold must be positive")

	// Unknown project: the FK exists on a MeshHook database.
	_, err := db.Pool.Exec(ctx, `insert into alert_configs (project_id, name, events, webhook_url)
		values (gen_random_uuid(), 'r', '{failed}', 'https://example.test/hook')`)
	require.Error(t, err)

	// updated_at is maintained by trigger.
	var before, after string
	require.NoError(t, db.Pool.QueryRow(ctx, `select id::text from alert_configs limit 1`).Scan(&before))
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `update alert_configs set updated_at = '2000-01-01Z', name = 'x' where id = $1`, before)
	require.NoError(t, err)
	require.NoError(t, tx.QueryRow(ctx, `select updated_at::text from alert_configs where id = $1`, before).Scan(&after))
	require.NoError(t, tx.Commit(ctx))
	require.NotContains(t, after, "2000-01-01")
}

func TestMigrations_RLSScopesAlertsToProjectOwner(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	const owner = "11111111-1111-1111-1111-111111111111" // owns project …01; …02 belongs to 2222…
	_, err := db.Pool.Exec(ctx, `
		insert into projects (id, owner, name) values
		  ('aaaaaaaa-0000-0000-0000-000000000001', '11111111-1111-1111-1111-111111111111', 'mine'),
		  ('aaaaaaaa-0000-0000-0000-000000000002', '22222222-2222-2222-2222-222222222222', 'theirs');
		insert into alert_configs (id, project_id, name, events, webhook_url) values
		  ('cccccccc-0000-0000-0000-000000000001', 'aaaaaaaa-0000-0000-0000-000000000001', 'mine', '{failed}', 'https://h'),
		  ('cccccccc-0000-0000-0000-000000000002', 'aaaaaaaa-0000-0000-0000-000000000002', 'theirs', '{failed}', 'https://h');
		insert into alert_logs (id, config_id, run_id, event, webhook_id, payload, target_url, occurred_at) values
		  ('dddddddd-0000-0000-0000-000000000001', 'cccccccc-0000-0000-0000-000000000001', 'r', 'failed', 'msg_1', '{}', 'https://h', now()),
		  ('dddddddd-0000-0000-0000-000000000002', 'cccccccc-0000-0000-0000-000000000002', 'r', 'failed', 'msg_2', '{}', 'https://h', now());
		insert into alert_attempts (alert_id, attempt, started_at, outcome) values
		  ('dddddddd-0000-0000-0000-000000000001', 1, now(), '2xx'),
		  ('dddddddd-0000-0000-0000-000000000002', 1, now(), '2xx');
		insert into alert_daemon_state (key, value) values ('watermark', '"x"');
	`)
	require.NoError(t, err)

	asUser := func(role, sub, query string) ([]string, error) {
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, `select set_config('role', $1, true),
			set_config('request.jwt.claims', json_build_object('sub', $2::text, 'role', $1::text)::text, true)`, role, sub)
		require.NoError(t, err)
		rows, err := tx.Query(ctx, query)
		if err != nil {
			return nil, err
		}
		var out []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			out = append(out, s)
		}
		return out, rows.Err()
	}
	got, err := asUser("authenticated", owner, `select name from alert_configs`)
	require.NoError(t, err)
	require.Equal(t, []string{"mine"}, got)
	got, err = asUser("authenticated", owner, `select webhook_id from alert_logs`)
	require.NoError(t, err)
	require.Equal(t, []string{"msg_1"}, got)
	got, err = asUser("authenticated", owner, `select alert_id::text from alert_attempts`)
	require.NoError(t, err)
	require.Equal(t, []string{"dddddddd-0000-0000-0000-000000000001"}, got)
	got, err = asUser("authenticated", owner, `select key from alert_daemon_state`)
	require.NoError(t, err)
	require.Empty(t, got, "daemon state is service-role only")
	got, err = asUser("anon", "", `select name from alert_configs`)
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = asUser("service_role", "", `select key from alert_daemon_state`)
	require.NoError(t, err)
	require.Equal(t, []string{"watermark"}, got)

	// The owner may not move a rule into someone else's project.
	_, err = asUser("authenticated", owner, `update alert_configs set project_id = 'aaaaaaaa-0000-0000-0000-000000000002' returning id::text`)
	require.Error(t, err)
}

// alert_logs' updated_at follows every update: set by the trigger when the
// update leaves it alone, by the daemon's functions themselves otherwise.
func TestAlertLogsUpdatedAtFollowsEveryUpdate(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`insert into alert_configs (id, name, events, webhook_url) values ('00000000-0000-4000-8000-0000000000c1', 'r', '{failed}', 'https://x.example')`)
	exec(`insert into alert_logs (id, config_id, run_id, event, webhook_id, status, next_attempt_at, payload, target_url, occurred_at, updated_at)
		values ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 'run-1', 'failed', 'msg_1',
		        'delivering', '2026-01-01T00:01:00Z', '{}', 'https://x.example', now(), '2000-01-01T00:00:00Z')`)
	updatedAt := func() time.Time {
		var ts time.Time
		require.NoError(t, db.Pool.QueryRow(ctx, `select updated_at from alert_logs where id = '00000000-0000-4000-8000-0000000000a1'`).Scan(&ts))
		return ts
	}
	exec(`update alert_logs set last_error = 'x' where id = '00000000-0000-4000-8000-0000000000a1'`)
	first := updatedAt()
	assert.True(t, first.After(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)), "the trigger set it: %s", first)

	var applied string
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_report_deliveries($1::jsonb, $2::jsonb)::text`,
		`[{"alert_id":"00000000-0000-4000-8000-0000000000a1","attempt":1,"started_at":"2026-01-01T00:00:00Z","outcome":"ok","status_code":204}]`,
		`[{"id":"00000000-0000-4000-8000-0000000000a1","lease":"2026-01-01T00:01:00Z","status":"succeeded","attempts":1,"set_last":true,"last_status_code":204}]`,
	).Scan(&applied))
	assert.Equal(t, `["00000000-0000-4000-8000-0000000000a1"]`, applied)
	assert.True(t, updatedAt().After(first), "the report moved it on")
	n := queryStrings(t, db.Pool, `select outcome from alert_attempts where alert_id = '00000000-0000-4000-8000-0000000000a1'`)
	assert.Equal(t, []string{"ok"}, n, "the attempt is recorded")
}
