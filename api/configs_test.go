package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
)

// storedRule is an alert_configs row read straight from the database.
type storedRule struct {
	url      string
	secrets  []string
	headers  map[string]string
	name     string
	enabled  bool
	disabled *string
	raw      string // the whole row as JSON text
}

func (e *env) storedRule(id string) storedRule {
	e.t.Helper()
	var s storedRule
	e.queryRow(`select webhook_url, signing_secrets, custom_headers, name, enabled, disabled_reason, row_to_json(c)::text
		from public.alert_configs c where id = $1`, []any{id},
		&s.url, &s.secrets, &s.headers, &s.name, &s.enabled, &s.disabled, &s.raw)
	return s
}

func (e *env) open(sealed string) string {
	e.t.Helper()
	require.True(e.t, seal.IsSealed(sealed), "%q is not sealed", sealed)
	plain, err := e.keyring.Open(sealed)
	require.NoError(e.t, err)
	return plain
}

func TestRules_CreateSealsEverySecret(t *testing.T) {
	e := newEnv(t)
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", ruleBody("https://hooks.example.com/services/T0/B1/xyz"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	id, secret := r.str("rule", "id"), r.str("signing_secret")
	require.True(t, strings.HasPrefix(secret, "whsec_"), "a generated secret is returned once: %q", secret)
	assert.Equal(t, "https://hooks.example.com/[redacted]", r.str("rule", "webhook_url"))
	assert.Equal(t, false, r.field("rule", "webhook_url_revealed"))
	assert.Equal(t, []any{"Authorization", "X-Team"}, r.field("rule", "custom_header_names"))
	assert.EqualValues(t, 1, r.field("rule", "secret_count"))
	assert.Equal(t, map[string]any{}, r.field("rule", "problems"))
	assert.NotContains(t, string(r.raw), "hook-token-123")
	assert.NotContains(t, string(r.raw), "services/T0")

	row := e.storedRule(id)
	assert.Equal(t, "https://hooks.example.com/services/T0/B1/xyz", e.open(row.url))
	require.Len(t, row.secrets, 1)
	assert.Equal(t, secret, e.open(row.secrets[0]))
	assert.Equal(t, "payments", e.open(row.headers["X-Team"]))
	assert.Equal(t, "Bearer hook-token-123", e.open(row.headers["Authorization"]))
	for _, plain := range []string{"hooks.example.com", secret, "hook-token-123", "payments"} {
		assert.NotContains(t, row.raw, plain, "the stored row holds a secret in clear")
	}

	// The fingerprint in later answers identifies the generated secret.
	got := e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config?id="+id, nil)
	require.Equal(t, http.StatusOK, got.status)
	rules := got.field("rules").([]any)
	require.Len(t, rules, 1)
	secrets := rules[0].(map[string]any)["signing_secrets"].([]any)
	require.Len(t, secrets, 1)
	assert.Equal(t, true, secrets[0].(map[string]any)["readable"])
	assert.NotContains(t, string(got.raw), secret, "a secret is shown only once")

	// Secrets given by the caller are stored sealed and not echoed back.
	body := ruleBody("https://hooks.example.com/b")
	body["signing_secrets"] = []string{"whsec_C2FkZnNkZnNkZnNkZnNkZnNkZnNkZnNkZnM="}
	r = e.do(asOperator, http.MethodPost, "/api/alerts/config", body)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	assert.Nil(t, r.field("signing_secret"))
	assert.NotContains(t, string(r.raw), "whsec_C2Fk")
	assert.Equal(t, "whsec_C2FkZnNkZnNkZnNkZnNkZnNkZnNkZnNkZnM=", e.open(e.storedRule(r.str("rule", "id")).secrets[0]))
}

func TestRules_FieldErrors(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		mutate func(b map[string]any)
		field  string
		want   string // part of the reason
	}{
		{"UnknownEvent", func(b map[string]any) { b["events"] = []string{"exploded"} }, "events", `unknown event "exploded"`},
		{"NoEvents", func(b map[string]any) { b["events"] = []string{} }, "events", "at least one event"},
		{"DelayedWithoutThreshold", func(b map[string]any) { delete(b, "delay_threshold_seconds") }, "delay_threshold_seconds", "required"},
		{"StalledWithoutThreshold", func(b map[string]any) { b["events"] = []string{"stalled"} }, "stall_threshold_seconds", "required"},
		{"NegativeThreshold", func(b map[string]any) { b["delay_threshold_seconds"] = -5 }, "delay_threshold_seconds", "between 1 and"},
		{"RecoveredAlone", func(b map[string]any) { b["events"] = []string{"recovered"} }, "events", "delayed or stalled"},
		{"DuplicateEvent", func(b map[string]any) { b["events"] = []string{"failed", "failed"} }, "events", "listed twice"},
		{"PayloadNotJSON", func(b map[string]any) { b["payload_template"] = `{"text": {{.Workflow.Name}}}` }, "payload_template", "invalid JSON"},
		{"PayloadParseError", func(b map[string]any) { b["payload_template"] = `{"text": {{.Workflow.Name}` }, "payload_template", "template"},
		{"PayloadNUL", func(b map[string]any) { b["payload_template"] = "{{/*\x00*/}}{}" }, "payload_template", "NUL"},
		{"URLScheme", func(b map[string]any) { b["webhook_url"] = "ftp://hooks.example.com/x" }, "webhook_url", "http(s)"},
		{"URLTemplateError", func(b map[string]any) { b["webhook_url"] = "https://hooks.example.com/{{.Nope" }, "webhook_url", ""},
		{"URLMissing", func(b map[string]any) { delete(b, "webhook_url") }, "webhook_url", "required"},
		{"URLSealed", func(b map[string]any) { b["webhook_url"] = "mhsealed:v1:abcd:xyz" }, "webhook_url", "in clear"},
		{"NameMissing", func(b map[string]any) { b["name"] = "  " }, "name", "required"},
		{"ProjectNotUUID", func(b map[string]any) { b["project_id"] = "nope" }, "project_id", "UUID"},
		{"ProjectMissingForUser", func(b map[string]any) { delete(b, "project_id") }, "project_id", "required"},
		{"ProjectOfAnotherOwner", func(b map[string]any) { b["project_id"] = projectB }, "project_id", "not yours"},
		{"ProjectUnknown", func(b map[string]any) { b["project_id"] = "b2b2b2b2-0000-4000-8000-0000000000ff" }, "project_id", "not yours"},
		{"EmptySlug", func(b map[string]any) { b["workflow_slug"] = "" }, "workflow_slug", "must not be empty"},
		{"ReservedHeader", func(b map[string]any) { b["custom_headers"] = map[string]any{"webhook-signature": "x"} }, "custom_headers", "set by the sender"},
		{"BadHeaderName", func(b map[string]any) { b["custom_headers"] = map[string]any{"X Bad": "x"} }, "custom_headers", "not a valid HTTP header name"},
		{"HeaderLineBreak", func(b map[string]any) { b["custom_headers"] = map[string]any{"X-A": "a\r\nX-B: b"} }, "custom_headers", "line break"},
		{"HeaderNullOnCreate", func(b map[string]any) { b["custom_headers"] = map[string]any{"X-A": nil} }, "custom_headers", "no stored value"},
		{"BadSecret", func(b map[string]any) { b["signing_secrets"] = []string{"whsec_tooshort"} }, "signing_secrets", "secret 1"},
		{"ThrottleWithoutWindow", func(b map[string]any) { b["throttle_max"] = 3 }, "throttle_window_seconds", "throttle_window_seconds > 0"},
		{"WindowWithoutThrottle", func(b map[string]any) { b["throttle_window_seconds"] = 60 }, "throttle_max", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ruleBody("https://hooks.example.com/x")
			tt.mutate(b)
			r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", b)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.Equal(t, "validation_failed", r.str("error", "code"))
			require.Contains(t, r.fields(), tt.field, "%s", r.raw)
			assert.Contains(t, r.fields()[tt.field], tt.want)
		})
	}

	// Several problems are reported together: those of the request's shape
	// (name) and those found by compiling the rule (events, webhook_url).
	b := ruleBody("ftp://x")
	b["events"], b["name"] = []string{"nope"}, ""
	b["custom_headers"] = map[string]any{"X Bad": "x"}
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", b)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Contains(t, r.fields(), "name")
	assert.Contains(t, r.fields()["events"], `unknown event "nope"`, "%s", r.raw)
	assert.Contains(t, r.fields()["webhook_url"], "http(s)", "%s", r.raw)
	assert.Contains(t, r.fields()["custom_headers"], "not a valid HTTP header name", "%s", r.raw)
	assert.Len(t, r.fields(), 4, "%s", r.raw)

	// Malformed bodies are 400s naming the field.
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", `{"name": 5}`)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["name"], "must be a string")
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", `{"name": "x", "colour": "red"}`)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "unknown field", r.fields()["colour"])
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", `{"a\"\u202eb": 1}`)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "unknown field", r.fields()["a\"\u202eb"], "the field is named as sent: %s", r.raw)
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", `{"": 1}`)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, r.str("error", "message"), "empty name")
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", `{"name": `)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "invalid_json", r.str("error", "code"))
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", ``)
	require.Equal(t, http.StatusBadRequest, r.status)

	var n int
	e.queryRow(`select count(*) from public.alert_configs`, nil, &n)
	assert.Zero(t, n, "no invalid rule was stored")
}

func TestRules_InsecureURLRefusedUnlessAllowed(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.AllowInsecureHTTP = false }})
	r := e.do(asOperator, http.MethodPost, "/api/alerts/config", ruleBody("http://hooks.example.com/x"))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["webhook_url"], "allow_insecure_http")
	r = e.do(asOperator, http.MethodPost, "/api/alerts/config", ruleBody("https://hooks.example.com/x"))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
}

func TestRules_Update(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/one"))
	before := e.storedRule(id)

	// Replace the plain fields; URL, secrets and headers are kept when omitted.
	upd := map[string]any{"id": id, "project_id": projectA, "workflow_slug": "billing", "name": "Renamed",
		"events": []string{"failed", "canceled"}, "enabled": false}
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "Renamed", r.str("rule", "name"))
	assert.Equal(t, []any{"failed", "canceled"}, r.field("rule", "events"))
	assert.Nil(t, r.field("rule", "delay_threshold_seconds"), "an update replaces every plain field")
	assert.Equal(t, false, r.field("rule", "enabled"))
	after := e.storedRule(id)
	assert.Equal(t, before.url, after.url, "the sealed URL is kept as is")
	assert.Equal(t, before.secrets, after.secrets)
	assert.Equal(t, before.headers, after.headers)

	// Headers: a null value keeps the stored one, a value replaces, an
	// omitted header is removed. A new URL is sealed.
	upd["custom_headers"] = map[string]any{"authorization": nil, "X-New": "new"}
	upd["webhook_url"] = "https://hooks.example.com/two"
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, []any{"X-New", "authorization"}, r.field("rule", "custom_header_names"))
	after = e.storedRule(id)
	assert.Equal(t, "Bearer hook-token-123", e.open(after.headers["authorization"]))
	assert.Equal(t, "new", e.open(after.headers["X-New"]))
	assert.Equal(t, "https://hooks.example.com/two", e.open(after.url))
	assert.Equal(t, before.secrets, after.secrets)

	// Giving secrets replaces them; an empty list is refused.
	upd["signing_secrets"] = []string{}
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Contains(t, r.fields()["signing_secrets"], "at least one")

	// Re-enabling a rule the daemon disabled clears the reason.
	e.exec(`update public.alert_configs set disabled_reason = 'endpoint answered 410 Gone' where id = $1`, id)
	delete(upd, "signing_secrets")
	upd["enabled"] = true
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Nil(t, r.field("rule", "disabled_reason"))
	assert.Nil(t, e.storedRule(id).disabled)

	// Another owner's rule, and a rule that does not exist, are 404s.
	upd["project_id"] = projectB
	r = e.do(asUser(ownerB), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusNotFound, r.status, "%s", r.raw)
	assert.Equal(t, "Renamed", e.storedRule(id).name)
	upd["id"] = "d4d4d4d4-0000-4000-8000-0000000000ff"
	upd["project_id"] = projectA
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusNotFound, r.status)

	// Moving a rule into a project the user does not own is refused.
	upd["id"], upd["project_id"] = id, projectB
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["project_id"], "not yours")
}

func TestRules_VisibilityAndRedaction(t *testing.T) {
	e := newEnv(t)
	idA, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/services/A?token=sekrit"))
	wide := ruleBody("https://hooks.example.com/wide")
	delete(wide, "workflow_slug")
	idWide, _ := e.createRule(asUser(ownerA), wide)
	other := ruleBody("https://hooks.example.com/other")
	other["workflow_slug"] = "invoices"
	e.createRule(asUser(ownerA), other)
	bBody := ruleBody("https://hooks.example.com/b")
	bBody["project_id"], bBody["workflow_slug"] = projectB, "reports"
	idB, _ := e.createRule(asUser(ownerB), bBody)

	ids := func(r response) []string {
		var out []string
		for _, x := range r.field("rules").([]any) {
			out = append(out, x.(map[string]any)["id"].(string))
		}
		return out
	}

	// The rules of a workflow, by any version's id: its own and the
	// project-wide ones, oldest first; the URL redacted.
	for _, wf := range []string{workflowA1, workflowA3} {
		r := e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config/"+wf, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		assert.Equal(t, []string{idA, idWide}, ids(r))
		assert.Equal(t, "billing", r.str("workflow", "slug"))
		assert.Equal(t, "https://hooks.example.com/[redacted]", r.field("rules").([]any)[0].(map[string]any)["webhook_url"])
		assert.NotContains(t, string(r.raw), "sekrit")
	}
	// By slug and project.
	r := e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config/billing?project_id="+projectA, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, []string{idA, idWide}, ids(r))
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config?project_id="+projectA+"&workflow_slug=billing", nil)
	assert.Equal(t, []string{idA, idWide}, ids(r))
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config/billing", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, r.fields(), "project_id")

	// The owner (and the operator) may reveal the URL.
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config/"+workflowA3+"?reveal_url=true", nil)
	first := r.field("rules").([]any)[0].(map[string]any)
	assert.Equal(t, "https://hooks.example.com/services/A?token=sekrit", first["webhook_url"])
	assert.Equal(t, true, first["webhook_url_revealed"])
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config?id="+idA+"&reveal_url=true", nil)
	assert.Equal(t, "https://hooks.example.com/services/A?token=sekrit", r.field("rules").([]any)[0].(map[string]any)["webhook_url"])
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config?reveal_url=maybe", nil)
	require.Equal(t, http.StatusBadRequest, r.status)

	// Row-level security: each owner sees only their projects' rules.
	r = e.do(asUser(ownerA), http.MethodGet, "/api/alerts/config", nil)
	assert.Len(t, ids(r), 3)
	assert.NotContains(t, ids(r), idB)
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/config", nil)
	assert.Equal(t, []string{idB}, ids(r))
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/config?id="+idA, nil)
	assert.Empty(t, ids(r))
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/config/"+workflowA3, nil)
	require.Equal(t, http.StatusNotFound, r.status, "another owner's workflow is invisible")
	r = e.do(asUser(ownerB), http.MethodGet, "/api/alerts/config/"+workflowA3+"?reveal_url=true", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asUser("a1a1a1a1-0000-4000-8000-0000000000cc"), http.MethodGet, "/api/alerts/config", nil)
	assert.Empty(t, ids(r), "a user without projects sees nothing")

	// The operator sees everything.
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config", nil)
	assert.Len(t, ids(r), 4)
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config/"+workflowB, nil)
	assert.Equal(t, []string{idB}, ids(r))

	// Bad parameters.
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config?project_id=x", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, r.fields(), "project_id")
	r = e.do(asOperator, http.MethodGet, "/api/alerts/config/c3c3c3c3-0000-4000-8000-0000000000ff", nil)
	require.Equal(t, http.StatusNotFound, r.status)
}

func TestRules_StoredProblemsAreShown(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createRule(asOperator, ruleBody("https://hooks.example.com/x"))
	// A rule written around the API: an invalid template and a URL sealed
	// with a key the daemon does not have.
	e.exec(`update public.alert_configs set payload_template = '{"a": {{.Nope}', webhook_url = 'mhsealed:v1:00000000:AAAA' where id = $1`, id)
	r := e.do(asOperator, http.MethodGet, "/api/alerts/config?id="+id, nil)
	require.Equal(t, http.StatusOK, r.status)
	rule := r.field("rules").([]any)[0].(map[string]any)
	assert.Contains(t, rule["problems"].(map[string]any)["webhook_url"], "cannot be opened")
	assert.Equal(t, "[redacted]", rule["webhook_url"])

	// Updating it without a URL asks for the URL again.
	upd := ruleBody("")
	delete(upd, "webhook_url")
	upd["id"] = id
	r = e.do(asOperator, http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["webhook_url"], "give it again")
}

func TestRules_Delete(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/x"))
	e.insertAlert(alertA, id, projectA, "billing", runA, "failed", "failed", e.now())

	r := e.do(asUser(ownerB), http.MethodDelete, "/api/alerts/config/"+id, nil)
	require.Equal(t, http.StatusNotFound, r.status, "another owner cannot delete it")
	r = e.do(asUser(ownerA), http.MethodDelete, "/api/alerts/config/"+id, nil)
	require.Equal(t, http.StatusNoContent, r.status, "%s", r.raw)
	var n int
	e.queryRow(`select (select count(*) from public.alert_configs) + (select count(*) from public.alert_logs)`, nil, &n)
	assert.Zero(t, n, "the rule and its alerts are gone")
	r = e.do(asUser(ownerA), http.MethodDelete, "/api/alerts/config/"+id, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asOperator, http.MethodDelete, "/api/alerts/config/not-a-uuid", nil)
	require.Equal(t, http.StatusBadRequest, r.status)
}

func TestRules_SecretRotation(t *testing.T) {
	e := newEnv(t)
	id, oldSecret := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/x"))
	path := "/api/alerts/config/" + id + "/secrets"

	// Add a generated secret: returned once, stored sealed.
	r := e.do(asUser(ownerA), http.MethodPost, path, nil)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	newSecret, newFP := r.str("signing_secret"), r.str("fingerprint")
	require.True(t, strings.HasPrefix(newSecret, "whsec_"))
	assert.NotEqual(t, oldSecret, newSecret)
	assert.EqualValues(t, 2, r.field("rule", "secret_count"))
	stored := e.storedRule(id).secrets
	require.Len(t, stored, 2)
	assert.Equal(t, []string{oldSecret, newSecret}, []string{e.open(stored[0]), e.open(stored[1])})

	fps := func(r response) []string {
		var out []string
		for _, s := range r.field("rule", "signing_secrets").([]any) {
			out = append(out, s.(map[string]any)["fingerprint"].(string))
		}
		return out
	}
	all := fps(r)
	require.Len(t, all, 2)
	assert.Equal(t, newFP, all[1])
	oldFP := all[0]

	// Add a given secret; the same one twice is a conflict.
	given := map[string]any{"secret": "whsec_C2FkZnNkZnNkZnNkZnNkZnNkZnNkZnNkZnM="}
	r = e.do(asUser(ownerA), http.MethodPost, path, given)
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	assert.Equal(t, given["secret"], r.str("signing_secret"))
	r = e.do(asUser(ownerA), http.MethodPost, path, given)
	require.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, "duplicate_secret", r.str("error", "code"))
	r = e.do(asUser(ownerA), http.MethodPost, path, map[string]any{"secret": "not-a-secret"})
	require.Equal(t, http.StatusUnprocessableEntity, r.status)
	assert.Contains(t, r.fields(), "secret")

	// Retire the old one, then the given one; the last cannot go.
	r = e.do(asUser(ownerA), http.MethodDelete, path+"/"+oldFP, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	remaining := fps(r)
	require.Equal(t, newFP, remaining[0])
	require.Len(t, remaining, 2)
	r = e.do(asUser(ownerA), http.MethodDelete, path+"/"+oldFP, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	left := fps(e.do(asUser(ownerA), http.MethodDelete, path+"/"+remaining[1], nil))
	assert.Equal(t, []string{newFP}, left)
	r = e.do(asUser(ownerA), http.MethodDelete, path+"/"+newFP, nil)
	require.Equal(t, http.StatusConflict, r.status)
	assert.Equal(t, "last_secret", r.str("error", "code"))
	stored = e.storedRule(id).secrets
	require.Len(t, stored, 1)
	assert.Equal(t, newSecret, e.open(stored[0]))

	// Another owner can neither add nor retire.
	r = e.do(asUser(ownerB), http.MethodPost, path, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	r = e.do(asUser(ownerB), http.MethodDelete, path+"/"+newFP, nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Len(t, e.storedRule(id).secrets, 1)
}

// TestRules_ListingNeverRenders lists rules, some saved through the API and
// one written around it, and checks that no listing renders a template and
// that each stored version is compiled at most once.
func TestRules_ListingNeverRenders(t *testing.T) {
	e := newEnv(t)
	withPayload := ruleBody("https://hooks.example.com/{{.Workflow.Slug}}")
	withPayload["payload_template"] = `{"text": {{printf "%s failed" .Workflow.Name | json}}}`
	saved, _ := e.createRule(asUser(ownerA), withPayload)
	e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/plain"))
	// A rule changed around the API (its owner may write alert_configs
	// through PostgREST directly), to a template that does not compile.
	around, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/around"))
	e.exec(`update public.alert_configs set payload_template = '{"a": {{.Nope}' where id = $1`, around)

	renders, compiles := api.Renders(e.api), api.Compiles(e.api)
	list := func(c caller, path string) map[string]map[string]any {
		r := e.do(c, http.MethodGet, path, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		out := map[string]map[string]any{}
		for _, v := range r.field("rules").([]any) {
			rule := v.(map[string]any)
			out[rule["id"].(string)] = rule["problems"].(map[string]any)
		}
		return out
	}
	for range 3 {
		for _, c := range []caller{asOperator, asUser(ownerA)} {
			got := list(c, "/api/alerts/config?project_id="+projectA)
			require.Len(t, got, 3)
			assert.Empty(t, got[saved])
			assert.Contains(t, got[around]["payload_template"], "template", "a stored rule's problem is still shown")
			assert.Len(t, list(c, "/api/alerts/config/"+workflowA3), 3)
		}
	}
	assert.Equal(t, renders, api.Renders(e.api), "listing renders no template")
	assert.Equal(t, compiles+1, api.Compiles(e.api), "only the rule written around the API is compiled, once")

	// A new version is checked again, once.
	e.exec(`update public.alert_configs set payload_template = '{"a": 1}' where id = $1`, around)
	for range 2 {
		assert.Empty(t, list(asOperator, "/api/alerts/config?id="+around)[around])
	}
	assert.Equal(t, compiles+2, api.Compiles(e.api))
	assert.Equal(t, renders, api.Renders(e.api))
}

// The API opens stored rules with the daemon's rule opener: a rule the
// daemon refuses (here, secrets written in clear around the API while
// secrets.allow_plaintext is off) shows the daemon's reasons, by field.
func TestRules_ProblemsAreTheDaemonsReasons(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.Opener = rulerow.NewOpener(o.Keyring, false, nil) }})
	id, _ := e.createRule(asOperator, ruleBody("https://hooks.example.com/x"))
	e.exec(`update public.alert_configs set webhook_url = 'https://hooks.example.com/in-clear', signing_secrets = array['whsec_plain'] where id = $1`, id)
	r := e.do(asOperator, http.MethodGet, "/api/alerts/config?id="+id, nil)
	require.Equal(t, http.StatusOK, r.status)
	problems := r.field("rules").([]any)[0].(map[string]any)["problems"].(map[string]any)
	assert.Contains(t, problems["webhook_url"], "stored in plaintext")
	assert.Contains(t, problems["signing_secrets"], "secret 1 stored in plaintext")
	assert.NotContains(t, fmt.Sprint(problems), "in-clear", "problems name fields, never values")
}

// An update keeps values written in clear around the API (sealing them as
// it keeps them), even while the daemon refuses the rule for them: a rule
// the daemon refuses can still be renamed or disabled.
func TestRules_UpdateKeepsAndSealsValuesStoredInClear(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.Opener = rulerow.NewOpener(o.Keyring, false, nil) }})
	id, _ := e.createRule(asOperator, ruleBody("https://hooks.example.com/x"))
	e.exec(`update public.alert_configs set webhook_url = 'https://hooks.example.com/in-clear' where id = $1`, id)
	upd := ruleBody("")
	delete(upd, "webhook_url")
	upd["id"], upd["name"], upd["enabled"] = id, "renamed", false
	r := e.do(asOperator, http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%v", r.body)
	var stored string
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `select webhook_url from public.alert_configs where id = $1`, id).Scan(&stored))
	assert.True(t, seal.IsSealed(stored), "kept, and sealed as it is kept")
	plain, err := e.keyring.Open(stored)
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/in-clear", plain)
}
