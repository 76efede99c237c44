package jsonscan

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// Valid and DecodeString must agree with json.Valid and with
// json.Unmarshal into a string.
func sameScalarAsReference(t *testing.T, b []byte) {
	t.Helper()
	require.Equal(t, json.Valid(b), Valid(b), "json.Valid(%q)", b)
	if s := bytes.TrimLeft(b, " \t\r\n"); len(s) > 0 && s[0] == '"' {
		var want string
		wantErr := json.Unmarshal(b, &want)
		got, gotErr := DecodeString(b)
		require.Equal(t, wantErr == nil, gotErr == nil, "string %q: %v / %v", b, wantErr, gotErr)
		if wantErr == nil {
			require.Equal(t, want, got, "string %q", b)
		}
	}
}

var scalarVectors = []string{
	`"realtime:db"`, `"phx_reply"`, `"a\"b"`, `"\u00e9\ud800"`, "\"\xff\"", `"x" `, ` "x"`, `"x"y`, `"x`, `"`, `""`,
	`null`, `nul`, `1`, `-1.5e3`, `01`, `1.`, `true`, `false`, `[]`, `{}`, ``, ` `, `"a\x"`, "\"a\x01\"",
}

func TestScalarsMatchEncodingJSON(t *testing.T) {
	for _, v := range scalarVectors {
		sameScalarAsReference(t, []byte(v))
	}
}

func FuzzScalarsMatchEncodingJSON(f *testing.F) {
	for _, v := range scalarVectors {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sameScalarAsReference(t, b)
	})
}

// Value yields what encoding/json yields decoding into an any with
// UseNumber, for any JSON text, and fails exactly when it fails.
func sameValueAsReference(t *testing.T, b []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var want any
	wantErr := dec.Decode(&want)
	if wantErr == nil && dec.InputOffset() < int64(len(b)) && len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		wantErr = json.Unmarshal(b, &want) // trailing data: Unmarshal rejects it
	}
	p := NewParser(b)
	p.SkipSpace()
	got, gotErr := p.Value(nil)
	if gotErr == nil {
		gotErr = p.End()
	}
	require.Equal(t, wantErr == nil, gotErr == nil, "%q: %v / %v", b, wantErr, gotErr)
	if wantErr == nil {
		require.Equal(t, want, got, "%q", b)
	}
}

func TestValueMatchesEncodingJSON(t *testing.T) {
	for _, v := range append(scalarVectors, `{"a":[1,"x",null,{"b":false}],"a":2}`, `{"\u0069":1,"I":2}`, `[{},[]]`, `{"a":}`, `[1,]`) {
		sameValueAsReference(t, []byte(v))
	}
}
