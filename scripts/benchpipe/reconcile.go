package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/meshhook/meshhook-alerts/internal/harness/benchstat"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

// The daemon's reconciliation metrics.
const (
	metricPasses  = "meshhook_alerts_engine_reconcile_passes_total"
	metricRows    = "meshhook_alerts_engine_reconcile_rows_total"
	metricCatchup = "meshhook_alerts_engine_catchup_rows_total"
	metricFound   = "meshhook_alerts_engine_reconcile_found_alerts_total"
	metricLag     = "meshhook_alerts_engine_reconcile_lag_seconds"
	metricHeld    = "meshhook_alerts_engine_reconcile_lease_held"
)

// reconcileOffEnv restarts the daemon with reconciliation effectively off:
// one pass at start-up, the next an hour later.
const reconcileOffEnv = "MESHHOOK_ALERTS_ALERTS_RECONCILE_INTERVAL=1h"

// legTail is how long after a leg's last commit its window closes: the
// reconciler's pass after the last change (1 s apart by default) and the
// claims it makes fall inside it.
const legTail = 2 * time.Second

// reconcileBusy are busyCounters and the rows the reconciler scans: quiet
// when the daemon has handled a phase's changes live and by reconciliation.
var reconcileBusy = append(slices.Clip(busyCounters), metricRows)

// restCounter counts, at the stand-in, the requests the reconciler makes:
// the alert_reconcile RPC (lease, cursor and horizon), pages of the runs
// table (keyset reads of the matcher's columns) and reads of whole runs by
// id (rows the daemon had not handled live). other counts the remaining
// reads of the runs table (the timers' rebuild).
type restCounter struct {
	rpc, page, byID, other atomic.Int64

	mu     sync.Mutex       // guards byPath
	byPath map[string]int64 // every REST request, by method and path
}

// restCounts is a snapshot of a restCounter.
type restCounts struct{ rpc, page, byID, other int64 }

func (c *restCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.count(r)
		next.ServeHTTP(w, r)
	})
}

func (c *restCounter) count(r *http.Request) {
	if p, ok := strings.CutPrefix(r.URL.Path, "/rest/v1/"); ok {
		c.mu.Lock()
		if c.byPath == nil {
			c.byPath = map[string]int64{}
		}
		c.byPath[r.Method+" "+p]++
		c.mu.Unlock()
	}
	switch {
	case r.URL.Path == "/rest/v1/rpc/alert_reconcile":
		c.rpc.Add(1)
	case r.URL.Path == "/rest/v1/workflow_runs" && r.Method == http.MethodGet:
		q := r.URL.Query()
		switch {
		case strings.HasPrefix(q.Get("id"), "in."):
			c.byID.Add(1)
		case q.Has("order"):
			c.page.Add(1)
		default:
			c.other.Add(1)
		}
	}
}

// paths is a copy of the requests counted by method and path.
func (c *restCounter) paths() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byPath)
}

func (c *restCounter) snapshot() restCounts {
	return restCounts{c.rpc.Load(), c.page.Load(), c.byID.Load(), c.other.Load()}
}

func (c restCounts) minus(o restCounts) restCounts {
	return restCounts{c.rpc - o.rpc, c.page - o.page, c.byID - o.byID, c.other - o.other}
}

// reconciler is the calls reconciliation makes.
func (c restCounts) reconciler() int64 { return c.rpc + c.page + c.byID }

// leg is one load of the reconcile phase's A/B.
type leg struct {
	rate, n          int
	span, window     time.Duration // first → last commit; first commit → window's end
	rest             restCounts
	passes, rows     float64
	catchup, found   float64
	daemonCPU, pgCPU time.Duration
	p99              time.Duration
}

// runLeg fails rate × dur runs one transaction each at rate per second and
// measures, from just before the first commit until legTail after the last,
// the requests the reconciler made, the daemon's reconciliation counters
// and the daemon's and PostgreSQL's CPU.
func runLeg(ctx context.Context, si *standin.StandIn, d *daemon, rc *restCounter, rcv *receiver, w workload, rate int, dur time.Duration) (leg, error) {
	l := leg{rate: rate, n: max(1, int(float64(rate)*dur.Seconds()))}
	ids, err := newRuns(ctx, si.Pool, w.project, w.healthy, l.n)
	if err != nil {
		return l, err
	}
	// The inserts are handled, live and by reconciliation, before the
	// window opens.
	if err := d.waitQuiet(ctx, reconcileBusy, 2*time.Second, 2*time.Minute); err != nil {
		return l, err
	}
	text0, err := d.metrics(ctx)
	if err != nil {
		return l, err
	}
	rest0 := rc.snapshot()
	cpu := startCPU(ctx, si.Pool, d)
	start := time.Now()
	committed, err := failPaced(ctx, si.Pool, ids, rate)
	if err != nil {
		return l, err
	}
	want := make(map[string]bool, len(ids))
	last := start
	for id, t := range committed {
		want[id] = true
		if t.After(last) {
			last = t
		}
	}
	got, err := rcv.waitRuns(ctx, want, time.Minute)
	if err != nil {
		return l, err
	}
	select {
	case <-ctx.Done():
		return l, ctx.Err()
	case <-time.After(time.Until(last.Add(legTail))):
	}
	l.window = time.Since(start)
	l.span = last.Sub(start)
	l.daemonCPU, l.pgCPU = cpu.since()
	l.rest = rc.snapshot().minus(rest0)
	text1, err := d.metrics(ctx)
	if err != nil {
		return l, err
	}
	delta := func(name string) float64 {
		a, _ := metricValue(text0, name)
		b, _ := metricValue(text1, name)
		return b - a
	}
	l.passes, l.rows, l.catchup, l.found = delta(metricPasses), delta(metricRows), delta(metricCatchup), delta(metricFound)
	lat := make([]time.Duration, 0, len(got))
	for id, g := range got {
		lat = append(lat, max(g.receivedAt.Sub(committed[id]), 0))
	}
	l.p99 = benchstat.Percentile(lat, 99)
	return l, nil
}

// failPaced fails the runs ids with one autocommit UPDATE each, the i-th
// due at i/rate seconds after the first (at once when behind, so that the
// rate holds on average), and returns each run's commit time.
func failPaced(ctx context.Context, pool *pgxpool.Pool, ids []string, rate int) (map[string]time.Time, error) {
	committed := make(map[string]time.Time, len(ids))
	start := time.Now()
	for i, id := range ids {
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
		}
		if _, err := pool.Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = $1`, id); err != nil {
			return nil, err
		}
		committed[id] = time.Now()
	}
	return committed, nil
}

// restartDaemon stops d, expires its reconcile lease (a stopped daemon does
// not give it back; its successor would wait for it to lapse, ten
// intervals) and starts the daemon again with env. When reconciling, it
// waits until the new daemon holds the lease and has caught up. The daemon
// it returns, even with an error, is to be stopped.
func restartDaemon(ctx context.Context, bin string, env []string, si *standin.StandIn, d *daemon, rcv *receiver, w workload, reconciling bool) (*daemon, error) {
	d.stop()
	if _, err := si.Pool.Exec(ctx, `update alert_daemon_state
		set value = jsonb_set(value, '{expires_at}', to_jsonb(now() - interval '1 second'))
		where key like 'reconcile:%'`); err != nil {
		return nil, fmt.Errorf("expire the reconcile lease: %w", err)
	}
	nd, err := startDaemon(ctx, bin, env)
	if err != nil {
		return nil, err
	}
	if err := nd.waitMetric(ctx, "meshhook_alerts_engine_rules_cached", func(v float64) bool { return v >= 2 }, time.Minute); err != nil {
		return nd, err
	}
	if err := waitSubscribed(ctx, si); err != nil {
		return nd, err
	}
	if reconciling {
		if err := nd.waitMetric(ctx, metricHeld, func(v float64) bool { return v >= 1 }, time.Minute); err != nil {
			return nd, err
		}
		if err := nd.waitMetric(ctx, metricLag, func(v float64) bool { return v <= 3 }, 2*time.Minute); err != nil {
			return nd, err
		}
	}
	return nd, quiesce(ctx, si.Pool, rcv, w)
}

// reconcilePhase measures what reconciliation costs when Realtime works:
// for each rate, the same load with reconciliation effectively off (the
// daemon restarted with an interval of an hour) and then at its default,
// in one run. It returns the daemon it leaves running (reconciling at the
// default), to be stopped even with an error.
func reconcilePhase(ctx context.Context, bin string, env []string, si *standin.StandIn, d *daemon, rc *restCounter, rcv *receiver, w workload) (*daemon, []row, error) {
	var rates []int
	for _, f := range strings.Split(*flagReconcileRates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return d, nil, fmt.Errorf("-reconcile-rates: %q is not a positive rate", f)
		}
		rates = append(rates, r)
	}
	say("reconcile: restarting the daemon with reconciliation off (%s)", reconcileOffEnv)
	d, err := restartDaemon(ctx, bin, slices.Concat(env, []string{reconcileOffEnv}), si, d, rcv, w, false)
	if err != nil {
		return d, nil, err
	}
	off := make([]leg, len(rates))
	for i, r := range rates {
		say("reconcile: %d changes/s for %s, reconciliation off", r, *flagReconcileDur)
		if off[i], err = runLeg(ctx, si, d, rc, rcv, w, r, *flagReconcileDur); err != nil {
			return d, nil, err
		}
	}
	say("reconcile: restarting the daemon with reconciliation at its default interval")
	d, err = restartDaemon(ctx, bin, env, si, d, rcv, w, true)
	if err != nil {
		return d, nil, err
	}
	on := make([]leg, len(rates))
	for i, r := range rates {
		say("reconcile: %d changes/s for %s, reconciliation on", r, *flagReconcileDur)
		if on[i], err = runLeg(ctx, si, d, rc, rcv, w, r, *flagReconcileDur); err != nil {
			return d, nil, err
		}
	}
	var rows []row
	for i, r := range rates {
		a, b := on[i], off[i]
		say("reconcile %d/s: on %+v; off %+v", r, a, b)
		rows = append(rows, reconcileRows(r, a, b)...)
	}
	return d, rows, nil
}

// reconcileRows are the rows of one rate: on with reconciliation at its
// default interval, off without.
func reconcileRows(rate int, on, off leg) []row {
	per := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n) }
	pgDiff := per(on.pgCPU, on.n) - per(off.pgCPU, off.n)
	dmDiff := per(on.daemonCPU, on.n) - per(off.daemonCPU, off.n)
	perPass := "n/a"
	if on.passes > 0 {
		perPass = fmt.Sprintf("%.1f ms", pgDiff*float64(on.n)/on.passes/1e3)
	}
	name := fmt.Sprintf("reconcile %d/s", rate)
	return []row{
		{name + ": reconciler's REST calls per change", fmt.Sprintf("%.3f (%d RPC + %d pages + %d by id; %d changes at %.0f/s, %.0f s); off %.3f",
			float64(on.rest.reconciler())/float64(on.n), on.rest.rpc, on.rest.page, on.rest.byID,
			on.n, float64(on.n)/max(on.span.Seconds(), 1e-3), on.window.Seconds(), float64(off.rest.reconciler())/float64(off.n)), "", nil},
		{name + ": PostgreSQL CPU per change, on / off → reconciler", fmt.Sprintf("%.0f / %.0f → %.0f µs (%s per pass)",
			per(on.pgCPU, on.n), per(off.pgCPU, off.n), pgDiff, perPass), "", nil},
		{name + ": daemon CPU per change, on / off → reconciler", fmt.Sprintf("%.0f / %.0f → %.0f µs",
			per(on.daemonCPU, on.n), per(off.daemonCPU, off.n), dmDiff), "", nil},
		{name + ": passes, rows scanned / not handled live / alerts found", fmt.Sprintf("%.0f, %.0f / %.0f / %.0f (off: %.0f passes)",
			on.passes, on.rows, on.catchup, on.found, off.passes), "", nil},
		{name + ": commit → receipt p99, on / off" + pollSuffix(), ms(on.p99) + " / " + ms(off.p99), "", nil},
	}
}

// quotaPhase runs a second stand-in whose Realtime has an event quota
// (-quota, Pro's 500/s by default) and its own daemon, pushes Realtime's
// averaged event rate over the quota, and then fails -burst runs in one
// transaction: Realtime skips that poll whole, as the hosted server does,
// and only reconciliation can find the alerts.
func quotaPhase(ctx context.Context, bin, key string, keys *seal.Keyring, secret string, rcv *receiver, hole *blackhole, rt realtimetest.Options) (_ []row, err error) {
	rt.MaxEventsPerSecond, rt.RateTick, rt.RateWindowTicks = *flagQuota, *flagQuotaTick, *flagQuotaTicks
	window := rt.RateTick * time.Duration(rt.RateWindowTicks)
	say("quota: a second stand-in, its Realtime at %d events/s averaged over %s", rt.MaxEventsPerSecond, window)
	si, err := standin.Start(ctx, standin.Options{MeshHook: true, Realtime: rt})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, si.Close()) }()
	w, err := seed(ctx, si.Pool, keys, secret, rcv.url, hole.url)
	if err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, bin, daemonEnv(si, key))
	if err != nil {
		return nil, err
	}
	defer d.stop()
	if err := d.waitMetric(ctx, "meshhook_alerts_engine_rules_cached", func(v float64) bool { return v >= 2 }, time.Minute); err != nil {
		return nil, err
	}
	if err := waitSubscribed(ctx, si); err != nil {
		return nil, err
	}
	if err := d.waitMetric(ctx, metricHeld, func(v float64) bool { return v >= 1 }, time.Minute); err != nil {
		return nil, err
	}
	if err := quiesce(ctx, si.Pool, rcv, w); err != nil {
		return nil, err
	}

	n := *flagBurst
	ids, err := newRuns(ctx, si.Pool, w.project, w.healthy, n)
	if err != nil {
		return nil, err
	}
	// More runs created, in transactions of up to 5,000, until Realtime's
	// average over the window is at or over the quota: the burst's own
	// inserts and these count, as Realtime delivers them.
	pump := int(math.Ceil(1.1*float64(rt.MaxEventsPerSecond)*window.Seconds())) - n
	over := func() bool { _, limited := si.Realtime.EventRate(); return limited }
	for round := 0; !over(); round++ {
		if round == 5 {
			rate, _ := si.Realtime.EventRate()
			return nil, fmt.Errorf("quota: Realtime's event rate stays under its quota (%.0f/s averaged)", rate)
		}
		for left := pump; left > 0 && !over(); left -= 5000 {
			if _, err := newRuns(ctx, si.Pool, w.project, w.healthy, min(left, 5000)); err != nil {
				return nil, err
			}
		}
		// The quota is checked once per tick.
		deadline := time.Now().Add(2 * rt.RateTick)
		for !over() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		if over() {
			// Let the daemon handle what it was sent, and reconcile
			// what Realtime skipped, before the clock starts.
			if err := d.waitQuiet(ctx, reconcileBusy, time.Second, 2*time.Minute); err != nil {
				return nil, err
			}
		}
		pump = 5000
	}
	rate, _ := si.Realtime.EventRate()
	say("quota: Realtime over its quota (%.0f events/s averaged); failing %d runs in one transaction", rate, n)
	want := make(map[string]bool, n)
	for _, id := range ids {
		want[id] = true
	}
	text0, err := d.metrics(ctx)
	if err != nil {
		return nil, err
	}
	skipped0 := si.Realtime.SkippedChanges()
	if _, err := si.Pool.Exec(ctx, `update workflow_runs set status = 'failed', finished_at = now() where id = any($1::uuid[])`, ids); err != nil {
		return nil, err
	}
	commit := time.Now()
	got, err := rcv.waitRuns(ctx, want, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	first, last := got[ids[0]].receivedAt, commit
	for _, g := range got {
		if g.receivedAt.Before(first) {
			first = g.receivedAt
		}
		if g.receivedAt.After(last) {
			last = g.receivedAt
		}
	}
	skipped := si.Realtime.SkippedChanges() - skipped0
	if err := settle(ctx, si.Pool); err != nil {
		return nil, err
	}
	text1, err := d.metrics(ctx)
	if err != nil {
		return nil, err
	}
	f0, _ := metricValue(text0, metricFound)
	f1, _ := metricValue(text1, metricFound)
	toLast := last.Sub(commit)
	name := fmt.Sprintf("quota %d/s, burst of %d while over it", rt.MaxEventsPerSecond, n)
	return []row{
		{name + ": commit → first / all received", secs(first.Sub(commit)) + " / " + secs(toLast), "≤ 3 s", check(toLast <= 3*time.Second)},
		{"quota, changes Realtime skipped / alerts found by reconciliation", fmt.Sprintf("%d / %.0f", skipped, f1-f0), "", nil},
	}, nil
}

// maxPollWait is the longest a change waits for the stand-in's Realtime to
// poll it when idle: 5 × the poll interval (Realtime's idle backoff) and
// the modelled query time; 0 with polling off.
func maxPollWait(o realtimetest.Options) time.Duration {
	iv := o.PollInterval
	if iv == 0 {
		iv = realtimetest.DefaultPollInterval
	}
	if iv < 0 {
		return 0
	}
	return 5*iv + o.PollQueryTime
}

// pollSuffix marks latency rows that include the Realtime poll.
func pollSuffix() string {
	if maxPollWait(rtOpts) == 0 {
		return ""
	}
	return " (incl. Realtime poll)"
}

// describeRealtime says how the stand-in's Realtime hands out changes.
func describeRealtime(o realtimetest.Options) string {
	var b strings.Builder
	iv, most := o.PollInterval, o.PollMaxChanges
	if iv == 0 {
		iv = realtimetest.DefaultPollInterval
	}
	if most <= 0 {
		most = realtimetest.DefaultPollMaxChanges
	}
	if iv < 0 {
		b.WriteString("polling off (changes delivered as decoded)")
	} else {
		fmt.Fprintf(&b, "polls of ≤ %d changes every %s, %s when idle: commit → receipt includes up to that wait, as on hosted Realtime", most, iv, maxPollWait(o))
	}
	if o.MaxEventsPerSecond > 0 {
		fmt.Fprintf(&b, "; quota %d events/s", o.MaxEventsPerSecond)
	} else {
		b.WriteString("; no event quota")
	}
	return b.String()
}
