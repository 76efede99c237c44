package api_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestAuth(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	tests := []struct {
		name string
		auth string // the Authorization header; "" sends none
		code string
	}{
		{"None", "", "missing_token"},
		{"NotBearer", "Basic b3A6b3A=", "missing_token"},
		{"EmptyBearer", "Bearer ", "missing_token"},
		{"WrongOperatorToken", "Bearer " + operatorToken + "x", "invalid_token"},
		{"Expired", "Bearer " + pgtest.UserToken(ownerA, -time.Hour), "invalid_token"},
		{"WrongSecret", "Bearer " + signWith("another-secret-0123456789-0123456789", map[string]any{
			"role": "authenticated", "sub": ownerA, "exp": now.Add(time.Hour).Unix()}), "invalid_token"},
		{"AnonKey", "Bearer " + pgtest.AnonKey(), "invalid_token"},
		{"ServiceRoleKey", "Bearer " + pgtest.ServiceRoleKey(), "invalid_token"},
		{"NoExpiry", "Bearer " + pgtest.SignClaims(map[string]any{"role": "authenticated", "sub": ownerA}), "invalid_token"},
		{"NoSubject", "Bearer " + pgtest.SignClaims(map[string]any{"role": "authenticated", "exp": now.Add(time.Hour).Unix()}), "invalid_token"},
		{"NoneAlgorithm", "Bearer " + noneToken(ownerA, now), "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/api/alerts/config", nil)
			require.NoError(t, err)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			r := e.send(req)
			require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
			assert.Equal(t, tt.code, r.str("error", "code"))
			assert.NotEmpty(t, r.header.Get("WWW-Authenticate"))
		})
	}

	// Every route but the document needs a token, before anything else.
	for _, rt := range e.api.Routes() {
		path := strings.NewReplacer("{id}", ruleA, "{fingerprint}", "0123456789abcdef").Replace(rt.Path)
		r := e.do(asNobody, rt.Method, path, nil)
		if rt.Public {
			assert.Equal(t, http.StatusOK, r.status, "%s %s", rt.Method, rt.Path)
			continue
		}
		assert.Equal(t, http.StatusUnauthorized, r.status, "%s %s", rt.Method, rt.Path)
	}

	// Valid callers.
	r := e.do(asOperator, http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, true, r.field("caller", "operator"))
	r = e.do(asUser(ownerA), http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, ownerA, r.str("caller", "user_id"))
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/status", nil)
	req.Header.Set("Authorization", "bearer   "+operatorToken)
	assert.Equal(t, http.StatusOK, e.send(req).status, "the scheme is case-insensitive")
}

func TestAuth_CredentialsAreOptionalButNotBoth(t *testing.T) {
	e := newEnv(t, envOptions{mod: func(o *api.Options) { o.Users = nil }})
	r := e.do(asUser(ownerA), http.MethodGet, "/api/status", nil)
	require.Equal(t, http.StatusUnauthorized, r.status, "without a JWKS or JWT secret users cannot sign in")
	require.Equal(t, http.StatusOK, e.do(asOperator, http.MethodGet, "/api/status", nil).status)

	_, err := api.New(api.Options{Store: e.store, Keyring: e.keyring})
	require.ErrorContains(t, err, "OperatorToken, Users or JWTSecret")
	_, err = api.New(api.Options{Store: e.store, OperatorToken: operatorToken})
	require.ErrorContains(t, err, "Keyring")
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	r := e.do(asOperator, http.MethodGet, "/api/nope", nil)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Equal(t, "not_found", r.str("error", "code"))
	r = e.do(asOperator, http.MethodPut, "/api/alerts/config", nil)
	require.Equal(t, http.StatusMethodNotAllowed, r.status)
	assert.Equal(t, "GET, POST", r.header.Get("Allow"))
	assert.Equal(t, "method_not_allowed", r.str("error", "code"))
	r = e.do(asOperator, http.MethodGet, "/api/status", nil)
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	assert.Equal(t, "nosniff", r.header.Get("X-Content-Type-Options"))
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: 2048})
	big := ruleBody("https://hooks.example.com/x")
	big["name"] = strings.Repeat("n", 4096)

	// Announced by Content-Length: refused before reading.
	r := e.do(asOperator, http.MethodPost, "/api/alerts/config", big)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%s", r.raw)
	assert.Equal(t, "body_too_large", r.str("error", "code"))

	// Streamed without a length: cut off while reading.
	pr := strings.NewReader(`{"name": "` + strings.Repeat("n", 4096) + `"}`)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/alerts/preview", struct{ *strings.Reader }{pr})
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "application/json")
	r = e.send(req)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%s", r.raw)

	// Not JSON.
	req, err = http.NewRequest(http.MethodPost, e.srv.URL+"/api/alerts/preview", strings.NewReader("event=failed"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r = e.send(req)
	require.Equal(t, http.StatusUnsupportedMediaType, r.status)

	var n int
	e.queryRow(`select count(*) from public.alert_configs`, nil, &n)
	assert.Zero(t, n)
}

func TestRequireOperator(t *testing.T) {
	served := 0
	h := api.RequireOperator(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served++
		w.WriteHeader(http.StatusOK)
	}), operatorToken, "", "service-role-key")
	try := func(auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct{ name, auth, code string }{
		{"None", "", "missing_token"},
		{"EmptyBearer", "Bearer ", "missing_token"},
		{"Basic", "Basic b3A6b3A=", "missing_token"},
		{"Wrong", "Bearer " + operatorToken + "x", "invalid_token"},
		{"Prefix", "Bearer " + operatorToken[:10], "invalid_token"},
		{"EmptyTokenIsNotATokenToMatch", "Bearer  ", "missing_token"},
		{"User", "Bearer " + pgtest.UserToken(ownerA, time.Hour), "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := try(tc.auth)
			require.Equal(t, http.StatusUnauthorized, w.Code)
			assert.Contains(t, w.Body.String(), `"code":"`+tc.code+`"`)
			assert.NotEmpty(t, w.Header().Get("WWW-Authenticate"))
			assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
		})
	}
	assert.Zero(t, served, "nothing was served without the operator's token")
	assert.Equal(t, http.StatusOK, try("Bearer "+operatorToken).Code)
	assert.Equal(t, http.StatusOK, try("bearer service-role-key").Code)
	assert.Equal(t, 2, served)

	// Without any token configured nobody is let in.
	none := api.RequireOperator(http.NotFoundHandler(), "", "")
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
	req.Header.Set("Authorization", "Bearer x")
	none.ServeHTTP(w, req)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
}
