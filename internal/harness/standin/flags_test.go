package standin

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

func TestRealtimeLimitFlags(t *testing.T) {
	parse := func(args ...string) (realtimetest.Options, error) {
		fs := flag.NewFlagSet("standin", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var o realtimetest.Options
		if err := RealtimeLimitFlags(fs, &o); err != nil {
			return o, err
		}
		return o, fs.Parse(args)
	}

	o, err := parse()
	require.NoError(t, err)
	assert.Equal(t, realtimetest.Options{
		PollInterval:    100 * time.Millisecond,
		PollMaxChanges:  100,
		RateTick:        5 * time.Second,
		RateWindowTicks: 12,
	}, o, "Realtime's defaults, no quota")

	t.Setenv("STANDIN_REALTIME_MAX_EVENTS_PER_SECOND", "500")
	t.Setenv("STANDIN_REALTIME_POLL_INTERVAL", "50ms")
	o, err = parse("-realtime-poll-interval", "-1ns", "-realtime-rate-window-ticks", "3")
	require.NoError(t, err)
	assert.Equal(t, 500, o.MaxEventsPerSecond, "from the environment")
	assert.Equal(t, -time.Nanosecond, o.PollInterval, "the command line wins")
	assert.Equal(t, 3, o.RateWindowTicks)

	t.Setenv("STANDIN_REALTIME_RATE_TICK", "soon")
	_, err = parse()
	assert.ErrorContains(t, err, "STANDIN_REALTIME_RATE_TICK")
}
