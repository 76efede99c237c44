package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
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
func predates(r *Rule, t time.Time) bool { return t.Before(r.Spec.CreatedAt.Add(-ruleClockSkew)) }

// processRow matches one run row, claims its alerts and updates the run's
// timer. occurred is the change's commit time (or the row's updated_at when
// it was read from the database). When an alert cannot be claimed the row is
// scheduled for a retrying catch-up.
func (e *Engine) processRow(ctx context.Context, row map[string]any, occurred time.Time) {
	e.count(func(s *engineStats) { s.changes++ })
	run, err := e.opts.Mapping.RunFromRow(row)
	if err != nil {
		e.log.Warn("run row unreadable", zap.Error(err))
		return
	}
	e.advanceWatermark(run.UpdatedAt)
	wf, project := e.workflowOf(ctx, run)
	e.track(run, wf, project, occurred)
	failed := false
	if event, ok := run.State.ChangeEvent(); ok {
		e.matchBuf = e.rules.MatchAppend(e.matchBuf[:0], project, wf.Slug, event)
		for _, r := range e.matchBuf {
			if predates(r, occurred) {
				continue
			}
			if err := e.fire(ctx, r, run, wf, project, event, occurred, alertDetails{}); err != nil {
				// The row may move on before a catch-up re-reads it (a
				// paused run resumes): retry this very alert.
				e.deferFire(pendingFire{rule: r.Spec.ID, run: run, wf: wf, project: project, event: event, occurred: occurred})
				failed = true
			}
		}
		clear(e.matchBuf)
	}
	if run.State.Terminal() {
		if err := e.recover(ctx, run, wf, project, occurred); err != nil {
			failed = true
		}
	}
	if failed {
		updated := run.UpdatedAt
		if updated.IsZero() {
			updated = occurred
		}
		e.markRetry(updated)
	}
}

// recover sends recovered alerts for a finished run: every rule listing
// recovered that claimed (and did not suppress) a delayed or stalled alert
// for the run gets one, naming the conditions that ended.
func (e *Engine) recover(ctx context.Context, run Run, wf WorkflowInfo, project string, occurred time.Time) error {
	var candidates []*Rule
	for _, r := range e.rules.Match(project, wf.Slug, EventRecovered) {
		if !predates(r, occurred) && couldHaveAlerted(r, run) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	ids := make([]string, len(candidates))
	for i, r := range candidates {
		ids[i] = r.Spec.ID
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
	var failed error
	for _, r := range candidates {
		conds := from[r.Spec.ID]
		if len(conds) == 0 {
			continue
		}
		slices.Sort(conds) // delayed before stalled
		if err := e.fire(ctx, r, run, wf, project, EventRecovered, occurred, alertDetails{recoveredFrom: conds}); err != nil {
			failed = err
		}
	}
	return failed
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
	return (r.Wants(EventDelayed) && d >= r.Spec.DelayThreshold) || (r.Wants(EventStalled) && d >= r.Spec.StallThreshold)
}

func (e *Engine) workflowOf(ctx context.Context, run Run) (WorkflowInfo, string) {
	if !e.opts.Mapping.ResolveWorkflows || run.WorkflowRef == "" {
		return WorkflowInfo{Slug: run.WorkflowRef}, run.ProjectID
	}
	e.wfMu.Lock()
	w, ok := e.wf[run.WorkflowRef]
	e.wfMu.Unlock()
	if !ok {
		var found bool
		var err error
		w, found, err = e.store.Workflow(ctx, run.WorkflowRef)
		if err != nil || !found {
			e.log.Warn("workflow lookup failed; matching project-wide rules only",
				zap.String("workflow_id", run.WorkflowRef), zap.Bool("found", found), zap.Error(err))
			return WorkflowInfo{ID: run.WorkflowRef}, run.ProjectID
		}
		e.wfMu.Lock()
		e.wf[run.WorkflowRef] = w // version rows are immutable in slug and project
		e.wfMu.Unlock()
	}
	project := run.ProjectID
	if project == "" {
		project = w.ProjectID
	}
	return w.WorkflowInfo, project
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

// retryPending retries the change alerts whose claims failed.
func (e *Engine) retryPending(ctx context.Context) {
	for k, p := range e.pending {
		if ctx.Err() != nil {
			return
		}
		r, ok := e.rules.Get(p.rule)
		if !ok || !r.Spec.Enabled || !r.Wants(p.event) {
			delete(e.pending, k) // the rule changed its mind
			continue
		}
		if err := e.fire(ctx, r, p.run, p.wf, p.project, p.event, p.occurred, alertDetails{}); err == nil {
			delete(e.pending, k)
		}
	}
	e.pendingAt = time.Time{}
	if len(e.pending) > 0 {
		e.pendingAt = e.now().Add(timerRetryDelay)
	}
}

// alertDetails are the event-specific parts of an alert's context.
type alertDetails struct {
	threshold     time.Duration // delayed, stalled
	recoveredFrom []Event       // recovered
}

// fire renders and claims one alert and submits it unless throttling
// suppressed it. It returns an error only when the alert could not be
// claimed and should be tried again; an alert that cannot be rendered is
// logged and dropped (retrying would not help).
func (e *Engine) fire(ctx context.Context, r *Rule, run Run, wf WorkflowInfo, project string, event Event,
	occurred time.Time, d alertDetails) error {
	log := e.log.With(zap.String("rule_id", r.Spec.ID), zap.String("run_id", run.ID), zap.String("event", string(event)))
	c := e.context(r, run, wf, project, event, occurred)
	c.Threshold, c.RecoveredFrom = d.threshold, d.recoveredFrom
	now := e.now()
	// Recovered alerts are not throttled: there is at most one per sent
	// delayed/stalled alert, and a receiver must learn that it ended.
	throttled := event != EventRecovered && r.Throttled()
	allowed, suppressed := true, 0
	if throttled {
		allowed, suppressed = e.throttle.check(r, throttleWorkflow(wf), now)
		if allowed {
			c.SuppressedCount = suppressed
		}
	}
	url, body, err := r.Render(c)
	if err != nil {
		e.count(func(s *engineStats) { s.fails++ })
		log.Error("rendering alert failed", zap.Error(err))
		return nil
	}
	claim := Claim{ConfigID: r.Spec.ID, ProjectID: project, WorkflowSlug: wf.Slug, RunID: run.ID, Event: event,
		WebhookID: WebhookID(r.Spec.ID, run.ID, event), Payload: body, TargetURL: url, OccurredAt: occurred,
		Suppressed: !allowed}
	id, claimed, err := e.store.Claim(ctx, claim)
	if err != nil {
		e.count(func(s *engineStats) { s.fails++ })
		log.Error("claiming alert failed", zap.Error(err))
		return fmt.Errorf("claim %s alert of rule %s for run %s: %w", event, r.Spec.ID, run.ID, err)
	}
	if !claimed {
		e.count(func(s *engineStats) { s.duplicates++ })
		e.events.add(event, func(n *EventCounts) { n.Duplicates++ })
		log.Debug("alert already claimed")
		return nil
	}
	e.count(func(s *engineStats) { s.claims++ })
	e.events.add(event, func(n *EventCounts) { n.Claimed++ })
	if throttled {
		e.throttle.record(r, throttleWorkflow(wf), now, allowed)
	}
	if !allowed {
		e.count(func(s *engineStats) { s.suppressed++ })
		e.events.add(event, func(n *EventCounts) { n.Suppressed++ })
		log.Info("alert suppressed by throttling", zap.String("alert_id", id),
			zap.Int("throttle_max", r.Spec.ThrottleMax), zap.Duration("throttle_window", r.Spec.ThrottleWindow))
		return nil
	}
	log.Info("alert claimed", zap.String("alert_id", id), zap.String("webhook_id", claim.WebhookID))
	if !e.out.Submit(Claimed{ID: id, Rule: r, Claim: claim}) {
		log.Info("sender queue full; alert stays pending", zap.String("alert_id", id))
	}
	return nil
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
		Rule: RuleInfo{ID: r.Spec.ID, Name: r.Spec.Name}, LinkBase: e.opts.LinkBaseURL,
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
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
}
