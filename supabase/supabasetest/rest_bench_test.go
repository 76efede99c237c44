package supabasetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// The benchmarks below measure what one request costs the database: they
// serve requests through REST's handler (no HTTP client or server in the
// way) over a pool whose connections count their round trips and
// statements, and report
//
//	req/s        requests served per second
//	roundtrips/req  client→server exchanges (a write after a read) per request
//	stmts/req    statements sent per request (pipelined ones included)
//	pg-µs/req    CPU of the cluster's processes per request, when the
//	             cluster runs on this machine (/proc); other users of a
//	             shared cluster are counted too
//
// Run them with
//
//	go test -run '^$' -bench . -benchtime 3s ./supabase/supabasetest

// countingConn counts exchanges: every write that follows a read (or opens
// the connection) starts one.
type countingConn struct {
	net.Conn
	trips *atomic.Int64
	wrote atomic.Bool // written since the last read
}

func (c *countingConn) Write(b []byte) (int, error) {
	if !c.wrote.Swap(true) {
		c.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.wrote.Store(false)
	return c.Conn.Read(b)
}

// statementCounter counts statements, including those of batches.
type statementCounter struct{ n atomic.Int64 }

func (s *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	s.n.Add(1)
	return ctx
}

func (s *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (s *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	s.n.Add(1)
}

func (s *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// benchEnv is a REST stand-in over a fresh database and an instrumented pool.
type benchEnv struct {
	rest   *REST
	pool   *pgxpool.Pool
	db     *pgtest.DB
	trips  atomic.Int64
	stmts  statementCounter
	master int // postmaster pid, 0 when its CPU cannot be read
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	db := pgtest.Shared(b).NewDatabase(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := db.Pool.Exec(ctx, fixtureSQL)
	require.NoError(b, err)
	be := &benchEnv{db: db}
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(b, err)
	cfg.MaxConns = 8
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, trips: &be.trips}, nil
	}
	cfg.ConnConfig.Tracer = &be.stmts
	be.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(be.pool.Close)
	be.rest = NewREST(be.pool, RESTOptions{JWTSecret: pgtest.JWTSecret})
	var backend int
	require.NoError(b, be.pool.QueryRow(ctx, `select pg_backend_pid()`).Scan(&backend))
	if ppid, ok := procParent(backend); ok {
		be.master = ppid
	}
	return be
}

// procParent is the parent of a local process, from /proc.
func procParent(pid int) (int, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

// clusterTicks sums utime+stime (clock ticks) of the postmaster's children.
func clusterTicks(master int) int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) start at ") ".
		i := strings.LastIndexByte(string(raw), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 13 {
			continue
		}
		// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
		if ppid, _ := strconv.Atoi(f[1]); ppid != master && pid != master {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + s
	}
	return total
}

// run serves requests made by mk from parallel goroutines and reports the
// figures described above.
func (be *benchEnv) run(b *testing.B, mk func() *http.Request, wantStatus int) {
	b.Helper()
	// Warm up: the first requests prepare statements and fill caches.
	for range 20 {
		rec := httptest.NewRecorder()
		be.rest.ServeHTTP(rec, mk())
		require.Equal(b, wantStatus, rec.Code, rec.Body.String())
	}
	trips0, stmts0 := be.trips.Load(), be.stmts.n.Load()
	var ticks0 int64
	if be.master != 0 {
		ticks0 = clusterTicks(be.master)
	}
	var failed atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			be.rest.ServeHTTP(rec, mk())
			if rec.Code != wantStatus {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	require.Zero(b, failed.Load(), "requests with another status than %d", wantStatus)
	n := float64(b.N)
	b.ReportMetric(n/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(be.trips.Load()-trips0)/n, "roundtrips/req")
	b.ReportMetric(float64(be.stmts.n.Load()-stmts0)/n, "stmts/req")
	if be.master != 0 {
		const clkTck = 100 // USER_HZ on Linux
		ticks := clusterTicks(be.master) - ticks0
		b.ReportMetric(float64(ticks)*1e6/clkTck/n, "pg-µs/req")
	}
}

func serviceRequest(method, path, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("apikey", pgtest.ServiceRoleKey())
	r.Header.Set("Authorization", "Bearer "+pgtest.ServiceRoleKey())
	return r
}

// BenchmarkRPCRoundTrip calls a migrated function (the daemon's report
// call, with nothing to report, so the request's own cost dominates).
func BenchmarkRPCRoundTrip(b *testing.B) {
	be := newBenchEnv(b)
	be.run(b, func() *http.Request {
		return serviceRequest(http.MethodPost, "/rpc/alert_report_deliveries", `{"p_attempts":[],"p_updates":[]}`)
	}, http.StatusOK)
}

// BenchmarkTableWrite updates alert_logs (no row matches, so the request's
// own cost dominates).
func BenchmarkTableWrite(b *testing.B) {
	be := newBenchEnv(b)
	be.run(b, func() *http.Request {
		return serviceRequest(http.MethodPatch, "/alert_logs?id=eq.00000000-0000-4000-8000-000000000000",
			`{"status":"failed","outcome_reason":"bench"}`)
	}, http.StatusNoContent)
}

// BenchmarkTableRead reads one row of a table.
func BenchmarkTableRead(b *testing.B) {
	be := newBenchEnv(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := be.db.Pool.Exec(ctx, `insert into public.items (id, name) values (1, 'one')`)
	require.NoError(b, err)
	be.run(b, func() *http.Request {
		return serviceRequest(http.MethodGet, "/items?id=eq.1&select=id,name", "")
	}, http.StatusOK)
}
