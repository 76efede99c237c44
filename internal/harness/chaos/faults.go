package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
)

// faultKind is one kind of injected fault.
type faultKind int

const (
	faultWSDrop faultKind = iota
	faultClose1012
	faultDropChanges
	faultREST503
	faultKill
	numFaultKinds
)

func (k faultKind) String() string {
	return [...]string{"ws_drop", "close_1012", "drop_changes", "rest_503", "kill"}[k]
}

// FaultCounts counts the injected faults.
type FaultCounts struct {
	Kills          int // SIGKILLs of the daemon (each followed by a restart)
	WSDrops        int // websocket connections cut without a close frame
	Closes1012     int // server-initiated 1012 closes
	DroppedChanges int // changes Realtime silently dropped
	QuotaSkipped   int // changes Realtime skipped over its event quota
	REST503Bursts  int // bursts of REST 503s
	REST503        int // REST requests answered 503
}

// Margins widen the blind interval around each fault.
type Margins struct {
	Before     time.Duration // before the fault (processing latency)
	BeforeKill time.Duration // before a kill: what the engine was still retrying in memory is lost
	After      time.Duration // after recovery (catch-up, start-up)
	AfterDrops time.Duration // after dropped changes: until a periodic catch-up has run
	AfterREST  time.Duration // after a REST burst: until retried timer checks and claims ran
}

// injector injects faults one at a time and records when the daemon may
// have been blind.
type injector struct {
	si     *standin.StandIn
	proxy  *Proxy
	daemon *Daemon
	rng    *rand.Rand
	m      Margins
	gapMin time.Duration
	gapMax time.Duration
	logf   func(string, ...any)

	mu       sync.Mutex // guards the fields below
	counts   FaultCounts
	blind    Blind
	problems []string
}

func (in *injector) dur(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(in.rng.Int64N(int64(hi-lo)+1))
}

// run injects faults until ctx ends: first each kind once in a random
// order, then kinds at random.
func (in *injector) run(ctx context.Context) {
	order := in.rng.Perm(int(numFaultKinds))
	for i := 0; ; i++ {
		if !sleep(ctx, in.dur(in.gapMin, in.gapMax)) {
			return
		}
		kind := faultKind(in.rng.IntN(int(numFaultKinds)))
		if i < len(order) {
			kind = faultKind(order[i])
		}
		in.inject(ctx, kind)
	}
}

func (in *injector) inject(ctx context.Context, kind faultKind) {
	start := time.Now()
	in.logf("chaos: inject %s", kind)
	// Recovery is waited for with a context of its own: the window may end
	// meanwhile, and the next phase needs a healthy daemon.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 45*time.Second)
	defer cancel()
	after, before, timersOnly := in.m.After, in.m.Before, false
	switch kind {
	case faultWSDrop, faultClose1012:
		conns := in.si.Realtime.TotalConnections()
		if kind == faultWSDrop {
			in.si.Realtime.KillConnections()
		} else {
			in.si.Realtime.ServerDisconnect(websocket.CloseServiceRestart)
		}
		in.count(func(c *FaultCounts) {
			if kind == faultWSDrop {
				c.WSDrops++
			} else {
				c.Closes1012++
			}
		})
		in.waitSubscribed(rctx, conns, kind.String())
	case faultDropChanges:
		n := 1 + in.rng.IntN(6)
		base := in.si.Realtime.DroppedChanges()
		in.si.Realtime.DropChanges(n)
		wctx, wcancel := context.WithTimeout(rctx, 8*time.Second)
		for in.si.Realtime.DroppedChanges() < base+n && sleep(wctx, 20*time.Millisecond) {
		}
		wcancel()
		in.si.Realtime.DropChanges(0)
		got := in.si.Realtime.DroppedChanges() - base
		in.count(func(c *FaultCounts) { c.DroppedChanges += got })
		after = in.m.AfterDrops
	case faultREST503:
		in.proxy.SetFailing(true)
		sleep(rctx, in.dur(500*time.Millisecond, 2500*time.Millisecond))
		in.proxy.SetFailing(false)
		in.count(func(c *FaultCounts) { c.REST503Bursts++ })
		after, timersOnly = in.m.AfterREST, true
	case faultKill:
		conns := in.si.Realtime.TotalConnections()
		in.daemon.Kill()
		in.count(func(c *FaultCounts) { c.Kills++ })
		before = in.m.BeforeKill
		sleep(rctx, in.dur(200*time.Millisecond, 1500*time.Millisecond))
		if err := in.daemon.Start(); err != nil {
			in.problem("restarting the daemon: %v", err)
			return
		}
		in.waitSubscribed(rctx, conns, kind.String())
	}
	iv := interval{From: start.Add(-before), To: time.Now().Add(after)}
	in.logf("chaos: %s blind %s..%s", kind, iv.From.Format("15:04:05.000"), iv.To.Format("15:04:05.000"))
	in.mu.Lock()
	if timersOnly {
		in.blind.Timers = append(in.blind.Timers, iv)
	} else {
		in.blind.Changes = append(in.blind.Changes, iv)
	}
	in.mu.Unlock()
}

// waitSubscribed waits until a new connection (one after the before-th)
// is the only one and has both channels subscribed; after names the event
// waited on, for the problem report.
func (in *injector) waitSubscribed(ctx context.Context, before int, after string) {
	rt := in.si.Realtime
	for {
		if rt.TotalConnections() > before && rt.Connections() == 1 && len(rt.SubscribedTopics()) == 2 {
			return
		}
		if !sleep(ctx, 20*time.Millisecond) {
			in.problem("after %s the daemon did not subscribe within 45s", after)
			return
		}
	}
}

func (in *injector) count(f func(*FaultCounts)) {
	in.mu.Lock()
	f(&in.counts)
	in.mu.Unlock()
}

func (in *injector) problem(format string, args ...any) {
	in.mu.Lock()
	in.problems = append(in.problems, fmt.Sprintf(format, args...))
	in.mu.Unlock()
}

// result returns the counts, blind intervals and problems.
func (in *injector) result() (FaultCounts, Blind, []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.counts
	c.REST503 = in.proxy.Failed()
	b := Blind{Changes: slices.Clone(in.blind.Changes), Timers: slices.Clone(in.blind.Timers)}
	return c, b, slices.Clone(in.problems)
}

// sleep waits d; it reports false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watchQuota records, until ctx ends, a blind interval around every poll
// that Realtime skipped over its event quota: the changes of such a poll
// were committed shortly before it and reach the daemon only through
// reconciliation.
func (in *injector) watchQuota(ctx context.Context) {
	rt := in.si.Realtime
	seen := rt.SkippedChanges()
	for sleep(ctx, 50*time.Millisecond) {
		n := rt.SkippedChanges()
		if n == seen {
			continue
		}
		now := time.Now()
		iv := interval{From: now.Add(-in.m.Before - time.Second), To: now.Add(in.m.AfterDrops)}
		in.mu.Lock()
		in.counts.QuotaSkipped += n - seen
		in.blind.Changes = append(in.blind.Changes, iv)
		in.mu.Unlock()
		seen = n
	}
}
