package ops

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Backlog polls the number of pending alerts (waiting for their first
// attempt or a retry) every interval, so that scrapes and the watchdog read
// the last count instead of querying the database each time. It is a
// prometheus.Collector and safe for concurrent use.
type Backlog struct {
	count    func(context.Context) (int64, error)
	interval time.Duration
	log      *zap.Logger
	desc     *prometheus.Desc

	mu      sync.Mutex
	pending int64
	known   bool
}

// NewBacklog polls count every interval.
func NewBacklog(count func(context.Context) (int64, error), interval time.Duration, log *zap.Logger) *Backlog {
	if log == nil {
		log = zap.NewNop()
	}
	return &Backlog{count: count, interval: interval, log: log,
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "alerts_pending"),
			"Alerts pending in alert_logs (waiting for a first attempt or a retry), as last counted.", nil, nil)}
}

// Last returns the last count; ok is false until a count succeeded, and
// after a failed one.
func (b *Backlog) Last() (pending int64, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending, b.known
}

// Run counts at once and then every interval until ctx ends.
func (b *Backlog) Run(ctx context.Context) error {
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		b.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (b *Backlog) poll(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, b.interval)
	defer cancel()
	n, err := b.count(cctx)
	if err != nil && ctx.Err() == nil {
		b.log.Warn("counting pending alerts failed", zap.Error(err))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending, b.known = n, err == nil
}

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector; nothing is exported while the
// count is unknown.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	if n, ok := b.Last(); ok {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(n))
	}
}
