package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// End-to-end tests of the rules engine: the daemon runs in-process against
// the local Supabase stand-in and delivers to a verifying receiver.

// fastTimers makes delayed/stalled timers tick often enough for thresholds
// of a second.
const fastTimers = "MESHHOOK_ALERTS_ALERTS_TIMER_TICK=100ms"

// countLines counts the daemon's log lines containing every part.
func (d *daemonRun) countLines(parts ...string) int {
	n := 0
	for _, line := range strings.Split(d.logs.String(), "\n") {
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			n++
		}
	}
	return n
}

// waitLines waits until the daemon logged n lines containing every part.
func (d *daemonRun) waitLines(t *testing.T, n int, parts ...string) {
	t.Helper()
	require.Eventually(t, func() bool { return d.countLines(parts...) >= n }, 20*time.Second, 10*time.Millisecond,
		"waiting for %d log lines with %q", n, parts)
}

// waitReady waits until the daemon subscribed to both channels and finished
// the catch-up each subscription triggers.
func (d *daemonRun) waitReady(t *testing.T) {
	t.Helper()
	d.waitLines(t, 1, `"msg":"realtime subscription ready; catching up"`, `"channel":"runs"`)
	d.waitLines(t, 1, `"msg":"realtime subscription ready; catching up"`, `"channel":"alert-configs"`)
	d.waitLines(t, 2, `"msg":"catch-up done"`)
}

// rule is an alert_configs row to insert; its URL and secret are sealed as
// the daemon requires.
type rule struct {
	project any // uuid string, or nil for tables without projects
	slug    any // workflow slug, or nil for the whole project
	events  string
	delay   any // seconds, or nil
	stall   any // seconds, or nil
	url     string
	payload any // template, or nil
}

func (e *e2e) insertRule(t *testing.T, r rule) string {
	t.Helper()
	var id string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(), `insert into alert_configs
		(project_id, workflow_slug, name, events, delay_threshold_seconds, stall_threshold_seconds, webhook_url, signing_secrets, payload_template)
		values ($1, $2, 'e2e rule', $3::text[], $4, $5, $6, array[$7], $8) returning id`,
		r.project, r.slug, r.events, r.delay, r.stall, sealed(t, r.url), sealed(t, testSecret), r.payload).Scan(&id))
	return id
}

func (e *e2e) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	_, err := e.si.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// insertRun inserts a billing run with status and returns its id.
func (e *e2e) insertRun(t *testing.T, status string) string {
	t.Helper()
	var id string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, $3) returning id`,
		e.project, e.wfV2, status).Scan(&id))
	return id
}

// claims counts the alert_logs rows of a run (all events when event is "").
func (e *e2e) claims(t *testing.T, runID, event string) int {
	t.Helper()
	var n int
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`select count(*) from alert_logs where run_id = $1 and ($2 = '' or event = $2)`, runID, event).Scan(&n))
	return n
}

func (e *e2e) waitDeliveries(t *testing.T, n int) []sendertest.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := e.rcv.Wait(ctx, n)
	require.NoError(t, err, "waiting for %d deliveries", n)
	return got
}

// settle gives a wrong extra delivery the chance to show up, then checks
// there are exactly n and that every one verifies.
func (e *e2e) settle(t *testing.T, n int) []sendertest.Delivery {
	t.Helper()
	time.Sleep(time.Second)
	got := e.rcv.Deliveries()
	require.Len(t, got, n)
	for _, d := range got {
		require.NoError(t, d.VerifyErr)
	}
	return got
}

type alertBody struct {
	Type          string         `json:"type"`
	Event         string         `json:"event"`
	Run           map[string]any `json:"run"`
	Workflow      map[string]any `json:"workflow"`
	RecoveredFrom []string       `json:"recovered_from"`
	Threshold     float64        `json:"threshold_seconds"`
}

func body(t *testing.T, d sendertest.Delivery) alertBody {
	t.Helper()
	var b alertBody
	require.NoError(t, json.Unmarshal(d.Body, &b), string(d.Body))
	return b
}

// byEvent indexes deliveries by "<run id>/<event>".
func byEvent(t *testing.T, ds []sendertest.Delivery, idColumn string) map[string]alertBody {
	t.Helper()
	out := map[string]alertBody{}
	for _, d := range ds {
		b := body(t, d)
		k := fmt.Sprint(b.Run[idColumn]) + "/" + b.Event
		require.NotContains(t, out, k, "delivered twice")
		out[k] = b
	}
	return out
}

func TestEndToEndRuleChangesTakeEffectWithoutRestart(t *testing.T) {
	e := newE2EStack(t)
	d := e.startDaemon(t)
	d.waitReady(t)
	// A canary rule shows when the engine has handled every run before it.
	e.insertRule(t, rule{project: e.project, slug: "billing", events: "{canceled}", url: e.rcv.URL + "/canary"})
	id := e.insertRule(t, rule{project: e.project, slug: "billing", events: "{succeeded}", url: e.rcv.URL + "/v1/{{.Event}}"})
	d.waitLines(t, 2, `"msg":"alert rule updated"`)

	e.insertRun(t, "succeeded")
	got := e.waitDeliveries(t, 1)
	assert.Equal(t, "/v1/succeeded", got[0].Path)

	e.exec(t, `update alert_configs set events = '{failed}', webhook_url = $2 where id = $1`, id, sealed(t, e.rcv.URL+"/v2/{{.Event}}"))
	d.waitLines(t, 1, `"msg":"alert rule updated","rule_id":"`+id+`","change":"update"`)
	ignored := e.insertRun(t, "succeeded")
	e.insertRun(t, "failed")
	got = e.waitDeliveries(t, 2)
	assert.Equal(t, "/v2/failed", got[1].Path)
	assert.Zero(t, e.claims(t, ignored, ""), "the updated rule no longer wants succeeded")

	e.exec(t, `delete from alert_configs where id = $1`, id)
	d.waitLines(t, 1, `"msg":"alert rule deleted","rule_id":"`+id+`"`)
	gone := e.insertRun(t, "failed")
	e.insertRun(t, "canceled")
	got = e.waitDeliveries(t, 3)
	assert.Equal(t, "/canary", got[2].Path)
	assert.Zero(t, e.claims(t, gone, ""), "the deleted rule alerts no more")
	e.settle(t, 3)

	// A broken rule is rejected with its reason recorded; fixing it clears it.
	bad := e.insertRule(t, rule{project: e.project, events: "{failed}", url: "https://hooks.example.com/{{.Nope"})
	rejected := func() map[string]string {
		var raw []byte
		err := e.si.Pool.QueryRow(context.Background(), `select value from alert_daemon_state where key = 'rejected_rules'`).Scan(&raw)
		if err != nil {
			return nil
		}
		m := map[string]string{}
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	require.Eventually(t, func() bool {
		return strings.Contains(rejected()[bad], "webhook_url: template: webhook_url:1: unclosed action")
	},
		20*time.Second, 20*time.Millisecond)
	e.exec(t, `update alert_configs set webhook_url = $2 where id = $1`, bad, sealed(t, e.rcv.URL+"/fixed"))
	require.Eventually(t, func() bool { _, still := rejected()[bad]; return !still }, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, exitOK, d.stop())
}

func TestEndToEndDelayAlertFiresOnceAcrossRestartsAndRecovers(t *testing.T) {
	e := newE2EStack(t)
	e.insertRule(t, rule{project: e.project, slug: "billing", events: "{delayed,stalled,recovered}", delay: 1, stall: 1,
		url: e.rcv.URL + "/hook/{{.Event}}"})
	first := e.startDaemon(t, fastTimers)
	first.waitReady(t)

	slow := e.insertRun(t, "running")
	stuck := e.insertRun(t, "paused")
	got := byEvent(t, e.waitDeliveries(t, 2), "id")
	require.Contains(t, got, slow+"/delayed")
	require.Contains(t, got, stuck+"/stalled")
	assert.Equal(t, "workflow_run.delayed", got[slow+"/delayed"].Type)
	assert.Equal(t, 1.0, got[slow+"/delayed"].Threshold)
	assert.Equal(t, "billing", got[slow+"/delayed"].Workflow["slug"])
	assert.Equal(t, exitOK, first.stop())

	// A new daemon on the same database rebuilds the timers; they fire, and
	// the claims keep them from alerting again.
	second := e.startDaemon(t, fastTimers)
	second.waitReady(t)
	second.waitLines(t, 1, `"msg":"alert already claimed"`, `"run_id":"`+slow+`"`, `"event":"delayed"`)
	second.waitLines(t, 1, `"msg":"alert already claimed"`, `"run_id":"`+stuck+`"`, `"event":"stalled"`)
	e.settle(t, 2)

	e.exec(t, `update workflow_runs set status = 'succeeded', finished_at = now() where id = $1`, slow)
	e.exec(t, `update workflow_runs set status = 'canceled', finished_at = now() where id = $1`, stuck)
	got = byEvent(t, e.waitDeliveries(t, 4), "id")
	assert.Equal(t, []string{"delayed"}, got[slow+"/recovered"].RecoveredFrom)
	assert.Equal(t, []string{"stalled"}, got[stuck+"/recovered"].RecoveredFrom)
	assert.Equal(t, "workflow_run.recovered", got[slow+"/recovered"].Type)
	assert.Equal(t, "succeeded", got[slow+"/recovered"].Run["status"])
	e.settle(t, 4)
	for _, run := range []string{slow, stuck} {
		assert.Equal(t, 2, e.claims(t, run, ""), "one condition alert and one recovered per run")
	}
	assert.Equal(t, exitOK, second.stop())
}

func TestEndToEndNonMeshHookTableByConfiguration(t *testing.T) {
	e := newE2EStack(t,
		`create table public.jobs (
			job_id      bigint generated always as identity primary key,
			kind        text not null,
			state       text not null,
			started     timestamptz,
			finished    timestamptz,
			modified_at timestamptz not null default now())`,
		`alter publication supabase_realtime add table public.jobs`)
	e.insertRule(t, rule{project: nil, slug: "nightly", events: "{failed,delayed,recovered}", delay: 1,
		url: e.rcv.URL + "/jobs/{{.Workflow.Slug}}/{{.Event}}"})
	d := e.startDaemon(t, fastTimers,
		"MESHHOOK_ALERTS_WATCH_TABLE=jobs",
		"MESHHOOK_ALERTS_WATCH_ID_COLUMN=job_id",
		"MESHHOOK_ALERTS_WATCH_STATUS_COLUMN=state",
		"MESHHOOK_ALERTS_WATCH_WORKFLOW_COLUMN=kind",
		"MESHHOOK_ALERTS_WATCH_WORKFLOW_LOOKUP=none",
		"MESHHOOK_ALERTS_WATCH_PROJECT_COLUMN=",
		"MESHHOOK_ALERTS_WATCH_STARTED_AT_COLUMN=started",
		"MESHHOOK_ALERTS_WATCH_FINISHED_AT_COLUMN=finished",
		"MESHHOOK_ALERTS_WATCH_UPDATED_AT_COLUMN=modified_at",
		"MESHHOOK_ALERTS_WATCH_STATUSES_SUCCEEDED=done",
		"MESHHOOK_ALERTS_WATCH_STATUSES_FAILED=error",
		"MESHHOOK_ALERTS_WATCH_STATUSES_RUNNING=busy",
		"MESHHOOK_ALERTS_WATCH_STATUSES_CANCELED=",
		"MESHHOOK_ALERTS_WATCH_STATUSES_PAUSED=",
	)
	d.waitReady(t)
	insertJob := func(kind, state string) string {
		var id int64
		require.NoError(t, e.si.Pool.QueryRow(context.Background(),
			`insert into public.jobs (kind, state, started) values ($1, $2, now()) returning job_id`, kind, state).Scan(&id))
		return fmt.Sprint(id)
	}

	slow := insertJob("nightly", "busy")
	got := e.waitDeliveries(t, 1)
	assert.Equal(t, "/jobs/nightly/delayed", got[0].Path)
	other := insertJob("hourly", "error") // another workflow: no rule
	e.exec(t, `update public.jobs set state = 'error', finished = now(), modified_at = now() where job_id = $1`, slow)
	done := insertJob("nightly", "done") // done is not an event the rule wants
	got = e.waitDeliveries(t, 3)
	events := byEvent(t, got, "job_id")
	require.Contains(t, events, slow+"/delayed")
	require.Contains(t, events, slow+"/failed")
	require.Contains(t, events, slow+"/recovered")
	assert.Equal(t, "nightly", events[slow+"/failed"].Workflow["slug"])
	assert.Equal(t, "error", events[slow+"/failed"].Run["state"])
	assert.Equal(t, []string{"delayed"}, events[slow+"/recovered"].RecoveredFrom)
	e.settle(t, 3)
	assert.Zero(t, e.claims(t, other, ""))
	assert.Zero(t, e.claims(t, done, ""))
	assert.Equal(t, exitOK, d.stop())
}

func TestEndToEndTwoDaemonsSendOneAlertPerRuleRunEvent(t *testing.T) {
	e := newE2EStack(t)
	e.insertRule(t, rule{project: e.project, slug: "billing", events: "{failed,delayed,recovered}", delay: 1,
		url: e.rcv.URL + "/hook/{{.Event}}"})
	daemons := []*daemonRun{e.startDaemon(t, fastTimers), e.startDaemon(t, fastTimers)}
	for _, d := range daemons {
		d.waitReady(t)
	}

	var failed []string
	for range 5 {
		failed = append(failed, e.insertRun(t, "failed"))
	}
	slow := e.insertRun(t, "running")
	e.waitDeliveries(t, 6)
	e.exec(t, `update workflow_runs set status = 'failed', finished_at = now() where id = $1`, slow)
	got := byEvent(t, e.waitDeliveries(t, 8), "id")
	for _, id := range failed {
		assert.Contains(t, got, id+"/failed")
		assert.Equal(t, 1, e.claims(t, id, ""))
	}
	for _, ev := range []string{"delayed", "failed", "recovered"} {
		assert.Contains(t, got, slow+"/"+ev)
		assert.Equal(t, 1, e.claims(t, slow, ev))
	}
	e.settle(t, 8)
	ids := map[string]bool{}
	for _, d := range e.rcv.Deliveries() {
		ids[d.ID] = true
	}
	assert.Len(t, ids, 8, "eight distinct webhook ids")
	// Both daemons saw every change; each alert was claimed by one of them.
	claimed := daemons[0].countLines(`"msg":"alert claimed"`) + daemons[1].countLines(`"msg":"alert claimed"`)
	assert.Equal(t, 8, claimed)
	assert.Positive(t, daemons[0].countLines(`"msg":"alert already claimed"`)+daemons[1].countLines(`"msg":"alert already claimed"`))
	// One of them reconciles; the other does not repeat its reads.
	const held = "meshhook_alerts_engine_reconcile_lease_held"
	assert.Equal(t, 1.0, daemons[0].metric(t, held)+daemons[1].metric(t, held), "one reconcile lease holder")
	const rows = "meshhook_alerts_engine_reconcile_rows_total"
	assert.Zero(t, min(daemons[0].metric(t, rows), daemons[1].metric(t, rows)), "the other daemon scans nothing")
	for _, d := range daemons {
		assert.Equal(t, exitOK, d.stop())
	}
}
