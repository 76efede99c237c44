package ops

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/sender"
)

// EngineSource is what EngineCollector reads from the rules engine
// (*alerts.Engine).
type EngineSource interface {
	Stats() alerts.Stats
	ByEvent() map[alerts.Event]alerts.EventCounts
	Rejected() int
}

// EngineCollector exports the rules engine's counters, read at scrape time.
type EngineCollector struct {
	src EngineSource

	changes, claimed, suppressed, duplicates, failures                     *prometheus.Desc
	catchups, catchupRows, rules, rejected, tracked, wait                  *prometheus.Desc
	reconciles, reconcileRows, reconcileFound, reconcileLag, reconcileHeld *prometheus.Desc
	ruleLoads                                                              *prometheus.Desc
}

// NewEngineCollector reads the engine's counters from src.
func NewEngineCollector(src EngineSource) *EngineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "engine", name), help, labels, nil)
	}
	return &EngineCollector{
		src:            src,
		changes:        d("changes_total", "Run changes processed (Realtime and catch-up)."),
		claimed:        d("alerts_claimed_total", "Alerts recorded in alert_logs, by event (suppressed ones included).", "event"),
		suppressed:     d("alerts_suppressed_total", "Alerts recorded as suppressed by throttling, by event.", "event"),
		duplicates:     d("alerts_duplicate_total", "Alerts already claimed (by this or another instance), by event.", "event"),
		failures:       d("alert_failures_total", "Alerts that could not be rendered or claimed."),
		catchups:       d("catchups_total", "Catch-ups completed (start-up, resubscription, gaps, periodic resync)."),
		catchupRows:    d("catchup_rows_total", "Rows read by reconciliation that were not already handled live."),
		reconciles:     d("reconcile_passes_total", "Reconcile passes completed."),
		reconcileRows:  d("reconcile_rows_total", "Rows scanned by reconciliation."),
		reconcileFound: d("reconcile_found_alerts_total", "Alerts first found by reconciliation: changes Realtime missed or had not delivered yet."),
		reconcileLag:   d("reconcile_lag_seconds", "How far the reconcile cursor is behind the database's clock."),
		reconcileHeld:  d("reconcile_lease_held", "1 when this daemon holds the reconcile lease."),
		rules:          d("rules_cached", "Alert rules in the cache."),
		ruleLoads:      d("rule_loads_total", "Full loads of the rule cache completed (start-up, resubscription)."),
		rejected:       d("rules_rejected", "Alert rules refused when loaded."),
		tracked:        d("runs_tracked", "Running or paused runs with a timer entry."),
		wait:           d("runs_scheduled", "Tracked runs waiting for a delayed/stalled threshold."),
	}
}

// Describe implements prometheus.Collector.
func (c *EngineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.changes, c.claimed, c.suppressed, c.duplicates, c.failures,
		c.catchups, c.catchupRows, c.rules, c.ruleLoads, c.rejected, c.tracked, c.wait,
		c.reconciles, c.reconcileRows, c.reconcileFound, c.reconcileLag, c.reconcileHeld} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *EngineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.changes, s.Changes)
	counter(c.failures, s.Failures)
	counter(c.catchups, s.Catchups)
	counter(c.catchupRows, s.CatchupRows)
	counter(c.reconciles, s.Reconciles)
	counter(c.reconcileRows, s.ReconcileRows)
	counter(c.reconcileFound, s.ReconcileFound)
	gauge(c.reconcileLag, s.ReconcileLag.Seconds())
	held := 0.0
	if s.ReconcileHeld {
		held = 1
	}
	gauge(c.reconcileHeld, held)
	gauge(c.rules, float64(s.Rules))
	counter(c.ruleLoads, s.RuleLoads)
	gauge(c.rejected, float64(c.src.Rejected()))
	gauge(c.tracked, float64(s.Tracked))
	gauge(c.wait, float64(s.Scheduled))
	for ev, n := range c.src.ByEvent() {
		counter(c.claimed, n.Claimed, string(ev))
		counter(c.suppressed, n.Suppressed, string(ev))
		counter(c.duplicates, n.Duplicates, string(ev))
	}
}

// SenderCollector exports the sender's counters and gauges, read from its
// Stats snapshot at scrape time.
type SenderCollector struct {
	stats func() sender.Stats

	leased, delivered, failed, attempts, reschedules, lostLeases *prometheus.Desc
	held, running, waiting, openCircuits                         *prometheus.Desc
	writeBatches, writeRows, writeFailures                       *prometheus.Desc
}

// NewSenderCollector reads stats from the given function (Sender.Stats).
func NewSenderCollector(stats func() sender.Stats) *SenderCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "sender", name), help, labels, nil)
	}
	return &SenderCollector{
		stats:         stats,
		leased:        d("alerts_leased_total", "Alerts leased from alert_logs for delivery."),
		delivered:     d("alerts_delivered_total", "Alerts delivered (2xx)."),
		failed:        d("alerts_failed_total", "Alerts that failed for good."),
		attempts:      d("attempts_total", "Delivery attempts by outcome reason (ok, http_500, timeout, …).", "reason"),
		reschedules:   d("reschedules_total", "Alerts postponed without an attempt, by reason.", "reason"),
		lostLeases:    d("lost_leases_total", "Outcomes not applied because another sender took the lease over."),
		held:          d("queue_depth", "Alerts held in memory (leased, waiting, running or being recorded)."),
		running:       d("in_flight", "Delivery attempts in flight."),
		waiting:       d("waiting", "Alerts waiting for a worker or a per-host slot."),
		openCircuits:  d("circuits_open", "Endpoints whose circuit breaker is open or half-open."),
		writeBatches:  d("write_batches_total", "Batches of outcomes written to alert_logs."),
		writeRows:     d("write_rows_total", "Outcomes written to alert_logs."),
		writeFailures: d("write_failures_total", "Batches of outcomes that could not be written."),
	}
}

// Describe implements prometheus.Collector.
func (c *SenderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leased, c.delivered, c.failed, c.attempts, c.reschedules, c.lostLeases,
		c.held, c.running, c.waiting, c.openCircuits, c.writeBatches, c.writeRows, c.writeFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *SenderCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.leased, s.Leased)
	counter(c.delivered, s.Delivered)
	counter(c.failed, s.Failed)
	counter(c.lostLeases, s.LostLeases)
	for reason, n := range s.Attempts {
		counter(c.attempts, n, reason)
	}
	for reason, n := range s.Reschedules {
		counter(c.reschedules, n, reason)
	}
	gauge(c.held, s.Held)
	gauge(c.running, s.Running)
	gauge(c.waiting, s.Waiting)
	gauge(c.openCircuits, s.OpenCircuits)
	counter(c.writeBatches, s.WriteBatches)
	counter(c.writeRows, s.WriteRows)
	counter(c.writeFailures, s.WriteFailures)
}

// DispatchLatency is a sender.Observer that keeps the histograms of the time
// from a change's commit to the first byte of its alert's first attempt and
// to the receiver's response, and counts attempts by event and outcome
// reason. Register it as a collector.
type DispatchLatency struct {
	sent, responded, daemon prometheus.Histogram
	attempts                *prometheus.CounterVec
}

// dispatchBuckets span 1 ms to about 33 s.
var dispatchBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// daemonBuckets span 0.1 ms to about 3.3 s: the daemon's own share is
// usually well under a millisecond.
var daemonBuckets = prometheus.ExponentialBuckets(0.0001, 2, 16)

// NewDispatchLatency builds the histograms.
func NewDispatchLatency() *DispatchLatency {
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "dispatch",
			Name: name, Help: help, Buckets: dispatchBuckets})
	}
	return &DispatchLatency{
		sent:      h("commit_to_send_seconds", "Time from the change's commit_timestamp to the first byte of the alert's first attempt."),
		responded: h("commit_to_response_seconds", "Time from the change's commit_timestamp to the response to the alert's first attempt."),
		daemon: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "dispatch",
			Name: "daemon_seconds", Buckets: daemonBuckets,
			Help: "Time from the change's arrival over Realtime to the first byte of the alert's first attempt (the daemon's own share)."}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: "dispatch",
			Name: "attempts_total", Help: "Delivery attempts by alert event and outcome reason."}, []string{"event", "reason"}),
	}
}

// ObserveDispatch implements sender.Observer.
func (d *DispatchLatency) ObserveDispatch(o sender.Dispatch) {
	if o.WasSent {
		d.sent.Observe(o.Sent.Seconds())
	}
	if o.HasDaemon {
		d.daemon.Observe(o.Daemon.Seconds())
	}
	if o.GotResponse {
		d.responded.Observe(o.Responded.Seconds())
	}
}

// ObserveAttempt implements sender.Observer.
func (d *DispatchLatency) ObserveAttempt(event, reason string) {
	d.attempts.WithLabelValues(event, reason).Inc()
}

// Describe implements prometheus.Collector.
func (d *DispatchLatency) Describe(ch chan<- *prometheus.Desc) {
	d.sent.Describe(ch)
	d.responded.Describe(ch)
	d.daemon.Describe(ch)
	d.attempts.Describe(ch)
}

// Collect implements prometheus.Collector.
func (d *DispatchLatency) Collect(ch chan<- prometheus.Metric) {
	d.sent.Collect(ch)
	d.responded.Collect(ch)
	d.daemon.Collect(ch)
	d.attempts.Collect(ch)
}

var _ sender.Observer = (*DispatchLatency)(nil)
