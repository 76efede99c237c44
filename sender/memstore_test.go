package sender

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/meshhook/meshhook-alerts/internal/delivery"
)

// memStore is an in-memory Store with the database's lease semantics: a
// compare-and-set on (status, next_attempt_at) decides who holds an alert.
type memStore struct {
	mu       sync.Mutex
	rows     map[string]*memRow
	attempts []Attempt
	disabled map[string]string
	reports  int // Report calls
	// reportErr, when set, fails Report calls.
	reportErr error
	// leaseCalls counts LeaseDue calls.
	leaseCalls int
}

type memRow struct {
	a        Alert // static fields
	status   delivery.Status
	attempts int
	next     time.Time
	reason   string
	lastCode int
	lastErr  string
	done     time.Time
}

func newMemStore(alerts ...Alert) *memStore {
	m := &memStore{rows: map[string]*memRow{}, disabled: map[string]string{}}
	m.add(time.Now(), alerts...)
	return m
}

// add inserts pending alerts due at due.
func (m *memStore) add(due time.Time, alerts ...Alert) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range alerts {
		m.rows[a.ID] = &memRow{a: a, status: StatusPending, next: due}
	}
}

func (m *memStore) LeaseDue(_ context.Context, now, until time.Time, limit int) ([]Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leaseCalls++
	var due []*memRow
	for _, r := range m.rows {
		if (r.status == StatusPending || r.status == StatusDelivering) && !r.next.After(now) {
			due = append(due, r)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].next.Equal(due[j].next) {
			return due[i].next.Before(due[j].next)
		}
		return due[i].a.ID < due[j].a.ID
	})
	var out []Alert
	for _, r := range due {
		if len(out) == limit {
			break
		}
		if r.status == StatusDelivering { // expired lease: its holder died
			r.attempts++
			m.attempts = append(m.attempts, Attempt{AlertID: r.a.ID, Attempt: r.attempts, StartedAt: now, Outcome: "interrupted"})
		}
		r.status, r.next = StatusDelivering, until
		a := r.a
		a.Attempts, a.Lease = r.attempts, until
		out = append(out, a)
	}
	return out, nil
}

func (m *memStore) Report(_ context.Context, reports []Report) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reports++
	if m.reportErr != nil {
		return nil, m.reportErr
	}
	applied := map[string]bool{}
	for _, rep := range reports {
		if at := rep.Attempt; at != nil && !m.hasAttempt(at.AlertID, at.Attempt) {
			m.attempts = append(m.attempts, *at)
		}
		r := m.rows[rep.AlertID]
		if r == nil || r.status != StatusDelivering || !r.next.Equal(rep.Lease) {
			continue
		}
		u := rep.Update
		r.status, r.attempts, r.next, r.reason, r.done = u.Status, u.Attempts, u.NextAttemptAt, u.OutcomeReason, u.CompletedAt
		if u.SetLast {
			r.lastCode, r.lastErr = u.LastStatusCode, u.LastError
		}
		applied[rep.AlertID] = true
	}
	return applied, nil
}

func (m *memStore) hasAttempt(id string, n int) bool {
	for _, a := range m.attempts {
		if a.AlertID == id && a.Attempt == n {
			return true
		}
	}
	return false
}

func (m *memStore) DisableConfig(_ context.Context, id, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.disabled[id] = reason
	return nil
}

// row returns a copy of an alert's state.
func (m *memStore) row(id string) memRow {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rows[id]; r != nil {
		return *r
	}
	return memRow{}
}

func (m *memStore) status(id string) delivery.Status { return m.row(id).status }

// attemptsOf returns an alert's recorded attempts in order.
func (m *memStore) attemptsOf(id string) []Attempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	var as []Attempt
	for _, a := range m.attempts {
		if a.AlertID == id {
			as = append(as, a)
		}
	}
	sort.Slice(as, func(i, j int) bool { return as[i].Attempt < as[j].Attempt })
	return as
}

func (m *memStore) allDone(ids ...string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if s := m.rows[id].status; s != StatusSucceeded && s != StatusFailed {
			return false
		}
	}
	return true
}

func outcomes(as []Attempt) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Outcome
	}
	return out
}
