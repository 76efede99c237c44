package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// jwtLeeway is the clock skew allowed for exp, nbf and iat, as PostgREST allows.
const jwtLeeway = 30 * time.Second

// userRole is the role claim of a signed-in Supabase user.
const userRole = "authenticated"

// principal is who is calling.
type principal struct {
	// operator callers have full access through the store's own key.
	operator bool
	// userID is a user's "sub" claim; token is their access token, which
	// every store call forwards so that row-level security applies.
	userID string
	token  string
}

// ctx returns the context store calls of this caller run under: a user's
// calls carry their token, an operator's the store's own key.
func (p *principal) ctx(ctx context.Context) context.Context {
	if p.operator {
		return ctx
	}
	return supabase.WithUserToken(ctx, p.token)
}

// authenticate identifies the caller from "Authorization: Bearer <token>":
// the operator token (compared in constant time), else a user's Supabase
// access token, checked by Options.Users (signature against the project's
// JWKS or JWT secret, unexpired, audience and role "authenticated", a
// subject).
func (a *API) authenticate(r *http.Request) (*principal, error) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return nil, unauthorized("missing_token", "send Authorization: Bearer <operator token or Supabase access token>")
	}
	if a.opts.OperatorToken != "" && equalSecret(token, a.opts.OperatorToken) {
		return &principal{operator: true}, nil
	}
	if a.opts.Users == nil || strings.Count(token, ".") != 2 {
		return nil, unauthorized("invalid_token", "the token is neither the operator token nor a Supabase access token")
	}
	sub, err := a.opts.Users.Verify(r.Context(), token)
	if err != nil {
		return nil, unauthorized("invalid_token", "the access token is not valid: "+err.Error())
	}
	return &principal{userID: sub, token: token}, nil
}

// confirmSession asks Options.Sessions whether a user's session is still
// live before a call that changes something; reads, operators and APIs
// without Sessions pass.
func (a *API) confirmSession(r *http.Request, p *principal) error {
	if p.operator || a.opts.Sessions == nil || r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	err := a.opts.Sessions.Confirm(r.Context(), p.token, p.userID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrSessionEnded):
		return unauthorized("session_ended", "your session has ended (signed out, or the user was deleted): sign in again")
	default:
		a.log.Warn("cannot confirm a user's session with Supabase Auth", zap.Error(err))
		return &Error{Status: http.StatusServiceUnavailable, Code: "auth_unavailable",
			Message: "Supabase Auth could not confirm your session; try again shortly"}
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// equalSecret compares in constant time, also in the lengths.
func equalSecret(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func unauthorized(code, msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Message: msg}
}

// RequireOperator serves h only to requests that carry "Authorization:
// Bearer <token>" with one of tokens, compared in constant time; empty
// tokens are ignored. Others are answered 401 like the API's own
// operator-only answers. It guards daemon-wide endpoints outside the API,
// such as Go's profiling endpoints, which show the daemon's memory (and so
// every tenant's rules) to whoever can fetch them.
func RequireOperator(h http.Handler, tokens ...string) http.Handler {
	var valid []string
	for _, t := range tokens {
		if t != "" {
			valid = append(valid, t)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if ok {
			// Compare with every token, so the time taken does not tell
			// which one matched.
			match := false
			for _, t := range valid {
				if equalSecret(token, t) {
					match = true
				}
			}
			if match {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("WWW-Authenticate", `Bearer realm="meshhook-alerts"`)
		e := errorDetail{Code: "missing_token", Message: "this endpoint is for the operator: send Authorization: Bearer <operator token>"}
		if ok {
			e = errorDetail{Code: "invalid_token", Message: "this endpoint is for the operator, and the token is not the operator's"}
		}
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: e})
	})
}
