// Package rulerow reads an alert rule stored as an alert_configs row
// (supabase.AlertConfig) as the engine's rule spec (alerts.RuleSpec). It is
// the one translation between the two, shared by the daemon's rule loader
// and the API, and lives apart from both: the store may not know the engine
// (nor the engine the store), and the API may not import the daemon that
// wires it.
package rulerow

import (
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// Spec is the rule c describes, its URL, secrets and header values as
// stored (possibly sealed). A rule the daemon disabled (disabled_reason is
// set) is disabled whatever enabled says, until its owner re-enables it
// through the API, which clears the reason.
func Spec(c supabase.AlertConfig) alerts.RuleSpec {
	return alerts.RuleSpec{
		ID: c.ID, ProjectID: c.ProjectID, WorkflowSlug: c.WorkflowSlug, Name: c.Name,
		Enabled: c.Enabled && c.DisabledReason == "", Events: c.Events,
		DelayThreshold: seconds(c.DelayThresholdSeconds), StallThreshold: seconds(c.StallThresholdSeconds),
		WebhookURL: c.WebhookURL, Secrets: c.SigningSecrets, MeshHookSignature: c.MeshHookSignature,
		Headers: c.CustomHeaders, PayloadTemplate: c.PayloadTemplate,
		ThrottleMax: c.ThrottleMax, ThrottleWindow: seconds(c.ThrottleWindowSeconds),
		Destination: alerts.Destination(c.Destination), RoutingKey: c.RoutingKey,
		CreatedAt: c.CreatedAt,
	}
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }
