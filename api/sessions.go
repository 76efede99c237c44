package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	supabasego "github.com/supabase-community/supabase-go"
	"golang.org/x/sync/singleflight"
)

// Defaults of SessionsOptions.
const (
	// DefaultSessionTTL is how long Auth's answer about a session is
	// trusted: a signed-out or deleted user's token stops working for
	// changes within this time.
	DefaultSessionTTL = 30 * time.Second
	// DefaultSessionTimeout bounds one call to Auth.
	DefaultSessionTimeout = 5 * time.Second
	// maxSessions bounds the cache.
	maxSessions = 10000
)

// ErrSessionEnded is returned by Sessions.Confirm when Supabase Auth no
// longer knows the token's session or user: signed out, or deleted.
var ErrSessionEnded = errors.New("the session has ended (signed out, or the user was deleted)")

// SessionsOptions configures NewSessions.
type SessionsOptions struct {
	// URL is the Supabase project URL; Auth is under /auth/v1.
	URL string
	// APIKey is the daemon's API key, sent as apikey (the user's token goes
	// in Authorization).
	APIKey string
	// HTTPClient makes the calls to Auth; its Timeout bounds each. Defaults
	// to DefaultAuthClient(DefaultSessionTimeout).
	HTTPClient *http.Client
	// TTL is how long an answer is cached. Defaults to DefaultSessionTTL.
	TTL time.Duration
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

// DefaultAuthClient returns an HTTP client whose every call to Auth is
// bounded: connect, TLS handshake and response headers each within
// timeout, the whole call within timeout too. supabase-go's Auth client
// takes no context, so the client's own timeouts are what bound it.
func DefaultAuthClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
}

// Sessions confirms users' sessions with Supabase Auth (GET /auth/v1/user)
// through supabase-go's Auth client, caching each answer for TTL. A token
// can verify (signature, expiry) long after its user signed out; asking
// Auth is the only way to know, so the API asks before every change.
type Sessions struct {
	client *supabasego.Client
	http   *http.Client
	ttl    time.Duration
	now    func() time.Time

	group singleflight.Group
	mu    sync.Mutex
	cache map[[32]byte]sessionAnswer
}

type sessionAnswer struct {
	userID string // "" when the session has ended
	until  time.Time
}

// NewSessions returns a Sessions for the project.
func NewSessions(opts SessionsOptions) (*Sessions, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = DefaultAuthClient(DefaultSessionTimeout)
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c, err := supabasego.NewClient(strings.TrimRight(opts.URL, "/"), opts.APIKey, nil)
	if err != nil {
		return nil, fmt.Errorf("api: Supabase Auth client: %w", err)
	}
	return &Sessions{client: c, http: opts.HTTPClient, ttl: opts.TTL, now: opts.Now, cache: map[[32]byte]sessionAnswer{}}, nil
}

// Confirm asks Auth (or the cache) whether token's session is still live
// and belongs to userID. It returns nil, ErrSessionEnded, or another error
// when Auth could not be asked (unreachable, 5xx, a timeout): the caller
// must not take that as a yes.
func (s *Sessions) Confirm(_ context.Context, token, userID string) error {
	key := sha256.Sum256([]byte(token))
	now := s.now()
	s.mu.Lock()
	a, ok := s.cache[key]
	s.mu.Unlock()
	if !ok || !now.Before(a.until) {
		v, err, _ := s.group.Do(string(key[:]), func() (any, error) {
			id, err := s.ask(token)
			if err != nil && !errors.Is(err, ErrSessionEnded) {
				return nil, err // not cached: the next change asks again
			}
			a := sessionAnswer{userID: id, until: s.now().Add(s.ttl)}
			s.store(key, a)
			return a, nil
		})
		if err != nil {
			return err
		}
		a = v.(sessionAnswer)
	}
	if a.userID == "" || a.userID != userID {
		return ErrSessionEnded
	}
	return nil
}

// ask calls GET /auth/v1/user with the user's token.
func (s *Sessions) ask(token string) (string, error) {
	rec := &statusRecorder{base: s.http.Transport}
	if rec.base == nil {
		rec.base = http.DefaultTransport
	}
	hc := *s.http
	hc.Transport = rec
	u, err := s.client.Auth.WithClient(hc).WithToken(token).GetUser()
	switch {
	case err == nil && u != nil:
		return u.ID.String(), nil
	case rec.status == http.StatusUnauthorized || rec.status == http.StatusForbidden || rec.status == http.StatusNotFound:
		// Auth's answers for an unknown session or user (session_not_found,
		// user_not_found) and for a token it no longer accepts.
		return "", ErrSessionEnded
	case rec.status != 0:
		return "", fmt.Errorf("Supabase Auth answered %d", rec.status)
	default:
		return "", fmt.Errorf("Supabase Auth could not be reached: %w", redactTokenErr(err, token))
	}
}

// store caches an answer, evicting expired entries (and, when the cache is
// still full, an arbitrary one) to stay bounded.
func (s *Sessions) store(key [32]byte, a sessionAnswer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxSessions {
		now := s.now()
		for k, v := range s.cache {
			if !now.Before(v.until) {
				delete(s.cache, k)
			}
		}
		for k := range s.cache {
			if len(s.cache) < maxSessions {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[key] = a
}

// statusRecorder remembers the status of the response it passed on; one
// is made per call.
type statusRecorder struct {
	base   http.RoundTripper
	status int
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		r.status = resp.StatusCode
	}
	return resp, err
}

// redactTokenErr keeps the token out of an error's text.
func redactTokenErr(err error, token string) error {
	if err == nil {
		return errors.New("no answer")
	}
	return errors.New(strings.ReplaceAll(err.Error(), token, "[token]"))
}
