package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// step is one watchdog evaluation: advance the clock, sample, and expect
// the notices ("+cond" firing, "-cond" cleared).
type step struct {
	advance time.Duration
	sample  Sample
	want    []string
	noAck   bool // the notices could not be delivered
}

func notices(ns []Notice) []string {
	out := []string{}
	for _, n := range ns {
		sign := "-"
		if n.Firing {
			sign = "+"
		}
		out = append(out, sign+n.Condition)
	}
	return out
}

func TestWatchdogConditions(t *testing.T) {
	th := Thresholds{FailureRatio: 0.5, FailureWindow: time.Minute, FailureMinAttempts: 10,
		RealtimeDownAfter: 2 * time.Minute, PendingBacklog: 100, ReconcileLag: time.Minute}
	up := func(att, fail uint64) Sample { return Sample{Attempts: att, Failures: fail, Subscribed: true} }
	pending := func(n int64) Sample { return Sample{Subscribed: true, Pending: n, PendingKnown: true} }
	down := Sample{Subscribed: false}
	for name, steps := range map[string][]step{
		"failure ratio fires once and recovers": {
			{0, up(0, 0), nil, false},
			{20 * time.Second, up(20, 15), []string{"+" + CondFailureRatio}, false},
			{20 * time.Second, up(40, 30), nil, false}, // still failing: no repeat
			// A minute of successes pushes the failures out of the window.
			{70 * time.Second, up(100, 30), []string{"-" + CondFailureRatio}, false},
			{10 * time.Second, up(110, 30), nil, false},
		},
		"too few attempts do not count": {
			{0, up(0, 0), nil, false},
			{10 * time.Second, up(5, 5), nil, false},
		},
		"ratio at the threshold does not fire": {
			{0, up(0, 0), nil, false},
			{10 * time.Second, up(20, 10), nil, false},
		},
		"no traffic clears a firing ratio": {
			{0, up(0, 0), nil, false},
			{10 * time.Second, up(20, 20), []string{"+" + CondFailureRatio}, false},
			{2 * time.Minute, up(20, 20), []string{"-" + CondFailureRatio}, false},
		},
		"realtime down longer than the threshold": {
			{0, down, nil, false},
			{time.Minute, down, nil, false},
			{61 * time.Second, down, []string{"+" + CondRealtimeDown}, false},
			{time.Minute, down, nil, false},
			{time.Second, up(0, 0), []string{"-" + CondRealtimeDown}, false},
			{time.Second, down, nil, false}, // the clock restarts
			{time.Minute, down, nil, false},
		},
		"short realtime blips never fire": {
			{0, down, nil, false},
			{90 * time.Second, up(0, 0), nil, false},
			{time.Second, down, nil, false},
			{90 * time.Second, down, nil, false},
		},
		"backlog above the threshold": {
			{0, pending(100), nil, false},
			{time.Second, pending(101), []string{"+" + CondBacklog}, false},
			{time.Second, Sample{Subscribed: true}, nil, false}, // unknown: keeps state
			{time.Second, pending(5000), nil, false},
			{time.Second, pending(3), []string{"-" + CondBacklog}, false},
		},
		"reconciliation lag fires and clears": {
			{0, Sample{Subscribed: true, ReconcileLag: time.Second}, nil, false},
			{time.Second, Sample{Subscribed: true, ReconcileLag: 2 * time.Minute}, []string{"+" + CondReconcileLag}, false},
			{time.Second, Sample{Subscribed: true, ReconcileLag: 3 * time.Minute}, nil, false},
			{time.Second, Sample{Subscribed: true, ReconcileLag: 2 * time.Second}, []string{"-" + CondReconcileLag}, false},
		},
		"undelivered notices are produced again": {
			{0, pending(500), []string{"+" + CondBacklog}, true},
			{time.Second, pending(500), []string{"+" + CondBacklog}, false},
			{time.Second, pending(500), nil, false},
		},
		"several conditions at once": {
			{0, Sample{Pending: 200, PendingKnown: true}, []string{"+" + CondBacklog}, false},
			{3 * time.Minute, Sample{Pending: 200, PendingKnown: true}, []string{"+" + CondRealtimeDown}, false},
			{time.Second, pending(0), []string{"-" + CondBacklog, "-" + CondRealtimeDown}, false},
		},
	} {
		t.Run(name, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			w := NewWatchdog(th, func() time.Time { return now })
			for i, s := range steps {
				now = now.Add(s.advance)
				got := w.Evaluate(s.sample)
				want := s.want
				if want == nil {
					want = []string{}
				}
				require.Equal(t, want, notices(got), "step %d", i)
				if !s.noAck {
					for _, n := range got {
						w.Ack(n)
					}
				}
			}
		})
	}
}

func TestWatchdogDisabledConditions(t *testing.T) {
	w := NewWatchdog(Thresholds{}, nil)
	got := w.Evaluate(Sample{Attempts: 100, Failures: 100, Pending: 1 << 40, PendingKnown: true})
	assert.Empty(t, got)
	assert.Empty(t, w.Firing())
}

type noStore struct{}

func (noStore) LeaseDue(context.Context, time.Time, time.Time, int) ([]sender.Alert, error) {
	return nil, nil
}
func (noStore) Report(context.Context, []sender.Report) (map[string]bool, error) { return nil, nil }
func (noStore) DisableConfig(context.Context, string, string) error              { return nil }

func TestWatchdogSendsSignedNotices(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rcv, err := sendertest.NewReceiver(secret)
	require.NoError(t, err)
	defer rcv.Close()
	snd, err := sender.New(sender.Options{AllowInsecureHTTP: true, AllowedNetworks: []string{"127.0.0.1"},
		RequestTimeout: 5 * time.Second}, noStore{}, nil)
	require.NoError(t, err)
	notifier := &WebhookNotifier{Sender: snd, URL: rcv.URL + "/ops", Secret: secret}

	var pending atomic.Int64
	pending.Store(50)
	sample := func(context.Context) Sample {
		return Sample{Subscribed: true, Pending: pending.Load(), PendingKnown: true}
	}
	w := NewWatchdog(Thresholds{PendingBacklog: 10}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunWatchdog(ctx, w, 10*time.Millisecond, sample, notifier.Notify, nil) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	got, err := rcv.Wait(wctx, 1)
	require.NoError(t, err)
	pending.Store(0)
	got, err = rcv.Wait(wctx, 2)
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // further checks send nothing more
	require.Len(t, rcv.Deliveries(), 2)

	for i, want := range []struct {
		typ    string
		firing bool
	}{{NoticeFiring, true}, {NoticeResolved, false}} {
		d := got[i]
		require.NoError(t, d.VerifyErr, "the notice is signed with ops.alert_secret")
		assert.Equal(t, "/ops", d.Path)
		var body noticeBody
		require.NoError(t, json.Unmarshal(d.Body, &body))
		assert.Equal(t, want.typ, body.Type)
		assert.Equal(t, CondBacklog, body.Data.Condition)
		assert.Equal(t, want.firing, body.Data.Firing)
	}
	assert.NotEqual(t, got[0].ID, got[1].ID)
}

func TestWebhookNotifierReportsFailures(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	rcv, err := sendertest.NewReceiver(secret)
	require.NoError(t, err)
	defer rcv.Close()
	rcv.Script(500)
	snd, err := sender.New(sender.Options{AllowInsecureHTTP: true, AllowedNetworks: []string{"127.0.0.1"},
		RequestTimeout: 5 * time.Second}, noStore{}, nil)
	require.NoError(t, err)
	n := &WebhookNotifier{Sender: snd, URL: rcv.URL, Secret: secret}
	err = n.Notify(context.Background(), Notice{Condition: CondBacklog, Firing: true, At: time.Now()})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "500")

	// The SSRF guard applies: a private address not allowed is refused.
	strict, err := sender.New(sender.Options{AllowInsecureHTTP: true, RequestTimeout: 5 * time.Second}, noStore{}, nil)
	require.NoError(t, err)
	n.Sender = strict
	err = n.Notify(context.Background(), Notice{Condition: CondBacklog, Firing: true, At: time.Now()})
	require.Error(t, err)
	assert.False(t, errors.Is(err, context.Canceled))
	assert.Len(t, rcv.Deliveries(), 1, "the refused notice never reached the receiver")
}

func TestWatchdogReportsEachDisabledRuleOnceAcknowledged(t *testing.T) {
	w := NewWatchdog(Thresholds{}, nil)
	var d DisabledRules
	at := time.Now()
	d.Add("rule-a", "endpoint answered 410 Gone", at)
	d.Add("rule-b", "endpoint answered 410 Gone", at.Add(time.Second))

	got := w.Evaluate(Sample{Disabled: d.Drain()})
	require.Len(t, got, 2)
	assert.Equal(t, []string{"+rule_disabled", "+rule_disabled"}, notices(got))
	assert.Equal(t, "rule-a", got[0].RuleID)
	assert.Contains(t, got[0].Message, "rule-a")
	assert.Contains(t, got[0].Message, "410 Gone")
	assert.Empty(t, d.Drain(), "drained once")

	// rule-a's notice was delivered, rule-b's was not: only rule-b again.
	w.Ack(got[0])
	again := w.Evaluate(Sample{})
	require.Len(t, again, 1)
	assert.Equal(t, "rule-b", again[0].RuleID)
	w.Ack(again[0])
	assert.Empty(t, w.Evaluate(Sample{}))
	assert.Empty(t, w.Firing(), "an event is not a firing condition")
}

func TestDisabledRulesKeepsTheNewest(t *testing.T) {
	var d DisabledRules
	for i := range maxEvents + 5 {
		d.Add(fmt.Sprint(i), "gone", time.Now())
	}
	got := d.Drain()
	require.Len(t, got, maxEvents)
	assert.Equal(t, "5", got[0].RuleID)
}
