package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

const apiOperatorToken = "operator-token-0123456789abcdef"

// apiAddr waits for the daemon's operational listener and returns its address.
func (d *daemonRun) apiAddr(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)"`)
	var addr string
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(d.logs.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	}, 20*time.Second, 10*time.Millisecond)
	return "http://" + addr
}

// call sends a JSON request to the daemon's API and decodes the answer.
func call(t *testing.T, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	}
	return resp.StatusCode, out
}

// TestEndToEndAPI configures a rule through the daemon's HTTP API as the
// project's owner, lets a failed run fire it, finds the delivery in the
// alert log and redelivers it.
func TestEndToEndAPI(t *testing.T) {
	e := newE2EStack(t)
	var owner string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(), `select owner::text from projects where id = $1`, e.project).Scan(&owner))
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken)
	base := d.apiAddr(t) + "/api"
	// The owner signs in with Supabase Auth: an ES256 token, verified by
	// the daemon against the project's JWKS, its session confirmed with
	// Auth for every change.
	user := e.signIn(t, owner)

	code, _ := call(t, http.MethodGet, base+"/status", "nope", nil)
	require.Equal(t, http.StatusUnauthorized, code)

	code, resp := call(t, http.MethodPost, base+"/alerts/config", user, map[string]any{
		"project_id": e.project, "workflow_slug": "billing", "name": "billing failures", "events": []string{"failed"},
		"webhook_url": e.rcv.URL + "/hook/{{.Workflow.Slug}}", "signing_secrets": []string{testSecret},
	})
	require.Equal(t, http.StatusCreated, code, "%v", resp)
	ruleID := resp["rule"].(map[string]any)["id"].(string)
	// Another tenant's rule, which the owner must not count.
	code, resp = call(t, http.MethodPost, base+"/alerts/config", apiOperatorToken, map[string]any{
		"project_id": e.otherProject(t), "name": "someone else's", "events": []string{"failed"},
		"webhook_url": e.rcv.URL + "/other", "signing_secrets": []string{testSecret},
	})
	require.Equal(t, http.StatusCreated, code, "%v", resp)
	d.waitReady(t)

	// The daemon opens what the API sealed and delivers.
	runID := e.insertRun(t, "failed")
	got := e.waitDeliveries(t, 1)
	require.NoError(t, got[0].VerifyErr)
	assert.Equal(t, "/hook/billing", got[0].Path)

	var alert map[string]any
	require.Eventually(t, func() bool {
		code, resp := call(t, http.MethodGet, base+"/alerts/logs?config_id="+ruleID+"&run_id="+runID, user, nil)
		require.Equal(t, http.StatusOK, code)
		alerts := resp["alerts"].([]any)
		if len(alerts) != 1 {
			return false
		}
		alert = alerts[0].(map[string]any)
		return alert["status"] == "succeeded" && len(alert["attempts"].([]any)) == 1
	}, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, got[0].ID, alert["webhook_id"])

	// Redelivery: the same webhook-id again, as attempt 2.
	code, resp = call(t, http.MethodPost, base+"/alerts/logs/"+alert["id"].(string)+"/redeliver", user, nil)
	require.Equal(t, http.StatusAccepted, code, "%v", resp)
	got = e.waitDeliveries(t, 2)
	require.NoError(t, got[1].VerifyErr)
	assert.Equal(t, got[0].ID, got[1].ID)

	code, resp = call(t, http.MethodGet, base+"/status", apiOperatorToken, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, true, resp["realtime"].(map[string]any)["subscribed"])
	assert.Len(t, resp["realtime"].(map[string]any)["channels"], 2)
	assert.EqualValues(t, 2, resp["rules"].(map[string]any)["loaded"])

	// The owner sees their own rule in the cache, and not the other
	// tenant's; Realtime's detail is the operator's.
	code, resp = call(t, http.MethodGet, base+"/status", user, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, map[string]any{"subscribed": true}, resp["realtime"])
	assert.Equal(t, map[string]any{"loaded": float64(1), "rejected": float64(0), "rejected_rules": []any{}}, resp["rules"])
	assert.Nil(t, resp["circuits"], "the circuits are the operator's")
}

// otherProject creates a project of another owner and returns its id.
func (e *e2e) otherProject(t *testing.T) string {
	t.Helper()
	var id string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`insert into projects (owner, name) values (gen_random_uuid(), 'other') returning id`).Scan(&id))
	return id
}

// TestEndToEndPprofIsForTheOperator checks that Go's profiling endpoints
// (http.pprof) answer only the operator: a heap profile shows every
// tenant's rules.
func TestEndToEndPprofIsForTheOperator(t *testing.T) {
	e := newE2EStack(t)
	var owner string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(), `select owner::text from projects where id = $1`, e.project).Scan(&owner))
	d := e.startDaemon(t, "MESHHOOK_ALERTS_HTTP_PPROF=true", "MESHHOOK_ALERTS_API_ENABLED=true",
		"MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken, "MESHHOOK_ALERTS_API_JWT_SECRET="+pgtest.JWTSecret)
	root := d.apiAddr(t)
	get := func(path, token string) int {
		req, err := http.NewRequest(http.MethodGet, root+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline"} {
		assert.Equal(t, http.StatusUnauthorized, get(path, ""), "%s without a token", path)
		assert.Equal(t, http.StatusUnauthorized, get(path, pgtest.UserToken(owner, time.Hour)), "%s as a user", path)
		assert.Equal(t, http.StatusUnauthorized, get(path, "not-the-token"), "%s with a wrong token", path)
		assert.Equal(t, http.StatusOK, get(path, apiOperatorToken), "%s as the operator", path)
		assert.Equal(t, http.StatusOK, get(path, e.si.ServiceRoleKey), "%s with the service-role key", path)
	}
}

// TestEndToEndRedeliverAfterTheLastAttempt redelivers an alert whose third
// and last allowed attempt succeeded: the redelivery gets a fresh set of
// attempts, so a fourth is made (and succeeds) instead of the alert
// failing as gave_up without one.
func TestEndToEndRedeliverAfterTheLastAttempt(t *testing.T) {
	e := newE2EStack(t)
	var owner string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(), `select owner::text from projects where id = $1`, e.project).Scan(&owner))
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_JWT_SECRET="+pgtest.JWTSecret,
		"MESHHOOK_ALERTS_SENDER_MAX_ATTEMPTS=3", "MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=50ms",
		"MESHHOOK_ALERTS_SENDER_RETRY_MAX=100ms")
	base := d.apiAddr(t) + "/api"
	// A legacy HS256 token still works with api.jwt_secret set; its user
	// must exist in Auth for changes.
	e.si.Auth.AddUser(authtest.User{ID: owner, Email: "owner@example.com", Password: "owner-password"})
	user := pgtest.UserToken(owner, time.Hour)
	code, resp := call(t, http.MethodPost, base+"/alerts/config", user, map[string]any{
		"project_id": e.project, "workflow_slug": "billing", "name": "billing failures", "events": []string{"failed"},
		"webhook_url": e.rcv.URL + "/hook", "signing_secrets": []string{testSecret},
	})
	require.Equal(t, http.StatusCreated, code, "%v", resp)
	ruleID := resp["rule"].(map[string]any)["id"].(string)
	d.waitReady(t)

	e.rcv.Script(http.StatusServiceUnavailable, http.StatusServiceUnavailable)
	runID := e.insertRun(t, "failed")
	e.waitDeliveries(t, 3)
	alertOf := func() map[string]any {
		code, resp := call(t, http.MethodGet, base+"/alerts/logs?config_id="+ruleID+"&run_id="+runID, user, nil)
		require.Equal(t, http.StatusOK, code)
		alerts := resp["alerts"].([]any)
		require.Len(t, alerts, 1)
		return alerts[0].(map[string]any)
	}
	attemptsOf := func(a map[string]any) (nums []float64) {
		for _, at := range a["attempts"].([]any) {
			nums = append(nums, at.(map[string]any)["attempt"].(float64))
		}
		return nums
	}
	var alert map[string]any
	require.Eventually(t, func() bool {
		alert = alertOf()
		return alert["status"] == "succeeded"
	}, 20*time.Second, 50*time.Millisecond, "the third and last attempt succeeds")
	require.Equal(t, []float64{1, 2, 3}, attemptsOf(alert))

	code, resp = call(t, http.MethodPost, base+"/alerts/logs/"+alert["id"].(string)+"/redeliver", user, nil)
	require.Equal(t, http.StatusAccepted, code, "%v", resp)
	got := e.waitDeliveries(t, 4)
	require.NoError(t, got[3].VerifyErr)
	assert.Equal(t, got[0].ID, got[3].ID, "the same webhook-id")
	require.Eventually(t, func() bool {
		alert = alertOf()
		return alert["status"] == "succeeded" && len(alert["attempts"].([]any)) == 4
	}, 20*time.Second, 50*time.Millisecond, "the redelivery is attempted and succeeds; the alert is %v", alert)
	assert.Equal(t, []float64{1, 2, 3, 4}, attemptsOf(alert), "the earlier attempts are kept")
	assert.Equal(t, "ok", alert["outcome_reason"])
}
