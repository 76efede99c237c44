package daemon

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshhook/meshhook-alerts/alerts"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/meshhook/meshhook-alerts/internal/harness/testcert"
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
	for _, field := range []string{"webhook_url: stored in plaintext", "signing_secrets[0]: sealed value was sealed with a key that is not configured",
		`custom_headers["X-Token"]: stored in plaintext`, "tls_client_key_pem: stored in plaintext"} {
		assert.Contains(t, msg, field)
	}
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

func TestSealedStoreDecodesCompleteRealtimeRecordsWithoutREST(t *testing.T) {
	k := testKeyring(t, 1)
	// A REST API that counts the re-reads and has no rows.
	var reads atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	defer api.Close()
	db, err := supabase.New(supabase.Options{URL: api.URL, ServiceKey: "k"})
	require.NoError(t, err)
	defer db.Close()
	s := NewSealedStore(NewSupabaseStore(db, alerts.MeshHookMapping()), NewOpener(k, false, nil))
	row := map[string]any{
		"id": "00000000-0000-4000-8000-0000000000c1", "project_id": "00000000-0000-4000-8000-000000000001",
		"workflow_slug": "billing", "name": "billing failures", "enabled": true, "events": []any{"failed"},
		"delay_threshold_seconds": nil, "stall_threshold_seconds": nil,
		"webhook_url": mustSeal(t, k, "https://hooks.example.com/x"), "signing_secrets": []any{mustSeal(t, k, openerSecret)},
		"meshhook_signature": false, "custom_headers": map[string]any{}, "payload_template": nil, "throttle_max": nil,
		"throttle_window_seconds": nil, "disabled_reason": nil, "created_at": "2026-11-28T10:00:00.123456+00:00",
		"updated_at": "2026-11-28T10:00:00.123456+00:00", "tls_ca_pem": nil, "tls_client_cert_pem": nil, "tls_client_key_pem": nil,
	}
	spec, err := s.DecodeRule(row)
	require.NoError(t, err)
	assert.Equal(t, "https://hooks.example.com/x", spec.WebhookURL)
	assert.Equal(t, []string{openerSecret}, spec.Secrets)
	assert.Equal(t, []string{"failed"}, spec.Events)
	assert.Zero(t, reads.Load(), "a complete record is not re-read")

	delete(row, "tls_ca_pem") // an update that left a TOASTed value out
	_, err = s.DecodeRule(row)
	require.Error(t, err, "the rule is gone by the time it is re-read")
	assert.Positive(t, reads.Load(), "an incomplete record is re-read over REST")
}

// The opened TLS material travels on the rule: the registry holds it, and
// the sender gets it from there.
func TestOpenedTLSMaterialIsOnTheRule(t *testing.T) {
	k := testKeyring(t, 1)
	o := NewOpener(k, false, nil)
	ca := testcert.NewCA(t, "receiver CA")
	client := ca.Issue(t, "daemon", testcert.Options{})
	spec := alerts.RuleSpec{ID: "r5", Enabled: true, Events: []string{"failed"}, WebhookURL: mustSeal(t, k, "https://hooks.example.com/")}
	got, err := o.Open(spec, supabase.ConfigTLS{CAPEM: string(ca.PEM), ClientCertPEM: string(client.CertPEM),
		ClientKeyPEM: mustSeal(t, k, string(client.KeyPEM))})
	require.NoError(t, err)
	require.NotNil(t, got.TLS)
	assert.Equal(t, alerts.TLSMaterial{CAPEM: string(ca.PEM), CertPEM: string(client.CertPEM), KeyPEM: string(client.KeyPEM)}, *got.TLS)

	rules := alerts.NewRuleSet()
	require.NoError(t, rules.Put(got))
	r, ok := rules.Get("r5")
	require.True(t, ok)
	d := &Deliveries{Rules: rules}
	a := d.alertOf(alerts.Claimed{Claim: alerts.Claim{ConfigID: "r5"}, Rule: r})
	require.NotNil(t, a.TLS)
	assert.Equal(t, string(client.KeyPEM), a.TLS.KeyPEM, "the sender gets the rule's opened key")
	assert.Nil(t, senderTLS(nil))
}
