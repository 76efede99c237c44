package alerts

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// The property: whatever Realtime does to the stream of run changes (drops
// them, duplicates them, delivers them late and out of order), whatever
// catch-up replays and restarts happen, and with two daemons sharing one
// database, every (rule, run, event) is claimed at most once, every
// claimed event really happened, every event that could not be missed was
// claimed, every claimed alert was submitted exactly once across daemons,
// and recovered follows exactly the delay/stall alerts of finished runs.

const (
	propTick      = 100 * time.Millisecond
	propDelay     = 5 * time.Second // rule threshold for delayed
	propStall     = 3 * time.Second // rule threshold for stalled
	propMaxLag    = 1500 * time.Millisecond
	propGapDelay  = time.Second
	propHorizon   = 60 * time.Second
	propMargin    = propMaxLag + propGapDelay + 4*propTick // worst time for a daemon to learn a state
	propOverlap   = 5 * time.Second
	propRuns      = 30
	propSeeds     = 100
	propDropRate  = 0.1
	propDupRate   = 0.2
	propReadyRate = 0.003 // per tick and daemon: a resubscription (catch-up replay)
	propRestart   = 0.002 // per tick: the second daemon restarts
	propFlakeRate = 0.05  // per database call, when flaky
)

// step is one committed change of a run: from at on, it has status.
type step struct {
	at     time.Duration
	status string
}

type simRun struct {
	id    string
	start time.Duration
	steps []step
}

func (r *simRun) row(t0 time.Time, st step) map[string]any {
	row := runRow(r.id, st.status, t0.Add(r.start), t0.Add(st.at))
	switch st.status {
	case "succeeded", "failed", "canceled":
		row["finished_at"] = ts(t0.Add(st.at))
	}
	return row
}

// intervals returns the [from, to) intervals the run spent in status, to
// being the end of time (propHorizon*10) for the last step.
func (r *simRun) intervals(status string) [][2]time.Duration {
	var out [][2]time.Duration
	for i, st := range r.steps {
		if st.status != status {
			continue
		}
		end := 10 * propHorizon
		if i+1 < len(r.steps) {
			end = r.steps[i+1].at
		}
		out = append(out, [2]time.Duration{st.at, end})
	}
	return out
}

func genRun(rng *rand.Rand, id string) *simRun {
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo+1)) * propTick }
	r := &simRun{id: id, start: ms(0, 100)}
	at := r.start
	r.steps = append(r.steps, step{at, "running"})
	for range rng.IntN(3) {
		at += ms(1, 80)
		r.steps = append(r.steps, step{at, "paused"})
		at += ms(1, 80)
		r.steps = append(r.steps, step{at, "running"})
	}
	switch p := rng.Float64(); {
	case p < 0.7:
		at += ms(1, 80)
		r.steps = append(r.steps, step{at, []string{"succeeded", "failed", "canceled"}[rng.IntN(3)]})
	case p < 0.85:
		at += ms(1, 80)
		r.steps = append(r.steps, step{at, "paused"})
	}
	return r
}

type delivery struct {
	at  time.Duration
	seq int
	ev  realtime.Event
}

type simDaemon struct {
	e     *Engine
	queue []delivery
	// handled notes run|status of every change this daemon handled.
	handled map[string]bool
}

func TestPropertyExactlyOneClaimPerRuleRunEvent(t *testing.T) {
	for seed := range uint64(propSeeds) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runProperty(t, seed, false) })
	}
}

// With a flaky database some claims, run reads and lookups fail: change
// alerts are retried by catch-up and still all sent; a condition alert whose
// claim failed may be missed if the condition ends before the retry, but
// nothing is ever claimed twice or falsely.
func TestPropertyWithAFlakyDatabase(t *testing.T) {
	for seed := range uint64(propSeeds / 2) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { runProperty(t, 1000+seed, true) })
	}
}

func runProperty(t *testing.T, seed uint64, flaky bool) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ctx := context.Background()
	clock := newFakeClock()
	t0 := clock.Now()
	created := t0.Add(-time.Hour)
	store := newFakeStore()
	throttled := ruleRow("throttled-failures", "failed")
	throttled.ThrottleMax, throttled.ThrottleWindow = 2, 10*time.Second
	store.rules = []RuleSpec{
		timedRule("changes", 0, 0, created, "succeeded", "failed", "canceled", "paused"),
		throttled,
		timedRule("slow", propDelay, 0, created, "delayed", "recovered"),
		timedRule("stuck", 0, propStall, created, "stalled", "recovered"),
	}
	if flaky {
		store.flaky = func() bool { return rng.Float64() < propFlakeRate }
	}
	store.clock = clock.Now // the rows are stamped with the simulated clock
	sub := &fakeSubmitter{}
	newDaemon := func() *simDaemon {
		e, err := New(Options{Mapping: MeshHookMapping(), RunsChannel: "runs", ConfigsChannel: "configs",
			CatchupOverlap: propOverlap, TimerTick: propTick, Now: clock.Now}, store, sub, zap.NewNop())
		require.NoError(t, err)
		require.NoError(t, e.loadRules(ctx))
		for e.catchUp(ctx) != nil { // the database may be flaky
		}
		return &simDaemon{e: e, handled: map[string]bool{}}
	}
	daemons := []*simDaemon{newDaemon(), newDaemon()}

	runs := make([]*simRun, propRuns)
	for i := range runs {
		runs[i] = genRun(rng, fmt.Sprintf("run-%02d", i))
	}
	seq := 0
	enqueue := func(d *simDaemon, at time.Duration, ev realtime.Event) {
		seq++
		d.queue = append(d.queue, delivery{at, seq, ev})
	}
	lag := func() time.Duration { return time.Duration(rng.Int64N(int64(propMaxLag) + 1)).Truncate(propTick) }
	// delivered notes run|status of the changes some daemon handled and
	// did not forget: a daemon that restarts loses the retries of claims
	// that failed, so with a flaky database its changes do not count.
	delivered := map[string]bool{}

	for now := time.Duration(0); now <= propHorizon; now += propTick {
		clock.mu.Lock()
		clock.t = t0.Add(now)
		clock.mu.Unlock()
		// Commit the changes due now and hand them to "Realtime".
		for _, r := range runs {
			for _, st := range r.steps {
				if st.at != now {
					continue
				}
				row := store.putRow(r.row(t0, st))
				for _, d := range daemons {
					c := change(row, t0.Add(st.at))
					if rng.Float64() < propDropRate {
						enqueue(d, now+time.Duration(rng.Int64N(int64(propGapDelay)+1)).Truncate(propTick),
							realtime.Gap{Channel: "runs", Dropped: 1})
						continue
					}
					enqueue(d, now+lag(), c)
					if rng.Float64() < propDupRate {
						enqueue(d, now+lag(), c)
					}
				}
			}
		}
		if rng.Float64() < propRestart {
			if !flaky {
				maps.Copy(delivered, daemons[1].handled)
			}
			daemons[1] = newDaemon() // in-flight changes die with the old one
		}
		for _, d := range daemons {
			if rng.Float64() < propReadyRate {
				enqueue(d, now, realtime.Ready{Channel: "runs"})
			}
			deliverDue(ctx, d, now)
			d.e.tick(ctx)
			_, _ = d.e.reconcile(ctx, false) // only the lease holder reads
		}
	}
	// The database heals; drain, resubscribe, and let every threshold and
	// retry pass.
	store.mu.Lock()
	store.flaky = nil
	store.mu.Unlock()
	for _, d := range daemons {
		deliverDue(ctx, d, 10*propHorizon)
		d.e.handle(ctx, realtime.Ready{Channel: "runs"})
		maps.Copy(delivered, d.handled)
	}
	for range 3 {
		clock.Advance(time.Hour)
		for _, d := range daemons {
			d.e.tick(ctx)
			require.NoError(t, d.e.reconcileUntilCaughtUp(ctx))
		}
	}
	for _, d := range daemons {
		require.True(t, d.e.retryFrom.IsZero(), "no retry pending")
	}

	checkProperty(t, store, sub, runs, !flaky)
	for _, r := range runs {
		last := r.steps[len(r.steps)-1].status
		ev, ok := MeshHookMapping().Statuses[last].ChangeEvent()
		if ok {
			_, claimed := store.claimed("changes", r.id, ev)
			require.True(t, claimed, "%s: the final state %s is always alerted", r.id, last)
		}
		for _, st := range r.steps {
			if ev, ok := MeshHookMapping().Statuses[st.status].ChangeEvent(); ok && delivered[r.id+"|"+st.status] {
				_, claimed := store.claimed("changes", r.id, ev)
				require.True(t, claimed, "%s: a delivered %s change is alerted", r.id, st.status)
			}
		}
	}
}

// deliverDue hands d the events due by now.
func deliverDue(ctx context.Context, d *simDaemon, now time.Duration) {
	slices.SortStableFunc(d.queue, func(a, b delivery) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.seq, b.seq)) })
	i := 0
	for ; i < len(d.queue) && d.queue[i].at <= now; i++ {
		ev := d.queue[i].ev
		if c, ok := ev.(*realtime.Change); ok {
			d.handled[c.Record["id"].(string)+"|"+c.Record["status"].(string)] = true
		}
		d.e.handle(ctx, ev)
	}
	d.queue = d.queue[i:]
}

func checkProperty(t *testing.T, store *fakeStore, sub *fakeSubmitter, runs []*simRun, timersReliable bool) {
	t.Helper()
	// Submitted exactly once across daemons, exactly the unsuppressed claims.
	seen := map[string]bool{}
	for _, c := range sub.all() {
		k := c.ConfigID + "|" + c.RunID + "|" + string(c.Event)
		require.False(t, seen[k], "submitted twice: %s", k)
		seen[k] = true
		require.False(t, c.Suppressed)
	}
	store.mu.Lock()
	claims := maps2slice(store.claims)
	store.mu.Unlock()
	unsuppressed := 0
	for _, c := range claims {
		if !c.Suppressed {
			unsuppressed++
			require.True(t, seen[c.ConfigID+"|"+c.RunID+"|"+string(c.Event)], "claimed but never submitted: %+v", c.Claim)
		}
	}
	require.Len(t, seen, unsuppressed)

	byID := map[string]*simRun{}
	for _, r := range runs {
		byID[r.id] = r
	}
	// Every claim is an event that happened.
	for _, c := range claims {
		r := byID[c.RunID]
		require.NotNil(t, r)
		switch c.Event {
		case EventDelayed:
			require.True(t, couldBe(r.intervals("running"), r.start+propDelay, 0), "%s delayed never happened", r.id)
		case EventStalled:
			require.True(t, couldBe(r.intervals("paused"), 0, propStall), "%s stalled never happened", r.id)
		case EventRecovered:
			last := r.steps[len(r.steps)-1].status
			require.True(t, MeshHookMapping().Statuses[last].Terminal(), "%s recovered but never finished", r.id)
		default:
			require.True(t, slices.ContainsFunc(r.steps, func(s step) bool { return s.status == string(c.Event) }),
				"%s: %s never happened", r.id, c.Event)
		}
	}
	// Every condition that lasted long enough to be seen was alerted, and
	// recovered follows exactly the condition alerts of finished runs.
	for _, r := range runs {
		_, delayed := store.claimed("slow", r.id, EventDelayed)
		_, stalled := store.claimed("stuck", r.id, EventStalled)
		if timersReliable && mustBe(r.intervals("running"), r.start+propDelay, 0) {
			require.True(t, delayed, "%s: delayed long enough to be alerted: %+v", r.id, r.steps)
		}
		if timersReliable && mustBe(r.intervals("paused"), 0, propStall) {
			require.True(t, stalled, "%s: stalled long enough to be alerted: %+v", r.id, r.steps)
		}
		terminal := MeshHookMapping().Statuses[r.steps[len(r.steps)-1].status].Terminal()
		_, recSlow := store.claimed("slow", r.id, EventRecovered)
		_, recStuck := store.claimed("stuck", r.id, EventRecovered)
		require.Equal(t, delayed && terminal, recSlow, "%s: recovered after delayed", r.id)
		require.Equal(t, stalled && terminal, recStuck, "%s: recovered after stalled", r.id)
	}
}

// couldBe reports whether some interval lasts past max(from, start+after)
// (in the state at a tick at or after that point).
func couldBe(ivs [][2]time.Duration, at, after time.Duration) bool {
	for _, iv := range ivs {
		if iv[1] > max(iv[0]+after, at) {
			return true
		}
	}
	return false
}

// mustBe reports whether some interval lasts long enough past that point
// for a daemon to learn about it in the worst case.
func mustBe(ivs [][2]time.Duration, at, after time.Duration) bool {
	for _, iv := range ivs {
		if iv[1]-max(iv[0]+after, at) >= propMargin {
			return true
		}
	}
	return false
}

func maps2slice(m map[string]Claim) []Claimed {
	out := make([]Claimed, 0, len(m))
	for _, c := range m {
		out = append(out, Claimed{Claim: c})
	}
	return out
}
