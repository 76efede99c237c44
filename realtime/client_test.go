package realtime

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestClient_JoinHappyPath(t *testing.T) {
	for _, vsn := range []string{VsnV2, VsnV1} {
		t.Run(vsn, func(t *testing.T) {
			srv := newFakeServer(t)
			cfg := testConfig(srv)
			cfg.Vsn = vsn
			cfg.HeartbeatInterval = 100 * time.Millisecond
			spec := ChannelSpec{Name: "db", Bindings: []Binding{
				{Event: "*", Schema: "public", Table: "workflow_runs"},
				{Event: "update", Schema: "public", Table: "alert_configs", Filter: "project_id=eq.7"},
				{Event: "INSERT", Schema: "audit"},
			}}
			h := startClient(t, srv, cfg, spec)

			fc := srv.waitConn(t)
			require.Equal(t, testAPIKey, fc.query.Get("apikey"))
			require.Equal(t, vsn, fc.query.Get("vsn"))

			join := joinOf(t, fc)
			require.Equal(t, "realtime:db", join.Topic)
			require.Equal(t, testAPIKey, join.Payload["access_token"])
			var wantCfg map[string]any
			require.NoError(t, json.Unmarshal([]byte(`{
				"broadcast": {"ack": false, "self": false},
				"presence": {"key": "", "enabled": false},
				"postgres_changes": [
					{"event": "*", "schema": "public", "table": "workflow_runs"},
					{"event": "UPDATE", "schema": "public", "table": "alert_configs", "filter": "project_id=eq.7"},
					{"event": "INSERT", "schema": "audit"}
				],
				"private": false}`), &wantCfg))
			require.Equal(t, wantCfg, join.Payload["config"], "join config; absent keys must be omitted")

			h.nextReady("db")
			st := h.c.Stats()
			require.Equal(t, StateConnected, st.State)
			require.Equal(t, StateSubscribed, st.Channels[0].State)
			require.Equal(t, join.joinRef(), st.Channels[0].JoinRef)

			ids := idsOf(join)
			// int8 beyond float64 precision survives.
			fc.change("realtime:db", []int64{ids[0]}, insertData("workflow_runs", json.Number("9007199254740993")))
			c := h.nextChange()
			require.Equal(t, "db", c.Channel)
			require.Equal(t, []int{0}, c.Bindings)
			require.Equal(t, "INSERT", c.Type)
			require.Equal(t, "public", c.Schema)
			require.Equal(t, "workflow_runs", c.Table)
			require.Equal(t, json.Number("9007199254740993"), c.Record["id"])
			require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), c.CommitTimestamp.UTC())
			require.Equal(t, []Column{{Name: "id", Type: "int8"}}, c.Columns)
			require.False(t, c.Incomplete)
			require.False(t, c.ReceivedAt.IsZero())

			// An UPDATE matching both the wildcard and the UPDATE binding.
			upd := insertData("alert_configs", 5)
			upd["type"] = "UPDATE"
			upd["old_record"] = map[string]any{"id": 5}
			fc.change("realtime:db", []int64{ids[0], ids[1]}, upd)
			c = h.nextChange()
			require.Equal(t, []int{0, 1}, c.Bindings)
			require.Equal(t, map[string]any{"id": json.Number("5")}, c.OldRecord)

			// Older servers do not filter by action: a DELETE carrying the
			// UPDATE binding's id must not be delivered, nor foreign ids.
			del := insertData("alert_configs", 5)
			del["type"] = "DELETE"
			fc.change("realtime:db", []int64{ids[1]}, del)
			fc.change("realtime:db", []int64{123}, insertData("workflow_runs", 1))
			fc.change("realtime:db", []int64{ids[2]}, insertData("audit", 77))
			c = h.nextChange()
			require.Equal(t, []int{2}, c.Bindings)
			require.Equal(t, json.Number("77"), c.Record["id"])

			// Heartbeats: topic phoenix, null join_ref, string ref, {}.
			hb := fc.waitMsg(t, "heartbeat", isEvent("heartbeat"))
			require.Equal(t, "phoenix", hb.Topic)
			require.Nil(t, hb.JoinRef)
			require.NotEmpty(t, hb.ref())
			require.Empty(t, hb.Payload)
			h.eventually("heartbeat RTT recorded", func(s Stats) bool { return s.HeartbeatRTT > 0 })
			st = h.c.Stats()
			require.Empty(t, st.Reconnects)
			require.EqualValues(t, 3, st.ChangesDelivered)
			require.EqualValues(t, 1, st.Sessions)
			require.False(t, st.LastFrameAt.IsZero())
		})
	}
}

func TestClient_JoinErrorRetries(t *testing.T) {
	srv := newFakeServer(t)
	const reason = "ConnectionRateLimitReached: Too many connected users"
	srv.setOnJoin(func(fc *fakeConn, m clientMsg, n int64) {
		if n == 1 {
			fc.rejectJoin(m, reason)
			return
		}
		fc.acceptJoin(m)
		fc.subscribed(m)
	})
	h := startClient(t, srv, testConfig(srv))
	fc := srv.waitConn(t)
	j1 := joinOf(t, fc)
	j2 := joinOf(t, fc)
	require.NotEqual(t, j1.joinRef(), j2.joinRef(), "a rejoin needs a new join_ref")
	h.nextReady("db")
	st := h.c.Stats()
	require.EqualValues(t, 1, st.JoinErrors)
	require.EqualValues(t, 2, st.Channels[0].Joins)
	require.Contains(t, st.Channels[0].LastError, reason)
	require.Empty(t, st.Reconnects, "a join error must not reconnect the socket")
	entries := h.logged("channel failed; rejoining after backoff")
	require.NotEmpty(t, entries)
	require.Contains(t, entries[0].ContextMap()["error"], reason)
}

func TestClient_JoinTimeout(t *testing.T) {
	srv := newFakeServer(t)
	var first clientMsg
	srv.setOnJoin(func(fc *fakeConn, m clientMsg, n int64) {
		switch n {
		case 1:
			first = m // no reply: the client must time out
		default:
			// The late reply to the first join is stale and ignored.
			fc.acceptJoin(first)
			fc.acceptJoin(m)
			fc.subscribed(m)
		}
	})
	cfg := testConfig(srv)
	cfg.JoinTimeout = 300 * time.Millisecond
	h := startClient(t, srv, cfg)
	fc := srv.waitConn(t)
	j1 := joinOf(t, fc)
	leave := fc.waitMsg(t, "phx_leave after timeout", isEvent("phx_leave"))
	require.Equal(t, j1.joinRef(), leave.joinRef())
	require.Equal(t, "realtime:db", leave.Topic)
	j2 := joinOf(t, fc)
	require.NotEqual(t, j1.joinRef(), j2.joinRef())
	h.nextReady("db")
	require.Equal(t, j2.joinRef(), h.c.Stats().Channels[0].JoinRef)
	require.EqualValues(t, 1, h.c.Stats().JoinErrors)
}

func TestClient_BindingMismatch(t *testing.T) {
	cases := map[string]func(m clientMsg) []any{
		"table": func(m clientMsg) []any {
			e := echoBindings(m)
			e[0].(map[string]any)["table"] = "other"
			return e
		},
		"filter added": func(m clientMsg) []any {
			e := echoBindings(m)
			e[0].(map[string]any)["filter"] = "id=eq.1"
			return e
		},
		"count": func(m clientMsg) []any { return append(echoBindings(m), echoBindings(m)...) },
		"no id": func(m clientMsg) []any {
			e := echoBindings(m)
			delete(e[0].(map[string]any), "id")
			return e
		},
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			srv := newFakeServer(t)
			srv.setOnJoin(func(fc *fakeConn, m clientMsg, n int64) {
				if n == 1 {
					fc.send(m.JoinRef, m.Ref, m.Topic, "phx_reply", okReply(map[string]any{"postgres_changes": mangle(m)}))
					return
				}
				fc.acceptJoin(m)
				fc.subscribed(m)
			})
			h := startClient(t, srv, testConfig(srv))
			fc := srv.waitConn(t)
			j1 := joinOf(t, fc)
			leave := fc.waitMsg(t, "phx_leave after mismatch", isEvent("phx_leave"))
			require.Equal(t, j1.joinRef(), leave.joinRef())
			joinOf(t, fc)
			h.nextReady("db")
			st := h.c.Stats()
			require.EqualValues(t, 1, st.JoinErrors)
			require.NotEmpty(t, st.Channels[0].LastError)
		})
	}
}

func TestClient_StaleLifecycleIgnored(t *testing.T) {
	for _, vsn := range []string{VsnV2, VsnV1} {
		t.Run(vsn, func(t *testing.T) {
			srv := newFakeServer(t)
			var first clientMsg
			srv.setOnJoin(func(fc *fakeConn, m clientMsg, n int64) {
				fc.acceptJoin(m)
				if n == 1 {
					first = m
				} else {
					// The server shuts the replaced channel down after the
					// new join: phx_close with the old join_ref (§1.7).
					fc.lifecycle(first.joinRef(), first.Topic, "phx_close")
				}
				fc.subscribed(m)
			})
			cfg := testConfig(srv)
			cfg.Vsn = vsn
			h := startClient(t, srv, cfg)
			fc := srv.waitConn(t)
			j1 := joinOf(t, fc)
			h.nextReady("db")

			// phx_error for the current instance forces a rejoin.
			fc.lifecycle(j1.joinRef(), j1.Topic, "phx_error")
			j2 := joinOf(t, fc)
			require.NotEqual(t, j1.joinRef(), j2.joinRef())
			h.nextReady("db")
			if vsn == VsnV2 {
				// A stale subscription message carries the old join_ref.
				fc.system(j1.joinRef(), j1.Topic, "postgres_changes", "ok", "Subscribed to PostgreSQL")
			}
			// Had the stale phx_close been applied, the channel would not
			// be joined and this change would not be delivered.
			fc.change("realtime:db", idsOf(j2), insertData("workflow_runs", 1))
			c := h.nextChange()
			require.Equal(t, json.Number("1"), c.Record["id"])
			require.EqualValues(t, 2, srv.joins.Load())
			require.Equal(t, StateSubscribed, h.c.Stats().Channels[0].State)
		})
	}
}

func TestClient_ReconnectAfterDrop(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, testConfig(srv))
	fc1 := srv.waitConn(t)
	j1 := joinOf(t, fc1)
	h.nextReady("db")
	fc1.change("realtime:db", idsOf(j1), insertData("workflow_runs", 1))
	h.nextChange()

	fc1.drop()
	fc2 := srv.waitConn(t)
	j2 := joinOf(t, fc2)
	require.NotEqual(t, j1.joinRef(), j2.joinRef(), "rejoin after reconnect needs a new join_ref")
	h.nextReady("db")
	fc2.change("realtime:db", idsOf(j2), insertData("workflow_runs", 2))
	require.Equal(t, json.Number("2"), h.nextChange().Record["id"])
	st := h.c.Stats()
	require.EqualValues(t, 1, st.Reconnects["connection_lost"], "reconnects: %v", st.Reconnects)
	require.EqualValues(t, 2, st.Sessions)
	require.EqualValues(t, 2, st.Channels[0].Ready)
}

// startUnansweredHeartbeats starts a client (heartbeat every 100 ms) on a
// server that never answers heartbeats, subscribed to "db".
func startUnansweredHeartbeats(t *testing.T) (*fakeServer, *harness, *fakeConn) {
	t.Helper()
	srv := newFakeServer(t)
	srv.setIgnoreHeartbeats(true)
	cfg := testConfig(srv)
	cfg.HeartbeatInterval = 100 * time.Millisecond
	h := startClient(t, srv, cfg)
	return srv, h, srv.waitConn(t)
}

func TestClient_HeartbeatTimeout(t *testing.T) {
	srv, h, fc1 := startUnansweredHeartbeats(t)
	h.nextReady("db")
	fc1.waitMsg(t, "heartbeat", isEvent("heartbeat"))
	fc1.waitClosed(t)
	code, text := fc1.receivedClose()
	require.Equal(t, websocket.CloseNormalClosure, code)
	require.Equal(t, "heartbeat timeout", text)

	srv.setIgnoreHeartbeats(false)
	h.eventually("heartbeat_timeout counted", func(s Stats) bool { return s.Reconnects["heartbeat_timeout"] >= 1 })
	// No heartbeat was answered before; an RTT proves a healthy session.
	h.eventually("answered heartbeat on a new session", func(s Stats) bool {
		return s.HeartbeatRTT > 0 && s.Sessions >= 2 && s.Channels[0].State == StateSubscribed
	})
}

// A heartbeat whose reply waits behind changes still being read (a slow
// consumer paces the reader) does not time out: frames arriving prove the
// connection alive. Once nothing arrives, it times out as before.
func TestClient_HeartbeatReplyBehindChangesIsNotATimeout(t *testing.T) {
	_, h, fc := startUnansweredHeartbeats(t)
	j := joinOf(t, fc)
	h.nextReady("db")
	for i := 1; i <= 40; i++ { // 800 ms of changes, eight heartbeat intervals
		fc.change("realtime:db", idsOf(j), insertData("workflow_runs", i))
		time.Sleep(20 * time.Millisecond)
	}
	st := h.c.Stats()
	require.Empty(t, st.Reconnects, "no heartbeat timeout while frames arrive")
	require.EqualValues(t, 1, st.Sessions)

	fc.waitClosed(t) // silence: the heartbeat times out
	code, text := fc.receivedClose()
	require.Equal(t, websocket.CloseNormalClosure, code)
	require.Equal(t, "heartbeat timeout", text)
}

func TestClient_SubscriptionErrorResubscribes(t *testing.T) {
	srv := newFakeServer(t)
	const msg = "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [event: *, schema: public, table: workflow_runs, filters: [], select: nil]"
	srv.setOnJoin(func(fc *fakeConn, m clientMsg, n int64) {
		fc.acceptJoin(m)
		if n == 1 {
			fc.system(m.joinRef(), m.Topic, "postgres_changes", "error", msg)
			return
		}
		fc.subscribed(m)
	})
	h := startClient(t, srv, testConfig(srv))
	fc := srv.waitConn(t)
	j1 := joinOf(t, fc)
	leave := fc.waitMsg(t, "phx_leave after subscription error", isEvent("phx_leave"))
	require.Equal(t, j1.joinRef(), leave.joinRef())
	joinOf(t, fc)
	h.nextReady("db")
	entries := h.logged("postgres changes subscription failed")
	require.Len(t, entries, 1)
	require.Equal(t, msg, entries[0].ContextMap()["message"])
	require.EqualValues(t, 1, h.c.Stats().JoinErrors)
}

func TestClient_TokenExpiredCloseRejoinsWithFreshToken(t *testing.T) {
	srv := newFakeServer(t)
	cfg := testConfig(srv)
	secrets := &secretList{}
	cfg.Tokens = &tokenSource{seen: secrets, make: func(n int) string { return "user-token-" + strings.Repeat("x", n) }}
	h := startClient(t, srv, cfg)
	t.Cleanup(func() {
		for _, s := range secrets.all() {
			h.secrets.add(s)
		}
	})
	fc := srv.waitConn(t)
	j1 := joinOf(t, fc)
	h.nextReady("db")
	tok1 := j1.Payload["access_token"]
	fc.system(j1.joinRef(), j1.Topic, "system", "error", "Token has expired 0 seconds ago")
	fc.lifecycle(j1.joinRef(), j1.Topic, "phx_close")
	j2 := joinOf(t, fc)
	require.NotEqual(t, tok1, j2.Payload["access_token"], "rejoin must carry a fresh token")
	require.NotEqual(t, j1.joinRef(), j2.joinRef())
	h.nextReady("db")
	require.Contains(t, h.c.Stats().Channels[0].LastError, "phx_close")
	require.NotEmpty(t, h.logged("server is shutting the channel down"))
}

func TestClient_TokenRefresh(t *testing.T) {
	for _, vsn := range []string{VsnV2, VsnV1} {
		t.Run(vsn, func(t *testing.T) {
			srv := newFakeServer(t)
			secrets := &secretList{}
			src := &tokenSource{seen: secrets, make: func(n int) string { return shortJWT(t, n, 2*time.Second) }}
			cfg := testConfig(srv)
			cfg.Vsn = vsn
			cfg.Tokens = src
			h := startClient(t, srv, cfg)
			t.Cleanup(func() {
				for _, s := range secrets.all() {
					h.secrets.add(s)
				}
			})
			fc := srv.waitConn(t)
			j := joinOf(t, fc)
			h.nextReady("db")
			tok1, _ := j.Payload["access_token"].(string)
			require.NotEmpty(t, tok1)

			at := fc.waitMsg(t, "access_token push", isEvent("access_token"))
			require.Equal(t, "realtime:db", at.Topic)
			require.Equal(t, j.joinRef(), at.joinRef(), "access_token carries the join_ref")
			require.NotEmpty(t, at.ref())
			tok2, _ := at.Payload["access_token"].(string)
			require.NotEmpty(t, tok2)
			require.NotEqual(t, tok1, tok2)
			require.Len(t, at.Payload, 1)

			// The server re-subscribes with the new claims: Ready again.
			fc.subscribed(j)
			h.nextReady("db")
			require.EqualValues(t, 1, srv.joins.Load(), "a refresh must not rejoin")
		})
	}
}

func TestClient_ServerCloseReconnects(t *testing.T) {
	cases := []struct {
		name   string
		code   int
		notice bool // "Server requested disconnect" first, as for 1012
	}{
		{"1012", websocket.CloseServiceRestart, true},
		{"1001", websocket.CloseGoingAway, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			h := startClient(t, srv, testConfig(srv))
			fc1 := srv.waitConn(t)
			j1 := joinOf(t, fc1)
			h.nextReady("db")
			// Changes sent right before the close are still delivered.
			const burst = 20
			for i := 1; i <= burst; i++ {
				fc1.change("realtime:db", idsOf(j1), insertData("workflow_runs", i))
			}
			if tc.notice {
				fc1.send(nil, nil, j1.Topic, "system", map[string]any{
					"extension": "system", "status": "ok", "message": "Server requested disconnect"})
			}
			fc1.closeWith(tc.code, "")
			fc2 := srv.waitConn(t)
			j2 := joinOf(t, fc2)
			require.NotEqual(t, j1.joinRef(), j2.joinRef())
			for i := 1; i <= burst; i++ {
				require.Equal(t, json.Number(strconv.Itoa(i)), h.nextChange().Record["id"])
			}
			h.nextReady("db")
			st := h.c.Stats()
			require.EqualValues(t, 1, st.Reconnects["close_"+tc.name], "reconnects: %v", st.Reconnects)
			if tc.notice {
				require.NotEmpty(t, h.logged("system message"))
			}
		})
	}
}

func TestClient_PayloadTooLargeIsIncomplete(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, testConfig(srv))
	fc := srv.waitConn(t)
	j := joinOf(t, fc)
	h.nextReady("db")
	data := insertData("workflow_runs", 12)
	data["record"] = map[string]any{"id": 12, "details": "test"}
	data["errors"] = []string{"Error 413: Payload Too Large"}
	fc.change("realtime:db", idsOf(j), data)
	c := h.nextChange()
	require.True(t, c.Incomplete)
	require.Equal(t, []string{"Error 413: Payload Too Large"}, c.Errors)
	require.Equal(t, json.Number("12"), c.Record["id"])
}

// floodSlowConsumer starts a client with a 4-change buffer and the given
// BufferWait, and sends it total changes (ids 1..total) nobody consumes yet.
func floodSlowConsumer(t *testing.T, wait time.Duration, total int) (*harness, *fakeConn, clientMsg) {
	t.Helper()
	srv := newFakeServer(t)
	cfg := testConfig(srv)
	cfg.BufferSize = 4
	cfg.BufferWait = wait
	cfg.HeartbeatInterval = 100 * time.Millisecond
	h := startClient(t, srv, cfg)
	fc := srv.waitConn(t)
	j := joinOf(t, fc)
	h.nextReady("db")
	for i := 1; i <= total; i++ {
		fc.change("realtime:db", idsOf(j), insertData("workflow_runs", i))
	}
	return h, fc, j
}

func TestClient_SlowConsumerGap(t *testing.T) {
	const total = 50
	h, fc, j := floodSlowConsumer(t, -1, total) // drop at once
	h.eventually("overflow dropped", func(s Stats) bool { return s.ChangesDropped == total-4 })
	// The reader keeps going while nobody consumes: heartbeats are sent
	// and answered and the session survives.
	hbBefore := h.c.Stats().FramesReceived
	for i := 0; i < 3; i++ {
		fc.waitMsg(t, "heartbeat while the consumer stalls", isEvent("heartbeat"))
	}
	h.eventually("heartbeat replies read", func(s Stats) bool { return s.FramesReceived >= hbBefore+2 })
	st := h.c.Stats()
	require.Empty(t, st.Reconnects)
	require.EqualValues(t, 1, st.Gaps)
	require.EqualValues(t, 4, st.ChangesDelivered)

	for i := 1; i <= 4; i++ {
		require.Equal(t, json.Number(strconvItoa(i)), h.nextChange().Record["id"])
	}
	ev := h.next()
	gap, ok := ev.(Gap)
	require.True(t, ok, "want Gap, got %#v", ev)
	require.Equal(t, "db", gap.Channel)
	require.Equal(t, total-4, gap.Dropped)
	require.False(t, gap.At.IsZero())

	fc.change("realtime:db", idsOf(j), insertData("workflow_runs", 99))
	require.Equal(t, json.Number("99"), h.nextChange().Record["id"])
}

// A consumer that pauses for less than BufferWait loses nothing: the client
// holds the changes back (on the socket) until there is room.
func TestClient_BriefStallWaitsInsteadOfDropping(t *testing.T) {
	const total = 50
	h, _, _ := floodSlowConsumer(t, 5*time.Second, total)
	h.eventually("buffer full", func(s Stats) bool { return s.ChangesDelivered >= 4 })
	time.Sleep(300 * time.Millisecond) // the consumer stalls, well under BufferWait
	for i := 1; i <= total; i++ {
		require.Equal(t, json.Number(strconvItoa(i)), h.nextChange().Record["id"])
	}
	h.eventually("every change delivered", func(s Stats) bool { return s.ChangesDelivered == total })
	st := h.c.Stats()
	require.Zero(t, st.ChangesDropped)
	require.Zero(t, st.Gaps)
}

func TestClient_MalformedFramesSkipped(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, testConfig(srv))
	fc := srv.waitConn(t)
	j := joinOf(t, fc)
	h.nextReady("db")
	for _, raw := range []string{
		`{{{`,
		`"just a string"`,
		`{"topic":"realtime:db","event":"postgres_changes","payload":{},"ref":null}`,
		`[null,null,"realtime:db","postgres_changes"]`,
		`[null,null,"realtime:db","postgres_changes",{"ids":[1],"data":{"record":{}}}]`,
		`[null,null,"realtime:db","postgres_changes",{"ids":"x","data":{"type":"INSERT"}}]`,
		`[null,null,"realtime:db","system",{"extension":1}]`,
	} {
		fc.sendRaw(websocket.TextMessage, []byte(raw))
	}
	fc.sendRaw(websocket.BinaryMessage, []byte{4, 1, 'x'})
	fc.send(nil, nil, "realtime:db", "presence_state", map[string]any{})
	fc.send(nil, nil, "realtime:elsewhere", "postgres_changes", map[string]any{"ids": []int{1}, "data": insertData("x", 1)})
	fc.change("realtime:db", idsOf(j), insertData("workflow_runs", 7))
	require.Equal(t, json.Number("7"), h.nextChange().Record["id"])
	st := h.c.Stats()
	require.EqualValues(t, 7, st.MalformedFrames)
	require.EqualValues(t, 3, st.IgnoredFrames)
	require.Empty(t, st.Reconnects)
	require.Len(t, h.logged("skipping malformed frame"), 7)
}

func TestClient_ShutdownLeavesAndCloses(t *testing.T) {
	for _, vsn := range []string{VsnV2, VsnV1} {
		t.Run(vsn, func(t *testing.T) {
			srv := newFakeServer(t)
			cfg := testConfig(srv)
			cfg.Vsn = vsn
			h := startClient(t, srv, cfg, dbChannel(), ChannelSpec{Name: "rules", Bindings: []Binding{{Schema: "public", Table: "alert_configs"}}})
			fc := srv.waitConn(t)
			joins := map[string]string{}
			for i := 0; i < 2; i++ {
				j := joinOf(t, fc)
				joins[j.Topic] = j.joinRef()
			}
			ready := map[string]bool{}
			for i := 0; i < 2; i++ {
				ready[h.next().(Ready).Channel] = true
			}
			require.Equal(t, map[string]bool{"db": true, "rules": true}, ready)

			require.NoError(t, h.stop())
			left := map[string]string{}
			for i := 0; i < 2; i++ {
				m := fc.waitMsg(t, "phx_leave on shutdown", isEvent("phx_leave"))
				left[m.Topic] = m.joinRef()
			}
			require.Equal(t, joins, left)
			fc.waitClosed(t)
			code, _ := fc.receivedClose()
			require.Equal(t, websocket.CloseNormalClosure, code)
			_, open := <-h.c.Events()
			require.False(t, open, "Events is closed after Run returns")
			require.Equal(t, StateDisconnected, h.c.Stats().State)
			require.ErrorIs(t, h.c.Run(t.Context()), ErrAlreadyRun)
		})
	}
}

func TestClient_HandshakeErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   string
	}{
		{401, `{"error":"API key is missing"}`, "HTTP 401: API key is missing"},
		{403, `{"error":"Realtime was disabled for this tenant"}`, "HTTP 403: Realtime was disabled for this tenant"},
		{404, `{"error":"Tenant not found"}`, "HTTP 404: Tenant not found"},
		{429, `{"error":"Too many connected users"}`, "HTTP 429: Too many connected users"},
		{403, ``, "HTTP 403: Forbidden"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			srv := newFakeServer(t)
			srv.setReject(&fakeReject{status: tc.status, body: tc.body})
			h := startClient(t, srv, testConfig(srv))
			h.eventually("handshake failure recorded", func(s Stats) bool {
				return s.Reconnects["handshake_"+strconvItoa(tc.status)] >= 2
			})
			require.Contains(t, h.c.Stats().LastError, tc.want)
			srv.setReject(nil)
			srv.waitConn(t)
			h.nextReady("db")
		})
	}
}

func TestClient_StateChanges(t *testing.T) {
	srv := newFakeServer(t)
	cfg := testConfig(srv)
	var mu sync.Mutex
	var got []string
	cfg.OnStateChange = func(sc StateChange) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, sc.Channel+":"+string(sc.From)+">"+string(sc.To))
	}
	h := startClient(t, srv, cfg)
	srv.waitConn(t)
	h.nextReady("db")
	require.NoError(t, h.stop())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{
		":disconnected>connecting",
		":connecting>connected",
		"db:closed>joining",
		"db:joining>joined",
		"db:joined>subscribed",
		"db:subscribed>closed",
		":connected>disconnected",
	}, got)
}

func TestClient_RoutesByTopic(t *testing.T) {
	srv := newFakeServer(t)
	h := startClient(t, srv, testConfig(srv), dbChannel(),
		ChannelSpec{Name: "rules", Bindings: []Binding{{Event: "*", Schema: "public", Table: "alert_configs"}}})
	fc := srv.waitConn(t)
	joins := map[string]clientMsg{}
	for i := 0; i < 2; i++ {
		j := joinOf(t, fc)
		joins[j.Topic] = j
	}
	h.next()
	h.next()
	fc.change("realtime:rules", idsOf(joins["realtime:rules"]), insertData("alert_configs", 3))
	c := h.nextChange()
	require.Equal(t, "rules", c.Channel)
	require.Equal(t, "alert_configs", c.Table)
	// The db channel's ids on the rules topic match nothing.
	fc.change("realtime:rules", idsOf(joins["realtime:db"]), insertData("workflow_runs", 4))
	fc.change("realtime:db", idsOf(joins["realtime:db"]), insertData("workflow_runs", 5))
	c = h.nextChange()
	require.Equal(t, "db", c.Channel)
	require.Equal(t, json.Number("5"), c.Record["id"])
}

func TestClient_NoGoroutineLeak(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	srv := newFakeServer(t)
	cfg := testConfig(srv)
	cfg.HeartbeatInterval = 50 * time.Millisecond
	h := startClient(t, srv, cfg)
	fc := srv.waitConn(t)
	h.nextReady("db")
	fc.drop()
	srv.waitConn(t)
	h.nextReady("db")
	require.NoError(t, h.stop())
	srv.close()
	goleak.VerifyNone(t, ignore)
}

func strconvItoa(i int) string { return strconv.Itoa(i) }
