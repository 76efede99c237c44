package sender

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreakerCircuits reports each failing endpoint's circuit, redacted,
// open ones first, and forgets an endpoint once it answers again.
func TestBreakerCircuits(t *testing.T) {
	b := newBreakers(BreakerOptions{Failures: 2, Cooldown: time.Minute})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	_, slow := targetKeys("https://hooks.example.com/services/T0/B1/secret")
	_, flaky := targetKeys("https://hooks.example.com/services/T0/B2/other")
	_, ok := targetKeys("https://ok.example.com/hook")
	b.record(slow, false, true, now)
	b.record(slow, false, true, now) // opens
	b.record(flaky, false, true, now)
	b.record(ok, false, true, now)
	b.record(ok, false, false, now) // answers again: no circuit

	got := b.circuits(now)
	require.Len(t, got, 2)
	assert.Equal(t, "open", got[0].State)
	assert.Equal(t, 2, got[0].Failures)
	assert.Equal(t, now.Add(time.Minute), got[0].OpenUntil)
	assert.Equal(t, "closed", got[1].State)
	assert.Equal(t, 1, got[1].Failures)
	assert.True(t, got[1].OpenUntil.IsZero())
	for _, c := range got {
		assert.Equal(t, "https://hooks.example.com/[redacted]", c.Target)
		assert.Regexp(t, `^sha256:[0-9a-f]{6}$`, c.EndpointID)
		assert.False(t, strings.Contains(c.Target, "secret"))
	}
	assert.NotEqual(t, got[0].EndpointID, got[1].EndpointID, "endpoints of one host are told apart")

	// After the cooldown the next attempt is the probe.
	assert.Equal(t, "half_open", b.circuits(now.Add(2 * time.Minute))[0].State)
}
