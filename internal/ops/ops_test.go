package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/realtime"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	var subscribed atomic.Bool
	stats := func() realtime.Stats {
		st := realtime.StateJoined
		if subscribed.Load() {
			st = realtime.StateSubscribed
		}
		return realtime.Stats{
			State: realtime.StateConnected, FramesReceived: 42, MalformedFrames: 1, LastFrameAt: time.Unix(1700000000, 0),
			Reconnects: map[string]uint64{"heartbeat_timeout": 2},
			Channels:   []realtime.ChannelStats{{Name: "runs", State: st, ChangesDelivered: 7, Gaps: 1, Ready: 3}},
		}
	}
	checks := map[string]Check{
		"realtime": func() error {
			if !subscribed.Load() {
				return errors.New("channel runs is not subscribed")
			}
			return nil
		},
	}
	s, err := New("127.0.0.1:0", checks, nil, NewRealtimeCollector(stats))
	require.NoError(t, err)
	addr, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	base := "http://" + addr

	code, body := get(t, base+"/healthz")
	assert.Equal(t, 200, code)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	code, body = get(t, base+"/readyz")
	assert.Equal(t, 503, code)
	assert.JSONEq(t, `{"status":"not ready","failing":{"realtime":"channel runs is not subscribed"}}`, body)
	assert.False(t, s.Ready())

	subscribed.Store(true)
	code, _ = get(t, base+"/readyz")
	assert.Equal(t, 200, code)

	code, body = get(t, base+"/metrics")
	assert.Equal(t, 200, code)
	for _, want := range []string{
		`meshhook_alerts_realtime_connected 1`,
		`meshhook_alerts_realtime_channel_subscribed{channel="runs"} 1`,
		`meshhook_alerts_realtime_frames_received_total 42`,
		`meshhook_alerts_realtime_frames_malformed_total 1`,
		`meshhook_alerts_realtime_changes_delivered_total{channel="runs"} 7`,
		`meshhook_alerts_realtime_gaps_total{channel="runs"} 1`,
		`meshhook_alerts_realtime_subscriptions_confirmed_total{channel="runs"} 3`,
		`meshhook_alerts_realtime_reconnects_total{reason="heartbeat_timeout"} 2`,
		`meshhook_alerts_realtime_last_frame_timestamp_seconds 1.7e+09`,
		`go_goroutines`,
	} {
		assert.Contains(t, body, want)
	}
}

func TestBadAddressFailsAtListen(t *testing.T) {
	s, err := New("127.0.0.1:notaport", nil, nil)
	require.NoError(t, err)
	_, err = s.Listen()
	assert.Error(t, err)
}

func TestMount(t *testing.T) {
	s, err := New("127.0.0.1:0", nil, nil)
	require.NoError(t, err)
	s.Mount("/api/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "api "+r.URL.Path)
	}))
	addr, err := s.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	code, body := get(t, "http://"+addr+"/api/status")
	assert.Equal(t, 200, code)
	assert.Equal(t, "api /api/status", body)
	code, _ = get(t, "http://"+addr+"/healthz")
	assert.Equal(t, 200, code, "the operational endpoints stay")
}

func TestPprofServesProfiles(t *testing.T) {
	srv, err := New("127.0.0.1:0", nil, nil)
	require.NoError(t, err)
	srv.Mount("/debug/pprof/", Pprof())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	code, body := get(t, ts.URL+"/debug/pprof/heap?debug=1")
	require.Equal(t, 200, code)
	assert.Contains(t, body, "heap profile")
	code, body = get(t, ts.URL+"/debug/pprof/")
	require.Equal(t, 200, code)
	assert.Contains(t, body, "goroutine")
}
