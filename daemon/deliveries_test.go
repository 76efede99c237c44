package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// TestAlertsOfRulesMissingFromTheCache fails the alerts of rules that are
// gone and postpones those of rules the cache does not have yet.
func TestAlertsOfRulesMissingFromTheCache(t *testing.T) {
	rows := map[string]string{
		"enabled":  `[{"id":"enabled","name":"n","enabled":true,"events":["failed"],"webhook_url":"u","signing_secrets":[],"custom_headers":{}}]`,
		"disabled": `[{"id":"disabled","name":"n","enabled":true,"disabled_reason":"endpoint answered 410 Gone","events":["failed"],"webhook_url":"u","signing_secrets":[],"custom_headers":{}}]`,
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		id := strings.TrimPrefix(r.URL.Query().Get("id"), "eq.")
		if id == "broken" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"code":"PGRST000","message":"down"}`))
			return
		}
		body, ok := rows[id]
		if !ok {
			body = "[]"
		}
		_, _ = w.Write([]byte(body))
	}))
	defer api.Close()
	db, err := supabase.New(supabase.Options{URL: api.URL, ServiceKey: "k", MaxRetries: -1})
	require.NoError(t, err)
	defer db.Close()

	loaded := false
	rules := alerts.NewRuleSet()
	rules.Reject("refused", errors.New("its secret fields cannot be used"))
	d := &Deliveries{Store: db, Rules: rules, Loaded: func() bool { return loaded }}
	ctx := context.Background()
	for _, id := range []string{"enabled", "deleted", "refused"} {
		r := d.refusal(ctx, id)
		assert.Equal(t, "rule_not_loaded", r.Reason, "%s: rules still loading", id)
		assert.Positive(t, r.RetryAfter)
	}

	loaded = true
	for id, want := range map[string]string{
		"enabled": "rule_not_loaded", "broken": "rule_not_loaded", // not cached yet, or cannot tell
		"deleted": "rule_gone", "disabled": "rule_gone", "refused": "rule_gone",
	} {
		r := d.refusal(ctx, id)
		assert.Equal(t, want, r.Reason, id)
		assert.Equal(t, want == "rule_not_loaded", r.RetryAfter > 0, id)
	}
}
