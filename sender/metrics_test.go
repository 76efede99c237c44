package sender

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordingObserver records ObserveDispatch calls.
type recordingObserver struct {
	mu       sync.Mutex
	got      []Dispatch
	attempts []string
}

func (o *recordingObserver) ObserveAttempt(event, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts = append(o.attempts, event+"/"+reason)
}

func (o *recordingObserver) ObserveDispatch(d Dispatch) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, d)
}

func (o *recordingObserver) calls() []Dispatch {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Dispatch(nil), o.got...)
}

func TestObserverSeesFirstAttemptsOnly(t *testing.T) {
	rcvA, rcvB := newReceiver(t), newReceiver(t)
	rcvA.Script(500) // a1's first attempt fails; its retry must not be observed
	a := alert("a1", rcvA.URL)
	a.OccurredAt = time.Now().Add(-time.Second)
	a.ReceivedAt = time.Now().Add(-100 * time.Millisecond)
	b := alert("b1", rcvB.URL) // no commit time: nothing to measure from
	obs := &recordingObserver{}
	opts := fastOptions()
	opts.Observer = obs
	store := newMemStore(a, b)
	s, stop := runSender(t, opts, store)
	s.Wake()
	eventually(t, func() bool { return store.allDone("a1", "b1") }, "both alerts delivered")
	stop()
	require.Len(t, store.attemptsOf("a1"), 2)
	got := obs.calls()
	require.Len(t, got, 1, "one observation: a1's first attempt")
	obs.mu.Lock()
	assert.ElementsMatch(t, []string{"failed/http_500", "failed/ok", "failed/ok"}, obs.attempts, "every attempt is reported")
	obs.mu.Unlock()
	d := got[0]
	require.True(t, d.WasSent)
	require.True(t, d.GotResponse)
	assert.GreaterOrEqual(t, d.Sent, time.Second, "measured from the commit time")
	assert.GreaterOrEqual(t, d.Responded, d.Sent, "the response comes after the first byte")
	require.True(t, d.HasDaemon)
	assert.GreaterOrEqual(t, d.Daemon, 100*time.Millisecond, "the daemon's share is measured from the change's arrival")
	assert.Less(t, d.Daemon, d.Sent, "and is part of the whole")
}
