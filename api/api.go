// Package api serves the daemon's HTTP API under /api/: alert rules
// (create, update, list, delete, signing-secret rotation), template
// previews and test sends, the alert log with redelivery, and the daemon's
// status. It is what the web UI and operators' scripts use; the OpenAPI
// document openapi.yaml in this directory describes every route, and a test
// keeps the two in step.
//
// Requests carry "Authorization: Bearer <token>": either the operator token
// from the configuration (full access) or a Supabase user's access token,
// verified against the project's JWKS (ES256, RS256) or its legacy JWT
// secret (HS256) and forwarded to PostgREST, so that row-level security
// decides which projects' rules and alerts the user sees. Rows a user may not see answer 404, exactly like rows that do not
// exist.
//
// Bodies are JSON, capped in size; every error is
// {"error": {"code", "message", "fields": {"<field>": "<why>"}}}.
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// DefaultMaxBodyBytes caps a request body when Options.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 1 << 20

// Prefix is the path every route of the API starts with.
const Prefix = "/api/"

// Tester makes one signed test delivery; *sender.Sender satisfies it.
type Tester interface {
	SendOnce(ctx context.Context, a sender.Alert) sender.OneShot
}

// Options configures an API. Store and Keyring are required.
type Options struct {
	// Store reads and writes the alert tables. Its key must be the
	// service-role key: operator calls use it as is, and user calls forward
	// the user's token per request (supabase.WithUserToken).
	Store *supabase.Store
	// Keyring seals webhook URLs, signing secrets and custom header values
	// before they are stored, and opens them to compute fingerprints, test
	// sends and revealed URLs. It must be able to seal.
	Keyring *seal.Keyring
	// Opener opens stored rules as the daemon's rule loader does, so the
	// API reports exactly the problems that make the daemon refuse a rule.
	// Nil: one over Keyring that accepts values stored in clear.
	Opener *rulerow.Opener
	// Tester sends test alerts through the sender's signing and SSRF guard.
	// Nil answers POST /api/alerts/test with 503.
	Tester Tester
	// OperatorToken grants full access. Empty: no operator access.
	OperatorToken string
	// Users verifies users' Supabase access tokens (NewUserTokens: the
	// project's JWKS and, optionally, its legacy JWT secret).
	Users *UserTokens
	// Sessions, if set, confirms with Supabase Auth that a user's session
	// is still live before every call that changes something (any method
	// but GET and HEAD), so that a signed-out or deleted user's token stops
	// working within its cache time (NewSessions). Nil: tokens are trusted
	// until they expire.
	Sessions SessionConfirmer
	// JWTSecret verifies users' HS256 access tokens when Users is nil (a
	// verifier without a JWKS is made from it). Empty with Users nil: no
	// user access.
	JWTSecret string
	// SupabaseURL and PublishableKey, when both are set, are served to
	// browsers by GET /api/auth/config, so the web UI can sign users in
	// with Supabase Auth (email and password). Both are public by design:
	// PublishableKey must be the project's publishable key (sb_publishable_…
	// or the legacy anon key), never a secret key.
	SupabaseURL    string
	PublishableKey string
	// MaxBodyBytes caps a request body; larger ones are answered 413.
	// Defaults to DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AllowInsecureHTTP accepts http:// webhook URLs, as
	// sender.allow_insecure_http does; otherwise they are field errors.
	AllowInsecureHTTP bool
	// Wake is called after a redelivery so the sender looks for due alerts
	// at once. Optional.
	Wake func()
	// Status supplies the numbers of GET /api/status.
	Status Status
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Logger receives request failures; nil discards them.
	Logger *zap.Logger
}

// SessionConfirmer confirms that a user's session is still live; *Sessions
// is one. Confirm returns nil, ErrSessionEnded, or an error saying Auth
// could not be asked.
type SessionConfirmer interface {
	Confirm(ctx context.Context, token, userID string) error
}

// API is the HTTP API. Create it with New and serve Handler. It is safe for
// concurrent use and starts no goroutines.
type API struct {
	opts   Options
	log    *zap.Logger
	checks *checkCache // stored rules' problems, by version
	count  counters
	// keeper opens a stored rule's values to keep them on an update: it
	// takes values stored in clear too (they are sealed as they are kept),
	// which the daemon's opener refuses without secrets.allow_plaintext.
	keeper *rulerow.Opener
}

// New validates opts and returns an API.
func New(opts Options) (*API, error) {
	switch {
	case strings.HasPrefix(opts.PublishableKey, "sb_secret_"):
		return nil, errors.New("api: PublishableKey is a secret key (sb_secret_…); browsers get the publishable key only")
	case opts.Store == nil:
		return nil, errors.New("api: Store is required")
	case !opts.Keyring.CanSeal():
		return nil, errors.New("api: Keyring must hold an encryption key (secrets.encryption_key)")
	case opts.OperatorToken == "" && opts.JWTSecret == "" && opts.Users == nil:
		return nil, errors.New("api: set OperatorToken, Users or JWTSecret; without any nobody can call the API")
	}
	if opts.Opener == nil {
		opts.Opener = rulerow.NewOpener(opts.Keyring, true, nil)
	}
	if opts.Users == nil && opts.JWTSecret != "" {
		u, err := NewUserTokens(UserTokensOptions{JWTSecret: opts.JWTSecret, Now: opts.Now})
		if err != nil {
			return nil, err
		}
		opts.Users = u
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Status.SuccessWindow <= 0 {
		opts.Status.SuccessWindow = DefaultSuccessWindow
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &API{opts: opts, log: log, checks: newCheckCache(maxCheckedVersions),
		keeper: rulerow.NewOpener(opts.Keyring, true, nil)}, nil
}

// Route is one method and path of the API, the path in OpenAPI form
// ("/api/alerts/config/{id}").
type Route struct {
	Method string
	Path   string
	// Public routes need no Authorization.
	Public bool
}

// handlerFunc serves one authenticated request. It returns an error to
// answer with (see writeError) instead of writing one itself.
type handlerFunc func(w http.ResponseWriter, r *http.Request, p *principal) error

type route struct {
	Route
	h handlerFunc
}

func (a *API) routes() []route {
	return []route{
		{Route{Method: http.MethodGet, Path: "/api/openapi.yaml", Public: true}, a.serveOpenAPI},
		{Route{Method: http.MethodGet, Path: "/api/auth/config", Public: true}, a.getAuthConfig},
		{Route{Method: http.MethodGet, Path: "/api/status"}, a.getStatus},
		{Route{Method: http.MethodGet, Path: "/api/alerts/config"}, a.listRules},
		{Route{Method: http.MethodPost, Path: "/api/alerts/config"}, a.saveRule},
		{Route{Method: http.MethodGet, Path: "/api/alerts/config/{id}"}, a.workflowRules},
		{Route{Method: http.MethodDelete, Path: "/api/alerts/config/{id}"}, a.deleteRule},
		{Route{Method: http.MethodPost, Path: "/api/alerts/config/{id}/secrets"}, a.addSecret},
		{Route{Method: http.MethodDelete, Path: "/api/alerts/config/{id}/secrets/{fingerprint}"}, a.retireSecret},
		{Route{Method: http.MethodPost, Path: "/api/alerts/preview"}, a.preview},
		{Route{Method: http.MethodPost, Path: "/api/alerts/test"}, a.testSend},
		{Route{Method: http.MethodGet, Path: "/api/alerts/logs"}, a.listLogs},
		{Route{Method: http.MethodGet, Path: "/api/alerts/logs/{id}"}, a.getLog},
		{Route{Method: http.MethodPost, Path: "/api/alerts/logs/{id}/redeliver"}, a.redeliver},
		{Route{Method: http.MethodGet, Path: "/api/alerts/series"}, a.getSeries},
		{Route{Method: http.MethodGet, Path: "/api/projects"}, a.listProjects},
	}
}

// Routes lists every route the Handler serves.
func (a *API) Routes() []Route {
	rs := a.routes()
	out := make([]Route, len(rs))
	for i, r := range rs {
		out[i] = r.Route
	}
	return out
}

// Handler serves the API. Mount it at Prefix ("/api/"); it answers
// unknown paths under it with a JSON 404 and unknown methods with a JSON 405.
func (a *API) Handler() http.Handler {
	byPath := map[string]map[string]route{}
	var paths []string
	for _, rt := range a.routes() {
		if byPath[rt.Path] == nil {
			byPath[rt.Path] = map[string]route{}
			paths = append(paths, rt.Path)
		}
		byPath[rt.Path][rt.Method] = rt
	}
	mux := http.NewServeMux()
	for _, p := range paths {
		methods := byPath[p]
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			rt, ok := methods[r.Method]
			if !ok {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				a.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
					Message: fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, strings.Join(allow, ", "))})
				return
			}
			a.serve(w, r, rt)
		})
	}
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such API route: " + r.URL.Path})
	})
	return mux
}

// readTimeout bounds reading a request (headers and body).
const readTimeout = 30 * time.Second

// serve runs one route: headers, authentication, body cap, the handler.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	start := a.opts.Now()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("API handler panicked", zap.String("method", r.Method), zap.String("route", rt.Path),
				zap.Any("panic", v), zap.Stack("stack"))
			a.writeError(w, r, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"})
		}
	}()
	_ = http.NewResponseController(w).SetReadDeadline(start.Add(readTimeout))
	p := &principal{}
	if !rt.Public {
		var err error
		if p, err = a.authenticate(r); err != nil {
			a.writeError(w, r, err)
			return
		}
		if err := a.confirmSession(r, p); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	if r.ContentLength > a.opts.MaxBodyBytes {
		a.writeError(w, r, errTooLarge(a.opts.MaxBodyBytes))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
	if err := rt.h(w, r, p); err != nil {
		a.writeError(w, r, err)
	}
	a.log.Debug("API request", zap.String("method", r.Method), zap.String("route", rt.Path),
		zap.Bool("operator", p.operator), zap.Duration("duration", a.opts.Now().Sub(start)))
}
