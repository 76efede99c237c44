package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// fakeStore is an in-memory Store with the claim semantics of alert_logs'
// unique key.
type fakeStore struct {
	mu        sync.Mutex
	rules     []RuleSpec
	onLoad    func() // called at the start of LoadRules
	runs      map[string]map[string]any
	workflows map[string]Workflow
	claims    map[string]Claim // by config|run|event
	// The reconcile lease and cursor, and the horizon (time.Now when
	// nil) that Reconcile reports.
	cursor     *Cursor
	holder     string
	leaseUntil time.Time
	horizon    func() time.Time
	clock      func() time.Time // the database's clock; time.Now when nil
	hidden     bool             // the horizon cannot see every session
	maxRows    int              // caps every page, as PostgREST's max-rows does
	reconciles int
	pages      int
	failPages  int // fail the next n RunsPage calls
	rejected   map[string]string
	reads      int
	lookups    int // ConditionClaims calls
	claimCalls int // Claim calls
	// failClaims makes the next n Claim calls fail; failGets the next n GetRun calls.
	failClaims, failGets int
	// flaky, when set, is asked before every Claim, GetRun and
	// ConditionClaims call whether it fails.
	flaky func() bool
}

func newFakeStore() *fakeStore {
	return &fakeStore{runs: map[string]map[string]any{}, workflows: map[string]Workflow{}, claims: map[string]Claim{}}
}

var errUnavailable = errors.New("store unavailable")

func (f *fakeStore) RunsInStatuses(_ context.Context, statuses []string, fn func(map[string]any) error) error {
	f.mu.Lock()
	var rows []map[string]any
	for _, r := range f.runs {
		if slices.Contains(statuses, r["status"].(string)) {
			rows = append(rows, r)
		}
	}
	f.mu.Unlock()
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) ConditionClaims(_ context.Context, runID string, ruleIDs []string) ([]ConditionClaim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	if f.flaky != nil && f.flaky() {
		return nil, errUnavailable
	}
	var out []ConditionClaim
	for _, c := range f.claims {
		if c.RunID == runID && slices.Contains(ruleIDs, c.ConfigID) && !c.Suppressed &&
			(c.Event == EventDelayed || c.Event == EventStalled) {
			out = append(out, ConditionClaim{RuleID: c.ConfigID, Event: c.Event})
		}
	}
	return out, nil
}

func (f *fakeStore) SaveRejected(_ context.Context, reasons map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rejected = maps.Clone(reasons)
	return nil
}

// claimed returns the claim of (rule, run, event), if any.
func (f *fakeStore) claimed(rule, run string, e Event) (Claim, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.claims[rule+"|"+run+"|"+string(e)]
	return c, ok
}

func (f *fakeStore) claimKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.claims))
}

func (f *fakeStore) LoadRules(_ context.Context, load RuleSink) error {
	f.mu.Lock()
	rules := append([]RuleSpec(nil), f.rules...)
	onLoad := f.onLoad
	f.mu.Unlock()
	if onLoad != nil {
		onLoad()
	}
	for _, r := range rules {
		load.Add(r)
	}
	return nil
}

func (f *fakeStore) DecodeRule(row map[string]any) (RuleSpec, error) {
	b, _ := json.Marshal(row)
	var s RuleSpec
	return s, json.Unmarshal(b, &s)
}

func (f *fakeStore) GetRun(_ context.Context, id string) (map[string]any, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.flaky != nil && f.flaky() {
		return nil, false, errUnavailable
	}
	if f.failGets > 0 {
		f.failGets--
		return nil, false, errUnavailable
	}
	r, ok := f.runs[id]
	return r, ok, nil
}

// RunsPage returns the runs after the cursor in (updated_at, id) order.
func (f *fakeStore) RunsPage(_ context.Context, after Cursor, before time.Time, limit int, _ bool) ([]map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pages++
	if f.failPages > 0 {
		f.failPages--
		return nil, errUnavailable
	}
	if f.flaky != nil && f.flaky() {
		return nil, errUnavailable
	}
	type keyed struct {
		at  time.Time
		id  string
		row map[string]any
	}
	var rows []keyed
	from := cursorTime(after)
	for id, r := range f.runs {
		at, err := ParseTimestamp(r["updated_at"].(string))
		if err != nil || !at.Before(before) {
			continue
		}
		at = at.Truncate(time.Microsecond)
		if after.At != "" && (at.Before(from) || (after.ID != "" && at.Equal(from) && id <= after.ID)) {
			continue
		}
		rows = append(rows, keyed{at, id, r})
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].at.Equal(rows[j].at) {
			return rows[i].at.Before(rows[j].at)
		}
		return rows[i].id < rows[j].id
	})
	if f.maxRows > 0 {
		limit = min(limit, f.maxRows)
	}
	var out []map[string]any
	for _, k := range rows {
		if len(out) == limit {
			break
		}
		out = append(out, maps.Clone(k.row))
	}
	return out, nil
}

// RunsByID returns the rows of ids.
func (f *fakeStore) RunsByID(_ context.Context, ids []string) ([]map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.flaky != nil && f.flaky() {
		return nil, errUnavailable
	}
	var out []map[string]any
	for _, id := range ids {
		if r, ok := f.runs[id]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// Reconcile keeps the lease and cursor as alert_reconcile does.
func (f *fakeStore) Reconcile(_ context.Context, holder string, lease time.Duration, save *Cursor) (ReconcileState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reconciles++
	now := time.Now()
	if f.clock != nil {
		now = f.clock()
	}
	horizon := now
	if f.horizon != nil {
		horizon = f.horizon()
	}
	st := ReconcileState{Horizon: horizon, Now: now, Hidden: f.hidden}
	if f.holder == "" || f.holder == holder || f.leaseUntil.Before(now) {
		f.holder, f.leaseUntil = holder, now.Add(lease)
		if save != nil {
			c := *save
			f.cursor = &c
		}
		st.Held = true
	}
	st.Holder = f.holder
	if f.cursor != nil {
		c := *f.cursor
		st.Cursor = &c
	}
	return st, nil
}

func (f *fakeStore) Workflow(_ context.Context, id string) (Workflow, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workflows[id]
	return w, ok, nil
}

func (f *fakeStore) Claim(_ context.Context, cs []Claim) ([]ClaimResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claimCalls++
	if f.flaky != nil && f.flaky() {
		return nil, errUnavailable
	}
	if f.failClaims > 0 {
		f.failClaims--
		return nil, errUnavailable
	}
	out := make([]ClaimResult, len(cs))
	for i, c := range cs {
		k := c.ConfigID + "|" + c.RunID + "|" + string(c.Event)
		if _, ok := f.claims[k]; ok {
			continue
		}
		f.claims[k] = c
		out[i].ID = fmt.Sprintf("alert-%d", len(f.claims))
		out[i].Lease = c.LeaseUntil
	}
	return out, nil
}

// putRunRow stores row as its run's current version and returns it.
func (f *fakeStore) putRunRow(row map[string]any) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[row["id"].(string)] = row
	return row
}

func (f *fakeStore) putRun(id, workflowID, status string, updated time.Time) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	row := map[string]any{"id": id, "project_id": "p1", "workflow_id": workflowID, "status": status,
		"started_at": updated.Add(-time.Minute).Format(time.RFC3339Nano), "updated_at": updated.Format(time.RFC3339Nano)}
	f.runs[id] = row
	return row
}

type fakeSubmitter struct {
	mu   sync.Mutex
	sent []Claimed
}

func (s *fakeSubmitter) Submit(c Claimed) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, c)
	return true
}

func (s *fakeSubmitter) all() []Claimed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Claimed(nil), s.sent...)
}

// putRow stores a copy of row as the run's current row and returns it.
func (f *fakeStore) putRow(row map[string]any) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[row["id"].(string)] = maps.Clone(row)
	return row
}

// fakeClock is an injectable clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

type harness struct {
	store *fakeStore
	sub   *fakeSubmitter
	clock *fakeClock
	ticks chan time.Time
	// reconcileTicks runs a reconcile pass (see reconcile).
	reconcileTicks chan time.Time
	events         chan realtime.Event
	engine         *Engine
	done           chan error
	cancel         context.CancelFunc
}

// startEngine runs an engine over store with a fake clock; timers fire
// only when the test calls tick.
func startEngine(t *testing.T, store *fakeStore) *harness {
	t.Helper()
	return startEngineClock(t, store, newFakeClock())
}

func startEngineClock(t *testing.T, store *fakeStore, clock *fakeClock) *harness {
	t.Helper()
	h := &harness{store: store, sub: &fakeSubmitter{}, clock: clock, ticks: make(chan time.Time),
		events: make(chan realtime.Event, 16), done: make(chan error, 1)}
	var err error
	h.engine, err = New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs",
		CatchupOverlap: 30 * time.Second, LinkBaseURL: "https://app.example.com/", Now: clock.Now},
		store, h.sub, zaptest.NewLogger(t))
	require.NoError(t, err)
	h.engine.ticks = h.ticks
	h.reconcileTicks = make(chan time.Time)
	h.engine.reconcileTicks = h.reconcileTicks
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.engine.Run(ctx, h.events) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-h.done)
	})
	h.sync(t) // past the start-up load and catch-up
	return h
}

func (h *harness) waitSent(t *testing.T, n int) []Claimed {
	t.Helper()
	require.Eventually(t, func() bool { return len(h.sub.all()) >= n }, 10*time.Second, 5*time.Millisecond)
	// Give a duplicate the chance to show up before asserting exactly n.
	h.sync(t)
	got := h.sub.all()
	require.Len(t, got, n)
	return got
}

// stop stops the engine (a daemon shutting down).
func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.cancel()
	require.NoError(t, <-h.done)
	h.done <- nil // for the cleanup
}

// advance moves the clock by d and lets the engine's timers tick.
func (h *harness) advance(t *testing.T, d time.Duration) {
	t.Helper()
	h.sync(t) // the changes sent so far are handled before the clock moves
	h.ticks <- h.clock.Advance(d)
	h.sync(t)
}

// reconcile runs one reconcile pass and waits for it.
func (h *harness) reconcile(t *testing.T) {
	t.Helper()
	h.sync(t)
	h.reconcileTicks <- h.clock.Now()
	h.sync(t)
}

// sync waits until the engine has handled everything sent so far.
func (h *harness) sync(t *testing.T) {
	t.Helper()
	marker := &realtime.Change{Channel: "nobody", Type: "INSERT"}
	h.events <- marker
	h.events <- marker
	require.Eventually(t, func() bool { return len(h.events) == 0 }, 10*time.Second, time.Millisecond)
}

func ruleRow(id string, events ...string) RuleSpec {
	return RuleSpec{ID: id, ProjectID: "p1", Name: id, Enabled: true, Events: events,
		WebhookURL: "https://hooks.example.com/{{.Workflow.Slug}}", CreatedAt: time.Now().Add(-time.Hour)}
}

func TestFailedRunIsClaimedAndSubmittedOnce(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	store.workflows["wf-v2"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf-v2", Slug: "billing", Version: 2}, ProjectID: "p1"}
	h := startEngine(t, store)

	now := time.Now()
	row := store.putRun("run-1", "wf-v2", "failed", now)
	change := &realtime.Change{Channel: "runs", Type: "UPDATE", Record: row, CommitTimestamp: now}
	h.events <- change
	h.events <- change // a duplicate delivery
	h.events <- realtime.Ready{Channel: "runs"}

	sent := h.waitSent(t, 1)
	c := sent[0]
	assert.Equal(t, "r1", c.ConfigID)
	assert.Equal(t, EventFailed, c.Event)
	assert.Equal(t, "billing", c.WorkflowSlug)
	assert.Equal(t, "https://hooks.example.com/billing", c.TargetURL)
	assert.Equal(t, WebhookID("r1", "run-1", EventFailed), c.WebhookID)
	var body map[string]any
	require.NoError(t, json.Unmarshal(c.Payload, &body))
	assert.Equal(t, "workflow_run.failed", body["type"])
	assert.Equal(t, "https://app.example.com/runs/run-1", body["link"])
	assert.Equal(t, "billing", body["workflow"].(map[string]any)["slug"])
}

func TestCatchUpFindsChangesRealtimeDropped(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "succeeded", "failed")}
	h := startEngine(t, store)
	h.sync(t)

	// Never announced over Realtime:
	store.putRun("run-a", "", "succeeded", time.Now())
	store.putRun("run-b", "", "running", time.Now())
	h.events <- realtime.Ready{Channel: "runs"}
	sent := h.waitSent(t, 1)
	assert.Equal(t, "run-a", sent[0].RunID)

	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, h.engine.rec.holder, store.holder, "the engine holds the reconcile lease")
}

func TestRuleChangesApplyWithoutRestart(t *testing.T) {
	store := newFakeStore()
	h := startEngine(t, store)
	rule := ruleRow("r9", "canceled")
	rec := map[string]any{}
	b, _ := json.Marshal(rule)
	require.NoError(t, json.Unmarshal(b, &rec))
	h.events <- &realtime.Change{Channel: "configs", Type: "INSERT", Record: rec}

	row := store.putRun("run-c", "", "canceled", time.Now())
	h.events <- &realtime.Change{Channel: "runs", Type: "UPDATE", Record: row, CommitTimestamp: time.Now()}
	h.waitSent(t, 1)

	h.events <- &realtime.Change{Channel: "configs", Type: "DELETE", OldRecord: map[string]any{"id": "r9"}}
	row = store.putRun("run-d", "", "canceled", time.Now())
	h.events <- &realtime.Change{Channel: "runs", Type: "UPDATE", Record: row, CommitTimestamp: time.Now()}
	h.waitSent(t, 1)
	assert.Zero(t, h.engine.Rules().Len())
}

func TestTruncatedChangeIsReRead(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	h := startEngine(t, store)
	h.sync(t)
	store.putRun("run-t", "", "failed", time.Now())
	h.events <- &realtime.Change{Channel: "runs", Type: "UPDATE", Incomplete: true,
		Record: map[string]any{"id": "run-t"}, CommitTimestamp: time.Now()}
	sent := h.waitSent(t, 1)
	assert.Equal(t, "run-t", sent[0].RunID)
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 1, store.reads)
}

func TestRuleDoesNotFireForHistoryBeforeItExisted(t *testing.T) {
	store := newFakeStore()
	r := ruleRow("new-rule", "failed")
	r.CreatedAt = time.Now()
	store.rules = []RuleSpec{r}
	store.putRun("old-run", "", "failed", time.Now().Add(-2*time.Hour))
	h := startEngine(t, store)
	h.sync(t)
	assert.Empty(t, h.sub.all(), "the start-up catch-up must not alert on runs older than the rule")
}

// TestWebhookIDIsStable pins the derivation: receivers deduplicate on the
// id, so it must never change between versions.
func TestWebhookIDIsStable(t *testing.T) {
	for _, tc := range []struct {
		rule, run string
		event     Event
	}{{"r1", "run-1", EventFailed}, {"00000000-0000-4000-8000-0000000000cc", "b7c1", EventDelayed}, {"", "", EventSucceeded}} {
		sum := sha256.Sum256([]byte(tc.rule + "\x00" + tc.run + "\x00" + string(tc.event)))
		want := "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:20]))
		assert.Equal(t, want, WebhookID(tc.rule, tc.run, tc.event))
	}
	assert.Equal(t, "msg_qpce5flm2z3gik4wromitxmxnmty6yfw", WebhookID("r1", "run-1", EventFailed))
}
