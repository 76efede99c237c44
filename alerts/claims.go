package alerts

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Claims of a batch go to the store in parts of at most claimPartMax
// alerts, and a batch of at least claimParallel*claimPartMin alerts is
// split into claimParallel parts claimed at the same time: the database
// then works on a burst with more than one core while the engine waits.
const (
	claimBatchMax = 1000 // alerts claimed in one flush
	claimPartMax  = 500  // alerts in one Store.Claim call
	claimPartMin  = 50
	claimParallel = 2
)

// claimParts splits n claims into the [start, end) ranges claimed by one
// Store.Claim call each.
func claimParts(n int) [][2]int {
	parts := (n + claimPartMax - 1) / claimPartMax
	if parts < claimParallel && n >= claimParallel*claimPartMin {
		parts = claimParallel
	}
	if parts <= 1 {
		return [][2]int{{0, n}}
	}
	out := make([][2]int, parts)
	for i := range parts {
		out[i] = [2]int{i * n / parts, (i + 1) * n / parts}
	}
	return out
}

// claimAll claims every alert of claims, in parts claimed at the same
// time, and returns one result per claim. A part whose call failed has its
// error in each of its results; failed reports whether any part did.
func (e *Engine) claimAll(ctx context.Context, claims []Claim) (results []ClaimResult, failed bool) {
	results = make([]ClaimResult, len(claims))
	parts := claimParts(len(claims))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		claim := func() {
			res, err := e.store.Claim(ctx, claims[p[0]:p[1]])
			if err == nil && len(res) != p[1]-p[0] {
				err = fmt.Errorf("store answered %d claims with %d results", p[1]-p[0], len(res))
			}
			if err != nil {
				errs[i] = err
				return
			}
			copy(results[p[0]:p[1]], res)
		}
		if len(parts) == 1 {
			claim()
			break
		}
		wg.Go(claim)
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		failed = true
		p := parts[i]
		e.log.Error("claiming alerts failed; they will be retried", zap.Int("alerts", p[1]-p[0]), zap.Error(err))
		for j := p[0]; j < p[1]; j++ {
			results[j] = ClaimResult{Err: err, callFailed: true}
		}
	}
	return results, failed
}

// drainMax caps the waiting events handled before their alerts are claimed.
const drainMax = 1000

// queuedClaim is an alert rendered and waiting to be claimed.
type queuedClaim struct {
	claim Claim
	rule  *Rule
	// throttled alerts are recorded with the throttler once claimed;
	// allowed is whether throttling let this one be sent.
	throttled, allowed bool
	workflow           string    // throttle key part
	at                 time.Time // when throttling was checked
	// failed, when set, is called if the claim could not be recorded.
	failed func()
	// reconciled marks an alert found by reconciliation: its change was
	// not (or not yet) delivered by Realtime.
	reconciled bool
}

// claimBatch collects the alerts of everything the engine handled since the
// last flush, so that a burst of changes costs one claim request per
// claimBatchMax alerts instead of one per alert.
type claimBatch struct {
	items []queuedClaim
	// throttleKeys are the throttle keys with an alert in items: a second
	// alert for the same key waits for the first to be claimed, because
	// whether it may be sent depends on that.
	throttleKeys map[throttleKey]struct{}
	// resolves are the resolved alerts, claimed in one call after items.
	resolves []queuedResolve
}

// queue adds an alert to the batch, claiming the batch first when it is
// full or already holds an alert for the same throttle key.
func (e *Engine) queue(ctx context.Context, q queuedClaim) {
	b := &e.batch
	if len(b.items) >= claimBatchMax {
		e.flush(ctx)
	}
	b.items = append(b.items, q)
}

// reserveThrottle makes room in the batch for an alert of r for workflow
// whose throttling is about to be checked: when the batch already holds one
// for that key, it is claimed first, so the check sees it.
func (e *Engine) reserveThrottle(ctx context.Context, r *Rule, workflow string) {
	b := &e.batch
	k := throttleKey{r.ID(), workflow}
	if _, busy := b.throttleKeys[k]; busy {
		e.flush(ctx)
	}
	if b.throttleKeys == nil {
		b.throttleKeys = map[throttleKey]struct{}{}
	}
	b.throttleKeys[k] = struct{}{}
}

// flush claims the batched alerts in one Store call and hands the claimed
// ones to the sender. Alerts already claimed count as duplicates; alerts
// that could not be claimed run their failed hooks (which schedule retries).
func (e *Engine) flush(ctx context.Context) {
	e.flushBatch(ctx)
	e.recheckFinished(ctx)
}

// recheckFinished re-reads the runs whose delayed or stalled alert was
// just claimed and handles those that have finished meanwhile: either the
// engine that handled the finish saw the claim (recorded before this
// read) or this read sees the finish, so recovered follows either way
// (claims are idempotent).
func (e *Engine) recheckFinished(ctx context.Context) {
	if e.rechecking || len(e.recheck) == 0 {
		return
	}
	e.rechecking = true
	defer func() { e.rechecking = false }()
	for len(e.recheck) > 0 {
		ids := slices.Compact(slices.Sorted(slices.Values(e.recheck)))
		e.recheck = nil
		for _, id := range ids {
			row, ok, err := e.store.GetRun(ctx, id)
			if err != nil {
				e.log.Warn("re-reading a run after its condition alert failed; the reconciler reads it again",
					zap.String("run_id", id), zap.Error(err))
				e.markRetry(time.Time{})
				continue
			}
			if !ok {
				continue
			}
			run, err := e.opts.Mapping.RunFromRow(row)
			if err != nil || !run.State.Terminal() {
				continue
			}
			e.processRow(ctx, row, run.UpdatedAt, time.Time{})
			e.flushBatch(ctx)
		}
	}
}

// flushBatch claims the batched alerts, then the batched resolved alerts.
func (e *Engine) flushBatch(ctx context.Context) {
	e.claimItems(ctx)
	e.claimResolves(ctx)
}

func (e *Engine) claimItems(ctx context.Context) {
	b := &e.batch
	if len(b.items) == 0 {
		return
	}
	items := b.items
	b.items = nil
	clear(b.throttleKeys)

	// Within one batch the same alert can come twice (two changes of a run
	// with the same status); claim it once.
	first := make(map[string]int, len(items))
	claims := make([]Claim, 0, len(items))
	slot := make([]int, len(items))
	for i, q := range items {
		k := q.claim.ConfigID + "\x00" + q.claim.RunID + "\x00" + string(q.claim.Event)
		if j, ok := first[k]; ok {
			slot[i] = -1 - j
			continue
		}
		first[k] = len(claims)
		slot[i] = len(claims)
		claims = append(claims, q.claim)
	}
	leaser, _ := e.out.(Leaser)
	reserved := 0
	if leaser != nil {
		reserved = e.leaseClaims(leaser, claims)
	}
	results, _ := e.claimAll(ctx, claims)
	for i, q := range items {
		var res ClaimResult
		j := slot[i]
		if j < 0 {
			res = results[-1-j]
			if res.Err == nil {
				res.ID, res.Lease = "", time.Time{} // the first of the two was the claim
			}
		} else {
			res = results[j]
			q.claim.LeaseUntil = claims[j].LeaseUntil
		}
		if !q.claim.LeaseUntil.IsZero() && res.ID != "" && !res.Lease.IsZero() {
			reserved-- // Submit hands it over
		} else {
			res.Lease = time.Time{}
		}
		e.settleClaim(q, res)
	}
	if reserved > 0 {
		leaser.Unreserve(reserved)
	}
}

// leaseClaims reserves room in the sender for the claims that will be sent
// and sets their LeaseUntil; it returns the number reserved.
func (e *Engine) leaseClaims(l Leaser, claims []Claim) int {
	want := 0
	for _, c := range claims {
		if !c.Suppressed {
			want++
		}
	}
	n, until := l.Reserve(want)
	if n <= 0 {
		return 0
	}
	left := n
	for i := range claims {
		if left == 0 {
			break
		}
		if !claims[i].Suppressed {
			claims[i].LeaseUntil = until
			left--
		}
	}
	return n
}

// settleClaim accounts for one claim's result. A failed Store.Claim call
// was logged once for all its alerts; an alert's own failure is logged here.
func (e *Engine) settleClaim(q queuedClaim, res ClaimResult) {
	c := q.claim
	log := func(lvl zapcore.Level, msg string, fields ...zap.Field) {
		// Fields are built only for a line that is written: this runs for
		// every alert of a burst.
		if ce := e.claimLog.Check(lvl, msg); ce != nil {
			ce.Write(append([]zap.Field{zap.String("rule_id", c.ConfigID), zap.String("run_id", c.RunID),
				zap.String("event", string(c.Event))}, fields...)...)
		}
	}
	switch {
	case res.Err != nil:
		e.count(func(s *engineStats) { s.fails++ })
		if !res.callFailed {
			log(zapcore.ErrorLevel, "claiming alert failed", zap.Error(res.Err))
		}
		if q.failed != nil {
			q.failed()
		}
		return
	case res.ID == "":
		e.count(func(s *engineStats) { s.duplicates++ })
		e.events.add(c.Event, func(n *EventCounts) { n.Duplicates++ })
		log(zapcore.DebugLevel, "alert already claimed")
		return
	}
	e.count(func(s *engineStats) {
		s.claims++
		if q.reconciled {
			s.reconcileFound++
		}
	})
	if c.Event == EventDelayed || c.Event == EventStalled {
		// The run may have finished while this claim was on its way, and
		// whoever handled the finish looked for condition alerts before
		// this one was recorded: look at the run again (see
		// recheckFinished), so its recovered alert is not lost.
		e.recheck = append(e.recheck, c.RunID)
	}
	e.events.add(c.Event, func(n *EventCounts) { n.Claimed++ })
	if q.throttled {
		e.throttle.record(q.rule, q.workflow, q.at, q.allowed)
	}
	if !q.allowed {
		e.count(func(s *engineStats) { s.suppressed++ })
		e.events.add(c.Event, func(n *EventCounts) { n.Suppressed++ })
		log(zapcore.InfoLevel, "alert suppressed by throttling", zap.String("alert_id", res.ID),
			zap.Int("throttle_max", q.rule.ThrottleMax()), zap.Duration("throttle_window", q.rule.ThrottleWindow()))
		return
	}
	log(zapcore.InfoLevel, "alert claimed", zap.String("alert_id", res.ID), zap.String("webhook_id", c.WebhookID))
	if !e.out.Submit(Claimed{ID: res.ID, Rule: q.rule, Claim: c, Lease: res.Lease}) {
		log(zapcore.InfoLevel, "sender queue full; alert stays pending", zap.String("alert_id", res.ID))
	}
}
