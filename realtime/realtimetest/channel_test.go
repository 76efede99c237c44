package realtimetest

import (
	"regexp"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

var allPublic = map[string]any{"event": "*", "schema": "public"}

func TestChannel_JoinErrorDelayBlocksSocket(t *testing.T) {
	ts := newTestServer(t, Options{JoinErrorDelay: 400 * time.Millisecond})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	start := time.Now()
	c.join("realtime:", joinPayload(""))
	hb := c.heartbeat() // queued behind the join, like Phoenix's transport
	rep := c.next()
	assert.Equal(t, "phx_reply", rep.Event)
	assert.Equal(t, "realtime:", rep.Topic)
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond)
	hbRep := c.next()
	assert.JSONEq(t, `"`+hb+`"`, string(hbRep.Ref))
}

func TestChannel_DuplicateJoin(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			old, _ := c.joinAndSubscribe("realtime:dup", joinPayload("", allPublic))
			jr := c.join("realtime:dup", joinPayload("", allPublic))

			rep := c.next()
			assert.Equal(t, "phx_reply", rep.Event)
			assert.JSONEq(t, `"`+jr+`"`, string(rep.Ref))
			closeF := c.next()
			assert.Equal(t, "phx_close", closeF.Event)
			assert.JSONEq(t, `"`+old+`"`, string(closeF.Ref), "phx_close carries the OLD join_ref")
			if vsn == "2.0.0" {
				assert.Equal(t, `["`+old+`","`+old+`","realtime:dup","phx_close",{}]`, closeF.Raw)
			}
			sys := c.next()
			assert.Equal(t, "system", sys.Event)
			if vsn == "2.0.0" {
				assert.JSONEq(t, `"`+jr+`"`, string(sys.JoinRef))
			}
			assert.Equal(t, []string{"realtime:dup"}, ts.JoinedTopics())
		})
	}
}

func TestChannel_Leave(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			jr, _ := c.joinAndSubscribe("realtime:l", joinPayload("", allPublic))
			ref := c.nextRef()
			c.push(&jr, &ref, "realtime:l", "phx_leave", map[string]any{})
			rep := c.next()
			assert.Equal(t, "phx_reply", rep.Event)
			assert.JSONEq(t, `"`+ref+`"`, string(rep.Ref))
			assert.JSONEq(t, `{"status":"ok","response":{}}`, string(rep.Payload))
			cl := c.next()
			assert.Equal(t, "phx_close", cl.Event)
			assert.JSONEq(t, `"`+jr+`"`, string(cl.Ref))
			if vsn == "2.0.0" {
				assert.Equal(t, `["`+jr+`","`+ref+`","realtime:l","phx_reply",{"status":"ok","response":{}}]`, rep.Raw)
				assert.Equal(t, `["`+jr+`","`+jr+`","realtime:l","phx_close",{}]`, cl.Raw)
			}
			assert.Empty(t, ts.JoinedTopics())
			assert.Equal(t, 1, ts.Leaves())

			// A push to the closed topic is unmatched; a second leave is answered ok.
			ref = c.nextRef()
			c.push(&jr, &ref, "realtime:l", "access_token", map[string]any{"access_token": pgtest.AnonKey()})
			rep = c.next()
			assert.JSONEq(t, `{"status":"error","response":{"reason":"unmatched topic"}}`, string(rep.Payload))
			assert.Equal(t, "null", string(orNull(rep.JoinRef)))
			ref = c.nextRef()
			c.push(&jr, &ref, "realtime:l", "phx_leave", map[string]any{})
			rep = c.next()
			assert.JSONEq(t, `{"status":"ok","response":{}}`, string(rep.Payload))
		})
	}
}

func TestChannel_AccessToken(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{ResubscribeDelay: 50 * time.Millisecond})
			c := dialClient(t, ts, vsn, pgtest.AnonKey())
			tok := pgtest.UserToken("user-1", time.Hour)
			jr, _ := c.joinAndSubscribe("realtime:a", joinPayload(tok, allPublic))

			// Same token, null and sb_ keys are ignored silently.
			for _, p := range []map[string]any{{"access_token": tok}, {"access_token": nil}, {"access_token": "sb_secret_x"}} {
				ref := c.nextRef()
				c.push(&jr, &ref, "realtime:a", "access_token", p)
			}
			c.expectNone(300 * time.Millisecond)

			// A new valid token: no reply, but a fresh "Subscribed to PostgreSQL".
			ref := c.nextRef()
			newTok := pgtest.UserToken("user-1", 2*time.Hour)
			c.push(&jr, &ref, "realtime:a", "access_token", map[string]any{"access_token": newTok})
			sys := c.next()
			assert.Equal(t, "system", sys.Event, sys.Raw)
			assert.Equal(t, "Subscribed to PostgreSQL", sys.payloadMap(t)["message"])
			got, ok := ts.LastAccessToken("a")
			require.True(t, ok)
			assert.Equal(t, newTok, got)

			// An expired token shuts the channel down.
			ref = c.nextRef()
			c.push(&jr, &ref, "realtime:a", "access_token", map[string]any{"access_token": pgtest.UserToken("user-1", -5*time.Second)})
			sys = c.next()
			assert.Equal(t, "system", sys.Event, sys.Raw)
			p := sys.payloadMap(t)
			assert.Equal(t, "system", p["extension"])
			assert.Equal(t, "error", p["status"])
			assert.Equal(t, "a", p["channel"])
			assert.Regexp(t, regexp.MustCompile(`^Token has expired \d+ seconds ago$`), p["message"])
			cl := c.next()
			assert.Equal(t, "phx_close", cl.Event)
			assert.JSONEq(t, `"`+jr+`"`, string(cl.Ref))
			assert.Empty(t, ts.JoinedTopics())
		})
	}
}

func TestChannel_AccessTokenInvalid(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	jr, _ := c.joinAndSubscribe("realtime:b", joinPayload("", allPublic))
	ref := c.nextRef()
	c.push(&jr, &ref, "realtime:b", "access_token", map[string]any{"access_token": ""})
	sys := c.next()
	assert.Equal(t, `["`+jr+`",null,"realtime:b","system",{"message":"The token provided is not a valid JWT","status":"error","extension":"system","channel":"b"}]`, sys.Raw)
	cl := c.next()
	assert.Equal(t, "phx_close", cl.Event)
}

func TestChannel_TokenExpiryWhileJoined(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	tok := pgtest.SignClaims(map[string]any{"role": "authenticated", "sub": "u", "exp": time.Now().Add(2 * time.Second).Unix()})
	jr, _ := c.joinAndSubscribe("realtime:exp", joinPayload(tok, allPublic))
	sys := c.nextEvent("realtime:exp", "system")
	assert.Regexp(t, regexp.MustCompile(`^\["`+jr+`",null,"realtime:exp","system",\{"message":"Token has expired \d+ seconds ago","status":"error","extension":"system","channel":"exp"\}\]$`), sys.Raw)
	cl := c.next()
	assert.Equal(t, `["`+jr+`","`+jr+`","realtime:exp","phx_close",{}]`, cl.Raw)
	// The socket itself stays open.
	c.heartbeat()
	c.nextEvent("phoenix", "phx_reply")
}

func TestChannel_SubscriptionParamErrors(t *testing.T) {
	cases := []struct {
		name    string
		binding map[string]any
		want    string
	}{
		{"no schema or table", map[string]any{"event": "*"},
			"No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{\"event\" => \"*\"}"},
		{"null filter", map[string]any{"event": "*", "schema": "public", "table": "t", "filter": nil},
			"No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: %{\"event\" => \"*\", \"filter\" => nil, \"schema\" => \"public\", \"table\" => \"t\"}"},
		{"filter without =", map[string]any{"schema": "public", "table": "t", "filter": "wrong"},
			"Error parsing `filter` params: [\"wrong\"]"},
		{"unsupported operator", map[string]any{"schema": "public", "table": "t", "filter": "subject=foo.hey"},
			"Error parsing `filter` params: [\"foo\", \"hey\"]"},
		{"in without parentheses", map[string]any{"schema": "public", "table": "t", "filter": "id=in.1,2"},
			"Error parsing `filter` params: `in` filter value must be wrapped by parentheses"},
		{"select as string", map[string]any{"schema": "public", "table": "t", "select": "a"},
			"Error parsing `select` params: expected a list of column name strings, e.g. select: [\"col1\", \"col2\"]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
			jr := c.join("realtime:p", joinPayload("", tc.binding))
			rep := c.next()
			assert.Equal(t, "ok", rep.payloadMap(t)["status"], "malformed params do not fail the join")
			sys := c.next()
			assert.JSONEq(t, `"`+jr+`"`, string(sys.JoinRef))
			p := sys.payloadMap(t)
			assert.Equal(t, "postgres_changes", p["extension"])
			assert.Equal(t, "error", p["status"])
			assert.Equal(t, tc.want, p["message"])
			c.expectNone(200 * time.Millisecond) // the channel stays joined, no phx_close
			assert.Equal(t, []string{"realtime:p"}, ts.JoinedTopics())
			assert.Empty(t, ts.SubscribedTopics())
		})
	}
}

func TestChannel_MalformedFramesIgnored(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.AnonKey())
			bad := []string{
				`"just a string"`,
				`not json`,
				`[1,2]`,
				`{"topic":"phoenix","event":"heartbeat","payload":{}}`, // V1 without ref
			}
			if vsn == "2.0.0" {
				bad = append(bad, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"1","join_ref":null}`)
			} else {
				bad = append(bad, `[null,"1","phoenix","heartbeat",{}]`)
			}
			for _, b := range bad {
				c.sendRaw(b)
			}
			require.NoError(t, c.conn.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}))
			ref := c.heartbeat()
			f := c.next()
			assert.JSONEq(t, `"`+ref+`"`, string(f.Ref), "only the valid heartbeat is answered")
			assert.Equal(t, len(bad), ts.MalformedFrames())
		})
	}
}

func TestChannel_IdleTimeout(t *testing.T) {
	ts := newTestServer(t, Options{IdleTimeout: time.Second})
	busy := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	idle := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	stop := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(stop) {
		busy.heartbeat()
		busy.next()
		time.Sleep(100 * time.Millisecond)
	}
	err := idle.waitClosed()
	assert.Equal(t, websocket.CloseNormalClosure, closeCode(err), "idle close: %v", err)
	busy.heartbeat()
	busy.next()
	require.Eventually(t, func() bool { return ts.Connections() == 1 }, waitTimeout, 10*time.Millisecond)
}

func TestChannel_LegacyTopicWithoutConfig(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	c.join("realtime:public:todos", map[string]any{})
	rep := c.next()
	p := rep.payloadMap(t)
	entries := p["response"].(map[string]any)["postgres_changes"].([]any)
	require.Len(t, entries, 1)
	assert.Equal(t, "public", entries[0].(map[string]any)["schema"])
	assert.Equal(t, "todos", entries[0].(map[string]any)["table"])
	c.nextEvent("realtime:public:todos", "system")
	require.NoError(t, ts.Publish(Change{Schema: "public", Table: "todos", Type: Insert, Record: map[string]any{"id": 1}}))
	f := c.next()
	assert.Equal(t, "INSERT", f.Event, "old API events are named after the change type")
	assert.Equal(t, "INSERT", f.payloadMap(t)["type"])
}
