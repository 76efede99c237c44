package standin

import (
	"flag"
	"fmt"
	"os"

	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

// realtimeLimitFlags are the flags of RealtimeLimitFlags and the
// environment variables that preset them.
var realtimeLimitFlags = []struct{ flag, env string }{
	{"realtime-poll-interval", "STANDIN_REALTIME_POLL_INTERVAL"},
	{"realtime-poll-max-changes", "STANDIN_REALTIME_POLL_MAX_CHANGES"},
	{"realtime-poll-query-time", "STANDIN_REALTIME_POLL_QUERY_TIME"},
	{"realtime-max-events-per-second", "STANDIN_REALTIME_MAX_EVENTS_PER_SECOND"},
	{"realtime-rate-tick", "STANDIN_REALTIME_RATE_TICK"},
	{"realtime-rate-window-ticks", "STANDIN_REALTIME_RATE_WINDOW_TICKS"},
}

// RealtimeLimitFlags registers on fs the flags that set the Realtime
// server's postgres_changes limits in o (see realtimetest.Options):
//
//	-realtime-poll-interval          PollInterval (100ms; negative: no polling)
//	-realtime-poll-max-changes       PollMaxChanges (100)
//	-realtime-poll-query-time        PollQueryTime (0)
//	-realtime-max-events-per-second  MaxEventsPerSecond (0: no quota; Free 100, Pro 500)
//	-realtime-rate-tick              RateTick (5s)
//	-realtime-rate-window-ticks      RateWindowTicks (12)
//
// Each flag's default is taken from its environment variable when that is
// set (STANDIN_ and the flag's name in upper case with underscores, e.g.
// STANDIN_REALTIME_MAX_EVENTS_PER_SECOND=100); the command line overrides
// it. The error reports an environment variable that does not parse.
func RealtimeLimitFlags(fs *flag.FlagSet, o *realtimetest.Options) error {
	fs.DurationVar(&o.PollInterval, "realtime-poll-interval", realtimetest.DefaultPollInterval,
		"Realtime stand-in: poll interval of the replication poller (poll_interval_ms); negative delivers changes as decoded")
	fs.IntVar(&o.PollMaxChanges, "realtime-poll-max-changes", realtimetest.DefaultPollMaxChanges,
		"Realtime stand-in: changes read per poll (poll_max_changes)")
	fs.DurationVar(&o.PollQueryTime, "realtime-poll-query-time", 0,
		"Realtime stand-in: modelled duration of every poll's query")
	fs.IntVar(&o.MaxEventsPerSecond, "realtime-max-events-per-second", 0,
		"Realtime stand-in: tenant max_events_per_second for postgres_changes (0: no quota; Free 100, Pro 500)")
	fs.DurationVar(&o.RateTick, "realtime-rate-tick", realtimetest.DefaultRateTick,
		"Realtime stand-in: tick of the event rate counter")
	fs.IntVar(&o.RateWindowTicks, "realtime-rate-window-ticks", realtimetest.DefaultRateWindowTicks,
		"Realtime stand-in: ticks the event rate is averaged over")
	for _, f := range realtimeLimitFlags {
		v, ok := os.LookupEnv(f.env)
		if !ok {
			continue
		}
		if err := fs.Set(f.flag, v); err != nil {
			return fmt.Errorf("%s: %w", f.env, err)
		}
		fs.Lookup(f.flag).DefValue = v
	}
	return nil
}
