package realtimetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const rateLimitLog = "MessagePerSecondRateLimitReached: Too many postgres changes messages per second"

// TestCDC_EventQuotaSkipsWholePollsSilently drives Realtime's default rate
// window (12 ticks of 5s) on a test clock, so that ticks happen exactly
// when the test says.
func TestCDC_EventQuotaSkipsWholePollsSilently(t *testing.T) {
	clock := newTestClock()
	core, logs := observer.New(zapcore.WarnLevel)
	polls := &pollLog{}
	env := newCDCEnv(t, itemsDDL, Options{Now: clock.Now, MaxEventsPerSecond: 12, OnPoll: polls.record, Logger: zap.New(core)})
	tick := func() {
		// Every poll so far has counted its events before the tick.
		polls.waitPollStartedAfter(t, time.Now())
		clock.advance(DefaultRateTick)
	}

	// One subscription on a, two matching ones on b: every change counts 3.
	a := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	a.joinAndSubscribe("realtime:a", joinPayload("", itemsBinding))
	b := dialClient(t, env.ts, "1.0.0", pgtest.ServiceRoleKey())
	b.joinAndSubscribe("realtime:b", joinPayload("", itemsBinding,
		map[string]any{"event": "INSERT", "schema": "public", "table": "rt_items"}))
	receive := func(ids ...int) {
		t.Helper()
		for _, id := range ids {
			assert.Equal(t, itoa(id), string(dataOf(t, a.next()).Record["id"]))
			f := b.next()
			assert.Equal(t, itoa(id), string(dataOf(t, f).Record["id"]))
			assert.Len(t, frameIDs(t, f), 2)
		}
	}
	rate := func() float64 {
		r, _ := env.ts.EventRate()
		return r
	}
	limited := func() bool {
		_, l := env.ts.EventRate()
		return l
	}

	// 20 changes × 3 subscriptions in the first tick; the young window also
	// holds the counter's empty first tick: 60 / 2 ticks / 5s = 6/s.
	env.exec(t, `insert into public.rt_items (id) select g from generate_series(1, 20) g`)
	receive(seq(1, 20)...)
	assert.Zero(t, rate(), "nothing is averaged before the tick")
	tick()
	assert.InDelta(t, 6.0, rate(), 1e-9)
	assert.False(t, limited())

	// 60 more: (180 + 60) / 3 ticks / 5s = 16/s, at or over 12: triggered.
	env.exec(t, `insert into public.rt_items (id) select g from generate_series(21, 80) g`)
	receive(seq(21, 80)...)
	tick()
	assert.InDelta(t, 16.0, rate(), 1e-9)
	require.True(t, limited())
	assert.Equal(t, 1, logs.FilterMessage(rateLimitLog).Len(), "the limit is logged when it triggers")

	// While triggered, polls are skipped whole: the changes are consumed,
	// nobody gets a frame or an error, the channels stay subscribed.
	delivered := env.ts.DeliveredChanges()
	env.exec(t, `insert into public.rt_items (id) values (81)`)
	env.exec(t, `insert into public.rt_items (id) select g from generate_series(82, 86) g`)
	env.exec(t, `update public.rt_items set kind = 'z' where id = 1`)
	require.Eventually(t, func() bool { return env.ts.SkippedChanges() == 7 }, waitTimeout, 2*time.Millisecond)
	assert.Positive(t, env.ts.SkippedPolls())
	a.expectNone(100 * time.Millisecond)
	b.expectNone(10 * time.Millisecond)
	assert.Equal(t, delivered, env.ts.DeliveredChanges())
	assert.Equal(t, []string{"realtime:a", "realtime:b"}, env.ts.SubscribedTopics())
	for _, p := range polls.snapshot() {
		if p.Skipped {
			assert.Positive(t, p.Changes)
			assert.Zero(t, p.Delivered)
		}
	}

	// Skipped changes are not counted: the next tick averages 240 over 4
	// ticks, exactly 12/s, which still holds the limit ...
	tick()
	assert.InDelta(t, 12.0, rate(), 1e-9)
	require.True(t, limited())
	env.exec(t, `insert into public.rt_items (id) values (87)`)
	require.Eventually(t, func() bool { return env.ts.SkippedChanges() == 8 }, waitTimeout, 2*time.Millisecond)
	a.expectNone(50 * time.Millisecond)

	// ... and the one after, 240 / 5 ticks / 5s = 9.6/s, clears it.
	tick()
	assert.InDelta(t, 9.6, rate(), 1e-9)
	require.False(t, limited())
	env.exec(t, `insert into public.rt_items (id) values (88)`)
	receive(88)
	assert.Equal(t, 8, env.ts.SkippedChanges())
	assert.Equal(t, 1, logs.FilterMessage(rateLimitLog).Len())
	assert.Equal(t, zapcore.ErrorLevel, logs.FilterMessage(rateLimitLog).All()[0].Level)
}

func TestRateCounter(t *testing.T) {
	const tick = 5 * time.Second
	clock := newTestClock()
	core, logs := observer.New(zapcore.ErrorLevel)
	r := newRateCounter(10, tick, 12, clock.Now, zap.New(core))
	check := func(wantAvg float64, wantLimited bool) {
		t.Helper()
		avg, lim := r.state()
		assert.InDelta(t, wantAvg, avg, 1e-9)
		assert.Equal(t, wantLimited, lim)
	}

	r.add(1000) // not started: not counted, as no poller runs
	r.start()
	check(0, false)
	r.add(99)
	clock.advance(tick - time.Nanosecond)
	check(0, false)
	clock.advance(time.Nanosecond)
	check(99.0/2/5, false)
	r.add(101) // [101, 99, 0]: 200/3/5 = 13.3 >= 10
	clock.advance(tick)
	check(200.0/3/5, true)
	r.start() // running already: no effect
	check(200.0/3/5, true)
	assert.Equal(t, 1, logs.Len())

	// The window holds at most 12 ticks: the burst leaves it after 12.
	for i := 4; i <= 12; i++ {
		clock.advance(tick)
		check(200.0/float64(i)/5, 200.0/float64(i)/5 >= 10)
	}
	clock.advance(tick) // [0 × 10, 101, 99]: the empty first tick left
	check(200.0/12/5, false)
	clock.advance(tick) // [0 × 11, 101]
	check(101.0/12/5, false)
	clock.advance(tick)
	check(0, false)

	// Several ticks at once are run in order.
	r.add(540)
	clock.advance(3 * tick) // [0, 0, 540, 0 ...]: the first tick took it
	check(540.0/12/5, false)
	r.add(1200)
	clock.advance(tick) // [1200, 0, 0, 540, 0 ...]
	check(1740.0/12/5, true)
	assert.Equal(t, 2, logs.Len(), "logged again when it triggers again")

	// A counter whose whole window is zero at its 5-minute idle check
	// restarts: a fresh window is one empty tick, so a smaller burst trips it.
	clock.advance(12 * tick)
	check(0, false)
	r.mu.Lock()
	idleCheck := r.nextIdle
	r.mu.Unlock()
	for !clock.Now().After(idleCheck) {
		clock.advance(tick)
	}
	check(0, false)
	r.mu.Lock()
	buckets := len(r.buckets)
	r.mu.Unlock()
	assert.LessOrEqual(t, buckets, 2, "restarted")
	r.add(150) // [150, 0, 0]: 10/s; in a full window it would be 2.5/s
	clock.advance(tick)
	check(10, true)

	// Without a limit the rate is counted and never limits.
	free := newRateCounter(0, tick, 12, clock.Now, zap.NewNop())
	free.start()
	free.add(1_000_000)
	clock.advance(tick)
	avg, lim := free.state()
	assert.Positive(t, avg)
	assert.False(t, lim)
}
