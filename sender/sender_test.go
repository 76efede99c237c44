package sender

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// memStore is an in-memory Store.
type memStore struct {
	mu       sync.Mutex
	alerts   map[string]*Alert
	status   map[string]string
	next     map[string]time.Time
	updates  []Update
	attempts []Attempt
	disabled map[string]string
}

func newMemStore(alerts ...Alert) *memStore {
	m := &memStore{alerts: map[string]*Alert{}, status: map[string]string{}, next: map[string]time.Time{}, disabled: map[string]string{}}
	for i := range alerts {
		a := alerts[i]
		m.alerts[a.ID] = &a
		m.status[a.ID] = StatusPending
		m.next[a.ID] = time.Now()
	}
	return m
}

func (m *memStore) DueAlerts(_ context.Context, now time.Time, limit int) ([]Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for id, a := range m.alerts {
		if m.status[id] == StatusPending && !m.next[id].After(now) && len(out) < limit {
			out = append(out, *a)
		}
	}
	return out, nil
}

func (m *memStore) RecordAttempts(_ context.Context, a []Attempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts = append(m.attempts, a...)
	return nil
}

func (m *memStore) UpdateAlert(_ context.Context, id string, u Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updates = append(m.updates, u)
	m.status[id] = u.Status
	m.alerts[id].Attempts = u.Attempts
	if u.NextAttemptAt != nil {
		m.next[id] = *u.NextAttemptAt
	}
	return nil
}

func (m *memStore) DisableConfig(_ context.Context, id, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.disabled[id] = reason
	return nil
}

func (m *memStore) state(id string) (string, []Attempt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var as []Attempt
	for _, a := range m.attempts {
		if a.AlertID == id {
			as = append(as, a)
		}
	}
	return m.status[id], as
}

func alert(id, url string) Alert {
	return Alert{ID: id, ConfigID: "rule-" + id, WebhookID: "msg_" + id, RunID: "run", Event: "failed",
		Payload: []byte(`{"type":"workflow_run.failed"}`), TargetURL: url, Secrets: []string{secretA}, CreatedAt: time.Now()}
}

func fastOptions() Options {
	return Options{Workers: 4, QueueSize: 16, RequestTimeout: 2 * time.Second, PollInterval: 20 * time.Millisecond,
		ResponseExcerptBytes: 64, AllowInsecureHTTP: true, UserAgent: "meshhook-alerts/test",
		Schedule: Schedule{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, Multiplier: 2, MaxAge: time.Minute}}
}

func runSender(t *testing.T, opts Options, store Store) (*Sender, func()) {
	t.Helper()
	s, err := New(opts, store, zaptest.NewLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return s, func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("sender did not stop")
		}
	}
}

func TestDeliverSuccessIsSignedAndRecorded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	rcv, err := sendertest.NewReceiver(secretA)
	require.NoError(t, err)
	defer rcv.Close()
	a := alert("a1", rcv.URL+"/hook")
	a.Headers = map[string]string{"X-Team": "billing", "webhook-id": "forged"}
	a.MeshHookSignature = true
	store := newMemStore()
	s, stop := runSender(t, fastOptions(), store)
	store.mu.Lock()
	store.alerts[a.ID], store.status[a.ID] = &a, StatusPending
	store.mu.Unlock()
	require.True(t, s.Submit(a))
	require.False(t, s.Submit(a), "an alert in flight is not queued twice")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := rcv.Wait(ctx, 1)
	require.NoError(t, err)
	d := got[0]
	require.NoError(t, d.VerifyErr)
	assert.Equal(t, "msg_a1", d.ID, "custom headers cannot override signature headers")
	assert.Equal(t, "billing", d.Header.Get("X-Team"))
	assert.Equal(t, "application/json", d.Header.Get("Content-Type"))
	assert.Equal(t, "meshhook-alerts/test", d.Header.Get("User-Agent"))
	assert.Equal(t, MeshHookSignature(secretA, d.Body), d.Header.Get(HeaderMeshHook))

	require.Eventually(t, func() bool { st, _ := store.state("a1"); return st == StatusSucceeded }, 10*time.Second, 10*time.Millisecond)
	stop()
	_, attempts := store.state("a1")
	require.Len(t, attempts, 1)
	assert.Equal(t, 204, attempts[0].StatusCode)
	assert.Equal(t, "ok", attempts[0].Outcome)
	assert.Len(t, rcv.Deliveries(), 1)
}

func TestRetryThenSuccessKeepsTheWebhookID(t *testing.T) {
	rcv, err := sendertest.NewReceiver(secretA)
	require.NoError(t, err)
	defer rcv.Close()
	rcv.Script(500, 503)
	store := newMemStore(alert("a2", rcv.URL))
	_, stop := runSender(t, fastOptions(), store)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := rcv.Wait(ctx, 3)
	require.NoError(t, err)
	for _, d := range got {
		assert.Equal(t, "msg_a2", d.ID)
		assert.NoError(t, d.VerifyErr, "every attempt is re-signed")
	}
	require.Eventually(t, func() bool { st, _ := store.state("a2"); return st == StatusSucceeded }, 10*time.Second, 10*time.Millisecond)
	_, attempts := store.state("a2")
	require.Len(t, attempts, 3)
	assert.Equal(t, []string{"http_500", "http_503", "ok"}, []string{attempts[0].Outcome, attempts[1].Outcome, attempts[2].Outcome})
	assert.Equal(t, []int{1, 2, 3}, []int{attempts[0].Attempt, attempts[1].Attempt, attempts[2].Attempt})
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
	_, stop := runSender(t, fastOptions(), store)
	defer stop()

	require.Eventually(t, func() bool {
		g, _ := store.state("gone")
		m, _ := store.state("moved")
		return g == StatusFailed && m == StatusFailed
	}, 10*time.Second, 10*time.Millisecond)
	store.mu.Lock()
	assert.Equal(t, "endpoint answered 410 Gone", store.disabled["rule-gone"])
	store.mu.Unlock()
	_, moved := store.state("moved")
	assert.Equal(t, "redirect_301", moved[0].Outcome)
	_, followed := hits.Load("/elsewhere")
	assert.False(t, followed)
}

func TestTimeoutsAreRetriedAndInsecureURLsRefused(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	opts := fastOptions()
	opts.RequestTimeout = 200 * time.Millisecond
	opts.Schedule.Initial = time.Hour // one attempt is enough
	opts.Schedule.MaxAge = 48 * time.Hour
	store := newMemStore(alert("slow", srv.URL))
	_, stop := runSender(t, opts, store)
	require.Eventually(t, func() bool { _, as := store.state("slow"); return len(as) == 1 }, 10*time.Second, 10*time.Millisecond)
	stop()
	st, as := store.state("slow")
	assert.Equal(t, StatusPending, st)
	assert.Equal(t, "timeout", as[0].Outcome)

	opts = fastOptions()
	opts.AllowInsecureHTTP = false
	store = newMemStore(alert("plain", "http://hooks.example.com/x"))
	_, stop = runSender(t, opts, store)
	require.Eventually(t, func() bool { st, _ := store.state("plain"); return st == StatusFailed }, 10*time.Second, 10*time.Millisecond)
	stop()
	_, as = store.state("plain")
	assert.Equal(t, "insecure_url", as[0].Outcome)
}

func TestFullQueueLeavesAlertsForThePoller(t *testing.T) {
	rcv, err := sendertest.NewReceiver(secretA)
	require.NoError(t, err)
	defer rcv.Close()
	opts := fastOptions()
	opts.QueueSize = 1
	opts.Workers = 1
	s, err := New(opts, newMemStore(), zaptest.NewLogger(t))
	require.NoError(t, err)
	require.True(t, s.Submit(alert("q1", rcv.URL)))
	require.False(t, s.Submit(alert("q2", rcv.URL)), "a full queue refuses instead of blocking")

	// Run with q2 pending in the store: the poller delivers it.
	store := newMemStore(alert("q2", rcv.URL))
	_, stop := runSender(t, opts, store)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := rcv.Wait(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "msg_q2", got[0].ID)
}
