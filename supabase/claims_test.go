package supabase_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/supabase"
)

func TestIntegration_ClaimAlertsInOneCall(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()

	// One alert claimed before.
	_, claimed := claim(t, f.store, f.newAlert("run-0", "msg_0"))
	require.True(t, claimed)

	var batch []supabase.NewAlert
	for i := range 4 {
		batch = append(batch, f.newAlert(fmt.Sprintf("run-%d", i), fmt.Sprintf("msg_%d", i)))
	}
	suppressed := f.newAlert("run-9", "msg_9")
	suppressed.Status, suppressed.OutcomeReason, suppressed.CompletedAt = supabase.StatusSuppressed, "throttled", time.Now()
	batch = append(batch, suppressed)
	gone := f.newAlert("run-8", "msg_8")
	gone.ConfigID = "00000000-0000-4000-8000-000000000099" // no such rule
	batch = append(batch, gone)

	got, err := f.store.ClaimAlerts(ctx, batch)
	require.NoError(t, err)
	keys := map[supabase.ClaimKey]supabase.ClaimedAlert{}
	for _, c := range got {
		keys[c.Key()] = c
	}
	require.Len(t, keys, 4, "run-0 was claimed before and the deleted rule's alert is skipped")
	for i := 1; i < 4; i++ {
		c, ok := keys[batch[i].Key()]
		require.True(t, ok, "run-%d", i)
		assert.Equal(t, supabase.StatusPending, c.Status)
		assert.False(t, c.NextAttemptAt.IsZero(), "a pending alert is due now")
		l, err := f.store.GetAlert(ctx, c.ID)
		require.NoError(t, err)
		assert.Equal(t, batch[i].WebhookID, l.WebhookID)
		assert.Equal(t, string(batch[i].Payload), string(l.Payload))
		assert.True(t, l.OccurredAt.Equal(batch[i].OccurredAt))
	}
	s := keys[suppressed.Key()]
	assert.Equal(t, supabase.StatusSuppressed, s.Status)
	assert.True(t, s.NextAttemptAt.IsZero(), "a suppressed alert is never due")

	again, err := f.store.ClaimAlerts(ctx, batch)
	require.NoError(t, err)
	assert.Empty(t, again, "claims are idempotent")

	// Leased at insert: delivering until the lease, not handed out by
	// LeaseDueAlerts before it expires.
	until := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	held := f.newAlert("run-20", "msg_20")
	held.Status, held.NextAttemptAt = supabase.StatusDelivering, until
	leased, err := f.store.ClaimAlerts(ctx, []supabase.NewAlert{held})
	require.NoError(t, err)
	require.Len(t, leased, 1)
	assert.Equal(t, supabase.StatusDelivering, leased[0].Status)
	assert.True(t, leased[0].NextAttemptAt.Equal(until), "%s", leased[0].NextAttemptAt)
	due, err := f.store.LeaseDueAlerts(ctx, time.Now(), time.Now().Add(time.Minute), 100)
	require.NoError(t, err)
	for _, d := range due {
		assert.NotEqual(t, leased[0].ID, d.ID)
	}
}

func TestIntegration_ClaimAlertsRacingClaimsNeverDuplicate(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	var batch []supabase.NewAlert
	for i := range 50 {
		batch = append(batch, f.newAlert(fmt.Sprintf("run-%d", i), fmt.Sprintf("msg_%d", i)))
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won = map[supabase.ClaimKey]int{}
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.store.ClaimAlerts(context.WithoutCancel(ctx), batch)
			assert.NoError(t, err)
			mu.Lock()
			for _, c := range got {
				won[c.Key()]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Len(t, won, len(batch))
	for k, n := range won {
		assert.Equal(t, 1, n, "%v claimed %d times", k, n)
	}
}

func TestIntegration_ClaimAlertsNamesTheBadAlert(t *testing.T) {
	f := newFixture(t)
	a := f.newAlert("run-1", "")
	_, err := f.store.ClaimAlerts(t.Context(), []supabase.NewAlert{f.newAlert("run-0", "msg_0"), a})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "alert 1")
	assert.Contains(t, err.Error(), "webhook_id")
}
