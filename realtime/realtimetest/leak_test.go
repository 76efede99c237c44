package realtimetest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestServerAndCDC_CloseLeavesNoGoroutines(t *testing.T) {
	db := pgtest.Shared(t).NewDatabase(t)
	_, err := db.Pool.Exec(context.Background(), itemsDDL)
	require.NoError(t, err)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	srv := NewServer(Options{JWTSecret: pgtest.JWTSecret, SubscribeDelay: time.Hour})
	hs := httptest.NewServer(http.HandlerFunc(srv.ServeHTTP))
	cdc, err := StartCDC(context.Background(), db.URL, srv, CDCOptions{})
	require.NoError(t, err)
	ts := &testServer{Server: srv, HTTP: hs}

	// A subscribed channel, one waiting for its subscription, and an idle socket.
	c1 := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	srv.SetSubscribeDelay(0)
	c1.joinAndSubscribe("realtime:a", joinPayload(pgtest.UserToken("u", time.Hour), itemsBinding))
	srv.SetSubscribeDelay(time.Hour)
	c2 := dialClient(t, ts, "1.0.0", pgtest.AnonKey())
	c2.join("realtime:b", joinPayload("", itemsBinding))
	c2.nextEvent("realtime:b", "phx_reply")
	c3 := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	_, err = db.Pool.Exec(context.Background(), `insert into public.rt_items (id) values (1)`)
	require.NoError(t, err)
	c1.nextEvent("realtime:a", "postgres_changes")

	require.NoError(t, cdc.Close())
	srv.Close()
	hs.Close()
	for _, c := range []*rawClient{c1, c2, c3} {
		c.waitClosed()
	}
}
