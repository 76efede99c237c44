package realtimetest

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestFaults_DropConnections(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	c.heartbeat()
	c.next()
	ts.DropConnections(websocket.CloseTryAgainLater, "maintenance")
	err := c.waitClosed()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseTryAgainLater, ce.Code)
	assert.Equal(t, "maintenance", ce.Text)
	require.Eventually(t, func() bool { return ts.Connections() == 0 }, waitTimeout, 10*time.Millisecond)
}

func TestFaults_KillConnections(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "1.0.0", pgtest.AnonKey())
	c.join("realtime:k", joinPayload("", allPublic))
	c.nextEvent("realtime:k", "system")
	ts.KillConnections()
	err := c.waitClosed()
	assert.Equal(t, websocket.CloseAbnormalClosure, closeCode(err), "no close frame: %v", err)
	require.Eventually(t, func() bool { return ts.Connections() == 0 }, waitTimeout, 10*time.Millisecond)
	assert.Empty(t, ts.JoinedTopics())
	assert.Equal(t, 1, ts.TotalConnections())
}

func TestFaults_ServerDisconnect(t *testing.T) {
	t.Run("1012 with Server requested disconnect", func(t *testing.T) {
		ts := newTestServer(t, Options{})
		c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
		c.joinAndSubscribe("realtime:room", joinPayload("", allPublic))
		ts.ServerDisconnect(websocket.CloseServiceRestart)
		f := c.next()
		assert.Equal(t, `[null,null,"realtime:room","system",{"message":"Server requested disconnect","status":"ok","extension":"system"}]`, f.Raw)
		assert.Equal(t, websocket.CloseServiceRestart, closeCode(c.waitClosed()))
	})
	t.Run("1001 without message", func(t *testing.T) {
		ts := newTestServer(t, Options{})
		c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
		c.joinAndSubscribe("realtime:room", joinPayload("", allPublic))
		ts.ServerDisconnect(websocket.CloseGoingAway)
		assert.Equal(t, websocket.CloseGoingAway, closeCode(c.waitClosed()))
	})
}

func TestFaults_ChannelPushes(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	jr, _ := c.joinAndSubscribe("realtime:ch", joinPayload("", allPublic))

	assert.Equal(t, 1, ts.SendSystemError("ch", "postgres_changes", `{:error, "Too many database timeouts"}`, false))
	f := c.next()
	assert.Equal(t, `["`+jr+`",null,"realtime:ch","system",{"message":"{:error, \"Too many database timeouts\"}","status":"error","extension":"postgres_changes","channel":"ch"}]`, f.Raw)

	assert.Equal(t, 1, ts.ResendSubscribed("realtime:ch"))
	f = c.next()
	assert.Equal(t, "Subscribed to PostgreSQL", f.payloadMap(t)["message"])

	assert.Equal(t, 1, ts.SendSystemError("ch", "system", "Too many messages per second", true))
	f = c.next()
	assert.Equal(t, "Too many messages per second", f.payloadMap(t)["message"])
	f = c.next()
	assert.Equal(t, `["`+jr+`","`+jr+`","realtime:ch","phx_close",{}]`, f.Raw)
	assert.Zero(t, ts.SendPhxError("ch"), "channel already closed")

	jr2, _ := c.joinAndSubscribe("realtime:ch", joinPayload("", allPublic))
	assert.Equal(t, 1, ts.SendPhxError("ch"))
	f = c.next()
	assert.Equal(t, `["`+jr2+`","`+jr2+`","realtime:ch","phx_error",{}]`, f.Raw)
	assert.Empty(t, ts.JoinedTopics())
}

func TestFaults_JoinDelayAndRefusal(t *testing.T) {
	ts := newTestServer(t, Options{JoinErrorDelay: 200 * time.Millisecond})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	ts.SetJoinDelay(300 * time.Millisecond)
	start := time.Now()
	c.join("realtime:d", joinPayload(""))
	rep := c.next()
	assert.Equal(t, "ok", rep.payloadMap(t)["status"])
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	ts.SetJoinDelay(0)
	ts.RefuseJoins("RealtimeRestarting: Realtime is restarting, please standby", 2)
	for range 2 {
		start = time.Now()
		c.join("realtime:d", joinPayload(""))
		rep = c.nextEvent("realtime:d", "phx_reply")
		assert.JSONEq(t, `{"status":"error","response":{"reason":"RealtimeRestarting: Realtime is restarting, please standby"}}`, string(rep.Payload))
		assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	}
	c.join("realtime:d", joinPayload(""))
	rep = c.nextEvent("realtime:d", "phx_reply")
	assert.Equal(t, "ok", rep.payloadMap(t)["status"])
}

func TestFaults_DropAndTruncateChanges(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	c.joinAndSubscribe("realtime:x", joinPayload("", allPublic))
	change := func(id int) Change {
		return Change{
			Schema: "public", Table: "t", Type: Insert, CommitTimestamp: time.Now(),
			Columns: []Column{{"id", "int8"}, {"body", "text"}, {"short", "text"}},
			Record:  map[string]any{"id": id, "body": stringOf('x', 100), "short": "ok"},
		}
	}
	ts.DropChanges(2)
	for i := 1; i <= 3; i++ {
		require.NoError(t, ts.Publish(change(i)))
	}
	f := c.next()
	assert.Equal(t, "3", string(mustField(t, f, "record", "id")))
	assert.Equal(t, 2, ts.DroppedChanges())

	ts.TruncateNext(1)
	require.NoError(t, ts.Publish(change(4)))
	require.NoError(t, ts.Publish(change(5)))
	f = c.next()
	data := f.payloadMap(t)["data"].(map[string]any)
	assert.Equal(t, []any{ErrorPayloadTooLarge}, data["errors"])
	assert.Equal(t, map[string]any{"id": jsonNumber("4"), "short": "ok"}, data["record"])
	f = c.next()
	data = f.payloadMap(t)["data"].(map[string]any)
	assert.Nil(t, data["errors"])
	assert.Len(t, data["record"], 3)
}

func stringOf(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
