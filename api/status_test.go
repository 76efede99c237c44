package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
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
