package sender

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/sender/sendertest"
)

// redelivered is an alert that used its three attempts two days ago (the
// third succeeded) and was then redelivered: its budget starts afresh.
func redelivered(id, url string) Alert {
	a := alert(id, url)
	a.CreatedAt = time.Now().Add(-48 * time.Hour)
	a.Attempts, a.AttemptBase, a.RedeliveredAt = 3, 3, time.Now()
	return a
}

// addUsed stores alerts as pending with their Attempts already made.
func addUsed(m *memStore, alerts ...Alert) {
	m.add(time.Now(), alerts...)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range alerts {
		m.rows[a.ID].attempts = a.Attempts
	}
}

func TestRedeliveryAfterTheLastAttemptIsAttempted(t *testing.T) {
	rcv := newReceiver(t)
	opts := fastOptions()
	opts.Schedule.MaxAttempts = 3 // and MaxAge a minute: the alert is two days old
	store := newMemStore()
	addUsed(store, redelivered("again", rcv.URL+"/hook"))
	runSender(t, opts, store)

	got := waitDeliveries(t, rcv, 1)
	require.NoError(t, got[0].VerifyErr)
	assert.Equal(t, "msg_again", got[0].ID, "the same webhook-id")
	eventually(t, func() bool { return store.allDone("again") }, "the redelivery finishes")
	assert.Equal(t, StatusSucceeded, store.status("again"))
	as := store.attemptsOf("again")
	require.Len(t, as, 1)
	assert.Equal(t, 4, as[0].Attempt, "attempt numbers keep counting")
	assert.Equal(t, "ok", as[0].Outcome)
	assert.Equal(t, 4, store.row("again").attempts)
}

func TestRedeliveryGetsAFreshSetOfRetries(t *testing.T) {
	rcv := newReceiver(t)
	rcv.ScriptSteps(sendertest.Status(500), sendertest.Status(500), sendertest.Status(500), sendertest.Status(200))
	opts := fastOptions()
	opts.Schedule.MaxAttempts = 3
	store := newMemStore()
	addUsed(store, redelivered("retried", rcv.URL+"/hook"))
	runSender(t, opts, store)

	eventually(t, func() bool { return store.allDone("retried") }, "the redelivery finishes")
	as := store.attemptsOf("retried")
	assert.Equal(t, []string{"http_500", "http_500", "http_500"}, outcomes(as), "three attempts, then it gives up")
	require.Len(t, as, 3)
	assert.Equal(t, []int{4, 5, 6}, []int{as[0].Attempt, as[1].Attempt, as[2].Attempt})
	assert.Equal(t, StatusFailed, store.status("retried"))
	assert.Equal(t, "gave_up_http_500", store.row("retried").reason)
	assert.Len(t, rcv.Deliveries(), 3)
}

func TestAlertWithoutRedeliveryStillGivesUp(t *testing.T) {
	rcv := newReceiver(t)
	opts := fastOptions()
	opts.Schedule.MaxAttempts = 3
	a := alert("spent", rcv.URL+"/hook")
	a.Attempts = 3
	store := newMemStore()
	addUsed(store, a)
	runSender(t, opts, store)

	eventually(t, func() bool { return store.allDone("spent") }, "the alert finishes")
	assert.Equal(t, StatusFailed, store.status("spent"))
	assert.Equal(t, "gave_up", store.row("spent").reason)
	assert.Empty(t, store.attemptsOf("spent"), "no attempt past the budget")
	assert.Empty(t, rcv.Deliveries())
}
