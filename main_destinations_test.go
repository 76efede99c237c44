package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

const e2eRoutingKey = "E2EROUTINGKEY0123456789abcdefABC"

// pagerDutyEvents are the Events API v2 events the receiver got, in order.
func (e *e2e) pagerDutyEvents(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range e.rcv.Deliveries() {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(d.Body, &ev))
		out = append(out, ev)
	}
	return out
}

// waitPagerDutyEvents waits for n events and returns them.
func (e *e2e) waitPagerDutyEvents(t *testing.T, n int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := e.rcv.Wait(ctx, n)
	require.NoError(t, err)
	return e.pagerDutyEvents(t)
}

// The resolve lifecycle on the stand-in: a failure pages (trigger), a
// daemon restart in between, then two daemons see two successes of the
// workflow and exactly one resolve goes out, with the trigger's dedup_key;
// the routing key reaches PagerDuty but is never stored or logged.
func TestEndToEndPagerDutyFailurePagesAndTheNextSuccessResolvesOnce(t *testing.T) {
	e := newE2EStack(t)
	ctx := context.Background()
	var ruleID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url,
			destination, routing_key)
		values ($1, 'billing', 'page billing', '{failed,resolved}', $2, 'pagerduty', $3) returning id`,
		e.project, sealed(t, e.rcv.URL+"/v2/enqueue"), sealed(t, e2eRoutingKey)).Scan(&ruleID))

	first := e.startDaemon(t)
	first.waitReady(t)
	failed := e.insertRun(t, "failed")
	events := e.waitPagerDutyEvents(t, 1)
	trigger := events[0]
	assert.Equal(t, "trigger", trigger["event_action"])
	assert.Equal(t, e2eRoutingKey, trigger["routing_key"], "PagerDuty gets the key")
	assert.Equal(t, "error", trigger["payload"].(map[string]any)["severity"])
	dedup, _ := trigger["dedup_key"].(string)
	assert.Equal(t, "meshhook:"+ruleID+":workflow:billing", dedup)
	assert.Equal(t, exitOK, first.stop(), "a restart between the page and the resolve")

	daemons := []*daemonRun{e.startDaemon(t), e.startDaemon(t)}
	for _, d := range daemons {
		d.waitReady(t)
	}
	ok1 := e.insertRun(t, "succeeded")
	ok2 := e.insertRun(t, "succeeded")
	events = e.waitPagerDutyEvents(t, 2)
	resolve := events[1]
	assert.Equal(t, "resolve", resolve["event_action"])
	assert.Equal(t, dedup, resolve["dedup_key"], "the resolve closes the trigger's incident")
	assert.Equal(t, e2eRoutingKey, resolve["routing_key"])

	// Both daemons have handled both successes: each either claimed the
	// resolve or found nothing left to resolve.
	for _, d := range daemons {
		for _, run := range []string{ok1, ok2} {
			require.Eventually(t, func() bool {
				return d.countLines(`"run_id":"`+run+`"`, `"event":"resolved"`, `"msg":"alert claimed"`)+
					d.countLines(`"msg":"no unresolved failure to resolve"`, `"run_id":"`+run+`"`)+
					d.countLines(`"msg":"alert already claimed"`, `"run_id":"`+run+`"`, `"event":"resolved"`) > 0
			}, 20*time.Second, 10*time.Millisecond, "a daemon handled run %s", run)
		}
	}
	var resolvedAlerts int
	var resolvedBy, stored string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select count(*) from alert_logs where event = 'resolved'`).Scan(&resolvedAlerts))
	assert.Equal(t, 1, resolvedAlerts, "exactly one resolve across two daemons")
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select coalesce(f.resolved_by::text, ''), r.payload
		from alert_logs f join alert_logs r on r.id = f.resolved_by
		where f.run_id = $1 and f.event = 'failed'`, failed).Scan(&resolvedBy, &stored))
	assert.NotEmpty(t, resolvedBy, "the failure is marked resolved")
	assert.Contains(t, stored, `"routing_key":"[sealed routing_key]"`, "stored without the key")
	require.Eventually(t, func() bool {
		var status string
		err := e.si.Pool.QueryRow(ctx, `select status from alert_logs where id = $1`, resolvedBy).Scan(&status)
		return err == nil && status == "succeeded"
	}, 10*time.Second, 20*time.Millisecond)
	assert.Len(t, e.rcv.Deliveries(), 2, "one trigger, one resolve")

	// A new failure opens a new episode, which the next success resolves.
	e.insertRun(t, "failed")
	e.waitPagerDutyEvents(t, 3)
	e.insertRun(t, "succeeded")
	events = e.waitPagerDutyEvents(t, 4)
	assert.Equal(t, []any{"trigger", "resolve", "trigger", "resolve"}, []any{events[0]["event_action"],
		events[1]["event_action"], events[2]["event_action"], events[3]["event_action"]})

	var payloads string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select string_agg(payload, ' ') from alert_logs`).Scan(&payloads))
	assert.NotContains(t, payloads, e2eRoutingKey, "alert_logs never holds the routing key")
	for _, d := range daemons {
		assert.NotContains(t, d.logs.String(), e2eRoutingKey, "the routing key is never logged")
		assert.Equal(t, exitOK, d.stop())
	}
	assert.False(t, strings.Contains(first.logs.String(), e2eRoutingKey))
}

// The vendors' answers in the real delivery path: PagerDuty's 429 is
// retried (the retry is leased from the database and still carries the
// routing key), and a Slack hook that was removed fails at once, its
// reason recorded.
func TestEndToEndVendorAnswersRetryOrFailWithTheirReason(t *testing.T) {
	e := newE2EStack(t)
	ctx := context.Background()
	slack, err := sendertest.NewReceiver(testSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = slack.Close() })
	e.rcv.ScriptSteps(sendertest.Step{Status: 429}, sendertest.Step{Status: 202, Body: `{"status":"success"}`})
	slack.ScriptSteps(sendertest.Step{Status: 404, Body: "no_service"})
	var pdRule, slackRule string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url,
			destination, routing_key)
		values ($1, 'billing', 'page billing', '{failed}', $2, 'pagerduty', $3) returning id`,
		e.project, sealed(t, e.rcv.URL+"/v2/enqueue"), sealed(t, e2eRoutingKey)).Scan(&pdRule))
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, destination)
		values ($1, 'billing', 'tell slack', '{failed}', $2, 'slack') returning id`,
		e.project, sealed(t, slack.URL+"/services/T0/B0/x")).Scan(&slackRule))
	d := e.startDaemon(t, "MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=100ms")
	d.waitReady(t)
	e.insertRun(t, "failed")

	got := e.waitPagerDutyEvents(t, 2)
	for _, ev := range got {
		assert.Equal(t, e2eRoutingKey, ev["routing_key"], "the first attempt and the leased retry")
	}
	type logRow struct {
		status, reason, lastError string
		attempts                  int
	}
	row := func(rule string) logRow {
		var r logRow
		var lastError *string
		err := e.si.Pool.QueryRow(ctx, `select status, coalesce(outcome_reason, ''), last_error, attempts from alert_logs
			where config_id = $1`, rule).Scan(&r.status, &r.reason, &lastError, &r.attempts)
		require.NoError(t, err)
		if lastError != nil {
			r.lastError = *lastError
		}
		return r
	}
	require.Eventually(t, func() bool { return row(pdRule).status == "succeeded" }, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, 2, row(pdRule).attempts)
	require.Eventually(t, func() bool { return row(slackRule).status == "failed" }, 20*time.Second, 20*time.Millisecond)
	r := row(slackRule)
	assert.Equal(t, "slack_no_service", r.reason)
	assert.Equal(t, 1, r.attempts, "no retry")
	assert.Contains(t, r.lastError, "removed or disabled")
	assert.Len(t, slack.Deliveries(), 1)
	assert.Contains(t, string(slack.Deliveries()[0].Body), `"attachments"`)
	assert.NotContains(t, d.logs.String(), e2eRoutingKey)
	assert.Equal(t, exitOK, d.stop())
}

// A resolve never overtakes its trigger: the trigger is rate-limited (429,
// Retry-After) and waits for its retry while the next success claims the
// resolve; PagerDuty gets the trigger's retry first, then the resolve
// (sent first, PagerDuty would drop the resolve, and the trigger would
// open an incident nothing closes).
func TestEndToEndResolveIsReceivedAfterItsRetriedTrigger(t *testing.T) {
	e := newE2EStack(t)
	ctx := context.Background()
	e.rcv.ScriptSteps(sendertest.Step{Status: 429, Header: http.Header{"Retry-After": {"2"}}})
	var ruleID string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url,
			destination, routing_key)
		values ($1, 'billing', 'page billing', '{failed,resolved}', $2, 'pagerduty', $3) returning id`,
		e.project, sealed(t, e.rcv.URL+"/v2/enqueue"), sealed(t, e2eRoutingKey)).Scan(&ruleID))
	d := e.startDaemon(t, "MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=100ms")
	d.waitReady(t)
	e.insertRun(t, "failed")
	require.Equal(t, "trigger", e.waitPagerDutyEvents(t, 1)[0]["event_action"])
	ok := e.insertRun(t, "succeeded")
	require.Eventually(t, func() bool {
		return d.countLines(`"run_id":"`+ok+`"`, `"event":"resolved"`, `"msg":"alert claimed"`) > 0
	}, 20*time.Second, 10*time.Millisecond, "the resolve is claimed while the trigger waits for its retry")

	events := e.waitPagerDutyEvents(t, 3)
	var actions []any
	for _, ev := range events {
		actions = append(actions, ev["event_action"])
	}
	assert.Equal(t, []any{"trigger", "trigger", "resolve"}, actions, "the trigger's retry, then the resolve")
	assert.Equal(t, events[1]["dedup_key"], events[2]["dedup_key"])
	assert.Equal(t, exitOK, d.stop())
}
