package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

// opsAddr is the address the daemon's operational endpoints listen on,
// read from its log.
func (d *daemonRun) opsAddr(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`"msg":"operational endpoints listening".*"addr":"([^"]+)"`)
	var addr string
	require.Eventually(t, func() bool {
		m := re.FindStringSubmatch(d.logs.String())
		if m == nil {
			return false
		}
		addr = m[1]
		return true
	}, 30*time.Second, 10*time.Millisecond, "the daemon logs its listen address")
	return addr
}

// metric reads one unlabelled metric of the daemon's /metrics.
func (d *daemonRun) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.opsAddr(t) + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(t, err)
			return f
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// waitPasses waits until the daemon completed n more reconcile passes.
func (d *daemonRun) waitPasses(t *testing.T, n int) {
	t.Helper()
	const m = "meshhook_alerts_engine_reconcile_passes_total"
	start := d.metric(t, m)
	require.Eventually(t, func() bool { return d.metric(t, m) >= start+float64(n) }, 60*time.Second, 20*time.Millisecond,
		"%d more reconcile passes", n)
}

// readyz returns the daemon's /readyz status code and body.
func (d *daemonRun) readyz(t *testing.T) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + d.opsAddr(t) + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// newFailuresStack is a stack (newE2EStackWith) with one rule alerting the
// failures of workflow billing to the receiver; no daemon yet.
func newFailuresStack(t *testing.T, rt realtimetest.Options) *e2e {
	t.Helper()
	e := newE2EStackWith(t, standin.Options{Realtime: rt})
	e.insertRule(t, rule{project: e.project, slug: "billing", events: "{failed}", url: e.rcv.URL + "/hook"})
	return e
}

// failRun inserts a failed run of workflow billing v1 and returns its id.
func (e *e2e) failRun(t *testing.T) string {
	t.Helper()
	var id string
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed') returning id`,
		e.project, e.wfV1).Scan(&id))
	return id
}

// assertAlertedOnce checks that each run has exactly one failed alert,
// delivered under exactly one webhook id.
func (e *e2e) assertAlertedOnce(t *testing.T, runs []string) {
	t.Helper()
	ids := map[string]int{}
	for _, d := range e.rcv.Deliveries() {
		for _, r := range runs {
			if strings.Contains(string(d.Body), r) {
				ids[r+"|"+d.ID]++
			}
		}
	}
	for _, r := range runs {
		assert.Equal(t, 1, e.claims(t, r, "failed"), "%s claimed once", r)
		n := 0
		for k := range ids {
			if strings.HasPrefix(k, r+"|") {
				n++
			}
		}
		assert.Equal(t, 1, n, "%s delivered under one webhook id", r)
	}
}

// waitDistinct waits until n distinct webhook ids, each verified, were
// delivered, and returns them.
func (e *e2e) waitDistinct(t *testing.T, n int, within time.Duration) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	require.Eventually(t, func() bool {
		for _, dl := range e.rcv.Deliveries() {
			require.NoError(t, dl.VerifyErr)
			ids[dl.ID] = true
		}
		return len(ids) >= n
	}, within, 50*time.Millisecond, "every alert delivered")
	return ids
}

// assertFailedClaims checks alert_logs holds n failed alerts, one a run.
func (e *e2e) assertFailedClaims(t *testing.T, n int) {
	t.Helper()
	var claims, distinct int
	require.NoError(t, e.si.Pool.QueryRow(context.Background(),
		`select count(*), count(distinct run_id) from alert_logs where event = 'failed'`).Scan(&claims, &distinct))
	assert.Equal(t, n, claims)
	assert.Equal(t, n, distinct)
}

// Realtime drops changes silently (over quota); other traffic then flows
// for longer than any overlap. Reconciliation alerts every dropped change,
// without a reconnect.
func TestEndToEndSilentDropsFollowedByTrafficAreAllAlerted(t *testing.T) {
	e := startE2E(t)
	first := e.failRun(t)
	e.waitDeliveries(t, 1)

	e.si.Realtime.DropChanges(5)
	var dropped []string
	for range 5 {
		dropped = append(dropped, e.failRun(t))
	}
	require.Eventually(t, func() bool { return e.si.Realtime.DroppedChanges() >= 5 }, 10*time.Second, 10*time.Millisecond)
	// Other live traffic: runs that start and keep running (no alert),
	// more than the old overlap's worth of changes.
	for range 50 {
		e.exec(t, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'running')`, e.project, e.wfV1)
	}
	e.waitDeliveries(t, 6)
	e.settle(t, 6)
	e.assertAlertedOnce(t, append(dropped, first))
	assert.Zero(t, e.si.Realtime.TotalConnections()-1, "no reconnect was needed")
	assert.Equal(t, exitOK, e.stop())
}

// A transaction that stays open while newer changes commit stamps its row
// with its start time, behind rows already read: reconciliation must not
// pass it. Realtime drops every change here, so only reconciliation can
// find them.
func TestEndToEndLateCommitBehindTheCursorIsAlerted(t *testing.T) {
	e := newFailuresStack(t, realtimetest.Options{})
	d := e.startDaemon(t)
	d.waitReady(t)
	e.si.Realtime.DropChanges(1 << 30)
	ctx := context.Background()

	early := e.failRun(t)
	e.waitDeliveries(t, 1) // found by reconciliation

	tx, err := e.si.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(context.Background()) }()
	var late string
	require.NoError(t, tx.QueryRow(ctx, `insert into workflow_runs (project_id, workflow_id, status) values ($1, $2, 'failed') returning id`,
		e.project, e.wfV1).Scan(&late))
	newer := e.failRun(t) // commits after late's updated_at
	// The reconciler keeps passing while the transaction is open; the
	// horizon holds it before late (and so before newer).
	d.waitPasses(t, 3)
	assert.Equal(t, 1, len(e.rcv.Deliveries()), "nothing after the open transaction's start is read yet")
	require.NoError(t, tx.Commit(ctx))

	e.waitDeliveries(t, 3)
	e.settle(t, 3)
	e.assertAlertedOnce(t, []string{early, late, newer})
	assert.GreaterOrEqual(t, d.metric(t, "meshhook_alerts_engine_reconcile_found_alerts_total"), 3.0,
		"the alerts Realtime missed are counted")
	assert.Equal(t, exitOK, d.stop())
}

// With realtime.enabled false the daemon never connects to Realtime and
// alerts from reconciliation alone.
func TestEndToEndRealtimeDisabledAlertsByReconciliation(t *testing.T) {
	e := newFailuresStack(t, realtimetest.Options{})
	d := e.startDaemon(t, "MESHHOOK_ALERTS_REALTIME_ENABLED=false")
	d.waitLines(t, 1, `"msg":"realtime disabled: changes are found by reconciliation alone"`)
	var runs []string
	for range 3 {
		runs = append(runs, e.failRun(t))
	}
	e.waitDeliveries(t, 3)
	e.settle(t, 3)
	e.assertAlertedOnce(t, runs)
	assert.Zero(t, e.si.Realtime.TotalConnections(), "never connected to Realtime")
	code, body := d.readyz(t)
	assert.Equal(t, http.StatusOK, code, "%v", body)
	assert.Equal(t, exitOK, d.stop())
}

// Realtime refuses every join (a tenant over its limits): alerting goes
// on through reconciliation and /readyz says Realtime is degraded.
func TestEndToEndRealtimeRefusingJoinsStillAlerts(t *testing.T) {
	e := newFailuresStack(t, realtimetest.Options{})
	e.si.Realtime.RefuseJoins("Too many joins per second", 1<<30)
	d := e.startDaemon(t)
	var runs []string
	for range 3 {
		runs = append(runs, e.failRun(t))
	}
	e.waitDeliveries(t, 3)
	e.settle(t, 3)
	e.assertAlertedOnce(t, runs)
	assert.Empty(t, e.si.Realtime.SubscribedTopics())
	var body map[string]any
	require.Eventually(t, func() bool {
		var code int
		code, body = d.readyz(t)
		deg, _ := body["degraded"].(map[string]any)
		return code == http.StatusOK && deg["realtime"] != nil
	}, 30*time.Second, 20*time.Millisecond, "ready, with Realtime degraded")
	assert.Contains(t, fmt.Sprint(body["degraded"]), "realtime")
	assert.Equal(t, exitOK, d.stop())
}

// A daemon stopped in the middle of reconciling a backlog resumes from its
// stored cursor: every alert once.
func TestEndToEndRestartInTheMiddleOfAScan(t *testing.T) {
	e := newFailuresStack(t, realtimetest.Options{})
	d := e.startDaemon(t, "MESHHOOK_ALERTS_REALTIME_ENABLED=false")
	d.waitLines(t, 1, `"msg":"catch-up done"`)
	// A backlog of 1,500 changes, committed in one transaction: three
	// reconcile pages.
	const n = 1500
	e.exec(t, fmt.Sprintf(`insert into workflow_runs (project_id, workflow_id, status)
		select $1, $2, 'failed' from generate_series(1, %d)`, n), e.project, e.wfV1)
	require.Eventually(t, func() bool { return len(e.rcv.Deliveries()) >= 100 }, 60*time.Second, 5*time.Millisecond)
	assert.Equal(t, exitOK, d.stop())
	mid := len(e.rcv.Deliveries())

	d = e.startDaemon(t, "MESHHOOK_ALERTS_REALTIME_ENABLED=false")
	ids := e.waitDistinct(t, n, 120*time.Second)
	t.Logf("%d delivered before the restart, %d in all (redeliveries of unrecorded attempts included)", mid, len(e.rcv.Deliveries()))
	assert.Len(t, ids, n, "one webhook id per alert")
	e.assertFailedClaims(t, n)
	assert.Equal(t, exitOK, d.stop())
}

// Realtime at a quota of 100 changes a second (scaled to a 2 s window):
// a burst of 10,000 runs in one transaction puts the project over it, and
// Realtime then skips whole polls of the live traffic that follows,
// silently. Every alert arrives, once.
func TestEndToEndOverTheRealtimeQuotaEveryAlertArrivesOnce(t *testing.T) {
	e := newFailuresStack(t, realtimetest.Options{MaxEventsPerSecond: 100, RateTick: 250 * time.Millisecond, RateWindowTicks: 8})
	d := e.startDaemon(t)
	d.waitReady(t)

	const burst = 10000
	e.exec(t, fmt.Sprintf(`insert into workflow_runs (project_id, workflow_id, status)
		select $1, $2, 'failed' from generate_series(1, %d)`, burst), e.project, e.wfV1)
	// Live traffic follows until Realtime has skipped some of it (its rate
	// counter ticks every 250 ms, so the first polls after the burst may
	// still be delivered), then a little more.
	live := 0
	for deadline := time.Now().Add(60 * time.Second); e.si.Realtime.SkippedChanges() == 0; live++ {
		require.True(t, time.Now().Before(deadline), "the quota made Realtime skip changes silently")
		e.failRun(t)
	}
	for range 20 {
		e.failRun(t)
		live++
	}
	ids := e.waitDistinct(t, burst+live, 180*time.Second)
	assert.Len(t, ids, burst+live, "one webhook id per alert")
	e.assertFailedClaims(t, burst+live)
	t.Logf("Realtime skipped %d changes in %d polls; %v alerts found by reconciliation", e.si.Realtime.SkippedChanges(),
		e.si.Realtime.SkippedPolls(), d.metric(t, "meshhook_alerts_engine_reconcile_found_alerts_total"))
	assert.Positive(t, d.metric(t, "meshhook_alerts_engine_reconcile_found_alerts_total"))
	assert.Equal(t, exitOK, d.stop())
}
