package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// opsSecret signs the internal alerts in tests.
const opsSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"

func TestEndToEndInternalAlertOnFailureRatio(t *testing.T) {
	e, _, opsRcv := newOpsStack(t)
	ctx := context.Background()
	e.rcv.Script(500) // the first attempt fails, the retry succeeds

	e.startDaemon(t, append(opsEnv(opsRcv),
		"MESHHOOK_ALERTS_OPS_FAILURE_PERCENT=10",
		"MESHHOOK_ALERTS_OPS_FAILURE_MIN_ATTEMPTS=1",
		"MESHHOOK_ALERTS_OPS_FAILURE_WINDOW=1s",
		"MESHHOOK_ALERTS_OPS_REALTIME_DOWN_AFTER=0s",
		"MESHHOOK_ALERTS_OPS_PENDING_BACKLOG=0",
		"MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=100ms",
	)...)
	require.Eventually(t, func() bool { return len(e.si.Realtime.SubscribedTopics()) == 2 }, 30*time.Second, 20*time.Millisecond)
	_, err := e.si.Pool.Exec(ctx, `insert into workflow_runs (project_id, workflow_id, status, finished_at) values ($1, $2, 'failed', now())`,
		e.project, e.wfV2)
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = e.rcv.Wait(wctx, 2)
	require.NoError(t, err, "the alert is retried and delivered")
	got, err := opsRcv.Wait(wctx, 2)
	require.NoError(t, err, "the operator hears the failure ratio fire and clear")
	for i, want := range []string{"meshhook_alerts.ops.firing", "meshhook_alerts.ops.resolved"} {
		require.NoError(t, got[i].VerifyErr, "internal alerts are signed with ops.alert_secret")
		var body struct {
			Type string `json:"type"`
			Data struct {
				Condition string `json:"condition"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(got[i].Body, &body))
		assert.Equal(t, want, body.Type)
		assert.Equal(t, "delivery_failure_ratio", body.Data.Condition)
	}
}

func TestEndToEndGoneEndpointDisablesTheRuleAndTellsTheOperator(t *testing.T) {
	e, ruleID, opsRcv := newOpsStack(t)
	ctx := context.Background()
	e.rcv.Script(410)

	e.startDaemon(t, append(opsEnv(opsRcv),
		"MESHHOOK_ALERTS_OPS_FAILURE_PERCENT=0",
		"MESHHOOK_ALERTS_OPS_REALTIME_DOWN_AFTER=0s",
		"MESHHOOK_ALERTS_OPS_PENDING_BACKLOG=0",
	)...)
	require.Eventually(t, func() bool { return len(e.si.Realtime.SubscribedTopics()) == 2 }, 30*time.Second, 20*time.Millisecond)
	_, err := e.si.Pool.Exec(ctx, `insert into workflow_runs (project_id, workflow_id, status, finished_at) values ($1, $2, 'failed', now())`,
		e.project, e.wfV2)
	require.NoError(t, err)

	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := opsRcv.Wait(wctx, 1)
	require.NoError(t, err, "the operator hears that the rule was disabled")
	require.NoError(t, got[0].VerifyErr)
	var body struct {
		Type string `json:"type"`
		Data struct {
			Condition string `json:"condition"`
			RuleID    string `json:"rule_id"`
			Message   string `json:"message"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(got[0].Body, &body))
	assert.Equal(t, "meshhook_alerts.ops.firing", body.Type)
	assert.Equal(t, "rule_disabled", body.Data.Condition)
	assert.Equal(t, ruleID, body.Data.RuleID)
	assert.Contains(t, body.Data.Message, "410 Gone")

	var enabled bool
	var reason string
	require.NoError(t, e.si.Pool.QueryRow(ctx, `select enabled, coalesce(disabled_reason, '') from alert_configs where id = $1`, ruleID).
		Scan(&enabled, &reason))
	assert.Contains(t, reason, "410", "the rule records why it stopped")
	assert.Len(t, e.rcv.Deliveries(), 1, "no retry after 410")
}

// newOpsStack is an e2e stack with a rule alerting billing failures to the
// stack's receiver, and a receiver for the operator's internal alerts.
func newOpsStack(t *testing.T) (e *e2e, ruleID string, opsRcv *sendertest.Receiver) {
	t.Helper()
	e = newE2EStack(t)
	require.NoError(t, e.si.Pool.QueryRow(context.Background(), `insert into alert_configs (project_id, workflow_slug, name, events, webhook_url, signing_secrets)
		values ($1, 'billing', 'billing failures', '{failed}', $2, array[$3]) returning id`, e.project,
		sealed(t, e.rcv.URL+"/hook"), sealed(t, testSecret)).Scan(&ruleID))
	opsRcv, err := sendertest.NewReceiver(opsSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = opsRcv.Close() })
	return e, ruleID, opsRcv
}

// opsEnv points the daemon's internal alerts at opsRcv, checked every 50 ms.
func opsEnv(opsRcv *sendertest.Receiver) []string {
	return []string{
		"MESHHOOK_ALERTS_OPS_ALERT_WEBHOOK_URL=" + opsRcv.URL + "/ops",
		"MESHHOOK_ALERTS_OPS_ALERT_SECRET=" + opsSecret,
		"MESHHOOK_ALERTS_OPS_CHECK_INTERVAL=50ms",
	}
}
