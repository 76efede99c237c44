package realtime

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Test vectors of the team's protocol notes §7 (see doc.go), verbatim (the placeholder
// token shortened to a plain string).
var (
	vecV2 = []struct {
		name string
		raw  string
		want Frame
	}{
		{"join_docs", `["3","5","realtime:chat-room","phx_join",{"config":{"broadcast":{"ack":false,"self":true,"replay":{"since":1763407103911,"limit":10}},"presence":{"key":"user_id-827","enabled":true},"postgres_changes":[],"private":true}}]`,
			Frame{JoinRef: "3", Ref: "5", Topic: "realtime:chat-room", Event: "phx_join"}},
		{"join_postgres_changes", `["1","1","realtime:any","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[{"event":"INSERT","schema":"public"}],"private":false},"access_token":"<JWT>"}]`,
			Frame{JoinRef: "1", Ref: "1", Topic: "realtime:any", Event: "phx_join"}},
		{"join_ok", `["1","1","realtime:chat-room","phx_reply",{"status":"ok","response":{"postgres_changes":[{"id":106243155,"event":"*","schema":"public","table":"test"}]}}]`,
			Frame{JoinRef: "1", Ref: "1", Topic: "realtime:chat-room", Event: "phx_reply"}},
		{"join_ok_two", `["1","1","realtime:test","phx_reply",{"status":"ok","response":{"postgres_changes":[{"event":"INSERT","schema":"public","table":"test","id":11111111},{"event":"DELETE","schema":"public","table":"test","id":22222222}]}}]`,
			Frame{JoinRef: "1", Ref: "1", Topic: "realtime:test", Event: "phx_reply"}},
		{"subscribed", `["13",null,"realtime:chat-room","system",{"message":"Subscribed to PostgreSQL","status":"ok","extension":"postgres_changes","channel":"main"}]`,
			Frame{JoinRef: "13", Topic: "realtime:chat-room", Event: "system"}},
		{"insert", `[null,null,"realtime:test","postgres_changes",{"ids":[11111111],"data":{"schema":"public","table":"test","type":"INSERT","commit_timestamp":"2026-01-01T00:00:00.000Z","columns":[{"name":"id","type":"int4"},{"name":"details","type":"text"},{"name":"binary_data","type":"bytea"}],"record":{"id":1,"details":"test","binary_data":null},"errors":null}}]`,
			Frame{Topic: "realtime:test", Event: "postgres_changes"}},
		{"update", `[null,null,"realtime:chat-room","postgres_changes",{"ids":[104868189],"data":{"schema":"public","table":"test","commit_timestamp":"2025-11-19T00:22:40.877Z","type":"UPDATE","columns":[{"name":"id","type":"int8"},{"name":"created_at","type":"timestamptz"},{"name":"text","type":"text"}],"record":{"id":46,"text":"content","created_at":"2025-11-03T09:32:55+00:00"},"old_record":{"id":46},"errors":null}}]`,
			Frame{Topic: "realtime:chat-room", Event: "postgres_changes"}},
		{"delete", `[null,null,"realtime:any","postgres_changes",{"ids":[22222222],"data":{"schema":"public","table":"test","type":"DELETE","commit_timestamp":"2026-01-01T00:00:01.000Z","columns":[{"name":"id","type":"int4"},{"name":"details","type":"text"},{"name":"binary_data","type":"bytea"}],"old_record":{"id":1},"errors":null}}]`,
			Frame{Topic: "realtime:any", Event: "postgres_changes"}},
		{"insert_413", `[null,null,"realtime:any","postgres_changes",{"ids":[11111111],"data":{"schema":"public","table":"todos","type":"INSERT","commit_timestamp":"2021-11-05T17:20:51.524Z","columns":[{"name":"id","type":"int8"},{"name":"details","type":"text"},{"name":"body","type":"text"}],"record":{"id":12,"details":"test"},"errors":["Error 413: Payload Too Large"]}}]`,
			Frame{Topic: "realtime:any", Event: "postgres_changes"}},
		{"system_error_filter", `["1",null,"realtime:test","system",{"extension":"postgres_changes","status":"error","message":"Error parsing ` + "`filter`" + ` params: [\"wrong\"]","channel":"test"}]`,
			Frame{JoinRef: "1", Topic: "realtime:test", Event: "system"}},
		{"system_error_timeouts", `["1",null,"realtime:test_fail","system",{"extension":"postgres_changes","status":"error","message":"{:error, \"Too many database timeouts\"}","channel":"test_fail"}]`,
			Frame{JoinRef: "1", Topic: "realtime:test_fail", Event: "system"}},
		{"join_error_users", `["11","3","realtime:room","phx_reply",{"status":"error","response":{"reason":"ConnectionRateLimitReached: Too many connected users"}}]`,
			Frame{JoinRef: "11", Ref: "3", Topic: "realtime:room", Event: "phx_reply"}},
		{"join_error_jwt", `["13","5","realtime:room","phx_reply",{"status":"error","response":{"reason":"InvalidJWTToken: Fields ` + "`role` and `exp`" + ` are required in JWT"}}]`,
			Frame{JoinRef: "13", Ref: "5", Topic: "realtime:room", Event: "phx_reply"}},
		{"token_expired", `["1",null,"realtime:test","system",{"extension":"system","status":"error","message":"Token has expired 0 seconds ago","channel":"test"}]`,
			Frame{JoinRef: "1", Topic: "realtime:test", Event: "system"}},
		{"token_expired_close", `["1","1","realtime:test","phx_close",{}]`,
			Frame{JoinRef: "1", Ref: "1", Topic: "realtime:test", Event: "phx_close"}},
		{"access_token", `["10","1","realtime:chat-room","access_token",{"access_token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.x"}]`,
			Frame{JoinRef: "10", Ref: "1", Topic: "realtime:chat-room", Event: "access_token"}},
		{"heartbeat", `[null,"26","phoenix","heartbeat",{}]`,
			Frame{Ref: "26", Topic: "phoenix", Event: "heartbeat"}},
		{"heartbeat_reply", `[null,"26","phoenix","phx_reply",{"status":"ok","response":{}}]`,
			Frame{Ref: "26", Topic: "phoenix", Event: "phx_reply"}},
		{"leave", `["1","3","realtime:avatar-stack-demo","phx_leave",{}]`,
			Frame{JoinRef: "1", Ref: "3", Topic: "realtime:avatar-stack-demo", Event: "phx_leave"}},
		{"leave_close", `["3","3","realtime:avatar-stack-demo","phx_close",{}]`,
			Frame{JoinRef: "3", Ref: "3", Topic: "realtime:avatar-stack-demo", Event: "phx_close"}},
		{"disconnect", `[null,null,"realtime:room","system",{"extension":"system","status":"ok","message":"Server requested disconnect"}]`,
			Frame{Topic: "realtime:room", Event: "system"}},
		{"js_serializer", `["0","1","t","e",{"foo":1}]`, Frame{JoinRef: "0", Ref: "1", Topic: "t", Event: "e"}},
		{"js_serializer_null_refs", `[null,null,"t","e",{"foo":1}]`, Frame{Topic: "t", Event: "e"}},
	}
	vecV1 = []struct {
		name string
		raw  string
		want Frame
	}{
		{"join", `{"topic":"realtime:any","event":"phx_join","payload":{"config":{"postgres_changes":[{"event":"*","schema":"public","table":"todos"}]}},"ref":"1","join_ref":"1"}`,
			Frame{JoinRef: "1", Ref: "1", Topic: "realtime:any", Event: "phx_join"}},
		{"join_ok", `{"topic":"realtime:any","event":"phx_reply","payload":{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"todos","id":33333333}]}},"ref":"1"}`,
			Frame{Ref: "1", Topic: "realtime:any", Event: "phx_reply"}},
		{"insert", `{"topic":"realtime:any","event":"postgres_changes","payload":{"ids":[33333333],"data":{"schema":"public","table":"todos","type":"INSERT","commit_timestamp":"2026-01-01T00:00:00.000Z","columns":[{"name":"id","type":"int8"}],"record":{"id":1},"errors":null}},"ref":null}`,
			Frame{Topic: "realtime:any", Event: "postgres_changes"}},
		{"heartbeat", `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`,
			Frame{Ref: "2", Topic: "phoenix", Event: "heartbeat"}},
	}
)

// payloadOf extracts the payload element of a vector independently of the
// codec under test.
func payloadOf(t *testing.T, vsn, raw string) json.RawMessage {
	t.Helper()
	if vsn == VsnV2 {
		var arr []json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(raw), &arr))
		return arr[4]
	}
	var obj map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(raw), &obj))
	return obj["payload"]
}

func TestDecodeFrame_Vectors(t *testing.T) {
	for _, v := range vecV2 {
		t.Run("v2/"+v.name, func(t *testing.T) {
			f, err := DecodeFrame(VsnV2, []byte(v.raw))
			require.NoError(t, err)
			want := v.want
			want.Payload = payloadOf(t, VsnV2, v.raw)
			require.Equal(t, want, f)
			// The vectors are compact, so re-encoding is byte-identical.
			out, err := EncodeFrame(VsnV2, f)
			require.NoError(t, err)
			require.Equal(t, v.raw, string(out))
		})
	}
	for _, v := range vecV1 {
		t.Run("v1/"+v.name, func(t *testing.T) {
			f, err := DecodeFrame(VsnV1, []byte(v.raw))
			require.NoError(t, err)
			want := v.want
			want.Payload = payloadOf(t, VsnV1, v.raw)
			require.Equal(t, want, f)
			out, err := EncodeFrame(VsnV1, f)
			require.NoError(t, err)
			require.Equal(t, v.raw, string(out))
		})
	}
}

func TestEncodeFrame_Shapes(t *testing.T) {
	hb := Frame{Ref: "26", Topic: "phoenix", Event: "heartbeat"}
	out, err := EncodeFrame(VsnV2, hb)
	require.NoError(t, err)
	require.Equal(t, `[null,"26","phoenix","heartbeat",{}]`, string(out))
	out, err = EncodeFrame(VsnV1, hb)
	require.NoError(t, err)
	require.Equal(t, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"26"}`, string(out))

	// Strings needing escapes are escaped as encoding/json escapes them.
	out, err = EncodeFrame(VsnV2, Frame{Topic: "realtime:a\"b<é>", Event: "e\u2028\xff"})
	require.NoError(t, err)
	topic, _ := json.Marshal("realtime:a\"b<é>")
	event, _ := json.Marshal("e\u2028\xff")
	require.Equal(t, `[null,null,`+string(topic)+`,`+string(event)+`,{}]`, string(out))
	f, err := DecodeFrame(VsnV2, out)
	require.NoError(t, err)
	require.Equal(t, "realtime:a\"b<é>", f.Topic)

	_, err = EncodeFrame(VsnV2, Frame{Topic: "t", Event: "e", Payload: json.RawMessage(`[1]`)})
	require.Error(t, err)
	_, err = EncodeFrame("3.0.0", hb)
	require.Error(t, err)
}

func TestDecodeFrame_Refs(t *testing.T) {
	f, err := DecodeFrame(VsnV2, []byte(`[7, 26, "t", "e", {}]`))
	require.NoError(t, err)
	require.Equal(t, "7", f.JoinRef)
	require.Equal(t, "26", f.Ref)

	f, err = DecodeFrame(VsnV1, []byte(`{"topic":"t","event":"e","payload":{}}`))
	require.NoError(t, err, "a missing V1 ref means null")
	require.Empty(t, f.Ref)
}

func TestDecodeFrame_Rejects(t *testing.T) {
	cases := []struct {
		name, vsn, raw string
	}{
		{"v2 bare string", VsnV2, `"just a string"`},
		{"v2 V1 map", VsnV2, `{"topic":"t","event":"e","payload":{"m":1},"ref":"1","join_ref":"11"}`},
		{"v2 four elements", VsnV2, `[null,"1","t","e"]`},
		{"v2 six elements", VsnV2, `[null,"1","t","e",{},1]`},
		{"v2 bool ref", VsnV2, `[true,"1","t","e",{}]`},
		{"v2 object ref", VsnV2, `[null,{},"t","e",{}]`},
		{"v2 numeric topic", VsnV2, `[null,"1",1,"e",{}]`},
		{"v2 null event", VsnV2, `[null,"1","t",null,{}]`},
		{"v2 array payload", VsnV2, `[null,"1","t","e",[]]`},
		{"v2 null payload", VsnV2, `[null,"1","t","e",null]`},
		{"v2 invalid json", VsnV2, `[null,"1","t","e",{]`},
		{"v2 empty", VsnV2, ``},
		{"v1 array", VsnV1, `[null,null,"t","e",{}]`},
		{"v1 missing topic", VsnV1, `{"event":"e","payload":{},"ref":null}`},
		{"v1 missing event", VsnV1, `{"topic":"t","payload":{},"ref":null}`},
		{"v1 missing payload", VsnV1, `{"topic":"t","event":"e","ref":null}`},
		{"v1 bad ref", VsnV1, `{"topic":"t","event":"e","payload":{},"ref":[1]}`},
		{"unknown vsn", "3.0.0", `[null,null,"t","e",{}]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFrame(tc.vsn, []byte(tc.raw))
			require.Error(t, err)
			require.True(t, errors.Is(err, ErrMalformedFrame), "error %v does not wrap ErrMalformedFrame", err)
		})
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, v := range vecV2 {
		f.Add(VsnV2, v.raw)
	}
	for _, v := range vecV1 {
		f.Add(VsnV1, v.raw)
	}
	f.Add(VsnV2, `[1e3,-0,"t","e",{"ids":[1.5,"x",-1],"data":{"type":"INSERT","commit_timestamp":"bad"}}]`)
	f.Add(VsnV1, `{"topic":"t","event":"postgres_changes","payload":{"ids":null,"data":null},"ref":12}`)
	f.Fuzz(func(t *testing.T, vsn, raw string) {
		if vsn != VsnV1 {
			vsn = VsnV2
		}
		fr, err := DecodeFrame(vsn, []byte(raw))
		if err != nil {
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("error does not wrap ErrMalformedFrame: %v", err)
			}
			return
		}
		out, err := EncodeFrame(vsn, fr)
		if err != nil {
			t.Fatalf("decoded frame does not re-encode: %v", err)
		}
		again, err := DecodeFrame(vsn, out)
		if err != nil {
			t.Fatalf("re-encoded frame %q does not decode: %v", out, err)
		}
		if again.JoinRef != fr.JoinRef || again.Ref != fr.Ref || again.Topic != fr.Topic || again.Event != fr.Event ||
			string(again.Payload) != string(fr.Payload) {
			t.Fatalf("round trip changed the frame: %+v != %+v", again, fr)
		}
		// Payload decoders must not panic either.
		_, _ = decodeChange(fr.Payload, time.Time{})
		_, _ = verifyBindings([]Binding{{Event: "*", Schema: "public", Table: "t"}}, fr.Payload)
		var r replyPayload
		_ = json.Unmarshal(fr.Payload, &r)
		_ = replyReason(r.Response)
	})
}

// The client's own read path leaves a change payload to decodeChange: a
// frame that is malformed past the payload's first object is still refused.
func TestLazyChangeFramesAreStillChecked(t *testing.T) {
	for _, raw := range []string{
		`[null,null,"realtime:x","postgres_changes",{"ids":[1],"data":{"type":"INSERT","record":{}}},{}]`,
		`[null,null,"realtime:x","postgres_changes",{"ids":[1],"data":{"type":"INSERT","record":{]}}]`,
	} {
		f, err := decodeFrame(VsnV2, []byte(raw), true)
		if err == nil {
			_, err = decodeChange(f.Payload, time.Time{})
		}
		require.Error(t, err, raw)
		_, err = DecodeFrame(VsnV2, []byte(raw))
		require.ErrorIs(t, err, ErrMalformedFrame, raw)
	}
	f, err := decodeFrame(VsnV2, []byte(` [ null , "7" , "realtime:x" , "postgres_changes" , {"ids":[1],"data":{"type":"INSERT","record":{"id":1}}} ] `), true)
	require.NoError(t, err)
	require.Equal(t, "7", f.Ref)
	d, err := decodeChange(f.Payload, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []int64{1}, d.ids)
}
