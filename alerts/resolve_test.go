package alerts

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// resolveStore is fakeStore with ClaimResolve as alert_claim_resolve
// does it: a resolved alert only while an unresolved, unsuppressed failed
// alert of the rule for the workflow, not newer than the success, exists;
// those are then resolved.
type resolveStore struct {
	*fakeStore
	resolved map[string]bool // failed claims' keys that were resolved
	calls    int             // resolves claimed
	batches  int             // ClaimResolves calls
	// failWorkflows makes the next n Workflow lookups fail.
	failWorkflows int
}

func (s *resolveStore) Workflow(ctx context.Context, id string) (Workflow, bool, error) {
	s.mu.Lock()
	if s.failWorkflows > 0 {
		s.failWorkflows--
		s.mu.Unlock()
		return Workflow{}, false, errUnavailable
	}
	s.mu.Unlock()
	return s.fakeStore.Workflow(ctx, id)
}

// ClaimResolves claims each of cs in order of rule, workflow and time, as
// alert_claim_resolves does.
func (s *resolveStore) ClaimResolves(_ context.Context, cs []Claim) ([]ClaimResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	order := make([]int, len(cs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(cs[a].ConfigID, cs[b].ConfigID), cmp.Compare(cs[a].WorkflowSlug, cs[b].WorkflowSlug),
			cs[a].OccurredAt.Compare(cs[b].OccurredAt))
	})
	out := make([]ClaimResult, len(cs))
	for _, i := range order {
		out[i] = s.claimResolve(cs[i])
	}
	return out, nil
}

func (s *resolveStore) claimResolve(c Claim) ClaimResult {
	s.calls++
	var open []string
	for k, f := range s.claims {
		if f.ConfigID == c.ConfigID && f.Event == EventFailed && f.WorkflowSlug == c.WorkflowSlug && !f.Suppressed &&
			!s.resolved[k] && !f.OccurredAt.After(c.OccurredAt) {
			open = append(open, k)
		}
	}
	k := c.ConfigID + "|" + c.RunID + "|" + string(c.Event)
	if _, dup := s.claims[k]; dup || len(open) == 0 {
		return ClaimResult{}
	}
	s.claims[k] = c
	for _, o := range open {
		s.resolved[o] = true
	}
	return ClaimResult{ID: fmt.Sprintf("alert-%d", len(s.claims))}
}

// startResolveEngine is startEngine over a resolveStore.
func startResolveEngine(t *testing.T, store *resolveStore) *harness {
	t.Helper()
	h := &harness{store: store.fakeStore, sub: &fakeSubmitter{}, clock: newFakeClock(), ticks: make(chan time.Time),
		reconcileTicks: make(chan time.Time), events: make(chan realtime.Event, 16), done: make(chan error, 1)}
	var err error
	h.engine, err = New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs",
		LinkBaseURL: "https://app.example.com/", Now: h.clock.Now}, store, h.sub, zaptest.NewLogger(t))
	require.NoError(t, err)
	h.engine.ticks, h.engine.reconcileTicks = h.ticks, h.reconcileTicks
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.engine.Run(ctx, h.events) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-h.done)
	})
	h.sync(t)
	return h
}

func TestResolvedFollowsAFailureOnceAndSeesFailuresOfTheSameBurst(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	store.rules = []RuleSpec{ruleRow("page", "failed", "resolved"), ruleRow("plain", "failed")}
	store.workflows["wf"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf", Slug: "billing"}, ProjectID: "p1"}
	h := startResolveEngine(t, store)

	// A failure and the next success arrive together: the failure's claim
	// is recorded before the resolve is claimed.
	now := time.Now()
	failed := store.putRun("run-1", "wf", "failed", now)
	ok := store.putRun("run-2", "wf", "succeeded", now.Add(time.Second))
	h.events <- change(failed, now)
	h.events <- change(ok, now.Add(time.Second))
	sent := h.waitSent(t, 3) // failed ×2 rules, resolved ×1
	var resolved []Claimed
	for _, c := range sent {
		if c.Event == EventResolved {
			resolved = append(resolved, c)
		}
	}
	require.Len(t, resolved, 1)
	r := resolved[0]
	assert.Equal(t, "page", r.ConfigID, "only the rule that lists resolved")
	assert.Equal(t, "run-2", r.RunID)
	assert.Equal(t, "billing", r.WorkflowSlug)
	assert.Equal(t, WebhookID("page", "run-2", EventResolved), r.WebhookID)
	assert.Equal(t, "workflow_run.resolved", payloadOf(t, r)["type"])

	// The next success finds nothing left to resolve; a replay of the
	// first one neither.
	later := store.putRun("run-3", "wf", "succeeded", now.Add(2*time.Second))
	h.events <- change(later, now.Add(2*time.Second))
	h.events <- change(ok, now.Add(time.Second))
	h.sync(t)
	assert.Len(t, h.sub.all(), 3)
	assert.Equal(t, 3, store.calls, "a claim for each success the rule saw")
}

func TestRulesWithoutResolvedNeverAskToResolve(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	store.rules = []RuleSpec{ruleRow("plain", "failed", "succeeded")}
	h := startResolveEngine(t, store)
	now := time.Now()
	h.events <- change(store.putRun("run-1", "", "failed", now), now)
	h.events <- change(store.putRun("run-2", "", "succeeded", now), now)
	h.waitSent(t, 2)
	assert.Zero(t, store.calls)
}

// sentEvents lists the events of the alerts submitted so far, in order.
func sentEvents(h *harness) []Event {
	var evs []Event
	for _, c := range h.sub.all() {
		evs = append(evs, c.Event)
	}
	return evs
}

// retryUntil moves the clock past the retry delay until cond holds.
func retryUntil(t *testing.T, h *harness, cond func() bool) {
	t.Helper()
	for range 10 {
		if cond() {
			return
		}
		h.advance(t, timerRetryDelay+time.Second)
	}
	require.True(t, cond(), "still not after 10 retries: sent %v", sentEvents(h))
}

// A failure whose claim fails, and is retried after the next success was
// handled, is still resolved: the success waits for the failure's claim
// instead of finding nothing to resolve and never asking again.
func TestResolveWaitsForAFailureWhoseClaimIsRetried(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	store.rules = []RuleSpec{ruleRow("page", "failed", "resolved")}
	store.workflows["wf"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf", Slug: "billing"}, ProjectID: "p1"}
	h := startResolveEngine(t, store)
	now := time.Now()
	store.mu.Lock()
	store.failClaims = 1
	store.mu.Unlock()
	h.events <- change(store.putRun("run-1", "wf", "failed", now), now)
	h.sync(t)
	h.events <- change(store.putRun("run-2", "wf", "succeeded", now.Add(time.Second)), now.Add(time.Second))
	h.sync(t)
	assert.Empty(t, h.sub.all(), "nothing claimed yet")
	assert.Zero(t, store.calls, "the resolve is not claimed while its failure waits")

	retryUntil(t, h, func() bool { return len(h.sub.all()) >= 2 })
	assert.Equal(t, []Event{EventFailed, EventResolved}, sentEvents(h), "the failure, then its resolve")
	h.advance(t, timerRetryDelay+time.Second)
	assert.Len(t, h.sub.all(), 2, "once")
}

// A failure whose workflow cannot be looked up is not alerted without it
// by a rule that resolves failures: its row is retried, and the success
// that follows (its lookup answering) waits for it, so the failure is
// alerted with its slug and resolved.
func TestResolveWaitsForAFailureWhoseWorkflowLookupFailed(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	store.rules = []RuleSpec{ruleRow("page", "failed", "resolved"), ruleRow("plain", "failed")}
	store.workflows["wf-v1"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf-v1", Slug: "billing", Version: 1}, ProjectID: "p1"}
	store.workflows["wf-v2"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf-v2", Slug: "billing", Version: 2}, ProjectID: "p1"}
	h := startResolveEngine(t, store)
	now := time.Now()
	store.mu.Lock()
	store.failWorkflows = 1
	store.mu.Unlock()
	h.events <- change(store.putRun("run-1", "wf-v1", "failed", now), now)
	h.sync(t)
	sent := h.sub.all()
	require.Len(t, sent, 1, "a rule that does not resolve is alerted at once, without the workflow")
	assert.Equal(t, "plain", sent[0].ConfigID)
	assert.Empty(t, sent[0].WorkflowSlug)

	// Another version of the workflow succeeds; its lookup answers.
	h.events <- change(store.putRun("run-2", "wf-v2", "succeeded", now.Add(time.Second)), now.Add(time.Second))
	h.sync(t)
	assert.Zero(t, store.calls, "the resolve waits for the failure's row")

	retryUntil(t, h, func() bool { return len(h.sub.all()) >= 3 })
	var page []Claimed
	for _, c := range h.sub.all() {
		if c.ConfigID == "page" {
			page = append(page, c)
		}
	}
	require.Len(t, page, 2)
	assert.Equal(t, EventFailed, page[0].Event)
	assert.Equal(t, "billing", page[0].WorkflowSlug, "alerted with its workflow")
	assert.Equal(t, EventResolved, page[1].Event)
}

// A PagerDuty rule's dedup_key names the workflow: a failure whose lookup
// fails waits for it rather than opening an incident keyed by workflow id
// that the workflow's resolve would never close.
func TestPagerDutyFailureWaitsForItsWorkflow(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	pd := ruleRow("pd", "failed")
	pd.Destination, pd.RoutingKey, pd.WebhookURL = DestinationPagerDuty, "R0UT1NGKEY0123456789abcdefABCDEF", ""
	store.rules = []RuleSpec{pd}
	store.workflows["wf"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf", Slug: "billing"}, ProjectID: "p1"}
	h := startResolveEngine(t, store)
	now := time.Now()
	store.mu.Lock()
	store.failWorkflows = 1
	store.mu.Unlock()
	h.events <- change(store.putRun("run-1", "wf", "failed", now), now)
	h.sync(t)
	assert.Empty(t, h.sub.all(), "not paged without the workflow")
	retryUntil(t, h, func() bool { return len(h.sub.all()) >= 1 })
	c := h.sub.all()[0]
	assert.Equal(t, "billing", c.WorkflowSlug)
	assert.Equal(t, "meshhook:pd:workflow:billing", payloadOf(t, c)["dedup_key"])
}

// The successes of a burst are resolved in one call, after the burst's
// failures are claimed: each resolves the failures before it.
func TestResolvesOfABurstAreClaimedInOneCall(t *testing.T) {
	store := &resolveStore{fakeStore: newFakeStore(), resolved: map[string]bool{}}
	store.rules = []RuleSpec{ruleRow("page", "failed", "resolved")}
	store.workflows["billing"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "billing", Slug: "billing"}, ProjectID: "p1"}
	store.workflows["etl"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "etl", Slug: "etl"}, ProjectID: "p1"}
	now := time.Now()
	// One burst: queued before the engine runs, handled together.
	events := make(chan realtime.Event, 8)
	events <- change(store.putRun("f1", "billing", "failed", now), now)
	events <- change(store.putRun("f2", "etl", "failed", now), now)
	events <- change(store.putRun("ok1", "billing", "succeeded", now.Add(time.Second)), now.Add(time.Second))
	events <- change(store.putRun("ok2", "etl", "succeeded", now.Add(time.Second)), now.Add(time.Second))
	events <- change(store.putRun("ok3", "billing", "succeeded", now.Add(2*time.Second)), now.Add(2*time.Second))
	sub := &fakeSubmitter{}
	runEngineOn(t, Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs"}, store, sub, events, nil)
	require.Eventually(t, func() bool { return len(sub.all()) >= 4 }, 10*time.Second, 5*time.Millisecond)
	var resolved []string
	for _, c := range sub.all() {
		if c.Event == EventResolved {
			resolved = append(resolved, c.RunID)
		}
	}
	assert.ElementsMatch(t, []string{"ok1", "ok2"}, resolved)
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, 1, store.batches, "one call for the burst's three successes")
	assert.Equal(t, 3, store.calls)
}
