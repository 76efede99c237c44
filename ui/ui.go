// Package ui serves the daemon's web UI: a few static pages, one style
// sheet and one small script module, embedded in the binary. The pages call
// the daemon's HTTP API (/api/) from the browser with the token the user
// signs in with; they have no other way to the data.
//
// Every response carries a strict Content-Security-Policy (scripts and
// styles only from the UI's own files, no inline script, requests only to
// the same origin and, when users sign in with Supabase Auth, to the
// Supabase project's origin) and is revalidated by the browser before
// reuse.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
)

//go:embed static
var static embed.FS

// DefaultPath is where the UI is served unless Options.Path says otherwise.
const DefaultPath = "/ui/"

// ContentSecurityPolicy is sent with every response of the UI when users
// do not sign in through Supabase Auth (Options.SupabaseURL empty).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// ContentSecurityPolicyFor is ContentSecurityPolicy with the Supabase
// project's origin (scheme, host and port of supabaseURL) added to
// connect-src and nothing else: the UI's script may then call Supabase
// Auth there, while scripts, styles and everything else stay the UI's own.
// An empty supabaseURL gives ContentSecurityPolicy.
func ContentSecurityPolicyFor(supabaseURL string) (string, error) {
	if supabaseURL == "" {
		return ContentSecurityPolicy, nil
	}
	u, err := url.Parse(supabaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(u.Host, " ;,'\"") {
		return "", fmt.Errorf("ui: SupabaseURL must be an http(s) URL with a host, got %q", supabaseURL)
	}
	origin := u.Scheme + "://" + u.Host
	return strings.Replace(ContentSecurityPolicy, "connect-src 'self'", "connect-src 'self' "+origin, 1), nil
}

// Options configures Handler.
type Options struct {
	// Path is the base path the UI is mounted at: absolute, ending in "/".
	// Defaults to DefaultPath.
	Path string
	// SupabaseURL is the Supabase project URL the UI signs users in at
	// (Supabase Auth, with the publishable key GET /api/auth/config
	// gives). Its origin is let into the Content-Security-Policy's
	// connect-src. Empty: the UI talks to its own origin only.
	SupabaseURL string
}

// page is one of the UI's pages: its main content (a file, an html/template
// that may list the alert events), its title and its data-page name (which
// the script keys on). Every page shares the document around the content,
// layout.html. Pages are rendered once, when the handler is built.
type page struct{ file, title, id string }

// pages maps the UI's page names (the path below the base) to their pages.
var pages = map[string]page{
	"":           {"index.html", "Sign in", "signin"},
	"rules":      {"rules.html", "Rules", "rules"},
	"rule":       {"rule.html", "Rule", "rule"},
	"deliveries": {"deliveries.html", "Deliveries", "deliveries"},
	"health":     {"health.html", "Health", "health"},
}

// layout is the document every page's content is set in.
var layout = template.Must(template.ParseFS(static, "static/layout.html"))

// asset is one file served by the UI.
type asset struct {
	name        string
	contentType string
	body        []byte
	etag        string
}

// handler serves the UI's files under a base path.
type handler struct {
	base   string
	csp    string
	assets map[string]*asset // by path below base
	mod    time.Time
}

// Handler returns the UI's handler for requests under opts.Path; mount it at
// that path (an http.ServeMux pattern such as "/ui/"). Requests for the base
// path without its trailing slash are redirected to it.
func Handler(opts Options) (http.Handler, error) {
	base := opts.Path
	if base == "" {
		base = DefaultPath
	}
	if !strings.HasPrefix(base, "/") || !strings.HasSuffix(base, "/") || path.Clean(base)+"/" != base && base != "/" {
		return nil, fmt.Errorf("ui: Path must be a clean absolute path ending in \"/\", got %q", base)
	}
	csp, err := ContentSecurityPolicyFor(opts.SupabaseURL)
	if err != nil {
		return nil, err
	}
	h := &handler{base: base, csp: csp, assets: map[string]*asset{}}
	for name, pg := range pages {
		a, err := loadPage(pg)
		if err != nil {
			return nil, err
		}
		h.assets[name] = a
	}
	entries, err := fs.ReadDir(static, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: reading embedded files: %w", err)
	}
	for _, e := range entries {
		switch path.Ext(e.Name()) {
		case ".css", ".js", ".svg":
			a, err := load(e.Name())
			if err != nil {
				return nil, err
			}
			h.assets[e.Name()] = a
		}
	}
	return h, nil
}

// load reads one embedded file.
func load(name string) (*asset, error) {
	body, err := static.ReadFile("static/" + name)
	if err != nil {
		return nil, fmt.Errorf("ui: embedded file %s: %w", name, err)
	}
	return newAsset(name, body)
}

// loadPage sets a page's embedded content in the layout.
func loadPage(pg page) (*asset, error) {
	main, err := static.ReadFile("static/" + pg.file)
	if err != nil {
		return nil, fmt.Errorf("ui: embedded file %s: %w", pg.file, err)
	}
	t, err := template.Must(layout.Clone()).New("main").Parse(string(main))
	if err != nil {
		return nil, fmt.Errorf("ui: page %s: %w", pg.file, err)
	}
	events := make([]string, len(alerts.AllEvents))
	for i, e := range alerts.AllEvents {
		events[i] = string(e)
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout.html", map[string]any{"Title": pg.title, "Page": pg.id, "Events": events}); err != nil {
		return nil, fmt.Errorf("ui: page %s: %w", pg.file, err)
	}
	return newAsset(pg.file, b.Bytes())
}

func newAsset(name string, body []byte) (*asset, error) {
	ct, err := contentType(name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	return &asset{name: name, contentType: ct, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}

// contentType is the Content-Type of an embedded file, by its extension.
func contentType(name string) (string, error) {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8", nil
	case ".css":
		return "text/css; charset=utf-8", nil
	case ".js":
		return "text/javascript; charset=utf-8", nil
	case ".svg":
		return "image/svg+xml", nil
	}
	return "", errors.New("ui: no content type for " + name)
}

// ServeHTTP serves one of the UI's files, with its security and cache
// headers; anything else under the base path is a 404.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	p := r.URL.Path
	if p+"/" == h.base {
		http.Redirect(w, r, h.base, http.StatusMovedPermanently)
		return
	}
	rel, ok := strings.CutPrefix(p, h.base)
	a := h.assets[rel]
	if !ok || a == nil {
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		hd.Set("Cache-Control", "no-store")
		http.Error(w, r.Method+" is not allowed here; allowed: GET, HEAD", http.StatusMethodNotAllowed)
		return
	}
	// The files change only with the binary: browsers may keep them but
	// must revalidate, which the ETag answers with 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, h.mod, bytes.NewReader(a.body))
}
