package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// choose sets a select's value from script and fires its change event.
func choose(selector, value string) chromedp.Action[chromedp.Void] {
	return poll(`(() => { const el = document.querySelector(` + jsString(selector) + `); if (!el) return false; el.value = ` +
		jsString(value) + `; el.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`)
}

// previewHas waits until the preview's payload contains s.
func previewHas(s string) chromedp.Action[chromedp.Void] {
	return poll(`(document.querySelector("#preview-payload")?.textContent || "").includes(` + jsString(s) + `)`)
}

// TestUIChoosesAndPreviewsADestination picks each kind of destination in
// the rule editor at a laptop's and a phone's width: the form shows only
// what the destination needs, the preview shows its exact body, and a
// PagerDuty rule saved there sends a test alert with its routing key.
func TestUIChoosesAndPreviewsADestination(t *testing.T) {
	ctx, csp, e, root := signedInOperator(t)
	hidden := func(what, id string) bool { return fieldHidden(t, ctx, what, id) }
	for _, width := range []int64{1280, 390} {
		what := fmt.Sprintf("at %d px", width)
		step(t, ctx, "open a new rule "+what,
			chromedp.EmulateViewport(width, 900),
			chromedp.Navigate(root+"/ui/rule"),
			chromedp.WaitVisible(sel("#destination")),
			fill("#name", "billing pages"),
		)
		assert.False(t, hidden(what, "secret-new"), "a webhook is signed %s", what)
		assert.True(t, hidden(what, "routing-key-field"), what)

		step(t, ctx, "choose Slack "+what, choose("#destination", "slack"), previewHas(`"attachments"`))
		assert.True(t, hidden(what, "secret-new"), "Slack verifies no signature %s", what)
		assert.True(t, hidden(what, "headers-field"), what)
		assert.Equal(t, "Slack incoming webhook URL", read(t, ctx, what, chromedp.Text(sel("#webhook-url-label"))))

		step(t, ctx, "choose Discord "+what, choose("#destination", "discord"), previewHas(`"embeds"`))
		step(t, ctx, "choose Teams "+what, choose("#destination", "teams"), previewHas(`"AdaptiveCard"`))
		step(t, ctx, "choose Google Chat "+what, choose("#destination", "googlechat"), previewHas(`"cardsV2"`))
		step(t, ctx, "choose PagerDuty "+what, choose("#destination", "pagerduty"), previewHas(`"event_action": "trigger"`))
		assert.False(t, hidden(what, "routing-key-field"), "PagerDuty needs a routing key %s", what)
		step(t, ctx, "preview the resolve "+what, choose("#preview-event", "resolved"), previewHas(`"event_action": "resolve"`))
		payload := read(t, ctx, what, chromedp.Text(sel("#preview-payload")))
		assert.Contains(t, payload, "[sealed routing_key]", "the preview never shows a key")

		fits := read(t, ctx, what, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		assert.True(t, fits, "the editor does not scroll sideways %s", what)
		broken := read(t, ctx, what, chromedp.Evaluate[[]string](brokenWords))
		assert.Empty(t, broken, "no word breaks across lines %s", what)
	}

	// Save a PagerDuty rule and send it a test alert.
	step(t, ctx, "save a PagerDuty rule",
		chromedp.EmulateViewport(1280, 900),
		fill("#project_id", e.project),
		fill("#workflow_slug", "billing"),
		fill("#routing_key", e2eRoutingKey),
		fill("#webhook_url", e.rcv.URL+"/v2/enqueue"),
		poll(`(() => { for (const cb of document.querySelectorAll('input[name="events"]')) cb.checked = ["failed", "resolved"].includes(cb.value); return true; })()`),
		chromedp.Click(sel("#save")),
		poll(`document.querySelector("#rule-status").textContent !== "Saving…" && document.querySelector("#rule-status").textContent !== ""`),
	)
	saved := read(t, ctx, "save status", chromedp.Evaluate[string](`document.querySelector("#rule-status").textContent + " " +
		Array.from(document.querySelectorAll(".field-error")).map((e) => e.id + "=" + e.textContent).filter((s) => !s.endsWith("=")).join("; ")`))
	require.Equal(t, "Rule created. ", saved)
	step(t, ctx, "the saved rule",
		chromedp.WaitVisible(sel("#send-test")),
	)
	assert.Contains(t, read(t, ctx, "routing key placeholder", chromedp.AttributeValue(sel("#routing_key"), "placeholder")).Value, "unchanged")
	step(t, ctx, "send a test", chromedp.Click(sel("#send-test")), chromedp.WaitVisible(sel("#test-outcome")))
	got := e.rcv.Deliveries()
	if assert.Len(t, got, 1) {
		assert.Contains(t, string(got[0].Body), `"routing_key":"`+e2eRoutingKey+`"`)
	}
	step(t, ctx, "the rules list names the destination",
		chromedp.Navigate(root+"/ui/rules"),
		poll(`Array.from(document.querySelectorAll('td[data-label="Destination"]')).some((td) => td.textContent.startsWith("PagerDuty"))`),
	)
	csp.assertNoViolations(t, ctx)
}

// recordSaves wraps the page's fetch so that every rule it saves is kept,
// as sent, in window.__saved.
const recordSaves = `(() => { if (!window.__saved) { window.__saved = []; const f = window.fetch;
	window.fetch = (u, init) => { if (String(u).endsWith("alerts/config") && init && init.method === "POST") window.__saved.push(JSON.parse(init.body));
	return f(u, init); }; } return true; })()`

// save clicks Save and answers the status it ends with, and the body sent.
func save(t *testing.T, ctx context.Context, what string) (string, map[string]any) {
	t.Helper()
	step(t, ctx, what,
		poll(`(() => { document.querySelector("#rule-status").textContent = ""; return true; })()`),
		chromedp.Click(sel("#save")),
		poll(`!["", "Saving…"].includes(document.querySelector("#rule-status").textContent)`),
	)
	status := read(t, ctx, what, chromedp.Evaluate[string](`document.querySelector("#rule-status").textContent`))
	raw := read(t, ctx, what, chromedp.Evaluate[string](`JSON.stringify(window.__saved.at(-1))`))
	var body map[string]any
	require.NoError(t, json.Unmarshal([]byte(raw), &body), what)
	return status, body
}

// TestUIDestinationsSendOnlyTheVisibleFields types a routing key and a
// custom header, then switches the rule to Slack: neither is sent (nor
// refused). A saved PagerDuty rule goes back to PagerDuty's endpoint
// with its "own endpoint" box, which asks for the key again.
func TestUIDestinationsSendOnlyTheVisibleFields(t *testing.T) {
	ctx, csp, e, root := signedInOperator(t)
	events := func(names ...string) chromedp.Action[chromedp.Void] {
		return poll(`(() => { for (const cb of document.querySelectorAll('input[name="events"]')) cb.checked = ` +
			jsString(strings.Join(names, ",")) + `.split(",").includes(cb.value); return true; })()`)
	}
	hidden := func(what, id string) bool { return fieldHidden(t, ctx, what, id) }
	for _, width := range []int64{1280, 390} {
		what := fmt.Sprintf("at %d px", width)
		step(t, ctx, "a new rule "+what,
			chromedp.EmulateViewport(width, 900),
			chromedp.Navigate(root+"/ui/rule"),
			chromedp.WaitVisible(sel("#destination")),
			poll(recordSaves),
			fill("#name", "billing chat "+what),
			fill("#project_id", e.project),
			fill("#workflow_slug", "billing"),
			events("failed"),
			chromedp.Click(sel("#add-header")),
			fill("#hname-1", "Authorization"),
			fill("#hvalue-1", "Bearer for-the-webhook-only"),
			choose("#destination", "pagerduty"),
			fill("#routing_key", e2eRoutingKey),
			choose("#destination", "slack"),
			fill("#webhook_url", e.rcv.URL+"/services/T0/B1/"+fmt.Sprint(width)),
		)
		status, body := save(t, ctx, "save the Slack rule "+what)
		require.Equal(t, "Rule created.", status, what)
		assert.Equal(t, "slack", body["destination"])
		assert.NotContains(t, body, "routing_key", "the hidden key is not sent %s", what)
		assert.NotContains(t, body, "custom_headers", "the hidden headers are not sent %s", what)
		assert.NotContains(t, body, "signing_secrets", what)
		assert.Equal(t, false, body["meshhook_signature"], what)
		assert.True(t, hidden(what, "url-default-field"), "Slack has no default endpoint %s", what)

		step(t, ctx, "a PagerDuty rule "+what,
			chromedp.Navigate(root+"/ui/rule"),
			chromedp.WaitVisible(sel("#destination")),
			poll(recordSaves),
			fill("#name", "billing pages "+what),
			fill("#project_id", e.project),
			fill("#workflow_slug", "billing"),
			events("failed", "resolved"),
			choose("#destination", "pagerduty"),
			fill("#routing_key", e2eRoutingKey),
			fill("#webhook_url", e.rcv.URL+"/v2/enqueue"),
		)
		assert.True(t, hidden(what, "url-default-field"), "a new rule's empty URL is the default already %s", what)
		status, body = save(t, ctx, "save the PagerDuty rule "+what)
		require.Equal(t, "Rule created.", status, what)
		assert.Equal(t, e2eRoutingKey, body["routing_key"])
		assert.False(t, hidden(what, "url-default-field"), what)
		assert.False(t, read(t, ctx, what, chromedp.Evaluate[bool](`document.querySelector("#url_default").checked`)), what)

		step(t, ctx, "back to PagerDuty's endpoint "+what,
			chromedp.Click(sel("#url_default")),
			poll(`document.querySelector("#webhook_url").disabled`),
		)
		status, body = save(t, ctx, "save without the key "+what)
		assert.Contains(t, status, "Not saved", what)
		assert.Equal(t, "", body["webhook_url"], "an empty URL is sent %s", what)
		assert.NotContains(t, body, "routing_key")
		assert.Contains(t, read(t, ctx, what, chromedp.Text(sel("#err-routing_key"))), "give the routing key again", what)

		step(t, ctx, "give the key again "+what, fill("#routing_key", e2eRoutingKey))
		status, body = save(t, ctx, "save with the key "+what)
		require.Equal(t, "Rule saved.", status, what)
		assert.Equal(t, "", body["webhook_url"])
		assert.True(t, read(t, ctx, what, chromedp.Evaluate[bool](`document.querySelector("#url_default").checked`)),
			"the saved rule posts to PagerDuty's endpoint %s", what)

		fits := read(t, ctx, what, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		assert.True(t, fits, "the editor does not scroll sideways %s", what)
		broken := read(t, ctx, what, chromedp.Evaluate[[]string](brokenWords))
		assert.Empty(t, broken, "no word breaks across lines %s", what)
	}
	csp.assertNoViolations(t, ctx)
}

// signedInOperator starts the stand-in and the daemon with its API and UI,
// opens the UI in the browser and signs in with the operator token. It
// returns the browser, its CSP watch, the stack and the daemon's root URL.
func signedInOperator(t *testing.T) (context.Context, *cspWatch, *e2e, string) {
	t.Helper()
	ctx := browser(t)
	csp := watchCSP(t, ctx)
	e := newE2EStack(t)
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken)
	root := d.apiAddr(t)
	step(t, ctx, "sign in",
		chromedp.Navigate(root+"/"),
		chromedp.WaitVisible(sel("#token")),
		fill("#token", apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
	)
	return ctx, csp, e, root
}

// fieldHidden reports whether the form field with id is inside a hidden
// element.
func fieldHidden(t *testing.T, ctx context.Context, what, id string) bool {
	t.Helper()
	return read(t, ctx, what, chromedp.Evaluate[bool](`document.getElementById(`+jsString(id)+`).closest("[hidden]") !== null`))
}
