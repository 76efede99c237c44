package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/api"
	"github.com/meshhook/meshhook-alerts/internal/harness/authtest"
	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
	"github.com/meshhook/meshhook-alerts/supabase/supabasetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Fixture identities. The project, workflow, rule and alert ids are the
// ones openapi.yaml's examples use.
const (
	operatorToken = "operator-token-0123456789abcdef"
	ownerA        = "a1a1a1a1-0000-4000-8000-000000000001"
	ownerB        = "a1a1a1a1-0000-4000-8000-0000000000b1"
	projectA      = "b2b2b2b2-0000-4000-8000-000000000002"
	projectB      = "b2b2b2b2-0000-4000-8000-0000000000b2"
	workflowA1    = "c3c3c3c3-0000-4000-8000-000000000001"
	workflowA3    = "c3c3c3c3-0000-4000-8000-000000000003" // billing v3
	workflowB     = "c3c3c3c3-0000-4000-8000-0000000000b3"
	ruleA         = "d4d4d4d4-0000-4000-8000-000000000004"
	alertA        = "e5e5e5e5-0000-4000-8000-000000000005"
	runA          = "7f7f7f7f-0000-4000-8000-000000000007"
)

// env is an API over a real database behind the PostgREST stand-in.
type env struct {
	t       testing.TB
	db      *pgtest.DB
	store   *supabase.Store
	keyring *seal.Keyring
	api     *api.API
	srv     *httptest.Server
	doc     *doc
	wakes   *counter
	// cache is the daemon's rule cache as GET /api/status sees it.
	cache *ruleCache
	// rest is the PostgREST stand-in, for injecting faults.
	rest *supabasetest.REST
	// keys are the project's asymmetric signing keys, published at
	// jwks.URL; PostgREST and the API verify users' tokens with them.
	keys *authtest.KeySet
	jwks *jwksServer
}

// jwksServer publishes a key set as Supabase Auth does, counting fetches.
type jwksServer struct {
	*httptest.Server
	fetches counter
}

func newJWKSServer(t testing.TB, keys *authtest.KeySet) *jwksServer {
	j := &jwksServer{}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.inc()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(keys.JWKS())
	}))
	t.Cleanup(j.Close)
	return j
}

// ruleCache stands in for the daemon's rule cache: which rules it holds and
// which it refused, by id.
type ruleCache struct {
	mu       sync.Mutex
	loaded   map[string]bool
	rejected map[string]bool
}

func (c *ruleCache) set(id string, loaded bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded[id], c.rejected[id] = loaded, !loaded
}

func (c *ruleCache) of(ids []string) api.RulesStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	var st api.RulesStatus
	for _, id := range ids {
		switch {
		case c.loaded[id]:
			st.Loaded++
		case c.rejected[id]:
			st.Rejected++
		}
	}
	return st
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// noStore is a sender store that is never used: the tests only call SendOnce.
type noStore struct{}

func (noStore) LeaseDue(context.Context, time.Time, time.Time, int) ([]sender.Alert, error) {
	return nil, nil
}
func (noStore) Report(context.Context, []sender.Report) (map[string]bool, error) { return nil, nil }
func (noStore) DisableConfig(context.Context, string, string) error              { return nil }

// noDNS answers every lookup with "no such host", keeping tests off the network.
type noDNS struct{}

func (noDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, errors.New("lookup " + host + ": no such host (test resolver)")
}

type envOptions struct {
	maxBody int64
	mod     func(*api.Options)
	// keys are the project's signing keys; nil makes new ones.
	keys *authtest.KeySet
}

func newEnv(t testing.TB, eo ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(eo) > 0 {
		o = eo[0]
	}
	db := pgtest.Shared(t).NewDatabase(t)
	keys := o.keys
	if keys == nil {
		keys = authtest.NewKeySet()
	}
	jwks := newJWKSServer(t, keys)
	rest := supabasetest.NewREST(db.Pool, supabasetest.RESTOptions{JWTSecret: pgtest.JWTSecret, JWKS: keys.Lookup})
	mux := http.NewServeMux()
	mux.Handle("/rest/v1/", http.StripPrefix("/rest/v1", rest))
	restSrv := httptest.NewServer(mux)
	t.Cleanup(restSrv.Close)
	t.Cleanup(rest.ReleaseStalled)

	store, err := supabase.New(supabase.Options{URL: restSrv.URL, ServiceKey: pgtest.ServiceRoleKey(),
		Timeout: 20 * time.Second, RetryInitialInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(store.Close)

	key := make([]byte, seal.KeySize)
	_, _ = rand.Read(key)
	kr, err := seal.NewKeyring(key)
	require.NoError(t, err)

	snd, err := sender.New(sender.Options{
		AllowInsecureHTTP: true, AllowedNetworks: []string{"127.0.0.1"}, ResponseExcerptBytes: 1024,
		RequestTimeout: 5 * time.Second, Resolver: noDNS{},
	}, noStore{}, nil)
	require.NoError(t, err)

	users, err := api.NewUserTokens(api.UserTokensOptions{JWKSURL: jwks.URL, JWTSecret: pgtest.JWTSecret})
	require.NoError(t, err)
	t.Cleanup(users.Close)
	e := &env{t: t, db: db, store: store, keyring: kr, doc: loadDoc(t), wakes: &counter{}, keys: keys, jwks: jwks, rest: rest,
		cache: &ruleCache{loaded: map[string]bool{}, rejected: map[string]bool{}}}
	opts := api.Options{
		Store: store, Keyring: kr, Tester: snd, OperatorToken: operatorToken, Users: users,
		MaxBodyBytes: o.maxBody, AllowInsecureHTTP: true, Wake: e.wakes.inc,
		Status: api.Status{
			Realtime: func() api.RealtimeStatus {
				return api.RealtimeStatus{Subscribed: true, Channels: []api.ChannelStatus{{Name: "runs", State: "subscribed"}},
					LastEventAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			},
			Rules:   func() api.RulesStatus { return api.RulesStatus{Loaded: 2, Rejected: 1} },
			RulesOf: e.cache.of,
		},
	}
	if o.mod != nil {
		o.mod(&opts)
	}
	e.api, err = api.New(opts)
	require.NoError(t, err)
	apiMux := http.NewServeMux()
	apiMux.Handle(api.Prefix, e.api.Handler())
	e.srv = httptest.NewServer(apiMux)
	t.Cleanup(e.srv.Close)
	e.seed()
	return e
}

// seed creates two owners' projects and workflows (owner A: billing v1 and
// v3; owner B: reports).
func (e *env) seed() {
	e.exec(`insert into public.projects (id, owner, name) values ($1, $2, 'Project A'), ($3, $4, 'Project B')`,
		projectA, ownerA, projectB, ownerB)
	e.exec(`insert into public.workflow_definitions (id, project_id, slug, version, definition, name) values
		($1, $2, 'billing', 1, '{}', 'Billing'), ($3, $2, 'billing', 3, '{}', 'Billing'),
		($4, $5, 'reports', 1, '{}', 'Reports')`, workflowA1, projectA, workflowA3, workflowB, projectB)
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	_, err := e.db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(e.t, err)
}

func (e *env) queryRow(sql string, args []any, dst ...any) {
	e.t.Helper()
	require.NoError(e.t, e.db.Pool.QueryRow(context.Background(), sql, args...).Scan(dst...))
}

// caller is who sends a request.
type caller string

const (
	asOperator caller = "operator"
	asNobody   caller = ""
)

func asUser(sub string) caller { return caller(pgtest.UserToken(sub, time.Hour)) }

func (c caller) token() string {
	if c == asOperator {
		return operatorToken
	}
	return string(c)
}

// response is a decoded API answer.
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// field returns a nested value of the JSON body by keys ("rule", "id").
func (r response) field(keys ...string) any {
	var cur any = r.body
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (r response) str(keys ...string) string {
	s, _ := r.field(keys...).(string)
	return s
}

// fields returns the error's field map.
func (r response) fields() map[string]any {
	m, _ := r.field("error", "fields").(map[string]any)
	return m
}

// do sends a request and checks the answer against openapi.yaml.
func (e *env) do(c caller, method, path string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c != asNobody {
		req.Header.Set("Authorization", "Bearer "+c.token())
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(e.t, json.Unmarshal(raw, &r.body), "body: %s", raw)
	}
	e.doc.checkResponse(e.t, req.Method, req.URL.Path, resp.StatusCode, resp.Header, raw)
	return r
}

// ruleBody is a valid new rule of project A for the billing workflow.
func ruleBody(url string) map[string]any {
	return map[string]any{
		"project_id": projectA, "workflow_slug": "billing", "name": "Page on billing failures",
		"events": []string{"failed", "delayed"}, "delay_threshold_seconds": 900, "webhook_url": url,
		"custom_headers": map[string]any{"X-Team": "payments", "Authorization": "Bearer hook-token-123"},
	}
}

// createRule creates a rule as c and returns its id and generated secret.
func (e *env) createRule(c caller, body map[string]any) (id, secret string) {
	e.t.Helper()
	r := e.do(c, http.MethodPost, "/api/alerts/config", body)
	require.Equal(e.t, http.StatusCreated, r.status, "%s", r.raw)
	return r.str("rule", "id"), r.str("signing_secret")
}

// insertAlert stores an alert of rule with one attempt, as the daemon would.
func (e *env) insertAlert(id, rule, project, slug, run, event, status string, created time.Time) {
	e.t.Helper()
	e.exec(`insert into public.alert_logs (id, config_id, project_id, workflow_slug, run_id, event, webhook_id, status,
			attempts, payload, target_url, occurred_at, created_at, last_status_code, outcome_reason, completed_at)
		values ($1, $2, $3, $4, $5, $6, $9, $7, 1, '{"type":"workflow_run.failed"}',
			'https://hooks.example.com/secret-path', $8, $8, 500, 'http_500',
			case when $7 in ('succeeded', 'failed') then $8::timestamptz end)`,
		id, rule, nullIfEmpty(project), nullIfEmpty(slug), run, event, status, created, "msg_"+strings.ReplaceAll(id, "-", ""))
	e.exec(`insert into public.alert_attempts (alert_id, attempt, started_at, latency_ms, status_code, response_excerpt, outcome)
		values ($1, 1, $2, 143, 500, 'internal error', 'http_500')`, id, created.Add(100*time.Millisecond))
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (e *env) now() time.Time { return time.Now() }

// signWith signs claims with another HS256 secret.
func signWith(secret string, claims map[string]any) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

// noneToken is an unsigned ("alg": "none") token for sub.
func noneToken(sub string, now time.Time) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"role": "authenticated", "sub": sub, "exp": now.Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		panic(err)
	}
	return s
}
