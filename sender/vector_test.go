package sender

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Standard Webhooks published signing vector (the reference libraries'
// sign test): fixed secret, message id, timestamp and body, and the exact
// signature every conforming implementation must produce.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorUnix      = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorHeader(sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, vectorID)
	h.Set(HeaderTimestamp, strconv.Itoa(vectorUnix))
	h.Set(HeaderSignature, sig)
	return h
}

func TestSign_PublishedVector(t *testing.T) {
	ts := time.Unix(vectorUnix, 0)
	for _, secret := range []string{vectorSecret, vectorSecret[len("whsec_"):]} {
		t.Run(secret, func(t *testing.T) {
			key, err := ParseSecret(secret)
			require.NoError(t, err, "with and without the whsec_ prefix")
			assert.Equal(t, vectorSignature, Sign([][]byte{key}, vectorID, ts, []byte(vectorBody)))
		})
	}

	h := vectorHeader(vectorSignature)
	require.NoError(t, Verify(vectorSecret, h, []byte(vectorBody), 0, ts))
	wh, err := standardwebhooks.NewWebhook(vectorSecret)
	require.NoError(t, err)
	require.NoError(t, wh.VerifyIgnoringTimestamp([]byte(vectorBody), h))
}

func TestVerify_RejectsTampering(t *testing.T) {
	ts := time.Unix(vectorUnix, 0)
	body := []byte(vectorBody)
	wh, err := standardwebhooks.NewWebhook(vectorSecret)
	require.NoError(t, err)

	cases := []struct {
		name string
		edit func(h http.Header, body []byte) []byte
	}{
		{"body", func(_ http.Header, b []byte) []byte { return append([]byte(nil), `{"test": 2432232315}`...) }},
		{"timestamp", func(h http.Header, b []byte) []byte { h.Set(HeaderTimestamp, strconv.Itoa(vectorUnix+1)); return b }},
		{"id", func(h http.Header, b []byte) []byte { h.Set(HeaderID, vectorID+"x"); return b }},
		{"signature bytes", func(h http.Header, b []byte) []byte {
			h.Set(HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=")
			return b
		}},
		{"unknown version only", func(h http.Header, b []byte) []byte {
			h.Set(HeaderSignature, "v2,"+vectorSignature[len("v1,"):])
			return b
		}},
		{"malformed base64", func(h http.Header, b []byte) []byte { h.Set(HeaderSignature, "v1,!!!"); return b }},
		{"empty v1", func(h http.Header, b []byte) []byte { h.Set(HeaderSignature, "v1,"); return b }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := vectorHeader(vectorSignature)
			b := c.edit(h, body)
			assert.ErrorIs(t, Verify(vectorSecret, h, b, 0, ts), ErrNoMatchingSigner)
			assert.Error(t, wh.VerifyIgnoringTimestamp(b, h), "the official verifier agrees")
		})
	}

	t.Run("any of several signatures", func(t *testing.T) {
		h := vectorHeader("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc " + vectorSignature)
		assert.NoError(t, Verify(vectorSecret, h, body, 0, ts))
		assert.NoError(t, wh.VerifyIgnoringTimestamp(body, h))
	})
	t.Run("bad timestamp", func(t *testing.T) {
		h := vectorHeader(vectorSignature)
		h.Set(HeaderTimestamp, "yesterday")
		assert.ErrorIs(t, Verify(vectorSecret, h, body, 0, ts), ErrBadTimestamp)
	})
	t.Run("tolerance edges", func(t *testing.T) {
		h := vectorHeader(vectorSignature)
		assert.NoError(t, Verify(vectorSecret, h, body, time.Minute, ts.Add(time.Minute)))
		assert.ErrorIs(t, Verify(vectorSecret, h, body, time.Minute, ts.Add(time.Minute+time.Second)), ErrTimestampTooOld)
		assert.ErrorIs(t, Verify(vectorSecret, h, body, time.Minute, ts.Add(-time.Minute-time.Second)), ErrTimestampTooNew)
	})
}
