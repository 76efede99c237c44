package api_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// authProject is Supabase Auth behind the gateway, signing with the env's
// keys, so that PostgREST and the API accept its users' tokens.
type authProject struct {
	auth *authtest.Auth
	gw   *authtest.Gateway
	srv  *httptest.Server
	down atomic.Bool
}

func newAuthProject(t *testing.T, keys *authtest.KeySet) *authProject {
	p := &authProject{auth: authtest.NewAuth(authtest.AuthOptions{Keys: keys, LegacySecret: pgtest.JWTSecret})}
	p.gw = authtest.NewGateway(authtest.GatewayOptions{Keys: keys})
	inner := p.gw.HTTP(http.StripPrefix("/auth/v1", p.auth.Handler()))
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "upstream connect error", http.StatusBadGateway)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.auth.AddUser(authtest.User{ID: ownerA, Email: "a@example.com", Password: "pw-a"})
	p.auth.AddUser(authtest.User{ID: ownerB, Email: "b@example.com", Password: "pw-b"})
	return p
}

func TestSessions_SignedOutSessionIsRefusedWithinTheCacheTime(t *testing.T) {
	const ttl = 300 * time.Millisecond
	keys := authtest.NewKeySet()
	p := newAuthProject(t, keys)
	sessions, err := api.NewSessions(api.SessionsOptions{URL: p.srv.URL, APIKey: p.gw.SecretKey(), TTL: ttl,
		HTTPClient: api.DefaultAuthClient(2 * time.Second)})
	require.NoError(t, err)
	e := newEnv(t, envOptions{keys: keys, mod: func(o *api.Options) { o.Sessions = sessions }})

	s, err := p.auth.SignIn("a@example.com", "pw-a")
	require.NoError(t, err)
	user := caller(s.AccessToken)

	// Changes are confirmed with Auth, once per cache time.
	calls := p.auth.UserCalls()
	for i := range 3 {
		r := e.do(user, http.MethodPost, "/api/alerts/preview", map[string]any{"event": "failed", "payload_template": `{"n": ` + string(rune('1'+i)) + `}`})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	}
	assert.Equal(t, calls+1, p.auth.UserCalls(), "answers are cached")
	// Reads are not confirmed.
	require.Equal(t, http.StatusOK, e.do(user, http.MethodGet, "/api/status", nil).status)
	assert.Equal(t, calls+1, p.auth.UserCalls())

	// The user signs out: within the cache time, changes are refused.
	signedOut := time.Now()
	require.NoError(t, p.auth.SignOut(s.AccessToken))
	var last response
	require.Eventually(t, func() bool {
		last = e.do(user, http.MethodPost, "/api/alerts/config", ruleBody("https://hooks.example.com/x"))
		return last.status == http.StatusUnauthorized
	}, 10*time.Second, 20*time.Millisecond)
	assert.Less(t, time.Since(signedOut), ttl+2*time.Second, "refused within about the cache time")
	assert.Equal(t, "session_ended", last.str("error", "code"))

	// The operator needs no session.
	require.Equal(t, http.StatusCreated, e.do(asOperator, http.MethodPost, "/api/alerts/config", ruleBody("https://hooks.example.com/y")).status)

	// A deleted user is refused too.
	sb, err := p.auth.SignIn("b@example.com", "pw-b")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, e.do(caller(sb.AccessToken), http.MethodPost, "/api/alerts/preview", map[string]any{"event": "failed"}).status)
	p.auth.DeleteUser(ownerB)
	require.Eventually(t, func() bool {
		return e.do(caller(sb.AccessToken), http.MethodPost, "/api/alerts/preview", map[string]any{"event": "failed"}).status == http.StatusUnauthorized
	}, 10*time.Second, 20*time.Millisecond)
}

func TestSessions_AuthUnavailableRefusesChanges(t *testing.T) {
	keys := authtest.NewKeySet()
	p := newAuthProject(t, keys)
	sessions, err := api.NewSessions(api.SessionsOptions{URL: p.srv.URL, APIKey: p.gw.SecretKey(), TTL: time.Minute})
	require.NoError(t, err)
	e := newEnv(t, envOptions{keys: keys, mod: func(o *api.Options) { o.Sessions = sessions }})
	s, err := p.auth.SignIn("a@example.com", "pw-a")
	require.NoError(t, err)

	p.down.Store(true)
	r := e.do(caller(s.AccessToken), http.MethodPost, "/api/alerts/preview", map[string]any{"event": "failed"})
	require.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.raw)
	assert.Equal(t, "auth_unavailable", r.str("error", "code"))

	// Failures are not cached: Auth back, the change goes through.
	p.down.Store(false)
	r = e.do(caller(s.AccessToken), http.MethodPost, "/api/alerts/preview", map[string]any{"event": "failed"})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)

	// A token of another user than Auth says is refused (a token of one
	// user must not ride on another's session).
	err = sessions.Confirm(t.Context(), s.AccessToken, ownerB)
	require.ErrorIs(t, err, api.ErrSessionEnded)
}
