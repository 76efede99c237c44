package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logsFixture is owner A's billing rule with five alerts a minute apart
// (newest last) and owner B's rule with one.
type logsFixture struct {
	ruleA, ruleB string
	alerts       []string // owner A's, oldest first
	alertB       string
	base         time.Time
}

func (e *env) seedLogs() logsFixture {
	e.t.Helper()
	f := logsFixture{base: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)}
	f.ruleA, _ = e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a"))
	b := ruleBody("https://hooks.example.com/b")
	b["project_id"], b["workflow_slug"] = projectB, "reports"
	f.ruleB, _ = e.createRule(asUser(ownerB), b)
	statuses := []string{"succeeded", "failed", "failed", "pending", "suppressed"}
	events := []string{"failed", "failed", "canceled", "canceled", "paused"}
	for i, st := range statuses {
		id := fmt.Sprintf("e5e5e5e5-0000-4000-8000-00000000000%d", i)
		run := fmt.Sprintf("7f7f7f7f-0000-4000-8000-00000000000%d", i%2)
		e.insertAlert(id, f.ruleA, projectA, "billing", run, events[i], st, f.base.Add(time.Duration(i)*time.Minute))
		f.alerts = append(f.alerts, id)
	}
	f.alertB = "e5e5e5e5-0000-4000-8000-0000000000b0"
	e.insertAlert(f.alertB, f.ruleB, projectB, "reports", runA, "failed", "failed", f.base)
	return f
}

func alertIDs(r response) []string {
	var out []string
	for _, a := range r.field("alerts").([]any) {
		out = append(out, a.(map[string]any)["id"].(string))
	}
	return out
}

func TestLogs_FilterAndPaginate(t *testing.T) {
	e := newEnv(t)
	f := e.seedLogs()
	a := f.alerts
	list := func(c caller, q url.Values) response {
		t.Helper()
		r := e.do(c, http.MethodGet, "/api/alerts/logs?"+q.Encode(), nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		return r
	}

	// Newest first, each alert with its attempts; URLs redacted.
	r := list(asUser(ownerA), nil)
	assert.Equal(t, []string{a[4], a[3], a[2], a[1], a[0]}, alertIDs(r))
	first := r.field("alerts").([]any)[0].(map[string]any)
	attempts := first["attempts"].([]any)
	require.Len(t, attempts, 1)
	assert.EqualValues(t, 500, attempts[0].(map[string]any)["status_code"])
	assert.EqualValues(t, 143, attempts[0].(map[string]any)["latency_ms"])
	assert.Equal(t, "https://hooks.example.com/[redacted]", first["target_url"])
	assert.NotContains(t, first, "payload", "listings leave the payload out")
	assert.Nil(t, r.field("next_cursor"))

	// Filters.
	for name, tc := range map[string]struct {
		q    url.Values
		want []string
	}{
		"Status":          {url.Values{"status": {"failed"}}, []string{a[2], a[1]}},
		"Statuses":        {url.Values{"status": {"succeeded, pending"}}, []string{a[3], a[0]}},
		"Rule":            {url.Values{"config_id": {f.ruleA}}, []string{a[4], a[3], a[2], a[1], a[0]}},
		"Run":             {url.Values{"run_id": {"7f7f7f7f-0000-4000-8000-000000000001"}}, []string{a[3], a[1]}},
		"ProjectAndSlug":  {url.Values{"project_id": {projectA}, "workflow_slug": {"billing"}}, []string{a[4], a[3], a[2], a[1], a[0]}},
		"OtherSlug":       {url.Values{"project_id": {projectA}, "workflow_slug": {"invoices"}}, nil},
		"WorkflowVersion": {url.Values{"workflow_id": {workflowA1}, "status": {"failed,succeeded"}}, []string{a[2], a[1], a[0]}},
		"From":            {url.Values{"from": {f.base.Add(3 * time.Minute).Format(time.RFC3339)}}, []string{a[4], a[3]}},
		"To":              {url.Values{"to": {f.base.Add(1 * time.Minute).Format(time.RFC3339)}}, []string{a[0]}},
		"Range": {url.Values{"from": {f.base.Add(time.Minute).Format(time.RFC3339)},
			"to": {f.base.Add(3 * time.Minute).Format(time.RFC3339)}, "status": {"failed"}}, []string{a[2], a[1]}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, alertIDs(list(asUser(ownerA), tc.q)))
		})
	}

	// Pages of two, following the cursor, cover every alert once.
	var got []string
	q := url.Values{"limit": {"2"}}
	for page := 0; ; page++ {
		require.Less(t, page, 5)
		r := list(asUser(ownerA), q)
		got = append(got, alertIDs(r)...)
		c, _ := r.field("next_cursor").(string)
		if c == "" {
			break
		}
		q.Set("cursor", c)
	}
	assert.Equal(t, []string{a[4], a[3], a[2], a[1], a[0]}, got)

	// Row-level security: owner B sees only their alert; the operator all.
	assert.Equal(t, []string{f.alertB}, alertIDs(list(asUser(ownerB), nil)))
	assert.Empty(t, alertIDs(list(asUser(ownerB), url.Values{"config_id": {f.ruleA}})))
	assert.Len(t, alertIDs(list(asOperator, nil)), 6)
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/logs?workflow_id="+workflowA1, nil)
	require.Equal(t, http.StatusNotFound, r.status, "another owner's workflow")

	// Bad parameters name themselves.
	for param, v := range map[string]string{
		"status": "exploded", "from": "yesterday", "limit": "1000", "cursor": "bogus", "project_id": "x",
		"config_id": "x", "workflow_id": "x", "reveal_url": "perhaps",
	} {
		r := e.do(asOperator, http.MethodGet, "/api/alerts/logs?"+url.Values{param: {v}}.Encode(), nil)
		require.Equal(t, http.StatusBadRequest, r.status, "%s=%s: %s", param, v, r.raw)
		assert.Contains(t, r.fields(), param)
	}
	r = e.do(asOperator, http.MethodGet, "/api/alerts/logs?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
}

func TestLogs_GetOne(t *testing.T) {
	e := newEnv(t)
	f := e.seedLogs()
	r := e.do(asUser(ownerA), http.MethodGet, "/api/alerts/logs/"+f.alerts[1], nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, map[string]any{"type": "workflow_run.failed"}, r.field("alert", "payload"))
	assert.Equal(t, "failed", r.str("alert", "status"))
	assert.Equal(t, "msg_e5e5e5e5000040008000000000000001", r.str("alert", "webhook_id"))
	assert.Len(t, r.field("alert", "attempts"), 1)
	assert.Equal(t, "https://hooks.example.com/[redacted]", r.str("alert", "target_url"))

	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/logs/"+f.alerts[1]+"?reveal_url=true", nil)
	assert.Equal(t, "https://hooks.example.com/secret-path", r.str("alert", "target_url"))

	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/logs/"+f.alerts[1], nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asOperator, http.MethodGet, "/api/alerts/logs/e5e5e5e5-0000-4000-8000-0000000000ff", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asOperator, http.MethodGet, "/api/alerts/logs/nope", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
}

func TestLogs_Redeliver(t *testing.T) {
	e := newEnv(t)
	f := e.seedLogs()
	failed := f.alerts[1]
	path := "/api/alerts/logs/" + failed + "/redeliver"

	r := e.do(asUser(ownerB), http.MethodPost, path, nil)
	require.Equal(t, http.StatusNotFound, r.status, "another owner cannot redeliver it")
	assert.Zero(t, e.wakes.get())

	before := time.Now()
	r = e.do(asUser(ownerA), http.MethodPost, path, nil)
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.raw)
	assert.Equal(t, "pending", r.str("alert", "status"))
	assert.Equal(t, "redeliver_requested", r.str("alert", "outcome_reason"))
	assert.Nil(t, r.field("alert", "completed_at"))
	assert.Equal(t, 1, e.wakes.get(), "the sender is woken")

	var (
		status, webhookID string
		attempts          int
		next              time.Time
		completed         *time.Time
	)
	e.queryRow(`select status, webhook_id, attempts, next_attempt_at, completed_at from public.alert_logs where id = $1`,
		[]any{failed}, &status, &webhookID, &attempts, &next, &completed)
	assert.Equal(t, "pending", status)
	assert.Equal(t, "msg_e5e5e5e5000040008000000000000001", webhookID, "same webhook-id")
	assert.Equal(t, 1, attempts, "the next attempt is attempt 2")
	assert.Nil(t, completed)
	assert.WithinDuration(t, before, next, 10*time.Second)

	// The sender picks it up: it is due now.
	now := time.Now().Add(time.Second)
	due, err := e.store.LeaseDueAlerts(context.Background(), now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	var dueIDs []string
	for _, d := range due {
		dueIDs = append(dueIDs, d.ID)
	}
	assert.Contains(t, dueIDs, failed)

	// Only finished alerts can be redelivered.
	r = e.do(asUser(ownerA), http.MethodPost, path, nil)
	require.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
	assert.Equal(t, "not_redeliverable", r.str("error", "code"))
	r = e.do(asOperator, http.MethodPost, "/api/alerts/logs/"+f.alerts[4]+"/redeliver", nil)
	require.Equal(t, http.StatusConflict, r.status, "suppressed")
	r = e.do(asOperator, http.MethodPost, "/api/alerts/logs/"+f.alerts[0]+"/redeliver", nil)
	require.Equal(t, http.StatusAccepted, r.status, "succeeded alerts can be sent again")

	// Not while the rule is disabled.
	e.exec(`update public.alert_configs set enabled = false where id = $1`, f.ruleA)
	r = e.do(asOperator, http.MethodPost, "/api/alerts/logs/"+f.alerts[2]+"/redeliver", nil)
	require.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, "rule_disabled", r.str("error", "code"))
}
