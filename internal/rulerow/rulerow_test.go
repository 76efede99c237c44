package rulerow

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/supabase"
)

func TestSpecOfAStoredRule(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := supabase.AlertConfig{
		ID: "r1", ProjectID: "p1", WorkflowSlug: "lead-sync", Name: "ops", Enabled: true,
		Events: []string{"failed", "delayed"}, DelayThresholdSeconds: 300, StallThresholdSeconds: 60,
		WebhookURL: "https://hooks.example/{{run.id}}", SigningSecrets: []string{"whsec_a", "whsec_b"},
		MeshHookSignature: true, CustomHeaders: map[string]string{"X-Team": "ops"}, PayloadTemplate: `{"a":1}`,
		ThrottleMax: 10, ThrottleWindowSeconds: 90, CreatedAt: created, UpdatedAt: created.Add(time.Hour),
	}
	assert.Equal(t, alerts.RuleSpec{
		ID: "r1", ProjectID: "p1", WorkflowSlug: "lead-sync", Name: "ops", Enabled: true,
		Events: []string{"failed", "delayed"}, DelayThreshold: 5 * time.Minute, StallThreshold: time.Minute,
		WebhookURL: "https://hooks.example/{{run.id}}", Secrets: []string{"whsec_a", "whsec_b"},
		MeshHookSignature: true, Headers: map[string]string{"X-Team": "ops"}, PayloadTemplate: `{"a":1}`,
		ThrottleMax: 10, ThrottleWindow: 90 * time.Second, CreatedAt: created,
	}, Spec(c))

	// A rule the daemon disabled stays disabled even if enabled was set
	// back around the API, which would have cleared the reason.
	c.DisabledReason = "endpoint answered 410 Gone"
	assert.False(t, Spec(c).Enabled)
	c.Enabled, c.DisabledReason = false, ""
	assert.False(t, Spec(c).Enabled)
}
