package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
)

// seriesAttempt is an attempt to store for TestSeries.
type seriesAttempt struct {
	at      time.Duration // after the alert's commit
	latency int           // ms
	outcome string
}

// TestSeries_BucketsAttemptsByOutcomeForWhoMaySeeThem checks GET
// /api/alerts/series: every bucket of the window is listed, attempts land
// in the bucket they started in as delivered, retried or given up, the
// latency percentiles run from the commit to the receiver's answer, and,
// as with /api/status, the operator counts every rule while a user counts
// their own rules only and gets 404 for another's.
func TestSeries_BucketsAttemptsByOutcomeForWhoMaySeeThem(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.Now = func() time.Time { return now } }})
	a1, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/a1"))
	bBody := ruleBody("https://hooks.example.com/b")
	bBody["project_id"], bBody["workflow_slug"] = projectB, "reports"
	b1, _ := e.createRule(asUser(ownerB), bBody)

	store := func(id, rule, project, slug, status string, occurred time.Time, attempts ...seriesAttempt) {
		t.Helper()
		e.exec(`insert into public.alert_logs (id, config_id, project_id, workflow_slug, run_id, event, webhook_id, status,
				attempts, payload, target_url, occurred_at, created_at)
			values ($1, $2, $3, $4, $8, 'failed', $9, $5, $6, '{}', 'https://hooks.example.com/x', $7, $7)`,
			id, rule, project, slug, status, len(attempts), occurred, "run-"+id, "msg_"+id)
		for i, a := range attempts {
			e.exec(`insert into public.alert_attempts (alert_id, attempt, started_at, latency_ms, outcome) values ($1, $2, $3, $4, $5)`,
				id, i+1, occurred.Add(a.at), a.latency, a.outcome)
		}
	}
	// Rule a1: one alert retried once then delivered 3.2 s after its
	// commit, one given up after one attempt; rule b1: one delivered.
	retriedAt := now.Add(-5 * time.Minute)
	store("e1e1e1e1-0000-4000-8000-000000000001", a1, projectA, "billing", "succeeded", retriedAt,
		seriesAttempt{time.Second, 30, "http_503"}, seriesAttempt{3 * time.Second, 200, "ok"})
	store("e1e1e1e1-0000-4000-8000-000000000002", a1, projectA, "billing", "failed", now.Add(-2*time.Minute),
		seriesAttempt{time.Second, 40, "http_422"})
	store("e1e1e1e1-0000-4000-8000-000000000003", b1, projectB, "reports", "succeeded", now.Add(-3*time.Hour),
		seriesAttempt{500 * time.Millisecond, 100, "ok"})

	type totals struct{ delivered, retried, gaveUp float64 }
	sum := func(r response) totals {
		var s totals
		for _, b := range r.field("buckets").([]any) {
			m := b.(map[string]any)
			s.delivered += m["delivered"].(float64)
			s.retried += m["retried"].(float64)
			s.gaveUp += m["gave_up"].(float64)
		}
		return s
	}

	// The last hour, by minute: every bucket is there, the last holds now.
	r := e.do(asOperator, http.MethodGet, "/api/alerts/series", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	buckets := r.field("buckets").([]any)
	require.Len(t, buckets, 60)
	assert.EqualValues(t, 60, r.field("bucket_seconds"))
	assert.Equal(t, now.Truncate(time.Minute).Add(time.Minute).Format(time.RFC3339), r.field("until"))
	assert.Equal(t, r.field("since"), buckets[0].(map[string]any)["start"])
	assert.Equal(t, totals{1, 1, 1}, sum(r), "b1's delivery was three hours ago")
	// The retried alert: its failed attempt and its delivery 2 s later
	// fall into the same minute, with the commit → receipt latency.
	var found map[string]any
	for _, b := range buckets {
		if m := b.(map[string]any); m["start"] == retriedAt.Truncate(time.Minute).Format(time.RFC3339) {
			found = m
		}
	}
	require.NotNil(t, found)
	assert.EqualValues(t, 1, found["delivered"])
	assert.EqualValues(t, 1, found["retried"])
	assert.InDelta(t, 3200, found["p50_ms"], 0.5, "3 s to the delivered attempt, plus its 200 ms")
	assert.InDelta(t, 3200, found["p99_ms"], 0.5)
	assert.Nil(t, buckets[0].(map[string]any)["p50_ms"], "no latency without a delivery")

	// The last day, by quarter hour, includes b1's delivery.
	r = e.do(asOperator, http.MethodGet, "/api/alerts/series?window=24h", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Len(t, r.field("buckets"), 96)
	assert.Equal(t, totals{2, 1, 1}, sum(r))

	// A user counts their own rules' attempts only.
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/series?window=24h", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, totals{1, 0, 0}, sum(r))
	assert.Equal(t, false, r.field("caller", "operator"))
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/series?window=24h&config_id="+a1, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, totals{1, 1, 1}, sum(r))
	assert.Equal(t, a1, r.field("config_id"))
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/series?config_id="+b1, nil)
	assert.Equal(t, http.StatusNotFound, r.status, "another user's rule is not found: %s", r.raw)
	r = e.do(asOperator, http.MethodGet, "/api/alerts/series?window=24h&config_id="+b1, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, totals{1, 0, 0}, sum(r))

	for _, q := range []string{"window=7d", "config_id=nope"} {
		r = e.do(asOperator, http.MethodGet, "/api/alerts/series?"+q, nil)
		assert.Equal(t, http.StatusBadRequest, r.status, q)
	}
}
