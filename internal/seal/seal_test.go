package seal

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestSealOpenRoundTrip(t *testing.T) {
	k, err := NewKeyring(key(1))
	require.NoError(t, err)
	for _, plain := range []string{"", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "https://hooks.example.com/T0/B1?token=x", strings.Repeat("é", 5000)} {
		s, err := k.Seal(plain)
		require.NoError(t, err)
		assert.True(t, IsSealed(s))
		assert.True(t, strings.HasPrefix(s, "mhsealed:v1:"+KeyID(key(1))+":"), s)
		if plain != "" {
			assert.NotContains(t, s, plain)
		}
		got, err := k.Open(s)
		require.NoError(t, err)
		assert.Equal(t, plain, got)
	}
	a, _ := k.Seal("same")
	b, _ := k.Seal("same")
	assert.NotEqual(t, a, b, "every seal uses a fresh nonce")
}

func TestKeyRotation(t *testing.T) {
	old, err := NewKeyring(key(1))
	require.NoError(t, err)
	sealedOld, err := old.Seal("secret")
	require.NoError(t, err)

	rotated, err := NewKeyring(key(2), key(1))
	require.NoError(t, err)
	got, err := rotated.Open(sealedOld)
	require.NoError(t, err, "previous keys still open")
	assert.Equal(t, "secret", got)
	sealedNew, err := rotated.Seal("secret")
	require.NoError(t, err)
	assert.Contains(t, sealedNew, ":"+KeyID(key(2))+":", "sealing uses the current key")
	assert.Equal(t, KeyID(key(2)), rotated.CurrentKeyID())

	_, err = old.Open(sealedNew)
	assert.ErrorIs(t, err, ErrUnknownKey)

	openOnly, err := NewKeyring(nil, key(1))
	require.NoError(t, err)
	_, err = openOnly.Seal("x")
	assert.ErrorIs(t, err, ErrNoKey)
	got, err = openOnly.Open(sealedOld)
	require.NoError(t, err)
	assert.Equal(t, "secret", got)
}

func TestOpenRejectsTamperingAndGarbage(t *testing.T) {
	k, err := NewKeyring(key(1), key(2))
	require.NoError(t, err)
	s, err := k.Seal("top secret value")
	require.NoError(t, err)
	id1, id2 := KeyID(key(1)), KeyID(key(2))

	raw, _ := base64.RawURLEncoding.DecodeString(s[strings.LastIndexByte(s, ':')+1:])
	raw[len(raw)-1] ^= 1
	flipped := s[:strings.LastIndexByte(s, ':')+1] + base64.RawURLEncoding.EncodeToString(raw)

	cases := []struct {
		in   string
		want error
	}{
		{"plain", ErrNotSealed},
		{"mhsealed:", ErrMalformed},
		{"mhsealed:v1:", ErrMalformed},
		{"mhsealed:v1:" + id1, ErrMalformed},
		{"mhsealed:v1:" + id1 + ":", ErrMalformed},
		{"mhsealed:v2:" + id1 + ":AAAA", ErrUnknownVersion},
		{"mhsealed:v1:deadbeef:AAAA", ErrUnknownKey},
		{"mhsealed:v1:" + id1 + ":!!!", ErrMalformed},
		{"mhsealed:v1:" + id1 + ":AAAA", ErrMalformed},
		{flipped, ErrAuth},
		// The key id is authenticated: relabelling to another known key fails.
		{strings.Replace(s, id1, id2, 1), ErrAuth},
	}
	for _, c := range cases {
		_, err := k.Open(c.in)
		assert.ErrorIs(t, err, c.want, c.in)
		if err != nil {
			assert.NotContains(t, err.Error(), "top secret")
		}
	}
}

func TestNewKeyringValidatesKeys(t *testing.T) {
	_, err := NewKeyring([]byte("short"))
	require.ErrorContains(t, err, "current key is 5 bytes")
	_, err = NewKeyring(key(1), key(2), []byte("x"))
	require.ErrorContains(t, err, "previous key 1 is 1 bytes")
	assert.Len(t, KeyID(key(1)), 8)
	assert.NotEqual(t, KeyID(key(1)), KeyID(key(2)))
}
