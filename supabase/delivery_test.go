package supabase_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
	"github.com/meshhook/meshhook-alerts/supabase"
)

func TestIntegration_LeaseAndReport(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var ids []string
	for i := range 3 {
		l, claimed := claim(t, f.store, f.newAlert(fmt.Sprintf("run-%d", i), fmt.Sprintf("msg_%d", i)))
		require.True(t, claimed)
		ids = append(ids, l.ID)
	}
	now := time.Now()
	until := now.Add(time.Minute)

	leased, err := f.store.LeaseDueAlerts(ctx, now, until, 2)
	require.NoError(t, err)
	require.Len(t, leased, 2)
	for _, l := range leased {
		assert.Equal(t, supabase.StatusDelivering, l.Status)
		assert.True(t, l.NextAttemptAt.Equal(until.Truncate(time.Microsecond)), "the lease is next_attempt_at")
		assert.Equal(t, 0, l.Attempts)
		assert.NotEmpty(t, l.Payload)
	}
	more, err := f.store.LeaseDueAlerts(ctx, now, until, 10)
	require.NoError(t, err)
	require.Len(t, more, 1, "leased alerts are not handed out again")
	none, err := f.store.LeaseDueAlerts(ctx, now, until, 10)
	require.NoError(t, err)
	require.Empty(t, none)

	// Report: a success, a retry and a stale report (wrong lease).
	a, b, c := leased[0], leased[1], more[0]
	next := now.Add(5 * time.Second)
	reports := []supabase.DeliveryReport{
		{AlertID: a.ID, Lease: a.NextAttemptAt, Attempt: &supabase.Attempt{Attempt: 1, StartedAt: now, Latency: 12 * time.Millisecond,
			StatusCode: 204, Outcome: "ok"},
			Update: supabase.DeliveryUpdate{Status: supabase.StatusSucceeded, Attempts: 1, OutcomeReason: "ok", CompletedAt: now,
				SetLast: true, LastStatusCode: 204}},
		{AlertID: b.ID, Lease: b.NextAttemptAt, Attempt: &supabase.Attempt{Attempt: 1, StartedAt: now, StatusCode: 500,
			ResponseExcerpt: "oops", Outcome: "http_500"},
			Update: supabase.DeliveryUpdate{Status: supabase.StatusPending, Attempts: 1, NextAttemptAt: next, OutcomeReason: "http_500",
				SetLast: true, LastStatusCode: 500, LastError: ""}},
		{AlertID: c.ID, Lease: c.NextAttemptAt.Add(time.Second), Attempt: &supabase.Attempt{Attempt: 1, StartedAt: now, Outcome: "timeout",
			Error: "timeout"},
			Update: supabase.DeliveryUpdate{Status: supabase.StatusPending, Attempts: 1, NextAttemptAt: next, OutcomeReason: "timeout",
				SetLast: true}},
	}
	applied, err := f.store.ReportDeliveries(ctx, reports)
	require.NoError(t, err)
	assert.Equal(t, map[string]bool{a.ID: true, b.ID: true}, applied, "the stale lease is refused")
	again, err := f.store.ReportDeliveries(ctx, reports)
	require.NoError(t, err)
	assert.Equal(t, applied, again, "a repeated batch is idempotent")

	got, err := f.store.GetAlert(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusSucceeded, got.Status)
	assert.Equal(t, 204, got.LastStatusCode)
	assert.True(t, got.NextAttemptAt.IsZero())
	assert.False(t, got.CompletedAt.IsZero())
	got, err = f.store.GetAlert(ctx, b.ID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusPending, got.Status)
	assert.True(t, got.NextAttemptAt.Equal(next.Truncate(time.Microsecond)))
	got, err = f.store.GetAlert(ctx, c.ID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusDelivering, got.Status, "the stale report did not apply")
	for _, id := range []string{a.ID, b.ID, c.ID} {
		as, err := f.store.ListAttempts(ctx, id)
		require.NoError(t, err)
		assert.Len(t, as, 1, "every attempt is recorded once, even the stale one's")
	}

	// A report without an attempt keeps last_status_code and last_error.
	leasedB, err := f.store.LeaseDueAlerts(ctx, next, next.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, leasedB, 1)
	applied, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: b.ID, Lease: leasedB[0].NextAttemptAt,
		Update: supabase.DeliveryUpdate{Status: supabase.StatusPending, Attempts: 1, NextAttemptAt: next.Add(time.Hour), OutcomeReason: "circuit_open"}}})
	require.NoError(t, err)
	assert.True(t, applied[b.ID])
	got, err = f.store.GetAlert(ctx, b.ID)
	require.NoError(t, err)
	assert.Equal(t, 500, got.LastStatusCode)
	assert.Equal(t, "circuit_open", got.OutcomeReason)

	// An expired lease (c's holder "died") is taken over and the lost
	// attempt recorded as interrupted.
	late := c.NextAttemptAt.Add(time.Second)
	taken, err := f.store.LeaseDueAlerts(ctx, late, late.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	assert.Equal(t, c.ID, taken[0].ID)
	assert.Equal(t, 1, taken[0].Attempts)
	assert.Equal(t, supabase.OutcomeInterrupted, taken[0].OutcomeReason)
	as, err := f.store.ListAttempts(ctx, c.ID)
	require.NoError(t, err)
	require.Len(t, as, 1, "attempt 1 already existed (the stale report's), so the interrupted record is not duplicated")

	_, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: c.ID}})
	require.ErrorContains(t, err, "lease")
	_, err = f.store.LeaseDueAlerts(ctx, now, now, 1)
	require.Error(t, err)
}

// Many concurrent leasers never get the same alert (FOR UPDATE SKIP LOCKED).
func TestIntegration_ConcurrentLeasesAreDisjoint(t *testing.T) {
	f := newFixture(t)
	const n = 120
	var batch []supabase.NewAlert
	for i := range n {
		batch = append(batch, f.newAlert(fmt.Sprintf("run-%d", i), fmt.Sprintf("msg_%d", i)))
	}
	claimed, err := f.store.ClaimAlerts(t.Context(), batch)
	require.NoError(t, err)
	require.Len(t, claimed, n)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	now := time.Now()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := f.store.LeaseDueAlerts(context.Background(), now, now.Add(time.Minute), 7)
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, l := range got {
					seen[l.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Len(t, seen, n)
	for id, c := range seen {
		assert.Equal(t, 1, c, id)
	}
}

// The delivery functions are for the service role only.
func TestIntegration_DeliveryFunctionsAreServiceRoleOnly(t *testing.T) {
	f := newFixture(t)
	anon := newStore(t, f.url, pgtest.AnonKey(), func(o *supabase.Options) { o.MaxRetries = -1 })
	_, err := anon.LeaseDueAlerts(t.Context(), time.Now(), time.Now().Add(time.Minute), 1)
	require.Error(t, err)
	assert.True(t, supabase.IsAuth(err), "%v", err)
	_, err = anon.ReportDeliveries(t.Context(), []supabase.DeliveryReport{{AlertID: "00000000-0000-0000-0000-000000000000",
		Lease: time.Now(), Update: supabase.DeliveryUpdate{Status: supabase.StatusFailed}}})
	require.Error(t, err)
	assert.True(t, supabase.IsAuth(err), "%v", err)
}

// The one-pass decoder agrees with the column-by-column one, and falls
// back to it for values in Postgres' text forms.
func TestDecodeAlertsFastPathAgrees(t *testing.T) {
	typed := `[{"id":"a","config_id":"c","project_id":null,"workflow_slug":"w","run_id":"r","event":"failed","webhook_id":"msg_1",
		"status":"delivering","attempts":2,"next_attempt_at":"2026-01-02T03:04:05.123456+00:00","payload":"{\"a\":\"x\\\"y\"}",
		"target_url":"https://h/x","occurred_at":"2026-01-02T03:04:05+00:00","last_status_code":500,"last_error":null,
		"outcome_reason":"http_500","created_at":"2026-01-02T03:04:05+00:00","updated_at":"2026-01-02T03:04:06+00:00","completed_at":null}]`
	text := strings.NewReplacer(`"attempts":2`, `"attempts":"2"`, `"last_status_code":500`, `"last_status_code":"500"`,
		`"next_attempt_at":"2026-01-02T03:04:05.123456+00:00"`, `"next_attempt_at":"2026-01-02 03:04:05.123456+00"`).Replace(typed)
	a, err := supabase.DecodeAlertsForTest([]byte(typed))
	require.NoError(t, err)
	b, err := supabase.DecodeAlertsForTest([]byte(text))
	require.NoError(t, err)
	require.Len(t, a, 1)
	assert.Equal(t, a, b)
	assert.Equal(t, 2, a[0].Attempts)
	assert.Equal(t, `{"a":"x\"y"}`, string(a[0].Payload))
	assert.Equal(t, 123456000, a[0].NextAttemptAt.Nanosecond())
	_, err = supabase.DecodeAlertsForTest([]byte(`[{"attempts":"many"}]`))
	assert.ErrorContains(t, err, "attempts")
}

// TestRequeueAlertStartsAFreshBudget follows an alert that used all its
// attempts (the third succeeded) through a redelivery: it comes back with
// its budget counted from the redelivery, its history kept, and the next
// attempt numbered after the last one.
func TestRequeueAlertStartsAFreshBudget(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l, claimed := claim(t, f.store, f.newAlert("run-redeliver", "msg_redeliver"))
	require.True(t, claimed)
	start := time.Now().Add(-48 * time.Hour)
	for i := 1; i <= 3; i++ {
		leased, err := f.store.LeaseDueAlerts(ctx, time.Now(), time.Now().Add(time.Minute), 10)
		require.NoError(t, err)
		require.Len(t, leased, 1)
		u := supabase.DeliveryUpdate{Status: supabase.StatusPending, Attempts: i, NextAttemptAt: time.Now().Add(-time.Second),
			OutcomeReason: "http_500"}
		outcome := "http_500"
		if i == 3 {
			u = supabase.DeliveryUpdate{Status: supabase.StatusSucceeded, Attempts: i, OutcomeReason: "ok", CompletedAt: time.Now()}
			outcome = "ok"
		}
		_, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: l.ID, Lease: leased[0].NextAttemptAt,
			Attempt: &supabase.Attempt{Attempt: i, StartedAt: start.Add(time.Duration(i) * time.Minute), Outcome: outcome}, Update: u}})
		require.NoError(t, err)
	}
	done, err := f.store.GetAlert(ctx, l.ID)
	require.NoError(t, err)
	require.Equal(t, supabase.StatusSucceeded, done.Status)
	require.Equal(t, 3, done.Attempts)
	assert.Zero(t, done.AttemptBase)
	assert.True(t, done.RedeliveredAt.IsZero())

	now := time.Now()
	requeued, err := f.store.RequeueAlert(ctx, l.ID, now)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusPending, requeued.Status)
	assert.Equal(t, 3, requeued.Attempts, "attempt numbers keep counting")
	assert.Equal(t, 3, requeued.AttemptBase, "the budget counts from the redelivery")
	assert.True(t, requeued.RedeliveredAt.Equal(now.Truncate(time.Microsecond)), "%v", requeued.RedeliveredAt)

	leased, err := f.store.LeaseDueAlerts(ctx, now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, leased, 1)
	assert.Equal(t, 3, leased[0].Attempts)
	assert.Equal(t, 3, leased[0].AttemptBase, "the sender sees the budget")
	assert.True(t, leased[0].RedeliveredAt.Equal(now.Truncate(time.Microsecond)))
	_, err = f.store.ReportDeliveries(ctx, []supabase.DeliveryReport{{AlertID: l.ID, Lease: leased[0].NextAttemptAt,
		Attempt: &supabase.Attempt{Attempt: 4, StartedAt: now, Outcome: "ok", StatusCode: 204},
		Update:  supabase.DeliveryUpdate{Status: supabase.StatusSucceeded, Attempts: 4, OutcomeReason: "ok", CompletedAt: now}}})
	require.NoError(t, err)
	attempts, err := f.store.ListAttempts(ctx, l.ID)
	require.NoError(t, err)
	var nums []int
	for _, a := range attempts {
		nums = append(nums, a.Attempt)
	}
	assert.Equal(t, []int{1, 2, 3, 4}, nums, "the history is kept and the new attempt recorded")

	// A second redelivery counts from the fourth attempt.
	again, err := f.store.RequeueAlert(ctx, l.ID, now.Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, 4, again.AttemptBase)

	// The database refuses a base beyond the attempts made.
	_, err = f.db.Pool.Exec(ctx, `update alert_logs set attempt_base = attempts + 1 where id = $1`, l.ID)
	assert.ErrorContains(t, err, "alert_logs_attempt_base_check")
}

// TestRequeueFailedAlertTakesItsResolveAlong redelivers a failed alert
// after the resolved alert that resolved it was delivered: both are
// pending again, and the resolve is leased only after the trigger is
// delivered, so the receiver sees them in that order once more.
func TestRequeueFailedAlertTakesItsResolveAlong(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l, claimed := claim(t, f.store, f.newAlert("run-failed", "msg_failed"))
	require.True(t, claimed)
	res := f.newAlert("run-ok", "msg_ok")
	res.Event, res.OccurredAt = "resolved", res.OccurredAt.Add(time.Minute)
	r, ok, err := f.store.ClaimResolve(ctx, res)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = f.db.Pool.Exec(ctx, `update alert_logs set status = 'succeeded', next_attempt_at = null, attempts = 1,
		completed_at = now() where id in ($1, $2)`, l.ID, r.ID)
	require.NoError(t, err)

	now := time.Now()
	requeued, err := f.store.RequeueAlert(ctx, l.ID, now)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusPending, requeued.Status)
	resolve, err := f.store.GetAlert(ctx, r.ID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusPending, resolve.Status, "the resolve is sent again")
	assert.Equal(t, 1, resolve.AttemptBase)

	leased, err := f.store.LeaseDueAlerts(ctx, now, now.Add(time.Minute), 10)
	require.NoError(t, err)
	require.Len(t, leased, 1)
	assert.Equal(t, l.ID, leased[0].ID, "the trigger first")

	// Redelivering the resolve alone takes nothing along.
	_, err = f.db.Pool.Exec(ctx, `update alert_logs set status = 'succeeded', next_attempt_at = null where id in ($1, $2)`, l.ID, r.ID)
	require.NoError(t, err)
	_, err = f.store.RequeueAlert(ctx, r.ID, now)
	require.NoError(t, err)
	trigger, err := f.store.GetAlert(ctx, l.ID)
	require.NoError(t, err)
	assert.Equal(t, supabase.StatusSucceeded, trigger.Status)
}

// TestClaimResolvesThroughPostgREST claims a batch of resolves in one
// call: one resolves the failure, the other finds it resolved.
func TestClaimResolvesThroughPostgREST(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	l, claimed := claim(t, f.store, f.newAlert("run-failed", "msg_failed"))
	require.True(t, claimed)
	a, b := f.newAlert("run-ok1", "msg_ok1"), f.newAlert("run-ok2", "msg_ok2")
	a.Event, a.OccurredAt = "resolved", a.OccurredAt.Add(time.Minute)
	b.Event, b.OccurredAt = "resolved", b.OccurredAt.Add(2*time.Minute)
	got, err := f.store.ClaimResolves(ctx, []supabase.NewAlert{b, a})
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Empty(t, got[0].ID, "the later success finds the failure resolved by the earlier one")
	require.NotEmpty(t, got[1].ID)
	assert.Equal(t, "run-ok1", got[1].RunID)
	assert.Equal(t, 1, got[1].Resolved)
	assert.Equal(t, supabase.StatusPending, got[1].Status)
	var by string
	require.NoError(t, f.db.Pool.QueryRow(ctx, `select resolved_by::text from alert_logs where id = $1`, l.ID).Scan(&by))
	assert.Equal(t, got[1].ID, by)
	none, err := f.store.ClaimResolves(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, none)
}
