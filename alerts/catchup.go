package alerts

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

func (e *Engine) advanceWatermark(t time.Time) {
	if t.IsZero() {
		return
	}
	e.waterM.Lock()
	if t.After(e.water) {
		e.water = t
	}
	e.waterM.Unlock()
}

func (e *Engine) watermark() time.Time {
	e.waterM.Lock()
	defer e.waterM.Unlock()
	return e.water
}

// markRetry schedules a catch-up from t (a row's updated_at) because some
// alert of that row could not be claimed or a change could not be read.
// Until it succeeds, the persisted watermark stays at or before t, so a
// restart retries too.
func (e *Engine) markRetry(t time.Time) {
	if t.IsZero() {
		t = e.now()
	}
	if e.retryFrom.IsZero() || t.Before(e.retryFrom) {
		e.retryFrom = t
	}
	if e.retryAt.IsZero() {
		e.retryAt = e.now().Add(e.retryDelay)
	}
}

// catchUp re-reads every run changed since the watermark (minus the overlap)
// and feeds it through the matcher, then rebuilds the timers from the
// running and paused runs; claims make the replay idempotent.
func (e *Engine) catchUp(ctx context.Context) error {
	stored, ok, err := e.store.Watermark(ctx)
	if err != nil {
		e.catchUpFailed(e.watermark())
		return fmt.Errorf("read watermark: %w", err)
	}
	e.advanceWatermark(stored)
	base := e.watermark()
	pending := e.retryFrom
	if !pending.IsZero() && pending.Before(base) {
		base = pending
	}
	// Rows that fail during this scan mark a new retry.
	e.retryFrom, e.retryAt = time.Time{}, time.Time{}
	floor := e.now().Add(-e.opts.CatchupMaxLookback)
	from := base
	if !ok && from.IsZero() {
		from = floor
	} else {
		from = from.Add(-e.opts.CatchupOverlap)
		if from.Before(floor) {
			e.log.Warn("catch-up limited to the maximum lookback", zap.Time("watermark", from), zap.Duration("max_lookback", e.opts.CatchupMaxLookback))
			from = floor
		}
	}
	n := 0
	err = e.store.RunsChangedSince(ctx, from, func(row map[string]any) error {
		n++
		occurred := e.now()
		if r, err := e.opts.Mapping.RunFromRow(row); err == nil && !r.UpdatedAt.IsZero() {
			occurred = r.UpdatedAt
		}
		e.processRow(ctx, row, occurred, time.Time{})
		return ctx.Err()
	})
	if err != nil {
		e.flush(ctx)
		e.catchUpFailed(base)
		return fmt.Errorf("catch-up since %s: %w", from.Format(time.RFC3339), err)
	}
	// Claim what the scan queued before the watermark can move past it.
	e.flush(ctx)
	if err := e.rebuildTimers(ctx); err != nil {
		e.catchUpFailed(base)
		return fmt.Errorf("rebuild timers: %w", err)
	}
	e.count(func(s *engineStats) {
		s.catchups++
		s.catchupRows += int64(n)
	})
	// A large catch-up is a burst like any other: its memory is released
	// once things are quiet.
	e.runChanges += n
	e.lastRunChange = e.now()
	w := e.safeWatermark()
	if !w.IsZero() {
		if err := e.store.SaveWatermark(ctx, w); err != nil {
			e.catchUpFailed(base)
			return fmt.Errorf("save watermark: %w", err)
		}
		e.savedWater = w
	}
	if e.retryFrom.IsZero() {
		e.retryDelay = retryInitialDelay
	} else {
		e.backOffRetry()
	}
	e.log.Info("catch-up done", zap.Time("since", from), zap.Int("rows", n), zap.Int("timed_runs", e.timers.len()))
	return nil
}

// safeWatermark is the watermark that may be persisted: the newest
// updated_at processed, but no later than a row whose alert is waiting for a
// retry, so that a restart retries it too.
func (e *Engine) safeWatermark() time.Time {
	w := e.watermark()
	if !e.retryFrom.IsZero() && e.retryFrom.Before(w) {
		w = e.retryFrom
	}
	for _, p := range e.pending {
		t := p.run.UpdatedAt
		if t.IsZero() {
			t = p.occurred
		}
		if t.Before(w) {
			w = t
		}
	}
	return w
}

// saveLiveWatermark persists the watermark live changes have reached, when
// it moved.
func (e *Engine) saveLiveWatermark(ctx context.Context, now time.Time) {
	e.lastWaterSave = now
	e.flush(ctx)
	w := e.safeWatermark()
	if w.IsZero() || !w.After(e.savedWater) {
		return
	}
	if err := e.store.SaveWatermark(ctx, w); err != nil {
		e.log.Warn("saving the catch-up watermark failed; will retry", zap.Error(err))
		return
	}
	e.savedWater = w
}

// catchUpFailed schedules another catch-up from base, later each time.
func (e *Engine) catchUpFailed(base time.Time) {
	if base.IsZero() {
		base = e.now().Add(-e.opts.CatchupMaxLookback)
	}
	e.markRetry(base)
	e.backOffRetry()
}

func (e *Engine) backOffRetry() {
	e.retryAt = e.now().Add(e.retryDelay)
	e.retryDelay = min(e.retryDelay*2, retryMaxDelay)
}
