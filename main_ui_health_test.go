package main

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestUIHealthTellsTheTruth drives the Health page against a receiver that
// answers 500: the page says delivery is failing, counts the alert as
// retrying (not as a success), shows its endpoint's circuit; then, with the
// database not answering, signing in still works, lands on the Health
// page, and the page says the database is unreachable while showing the
// daemon's own state. At every width of pageWidths.
func TestUIHealthTellsTheTruth(t *testing.T) {
	ctx := browser(t)
	csp := watchCSP(t, ctx)
	e := newE2EStack(t)
	e.insertRule(t, rule{project: e.project, slug: "billing", events: "{failed}", url: e.rcv.URL + "/hook/{{.Workflow.Slug}}"})
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken,
		"MESHHOOK_ALERTS_SENDER_MAX_ATTEMPTS=1000", "MESHHOOK_ALERTS_SENDER_RETRY_INITIAL=100ms", "MESHHOOK_ALERTS_SENDER_RETRY_MAX=300ms")
	root := d.apiAddr(t)
	ui := root + "/ui/"
	shots := os.Getenv("MESHHOOK_ALERTS_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	d.waitReady(t)

	// Every attempt fails: the alert stays pending, retrying.
	fails := make([]int, 10000)
	for i := range fails {
		fails[i] = http.StatusInternalServerError
	}
	e.rcv.Script(fails...)
	e.insertRun(t, "failed")
	e.waitDeliveries(t, 2)

	step(t, ctx, "sign in",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(ui),
		chromedp.WaitVisible(sel("#token")),
		fill("#token", apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
		chromedp.Navigate(ui+"health"),
		chromedp.WaitVisible(sel("#health-verdict")),
		// The page refreshes every 10 s; wait for the numbers the API has.
		poll(`document.querySelector("#health-retrying")?.textContent === "1"`),
	)
	assert.Equal(t, "failing", read(t, ctx, "verdict", chromedp.Text(sel("#health-verdict"))))
	assert.Contains(t, read(t, ctx, "why", chromedp.Text(sel("#health-verdict-why"))), "1 alert is retrying after failed attempts")
	assert.Equal(t, "1", read(t, ctx, "pending", chromedp.Text(sel("#health-pending"))))
	assert.Equal(t, "0", read(t, ctx, "succeeded", chromedp.Text(sel("#health-succeeded"))))
	assert.Equal(t, "— (none finished)", read(t, ctx, "rate", chromedp.Text(sel("#health-rate"))),
		"no success rate claimed while the only alert is failing")
	assert.Regexp(t, `^\d+ s \(`, read(t, ctx, "oldest", chromedp.Text(sel("#health-oldest"))))
	circuit := read(t, ctx, "circuits", chromedp.Text(sel("#health-circuit-list li")))
	assert.Contains(t, circuit, "http://127.0.0.1:")
	assert.Contains(t, circuit, "[redacted]", "the endpoint's path stays hidden")
	assert.Regexp(t, `\d+ failed in a row`, circuit)
	// The retries chart shows the failed attempts, and nothing delivered.
	step(t, ctx, "retries charted",
		poll(`document.querySelectorAll("#health-chart-retries rect.bar.s-warn").length > 0`),
	)
	assert.Contains(t, read(t, ctx, "outcomes", chromedp.Text(sel("#health-chart-outcomes"))), "0 delivered, 0 gave up")
	assert.Contains(t, read(t, ctx, "latency", chromedp.Text(sel("#health-chart-latency"))), "nothing delivered")
	checkPages(t, ctx, ui, shots, pageShot{"health-failing", "health", "#health-chart-retries svg"})

	// The database stops answering: the status still comes, quickly.
	e.si.REST.StallNext(1 << 30)
	t.Cleanup(func() {
		e.si.REST.StallNext(0)
		e.si.REST.ReleaseStalled()
	})
	start := time.Now()
	code, st := call(t, http.MethodGet, root+"/api/status", apiOperatorToken, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, false, st["database"].(map[string]any)["reachable"])

	// Sign in afresh: it works and lands on the Health page.
	step(t, ctx, "sign out and in while the database is down",
		chromedp.Click(sel("#sign-out")),
		chromedp.WaitVisible(sel("#token")),
		fill("#token", apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#health-database")),
	)
	assert.Contains(t, read(t, ctx, "location", chromedp.Location()), "/ui/health")
	assert.Equal(t, "database unreachable", read(t, ctx, "verdict", chromedp.Text(sel("#health-verdict"))))
	assert.Equal(t, "unreachable", read(t, ctx, "database", chromedp.Text(sel("#health-database"))))
	assert.Contains(t, read(t, ctx, "why", chromedp.Text(sel("#health-database-error"))), "did not answer within")
	assert.Equal(t, "subscribed", read(t, ctx, "realtime", chromedp.Text(sel("#health-realtime"))),
		"the daemon's own state is still shown")
	checkPages(t, ctx, ui, shots, pageShot{"health-db-down", "health", "#health-database"})

	csp.assertNoViolations(t, ctx)
}
