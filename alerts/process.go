package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ruleClockSkew tolerates clock differences between the database (which
// stamps created_at and commit times) and the daemon.
const ruleClockSkew = 5 * time.Second

// predates reports whether something that happened at t happened before r
// existed: rules never fire for history older than themselves.
func predates(r *Rule, t time.Time) bool { return t.Before(r.CreatedAt().Add(-ruleClockSkew)) }

// processRow matches one run row, queues its alerts' claims and updates the
// run's timer. occurred is the change's commit time (or the row's updated_at
// when it was read from the database); received is when the change arrived
// over Realtime (zero otherwise). When an alert cannot be claimed the row is
// read again by the reconciler.
func (e *Engine) processRow(ctx context.Context, row map[string]any, occurred, received time.Time) {
	e.count(func(s *engineStats) { s.changes++ })
	run, err := e.opts.Mapping.RunFromRow(row)
	if err != nil {
		e.log.Warn("run row unreadable", zap.Error(err))
		return
	}
	e.seen.add(run.ID, run.UpdatedAt)
	wf, project, unknown := e.lookupWorkflow(ctx, run)
	if e.timersLive {
		e.track(run, wf, project, occurred)
	}
	updated := run.UpdatedAt
	if updated.IsZero() {
		updated = occurred
	}
	retry := func() {
		// Read again: by the reconciler (unless another daemon holds
		// its lease) and, in memory, by this engine's retries.
		e.seen.forget(run.ID, run.UpdatedAt)
		e.markRetry(updated)
		e.deferRow(run, row, occurred)
	}
	// Rules that need the workflow (see needsWorkflow) wait for a lookup
	// that answers, rather than alerting without it.
	waitForWorkflow := false
	if event, ok := run.State.ChangeEvent(); ok {
		e.matchBuf = e.rules.MatchAppend(e.matchBuf[:0], project, wf.Slug, event)
		for _, r := range e.matchBuf {
			if predates(r, occurred) {
				continue
			}
			if unknown && needsWorkflow(r) {
				waitForWorkflow = true
				continue
			}
			p := pendingFire{rule: r.ID(), run: run, wf: wf, project: project, event: event, occurred: occurred}
			e.fire(ctx, r, run, wf, project, event, occurred, alertDetails{received: received}, func() {
				// The row may move on before a catch-up re-reads it (a
				// paused run resumes): retry this very alert.
				e.deferFire(p)
				retry()
			})
		}
		clear(e.matchBuf)
	}
	if run.State.Terminal() {
		if err := e.recover(ctx, run, wf, project, occurred, retry); err != nil {
			retry()
		}
	}
	if run.State == StateSucceeded {
		if unknown {
			waitForWorkflow = waitForWorkflow || len(e.rules.Match(project, wf.Slug, EventResolved)) > 0
		} else {
			e.resolve(ctx, run, wf, project, occurred, retry)
		}
	}
	if waitForWorkflow {
		retry()
	}
}

// needsWorkflow reports whether r's alerts must name their workflow by its
// slug, so that an alert is not sent without it when the lookup fails: a
// PagerDuty rule's dedup_key names the workflow, and a failure is resolved
// by a success of the same workflow (slug). Either would otherwise key the
// failure by workflow id (or by no workflow), which no later success
// matches, and two workflows whose lookups failed would share it.
func needsWorkflow(r *Rule) bool {
	return r.Destination() == DestinationPagerDuty || r.Wants(EventResolved)
}

// recover sends recovered alerts for a finished run: every rule listing
// recovered that claimed (and did not suppress) a delayed or stalled alert
// for the run gets one, naming the conditions that ended. failed is called
// for each recovered alert that could not be claimed.
func (e *Engine) recover(ctx context.Context, run Run, wf WorkflowInfo, project string, occurred time.Time, failed func()) error {
	var candidates []*Rule
	for _, r := range e.rules.Match(project, wf.Slug, EventRecovered) {
		if !predates(r, occurred) && couldHaveAlerted(r, run) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	// The lookup must see every delayed/stalled alert claimed so far.
	e.flush(ctx)
	ids := make([]string, len(candidates))
	for i, r := range candidates {
		ids[i] = r.ID()
	}
	claims, err := e.store.ConditionClaims(ctx, run.ID, ids)
	if err != nil {
		e.count(func(s *engineStats) { s.fails++ })
		e.log.Error("looking up delayed/stalled alerts failed", zap.String("run_id", run.ID), zap.Error(err))
		return err
	}
	from := map[string][]Event{}
	for _, c := range claims {
		if (c.Event == EventDelayed || c.Event == EventStalled) && !slices.Contains(from[c.RuleID], c.Event) {
			from[c.RuleID] = append(from[c.RuleID], c.Event)
		}
	}
	for _, r := range candidates {
		conds := from[r.ID()]
		if len(conds) == 0 {
			continue
		}
		slices.Sort(conds) // delayed before stalled
		e.fire(ctx, r, run, wf, project, EventRecovered, occurred, alertDetails{recoveredFrom: conds}, failed)
	}
	return nil
}

// couldHaveAlerted reports whether r may have alerted run as delayed or
// stalled: when the run's duration is known it must have reached one of the
// rule's thresholds (paused time counts toward it). This saves a lookup for
// every short run.
func couldHaveAlerted(r *Rule, run Run) bool {
	if run.StartedAt.IsZero() || run.FinishedAt.IsZero() {
		return true
	}
	d := run.FinishedAt.Sub(run.StartedAt) + ruleClockSkew
	return (r.Wants(EventDelayed) && d >= r.Threshold(EventDelayed)) || (r.Wants(EventStalled) && d >= r.Threshold(EventStalled))
}

func (e *Engine) workflowOf(ctx context.Context, run Run) (WorkflowInfo, string) {
	wf, project, _ := e.lookupWorkflow(ctx, run)
	return wf, project
}

// lookupWorkflow returns run's workflow and project. When the workflow
// could not be read (the store failed, as opposed to not finding it), it
// returns the workflow's id only, the run's own project, and unknown true.
func (e *Engine) lookupWorkflow(ctx context.Context, run Run) (wf WorkflowInfo, project string, unknown bool) {
	if !e.opts.Mapping.ResolveWorkflows || run.WorkflowRef == "" {
		return WorkflowInfo{Slug: run.WorkflowRef}, run.ProjectID, false
	}
	e.wfMu.Lock()
	w, ok := e.wf[run.WorkflowRef]
	e.wfMu.Unlock()
	if !ok {
		var found bool
		var err error
		w, found, err = e.store.Workflow(ctx, run.WorkflowRef)
		if err != nil || !found {
			e.log.Warn("workflow lookup failed; matching project-wide rules only", zap.String("run_id", run.ID),
				zap.String("workflow_id", run.WorkflowRef), zap.Bool("found", found), zap.Error(err))
			return WorkflowInfo{ID: run.WorkflowRef}, run.ProjectID, err != nil
		}
		e.wfMu.Lock()
		e.wf[run.WorkflowRef] = w // version rows are immutable in slug and project
		e.wfMu.Unlock()
	}
	project = run.ProjectID
	if project == "" {
		project = w.ProjectID
	}
	return w.WorkflowInfo, project, false
}

// pendingFire is a change alert whose claim failed, kept for a retry.
type pendingFire struct {
	rule     string
	run      Run
	wf       WorkflowInfo
	project  string
	event    Event
	occurred time.Time
}

// maxPendingFires bounds the retry list; past it the oldest retries are
// left to catch-up (which sees the runs' current state).
const maxPendingFires = 10000

func (e *Engine) deferFire(p pendingFire) {
	k := p.rule + "\x00" + p.run.ID + "\x00" + string(p.event)
	if _, ok := e.pending[k]; !ok && len(e.pending) >= maxPendingFires {
		e.log.Warn("too many alerts waiting for a retry; leaving this one to catch-up",
			zap.String("rule_id", p.rule), zap.String("run_id", p.run.ID), zap.String("event", string(p.event)))
		return
	}
	e.pending[k] = p
	if e.pendingAt.IsZero() {
		e.pendingAt = e.now().Add(timerRetryDelay)
	}
}

// pendingRow is a run row whose processing failed (a claim or a lookup),
// processed again on the retry schedule.
type pendingRow struct {
	run      Run
	row      map[string]any
	occurred time.Time
}

func (e *Engine) deferRow(run Run, row map[string]any, occurred time.Time) {
	if p, ok := e.pendingRows[run.ID]; ok && p.run.UpdatedAt.After(run.UpdatedAt) {
		return // a newer version waits already
	}
	if _, ok := e.pendingRows[run.ID]; !ok && len(e.pendingRows) >= maxPendingFires {
		return // left to the reconciler
	}
	e.pendingRows[run.ID] = pendingRow{run: run, row: row, occurred: occurred}
	if e.pendingAt.IsZero() {
		e.pendingAt = e.now().Add(timerRetryDelay)
	}
}

// retryPending retries the change alerts whose claims failed and the rows
// whose processing failed; those that fail again are deferred again.
func (e *Engine) retryPending(ctx context.Context) {
	rows := e.pendingRows
	e.pendingRows = make(map[string]pendingRow, len(rows))
	// In the order the changes happened: a failure before the success that
	// resolves it (see failureAwaitsClaim).
	order := slices.SortedFunc(maps.Values(rows), func(a, b pendingRow) int { return a.occurred.Compare(b.occurred) })
	for _, p := range order {
		if ctx.Err() != nil {
			e.pendingRows[p.run.ID] = p
			continue
		}
		e.processRow(ctx, p.row, p.occurred, time.Time{})
	}
	due := e.pending
	e.pending = make(map[string]pendingFire, len(due))
	e.pendingAt = time.Time{}
	for _, p := range due {
		r, ok := e.rules.Get(p.rule)
		if ctx.Err() != nil || !ok || !r.Enabled() || !r.Wants(p.event) {
			if ctx.Err() != nil {
				e.deferFire(p)
			}
			continue // the rule changed its mind
		}
		e.fire(ctx, r, p.run, p.wf, p.project, p.event, p.occurred, alertDetails{}, func() { e.deferFire(p) })
	}
}

// alertDetails are the event-specific parts of an alert's context.
type alertDetails struct {
	threshold     time.Duration // delayed, stalled
	recoveredFrom []Event       // recovered
	received      time.Time     // when the change arrived over Realtime
}

// fire renders an alert and queues its claim (see flush); once claimed it
// is submitted unless throttling suppressed it. failed, when set, is called
// if the claim could not be recorded and should be tried again. An alert
// that cannot be rendered is logged and dropped (retrying would not help).
func (e *Engine) fire(ctx context.Context, r *Rule, run Run, wf WorkflowInfo, project string, event Event,
	occurred time.Time, d alertDetails, failed func()) {
	c := e.context(r, run, wf, project, event, occurred)
	c.Threshold, c.RecoveredFrom = d.threshold, d.recoveredFrom
	q := queuedClaim{rule: r, allowed: true, failed: failed, reconciled: e.rec.active}
	// Recovered alerts are not throttled: there is at most one per sent
	// delayed/stalled alert, and a receiver must learn that it ended.
	if event != EventRecovered && r.Throttled() {
		q.throttled, q.workflow, q.at = true, throttleWorkflow(wf), e.now()
		e.reserveThrottle(ctx, r, q.workflow)
		var suppressed int
		q.allowed, suppressed = e.throttle.check(r, q.workflow, q.at)
		if q.allowed {
			c.SuppressedCount = suppressed
		}
	}
	url, body, err := r.Render(c)
	if err != nil {
		e.count(func(s *engineStats) { s.fails++ })
		e.log.Error("rendering alert failed", zap.String("rule_id", r.ID()), zap.String("run_id", run.ID),
			zap.String("event", string(event)), zap.Error(err))
		return
	}
	q.claim = Claim{ConfigID: r.ID(), ProjectID: project, WorkflowSlug: wf.Slug, RunID: run.ID, Event: event,
		WebhookID: WebhookID(r.ID(), run.ID, event), Payload: body, TargetURL: url, OccurredAt: occurred,
		Suppressed: !q.allowed, ReceivedAt: d.received}
	e.queue(ctx, q)
}

// throttleWorkflow is the workflow part of a throttle key.
func throttleWorkflow(wf WorkflowInfo) string {
	if wf.Slug != "" {
		return wf.Slug
	}
	return wf.ID
}

func (e *Engine) context(r *Rule, run Run, wf WorkflowInfo, project string, event Event, occurred time.Time) *Context {
	c := &Context{
		Type: "workflow_run." + string(event), Event: event, OccurredAt: occurred, Run: run.Row, RunID: run.ID,
		Status: run.Status, Workflow: wf, Project: ProjectInfo{ID: project},
		Rule: RuleInfo{ID: r.ID(), Name: r.Name()}, LinkBase: e.opts.LinkBaseURL,
	}
	if !run.StartedAt.IsZero() {
		s := run.StartedAt
		c.StartedAt = &s
		end := run.FinishedAt
		if end.IsZero() {
			end = occurred
		}
		if d := end.Sub(s); d > 0 {
			c.Duration = d
		}
	}
	if !run.FinishedAt.IsZero() {
		f := run.FinishedAt
		c.FinishedAt = &f
	}
	if c.LinkBase != "" {
		c.Link = strings.TrimRight(c.LinkBase, "/") + "/runs/" + run.ID
	}
	return c
}

// WebhookID is the Standard Webhooks message id of the alert for (rule, run,
// event). It is derived, not random, so every daemon and every attempt
// agrees on it and receivers can deduplicate on it.
func WebhookID(ruleID, runID string, event Event) string {
	sum := sha256.Sum256([]byte(ruleID + "\x00" + runID + "\x00" + string(event)))
	return "msg_" + webhookIDEncoding.EncodeToString(sum[:20])
}

// webhookIDEncoding is unpadded base32 (RFC 4648) in lower case.
var webhookIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
