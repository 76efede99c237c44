package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/testcert"
	"github.com/meshhook/meshhook-alerts/internal/ops"
	"github.com/meshhook/meshhook-alerts/ui"
)

// check-config reports the refusals of cleartext and unusable TLS files
// before the daemon starts, naming the keys.
func TestCheckConfigRefusesCleartextAndBadTLSFiles(t *testing.T) {
	ca := testcert.NewCA(t, "CA")
	files := testcert.NewFiles(t, ca.Issue(t, "alerts", testcert.Options{}))
	expired := testcert.NewFiles(t, ca.Issue(t, "old", testcert.Options{
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	base := []string{"SUPABASE_URL=https://x.supabase.co", "SUPABASE_SERVICE_ROLE_KEY=k",
		"MESHHOOK_ALERTS_SECRETS_ENCRYPTION_KEY=" + testEncryptionKey,
		"MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN=" + apiOperatorToken}
	for _, tc := range []struct {
		name string
		env  []string
		want []string // "" means valid
		warn string
	}{
		{"APIOnAllInterfaces", []string{"MESHHOOK_ALERTS_HTTP_LISTEN=0.0.0.0:9464"}, []string{
			`http.listen: "0.0.0.0:9464" is not a loopback address, and the HTTP API and web UI (api.enabled) would send tokens, webhook URLs and secrets over it in cleartext`,
			"set http.tls_cert_file and http.tls_key_file to serve TLS, or http.allow_insecure: true if a TLS-terminating proxy is in front"}, ""},
		{"BehindAProxy", []string{"MESHHOOK_ALERTS_HTTP_LISTEN=0.0.0.0:9464", "MESHHOOK_ALERTS_HTTP_ALLOW_INSECURE=true"}, nil, ""},
		{"DirectTLS", []string{"MESHHOOK_ALERTS_HTTP_LISTEN=0.0.0.0:9464",
			"MESHHOOK_ALERTS_HTTP_TLS_CERT_FILE=" + files.Cert, "MESHHOOK_ALERTS_HTTP_TLS_KEY_FILE=" + files.Key}, nil, ""},
		{"ExpiredCertificate", []string{"MESHHOOK_ALERTS_HTTP_TLS_CERT_FILE=" + expired.Cert, "MESHHOOK_ALERTS_HTTP_TLS_KEY_FILE=" + expired.Key}, nil,
			"meshhook-alerts: warning: http.tls_cert_file: the certificate expired at "},
		{"MissingCertificate", []string{"MESHHOOK_ALERTS_HTTP_TLS_CERT_FILE=" + missing, "MESHHOOK_ALERTS_HTTP_TLS_KEY_FILE=" + files.Key},
			[]string{"http.tls_cert_file: open " + missing + ": no such file or directory"}, ""},
		{"MismatchedKey", []string{"MESHHOOK_ALERTS_HTTP_TLS_CERT_FILE=" + files.Cert, "MESHHOOK_ALERTS_HTTP_TLS_KEY_FILE=" + expired.Key},
			[]string{"http.tls_cert_file: cannot be used with http.tls_key_file: tls: private key does not match public key"}, ""},
		{"CleartextSupabase", []string{"SUPABASE_URL=http://db.example.com:8000"}, []string{
			`supabase.url: http:// to "db.example.com" would send the service-role key in cleartext: use https://, or set supabase.allow_insecure: true`}, ""},
		{"CleartextSupabaseAllowed", []string{"SUPABASE_URL=http://db.example.com:8000", "MESHHOOK_ALERTS_SUPABASE_ALLOW_INSECURE=true"}, nil, ""},
		{"LocalSupabase", []string{"SUPABASE_URL=http://127.0.0.1:54321"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"check-config", "run"} {
				if cmd == "run" && tc.want == nil {
					continue // valid: run would start the daemon
				}
				var out, errOut bytes.Buffer
				code := cli(context.Background(), []string{cmd}, append(append([]string{}, base...), tc.env...), &out, &errOut)
				if tc.want == nil {
					require.Equal(t, exitOK, code, errOut.String())
					assert.Contains(t, out.String(), "configuration OK")
					if tc.warn != "" {
						assert.Contains(t, errOut.String(), tc.warn)
					} else {
						assert.Empty(t, errOut.String())
					}
					continue
				}
				assert.Equal(t, exitUsage, code, cmd)
				assert.Contains(t, errOut.String(), "invalid configuration", cmd)
				for _, w := range tc.want {
					assert.Contains(t, errOut.String(), w, cmd)
				}
			}
		})
	}
}

// listenAddr waits for the daemon's listener and returns its address and
// whether it serves TLS.
func (d *daemonRun) listenAddr(t *testing.T) (addr string, tls bool) {
	t.Helper()
	re := regexp.MustCompile(`"msg":"operational endpoints listening","addr":"([^"]+)","tls":(true|false)`)
	require.Eventually(t, func() bool {
		if m := re.FindStringSubmatch(d.logs.String()); m != nil {
			addr, tls = m[1], m[2] == "true"
		}
		return addr != ""
	}, 20*time.Second, 10*time.Millisecond)
	return addr, tls
}

// tlsDaemon is a daemon with the API and UI served over TLS.
type tlsDaemon struct {
	*daemonRun
	ca       *testcert.CA
	cert     *testcert.Cert
	files    testcert.Files
	scrapers *testcert.CA
	addr     string
}

// startTLSDaemon runs the daemon on the stack with the API enabled and its
// listener on TLS, with a certificate for 127.0.0.1 and localhost and a
// client CA for /metrics.
func startTLSDaemon(t *testing.T, e *e2e) *tlsDaemon {
	t.Helper()
	td := &tlsDaemon{ca: testcert.NewCA(t, "alerts CA"), scrapers: testcert.NewCA(t, "scrapers")}
	td.cert = td.ca.Issue(t, "alerts", testcert.Options{})
	td.files = testcert.NewFiles(t, td.cert)
	caFile := filepath.Join(filepath.Dir(td.files.Cert), "scrapers.pem")
	testcert.WriteFile(t, caFile, td.scrapers.PEM)
	td.daemonRun = e.startDaemon(t, "MESHHOOK_ALERTS_API_ENABLED=true", "MESHHOOK_ALERTS_API_OPERATOR_TOKEN="+apiOperatorToken,
		"MESHHOOK_ALERTS_HTTP_TLS_CERT_FILE="+td.files.Cert, "MESHHOOK_ALERTS_HTTP_TLS_KEY_FILE="+td.files.Key,
		"MESHHOOK_ALERTS_HTTP_TLS_CLIENT_CA_FILE="+caFile)
	addr, isTLS := td.listenAddr(t)
	require.True(t, isTLS, "the listener serves TLS")
	td.addr = addr
	return td
}

// client is an HTTPS client trusting the daemon's CA, on new connections
// for every request.
func (td *tlsDaemon) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: td.ca.Pool(), Certificates: certs}, DisableKeepAlives: true}}
}

// served is the serial number of the certificate a new connection is shown.
func (td *tlsDaemon) served(t *testing.T) string {
	t.Helper()
	conn, err := tls.Dial("tcp", td.addr, &tls.Config{RootCAs: td.ca.Pool()})
	require.NoError(t, err)
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// get sends a GET with an optional bearer token and returns the response
// with its body read.
func get(t *testing.T, c *http.Client, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// assertSecurityHeaders checks the browser security headers of a response.
func assertSecurityHeaders(t *testing.T, h http.Header, csp string, overTLS bool, what string) {
	t.Helper()
	assert.Equal(t, csp, h.Get("Content-Security-Policy"), what)
	assert.Contains(t, h.Get("Content-Security-Policy"), "frame-ancestors 'none'", what)
	assert.NotContains(t, h.Get("Content-Security-Policy"), "unsafe-", what)
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"), what)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"), what)
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"), what)
	if overTLS {
		assert.Equal(t, ops.StrictTransportSecurity, h.Get("Strict-Transport-Security"), what)
	} else {
		assert.Empty(t, h.Get("Strict-Transport-Security"), what)
	}
}

// TestEndToEndTLS serves the API, the UI and the metrics over TLS: the
// headers, the /metrics client certificate, no cleartext and no token in a
// URL, and a renewed certificate taken on SIGHUP and on its own.
func TestEndToEndTLS(t *testing.T) {
	e := newE2EStack(t)
	td := startTLSDaemon(t, e)
	base := "https://" + td.addr
	c := td.client()

	resp, body := get(t, c, base+"/api/status", apiOperatorToken)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))
	assertSecurityHeaders(t, resp.Header, ops.ContentSecurityPolicy, true, "API")
	resp, body = get(t, c, base+"/api/status", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, body)
	assertSecurityHeaders(t, resp.Header, ops.ContentSecurityPolicy, true, "API 401")
	resp, _ = get(t, c, base+"/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "/ui/", resp.Request.URL.Path)
	assertSecurityHeaders(t, resp.Header, ui.ContentSecurityPolicy, true, "UI")
	resp, _ = get(t, c, base+"/ui/app.js", "")
	assertSecurityHeaders(t, resp.Header, ui.ContentSecurityPolicy, true, "UI script")

	// A token is taken from the Authorization header only, never from a URL.
	for _, q := range []string{"access_token", "token", "apikey", "authorization"} {
		resp, _ = get(t, c, base+"/api/status?"+q+"="+apiOperatorToken, "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, q)
	}

	// Nothing in cleartext.
	resp, body = get(t, http.DefaultClient, "http://"+td.addr+"/api/status", apiOperatorToken)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, "HTTP request to an HTTPS server")

	// /metrics needs a scraper's client certificate; health does not.
	resp, _ = get(t, c, base+"/metrics", "")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp, _ = get(t, c, base+"/healthz", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	sc := td.scrapers.Issue(t, "prometheus", testcert.Options{Client: true})
	pair, err := tls.X509KeyPair(sc.CertPEM, sc.KeyPEM)
	require.NoError(t, err)
	resp, body = get(t, td.client(pair), base+"/metrics", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "meshhook_alerts_http_tls_certificate_not_after_timestamp_seconds")

	// SIGHUP takes a renewed certificate at once. No handshake happens
	// between the renewal and the signal, so the signal did it.
	require.Equal(t, td.cert.Serial(), td.served(t))
	second := td.ca.Issue(t, "alerts", testcert.Options{})
	td.files.Write(t, second)
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	td.waitLines(t, 1, `"msg":"TLS certificate reloaded"`, `"not_after"`)
	assert.Equal(t, second.Serial(), td.served(t))

	// Without a signal, a renewal is seen within about a second.
	third := td.ca.Issue(t, "alerts", testcert.Options{})
	td.files.Write(t, third)
	require.Eventually(t, func() bool { return td.served(t) == third.Serial() }, 20*time.Second, 50*time.Millisecond)
	resp, _ = get(t, c, base+"/api/status", apiOperatorToken)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the API keeps answering across renewals")
	assert.Equal(t, exitOK, td.stop())
}

// TestSIGHUPWithoutTLS: a SIGHUP does not stop a daemon without TLS.
func TestSIGHUPWithoutTLS(t *testing.T) {
	e := newE2EStack(t)
	d := e.startDaemon(t)
	_, isTLS := d.listenAddr(t)
	require.False(t, isTLS)
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	d.waitLines(t, 1, `"msg":"SIGHUP received"`, `nothing to reload: http.tls_cert_file is not set`)
	addr, _ := d.listenAddr(t)
	resp, _ := get(t, http.DefaultClient, "http://"+addr+"/healthz", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "still running")
	assert.Equal(t, exitOK, d.stop())
}

// cspWatch collects the page's Content-Security-Policy violations: the
// browser's console reports (Log.entryAdded) and, through a listener
// installed before any page script runs, securitypolicyviolation events.
type cspWatch struct {
	mu         sync.Mutex
	violations []string
	console    []string
}

const cspListener = `document.addEventListener("securitypolicyviolation", (e) =>
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));`

func watchCSP(t *testing.T, ctx context.Context) *cspWatch {
	t.Helper()
	w := &cspWatch{}
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener})
	require.NoError(t, err)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := m.String() + " (" + m.Source + " " + m.URL + ")"
			w.mu.Lock()
			w.console = append(w.console, line)
			if strings.Contains(m.Text, "Content Security Policy") || strings.HasPrefix(m.Text, "CSP violation") || m.Source == "security" {
				w.violations = append(w.violations, line)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *cspWatch) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.violations...)
}

func (w *cspWatch) Console() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.console, "\n")
}

// assertNoViolations checks that the UI ran under its CSP without a
// violation, then that the watch does see one: an inline script added to
// the page is blocked and reported.
func (w *cspWatch) assertNoViolations(t *testing.T, ctx context.Context) {
	t.Helper()
	assert.Empty(t, w.Violations(), "CSP violations; console:\n%s", w.Console())
	blocked := read(t, ctx, "inline script", chromedp.Evaluate[bool](
		`(() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.body.append(s); return window.inlineRan !== true; })()`))
	assert.True(t, blocked, "the CSP blocks inline script")
	// Both channels report it: the browser's own message, and the event.
	require.Eventually(t, func() bool {
		all := strings.Join(w.Violations(), "\n")
		return strings.Contains(all, "violates the following Content Security Policy directive") &&
			strings.Contains(all, "CSP violation: script-src")
	}, uiWait, 20*time.Millisecond, "the watch sees the violation; console:\n%s", w.Console())
}

// header looks a response header up case-insensitively (HTTP/2 names are
// lower case).
func header(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// TestUIOverTLS signs in to the UI served over TLS in Chromium, which
// trusts the daemon's certificate by its key: the page has its headers,
// HSTS included, and runs under its CSP without a violation.
func TestUIOverTLS(t *testing.T) {
	e := newE2EStack(t)
	td := startTLSDaemon(t, e)
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors-spki-list", td.cert.SPKIHash()))
	csp := watchCSP(t, ctx)

	sctx, cancel := context.WithTimeout(ctx, uiWait)
	resp, err := chromedp.RunResponse(sctx, chromedp.Navigate("https://"+td.addr+"/"))
	cancel()
	require.NoError(t, err)
	assert.Equal(t, int64(http.StatusOK), resp.Status)
	assert.True(t, strings.HasSuffix(resp.URL, "/ui/"), resp.URL)
	assert.Equal(t, ui.ContentSecurityPolicy, header(resp.Headers, "Content-Security-Policy"))
	assert.Equal(t, ops.StrictTransportSecurity, header(resp.Headers, "Strict-Transport-Security"))
	assert.Equal(t, "no-referrer", header(resp.Headers, "Referrer-Policy"))
	assert.Equal(t, "nosniff", header(resp.Headers, "X-Content-Type-Options"))

	step(t, ctx, "sign in over TLS",
		chromedp.WaitVisible(sel("#token")),
		fill("#token", apiOperatorToken),
		chromedp.Click(sel(`#signin-form button[type="submit"]`)),
		chromedp.WaitVisible(sel("#new-rule")),
		poll(`document.querySelector("#rules-status").textContent.startsWith("0 rules")`),
	)
	step(t, ctx, "health page", chromedp.Navigate("https://"+td.addr+"/ui/health"), chromedp.WaitVisible(sel("#health-realtime")))
	href := read(t, ctx, "location", chromedp.Location())
	assert.True(t, strings.HasPrefix(href, "https://"), href)
	assert.NotContains(t, href, apiOperatorToken)
	csp.assertNoViolations(t, ctx)
}
