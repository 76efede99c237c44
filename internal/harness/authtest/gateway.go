package authtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Well-known new-style API keys of the stand-in. Like pgtest.JWTSecret they
// are test values, never a project's keys.
const (
	DefaultPublishableKey = "sb_publishable_standin0publishable0key0000"
	DefaultSecretKey      = "sb_secret_standin0secret0key000000000000"
)

// Lifetimes of the JWTs the gateway mints for the new keys.
const (
	// DefaultMintTTL is the lifetime of the JWT minted for one HTTP request.
	DefaultMintTTL = 5 * time.Minute
	// DefaultRealtimeTTL is the lifetime of the JWT minted for a Realtime
	// socket: Supabase documents that Realtime connections made with a
	// new key alone last at most 24 hours.
	DefaultRealtimeTTL = 24 * time.Hour
)

// GatewayOptions configures a Gateway.
type GatewayOptions struct {
	// Keys signs the JWTs minted for the new keys. Required.
	Keys *KeySet
	// PublishableKey and SecretKey are the project's new API keys. Default
	// DefaultPublishableKey and DefaultSecretKey.
	PublishableKey, SecretKey string
	// MintTTL and RealtimeTTL are the minted JWTs' lifetimes for HTTP
	// requests and for Realtime sockets. Default DefaultMintTTL and
	// DefaultRealtimeTTL.
	MintTTL, RealtimeTTL time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// Gateway is the API gateway in front of the stand-in's services. For the
// new API keys it does what Supabase documents its hosted gateway doing
// (guides/api/api-keys: "How are publishable and secret keys implemented"):
// it checks the apikey header (or, for a WebSocket, the apikey query
// parameter) against the project's publishable and secret keys and
// forwards a short-lived JWT minted for the key's role (anon or
// service_role) instead, in apikey and, when the request carries no user
// token, in Authorization (x-api-key for Realtime sockets). It refuses:
//
//   - an sb_ key that is not one of the project's (401 "Invalid API key");
//   - a secret key from a browser, recognised by its User-Agent (401);
//   - "Authorization: Bearer sb_…" unless it equals the apikey header
//     (401): new keys are not JWTs and go in apikey only.
//
// Legacy JWT keys (anon, service_role) pass through unchanged, with
// Authorization set from apikey when absent, as the self-hosted Kong
// configuration does; the services behind verify them.
type Gateway struct {
	opts GatewayOptions
}

// NewGateway returns a Gateway.
func NewGateway(opts GatewayOptions) *Gateway {
	if opts.PublishableKey == "" {
		opts.PublishableKey = DefaultPublishableKey
	}
	if opts.SecretKey == "" {
		opts.SecretKey = DefaultSecretKey
	}
	if opts.MintTTL <= 0 {
		opts.MintTTL = DefaultMintTTL
	}
	if opts.RealtimeTTL <= 0 {
		opts.RealtimeTTL = DefaultRealtimeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Gateway{opts: opts}
}

// PublishableKey and SecretKey return the project's new API keys.
func (g *Gateway) PublishableKey() string { return g.opts.PublishableKey }
func (g *Gateway) SecretKey() string      { return g.opts.SecretKey }

// role returns the role a new key stands for, or "" when key is not one.
func (g *Gateway) role(key string) string {
	switch key {
	case g.opts.SecretKey:
		return "service_role"
	case g.opts.PublishableKey:
		return "anon"
	}
	return ""
}

// mint signs the short-lived JWT that stands for a new key downstream.
func (g *Gateway) mint(role string, ttl time.Duration) string {
	now := g.opts.Now()
	return g.opts.Keys.Current().Sign(jwt.MapClaims{
		"iss": "supabase", "role": role, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
}

// isBrowser is the hosted gateway's test for a browser: secret keys are
// refused from them.
func isBrowser(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("User-Agent"), "Mozilla/")
}

// HTTP guards an HTTP service (REST, Auth): see Gateway.
func (g *Gateway) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cors(w, r) {
			return
		}
		key := r.Header.Get("apikey")
		fromQuery := false
		if key == "" {
			key, fromQuery = r.URL.Query().Get("apikey"), true
		}
		authz := r.Header.Get("Authorization")
		bearerSB := strings.HasPrefix(authz, "Bearer sb_")
		if !strings.HasPrefix(key, "sb_") {
			if bearerSB {
				gatewayRefusal(w, "Invalid authorization header", "New API keys (sb_...) go in the apikey header only; Authorization: Bearer takes a JWT.")
				return
			}
			if key != "" && authz == "" {
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+key)
			}
			next.ServeHTTP(w, r)
			return
		}
		role := g.role(key)
		switch {
		case g.refused(w, r, role):
			return
		case bearerSB && authz != "Bearer "+key:
			gatewayRefusal(w, "Invalid authorization header", "New API keys (sb_...) go in the apikey header only; Authorization: Bearer takes a JWT.")
			return
		}
		minted := g.mint(role, g.opts.MintTTL)
		r = r.Clone(r.Context())
		r.Header.Set("apikey", minted)
		if fromQuery {
			q := r.URL.Query()
			q.Set("apikey", minted)
			r.URL.RawQuery = q.Encode()
		}
		if authz == "" || bearerSB {
			r.Header.Set("Authorization", "Bearer "+minted)
		}
		next.ServeHTTP(w, r)
	})
}

// refused answers the gateway's refusal of a new key that names no role
// (unknown) or a secret key sent from a browser, and reports whether it
// did.
func (g *Gateway) refused(w http.ResponseWriter, r *http.Request, role string) bool {
	switch {
	case role == "":
		gatewayRefusal(w, "Invalid API key", "Double check your Supabase `anon` or `service_role` API key.")
		return true
	case role == "service_role" && isBrowser(r):
		gatewayRefusal(w, "Forbidden use of secret API key in browser", "Secret API keys can only be used in a protected environment and should never be used in a browser.")
		return true
	}
	return false
}

// Realtime guards the Realtime socket: a new key in the apikey query
// parameter is replaced by a JWT minted for RealtimeTTL, also sent as
// x-api-key (which Realtime reads first); other keys pass through for
// Realtime to verify.
func (g *Gateway) Realtime(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		key := q.Get("apikey")
		if !strings.HasPrefix(key, "sb_") {
			next.ServeHTTP(w, r)
			return
		}
		role := g.role(key)
		if g.refused(w, r, role) {
			return
		}
		minted := g.mint(role, g.opts.RealtimeTTL)
		r = r.Clone(r.Context())
		q.Set("apikey", minted)
		r.URL.RawQuery = q.Encode()
		r.Header.Set("x-api-key", minted)
		next.ServeHTTP(w, r)
	})
}

// Open serves routes that need no key (the JWKS), with CORS.
func (g *Gateway) Open(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cors(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors answers a preflight and adds the CORS headers the gateway's cors
// plugin adds (any origin); it reports whether the request was answered.
func cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Range, X-Supabase-Api-Version")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "apikey, authorization, content-type, x-client-info, x-supabase-api-version, accept-profile, content-profile, prefer, range")
	h.Set("Access-Control-Max-Age", "3600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// gatewayRefusal is the gateway's 401: {"message","hint"}.
func gatewayRefusal(w http.ResponseWriter, message, hint string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message, "hint": hint})
}
