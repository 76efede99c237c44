package alerts

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// ResolveClaimer is implemented by a Store that can claim resolved alerts.
// Without it, rules listing resolved never send one.
type ResolveClaimer interface {
	// ClaimResolves records each of cs, resolved alerts, only while its
	// rule has a failed alert for its workflow (Claim.WorkflowSlug) that is
	// neither resolved yet, nor suppressed, nor newer than it, and marks
	// those failed alerts resolved by it, atomically: of any number of
	// claims for the same failure, from any number of engines, one claims.
	// It returns one result per claim, in order; a result without an ID
	// means there was nothing to resolve (or the claim was made before).
	// An error means none was recorded.
	ClaimResolves(ctx context.Context, cs []Claim) ([]ClaimResult, error)
}

// queuedResolve is a resolved alert rendered and waiting to be claimed
// after the alerts batched before it (see claimResolves).
type queuedResolve struct {
	queuedClaim
	run      Run
	wf       WorkflowInfo
	project  string
	occurred time.Time
}

// resolve queues resolved alerts for a succeeded run: every rule listing
// resolved that has an unresolved failed alert for the run's workflow
// gets one (see ResolveClaimer). They are claimed with the batch, after
// its alerts (see claimResolves). failed is called when a claim could not
// be recorded, or must wait, so the row is processed again.
func (e *Engine) resolve(ctx context.Context, run Run, wf WorkflowInfo, project string, occurred time.Time, failed func()) {
	if _, ok := e.store.(ResolveClaimer); !ok {
		return
	}
	for _, r := range e.rules.Match(project, wf.Slug, EventResolved) {
		if predates(r, occurred) {
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
		if len(e.batch.resolves) >= claimBatchMax {
			e.flush(ctx)
		}
		e.batch.resolves = append(e.batch.resolves, queuedResolve{
			queuedClaim: queuedClaim{rule: r, allowed: true, failed: failed, reconciled: e.rec.active,
				claim: Claim{ConfigID: r.ID(), ProjectID: project, WorkflowSlug: wf.Slug, RunID: run.ID, Event: EventResolved,
					WebhookID: WebhookID(r.ID(), run.ID, EventResolved), Payload: body, TargetURL: url, OccurredAt: occurred}},
			run: run, wf: wf, project: project, occurred: occurred,
		})
	}
}

// claimResolves claims the batch's resolved alerts in one call, once the
// batch's other alerts are claimed, so that each sees the failures claimed
// before it.
func (e *Engine) claimResolves(ctx context.Context) {
	queued := e.batch.resolves
	if len(queued) == 0 {
		return
	}
	e.batch.resolves = nil
	rc := e.store.(ResolveClaimer) // resolve queues none otherwise
	ready := make([]queuedResolve, 0, len(queued))
	for _, q := range queued {
		if e.failureAwaitsClaim(q.rule, q.run, q.wf, q.project, q.occurred) {
			// A failure this success ends is not claimed yet (its claim
			// failed and waits for a retry): claiming the resolve now
			// would find nothing and never be asked again, and the
			// failure, claimed later, would never be resolved. Ask again
			// when this row is retried: the resolve waits as long as the
			// failure does.
			e.log.Debug("a failure waits for its claim; resolving later", zap.String("rule_id", q.rule.ID()),
				zap.String("run_id", q.run.ID))
			if q.failed != nil {
				q.failed()
			}
			continue
		}
		ready = append(ready, q)
	}
	if len(ready) == 0 {
		return
	}
	claims := make([]Claim, len(ready))
	for i, q := range ready {
		claims[i] = q.claim
	}
	results, err := rc.ClaimResolves(ctx, claims)
	if err == nil && len(results) != len(claims) {
		err = fmt.Errorf("store answered %d resolve claims with %d results", len(claims), len(results))
	}
	if err != nil {
		e.log.Error("claiming resolved alerts failed; they will be retried", zap.Int("alerts", len(claims)), zap.Error(err))
		results = make([]ClaimResult, len(claims))
		for i := range results {
			results[i] = ClaimResult{Err: err, callFailed: true}
		}
	}
	for i, q := range ready {
		res := results[i]
		if res.Err == nil && res.ID == "" {
			e.log.Debug("no unresolved failure to resolve", zap.String("rule_id", q.rule.ID()), zap.String("run_id", q.run.ID))
			continue
		}
		e.settleClaim(q.queuedClaim, res)
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
