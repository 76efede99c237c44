package daemon

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshhook/meshhook-alerts/alerts"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/internal/harness/testcert"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// testSealer returns a keyring with one key and a function sealing with it.
func testSealer(t *testing.T) (*seal.Keyring, func(plain string) string) {
	t.Helper()
	k, err := seal.NewKeyring(bytes.Repeat([]byte{1}, seal.KeySize))
	require.NoError(t, err)
	return k, func(plain string) string {
		v, err := k.Seal(plain)
		require.NoError(t, err)
		return v
	}
}

const openerSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestSealedStoreDecodesCompleteRealtimeRecordsWithoutREST(t *testing.T) {
	k, sealed := testSealer(t)
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
	s := NewSealedStore(NewSupabaseStore(db, alerts.MeshHookMapping()), rulerow.NewOpener(k, false, nil))
	row := map[string]any{
		"id": "00000000-0000-4000-8000-0000000000c1", "project_id": "00000000-0000-4000-8000-000000000001",
		"workflow_slug": "billing", "name": "billing failures", "enabled": true, "events": []any{"failed"},
		"delay_threshold_seconds": nil, "stall_threshold_seconds": nil,
		"webhook_url": sealed("https://hooks.example.com/x"), "signing_secrets": []any{sealed(openerSecret)},
		"meshhook_signature": false, "custom_headers": map[string]any{}, "payload_template": nil, "throttle_max": nil,
		"throttle_window_seconds": nil, "disabled_reason": nil, "created_at": "2026-11-28T10:00:00.123456+00:00",
		"updated_at": "2026-11-28T10:00:00.123456+00:00", "tls_ca_pem": nil, "tls_client_cert_pem": nil, "tls_client_key_pem": nil,
		"destination": "webhook", "routing_key": nil,
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
	k, sealed := testSealer(t)
	o := rulerow.NewOpener(k, false, nil)
	ca := testcert.NewCA(t, "receiver CA")
	client := ca.Issue(t, "daemon", testcert.Options{})
	spec := alerts.RuleSpec{ID: "r5", Enabled: true, Events: []string{"failed"}, WebhookURL: sealed("https://hooks.example.com/")}
	got, err := o.Open(spec, supabase.ConfigTLS{CAPEM: string(ca.PEM), ClientCertPEM: string(client.CertPEM),
		ClientKeyPEM: sealed(string(client.KeyPEM))})
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
	assert.Nil(t, rulerow.SenderTLS(nil))
}

// A full load reads the TLS columns before the rules: a rule whose TLS
// material is set in between (here: between the two reads of the TLS
// columns) is read again, with it, instead of loaded without it.
func TestLoadRulesRereadsRulesWhoseTLSChangedMeanwhile(t *testing.T) {
	k, sealed := testSealer(t)
	ca := testcert.NewCA(t, "receiver CA")
	const id = "00000000-0000-4000-8000-0000000000c2"
	rule := map[string]any{
		"id": id, "project_id": "00000000-0000-4000-8000-000000000001",
		"workflow_slug": "billing", "name": "billing failures", "enabled": true, "events": []any{"failed"},
		"delay_threshold_seconds": nil, "stall_threshold_seconds": nil,
		"webhook_url": sealed("https://hooks.example.com/x"), "signing_secrets": []any{sealed(openerSecret)},
		"meshhook_signature": false, "custom_headers": map[string]any{}, "payload_template": nil, "throttle_max": nil,
		"throttle_window_seconds": nil, "disabled_reason": nil, "created_at": "2026-11-28T10:00:00.123456+00:00",
		"updated_at": "2026-11-28T10:00:00.123456+00:00", "destination": "webhook", "routing_key": nil,
	}
	tlsRow := map[string]any{"id": id, "tls_ca_pem": string(ca.PEM), "tls_client_cert_pem": nil, "tls_client_key_pem": nil}
	var tlsLists, byID atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var rows []map[string]any
		firstPage := q.Get("and") == "" // later pages carry the keyset: and=(id.gt.…)
		switch {
		case strings.HasPrefix(q.Get("id"), "eq."):
			byID.Add(1)
			rows = []map[string]any{rule}
		case strings.Contains(q.Get("select"), "tls_ca_pem"):
			// The TLS material is set after the first read.
			if firstPage && tlsLists.Add(1) > 1 {
				rows = []map[string]any{tlsRow}
			}
		case firstPage:
			rows = []map[string]any{rule}
		}
		if rows == nil {
			rows = []map[string]any{}
		}
		w.Header().Set("Content-Type", "application/json")
		require.NoError(t, json.NewEncoder(w).Encode(rows))
	}))
	defer api.Close()
	db, err := supabase.New(supabase.Options{URL: api.URL, ServiceKey: "k"})
	require.NoError(t, err)
	defer db.Close()
	s := NewSealedStore(NewSupabaseStore(db, alerts.MeshHookMapping()), rulerow.NewOpener(k, false, nil))

	rules := alerts.NewRuleSet()
	reload := rules.Reload()
	require.NoError(t, s.LoadRules(t.Context(), reload))
	assert.Empty(t, reload.Commit())
	r, ok := rules.Get(id)
	require.True(t, ok)
	require.NotNil(t, r.TLS(), "the rule carries the TLS material set while it was read")
	assert.Equal(t, string(ca.PEM), r.TLS().CAPEM)
	assert.Equal(t, int64(2), tlsLists.Load())
	assert.Equal(t, int64(1), byID.Load(), "only the changed rule is read again")
}
