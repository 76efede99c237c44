package realtime

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSocketURL(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{in: "https://abc.supabase.co", want: "wss://abc.supabase.co/realtime/v1/websocket?apikey=K&vsn=2.0.0"},
		{in: "https://abc.supabase.co/", want: "wss://abc.supabase.co/realtime/v1/websocket?apikey=K&vsn=2.0.0"},
		{in: "http://127.0.0.1:54321", want: "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=K&vsn=2.0.0"},
		{in: "http://gw.local:8000/supa/", want: "ws://gw.local:8000/supa/realtime/v1/websocket?apikey=K&vsn=2.0.0"},
		{in: "HTTPS://abc.supabase.co", want: "wss://abc.supabase.co/realtime/v1/websocket?apikey=K&vsn=2.0.0"},
		{in: "ws://realtime:4000/socket/websocket", want: "ws://realtime:4000/socket/websocket?apikey=K&vsn=2.0.0"},
		{in: "wss://abc.supabase.co/realtime/v1/websocket?log_level=info", want: "wss://abc.supabase.co/realtime/v1/websocket?apikey=K&log_level=info&vsn=2.0.0"},
		{in: "ws://realtime:4000/socket", err: "must end in /websocket"},
		{in: "ftp://x", err: "scheme"},
		{in: "localhost:4000", err: "scheme"},
		{in: "http://", err: "missing host"},
		{in: "", err: "must not be empty"},
		{in: "http://x/#frag", err: "fragment"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			u, err := socketURL(tc.in, "K", VsnV2)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, u.String())
		})
	}
}

func TestNew_Validation(t *testing.T) {
	good := func() (Config, []ChannelSpec) {
		return Config{URL: "http://localhost:54321", APIKey: "k"}, []ChannelSpec{dbChannel()}
	}
	cases := []struct {
		name  string
		edit  func(*Config, *[]ChannelSpec)
		field string
	}{
		{"no url", func(c *Config, _ *[]ChannelSpec) { c.URL = "" }, "URL"},
		{"no apikey", func(c *Config, _ *[]ChannelSpec) { c.APIKey = " " }, "APIKey"},
		{"bad vsn", func(c *Config, _ *[]ChannelSpec) { c.Vsn = "3.0.0" }, "Vsn"},
		{"negative heartbeat", func(c *Config, _ *[]ChannelSpec) { c.HeartbeatInterval = -1 }, "HeartbeatInterval"},
		{"negative join timeout", func(c *Config, _ *[]ChannelSpec) { c.JoinTimeout = -time.Second }, "JoinTimeout"},
		{"max below initial", func(c *Config, _ *[]ChannelSpec) { c.ReconnectInitial = time.Minute }, "ReconnectMax"},
		{"negative buffer", func(c *Config, _ *[]ChannelSpec) { c.BufferSize = -1 }, "BufferSize"},
		{"no channels", func(_ *Config, s *[]ChannelSpec) { *s = nil }, "channels"},
		{"empty name", func(_ *Config, s *[]ChannelSpec) { (*s)[0].Name = "" }, "channels[0].Name"},
		{"duplicate name", func(_ *Config, s *[]ChannelSpec) { *s = append(*s, dbChannel()) }, "channels[1].Name"},
		{"no bindings", func(_ *Config, s *[]ChannelSpec) { (*s)[0].Bindings = nil }, "channels[0].Bindings"},
		{"bad event", func(_ *Config, s *[]ChannelSpec) { (*s)[0].Bindings[0].Event = "TRUNCATE" }, "channels[0].Bindings[0].Event"},
		{"no schema or table", func(_ *Config, s *[]ChannelSpec) { (*s)[0].Bindings[0] = Binding{Event: "*"} }, "channels[0].Bindings[0].Schema"},
		{"filter without table", func(_ *Config, s *[]ChannelSpec) {
			(*s)[0].Bindings[0] = Binding{Schema: "public", Filter: "id=eq.1"}
		}, "channels[0].Bindings[0].Filter"},
		{"duplicate binding", func(_ *Config, s *[]ChannelSpec) {
			(*s)[0].Bindings = append((*s)[0].Bindings, Binding{Event: "*", Schema: "public", Table: "workflow_runs"})
		}, "channels[0].Bindings[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, specs := good()
			tc.edit(&cfg, &specs)
			_, err := New(cfg, specs...)
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "want *ConfigError, got %v", err)
			require.Equal(t, tc.field, ce.Field)
		})
	}

	cfg, specs := good()
	c, err := New(cfg, specs...)
	require.NoError(t, err)
	require.Equal(t, VsnV2, c.cfg.Vsn)
	require.Equal(t, DefaultHeartbeatInterval, c.cfg.HeartbeatInterval)
	require.Equal(t, DefaultJoinTimeout, c.cfg.JoinTimeout)
	require.Equal(t, DefaultBufferSize, cap(c.Events()))
	require.Equal(t, StaticToken("k"), c.cfg.Tokens)
	require.NotNil(t, c.cfg.Dialer.Proxy)
	require.Nil(t, c.cfg.Dialer.TLSClientConfig, "default TLS verification")
	require.Equal(t, "*", c.channels[0].spec.Bindings[0].Event)
	st := c.Stats()
	require.Equal(t, StateDisconnected, st.State)
	require.Equal(t, []ChannelStats{{Name: "db", Topic: "realtime:db", State: StateClosed}}, st.Channels)
}

func TestDecodeChange(t *testing.T) {
	for _, name := range []string{"insert", "update", "delete", "insert_413"} {
		t.Run(name, func(t *testing.T) {
			var raw string
			for _, v := range vecV2 {
				if v.name == name {
					raw = v.raw
				}
			}
			f, err := DecodeFrame(VsnV2, []byte(raw))
			require.NoError(t, err)
			d, err := decodeChange(f.Payload, time.Unix(1, 0))
			require.NoError(t, err)
			c := d.change
			require.Len(t, d.ids, 1)
			require.Equal(t, "public", c.Schema)
			require.False(t, c.CommitTimestamp.IsZero())
			switch name {
			case "insert":
				require.Equal(t, "INSERT", c.Type)
				require.Equal(t, []int64{11111111}, d.ids)
				require.Equal(t, map[string]any{"id": json.Number("1"), "details": "test", "binary_data": nil}, c.Record)
				require.Nil(t, c.OldRecord)
				require.Nil(t, c.Errors)
			case "update":
				require.Equal(t, time.Date(2025, 11, 19, 0, 22, 40, 877e6, time.UTC), c.CommitTimestamp)
				require.Equal(t, map[string]any{"id": json.Number("46")}, c.OldRecord)
				require.Equal(t, "content", c.Record["text"])
			case "delete":
				require.Nil(t, c.Record)
				require.Equal(t, map[string]any{"id": json.Number("1")}, c.OldRecord)
			case "insert_413":
				require.True(t, c.Incomplete)
				require.Equal(t, json.Number("12"), c.Record["id"])
				require.NotContains(t, c.Record, "body")
			}
		})
	}

	// 401/400 error rows: empty record, null commit_timestamp (§3.4).
	d, err := decodeChange(json.RawMessage(`{"ids":[1,2.5,"3"],"data":{"schema":"public","table":"t","type":"UPDATE","commit_timestamp":null,"columns":[],"record":{},"old_record":{},"errors":["Error 401: Unauthorized"]}}`), time.Now())
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3}, d.ids, "non-integer ids are ignored")
	require.True(t, d.change.CommitTimestamp.IsZero())
	require.False(t, d.change.Incomplete)
	require.Equal(t, []string{"Error 401: Unauthorized"}, d.change.Errors)

	_, err = decodeChange(json.RawMessage(`{"ids":[1],"data":{"table":"t"}}`), time.Now())
	require.ErrorContains(t, err, "missing data.type")
	_, err = decodeChange(json.RawMessage(`{"ids":[1],"data":{"type":"INSERT","errors":[1]}}`), time.Now())
	require.Error(t, err)
}

func TestParseCommitTimestamp(t *testing.T) {
	want := time.Date(2025, 11, 19, 0, 22, 40, 877e6, time.UTC)
	for _, s := range []string{"2025-11-19T00:22:40.877Z", "2025-11-19T00:22:40.877", "2025-11-19 00:22:40.877+00", "2025-11-19 00:22:40.877+00:00"} {
		require.True(t, want.Equal(parseCommitTimestamp(s)), s)
	}
	require.True(t, parseCommitTimestamp("yesterday").IsZero())
}

func TestMatchBindings(t *testing.T) {
	bindings := []Binding{
		{Event: "*", Schema: "public", Table: "a"},
		{Event: "INSERT", Schema: "public", Table: "a"},
		{Event: "DELETE", Schema: "public", Table: "b"},
	}
	ids := []int64{10, 20, 30}
	cases := []struct {
		name     string
		frameIDs []int64
		typ      string
		want     []int
	}{
		{"wildcard", []int64{10}, "UPDATE", []int{0}},
		{"insert both", []int64{10, 20}, "INSERT", []int{0, 1}},
		{"event mismatch", []int64{20}, "UPDATE", nil},
		{"case-insensitive", []int64{30}, "delete", []int{2}},
		{"foreign id", []int64{99}, "INSERT", nil},
		{"no ids", nil, "INSERT", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, matchBindings(bindings, ids, tc.frameIDs, tc.typ))
		})
	}
	require.Nil(t, matchBindings(bindings, nil, []int64{10}, "INSERT"), "no server ids yet")
}

func TestVerifyBindings(t *testing.T) {
	bindings := []Binding{
		{Event: "*", Schema: "public", Table: "a"},
		{Event: "UPDATE", Schema: "public", Table: "b", Filter: "id=eq.1"},
	}
	ids, err := verifyBindings(bindings, json.RawMessage(`{"postgres_changes":[
		{"event":"*","schema":"public","table":"a","id":106243155},
		{"id":"7","event":"update","schema":"public","table":"b","filter":"id=eq.1"}]}`))
	require.NoError(t, err)
	require.Equal(t, []int64{106243155, 7}, ids)

	for name, resp := range map[string]string{
		"count":         `{"postgres_changes":[{"event":"*","schema":"public","table":"a","id":1}]}`,
		"order":         `{"postgres_changes":[{"event":"UPDATE","schema":"public","table":"b","filter":"id=eq.1","id":2},{"event":"*","schema":"public","table":"a","id":1}]}`,
		"filter":        `{"postgres_changes":[{"event":"*","schema":"public","table":"a","id":1},{"event":"UPDATE","schema":"public","table":"b","id":2}]}`,
		"missing id":    `{"postgres_changes":[{"event":"*","schema":"public","table":"a"},{"event":"UPDATE","schema":"public","table":"b","filter":"id=eq.1","id":2}]}`,
		"negative id":   `{"postgres_changes":[{"event":"*","schema":"public","table":"a","id":-1},{"event":"UPDATE","schema":"public","table":"b","filter":"id=eq.1","id":2}]}`,
		"empty":         `{}`,
		"not an object": `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verifyBindings(bindings, json.RawMessage(resp))
			require.Error(t, err)
		})
	}
}

func TestJoinPayloadOmitsEmptyKeys(t *testing.T) {
	p, err := joinPayload([]Binding{{Event: "*", Schema: "public"}, {Event: "INSERT", Schema: "public", Table: "t"}}, "")
	require.NoError(t, err)
	require.JSONEq(t, `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},
		"postgres_changes":[{"event":"*","schema":"public"},{"event":"INSERT","schema":"public","table":"t"}],"private":false}}`, string(p))
	require.NotContains(t, string(p), "null")
	require.NotContains(t, string(p), "access_token")
}

func TestTokenRefreshAt(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	jwtWith := func(claims string) string {
		enc := func(s string) string { return strings.TrimRight(base64URL(s), "=") }
		return enc(`{"alg":"HS256","typ":"JWT"}`) + "." + enc(claims) + ".c2ln"
	}
	cases := []struct {
		name string
		tok  string
		want time.Time
	}{
		{"not a jwt", "sb_publishable_abc", time.Time{}},
		{"no exp", jwtWith(`{"role":"anon"}`), time.Time{}},
		{"one hour with iat: 80%", jwtWith(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Add(time.Hour).Unix())), now.Add(48 * time.Minute)},
		{"two minutes: 60s before exp", jwtWith(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Add(2*time.Minute).Unix())), now.Add(time.Minute)},
		{"short: 80%", jwtWith(fmt.Sprintf(`{"iat":%d,"exp":%d}`, now.Unix(), now.Add(10*time.Second).Unix())), now.Add(8 * time.Second)},
		{"no iat: from now", jwtWith(fmt.Sprintf(`{"exp":%d}`, now.Add(10*time.Second).Unix())), now.Add(8 * time.Second)},
		{"expired: floor", jwtWith(fmt.Sprintf(`{"exp":%d}`, now.Add(-time.Hour).Unix())), now.Add(minTokenRefreshDelay)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tokenRefreshAt(tc.tok, now))
		})
	}
}

func TestOutbox(t *testing.T) {
	o := newOutbox(2, 0)
	at := time.Unix(5, 0)
	ch := func(n int) *Change { return &Change{Channel: "a", Record: map[string]any{"n": n}, ReceivedAt: at} }

	d, _ := o.change(ch(1))
	require.True(t, d)
	o.ready("a", at)
	d, _ = o.change(ch(2)) // buffer full now (change 1 + Ready)
	require.False(t, d)
	d, newGap := o.change(ch(3))
	require.False(t, d)
	require.False(t, newGap, "second drop joins the pending gap")
	o.ready("a", at.Add(time.Second)) // the first Ready was delivered: queued anew
	o.change(&Change{Channel: "b", ReceivedAt: at})

	evs := []Event{<-o.events, <-o.events}
	require.Equal(t, ch(1), evs[0])
	require.Equal(t, Ready{Channel: "a", At: at}, evs[1])
	require.Equal(t, []Event{Gap{Channel: "a", Dropped: 2, At: at}, Ready{Channel: "a", At: at.Add(time.Second)}, Gap{Channel: "b", Dropped: 1, At: at}}, o.pending)

	// A new Ready replaces the pending one for its channel; there is room
	// again, so the pending events up to it are flushed in order.
	o.ready("a", at.Add(2*time.Second))
	require.Equal(t, []Event{Gap{Channel: "b", Dropped: 1, At: at}}, o.pending)

	// Changes wait behind pending control events: dropped into a new gap.
	d, newGap = o.change(ch(4))
	require.False(t, d)
	require.True(t, newGap)
	require.Equal(t, Gap{Channel: "a", Dropped: 2, At: at}, <-o.events)
	require.Equal(t, Ready{Channel: "a", At: at.Add(2 * time.Second)}, <-o.events)
	evCh, ev := o.sendCase()
	require.NotNil(t, evCh)
	require.Equal(t, Gap{Channel: "b", Dropped: 1, At: at}, ev)
	evCh <- ev
	o.popFront()
	require.True(t, o.flush())
	require.Equal(t, Gap{Channel: "b", Dropped: 1, At: at}, <-o.events)
	require.Equal(t, Gap{Channel: "a", Dropped: 1, At: at}, <-o.events)
	evCh, _ = o.sendCase()
	require.Nil(t, evCh)
	d, _ = o.change(ch(5))
	require.True(t, d)
}

func base64URL(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }

func TestHandshakeError(t *testing.T) {
	mk := func(status int, body string) *http.Response {
		return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
	}
	require.Equal(t, "realtime: handshake rejected: HTTP 401: Token has expired", handshakeError(mk(401, `{"error":"Token has expired"}`)).Error())
	require.Equal(t, "Too Many Requests", handshakeError(mk(429, ``)).Message)
	require.Equal(t, "plain text", handshakeError(mk(500, "plain text\n")).Message)
	long := handshakeError(mk(502, strings.Repeat("x", 1000))).Message
	require.Less(t, len(long), 300)
}

func TestRedact(t *testing.T) {
	err := fmt.Errorf("dial: %w", errors.New("bad url ws://h/?apikey=a%2Bb and a+b"))
	r := redact(err, "a+b")
	require.Equal(t, "dial: bad url ws://h/?apikey=[REDACTED] and [REDACTED]", r.Error())
	require.ErrorIs(t, r, errors.Unwrap(err))
	require.Same(t, err, redact(err, "absent"))
	require.Nil(t, redact(nil, "x"))
}

func TestColumnListsAreDecodedOncePerShape(t *testing.T) {
	raw := json.RawMessage(`[{"name":"id","type":"uuid"},{"name":"status","type":"text"}]`)
	a, err := columnsOf(raw)
	require.NoError(t, err)
	require.Equal(t, []Column{{Name: "id", Type: "uuid"}, {Name: "status", Type: "text"}}, a)
	b, err := columnsOf(append(json.RawMessage(nil), raw...))
	require.NoError(t, err)
	require.Same(t, &a[0], &b[0], "the same list is shared")
	none, err := columnsOf(json.RawMessage(`null`))
	require.NoError(t, err)
	require.Nil(t, none)
	_, err = columnsOf(json.RawMessage(`[{"name":1}]`))
	require.Error(t, err)
}
