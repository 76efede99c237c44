package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	uipkg "github.com/meshhook/meshhook-alerts/ui"
)

// uiUserTokenTTL is the stand-in Auth's access-token lifetime in
// TestUIUserSignInRefreshSignOut: short, so that the UI has to refresh
// within the test (at half the lifetime, under a minute).
const uiUserTokenTTL = 20 * time.Second

// TestUIUserSignInRefreshSignOut signs a seeded Supabase user in to the UI
// with email and password through the stand-in's Auth (the publishable key
// configured as ui.supabase_publishable_key), checks that the API calls
// carry the user's token and show only their project's rules, that the
// token is refreshed before it expires and still works for changes, and
// that signing out ends the session at Auth (the token no longer works for
// changes) and shows the sign-in form again; the operator token still signs
// in.
func TestUIUserSignInRefreshSignOut(t *testing.T) {
	ctx := browser(t)
	csp := watchCSP(t, ctx)
	bg := context.Background()

	db := pgtest.Shared(t).NewDatabase(t)
	si, err := standin.Start(bg, standin.Options{DatabaseURL: db.URL, TokenTTL: uiUserTokenTTL})
	require.NoError(t, err)
	t.Cleanup(func() { _ = si.Close() })
	user := authtest.User{ID: randomUUID(t), Email: "ada@example.com", Password: "correct horse battery"}
	si.Auth.AddUser(user)
	var mine, theirs string
	require.NoError(t, si.Pool.QueryRow(bg, `insert into projects (owner, name) values ($1, 'mine') returning id`, user.ID).Scan(&mine))
	require.NoError(t, si.Pool.QueryRow(bg, `insert into projects (owner, name) values (gen_random_uuid(), 'theirs') returning id`).Scan(&theirs))
	for _, r := range []struct{ project, name string }{{mine, "my rule"}, {theirs, "their rule"}} {
		_, err := si.Pool.Exec(bg, `insert into alert_configs (project_id, name, events, webhook_url, signing_secrets)
			values ($1, $2, '{failed}', $3, array[$4])`, r.project, r.name, sealed(t, "https://hooks.example.com/"+r.name), sealed(t, testSecret))
		require.NoError(t, err)
	}

	e := &e2e{si: si}
	d := e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken,
		"MESHHOOK_ALERTS_UI_SUPABASE_PUBLISHABLE_KEY="+si.PublishableKey)
	root := d.apiAddr(t)
	ui := root + "/ui/"

	// The public sign-in settings: the project URL and publishable key.
	resp, err := http.Get(root + "/api/auth/config")
	require.NoError(t, err)
	var ac map[string]map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ac))
	resp.Body.Close()
	assert.Equal(t, map[string]string{"url": si.URL, "publishable_key": si.PublishableKey}, ac["supabase"])

	// The UI may connect to the project's origin, and to nothing else new.
	sctx, cancel := context.WithTimeout(ctx, uiWait)
	doc, err := chromedp.RunResponse(sctx, chromedp.Navigate(ui))
	cancel()
	require.NoError(t, err)
	wantCSP, err := uipkg.ContentSecurityPolicyFor(si.URL)
	require.NoError(t, err)
	assert.Equal(t, wantCSP, header(doc.Headers, "Content-Security-Policy"))
	assert.Contains(t, wantCSP, "connect-src 'self' "+si.URL+";")

	// A wrong password is refused next to the field; the right one signs in.
	step(t, ctx, "wrong password",
		chromedp.WaitVisible(sel("#password-form")),
		chromedp.SendKeys(sel("#email"), user.Email),
		chromedp.SendKeys(sel("#password"), "wrong"),
		chromedp.Click(sel(`#password-form button[type="submit"]`)),
		poll(`document.querySelector("#err-password").textContent !== ""`),
	)
	assert.Contains(t, read(t, ctx, "password error", chromedp.Text(sel("#err-password"))), "Invalid login credentials")
	assert.Empty(t, read(t, ctx, "no token yet", chromedp.Evaluate[string](`sessionStorage.getItem("meshhook-alerts.token") || ""`)))
	step(t, ctx, "sign in",
		fill("#password", user.Password),
		chromedp.Click(sel(`#password-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
		poll(`document.querySelector("#rules-status").textContent.startsWith("1 rule")`),
		poll(`document.querySelector("#who").textContent === "ada@example.com"`),
	)
	list := read(t, ctx, "rules", chromedp.Text(sel("#rules-list")))
	assert.Contains(t, list, "my rule")
	assert.Contains(t, list, "Project mine", "the project by name")
	assert.Equal(t, mine, read(t, ctx, "project id on hover", chromedp.AttributeValue(sel("#rules-list h2 .name"), "title")).Value)
	assert.NotContains(t, list, "their rule", "row-level security: the user's token, not the operator's")
	href := read(t, ctx, "location", chromedp.Location())

	// The API is called with the user's access token, kept in the tab's
	// sessionStorage and out of the URL.
	first := read(t, ctx, "token", chromedp.Evaluate[string](`sessionStorage.getItem("meshhook-alerts.token")`))
	assert.NotContains(t, href, first)
	assert.Equal(t, user.ID, jwtClaim(t, first, "sub"))
	code, st := call(t, http.MethodGet, root+"/api/status", first, nil)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, user.ID, st["caller"].(map[string]any)["user_id"])
	firstExp := jwtClaim(t, first, "exp").(float64)

	// The token is refreshed before it expires, and the new one works for
	// a change (confirmed with Auth): disable the rule.
	step(t, ctx, "refresh",
		chromedp.Poll[chromedp.Void](`sessionStorage.getItem("meshhook-alerts.token") !== `+jsString(first),
			chromedp.WithPollingTimeout(uiUserTokenTTL+uiWait)),
	)
	refreshedAt := read(t, ctx, "clock", chromedp.Evaluate[float64](`Date.now() / 1000`))
	assert.Less(t, refreshedAt, firstExp, "refreshed before the token expired")
	second := read(t, ctx, "token", chromedp.Evaluate[string](`sessionStorage.getItem("meshhook-alerts.token")`))
	assert.Equal(t, user.ID, jwtClaim(t, second, "sub"))
	assert.Greater(t, jwtClaim(t, second, "exp").(float64), firstExp)
	step(t, ctx, "disable the rule with the refreshed token",
		chromedp.Click(sel(`#rules-list tr button.secondary`)),
		poll(`document.querySelector("#rules-list tr button.secondary")?.textContent === "Enable"`),
	)
	var enabled bool
	require.NoError(t, si.Pool.QueryRow(bg, `select enabled from alert_configs where name = 'my rule'`).Scan(&enabled))
	assert.False(t, enabled)
	current := read(t, ctx, "token", chromedp.Evaluate[string](`sessionStorage.getItem("meshhook-alerts.token")`))

	// Sign out: the session ends at Auth, the tab forgets its tokens, and
	// the sign-in form is back.
	step(t, ctx, "sign out",
		chromedp.Click(sel("#sign-out")),
		chromedp.WaitVisible(sel("#password-form")),
	)
	left := read(t, ctx, "storage", chromedp.Evaluate[int](`sessionStorage.length`))
	assert.Zero(t, left, "no token is kept after signing out")
	req, err := http.NewRequest(http.MethodGet, si.URL+"/auth/v1/user", nil)
	require.NoError(t, err)
	req.Header.Set("apikey", si.PublishableKey)
	req.Header.Set("Authorization", "Bearer "+current)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "Auth no longer knows the session")
	// The daemon refuses the token for changes within its session cache time.
	var last map[string]any
	require.Eventually(t, func() bool {
		var code int
		code, last = call(t, http.MethodDelete, root+"/api/alerts/config/"+randomUUID(t), current, nil)
		return code == http.StatusUnauthorized
	}, api.DefaultSessionTTL+uiWait, 200*time.Millisecond, "a signed-out token stops working for changes")
	assert.Equal(t, "session_ended", last["error"].(map[string]any)["code"])

	// The operator token still signs in, and sees every project.
	step(t, ctx, "operator sign-in",
		chromedp.Click(sel("#token-signin summary")),
		chromedp.WaitVisible(sel("#token")),
		chromedp.SendKeys(sel("#token"), apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
		poll(`document.querySelector("#rules-status").textContent.startsWith("2 rules")`),
		poll(`document.querySelector("#who").textContent === "Operator"`),
	)
	assert.Empty(t, read(t, ctx, "no session", chromedp.Evaluate[string](`sessionStorage.getItem("meshhook-alerts.session") || ""`)))

	csp.assertNoViolations(t, ctx)
}

// jwtClaim reads one claim of a JWT without verifying it.
func jwtClaim(t *testing.T, tok, claim string) any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3, "a JWT")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, json.Unmarshal(raw, &claims))
	return claims[claim]
}

// randomUUID is a random (version 4) UUID.
func randomUUID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	_, err := rand.Read(b)
	require.NoError(t, err)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
