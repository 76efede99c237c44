package config

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"
)

// Ops configures the daemon's internal alerts: Standard-Webhooks-signed
// messages to an operator webhook when delivery fails too often, Realtime
// stays unsubscribed or the pending backlog grows, each sent once when the
// condition starts and once when it clears.
type Ops struct {
	// AlertWebhookURL receives the internal alerts; "" disables them.
	AlertWebhookURL Secret `mapstructure:"alert_webhook_url"`
	// AlertSecret signs them (whsec_…). Required with AlertWebhookURL.
	AlertSecret Secret `mapstructure:"alert_secret"`
	// CheckInterval is how often the conditions are evaluated and the pending
	// alerts counted. Defaults to 15s.
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// FailurePercent is the share of failed delivery attempts over
	// FailureWindow above which an alert fires; 0 disables. Defaults to 50.
	FailurePercent int `mapstructure:"failure_percent"`
	// FailureWindow is the window of FailurePercent. Defaults to 5m.
	FailureWindow time.Duration `mapstructure:"failure_window"`
	// FailureMinAttempts is how many attempts the window needs before the
	// ratio counts. Defaults to 20.
	FailureMinAttempts int `mapstructure:"failure_min_attempts"`
	// RealtimeDownAfter is how long Realtime may stay unsubscribed before an
	// alert fires; 0 disables. Defaults to 2m.
	RealtimeDownAfter time.Duration `mapstructure:"realtime_down_after"`
	// PendingBacklog is the number of pending alerts in alert_logs above
	// which an alert fires; 0 disables. Defaults to 10000.
	PendingBacklog int `mapstructure:"pending_backlog"`
}

// defaultOps are the defaults of the ops section.
func defaultOps() Ops {
	return Ops{CheckInterval: 15 * time.Second, FailurePercent: 50, FailureWindow: 5 * time.Minute,
		FailureMinAttempts: 20, RealtimeDownAfter: 2 * time.Minute, PendingBacklog: 10000}
}

func (o Ops) validate(v *validator) {
	v.positive("ops.check_interval", o.CheckInterval)
	v.between("ops.failure_percent", o.FailurePercent, 0, 100)
	v.positive("ops.failure_window", o.FailureWindow)
	if o.FailureMinAttempts < 1 {
		v.add("ops.failure_min_attempts", "must be at least 1, got %d", o.FailureMinAttempts)
	}
	v.nonNegative("ops.realtime_down_after", o.RealtimeDownAfter)
	if o.PendingBacklog < 0 {
		v.add("ops.pending_backlog", "must not be negative, got %d", o.PendingBacklog)
	}
	if !o.AlertWebhookURL.IsSet() {
		if o.AlertSecret.IsSet() {
			v.add("ops.alert_secret", "set but ops.alert_webhook_url is empty")
		}
		return
	}
	if u, err := url.Parse(o.AlertWebhookURL.Value()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.add("ops.alert_webhook_url", "must be an absolute http(s) URL")
	}
	if !o.AlertSecret.IsSet() {
		v.add("ops.alert_secret", "is required with ops.alert_webhook_url")
		return
	}
	raw, ok := strings.CutPrefix(o.AlertSecret.Value(), "whsec_")
	if b, err := base64.StdEncoding.DecodeString(raw); !ok || err != nil || len(b) < 16 {
		v.add("ops.alert_secret", "must be whsec_ followed by at least 16 base64-encoded bytes")
	}
}
