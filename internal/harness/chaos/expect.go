package chaos

import (
	"slices"
	"sort"
	"time"
)

// Event names, as alert_configs.events spells them.
const (
	evSucceeded = "succeeded"
	evFailed    = "failed"
	evCanceled  = "canceled"
	evPaused    = "paused"
	evDelayed   = "delayed"
	evStalled   = "stalled"
	evRecovered = "recovered"
)

// Run statuses the generator writes.
const (
	stRunning   = "running"
	stPaused    = "paused"
	stSucceeded = "succeeded"
	stFailed    = "failed"
	stCanceled  = "canceled"
)

func terminal(status string) bool {
	return status == stSucceeded || status == stFailed || status == stCanceled
}

// Key identifies one alert: a rule, a run and an event.
type Key struct {
	Rule, Run, Event string
}

// Verdict says whether an alert must, may or must not be delivered.
type Verdict int

const (
	// Forbidden alerts must never be delivered.
	Forbidden Verdict = iota
	// Either alerts may be delivered or not: the run's timeline is within
	// the tolerance band of a threshold, or a fault hid a short-lived state.
	Either
	// Required alerts must be delivered exactly once.
	Required
)

func (v Verdict) String() string {
	switch v {
	case Required:
		return "required"
	case Either:
		return "either"
	default:
		return "forbidden"
	}
}

// RuleSpec is what the checker needs to know about an alert rule.
type RuleSpec struct {
	ID      string
	Name    string
	Slug    string // "" for every workflow of the project
	Enabled bool
	Events  []string
	Delay   time.Duration // delay_threshold_seconds, 0 when unset
	Stall   time.Duration // stall_threshold_seconds, 0 when unset
}

func (r RuleSpec) wants(ev string) bool { return r.Enabled && slices.Contains(r.Events, ev) }

func (r RuleSpec) matches(slug string) bool { return r.Slug == "" || r.Slug == slug }

// Transition is one status a run entered, with the database time of the
// write (the row's updated_at).
type Transition struct {
	Status string
	At     time.Time
}

// RunRecord is the generator's record of one run.
type RunRecord struct {
	ID      string
	Slug    string
	Started time.Time // started_at
	Steps   []Transition
}

// interval is a half-open time interval [From, To).
type interval struct{ From, To time.Time }

// blindSet is the union of the intervals during which the daemon may not
// have seen what happened (a fault and its recovery, with margins).
type blindSet struct{ merged []interval }

// newBlindSet merges ivs.
func newBlindSet(ivs []interval) blindSet {
	s := slices.Clone(ivs)
	sort.Slice(s, func(i, j int) bool { return s[i].From.Before(s[j].From) })
	var out []interval
	for _, iv := range s {
		if n := len(out); n > 0 && !iv.From.After(out[n-1].To) {
			if iv.To.After(out[n-1].To) {
				out[n-1].To = iv.To
			}
			continue
		}
		out = append(out, iv)
	}
	return blindSet{merged: out}
}

// endOf returns the end of the blind interval containing t, or t itself
// when t is not blind.
func (b blindSet) endOf(t time.Time) time.Time {
	for _, iv := range b.merged {
		if !t.Before(iv.From) && t.Before(iv.To) {
			return iv.To
		}
	}
	return t
}

// clearStretch reports whether [from, to) contains a stretch longer than
// tol that no blind interval covers.
func (b blindSet) clearStretch(from, to time.Time, tol time.Duration) bool {
	cur := from
	for _, iv := range b.merged {
		if !iv.To.After(cur) {
			continue
		}
		if !iv.From.Before(to) {
			break
		}
		if iv.From.Sub(cur) > tol {
			return true
		}
		if iv.To.After(cur) {
			cur = iv.To
		}
	}
	return to.Sub(cur) > tol
}

// Expectation holds the verdicts for every alert the checker knows of.
type Expectation struct {
	verdicts map[Key]Verdict
}

// Verdict returns the verdict for k; unknown keys are Forbidden.
func (x *Expectation) Verdict(k Key) Verdict { return x.verdicts[k] }

// Count returns how many keys have verdict v.
func (x *Expectation) Count(v Verdict) int {
	n := 0
	for _, got := range x.verdicts {
		if got == v {
			n++
		}
	}
	return n
}

// Keys returns the keys with verdict v, sorted.
func (x *Expectation) Keys(v Verdict) []Key {
	var out []Key
	for k, got := range x.verdicts {
		if got == v {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Run != b.Run {
			return a.Run < b.Run
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Event < b.Event
	})
	return out
}

// Timing are the tolerances of the expectation.
type Timing struct {
	// Tolerance is how long a timed condition must last past its threshold
	// (outside every blind interval) for its alert to be required; within
	// it either outcome is fine.
	Tolerance time.Duration
	// Early is how far before its threshold a condition may end and still
	// be alerted (clock and commit-time differences).
	Early time.Duration
}

// Blind are the intervals during which the daemon may not have seen what
// happened to runs.
type Blind struct {
	// Changes: a change committed then may reach the daemon only through a
	// later catch-up, which sees the run's state at that time.
	Changes []interval
	// Timers: a delayed/stalled timer due then may not be confirmed (this
	// includes REST outages, after which the engine retries a few seconds
	// later).
	Timers []interval
}

// Expect derives from the generator's record which alerts must, may and
// must not be delivered. recovered alerts depend on which delayed/stalled
// alerts the daemon claimed (claimed reports that), since those may be Either.
func Expect(rules []RuleSpec, runs []*RunRecord, blind Blind, tm Timing, claimed func(Key) bool) *Expectation {
	bs := newBlindSet(blind.Changes)
	ts := newBlindSet(append(slices.Clone(blind.Changes), blind.Timers...))
	x := &Expectation{verdicts: map[Key]Verdict{}}
	set := func(k Key, v Verdict) {
		if v > x.verdicts[k] {
			x.verdicts[k] = v
		}
	}
	for _, run := range runs {
		for _, r := range rules {
			if !r.Enabled || !r.matches(run.Slug) {
				continue
			}
			for i, st := range run.Steps {
				end := time.Time{} // zero: the state never ended
				if i+1 < len(run.Steps) {
					end = run.Steps[i+1].At
				}
				switch {
				case terminal(st.Status) && r.wants(st.Status):
					set(Key{r.ID, run.ID, st.Status}, Required)
				case st.Status == stPaused && r.wants(evPaused):
					// A pause that ended while the daemon was blind to it
					// may never be seen: catch-up reads current rows.
					v := Required
					if !end.IsZero() && end.Sub(bs.endOf(st.At)) <= tm.Tolerance {
						v = Either
					}
					set(Key{r.ID, run.ID, evPaused}, v)
				}
				if st.Status == stRunning && r.wants(evDelayed) && r.Delay > 0 {
					set(Key{r.ID, run.ID, evDelayed}, timedVerdict(ts, st.At, end, run.Started.Add(r.Delay), tm))
				}
				if st.Status == stPaused && r.wants(evStalled) && r.Stall > 0 {
					set(Key{r.ID, run.ID, evStalled}, timedVerdict(ts, st.At, end, st.At.Add(r.Stall), tm))
				}
			}
			if r.wants(evRecovered) && len(run.Steps) > 0 && terminal(run.Steps[len(run.Steps)-1].Status) {
				if claimed(Key{r.ID, run.ID, evDelayed}) || claimed(Key{r.ID, run.ID, evStalled}) {
					set(Key{r.ID, run.ID, evRecovered}, Required)
				}
			}
		}
	}
	return x
}

// timedVerdict judges a delayed or stalled alert for one stretch of a
// condition [from, to) (to zero: it never ended) whose threshold is reached
// at due. The daemon learns of a condition that began while it was blind
// only when that blind interval ends.
func timedVerdict(bs blindSet, from, to, due time.Time, tm Timing) Verdict {
	if !to.IsZero() && to.Before(due.Add(-tm.Early)) {
		return Forbidden
	}
	start := due
	if known := bs.endOf(from); known.After(start) {
		start = known
	}
	if to.IsZero() {
		to = start.Add(24 * time.Hour)
	}
	if bs.clearStretch(start, to, tm.Tolerance) {
		return Required
	}
	return Either
}
