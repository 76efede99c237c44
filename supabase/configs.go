package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/supabase-community/postgrest-go"
	"go.uber.org/zap"
)

// Table names of the schema contract (supabase/migrations).
const (
	TableAlertConfigs  = "alert_configs"
	TableAlertLogs     = "alert_logs"
	TableAlertAttempts = "alert_attempts"
	TableDaemonState   = "alert_daemon_state"
)

// AlertConfig is one alert rule (a row of alert_configs). Nullable columns
// read as their zero value when NULL: "" for text, 0 for the thresholds and
// throttle (the schema requires them to be > 0 when set).
type AlertConfig struct {
	ID                    string
	ProjectID             string // owner project; "" when NULL
	WorkflowSlug          string // "" = every workflow of the project
	Name                  string
	Enabled               bool
	Events                []string
	DelayThresholdSeconds int
	StallThresholdSeconds int
	WebhookURL            string   // URL, URL template or sealed envelope
	SigningSecrets        []string // whsec_… secrets or sealed envelopes
	MeshHookSignature     bool
	CustomHeaders         map[string]string // values may be sealed envelopes
	PayloadTemplate       string
	ThrottleMax           int
	ThrottleWindowSeconds int
	DisabledReason        string
	// Destination is "webhook" or a preset (slack, discord, teams,
	// googlechat, pagerduty); "" when the column is absent (read as webhook).
	Destination string
	RoutingKey  string // pagerduty only; a sealed envelope
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// decodeConfig decodes one alert_configs row, naming the column at fault.
func decodeConfig(raw []byte) (AlertConfig, error) {
	d, err := newRowDecoder("alert config", raw)
	if err != nil {
		return AlertConfig{}, err
	}
	var (
		id, projectID, slug, name, url, tmpl, reason nullString
		destination, routingKey                      nullString
		enabled, meshSig                             flexBool
		events, secrets                              textArray
		delay, stall, tmax, twin                     flexInt
		headers                                      headerMap
		created, updated                             pgTime
	)
	d.field("id", &id)
	d.field("project_id", &projectID)
	d.field("workflow_slug", &slug)
	d.field("name", &name)
	d.field("enabled", &enabled)
	d.field("events", &events)
	d.field("delay_threshold_seconds", &delay)
	d.field("stall_threshold_seconds", &stall)
	d.field("webhook_url", &url)
	d.field("signing_secrets", &secrets)
	d.field("meshhook_signature", &meshSig)
	d.field("custom_headers", &headers)
	d.field("payload_template", &tmpl)
	d.field("throttle_max", &tmax)
	d.field("throttle_window_seconds", &twin)
	d.field("disabled_reason", &reason)
	d.field("destination", &destination)
	d.field("routing_key", &routingKey)
	d.field("created_at", &created)
	d.field("updated_at", &updated)
	if id == "" {
		d.fail("id", errors.New("missing"))
	}
	if err := d.err(); err != nil {
		return AlertConfig{}, err
	}
	return AlertConfig{
		ID:                    string(id),
		ProjectID:             string(projectID),
		WorkflowSlug:          string(slug),
		Name:                  string(name),
		Enabled:               bool(enabled),
		Events:                []string(events),
		DelayThresholdSeconds: int(delay),
		StallThresholdSeconds: int(stall),
		WebhookURL:            string(url),
		SigningSecrets:        []string(secrets),
		MeshHookSignature:     bool(meshSig),
		CustomHeaders:         map[string]string(headers),
		PayloadTemplate:       string(tmpl),
		ThrottleMax:           int(tmax),
		ThrottleWindowSeconds: int(twin),
		DisabledReason:        string(reason),
		Destination:           string(destination),
		RoutingKey:            string(routingKey),
		CreatedAt:             created.Time,
		UpdatedAt:             updated.Time,
	}, nil
}

// DecodeAlertConfig decodes an alert_configs row given as a map, such as the
// record of a Realtime change. Values may be typed JSON or Postgres' text
// forms (array literals, "t"/"f", numeric strings).
// configColumns are the alert_configs columns the daemon reads: those of
// decodeConfig and decodeConfigTLS.
var configColumns = []string{
	"id", "project_id", "workflow_slug", "name", "enabled", "events", "delay_threshold_seconds",
	"stall_threshold_seconds", "webhook_url", "signing_secrets", "meshhook_signature", "custom_headers",
	"payload_template", "throttle_max", "throttle_window_seconds", "disabled_reason", "created_at", "updated_at",
	"tls_ca_pem", "tls_client_cert_pem", "tls_client_key_pem", "destination", "routing_key",
}

// ConfigRowComplete reports whether row, an alert_configs record from a
// Realtime change, carries every column the daemon reads. Realtime leaves
// out of an update the large (TOASTed) values it did not change, and drops
// a record's values past its size limit: such a row must be re-read.
func ConfigRowComplete(row map[string]any) bool {
	for _, c := range configColumns {
		if _, ok := row[c]; !ok {
			return false
		}
	}
	return true
}

func DecodeAlertConfig(row map[string]any) (AlertConfig, error) {
	raw, err := json.Marshal(row)
	if err != nil {
		return AlertConfig{}, fmt.Errorf("alert config: %w", err)
	}
	return decodeConfig(raw)
}

// EachAlertConfig calls fn for every alert rule, in id order, a page at a
// time, so that reading many rules does not hold them all at once. Rows
// that do not decode are skipped with a warning. An error from fn stops the
// scan and is returned.
func (s *Store) EachAlertConfig(ctx context.Context, fn func(AlertConfig) error) error {
	return s.scan(ctx, keysetQuery{
		op: "list alert configs", table: TableAlertConfigs, columns: "*", keys: []string{"id"},
	}, func(_ map[string]any, raw json.RawMessage) error {
		c, err := decodeConfig(raw)
		if err != nil {
			s.log.Warn("skipping undecodable alert config", zap.ByteString("id", idOf(raw)), zap.Error(err))
			return nil
		}
		return fn(c)
	})
}

// idOf extracts a row's id for log messages.
func idOf(raw []byte) []byte {
	var r struct {
		ID json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal(raw, &r)
	return r.ID
}

// GetAlertConfig returns one alert rule, or an error satisfying IsNotFound.
func (s *Store) GetAlertConfig(ctx context.Context, id string) (AlertConfig, error) {
	return getByID(ctx, s, "get alert config", TableAlertConfigs, "*", id, decodeConfig)
}

// SetConfigDisabledReason disables an alert rule (enabled = false) and
// records why, e.g. after its endpoint answered 410 Gone. It returns an
// error satisfying IsNotFound if the rule no longer exists.
func (s *Store) SetConfigDisabledReason(ctx context.Context, id, reason string) error {
	patch := map[string]any{"enabled": false, "disabled_reason": reason}
	body, err := s.exec(ctx, "disable alert config", preferHeader("return=representation"),
		func() *postgrest.FilterBuilder {
			return s.client.From(TableAlertConfigs).Update(patch, "representation", "").Eq("id", id)
		})
	if err != nil {
		return err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return fmt.Errorf("supabase: disable alert config: %w", err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("supabase: disable alert config %s: %w", id, ErrNotFound)
	}
	return nil
}
