package sender

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// claimLeased inserts a into m already leased until until, as the engine's
// claim does for alerts it hands over with Deliver.
func (m *memStore) claimLeased(a Alert, until time.Time) Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows[a.ID] = &memRow{a: a, status: StatusDelivering, next: until}
	a.Lease = until
	return a
}

func TestDeliverSendsAnAlertClaimedLeasedWithoutLeasingIt(t *testing.T) {
	rcv := newReceiver(t)
	store := newMemStore()
	opts := fastOptions()
	s, stop := runSender(t, opts, store)
	defer stop()
	eventually(t, func() bool { return s.accepting.Load() }, "the sender runs")

	n, until := s.Reserve(3)
	require.Equal(t, 3, n)
	assert.WithinDuration(t, time.Now().Add(s.opts.Lease), until, 5*time.Second, "the lease to claim with")
	store.mu.Lock()
	leaseCalls := store.leaseCalls
	store.mu.Unlock()

	for _, id := range []string{"h1", "h2"} {
		require.True(t, s.Deliver(store.claimLeased(alert(id, rcv.URL), until)))
	}
	s.Unreserve(1)
	eventually(t, func() bool { return store.allDone("h1", "h2") }, "both handed-over alerts delivered")
	for _, id := range []string{"h1", "h2"} {
		assert.Equal(t, StatusSucceeded, store.status(id), "the outcome applies under the handed-over lease")
	}
	d := rcv.Deliveries()
	require.Len(t, d, 2)
	for _, got := range d {
		require.NoError(t, got.VerifyErr)
	}
	eventually(t, func() bool { return s.held.Load() == 0 }, "every reservation is settled or returned")
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.LessOrEqual(t, store.leaseCalls-leaseCalls, 3, "no lease per handed-over alert (only the idle polls)")
}

func TestReserveIsBoundedByTheQueue(t *testing.T) {
	opts := fastOptions()
	opts.QueueSize = 4
	s, err := New(opts, newMemStore(), zaptest.NewLogger(t))
	require.NoError(t, err)
	n, _ := s.Reserve(2)
	assert.Zero(t, n, "nothing before Run")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, func() bool { return s.accepting.Load() }, "the sender runs")
	n, _ = s.Reserve(3)
	assert.Equal(t, 3, n)
	n, _ = s.Reserve(3)
	assert.Equal(t, 1, n, "only what is left of the queue")
	n, _ = s.Reserve(1)
	assert.Zero(t, n, "full")
	s.Unreserve(4)
	cancel()
	require.NoError(t, <-done)
	n, _ = s.Reserve(1)
	assert.Zero(t, n, "nothing after Run")
	assert.False(t, s.Deliver(alert("late", "http://127.0.0.1:1/")), "a hand-over during shutdown is refused")
}

func TestRefusalWithRetryAfterPostponesTheAlert(t *testing.T) {
	a := alert("early", "https://hooks.example.com/x")
	a.Refusal = &Refusal{Reason: "rule_not_loaded", Detail: "not loaded yet", RetryAfter: 30 * time.Second}
	store := newMemStore(a)
	s, stop := runSender(t, fastOptions(), store)
	defer stop()
	s.Wake()
	eventually(t, func() bool { return store.row("early").reason == "rule_not_loaded" }, "postponed")
	r := store.row("early")
	assert.Equal(t, StatusPending, r.status, "waits rather than fails")
	assert.Empty(t, store.attemptsOf("early"), "without an attempt")
	assert.WithinDuration(t, time.Now().Add(30*time.Second), r.next, 10*time.Second, "due again after RetryAfter")
}
