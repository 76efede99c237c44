// Package alerts is the rules engine: it turns row changes of the watched runs
// table into exactly the alerts users configured, claims each one durably in
// alert_logs and hands it to the sender.
package alerts

import (
	"fmt"
	"sort"
	"strings"
)

// Event is a condition a rule can fire on.
type Event string

// The events a rule can list.
const (
	EventSucceeded Event = "succeeded" // the run finished successfully
	EventFailed    Event = "failed"    // the run failed
	EventCanceled  Event = "canceled"  // the run was canceled
	EventPaused    Event = "paused"    // the run waits for manual intervention
	EventDelayed   Event = "delayed"   // the run is still running past the rule's delay threshold
	EventStalled   Event = "stalled"   // the run is still paused past the rule's stall threshold
	EventRecovered Event = "recovered" // a run alerted as delayed or stalled has finished
	// EventResolved is the next succeeded run of a workflow after a failed
	// alert of the same rule (opt-in: the rule lists it with failed).
	EventResolved Event = "resolved"
)

// AllEvents lists every event in documentation order.
var AllEvents = []Event{EventSucceeded, EventFailed, EventCanceled, EventPaused, EventDelayed, EventStalled, EventRecovered, EventResolved}

// ParseEvent validates an event name.
func ParseEvent(s string) (Event, error) {
	e := Event(strings.TrimSpace(s))
	for _, known := range AllEvents {
		if e == known {
			return e, nil
		}
	}
	names := make([]string, len(AllEvents))
	for i, k := range AllEvents {
		names[i] = string(k)
	}
	sort.Strings(names)
	return "", fmt.Errorf("unknown event %q (want one of %s)", s, strings.Join(names, ", "))
}

// eventSet is a set of events, one bit per event of AllEvents.
type eventSet uint8

// eventBit returns the bit of e, or 0 for an unknown event.
func eventBit(e Event) eventSet {
	for i, k := range AllEvents {
		if k == e {
			return 1 << i
		}
	}
	return 0
}

func (s eventSet) has(e Event) bool { return s&eventBit(e) != 0 }

// eventNames holds one shared, read-only name list per event set.
var eventNames [256][]string

func init() {
	for s := range eventNames {
		for i, e := range AllEvents {
			if s&(1<<i) != 0 {
				eventNames[s] = append(eventNames[s], string(e))
			}
		}
	}
}

// names lists the set's events in AllEvents order (shared: do not modify).
func (s eventSet) names() []string { return eventNames[s] }

// State is where a run is in its lifecycle, independent of the table's own
// status vocabulary.
type State int

// Run states.
const (
	StateUnknown State = iota
	StateRunning
	StatePaused
	StateSucceeded
	StateFailed
	StateCanceled
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateSucceeded:
		return "succeeded"
	case StateFailed:
		return "failed"
	case StateCanceled:
		return "canceled"
	}
	return "unknown"
}

// Terminal reports whether the run has finished.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCanceled
}

// Timed reports whether the state has a timer-driven condition: running
// runs can become delayed and paused runs stalled.
func (s State) Timed() bool { return s == StateRunning || s == StatePaused }

// TimerEvent is the timer-driven event of a running (delayed) or paused
// (stalled) run.
func (s State) TimerEvent() (Event, bool) {
	switch s {
	case StateRunning:
		return EventDelayed, true
	case StatePaused:
		return EventStalled, true
	}
	return "", false
}

// ChangeEvent is the event a run entering this state announces by itself
// (delayed, stalled and recovered come from timers, not from a change).
func (s State) ChangeEvent() (Event, bool) {
	switch s {
	case StateSucceeded:
		return EventSucceeded, true
	case StateFailed:
		return EventFailed, true
	case StateCanceled:
		return EventCanceled, true
	case StatePaused:
		return EventPaused, true
	}
	return "", false
}
