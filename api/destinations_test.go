package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testRoutingKey = "R0UT1NGKEY0123456789abcdefABCDEF"

func pagerDutyRuleBody() map[string]any {
	return map[string]any{
		"project_id": projectA, "workflow_slug": "billing", "name": "Page billing", "events": []string{"failed", "resolved"},
		"destination": "pagerduty", "routing_key": testRoutingKey,
	}
}

func TestDestinations_PagerDutyRuleSealsItsRoutingKey(t *testing.T) {
	e := newEnv(t)
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", pagerDutyRuleBody())
	require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
	assert.NotContains(t, string(r.raw), testRoutingKey, "the key is never answered")
	assert.Empty(t, r.str("signing_secret"), "presets get no generated signing secret")
	assert.Equal(t, "pagerduty", r.str("rule", "destination"))
	assert.Len(t, r.field("rule", "routing_key", "fingerprint"), 16)
	assert.Equal(t, map[string]any{}, r.field("rule", "problems"))
	id := r.str("rule", "id")

	var stored string
	e.queryRow(`select routing_key from public.alert_configs where id = $1`, []any{id}, &stored)
	assert.Equal(t, testRoutingKey, e.open(stored), "sealed at rest")

	// An update that leaves destination and key out keeps them.
	upd := pagerDutyRuleBody()
	delete(upd, "destination")
	delete(upd, "routing_key")
	upd["id"], upd["name"] = id, "Page billing, renamed"
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "pagerduty", r.str("rule", "destination"))
	var kept string
	e.queryRow(`select routing_key from public.alert_configs where id = $1`, []any{id}, &kept)
	assert.Equal(t, testRoutingKey, e.open(kept))

	// Moving to another destination drops the key (and needs a URL).
	upd["destination"] = "slack"
	upd["webhook_url"] = "https://hooks.example.com/services/T0/B1/xyz"
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Nil(t, r.field("rule", "routing_key"))
	var none *string
	e.queryRow(`select routing_key from public.alert_configs where id = $1`, []any{id}, &none)
	assert.Nil(t, none)
}

func TestDestinations_FieldErrors(t *testing.T) {
	e := newEnv(t)
	for name, tc := range map[string]struct {
		change func(map[string]any)
		field  string
	}{
		"UnknownDestination": {func(b map[string]any) { b["destination"] = "fax" }, "destination"},
		"PagerDutyNeedsKey":  {func(b map[string]any) { delete(b, "routing_key") }, "routing_key"},
		"BadKey":             {func(b map[string]any) { b["routing_key"] = "not a key" }, "routing_key"},
		"KeyOnlyForPagerDuty": {func(b map[string]any) {
			b["destination"], b["webhook_url"] = "slack", "https://hooks.example.com/x"
		}, "routing_key"},
		"SlackNeedsURL":          {func(b map[string]any) { b["destination"] = "slack"; delete(b, "routing_key") }, "webhook_url"},
		"ResolvedNeedsFailed":    {func(b map[string]any) { b["events"] = []string{"succeeded", "resolved"} }, "events"},
		"SealedKeyIsNotAccepted": {func(b map[string]any) { b["routing_key"] = "mhsealed:v1:abc:def" }, "routing_key"},
		"KeyOf31":                {func(b map[string]any) { b["routing_key"] = testRoutingKey[:31] }, "routing_key"},
		"PagerDutyNoSucceeded":   {func(b map[string]any) { b["events"] = []string{"failed", "resolved", "succeeded"} }, "events"},
		"PagerDutyNoPaused":      {func(b map[string]any) { b["events"] = []string{"paused"} }, "events"},
		"PagerDutyNoCanceled":    {func(b map[string]any) { b["events"] = []string{"failed", "canceled"} }, "events"},
		"NoHeadersForPresets": {func(b map[string]any) {
			b["custom_headers"] = map[string]any{"Authorization": "Bearer internal"}
		}, "custom_headers"},
	} {
		t.Run(name, func(t *testing.T) {
			b := pagerDutyRuleBody()
			tc.change(b)
			r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", b)
			require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
			assert.Contains(t, r.fields(), tc.field, "%s", r.raw)
		})
	}
}

func TestDestinations_PreviewShowsTheExactBody(t *testing.T) {
	e := newEnv(t)
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{"destination": "slack", "event": "failed"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "#d92d20", r.field("payload", "attachments").([]any)[0].(map[string]any)["color"])

	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{"destination": "pagerduty", "event": "resolved"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "resolve", r.str("payload", "event_action"))
	assert.Equal(t, "[sealed routing_key]", r.str("payload", "routing_key"))

	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/preview", map[string]any{"destination": "fax"})
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields(), "destination")
}

// vendorStub answers every request with status and body and keeps the
// bodies it got.
type vendorStub struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newVendorStub(t *testing.T, status int, answer string) *vendorStub {
	s := &vendorStub{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestDestinations_TestSendFillsTheKeyAndSaysWhyAVendorRefused(t *testing.T) {
	e := newEnv(t)
	pd := newVendorStub(t, http.StatusAccepted, `{"status":"success","message":"Event processed","dedup_key":"k"}`)
	body := pagerDutyRuleBody()
	body["webhook_url"] = pd.URL + "/v2/enqueue"
	id, _ := e.createRule(asUser(ownerA), body)
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, true, r.field("delivered"), "%s", r.raw)
	assert.NotContains(t, string(r.raw), testRoutingKey, "the answer shows the stored body")
	require.Len(t, pd.bodies, 1)
	assert.Contains(t, pd.bodies[0], `"routing_key":"`+testRoutingKey+`"`, "PagerDuty gets the key")

	slack := newVendorStub(t, http.StatusNotFound, "no_service")
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"url": slack.URL + "/services/x", "destination": "slack"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, false, r.field("delivered"))
	assert.Equal(t, "slack_no_service", r.str("outcome"))
	assert.Equal(t, "permanent", r.str("outcome_kind"))
	assert.Contains(t, r.str("error"), "removed or disabled")
	require.Len(t, slack.bodies, 1)
	assert.Contains(t, slack.bodies[0], `"attachments"`, "the Slack body")
}

// update posts body as an update of rule id (every field but those it
// omits replaced) and answers the response.
func (e *env) update(id string, body map[string]any) response {
	e.t.Helper()
	body["id"] = id
	return e.do(asUser(ownerA), http.MethodPost, "/api/alerts/config", body)
}

func TestDestinations_UpdateChecksFieldsAgainstTheStoredDestination(t *testing.T) {
	e := newEnv(t)
	pd, _ := e.createRule(asUser(ownerA), pagerDutyRuleBody())

	// destination omitted: the stored one (pagerduty), whose empty URL is
	// PagerDuty's endpoint, not a missing webhook URL.
	upd := pagerDutyRuleBody()
	delete(upd, "destination")
	delete(upd, "routing_key")
	upd["webhook_url"] = ""
	r := e.update(pd, upd)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, "pagerduty", r.str("rule", "destination"))

	// A routing key for a Slack rule is refused, not dropped.
	slack := pagerDutyRuleBody()
	delete(slack, "routing_key")
	slack["destination"], slack["webhook_url"] = "slack", "https://hooks.example.com/services/T0/B1/xyz"
	id, _ := e.createRule(asUser(ownerA), slack)
	upd = pagerDutyRuleBody()
	delete(upd, "destination")
	r = e.update(id, upd)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["routing_key"], "only the pagerduty destination takes a routing key (this rule's destination is slack)")
	// and so is an empty URL.
	upd = pagerDutyRuleBody()
	delete(upd, "destination")
	delete(upd, "routing_key")
	upd["webhook_url"] = ""
	r = e.update(id, upd)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Equal(t, "required", r.fields()["webhook_url"])
}

func TestDestinations_ANewHostNeedsTheRoutingKeyAgain(t *testing.T) {
	e := newEnv(t)
	pd := newVendorStub(t, http.StatusAccepted, `{"status":"success","message":"Event processed","dedup_key":"k"}`)
	body := pagerDutyRuleBody()
	body["webhook_url"] = pd.URL + "/v2/enqueue"
	id, _ := e.createRule(asUser(ownerA), body)
	keep := func(url string) map[string]any {
		b := pagerDutyRuleBody()
		delete(b, "routing_key")
		b["webhook_url"] = url
		return b
	}

	other := newVendorStub(t, http.StatusAccepted, `{"status":"success"}`)
	for name, url := range map[string]string{
		"another host":        "https://events.example.net/v2/enqueue",
		"another port":        other.URL + "/v2/enqueue",
		"PagerDuty's default": "",
	} {
		r := e.update(id, keep(url))
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s: %s", name, r.raw)
		assert.Contains(t, r.fields()["routing_key"], "give the routing key again", name)
	}
	// A test send by config_id still goes to the host the key was given for.
	r := e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"config_id": id})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Len(t, pd.bodies, 1)
	assert.Empty(t, other.bodies, "the key never reached the new host")

	// Same host, another path: the key is kept.
	r = e.update(id, keep(pd.URL+"/v2/other"))
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	// A new host with the key given again.
	b := keep(other.URL + "/v2/enqueue")
	b["routing_key"] = testRoutingKey
	r = e.update(id, b)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	// Back to PagerDuty's endpoint, with the key.
	b = keep("")
	b["routing_key"] = testRoutingKey
	r = e.update(id, b)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Empty(t, r.str("rule", "webhook_url"), "empty: PagerDuty's endpoint")
}

func TestDestinations_CustomHeadersAreForWebhooksOnly(t *testing.T) {
	e := newEnv(t)
	id, _ := e.createRule(asUser(ownerA), ruleBody("https://hooks.example.com/alerts"))

	// Moving a webhook rule to Slack drops its headers (omitted); giving
	// some is refused.
	b := ruleBody("https://hooks.example.com/services/T0/B1/xyz")
	b["destination"] = "slack"
	r := e.update(id, b)
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields()["custom_headers"], "only the webhook destination sends custom headers")
	delete(b, "custom_headers")
	r = e.update(id, b)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	assert.Equal(t, []any{}, r.field("rule", "custom_header_names"))
	var stored map[string]string
	e.queryRow(`select custom_headers from public.alert_configs where id = $1`, []any{id}, &stored)
	assert.Empty(t, stored, "nothing meant for the webhook receiver goes to Slack")

	// An ad-hoc test send to a preset takes no headers either.
	r = e.do(asUser(ownerA), http.MethodPost, "/api/alerts/test", map[string]any{"url": "https://hooks.example.com/services/x",
		"destination": "slack", "headers": map[string]string{"Authorization": "Bearer internal"}})
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s", r.raw)
	assert.Contains(t, r.fields(), "headers")
}
