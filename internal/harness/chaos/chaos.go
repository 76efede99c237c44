// Package chaos is the chaos test of meshhook-alerts: for a bounded time,
// with a seeded RNG, a generator drives MeshHook runs through every status
// while faults are injected into everything around the daemon — Realtime
// drops, 1012 closes and silently dropped changes, REST 503 bursts, a
// misbehaving webhook receiver, and SIGKILLs of the daemon process with
// restarts. Afterwards it checks, from the generator's own record, that
// every expected (rule, run, event) alert was delivered and acknowledged
// exactly once after receiver-side dedupe, that none was unexpected, and
// that alert_logs agrees.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/harness/standin"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/realtime/realtimetest"
)

// webhookSecret signs every alert of the chaos rules.
const webhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// reconcileInterval is the daemon's default alerts.reconcile_interval (the
// chaos run keeps the default): how often it reads the changes Realtime
// dropped from the database.
const reconcileInterval = time.Second

// Quota is the stand-in's Realtime event quota for a chaos run: low
// enough that the generator's changes go over it now and then, with the
// rate window scaled down (5 ticks of 1s instead of 12 of 5s) so that it
// triggers and clears several times within a run. Pass it as
// standin.Options.Realtime.
func Quota() realtimetest.Options {
	return realtimetest.Options{MaxEventsPerSecond: 15, RateTick: time.Second, RateWindowTicks: 5}
}

// Options configures Run.
type Options struct {
	// StandIn is the running stand-in, on a database with MeshHook's tables
	// and no runs or rules yet. Required.
	StandIn *standin.StandIn
	// Binary is the daemon binary (see standin.BuildDaemon). Required.
	Binary string
	// WorkDir receives the daemon logs. Required.
	WorkDir string
	// Duration is the fault window. Required.
	Duration time.Duration
	// Seed seeds every random choice.
	Seed uint64
	// Settle bounds the wait for the daemon to finish after the window and
	// the generator's last runs. Defaults to 60s.
	Settle time.Duration
	// RunRate is the number of new runs per second. Defaults to 4.
	RunRate float64
	// Logf, when set, receives progress lines.
	Logf func(format string, args ...any)
}

// Summary is the outcome of a chaos run.
type Summary struct {
	Duration        time.Duration
	Seed            uint64
	Runs            int
	Expected        int // required alerts
	Delivered       int // required alerts acknowledged
	Lost            int // required alerts never acknowledged
	Unexpected      int // alerts acknowledged that must not have been sent
	DuplicatesAcked int // extra acknowledged webhook-ids for one (rule, run, event)
	Either          int // alerts within a tolerance band: either outcome is fine
	EitherDelivered int
	EitherByEvent   map[string]int
	Faults          FaultCounts
	Receiver        ReceiverStats
	// Violations describe every failed check; empty means ok.
	Violations []string
	// LogDir holds the daemon logs.
	LogDir string
}

// OK reports whether every check passed.
func (s *Summary) OK() bool { return len(s.Violations) == 0 }

// String is the one-line summary.
func (s *Summary) String() string {
	verdict := "ok"
	if !s.OK() {
		verdict = fmt.Sprintf("FAIL(%d violations)", len(s.Violations))
	}
	f, r := s.Faults, s.Receiver
	return fmt.Sprintf("chaos: %s seed=%d runs=%d expected=%d delivered=%d lost=%d unexpected=%d duplicates_acked=%d "+
		"receiver_dupes=%d either=%d either_delivered=%d kills=%d ws_drops=%d closes_1012=%d dropped_changes=%d "+
		"quota_skipped=%d rest_503=%d rest_bursts=%d rcv_5xx=%d rcv_429=%d rcv_timeouts=%d %s",
		s.Duration.Round(time.Second), s.Seed, s.Runs, s.Expected, s.Delivered, s.Lost, s.Unexpected, s.DuplicatesAcked,
		r.Dupes, s.Either, s.EitherDelivered, f.Kills, f.WSDrops, f.Closes1012, f.DroppedChanges, f.QuotaSkipped,
		f.REST503, f.REST503Bursts, r.ServerErrors, r.TooMany, r.Slow, verdict)
}

// timing are the daemon settings and tolerances of a chaos run.
var timing = Timing{Tolerance: 2 * time.Second, Early: 500 * time.Millisecond}

var margins = Margins{
	Before:     time.Second,
	BeforeKill: 6 * time.Second, // the engine retries failed claims after 5s, in memory
	After:      2 * time.Second,
	AfterDrops: reconcileInterval + 1500*time.Millisecond,
	AfterREST:  6500 * time.Millisecond, // the engine retries timer checks after 5s
}

// attemptTimeout is the daemon's sender.request_timeout; slow receiver
// answers take longer.
const attemptTimeout = time.Second

// Run runs the chaos test. Its error reports a failure to run it at all;
// violations are in the summary.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.StandIn == nil || o.Binary == "" || o.WorkDir == "" || o.Duration <= 0 {
		return nil, errors.New("chaos: StandIn, Binary, WorkDir and a positive Duration are required")
	}
	if o.Settle <= 0 {
		o.Settle = 60 * time.Second
	}
	if o.RunRate <= 0 {
		o.RunRate = 4
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	si := o.StandIn

	keyBytes := make([]byte, 32)
	if _, err := rand.Read(keyBytes); err != nil {
		return nil, fmt.Errorf("chaos: encryption key: %w", err)
	}
	keyring, err := seal.NewKeyring(keyBytes)
	if err != nil {
		return nil, fmt.Errorf("chaos: keyring: %w", err)
	}
	rcv, err := NewReceiver(webhookSecret, o.Seed)
	if err != nil {
		return nil, err
	}
	defer rcv.Close()
	proxy, err := NewProxy(si.URL)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	sc, err := setupScenario(ctx, si, keyring, rcv.URL+"/hook", webhookSecret)
	if err != nil {
		return nil, err
	}
	daemon := &Daemon{Binary: o.Binary, LogDir: o.WorkDir, Env: daemonEnv(proxy.URL, si.ServiceRoleKey,
		base64.StdEncoding.EncodeToString(keyBytes))}
	if err := daemon.Start(); err != nil {
		return nil, err
	}
	defer daemon.Kill()
	in := &injector{si: si, proxy: proxy, daemon: daemon, rng: newRand(o.Seed, 0xfa), m: margins,
		gapMin: 3 * time.Second, gapMax: 5 * time.Second, logf: logf}
	in.waitSubscribed(ctx, 0, "start-up")
	if _, _, p := in.result(); len(p) > 0 {
		return nil, fmt.Errorf("chaos: the daemon did not start (logs in %s)", o.WorkDir)
	}
	logf("chaos: daemon subscribed; fault window of %s starts", o.Duration)
	// Realtime's event quota (when the stand-in has one) skips whole polls
	// silently: record those stretches as blind, like dropped changes.
	qctx, qcancel := context.WithCancel(ctx)
	quotaDone := make(chan struct{})
	go func() {
		defer close(quotaDone)
		in.watchQuota(qctx)
	}()
	stopQuota := func() {
		qcancel()
		<-quotaDone
	}
	defer stopQuota()

	// The fault window.
	gen := newGenerator(si.Pool, sc.project, sc.workflows, sc.thresholds, o.Seed, o.RunRate)
	rcv.SetFaults(ReceiverFaults{ServerError: 0.08, TooMany: 0.06, Slow: 0.05, SlowBy: attemptTimeout + time.Second})
	wctx, wcancel := context.WithTimeout(ctx, o.Duration)
	defer wcancel()
	stopGen := make(chan struct{})
	genErr := make(chan error, 1)
	go func() { genErr <- gen.Run(ctx, stopGen) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.run(wctx)
	}()
	select {
	case <-wctx.Done():
	case err := <-genErr:
		wcancel()
		wg.Wait()
		return nil, err
	}
	wg.Wait() // the fault in progress ends and the daemon recovers
	rcv.SetFaults(ReceiverFaults{})
	proxy.SetFailing(false)
	si.Realtime.DropChanges(0)
	close(stopGen)
	logf("chaos: fault window over; finishing the runs in flight")
	if err := <-genErr; err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// Settle: wait for every required alert and an idle daemon.
	runs := gen.Runs()
	deadline := time.Now().Add(o.Settle)
	minEnd := gen.LastWrite().Add(reconcileInterval + 2*time.Second)
	for {
		_, blind, _ := in.result() // quota skips may still add to it
		acked := deliveredKeys(rcv.Acked())
		// recovered alerts are awaited once their delayed/stalled alert arrived.
		exp := Expect(sc.rules, runs, blind, timing, func(k Key) bool { return len(acked[k]) > 0 })
		missing := 0
		for _, k := range exp.Keys(Required) {
			if len(acked[k]) == 0 {
				missing++
			}
		}
		busy, err := sc.busyAlerts(ctx, si)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		quiet := now.Sub(rcv.LastRequest()) > 2*time.Second
		if missing == 0 && busy == 0 && quiet && now.After(minEnd) {
			break
		}
		if now.After(deadline) {
			logf("chaos: settle timed out: %d required alerts missing, %d alerts pending", missing, busy)
			break
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	stopQuota()
	faults, blind, problems := in.result()
	if exited, werr := daemon.Exited(); exited {
		problems = append(problems, fmt.Sprintf("the daemon exited on its own: %v", werr))
	} else if err := daemon.Stop(20 * time.Second); err != nil {
		problems = append(problems, err.Error())
	}

	s := &Summary{Duration: o.Duration, Seed: o.Seed, Runs: len(runs), Faults: faults, Receiver: rcv.Stats(),
		LogDir: o.WorkDir, Violations: problems}
	logs, err := sc.alertLogs(ctx, si)
	if err != nil {
		return nil, err
	}
	check(s, sc.rules, runs, blind, rcv, logs)
	return s, nil
}

// deliveredKeys groups acknowledged webhook-ids by alert.
func deliveredKeys(acked map[string]Key) map[Key][]string {
	out := make(map[Key][]string, len(acked))
	for id, k := range acked {
		out[k] = append(out[k], id)
	}
	return out
}

// logRow is one alert_logs row.
type logRow struct {
	Key       Key
	WebhookID string
	Status    string
	Reason    string // outcome_reason
	LastError string // last_error
}

// check fills s's counts and violations.
func check(s *Summary, rules []RuleSpec, runs []*RunRecord, blind Blind, rcv *Receiver, logs []logRow) {
	violate := func(format string, args ...any) { s.Violations = append(s.Violations, fmt.Sprintf(format, args...)) }
	acked := deliveredKeys(rcv.Acked())
	claimed := map[Key]bool{}
	for _, l := range logs {
		claimed[l.Key] = true
	}
	exp := Expect(rules, runs, blind, timing, func(k Key) bool { return claimed[k] || len(acked[k]) > 0 })
	for _, k := range exp.Keys(Required) {
		s.Expected++
		if len(acked[k]) > 0 {
			s.Delivered++
		} else {
			s.Lost++
			violate("lost: rule %s run %s event %s; run: %s", k.Rule, k.Run, k.Event, timeline(runs, k.Run))
		}
	}
	s.EitherByEvent = map[string]int{}
	for _, k := range exp.Keys(Either) {
		s.Either++
		s.EitherByEvent[k.Event]++
		if len(acked[k]) > 0 {
			s.EitherDelivered++
		}
	}
	for k, ids := range acked {
		if exp.Verdict(k) == Forbidden {
			s.Unexpected++
			violate("unexpected: rule %s run %s event %s", k.Rule, k.Run, k.Event)
		}
		if len(ids) > 1 {
			s.DuplicatesAcked += len(ids) - 1
			violate("duplicate: rule %s run %s event %s acknowledged under %d webhook-ids", k.Rule, k.Run, k.Event, len(ids))
		}
		if want := alerts.WebhookID(k.Rule, k.Run, alerts.Event(k.Event)); ids[0] != want {
			violate("webhook-id %s for rule %s run %s event %s, want %s", ids[0], k.Rule, k.Run, k.Event, want)
		}
	}
	if n := s.Receiver.BadSignatures + s.Receiver.BadPayloads; n > 0 {
		violate("%d requests refused by the receiver: %s", n, strings.Join(rcv.Problems(), "; "))
	}
	// alert_logs agrees: one succeeded row per acknowledged alert, no other.
	logged := map[Key]logRow{}
	for _, l := range logs {
		logged[l.Key] = l
		switch ids := acked[l.Key]; {
		case len(ids) == 0:
			violate("alert_logs has %s (%s, %s %q) for rule %s run %s event %s, never acknowledged",
				l.WebhookID, l.Status, l.Reason, l.LastError, l.Key.Rule, l.Key.Run, l.Key.Event)
		case l.Status != "succeeded":
			violate("alert_logs %s is %s, but the receiver acknowledged it", l.WebhookID, l.Status)
		case l.WebhookID != ids[0]:
			violate("alert_logs %s was acknowledged as %s", l.WebhookID, ids[0])
		}
	}
	for k := range acked {
		if _, ok := logged[k]; !ok {
			violate("acknowledged rule %s run %s event %s is missing from alert_logs", k.Rule, k.Run, k.Event)
		}
	}
}

// timeline describes a run's steps for a violation message.
func timeline(runs []*RunRecord, id string) string {
	for _, r := range runs {
		if r.ID != id {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s started %s", r.Slug, r.Started.Format("15:04:05.000"))
		for _, st := range r.Steps {
			fmt.Fprintf(&b, ", %s at +%s", st.Status, st.At.Sub(r.Started).Round(time.Millisecond))
		}
		return b.String()
	}
	return "not generated"
}
