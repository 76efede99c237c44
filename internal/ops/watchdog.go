package ops

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Internal alert conditions.
const (
	CondFailureRatio = "delivery_failure_ratio"
	CondRealtimeDown = "realtime_not_subscribed"
	CondBacklog      = "pending_backlog"
	// CondReconcileLag fires while reconciliation lags: changes Realtime
	// missed are alerted late.
	CondReconcileLag = "reconcile_lag"
	// CondRuleDisabled is an event, not a state: a rule was disabled
	// because its endpoint answered 410 Gone. It is reported once per rule
	// and never resolves (re-enabling the rule is the operator's act).
	CondRuleDisabled = "rule_disabled"
)

// Sample is one reading of the daemon's state for the watchdog.
type Sample struct {
	// Attempts and Failures are cumulative delivery attempt counters.
	Attempts, Failures uint64
	// Subscribed is whether Realtime is subscribed.
	Subscribed bool
	// ReconcileLag is how far reconciliation is behind (0 when this daemon
	// does not reconcile).
	ReconcileLag time.Duration
	// Pending is the number of pending alerts; PendingKnown is false when it
	// could not be read (the backlog condition keeps its state).
	Pending      int64
	PendingKnown bool
	// Disabled are the rules disabled (410 Gone) since the last sample.
	Disabled []DisabledRule
}

// DisabledRule is a rule the daemon disabled.
type DisabledRule struct {
	RuleID string
	Reason string
	At     time.Time
}

// Thresholds configures the watchdog; a zero threshold disables its
// condition.
type Thresholds struct {
	// FailureRatio (0..1) of failed attempts over FailureWindow above which
	// CondFailureRatio fires, once at least FailureMinAttempts were made.
	FailureRatio       float64
	FailureWindow      time.Duration
	FailureMinAttempts uint64
	// RealtimeDownAfter is how long Realtime may stay unsubscribed.
	RealtimeDownAfter time.Duration
	// PendingBacklog is the pending count above which CondBacklog fires.
	PendingBacklog int64
	// ReconcileLag is the reconciliation lag above which CondReconcileLag
	// fires.
	ReconcileLag time.Duration
}

// Notice is one internal alert: a condition started (Firing) or cleared.
type Notice struct {
	Condition string    `json:"condition"`
	RuleID    string    `json:"rule_id,omitempty"` // CondRuleDisabled
	Firing    bool      `json:"firing"`
	Message   string    `json:"message"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	At        time.Time `json:"at"`
}

// Watchdog evaluates the internal alert conditions over successive samples.
// It reports each condition once when it starts and once when it clears;
// a notice counts as reported only after Ack, so a notice that could not be
// delivered is produced again at the next evaluation. Not safe for
// concurrent use.
type Watchdog struct {
	th        Thresholds
	now       func() time.Time
	history   []point // attempt counters within the failure window
	downSince time.Time
	reported  map[string]bool
	// events are the event notices (CondRuleDisabled) not yet acknowledged.
	events []Notice
}

// maxEvents bounds the event notices kept while the operator webhook is
// unreachable; the oldest are dropped first.
const maxEvents = 1000

type point struct {
	at                 time.Time
	attempts, failures uint64
}

// NewWatchdog builds a watchdog; now defaults to time.Now.
func NewWatchdog(th Thresholds, now func() time.Time) *Watchdog {
	if now == nil {
		now = time.Now
	}
	return &Watchdog{th: th, now: now, reported: map[string]bool{}}
}

// Evaluate records s and returns the notices whose condition changed since
// it was last acknowledged, ordered by condition.
func (w *Watchdog) Evaluate(s Sample) []Notice {
	now := w.now()
	var out []Notice
	emit := func(cond string, firing bool, value, threshold float64, msg string) {
		if w.reported[cond] != firing {
			out = append(out, Notice{Condition: cond, Firing: firing, Message: msg, Value: value, Threshold: threshold, At: now})
		}
	}
	if w.th.FailureRatio > 0 && w.th.FailureWindow > 0 {
		if ratio, n, ok := w.failureRatio(now, s); ok {
			firing := ratio > w.th.FailureRatio
			msg := fmt.Sprintf("%.0f%% of %d delivery attempts failed over the last %s (threshold %.0f%%)",
				ratio*100, n, w.th.FailureWindow, w.th.FailureRatio*100)
			emit(CondFailureRatio, firing, ratio, w.th.FailureRatio, msg)
		}
	}
	if w.th.RealtimeDownAfter > 0 {
		if s.Subscribed {
			w.downSince = time.Time{}
			emit(CondRealtimeDown, false, 0, w.th.RealtimeDownAfter.Seconds(), "Realtime is subscribed again")
		} else {
			if w.downSince.IsZero() {
				w.downSince = now
			}
			down := now.Sub(w.downSince)
			if down >= w.th.RealtimeDownAfter {
				emit(CondRealtimeDown, true, down.Seconds(), w.th.RealtimeDownAfter.Seconds(),
					fmt.Sprintf("Realtime has not been subscribed for %s (threshold %s)", down.Round(time.Second), w.th.RealtimeDownAfter))
			}
		}
	}
	if w.th.PendingBacklog > 0 && s.PendingKnown {
		firing := s.Pending > w.th.PendingBacklog
		emit(CondBacklog, firing, float64(s.Pending), float64(w.th.PendingBacklog),
			fmt.Sprintf("%d alerts are pending delivery (threshold %d)", s.Pending, w.th.PendingBacklog))
	}
	if w.th.ReconcileLag > 0 {
		firing := s.ReconcileLag > w.th.ReconcileLag
		emit(CondReconcileLag, firing, s.ReconcileLag.Seconds(), w.th.ReconcileLag.Seconds(),
			fmt.Sprintf("reconciliation is %s behind the database (threshold %s): changes Realtime missed are alerted late",
				s.ReconcileLag.Round(time.Second), w.th.ReconcileLag))
	}
	for _, d := range s.Disabled {
		w.events = append(w.events, Notice{Condition: CondRuleDisabled, RuleID: d.RuleID, Firing: true, At: d.At,
			Message: fmt.Sprintf("alert rule %s was disabled: %s", d.RuleID, d.Reason)})
	}
	if len(w.events) > maxEvents {
		w.events = append(w.events[:0], w.events[len(w.events)-maxEvents:]...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Condition < out[j].Condition })
	return append(out, w.events...)
}

// failureRatio adds s to the history and returns the failed share of the
// attempts made within the window and their number; ok is false while
// fewer than FailureMinAttempts were made (the condition keeps its state).
func (w *Watchdog) failureRatio(now time.Time, s Sample) (ratio float64, n uint64, ok bool) {
	w.history = append(w.history, point{at: now, attempts: s.Attempts, failures: s.Failures})
	// Keep the newest point at or before the window's start as the base.
	start := now.Add(-w.th.FailureWindow)
	drop := 0
	for drop+1 < len(w.history) && !w.history[drop+1].at.After(start) {
		drop++
	}
	w.history = w.history[drop:]
	base := w.history[0]
	if s.Attempts < base.attempts || s.Failures < base.failures {
		return 0, 0, false // counters went back (should not happen)
	}
	n = s.Attempts - base.attempts
	if n == 0 || n < w.th.FailureMinAttempts {
		return 0, n, n == 0 && w.reported[CondFailureRatio] // no traffic clears a firing ratio
	}
	return float64(s.Failures-base.failures) / float64(n), n, true
}

// Ack marks n as reported.
func (w *Watchdog) Ack(n Notice) {
	if n.Condition == CondRuleDisabled {
		for i, e := range w.events {
			if e.RuleID == n.RuleID && e.At.Equal(n.At) {
				w.events = append(w.events[:i], w.events[i+1:]...)
				break
			}
		}
		return
	}
	w.reported[n.Condition] = n.Firing
}

// Firing returns the conditions currently reported as firing.
func (w *Watchdog) Firing() []string {
	var out []string
	for c, f := range w.reported {
		if f {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out
}

// RunWatchdog evaluates w every interval with sample and hands each notice
// to notify, acknowledging those notify accepted, until ctx ends.
func RunWatchdog(ctx context.Context, w *Watchdog, interval time.Duration, sample func(context.Context) Sample,
	notify func(context.Context, Notice) error, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, n := range w.Evaluate(sample(ctx)) {
			if err := notify(ctx, n); err != nil {
				log.Warn("internal alert not delivered; retrying at the next check",
					zap.String("condition", n.Condition), zap.Bool("firing", n.Firing), zap.Error(err))
				continue
			}
			log.Info("internal alert sent", zap.String("condition", n.Condition), zap.Bool("firing", n.Firing),
				zap.String("message", n.Message))
			w.Ack(n)
		}
	}
}

// DisabledRules collects the rules the daemon disables between two watchdog
// samples. Safe for concurrent use; it keeps at most maxEvents.
type DisabledRules struct {
	mu    sync.Mutex
	rules []DisabledRule
}

// Add records that rule id was disabled for reason at at.
func (d *DisabledRules) Add(id, reason string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.rules) >= maxEvents {
		d.rules = d.rules[1:]
	}
	d.rules = append(d.rules, DisabledRule{RuleID: id, Reason: reason, At: at})
}

// Drain returns the rules recorded since the last Drain.
func (d *DisabledRules) Drain() []DisabledRule {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.rules
	d.rules = nil
	return out
}
