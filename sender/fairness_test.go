package sender

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// Every PagerDuty rule posts to one URL: a rule whose events keep failing
// opens its own circuit, not one that holds back every other rule's pages.
func TestPagerDutyCircuitsArePerRule(t *testing.T) {
	var mu sync.Mutex
	answered := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if bytes.Contains(b.Bytes(), []byte("flood")) {
			answered["flood"]++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		answered["other"]++
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/v2/enqueue"

	opts := fastOptions()
	opts.QueueSize = 64
	opts.PerHostConcurrency = 1
	opts.Breaker = BreakerOptions{Failures: 3, Cooldown: time.Hour}
	store := newMemStore()
	base := time.Now().Add(-time.Minute)
	page := func(id, rule, key string) Alert {
		a := alert(id, url)
		a.ConfigID, a.Vendor, a.Secrets = rule, VendorPagerDuty, nil
		a.Payload = []byte(`{"routing_key":"` + key + `","event_action":"trigger"}`)
		return a
	}
	for i := range 5 {
		store.add(base, page(fmt.Sprintf("f%d", i), "rule-flood", "flood"))
	}
	var others []string
	for i := range 5 {
		a := page(fmt.Sprintf("o%d", i), "rule-other", "other")
		store.add(base.Add(time.Second), a)
		others = append(others, a.ID)
	}
	s, _ := runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone(others...) }, "the other rule's pages go through")
	for _, id := range others {
		assert.Equal(t, StatusSucceeded, store.status(id))
	}
	circuits := s.Circuits()
	require.Len(t, circuits, 1, "only the failing rule's circuit")
	assert.Equal(t, "open", circuits[0].State)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, answered["flood"], "the failing rule's circuit opened after 3 failures")
}

// A vendor's 429 limits one hook or routing key and asks for a wait: it is
// retried after it, and does not open the endpoint's circuit.
func TestVendorRateLimitDoesNotOpenTheCircuit(t *testing.T) {
	rcv := newReceiver(t)
	rcv.ScriptSteps(sendertest.Status(429), sendertest.Status(429), sendertest.Status(429), sendertest.Status(429))
	opts := fastOptions()
	opts.Breaker = BreakerOptions{Failures: 2, Cooldown: time.Hour}
	a := alert("limited", rcv.URL)
	a.Vendor = VendorSlack
	store := newMemStore(a)
	s, _ := runSender(t, opts, store)
	eventually(t, func() bool { return store.allDone(a.ID) }, "delivered after the rate limit")
	assert.Equal(t, StatusSucceeded, store.status(a.ID))
	assert.Len(t, rcv.Deliveries(), 5)
	assert.Zero(t, s.Stats().Reschedules["circuit_open"])
	assert.Empty(t, s.Circuits())

	// A webhook's 429 still counts: its receiver is the endpoint.
	assert.True(t, countsAsFailure("", Outcome{Kind: Retry, Reason: "http_429"}))
	assert.False(t, countsAsFailure(VendorPagerDuty, Outcome{Kind: Retry, Reason: "http_429"}))
	assert.True(t, countsAsFailure(VendorPagerDuty, Outcome{Kind: Retry, Reason: "http_503"}))
}

// Many rules share a vendor's host: one rule's burst does not make another
// rule's alert wait behind all of it; the rules waiting for a host take
// turns, each in its own order.
func TestRulesTakeTurnsOnASharedHost(t *testing.T) {
	rcv := newReceiver(t)
	opts := fastOptions()
	opts.Workers, opts.PerHostConcurrency, opts.QueueSize = 1, 1, 64
	store := newMemStore()
	base := time.Now().Add(-time.Minute)
	for i := range 20 {
		a := alert(fmt.Sprintf("a%02d", i), rcv.URL)
		a.ConfigID = "rule-burst"
		store.add(base.Add(time.Duration(i)*time.Millisecond), a)
	}
	b := alert("b", rcv.URL)
	b.ConfigID = "rule-quiet"
	store.add(base.Add(time.Second), b)
	runSender(t, opts, store)
	got := waitDeliveries(t, rcv, 21)
	var order []string
	for _, d := range got {
		order = append(order, d.ID)
	}
	pos := slices.Index(order, "msg_b")
	assert.LessOrEqual(t, pos, 4, "the quiet rule's alert is not last: %v", order)
	var burst []string
	for _, id := range order {
		if id != "msg_b" {
			burst = append(burst, id)
		}
	}
	assert.True(t, slices.IsSorted(burst), "one rule's alerts keep their order: %v", burst)
}
