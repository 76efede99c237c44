package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/realtime"
)

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// runRow is a workflow_runs row of project p1 with no workflow.
func runRow(id, status string, started, updated time.Time) map[string]any {
	row := map[string]any{"id": id, "project_id": "p1", "workflow_id": nil, "status": status, "updated_at": ts(updated)}
	if !started.IsZero() {
		row["started_at"] = ts(started)
	}
	return row
}

func finished(row map[string]any, status string, at time.Time) map[string]any {
	out := map[string]any{}
	for k, v := range row {
		out[k] = v
	}
	out["status"], out["finished_at"], out["updated_at"] = status, ts(at), ts(at)
	return out
}

func change(row map[string]any, commit time.Time) *realtime.Change {
	return &realtime.Change{Channel: "runs", Type: "UPDATE", Record: row, CommitTimestamp: commit}
}

func timedRule(id string, delay, stall time.Duration, created time.Time, events ...string) RuleSpec {
	r := ruleRow(id, events...)
	r.DelayThreshold, r.StallThreshold, r.CreatedAt = delay, stall, created
	return r
}

func payloadOf(t *testing.T, c Claimed) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(c.Payload, &m))
	return m
}

func TestDelayedFiresOnceAfterThresholdThenRecovered(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("slow", 10*time.Minute, 0, t0.Add(-time.Hour), "delayed", "recovered")}
	h := startEngineClock(t, store, clock)

	started := t0.Add(-time.Minute)
	row := store.putRow(runRow("run-1", "running", started, t0))
	h.events <- change(row, t0)
	h.sync(t)
	assert.Equal(t, 1, h.engine.Stats().Tracked)
	assert.Equal(t, 1, h.engine.Stats().Scheduled)

	h.advance(t, 5*time.Minute) // 6 minutes running
	assert.Empty(t, h.sub.all())
	h.advance(t, 5*time.Minute) // 11 minutes running
	sent := h.waitSent(t, 1)
	assert.Equal(t, EventDelayed, sent[0].Event)
	assert.True(t, started.Add(10*time.Minute).Equal(sent[0].OccurredAt), "occurred_at is when the threshold was reached")
	body := payloadOf(t, sent[0])
	assert.Equal(t, "workflow_run.delayed", body["type"])
	assert.Equal(t, 600.0, body["threshold_seconds"])
	assert.Equal(t, 600.0, body["duration_seconds"])
	assert.Equal(t, "running", body["run"].(map[string]any)["status"])
	store.mu.Lock()
	assert.Equal(t, 2, store.reads, "the run is confirmed over REST before the claim, and read again after it (a finish racing the claim)")
	store.mu.Unlock()

	h.advance(t, 10*time.Minute)
	h.advance(t, time.Hour)
	h.waitSent(t, 1)
	assert.Zero(t, h.engine.Stats().Scheduled, "no rule waits any more")

	done := store.putRow(finished(row, "succeeded", clock.Now()))
	h.events <- change(done, clock.Now())
	sent = h.waitSent(t, 2)
	rec := sent[1]
	assert.Equal(t, EventRecovered, rec.Event)
	assert.Equal(t, []any{"delayed"}, payloadOf(t, rec)["recovered_from"])
	assert.Equal(t, "workflow_run.recovered", payloadOf(t, rec)["type"])
	assert.Zero(t, h.engine.Stats().Tracked)

	// Replays of the finished run change nothing.
	h.events <- change(done, clock.Now())
	h.events <- realtime.Ready{Channel: "runs"}
	h.waitSent(t, 2)
}

func TestStalledCountsFromTheLastWriteOfThePausedRow(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("stuck", 0, 5*time.Minute, t0.Add(-time.Hour), "stalled", "recovered")}
	h := startEngineClock(t, store, clock)

	started := t0.Add(-time.Hour)
	pausedAt := t0.Add(-2 * time.Minute)
	row := store.putRow(runRow("run-p", "paused", started, pausedAt))
	h.events <- change(row, pausedAt.Add(time.Millisecond)) // committed just after updated_at
	h.events <- change(row, pausedAt.Add(time.Millisecond)) // a duplicate keeps the time
	h.sync(t)

	h.advance(t, 2*time.Minute) // paused 4 minutes
	assert.Empty(t, h.sub.all())
	h.advance(t, time.Minute+time.Second) // paused 5 minutes
	sent := h.waitSent(t, 1)
	assert.Equal(t, EventStalled, sent[0].Event)
	assert.True(t, pausedAt.Add(5*time.Minute+time.Millisecond).Equal(sent[0].OccurredAt), "counted from the commit time")
	assert.Equal(t, 300.0, payloadOf(t, sent[0])["threshold_seconds"])

	// Resumed, then failed: recovered names the stalled condition.
	running := store.putRow(runRow("run-p", "running", started, clock.Now()))
	h.events <- change(running, clock.Now())
	failed := store.putRow(finished(running, "failed", clock.Advance(time.Second)))
	h.events <- change(failed, clock.Now())
	sent = h.waitSent(t, 2)
	assert.Equal(t, EventRecovered, sent[1].Event)
	assert.Equal(t, []any{"stalled"}, payloadOf(t, sent[1])["recovered_from"])
}

func TestStallClockRestartsWhenAPausedRowIsWrittenAgain(t *testing.T) {
	// The resume between two pauses may never have arrived: a newer paused
	// row restarts the clock rather than risk a false alert.
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("stuck", 0, 5*time.Minute, t0.Add(-time.Hour), "stalled")}
	h := startEngineClock(t, store, clock)
	started := t0.Add(-time.Hour)
	h.events <- change(store.putRow(runRow("run-q", "paused", started, t0)), t0)
	h.advance(t, 4*time.Minute)
	// Resumed (change lost) and paused again.
	again := clock.Now()
	h.events <- change(store.putRow(runRow("run-q", "paused", started, again)), again)
	h.advance(t, 2*time.Minute) // 6 minutes after the first pause
	assert.Empty(t, h.sub.all())
	h.advance(t, 3*time.Minute)
	sent := h.waitSent(t, 1)
	assert.True(t, again.Add(5*time.Minute).Equal(sent[0].OccurredAt))

	// The same holds when the timer finds a newer paused row over REST.
	h.events <- change(store.putRow(runRow("run-z", "paused", started, clock.Now())), clock.Now())
	h.advance(t, 4*time.Minute)
	store.putRow(runRow("run-z", "paused", started, clock.Now())) // never announced
	h.advance(t, 2*time.Minute)
	h.waitSent(t, 1)
	assert.Equal(t, 1, h.engine.Stats().Scheduled)
	h.advance(t, 3*time.Minute)
	sent = h.waitSent(t, 2)
	assert.Equal(t, "run-z", sent[1].RunID)
}

func TestTimerConfirmsTheRunBeforeClaiming(t *testing.T) {
	// Realtime dropped the change that finished the run: the timer re-reads
	// the row, sends no delayed alert, and handles the missed change.
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("r", time.Minute, 0, t0.Add(-time.Hour), "delayed", "succeeded")}
	h := startEngineClock(t, store, clock)

	row := store.putRow(runRow("run-f", "running", t0, t0))
	h.events <- change(row, t0)
	h.sync(t)
	store.putRow(finished(row, "succeeded", t0.Add(30*time.Second))) // never announced
	h.advance(t, 2*time.Minute)
	sent := h.waitSent(t, 1)
	assert.Equal(t, EventSucceeded, sent[0].Event)
	_, ok := store.claimed("r", "run-f", EventDelayed)
	assert.False(t, ok)
	assert.Zero(t, h.engine.Stats().Tracked)
}

func TestLateRunningChangeAfterTheEndSendsNoDelay(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("r", time.Minute, 0, t0.Add(-time.Hour), "delayed", "failed")}
	h := startEngineClock(t, store, clock)

	row := runRow("run-l", "running", t0, t0)
	done := store.putRow(finished(row, "failed", t0.Add(10*time.Second)))
	h.events <- change(done, t0.Add(10*time.Second))
	h.events <- change(row, t0) // reordered: the older change arrives last
	h.advance(t, 5*time.Minute)
	sent := h.waitSent(t, 1)
	assert.Equal(t, EventFailed, sent[0].Event)
	assert.Zero(t, h.engine.Stats().Tracked)
}

func TestTimerRetriesWhenConfirmationFails(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("r", time.Minute, 0, t0.Add(-time.Hour), "delayed")}
	h := startEngineClock(t, store, clock)
	row := store.putRow(runRow("run-r", "running", t0, t0))
	h.events <- change(row, t0)
	h.sync(t)

	store.mu.Lock()
	store.failGets, store.failClaims = 1, 1
	store.mu.Unlock()
	h.advance(t, 2*time.Minute) // confirmation fails
	assert.Empty(t, h.sub.all())
	h.advance(t, timerRetryDelay/2)
	assert.Empty(t, h.sub.all(), "waits for the retry delay")
	h.advance(t, timerRetryDelay/2) // confirmed; the claim fails
	assert.Empty(t, h.sub.all())
	h.advance(t, timerRetryDelay)
	sent := h.waitSent(t, 1)
	assert.Equal(t, EventDelayed, sent[0].Event)
}

func TestRulesNeverAlertConditionsOlderThanThemselves(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	h := startEngineClock(t, store, clock)
	row := store.putRow(runRow("run-o", "running", t0.Add(-30*time.Minute), t0))
	h.events <- change(row, t0)

	put := func(spec RuleSpec) {
		rec := map[string]any{}
		b, _ := json.Marshal(spec)
		require.NoError(t, json.Unmarshal(b, &rec))
		h.events <- &realtime.Change{Channel: "configs", Type: "INSERT", Record: rec}
	}
	// Delayed since 20 minutes before the rule existed: never alerted.
	put(timedRule("late", 10*time.Minute, 0, t0, "delayed"))
	// Reaches its threshold after the rule was created: alerted.
	put(timedRule("long", 40*time.Minute, 0, t0, "delayed"))
	h.advance(t, time.Second)
	assert.Empty(t, h.sub.all())
	h.advance(t, 10*time.Minute)
	sent := h.waitSent(t, 1)
	assert.Equal(t, "long", sent[0].ConfigID)
}

func TestRestartRebuildsTimersWithoutDuplicates(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("r", time.Minute, 0, t0.Add(-time.Hour), "delayed", "recovered")}
	first := startEngineClock(t, store, clock)
	row := store.putRow(runRow("run-a", "running", t0, t0))
	first.events <- change(row, t0)
	first.advance(t, 2*time.Minute)
	first.waitSent(t, 1)
	first.stop(t)

	// While no daemon runs, another run starts (and is never announced).
	store.putRow(runRow("run-b", "running", clock.Now(), clock.Now()))
	second := startEngineClock(t, store, clock)
	second.sync(t)
	assert.Equal(t, 2, second.engine.Stats().Tracked, "timers are rebuilt from the database")
	second.advance(t, 2*time.Minute)
	sent := second.waitSent(t, 1)
	assert.Equal(t, "run-b", sent[0].RunID, "run-a's delay alert is not sent again")
	assert.EqualValues(t, 1, second.engine.Stats().Duplicates)

	// run-a finishes: the new daemon finds the old daemon's delay alert.
	second.events <- change(store.putRow(finished(row, "succeeded", clock.Now())), clock.Now())
	sent = second.waitSent(t, 2)
	assert.Equal(t, EventRecovered, sent[1].Event)
	assert.Equal(t, "run-a", sent[1].RunID)
	assert.Len(t, store.claimKeys(), 3)
}

func TestRecoveredOnlyAfterASentConditionAlert(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{timedRule("r", 10*time.Minute, 0, t0.Add(-time.Hour), "delayed", "recovered", "succeeded")}
	h := startEngineClock(t, store, clock)

	// Short run: no lookup at all, no recovered.
	short := runRow("short", "running", t0, t0)
	h.events <- change(store.putRow(finished(short, "succeeded", t0.Add(time.Minute))), t0.Add(time.Minute))
	h.waitSent(t, 1)
	store.mu.Lock()
	assert.Zero(t, store.lookups, "a run shorter than every threshold needs no lookup")
	store.mu.Unlock()

	// Long run never alerted as delayed (for example before the daemon
	// existed): looked up, no recovered.
	long := runRow("long", "running", t0.Add(-time.Hour), t0.Add(-time.Hour))
	h.events <- change(store.putRow(finished(long, "succeeded", t0)), t0)
	sent := h.waitSent(t, 2)
	assert.Equal(t, EventSucceeded, sent[1].Event)
	store.mu.Lock()
	assert.Equal(t, 1, store.lookups)
	store.mu.Unlock()
}

func TestRecoveredRuleNeedsAConditionEvent(t *testing.T) {
	_, err := CompileRule(RuleSpec{ID: "r", Events: []string{"recovered"}, WebhookURL: "https://x.example/"})
	require.ErrorContains(t, err, "events: recovered follows a delayed or stalled alert")
}

func TestTimersAreOneHeapForThousandsOfRuns(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	e, err := New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs", Now: clock.Now},
		store, &fakeSubmitter{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.NoError(t, e.rules.Put(timedRule("r", time.Hour, 0, t0.Add(-time.Hour), "delayed")))
	goroutines := runtime.NumGoroutine()
	const n = 10000
	ctx := context.Background()
	require.NoError(t, e.rebuildTimers(ctx)) // as the start-up catch-up does
	for i := range n {
		started := t0.Add(-time.Duration(i) * time.Second)
		e.processRow(ctx, runRow(fmt.Sprintf("run-%05d", i), "running", started, t0), t0, time.Time{})
	}
	assert.Equal(t, n, e.timers.len())
	assert.Equal(t, n, e.timers.scheduled())
	assert.LessOrEqual(t, runtime.NumGoroutine(), goroutines, "no goroutine per run")

	// Only the runs past the threshold are due, earliest first.
	due := e.timers.popDue(t0.Add(time.Hour - 9990*time.Second))
	require.Len(t, due, 10)
	for i, tr := range due {
		assert.Equal(t, fmt.Sprintf("run-%05d", 9999-i), tr.run.ID)
	}
	assert.Equal(t, n-10, e.timers.scheduled())
	e.timers.remove("run-00000")
	assert.Equal(t, n-1, e.timers.len())
	assert.Equal(t, n-11, e.timers.scheduled())
}

func TestTimerHeapOrderAndReschedule(t *testing.T) {
	tm := newTimers()
	base := time.Unix(1_700_000_000, 0)
	add := func(id string, due time.Duration) *tracked {
		tr := &tracked{run: Run{ID: id}}
		tm.add(tr)
		tm.schedule(tr, base.Add(due))
		return tr
	}
	a := add("a", 3*time.Second)
	add("b", time.Second)
	c := add("c", 2*time.Second)
	tm.schedule(a, base.Add(500*time.Millisecond)) // moved earlier
	tm.schedule(c, time.Time{})                    // unscheduled, still tracked
	got := tm.popDue(base.Add(10 * time.Second))
	require.Len(t, got, 2)
	assert.Equal(t, "a", got[0].run.ID)
	assert.Equal(t, "b", got[1].run.ID)
	assert.Equal(t, 3, tm.len())
	assert.Zero(t, tm.scheduled())
	assert.Empty(t, tm.popDue(base.Add(time.Hour)))
}

func TestTimersAreKeptOnlyWhileARuleNeedsThem(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("f", "failed")}
	store.putRow(runRow("run-1", "running", t0.Add(-time.Hour), t0))
	h := startEngineClock(t, store, clock)
	assert.Zero(t, h.engine.Stats().Tracked, "no rule alerts on delayed or stalled: no run is tracked")
	h.events <- change(store.putRow(runRow("run-2", "running", t0, t0)), t0)
	h.sync(t)
	assert.Zero(t, h.engine.Stats().Tracked)

	// A delayed rule arrives: the timers are built from the database at
	// the next tick, and the run running for an hour is alerted.
	delayed := timedRule("slow", 10*time.Minute, 0, t0.Add(-2*time.Hour), "delayed")
	rec := map[string]any{}
	b, _ := json.Marshal(delayed)
	require.NoError(t, json.Unmarshal(b, &rec))
	h.events <- &realtime.Change{Channel: "configs", Type: "INSERT", Record: rec}
	h.advance(t, time.Second)
	assert.Equal(t, 2, h.engine.Stats().Tracked)
	h.advance(t, time.Second)
	sent := h.waitSent(t, 1)
	assert.Equal(t, "run-1", sent[0].RunID)
	assert.Equal(t, EventDelayed, sent[0].Event)

	// Once no rule needs them, the timers go.
	h.events <- &realtime.Change{Channel: "configs", Type: "DELETE", OldRecord: map[string]any{"id": "slow"}}
	h.advance(t, time.Second)
	assert.Zero(t, h.engine.Stats().Tracked)
}
