package alerts

import (
	"context"
	"errors"
	"fmt"
	"github.com/cenkalti/backoff/v4"
	"maps"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// Store is what the engine needs from the database.
type Store interface {
	// LoadRules hands every alert rule to load as it reads them: Add for
	// a rule it could read (opened, not yet compiled), Reject for one it
	// cannot use (for example sealed values it cannot open). On error
	// what was handed over so far is not the whole set and is discarded.
	LoadRules(ctx context.Context, load RuleSink) error
	// DecodeRule turns an alert_configs row from a Realtime change into a spec.
	DecodeRule(row map[string]any) (RuleSpec, error)
	// GetRun re-reads one run row by id.
	GetRun(ctx context.Context, id string) (map[string]any, bool, error)
	// RunsPage returns up to limit run rows after the cursor in
	// (updated_at, id) order whose updated_at is before before: whole
	// rows when whole is set, else with the mapping's columns only (the
	// rest may be absent).
	RunsPage(ctx context.Context, after Cursor, before time.Time, limit int, whole bool) ([]map[string]any, error)
	// RunsByID returns the whole rows of the runs ids (in no order; a run
	// that no longer exists is left out).
	RunsByID(ctx context.Context, ids []string) ([]map[string]any, error)
	// RunsInStatuses calls fn for every run row whose status column holds
	// one of statuses.
	RunsInStatuses(ctx context.Context, statuses []string, fn func(row map[string]any) error) error
	// Workflow resolves a workflow reference (a MeshHook workflow_definitions id).
	Workflow(ctx context.Context, id string) (Workflow, bool, error)
	// Claim records each alert of cs unless its (config, run, event) is
	// already claimed, in as few round trips as the store can (one for a
	// database). results[i] is about cs[i]. An error means no claim of the
	// call may be assumed made; claims are idempotent, so the caller
	// retries them.
	Claim(ctx context.Context, cs []Claim) (results []ClaimResult, err error)
	// ConditionClaims returns the delayed and stalled alerts that the rules
	// ruleIDs claimed for run runID, leaving out suppressed ones.
	ConditionClaims(ctx context.Context, runID string, ruleIDs []string) ([]ConditionClaim, error)
	// Reconcile takes or renews the reconcile lease for holder (for
	// lease), stores save as the reconcile cursor when it is not nil and
	// the lease is held, and returns the lease, the stored cursor and the
	// horizon (see ReconcileState).
	Reconcile(ctx context.Context, holder string, lease time.Duration, save *Cursor) (ReconcileState, error)
	// SaveRejected records why rules were rejected (rule id -> reason)
	// where the API can show it, replacing the previous record.
	SaveRejected(ctx context.Context, reasons map[string]string) error
}

// RuleSink receives the rules of a full load (see Store.LoadRules); a
// Reload is one.
type RuleSink interface {
	Add(spec RuleSpec)
	Reject(id string, err error)
}

// Workflow is a resolved workflow reference.
type Workflow struct {
	WorkflowInfo
	ProjectID string
}

// Claim is one alert to record before it is sent.
type Claim struct {
	ConfigID     string
	ProjectID    string
	WorkflowSlug string
	RunID        string
	Event        Event
	WebhookID    string
	Payload      []byte
	TargetURL    string
	OccurredAt   time.Time
	// Suppressed records the alert as suppressed by throttling: it is
	// logged, never sent.
	Suppressed bool
	// ReceivedAt is when the daemon received the change that raised the
	// alert; zero for alerts found by catch-up or timers.
	ReceivedAt time.Time
	// LeaseUntil, when set, claims the alert already leased to the sender
	// until then (see Leaser).
	LeaseUntil time.Time
}

// ClaimResult is the outcome of one claim of a Store.Claim call.
type ClaimResult struct {
	// ID is the new alert's id, or "" when the alert was claimed before
	// (or its rule no longer exists).
	ID string
	// Err is set when this claim alone could not be recorded.
	Err error
	// Lease is the stored lease expiry of an alert claimed leased
	// (Claim.LeaseUntil); zero otherwise.
	Lease time.Time
	// callFailed marks an Err that failed the whole Store.Claim call
	// (logged once for the call, not per alert).
	callFailed bool
}

// ConditionClaim is a delayed or stalled alert a rule claimed for a run.
type ConditionClaim struct {
	RuleID string
	Event  Event
}

// Claimed is a claim that this engine won, ready for delivery.
type Claimed struct {
	ID   string
	Rule *Rule
	Claim
	// Lease, when set, is the stored lease expiry of an alert claimed
	// leased to the sender: Submit must hand it over (Leaser).
	Lease time.Time
}

// Submitter hands claimed alerts to the sender. Submit must not block; when
// it returns false the alert stays pending in the database and the sender
// picks it up from there.
type Submitter interface {
	Submit(Claimed) bool
}

// Leaser is implemented by a Submitter that can take alerts claimed already
// leased to its sender, which saves the sender a lease request and a
// re-read of every fresh alert.
type Leaser interface {
	// Reserve makes room for up to n alerts and returns how many and the
	// lease expiry to claim them with (0 when there is no room).
	Reserve(n int) (int, time.Time)
	// Unreserve returns n reservations that no Submit will use.
	Unreserve(n int)
}

// Options configures an Engine.
type Options struct {
	// Rules is the rule cache the engine keeps; the daemon builds it
	// first and hands it to every component that reads rules. Nil makes
	// a new one.
	Rules          *RuleSet
	Mapping        Mapping
	RunsChannel    string // Realtime channel name carrying run changes
	ConfigsChannel string // Realtime channel name carrying alert_configs changes
	// ReconcileInterval is how often the reconciler reads the runs changed
	// since its cursor. Default 1s.
	ReconcileInterval time.Duration
	// ReconcileLease is how long a daemon's reconcile lease lasts; another
	// daemon takes over when it lapses. Default 10 × ReconcileInterval,
	// at least 5s.
	ReconcileLease time.Duration
	// ReconcileLagAlert is the reconciler lag past which an error is
	// logged; 0 never. Default 1m.
	ReconcileLagAlert time.Duration
	// ReconcileDelay leaves the newest changes to Realtime: a pass reads
	// only rows updated at least this long ago, so that with Realtime
	// working the reconciler reads (and claims) nothing twice and what it
	// finds is what Realtime lost. 0 (Realtime disabled) reads up to the
	// horizon.
	ReconcileDelay time.Duration
	// CatchupOverlap holds the reconcile horizon back when the database
	// cannot report the oldest transaction in progress.
	CatchupOverlap time.Duration
	// CatchupMaxLookback bounds how far back the reconciler reaches after
	// a long outage (and at the first start).
	CatchupMaxLookback time.Duration
	// ResyncInterval reloads the rules and rebuilds the timers
	// periodically to heal drift.
	ResyncInterval time.Duration
	// TimerTick is how often delayed/stalled timers are checked. Default 1s.
	TimerTick   time.Duration
	LinkBaseURL string
	Now         func() time.Time
}

// Engine matches run changes against the cached rules and claims alerts.
//
// Everything but Rules and Stats runs on the goroutine that calls Run: run
// changes, timers, catch-ups and rule changes are handled one at a time.
type Engine struct {
	opts  Options
	store Store
	out   Submitter
	log   *zap.Logger
	// claimLog is log reporting the caller of settleClaim's log helper.
	claimLog *zap.Logger
	rules    *RuleSet
	now      func() time.Time
	wfMu     sync.Mutex
	wf       map[string]Workflow
	stats    engineStats
	events   eventCounters
	ready    engineReadiness

	// Owned by the Run goroutine.
	timers       *timers
	timerVersion uint64 // rule-set version the timers were scheduled with
	// timersLive is set while the timers track every running and paused
	// run (built from the database); they are kept only while some rule
	// alerts on delayed or stalled. timersRetryAt delays a failed build.
	timersLive    bool
	timersRetryAt time.Time
	throttle      *throttler
	lastPrune     time.Time
	// ruleChanges counts rule changes applied since a bulk edit's memory
	// was last handed back to the OS; lastRuleChange is when the latest
	// was applied.
	ruleChanges    int
	lastRuleChange time.Time
	// runChanges and lastRunChange are the same for run changes: a burst
	// of them leaves queues and buffers behind too.
	runChanges    int
	lastRunChange time.Time
	memory        *rebuildMemory
	// rec is the reconciler's state; seen the run versions processed.
	rec      reconciler
	seen     *seenRuns
	matchBuf []*Rule
	dueBuf   []*Rule
	// retryFrom, when set, is the oldest updated_at of a row whose alerts
	// could not be claimed: the reconciler reads again from there.
	retryFrom time.Time
	// pending holds change alerts whose claims failed, by rule, run and
	// event, retried from pendingAt on.
	pending map[string]pendingFire
	// pendingRows are rows whose processing failed, by run id, processed
	// again from pendingAt on.
	pendingRows map[string]pendingRow
	pendingAt   time.Time
	// batch holds the alerts rendered but not yet claimed; they are
	// claimed together (see flush).
	batch claimBatch
	// recheck lists the runs whose delayed or stalled alert was just
	// claimed, to be read again (see recheckFinished); rechecking guards
	// against re-entry.
	recheck    []string
	rechecking bool
	// savedRejected is the rejected-rules record last saved.
	savedRejected map[string]string
	rejectedSaved bool
	// live is set while Run reads changes from Realtime (false: the
	// reconciler alone finds them); liveChanges counts the run changes it
	// delivered, liveCommitted is the latest one's commit time.
	live          bool
	liveChanges   int64
	liveCommitted time.Time
	// ticks overrides the timer ticker, reconcileTicks the reconcile
	// timer (tests).
	ticks, reconcileTicks <-chan time.Time
}

type engineStats struct {
	mu                                 sync.Mutex
	changes, claims, duplicates, fails int64
	suppressed, timerChecks            int64
	catchups, catchupRows              int64
	reconciles, reconcileRows          int64
	reconcileFound                     int64
	reconcileLag                       time.Duration
	reconcileHeld                      bool
	reconcileErr                       string // the last pass's error, "" when it succeeded
	ruleLoads                          int64
	tracked, scheduled                 int
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Changes, Claims, Duplicates, Failures int64
	// Suppressed counts alerts recorded as suppressed by throttling.
	Suppressed int64
	// TimerChecks counts timed runs confirmed over REST before a
	// delayed/stalled claim.
	TimerChecks           int64
	Catchups, CatchupRows int64
	// Reconciles counts reconcile passes, ReconcileRows the rows they
	// read, CatchupRows those not already handled live, and
	// ReconcileFound the alerts claimed from those: the changes Realtime
	// missed (or had not delivered yet).
	Reconciles, ReconcileRows, ReconcileFound int64
	// ReconcileLag is how far the reconcile cursor is behind the
	// database's clock; ReconcileHeld whether this daemon reconciles.
	ReconcileLag  time.Duration
	ReconcileHeld bool
	// RuleLoads counts full loads of the rule cache completed.
	RuleLoads int64
	Rules     int
	// Tracked is the number of running or paused runs with a timer entry,
	// Scheduled those waiting for a threshold.
	Tracked, Scheduled int
}

// Timer retry and catch-up retry delays.
const (
	timerRetryDelay    = 5 * time.Second
	throttlePruneEvery = time.Minute
	// seenRunsSize bounds the run versions remembered as handled.
	seenRunsSize = 16384
)

// New builds an engine.
func New(opts Options, store Store, out Submitter, log *zap.Logger) (*Engine, error) {
	if err := opts.Mapping.Validate(); err != nil {
		return nil, fmt.Errorf("alerts: watch mapping: %w", err)
	}
	if opts.RunsChannel == "" || opts.ConfigsChannel == "" {
		return nil, errors.New("alerts: RunsChannel and ConfigsChannel are required")
	}
	if opts.CatchupMaxLookback <= 0 {
		opts.CatchupMaxLookback = 24 * time.Hour
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 5 * time.Minute
	}
	if opts.TimerTick <= 0 {
		opts.TimerTick = time.Second
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = time.Second
	}
	if opts.ReconcileLease <= 0 {
		opts.ReconcileLease = max(10*opts.ReconcileInterval, 5*time.Second)
	}
	if opts.ReconcileLagAlert == 0 {
		opts.ReconcileLagAlert = time.Minute
	}
	if log == nil {
		log = zap.NewNop()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rules := opts.Rules
	if rules == nil {
		rules = NewRuleSet()
	}
	return &Engine{opts: opts, store: store, out: out, log: log, claimLog: log.WithOptions(zap.AddCallerSkip(1)), rules: rules, now: now,
		wf: map[string]Workflow{}, timers: newTimers(), throttle: newThrottler(),
		pending: map[string]pendingFire{}, pendingRows: map[string]pendingRow{}, memory: newRebuildMemory(),
		rec: reconciler{holder: newHolderID()}, seen: newSeenRuns(seenRunsSize)}, nil
}

// Rules is the engine's rule cache (the sender reads secrets from it).
func (e *Engine) Rules() *RuleSet { return e.rules }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	return Stats{Changes: e.stats.changes, Claims: e.stats.claims, Duplicates: e.stats.duplicates,
		Failures: e.stats.fails, Suppressed: e.stats.suppressed, TimerChecks: e.stats.timerChecks,
		Catchups: e.stats.catchups, CatchupRows: e.stats.catchupRows,
		Reconciles: e.stats.reconciles, ReconcileRows: e.stats.reconcileRows, ReconcileFound: e.stats.reconcileFound,
		ReconcileLag: e.stats.reconcileLag, ReconcileHeld: e.stats.reconcileHeld, RuleLoads: e.stats.ruleLoads, Rules: e.rules.Len(),
		Tracked: e.stats.tracked, Scheduled: e.stats.scheduled}
}

func (e *Engine) count(f func(s *engineStats)) {
	e.stats.mu.Lock()
	f(&e.stats)
	e.stats.mu.Unlock()
}

// Run loads the rules, reconciles from the stored cursor and builds the
// timers, then processes Realtime events, timer ticks and reconcile passes
// until ctx ends or events is closed. A nil events channel (Realtime
// disabled) leaves reconciliation alone to find changes.
func (e *Engine) Run(ctx context.Context, events <-chan realtime.Event) error {
	if err := e.retry(ctx, "load rules", e.loadRules); err != nil {
		return err
	}
	if err := e.retry(ctx, "reconcile", e.catchUp); err != nil {
		return err
	}
	e.ready.started.Store(true)
	e.live = events != nil
	resync := time.NewTicker(e.opts.ResyncInterval)
	defer resync.Stop()
	reconcileC := e.reconcileTicks
	var reconcile *time.Timer
	if reconcileC == nil {
		reconcile = time.NewTimer(e.opts.ReconcileInterval)
		defer reconcile.Stop()
		reconcileC = reconcile.C
	}
	ticks := e.ticks
	if ticks == nil {
		t := time.NewTicker(e.opts.TimerTick)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				e.flush(ctx)
				return nil
			}
			e.handle(ctx, ev)
			e.drain(ctx, events)
		case <-ticks:
			e.tick(ctx)
		case <-resync.C:
			e.resync(ctx, "periodic")
		case <-reconcileC:
			next := e.reconcileStep(ctx)
			if reconcile != nil {
				reconcile.Reset(next)
			}
		}
		e.flush(ctx)
	}
}

// drain handles the events already waiting, so that the alerts of a burst of
// changes are claimed together; it never waits for more.
func (e *Engine) drain(ctx context.Context, events <-chan realtime.Event) {
	for range drainMax {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			e.handle(ctx, ev)
		default:
			return
		}
	}
}

func (e *Engine) handle(ctx context.Context, ev realtime.Event) {
	if c, ok := ev.(*realtime.Change); !ok || c.Channel != e.opts.RunsChannel {
		// Rule changes, readiness and gaps apply after the alerts queued
		// before them are claimed.
		e.flush(ctx)
	}
	switch ev := ev.(type) {
	case *realtime.Change:
		switch ev.Channel {
		case e.opts.ConfigsChannel:
			e.applyRuleChange(ctx, ev)
		case e.opts.RunsChannel:
			e.applyRunChange(ctx, ev)
		}
	case realtime.Ready:
		e.log.Info("realtime subscription ready; catching up", zap.String("channel", ev.Channel))
		e.resyncChannel(ctx, ev.Channel, "subscribed")
	case realtime.Gap:
		e.log.Warn("realtime changes dropped; catching up", zap.String("channel", ev.Channel), zap.Int("dropped", ev.Dropped))
		e.resyncChannel(ctx, ev.Channel, "gap")
	}
}

func (e *Engine) resyncChannel(ctx context.Context, channel, reason string) {
	switch channel {
	case e.opts.ConfigsChannel:
		if err := e.loadRules(ctx); err != nil {
			e.log.Error("reloading rules failed", zap.String("reason", reason), zap.Error(err))
		}
	default:
		if err := e.catchUp(ctx); err != nil {
			// The next scheduled pass tries again.
			e.log.Error("catch-up failed", zap.String("reason", reason), zap.Error(err))
		}
	}
}

func (e *Engine) resync(ctx context.Context, reason string) {
	e.resyncChannel(ctx, e.opts.ConfigsChannel, reason)
	e.resyncChannel(ctx, e.opts.RunsChannel, reason)
}

// retry runs fn until it succeeds or ctx ends, backing off between tries.
func (e *Engine) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff(backoff.WithInitialInterval(500*time.Millisecond),
		backoff.WithMaxInterval(30*time.Second), backoff.WithMaxElapsedTime(0))
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		delay := bo.NextBackOff()
		e.log.Error(what+" failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (e *Engine) loadRules(ctx context.Context) error {
	// Rules are compiled as they are read, so a large set is never held
	// twice (as rows and as rules). Loading decodes every rule's row: for
	// many rules that is tens of MB of garbage, collected early and handed
	// back to the OS at the end rather than carried as resident memory.
	e.memory.begin()
	defer e.memory.end()
	reload := e.rules.Reload()
	if err := e.store.LoadRules(ctx, reload); err != nil {
		return err
	}
	before := e.rules.Rejected()
	rejected := reload.Commit()
	e.count(func(s *engineStats) { s.ruleLoads++ })
	// Each rejection is logged when it is new or its reason changed, not
	// again at every periodic reload.
	for id, err := range rejected {
		if before[id] != err.Error() {
			e.log.Warn("alert rule rejected", zap.String("rule_id", id), zap.Error(err))
		}
	}
	e.log.Info("alert rules loaded", zap.Int("rules", e.rules.Len()), zap.Int("rejected", len(rejected)))
	e.saveRejected(ctx)
	return nil
}

// releaseAfterBurst frees the memory a bulk rule edit, or a burst of run
// changes, left behind once it has been quiet for a tick, so the resident
// set does not stay at the burst's peak.
func (e *Engine) releaseAfterBurst(now time.Time) {
	bulk := e.ruleChanges >= bulkRuleChanges || e.runChanges >= burstRunChanges
	if bulk && now.Sub(e.lastRuleChange) >= e.opts.TimerTick && now.Sub(e.lastRunChange) >= e.opts.TimerTick {
		e.ruleChanges, e.runChanges = 0, 0
		e.memory.end()
	}
}

func (e *Engine) applyRuleChange(ctx context.Context, c *realtime.Change) {
	e.ruleChanges++
	e.lastRuleChange = e.now()
	if e.ruleChanges == bulkRuleChanges {
		e.memory.begin()
	}
	switch c.Type {
	case "DELETE":
		id := scalarString(c.OldRecord["id"])
		if id != "" {
			e.rules.Delete(id)
			e.log.Info("alert rule deleted", zap.String("rule_id", id))
		}
	case "INSERT", "UPDATE":
		spec, err := e.store.DecodeRule(c.Record)
		if err != nil {
			id := scalarString(c.Record["id"])
			e.log.Warn("alert rule change unreadable", zap.String("rule_id", id), zap.Error(err))
			if id != "" {
				e.rules.Reject(id, err)
			}
			break
		}
		if err := e.rules.Put(spec); err != nil {
			e.log.Warn("alert rule rejected", zap.String("rule_id", spec.ID), zap.Error(err))
			break
		}
		e.log.Info("alert rule updated", zap.String("rule_id", spec.ID), zap.String("change", strings.ToLower(c.Type)))
	}
	e.saveRejected(ctx)
}

// saveRejected records the rejected rules when they changed since the last
// successful save.
func (e *Engine) saveRejected(ctx context.Context) {
	cur := e.rules.Rejected()
	if e.rejectedSaved && maps.Equal(cur, e.savedRejected) {
		return
	}
	if err := e.store.SaveRejected(ctx, cur); err != nil {
		e.rejectedSaved = false
		e.log.Warn("recording rejected rules failed; will retry", zap.Error(err))
		return
	}
	e.savedRejected, e.rejectedSaved = cur, true
}

func (e *Engine) applyRunChange(ctx context.Context, c *realtime.Change) {
	e.runChanges++
	e.lastRunChange = e.now()
	if c.Type == "DELETE" {
		if id := scalarString(c.OldRecord[e.opts.Mapping.IDColumn]); id != "" {
			e.untrack(id)
		}
		return
	}
	e.liveChanges++
	row := c.Record
	occurred := c.CommitTimestamp
	if occurred.IsZero() {
		occurred = e.now()
	} else if occurred.After(e.liveCommitted) {
		e.liveCommitted = occurred
	}
	if c.Incomplete {
		id := scalarString(row[e.opts.Mapping.IDColumn])
		fresh, ok, err := e.store.GetRun(ctx, id)
		if err != nil || !ok {
			e.log.Error("re-reading a truncated run change failed; will catch up", zap.String("run_id", id),
				zap.Bool("found", ok), zap.Error(err))
			if err != nil {
				updated, _ := timeColumn(row, e.opts.Mapping.UpdatedAtColumn)
				if updated.IsZero() {
					updated = occurred
				}
				e.markRetry(updated)
			}
			return
		}
		row = fresh
	}
	e.processRow(ctx, row, occurred, c.ReceivedAt)
}
