package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/sender"
)

func TestStatus_UsersSeeOnlyTheirOwnRules(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) {
		o.Status.Realtime = func() api.RealtimeStatus {
			return api.RealtimeStatus{Subscribed: true, LastEventAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
				LastError: "dial tcp 10.20.30.40:443: connection refused",
				Channels:  []api.ChannelStatus{{Name: "runs", State: "subscribed"}, {Name: "alert-configs", State: "subscribed"}}}
		}
		o.Status.Rules = func() api.RulesStatus { return api.RulesStatus{Loaded: 40, Rejected: 7} }
		o.Status.Reconcile = func() api.ReconcileStatus {
			return api.ReconcileStatus{Held: true, Lag: 1500 * time.Millisecond, Found: 4}
		}
	}})
	a1, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a1"))
	a2, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a2"))
	a3, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a3"))
	bBody := ruleBody("https://hooks.example.com/b")
	bBody["project_id"], bBody["workflow_slug"] = projectB, "reports"
	b1, _ := e.createRule(asUser(ownerB), bBody)
	b2, _ := e.createRule(asUser(ownerB), bBody)
	e.cache.set(a1, true)
	e.cache.set(a2, true)
	e.cache.set(a3, false)
	e.cache.set(b1, false)
	e.cache.set(b2, false)

	// The operator sees the daemon's figures.
	r := e.do(asOperator, http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.EqualValues(t, 40, r.field("rules", "loaded"))
	assert.EqualValues(t, 7, r.field("rules", "rejected"))
	assert.Len(t, r.field("realtime", "channels"), 2)
	assert.Equal(t, "dial tcp 10.20.30.40:443: connection refused", r.field("realtime", "last_error"))
	assert.Equal(t, "2026-01-02T03:04:05Z", r.field("realtime", "last_event_at"))
	assert.Equal(t, map[string]any{"held": true, "lag_seconds": 1.5, "found_alerts": 4.0, "last_error": nil}, r.field("reconcile"),
		"the operator sees reconciliation: the changes Realtime missed")

	// A user sees their own rules' counts, and whether alerts flow, but
	// nothing else of the daemon.
	for _, tc := range []struct {
		user              string
		loaded, rejected  int
		otherTenantsRules []string
	}{
		{ownerA, 2, 1, []string{b1, b2}},
		{ownerB, 0, 2, []string{a1, a2, a3}},
		{"a1a1a1a1-0000-4000-8000-0000000000ee", 0, 0, nil}, // owns no project
	} {
		r := e.do(asUser(tc.user), http.MethodGet, "/api/status", nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		assert.EqualValues(t, tc.loaded, r.field("rules", "loaded"), tc.user)
		assert.EqualValues(t, tc.rejected, r.field("rules", "rejected"), tc.user)
		assert.Equal(t, map[string]any{"subscribed": true}, r.field("realtime"), tc.user)
		assert.Nil(t, r.field("reconcile"), "reconciliation is the operator's")
		assert.NotContains(t, string(r.raw), "10.20.30.40")
		assert.NotContains(t, string(r.raw), "alert-configs")
		assert.Equal(t, false, r.field("caller", "operator"))
	}
}

// TestStatus_CountsWhatIsNotDelivered tells pending alerts that already
// failed an attempt (retrying) from those waiting for a first one, gives
// the oldest pending alert's age, counts failed and suppressed alerts, and
// lists the rejected rules with why and the endpoints' circuits.
func TestStatus_CountsWhatIsNotDelivered(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	openUntil := now.Add(30 * time.Second)
	var rejected map[string]string
	e := newEnv(t, envOptions{mod: func(o *api.Options) {
		o.Now = func() time.Time { return now }
		o.Status.Circuits = func() []sender.Circuit {
			return []sender.Circuit{{Target: "https://hooks.example.com/[redacted]", EndpointID: "sha256:abcdef", State: "open",
				Failures: 5, OpenUntil: openUntil}}
		}
		o.Status.RejectedRules = func() map[string]string { return rejected }
	}})
	rule, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a"))
	other, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/b"))
	bBody := ruleBody("https://hooks.example.com/c")
	bBody["project_id"], bBody["workflow_slug"] = projectB, "reports"
	ruleB, _ := e.createRule(asUser(ownerB), bBody)
	rejected = map[string]string{other: "webhook_url: cannot open the sealed value", ruleB: "headers: cannot open"}
	ids := []string{
		"e5e5e5e5-0000-4000-8000-000000000101", "e5e5e5e5-0000-4000-8000-000000000102",
		"e5e5e5e5-0000-4000-8000-000000000103", "e5e5e5e5-0000-4000-8000-000000000104",
		"e5e5e5e5-0000-4000-8000-000000000105",
	}
	e.insertAlert(ids[0], rule, projectA, "billing", runA, "failed", "pending", now.Add(-10*time.Minute)) // retried
	e.insertAlert(ids[1], rule, projectA, "billing", runA, "paused", "pending", now.Add(-time.Minute))
	e.exec(`update public.alert_logs set attempts = 0 where id = $1`, ids[1]) // first attempt due
	e.insertAlert(ids[2], rule, projectA, "billing", runA, "canceled", "failed", now.Add(-5*time.Minute))
	e.insertAlert(ids[3], rule, projectA, "billing", runA, "delayed", "suppressed", now.Add(-5*time.Minute))
	e.exec(`update public.alert_logs set attempts = 0, completed_at = $2 where id = $1`, ids[3], now.Add(-5*time.Minute))
	e.insertAlert(ids[4], rule, projectA, "billing", runA, "succeeded", "succeeded", now.Add(-2*time.Hour)) // out of the window

	r := e.do(asOperator, http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, map[string]any{"reachable": true, "error": nil}, r.field("database"))
	assert.EqualValues(t, 2, r.field("backlog", "pending"))
	assert.EqualValues(t, 1, r.field("backlog", "retrying"), "pending after a failed attempt")
	assert.EqualValues(t, 0, r.field("backlog", "delivering"))
	assert.Equal(t, now.Add(-10*time.Minute).Format(time.RFC3339), r.field("backlog", "oldest_pending_at"))
	assert.EqualValues(t, 600, r.field("backlog", "oldest_pending_age_seconds"))
	assert.EqualValues(t, 0, r.field("deliveries", "succeeded"))
	assert.EqualValues(t, 1, r.field("deliveries", "failed"))
	assert.EqualValues(t, 1, r.field("deliveries", "suppressed"))
	assert.EqualValues(t, 0, r.field("deliveries", "success_rate"), "no success among the finished alerts")
	assert.Equal(t, []any{map[string]any{"target": "https://hooks.example.com/[redacted]", "endpoint_id": "sha256:abcdef",
		"state": "open", "consecutive_failures": 5.0, "open_until": openUntil.Format(time.RFC3339)}}, r.field("circuits"))
	assert.Len(t, r.field("rules", "rejected_rules"), 2, "the operator sees every rejected rule")

	// A user sees their own rejected rules and alerts, not the circuits.
	r = e.do(asUser(ownerA), http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, []any{map[string]any{"id": other, "reason": "webhook_url: cannot open the sealed value"}},
		r.field("rules", "rejected_rules"))
	assert.Nil(t, r.field("circuits"))
	assert.EqualValues(t, 1, r.field("backlog", "retrying"))
	r = e.do(asUser(ownerB), http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.EqualValues(t, 0, r.field("backlog", "pending"))
	assert.Nil(t, r.field("backlog", "oldest_pending_at"))
	assert.Len(t, r.field("rules", "rejected_rules"), 1)
}

// TestStatus_DatabaseUnreachable answers quickly, with the daemon-local
// parts, while the database does not answer: the Health page must stay
// reachable during an outage.
func TestStatus_DatabaseUnreachable(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) {
		o.Status.DatabaseTimeout = 300 * time.Millisecond
		o.Status.Reconcile = func() api.ReconcileStatus { return api.ReconcileStatus{Held: true, LastError: "timeout"} }
		o.Status.Circuits = func() []sender.Circuit { return nil }
	}})
	for _, who := range []caller{asOperator, asUser(ownerA)} {
		e.rest.StallNext(1000)
		start := time.Now()
		r := e.do(who, http.MethodGet, "/api/status", nil)
		took := time.Since(start)
		e.rest.ReleaseStalled()
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		assert.Less(t, took, 10*time.Second, "bounded by the database timeout, not the REST client's")
		assert.Equal(t, false, r.field("database", "reachable"))
		assert.Equal(t, "the database did not answer within 300ms", r.field("database", "error"))
		assert.Nil(t, r.field("backlog"))
		assert.Nil(t, r.field("deliveries"))
		assert.Equal(t, true, r.field("realtime", "subscribed"), "the daemon-local parts are still there")
		if who == asOperator {
			assert.EqualValues(t, 2, r.field("rules", "loaded"))
			assert.Equal(t, "timeout", r.field("reconcile", "last_error"))
			assert.Equal(t, []any{}, r.field("circuits"))
		} else {
			assert.Nil(t, r.field("rules"), "a user's rules are found in the database")
		}
	}
}
