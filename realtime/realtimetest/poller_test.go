package realtimetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// pollLog records the polls of a server (Options.OnPoll).
type pollLog struct {
	mu    sync.Mutex
	polls []Poll
}

func (l *pollLog) record(p Poll) {
	l.mu.Lock()
	l.polls = append(l.polls, p)
	l.mu.Unlock()
}

func (l *pollLog) snapshot() []Poll {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Poll(nil), l.polls...)
}

// since returns the polls recorded from index i on.
func (l *pollLog) since(i int) []Poll {
	all := l.snapshot()
	if i > len(all) {
		i = len(all)
	}
	return all[i:]
}

func (l *pollLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.polls)
}

// waitIdlePoll waits for an empty poll after the ones recorded so far and
// returns the number of polls then. The next poll is 5 × PollInterval away.
func (l *pollLog) waitIdlePoll(t *testing.T) int {
	t.Helper()
	from := l.len()
	n := 0
	require.Eventually(t, func() bool {
		for i, p := range l.since(from) {
			if p.Changes == 0 {
				n = from + i + 1
				return true
			}
		}
		return false
	}, waitTimeout, 2*time.Millisecond, "no empty poll")
	return n
}

// waitPollStartedAfter waits for a poll that started after t, which means
// every poll before it has ended (and counted its events).
func (l *pollLog) waitPollStartedAfter(tb testing.TB, t time.Time) {
	tb.Helper()
	require.Eventually(tb, func() bool {
		all := l.snapshot()
		return len(all) > 0 && all[len(all)-1].Start.After(t)
	}, waitTimeout, 2*time.Millisecond, "no poll after %s", t)
}

const otherDDL = `
create table public.rt_other (id bigint primary key);
alter publication supabase_realtime add table public.rt_other;
`

func TestCDC_PollsReadAtMostPollMaxChangesWholeTransactions(t *testing.T) {
	const interval = 200 * time.Millisecond
	polls := &pollLog{}
	env := newCDCEnv(t, itemsDDL+otherDDL, Options{PollMaxChanges: 10, PollInterval: interval, OnPoll: polls.record})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:items", joinPayload("", itemsBinding))

	// 35 transactions committed right after an empty poll wait in the slot
	// for the next one (a second away) and come out 10 by 10.
	from := polls.waitIdlePoll(t)
	env.exec(t, `do $$ begin for i in 1..35 loop insert into public.rt_items (id) values (i); commit; end loop; end $$`)
	for i := 1; i <= 35; i++ {
		require.Equal(t, itoa(i), string(dataOf(t, c.next()).Record["id"]), "commit order")
	}
	polls.waitPollStartedAfter(t, time.Now()) // the last one ended
	sum, full := 0, 0
	for _, p := range polls.since(from) {
		assert.LessOrEqual(t, p.Changes, 10, "poll %+v", p)
		sum += p.Changes
		if p.Changes == 10 {
			full++
		}
	}
	assert.Equal(t, 35, sum)
	assert.Positive(t, full, "the changes waited for a poll and were read in batches: %+v", polls.since(from))

	// A poll never splits a transaction: 25 rows committed together come in
	// one poll, as pg_logical_slot_get_changes checks its limit at commits.
	from = polls.len()
	env.exec(t, `insert into public.rt_items (id) select g from generate_series(100, 124) g`)
	for i := 100; i <= 124; i++ {
		require.Equal(t, itoa(i), string(dataOf(t, c.next()).Record["id"]))
	}
	polls.waitPollStartedAfter(t, time.Now())
	var sizes []int
	for _, p := range polls.since(from) {
		if p.Changes > 0 {
			sizes = append(sizes, p.Changes)
		}
	}
	assert.Equal(t, []int{25}, sizes)

	// Changes nobody subscribed to are consumed too; the next poll then
	// comes after the interval plus 50-100ms of jitter.
	from = polls.waitIdlePoll(t)
	env.exec(t, `insert into public.rt_other (id) values (1)`)
	var other Poll
	require.Eventually(t, func() bool {
		for _, p := range polls.since(from) {
			if p.Changes > 0 {
				other = p
				return true
			}
		}
		return false
	}, waitTimeout, 2*time.Millisecond)
	assert.Equal(t, 1, other.Changes)
	assert.Zero(t, other.Delivered)
	assert.GreaterOrEqual(t, other.Next, interval+50*time.Millisecond)
	assert.LessOrEqual(t, other.Next, interval+100*time.Millisecond)
	c.expectNone(100 * time.Millisecond)

	// Scheduling as in Realtime: at once after a poll that delivered,
	// 5 × the interval after an empty one.
	for _, p := range polls.snapshot() {
		switch {
		case p.Delivered > 0:
			assert.Zero(t, p.Next, "%+v", p)
		case p.Changes == 0:
			assert.Equal(t, 5*interval, p.Next, "%+v", p)
		}
		assert.False(t, p.Skipped, "no quota, nothing skipped")
	}
	assert.Zero(t, env.ts.SkippedChanges())
	assert.Equal(t, len(polls.snapshot()), env.ts.Polls())
}

func TestCDC_PollQueryTimePacesPolls(t *testing.T) {
	const query = 60 * time.Millisecond
	polls := &pollLog{}
	env := newCDCEnv(t, itemsDDL, Options{PollMaxChanges: 5, PollQueryTime: query, OnPoll: polls.record})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:items", joinPayload("", itemsBinding))
	from := polls.waitIdlePoll(t)
	env.exec(t, `do $$ begin for i in 1..20 loop insert into public.rt_items (id) values (i); commit; end loop; end $$`)
	for i := 1; i <= 20; i++ {
		require.Equal(t, itoa(i), string(dataOf(t, c.next()).Record["id"]))
	}
	polls.waitPollStartedAfter(t, time.Now())
	ps := polls.since(from)
	require.GreaterOrEqual(t, len(ps), 4, "20 changes, at most 5 a poll")
	for i, p := range ps {
		assert.GreaterOrEqual(t, p.Next, query, "%+v", p)
		if i > 0 {
			assert.GreaterOrEqual(t, p.Start.Sub(ps[i-1].Start), query, "polls %d and %d", i-1, i)
		}
	}
}

func TestCDC_PollingOffDeliversTransactionByTransaction(t *testing.T) {
	polls := &pollLog{}
	env := newCDCEnv(t, itemsDDL, Options{PollInterval: -1, PollMaxChanges: 2, OnPoll: polls.record})
	c := dialClient(t, env.ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:items", joinPayload("", itemsBinding))
	from := polls.len()
	env.exec(t, `insert into public.rt_items (id) values (1)`)
	env.exec(t, `insert into public.rt_items (id) select g from generate_series(2, 6) g`)
	for i := 1; i <= 6; i++ {
		require.Equal(t, itoa(i), string(dataOf(t, c.next()).Record["id"]))
	}
	require.Eventually(t, func() bool {
		n := 0
		for _, p := range polls.since(from) {
			n += p.Changes
		}
		return n == 6
	}, waitTimeout, 2*time.Millisecond)
	var sizes []int
	for _, p := range polls.since(from) {
		assert.Zero(t, p.Next)
		if p.Changes > 0 {
			sizes = append(sizes, p.Changes)
		}
	}
	assert.Equal(t, []int{1, 5}, sizes)
}

func seq(from, to int) []int {
	out := make([]int, 0, to-from+1)
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}
