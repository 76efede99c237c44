package realtimetest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/pgtest"
)

func TestCodec_Vectors(t *testing.T) {
	// Test vectors from realtime-protocol.md §7.
	t.Run("V2 round trip", func(t *testing.T) {
		in := `["1","1","realtime:any","phx_join",{"config":{"postgres_changes":[{"event":"INSERT","schema":"public"}]}}]`
		m, err := v2Codec{}.decode([]byte(in))
		require.NoError(t, err)
		assert.Equal(t, "realtime:any", m.Topic)
		assert.Equal(t, "phx_join", m.Event)
		assert.JSONEq(t, `"1"`, string(m.JoinRef))
		assert.Equal(t, in, string(v2Codec{}.encode(m)))
		out := v2Codec{}.encode(message{Topic: "t", Event: "e", Payload: json.RawMessage(`{"foo":1}`)})
		assert.Equal(t, `[null,null,"t","e",{"foo":1}]`, string(out))
	})
	t.Run("V1 encode has no join_ref", func(t *testing.T) {
		out := v1Codec{}.encode(reply(json.RawMessage(`"1"`), json.RawMessage(`"1"`), "realtime:any", "ok", map[string]any{}))
		assert.Equal(t, `{"topic":"realtime:any","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"1"}`, string(out))
	})
	t.Run("V1 decode", func(t *testing.T) {
		m, err := v1Codec{}.decode([]byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`))
		require.NoError(t, err)
		assert.Nil(t, m.JoinRef)
		assert.JSONEq(t, `"2"`, string(m.Ref))
	})
	t.Run("refs echo their JSON type", func(t *testing.T) {
		m, err := v2Codec{}.decode([]byte(`[7,8,"phoenix","heartbeat",{}]`))
		require.NoError(t, err)
		assert.Equal(t, `[null,8,"phoenix","phx_reply",{"status":"ok","response":{}}]`, string(v2Codec{}.encode(reply(nil, m.Ref, "phoenix", "ok", emptyObject))))
	})
	t.Run("rejections", func(t *testing.T) {
		for _, in := range []string{`"just a string"`, `{"topic":"t","event":"e","payload":{"m":1},"ref":"1","join_ref":"11"}`, `[1,2,3,4]`, `[null,null,1,"e",{}]`} {
			_, err := v2Codec{}.decode([]byte(in))
			assert.ErrorIs(t, err, errMalformed, in)
		}
		for _, in := range []string{`[null,null,"t","e",{}]`, `{"topic":"t","event":"e","payload":{}}`, `{"topic":"t","event":"e","ref":"1"}`, `null`} {
			_, err := v1Codec{}.decode([]byte(in))
			assert.ErrorIs(t, err, errMalformed, in)
		}
	})
}

func TestNegotiateCodec(t *testing.T) {
	for vsn, want := range map[string]string{"": "1.0.0", "1.0.0": "1.0.0", "1.0.7": "1.0.0", "2.0.0": "2.0.0", "2.0.3": "2.0.0"} {
		c, ok := negotiateCodec(vsn)
		require.True(t, ok, vsn)
		assert.Equal(t, want, c.vsn(), vsn)
	}
	for _, vsn := range []string{"1", "2.0", "2.1.0", "3.0.0", "2.0.0-rc1", "v2.0.0", "02.0.0", "x"} {
		_, ok := negotiateCodec(vsn)
		assert.False(t, ok, vsn)
	}
}

func TestVerifyToken(t *testing.T) {
	secret := []byte(pgtest.JWTSecret)
	now := time.Now()
	claims, err := verifyToken(pgtest.ServiceRoleKey(), secret, now)
	require.Nil(t, err)
	assert.Equal(t, "service_role", claims.Role)

	// Percent-encoding and whitespace are cleaned like Realtime does.
	tok := pgtest.AnonKey()
	_, err = verifyToken(" "+strings.Replace(tok, ".", "%2E", 1)+"\n", secret, now)
	assert.Nil(t, err)

	expired := pgtest.SignClaims(map[string]any{"role": "anon", "exp": now.Add(-42 * time.Second).Unix()})
	_, err = verifyToken(expired, secret, now)
	require.NotNil(t, err)
	assert.Equal(t, "InvalidJWTToken: Token has expired 42 seconds ago", err.joinReason())
	assert.Equal(t, "Token has expired 42 seconds ago", err.refreshMessage())

	_, err = verifyToken(pgtest.ServiceRoleKey(), []byte("other"), now)
	require.NotNil(t, err)
	assert.Equal(t, "JwtSignatureError: Failed to validate JWT signature", err.joinReason())

	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJyb2xlIjoiYW5vbiIsImV4cCI6NDEwMjQ0NDgwMH0."
	_, err = verifyToken(none, secret, now)
	require.NotNil(t, err)
	assert.Equal(t, "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration", err.joinReason())
}

func TestBinding_Parse(t *testing.T) {
	b := parseBinding(json.RawMessage(`{"event":"insert","schema":"public","table":"t","filter":"name=in.(red,\"b,lue\")"}`))
	require.Empty(t, b.ParseError)
	assert.Equal(t, "INSERT", b.Event)
	assert.Equal(t, []rowFilter{{Column: "name", Op: "in", Value: `{red,"b,lue"}`}}, b.Filters)
	assert.Equal(t, "event: INSERT, schema: public, table: t, filters: [{\"name\", \"in\", \"{red,\\\"b,lue\\\"}\", false}], select: nil", b.logParams())

	b = parseBinding(json.RawMessage(`{"schema":"public"}`))
	assert.Equal(t, "*", b.Table)
	assert.Equal(t, "*", b.Event)
	b = parseBinding(json.RawMessage(`{"table":"t","event":"bogus"}`))
	assert.Equal(t, "public", b.Schema)
	assert.Equal(t, "*", b.Event)
	b = parseBinding(json.RawMessage(`{"schema":"public","table":"t","filter":"  "}`))
	assert.Empty(t, b.ParseError)
	assert.Empty(t, b.Filters)
	b = parseBinding(json.RawMessage(`{"schema":"public","table":"t","filter":"a=eq.1,b=not.gt.5"}`))
	assert.Equal(t, []rowFilter{{Column: "a", Op: "eq", Value: "1"}, {Column: "b", Op: "gt", Value: "5", Negate: true}}, b.Filters)
	b = parseBinding(json.RawMessage(`{"schema":"*","select":["a"]}`))
	assert.Equal(t, "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name.", b.ParseError)
	b = parseBinding(json.RawMessage(`{"schema":"public","user_token":"x","event":"*","table":1}`))
	assert.Equal(t, "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: <redacted>", b.ParseError)

	assert.Equal(t, bindingID(json.RawMessage(`{"a":1,"b":"x"}`)), bindingID(json.RawMessage(`{"b":"x","a":1}`)))
	assert.NotEqual(t, bindingID(json.RawMessage(`{"a":1}`)), bindingID(json.RawMessage(`{"a":2}`)))
}

func TestWithID(t *testing.T) {
	assert.Equal(t, `{"event":"*","schema":"public","id":5}`, string(withID(json.RawMessage(`{"event":"*","schema":"public"}`), 5)))
	assert.Equal(t, `{"id":5}`, string(withID(json.RawMessage(`{}`), 5)))
	assert.JSONEq(t, `{"id":5}`, string(withID(json.RawMessage(`{"id":"x"}`), 5)))
}

func TestFilter_Evaluation(t *testing.T) {
	f := func(s string) rowFilter {
		fs, err := parseFilters(s)
		require.Empty(t, err, s)
		require.Len(t, fs, 1)
		return fs[0]
	}
	cases := []struct {
		filter string
		typ    string
		value  string // JSON
		want   bool
	}{
		{"id=eq.1", "int8", `1`, true},
		{"id=eq.1", "int8", `2`, false},
		{"id=eq.9007199254740993", "int8", `9007199254740993`, true},
		{"id=eq.9007199254740993", "int8", `9007199254740992`, false},
		{"id=neq.1", "int4", `2`, true},
		{"id=lt.10", "int4", `9`, true},
		{"id=lt.10", "int4", `10`, false},
		{"id=lte.10", "int4", `10`, true},
		{"id=gt.1.5", "numeric", `1.50001`, true},
		{"id=gte.1.5", "numeric", `1.50`, true},
		{"id=gt.abc", "int4", `1`, false}, // value not castable
		{"s=eq.hello", "text", `"hello"`, true},
		{"s=lt.b", "text", `"a"`, true},
		{"s=in.(red,blue)", "text", `"blue"`, true},
		{"s=in.(red,blue)", "text", `"green"`, false},
		{"s=in.(1,2,3)", "int4", `3`, true},
		{"b=eq.true", "bool", `true`, true},
		{"b=eq.t", "bool", `false`, false},
		{"ts=gt.2026-01-01T00:00:00Z", "timestamptz", `"2026-01-01T00:00:01+00:00"`, true},
		{"ts=lt.2026-01-01 01:00:00+01", "timestamptz", `"2025-12-31T23:59:59+00:00"`, true},
		{"u=eq.A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, true},
		{"s=eq.x", "text", `null`, false},
		{"s=neq.x", "text", `null`, false},
		{"s=not.eq.x", "text", `"y"`, true},
	}
	for _, tc := range cases {
		t.Run(tc.filter+"/"+tc.value, func(t *testing.T) {
			filter := f(tc.filter)
			text, null := cellText(json.RawMessage(tc.value))
			got := visibleThroughFilters([]rowFilter{filter}, func(col string) cell {
				return cell{Text: text, Null: null, Type: tc.typ, Exists: col == filter.Column}
			})
			assert.Equal(t, tc.want, got)
		})
	}
	assert.False(t, visibleThroughFilters([]rowFilter{f("missing=eq.1")}, func(string) cell { return cell{} }))
}

func TestParseArrayLiteral(t *testing.T) {
	elems, ok := parseArrayLiteral(`{1,NULL,"a,b","q\"x",{2,3}}`)
	require.True(t, ok)
	require.Len(t, elems, 5)
	assert.Equal(t, "1", elems[0].Text)
	assert.True(t, elems[1].Null)
	assert.Equal(t, "a,b", elems[2].Text)
	assert.Equal(t, `q"x`, elems[3].Text)
	assert.True(t, elems[4].IsArray)
	_, ok = parseArrayLiteral(`{1,2`)
	assert.False(t, ok)
	elems, ok = parseArrayLiteral(`{}`)
	assert.True(t, ok)
	assert.Empty(t, elems)
}

func TestInspectJSON(t *testing.T) {
	assert.Equal(t, `%{"a" => [1, 2.5, nil, true], "b" => %{"c" => "x\"y"}}`, inspectJSON(json.RawMessage(`{"b":{"c":"x\"y"},"a":[1,2.5,null,true]}`)))
	assert.Equal(t, `1.0e20`, inspectJSON(json.RawMessage(`1e20`)))
	assert.Equal(t, `"\#{x}"`, inspectJSON(json.RawMessage(`"#{x}"`)))
}

func TestDecodeValue(t *testing.T) {
	int4 := &typeInfo{Name: "int4"}
	text := &typeInfo{Name: "text"}
	cases := []struct {
		text string
		typ  *typeInfo
		want string
	}{
		{"42", int4, `42`},
		{"9223372036854775807", &typeInfo{Name: "int8"}, `9223372036854775807`},
		{"12.3400", &typeInfo{Name: "numeric"}, `12.3400`},
		{"NaN", &typeInfo{Name: "numeric"}, `"NaN"`},
		{"Infinity", &typeInfo{Name: "float8"}, `"Infinity"`},
		{"1e+20", &typeInfo{Name: "float8"}, `1e+20`},
		{"t", &typeInfo{Name: "bool"}, `true`},
		{"f", &typeInfo{Name: "bool"}, `false`},
		{`{"b": 1, "a": [1, 2]}`, &typeInfo{Name: "jsonb"}, `{"b":1,"a":[1,2]}`},
		{"2025-11-03 09:32:55.123+00", &typeInfo{Name: "timestamptz"}, `"2025-11-03T09:32:55.123+00:00"`},
		{"2025-11-03 10:32:55+01", &typeInfo{Name: "timestamptz"}, `"2025-11-03T09:32:55+00:00"`},
		{"2025-11-03 09:32:55.5", &typeInfo{Name: "timestamp"}, `"2025-11-03T09:32:55.5"`},
		{`\x0102030405`, &typeInfo{Name: "bytea"}, `"0102030405"`},
		{`{a,"b c",NULL}`, &typeInfo{Name: "_text", Category: 'A', Elem: text}, `["a","b c",null]`},
		{`{{1,2},{3,4}}`, &typeInfo{Name: "_int4", Category: 'A', Elem: int4}, `[[1,2],[3,4]]`},
		{"hello", text, `"hello"`},
		{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", &typeInfo{Name: "uuid"}, `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, string(decodeValue(tc.text, tc.typ)), "%s as %s", tc.text, tc.typ.Name)
	}
}
