package realtimetest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// benchRowsEnv overrides the number of workflow_runs rows the CDC benchmark
// updates per iteration.
const benchRowsEnv = "REALTIMETEST_BENCH_ROWS"

// benchBatch is the number of UPDATEs per transaction, as in the pipeline
// benchmark's saturation phase.
const benchBatch = 1000

// BenchmarkCDCThroughput measures the stand-in's logical-decoding path end to
// end: MeshHook's workflow_runs rows are UPDATEd in transactions of 1,000 as
// fast as PostgreSQL takes them, and one websocket client subscribed like the
// daemon (vsn 2.0.0, service-role key, one filter-less postgres_changes
// binding on public.workflow_runs) counts the frames. It reports the changes
// per second the client received (first to last frame) and the CPU time of
// this process (server, CDC, client and the writer) per change.
//
//	go test -run '^$' -bench CDCThroughput ./realtime/realtimetest
func BenchmarkCDCThroughput(b *testing.B) {
	n := 20000
	if v := os.Getenv(benchRowsEnv); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(b, err, benchRowsEnv)
		require.Positive(b, n, benchRowsEnv)
	}
	ctx := context.Background()
	db := pgtest.Shared(b).NewDatabase(b)
	ts := StartTestServer(b, Options{JWTSecret: pgtest.JWTSecret, Logger: zap.NewNop()})
	cdc, err := StartCDC(ctx, db.URL, ts.Server, CDCOptions{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, cdc.Close()) })

	ids := benchRuns(ctx, b, db, n)
	// Let the INSERTs drain through the CDC before anyone subscribes.
	require.Eventually(b, func() bool { return cdc.Changes() >= n }, 2*time.Minute, 10*time.Millisecond)

	c := dialBenchClient(b, ts)
	statuses := []string{"failed", "running"}
	var (
		totalChanges int
		totalElapsed time.Duration
		totalCPU     time.Duration
	)
	i := 0
	for b.Loop() {
		c.expect(n)
		cpu0 := processCPU(b)
		status := statuses[i%len(statuses)]
		i++
		for j := 0; j < n; j += benchBatch {
			_, err := db.Pool.Exec(ctx, `update public.workflow_runs set status = $1, finished_at = now() where id = any($2::text[]::uuid[])`,
				status, ids[j:min(j+benchBatch, n)])
			require.NoError(b, err)
		}
		first, last, lastFrame := c.wait(b, 5*time.Minute)
		totalCPU += processCPU(b) - cpu0
		totalElapsed += last.Sub(first)
		totalChanges += n
		checkBenchFrame(b, lastFrame, status)
	}
	b.ReportMetric(float64(totalChanges)/totalElapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(totalCPU.Microseconds())/float64(totalChanges), "cpu-µs/change")
}

// benchRuns inserts n running workflow_runs rows of one project and
// workflow and returns their ids.
func benchRuns(ctx context.Context, b *testing.B, db *pgtest.DB, n int) []string {
	b.Helper()
	var project, workflow string
	require.NoError(b, db.Pool.QueryRow(ctx, `insert into public.projects (owner, name)
		values (gen_random_uuid(), 'bench') returning id::text`).Scan(&project))
	require.NoError(b, db.Pool.QueryRow(ctx, `insert into public.workflow_definitions (project_id, slug, definition, name)
		values ($1, 'bench', '{}', 'bench') returning id::text`, project).Scan(&workflow))
	rows, err := db.Pool.Query(ctx, `insert into public.workflow_runs (project_id, workflow_id, status)
		select $1, $2, 'running' from generate_series(1, $3) returning id::text`, project, workflow, n)
	require.NoError(b, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(b, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(b, rows.Err())
	require.Len(b, ids, n)
	return ids
}

// benchClient is a websocket client that only counts postgres_changes
// frames, so that its own cost stays small next to the server's.
type benchClient struct {
	conn *websocket.Conn

	mu       sync.Mutex
	want     int
	got      int
	first    time.Time
	last     time.Time
	lastData []byte
	done     chan struct{}
	readErr  error
}

// benchChangePrefix starts every V2 postgres_changes frame of the benchmark's topic.
var benchChangePrefix = []byte(`[null,null,"realtime:bench","postgres_changes",`)

// dialBenchClient connects with the service-role key and joins
// realtime:bench the way the daemon does, waiting for "Subscribed to PostgreSQL".
func dialBenchClient(b *testing.B, ts *TestServer) *benchClient {
	b.Helper()
	q := url.Values{"apikey": {pgtest.ServiceRoleKey()}, "vsn": {"2.0.0"}}
	u := "ws" + ts.HTTP.URL[len("http"):] + "/realtime/v1/websocket?" + q.Encode()
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	require.NoError(b, err)
	b.Cleanup(func() { _ = conn.Close() })
	join, err := json.Marshal([]any{"1", "1", "realtime:bench", "phx_join", joinPayload("",
		map[string]any{"event": "*", "schema": "public", "table": "workflow_runs"})})
	require.NoError(b, err)
	require.NoError(b, conn.WriteMessage(websocket.TextMessage, join))
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		_, data, err := conn.ReadMessage()
		require.NoError(b, err, "waiting for the subscription")
		if bytes.Contains(data, []byte(`"Subscribed to PostgreSQL"`)) {
			break
		}
		require.NotContains(b, string(data), `"error"`)
	}
	_ = conn.SetReadDeadline(time.Time{})
	c := &benchClient{conn: conn}
	go c.readLoop()
	return c
}

func (c *benchClient) readLoop() {
	var buf bytes.Buffer
	for {
		data, err := c.read(&buf)
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			if c.done != nil {
				close(c.done)
				c.done = nil
			}
			c.mu.Unlock()
			return
		}
		if bytes.HasPrefix(data, benchChangePrefix) && c.done != nil {
			now := time.Now()
			if c.got == 0 {
				c.first = now
			}
			c.got++
			c.last = now
			if c.got == c.want {
				c.lastData = bytes.Clone(data)
				close(c.done)
				c.done = nil
			}
		}
		c.mu.Unlock()
	}
}

// read reads the next message into buf, which it reuses.
func (c *benchClient) read(buf *bytes.Buffer) ([]byte, error) {
	_, r, err := c.conn.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// expect arms the client for the next n change frames.
func (c *benchClient) expect(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.got = n, 0
	c.lastData = nil
	c.done = make(chan struct{})
}

// wait blocks until the expected frames arrived and returns the arrival of
// the first and the last, and the last frame.
func (c *benchClient) wait(b *testing.B, timeout time.Duration) (first, last time.Time, lastFrame []byte) {
	b.Helper()
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done != nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			c.mu.Lock()
			got, want := c.got, c.want
			c.mu.Unlock()
			b.Fatalf("received %d of %d change frames within %s", got, want, timeout)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NoError(b, c.readErr)
	require.Equal(b, c.want, c.got)
	return c.first, c.last, c.lastData
}

// checkBenchFrame asserts the last frame is a well-formed UPDATE of the
// benchmark's rows.
func checkBenchFrame(b *testing.B, raw []byte, status string) {
	b.Helper()
	f, err := decodeFrame("2.0.0", raw)
	require.NoError(b, err)
	var p struct {
		IDs  []int64  `json:"ids"`
		Data testData `json:"data"`
	}
	require.NoError(b, json.Unmarshal(f.Payload, &p), f.Raw)
	require.Len(b, p.IDs, 1)
	require.Equal(b, Update, p.Data.Type)
	require.Equal(b, "workflow_runs", p.Data.Table)
	require.Equal(b, strconv.Quote(status), string(p.Data.Record["status"]))
	require.Len(b, p.Data.OldRecord, 1, "default replica identity: the key only")
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
