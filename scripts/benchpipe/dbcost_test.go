package main

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRestCallsPerUnit(t *testing.T) {
	rc := &restCounter{}
	rc.count(httptest.NewRequest("POST", "/rest/v1/rpc/alert_claim", nil))
	c := &dbCost{rc: rc, paths0: rc.paths()}
	for range 3 {
		rc.count(httptest.NewRequest("POST", "/rest/v1/rpc/alert_report_deliveries", nil))
	}
	rc.count(httptest.NewRequest("POST", "/rest/v1/rpc/alert_claim", nil))
	rc.count(httptest.NewRequest("GET", "/rest/v1/workflow_runs?id=in.(a)", nil))
	rc.count(httptest.NewRequest("GET", "/realtime/v1/websocket", nil)) // not REST
	assert.Equal(t, "2.50 in all, 1.50 POST rpc/alert_report_deliveries, 0.50 GET workflow_runs, 0.50 POST rpc/alert_claim",
		c.restCalls(2))
}
