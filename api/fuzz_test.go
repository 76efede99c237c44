package api_test

// Fuzz targets over the API's request bodies: rules (create and update),
// previews, test sends and redeliveries. Each input goes through the real
// handler, store and database, and every answer must hold to what a hostile
// caller may not break: no panic and no 5xx for any input, an answer the
// OpenAPI document describes, an error that names its cause (and its fields
// for validation errors), and no goroutine left behind. `go test` runs the
// seeds; fuzz one target with, for example,
//
//	go test -run '^$' -fuzz '^FuzzRuleBodies$' -fuzztime 30s ./api/

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/sender"
)

// fuzzEnv is an API over a real database with a rule and a finished alert
// of owner A, served in process.
type fuzzEnv struct {
	*env
	h     http.Handler
	logs  *observer.ObservedLogs
	rule  string // owner A's rule
	alert string // an alert of it, failed
	leaks []goleak.Option
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	core, logs := observer.New(zap.WarnLevel)
	e := newEnv(f, envOptions{mod: func(o *api.Options) {
		// Test sends go through the real sender, which resolves nothing and
		// allows no internal address: no input reaches the network.
		snd, err := sender.New(sender.Options{RequestTimeout: 2 * time.Second, Resolver: noDNS{}}, noStore{}, nil)
		require.NoError(f, err)
		o.Tester, o.Logger = snd, zap.New(core)
	}})
	fe := &fuzzEnv{env: e, h: e.api.Handler(), logs: logs}
	fe.rule, _ = e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/billing"))
	fe.alert = alertA
	e.insertAlert(fe.alert, fe.rule, projectA, "billing", runA, "failed", "failed", time.Now().Add(-time.Minute))
	// Warm up every route once, so that the connections to the database
	// later requests reuse are open before the goroutines are counted.
	fe.serve(f, asUser(ownerA), http.MethodPost, "/api/alerts/preview", []byte(`{}`))
	fe.serve(f, asUser(ownerA), http.MethodPost, "/api/alerts/test", []byte(`{"config_id":"`+fe.rule+`"}`))
	fe.leaks = []goleak.Option{
		goleak.IgnoreCurrent(),
		// Keep-alive connections to the PostgREST stand-in, client and
		// server side, come and go with the server's idle timeouts.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		// The fuzzing engine's own, in a fuzz worker.
		goleak.IgnoreTopFunction("os/signal.NotifyContext.func1"),
	}
	return fe
}

// serve sends one request to the handler as c and checks what every
// answer must satisfy, whatever the input.
func (fe *fuzzEnv) serve(t testing.TB, c caller, method, path string, body []byte) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token())
	w := httptest.NewRecorder()
	fe.h.ServeHTTP(w, req)
	r := response{status: w.Code, header: w.Header(), raw: w.Body.Bytes()}

	panics := fe.logs.FilterMessage("API handler panicked")
	require.Zero(t, panics.Len(), "%s %s panicked on %q: %v", method, path, body, panics.All())
	require.Less(t, r.status, 500, "%s %s answered %d to %q: %s", method, path, r.status, body, r.raw)
	require.GreaterOrEqual(t, r.status, 200)
	fe.doc.checkResponse(t, method, req.URL.EscapedPath(), r.status, r.header, r.raw)
	if len(r.raw) > 0 {
		require.NoError(t, json.Unmarshal(r.raw, &r.body), "%s", r.raw)
	}
	if r.status >= 400 {
		assert.NotEmpty(t, r.str("error", "code"), "%s", r.raw)
		assert.NotEmpty(t, r.str("error", "message"), "an error says what is wrong: %s", r.raw)
		for field, why := range r.fields() {
			assert.NotEmpty(t, field, "%s", r.raw)
			assert.NotEmpty(t, why, "field %q has no reason: %s", field, r.raw)
		}
		switch r.str("error", "code") {
		case "validation_failed", "invalid_parameter":
			assert.NotEmpty(t, r.fields(), "a validation error names its fields: %s", r.raw)
		}
	}
	return r
}

// noLeaks checks that the request left no goroutine behind.
func (fe *fuzzEnv) noLeaks(t *testing.T) {
	t.Helper()
	goleak.VerifyNone(t, fe.leaks...)
}

// callerOf picks the caller of a fuzz input.
func callerOf(operator bool) caller {
	if operator {
		return asOperator
	}
	return asUser(ownerA)
}

// hostileTemplates are template sources a tenant might try; each must be
// refused or rendered within its budget.
var hostileTemplates = []string{
	`{{range $i := 1000000000000000}}{{end}}{}`,
	`{{$x := "aaaaaaaa"}}{{range $i := 27}}{{$x = printf "%s%s" $x $x}}{{end}}{"n": {{len $x}}}`,
	`{"a": "{{printf "%999999999d" 1}}"}`,
	`{{define "r"}}{{template "r"}}{{end}}{{template "r"}}`,
	`{{range .Run}}{{range $.Run}}{{range $.Run}}{{end}}{{end}}{{end}}{}`,
	`{"a": {{.Workflow.Name | json}}}`,
	`{{/*` + "\x00" + `*/}}{"nul": 1}`,
	`{"text": "` + "\u202e" + `"}`,
	`{{`,
}

func FuzzRuleBodies(f *testing.F) {
	fe := newFuzzEnv(f)
	valid := func(mod func(map[string]any)) []byte {
		b := ruleBody("https://hooks.example.com/{{.Workflow.Slug}}")
		if mod != nil {
			mod(b)
		}
		raw, err := json.Marshal(b)
		require.NoError(f, err)
		return raw
	}
	f.Add(valid(nil), false)
	f.Add(valid(func(b map[string]any) { b["id"] = fe.rule; b["name"] = "renamed" }), false)
	f.Add(valid(func(b map[string]any) { b["id"] = ruleA }), true) // no such rule
	f.Add(valid(func(b map[string]any) { b["project_id"] = projectB }), false)
	f.Add(valid(func(b map[string]any) { b["name"] = "Billing \u202efdp.exe" }), false)
	f.Add(valid(func(b map[string]any) { b["workflow_slug"] = "billing\u0000" }), true)
	f.Add(valid(func(b map[string]any) { b["delay_threshold_seconds"] = 1 << 40; b["throttle_max"] = -1 }), false)
	f.Add(valid(func(b map[string]any) {
		b["custom_headers"] = map[string]any{"X-A": "a\r\nb", "Host": "x", "": "y", "X-B": nil}
	}), true)
	f.Add(valid(func(b map[string]any) { b["signing_secrets"] = []string{"whsec_", "x"} }), false)
	f.Add(valid(func(b map[string]any) { b["webhook_url"] = "http://169.254.169.254/{{.Nope" }), true)
	for _, tmpl := range hostileTemplates {
		f.Add(valid(func(b map[string]any) { b["payload_template"] = tmpl }), false)
	}
	for _, raw := range []string{``, `null`, `[]`, `{"name":`, `{"name": 5}`, `{"colour": "red"}`, `{"events": [1]}`,
		`{"id": "x"}`, `{} {}`, `{"custom_headers": []}`, `"` + "\xff" + `"`, `{"":"0"}`, `{"a\"\u202eb": 1}`} {
		f.Add([]byte(raw), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, operator bool) {
		r := fe.serve(t, callerOf(operator), http.MethodPost, "/api/alerts/config", body)
		if r.status == http.StatusOK || r.status == http.StatusCreated {
			id := r.str("rule", "id")
			require.NotEmpty(t, id)
			// What was saved lists without a problem.
			l := fe.serve(t, callerOf(operator), http.MethodGet, "/api/alerts/config?id="+id, nil)
			require.Equal(t, http.StatusOK, l.status)
			rules := l.field("rules").([]any)
			require.Len(t, rules, 1)
			assert.Empty(t, rules[0].(map[string]any)["problems"], "a saved rule has no problem")
		}
		fe.noLeaks(t)
	})
}

func FuzzPreviewBodies(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, tmpl := range hostileTemplates {
		raw, err := json.Marshal(map[string]any{"payload_template": tmpl, "event": "failed"})
		require.NoError(f, err)
		f.Add(raw)
	}
	for _, raw := range []string{
		`{}`, `{"event": "delayed", "delay_threshold_seconds": 60}`, `{"event": "recovered"}`, `{"event": "exploded"}`,
		`{"webhook_url": "https://h/{{.RunID}}", "name": "x", "project_id": "` + projectA + `", "workflow_slug": "billing"}`,
		`{"webhook_url": "ftp://x"}`, `{"project_id": "nope"}`, `{"name": "\u2066x\u2069"}`, `{"delay_threshold_seconds": -1}`,
		`{"stall_threshold_seconds": 9223372036854775807, "event": "stalled"}`, ``, `[]`, `{"event": 1}`,
	} {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := fe.serve(t, asUser(ownerA), http.MethodPost, "/api/alerts/preview", body)
		if r.status == http.StatusOK {
			assert.True(t, json.Valid(r.raw), "%s", r.raw)
		}
		fe.noLeaks(t)
	})
}

func FuzzTestSendBodies(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, raw := range []string{
		`{"config_id": "` + fe.rule + `"}`, `{"config_id": "` + fe.rule + `", "event": "succeeded"}`,
		`{"config_id": "` + ruleA + `"}`, `{"config_id": "nope"}`, `{"config_id": "` + fe.rule + `", "secret": "x"}`,
		`{"url": "https://hooks.example.com/x", "secret": "whsec_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IGZvciBmdXp6"}`,
		`{"url": "http://127.0.0.1:1/x"}`, `{"url": "http://[::1]/x"}`, `{"url": "http://0x7f.1/x"}`,
		`{"url": "ftp://x"}`, `{"url": " "}`, `{"url": "https://h/{{.Nope"}`, `{"url": "https://h", "headers": {"Host": "x"}}`,
		`{"url": "https://h", "headers": {"X-A": "a\nb"}}`, `{"url": "https://h", "meshhook_signature": true}`,
		`{"url": "https://h", "payload_template": "{{range $i := 1000000000000000}}{{end}}{}"}`,
		`{"url": "https://h", "config_id": "` + fe.rule + `"}`, `{}`, ``, `[]`,
	} {
		f.Add([]byte(raw), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, operator bool) {
		r := fe.serve(t, callerOf(operator), http.MethodPost, "/api/alerts/test", body)
		if r.status == http.StatusOK {
			assert.NotEmpty(t, r.str("outcome"), "%s", r.raw)
			assert.NotContains(t, r.str("error"), " on ", "a lookup error names no DNS server: %s", r.raw)
		}
		fe.noLeaks(t)
	})
}

func FuzzRedeliver(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, id := range []string{fe.alert, ruleA, "nope", "", "../alerts", "e5e5e5e5-0000-4000-8000-00000000000G"} {
		f.Add(id, []byte(nil), false)
	}
	f.Add(fe.alert, []byte(`{"anything": 1}`), true)
	f.Add(fe.alert, []byte("\xff\x00"), false)
	f.Fuzz(func(t *testing.T, id string, body []byte, operator bool) {
		p := "/api/alerts/logs/" + url.PathEscape(id) + "/redeliver"
		if path.Clean(p) != p {
			t.Skip("the router redirects to the cleaned path (an id of \"\", \".\" or \"..\")")
		}
		r := fe.serve(t, callerOf(operator), http.MethodPost, p, body)
		if r.status == http.StatusAccepted {
			assert.Equal(t, "pending", r.str("alert", "status"), "%s", r.raw)
			// Finish it again, so that later inputs can redeliver it too.
			_, err := fe.db.Pool.Exec(t.Context(), `update public.alert_logs set status = 'failed', completed_at = now(),
				next_attempt_at = null where id = $1`, r.str("alert", "id"))
			require.NoError(t, err)
		}
		fe.noLeaks(t)
	})
}
