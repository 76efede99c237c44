package jsonenc

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		"", "plain", `quote " and \ backslash`, "tab\tnew\nline\rcr\bback\fform",
		"\x00\x01\x1f\x7f", "<b>&amp;</b>", "héllo wörld ✓ 日本語 🎉", "line\u2028sep\u2029para",
		"\xff\xfe invalid", "trunc\xe2\x80", "\xed\xa0\x80 surrogate", "mixed\xc3(",
		strings.Repeat("a<", 100),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab<>&\"\\\x00\x1f\x7f\n\xe2\x80\xa8\xa9\xc3\xa9\xf0\x9f\x8e\x89\xff ")
	for range 2000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(AppendString(nil, s)), "%q", s)
		assert.Equal(t, string(want), string(AppendString([]byte("x")[:0], []byte(s))), "%q as bytes", s)
	}
}

// FuzzAppendString holds AppendString to encoding/json on any input, and
// checks that the result reads back as the same text (invalid UTF-8 as
// U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "<&>", "\x00\"\\", "\u2028", "\xff", "日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		got := AppendString([]byte("prefix"), s)
		require.Equal(t, "prefix"+string(want), string(got))
		var back string
		require.NoError(t, json.Unmarshal(got[len("prefix"):], &back))
		require.Equal(t, string([]rune(s)), back) // each invalid byte becomes U+FFFD
		require.True(t, utf8.ValidString(back))
	})
}

func BenchmarkAppendString(b *testing.B) {
	s := `{"type":"workflow_run.failed","event":"failed","occurred_at":"2026-01-02T03:05:35Z",` +
		`"run":{"id":"00000000-0000-4000-8000-000000000001","status":"failed"},"workflow":{"slug":"billing","version":3}}`
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
