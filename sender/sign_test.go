package sender

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

func signedHeader(t *testing.T, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	var keys [][]byte
	for _, s := range secrets {
		k, err := ParseSecret(s)
		require.NoError(t, err)
		keys = append(keys, k)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(keys, id, ts, body))
	return h
}

func TestSignaturesVerifyWithTheOfficialVerifier(t *testing.T) {
	body := []byte(`{"type":"workflow_run.failed","event":"failed"}`)
	now := time.Now()
	h := signedHeader(t, []string{secretA, secretB}, "msg_abc", now, body)

	for _, s := range []string{secretA, secretB} {
		wh, err := standardwebhooks.NewWebhook(s)
		require.NoError(t, err)
		require.NoError(t, wh.Verify(body, h), "each active secret verifies during rotation")
		require.NoError(t, Verify(s, h, body, 0, now))
	}
	assert.Len(t, strings.Fields(h.Get(HeaderSignature)), 2)

	wh, _ := standardwebhooks.NewWebhook(secretA)
	assert.Error(t, wh.Verify([]byte(`{"type":"workflow_run.succeeded"}`), h), "a tampered body fails")
	assert.ErrorIs(t, Verify(secretA, h, []byte(`{}`), 0, now), ErrNoMatchingSigner)

	stale := signedHeader(t, []string{secretA}, "msg_abc", now.Add(-10*time.Minute), body)
	assert.Error(t, wh.Verify(body, stale), "a stale timestamp fails")
	assert.ErrorIs(t, Verify(secretA, stale, body, 0, now), ErrTimestampTooOld)
	future := signedHeader(t, []string{secretA}, "msg_abc", now.Add(10*time.Minute), body)
	assert.ErrorIs(t, Verify(secretA, future, body, 0, now), ErrTimestampTooNew)

	other, _ := GenerateSecret()
	assert.ErrorIs(t, Verify(other, h, body, 0, now), ErrNoMatchingSigner)
	assert.ErrorIs(t, Verify(secretA, http.Header{}, body, 0, now), ErrMissingHeaders)
}

// The official library's Sign and ours agree byte for byte.
func TestSignMatchesTheOfficialSigner(t *testing.T) {
	body := []byte(`{"a":1}`)
	ts := time.Unix(1700000000, 0)
	wh, err := standardwebhooks.NewWebhook(secretA)
	require.NoError(t, err)
	want, err := wh.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	require.NoError(t, err)
	key, _ := ParseSecret(secretA)
	assert.Equal(t, want, Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body))
}

func TestParseSecretErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"whsec_!!!", "not whsec_<base64>"},
		{"whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), "at least 16"},
	} {
		_, err := ParseSecret(c.in)
		require.Error(t, err, c.in)
		assert.Contains(t, err.Error(), c.want)
	}
	s, err := GenerateSecret()
	require.NoError(t, err)
	k, err := ParseSecret(s)
	require.NoError(t, err)
	assert.Len(t, k, 32)
}

func TestMeshHookSignature(t *testing.T) {
	// HMAC-SHA256("secret", "hello") in hex, as MeshHook's inbound verifier computes it.
	assert.Equal(t, "sha256=88aab3ede8d3adf94d26ab90d3bafd4a2083070c3bcce9c014ee04a443847c0b",
		MeshHookSignature("secret", []byte("hello")))
}

func BenchmarkSign(b *testing.B) {
	key, _ := ParseSecret(secretA)
	body := make([]byte, 1024)
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		Sign([][]byte{key}, "msg_abc", ts, body)
	}
}
