package alerts

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// ResolveClaimer is implemented by a Store that can claim resolved alerts.
// Without it, rules listing resolved never send one.
type ResolveClaimer interface {
	// ClaimResolve records c, a resolved alert, only while c's rule has a
	// failed alert for c's workflow (Claim.WorkflowSlug) that is neither
	// resolved yet, nor suppressed, nor newer than c, and marks those
	// failed alerts resolved by c, atomically: of any number of calls for
	// the same failure, from any number of engines, one claims. A result
	// without an ID means there was nothing to resolve (or c was claimed
	// before).
	ClaimResolve(ctx context.Context, c Claim) (ClaimResult, error)
}

// resolve sends resolved alerts for a succeeded run: every rule listing
// resolved that has an unresolved failed alert for the run's workflow
// gets one (see ResolveClaimer). failed is called when a claim could not
// be recorded, so the row is processed again.
func (e *Engine) resolve(ctx context.Context, run Run, wf WorkflowInfo, project string, occurred time.Time, failed func()) {
	rc, ok := e.store.(ResolveClaimer)
	if !ok {
		return
	}
	var candidates []*Rule
	for _, r := range e.rules.Match(project, wf.Slug, EventResolved) {
		if !predates(r, occurred) {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 0 {
		return
	}
	// The claim must see every failed alert claimed so far.
	e.flush(ctx)
	for _, r := range candidates {
		if e.failureAwaitsClaim(r, run, wf, project, occurred) {
			// A failure this success ends is not claimed yet (its claim
			// failed and waits for a retry): claiming the resolve now
			// would find nothing and never be asked again, and the
			// failure, claimed later, would never be resolved. Ask again
			// when this row is retried: the resolve waits as long as the
			// failure does.
			e.log.Debug("a failure waits for its claim; resolving later", zap.String("rule_id", r.ID()),
				zap.String("run_id", run.ID))
			if failed != nil {
				failed()
			}
			continue
		}
		c := e.context(r, run, wf, project, EventResolved, occurred)
		url, body, err := r.Render(c)
		if err != nil {
			e.count(func(s *engineStats) { s.fails++ })
			e.log.Error("rendering alert failed", zap.String("rule_id", r.ID()), zap.String("run_id", run.ID),
				zap.String("event", string(EventResolved)), zap.Error(err))
			continue
		}
		claim := Claim{ConfigID: r.ID(), ProjectID: project, WorkflowSlug: wf.Slug, RunID: run.ID, Event: EventResolved,
			WebhookID: WebhookID(r.ID(), run.ID, EventResolved), Payload: body, TargetURL: url, OccurredAt: occurred}
		res, err := rc.ClaimResolve(ctx, claim)
		if err != nil {
			res = ClaimResult{Err: err}
		} else if res.ID == "" {
			e.log.Debug("no unresolved failure to resolve", zap.String("rule_id", r.ID()), zap.String("run_id", run.ID))
			continue
		}
		e.settleClaim(queuedClaim{claim: claim, rule: r, allowed: true, failed: failed, reconciled: e.rec.active}, res)
	}
}

// failureAwaitsClaim reports whether a failure of run's workflow, not newer
// than occurred, waits in this engine for a retry of its claim (or of its
// row) that r may alert: the resolve for run must wait for it. A deferred
// row whose workflow is not known (its lookup failed) counts when it is a
// run of the same workflow version, or of another version of the same
// project whose slug is not cached.
//
// Another daemon's retries are not seen: a failure whose claim fails on
// one daemon while the next success is handled by another is resolved
// only by a later success (see docs/destinations.md).
func (e *Engine) failureAwaitsClaim(r *Rule, run Run, wf WorkflowInfo, project string, occurred time.Time) bool {
	for _, p := range e.pending {
		if p.rule == r.ID() && p.event == EventFailed && p.wf.Slug == wf.Slug && !p.occurred.After(occurred) {
			return true
		}
	}
	for _, p := range e.pendingRows {
		if p.run.State != StateFailed || p.run.ID == run.ID || p.occurred.After(occurred) {
			continue
		}
		if p.run.WorkflowRef == run.WorkflowRef {
			return true
		}
		e.wfMu.Lock()
		w, known := e.wf[p.run.WorkflowRef]
		e.wfMu.Unlock()
		if known {
			if w.Slug == wf.Slug {
				return true
			}
		} else if p.run.ProjectID == "" || p.run.ProjectID == project {
			return true
		}
	}
	return false
}
