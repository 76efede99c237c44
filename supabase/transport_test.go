package supabase

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const testKey = "test-service-key.very-secret.signature"

// fakeServer is an httptest server that counts requests and records the last one.
type fakeServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	last *http.Request
	body []byte
}

func (f *fakeServer) lastRequest() (*http.Request, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last, f.body
}

func newFake(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) *fakeServer {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.last, f.body = r.Clone(context.Background()), b
		f.mu.Unlock()
		h(n, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func newTestStore(t *testing.T, url string, mod func(*Options)) *Store {
	t.Helper()
	opts := Options{
		URL: url, ServiceKey: testKey, Timeout: 5 * time.Second, MaxRetries: 3,
		RetryInitialInterval: time.Millisecond, RetryMaxInterval: 5 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func TestNew_Validation(t *testing.T) {
	for name, opts := range map[string]Options{
		"no url":        {ServiceKey: "k"},
		"no key":        {URL: "http://x"},
		"bad scheme":    {URL: "ftp://x", ServiceKey: "k"},
		"no host":       {URL: "http://", ServiceKey: "k"},
		"userinfo":      {URL: "http://u:p@x", ServiceKey: "k"},
		"bad schema":    {URL: "http://x", ServiceKey: "k", Schema: "a;b"},
		"newline key":   {URL: "http://x", ServiceKey: "k\nX-Evil: 1"},
		"query in url":  {URL: "http://x/?a=b", ServiceKey: "k"},
		"schema dashes": {URL: "http://x", ServiceKey: "k", Schema: "my-schema"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(opts)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "X-Evil")
		})
	}
	for in, want := range map[string]string{
		"https://ref.supabase.co":           "https://ref.supabase.co/rest/v1",
		"https://ref.supabase.co/":          "https://ref.supabase.co/rest/v1",
		"http://127.0.0.1:5/rest/v1":        "http://127.0.0.1:5/rest/v1",
		"http://127.0.0.1:5/proxy/rest/v1/": "http://127.0.0.1:5/proxy/rest/v1",
	} {
		got, err := restBase(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}

func TestOptions_StringRedactsKey(t *testing.T) {
	o := Options{URL: "http://x", ServiceKey: testKey}
	assert.NotContains(t, o.String(), testKey)
	assert.NotContains(t, fmt.Sprintf("%v %+v %s", o, o, o), testKey)
}

func TestStore_SendsAuthAndProfileHeaders(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `[]`) })
	s := newTestStore(t, f.URL, nil)
	_, err := s.GetAlert(t.Context(), "a1")
	require.True(t, IsNotFound(err), "%v", err)

	r, _ := f.lastRequest()
	assert.Equal(t, "/rest/v1/alert_logs", r.URL.Path)
	assert.Equal(t, []string{testKey}, r.Header.Values("apikey"))
	assert.Equal(t, []string{"Bearer " + testKey}, r.Header.Values("Authorization"))
	assert.Equal(t, []string{"public"}, r.Header.Values("Accept-Profile"))
	assert.Equal(t, "eq.a1", r.URL.Query().Get("id"))
	assert.Equal(t, "1", r.URL.Query().Get("limit"))
	assert.Equal(t, DefaultUserAgent, r.Header.Get("User-Agent"))
}

func TestStore_NewSecretKeyGoesInAPIKeyOnly(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `[]`) })
	s := newTestStore(t, f.URL, func(o *Options) { o.ServiceKey = "sb_secret_abc" })
	_, _, err := s.GetRow(t.Context(), DefaultRunsTable, "x")
	require.NoError(t, err)
	r, _ := f.lastRequest()
	assert.Equal(t, "sb_secret_abc", r.Header.Get("apikey"))
	assert.Empty(t, r.Header.Values("Authorization"))
}

func TestStore_ErrorTyping(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		wantCode   string
		wantHits   int64
		notFound   bool
		auth       bool
		retryable  bool
		msgContain string
	}{
		{name: "409 unique", status: 409,
			body:     `{"code":"23505","details":"Key (webhook_id)=(msg_1) already exists.","hint":null,"message":"duplicate key value violates unique constraint \"alert_logs_webhook_id_key\""}`,
			wantCode: "23505", wantHits: 1, msgContain: "duplicate key"},
		{name: "401 jwt", status: 401, body: `{"code":"PGRST301","details":null,"hint":null,"message":"JWSError JWSInvalidSignature"}`,
			wantCode: "PGRST301", wantHits: 1, auth: true, msgContain: "JWSInvalidSignature"},
		{name: "403 privilege", status: 403, body: `{"code":"42501","details":null,"hint":null,"message":"permission denied for table alert_logs"}`,
			wantCode: "42501", wantHits: 1, auth: true},
		{name: "404 table", status: 404, body: `{"code":"PGRST205","details":null,"hint":"Perhaps you meant the table 'public.alert_log'","message":"Could not find the table 'public.alert_logz' in the schema cache"}`,
			wantCode: "PGRST205", wantHits: 1, notFound: true, msgContain: "Perhaps you meant"},
		{name: "400 bad column", status: 400, body: `{"code":"PGRST204","details":null,"hint":null,"message":"Could not find the 'x' column"}`,
			wantCode: "PGRST204", wantHits: 1},
		{name: "502 html", status: 502, body: "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>cloudflare</body></html>",
			wantHits: 4, retryable: true, msgContain: "Bad Gateway: <html> <head><title>502 Bad Gateway"},
		{name: "500 statement timeout", status: 500, body: `{"code":"57014","details":null,"hint":null,"message":"canceling statement due to statement timeout"}`,
			wantCode: "57014", wantHits: 4, retryable: true},
		{name: "503 empty body", status: 503, body: "", wantHits: 4, retryable: true, msgContain: "Service Unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			s := newTestStore(t, f.URL, nil)
			_, err := s.GetAlertConfig(t.Context(), "c1")
			require.Error(t, err)
			var e *Error
			require.True(t, errors.As(err, &e), "%T %v", err, err)
			assert.Equal(t, tc.status, e.Status)
			assert.Equal(t, tc.wantCode, e.Code)
			assert.Equal(t, tc.wantHits, f.hits.Load(), "requests")
			assert.Equal(t, tc.notFound, IsNotFound(err), "not found")
			assert.Equal(t, tc.auth, IsAuth(err), "auth")
			assert.Equal(t, tc.retryable, IsRetryable(err), "retryable")
			assert.Contains(t, err.Error(), "get alert config")
			assert.Contains(t, err.Error(), tc.msgContain)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestStore_ErrorDetailsAndHint(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 409, `{"code":"23503","details":{"k":"v"},"hint":"check the config","message":"fk"}`)
	})
	s := newTestStore(t, f.URL, nil)
	_, err := s.ClaimAlerts(t.Context(), []NewAlert{validNewAlert()})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "23503", e.Code)
	assert.Equal(t, `{"k":"v"}`, e.Details)
	assert.Equal(t, "check the config", e.Hint)
}

func TestStore_RetriesThenSucceeds(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			writeJSON(w, 503, `{"code":"PGRST001","message":"Database client error. Retrying the connection."}`)
			return
		}
		writeJSON(w, 200, `[{"id":"w","a":1}]`)
	})
	s := newTestStore(t, f.URL, nil)
	row, found, err := s.GetRow(t.Context(), DefaultRunsTable, "w")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, map[string]any{"id": "w", "a": json.Number("1")}, row)
	assert.EqualValues(t, 2, f.hits.Load())
}

func TestStore_RetryAfterIsHonoured(t *testing.T) {
	f := newFake(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, `{"message":"rate limited"}`)
			return
		}
		writeJSON(w, 200, `[]`)
	})
	s := newTestStore(t, f.URL, nil)
	start := time.Now()
	_, _, err := s.GetRow(t.Context(), DefaultRunsTable, "r1")
	require.NoError(t, err)
	assert.EqualValues(t, 2, f.hits.Load())
	// A lower bound only: the store must not retry before Retry-After.
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
}

func TestStore_RetryAfterBeyondLimitGivesUp(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "3600")
		writeJSON(w, 503, `{"message":"maintenance"}`)
	})
	s := newTestStore(t, f.URL, func(o *Options) { o.MaxRetryAfter = time.Second })
	_, _, err := s.GetRow(t.Context(), DefaultRunsTable, "r1")
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, time.Hour, e.RetryAfter)
	assert.EqualValues(t, 1, f.hits.Load())
}

func TestStore_RetriesBounded(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 504, `{"code":"PGRST003"}`) })
	s := newTestStore(t, f.URL, func(o *Options) { o.MaxRetries = 2 })
	_, err := s.GetAlert(t.Context(), "a")
	require.Error(t, err)
	assert.EqualValues(t, 3, f.hits.Load())
	assert.Contains(t, err.Error(), "(3 attempts)")

	f2 := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 504, `{}`) })
	s2 := newTestStore(t, f2.URL, func(o *Options) { o.MaxRetries = -1 })
	_, err = s2.GetAlert(t.Context(), "a")
	require.Error(t, err)
	assert.EqualValues(t, 1, f2.hits.Load())
}

func TestStore_StalledServerHitsDeadline(t *testing.T) {
	release := make(chan struct{})
	f := newFake(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)

	t.Run("per-request timeout", func(t *testing.T) {
		s := newTestStore(t, f.URL, func(o *Options) { o.Timeout = 100 * time.Millisecond; o.MaxRetries = 1 })
		_, err := s.GetAlert(t.Context(), "a")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "no response within 100ms")
		assert.True(t, IsRetryable(err))
	})
	t.Run("caller deadline", func(t *testing.T) {
		before := f.hits.Load()
		s := newTestStore(t, f.URL, func(o *Options) { o.Timeout = time.Minute })
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		_, err := s.GetAlert(ctx, "a")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.EqualValues(t, 1, f.hits.Load()-before, "no retry once the caller's deadline passed")
	})
	t.Run("canceled", func(t *testing.T) {
		s := newTestStore(t, f.URL, nil)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := s.GetAlert(ctx, "a")
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, IsRetryable(err))
	})
}

func TestStore_NetworkErrorIsRetried(t *testing.T) {
	var hits atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			// Drop the connection without answering.
			hj, ok := w.(http.Hijacker)
			require.True(t, ok)
			c, _, err := hj.Hijack()
			require.NoError(t, err)
			_ = c.Close()
			return
		}
		writeJSON(w, 200, `[]`)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	s := newTestStore(t, "http://"+l.Addr().String(), nil)
	// A GET is retried after the dropped connection.
	_, _, err = s.GetRow(t.Context(), DefaultRunsTable, "r")
	require.NoError(t, err)
	assert.EqualValues(t, 2, hits.Load())
}

func TestStore_ConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s := newTestStore(t, "http://"+addr, func(o *Options) { o.MaxRetries = 1 })
	_, err = s.GetAlert(t.Context(), "a")
	require.Error(t, err)
	assert.True(t, IsRetryable(err))
	var ue *url.Error
	assert.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), "(2 attempts)")
	assert.NotContains(t, err.Error(), testKey)
}

func TestStore_SecretsNeverInErrors(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		// A misbehaving proxy that echoes the request headers.
		writeJSON(w, 400, fmt.Sprintf(`{"code":"X","message":"bad key %s","details":%q,"hint":"Bearer %s"}`,
			r.Header.Get("apikey"), r.Header.Get("Authorization"), testKey))
	})
	s := newTestStore(t, f.URL, nil)
	err := s.PutState(t.Context(), "k", 1)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey)
	assert.Contains(t, err.Error(), redacted)

	f2 := newFake(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(502)
		_, _ = io.WriteString(w, "<p>upstream said "+r.Header.Get("apikey")+"</p>")
	})
	s2 := newTestStore(t, f2.URL, func(o *Options) { o.MaxRetries = -1 })
	err = s2.PutState(t.Context(), "k", 1)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey)
}

func TestStore_PreferSentExactlyOnce(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) })
	s := newTestStore(t, f.URL, nil)
	require.NoError(t, s.PutState(t.Context(), "w", map[string]int{"a": 1}))

	r, body := f.lastRequest()
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, []string{"resolution=merge-duplicates,return=minimal"}, r.Header.Values("Prefer"))
	assert.Equal(t, "key", r.URL.Query().Get("on_conflict"))
	assert.Equal(t, []string{"public"}, r.Header.Values("Content-Profile"))
	assert.JSONEq(t, `{"key":"w","value":{"a":1}}`, string(body))
}

func TestStore_ClaimValidation(t *testing.T) {
	s := newTestStore(t, "http://127.0.0.1:1", nil)
	_, err := s.ClaimAlerts(t.Context(), []NewAlert{{Status: "bogus"}})
	require.Error(t, err)
	for _, f := range []string{"config_id", "run_id", "event", "webhook_id", "target_url", "occurred_at", "status"} {
		assert.Contains(t, err.Error(), f)
	}
}

// recordQueries serves answers in turn (then empty pages) and records each
// request's query.
func recordQueries(t *testing.T, answers ...string) (*fakeServer, func() []url.Values) {
	t.Helper()
	var (
		mu      sync.Mutex
		queries []url.Values
	)
	f := newFake(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		if int(n) <= len(answers) {
			writeJSON(w, 200, answers[n-1])
			return
		}
		writeJSON(w, 200, `[]`)
	})
	return f, func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		return queries
	}
}

func TestStore_ScanPagesByKey(t *testing.T) {
	// Two full pages, then an empty one: a short page is not the end (the
	// server may cap pages silently). Each request continues after the last
	// key exactly as the server printed it.
	f, queries := recordQueries(t, `[{"id":"a","status":"running","n":1.50},{"id":"b","status":"running","n":2}]`,
		`[{"id":"c","status":"running","n":3}]`)
	s := newTestStore(t, f.URL, func(o *Options) { o.PageSize = 2 })
	var ids []string
	var nums []any
	err := s.RowsWhere(t.Context(), DefaultRunsTable, "status", []string{"running"}, func(row map[string]any) error {
		ids = append(ids, row["id"].(string))
		nums = append(nums, row["n"])
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	assert.Equal(t, json.Number("1.50"), nums[0], "numbers stay json.Number")
	q := queries()
	require.Len(t, q, 3)
	assert.Equal(t, "id.asc.nullslast", q[0].Get("order"))
	assert.Equal(t, "2", q[0].Get("limit"))
	assert.Empty(t, q[0].Get("and"))
	assert.Equal(t, `(id.gt."b")`, q[1].Get("and"))
	assert.Equal(t, `(id.gt."c")`, q[2].Get("and"))
	for _, v := range q {
		assert.Equal(t, `in.("running")`, v.Get("status"), "the filter applies to every page")
	}
}

func TestStore_RowsPageQuery(t *testing.T) {
	f, queries := recordQueries(t, `[{"id":"a","updated_at":"2026-01-02T03:04:06+05:30","n":1.50}]`)
	s := newTestStore(t, f.URL, nil)
	before := time.Date(2026, 1, 2, 8, 34, 5, 999, time.FixedZone("IST", 5*3600+1800))
	rows, err := s.RowsPage(t.Context(), DefaultRunsTable, []string{"id", "updated_at", "n"},
		RowKey{At: "2026-01-02T03:04:05Z"}, before, 2)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, json.Number("1.50"), rows[0]["n"], "numbers stay json.Number")
	// The cursor is the last row's (updated_at, id) as the server printed it.
	_, err = s.RowsPage(t.Context(), DefaultRunsTable, nil, RowKey{At: rows[0]["updated_at"].(string), ID: "a"}, before, 2)
	require.NoError(t, err)
	_, err = s.RowsPage(t.Context(), DefaultRunsTable, nil, RowKey{}, before, 2)
	require.NoError(t, err)
	_, err = s.RowsPage(t.Context(), DefaultRunsTable, []string{"id;drop"}, RowKey{}, before, 2)
	require.Error(t, err, "column names are identifiers")

	q := queries()
	require.Len(t, q, 3)
	assert.Equal(t, "id,updated_at,n", q[0].Get("select"))
	assert.Equal(t, "(updated_at.gte.2026-01-02T03:04:05Z,updated_at.lt.2026-01-02T03:04:05.000000Z)", q[0].Get("and"),
		"from the cursor's time, before the bound (in UTC, to the microsecond)")
	assert.Equal(t, "updated_at.asc.nullslast,id.asc.nullslast", q[0].Get("order"))
	assert.Equal(t, "2", q[0].Get("limit"))
	assert.Equal(t, "*", q[1].Get("select"))
	assert.Equal(t, `(updated_at.gt."2026-01-02T03:04:06+05:30",and(updated_at.eq."2026-01-02T03:04:06+05:30",id.gt."a"))`,
		q[1].Get("or"))
	assert.Equal(t, []string{"lt.2026-01-02T03:04:05.000000Z"}, q[1]["updated_at"])
	assert.Equal(t, []string{"lt.2026-01-02T03:04:05.000000Z"}, q[2]["updated_at"], "no cursor: from the start")
	assert.Empty(t, q[2].Get("or"))
}

func TestStore_RowsWhereAndCallbackError(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `[{"id":"a","status":"running"},{"id":"b","status":"paused"}]`)
	})
	s := newTestStore(t, f.URL, nil)
	stop := errors.New("stop")
	var seen int
	err := s.RowsWhere(t.Context(), DefaultRunsTable, "status", []string{"running", "paused"}, func(map[string]any) error {
		seen++
		return stop
	})
	assert.Same(t, stop, err)
	assert.Equal(t, 1, seen)
	r, _ := f.lastRequest()
	assert.Equal(t, `in.("running","paused")`, r.URL.Query().Get("status"))

	require.NoError(t, s.RowsWhere(t.Context(), DefaultRunsTable, "status", nil, func(map[string]any) error {
		t.Fatal("no values means no rows")
		return nil
	}))
	require.Error(t, s.RowsWhere(t.Context(), DefaultRunsTable, "status;drop", []string{"x"}, nil))
	require.Error(t, s.RowsWhere(t.Context(), RunsTable{Table: "runs", IDColumn: "id", UpdatedAtColumn: "updated at"}, "status", []string{"x"}, nil))
}

func TestStore_OtherSchemaUsesProfileHeaders(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, `[]`) })
	s := newTestStore(t, f.URL, nil)
	_, found, err := s.GetRow(t.Context(), RunsTable{Schema: "engine", Table: "runs", IDColumn: "run_id", UpdatedAtColumn: "ts"}, "x")
	require.NoError(t, err)
	assert.False(t, found)
	r, _ := f.lastRequest()
	assert.Equal(t, []string{"engine"}, r.Header.Values("Accept-Profile"))
	assert.Equal(t, "eq.x", r.URL.Query().Get("run_id"))
	assert.Equal(t, "/rest/v1/runs", r.URL.Path)
}

func TestStore_ResponseBodyLimit(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, `[{"id":"`+strings.Repeat("x", 4096)+`"}]`)
	})
	s := newTestStore(t, f.URL, func(o *Options) { o.MaxResponseBytes = 1024 })
	_, _, err := s.GetRow(t.Context(), DefaultRunsTable, "x")
	require.ErrorIs(t, err, errBodyTooLarge)
	assert.EqualValues(t, 1, f.hits.Load(), "not retried")
}

func TestTransport_DoesNotMutateRequestAndUnwrapsThroughURLError(t *testing.T) {
	f := newFake(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 409, `{"code":"23505","message":"dup"}`)
	})
	tr := &transport{base: http.DefaultTransport, now: time.Now}
	req, err := http.NewRequest(http.MethodPost, f.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Prefer", "resolution=merge-duplicates")
	req = req.WithContext(withHeaders(context.Background(), http.Header{"Prefer": {"resolution=ignore-duplicates"}}))

	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.Nil(t, resp)
	var ue *url.Error
	require.ErrorAs(t, err, &ue)
	var e *Error
	require.ErrorAs(t, err, &e, "the *Error unwraps through *url.Error")
	assert.Equal(t, "23505", e.Code)
	assert.Equal(t, []string{"resolution=merge-duplicates"}, req.Header.Values("Prefer"), "caller's request untouched")
	sent, _ := f.lastRequest()
	assert.Equal(t, []string{"resolution=ignore-duplicates"}, sent.Header.Values("Prefer"))
}

func TestIsRetryable_Classification(t *testing.T) {
	for status, want := range map[int]bool{
		400: false, 401: false, 403: false, 404: false, 406: false, 409: false, 413: false, 416: false,
		408: true, 429: true, 500: true, 501: false, 502: true, 503: true, 504: true, 505: false,
	} {
		assert.Equal(t, want, IsRetryable(&Error{Status: status}), "status %d", status)
		assert.Equal(t, want, IsRetryable(fmt.Errorf("wrapped: %w", &url.Error{Op: "Get", URL: "u", Err: &Error{Status: status}})), "wrapped %d", status)
	}
	assert.False(t, IsRetryable(nil))
	assert.False(t, IsRetryable(context.Canceled))
	assert.True(t, IsRetryable(context.DeadlineExceeded))
	assert.True(t, IsRetryable(io.ErrUnexpectedEOF))
	assert.True(t, IsRetryable(&net.OpError{Op: "dial", Err: errors.New("connection refused")}))
	assert.False(t, IsRetryable(errors.New("decode response: invalid character")))
	assert.False(t, IsRetryable(&url.Error{Op: "Get", URL: "u", Err: &tlsCertError}))
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	assert.Equal(t, 2*time.Second, parseRetryAfter("2", now))
	assert.Equal(t, time.Duration(0), parseRetryAfter("-1", now))
	assert.Equal(t, time.Duration(0), parseRetryAfter("soon", now))
	assert.Equal(t, 24*time.Hour, parseRetryAfter("99999999999", now))
	assert.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	assert.Equal(t, time.Duration(0), parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now))
}

var tlsCertError = tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}

func validNewAlert() NewAlert {
	return NewAlert{
		ConfigID: "c", RunID: "r", Event: "failed", WebhookID: "msg_1", Payload: []byte(`{"run":"r"}`),
		TargetURL: "https://h", OccurredAt: time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC),
	}
}

func TestStore_RetryLogsCarryNoSecretAndNoGoroutinesLeak(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	core, logs := observer.New(zap.DebugLevel)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		_, _ = io.WriteString(w, "down for "+r.Header.Get("apikey"))
	}))
	s, err := New(Options{URL: srv.URL, ServiceKey: testKey, MaxRetries: 2, RetryInitialInterval: time.Millisecond,
		RetryMaxInterval: 2 * time.Millisecond, Logger: zap.New(core)})
	require.NoError(t, err)
	err = s.EachAlertConfig(t.Context(), func(AlertConfig) error { return nil })
	require.Error(t, err)
	s.Close()
	srv.Close()

	entries := logs.All()
	require.Len(t, entries, 2, "one warning per retry")
	for _, e := range entries {
		assert.Equal(t, "request failed; retrying", e.Message)
		assert.Equal(t, "list alert configs", e.ContextMap()["op"])
		assert.NotContains(t, fmt.Sprint(e.ContextMap()), testKey)
	}
}
