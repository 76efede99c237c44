package realtimetest

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// This file models the tenant's db-events RateCounter of Realtime
// (lib/realtime/rate_counter/rate_counter.ex with the arguments of
// Tenants.db_events_per_second_rate), which the replication poller checks
// before every poll's changes are broadcast.

// rateIdleShutdown is the period at which Realtime's RateCounter stops
// itself when its whole window is zero; the poller's next read of it starts
// a fresh one, whose window is a single empty tick.
const rateIdleShutdown = 5 * time.Minute

// EventRate returns the postgres_changes event rate as the quota sees it
// (events per second averaged over the window, as of the last tick) and
// whether the limit is triggered, i.e. polls are being skipped. The rate
// is counted from the first CDC's start, with or without a quota.
func (s *Server) EventRate() (perSecond float64, limited bool) {
	return s.rate.state()
}

// rateCounter is Realtime's RateCounter for a tenant's db events: events
// are added as they are counted; every tick the count since the previous
// tick becomes the newest of at most maxBuckets buckets and the average is
// sum / buckets / tick. A tick that finds the average at or over the limit
// triggers it (logged once); one that finds it below clears it. Ticks are
// run lazily, in order, whenever the counter is used, on the server's clock
// (Options.Now).
type rateCounter struct {
	limit        int // 0: none
	tick         time.Duration
	maxBuckets   int
	idleShutdown time.Duration
	log          *zap.Logger
	now          func() time.Time

	mu        sync.Mutex
	started   bool
	pending   int64   // counted since the last tick
	buckets   []int64 // newest first
	avg       float64
	triggered bool
	nextTick  time.Time
	nextIdle  time.Time // next idle-shutdown check
}

func newRateCounter(limit int, tick time.Duration, maxBuckets int, now func() time.Time, log *zap.Logger) *rateCounter {
	return &rateCounter{limit: limit, tick: tick, maxBuckets: maxBuckets, idleShutdown: rateIdleShutdown, now: now, log: log}
}

// start starts the counter unless it runs already, as Realtime's poller
// starts it when it starts.
func (r *rateCounter) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		r.restart(r.now())
	}
}

// restart is a fresh counter at at: its first tick runs at once and finds
// nothing counted.
func (r *rateCounter) restart(at time.Time) {
	r.started = true
	r.pending = 0
	r.buckets = append(r.buckets[:0], 0)
	r.avg = 0
	r.triggered = false
	r.nextTick = at.Add(r.tick)
	r.nextIdle = at.Add(r.idleShutdown)
}

// advance runs the ticks and idle-shutdown checks due by now, in order.
func (r *rateCounter) advance(now time.Time) {
	for r.started {
		if now.Before(r.nextTick) && now.Before(r.nextIdle) {
			return
		}
		if !r.nextIdle.After(r.nextTick) {
			at := r.nextIdle
			if allZero(r.buckets) {
				r.restart(at)
			} else {
				r.nextIdle = at.Add(r.idleShutdown)
			}
			continue
		}
		r.runTick()
	}
}

func (r *rateCounter) runTick() {
	if len(r.buckets) < r.maxBuckets {
		r.buckets = append(r.buckets, 0)
	}
	copy(r.buckets[1:], r.buckets)
	r.buckets[0] = r.pending
	r.pending = 0
	var sum int64
	for _, n := range r.buckets {
		sum += n
	}
	r.avg = float64(sum) / float64(len(r.buckets)) / r.tick.Seconds()
	if r.limit > 0 {
		switch {
		case r.triggered && r.avg < float64(r.limit):
			r.triggered = false
		case !r.triggered && r.avg >= float64(r.limit):
			r.triggered = true
			r.log.Error("MessagePerSecondRateLimitReached: Too many postgres changes messages per second",
				zap.Float64("average", r.avg), zap.Int("max_events_per_second", r.limit))
		}
	}
	r.nextTick = r.nextTick.Add(r.tick)
}

// add counts n events.
func (r *rateCounter) add(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(r.now())
	if r.started {
		r.pending += int64(n)
	}
}

// limited reports whether the limit is triggered.
func (r *rateCounter) limited() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(r.now())
	return r.triggered
}

// state returns the average and whether the limit is triggered.
func (r *rateCounter) state() (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(r.now())
	return r.avg, r.triggered
}

func allZero(ns []int64) bool {
	for _, n := range ns {
		if n != 0 {
			return false
		}
	}
	return true
}
