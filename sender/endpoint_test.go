package sender

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// One rule's endpoint failing opens that endpoint's circuit only: another
// rule's alert to the same host (scheme, host and port), on another path,
// is delivered at once while the failing endpoint's circuit stays open.
// Before circuits were per endpoint it waited out the whole cooldown.
func TestCircuitIsPerEndpoint(t *testing.T) {
	var broken, fine atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/broken":
			broken.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		default:
			fine.Add(1)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)

	opts := fastOptions()
	opts.PerHostConcurrency = 1
	// A cooldown far longer than the test: an alert held back by the open
	// circuit could not arrive in time.
	opts.Breaker = BreakerOptions{Failures: 3, Cooldown: time.Hour}
	opts.Schedule.Initial, opts.Schedule.MaxAge = 10*time.Millisecond, 2*time.Hour
	store := newMemStore()
	var brokenIDs []string
	for i := range 5 {
		a := alert(fmt.Sprintf("broken%d", i), srv.URL+"/broken")
		a.ConfigID = "rule-broken"
		store.add(time.Now().Add(-time.Minute), a)
		brokenIDs = append(brokenIDs, a.ID)
	}
	s, _ := runSender(t, opts, store)
	eventually(t, func() bool { return s.Stats().OpenCircuits == 1 }, "the broken endpoint's circuit opens")
	eventually(t, func() bool { return s.Stats().Reschedules["circuit_open"] > 0 }, "its alerts are held back")
	require.Equal(t, int64(3), broken.Load(), "no attempt past the threshold")

	// Another rule, same host and port, another path: at once.
	healthy := alert("healthy", srv.URL+"/fine?token=x")
	healthy.ConfigID = "rule-healthy"
	store.add(time.Now(), healthy)
	s.Wake()
	eventually(t, func() bool { return store.allDone("healthy") }, "the other endpoint's alert is delivered while the circuit is open")
	assert.Equal(t, StatusSucceeded, store.status("healthy"))
	assert.Equal(t, []string{"ok"}, outcomes(store.attemptsOf("healthy")))
	assert.Equal(t, 1, s.Stats().OpenCircuits, "the broken endpoint's circuit is still open")
	assert.Equal(t, int64(3), broken.Load())
	for _, id := range brokenIDs {
		assert.NotEqual(t, StatusSucceeded, store.status(id))
	}
}

func TestTargetKeys(t *testing.T) {
	for _, tt := range []struct{ url, host, endpoint string }{
		{"https://Hooks.Slack.com/services/T0/B1/xyz", "https://hooks.slack.com", "https://hooks.slack.com/services/T0/B1/xyz"},
		{"https://hooks.slack.com:443/services/T0/B2/abc?x=1#f", "https://hooks.slack.com", "https://hooks.slack.com/services/T0/B2/abc"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"http://h:80/a/", "http://h", "http://h/a/"},
		{"https://h:8443/A", "https://h:8443", "https://h:8443/A"},
		{"::bad", "", ""},
	} {
		host, endpoint := targetKeys(tt.url)
		assert.Equal(t, tt.host, host, tt.url)
		assert.Equal(t, tt.endpoint, endpoint, tt.url)
	}
}
