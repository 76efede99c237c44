package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/logging"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// previewPlaceholderURL stands in for an absent URL in a payload preview.
const previewPlaceholderURL = "https://preview.invalid/"

// defaultPreviewThreshold fills an absent threshold in a preview of a
// delayed or stalled alert.
const defaultPreviewThreshold = 15 * time.Minute

// previewInput is the body of POST /api/alerts/preview.
type previewInput struct {
	WebhookURL            *string `json:"webhook_url"`
	PayloadTemplate       *string `json:"payload_template"`
	Event                 string  `json:"event"`
	Name                  string  `json:"name"`
	ProjectID             *string `json:"project_id"`
	WorkflowSlug          *string `json:"workflow_slug"`
	DelayThresholdSeconds *int64  `json:"delay_threshold_seconds"`
	StallThresholdSeconds *int64  `json:"stall_threshold_seconds"`
	Destination           *string `json:"destination"`
}

// previewRoutingKey stands in for a pagerduty rule's routing key in a
// preview: the key never appears in a body before it is sent.
const previewRoutingKey = "PREVIEW0ROUTING0KEY0000000000000"

// previewResponse is a rendered URL and payload.
type previewResponse struct {
	Event string `json:"event"`
	// URL is the rendered webhook URL; null when none was given.
	URL     *string         `json:"url"`
	Payload json.RawMessage `json:"payload"`
}

// parseEvent reads an optional event name (default def) into fe.
func parseEvent(fe fieldErrors, s string, def alerts.Event) alerts.Event {
	if strings.TrimSpace(s) == "" {
		return def
	}
	e, err := alerts.ParseEvent(s)
	if err != nil {
		fe.add("event", "%v", err)
		return def
	}
	return e
}

// previewSpec is a spec that renders event: its events and thresholds are
// filled in so that CompileRule accepts it.
func previewSpec(spec alerts.RuleSpec, event alerts.Event) alerts.RuleSpec {
	spec.Events = []string{string(event)}
	switch event {
	case alerts.EventRecovered:
		spec.Events = append(spec.Events, string(alerts.EventDelayed))
	case alerts.EventResolved:
		spec.Events = append(spec.Events, string(alerts.EventFailed))
	}
	if spec.DelayThreshold <= 0 {
		spec.DelayThreshold = defaultPreviewThreshold
	}
	if spec.StallThreshold <= 0 {
		spec.StallThreshold = defaultPreviewThreshold
	}
	return spec
}

// preview answers POST /api/alerts/preview: the URL and payload a rule
// would send, rendered against a sample run and checked like a stored
// rule; template problems are field errors.
func (a *API) preview(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var in previewInput
	if err := decodeBody(r, &in, false, a.opts.MaxBodyBytes); err != nil {
		return err
	}
	fe := fieldErrors{}
	event := parseEvent(fe, in.Event, alerts.EventFailed)
	if in.ProjectID != nil && !isUUID(*in.ProjectID) {
		fe.add("project_id", "must be a UUID")
	}
	if in.PayloadTemplate != nil && len(*in.PayloadTemplate) > maxTemplateLen {
		fe.add("payload_template", "must be at most %d bytes", maxTemplateLen)
	}
	// The sample names are used for absent or blank ones; given ones are
	// held to the rules' limits.
	if strings.TrimSpace(in.Name) != "" {
		checkText(fe, "name", in.Name, maxNameLen, "")
	}
	if slug := deref(in.WorkflowSlug); strings.TrimSpace(slug) != "" {
		checkText(fe, "workflow_slug", slug, maxSlugLen, "")
	}
	spec := alerts.RuleSpec{
		Name: strings.TrimSpace(in.Name), ProjectID: deref(in.ProjectID), WorkflowSlug: deref(in.WorkflowSlug),
		WebhookURL: previewPlaceholderURL, PayloadTemplate: deref(in.PayloadTemplate),
		DelayThreshold: time.Duration(deref(in.DelayThresholdSeconds)) * time.Second,
		StallThreshold: time.Duration(deref(in.StallThresholdSeconds)) * time.Second,
	}
	if in.WebhookURL != nil && strings.TrimSpace(*in.WebhookURL) != "" {
		spec.WebhookURL = strings.TrimSpace(*in.WebhookURL)
	}
	if d, err := alerts.ParseDestination(deref(in.Destination)); err != nil {
		fe.add("destination", "%v", err)
	} else {
		spec.Destination = d
		if d.NeedsRoutingKey() {
			spec.RoutingKey = previewRoutingKey
		}
	}
	if err := fe.err(); err != nil {
		return err
	}
	_, target, body, err := a.render(previewSpec(spec, event), event, fe)
	if err != nil {
		return err
	}
	resp := previewResponse{Event: string(event), Payload: body}
	if spec.WebhookURL != previewPlaceholderURL {
		resp.URL = &target
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// render compiles spec and renders its alert for event against the sample
// run; problems are answered as field errors.
func (a *API) render(spec alerts.RuleSpec, event alerts.Event, fe fieldErrors) (*alerts.Rule, string, []byte, error) {
	rule := a.compile(spec, fe)
	if err := fe.err(); err != nil {
		return nil, "", nil, err
	}
	target, body, err := a.renderRule(rule, sampleContext(spec, event))
	if err != nil {
		addCompileErrors(fe, err)
		return nil, "", nil, fe.err()
	}
	return rule, target, body, nil
}

// testInput is the body of POST /api/alerts/test: a stored rule
// (config_id), or an ad-hoc endpoint (url, optional secret and headers).
type testInput struct {
	ConfigID          *string           `json:"config_id"`
	URL               *string           `json:"url"`
	Secret            *string           `json:"secret"`
	Headers           map[string]string `json:"headers"`
	PayloadTemplate   *string           `json:"payload_template"`
	MeshHookSignature bool              `json:"meshhook_signature"`
	Event             string            `json:"event"`
	// Destination and RoutingKey describe an ad-hoc endpoint of a preset
	// (the routing key in clear, for pagerduty).
	Destination *string `json:"destination"`
	RoutingKey  *string `json:"routing_key"`
}

// testResponse is the outcome of a test send.
type testResponse struct {
	WebhookID string `json:"webhook_id"`
	// Delivered is true when the receiver answered 2xx.
	Delivered  bool  `json:"delivered"`
	StatusCode *int  `json:"status_code"`
	LatencyMS  int64 `json:"latency_ms"`
	// Outcome is the sender's reason ("ok", "http_500", "timeout",
	// "blocked_address", …); OutcomeKind what a real delivery would do next.
	Outcome         string          `json:"outcome"`
	OutcomeKind     string          `json:"outcome_kind"`
	Error           *string         `json:"error"`
	ResponseExcerpt *string         `json:"response_excerpt"`
	Signed          bool            `json:"signed"`
	TargetURL       string          `json:"target_url"`
	Event           string          `json:"event"`
	Payload         json.RawMessage `json:"payload"`
}

// testSend answers POST /api/alerts/test: one signed delivery of a sample
// alert through the sender (same signing, SSRF guard, TLS and headers as
// real deliveries), recorded nowhere.
func (a *API) testSend(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in testInput
	if err := decodeBody(r, &in, false, a.opts.MaxBodyBytes); err != nil {
		return err
	}
	if a.opts.Tester == nil {
		return &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "test sends are not available in this daemon"}
	}
	fe := fieldErrors{}
	var (
		spec  alerts.RuleSpec
		event alerts.Event
		tls   *sender.TLSConfig
	)
	switch {
	case (in.ConfigID == nil) == (in.URL == nil):
		fe.add("config_id", "give either config_id (a stored rule) or url (an ad-hoc endpoint)")
		return fe.err()
	case in.ConfigID != nil:
		if in.Secret != nil || in.Headers != nil || in.PayloadTemplate != nil || in.MeshHookSignature ||
			in.Destination != nil || in.RoutingKey != nil {
			fe.add("config_id", "secret, headers, payload_template, meshhook_signature, destination and routing_key are taken from the rule")
			return fe.err()
		}
		if !isUUID(*in.ConfigID) {
			fe.add("config_id", "must be a UUID")
			return fe.err()
		}
		c, err := a.opts.Store.GetAlertConfig(p.ctx(r.Context()), *in.ConfigID)
		if supabase.IsNotFound(err) {
			return notFound("rule " + *in.ConfigID)
		}
		if err != nil {
			return err
		}
		t, err := a.opts.Store.GetConfigTLS(p.ctx(r.Context()), c.ID)
		if err != nil {
			return err
		}
		o := a.open(c, t)
		for f, why := range o.problems {
			fe.add("config_id", "the rule's %s: %s", f, why)
		}
		spec, tls = o.spec, rulerow.SenderTLS(o.spec.TLS)
		def := alerts.EventFailed
		if len(spec.Events) > 0 {
			if e, err := alerts.ParseEvent(spec.Events[0]); err == nil {
				def = e
			}
		}
		event = parseEvent(fe, in.Event, def)
	default:
		u := strings.TrimSpace(*in.URL)
		if d, err := alerts.ParseDestination(deref(in.Destination)); err == nil && u == "" {
			u = d.DefaultURL()
		}
		if u == "" {
			fe.add("url", "required")
		} else if len(u) > maxURLLen {
			fe.add("url", "must be at most %d bytes", maxURLLen)
		}
		if in.Secret != nil {
			checkSecrets(fe, "secret", []string{strings.TrimSpace(*in.Secret)})
			spec.Secrets = []string{strings.TrimSpace(*in.Secret)}
		}
		if in.MeshHookSignature && in.Secret == nil {
			fe.add("meshhook_signature", "needs a secret")
		}
		for name, v := range in.Headers {
			if err := checkHeaderName(name); err != nil {
				fe.add("headers", "%v", err)
			}
			if strings.ContainsAny(v, "\r\n\x00") || len(v) > maxHeaderValueLen {
				fe.add("headers", "the value of %q must be at most %d bytes without line breaks or NUL", name, maxHeaderValueLen)
			}
		}
		if d, err := alerts.ParseDestination(deref(in.Destination)); err != nil {
			fe.add("destination", "%v", err)
		} else {
			spec.Destination = d
		}
		if in.RoutingKey != nil {
			spec.RoutingKey = strings.TrimSpace(*in.RoutingKey)
		}
		spec.WebhookURL, spec.Headers, spec.MeshHookSignature = u, in.Headers, in.MeshHookSignature
		spec.PayloadTemplate, spec.Name = deref(in.PayloadTemplate), "Test alert"
		event = parseEvent(fe, in.Event, alerts.EventFailed)
	}
	if err := fe.err(); err != nil {
		return err
	}
	ruleFE := fieldErrors{}
	rule, target, body, err := a.render(previewSpec(spec, event), event, ruleFE)
	if err != nil {
		if in.ConfigID != nil {
			for f, why := range ruleFE {
				fe.add("config_id", "the rule's %s: %s", f, why)
			}
			return fe.err()
		}
		for f, why := range ruleFE {
			switch f {
			case "webhook_url":
				f = "url"
			case "custom_headers":
				f = "headers"
			}
			fe.add(f, "%s", why)
		}
		return fe.err()
	}
	id, err := newWebhookID()
	if err != nil {
		return err
	}
	res := a.opts.Tester.SendOnce(r.Context(), sender.Alert{
		ConfigID: spec.ID, WebhookID: id, RunID: alerts.SampleContext().RunID, Event: string(event),
		Payload: rule.FillSecrets(body), Vendor: sender.VendorOf(string(rule.Destination())),
		TargetURL: target, Secrets: spec.Secrets, MeshHookSignature: spec.MeshHookSignature, Headers: spec.Headers,
		TLS: tls, CreatedAt: a.opts.Now(),
	})
	resp := testResponse{
		WebhookID: id, Delivered: res.Outcome.Kind == sender.Success, StatusCode: optInt(res.StatusCode),
		LatencyMS: res.Latency.Milliseconds(), Outcome: res.Outcome.Reason, OutcomeKind: res.Outcome.Kind.String(),
		Error: optString(res.Error), ResponseExcerpt: optString(res.ResponseExcerpt), Signed: len(spec.Secrets) > 0,
		TargetURL: logging.RedactURL(target), Event: string(event), Payload: body,
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
