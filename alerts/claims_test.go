package alerts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// TestBurstIsClaimedInBatches queues a burst of changes before the engine
// runs: their alerts are claimed in a few requests, each alert once.
func TestBurstIsClaimedInBatches(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	const n = 1000
	events := make(chan realtime.Event, n+2)
	t0 := time.Now()
	for i := range n {
		row := runRow(fmt.Sprintf("run-%04d", i), "failed", t0.Add(-time.Minute), t0)
		events <- change(row, t0)
	}
	// The same change twice in one batch is claimed once.
	events <- change(runRow("run-0000", "failed", t0.Add(-time.Minute), t0), t0)
	sub := &fakeSubmitter{}
	e := runEngineOn(t, Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs"}, store, sub, events, nil)
	require.Eventually(t, func() bool { return len(sub.all()) >= n }, 20*time.Second, 5*time.Millisecond)
	store.mu.Lock()
	calls := store.claimCalls
	store.mu.Unlock()
	assert.LessOrEqual(t, calls, n/claimPartMax+claimParallel, "about one claim request per %d alerts", claimPartMax)
	seen := map[string]bool{}
	for _, c := range sub.all() {
		assert.False(t, seen[c.RunID], "%s submitted twice", c.RunID)
		seen[c.RunID] = true
		assert.Equal(t, c.ConfigID, "r1")
	}
	assert.Len(t, seen, n)
	st := e.Stats()
	assert.EqualValues(t, n, st.Claims)
	assert.EqualValues(t, 1, st.Duplicates)
}

// partialStore fails the claims of chosen runs alone, as a database refusing
// one alert of a batch would.
type partialStore struct {
	*fakeStore
	mu   sync.Mutex
	bad  map[string]int // run id -> claims left to fail
	seen []int          // batch sizes
}

func (p *partialStore) Claim(ctx context.Context, cs []Claim) ([]ClaimResult, error) {
	p.mu.Lock()
	p.seen = append(p.seen, len(cs))
	var keep []Claim
	var at []int
	out := make([]ClaimResult, len(cs))
	for i, c := range cs {
		if p.bad[c.RunID] > 0 {
			p.bad[c.RunID]--
			out[i].Err = errors.New("refused")
			continue
		}
		keep, at = append(keep, c), append(at, i)
	}
	p.mu.Unlock()
	res, err := p.fakeStore.Claim(ctx, keep)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[at[j]] = r
	}
	return out, nil
}

func TestOneRefusedClaimIsRetriedAloneAndTheRestGoOut(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	ps := &partialStore{fakeStore: store, bad: map[string]int{"run-3": 1}}
	clock := newFakeClock()
	events := make(chan realtime.Event, 16)
	t0 := clock.Now()
	for i := range 6 {
		events <- change(runRow(fmt.Sprintf("run-%d", i), "failed", t0.Add(-time.Minute), t0), t0) // Realtime only
	}
	sub := &fakeSubmitter{}
	ticks := make(chan time.Time)
	runEngineOn(t, Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs", Now: clock.Now}, ps, sub, events, ticks)
	require.Eventually(t, func() bool { return len(sub.all()) == 5 }, 10*time.Second, 5*time.Millisecond)
	for _, c := range sub.all() {
		assert.NotEqual(t, "run-3", c.RunID)
	}
	ticks <- clock.Advance(timerRetryDelay + time.Second) // the retry is due
	require.Eventually(t, func() bool { return len(sub.all()) == 6 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, "run-3", sub.all()[5].RunID)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	assert.Greater(t, ps.seen[0], 1, "the changes were claimed together")
}

func TestClaimPartsSplitABatchEvenly(t *testing.T) {
	for _, c := range []struct {
		n    int
		want [][2]int
	}{
		{1, [][2]int{{0, 1}}},
		{99, [][2]int{{0, 99}}},
		{100, [][2]int{{0, 50}, {50, 100}}},
		{1000, [][2]int{{0, 500}, {500, 1000}}},
		{1001, [][2]int{{0, 333}, {333, 667}, {667, 1001}}},
	} {
		assert.Equal(t, c.want, claimParts(c.n), "n=%d", c.n)
	}
}

// concurrentStore holds every Claim call until want calls are in flight at
// once (or a deadline passes), and fails the calls that include failRun.
type concurrentStore struct {
	*fakeStore
	want     int
	failRun  string
	mu       sync.Mutex
	inFlight int
	maxSeen  int
	all      chan struct{}
	once     sync.Once
}

func (c *concurrentStore) Claim(ctx context.Context, cs []Claim) ([]ClaimResult, error) {
	c.mu.Lock()
	c.inFlight++
	c.maxSeen = max(c.maxSeen, c.inFlight)
	if c.inFlight == c.want {
		c.once.Do(func() { close(c.all) })
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.inFlight--
		c.mu.Unlock()
	}()
	select {
	case <-c.all:
	case <-time.After(10 * time.Second):
	}
	for _, cl := range cs {
		if cl.RunID == c.failRun {
			return nil, errors.New("connection reset")
		}
	}
	return c.fakeStore.Claim(ctx, cs)
}

func TestABurstIsClaimedInParallelPartsAndAFailedPartIsRetried(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	cs := &concurrentStore{fakeStore: store, want: claimParallel, failRun: "run-199", all: make(chan struct{})}
	clock := newFakeClock()
	const n = 200
	events := make(chan realtime.Event, n)
	t0 := clock.Now()
	for i := range n {
		events <- change(runRow(fmt.Sprintf("run-%03d", i), "failed", t0.Add(-time.Minute), t0), t0)
	}
	sub := &fakeSubmitter{}
	ticks := make(chan time.Time)
	runEngineOn(t, Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs", Now: clock.Now}, cs, sub, events, ticks)
	require.Eventually(t, func() bool { return len(sub.all()) == n/2 }, 15*time.Second, 5*time.Millisecond,
		"the part without the failing run goes out")
	cs.mu.Lock()
	assert.Equal(t, claimParallel, cs.maxSeen, "the parts were claimed at the same time")
	cs.failRun = ""
	cs.mu.Unlock()
	for _, c := range sub.all() {
		assert.Less(t, c.RunID, "run-100", "only the first part's alerts went out")
	}
	ticks <- clock.Advance(timerRetryDelay + time.Second) // the failed part's retries are due
	require.Eventually(t, func() bool { return len(sub.all()) == n }, 15*time.Second, 5*time.Millisecond)
}

// leasingSubmitter is a Submitter with a bounded sender-side reservation.
type leasingSubmitter struct {
	fakeSubmitter
	mu                       sync.Mutex
	room                     int
	reserved, unreserved     int
	handedOver, withoutLease int
}

func (l *leasingSubmitter) Reserve(n int) (int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := min(n, l.room)
	l.room -= k
	l.reserved += k
	return k, time.Now().Add(time.Minute)
}

func (l *leasingSubmitter) Unreserve(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.room += n
	l.unreserved += n
}

func (l *leasingSubmitter) Submit(c Claimed) bool {
	l.mu.Lock()
	if c.Lease.IsZero() {
		l.withoutLease++
	} else {
		l.handedOver++
	}
	l.mu.Unlock()
	return l.fakeSubmitter.Submit(c)
}

func TestClaimsAreLeasedToTheSenderWhileItHasRoom(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	// run-0 was claimed before: its reservation must come back.
	store.claims["r1|run-0|failed"] = Claim{}
	const n = 20
	events := make(chan realtime.Event, n+1)
	t0 := time.Now()
	for i := range n {
		events <- change(runRow(fmt.Sprintf("run-%d", i), "failed", t0.Add(-time.Minute), t0), t0)
	}
	sub := &leasingSubmitter{room: 12}
	runEngineOn(t, Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs"}, store, sub, events, nil)
	require.Eventually(t, func() bool { return len(sub.all()) == n-1 }, 10*time.Second, 5*time.Millisecond)
	sub.mu.Lock()
	defer sub.mu.Unlock()
	assert.Equal(t, sub.reserved, sub.handedOver+sub.unreserved, "every reservation is used or returned")
	assert.Equal(t, 11, sub.handedOver, "as many handed over as there was room for, less the duplicate")
	assert.Equal(t, n-1-11, sub.withoutLease, "the rest stay pending for the sender to lease")
	for _, c := range sub.sent {
		if c.Lease.IsZero() {
			continue
		}
		k := c.ConfigID + "|" + c.RunID + "|" + string(c.Event)
		store.mu.Lock()
		assert.False(t, store.claims[k].LeaseUntil.IsZero(), "claimed leased: %s", k)
		store.mu.Unlock()
	}
}

func TestReconcileCursorStopsBeforeAFailedClaim(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	store.clock = clock.Now
	var horizonMu sync.Mutex
	horizon := t0.Add(-10 * time.Second)
	setHorizon := func(h time.Time) {
		horizonMu.Lock()
		horizon = h
		horizonMu.Unlock()
	}
	store.horizon = func() time.Time {
		horizonMu.Lock()
		defer horizonMu.Unlock()
		return horizon
	}
	h := startEngineClock(t, store, clock)
	stored := func() time.Time {
		store.mu.Lock()
		defer store.mu.Unlock()
		if store.cursor == nil {
			return time.Time{}
		}
		return cursorTime(*store.cursor)
	}
	// A pass saves the cursor the previous passes reached, at most every
	// reconcileSaveEvery.
	persist := func() {
		h.advance(t, reconcileSaveEvery)
		h.reconcile(t)
	}

	u1 := t0.Add(-3 * time.Second)
	h.events <- change(store.putRunRow(runRow("run-1", "failed", t0, u1)), u1)
	h.waitSent(t, 1)

	store.mu.Lock()
	store.failClaims = 1000 // the store stays down for this alert's claims
	store.mu.Unlock()
	u2 := u1.Add(time.Second)
	h.events <- change(store.putRunRow(runRow("run-2", "failed", t0, u2)), u2)
	u3 := u2.Add(time.Second)
	h.events <- change(store.putRunRow(runRow("run-3", "running", t0, u3)), u3)
	setHorizon(t0)
	h.reconcile(t)
	persist()
	persist()
	require.False(t, stored().IsZero(), "the cursor is saved")
	assert.False(t, stored().After(u2), "not past the row whose alert waits for a retry: %s", stored())

	store.mu.Lock()
	store.failClaims = 0
	store.mu.Unlock()
	h.reconcile(t)
	h.waitSent(t, 2)
	persist() // the in-memory retry of the live change is settled too
	persist() // a short page ended the last pass; this one's is empty
	persist()
	assert.True(t, stored().Equal(t0), "moves on to the horizon once the retry succeeded: %s", stored())
}

// fakeGC records what the engine asks of the runtime's collector.
type fakeGC struct {
	percent  int
	releases int
}

func (g *fakeGC) install(m *rebuildMemory) {
	m.setGCPercent = func(p int) int { old := g.percent; g.percent = p; return old }
	m.release = func() { g.releases++ }
}

// engineWithFakeGC is an engine over store (not running, ticking every
// second) whose collector calls go to a fakeGC at GC target 100.
func engineWithFakeGC(t *testing.T, store Store) (*Engine, *fakeGC) {
	t.Helper()
	e, err := New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs", TimerTick: time.Second},
		store, &fakeSubmitter{}, zaptest.NewLogger(t))
	require.NoError(t, err)
	gc := &fakeGC{percent: 100}
	gc.install(e.memory)
	return e, gc
}

func TestBulkRuleEditCollectsSoonerAndReleasesOnceQuiet(t *testing.T) {
	e, gc := engineWithFakeGC(t, newFakeStore())
	t0 := time.Now()
	change := func(i int) {
		e.applyRuleChange(context.Background(), &realtime.Change{Type: "DELETE", OldRecord: map[string]any{"id": fmt.Sprintf("r%d", i)}})
	}
	for i := range bulkRuleChanges - 1 {
		change(i)
	}
	e.lastRuleChange = t0
	e.releaseAfterBurst(t0.Add(time.Minute))
	assert.Equal(t, 100, gc.percent, "a small edit leaves the runtime alone")
	assert.Zero(t, gc.releases)

	change(bulkRuleChanges)
	assert.Equal(t, rebuildGCPercent, gc.percent, "a bulk edit collects sooner")
	e.lastRuleChange = t0
	e.releaseAfterBurst(t0.Add(time.Second / 2))
	assert.Zero(t, gc.releases, "not while the edit goes on")
	e.releaseAfterBurst(t0.Add(time.Second))
	assert.Equal(t, 1, gc.releases, "released once it is quiet for a tick")
	assert.Equal(t, 100, gc.percent, "and the GC target is restored")
	assert.Zero(t, e.ruleChanges)
}

func TestMemoryIsReleasedOnceARunBurstIsQuiet(t *testing.T) {
	e, gc := engineWithFakeGC(t, newFakeStore())
	del := &realtime.Change{Channel: "runs", Type: "DELETE", OldRecord: map[string]any{"id": "run-1"}}
	for range burstRunChanges - 1 {
		e.applyRunChange(context.Background(), del)
	}
	t0 := e.lastRunChange
	e.releaseAfterBurst(t0.Add(time.Minute))
	assert.Zero(t, gc.releases, "ordinary traffic leaves the runtime alone")
	e.applyRunChange(context.Background(), del)
	t0 = e.lastRunChange
	e.releaseAfterBurst(t0.Add(time.Second / 2))
	assert.Zero(t, gc.releases, "not while the burst goes on")
	e.releaseAfterBurst(t0.Add(time.Second))
	assert.Equal(t, 1, gc.releases, "released once it is quiet for a tick")
	assert.Equal(t, 100, gc.percent, "a run burst does not change the GC target")
	assert.Zero(t, e.runChanges)
}

func TestRebuildMemoryNeverRaisesTheGCTarget(t *testing.T) {
	for _, c := range []struct {
		name      string
		operator  int
		during    int
		restoreTo int
	}{
		{"default", 100, rebuildGCPercent, 100},
		{"operator's lower target", 10, 10, 10},
		{"collector off (memory limit)", -1, -1, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newRebuildMemory()
			gc := &fakeGC{percent: c.operator}
			gc.install(m)
			m.begin()
			m.begin() // nested: no effect
			assert.Equal(t, c.during, gc.percent)
			m.end()
			assert.Equal(t, c.restoreTo, gc.percent)
			assert.Equal(t, 1, gc.releases)
		})
	}
}

func TestRuleLoadCollectsSoonerAndReleases(t *testing.T) {
	store := newFakeStore()
	e, gc := engineWithFakeGC(t, store)
	var during int
	store.rules = []RuleSpec{spec("a", "p", "", "failed")}
	store.onLoad = func() { during = gc.percent }
	require.NoError(t, e.loadRules(context.Background()))
	assert.Equal(t, rebuildGCPercent, during)
	assert.Equal(t, 100, gc.percent)
	assert.Equal(t, 1, gc.releases)
	assert.Equal(t, int64(1), e.Stats().RuleLoads)
}

// runEngineOn runs an engine over events until the test ends; ticks, when
// not nil, replaces its timer ticker.
func runEngineOn(t *testing.T, opts Options, store Store, sub Submitter, events chan realtime.Event, ticks chan time.Time) *Engine {
	t.Helper()
	e, err := New(opts, store, sub, zaptest.NewLogger(t))
	require.NoError(t, err)
	if ticks != nil {
		e.ticks = ticks
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, events) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return e
}

func TestReconcileHoldsBackWhenTheHorizonIsHidden(t *testing.T) {
	clock := newFakeClock()
	t0 := clock.Now()
	store := newFakeStore()
	store.clock = clock.Now
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	store.hidden = true
	// Realtime delivers nothing; one row is older than the overlap, one
	// within it.
	store.putRunRow(runRow("old", "failed", t0, t0.Add(-time.Minute)))
	store.putRunRow(runRow("recent", "failed", t0, t0.Add(-10*time.Second)))
	h := startEngineClock(t, store, clock)
	sent := h.waitSent(t, 1)
	assert.Equal(t, "old", sent[0].RunID, "only rows older than the overlap (30s) are read")
	h.reconcile(t)
	assert.Len(t, h.sub.all(), 1, "the recent row waits for the overlap to pass")
	h.advance(t, time.Minute)
	h.reconcile(t)
	h.waitSent(t, 2)
}

func TestSeenRunsForgetsTheOldestFirst(t *testing.T) {
	s := newSeenRuns(2)
	t0 := time.Now()
	s.add("a", t0)
	s.add("b", t0)
	assert.True(t, s.has("a", t0))
	s.add("a", t0.Add(time.Second)) // a newer version of a
	assert.False(t, s.has("a", t0), "the older version is no longer seen")
	assert.True(t, s.has("a", t0.Add(time.Second)))
	s.add("c", t0) // evicts b's slot
	assert.False(t, s.has("b", t0))
	assert.True(t, s.has("c", t0))
	assert.True(t, s.has("a", t0.Add(time.Second)), "a's newer entry survives its old slot's reuse")
	s.forget("c", t0)
	assert.False(t, s.has("c", t0))
}

// A server that caps pages below the size asked for (PostgREST's
// max-rows) must not make the reconciler skip the rest of the rows.
func TestReconcileReadsOnPastShortPages(t *testing.T) {
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	store.maxRows = 3
	t0 := time.Now().Add(-time.Minute)
	for i := range 10 {
		store.putRunRow(runRow(fmt.Sprintf("run-%02d", i), "failed", t0, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	h := startEngine(t, store)
	h.waitSent(t, 10)
}

// While Realtime is on, changes a pass finds that Realtime had not
// delivered are suspected lost; they are known lost once Realtime delivers
// a change committed after that pass read them (it delivers in commit
// order), or delivers nothing at all by the next pass (it is skipping
// every poll, over its quota, or down). Passes then run four times as
// often until none has been found for reconcileLossWindow. Changes
// Realtime delivers late, changes the engine retries itself, a daemon
// without the lease and Realtime off never speed passes up.
func TestReconcileRunsMoreOftenWhileRealtimeLosesChanges(t *testing.T) {
	ctx := t.Context()
	e, store, clock, sub := passEngine(t, Options{ReconcileDelay: time.Second}, 0)
	e.live = true
	// A run fails now, and Realtime does not deliver it within the delay.
	lost := func(id string) map[string]any {
		row := store.putRunRow(runRow(id, "failed", clock.Now().Add(-time.Minute), clock.Now()))
		clock.Advance(2 * time.Second)
		return row
	}
	// Realtime delivers a change of another run, committed now.
	other := 0
	deliver := func() {
		other++
		clock.Advance(10 * time.Millisecond)
		row := store.putRunRow(runRow(fmt.Sprintf("other-%d", other), "running", clock.Now().Add(-time.Minute), clock.Now()))
		e.applyRunChange(ctx, &realtime.Change{Channel: "runs", Type: "UPDATE", Record: row, CommitTimestamp: clock.Now()})
	}
	expire := func() { clock.Advance(reconcileLossWindow + time.Second) }

	assert.Equal(t, time.Second, e.reconcileStep(ctx), "nothing found: the configured interval")
	lost("run-1")
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "found: late or lost, not known yet")
	assert.Len(t, sub.all(), 1, "its alert was claimed either way")
	deliver()
	assert.Equal(t, 250*time.Millisecond, e.reconcileStep(ctx), "Realtime delivered a later change: run-1 was lost")
	clock.Advance(reconcileLossWindow - 2*time.Second)
	assert.Equal(t, 250*time.Millisecond, e.reconcileStep(ctx), "still within the window")
	clock.Advance(3 * time.Second)
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "the window passed with nothing more lost")

	// Late, not lost: Realtime delivers the change itself after the pass
	// found it, and nothing committed later.
	late := lost("run-2")
	assert.Equal(t, time.Second, e.reconcileStep(ctx))
	e.applyRunChange(ctx, &realtime.Change{Channel: "runs", Type: "UPDATE", Record: late, CommitTimestamp: clock.Now().Add(-2 * time.Second)})
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "Realtime is behind, not losing")
	expire()
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "the unconfirmed suspicion expired")
	deliver()
	assert.Equal(t, time.Second, e.reconcileStep(ctx))

	// Realtime delivers nothing at all: skipping every poll, or down.
	lost("run-3")
	assert.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, 250*time.Millisecond, e.reconcileStep(ctx), "Realtime silent since the pass found run-3")

	// A daemon that loses the lease goes back to the configured interval.
	store.mu.Lock()
	store.holder, store.leaseUntil = "another daemon", clock.Now().Add(time.Hour)
	store.mu.Unlock()
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "without the lease")
	store.mu.Lock()
	store.leaseUntil = clock.Now()
	store.mu.Unlock()
	clock.Advance(time.Second)
	expire()
	deliver()
	assert.Equal(t, time.Second, e.reconcileStep(ctx))

	// A change the engine retries itself is not Realtime's loss.
	retried := store.putRunRow(runRow("run-4", "failed", clock.Now().Add(-time.Minute), clock.Now()))
	store.mu.Lock()
	store.failClaims = 1
	store.mu.Unlock()
	e.applyRunChange(ctx, &realtime.Change{Channel: "runs", Type: "UPDATE", Record: retried, CommitTimestamp: clock.Now()})
	e.flush(ctx)
	clock.Advance(2 * time.Second)
	assert.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, time.Second, e.reconcileStep(ctx), "retried, not lost")

	// Realtime disabled: every change is found by reconciliation.
	e.live = false
	expire()
	lost("run-5")
	e.reconcileStep(ctx)
	assert.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Len(t, sub.all(), 5)
}

// Only an empty page proves that a pass has read everything (a server may
// cap pages below the size asked for), but a page shorter than one the
// server has already returned cannot have been capped: it ends the pass
// without a read of the empty page after it.
func TestReconcileEndsOnAPageShorterThanOneSeen(t *testing.T) {
	ctx := t.Context()
	e, store, clock, sub := passEngine(t, Options{}, 3)
	pages := func() int {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.pages
	}
	put := func(n int) { putFailed(store, clock, n) }

	require.Equal(t, time.Second, e.reconcileStep(ctx))
	put(7) // pages of 3, 3 and 1: the server's cap is learnt
	before := pages()
	require.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, 3, pages()-before, "3 + 3 + 1 rows: the short page ends the pass")
	assert.Len(t, sub.all(), 7)

	put(2)
	before = pages()
	require.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, 1, pages()-before, "2 rows, fewer than the 3 a page has held")
	assert.Len(t, sub.all(), 9)

	put(3)
	before = pages()
	require.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, 2, pages()-before, "a page as long as the longest may be capped: an empty page follows")
	assert.Len(t, sub.all(), 12)

	before = pages()
	require.Equal(t, time.Second, e.reconcileStep(ctx))
	assert.Equal(t, 1, pages()-before, "nothing new: one empty page")
	assert.Len(t, sub.all(), 12, "nothing claimed twice")
}

// A page cap lowered while the daemon runs makes scheduled passes end
// early (a page as long as the new cap looks short), but never loses a
// row: a catch-up reads on to an empty page, learns the new cap, and later
// passes read on past full pages again.
func TestReconcileLearnsALoweredPageCap(t *testing.T) {
	ctx := t.Context()
	e, store, clock, sub := passEngine(t, Options{}, 5)
	put := func(n int) { putFailed(store, clock, n) }
	e.reconcileStep(ctx)
	put(6)
	e.reconcileStep(ctx) // pages of 5 and 1
	require.Len(t, sub.all(), 6)

	store.mu.Lock()
	store.maxRows = 2
	store.mu.Unlock()
	put(10)
	e.reconcileStep(ctx)
	assert.Len(t, sub.all(), 8, "a scheduled pass takes the first page of 2 for the last")
	require.NoError(t, e.reconcileUntilCaughtUp(ctx))
	assert.Len(t, sub.all(), 16, "a catch-up reads on to an empty page")
	assert.Equal(t, 2, e.rec.longestPage, "and learns the new cap")

	put(5)
	e.reconcileStep(ctx)
	assert.Len(t, sub.all(), 21, "scheduled passes read on past full pages of the new cap")
}

// A page whose rows cannot be read (a column the mapping cannot parse)
// moves the cursor past them by their raw keys: never back to zero, which
// would report an absurd lag and rescan the whole lookback.
func TestReconcileMovesPastUnreadableRows(t *testing.T) {
	ctx := t.Context()
	e, store, clock, sub := passEngine(t, Options{ReconcileLagAlert: time.Minute}, 0)
	putFailed(store, clock, 3)
	e.reconcileStep(ctx)
	require.Len(t, sub.all(), 3)
	clock.Advance(time.Millisecond)
	bad := runRow("run-bad", "failed", clock.Now().Add(-time.Minute), clock.Now())
	bad["finished_at"] = "infinity"
	store.putRunRow(bad)
	badAt := clock.Now()
	clock.Advance(time.Second)
	e.reconcileStep(ctx)
	assert.Equal(t, badAt, cursorTime(e.rec.cursor), "the cursor is on the unreadable row")
	assert.Less(t, e.Stats().ReconcileLag, 5*time.Second)
	e.reconcileStep(ctx)
	assert.Less(t, e.Stats().ReconcileLag, 5*time.Second)
	assert.Len(t, sub.all(), 3)
}

// passEngine is an engine over a fake store with one rule (r1, failed) and
// a fake clock, not running: tests drive its passes with reconcileStep.
// maxRows caps the store's pages (0: no cap).
func passEngine(t *testing.T, o Options, maxRows int) (*Engine, *fakeStore, *fakeClock, *fakeSubmitter) {
	t.Helper()
	clock := newFakeClock()
	store := newFakeStore()
	store.rules = []RuleSpec{ruleRow("r1", "failed")}
	store.clock = clock.Now
	store.maxRows = maxRows
	sub := &fakeSubmitter{}
	o.Mapping, o.RunsChannel, o.ConfigsChannel, o.Now = MeshHookMapping(), "runs", "configs", clock.Now
	if o.ReconcileInterval == 0 {
		o.ReconcileInterval = time.Second
	}
	e, err := New(o, store, sub, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.NoError(t, e.loadRules(t.Context()))
	return e, store, clock, sub
}

// putFailed stores n runs failed now, a millisecond apart, then lets a
// second pass.
func putFailed(store *fakeStore, clock *fakeClock, n int) {
	for range n {
		clock.Advance(time.Millisecond)
		store.putRunRow(runRow(fmt.Sprintf("run-%d", clock.Now().UnixNano()), "failed", clock.Now().Add(-time.Minute), clock.Now()))
	}
	clock.Advance(time.Second)
}
