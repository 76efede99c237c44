package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// Page sizes of GET /api/alerts/logs.
const (
	defaultLogPage = 50
	maxLogPage     = 200
)

// alertView is an alert as the API returns it.
type alertView struct {
	ID             string     `json:"id"`
	ConfigID       string     `json:"config_id"`
	ProjectID      *string    `json:"project_id"`
	WorkflowSlug   *string    `json:"workflow_slug"`
	RunID          string     `json:"run_id"`
	Event          string     `json:"event"`
	WebhookID      string     `json:"webhook_id"`
	Status         string     `json:"status"`
	AttemptCount   int        `json:"attempt_count"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	OccurredAt     time.Time  `json:"occurred_at"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	CompletedAt    *time.Time `json:"completed_at"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      *string    `json:"last_error"`
	OutcomeReason  *string    `json:"outcome_reason"`
	// TargetURL is redacted unless revealed.
	TargetURL         string `json:"target_url"`
	TargetURLRevealed bool   `json:"target_url_revealed"`
	// Payload is the exact body sent (GET /api/alerts/logs/{id} only).
	Payload  json.RawMessage `json:"payload,omitempty"`
	Attempts []attemptView   `json:"attempts"`
}

// attemptView is one delivery attempt.
type attemptView struct {
	Attempt         int       `json:"attempt"`
	StartedAt       time.Time `json:"started_at"`
	LatencyMS       int64     `json:"latency_ms"`
	StatusCode      *int      `json:"status_code"`
	Error           *string   `json:"error"`
	ResponseExcerpt *string   `json:"response_excerpt"`
	Outcome         string    `json:"outcome"`
}

func (a *API) alertView(l supabase.AlertLog, attempts []supabase.Attempt, reveal, withPayload bool) alertView {
	v := alertView{
		ID: l.ID, ConfigID: l.ConfigID, ProjectID: optString(l.ProjectID), WorkflowSlug: optString(l.WorkflowSlug),
		RunID: l.RunID, Event: l.Event, WebhookID: l.WebhookID, Status: string(l.Status), AttemptCount: l.Attempts,
		NextAttemptAt: optTime(l.NextAttemptAt), OccurredAt: l.OccurredAt, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt,
		CompletedAt: optTime(l.CompletedAt), LastStatusCode: optInt(l.LastStatusCode), LastError: optString(l.LastError),
		OutcomeReason: optString(l.OutcomeReason), Attempts: make([]attemptView, 0, len(attempts)),
	}
	if plain, err := a.opts.Opener.OpenValue(l.TargetURL); reveal && err == nil {
		v.TargetURL, v.TargetURLRevealed = plain, true
	} else {
		v.TargetURL = a.redactedURL(l.TargetURL)
	}
	if withPayload {
		if json.Valid(l.Payload) {
			v.Payload = json.RawMessage(l.Payload)
		} else {
			v.Payload, _ = json.Marshal(string(l.Payload))
		}
	}
	for _, at := range attempts {
		v.Attempts = append(v.Attempts, attemptView{
			Attempt: at.Attempt, StartedAt: at.StartedAt, LatencyMS: at.Latency.Milliseconds(),
			StatusCode: optInt(at.StatusCode), Error: optString(at.Error), ResponseExcerpt: optString(at.ResponseExcerpt),
			Outcome: at.Outcome,
		})
	}
	return v
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// logsResponse is a page of the alert log.
type logsResponse struct {
	Alerts []alertView `json:"alerts"`
	// NextCursor fetches the next (older) page; null on the last page.
	NextCursor *string `json:"next_cursor"`
}

// listLogs answers GET /api/alerts/logs: alerts newest first, filtered by
// workflow (workflow_id, or project_id and workflow_slug), rule, run,
// status and claim time, a page at a time, each with its attempts.
func (a *API) listLogs(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	var f supabase.AlertFilter
	for _, id := range []struct {
		name string
		dst  *string
	}{{"project_id", &f.ProjectID}, {"config_id", &f.ConfigID}} {
		if v := q.Get(id.name); v != "" {
			if !isUUID(v) {
				return badRequest(id.name, "must be a UUID")
			}
			*id.dst = v
		}
	}
	f.WorkflowSlug, f.RunID = q.Get("workflow_slug"), q.Get("run_id")
	if wid := q.Get("workflow_id"); wid != "" {
		if !isUUID(wid) {
			return badRequest("workflow_id", "must be a UUID")
		}
		if f.WorkflowSlug != "" || f.ProjectID != "" {
			return badRequest("workflow_id", "give either workflow_id or project_id and workflow_slug")
		}
		_, wf, err := a.resolveWorkflow(r, p, wid, "")
		if err != nil {
			return err
		}
		f.ProjectID, f.NoProject, f.WorkflowSlug = wf.ProjectID, wf.NoProject, wf.WorkflowSlug
	}
	if st := q.Get("status"); st != "" {
		for _, s := range strings.Split(st, ",") {
			s := supabase.AlertStatus(strings.TrimSpace(s))
			if !s.Valid() {
				return badRequest("status", "%q is not one of pending, delivering, succeeded, failed, suppressed", s)
			}
			f.Statuses = append(f.Statuses, s)
		}
	}
	var err error
	if f.From, err = queryTime(r, "from"); err != nil {
		return err
	}
	if f.To, err = queryTime(r, "to"); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return badRequest("to", "must be after from")
	}
	limit := defaultLogPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLogPage {
			return badRequest("limit", "must be an integer between 1 and %d", maxLogPage)
		}
		limit = n
	}
	var after *supabase.AlertCursor
	if c := q.Get("cursor"); c != "" {
		if after, err = decodeCursor(c); err != nil {
			return badRequest("cursor", "is not a cursor this API returned")
		}
	}
	reveal, err := queryBool(r, "reveal_url")
	if err != nil {
		return err
	}

	ctx := p.ctx(r.Context())
	logs, next, err := a.opts.Store.ListAlerts(ctx, f, after, limit)
	if err != nil {
		return err
	}
	ids := make([]string, len(logs))
	for i, l := range logs {
		ids[i] = l.ID
	}
	attempts, err := a.opts.Store.AttemptsOf(ctx, ids)
	if err != nil {
		return err
	}
	resp := logsResponse{Alerts: make([]alertView, len(logs))}
	for i, l := range logs {
		resp.Alerts[i] = a.alertView(l, attempts[l.ID], reveal, false)
	}
	if next != nil {
		c := encodeCursor(*next)
		resp.NextCursor = &c
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// alertResponse wraps one alert.
type alertResponse struct {
	Alert alertView `json:"alert"`
}

// getLog answers GET /api/alerts/logs/{id}: one alert with its payload and
// attempts.
func (a *API) getLog(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("id")
	if !isUUID(id) {
		return badRequest("id", "must be a UUID")
	}
	reveal, err := queryBool(r, "reveal_url")
	if err != nil {
		return err
	}
	ctx := p.ctx(r.Context())
	l, err := a.opts.Store.GetAlert(ctx, id)
	if supabase.IsNotFound(err) {
		return notFound("alert " + id)
	}
	if err != nil {
		return err
	}
	attempts, err := a.opts.Store.ListAttempts(ctx, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertResponse{Alert: a.alertView(l, attempts, reveal, true)})
	return nil
}

// redeliver answers POST /api/alerts/logs/{id}/redeliver: a succeeded or
// failed alert becomes pending and due now, so the sender delivers it again
// with the same payload and webhook-id as its next attempt.
//
// Users have no write access to alert_logs under row-level security, so
// the caller's right to the alert is checked by reading it with their
// token; the change itself is made with the daemon's key.
func (a *API) redeliver(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("id")
	if !isUUID(id) {
		return badRequest("id", "must be a UUID")
	}
	ctx := p.ctx(r.Context())
	l, err := a.opts.Store.GetAlert(ctx, id)
	if supabase.IsNotFound(err) {
		return notFound("alert " + id)
	}
	if err != nil {
		return err
	}
	rule, err := a.opts.Store.GetAlertConfig(ctx, l.ConfigID)
	if err != nil && !supabase.IsNotFound(err) {
		return err
	}
	if err != nil || !rule.Enabled {
		return &Error{Status: http.StatusConflict, Code: "rule_disabled",
			Message: "the alert's rule is disabled; enable it before redelivering"}
	}
	updated, err := a.opts.Store.RequeueAlert(r.Context(), id, a.opts.Now())
	switch {
	case errors.Is(err, supabase.ErrNotRedeliverable):
		return &Error{Status: http.StatusConflict, Code: "not_redeliverable",
			Message: "only a succeeded or failed alert can be redelivered; this one is " + string(l.Status)}
	case supabase.IsNotFound(err):
		return notFound("alert " + id)
	case err != nil:
		return err
	}
	if a.opts.Wake != nil {
		a.opts.Wake()
	}
	attempts, err := a.opts.Store.ListAttempts(ctx, id)
	if err != nil {
		return err
	}
	a.log.Info("alert redelivery requested", zap.String("alert_id", id), zap.String("webhook_id", updated.WebhookID),
		zap.Bool("operator", p.operator))
	writeJSON(w, http.StatusAccepted, alertResponse{Alert: a.alertView(updated, attempts, false, false)})
	return nil
}

// queryTime reads an RFC 3339 time query parameter (absent: zero).
func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badRequest(name, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", v)
	}
	return t, nil
}

// cursorJSON is a page cursor's content.
type cursorJSON struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func encodeCursor(c supabase.AlertCursor) string {
	b, _ := json.Marshal(cursorJSON{T: c.CreatedAt.UTC(), ID: c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (*supabase.AlertCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if c.T.IsZero() || !isUUID(c.ID) {
		return nil, errors.New("incomplete cursor")
	}
	return &supabase.AlertCursor{CreatedAt: c.T, ID: c.ID}, nil
}
