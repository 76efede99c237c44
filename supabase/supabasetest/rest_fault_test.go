package supabasetest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestRESTFaultInjection(t *testing.T) {
	e := newEnv(t)
	seedItems(e)
	ok := req{Path: "/items?select=id&id=eq.1"}

	t.Run("fail next with PostgREST-shaped errors", func(t *testing.T) {
		before := e.rest.Requests()
		e.rest.FailNext(2, http.StatusServiceUnavailable)
		for range 2 {
			r := e.do(ok)
			require.Equal(t, http.StatusServiceUnavailable, r.Status)
			assert.Equal(t, "PGRST001", r.Err(t)["code"])
			assert.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
		}
		r := e.do(ok)
		require.Equal(t, http.StatusOK, r.Status, r.Body)
		assert.Equal(t, before+3, e.rest.Requests())
	})
	t.Run("fail next 502 is an HTML gateway page", func(t *testing.T) {
		e.rest.FailNext(1, http.StatusBadGateway)
		r := e.do(ok)
		require.Equal(t, http.StatusBadGateway, r.Status)
		assert.Equal(t, "text/html", r.Header.Get("Content-Type"))
		assert.Contains(t, r.Body, "<title>502 Bad Gateway</title>")
		require.Equal(t, http.StatusOK, e.do(ok).Status)
	})
	t.Run("fail next applies before authentication", func(t *testing.T) {
		e.rest.FailNext(1, http.StatusTooManyRequests)
		r := e.do(req{Path: "/items", Key: "-"})
		require.Equal(t, http.StatusTooManyRequests, r.Status)
		assert.Equal(t, "PGRST429", r.Err(t)["code"])
		e.rest.FailNext(5, http.StatusInternalServerError)
		e.rest.FailNext(0, 0) // cancels
		require.Equal(t, http.StatusOK, e.do(ok).Status)
	})
	t.Run("stalled request ends with the client", func(t *testing.T) {
		e.rest.StallNext(1)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+ok.Path, nil)
		require.NoError(t, err)
		hr.Header.Set("apikey", pgtest.ServiceRoleKey())
		_, err = http.DefaultClient.Do(hr)
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
		require.Equal(t, http.StatusOK, e.do(ok).Status) // only one request stalls
	})
	t.Run("stalled POST ends with the client so the server can close", func(t *testing.T) {
		rest := NewREST(e.db.Pool, RESTOptions{JWTSecret: pgtest.JWTSecret})
		srv := httptest.NewServer(http.StripPrefix("/rest/v1", rest))
		rest.StallNext(1)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/rest/v1/items", strings.NewReader(`{"name":"stalled"}`))
		require.NoError(t, err)
		hr.Header.Set("apikey", pgtest.ServiceRoleKey())
		hr.Header.Set("Content-Type", "application/json")
		_, err = http.DefaultClient.Do(hr)
		require.Error(t, err)
		closed := make(chan struct{})
		go func() {
			srv.Close() // blocks while a handler is still running
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			rest.ReleaseStalled()
			t.Fatal("the stalled handler outlived its client")
		}
		assert.Equal(t, 0, e.count("public.items where name = 'stalled'"))
	})
	t.Run("stalled request proceeds when released", func(t *testing.T) {
		e.rest.StallNext(1)
		before := e.rest.Requests()
		done := make(chan reply, 1)
		go func() {
			hr, _ := http.NewRequest(http.MethodGet, e.base+ok.Path, nil)
			hr.Header.Set("apikey", pgtest.ServiceRoleKey())
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				done <- reply{Status: -1, Body: err.Error()}
				return
			}
			resp.Body.Close()
			done <- reply{Status: resp.StatusCode}
		}()
		require.Eventually(t, func() bool { return e.rest.Requests() == before+1 }, 10*time.Second, 5*time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("stalled request answered early: %+v", r)
		case <-time.After(50 * time.Millisecond):
		}
		e.rest.ReleaseStalled()
		select {
		case r := <-done:
			assert.Equal(t, http.StatusOK, r.Status, r.Body)
		case <-time.After(10 * time.Second):
			t.Fatal("released request did not finish")
		}
	})
	t.Run("latency", func(t *testing.T) {
		e.rest.SetLatency(100 * time.Millisecond)
		start := time.Now()
		require.Equal(t, http.StatusOK, e.do(ok).Status)
		assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		hr, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+ok.Path, nil)
		require.NoError(t, err)
		hr.Header.Set("apikey", pgtest.ServiceRoleKey())
		_, err = http.DefaultClient.Do(hr)
		require.Error(t, err)
		e.rest.SetLatency(0)
		require.Equal(t, http.StatusOK, e.do(ok).Status)
	})
}

func TestRESTDatabaseUnavailable(t *testing.T) {
	e := newEnv(t)
	e.db.Pool.Close()
	r := e.do(req{Path: "/items"})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, r.Body)
	assert.Equal(t, "PGRST000", r.Err(t)["code"])
	assert.Equal(t, "Database connection error.", r.Err(t)["message"])
}
