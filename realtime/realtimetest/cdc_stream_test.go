package realtimetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

// TestCDC_CloseInterruptsAWaitingRead closes a CDC whose read waits for a
// status update an hour away: Close must not wait for it.
func TestCDC_CloseInterruptsAWaitingRead(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, itemsDDL)
	require.NoError(t, err)
	ts := newTestServer(t, Options{})
	cdc, err := StartCDC(ctx, db.URL, ts.Server, CDCOptions{StatusInterval: time.Hour})
	require.NoError(t, err)
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:r", joinPayload("", itemsBinding))
	_, err = db.Pool.Exec(ctx, `insert into public.rt_items (id) values (1)`)
	require.NoError(t, err)
	assert.Equal(t, "1", string(dataOf(t, c.next()).Record["id"]), "changes flow with a long status interval")

	closed := make(chan error, 1)
	go func() { closed <- cdc.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatalf("Close still waiting after %s", waitTimeout)
	}
	assert.NoError(t, cdc.Err())
}

// TestCDC_CloseWaitsForTheSlot checks that the temporary slot is gone once
// Close returns, so that the database can be dropped right away.
func TestCDC_CloseWaitsForTheSlot(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	ctx := context.Background()
	ts := newTestServer(t, Options{})
	slots := func() int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from pg_replication_slots
			where database = current_database()`).Scan(&n))
		return n
	}
	for range 3 {
		cdc, err := StartCDC(ctx, db.URL, ts.Server, CDCOptions{})
		require.NoError(t, err)
		require.Equal(t, 1, slots())
		require.NoError(t, cdc.Close())
		require.Equal(t, 0, slots(), "slot dropped by the time Close returns")
	}
}
