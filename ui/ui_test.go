package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func serve(t *testing.T, h http.Handler, method, target string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

func newHandler(t *testing.T, base string) http.Handler {
	t.Helper()
	h, err := Handler(Options{Path: base})
	require.NoError(t, err)
	return h
}

func TestServesPagesAndAssetsWithTheirTypes(t *testing.T) {
	h := newHandler(t, "/ui/")
	cases := map[string]string{
		"/ui/":           "text/html; charset=utf-8",
		"/ui/rules":      "text/html; charset=utf-8",
		"/ui/rule":       "text/html; charset=utf-8",
		"/ui/deliveries": "text/html; charset=utf-8",
		"/ui/health":     "text/html; charset=utf-8",
		"/ui/app.css":    "text/css; charset=utf-8",
		"/ui/app.js":     "text/javascript; charset=utf-8",
	}
	for path, ct := range cases {
		t.Run(path, func(t *testing.T) {
			r := serve(t, h, http.MethodGet, path)
			require.Equal(t, http.StatusOK, r.StatusCode)
			assert.Equal(t, ct, r.Header.Get("Content-Type"))
			assert.Equal(t, ContentSecurityPolicy, r.Header.Get("Content-Security-Policy"))
			assert.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"))
			assert.Equal(t, "no-referrer", r.Header.Get("Referrer-Policy"))
			assert.Equal(t, "DENY", r.Header.Get("X-Frame-Options"))
			assert.Equal(t, "no-cache", r.Header.Get("Cache-Control"))
			assert.Regexp(t, `^"[0-9a-f]{24}"$`, r.Header.Get("ETag"))
			assert.NotEmpty(t, body(t, r))
		})
	}
}

func TestCSPIsStrict(t *testing.T) {
	for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		assert.Contains(t, ContentSecurityPolicy, d)
	}
	assert.NotContains(t, ContentSecurityPolicy, "unsafe-inline")
	assert.NotContains(t, ContentSecurityPolicy, "unsafe-eval")
}

// The pages must work under the CSP: no inline script, handlers or styles,
// and relative links so that any base path works.
func TestPagesHaveNoInlineScriptOrStyle(t *testing.T) {
	h := newHandler(t, "/ui/")
	inlineScript := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)
	handlerAttr := regexp.MustCompile(`\son[a-z]+\s*=`)
	for name := range pages {
		page := body(t, serve(t, h, http.MethodGet, "/ui/"+name))
		assert.NotRegexp(t, inlineScript, page, name)
		assert.NotRegexp(t, handlerAttr, page, name)
		assert.NotContains(t, page, "style=", name)
		assert.NotContains(t, page, "<style", name)
		assert.Contains(t, page, `<script type="module" src="app.js"></script>`, name)
		assert.Contains(t, page, `<link rel="stylesheet" href="app.css">`, name)
		assert.NotContains(t, page, `href="/`, name+" links are relative to the base path")
		assert.Contains(t, page, `<meta name="viewport"`, name)
		assert.Contains(t, page, `aria-live="polite"`, name)
	}
}

// Every input of every page has a label.
func TestInputsAreLabelled(t *testing.T) {
	h := newHandler(t, "/ui/")
	input := regexp.MustCompile(`<(?:input|select|textarea)\s[^>]*id="([^"]+)"`)
	for name := range pages {
		page := body(t, serve(t, h, http.MethodGet, "/ui/"+name))
		for _, m := range input.FindAllStringSubmatch(page, -1) {
			wrapped := regexp.MustCompile(`<label[^>]*>\s*<input[^>]*id="` + regexp.QuoteMeta(m[1]) + `"`)
			if !strings.Contains(page, `for="`+m[1]+`"`) && !wrapped.MatchString(page) {
				t.Errorf("%s: #%s has no label", name, m[1])
			}
		}
	}
}

func TestRevalidationAnswers304(t *testing.T) {
	h := newHandler(t, "/ui/")
	etag := serve(t, h, http.MethodGet, "/ui/app.js").Header.Get("ETag")
	r := serve(t, h, http.MethodGet, "/ui/app.js", "If-None-Match", etag)
	assert.Equal(t, http.StatusNotModified, r.StatusCode)
	assert.Empty(t, body(t, r))
}

func TestHEADAndMethods(t *testing.T) {
	h := newHandler(t, "/ui/")
	r := serve(t, h, http.MethodHead, "/ui/rules")
	assert.Equal(t, http.StatusOK, r.StatusCode)
	assert.Empty(t, body(t, r))

	r = serve(t, h, http.MethodPost, "/ui/rules")
	assert.Equal(t, http.StatusMethodNotAllowed, r.StatusCode)
	assert.Equal(t, "GET, HEAD", r.Header.Get("Allow"))
	assert.Equal(t, ContentSecurityPolicy, r.Header.Get("Content-Security-Policy"))
}

func TestUnknownPathsAre404(t *testing.T) {
	h := newHandler(t, "/ui/")
	for _, p := range []string{"/ui/nope", "/ui/index.html", "/ui/static/app.js", "/ui/rules/", "/ui/../ui/app.js", "/other/app.js", "/ui/app.js/x"} {
		r := serve(t, h, http.MethodGet, p)
		assert.Equal(t, http.StatusNotFound, r.StatusCode, p)
		assert.Equal(t, "no-store", r.Header.Get("Cache-Control"), p)
		assert.Equal(t, ContentSecurityPolicy, r.Header.Get("Content-Security-Policy"), p)
		assert.NotContains(t, body(t, r), "<html", p)
	}
}

func TestBasePath(t *testing.T) {
	h := newHandler(t, "/console/alerts/")
	r := serve(t, h, http.MethodGet, "/console/alerts/deliveries")
	require.Equal(t, http.StatusOK, r.StatusCode)
	assert.Contains(t, body(t, r), `data-page="deliveries"`)
	assert.Equal(t, http.StatusNotFound, serve(t, h, http.MethodGet, "/ui/deliveries").StatusCode)

	r = serve(t, h, http.MethodGet, "/console/alerts")
	assert.Equal(t, http.StatusMovedPermanently, r.StatusCode)
	assert.Equal(t, "/console/alerts/", r.Header.Get("Location"))

	def, err := Handler(Options{})
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, serve(t, def, http.MethodGet, DefaultPath+"health").StatusCode)
}

func TestBadBasePath(t *testing.T) {
	for _, p := range []string{"ui/", "/ui", "/a//b/", "/a/../b/"} {
		_, err := Handler(Options{Path: p})
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), p)
	}
}

// Pages link only to pages the handler serves.
func TestLinksResolve(t *testing.T) {
	h := newHandler(t, "/ui/")
	href := regexp.MustCompile(`(?:href|src)="([^"#]*)"`)
	for name := range pages {
		page := body(t, serve(t, h, http.MethodGet, "/ui/"+name))
		for _, m := range href.FindAllStringSubmatch(page, -1) {
			target := strings.SplitN(m[1], "?", 2)[0]
			if target == "" {
				continue
			}
			assert.Equal(t, http.StatusOK, serve(t, h, http.MethodGet, "/ui/"+target).StatusCode, "%s links to %s", name, m[1])
		}
	}
}

// With users signing in through Supabase Auth, the project's origin (and
// only its origin) joins connect-src; nothing else loosens.
func TestContentSecurityPolicyLetsInTheSupabaseOrigin(t *testing.T) {
	h, err := Handler(Options{SupabaseURL: "https://abcdefghijklmnop.supabase.co/some/path?x=1"})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	got := rec.Header().Get("Content-Security-Policy")
	want := strings.Replace(ContentSecurityPolicy, "connect-src 'self'", "connect-src 'self' https://abcdefghijklmnop.supabase.co", 1)
	assert.Equal(t, want, got)
	assert.Contains(t, got, "default-src 'none'")
	assert.Contains(t, got, "script-src 'self';")
	assert.NotContains(t, got, "unsafe-")

	local, err := ContentSecurityPolicyFor("http://127.0.0.1:54321")
	require.NoError(t, err)
	assert.Contains(t, local, "connect-src 'self' http://127.0.0.1:54321;")
	same, err := ContentSecurityPolicyFor("")
	require.NoError(t, err)
	assert.Equal(t, ContentSecurityPolicy, same)

	for _, bad := range []string{"ftp://x.example", "https://", "not a url", "https://a.example; script-src *", "https://u:p@a.example"} {
		_, err := Handler(Options{SupabaseURL: bad})
		assert.Error(t, err, bad)
	}
}
