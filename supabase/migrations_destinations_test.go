package supabase_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const destinationsMigration = "20261209000001_alert_destinations.sql"

// A project migrated before destinations existed keeps its rules as webhook
// rules, and gets the columns, constraints and the resolve claim.
func TestMigrations_UpgradeAddsDestinations(t *testing.T) {
	migs := repoMigrations(t)
	i := 0
	for i < len(migs) && !strings.HasSuffix(migs[i].Name, destinationsMigration) {
		i++
	}
	require.Less(t, i, len(migs), "the destinations migration is in the repository")
	db := pgtest.Shared(t).NewBareDatabase(t, migs[:i])
	ctx := context.Background()
	var before string
	require.NoError(t, db.Pool.QueryRow(ctx, `insert into alert_configs (name, events, webhook_url)
		values ('old', '{failed}', 'https://example.test/hook') returning id::text`).Scan(&before))

	for _, m := range migs[i:] {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}
	var dest string
	var key *string
	require.NoError(t, db.Pool.QueryRow(ctx, `select destination, routing_key from alert_configs where id = $1`, before).Scan(&dest, &key))
	assert.Equal(t, "webhook", dest)
	assert.Nil(t, key)

	insert := func(dest, key, events string) error {
		_, err := db.Pool.Exec(ctx, `insert into alert_configs (name, events, webhook_url, destination, routing_key)
			values ('r', $1::text[], 'https://example.test/hook', $2, nullif($3, ''))`, events, dest, key)
		return err
	}
	require.NoError(t, insert("slack", "", "{failed,resolved}"), "resolved is an event")
	require.NoError(t, insert("pagerduty", "mhsealed:v1:k:x", "{failed}"))
	require.Error(t, insert("pagerduty", "", "{failed}"), "pagerduty needs a routing key")
	require.Error(t, insert("slack", "mhsealed:v1:k:x", "{failed}"), "only pagerduty has one")
	require.Error(t, insert("fax", "", "{failed}"), "unknown destination")

	// Twice is harmless.
	for _, m := range migs[i:] {
		_, err := db.Pool.Exec(ctx, m.SQL)
		require.NoError(t, err, m.Name)
	}
}

// resolveAlert calls alert_claim_resolve for a success of run at t and
// returns the claimed alert's id ("" when nothing was claimed).
func resolveAlert(t *testing.T, pool *pgxpool.Pool, config, slug, run string, at time.Time) string {
	t.Helper()
	var id *string
	require.NoError(t, pool.QueryRow(context.Background(), `select alert_claim_resolve(jsonb_build_object(
			'config_id', $1::text, 'workflow_slug', $2::text, 'run_id', $3::text, 'webhook_id', 'msg_' || $3::text,
			'payload', '{}', 'target_url', 'https://example.test/hook', 'occurred_at', $4::timestamptz)) ->> 'id'`,
		config, slug, run, at).Scan(&id))
	if id == nil {
		return ""
	}
	return *id
}

func TestClaimResolve_ExactlyOnceAfterAFailure(t *testing.T) {
	db, config := resolveRuleDB(t)
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	fail := func(run, slug, status string, at time.Time) string {
		return failedAlert(t, db.Pool, config, &slug, run, status, at)
	}

	assert.Empty(t, resolveAlert(t, db.Pool, config, "billing", "ok0", t0), "nothing failed yet")

	f1 := fail("f1", "billing", "succeeded", t0.Add(time.Minute))
	f2 := fail("f2", "billing", "failed", t0.Add(2*time.Minute))
	fail("f3", "etl", "pending", t0.Add(2*time.Minute))
	fail("f4", "billing", "suppressed", t0.Add(2*time.Minute))
	assert.Empty(t, resolveAlert(t, db.Pool, config, "billing", "old", t0.Add(30*time.Second)),
		"a success older than the failures resolves nothing")

	// Many successes of the workflow at once (several daemons, or runs
	// finishing together): exactly one resolved alert.
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			run := "ok" + string(rune('a'+i%2)) // two runs, each claimed by four callers
			ids[i] = resolveAlert(t, db.Pool, config, "billing", run, t0.Add(3*time.Minute))
		})
	}
	wg.Wait()
	var won []string
	for _, id := range ids {
		if id != "" {
			won = append(won, id)
		}
	}
	require.Len(t, won, 1, "one resolve for one failure episode: %v", ids)
	rows := queryStrings(t, db.Pool, `select run_id || ':' || coalesce(resolved_by::text, '-') from alert_logs
		where event = 'failed' order by run_id`)
	assert.Equal(t, []string{"f1:" + won[0], "f2:" + won[0], "f3:-", "f4:-"}, rows,
		"the workflow's failures are resolved by it; another workflow's and a suppressed one are not")
	_ = f1
	_ = f2

	assert.Empty(t, resolveAlert(t, db.Pool, config, "billing", "okc", t0.Add(4*time.Minute)), "resolved once")
	fail("f5", "billing", "failed", t0.Add(5*time.Minute))
	assert.NotEmpty(t, resolveAlert(t, db.Pool, config, "billing", "okd", t0.Add(6*time.Minute)), "a new failure, a new resolve")
	assert.NotEmpty(t, resolveAlert(t, db.Pool, config, "etl", "oke", t0.Add(6*time.Minute)), "per workflow")
}

// resolveRuleDB is a database with every migration and one rule listing
// failed and resolved; it returns the rule's id.
func resolveRuleDB(t *testing.T) (*pgtest.DB, string) {
	t.Helper()
	db := pgtest.Shared(t).NewBareDatabase(t, repoMigrations(t))
	var config string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `insert into alert_configs (name, events, webhook_url)
		values ('r', '{failed,resolved}', 'https://example.test/hook') returning id::text`).Scan(&config))
	return db, config
}

// failedAlert inserts a failed alert of config for slug (nil: NULL) and
// returns its id.
func failedAlert(t *testing.T, pool *pgxpool.Pool, config string, slug *string, run, status string, at time.Time) string {
	t.Helper()
	var id string
	require.NoError(t, pool.QueryRow(context.Background(), `insert into alert_logs (config_id, workflow_slug, run_id, event,
			webhook_id, status, next_attempt_at, payload, target_url, occurred_at)
		values ($1, $2, $3, 'failed', 'msg_f_' || $3, $4, case when $4 = 'pending' then now() + interval '1 hour' end,
			'{}', 'x', $5) returning id::text`, config, slug, run, status, at).Scan(&id))
	return id
}

// A resolved alert is leased only once every failed alert it resolved is
// delivered (or given up): a trigger in retry backoff, or being delivered,
// holds its resolve back, so the vendor never sees the resolve first.
func TestLeaseDue_ResolveWaitsForItsTrigger(t *testing.T) {
	db, config := resolveRuleDB(t)
	ctx := context.Background()
	slug := "billing"
	at := time.Now().Add(-time.Minute)
	f1 := failedAlert(t, db.Pool, config, &slug, "f1", "pending", at) // in backoff, due in an hour
	f2 := failedAlert(t, db.Pool, config, &slug, "f2", "succeeded", at)
	res := resolveAlert(t, db.Pool, config, slug, "ok", at.Add(time.Second))
	require.NotEmpty(t, res)
	// Another rule's alert, due, is leased meanwhile.
	var other string
	require.NoError(t, db.Pool.QueryRow(ctx, `insert into alert_logs (config_id, run_id, event, webhook_id, status,
			next_attempt_at, payload, target_url, occurred_at)
		values ($1, 'x1', 'succeeded', 'msg_x1', 'pending', now(), '{}', 'x', now()) returning id::text`, config).Scan(&other))

	lease := func() []string {
		return queryStrings(t, db.Pool, `select id::text from alert_lease_due(now(), now() + interval '2 minutes', 10)`)
	}
	assert.Equal(t, []string{other}, lease(), "the resolve waits while its trigger is in backoff")
	assert.Empty(t, lease(), "held back: the look for due alerts finds nothing")

	// The trigger is leased and being delivered: still held back.
	_, err := db.Pool.Exec(ctx, `update alert_logs set next_attempt_at = now() - interval '1 second' where id = $1`, f1)
	require.NoError(t, err)
	assert.Equal(t, []string{f1}, lease())
	assert.Empty(t, lease(), "the trigger is delivering")

	// Delivered: the resolve follows at the next poll.
	_, err = db.Pool.Exec(ctx, `update alert_logs set status = 'succeeded', next_attempt_at = null where id = $1`, f1)
	require.NoError(t, err)
	assert.Equal(t, []string{res}, lease())

	// A redelivery of a trigger after its resolve makes both pending again
	// (see supabase.Store.RequeueAlert): the resolve waits for the trigger.
	_, err = db.Pool.Exec(ctx, `update alert_logs set status = 'succeeded', next_attempt_at = null where id = $1`, res)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `update alert_logs set status = 'pending', next_attempt_at = now() where id in ($1, $2)`, f2, res)
	require.NoError(t, err)
	assert.Equal(t, []string{f2}, lease(), "the redelivered trigger first")
	assert.Empty(t, lease())
	_, err = db.Pool.Exec(ctx, `update alert_logs set status = 'failed', next_attempt_at = null where id = $1`, f2)
	require.NoError(t, err)
	assert.Equal(t, []string{res}, lease(), "a trigger that ended failed had its attempts: its resolve follows")
}

// The resolve's lookup is one range of alert_logs_unresolved_failures_idx
// (rule, workflow as coalesce(workflow_slug, ”), time), and it matches the
// workflow as the PagerDuty dedup_key does: no workflow matches no
// workflow.
func TestClaimResolve_MatchesTheWorkflowByIndex(t *testing.T) {
	db, config := resolveRuleDB(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	failedAlert(t, db.Pool, config, nil, "f1", "succeeded", t0)
	var id *string
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_claim_resolve(jsonb_build_object(
			'config_id', $1::text, 'workflow_slug', null, 'run_id', 'ok', 'webhook_id', 'msg_ok',
			'payload', '{}', 'target_url', 'x', 'occurred_at', $2::timestamptz)) ->> 'id'`, config, t0.Add(time.Minute)).Scan(&id))
	assert.NotNil(t, id, "a failure without a workflow is resolved by a success without one")

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `set local enable_seqscan = off`)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `explain (format text)
		select l.id from alert_logs l
		 where l.config_id = $1::uuid and l.event = 'failed' and l.resolved_at is null and l.status <> 'suppressed'
		   and coalesce(l.workflow_slug, '') = coalesce($2::text, '')
		   and l.occurred_at <= $3::timestamptz and l.occurred_at >= $3::timestamptz - interval '7 days'`,
		config, "billing", t0)
	require.NoError(t, err)
	var lines []string
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		lines = append(lines, line)
	}
	require.NoError(t, rows.Err())
	all := strings.Join(lines, "\n")
	assert.Contains(t, all, "alert_logs_unresolved_failures_idx", all)
	assert.Regexp(t, `Index Cond: .*config_id.*COALESCE\(workflow_slug.*occurred_at`, all, all)
	assert.NotContains(t, all, "Filter", "every condition is the index's: %s", all)
}

// A success resolves only failures of the last 7 days: a rule that starts
// listing resolved does not announce the end of a failure of months ago.
func TestClaimResolve_OnlyRecentFailures(t *testing.T) {
	db, config := resolveRuleDB(t)
	slug := "billing"
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	old := failedAlert(t, db.Pool, config, &slug, "old", "succeeded", t0.Add(-8*24*time.Hour))
	assert.Empty(t, resolveAlert(t, db.Pool, config, slug, "ok1", t0), "a failure of 8 days ago is not resolved")
	recent := failedAlert(t, db.Pool, config, &slug, "recent", "succeeded", t0.Add(-6*24*time.Hour))
	res := resolveAlert(t, db.Pool, config, slug, "ok2", t0)
	require.NotEmpty(t, res, "one of 6 days ago is")
	assert.Equal(t, []string{old + ":-", recent + ":" + res}, queryStrings(t, db.Pool,
		`select id::text || ':' || coalesce(resolved_by::text, '-') from alert_logs where event = 'failed' order by occurred_at`))
}

// alert_claim_resolves claims many resolves in one call, each as
// alert_claim_resolve would, results in the order given.
func TestClaimResolves_ManyInOneCall(t *testing.T) {
	db, config := resolveRuleDB(t)
	ctx := context.Background()
	billing, etl := "billing", "etl"
	t0 := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	f1 := failedAlert(t, db.Pool, config, &billing, "f1", "succeeded", t0)
	f2 := failedAlert(t, db.Pool, config, &etl, "f2", "succeeded", t0)
	f3 := failedAlert(t, db.Pool, config, &billing, "f3", "succeeded", t0.Add(2*time.Minute))
	item := func(slug, run string, at time.Time) string {
		return `{"config_id":"` + config + `","workflow_slug":"` + slug + `","run_id":"` + run + `","webhook_id":"msg_` + run +
			`","payload":"{}","target_url":"x","occurred_at":"` + at.Format(time.RFC3339) + `"}`
	}
	var got string
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_claim_resolves($1::jsonb)::text`, "["+
		item("billing", "ok3", t0.Add(3*time.Minute))+","+ // resolves f3 only: f1 is resolved by ok1
		item("nothing", "okx", t0.Add(time.Minute))+","+
		item("billing", "ok1", t0.Add(time.Minute))+","+
		item("etl", "ok2", t0.Add(time.Minute))+","+
		item("billing", "ok1b", t0.Add(time.Minute))+"]").Scan(&got))
	var res []map[string]any
	require.NoError(t, json.Unmarshal([]byte(got), &res))
	require.Len(t, res, 5)
	runs := make([]any, len(res))
	for i, r := range res {
		runs[i] = r["run_id"]
	}
	assert.Equal(t, []any{"ok3", nil, "ok1", "ok2", nil}, runs, "in the order given; one resolve per failure")
	assert.Equal(t, []string{f1 + ":ok1", f2 + ":ok2", f3 + ":ok3"}, queryStrings(t, db.Pool, `select f.id::text || ':' || r.run_id
		from alert_logs f join alert_logs r on r.id = f.resolved_by where f.event = 'failed' order by f.run_id`))
	require.NoError(t, db.Pool.QueryRow(ctx, `select alert_claim_resolves('[]')::text`).Scan(&got))
	assert.Equal(t, "[]", got)
}
