package api_test

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

const receiverSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newReceiver(t *testing.T) *sendertest.Receiver {
	t.Helper()
	rcv, err := sendertest.NewReceiver(receiverSecret)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })
	return rcv
}

func TestTestSend_Rule(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t)
	body := ruleBody(rcv.URL + "/hooks/{{.Workflow.Slug}}")
	body["signing_secrets"] = []string{receiverSecret}
	body["meshhook_signature"] = true
	body["payload_template"] = `{"text": {{printf "%s %s" .Rule.Name .Event | json}}, "run": {{json .RunID}}}`
	id, _ := e.createRule(asUser(ownerA), body)

	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("delivered"), "%s", r.raw)
	assert.EqualValues(t, 204, r.field("status_code"))
	assert.Equal(t, "ok", r.str("outcome"))
	assert.Equal(t, "success", r.str("outcome_kind"))
	assert.Equal(t, true, r.field("signed"))
	assert.Equal(t, "failed", r.str("event"), "the rule's first event")
	assert.Equal(t, rcv.URL+"/[redacted]", r.str("target_url"))
	assert.GreaterOrEqual(t, r.field("latency_ms"), 0.0)

	got := rcv.Deliveries()
	require.Len(t, got, 1)
	d := got[0]
	require.NoError(t, d.VerifyErr, "the official verifier accepts the signature")
	require.NoError(t, sender.Verify(receiverSecret, d.Header, d.Body, 0, time.Now()))
	assert.Equal(t, r.str("webhook_id"), d.ID)
	assert.Equal(t, "/hooks/billing", d.Path, "the URL template rendered for the rule's workflow")
	assert.Equal(t, "payments", d.Header.Get("X-Team"), "custom headers are opened and sent")
	assert.Equal(t, "Bearer hook-token-123", d.Header.Get("Authorization"))
	assert.Equal(t, sender.MeshHookSignature(receiverSecret, d.Body), d.Header.Get(sender.HeaderMeshHook))
	var payload map[string]any
	require.NoError(t, json.Unmarshal(d.Body, &payload))
	assert.Equal(t, "Page on billing failures failed", payload["text"])
	assert.Equal(t, payload, r.field("payload"))

	// Another event; a receiver error is reported, not raised.
	rcv.ScriptSteps(sendertest.Step{Status: 503, Body: "try later"})
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id, "event": "delayed"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, false, r.field("delivered"))
	assert.EqualValues(t, 503, r.field("status_code"))
	assert.Equal(t, "http_503", r.str("outcome"))
	assert.Equal(t, "retry", r.str("outcome_kind"))
	assert.Equal(t, "try later", r.str("response_excerpt"))
	assert.Equal(t, "delayed", r.str("event"))

	// Another owner cannot test the rule; bad requests name the field.
	r = e.do(asUser(ownerB), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id, "event": "nope"})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Contains(t, r.fields(), "event")
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id, "url": rcv.URL})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Contains(t, r.fields(), "config_id")
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Len(t, rcv.Deliveries(), 2, "nothing else was sent")
}

func TestTestSend_AdHoc(t *testing.T) {
	e := newEnv(t)
	rcv := newReceiver(t)
	r := e.do(asUser(ownerB), http.MethodPost, "/api/alerts/test", map[string]any{
		"url": rcv.URL + "/adhoc", "secret": receiverSecret, "headers": map[string]string{"X-Env": "staging"},
		"event": "succeeded",
	})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("delivered"))
	got := rcv.Deliveries()
	require.Len(t, got, 1)
	require.NoError(t, got[0].VerifyErr)
	assert.Equal(t, "staging", got[0].Header.Get("X-Env"))
	var payload map[string]any
	require.NoError(t, json.Unmarshal(got[0].Body, &payload))
	assert.Equal(t, "workflow_run.succeeded", payload["type"], "the default payload for the event")

	// Unsigned without a secret.
	r = e.do(asOperator, http.MethodPost, "/api/alerts/test", map[string]any{"url": rcv.URL + "/unsigned"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, false, r.field("signed"))
	got = rcv.Deliveries()
	require.Len(t, got, 2)
	assert.Empty(t, got[1].Signature)

	// Field errors.
	for name, tc := range map[string]struct {
		body  map[string]any
		field string
	}{
		"NoURL":          {map[string]any{"url": " "}, "url"},
		"BadURL":         {map[string]any{"url": "ftp://x"}, "url"},
		"BadSecret":      {map[string]any{"url": rcv.URL, "secret": "whsec_x"}, "secret"},
		"ReservedHeader": {map[string]any{"url": rcv.URL, "headers": map[string]string{"Host": "x"}}, "headers"},
		"BadTemplate":    {map[string]any{"url": rcv.URL, "payload_template": "{{"}, "payload_template"},
		"MeshHookNoKey":  {map[string]any{"url": rcv.URL, "meshhook_signature": true}, "meshhook_signature"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(asOperator, http.MethodPost, "/api/alerts/test", tc.body)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.Contains(t, r.fields(), tc.field, "%s", r.raw)
		})
	}
	assert.Len(t, rcv.Deliveries(), 2)
}

func TestTestSend_SSRFGuard(t *testing.T) {
	e := newEnv(t)
	for _, target := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"https://10.0.0.1/hook",
		"http://[::1]:9/hook",
		"http://127.0.0.2:9/hook",
	} {
		t.Run(target, func(t *testing.T) {
			r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"url": target, "secret": receiverSecret})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.Equal(t, false, r.field("delivered"))
			assert.Equal(t, "blocked_address", r.str("outcome"), "%s", r.raw)
			assert.Equal(t, "permanent", r.str("outcome_kind"))
			assert.Nil(t, r.field("status_code"))
			assert.Contains(t, r.str("error"), "refusing to connect")
		})
	}
	// A name that does not resolve is a DNS failure, not a crash.
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"url": "https://hooks.example.com/x"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, false, r.field("delivered"))
	assert.NotEqual(t, "ok", r.str("outcome"))
}

func TestPreview(t *testing.T) {
	e := newEnv(t)
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{
		"webhook_url":      "https://hooks.example.com/{{.Workflow.Slug}}/{{.Event}}",
		"payload_template": `{"text": {{printf "%s: %s after %s" .Rule.Name .Event .Duration | json}}, "threshold": {{json .Threshold.Seconds}}}`,
		"event":            "stalled", "name": "Stuck runs", "workflow_slug": "billing", "stall_threshold_seconds": 600,
	})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "https://hooks.example.com/billing/stalled", r.str("url"))
	assert.Equal(t, "stalled", r.str("event"))
	assert.Equal(t, map[string]any{"text": "Stuck runs: stalled after 1m30s", "threshold": 600.0}, r.field("payload"))

	// Without a URL or template: the default payload.
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Nil(t, r.field("url"))
	assert.Equal(t, "workflow_run.failed", r.field("payload").(map[string]any)["type"])

	for name, tc := range map[string]struct {
		body  map[string]any
		field string
	}{
		"InvalidJSON":   {map[string]any{"payload_template": `{"a": {{.Event}}}`}, "payload_template"},
		"ParseError":    {map[string]any{"payload_template": `{{if}}`}, "payload_template"},
		"BadURL":        {map[string]any{"webhook_url": "mailto:x@example.com"}, "webhook_url"},
		"UnknownEvent":  {map[string]any{"event": "exploded"}, "event"},
		"BadProject":    {map[string]any{"project_id": "x"}, "project_id"},
		"MissingColumn": {map[string]any{"payload_template": `{{.Nope.Deeper}}`}, "payload_template"},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", tc.body)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.Contains(t, r.fields(), tc.field, "%s", r.raw)
		})
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	f := e.seedLogs() // owner A: succeeded, failed, failed, pending, suppressed; owner B: failed
	e.exec(`update public.alert_logs set completed_at = now() where status in ('succeeded', 'failed')`)

	r := e.do(asOperator, http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("realtime", "subscribed"))
	assert.Equal(t, "2026-01-02T03:04:05Z", r.field("realtime", "last_event_at"))
	assert.EqualValues(t, 2, r.field("rules", "loaded"))
	assert.EqualValues(t, 1, r.field("backlog", "pending"))
	assert.EqualValues(t, 0, r.field("backlog", "delivering"))
	assert.EqualValues(t, 1, r.field("deliveries", "succeeded"))
	assert.EqualValues(t, 3, r.field("deliveries", "failed"))
	assert.EqualValues(t, 0.25, r.field("deliveries", "success_rate"))
	assert.EqualValues(t, 3600, r.field("deliveries", "window_seconds"))

	// A user counts only their own alerts.
	r = e.do(asUser(ownerB), http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.EqualValues(t, 0, r.field("backlog", "pending"))
	assert.EqualValues(t, 1, r.field("deliveries", "failed"))
	assert.EqualValues(t, 0, r.field("deliveries", "success_rate"))

	// Alerts completed before the window do not count.
	e.exec(`update public.alert_logs set completed_at = now() - interval '2 hours' where id = $1`, f.alertB)
	r = e.do(asUser(ownerB), http.MethodGet, "/api/status", nil)
	assert.EqualValues(t, 0, r.field("deliveries", "failed"))
	assert.Nil(t, r.field("deliveries", "success_rate"))
}

func TestTestSend_RuleTLS(t *testing.T) {
	e := newEnv(t)
	var got atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	id, _ := e.createRule(asOperator, ruleBody(srv.URL+"/hook"))

	// Without the rule's CA the endpoint's certificate is not trusted.
	r := e.do(asOperator, http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "tls", r.str("outcome"), "%s", r.raw)
	assert.Zero(t, got.Load())

	// With it (stored sealed, as the API's callers would), the test send
	// uses the rule's TLS settings.
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	sealed, err := e.keyring.Seal(ca)
	require.NoError(t, err)
	e.exec(`update public.alert_configs set tls_ca_pem = $2 where id = $1`, id, sealed)
	r = e.do(asOperator, http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("delivered"), "%s", r.raw)
	assert.EqualValues(t, 202, r.field("status_code"))
	assert.EqualValues(t, 1, got.Load())
}
