package realtimetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestServer_Handshake(t *testing.T) {
	ts := newTestServer(t, Options{})
	good := pgtest.ServiceRoleKey()

	get := func(t *testing.T, path string, q url.Values, header http.Header) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, ts.HTTP.URL+path+"?"+q.Encode(), nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := ts.HTTP.Client().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	cases := []struct {
		name       string
		query      url.Values
		header     http.Header
		wantStatus int
		wantBody   string
	}{
		{"unknown vsn", url.Values{"apikey": {good}, "vsn": {"3.0.0"}}, nil, http.StatusForbidden, ""},
		{"invalid vsn", url.Values{"apikey": {good}, "vsn": {"2.0"}}, nil, http.StatusForbidden, ""},
		{"vsn 1.1.0 outside ~> 1.0.0", url.Values{"apikey": {good}, "vsn": {"1.1.0"}}, nil, http.StatusForbidden, ""},
		{"missing apikey", url.Values{"vsn": {"2.0.0"}}, nil, http.StatusUnauthorized, `{"error":"API key is missing"}`},
		{"not a jwt", url.Values{"apikey": {"nope"}}, nil, http.StatusUnauthorized, `{"error":"The token provided is not a valid JWT"}`},
		{"expired", url.Values{"apikey": {pgtest.UserToken("u1", -time.Minute)}}, nil, http.StatusUnauthorized, `{"error":"Token has expired"}`},
		{"bad signature", url.Values{"apikey": {good[:len(good)-3] + "abc"}}, nil, http.StatusUnauthorized, `{"error":"Failed to validate JWT signature"}`},
		{"missing role", url.Values{"apikey": {pgtest.SignClaims(map[string]any{"exp": time.Now().Add(time.Hour).Unix()})}}, nil,
			http.StatusUnauthorized, "{\"error\":\"Fields `role` and `exp` are required in JWT\"}"},
		{"missing exp", url.Values{"apikey": {pgtest.SignClaims(map[string]any{"role": "anon"})}}, nil,
			http.StatusUnauthorized, "{\"error\":\"Fields `role` and `exp` are required in JWT\"}"},
		{"x-api-key header wins over apikey", url.Values{"apikey": {good}}, http.Header{"X-Api-Key": {"garbage"}},
			http.StatusUnauthorized, `{"error":"The token provided is not a valid JWT"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, "/realtime/v1/websocket", tc.query, tc.header)
			assert.Equal(t, tc.wantStatus, status)
			if tc.wantBody == "" {
				assert.Empty(t, body)
			} else {
				assert.JSONEq(t, tc.wantBody, body)
			}
		})
	}

	t.Run("x-api-key header alone is enough", func(t *testing.T) {
		h := http.Header{"X-Api-Key": {good}}
		conn, resp, err := websocket.DefaultDialer.Dial(ts.wsURL("/socket/websocket", url.Values{"vsn": {"2.0.0"}}), h)
		require.NoError(t, err)
		_ = resp.Body.Close()
		_ = conn.Close()
	})

	t.Run("rejected upgrade fault", func(t *testing.T) {
		ts.RejectUpgrades(http.StatusTooManyRequests, "Too many connected users", 1)
		status, body := get(t, "/realtime/v1/websocket", url.Values{"apikey": {good}}, nil)
		assert.Equal(t, http.StatusTooManyRequests, status)
		assert.JSONEq(t, `{"error":"Too many connected users"}`, body)
		c := dialClient(t, ts, "2.0.0", good) // only one was rejected
		c.heartbeat()
		c.nextEvent("phoenix", "phx_reply")
	})
}

func TestServer_ConnectErrorDelay(t *testing.T) {
	ts := newTestServer(t, Options{ConnectErrorDelay: 300 * time.Millisecond})
	start := time.Now()
	resp, err := ts.HTTP.Client().Get(ts.HTTP.URL + "/realtime/v1/websocket")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
}

func TestServer_DefaultVsnIsV1(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "", pgtest.ServiceRoleKey())
	ref := c.heartbeat()
	f := c.next() // decodeFrame rejects anything but a 4-key V1 object
	assert.False(t, f.HasJoinRef)
	assert.Equal(t, "phx_reply", f.Event)
	assert.JSONEq(t, `"`+ref+`"`, string(f.Ref))
}

func TestServer_Heartbeat(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			ref := c.heartbeat()
			f := c.next()
			assert.Equal(t, "phoenix", f.Topic)
			assert.Equal(t, "phx_reply", f.Event)
			assert.JSONEq(t, `"`+ref+`"`, string(f.Ref))
			assert.JSONEq(t, `{"status":"ok","response":{}}`, string(f.Payload))
			if vsn == "2.0.0" {
				assert.Equal(t, `[null,"`+ref+`","phoenix","phx_reply",{"status":"ok","response":{}}]`, f.Raw)
			}

			ts.StallHeartbeats(true)
			c.heartbeat()
			c.expectNone(300 * time.Millisecond)
			ts.StallHeartbeats(false)
			ref = c.heartbeat()
			f = c.next()
			assert.JSONEq(t, `"`+ref+`"`, string(f.Ref))
			assert.Equal(t, 3, ts.Heartbeats())
		})
	}
}

func TestServer_JoinEchoesBindingsAndSubscribes(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.ServiceRoleKey())
			b1 := map[string]any{"event": "INSERT", "schema": "public", "table": "todos"}
			b2 := map[string]any{"event": "*", "schema": "public", "table": "todos", "filter": "id=eq.1"}
			b3 := map[string]any{"event": "DELETE", "schema": "public"}
			jr := c.join("realtime:db-changes", joinPayload(pgtest.ServiceRoleKey(), b1, b2, b3))

			rep := c.next()
			assert.Equal(t, "phx_reply", rep.Event)
			assert.Equal(t, "realtime:db-changes", rep.Topic)
			assert.JSONEq(t, `"`+jr+`"`, string(rep.Ref))
			if vsn == "2.0.0" {
				assert.JSONEq(t, `"`+jr+`"`, string(rep.JoinRef))
			}
			p := rep.payloadMap(t)
			require.Equal(t, "ok", p["status"])
			entries := p["response"].(map[string]any)["postgres_changes"].([]any)
			require.Len(t, entries, 3)
			seen := map[int64]bool{}
			for i, want := range []map[string]any{b1, b2, b3} {
				got := entries[i].(map[string]any)
				id, err := got["id"].(json.Number).Int64()
				require.NoError(t, err)
				assert.GreaterOrEqual(t, id, int64(0))
				assert.Less(t, id, int64(1)<<27)
				assert.False(t, seen[id], "ids must be distinct")
				seen[id] = true
				wantAny := map[string]any{"id": got["id"]}
				for k, v := range want {
					wantAny[k] = v
				}
				assert.Equal(t, wantAny, got, "binding %d echoed verbatim plus id", i)
			}

			sys := c.next()
			assert.Equal(t, "system", sys.Event)
			assert.Equal(t, "null", string(sys.Ref))
			if vsn == "2.0.0" {
				assert.JSONEq(t, `"`+jr+`"`, string(sys.JoinRef))
			}
			assert.JSONEq(t, `{"message":"Subscribed to PostgreSQL","status":"ok","extension":"postgres_changes","channel":"db-changes"}`, string(sys.Payload))
			assert.Equal(t, []string{"realtime:db-changes"}, ts.SubscribedTopics())
			lp, ok := ts.LastJoinPayload("db-changes")
			require.True(t, ok)
			assert.Contains(t, string(lp), `"postgres_changes"`)

			// Same params on another topic get the same ids.
			c.join("realtime:other", joinPayload("", b1, b2, b3))
			rep2 := c.nextEvent("realtime:other", "phx_reply")
			entries2 := rep2.payloadMap(t)["response"].(map[string]any)["postgres_changes"].([]any)
			for i := range entries2 {
				assert.Equal(t, entries[i].(map[string]any)["id"], entries2[i].(map[string]any)["id"])
			}
		})
	}
}

func TestServer_JoinWithoutPostgresChanges(t *testing.T) {
	ts := newTestServer(t, Options{})
	c := dialClient(t, ts, "2.0.0", pgtest.AnonKey())
	jr := c.join("realtime:room", joinPayload(""))
	rep := c.next()
	assert.Equal(t, `["`+jr+`","`+jr+`","realtime:room","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`, rep.Raw)
	c.expectNone(300 * time.Millisecond) // no "Subscribed to PostgreSQL" without bindings
}

func TestServer_SubscribeDelay(t *testing.T) {
	ts := newTestServer(t, Options{SubscribeDelay: time.Hour})
	c := dialClient(t, ts, "2.0.0", pgtest.ServiceRoleKey())
	c.join("realtime:slow", joinPayload("", map[string]any{"event": "*", "schema": "public"}))
	c.nextEvent("realtime:slow", "phx_reply")
	// Not subscribed yet: changes are not delivered.
	require.NoError(t, ts.Publish(Change{Schema: "public", Table: "t", Type: Insert, Record: map[string]any{"id": 1}}))
	c.expectNone(200 * time.Millisecond)
	assert.Empty(t, ts.SubscribedTopics())
	assert.Equal(t, 1, ts.ResendSubscribed("slow"))
	c.nextEvent("realtime:slow", "system")
	require.NoError(t, ts.Publish(Change{Schema: "public", Table: "t", Type: Insert, Record: map[string]any{"id": 2}}))
	c.nextEvent("realtime:slow", "postgres_changes")

	ts.SetSubscribeDelay(0)
	c.join("realtime:fast", joinPayload("", map[string]any{"event": "*", "schema": "public"}))
	c.nextEvent("realtime:fast", "phx_reply")
	c.nextEvent("realtime:fast", "system")
}

func TestServer_JoinErrors(t *testing.T) {
	for _, vsn := range vsns {
		t.Run(vsn, func(t *testing.T) {
			ts := newTestServer(t, Options{})
			c := dialClient(t, ts, vsn, pgtest.AnonKey())

			expectReason := func(t *testing.T, topic string, payload any, want string) {
				t.Helper()
				jr := c.join(topic, payload)
				rep := c.nextEvent(topic, "phx_reply")
				assert.JSONEq(t, `"`+jr+`"`, string(rep.Ref))
				p := rep.payloadMap(t)
				assert.Equal(t, "error", p["status"], rep.Raw)
				reason := p["response"].(map[string]any)["reason"].(string)
				if strings.HasPrefix(want, "^") {
					assert.Regexp(t, regexp.MustCompile(want), reason)
				} else {
					assert.Equal(t, want, reason)
				}
			}
			expectReason(t, "realtime:", joinPayload(""), "TopicNameRequired: You must provide a topic name")
			expectReason(t, "realtime:x", joinPayload(pgtest.UserToken("u", -90*time.Second)),
				`^InvalidJWTToken: Token has expired (9[0-9]) seconds ago$`)
			expectReason(t, "realtime:x", joinPayload(pgtest.SignClaims(map[string]any{"exp": time.Now().Add(time.Hour).Unix()})),
				"InvalidJWTToken: Fields `role` and `exp` are required in JWT")
			expectReason(t, "realtime:x", joinPayload("garbage"), "MalformedJWT: The token provided is not a valid JWT")
			expectReason(t, "realtime:x", map[string]any{"config": "nope"}, "Unknown Error on Channel")

			// A topic outside realtime:* has no channel route.
			ref := c.nextRef()
			c.push(&ref, &ref, "room:1", "phx_join", joinPayload(""))
			rep := c.nextEvent("room:1", "phx_reply")
			assert.Equal(t, "null", string(orNull(rep.JoinRef)))
			assert.JSONEq(t, `{"status":"error","response":{"reason":"unmatched topic"}}`, string(rep.Payload))

			// Injected refusals, then a normal join.
			ts.RefuseJoins("ConnectionRateLimitReached: Too many connected users", 1)
			expectReason(t, "realtime:x", joinPayload(""), "ConnectionRateLimitReached: Too many connected users")
			// An opaque sb_ key means "use the socket's apikey".
			c.join("realtime:x", joinPayload("sb_publishable_whatever"))
			rep = c.nextEvent("realtime:x", "phx_reply")
			assert.Equal(t, "ok", rep.payloadMap(t)["status"], rep.Raw)
		})
	}
}
