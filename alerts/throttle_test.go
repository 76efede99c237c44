package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/realtime"
)

func TestThrottleSuppressesAndCountsPerWorkflow(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	rule := ruleRow("t", "failed")
	rule.ThrottleMax, rule.ThrottleWindow = 2, time.Minute
	store.rules = []RuleSpec{rule}
	store.workflows["wf-a"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf-a", Slug: "a"}, ProjectID: "p1"}
	store.workflows["wf-b"] = Workflow{WorkflowInfo: WorkflowInfo{ID: "wf-b", Slug: "b"}, ProjectID: "p1"}
	h := startEngineClock(t, store, clock)

	fail := func(id, wf string) *realtime.Change {
		row := runRow(id, "failed", clock.Now().Add(-time.Minute), clock.Now())
		row["workflow_id"] = wf
		return change(store.putRow(row), clock.Now())
	}
	var changes []*realtime.Change
	for i := range 5 {
		c := fail(fmt.Sprintf("a-%d", i), "wf-a")
		changes = append(changes, c)
		h.events <- c
	}
	h.events <- fail("b-0", "wf-b")
	sent := h.waitSent(t, 3)
	assert.Equal(t, []string{"a-0", "a-1", "b-0"}, []string{sent[0].RunID, sent[1].RunID, sent[2].RunID})
	for i := 2; i < 5; i++ {
		c, ok := store.claimed("t", fmt.Sprintf("a-%d", i), EventFailed)
		require.True(t, ok, "a suppressed alert is still recorded")
		assert.True(t, c.Suppressed)
	}
	assert.EqualValues(t, 3, h.engine.Stats().Suppressed)

	// Replays of suppressed alerts neither send nor count again.
	for _, c := range changes {
		h.events <- c
	}
	h.events <- realtime.Ready{Channel: "runs"}
	h.waitSent(t, 3)
	assert.EqualValues(t, 3, h.engine.Stats().Suppressed)

	// A window later the next alert goes out and reports what was suppressed.
	clock.Advance(time.Minute + time.Second)
	h.events <- fail("a-5", "wf-a")
	sent = h.waitSent(t, 4)
	body := payloadOf(t, sent[3])
	assert.Equal(t, 3.0, body["suppressed_count"])
	h.events <- fail("a-6", "wf-a")
	sent = h.waitSent(t, 5)
	assert.Equal(t, 0.0, payloadOf(t, sent[4])["suppressed_count"])
	h.events <- fail("a-7", "wf-a")
	h.waitSent(t, 5)
	assert.True(t, t0.Before(clock.Now()))
}

func TestThrottleCountIsAvailableToTemplates(t *testing.T) {
	store := newFakeStore()
	rule := ruleRow("t", "failed")
	rule.ThrottleMax, rule.ThrottleWindow = 1, time.Hour
	rule.PayloadTemplate = `{"run": {{json .RunID}}, "suppressed": {{.SuppressedCount}}}`
	store.rules = []RuleSpec{rule}
	h := startEngine(t, store)
	for i := range 3 {
		h.events <- change(store.putRow(runRow(fmt.Sprintf("r-%d", i), "failed", time.Time{}, h.clock.Now())), h.clock.Now())
	}
	h.waitSent(t, 1)
	h.clock.Advance(time.Hour)
	h.events <- change(store.putRow(runRow("r-3", "failed", time.Time{}, h.clock.Now())), h.clock.Now())
	sent := h.waitSent(t, 2)
	var got map[string]any
	require.NoError(t, json.Unmarshal(sent[1].Payload, &got))
	assert.Equal(t, 2.0, got["suppressed"])
}

func TestThrottlerSlidingWindowAndLimitChanges(t *testing.T) {
	th := newThrottler()
	base := time.Unix(1_700_000_000, 0)
	r, err := CompileRule(RuleSpec{ID: "r", Events: []string{"failed"}, WebhookURL: "https://x.example/",
		ThrottleMax: 3, ThrottleWindow: 10 * time.Second})
	require.NoError(t, err)
	send := func(at time.Duration) bool {
		now := base.Add(at)
		ok, _ := th.check(r, "wf", now)
		th.record(r, "wf", now, ok)
		return ok
	}
	assert.True(t, send(0))
	assert.True(t, send(time.Second))
	assert.True(t, send(2*time.Second))
	assert.False(t, send(3*time.Second))
	assert.False(t, send(9*time.Second))
	assert.True(t, send(10*time.Second), "the first send left the window")
	_, suppressed := th.check(r, "wf", base.Add(10*time.Second))
	assert.Zero(t, suppressed, "a send resets the count")
	assert.False(t, send(10*time.Second))
	assert.True(t, send(11*time.Second))

	// Lowering the limit keeps the newest sends.
	r.max = 1
	assert.False(t, send(12*time.Second))
	assert.True(t, send(22*time.Second))
	// Raising it allows more at once.
	r.max = 4
	assert.True(t, send(23*time.Second))
	assert.True(t, send(24*time.Second))
	assert.True(t, send(25*time.Second))
	assert.False(t, send(26*time.Second))

	// Pruning forgets idle windows and deleted rules, keeps owed counts.
	set := NewRuleSet()
	require.NoError(t, set.Put(r.Spec()))
	th.prune(set, base.Add(time.Hour))
	assert.Len(t, th.m, 1, "a suppressed count is still owed")
	th.record(r, "wf", base.Add(time.Hour), true)
	th.prune(set, base.Add(2*time.Hour))
	assert.Empty(t, th.m)
	th.record(r, "other", base, true)
	set.Delete("r")
	th.prune(set, base)
	assert.Empty(t, th.m)
}

func TestRejectedRulesAreRecorded(t *testing.T) {
	store := newFakeStore()
	bad := ruleRow("bad", "failed")
	bad.WebhookURL = "ftp://nope"
	store.rules = []RuleSpec{ruleRow("good", "failed"), bad}
	h := startEngine(t, store)
	store.mu.Lock()
	assert.Equal(t, []string{"bad"}, keys(store.rejected))
	assert.Contains(t, store.rejected["bad"], `webhook_url: webhook URL must be http(s), got scheme "ftp"`)
	store.mu.Unlock()

	record := func(s RuleSpec) map[string]any {
		m := map[string]any{}
		b, _ := json.Marshal(s)
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	fixed := bad
	fixed.WebhookURL = "https://ok.example/"
	h.events <- &realtime.Change{Channel: "configs", Type: "UPDATE", Record: record(fixed)}
	h.events <- &realtime.Change{Channel: "configs", Type: "INSERT", Record: map[string]any{"id": "garbled", "Events": "not-a-list"}}
	h.sync(t)
	store.mu.Lock()
	assert.Equal(t, []string{"garbled"}, keys(store.rejected), "fixed rules leave the record, unreadable ones join it")
	store.mu.Unlock()
	assert.Equal(t, 2, h.engine.Rules().Len())
}

// refusingStore refuses one rule while loading, as a store that cannot open
// its secrets does.
type refusingStore struct{ *fakeStore }

func (s refusingStore) LoadRules(ctx context.Context, load RuleSink) error {
	load.Reject("sealed", errors.New("webhook_url: cannot be opened with the configured keys"))
	return s.fakeStore.LoadRules(ctx, load)
}

func TestRulesRefusedByTheStoreAreRecordedToo(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("good", "failed")}
	e, err := New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs"},
		refusingStore{store}, &fakeSubmitter{}, nil)
	require.NoError(t, err)
	require.NoError(t, e.loadRules(t.Context()))
	store.mu.Lock()
	defer store.mu.Unlock()
	assert.Equal(t, map[string]string{"sealed": "webhook_url: cannot be opened with the configured keys"}, store.rejected)
	assert.Equal(t, store.rejected, e.Rules().Rejected(), "one registry: the rule set holds the store's refusals")
	assert.Equal(t, 1, e.Rules().Len())
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
