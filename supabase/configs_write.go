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

// AlertConfigWrite holds the columns of an alert rule that a client writes.
// Zero values of nullable columns write NULL: "" for ProjectID,
// WorkflowSlug and PayloadTemplate, 0 for the thresholds and the throttle.
// Secret-bearing values (WebhookURL, SigningSecrets, CustomHeaders values)
// are stored as given: the caller seals them first.
type AlertConfigWrite struct {
	ProjectID             string
	WorkflowSlug          string
	Name                  string
	Enabled               bool
	Events                []string
	DelayThresholdSeconds int
	StallThresholdSeconds int
	WebhookURL            string
	SigningSecrets        []string
	MeshHookSignature     bool
	CustomHeaders         map[string]string
	PayloadTemplate       string
	ThrottleMax           int
	ThrottleWindowSeconds int
	Destination           string // "" writes webhook
	RoutingKey            string // "" writes NULL; sealed by the caller
}

// configRow is AlertConfigWrite on the wire. Every key is present, so an
// update replaces every writable column.
type configRow struct {
	ProjectID             *string           `json:"project_id"`
	WorkflowSlug          *string           `json:"workflow_slug"`
	Name                  string            `json:"name"`
	Enabled               bool              `json:"enabled"`
	Events                []string          `json:"events"`
	DelayThresholdSeconds *int              `json:"delay_threshold_seconds"`
	StallThresholdSeconds *int              `json:"stall_threshold_seconds"`
	WebhookURL            string            `json:"webhook_url"`
	SigningSecrets        []string          `json:"signing_secrets"`
	MeshHookSignature     bool              `json:"meshhook_signature"`
	CustomHeaders         map[string]string `json:"custom_headers"`
	PayloadTemplate       *string           `json:"payload_template"`
	ThrottleMax           *int              `json:"throttle_max"`
	ThrottleWindowSeconds *int              `json:"throttle_window_seconds"`
	Destination           string            `json:"destination"`
	RoutingKey            *string           `json:"routing_key"`
}

func (w AlertConfigWrite) row() configRow {
	r := configRow{
		ProjectID: nullable(w.ProjectID), WorkflowSlug: nullable(w.WorkflowSlug), Name: w.Name, Enabled: w.Enabled,
		Events: w.Events, DelayThresholdSeconds: nullable(w.DelayThresholdSeconds),
		StallThresholdSeconds: nullable(w.StallThresholdSeconds), WebhookURL: w.WebhookURL,
		SigningSecrets: w.SigningSecrets, MeshHookSignature: w.MeshHookSignature, CustomHeaders: w.CustomHeaders,
		PayloadTemplate: nullable(w.PayloadTemplate), ThrottleMax: nullable(w.ThrottleMax),
		ThrottleWindowSeconds: nullable(w.ThrottleWindowSeconds),
		Destination:           w.Destination, RoutingKey: nullable(w.RoutingKey),
	}
	if r.Destination == "" {
		r.Destination = "webhook"
	}
	if r.Events == nil {
		r.Events = []string{}
	}
	if r.SigningSecrets == nil {
		r.SigningSecrets = []string{}
	}
	if r.CustomHeaders == nil {
		r.CustomHeaders = map[string]string{}
	}
	return r
}

// InsertAlertConfig creates an alert rule and returns the stored row. As a
// user (WithUserToken) the insert must pass row-level security: a project
// the user does not own fails with an error satisfying IsAuth, a project
// that does not exist with a foreign-key violation (IsForeignKeyViolation).
func (s *Store) InsertAlertConfig(ctx context.Context, w AlertConfigWrite) (AlertConfig, error) {
	const op = "insert alert config"
	row := w.row()
	body, err := s.exec(ctx, op, preferHeader("return=representation"), func() *postgrest.FilterBuilder {
		return s.client.From(TableAlertConfigs).Insert(row, false, "", "representation", "")
	})
	if err != nil {
		return AlertConfig{}, err
	}
	return s.oneConfig(op, "", body)
}

// UpdateAlertConfig replaces the writable columns of rule id, only while its
// updated_at still equals ifUpdatedAt (a compare-and-set against concurrent
// edits; the zero time skips the check). clearDisabledReason also clears
// disabled_reason (a rule re-enabled by its owner). It returns an error
// satisfying IsNotFound when there is no such rule (or the caller may not
// see it), and ErrStale when the rule changed since ifUpdatedAt.
func (s *Store) UpdateAlertConfig(ctx context.Context, id string, w AlertConfigWrite, ifUpdatedAt time.Time, clearDisabledReason bool) (AlertConfig, error) {
	const op = "update alert config"
	var patch any = w.row()
	if clearDisabledReason {
		patch = struct {
			configRow
			DisabledReason *string `json:"disabled_reason"`
		}{configRow: w.row()}
	}
	return s.patchConfig(ctx, op, id, patch, ifUpdatedAt)
}

// SetAlertConfigSecrets replaces a rule's signing_secrets, only while its
// updated_at still equals ifUpdatedAt (zero skips the check). Errors as for
// UpdateAlertConfig.
func (s *Store) SetAlertConfigSecrets(ctx context.Context, id string, secrets []string, ifUpdatedAt time.Time) (AlertConfig, error) {
	if secrets == nil {
		secrets = []string{}
	}
	return s.patchConfig(ctx, "set alert config secrets", id, map[string]any{"signing_secrets": secrets}, ifUpdatedAt)
}

func (s *Store) patchConfig(ctx context.Context, op, id string, patch any, ifUpdatedAt time.Time) (AlertConfig, error) {
	if id == "" {
		return AlertConfig{}, fmt.Errorf("supabase: %s: id is required", op)
	}
	body, err := s.exec(ctx, op, preferHeader("return=representation"), func() *postgrest.FilterBuilder {
		fb := s.client.From(TableAlertConfigs).Update(patch, "representation", "").Eq("id", id)
		if !ifUpdatedAt.IsZero() {
			fb = fb.Eq("updated_at", filterTime(ifUpdatedAt))
		}
		return fb
	})
	if err != nil {
		return AlertConfig{}, err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return AlertConfig{}, fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) == 0 {
		if ifUpdatedAt.IsZero() {
			return AlertConfig{}, fmt.Errorf("supabase: %s %s: %w", op, id, ErrNotFound)
		}
		// Either the rule is gone (or invisible) or it changed meanwhile.
		if _, err := s.GetAlertConfig(ctx, id); err != nil {
			return AlertConfig{}, err
		}
		return AlertConfig{}, fmt.Errorf("supabase: %s %s: %w", op, id, ErrStale)
	}
	return s.oneConfig(op, id, body)
}

// oneConfig decodes the single row of a write's representation.
func (s *Store) oneConfig(op, id string, body []byte) (AlertConfig, error) {
	rows, err := decodeArray(body)
	if err != nil {
		return AlertConfig{}, fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) == 0 {
		return AlertConfig{}, fmt.Errorf("supabase: %s %s: %w", op, id, ErrNotFound)
	}
	c, err := decodeConfig(rows[0])
	if err != nil {
		return AlertConfig{}, fmt.Errorf("supabase: %s: %w", op, err)
	}
	return c, nil
}

// DeleteAlertConfig deletes rule id (its alerts and attempts go with it).
// It returns an error satisfying IsNotFound when there is no such rule or
// the caller may not see it.
func (s *Store) DeleteAlertConfig(ctx context.Context, id string) error {
	const op = "delete alert config"
	body, err := s.exec(ctx, op, preferHeader("return=representation"), func() *postgrest.FilterBuilder {
		return s.client.From(TableAlertConfigs).Delete("representation", "").Eq("id", id)
	})
	if err != nil {
		return err
	}
	rows, err := decodeArray(body)
	if err != nil {
		return fmt.Errorf("supabase: %s: %w", op, err)
	}
	if len(rows) == 0 {
		return fmt.Errorf("supabase: %s %s: %w", op, id, ErrNotFound)
	}
	return nil
}

// ConfigFilter selects alert rules. Empty fields do not filter.
type ConfigFilter struct {
	ID string
	// ProjectID selects one project's rules; NoProject selects the rules
	// without a project instead.
	ProjectID string
	NoProject bool
	// WorkflowSlug selects the rules of one workflow; with ProjectWide the
	// rules covering the whole project (workflow_slug NULL) are included,
	// since they apply to that workflow too.
	WorkflowSlug string
	ProjectWide  bool
}

// apply adds the filter's conditions to fb.
func (f ConfigFilter) apply(fb *postgrest.FilterBuilder) *postgrest.FilterBuilder {
	if f.ID != "" {
		fb = fb.Eq("id", f.ID)
	}
	switch {
	case f.NoProject:
		fb = fb.Is("project_id", "null")
	case f.ProjectID != "":
		fb = fb.Eq("project_id", f.ProjectID)
	}
	if f.WorkflowSlug != "" {
		if f.ProjectWide {
			fb = fb.Or("workflow_slug.eq."+quoteValue(f.WorkflowSlug)+",workflow_slug.is.null", "")
		} else {
			fb = fb.Eq("workflow_slug", f.WorkflowSlug)
		}
	}
	return fb
}

// AlertConfigIDs returns the ids of the rules matching f, in id order,
// reading the id column only: with a user's token (WithUserToken), a zero
// filter gives the ids of every rule the user may see.
func (s *Store) AlertConfigIDs(ctx context.Context, f ConfigFilter) ([]string, error) {
	const op = "list alert config ids"
	var out []string
	err := s.scan(ctx, keysetQuery{op: op, table: TableAlertConfigs, columns: "id", keys: []string{"id"}, filter: f.apply},
		func(row map[string]any, _ json.RawMessage) error {
			id, _ := row["id"].(string)
			out = append(out, id)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FindAlertConfigs returns the rules matching f in id order, paging past the
// server's row cap, at most limit of them (limit <= 0: all). A row that
// cannot be decoded is skipped with a warning.
func (s *Store) FindAlertConfigs(ctx context.Context, f ConfigFilter, limit int) ([]AlertConfig, error) {
	const op = "find alert configs"
	var out []AlertConfig
	errEnough := errors.New("enough")
	err := s.scan(ctx, keysetQuery{
		op: op, table: TableAlertConfigs, columns: "*", keys: []string{"id"}, filter: f.apply,
	}, func(_ map[string]any, raw json.RawMessage) error {
		c, err := decodeConfig(raw)
		if err != nil {
			s.log.Warn("skipping undecodable alert config", zap.ByteString("id", idOf(raw)), zap.Error(err))
			return nil
		}
		out = append(out, c)
		if limit > 0 && len(out) >= limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return out, nil
}

// IsForeignKeyViolation reports whether err is a foreign-key violation
// (SQLSTATE 23503), for example a rule naming a project that does not exist.
func IsForeignKeyViolation(err error) bool {
	e, ok := asError(err)
	return ok && e.Code == "23503"
}

// IsCheckViolation reports whether err is a CHECK or NOT NULL violation
// (SQLSTATE 23514, 23502) or an invalid value for a column's type (22P02,
// for example a malformed uuid).
func IsCheckViolation(err error) bool {
	e, ok := asError(err)
	return ok && (e.Code == "23514" || e.Code == "23502" || e.Code == "22P02")
}
