package ops

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// Metric namespace.
const namespace = "meshhook_alerts"

// RealtimeCollector exports the Realtime client's counters and state, read
// from its Stats snapshot at scrape time.
type RealtimeCollector struct {
	stats func() realtime.Stats

	connected, channelSubscribed, lastFrame, rtt       *prometheus.Desc
	frames, malformed, delivered, dropped, gaps, joins *prometheus.Desc
	joinErrors, reconnects, readies                    *prometheus.Desc
}

// NewRealtimeCollector reads stats from the given function (Client.Stats).
func NewRealtimeCollector(stats func() realtime.Stats) *RealtimeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "realtime", name), help, labels, nil)
	}
	return &RealtimeCollector{
		stats:             stats,
		connected:         d("connected", "1 while the Realtime websocket is open."),
		channelSubscribed: d("channel_subscribed", "1 while the channel's postgres_changes subscription is confirmed.", "channel"),
		lastFrame:         d("last_frame_timestamp_seconds", "Unix time of the last frame received."),
		rtt:               d("heartbeat_rtt_seconds", "Round-trip time of the last answered heartbeat."),
		frames:            d("frames_received_total", "Frames received."),
		malformed:         d("frames_malformed_total", "Frames that could not be decoded and were skipped."),
		delivered:         d("changes_delivered_total", "Row changes handed to the rules engine.", "channel"),
		dropped:           d("changes_dropped_total", "Row changes dropped because the engine was behind (each opens a gap).", "channel"),
		gaps:              d("gaps_total", "Gaps reported to the engine (each triggers a catch-up).", "channel"),
		joins:             d("joins_total", "Channel joins sent.", "channel"),
		joinErrors:        d("join_errors_total", "Channel joins refused or timed out.", "channel"),
		readies:           d("subscriptions_confirmed_total", "\"Subscribed to PostgreSQL\" confirmations (each triggers a catch-up).", "channel"),
		reconnects:        d("reconnects_total", "Websocket sessions that ended, by reason.", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *RealtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.channelSubscribed, c.lastFrame, c.rtt, c.frames, c.malformed,
		c.delivered, c.dropped, c.gaps, c.joins, c.joinErrors, c.readies, c.reconnects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *RealtimeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connected, boolf(s.State == realtime.StateConnected))
	if !s.LastFrameAt.IsZero() {
		gauge(c.lastFrame, float64(s.LastFrameAt.UnixNano())/1e9)
	}
	gauge(c.rtt, s.HeartbeatRTT.Seconds())
	counter(c.frames, s.FramesReceived)
	counter(c.malformed, s.MalformedFrames)
	for _, ch2 := range s.Channels {
		gauge(c.channelSubscribed, boolf(ch2.State == realtime.StateSubscribed), ch2.Name)
		counter(c.delivered, ch2.ChangesDelivered, ch2.Name)
		counter(c.dropped, ch2.ChangesDropped, ch2.Name)
		counter(c.gaps, ch2.Gaps, ch2.Name)
		counter(c.joins, ch2.Joins, ch2.Name)
		counter(c.joinErrors, ch2.JoinErrors, ch2.Name)
		counter(c.readies, ch2.Ready, ch2.Name)
	}
	for reason, n := range s.Reconnects {
		counter(c.reconnects, n, reason)
	}
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
