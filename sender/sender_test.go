package sender

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/delivery"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func alert(id, url string) Alert {
	return Alert{ID: id, ConfigID: "rule-" + id, WebhookID: "msg_" + id, RunID: "run", Event: "failed",
		Payload: []byte(`{"type":"workflow_run.failed"}`), TargetURL: url, Secrets: []string{secretA}, CreatedAt: time.Now()}
}

// fastOptions suits tests: short timeouts and backoff, and loopback
// receivers allowed through the SSRF guard by the allowlist.
func fastOptions() Options {
	return Options{Workers: 4, QueueSize: 16, RequestTimeout: 2 * time.Second, PollInterval: 20 * time.Millisecond,
		ResponseExcerptBytes: 64, AllowInsecureHTTP: true, UserAgent: "meshhook-alerts/test",
		AllowedNetworks: []string{"127.0.0.0/8"}, DrainTimeout: 5 * time.Second,
		Schedule: Schedule{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, MaxAge: time.Minute}}
}

func runSender(t *testing.T, opts Options, store Store) (*Sender, func()) {
	t.Helper()
	s, err := New(opts, store, zaptest.NewLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("sender did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func newReceiver(t *testing.T) *sendertest.Receiver {
	t.Helper()
	rcv, err := sendertest.NewReceiver(secretA)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rcv.Close() })
	return rcv
}

func waitDeliveries(t *testing.T, rcv *sendertest.Receiver, n int) []sendertest.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := rcv.Wait(ctx, n)
	require.NoError(t, err)
	return got
}

func eventually(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 5*time.Millisecond, append([]any{msg}, args...)...)
}

func TestDeliverSuccessIsSignedAndRecorded(t *testing.T) {
	rcv := newReceiver(t)
	a := alert("a1", rcv.URL+"/hook")
	a.Headers = map[string]string{"X-Team": "billing", "webhook-id": "forged"}
	a.MeshHookSignature = true
	store := newMemStore(a)
	s, stop := runSender(t, fastOptions(), store)
	s.Wake()

	d := waitDeliveries(t, rcv, 1)[0]
	require.NoError(t, d.VerifyErr)
	assert.Equal(t, "msg_a1", d.ID, "custom headers cannot override signature headers")
	assert.Equal(t, "billing", d.Header.Get("X-Team"))
	assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
	assert.Equal(t, "meshhook-alerts/test", d.Header.Get("User-Agent"))
	assert.Equal(t, MeshHookSignature(secretA, d.Body), d.Header.Get(HeaderMeshHook))

	eventually(t, func() bool { return store.status("a1") == StatusSucceeded }, "alert succeeds")
	stop()
	as := store.attemptsOf("a1")
	require.Len(t, as, 1)
	assert.Equal(t, 204, as[0].StatusCode)
	assert.Equal(t, "ok", as[0].Outcome)
	assert.Len(t, rcv.Deliveries(), 1)
	row := store.row("a1")
	assert.Equal(t, 1, row.attempts)
	assert.False(t, row.done.IsZero())
	assert.True(t, row.next.IsZero(), "a finished alert has no next attempt")
	st := s.Stats()
	assert.Equal(t, uint64(1), st.Delivered)
	assert.Equal(t, uint64(1), st.Attempts["ok"])
	assert.Zero(t, st.Held)
}

// Every scripted receiver behaviour ends in the right outcome.
func TestScriptedReceiverOutcomes(t *testing.T) {
	type want struct {
		status   delivery.Status // final (or current) alert status
		outcomes []string        // recorded attempt outcomes; "*reset" accepts either reset reason
	}
	cases := []struct {
		name  string
		steps []sendertest.Step
		n     int // deliveries to wait for
		want  want
	}{
		{"500 500 200", []sendertest.Step{sendertest.Status(500), sendertest.Status(500), sendertest.Status(200)}, 3,
			want{StatusSucceeded, []string{"http_500", "http_500", "ok"}}},
		{"429 with Retry-After", []sendertest.Step{{Status: 429, Header: http.Header{"Retry-After": {"1"}}}}, 2,
			want{StatusSucceeded, []string{"http_429", "ok"}}},
		{"410 gone", []sendertest.Step{sendertest.Status(410)}, 1, want{StatusFailed, []string{"gone"}}},
		{"400 permanent", []sendertest.Step{sendertest.Status(400)}, 1, want{StatusFailed, []string{"http_400"}}},
		{"slow", []sendertest.Step{{Status: 200, Delay: 5 * time.Second}}, 2, want{StatusSucceeded, []string{"timeout", "ok"}}},
		{"never answers", []sendertest.Step{{Hang: true}}, 2, want{StatusSucceeded, []string{"timeout", "ok"}}},
		{"reset connection", []sendertest.Step{{Reset: true}}, 2, want{StatusSucceeded, []string{"*reset", "ok"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rcv := newReceiver(t)
			rcv.ScriptSteps(c.steps...)
			store := newMemStore(alert("x", rcv.URL))
			opts := fastOptions()
			opts.RequestTimeout = 500 * time.Millisecond
			opts.Lease = 5 * time.Second
			runSender(t, opts, store)
			got := waitDeliveries(t, rcv, c.n)
			for _, d := range got {
				assert.Equal(t, "msg_x", d.ID, "webhook-id is stable across attempts")
				assert.NoError(t, d.VerifyErr, "every attempt is re-signed")
			}
			eventually(t, func() bool { return store.allDone("x") }, "the alert finishes")
			as := store.attemptsOf("x")
			require.Len(t, as, len(c.want.outcomes), "%v", outcomes(as))
			for i, w := range c.want.outcomes {
				if w == "*reset" {
					assert.Contains(t, []string{"connection_reset", "connection_error"}, as[i].Outcome)
					continue
				}
				assert.Equal(t, w, as[i].Outcome)
				assert.Equal(t, i+1, as[i].Attempt)
			}
			assert.Equal(t, c.want.status, store.status("x"))
			if c.name == "410 gone" {
				eventually(t, func() bool {
					store.mu.Lock()
					defer store.mu.Unlock()
					return store.disabled["rule-x"] == "endpoint answered 410 Gone"
				}, "410 disables the rule")
			}
			if c.name == "429 with Retry-After" {
				assert.GreaterOrEqual(t, got[1].ReceivedAt.Sub(got[0].ReceivedAt), 900*time.Millisecond,
					"Retry-After postpones the retry beyond the 50ms backoff")
			}
		})
	}
}

// With two active secrets every attempt carries two signatures and each
// secret verifies it with the official library (zero-downtime rotation).
func TestRotationSignsWithEverySecret(t *testing.T) {
	rcv := newReceiver(t)
	a := alert("rot", rcv.URL)
	a.Secrets = []string{secretA, secretB}
	store := newMemStore(a)
	runSender(t, fastOptions(), store)
	d := waitDeliveries(t, rcv, 1)[0]
	assert.Len(t, strings.Fields(d.Signature), 2)
	for _, sec := range []string{secretA, secretB} {
		wh, err := standardwebhooks.NewWebhook(sec)
		require.NoError(t, err)
		assert.NoError(t, wh.Verify(d.Body, d.Header))
		assert.NoError(t, Verify(sec, d.Header, d.Body, 0, time.Now()))
	}
	other, _ := GenerateSecret()
	wh, _ := standardwebhooks.NewWebhook(other)
	assert.Error(t, wh.Verify(d.Body, d.Header))
}

func TestGoneDisablesTheRuleAndRedirectsAreNotFollowed(t *testing.T) {
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		switch r.URL.Path {
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	defer srv.Close()
	store := newMemStore(alert("gone", srv.URL+"/gone"), alert("moved", srv.URL+"/moved"))
	runSender(t, fastOptions(), store)

	eventually(t, func() bool { return store.allDone("gone", "moved") }, "both fail")
	assert.Equal(t, StatusFailed, store.status("gone"))
	assert.Equal(t, StatusFailed, store.status("moved"))
	eventually(t, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.disabled["rule-gone"] == "endpoint answered 410 Gone"
	}, "the rule is disabled")
	assert.Equal(t, []string{"redirect_301"}, outcomes(store.attemptsOf("moved")))
	_, followed := hits.Load("/elsewhere")
	assert.False(t, followed)
}

func TestRefusedTargets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	opts := fastOptions()
	opts.AllowInsecureHTTP = false
	opts.AllowedNetworks = nil
	bad := alert("badsecret", "https://hooks.example.com/x")
	bad.Secrets = []string{"whsec_!!!"}
	hdr := alert("badheader", "https://hooks.example.com/x")
	hdr.Headers = map[string]string{"X-Token": "a\r\nInjected: yes"}
	gone := alert("rulegone", "https://hooks.example.com/x")
	gone.Refusal = &Refusal{Reason: "rule_gone", Detail: "the alert's rule no longer exists"}
	tlsBad := alert("badtls", "https://hooks.example.com/x")
	tlsBad.TLS = &TLSConfig{CertPEM: "not a cert"}
	store := newMemStore(alert("plain", "http://hooks.example.com/x"), alert("relative", "/x"), bad, hdr, gone, tlsBad)
	runSender(t, opts, store)
	ids := []string{"plain", "relative", "badsecret", "badheader", "rulegone", "badtls"}
	eventually(t, func() bool { return store.allDone(ids...) }, "all fail")
	for id, want := range map[string]string{"plain": "insecure_url", "relative": "invalid_url", "badsecret": "bad_secret",
		"badheader": "bad_header", "badtls": "tls_config"} {
		assert.Equal(t, StatusFailed, store.status(id), id)
		assert.Equal(t, []string{want}, outcomes(store.attemptsOf(id)), id)
	}
	assert.Empty(t, store.attemptsOf("rulegone"), "a refused alert is failed without an attempt")
	r := store.row("rulegone")
	assert.Equal(t, "rule_gone", r.reason)
	assert.Equal(t, "the alert's rule no longer exists", r.lastErr)

	// Without the allowlist, a loopback receiver is refused by the SSRF guard.
	opts = fastOptions()
	opts.AllowedNetworks = nil
	store = newMemStore(alert("ssrf", srv.URL))
	runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone("ssrf") }, "fails")
	as := store.attemptsOf("ssrf")
	require.Len(t, as, 1)
	assert.Equal(t, "blocked_address", as[0].Outcome)
	assert.Contains(t, as[0].Error, "loopback address")
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Retries wait exactly the backoff (no jitter here) or the receiver's
// Retry-After, whichever is longer, measured on the injected clock.
func TestRetryTimingFollowsTheInjectedClock(t *testing.T) {
	rcv := newReceiver(t)
	rcv.ScriptSteps(sendertest.Status(500), sendertest.Step{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	t0 := clock.Now()
	a := alert("timed", rcv.URL)
	a.CreatedAt = t0
	store := &memStore{rows: map[string]*memRow{}, disabled: map[string]string{}}
	store.add(t0, a)
	opts := fastOptions()
	opts.Now = clock.Now
	opts.Schedule = Schedule{Initial: 10 * time.Second, Max: time.Minute, Multiplier: 2, MaxAge: time.Hour}
	runSender(t, opts, store)

	waitDeliveries(t, rcv, 1)
	eventually(t, func() bool { return store.status("timed") == StatusPending }, "first attempt recorded")
	assert.Equal(t, t0.Add(10*time.Second), store.row("timed").next, "first retry after Initial")

	settle := func() { time.Sleep(300 * time.Millisecond) }
	clock.Advance(9 * time.Second)
	settle()
	assert.Len(t, rcv.Deliveries(), 1, "not due before its time")
	clock.Advance(time.Second)
	waitDeliveries(t, rcv, 2)
	eventually(t, func() bool { return store.row("timed").attempts == 2 }, "second attempt recorded")
	assert.Equal(t, t0.Add(40*time.Second), store.row("timed").next, "Retry-After (30s) beats the 20s backoff")

	clock.Advance(29 * time.Second)
	settle()
	assert.Len(t, rcv.Deliveries(), 2)
	clock.Advance(time.Second)
	waitDeliveries(t, rcv, 3)
	eventually(t, func() bool { return store.status("timed") == StatusSucceeded }, "third attempt succeeds")
	assert.Equal(t, []string{"http_500", "http_429", "ok"}, outcomes(store.attemptsOf("timed")))
}

// Two senders sharing a store never deliver the same alert twice.
func TestTwoSendersNeverShareAnAlert(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get(HeaderID)]++
		mu.Unlock()
		time.Sleep(time.Millisecond)
		w.WriteHeader(204)
	}))
	defer srv.Close()
	var as []Alert
	var ids []string
	for i := range 200 {
		a := alert(fmt.Sprintf("s%03d", i), srv.URL)
		as = append(as, a)
		ids = append(ids, a.ID)
	}
	store := newMemStore(as...)
	s1, _ := runSender(t, fastOptions(), store)
	s2, _ := runSender(t, fastOptions(), store)
	eventually(t, func() bool { return store.allDone(ids...) }, "all delivered")
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, seen, 200)
	for id, n := range seen {
		assert.Equal(t, 1, n, id)
	}
	assert.Equal(t, uint64(200), s1.Stats().Delivered+s2.Stats().Delivered)
	assert.Positive(t, s1.Stats().Delivered)
	assert.Positive(t, s2.Stats().Delivered)
}

// An alert whose sender died while holding it (an expired lease) is taken
// over: the lost attempt is recorded as interrupted and the alert completes.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	rcv := newReceiver(t)
	a := alert("orphan", rcv.URL)
	store := newMemStore(a)
	store.mu.Lock()
	store.rows["orphan"].status = StatusDelivering // a dead sender's lease…
	store.rows["orphan"].next = time.Now().Add(-time.Second)
	store.mu.Unlock()
	runSender(t, fastOptions(), store)
	waitDeliveries(t, rcv, 1)
	eventually(t, func() bool { return store.status("orphan") == StatusSucceeded }, "completes")
	as := store.attemptsOf("orphan")
	assert.Equal(t, []string{"interrupted", "ok"}, outcomes(as))
	assert.Equal(t, 2, as[1].Attempt)
}

// A sender whose lease was taken over does not overwrite the new holder's state.
func TestLostLeaseDoesNotOverwrite(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(500)
	}))
	defer srv.Close()
	defer close(release)
	store := newMemStore(alert("stolen", srv.URL))
	s, _ := runSender(t, fastOptions(), store)
	eventually(t, func() bool { return store.status("stolen") == StatusDelivering }, "leased")
	store.mu.Lock()
	store.rows["stolen"].next = time.Now().Add(time.Hour) // another sender re-leased it
	store.mu.Unlock()
	release <- struct{}{}
	eventually(t, func() bool { return s.Stats().LostLeases == 1 }, "the stale update is refused")
	assert.Equal(t, StatusDelivering, store.status("stolen"))
	assert.Equal(t, []string{"http_500"}, outcomes(store.attemptsOf("stolen")), "the attempt itself is still recorded")
}

// A blackholed endpoint holds at most its per-host share of workers: alerts
// to a healthy endpoint keep flowing while every attempt to it hangs.
func TestBlackholedEndpointDoesNotDelayOthers(t *testing.T) {
	hole := newReceiver(t)
	steps := make([]sendertest.Step, 100)
	for i := range steps {
		steps[i] = sendertest.Step{Hang: true}
	}
	hole.ScriptSteps(steps...)
	var maxHole atomic.Int64
	hole.OnDelivery(func(sendertest.Delivery) {
		if n := int64(hole.InFlight()); n > maxHole.Load() {
			maxHole.Store(n)
		}
	})
	healthy := newReceiver(t)

	store := newMemStore()
	opts := fastOptions()
	opts.Workers, opts.PerHostConcurrency, opts.QueueSize = 8, 2, 128
	opts.RequestTimeout = time.Minute // hangs outlast the test
	opts.Lease = 5 * time.Minute
	opts.DrainTimeout = 100 * time.Millisecond
	// The blackholed alerts are due first.
	base := time.Now().Add(-time.Minute)
	var holeIDs, okIDs []string
	for i := range 30 {
		a := alert(fmt.Sprintf("hole%02d", i), hole.URL)
		store.add(base, a)
		holeIDs = append(holeIDs, a.ID)
	}
	for i := range 30 {
		a := alert(fmt.Sprintf("ok%02d", i), healthy.URL)
		store.add(base.Add(time.Second), a)
		okIDs = append(okIDs, a.ID)
	}
	s, stop := runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone(okIDs...) }, "healthy alerts are all delivered")
	assert.Len(t, healthy.Deliveries(), 30)
	for _, id := range holeIDs {
		assert.NotEqual(t, StatusSucceeded, store.status(id))
	}
	assert.LessOrEqual(t, hole.InFlight(), 2, "the blackhole holds at most its per-host share")
	assert.LessOrEqual(t, maxHole.Load(), int64(2))
	assert.Equal(t, 2, len(hole.Deliveries()), "only per_host_concurrency attempts reached the blackhole")
	assert.Equal(t, 2, s.Stats().Running)
	stop()
	// Shutdown cancelled the hanging attempts; they are recorded and pending.
	for _, id := range holeIDs {
		assert.Equal(t, StatusPending, store.status(id), id)
	}
}

// Consecutive failures open a host's circuit: its alerts are rescheduled
// without attempts until a probe after the cooldown succeeds.
func TestCircuitBreakerOpensAndRecovers(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Script(500, 500, 500)
	opts := fastOptions()
	opts.PerHostConcurrency = 1
	opts.Breaker = BreakerOptions{Failures: 3, Cooldown: 500 * time.Millisecond}
	opts.Schedule.Initial = 10 * time.Millisecond
	var ids []string
	store := newMemStore()
	for i := range 6 {
		a := alert(fmt.Sprintf("c%d", i), rcv.URL)
		store.add(time.Now().Add(time.Duration(i)*time.Millisecond), a)
		ids = append(ids, a.ID)
	}
	s, _ := runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone(ids...) }, "all delivered after the circuit closes")
	for _, id := range ids {
		assert.Equal(t, StatusSucceeded, store.status(id))
	}
	assert.Len(t, rcv.Deliveries(), 9, "3 failures, then nothing until the probe, then 6 successes")
	st := s.Stats()
	assert.Equal(t, uint64(3), st.Attempts["http_500"])
	assert.Equal(t, uint64(6), st.Attempts["ok"])
	assert.Positive(t, st.Reschedules["circuit_open"])
	assert.Zero(t, st.OpenCircuits)
}

// A small memory budget never drops alerts: the rest stay pending in the
// store until there is room (back-pressure).
func TestBackPressureKeepsAlertsInTheStore(t *testing.T) {
	rcv := newReceiver(t)
	var maxHeld atomic.Int64
	opts := fastOptions()
	opts.QueueSize, opts.Workers = 3, 2
	var ids []string
	var as []Alert
	for i := range 40 {
		a := alert(fmt.Sprintf("bp%02d", i), rcv.URL)
		as = append(as, a)
		ids = append(ids, a.ID)
	}
	store := newMemStore(as...)
	s, _ := runSender(t, opts, store)
	rcv.OnDelivery(func(sendertest.Delivery) {
		if h := int64(s.Stats().Held); h > maxHeld.Load() {
			maxHeld.Store(h)
		}
	})
	eventually(t, func() bool { return store.allDone(ids...) }, "all delivered")
	assert.Len(t, rcv.Deliveries(), 40)
	assert.LessOrEqual(t, maxHeld.Load(), int64(3))
}

// Outcomes are written in batches: many deliveries need far fewer writes.
func TestOutcomesAreWrittenInBatches(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	opts := fastOptions()
	opts.Workers, opts.PerHostConcurrency, opts.QueueSize = 16, 16, 512
	opts.WriteLinger = 20 * time.Millisecond
	var ids []string
	var as []Alert
	for i := range 300 {
		a := alert(fmt.Sprintf("b%03d", i), srv.URL)
		as = append(as, a)
		ids = append(ids, a.ID)
	}
	store := newMemStore(as...)
	s, _ := runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone(ids...) }, "all delivered")
	st := s.Stats()
	assert.Equal(t, uint64(300), st.WriteRows)
	assert.Less(t, st.WriteBatches, uint64(150), "outcomes share writes")
}

// A failing store does not lose alerts: outcomes that cannot be written
// leave the alert leased, and it is retried once the lease expires.
func TestUnwritableOutcomeIsRetriedAfterTheLease(t *testing.T) {
	rcv := newReceiver(t)
	store := newMemStore(alert("w", rcv.URL))
	store.reportErr = fmt.Errorf("database unavailable")
	opts := fastOptions()
	opts.RequestTimeout = 200 * time.Millisecond
	opts.Lease = 800 * time.Millisecond
	s, _ := runSender(t, opts, store)
	waitDeliveries(t, rcv, 1)
	eventually(t, func() bool { return s.Stats().WriteFailures >= 1 }, "the write gives up")
	store.mu.Lock()
	store.reportErr = nil
	store.mu.Unlock()
	eventually(t, func() bool { return store.status("w") == StatusSucceeded }, "retried after the lease expired")
	got := rcv.Deliveries()
	require.GreaterOrEqual(t, len(got), 2, "at-least-once: the unrecorded attempt is repeated")
	for _, d := range got {
		assert.Equal(t, "msg_w", d.ID, "with the same webhook-id")
	}
}

func TestNewRejectsAShortLease(t *testing.T) {
	_, err := New(Options{RequestTimeout: 10 * time.Second, Lease: 15 * time.Second}, newMemStore(), nil)
	require.ErrorContains(t, err, "lease")
	_, err = New(Options{AllowedNetworks: []string{"not a network!"}}, newMemStore(), nil)
	require.ErrorContains(t, err, "allowed network")
}

// An outcome's log line names the alert and the place in settle that wrote
// it, not the logging helper.
func TestOutcomeLogLinesNameTheAlertAndTheirCaller(t *testing.T) {
	rcv := newReceiver(t)
	store := newMemStore(alert("a1", rcv.URL+"/hook"))
	core, logs := observer.New(zap.InfoLevel)
	s, err := New(fastOptions(), store, zap.New(core, zap.AddCaller()))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	s.Wake()
	eventually(t, func() bool { return logs.FilterMessage("alert delivered").Len() == 1 }, "the delivery is logged")
	e := logs.FilterMessage("alert delivered").All()[0]
	assert.Equal(t, "a1", e.ContextMap()["alert_id"])
	assert.Equal(t, "msg_a1", e.ContextMap()["webhook_id"])
	assert.Equal(t, "run", e.ContextMap()["run_id"], "every line about an alert names its run")
	assert.Equal(t, "rule-a1", e.ContextMap()["rule_id"])
	assert.True(t, strings.HasSuffix(e.Caller.Function, ".(*Sender).settle"), "caller %s", e.Caller.Function)
}

// The response excerpt is the body's first ResponseExcerptBytes bytes,
// whether the receiver sends a length or not; an empty body gives none.
func TestResponseExcerpt(t *testing.T) {
	bodies := map[string]string{
		"long":    strings.Repeat("0123456789", 10), // Content-Length 100, over the 64-byte excerpt
		"chunked": "try again later",                // no Content-Length
		"empty":   "",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "chunked" {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.(http.Flusher).Flush() // headers out first: the length is unknown
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(bodies[name])))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, bodies[name])
	}))
	t.Cleanup(srv.Close)
	store := newMemStore(alert("long", srv.URL+"/long"), alert("chunked", srv.URL+"/chunked"), alert("empty", srv.URL+"/empty"))
	s, stop := runSender(t, fastOptions(), store)
	s.Wake()
	for name := range bodies {
		eventually(t, func() bool { return len(store.attemptsOf(name)) > 0 }, name+" attempted")
	}
	stop()
	for name, want := range map[string]string{"long": bodies["long"][:64], "chunked": "try again later", "empty": ""} {
		as := store.attemptsOf(name)
		require.NotEmpty(t, as, name)
		assert.Equal(t, want, as[0].ResponseExcerpt, name)
		assert.Equal(t, http.StatusServiceUnavailable, as[0].StatusCode, name)
	}
}
