package supabasetest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestRESTProfiles(t *testing.T) {
	e := newEnv(t)
	e.exec(`create schema api;
	  grant usage on schema api to anon, authenticated, service_role;
	  create table api.items (id int primary key, label text);
	  grant all on api.items to anon, authenticated, service_role;
	  insert into api.items values (1, 'from api');
	  insert into public.items (id, name) values (1, 'from public')`)
	core, logs := observer.New(zap.DebugLevel)
	rest := NewREST(e.db.Pool, RESTOptions{JWTSecret: pgtest.JWTSecret, Schemas: []string{"public", "api"}, Logger: zap.New(core)})
	srv := httptest.NewServer(http.StripPrefix("/rest/v1", rest))
	t.Cleanup(srv.Close)
	multi := &env{t: t, db: e.db, rest: rest, srv: srv, base: srv.URL + "/rest/v1"}

	r := multi.do(req{Path: "/items?select=name"})
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.JSONEq(t, `[{"name":"from public"}]`, r.Body)
	assert.Equal(t, "public", r.Header.Get("Content-Profile"), "several schemas: the default one is reported")

	r = multi.do(req{Path: "/items?select=label", Header: map[string]string{"Accept-Profile": "api"}})
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.JSONEq(t, `[{"label":"from api"}]`, r.Body)
	assert.Equal(t, "api", r.Header.Get("Content-Profile"))

	r = multi.do(req{Method: http.MethodPost, Path: "/items?select=id,label", Body: `{"id":2,"label":"two"}`,
		Header: map[string]string{"Content-Profile": "api", "Prefer": "return=representation"}})
	require.Equal(t, http.StatusCreated, r.Status, r.Body)
	assert.JSONEq(t, `[{"id":2,"label":"two"}]`, r.Body)

	r = multi.do(req{Path: "/items", Header: map[string]string{"Accept-Profile": "private"}})
	require.Equal(t, http.StatusNotAcceptable, r.Status, r.Body)
	assert.Equal(t, "Only the following schemas are exposed: public, api", r.Err(t)["hint"])

	// With one schema no Content-Profile is sent.
	r = e.do(req{Path: "/items?select=id"})
	assert.Empty(t, r.Header.Get("Content-Profile"))

	multi.do(req{Path: "/items?apikey=" + pgtest.ServiceRoleKey(), Key: "-"})
	var sawQuery bool
	for _, entry := range logs.All() {
		for _, f := range entry.Context {
			if f.Key == "query" && f.String == "apikey=REDACTED" {
				sawQuery = true
			}
		}
	}
	assert.True(t, sawQuery, "the apikey query parameter is redacted in logs")
}

func TestRESTRootAndOptions(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{Path: "/"})
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	doc := r.JSON(t).(map[string]any)
	assert.Equal(t, "2.0", doc["swagger"])
	paths := doc["paths"].(map[string]any)
	assert.Contains(t, paths, "/items")
	assert.Contains(t, paths, "/workflow_runs")
	assert.Contains(t, paths, "/rpc/add")

	r = e.do(req{Method: http.MethodOptions, Path: "/items"})
	require.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE", r.Header.Get("Allow"))
	r = e.do(req{Method: http.MethodOptions, Path: "/rpc/add"})
	assert.Equal(t, "OPTIONS,GET,HEAD,POST", r.Header.Get("Allow"))
	r = e.do(req{Method: http.MethodPost, Path: "/", Body: "{}"})
	require.Equal(t, http.StatusMethodNotAllowed, r.Status)
	assert.Equal(t, "PGRST117", r.Err(t)["code"])
}
