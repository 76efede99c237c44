package supabase_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const cheaperCallsMigration = "20261210000001_alert_cheaper_calls.sql"

// A project with alerts in every state, migrated before the cheaper calls,
// keeps its rows, and the claim, lease and report functions behave as
// before on them: claims skip what is claimed, an expired lease is taken
// over with an interrupted attempt, and a report records its attempt and
// outcome together.
func TestMigrations_UpgradeCheaperCalls(t *testing.T) {
	migs := repoMigrations(t)
	i := 0
	for i < len(migs) && !strings.HasSuffix(migs[i].Name, cheaperCallsMigration) {
		i++
	}
	require.Less(t, i, len(migs), "the cheaper-calls migration is in the repository")
	db := pgtest.Shared(t).NewBareDatabase(t, migs[:i])
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := db.Pool.Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	const config = "00000000-0000-4000-8000-0000000000c1"
	exec(`insert into alert_configs (id, name, events, webhook_url) values ($1, 'r', '{failed}', 'https://x.example')`, config)
	exec(`insert into alert_logs (id, config_id, run_id, event, webhook_id, status, attempts, next_attempt_at, payload, target_url, occurred_at)
		values ('00000000-0000-4000-8000-0000000000a1', $1, 'run-1', 'failed', 'msg_1', 'succeeded', 1, null, '{"n":1}', 'https://x.example', now()),
		       ('00000000-0000-4000-8000-0000000000a2', $1, 'run-2', 'failed', 'msg_2', 'delivering', 0, now() - interval '1 minute', '{"n":2}', 'https://x.example', now()),
		       ('00000000-0000-4000-8000-0000000000a3', $1, 'run-3', 'failed', 'msg_3', 'pending', 0, now() + interval '1 hour', '{"n":3}', 'https://x.example', now())`, config)
	exec(`insert into alert_attempts (alert_id, attempt, started_at, outcome) values ('00000000-0000-4000-8000-0000000000a1', 1, now(), 'ok')`)

	for _, m := range migs[i:] {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}
	assert.Equal(t, []string{"3"}, queryStrings(t, db.Pool, `select count(*)::text from alert_logs`), "the rows are kept")
	assert.Equal(t, []string{"plpgsql"}, queryStrings(t, db.Pool,
		`select l.lanname::text from pg_proc p join pg_language l on l.oid = p.prolang where p.proname = 'alert_claim'`))

	// Claims: a key already claimed is skipped, a new one inserted leased.
	var claimed string
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_claim(jsonb_build_array(
			jsonb_build_object('config_id', $1::text, 'run_id', 'run-1', 'event', 'failed', 'webhook_id', 'msg_1x',
			                   'payload', '{}', 'target_url', 'https://x.example', 'occurred_at', now()),
			jsonb_build_object('config_id', $1::text, 'run_id', 'run-4', 'event', 'failed', 'webhook_id', 'msg_4',
			                   'status', 'delivering', 'next_attempt_at', now() + interval '30 seconds',
			                   'payload', '{}', 'target_url', 'https://x.example', 'occurred_at', now()),
			jsonb_build_object('config_id', gen_random_uuid()::text, 'run_id', 'run-5', 'event', 'failed', 'webhook_id', 'msg_5',
			                   'payload', '{}', 'target_url', 'https://x.example', 'occurred_at', now())))::text`, config).Scan(&claimed))
	assert.Contains(t, claimed, `"run_id": "run-4"`)
	assert.Contains(t, claimed, `"status": "delivering"`)
	assert.NotContains(t, claimed, "run-1", "claimed before")
	assert.NotContains(t, claimed, "run-5", "no such rule")
	var empty string
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_claim('[]'::jsonb)::text`).Scan(&empty))
	assert.Equal(t, "[]", empty)

	// Leases: only the expired one is due; it is taken over, its lost
	// attempt recorded as interrupted. Nothing due: nothing leased.
	leased := queryStrings(t, db.Pool, `select id::text || ':' || status || ':' || attempts from alert_lease_due(now(), now() + interval '30 seconds', 10)`)
	assert.Equal(t, []string{"00000000-0000-4000-8000-0000000000a2:delivering:1"}, leased)
	assert.Equal(t, []string{"interrupted"}, queryStrings(t, db.Pool,
		`select outcome from alert_attempts where alert_id = '00000000-0000-4000-8000-0000000000a2'`))
	assert.Empty(t, queryStrings(t, db.Pool, `select id::text from alert_lease_due(now(), now() + interval '30 seconds', 10)`))

	// Reports: the attempt and the outcome in one call; a stale lease
	// changes nothing but its attempt is still recorded; a repeated report
	// is harmless.
	var lease string
	require.NoError(t, db.Pool.QueryRow(ctx, `select to_json(next_attempt_at)#>>'{}' from alert_logs where id = '00000000-0000-4000-8000-0000000000a2'`).Scan(&lease))
	report := func(lease string) string {
		var applied string
		require.NoError(t, db.Pool.QueryRow(ctx, `select alert_report_deliveries(
				jsonb_build_array(jsonb_build_object('alert_id', '00000000-0000-4000-8000-0000000000a2', 'attempt', 2,
					'started_at', now(), 'latency_ms', 12, 'status_code', 204, 'outcome', 'ok')),
				jsonb_build_array(jsonb_build_object('id', '00000000-0000-4000-8000-0000000000a2', 'lease', $1::text,
					'status', 'succeeded', 'attempts', 2, 'completed_at', now(), 'set_last', true, 'last_status_code', 204)))::text`,
			lease).Scan(&applied))
		return applied
	}
	assert.Equal(t, `[]`, report("2000-01-01T00:00:00Z"), "not under that lease")
	assert.Equal(t, []string{"interrupted", "ok"}, queryStrings(t, db.Pool,
		`select outcome from alert_attempts where alert_id = '00000000-0000-4000-8000-0000000000a2' order by attempt`),
		"the attempt is recorded all the same")
	assert.Equal(t, `["00000000-0000-4000-8000-0000000000a2"]`, report(lease))
	assert.Equal(t, `["00000000-0000-4000-8000-0000000000a2"]`, report(lease), "a repeated report applies again, the same")
	assert.Equal(t, []string{"succeeded:2:204"}, queryStrings(t, db.Pool,
		`select status || ':' || attempts || ':' || last_status_code from alert_logs where id = '00000000-0000-4000-8000-0000000000a2'`))
	assert.Equal(t, []string{"2"}, queryStrings(t, db.Pool,
		`select count(*)::text from alert_attempts where alert_id = '00000000-0000-4000-8000-0000000000a2'`))

	// Twice is harmless.
	for _, m := range migs[i:] {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}
}
