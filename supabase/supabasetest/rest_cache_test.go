package supabasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// withREST is e's database served by another REST over pool (e's pool
// when nil) with opts (the JWT secret is filled in).
func (e *env) withREST(pool *pgxpool.Pool, opts RESTOptions) *env {
	e.t.Helper()
	if pool == nil {
		pool = e.db.Pool
	}
	opts.JWTSecret = pgtest.JWTSecret
	rest := NewREST(pool, opts)
	srv := httptest.NewServer(http.StripPrefix("/rest/v1", rest))
	e.t.Cleanup(srv.Close)
	return &env{t: e.t, db: e.db, rest: rest, srv: srv, base: srv.URL + "/rest/v1"}
}

// countingPool is a pool of one connection to e's database that counts
// its round trips.
func (e *env) countingPool(trips *atomic.Int64) *pgxpool.Pool {
	e.t.Helper()
	cfg, err := pgxpool.ParseConfig(e.db.URL)
	require.NoError(e.t, err)
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false } // only the requests' round trips
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, trips: trips}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(e.t, err)
	e.t.Cleanup(pool.Close)
	return pool
}

// compactJSON is s without insignificant white space.
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, json.Compact(&b, []byte(s)), s)
	return b.String()
}

func TestRESTSchemaCacheFunctions(t *testing.T) {
	base := newEnv(t)
	// A cache that never expires during the test: what is seen below is
	// seen without waiting.
	e := base.withREST(nil, RESTOptions{SchemaCacheTTL: time.Hour})
	post := func(path, body string) reply { return e.do(req{Method: http.MethodPost, Path: path, Body: body}) }

	t.Run("a function created after a miss is found at once", func(t *testing.T) {
		r := post("/rpc/fresh_fn", `{}`)
		require.Equal(t, http.StatusNotFound, r.Status, r.Body)
		e.exec(`create function public.fresh_fn() returns int language sql as 'select 7'`)
		r = post("/rpc/fresh_fn", `{}`)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "7", r.Body)
	})
	t.Run("an overload replaced with other parameters is found at once", func(t *testing.T) {
		e.exec(`create function public.renamed(a int) returns int language sql as 'select a'`)
		require.Equal(t, "1", post("/rpc/renamed", `{"a":1}`).Body)
		e.exec(`drop function public.renamed(int);
		  create function public.renamed(b int) returns int language sql as 'select b * 10'`)
		r := post("/rpc/renamed", `{"b":2}`)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "20", r.Body)
		r = post("/rpc/renamed", `{"a":1}`)
		require.Equal(t, http.StatusNotFound, r.Status, r.Body)
		assert.Equal(t, "PGRST202", r.Err(t)["code"])
	})
	t.Run("a function made volatile is called read-write at once", func(t *testing.T) {
		e.exec(`create function public.bump() returns int language sql stable as 'select 0'`)
		require.Equal(t, "0", post("/rpc/bump", `{}`).Body)
		e.exec(`create or replace function public.bump() returns int language sql volatile as
		  $$ update public.items set qty = qty + 1 where id = 1 returning qty $$;
		  insert into public.items (id, name) values (1, 'one')`)
		r := post("/rpc/bump", `{}`)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, "1", r.Body)
		assert.Equal(t, 1, e.count("public.items where id = 1 and qty = 1"), "one update, committed once")
	})
	t.Run("a changed result shape is seen after ReloadSchema", func(t *testing.T) {
		e.exec(`create function public.shape() returns int language sql as 'select 1'`)
		require.Equal(t, "1", post("/rpc/shape", `{}`).Body)
		e.exec(`drop function public.shape();
		  create function public.shape() returns setof int language sql as 'select generate_series(1, 2)'`)
		assert.Equal(t, "1", post("/rpc/shape", `{}`).Body, "PostgREST answers from its schema cache until it is reloaded")
		e.rest.ReloadSchema()
		assert.JSONEq(t, "[1,2]", post("/rpc/shape", `{}`).Body)
	})
}

func TestRESTSchemaCacheTables(t *testing.T) {
	base := newEnv(t)
	e := base.withREST(nil, RESTOptions{SchemaCacheTTL: time.Hour})
	e.exec(`create table public.evolving (id int primary key, v integer)`)
	ins := func(body string) reply {
		return e.do(req{Method: http.MethodPost, Path: "/evolving", Body: body})
	}
	require.Equal(t, http.StatusCreated, ins(`{"id":1,"v":1}`).Status)

	t.Run("a column added is accepted at once", func(t *testing.T) {
		e.exec(`alter table public.evolving add column note text`)
		r := ins(`{"id":2,"v":2,"note":"new"}`)
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Equal(t, 1, e.count("public.evolving where note = 'new'"))
	})
	t.Run("a column whose type changed takes values of the new type at once", func(t *testing.T) {
		e.exec(`alter table public.evolving alter column v type text`)
		r := ins(`{"id":3,"v":"three"}`)
		require.Equal(t, http.StatusCreated, r.Status, r.Body)
		assert.Equal(t, 1, e.count("public.evolving where v = 'three'"))
	})
	t.Run("a genuine error is answered as it is", func(t *testing.T) {
		r := ins(`{"id":4,"nope":1}`)
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "PGRST204", r.Err(t)["code"])
		r = e.do(req{Path: "/evolving?select=nope"})
		require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
		assert.Equal(t, "42703", r.Err(t)["code"])
	})
	t.Run("a dropped table is not found", func(t *testing.T) {
		e.exec(`drop table public.evolving`)
		r := ins(`{"id":5}`)
		require.Equal(t, http.StatusNotFound, r.Status, r.Body)
		assert.Equal(t, "PGRST205", r.Err(t)["code"])
	})
}

func TestRESTSchemaCacheExpiry(t *testing.T) {
	base := newEnv(t)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
	}{{"no cache", -1}, {"short lived", 50 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			e := base.withREST(nil, RESTOptions{SchemaCacheTTL: tc.ttl})
			e.exec(`drop function if exists public.shape();
			  create function public.shape() returns int language sql as 'select 1'`)
			require.Equal(t, "1", e.do(req{Method: http.MethodPost, Path: "/rpc/shape", Body: `{}`}).Body)
			e.exec(`drop function public.shape();
			  create function public.shape() returns setof int language sql as 'select generate_series(1, 2)'`)
			call := func() string {
				return compactJSON(t, e.do(req{Method: http.MethodPost, Path: "/rpc/shape", Body: `{}`}).Body)
			}
			if tc.ttl < 0 {
				assert.JSONEq(t, "[1,2]", call(), "the catalog is read by every request")
				return
			}
			require.Eventually(t, func() bool { return call() == "[1,2]" }, 10*time.Second, 20*time.Millisecond)
		})
	}
}

func TestRESTListenSchemaReloads(t *testing.T) {
	base := newEnv(t)
	core, logs := observer.New(zap.DebugLevel)
	e := base.withREST(nil, RESTOptions{SchemaCacheTTL: time.Hour, Logger: zap.New(core)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.rest.ListenSchemaReloads(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("ListenSchemaReloads did not return")
		}
	})

	require.Eventually(t, func() bool {
		return logs.FilterMessage("listening for schema reloads").Len() == 1
	}, 10*time.Second, 10*time.Millisecond)

	e.exec(`create function public.shape() returns int language sql as 'select 1'`)
	call := func() string {
		return compactJSON(t, e.do(req{Method: http.MethodPost, Path: "/rpc/shape", Body: `{}`}).Body)
	}
	require.Equal(t, "1", call())
	e.exec(`drop function public.shape();
	  create function public.shape() returns setof int language sql as 'select generate_series(1, 2)'`)
	require.Equal(t, "1", call(), "cached until the schema cache is reloaded")
	e.exec(`notify pgrst, 'reload schema'`)
	require.Eventually(t, func() bool { return call() == "[1,2]" }, 10*time.Second, 20*time.Millisecond)
}

func TestRESTRequestSettings(t *testing.T) {
	base := newEnv(t)
	// One connection: every request reuses the previous one's session.
	var trips atomic.Int64
	e := base.withREST(base.countingPool(&trips), RESTOptions{})
	e.exec(`create function public.settings() returns json language sql stable as $$
	  select json_build_object(
	    'user', current_user,
	    'search_path', current_setting('search_path'),
	    'claims', current_setting('request.jwt.claims', true)::json,
	    'sub', current_setting('request.jwt.claim.sub', true),
	    'role', current_setting('request.jwt.claim.role', true),
	    'method', current_setting('request.method', true),
	    'path', current_setting('request.path', true),
	    'x_test', current_setting('request.headers', true)::json ->> 'x-test',
	    'read_only', current_setting('transaction_read_only'),
	    'uid', auth.uid())
	$$`)
	user := pgtest.UserToken(userA, time.Hour)
	for range 2 {
		r := e.do(req{Method: http.MethodPost, Path: "/rpc/settings", Body: `{}`, Token: user,
			Header: map[string]string{"X-Test": "one"}})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		got := r.JSON(t).(map[string]any)
		claims := got["claims"].(map[string]any)
		assert.Equal(t, "authenticated", got["user"])
		assert.Equal(t, `"public", "public"`, got["search_path"])
		assert.Equal(t, userA, claims["sub"])
		assert.Equal(t, "authenticated", claims["role"])
		assert.Equal(t, userA, got["sub"])
		assert.Equal(t, "authenticated", got["role"])
		assert.Equal(t, "POST", got["method"])
		assert.Equal(t, "/rpc/settings", got["path"])
		assert.Equal(t, "one", got["x_test"])
		assert.Equal(t, "on", got["read_only"], "a stable function runs read-only")
		assert.Equal(t, userA, got["uid"])

		// The next request on the same connection sees none of it.
		r = e.do(req{Path: "/rpc/settings", Key: pgtest.AnonKey()})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		got = r.JSON(t).(map[string]any)
		assert.Equal(t, "anon", got["user"])
		assert.Equal(t, "anon", got["claims"].(map[string]any)["role"])
		assert.NotContains(t, got["claims"], "sub")
		assert.Empty(t, got["sub"])
		assert.Equal(t, "anon", got["role"])
		assert.Equal(t, "GET", got["method"])
		assert.Empty(t, got["x_test"])
		assert.Nil(t, got["uid"])
	}

	t.Run("a request takes two round trips once its statement is prepared", func(t *testing.T) {
		r := req{Method: http.MethodPost, Path: "/rpc/settings", Body: `{}`}
		require.Equal(t, http.StatusOK, e.do(r).Status)
		before := trips.Load()
		for range 5 {
			require.Equal(t, http.StatusOK, e.do(r).Status)
		}
		assert.Equal(t, int64(10), trips.Load()-before, "BEGIN, settings and statement in one, then COMMIT")
	})
}

func TestRESTStatementParsedInTheRequestSchema(t *testing.T) {
	base := newEnv(t)
	base.exec(`create schema api;
	  grant usage on schema api to anon, authenticated, service_role;
	  create type api.mood as enum ('ok', 'bad');
	  create table api.moods (id int primary key, m text);
	  grant all on api.moods to anon, authenticated, service_role;
	  insert into api.moods values (1, 'ok');
	  create function api.mood_of(m api.mood) returns text language sql stable as $$ select m::text || '!' $$;
	  grant execute on function api.mood_of(api.mood) to anon, authenticated, service_role`)
	e := base.withREST(nil, RESTOptions{Schemas: []string{"public", "api"}})
	// "mood" names a type only with the request's search_path (api, public):
	// the statement must be parsed with it, not the pool's.
	for range 2 {
		r := e.do(req{Path: "/moods?select=m::mood", Header: map[string]string{"Accept-Profile": "api"}})
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.JSONEq(t, `[{"m":"ok"}]`, r.Body)
	}
	api := map[string]string{"Accept-Profile": "api", "Content-Profile": "api"}
	r := e.do(req{Path: "/rpc/mood_of?m=bad", Header: api})
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, `"bad!"`, r.Body)
	r = e.do(req{Method: http.MethodPost, Path: "/rpc/mood_of", Body: `{"m":"ok"}`, Header: api})
	require.Equal(t, http.StatusOK, r.Status, r.Body)
	assert.Equal(t, `"ok!"`, r.Body)

	r = e.do(req{Path: "/moods?select=m::nomood", Header: map[string]string{"Accept-Profile": "api"}})
	require.Equal(t, http.StatusBadRequest, r.Status, r.Body)
	assert.Equal(t, map[string]any{"code": "42704", "message": `type "nomood" does not exist`, "details": nil, "hint": nil}, r.Err(t))
}

func TestLoadRoutinesQualifiesTypes(t *testing.T) {
	e := newEnv(t)
	e.exec(`create type public.colour as enum ('red');
	  create function public.paint(c colour, n integer, cs colour[]) returns void language sql as ''`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fns, err := loadRoutines(ctx, e.db.Pool, "public", "paint")
	require.NoError(t, err)
	require.Len(t, fns, 1)
	var shown, sql []string
	for _, p := range fns[0].Params {
		shown, sql = append(shown, p.Type), append(sql, p.SQLType)
	}
	assert.Equal(t, []string{"colour", "integer", "colour[]"}, shown, "as PostgREST shows them")
	assert.Equal(t, []string{"public.colour", "integer", "public.colour[]"}, sql, "the same whatever the search_path")
}
