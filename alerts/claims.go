package alerts

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// claimBatchMax caps the alerts claimed in one Store.Claim call.
const claimBatchMax = 500

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
	results, err := e.store.Claim(ctx, claims)
	if err == nil && len(results) != len(claims) {
		err = fmt.Errorf("store answered %d claims with %d results", len(claims), len(results))
	}
	if err != nil {
		e.log.Error("claiming alerts failed; they will be retried", zap.Int("alerts", len(claims)), zap.Error(err))
	}
	for i, q := range items {
		var res ClaimResult
		dup := slot[i] < 0
		if err != nil {
			res.Err = err
		} else if dup {
			res = results[-1-slot[i]]
			if res.Err == nil {
				res.ID, res.Lease = "", time.Time{} // the first of the two was the claim
			}
		} else {
			res = results[slot[i]]
			q.claim.LeaseUntil = claims[slot[i]].LeaseUntil
		}
		if !q.claim.LeaseUntil.IsZero() && res.ID != "" && !res.Lease.IsZero() {
			reserved-- // Submit hands it over
		} else {
			res.Lease = time.Time{}
		}
		e.settleClaim(q, res, err == nil)
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

// settleClaim accounts for one claim's result. logged is false when the
// whole call failed (already logged once).
func (e *Engine) settleClaim(q queuedClaim, res ClaimResult, logged bool) {
	c := q.claim
	log := func() *zap.Logger {
		return e.log.With(zap.String("rule_id", c.ConfigID), zap.String("run_id", c.RunID), zap.String("event", string(c.Event)))
	}
	switch {
	case res.Err != nil:
		e.count(func(s *engineStats) { s.fails++ })
		if logged {
			log().Error("claiming alert failed", zap.Error(res.Err))
		}
		if q.failed != nil {
			q.failed()
		}
		return
	case res.ID == "":
		e.count(func(s *engineStats) { s.duplicates++ })
		e.events.add(c.Event, func(n *EventCounts) { n.Duplicates++ })
		if e.log.Core().Enabled(zap.DebugLevel) {
			log().Debug("alert already claimed")
		}
		return
	}
	e.count(func(s *engineStats) { s.claims++ })
	e.events.add(c.Event, func(n *EventCounts) { n.Claimed++ })
	if q.throttled {
		e.throttle.record(q.rule, q.workflow, q.at, q.allowed)
	}
	if !q.allowed {
		e.count(func(s *engineStats) { s.suppressed++ })
		e.events.add(c.Event, func(n *EventCounts) { n.Suppressed++ })
		log().Info("alert suppressed by throttling", zap.String("alert_id", res.ID),
			zap.Int("throttle_max", q.rule.ThrottleMax()), zap.Duration("throttle_window", q.rule.ThrottleWindow()))
		return
	}
	log().Info("alert claimed", zap.String("alert_id", res.ID), zap.String("webhook_id", c.WebhookID))
	if !e.out.Submit(Claimed{ID: res.ID, Rule: q.rule, Claim: c, Lease: res.Lease}) {
		log().Info("sender queue full; alert stays pending", zap.String("alert_id", res.ID))
	}
}
