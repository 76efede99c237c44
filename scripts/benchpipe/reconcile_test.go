package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

func TestRestCounterTellsTheReconcilersRequestsApart(t *testing.T) {
	var c restCounter
	for _, r := range []struct{ method, target string }{
		{"POST", "/rest/v1/rpc/alert_reconcile?columns=p_key,p_holder"},
		{"GET", "/rest/v1/workflow_runs?select=id,status,updated_at&updated_at=lt.2026-12-07T00%3A00%3A00Z&order=updated_at.asc,id.asc&limit=500"},
		{"GET", "/rest/v1/workflow_runs?select=%2A&id=in.%28a%2Cb%29"},
		{"GET", "/rest/v1/workflow_runs?select=%2A&workflow_id=in.%28a%29"},
		{"PATCH", "/rest/v1/workflow_runs?id=in.%28a%29"},
		{"POST", "/rest/v1/rpc/alert_claim"},
		{"GET", "/rest/v1/alert_logs?order=id.asc"},
	} {
		c.count(httptest.NewRequest(r.method, r.target, nil))
	}
	got := c.snapshot()
	assert.Equal(t, restCounts{rpc: 1, page: 1, byID: 1, other: 1}, got)
	assert.EqualValues(t, 3, got.reconciler())
	assert.Equal(t, restCounts{rpc: 1}, got.minus(restCounts{page: 1, byID: 1, other: 1}))
}

func TestMaxPollWaitFollowsThePollInterval(t *testing.T) {
	assert.Equal(t, 500*time.Millisecond, maxPollWait(realtimetest.Options{}))
	assert.Equal(t, 250*time.Millisecond, maxPollWait(realtimetest.Options{PollInterval: 40 * time.Millisecond, PollQueryTime: 50 * time.Millisecond}))
	assert.Zero(t, maxPollWait(realtimetest.Options{PollInterval: -1}))
	assert.Contains(t, describeRealtime(realtimetest.Options{PollInterval: -1}), "polling off")
	assert.Contains(t, describeRealtime(realtimetest.Options{MaxEventsPerSecond: 500}), "quota 500 events/s")
}
