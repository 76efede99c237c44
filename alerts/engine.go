package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// Store is what the engine needs from the database.
type Store interface {
	// LoadRules returns every alert rule (opened, not yet compiled).
	LoadRules(ctx context.Context) ([]RuleSpec, error)
	// DecodeRule turns an alert_configs row from a Realtime change into a spec.
	DecodeRule(row map[string]any) (RuleSpec, error)
	// GetRun re-reads one run row by id.
	GetRun(ctx context.Context, id string) (map[string]any, bool, error)
	// RunsChangedSince calls fn for every run row updated at or after since,
	// in (updated_at, id) order.
	RunsChangedSince(ctx context.Context, since time.Time, fn func(row map[string]any) error) error
	// Workflow resolves a workflow reference (a MeshHook workflow_definitions id).
	Workflow(ctx context.Context, id string) (Workflow, bool, error)
	// Claim inserts the alert unless (config, run, event) is already claimed.
	Claim(ctx context.Context, c Claim) (id string, claimed bool, err error)
	// Watermark and SaveWatermark persist the catch-up position.
	Watermark(ctx context.Context) (time.Time, bool, error)
	SaveWatermark(ctx context.Context, t time.Time) error
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
}

// Claimed is a claim that this engine won, ready for delivery.
type Claimed struct {
	ID   string
	Rule *Rule
	Claim
}

// Submitter hands claimed alerts to the sender. Submit must not block; when
// it returns false the alert stays pending in the database and the sender
// picks it up from there.
type Submitter interface {
	Submit(Claimed) bool
}

// Options configures an Engine.
type Options struct {
	Mapping        Mapping
	RunsChannel    string // Realtime channel name carrying run changes
	ConfigsChannel string // Realtime channel name carrying alert_configs changes
	// CatchupOverlap is subtracted from the watermark so transactions that
	// committed late (their updated_at is their start time) are not missed.
	CatchupOverlap time.Duration
	// CatchupMaxLookback bounds how far back a catch-up reaches after a long outage.
	CatchupMaxLookback time.Duration
	// ResyncInterval re-reads rules and catches up periodically to heal drift.
	ResyncInterval time.Duration
	LinkBaseURL    string
	Now            func() time.Time
}

// Engine matches run changes against the cached rules and claims alerts.
type Engine struct {
	opts   Options
	store  Store
	out    Submitter
	log    *zap.Logger
	rules  *RuleSet
	now    func() time.Time
	wfMu   sync.Mutex
	wf     map[string]Workflow
	waterM sync.Mutex
	water  time.Time // newest updated_at processed
	stats  engineStats
}

type engineStats struct {
	mu                                 sync.Mutex
	changes, claims, duplicates, fails int64
	catchups, catchupRows              int64
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	Changes, Claims, Duplicates, Failures int64
	Catchups, CatchupRows                 int64
	Rules                                 int
}

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
	if log == nil {
		log = zap.NewNop()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Engine{opts: opts, store: store, out: out, log: log, rules: NewRuleSet(), now: now, wf: map[string]Workflow{}}, nil
}

// Rules is the engine's rule cache (the sender reads secrets from it).
func (e *Engine) Rules() *RuleSet { return e.rules }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.stats.mu.Lock()
	defer e.stats.mu.Unlock()
	return Stats{Changes: e.stats.changes, Claims: e.stats.claims, Duplicates: e.stats.duplicates,
		Failures: e.stats.fails, Catchups: e.stats.catchups, CatchupRows: e.stats.catchupRows, Rules: e.rules.Len()}
}

// Run loads the rules, catches up from the stored watermark, then processes
// Realtime events until ctx ends or events is closed.
func (e *Engine) Run(ctx context.Context, events <-chan realtime.Event) error {
	if err := e.retry(ctx, "load rules", e.loadRules); err != nil {
		return err
	}
	if err := e.retry(ctx, "catch up", e.catchUp); err != nil {
		return err
	}
	resync := time.NewTicker(e.opts.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			e.handle(ctx, ev)
		case <-resync.C:
			e.resync(ctx, "periodic")
		}
	}
}

func (e *Engine) handle(ctx context.Context, ev realtime.Event) {
	switch ev := ev.(type) {
	case *realtime.Change:
		switch ev.Channel {
		case e.opts.ConfigsChannel:
			e.applyRuleChange(ev)
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
	delay := 500 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		e.log.Error(what+" failed; retrying", zap.Error(err), zap.Duration("retry_in", delay))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

func (e *Engine) loadRules(ctx context.Context) error {
	specs, err := e.store.LoadRules(ctx)
	if err != nil {
		return err
	}
	rejected := e.rules.Replace(specs)
	for id, err := range rejected {
		e.log.Warn("alert rule rejected", zap.String("rule_id", id), zap.Error(err))
	}
	e.log.Info("alert rules loaded", zap.Int("rules", e.rules.Len()), zap.Int("rejected", len(rejected)))
	return nil
}

func (e *Engine) applyRuleChange(c *realtime.Change) {
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
			e.log.Warn("alert rule change unreadable", zap.Error(err))
			return
		}
		if err := e.rules.Put(spec); err != nil {
			e.log.Warn("alert rule rejected", zap.String("rule_id", spec.ID), zap.Error(err))
			return
		}
		e.log.Info("alert rule updated", zap.String("rule_id", spec.ID), zap.String("change", strings.ToLower(c.Type)))
	}
}

func (e *Engine) applyRunChange(ctx context.Context, c *realtime.Change) {
	if c.Type == "DELETE" {
		return
	}
	row := c.Record
	if c.Incomplete {
		id := scalarString(row[e.opts.Mapping.IDColumn])
		fresh, ok, err := e.store.GetRun(ctx, id)
		if err != nil || !ok {
			e.log.Error("re-reading a truncated run change failed", zap.String("run_id", id), zap.Error(err))
			return
		}
		row = fresh
	}
	occurred := c.CommitTimestamp
	if occurred.IsZero() {
		occurred = e.now()
	}
	e.processRow(ctx, row, occurred)
}

// ruleClockSkew tolerates clock differences between the database (which
// stamps created_at and commit times) and the daemon.
const ruleClockSkew = 5 * time.Second

// processRow matches one run row and claims its alerts.
func (e *Engine) processRow(ctx context.Context, row map[string]any, occurred time.Time) {
	e.stats.mu.Lock()
	e.stats.changes++
	e.stats.mu.Unlock()
	run, err := e.opts.Mapping.RunFromRow(row)
	if err != nil {
		e.log.Warn("run row unreadable", zap.Error(err))
		return
	}
	e.advanceWatermark(run.UpdatedAt)
	event, ok := run.State.ChangeEvent()
	if !ok {
		return
	}
	wf, project := e.workflowOf(ctx, run)
	rules := e.rules.Match(project, wf.Slug, event)
	for _, r := range rules {
		if occurred.Before(r.Spec.CreatedAt.Add(-ruleClockSkew)) {
			continue
		}
		e.fire(ctx, r, run, wf, project, event, occurred)
	}
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

func (e *Engine) fire(ctx context.Context, r *Rule, run Run, wf WorkflowInfo, project string, event Event, occurred time.Time) {
	c := e.context(r, run, wf, project, event, occurred)
	url, body, err := r.Render(c)
	log := e.log.With(zap.String("rule_id", r.Spec.ID), zap.String("run_id", run.ID), zap.String("event", string(event)))
	if err != nil {
		e.countFailure()
		log.Error("rendering alert failed", zap.Error(err))
		return
	}
	claim := Claim{ConfigID: r.Spec.ID, ProjectID: project, WorkflowSlug: wf.Slug, RunID: run.ID, Event: event,
		WebhookID: WebhookID(r.Spec.ID, run.ID, event), Payload: body, TargetURL: url, OccurredAt: occurred}
	id, claimed, err := e.store.Claim(ctx, claim)
	if err != nil {
		e.countFailure()
		log.Error("claiming alert failed", zap.Error(err))
		return
	}
	e.stats.mu.Lock()
	if claimed {
		e.stats.claims++
	} else {
		e.stats.duplicates++
	}
	e.stats.mu.Unlock()
	if !claimed {
		log.Debug("alert already claimed")
		return
	}
	log.Info("alert claimed", zap.String("alert_id", id), zap.String("webhook_id", claim.WebhookID))
	if !e.out.Submit(Claimed{ID: id, Rule: r, Claim: claim}) {
		log.Info("sender queue full; alert stays pending", zap.String("alert_id", id))
	}
}

func (e *Engine) countFailure() {
	e.stats.mu.Lock()
	e.stats.fails++
	e.stats.mu.Unlock()
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

func (e *Engine) advanceWatermark(t time.Time) {
	if t.IsZero() {
		return
	}
	e.waterM.Lock()
	if t.After(e.water) {
		e.water = t
	}
	e.waterM.Unlock()
}

// catchUp re-reads every run changed since the watermark (minus the overlap)
// and feeds it through the matcher; claims make the replay idempotent.
func (e *Engine) catchUp(ctx context.Context) error {
	stored, ok, err := e.store.Watermark(ctx)
	if err != nil {
		return fmt.Errorf("read watermark: %w", err)
	}
	e.advanceWatermark(stored)
	e.waterM.Lock()
	from := e.water
	e.waterM.Unlock()
	floor := e.now().Add(-e.opts.CatchupMaxLookback)
	if !ok && from.IsZero() {
		from = floor
	} else {
		from = from.Add(-e.opts.CatchupOverlap)
		if from.Before(floor) {
			e.log.Warn("catch-up limited to the maximum lookback", zap.Time("watermark", from), zap.Duration("max_lookback", e.opts.CatchupMaxLookback))
			from = floor
		}
	}
	n := 0
	err = e.store.RunsChangedSince(ctx, from, func(row map[string]any) error {
		n++
		occurred := e.now()
		if r, err := e.opts.Mapping.RunFromRow(row); err == nil && !r.UpdatedAt.IsZero() {
			occurred = r.UpdatedAt
		}
		e.processRow(ctx, row, occurred)
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("catch-up since %s: %w", from.Format(time.RFC3339), err)
	}
	e.stats.mu.Lock()
	e.stats.catchups++
	e.stats.catchupRows += int64(n)
	e.stats.mu.Unlock()
	e.waterM.Lock()
	w := e.water
	e.waterM.Unlock()
	if !w.IsZero() {
		if err := e.store.SaveWatermark(ctx, w); err != nil {
			return fmt.Errorf("save watermark: %w", err)
		}
	}
	e.log.Info("catch-up done", zap.Time("since", from), zap.Int("rows", n))
	return nil
}
