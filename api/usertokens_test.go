package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// userClaims are the claims of a Supabase Auth access token for sub.
func userClaims(sub string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": "http://127.0.0.1/auth/v1", "sub": sub, "aud": "authenticated", "role": "authenticated",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "session_id": "6d1c54a8-0000-4000-8000-000000000001",
	}
}

// publishedKey returns the key set's published key of alg.
func publishedKey(t *testing.T, keys *authtest.KeySet, alg string) *authtest.Key {
	t.Helper()
	for _, k := range keys.Published() {
		if k.Alg == alg {
			return k
		}
	}
	t.Fatalf("no %s key published", alg)
	return nil
}

func TestUserTokens_ES256AndRS256ThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	fetches := e.jwks.fetches.get()
	require.Equal(t, 1, fetches, "the JWKS is fetched once at start")
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			tok := caller(publishedKey(t, e.keys, alg).Sign(userClaims(ownerA, time.Hour)))
			r := e.do(tok, http.MethodGet, "/api/status", nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.Equal(t, ownerA, r.str("caller", "user_id"))

			// The token goes on to PostgREST, which verifies it with the
			// same JWKS: row-level security sees owner A.
			r = e.do(tok, http.MethodPost, "/api/alerts/config", ruleBody("https://hooks.example.com/"+alg))
			require.Equal(t, http.StatusCreated, r.status, "%s", r.raw)
			r = e.do(tok, http.MethodGet, "/api/alerts/config?project_id="+projectB, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			assert.Empty(t, r.field("rules"), "owner B's project stays hidden")
		})
	}
	assert.Equal(t, fetches, e.jwks.fetches.get(), "known keys need no fetch")
}

// newVerifier verifies against keys published by a counting JWKS server.
func newVerifier(t *testing.T, keys *authtest.KeySet, secret string) (*api.UserTokens, *jwksServer) {
	t.Helper()
	j := newJWKSServer(t, keys)
	u, err := api.NewUserTokens(api.UserTokensOptions{JWKSURL: j.URL, JWTSecret: secret})
	require.NoError(t, err)
	t.Cleanup(u.Close)
	return u, j
}

func TestUserTokens_RotatedInKeyIsFetched(t *testing.T) {
	keys := authtest.NewKeySet()
	u, j := newVerifier(t, keys, "")
	require.Equal(t, 1, j.fetches.get())
	old := keys.Current()
	oldTok := old.Sign(userClaims(ownerA, time.Hour))

	// The project owner rotates in a new ES256 key: tokens signed with it
	// name a kid the cached set lacks, and one fetch finds it.
	next := authtest.NewKey("ES256")
	keys.Rotate(next)
	sub, err := u.Verify(t.Context(), next.Sign(userClaims(ownerB, time.Hour)))
	require.NoError(t, err)
	assert.Equal(t, ownerB, sub)
	assert.Equal(t, 2, j.fetches.get())

	// Tokens of the previous key stay valid while it is published; once it
	// is revoked, a fresh verifier (a restart) no longer accepts them.
	_, err = u.Verify(t.Context(), oldTok)
	require.NoError(t, err)
	require.NoError(t, keys.Revoke(old.ID))
	u2, _ := newVerifier(t, keys, "")
	_, err = u2.Verify(t.Context(), oldTok)
	require.ErrorContains(t, err, "not one of the ES256 keys in the project's JWKS")
}

func TestUserTokens_UnknownKeyDoesNotFetchPerRequest(t *testing.T) {
	keys := authtest.NewKeySet()
	u, j := newVerifier(t, keys, "")
	forger := authtest.NewKey("ES256") // never published
	for i := range 50 {
		_, err := u.Verify(t.Context(), forger.Sign(userClaims(ownerA, time.Hour)))
		require.Error(t, err, "token %d", i)
		assert.Contains(t, err.Error(), "not one of the ES256 keys in the project's JWKS")
	}
	// One fetch at start, at most one for the unknown kid, not 50.
	assert.LessOrEqual(t, j.fetches.get(), 2)

	// A forged kid also costs no fetch while the limiter is spent, even
	// with many at once.
	before := j.fetches.get()
	done := make(chan struct{})
	for range 20 {
		go func() {
			defer func() { done <- struct{}{} }()
			_, _ = u.Verify(context.Background(), forger.Sign(userClaims(ownerA, time.Hour)))
		}()
	}
	for range 20 {
		<-done
	}
	assert.Equal(t, before, j.fetches.get())
}

func TestUserTokens_Claims(t *testing.T) {
	keys := authtest.NewKeySet()
	u, _ := newVerifier(t, keys, pgtest.JWTSecret)
	es := keys.Current()
	rs := publishedKey(t, keys, "RS256")
	now := time.Now()
	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := userClaims(ownerA, time.Hour)
		mod(c)
		return c
	}
	ok := []struct {
		name  string
		token string
	}{
		{"ES256", es.Sign(userClaims(ownerA, time.Hour))},
		{"RS256", rs.Sign(userClaims(ownerA, time.Hour))},
		{"HS256 with the legacy secret", pgtest.UserToken(ownerA, time.Hour)},
		{"AudienceList", es.Sign(with(func(c jwt.MapClaims) { c["aud"] = []string{"other", "authenticated"} }))},
		{"WithinLeeway", es.Sign(with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() }))},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := u.Verify(t.Context(), tc.token)
			require.NoError(t, err)
			assert.Equal(t, ownerA, sub)
		})
	}

	// An ES256 header over an RS256 key's kid, and the reverse: the kid's
	// key must be of the token's kind.
	esWithRSKid := jwt.NewWithClaims(jwt.SigningMethodES256, userClaims(ownerA, time.Hour))
	esWithRSKid.Header["kid"] = rs.ID
	noKid := jwt.NewWithClaims(jwt.SigningMethodES256, userClaims(ownerA, time.Hour))
	bad := []struct {
		name, token, why string
	}{
		{"Expired", es.Sign(userClaims(ownerA, -time.Hour)), "expired"},
		{"NotYetValid", es.Sign(with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), "not valid yet"},
		{"IssuedInTheFuture", es.Sign(with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), "not valid yet"},
		{"NoExpiry", es.Sign(with(func(c jwt.MapClaims) { delete(c, "exp") })), "no expiry"},
		{"NoAudience", es.Sign(with(func(c jwt.MapClaims) { delete(c, "aud") })), "no expiry or no audience"},
		{"OtherAudience", es.Sign(with(func(c jwt.MapClaims) { c["aud"] = "service" })), "audience"},
		{"ServiceRole", es.Sign(with(func(c jwt.MapClaims) { c["role"] = "service_role" })), "role"},
		{"Anon", es.Sign(with(func(c jwt.MapClaims) { c["role"] = "anon" })), "role"},
		{"NoSubject", es.Sign(with(func(c jwt.MapClaims) { delete(c, "sub") })), "subject"},
		{"HS256 with another secret", signWith("another-secret-0123456789-0123456789", userClaims(ownerA, time.Hour)), "signature"},
		{"KeyOfAnotherKind", signRaw(t, esWithRSKid, es), "not one of the ES256 keys"},
		{"NoKid", signRaw(t, noKid, es), "names no key"},
		{"None", noneToken(ownerA, now), `algorithm "none" is not one the project uses`},
		{"NotAJWT", "sb_publishable_abc", "not a JWT"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := u.Verify(t.Context(), tc.token)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.why)
			assert.False(t, strings.Contains(err.Error(), tc.token), "the error does not echo the token")
		})
	}
}

func TestUserTokens_HS256OnlyWhenTheSecretIsSet(t *testing.T) {
	keys := authtest.NewKeySet()
	u, _ := newVerifier(t, keys, "")
	_, err := u.Verify(t.Context(), pgtest.UserToken(ownerA, time.Hour))
	require.ErrorContains(t, err, "api.jwt_secret is not set")
	sub, err := u.Verify(t.Context(), keys.Current().Sign(userClaims(ownerA, time.Hour)))
	require.NoError(t, err)
	assert.Equal(t, ownerA, sub)

	secretOnly, err := api.NewUserTokens(api.UserTokensOptions{JWTSecret: pgtest.JWTSecret})
	require.NoError(t, err)
	_, err = secretOnly.Verify(t.Context(), pgtest.UserToken(ownerA, time.Hour))
	require.NoError(t, err)
	_, err = secretOnly.Verify(t.Context(), keys.Current().Sign(userClaims(ownerA, time.Hour)))
	require.ErrorContains(t, err, `algorithm "ES256" is not one`)

	_, err = api.NewUserTokens(api.UserTokensOptions{})
	require.Error(t, err)
}

func TestUserTokens_AuthDownAtStart(t *testing.T) {
	keys := authtest.NewKeySet()
	var up atomic.Bool
	j := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(keys.JWKS())
	}))
	t.Cleanup(j.Close)
	u, err := api.NewUserTokens(api.UserTokensOptions{JWKSURL: j.URL, UnknownKIDInterval: time.Millisecond})
	require.NoError(t, err, "a JWKS that cannot be fetched at start does not stop the daemon")
	t.Cleanup(u.Close)
	tok := keys.Current().Sign(userClaims(ownerA, time.Hour))
	_, err = u.Verify(t.Context(), tok)
	require.Error(t, err)
	up.Store(true)
	require.Eventually(t, func() bool {
		_, err := u.Verify(t.Context(), tok)
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the next token that needs the key fetches the JWKS")
}

// signRaw signs a token whose header was set by hand with k's private key.
func signRaw(t *testing.T, tok *jwt.Token, k *authtest.Key) string {
	t.Helper()
	s, err := k.SignToken(tok)
	require.NoError(t, err)
	return s
}
