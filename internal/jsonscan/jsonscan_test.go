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
