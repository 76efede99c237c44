package rulerow

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/supabase"
)

const openerSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testKeyring(t *testing.T, b byte) *seal.Keyring {
	t.Helper()
	k, err := seal.NewKeyring(bytes.Repeat([]byte{b}, seal.KeySize))
	require.NoError(t, err)
	return k
}

func mustSeal(t *testing.T, k *seal.Keyring, v string) string {
	t.Helper()
	s, err := k.Seal(v)
	require.NoError(t, err)
	return s
}

func TestOpenerOpensSealedRules(t *testing.T) {
	k := testKeyring(t, 1)
	o := NewOpener(k, false, nil)
	spec := alerts.RuleSpec{ID: "r1", WebhookURL: mustSeal(t, k, "https://hooks.example.com/T0/{{.Workflow.Slug}}"),
		Secrets: []string{mustSeal(t, k, openerSecret)}, Headers: map[string]string{"Authorization": mustSeal(t, k, "Bearer x")}}
	got, err := o.Open(spec, supabase.ConfigTLS{})
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/T0/{{.Workflow.Slug}}", got.WebhookURL)
	assert.Equal(t, []string{openerSecret}, got.Secrets)
	assert.Equal(t, "Bearer x", got.Headers["Authorization"])
	assert.True(t, strings.HasPrefix(spec.WebhookURL, "mhsealed:"), "the input spec is not modified")
	assert.Nil(t, got.TLS, "no TLS material: none on the rule")

	sealedURL, err := o.SealValue("https://hooks.example.com/T0/x")
	require.NoError(t, err)
	assert.True(t, seal.IsSealed(sealedURL))
	plain, err := o.OpenValue(sealedURL)
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/T0/x", plain)
}

func TestOpenerRefusesPlaintextAndForeignKeys(t *testing.T) {
	k := testKeyring(t, 1)
	other := testKeyring(t, 2)
	o := NewOpener(k, false, nil)
	spec := alerts.RuleSpec{ID: "r2", WebhookURL: "https://hooks.example.com/secret-path",
		Secrets: []string{mustSeal(t, other, openerSecret)}, Headers: map[string]string{"X-Token": "tok-123"}}
	_, err := o.Open(spec, supabase.ConfigTLS{ClientCertPEM: "cert", ClientKeyPEM: "-----BEGIN KEY-----"})
	require.Error(t, err)
	msg := err.Error()
	for _, field := range []string{"webhook_url: stored in plaintext", "signing_secrets: secret 1 cannot be opened: sealed value was sealed with a key that is not configured",
		`custom_headers: header "X-Token" stored in plaintext`, "tls_client_key_pem: stored in plaintext"} {
		assert.Contains(t, msg, field)
	}
	// Each problem is a typed field error, so the API files it under its
	// field without parsing the message.
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *alerts.FieldError
		require.ErrorAs(t, e, &fe)
		fields = append(fields, fe.Field)
	}
	assert.Equal(t, []string{"webhook_url", "signing_secrets", "custom_headers", "tls_client_key_pem"}, fields)
	for _, secret := range []string{"secret-path", "tok-123", openerSecret, "BEGIN KEY"} {
		assert.NotContains(t, msg, secret, "errors name fields, never values")
	}

	noKey := NewOpener(nil, false, nil)
	_, err = noKey.SealValue("x")
	assert.ErrorIs(t, err, seal.ErrNoKey)
}

func TestOpenerAllowsPlaintextWithOneWarningPerRule(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	o := NewOpener(nil, true, zap.New(core))
	spec := alerts.RuleSpec{ID: "r3", WebhookURL: "https://hooks.example.com/x", Secrets: []string{openerSecret}}
	for range 3 {
		got, err := o.Open(spec, supabase.ConfigTLS{})
		require.NoError(t, err)
		assert.Equal(t, spec.WebhookURL, got.WebhookURL)
	}
	entries := logs.All()
	require.Len(t, entries, 1, "warned once per rule")
	assert.Equal(t, "r3", entries[0].ContextMap()["rule_id"])
	assert.ElementsMatch(t, []any{"webhook_url", "signing_secrets[0]"}, entries[0].ContextMap()["fields"])
	v, err := o.SealValue("https://hooks.example.com/x")
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/x", v, "without a key, plaintext mode stores the target as is")
}

func TestOpenerValidatesTLS(t *testing.T) {
	k := testKeyring(t, 1)
	o := NewOpener(k, false, nil)
	spec := alerts.RuleSpec{ID: "r4", WebhookURL: mustSeal(t, k, "https://hooks.example.com/")}
	_, err := o.Open(spec, supabase.ConfigTLS{CAPEM: "not a certificate"})
	require.ErrorContains(t, err, "tls: custom TLS configuration is invalid")
	_, err = o.Open(spec, supabase.ConfigTLS{ClientCertPEM: "x"})
	require.ErrorContains(t, err, "set together")
}
