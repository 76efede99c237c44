package alerts

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EventCounts are the engine's alert counters for one event.
type EventCounts struct {
	// Claimed alerts were recorded in alert_logs (including suppressed ones).
	Claimed int64
	// Suppressed alerts were recorded as suppressed by throttling.
	Suppressed int64
	// Duplicates were already claimed (by this or another instance).
	Duplicates int64
}

// eventCounters counts alerts by event; safe for concurrent use.
type eventCounters struct {
	mu sync.Mutex
	m  map[Event]*EventCounts
}

func (c *eventCounters) add(ev Event, f func(*EventCounts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[Event]*EventCounts{}
	}
	n := c.m[ev]
	if n == nil {
		n = &EventCounts{}
		c.m[ev] = n
	}
	f(n)
}

func (c *eventCounters) snapshot() map[Event]EventCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Event]EventCounts, len(c.m))
	for ev, n := range c.m {
		out[ev] = *n
	}
	return out
}

// engineReadiness records whether the rules were loaded once and whether
// the first catch-up (reconciliation to the horizon) is done.
type engineReadiness struct{ started atomic.Bool }

// Started reports whether the engine loaded its rules and completed its
// first catch-up: it alerts on every change from now on, with Realtime or
// without.
func (e *Engine) Started() bool { return e.ready.started.Load() }

// ReconcileLag is how far the reconcile cursor is behind the database's
// clock while this daemon holds the reconcile lease; 0 otherwise.
func (e *Engine) ReconcileLag() time.Duration {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	if !e.stats.reconcileHeld {
		return 0
	}
	return e.stats.reconcileLag
}

// ReconcileCheck fails while the reconciler, when this daemon holds the
// lease, lags behind by more than Options.ReconcileLagAlert, or while its
// passes fail.
func (e *Engine) ReconcileCheck() error {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	s := &e.stats
	switch {
	case s.reconcileErr != "":
		return fmt.Errorf("reconciliation failing: %s", s.reconcileErr)
	case s.reconcileHeld && e.opts.ReconcileLagAlert > 0 && s.reconcileLag > e.opts.ReconcileLagAlert:
		return fmt.Errorf("reconciliation lags %s behind (threshold %s)", s.reconcileLag.Round(time.Second), e.opts.ReconcileLagAlert)
	}
	return nil
}

// ByEvent returns the alert counters by event.
func (e *Engine) ByEvent() map[Event]EventCounts { return e.events.snapshot() }

// RulesLoaded reports whether the rules have been loaded from the store at
// least once (the engine is ready to match changes).
func (e *Engine) RulesLoaded() bool { return e.rules.Loaded() }

// Rejected is the number of rules refused when they were loaded.
func (e *Engine) Rejected() int { return len(e.rules.Rejected()) }
