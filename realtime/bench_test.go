package realtime

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// benchFrame is a realistic workflow_runs UPDATE (~1 KiB).
const benchFrame = `[null,null,"realtime:db","postgres_changes",{"ids":[11111111],"data":{"schema":"public","table":"workflow_runs","commit_timestamp":"2026-03-01T12:00:00.123Z","type":"UPDATE","columns":[{"name":"id","type":"uuid"},{"name":"project_id","type":"uuid"},{"name":"workflow_id","type":"uuid"},{"name":"status","type":"text"},{"name":"trigger","type":"text"},{"name":"attempt","type":"int4"},{"name":"duration_ms","type":"int8"},{"name":"error","type":"text"},{"name":"started_at","type":"timestamptz"},{"name":"finished_at","type":"timestamptz"},{"name":"updated_at","type":"timestamptz"}],"record":{"id":"7f1c1c7e-3f0c-4a55-9a0e-2f4f9b1d2c11","project_id":"0b6f8a51-2c1d-4a7e-9f3b-5d6c7e8f9a0b","workflow_id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","status":"failed","trigger":"webhook","attempt":3,"duration_ms":9007199254740993,"error":"step 4 (http) returned 502 Bad Gateway","started_at":"2026-03-01T11:59:58.001+00:00","finished_at":"2026-03-01T12:00:00.100+00:00","updated_at":"2026-03-01T12:00:00.100+00:00"},"old_record":{"id":"7f1c1c7e-3f0c-4a55-9a0e-2f4f9b1d2c11"},"errors":null}}]`

// BenchmarkDecodeDispatch measures what the client does per postgres_changes
// frame: decode the frame and the change, match bindings, hand the change to
// the consumer channel.
func BenchmarkDecodeDispatch(b *testing.B) {
	c, err := New(Config{URL: "http://localhost", APIKey: "k", BufferSize: 1}, dbChannel())
	if err != nil {
		b.Fatal(err)
	}
	ch := c.channels[0]
	ch.serverIDs = []int64{11111111}
	raw := []byte(benchFrame)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		now := time.Now()
		f, err := decodeFrame(VsnV2, raw, true) // as the session's reader does
		if err != nil {
			b.Fatal(err)
		}
		dc, err := decodeChange(f.Payload, now)
		if err != nil {
			b.Fatal(err)
		}
		ch.onChange(inbound{frame: f, change: dc, at: now})
		if _, ok := (<-c.out.events).(*Change); !ok {
			b.Fatal("change not delivered")
		}
	}
}

// BenchmarkSessionThroughput measures frames/s through one session (fake
// server over loopback, reader, controller) into a consumer that never
// blocks the client.
func BenchmarkSessionThroughput(b *testing.B) {
	srv := newFakeServer(b)
	cfg := Config{URL: srv.URL(), APIKey: testAPIKey, BufferSize: 4096, HeartbeatInterval: time.Second}
	c, err := New(cfg, dbChannel())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	defer func() {
		cancel()
		<-runErr
	}()

	fc := srv.waitConn(b)
	fc.waitMsg(b, "join", isEvent("phx_join"))
	if _, ok := (<-c.Events()).(Ready); !ok {
		b.Fatal("want Ready first")
	}
	// The fake assigns ids by hashing the binding; rewrite the frame's id.
	id := bindingID(map[string]any{"event": "*", "schema": "public", "table": "workflow_runs"})
	raw := []byte(replaceID(benchFrame, id))

	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	done := make(chan int)
	go func() {
		n := 0
		for n < b.N {
			switch ev := (<-c.Events()).(type) {
			case *Change:
				n++
			case Gap:
				n += ev.Dropped
			}
		}
		done <- n
	}()
	for i := 0; i < b.N; i++ {
		fc.sendRaw(websocket.TextMessage, raw)
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	b.ReportMetric(float64(c.Stats().ChangesDropped), "dropped")
}

func replaceID(frame string, id int64) string {
	const old = "11111111"
	for i := 0; i+len(old) <= len(frame); i++ {
		if frame[i:i+len(old)] == old {
			return frame[:i] + formatRef(uint64(id)) + frame[i+len(old):]
		}
	}
	return frame
}
