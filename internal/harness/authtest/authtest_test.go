package authtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
)

const userID = "0c0c0c0c-0000-4000-8000-000000000001"

// project is the Auth behind the gateway, mounted as on a project.
type project struct {
	auth *authtest.Auth
	gw   *authtest.Gateway
	srv  *httptest.Server
	// seen is the last request a service behind the gateway received.
	seen chan *http.Request
}

func newProject(t *testing.T) *project {
	p := &project{auth: authtest.NewAuth(authtest.AuthOptions{Issuer: "http://standin/auth/v1"}), seen: make(chan *http.Request, 16)}
	p.gw = authtest.NewGateway(authtest.GatewayOptions{Keys: p.auth.Keys(), RealtimeTTL: time.Minute})
	p.auth.AddUser(authtest.User{ID: userID, Email: "Ada@example.com", Password: "correct horse"})
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.seen <- r
		w.WriteHeader(http.StatusOK)
	})
	mux := http.NewServeMux()
	auth := http.StripPrefix("/auth/v1", p.auth.Handler())
	mux.Handle("/auth/v1/.well-known/jwks.json", p.gw.Open(auth))
	mux.Handle("/auth/v1/", p.gw.HTTP(auth))
	mux.Handle("/rest/v1/", p.gw.HTTP(record))
	mux.Handle("/realtime/v1/websocket", p.gw.Realtime(record))
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *project) do(t *testing.T, method, path string, header map[string]string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, p.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func TestJWKSVerifiesTheSigningKeys(t *testing.T) {
	p := newProject(t)
	kf, err := keyfunc.NewDefaultCtx(t.Context(), []string{p.srv.URL + "/auth/v1/.well-known/jwks.json"})
	require.NoError(t, err)
	published := p.auth.Keys().Published()
	require.Len(t, published, 2)
	assert.Equal(t, "ES256", published[0].Alg, "the current key is ES256, Supabase's default")
	assert.Equal(t, "RS256", published[1].Alg, "a previous RSA key is still published")
	for _, k := range published {
		tok := k.Sign(jwt.MapClaims{"sub": userID, "exp": time.Now().Add(time.Minute).Unix()})
		_, err := jwt.Parse(tok, kf.Keyfunc)
		require.NoError(t, err, k.Alg)
	}
	assert.Equal(t, int64(1), p.auth.JWKSFetches())
}

func TestPasswordSignInUserRefreshAndSignOut(t *testing.T) {
	p := newProject(t)
	pub := map[string]string{"apikey": p.gw.PublishableKey(), "Content-Type": "application/json"}
	status, body := p.do(t, http.MethodPost, "/auth/v1/token?grant_type=password", pub, `{"email":"ada@example.com","password":"wrong"}`)
	require.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_credentials", body["error_code"])

	status, body = p.do(t, http.MethodPost, "/auth/v1/token?grant_type=password", pub, `{"email":"ada@example.com","password":"correct horse"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	access, _ := body["access_token"].(string)
	refresh, _ := body["refresh_token"].(string)
	require.NotEmpty(t, access)
	require.NotEmpty(t, refresh)
	assert.Equal(t, float64(3600), body["expires_in"])
	assert.Equal(t, userID, body["user"].(map[string]any)["id"])

	claims := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(access, claims)
	require.NoError(t, err)
	assert.Equal(t, "ES256", tok.Method.Alg())
	assert.Equal(t, p.auth.Keys().Current().ID, tok.Header["kid"])
	assert.Equal(t, "authenticated", claims["aud"])
	assert.Equal(t, "authenticated", claims["role"])
	assert.Equal(t, userID, claims["sub"])
	assert.NotEmpty(t, claims["session_id"])

	withUser := map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + access}
	status, body = p.do(t, http.MethodGet, "/auth/v1/user", withUser, "")
	require.Equal(t, http.StatusOK, status, "%v", body)
	assert.Equal(t, "Ada@example.com", body["email"])

	// Refresh: a new access token; the refresh token is single use.
	status, body = p.do(t, http.MethodPost, "/auth/v1/token?grant_type=refresh_token", pub, `{"refresh_token":"`+refresh+`"}`)
	require.Equal(t, http.StatusOK, status, "%v", body)
	access2, _ := body["access_token"].(string)
	require.NotEmpty(t, access2)
	status, body = p.do(t, http.MethodPost, "/auth/v1/token?grant_type=refresh_token", pub, `{"refresh_token":"`+refresh+`"}`)
	require.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "refresh_token_not_found", body["error_code"])

	// Sign-out ends the session: its tokens no longer pass GET /user.
	status, _ = p.do(t, http.MethodPost, "/auth/v1/logout?scope=local", map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + access2}, "")
	require.Equal(t, http.StatusNoContent, status)
	status, body = p.do(t, http.MethodGet, "/auth/v1/user", withUser, "")
	require.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "session_not_found", body["error_code"])

	// A deleted user's token is refused too.
	s, err := p.auth.SignIn("ada@example.com", "correct horse")
	require.NoError(t, err)
	p.auth.DeleteUser(userID)
	status, body = p.do(t, http.MethodGet, "/auth/v1/user", map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + s.AccessToken}, "")
	require.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "user_not_found", body["error_code"])

	// Without a user token the gateway forwards the key's own JWT, which
	// names no user.
	status, body = p.do(t, http.MethodGet, "/auth/v1/user", pub, "")
	require.Equal(t, http.StatusForbidden, status, "%v", body)
	assert.Equal(t, "bad_jwt", body["error_code"])
}

func TestGatewayRulesForTheNewKeys(t *testing.T) {
	p := newProject(t)
	role := func(r *http.Request, header string) string {
		v := strings.TrimPrefix(r.Header.Get(header), "Bearer ")
		claims := jwt.MapClaims{}
		_, err := jwt.NewParser().ParseWithClaims(v, claims, func(tk *jwt.Token) (any, error) {
			k, _ := p.auth.Keys().Lookup(tk.Header["kid"].(string), tk.Method.Alg())
			return k, nil
		})
		if err != nil {
			return "not a valid JWT: " + err.Error()
		}
		return claims["role"].(string)
	}

	// A secret key in apikey: PostgREST gets a service_role JWT in both
	// headers.
	status, _ := p.do(t, http.MethodGet, "/rest/v1/x", map[string]string{"apikey": p.gw.SecretKey()}, "")
	require.Equal(t, http.StatusOK, status)
	r := <-p.seen
	assert.Equal(t, "service_role", role(r, "apikey"))
	assert.Equal(t, "service_role", role(r, "Authorization"))

	// The publishable key with the same key as Bearer (what supabase-js
	// sends without a session): anon.
	status, _ = p.do(t, http.MethodGet, "/rest/v1/x", map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + p.gw.PublishableKey()}, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "anon", role(<-p.seen, "Authorization"))

	// A user's token passes through untouched.
	s, err := p.auth.SignIn("ada@example.com", "correct horse")
	require.NoError(t, err)
	status, _ = p.do(t, http.MethodGet, "/rest/v1/x", map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + s.AccessToken}, "")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "Bearer "+s.AccessToken, (<-p.seen).Header.Get("Authorization"))

	refused := []struct {
		name    string
		header  map[string]string
		message string
	}{
		{"SecretKeyAsBearer", map[string]string{"Authorization": "Bearer " + p.gw.SecretKey()}, "Invalid authorization header"},
		{"SecretKeyAsBearerBesidePublishable", map[string]string{"apikey": p.gw.PublishableKey(), "Authorization": "Bearer " + p.gw.SecretKey()}, "Invalid authorization header"},
		{"UnknownNewKey", map[string]string{"apikey": "sb_secret_not0one0of0the0project0keys0000"}, "Invalid API key"},
		{"SecretKeyFromABrowser", map[string]string{"apikey": p.gw.SecretKey(), "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0"}, "Forbidden use of secret API key in browser"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			status, body := p.do(t, http.MethodGet, "/rest/v1/x", tc.header, "")
			require.Equal(t, http.StatusUnauthorized, status)
			assert.Equal(t, tc.message, body["message"])
		})
	}
	select {
	case r := <-p.seen:
		t.Fatalf("a refused request reached the service: %s", r.URL)
	default:
	}

	// Realtime: the socket's apikey becomes a JWT minted for the socket,
	// also in x-api-key.
	status, _ = p.do(t, http.MethodGet, "/realtime/v1/websocket?apikey="+p.gw.SecretKey()+"&vsn=2.0.0", nil, "")
	require.Equal(t, http.StatusOK, status)
	r = <-p.seen
	assert.Equal(t, "service_role", role(r, "x-api-key"))
	assert.Equal(t, r.Header.Get("x-api-key"), r.URL.Query().Get("apikey"))
	assert.Equal(t, "2.0.0", r.URL.Query().Get("vsn"))
	claims := jwt.MapClaims{}
	_, _, err = jwt.NewParser().ParseUnverified(r.Header.Get("x-api-key"), claims)
	require.NoError(t, err)
	exp, _ := claims.GetExpirationTime()
	assert.WithinDuration(t, time.Now().Add(time.Minute), exp.Time, 5*time.Second, "minted for RealtimeTTL")

	// CORS preflight for the web UI's calls to Auth.
	req, _ := http.NewRequest(http.MethodOptions, p.srv.URL+"/auth/v1/token?grant_type=password", nil)
	req.Header.Set("Origin", "https://alerts.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "apikey")
}
