package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/config"
	"github.com/meshhook/meshhook-alerts/daemon"
	"github.com/meshhook/meshhook-alerts/internal/ops"
	uipkg "github.com/meshhook/meshhook-alerts/ui"
)

// uiWait bounds every single browser step; the machine is shared and slow
// at times, so it is generous.
const uiWait = 20 * time.Second

// chromiumPath is the first of $CHROMIUM, /usr/bin/chromium and
// /usr/bin/chromium-browser that exists. Without one the test fails: the
// browser is a test dependency, not an optional extra.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if full, err := exec.LookPath(p); err == nil {
			return full
		}
	}
	t.Fatal("no Chromium found ($CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser): apt-get install chromium")
	return ""
}

// browser starts headless Chromium, with extra options if any, and returns
// a tab's context.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in CI and containers
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	require.NoError(t, chromedp.Do(ctx), "starting %s", chromiumPath(t))
	return ctx
}

// step runs browser actions, bounded by uiWait, and names what failed.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, uiWait)
	defer cancel()
	require.NoError(t, chromedp.Do(sctx, actions...), "browser step: %s", what)
}

// read runs one browser action that returns a value, bounded by uiWait.
func read[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, uiWait)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	require.NoError(t, err, "browser step: %s", what)
	return v
}

// poll waits until a JavaScript expression is truthy.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(uiWait))
}

// fill sets an input's value from script and fires its input event, for
// fields whose attributes the page has just changed: chromedp's SendKeys
// reads a node's attributes without its lock and races with that update.
func fill(selector, value string) chromedp.Action[chromedp.Void] {
	expr := `(() => { const el = document.querySelector(` + jsString(selector) + `); el.value = ` + jsString(value) +
		`; el.dispatchEvent(new Event("input", {bubbles: true})); return true; })()`
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](expr)(ctx, t)
		return err
	})
}

// sel is a CSS selector.
type sel = chromedp.CSS

// pageShot is one main page of the UI and what shows it is rendered.
type pageShot struct {
	name  string
	path  string
	ready string
}

// pageWidths are the viewport widths every page is checked at: a phone, a
// tablet, a laptop and a desktop screen.
var pageWidths = []int64{390, 768, 1280, 1920}

// checkPages loads each page at every one of pageWidths, checks that it
// does not scroll sideways, that no word breaks across lines and that
// charts are drawn at their full size (their text not shrunk), and saves a
// full-page screenshot into dir.
func checkPages(t *testing.T, ctx context.Context, base, dir string, pages ...pageShot) {
	t.Helper()
	for _, width := range pageWidths {
		for _, p := range pages {
			what := fmt.Sprintf("%s at %d px", p.name, width)
			step(t, ctx, what,
				chromedp.EmulateViewport(width, 900),
				chromedp.Navigate(base+p.path),
				chromedp.WaitVisible(sel(p.ready)),
			)
			widths := read(t, ctx, what, chromedp.Evaluate[[2]int64](`[document.documentElement.scrollWidth, window.innerWidth]`))
			scrollWidth, innerWidth := widths[0], widths[1]
			fits := scrollWidth <= innerWidth
			broken := read(t, ctx, what, chromedp.Evaluate[[]string](brokenWords))
			shrunk := read(t, ctx, what, chromedp.Evaluate[[]string](shrunkCharts))
			png := read(t, ctx, what, chromedp.FullScreenshot(100))
			assert.True(t, fits, "%s at %d px scrolls sideways: scrollWidth %d > innerWidth %d", p.name, width, scrollWidth, innerWidth)
			assert.Empty(t, broken, "%s at %d px breaks words across lines", p.name, width)
			assert.Empty(t, shrunk, "%s at %d px draws charts scaled down or wider than their card", p.name, width)
			require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", p.name, width)), png, 0o644))
		}
	}
}

// brokenWords lists the words on the page that are split across two lines.
// It measures each word of every visible text node with a Range: a word
// whose boxes sit on more than one line was broken inside. Words end at
// white space, hyphens and slashes (where a break is proper). Identifiers
// and URLs (code, pre) may wrap anywhere, except "[redacted]", which must
// stay whole.
const brokenWords = `(() => {
  const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) {
    const el = n.parentElement;
    if (!el || !el.getClientRects().length || el.closest("script, style, option, .visually-hidden")) continue;
    const head = el.closest("thead"); // stacked tables hide it in a 1 px box
    if (head && head.getBoundingClientRect().width <= 2) continue;
    const re = el.closest("code, pre, textarea") ? /\[redacted\]/g : /[^\s\-\/\u2014\u2013]+/g;
    for (const m of n.data.matchAll(re)) {
      const r = document.createRange();
      r.setStart(n, m.index);
      r.setEnd(n, m.index + m[0].length);
      const lines = new Set(Array.from(r.getClientRects()).filter((b) => b.width > 0).map((b) => Math.round(b.bottom)));
      if (lines.size > 1) bad.push(JSON.stringify(m[0]) + " in <" + el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + ">");
    }
  }
  return bad;
})()`

// shrunkCharts lists the charts on the page that are drawn scaled (their
// labels then shrink below the 11 px they are set in) or that stick out of
// their card: a chart is drawn at its card's width.
const shrunkCharts = `(() => {
  const bad = [];
  for (const svg of document.querySelectorAll("svg.chart")) {
    const r = svg.getBoundingClientRect();
    const box = svg.parentElement.getBoundingClientRect();
    const drawn = svg.width.baseVal.value;
    if (Math.abs(r.width - drawn) > 1 || r.right > box.right + 1) {
      bad.push((svg.closest("figure") || svg).id + ": drawn " + drawn + " px, shown " + Math.round(r.width) + " px in " + Math.round(box.width) + " px");
    }
  }
  return bad;
})()`

// TestUIEndToEnd drives the web UI in headless Chromium against the daemon
// on the local stand-in: sign in, create a rule (with a field error first),
// preview it, send a test alert, watch a failed run's delivery appear with
// its attempts, redeliver it, rotate the secret, and check every main page
// at every width of pageWidths; the pages show projects and workflows by
// name (their ids on hover) and the Health and rule pages chart the
// deliveries.
func TestUIEndToEnd(t *testing.T) {
	ctx := browser(t)
	csp := watchCSP(t, ctx)
	e := newE2EStack(t)
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken)
	root := d.apiAddr(t)
	ui := root + "/ui/"
	shots := os.Getenv("MESHHOOK_ALERTS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	t.Logf("screenshots in %s", shots)

	// "/" leads to the UI; the sign-in page, before signing in.
	resp, err := http.Get(root + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "/ui/", resp.Request.URL.Path)
	// The browser gets the UI with its security headers (no HSTS in
	// cleartext), and the API's answers carry them too.
	sctx, cancel := context.WithTimeout(ctx, uiWait)
	doc, err := chromedp.RunResponse(sctx, chromedp.Navigate(ui))
	cancel()
	require.NoError(t, err)
	assert.Equal(t, uipkg.ContentSecurityPolicy, header(doc.Headers, "Content-Security-Policy"))
	assert.Equal(t, "no-referrer", header(doc.Headers, "Referrer-Policy"))
	assert.Equal(t, "nosniff", header(doc.Headers, "X-Content-Type-Options"))
	assert.Empty(t, header(doc.Headers, "Strict-Transport-Security"))
	resp, err = http.Get(root + "/api/status")
	require.NoError(t, err)
	resp.Body.Close()
	assertSecurityHeaders(t, resp.Header, ops.ContentSecurityPolicy, false, "API")
	checkPages(t, ctx, ui, shots, pageShot{"signin", "", "#signin-form"})

	// A wrong token is refused next to the field; the right one signs in.
	step(t, ctx, "wrong token",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(root+"/"),
		chromedp.WaitVisible(sel("#token")),
		chromedp.SendKeys(sel("#token"), "not-the-token"),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#err-token")),
	)
	errText := read(t, ctx, "token error", chromedp.Text(sel("#err-token")))
	assert.Contains(t, errText, "neither the operator token nor")
	step(t, ctx, "sign in",
		fill("#token", apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
		poll(`document.querySelector("#rules-status").textContent.startsWith("0 rules")`),
	)
	href := read(t, ctx, "location", chromedp.Location())
	assert.NotContains(t, href, apiOperatorToken, "the token stays out of the URL")

	// Create a rule; a payload template that renders invalid JSON is a
	// field error from the API, shown next to the field.
	step(t, ctx, "fill in a new rule",
		chromedp.Click(sel("#new-rule")),
		chromedp.WaitVisible(sel("#rule-form")),
		chromedp.SendKeys(sel("#project_id"), e.project),
		chromedp.SendKeys(sel("#workflow_slug"), "billing"),
		chromedp.SendKeys(sel("#name"), "billing failures"),
		chromedp.SendKeys(sel("#webhook_url"), e.rcv.URL+"/hook/{{.Workflow.Slug}}"),
		chromedp.Click(sel(`input[name="secret_mode"][value="given"]`)),
		chromedp.WaitVisible(sel("#signing_secret")),
		fill("#signing_secret", testSecret),
		chromedp.SendKeys(sel("#payload_template"), `{"text": {{.Workflow.Name}}}`),
		chromedp.WaitVisible(sel("#preview-error")),
		chromedp.Click(sel("#save")),
		chromedp.WaitVisible(sel("#err-payload_template")),
	)
	fieldErr := read(t, ctx, "field error", chromedp.Text(sel("#err-payload_template")))
	assert.Contains(t, fieldErr, "invalid JSON")
	invalid := read(t, ctx, "aria-invalid", chromedp.AttributeValue(sel("#payload_template"), "aria-invalid"))
	assert.Equal(t, "true", invalid.Value)

	step(t, ctx, "fix the template and see the preview",
		fill("#payload_template", `{"text": {{printf "%s %s" .Workflow.Name .Event | json}}, "run": {{json .RunID}}}`),
		poll(`(document.querySelector("#preview-payload")?.textContent || "").includes('"text"')`),
	)
	preview := read(t, ctx, "preview", chromedp.Text(sel("#preview-payload")))
	assert.Contains(t, preview, "failed", "the preview renders the sample run's failed event")
	assert.Contains(t, preview, `"run"`)
	step(t, ctx, "save", chromedp.Click(sel("#save")), chromedp.WaitVisible(sel("#test-card")))
	ruleID := read(t, ctx, "rule id", chromedp.Evaluate[string](`new URLSearchParams(location.search).get("id")`))
	require.Regexp(t, `^[0-9a-f-]{36}$`, ruleID)
	code, body := call(t, http.MethodGet, root+"/api/alerts/config?id="+ruleID, apiOperatorToken, nil)
	require.Equal(t, http.StatusOK, code)
	stored := body["rules"].([]any)[0].(map[string]any)
	assert.Equal(t, "billing", stored["workflow_slug"])
	assert.Equal(t, []any{"failed"}, stored["events"])

	// Send a test alert: the receiver gets it, the page shows the result.
	step(t, ctx, "send a test", chromedp.Click(sel("#send-test")), chromedp.WaitVisible(sel("#test-outcome")))
	assert.Equal(t, "204", read(t, ctx, "test status", chromedp.Text(sel("#test-status"))))
	got := e.waitDeliveries(t, 1)
	require.NoError(t, got[0].VerifyErr)
	assert.Equal(t, "/hook/billing", got[0].Path)
	assert.True(t, strings.HasPrefix(got[0].ID, "msg_test_"), got[0].ID)

	// A failed run: its delivery appears on the deliveries page.
	d.waitReady(t)
	require.Eventually(t, func() bool {
		_, st := call(t, http.MethodGet, root+"/api/status", apiOperatorToken, nil)
		return st["rules"].(map[string]any)["loaded"] == float64(1)
	}, uiWait, 50*time.Millisecond, "the daemon loads the new rule")
	step(t, ctx, "open deliveries",
		chromedp.Navigate(ui+"deliveries?config_id="+ruleID),
		chromedp.WaitVisible(sel("#logs-filter")),
	)
	e.insertRun(t, "failed")
	got = e.waitDeliveries(t, 2)
	require.NoError(t, got[1].VerifyErr)
	alertRow := `tr.alert[data-status="succeeded"]`
	step(t, ctx, "the delivery appears with its attempt",
		chromedp.WaitVisible(sel(alertRow)),
		chromedp.Click(sel("#auto-refresh")),
		chromedp.Click(sel(alertRow+` button[aria-controls]`)),
		chromedp.WaitVisible(sel(`li.attempt`)),
		chromedp.WaitVisible(sel(`tr.attempts pre.payload`)),
	)
	attempts := read(t, ctx, "attempts", chromedp.Text(sel(`tr.attempts`)))
	assert.Contains(t, attempts, got[1].ID, "the webhook id")
	assert.Contains(t, read(t, ctx, "timeline", chromedp.Text(sel(`li.attempt`))), "HTTP 204")
	assert.Regexp(t, `\d+\x{a0}ms`, attempts)
	assert.Contains(t, attempts, "webhook-signature", "the headers sent")
	assert.Contains(t, attempts, "(secret, not shown)")
	assert.NotContains(t, attempts, testSecret)
	assert.Contains(t, read(t, ctx, "payload", chromedp.Text(sel(`tr.attempts pre.payload`))), `"run": "`,
		"the payload sent, as the rule's template rendered it")

	// Redeliver: the receiver gets the same webhook-id again.
	step(t, ctx, "redeliver",
		chromedp.Click(sel(alertRow+` button[aria-label^="Redeliver"]`)),
		poll(`document.querySelector("#logs-status").textContent.includes("queued for redelivery")`),
	)
	got = e.waitDeliveries(t, 3)
	require.NoError(t, got[2].VerifyErr)
	assert.Equal(t, got[1].ID, got[2].ID)
	step(t, ctx, "the second attempt shows",
		chromedp.Click(sel("#auto-refresh")),
		poll(`Array.from(document.querySelectorAll("tr.alert [aria-controls]")).some(b => b.textContent === "2\u00a0attempts")`),
	)

	// Rotate the secret: add a second (shown once), retire the first.
	step(t, ctx, "open the rule",
		chromedp.Navigate(ui+"rule?id="+ruleID),
		chromedp.WaitVisible(sel("#secrets li")),
	)
	oldFP := read(t, ctx, "old fingerprint", chromedp.Evaluate[string](`document.querySelector("#secrets li").dataset.fingerprint`))
	step(t, ctx, "add a secret",
		chromedp.Click(sel("#add-secret")),
		chromedp.WaitVisible(sel("#secret-once")),
		poll(`document.querySelectorAll("#secrets li").length === 2`),
	)
	newSecret := read(t, ctx, "new secret", chromedp.Text(sel("#secret-once-value")))
	require.True(t, strings.HasPrefix(newSecret, "whsec_"), newSecret)
	newFP := read(t, ctx, "new fingerprint", chromedp.Evaluate[string](
		`Array.from(document.querySelectorAll("#secrets li")).map(li => li.dataset.fingerprint).find(f => f !== `+jsString(oldFP)+`)`))
	step(t, ctx, "retire the old secret",
		chromedp.Click(sel("#secret-once-done")),
		chromedp.WaitNotVisible(sel("#secret-once")),
		chromedp.Click(sel(`#secrets li[data-fingerprint="`+oldFP+`"] button`)),
		poll(`document.querySelectorAll("#secrets li").length === 1`),
	)
	html := read(t, ctx, "page HTML", chromedp.OuterHTML(sel("html")))
	assert.NotContains(t, html, newSecret, "a secret is not kept in the page once acknowledged")
	assert.NotContains(t, html, testSecret)
	code, body = call(t, http.MethodGet, root+"/api/alerts/config?id="+ruleID, apiOperatorToken, nil)
	require.Equal(t, http.StatusOK, code)
	secrets := body["rules"].([]any)[0].(map[string]any)["signing_secrets"].([]any)
	require.Len(t, secrets, 1)
	assert.Equal(t, newFP, secrets[0].(map[string]any)["fingerprint"])
	var n int
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`select cardinality(signing_secrets) from alert_configs where id = $1`, ruleID).Scan(&n))
	assert.Equal(t, 1, n)

	// Projects and workflows appear by name, their id and slug on hover.
	step(t, ctx, "rules by name",
		chromedp.Navigate(ui+"rules"),
		chromedp.WaitVisible(sel("#rules-list h2 .name")),
	)
	assert.Equal(t, "p", read(t, ctx, "project name", chromedp.Text(sel("#rules-list h2 .name"))))
	assert.Equal(t, e.project, read(t, ctx, "project id", chromedp.AttributeValue(sel("#rules-list h2 .name"), "title")).Value)
	assert.Equal(t, "Billing", read(t, ctx, "workflow name", chromedp.Text(sel(`#rules-list td[data-label="Workflow"] .name`))))
	assert.Equal(t, "billing · project "+e.project,
		read(t, ctx, "workflow slug", chromedp.AttributeValue(sel(`#rules-list td[data-label="Workflow"] .name`), "title")).Value)
	step(t, ctx, "deliveries by workflow name",
		chromedp.Navigate(ui+"deliveries?config_id="+ruleID),
		chromedp.WaitVisible(sel(`tr.alert td[data-label="Workflow"] .name`)),
	)
	assert.Equal(t, "Billing", read(t, ctx, "workflow name", chromedp.Text(sel(`tr.alert td[data-label="Workflow"] .name`))))

	// The Health page charts the deliveries of the last hour, then of the
	// last day; the rule's page charts its own.
	step(t, ctx, "health charts",
		chromedp.Navigate(ui+"health"),
		chromedp.WaitVisible(sel("#health-chart-outcomes svg")),
		poll(`document.querySelectorAll("#health-chart-outcomes rect.bar.s-ok").length > 0`),
		poll(`document.querySelectorAll("#health-chart-latency path.line.s-p99, #health-chart-latency circle.dot.s-p99").length > 0`),
		chromedp.Click(sel(`#health-charts button[data-window="24h"]`)),
		poll(`document.querySelector("#health-charts").dataset.window === "24h" && document.querySelectorAll("#health-chart-outcomes rect.bar.s-ok").length > 0`),
	)
	assert.Contains(t, read(t, ctx, "outcomes", chromedp.Text(sel("#health-chart-outcomes"))), "2 delivered",
		"the test alert is no delivery of a run: the run's alert and its redelivery are")
	assert.Contains(t, read(t, ctx, "latency", chromedp.Text(sel("#health-chart-latency"))), "worst p99")
	step(t, ctx, "rule charts",
		chromedp.Navigate(ui+"rule?id="+ruleID),
		poll(`document.querySelectorAll("#rule-chart-outcomes rect.bar.s-ok").length > 0`),
	)

	// Every main page, at every width.
	checkPages(t, ctx, ui, shots,
		pageShot{"rules", "rules", "#rules-list table"},
		pageShot{"rule", "rule?id=" + ruleID, "#rule-chart-outcomes svg"},
		pageShot{"deliveries", "deliveries?config_id=" + ruleID, "tr.alert"},
		pageShot{"health", "health", "#health-chart-outcomes svg"},
	)
	assert.Equal(t, "subscribed", read(t, ctx, "health", chromedp.Text(sel("#health-realtime"))))
	assert.Equal(t, "up to date", read(t, ctx, "health", chromedp.Text(sel("#health-reconcile"))),
		"the operator sees reconciliation on the Health page")

	// All of it ran under the UI's Content-Security-Policy.
	csp.assertNoViolations(t, ctx)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// TestMountUI serves the UI, and redirects "/" to it, only when both the
// API and the UI are enabled.
func TestMountUI(t *testing.T) {
	for _, tc := range []struct {
		api, ui bool
		want    []string
	}{
		{true, true, []string{"/console/", "GET /{$}"}},
		{true, false, nil},
		{false, true, nil},
	} {
		cfg := config.Default()
		cfg.API.Enabled, cfg.UI.Enabled, cfg.UI.Path = tc.api, tc.ui, "/console/"
		var got []string
		mux := http.NewServeMux()
		require.NoError(t, daemon.MountUI(cfg, func(p string, h http.Handler) { got = append(got, p); mux.Handle(p, h) }))
		assert.Equal(t, tc.want, got, "api %v ui %v", tc.api, tc.ui)
		if tc.want == nil {
			continue
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		assert.Equal(t, http.StatusFound, rec.Code)
		assert.Equal(t, "/console/", rec.Header().Get("Location"))
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/health", nil))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Contains(t, rec.Body.String(), `data-page="health"`)
	}
}
