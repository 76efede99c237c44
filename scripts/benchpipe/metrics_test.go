package main

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const exposition = `# HELP meshhook_alerts_dispatch_daemon_seconds Daemon share.
# TYPE meshhook_alerts_dispatch_daemon_seconds histogram
meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0001"} 0
meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0002"} 10
meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0004"} 90
meshhook_alerts_dispatch_daemon_seconds_bucket{le="0.0008"} 100
meshhook_alerts_dispatch_daemon_seconds_bucket{le="+Inf"} 100
meshhook_alerts_dispatch_daemon_seconds_sum 0.03
meshhook_alerts_dispatch_daemon_seconds_count 100
# TYPE meshhook_alerts_engine_rules_cached gauge
meshhook_alerts_engine_rules_cached 100002
meshhook_alerts_engine_rules_cached_other 7
`

func TestMetricValue(t *testing.T) {
	v, ok := metricValue(exposition, "meshhook_alerts_engine_rules_cached")
	require.True(t, ok)
	assert.Equal(t, 100002.0, v)

	_, ok = metricValue(exposition, "meshhook_alerts_missing")
	assert.False(t, ok)
}

func TestParseHistogram(t *testing.T) {
	h, err := parseHistogram(exposition, "meshhook_alerts_dispatch_daemon_seconds")
	require.NoError(t, err)
	assert.Equal(t, []float64{0.0001, 0.0002, 0.0004, 0.0008, math.Inf(1)}, h.bounds)
	assert.Equal(t, []float64{0, 10, 90, 100, 100}, h.counts)
	assert.Equal(t, 100.0, h.count)

	_, err = parseHistogram(exposition, "meshhook_alerts_missing_seconds")
	require.ErrorContains(t, err, "meshhook_alerts_missing_seconds not found")

	_, err = parseHistogram(`x_bucket{le="abc"} 1`, "x")
	require.ErrorContains(t, err, `bucket bound "abc"`)
}

func TestHistogramQuantile(t *testing.T) {
	h, err := parseHistogram(exposition, "meshhook_alerts_dispatch_daemon_seconds")
	require.NoError(t, err)
	// Rank 50 lies in (0.2 ms, 0.4 ms], which holds ranks 10..90: halfway.
	assert.InDelta(t, 0.0003, h.quantileSeconds(0.5), 1e-12)
	// Rank 99 lies in (0.4 ms, 0.8 ms], which holds ranks 90..100.
	assert.InDelta(t, 0.00076, h.quantileSeconds(0.99), 1e-12)
	assert.True(t, math.IsNaN(histogram{}.quantileSeconds(0.5)))

	// Observations past the last finite bound report that bound.
	over := histogram{bounds: []float64{0.001, math.Inf(1)}, counts: []float64{1, 10}, count: 10}
	assert.Equal(t, 0.001, over.quantileSeconds(0.99))
}

func TestHistogramMinus(t *testing.T) {
	before := histogram{bounds: []float64{1, math.Inf(1)}, counts: []float64{2, 3}, count: 3}
	after := histogram{bounds: []float64{1, math.Inf(1)}, counts: []float64{5, 9}, count: 9}
	d := after.minus(before)
	assert.Equal(t, []float64{3, 6}, d.counts)
	assert.Equal(t, 6.0, d.count)
}

func TestMiddleRate(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	var ts []time.Time
	for i := range 1001 { // one per millisecond: 1,000/s
		ts = append(ts, start.Add(time.Duration(1000-i)*time.Millisecond))
	}
	assert.InDelta(t, 1000, middleRate(ts), 1)
	assert.Zero(t, middleRate(ts[:5]))
}
