package sender

import (
	"context"
	"errors"
	"github.com/cenkalti/backoff/v4"
	"sync"
	"time"

	"go.uber.org/zap"
)

// errNotApplied is the result of a report whose lease was lost: another
// sender took the alert over, so this one's update was discarded.
var errNotApplied = errors.New("the alert's lease was taken over; update not applied")

// pendingReport is a report waiting to be written.
type pendingReport struct {
	r    Report
	done chan error // receives nil once durable, errNotApplied, or the write error
}

// writer batches reports into few Store.Report calls (group commit): each
// flusher takes everything queued, up to maxBatch, writes it in one call
// and signals every reporter. Under load batches grow; when idle a report
// is written at once (after at most linger).
type writer struct {
	store    Store
	log      *zap.Logger
	in       chan *pendingReport
	maxBatch int
	linger   time.Duration
	giveUp   time.Duration // stop retrying a failing batch after this long
	wg       sync.WaitGroup

	mu      sync.Mutex
	batches uint64
	rows    uint64
	fails   uint64
}

func newWriter(store Store, log *zap.Logger, queue, maxBatch int, linger, giveUp time.Duration) *writer {
	return &writer{store: store, log: log, in: make(chan *pendingReport, queue), maxBatch: maxBatch, linger: linger, giveUp: giveUp}
}

// start runs n flushers until close; ctx bounds the writes themselves.
func (w *writer) start(ctx context.Context, n int) {
	for range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.loop(ctx)
		}()
	}
}

// submit queues a report; the result arrives on the returned channel.
func (w *writer) submit(r Report) <-chan error {
	p := &pendingReport{r: r, done: make(chan error, 1)}
	w.in <- p
	return p.done
}

// close stops accepting reports and waits until every queued one is written.
func (w *writer) close() {
	close(w.in)
	w.wg.Wait()
}

func (w *writer) loop(ctx context.Context) {
	for {
		first, ok := <-w.in
		if !ok {
			return
		}
		w.flush(ctx, w.collect(first))
	}
}

// collect gathers the reports queued behind first, up to maxBatch, waiting
// at most linger for more.
func (w *writer) collect(first *pendingReport) []*pendingReport {
	batch := []*pendingReport{first}
	var deadline <-chan time.Time
	if w.linger > 0 {
		t := time.NewTimer(w.linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < w.maxBatch {
		select {
		case p, ok := <-w.in:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		case <-deadline: // nil without linger: never ready
			return batch
		default:
			if deadline == nil {
				return batch
			}
			select {
			case p, ok := <-w.in:
				if !ok {
					return batch
				}
				batch = append(batch, p)
			case <-deadline:
				return batch
			}
		}
	}
	return batch
}

// flush writes one batch, retrying failures with backoff for up to giveUp.
// A batch that cannot be written is reported as failed to its senders: the
// alerts stay delivering until their lease expires and are then retried, so
// nothing is lost (at-least-once).
func (w *writer) flush(ctx context.Context, batch []*pendingReport) {
	reports := make([]Report, len(batch))
	for i, p := range batch {
		reports[i] = p.r
	}
	start := time.Now()
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		applied, err := w.store.Report(ctx, reports)
		if err == nil {
			w.mu.Lock()
			w.batches++
			w.rows += uint64(len(batch))
			w.mu.Unlock()
			for _, p := range batch {
				if applied[p.r.AlertID] {
					p.done <- nil
				} else {
					p.done <- errNotApplied
				}
			}
			return
		}
		delay := bo.NextBackOff()
		if ctx.Err() != nil || time.Since(start)+delay > w.giveUp {
			w.mu.Lock()
			w.fails++
			w.mu.Unlock()
			w.log.Error("writing delivery outcomes failed; the alerts will be retried when their lease expires",
				zap.Int("reports", len(batch)), zap.Error(err))
			for _, p := range batch {
				p.done <- err
			}
			return
		}
		w.log.Warn("writing delivery outcomes failed; retrying", zap.Int("reports", len(batch)),
			zap.Duration("retry_in", delay), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
}

func (w *writer) stats() (batches, rows, fails uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.batches, w.rows, w.fails
}
