package alerts

import "time"

// throttler limits each throttled rule to ThrottleMax alerts per
// ThrottleWindow per workflow, over a sliding window, and counts the alerts
// it suppresses so the next one sent can report them.
//
// The counters live in memory: after a restart every window starts fresh,
// and two daemons each count the alerts they claimed themselves.
// It is used only from the engine's goroutine.
type throttler struct {
	m map[throttleKey]*throttleState
}

type throttleKey struct{ rule, workflow string }

type throttleState struct {
	// sent holds the send times of the last ThrottleMax alerts, a ring
	// once full; next is the oldest entry then.
	sent       []time.Time
	next       int
	suppressed int
}

func newThrottler() *throttler { return &throttler{m: map[throttleKey]*throttleState{}} }

// check reports whether an alert of r for workflow may be sent at now, and
// how many were suppressed since the last one sent. It changes nothing:
// record does, once the alert is claimed.
func (t *throttler) check(r *Rule, workflow string, now time.Time) (allowed bool, suppressed int) {
	if !r.Throttled() {
		return true, 0
	}
	st := t.m[throttleKey{r.ID(), workflow}]
	if st == nil {
		return true, 0
	}
	return st.allows(r.ThrottleMax(), r.ThrottleWindow(), now), st.suppressed
}

func (st *throttleState) allows(max int, window time.Duration, now time.Time) bool {
	st.fit(max)
	if len(st.sent) < max {
		return true
	}
	oldest := st.sent[st.next]
	return !oldest.After(now.Add(-window))
}

// record accounts for a claimed alert: sent, or suppressed.
func (t *throttler) record(r *Rule, workflow string, now time.Time, sent bool) {
	if !r.Throttled() {
		return
	}
	k := throttleKey{r.ID(), workflow}
	st := t.m[k]
	if st == nil {
		st = &throttleState{}
		t.m[k] = st
	}
	if !sent {
		st.suppressed++
		return
	}
	st.suppressed = 0
	max := r.ThrottleMax()
	st.fit(max)
	if len(st.sent) < max {
		st.sent = append(st.sent, now)
		return
	}
	st.sent[st.next] = now
	st.next = (st.next + 1) % max
}

// fit adapts the ring to a changed limit: it puts the send times back in
// order, oldest first, keeping the newest max of them.
func (st *throttleState) fit(max int) {
	if len(st.sent) == max || (len(st.sent) < max && st.next == 0) {
		return
	}
	ordered := make([]time.Time, 0, len(st.sent))
	ordered = append(ordered, st.sent[st.next:]...)
	ordered = append(ordered, st.sent[:st.next]...)
	if len(ordered) > max {
		ordered = ordered[len(ordered)-max:]
	}
	st.sent, st.next = ordered, 0
}

// prune forgets the counters of deleted rules and of windows that no longer
// limit anything and owe no suppressed count.
func (t *throttler) prune(rules *RuleSet, now time.Time) {
	for k, st := range t.m {
		r, ok := rules.Get(k.rule)
		if !ok || !r.Throttled() {
			delete(t.m, k)
			continue
		}
		if st.suppressed > 0 {
			continue
		}
		newest := time.Time{}
		for _, s := range st.sent {
			if s.After(newest) {
				newest = s
			}
		}
		if !newest.After(now.Add(-r.ThrottleWindow())) {
			delete(t.m, k)
		}
	}
}
