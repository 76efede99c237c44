package alerts

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
)

// track updates the timer entry of a run from a row just seen: running and
// paused runs are tracked, any other state ends tracking. A row older than
// the tracked one (a late or reordered change) changes nothing.
func (e *Engine) track(run Run, wf WorkflowInfo, project string, occurred time.Time) {
	tr := e.timers.get(run.ID)
	if tr != nil && !run.UpdatedAt.IsZero() && tr.run.UpdatedAt.After(run.UpdatedAt) {
		return
	}
	if !run.State.Timed() {
		e.untrack(run.ID)
		return
	}
	if occurred.IsZero() {
		occurred = e.now()
	}
	since := conditionSince(run, tr, occurred)
	if tr == nil {
		tr = &tracked{}
		tr.run = run
		e.timers.add(tr)
		tr.since = since
	} else if tr.run.State != run.State || !tr.since.Equal(since) {
		tr.since, tr.fired = since, nil // a new condition
	}
	tr.run, tr.wf, tr.project = run, wf, project
	e.timers.schedule(tr, e.nextDue(tr))
	e.countTimers()
}

// conditionSince is when run's current timed condition began. A running
// run has been running since started_at (or since it was first seen running
// when the table has no such column). A paused run has been paused since
// the last write to its row: the change's commit time, or updated_at when
// the row was read from the database. Only a repeat of the same row version
// keeps the earlier time, because a newer paused row may follow a resume that
// was never seen (a lost or reordered change) and must not count the time
// before it.
func conditionSince(run Run, tr *tracked, occurred time.Time) time.Time {
	same := tr != nil && tr.run.State == run.State
	switch {
	case run.State == StateRunning && !run.StartedAt.IsZero():
		return run.StartedAt
	case run.State == StateRunning && same:
		return tr.since
	case run.State == StatePaused && same && tr.run.UpdatedAt.Equal(run.UpdatedAt):
		return tr.since
	default:
		return occurred
	}
}

func (e *Engine) untrack(id string) {
	if e.timers.get(id) == nil {
		return
	}
	e.timers.remove(id)
	e.countTimers()
}

func (e *Engine) countTimers() {
	n, s := e.timers.len(), e.timers.scheduled()
	e.count(func(st *engineStats) { st.tracked, st.scheduled = n, s })
}

// nextDue is when the next rule waiting on tr's condition reaches its
// threshold; zero when none waits.
func (e *Engine) nextDue(tr *tracked) time.Time {
	ev := tr.event()
	e.dueBuf = e.rules.MatchAppend(e.dueBuf[:0], tr.project, tr.wf.Slug, ev)
	defer clear(e.dueBuf)
	var best time.Duration
	for _, r := range e.dueBuf {
		th := r.Threshold(ev)
		if th <= 0 || tr.hasFired(r.ID()) {
			continue
		}
		if best == 0 || th < best {
			best = th
		}
	}
	if best == 0 {
		return time.Time{}
	}
	return tr.since.Add(best)
}

// tick reschedules the timers if the rules changed, fires the due ones and
// runs a pending retrying catch-up.
func (e *Engine) tick(ctx context.Context) {
	now := e.now()
	if v := e.rules.Version(); v != e.timerVersion {
		e.timerVersion = v
		for _, tr := range e.timers.runs {
			e.timers.schedule(tr, e.nextDue(tr))
		}
	}
	e.syncTimers(ctx, now)
	for _, tr := range e.timers.popDue(now) {
		if ctx.Err() != nil {
			return
		}
		e.fireTimer(ctx, tr, now)
	}
	e.countTimers()
	if len(e.pending)+len(e.pendingRows) > 0 && !now.Before(e.pendingAt) {
		e.retryPending(ctx)
	}
	if !e.rejectedSaved {
		e.saveRejected(ctx)
	}
	e.releaseAfterBurst(now)
	if now.Sub(e.lastPrune) >= throttlePruneEvery {
		e.lastPrune = now
		e.throttle.prune(e.rules, now)
	}
}

// fireTimer claims the delayed or stalled alerts of the rules whose
// thresholds tr has reached. Before claiming it confirms over REST that the
// run is still in that state (Realtime may have dropped the change that
// ended it); a row that moved on is handled like a change.
func (e *Engine) fireTimer(ctx context.Context, tr *tracked, now time.Time) {
	ev := tr.event()
	elapsed := now.Sub(tr.since)
	var due []*Rule
	for _, r := range e.rules.Match(tr.project, tr.wf.Slug, ev) {
		th := r.Threshold(ev)
		if th <= 0 || th > elapsed || tr.hasFired(r.ID()) {
			continue
		}
		if predates(r, tr.since.Add(th)) {
			tr.fired = append(tr.fired, r.ID()) // the condition began before the rule existed
			continue
		}
		due = append(due, r)
	}
	if len(due) == 0 {
		e.timers.schedule(tr, e.nextDue(tr))
		return
	}
	id := tr.run.ID
	log := e.log.With(zap.String("run_id", id), zap.String("event", string(ev)))
	e.count(func(s *engineStats) { s.timerChecks++ })
	row, found, err := e.store.GetRun(ctx, id)
	if err != nil {
		log.Warn("confirming a timed run failed; retrying", zap.Error(err), zap.Duration("retry_in", timerRetryDelay))
		e.timers.schedule(tr, now.Add(timerRetryDelay))
		return
	}
	if !found {
		log.Info("timed run no longer exists")
		e.untrack(id)
		return
	}
	fresh, err := e.opts.Mapping.RunFromRow(row)
	if err != nil {
		log.Warn("timed run row unreadable", zap.Error(err))
		e.untrack(id)
		return
	}
	if fresh.State != tr.run.State {
		// A change was missed or is still on its way: handle the row now.
		log.Info("timed run changed state; handling it as a change", zap.String("status", fresh.Status))
		occurred := fresh.UpdatedAt
		if occurred.IsZero() {
			occurred = now
		}
		e.processRow(ctx, row, occurred, time.Time{})
		return
	}
	since := tr.since
	e.track(fresh, tr.wf, tr.project, fresh.UpdatedAt)
	if e.timers.get(id) != tr || !tr.since.Equal(since) {
		return // the condition changed (for example a new started_at); track rescheduled it
	}
	for _, r := range due {
		th := r.Threshold(ev)
		ruleID := r.ID()
		// Marked fired now (so the timer moves on); unmarked and retried
		// soon if the claim fails.
		tr.fired = append(tr.fired, ruleID)
		e.fire(ctx, r, tr.run, tr.wf, tr.project, ev, tr.since.Add(th), alertDetails{threshold: th}, func() {
			tr.fired = slices.DeleteFunc(tr.fired, func(id string) bool { return id == ruleID })
			if e.timers.get(id) != tr {
				return
			}
			if retryAt := e.now().Add(timerRetryDelay); tr.due.IsZero() || tr.due.After(retryAt) {
				e.timers.schedule(tr, retryAt)
			}
		})
	}
	e.timers.schedule(tr, e.nextDue(tr))
}

// rebuildTimers re-reads every running and paused run from the database and
// makes the timers match: new runs are tracked, runs no longer running or
// paused are dropped. Claims make a rebuilt timer that fires again harmless.
func (e *Engine) rebuildTimers(ctx context.Context) error {
	statuses := e.opts.Mapping.StatusValues(StateRunning, StatePaused)
	if len(statuses) == 0 {
		return nil
	}
	if !e.rules.HasTimed() {
		// No rule alerts on delayed or stalled: tracking every running
		// and paused run (and reading them all after each catch-up)
		// would serve nothing. The timers are built once a rule needs
		// them (see tick).
		e.dropTimers()
		return nil
	}
	seen := make(map[string]struct{}, e.timers.len())
	err := e.store.RunsInStatuses(ctx, statuses, func(row map[string]any) error {
		run, err := e.opts.Mapping.RunFromRow(row)
		if err != nil {
			e.log.Warn("run row unreadable", zap.Error(err))
			return nil
		}
		if !run.State.Timed() {
			return nil
		}
		seen[run.ID] = struct{}{}
		wf, project := e.workflowOf(ctx, run)
		e.track(run, wf, project, run.UpdatedAt)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	for id := range e.timers.runs {
		if _, ok := seen[id]; !ok {
			e.timers.remove(id)
		}
	}
	e.timersLive = true
	e.countTimers()
	return nil
}

// dropTimers forgets every tracked run: no rule needs them.
func (e *Engine) dropTimers() {
	if e.timers.len() > 0 {
		e.timers = newTimers()
	}
	e.timersLive = false
	e.countTimers()
}

// syncTimers builds the timers once a rule needs them (read from the
// database, like after a catch-up) and drops them once none does. A failed
// build is tried again after timerRetryDelay.
func (e *Engine) syncTimers(ctx context.Context, now time.Time) {
	need := e.rules.HasTimed()
	switch {
	case need && !e.timersLive && !now.Before(e.timersRetryAt):
		if err := e.rebuildTimers(ctx); err != nil {
			e.timersRetryAt = now.Add(timerRetryDelay)
			e.log.Warn("building the delayed/stalled timers failed; retrying", zap.Error(err), zap.Time("retry_at", e.timersRetryAt))
			return
		}
		e.log.Info("delayed/stalled timers built", zap.Int("timed_runs", e.timers.len()))
	case !need && e.timersLive:
		e.dropTimers()
	}
}
