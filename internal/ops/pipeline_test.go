package ops

import (
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/sender"
)

type fakeEngine struct{}

func (fakeEngine) Stats() alerts.Stats {
	return alerts.Stats{Changes: 7, Failures: 1, Catchups: 2, CatchupRows: 40, RuleLoads: 2, Rules: 3, Tracked: 4, Scheduled: 2}
}

func (fakeEngine) ByEvent() map[alerts.Event]alerts.EventCounts {
	return map[alerts.Event]alerts.EventCounts{
		alerts.EventFailed:  {Claimed: 5, Suppressed: 2, Duplicates: 1},
		alerts.EventDelayed: {Claimed: 1},
	}
}

func (fakeEngine) Rejected() int { return 1 }

func TestPipelineMetricsScrape(t *testing.T) {
	snd := func() sender.Stats {
		return sender.Stats{Leased: 9, Delivered: 6, Failed: 1, Attempts: map[string]uint64{"ok": 6, "http_500": 3},
			Reschedules: map[string]uint64{"circuit_open": 2}, Held: 5, Running: 2, Waiting: 3, OpenCircuits: 1}
	}
	lat := NewDispatchLatency()
	lat.ObserveDispatch(sender.Dispatch{Sent: 3 * time.Millisecond, WasSent: true, Responded: 12 * time.Millisecond, GotResponse: true,
		Daemon: 300 * time.Microsecond, HasDaemon: true})
	lat.ObserveDispatch(sender.Dispatch{Sent: 0, WasSent: true}) // sent, no response (e.g. a timeout)
	lat.ObserveAttempt("failed", "http_500")
	lat.ObserveAttempt("failed", "ok")
	lat.ObserveAttempt("failed", "ok")
	var loaded atomic.Bool
	srv, err := New("127.0.0.1:0", map[string]Check{"rules": RulesLoaded(func() bool { return loaded.Load() })}, nil,
		NewEngineCollector(fakeEngine{}), NewSenderCollector(snd), lat)
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	code, body := get(t, ts.URL+"/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`meshhook_alerts_engine_alerts_claimed_total{event="failed"} 5`,
		`meshhook_alerts_engine_alerts_suppressed_total{event="failed"} 2`,
		`meshhook_alerts_engine_alerts_duplicate_total{event="failed"} 1`,
		`meshhook_alerts_engine_alerts_claimed_total{event="delayed"} 1`,
		`meshhook_alerts_engine_catchups_total 2`,
		`meshhook_alerts_engine_catchup_rows_total 40`,
		`meshhook_alerts_engine_rules_cached 3`,
		`meshhook_alerts_engine_rule_loads_total 2`,
		`meshhook_alerts_engine_rules_rejected 1`,
		`meshhook_alerts_sender_attempts_total{reason="http_500"} 3`,
		`meshhook_alerts_sender_alerts_delivered_total 6`,
		`meshhook_alerts_sender_reschedules_total{reason="circuit_open"} 2`,
		`meshhook_alerts_sender_queue_depth 5`,
		`meshhook_alerts_sender_in_flight 2`,
		`meshhook_alerts_sender_circuits_open 1`,
		`meshhook_alerts_dispatch_commit_to_send_seconds_count 2`,
		`meshhook_alerts_dispatch_daemon_seconds_count 1`,
		`meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0004"} 1`,
		`meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0002"} 0`,
		`meshhook_alerts_dispatch_attempts_total{event="failed",reason="http_500"} 1`,
		`meshhook_alerts_dispatch_attempts_total{event="failed",reason="ok"} 2`,
		`meshhook_alerts_dispatch_commit_to_response_seconds_bucket{le="0.016"} 1`,
		`meshhook_alerts_dispatch_commit_to_response_seconds_bucket{le="0.008"} 0`,
		`meshhook_alerts_dispatch_commit_to_response_seconds_count 1`,
	} {
		assert.Contains(t, body, want)
	}

	code, body = get(t, ts.URL+"/readyz")
	assert.Equal(t, 503, code)
	assert.Contains(t, body, "alert rules not loaded yet")
	loaded.Store(true)
	code, _ = get(t, ts.URL+"/readyz")
	assert.Equal(t, 200, code)
}
