package api

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// Limits on rule fields.
const (
	maxNameLen        = 200
	maxSlugLen        = 200
	maxURLLen         = 4096
	maxTemplateLen    = 64 << 10
	maxSecrets        = 10
	maxHeaders        = 32
	maxHeaderValueLen = 4096
	maxColumnInt      = math.MaxInt32 // integer columns
	placeholderRuleID = "00000000-0000-4000-8000-000000000000"
)

// ruleInput is the body of POST /api/alerts/config. Pointer fields tell
// "absent" (nil) from a value: an update replaces every field, except that
// webhook_url, signing_secrets and custom_headers keep their stored values
// when absent (they are never returned in clear, so a client cannot send
// them back), and a custom header whose value is null keeps its stored value.
type ruleInput struct {
	ID                    *string            `json:"id"`
	ProjectID             *string            `json:"project_id"`
	WorkflowSlug          *string            `json:"workflow_slug"`
	Name                  string             `json:"name"`
	Enabled               *bool              `json:"enabled"`
	Events                []string           `json:"events"`
	DelayThresholdSeconds *int64             `json:"delay_threshold_seconds"`
	StallThresholdSeconds *int64             `json:"stall_threshold_seconds"`
	WebhookURL            *string            `json:"webhook_url"`
	SigningSecrets        *[]string          `json:"signing_secrets"`
	MeshHookSignature     bool               `json:"meshhook_signature"`
	CustomHeaders         map[string]*string `json:"custom_headers"`
	PayloadTemplate       *string            `json:"payload_template"`
	ThrottleMax           *int64             `json:"throttle_max"`
	ThrottleWindowSeconds *int64             `json:"throttle_window_seconds"`
	// Destination is webhook (the default) or a preset; RoutingKey is a
	// pagerduty rule's routing key in clear, kept when absent on update.
	Destination *string `json:"destination"`
	RoutingKey  *string `json:"routing_key"`
}

// destination is the destination the input names (webhook when absent or
// unknown: checkShape files an unknown one).
func (in *ruleInput) destination() alerts.Destination {
	d, err := alerts.ParseDestination(deref(in.Destination))
	if err != nil {
		return alerts.DestinationWebhook
	}
	return d
}

func (in *ruleInput) isUpdate() bool { return in.ID != nil }

// checkShape validates what can be checked without the stored rule.
func (a *API) checkShape(in *ruleInput, p *principal, fe fieldErrors) {
	if in.ID != nil && !isUUID(*in.ID) {
		fe.add("id", "must be a UUID")
	}
	switch {
	case in.ProjectID != nil && !isUUID(*in.ProjectID):
		fe.add("project_id", "must be a UUID")
	case in.ProjectID == nil && !p.operator:
		fe.add("project_id", "required: the project the rule belongs to")
	}
	if in.WorkflowSlug != nil {
		checkText(fe, "workflow_slug", *in.WorkflowSlug, maxSlugLen, "null for every workflow of the project")
	}
	checkText(fe, "name", in.Name, maxNameLen, "")
	for _, t := range []struct {
		field string
		v     *int64
	}{
		{"delay_threshold_seconds", in.DelayThresholdSeconds}, {"stall_threshold_seconds", in.StallThresholdSeconds},
		{"throttle_max", in.ThrottleMax}, {"throttle_window_seconds", in.ThrottleWindowSeconds},
	} {
		if t.v != nil && (*t.v < 1 || *t.v > maxColumnInt) {
			fe.add(t.field, "must be between 1 and %d, or null", maxColumnInt)
		}
	}
	if in.ThrottleWindowSeconds != nil && in.ThrottleMax == nil {
		fe.add("throttle_max", "required with throttle_window_seconds")
	}
	seen := map[string]bool{}
	for _, e := range in.Events {
		if seen[e] {
			fe.add("events", "%q is listed twice", e)
		}
		seen[e] = true
	}
	if _, err := alerts.ParseDestination(deref(in.Destination)); err != nil {
		fe.add("destination", "%v", err)
	}
	if in.Destination != nil || !in.isUpdate() {
		checkDestinationFields(in, in.destination(), fe)
	} // else buildWrite checks them against the stored destination
	if in.PayloadTemplate != nil {
		switch {
		case len(*in.PayloadTemplate) > maxTemplateLen:
			fe.add("payload_template", "must be at most %d bytes", maxTemplateLen)
		case strings.ContainsRune(*in.PayloadTemplate, 0):
			// The database cannot store it (text holds no NUL).
			fe.add("payload_template", "must not contain NUL characters")
		}
	}
	if in.SigningSecrets != nil {
		secrets := *in.SigningSecrets
		if in.isUpdate() && len(secrets) == 0 {
			fe.add("signing_secrets", "at least one secret is required; omit the field to keep the current ones")
		}
		checkSecrets(fe, "signing_secrets", secrets)
	}
	if len(in.CustomHeaders) > maxHeaders {
		fe.add("custom_headers", "at most %d headers", maxHeaders)
	}
	for name, v := range in.CustomHeaders {
		if err := checkHeaderName(name); err != nil {
			fe.add("custom_headers", "%v", err)
		}
		if v != nil {
			checkHeaderValue(fe, name, *v)
		}
	}
}

// checkDestinationFields validates the fields whose rules depend on the
// rule's destination dest: the routing key and the webhook URL.
func checkDestinationFields(in *ruleInput, dest alerts.Destination, fe fieldErrors) {
	if in.RoutingKey != nil {
		switch k := strings.TrimSpace(*in.RoutingKey); {
		case !dest.NeedsRoutingKey():
			fe.add("routing_key", "only the pagerduty destination takes a routing key (this rule's destination is %s)", dest)
		case seal.IsSealed(k):
			fe.add("routing_key", "give the key in clear; the API seals it before storing it")
		default:
			if err := alerts.CheckRoutingKey(k); err != nil {
				fe.add("routing_key", "%v", err)
			}
		}
	} else if dest.NeedsRoutingKey() && !in.isUpdate() {
		fe.add("routing_key", "required for the %s destination", dest)
	}
	if in.WebhookURL != nil {
		u := strings.TrimSpace(*in.WebhookURL)
		switch {
		case u == "" && dest.DefaultURL() != "":
			// The destination's own endpoint (PagerDuty's Events API).
		case u == "":
			fe.add("webhook_url", "required")
		case len(u) > maxURLLen:
			fe.add("webhook_url", "must be at most %d bytes", maxURLLen)
		case seal.IsSealed(u):
			fe.add("webhook_url", "give the URL in clear; the API seals it before storing it")
		}
	} else if !in.isUpdate() && dest.DefaultURL() == "" {
		fe.add("webhook_url", "required")
	}
}

// checkText validates a required single-line label.
func checkText(fe fieldErrors, field, v string, maxLen int, emptyHint string) {
	switch {
	case strings.TrimSpace(v) == "":
		if emptyHint != "" {
			fe.add(field, "must not be empty (use %s)", emptyHint)
		} else {
			fe.add(field, "required")
		}
	case len(v) > maxLen:
		fe.add(field, "must be at most %d bytes", maxLen)
	default:
		checkVisible(fe, field, v)
	}
}

// checkVisible files a problem when v holds a character that does not show
// as itself: invalid UTF-8, control characters, format characters (Unicode
// category Cf: bidirectional overrides and isolates such as U+202E and
// U+2066..U+2069, zero-width spaces and joiners, the byte-order mark),
// line and paragraph separators, private-use, surrogate and unassigned code
// points, and the other default-ignorable characters (Hangul fillers, the
// combining grapheme joiner). Such characters make a name read differently
// from what it is, in the UI and in alerts. Variation selectors stay
// allowed: emoji need them.
func checkVisible(fe fieldErrors, field, v string) {
	if !utf8.ValidString(v) {
		fe.add(field, "must be valid UTF-8")
		return
	}
	if i := strings.IndexFunc(v, isInvisible); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		fe.add(field, "must not contain control, formatting or invisible characters (found U+%04X at byte %d)", r, i)
	}
}

// isInvisible reports whether r is refused by checkVisible.
func isInvisible(r rune) bool {
	// IsGraphic is letters, marks, numbers, punctuation, symbols and
	// spaces (Zs): everything else (Cc, Cf, Co, Cs, Cn, Zl, Zp) is refused.
	return !unicode.IsGraphic(r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// checkSecrets validates Standard Webhooks secrets given in clear.
func checkSecrets(fe fieldErrors, field string, secrets []string) {
	if len(secrets) > maxSecrets {
		fe.add(field, "at most %d secrets", maxSecrets)
	}
	seen := map[string]bool{}
	for i, s := range secrets {
		if _, err := sender.ParseSecret(s); err != nil {
			fe.add(field, "secret %d: %v", i+1, err)
		}
		if seen[s] {
			fe.add(field, "secret %d is listed twice", i+1)
		}
		seen[s] = true
	}
}

// checkHeaderName accepts an HTTP token that the sender does not set itself.
func checkHeaderName(name string) error {
	switch {
	case name == "":
		return errors.New("a header name is empty")
	case !sender.ValidHeaderName(name):
		return fmt.Errorf("header name %q is not a valid HTTP header name", name)
	case sender.SetsHeader(name):
		return fmt.Errorf("header %q is set by the sender and cannot be overridden", name)
	}
	return nil
}

func checkHeaderValue(fe fieldErrors, name, v string) {
	switch {
	case len(v) > maxHeaderValueLen:
		fe.add("custom_headers", "the value of %q must be at most %d bytes", name, maxHeaderValueLen)
	case !sender.ValidHeaderValue(v):
		fe.add("custom_headers", "the value of %q must not contain a line break or NUL", name)
	case seal.IsSealed(v):
		fe.add("custom_headers", "give the value of %q in clear; the API seals it before storing it", name)
	}
}

// isUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// ruleField maps a field named by alerts.CompileRule to the API's field.
func ruleField(name string) (string, bool) {
	switch name {
	case "events", "delay_threshold_seconds", "stall_threshold_seconds", "webhook_url", "payload_template",
		"destination", "routing_key", "custom_headers":
		return name, true
	case "throttle":
		return "throttle_window_seconds", true
	}
	return "", false
}

// addCompileErrors files the *alerts.FieldError problems of
// alerts.CompileRule and Rule.Render under their fields.
func addCompileErrors(fe fieldErrors, err error) {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fieldErr *alerts.FieldError
		if errors.As(e, &fieldErr) {
			if f, known := ruleField(fieldErr.Field); known {
				fe.add(f, "%s", fieldErr.Err)
				continue
			}
			if fieldErr.Field == "id" {
				continue // the API supplies the id
			}
		}
		fe.add("rule", "%s", e.Error())
	}
}

// compile checks a rule in clear with alerts.CompileRule and renders it
// against the sample run, filing problems under their fields. It returns
// the compiled rule, or nil when there were problems.
func (a *API) compile(spec alerts.RuleSpec, fe fieldErrors) *alerts.Rule {
	if spec.ID == "" {
		spec.ID = placeholderRuleID
	}
	rule, err := alerts.CompileRule(spec)
	if err != nil {
		addCompileErrors(fe, err)
		return nil
	}
	target, _, err := a.renderRule(rule, sampleContext(spec, alerts.EventFailed))
	if err != nil {
		addCompileErrors(fe, err)
		return nil
	}
	if u, err := url.Parse(target); err == nil && u.Scheme == "http" && !a.opts.AllowInsecureHTTP {
		fe.add("webhook_url", "plain http:// URLs are refused (sender.allow_insecure_http is off); use https://")
		return nil
	}
	return rule
}

// sampleContext is the sample run, dressed as the rule's own alert for event.
func sampleContext(spec alerts.RuleSpec, event alerts.Event) *alerts.Context {
	c := alerts.SampleContext()
	c.Event, c.Type = event, "workflow_run."+string(event)
	if spec.ID != "" && spec.ID != placeholderRuleID {
		c.Rule.ID = spec.ID
	}
	if spec.Name != "" {
		c.Rule.Name = spec.Name
	}
	if spec.ProjectID != "" {
		c.Project.ID = spec.ProjectID
		c.Run["project_id"] = spec.ProjectID
	}
	if spec.WorkflowSlug != "" {
		c.Workflow.Slug = spec.WorkflowSlug
	}
	// The sample run is in the state the event reports.
	if status := sampleStatus[event]; status != "" {
		c.Status, c.Run["status"] = status, status
		if status == "running" || status == "paused" {
			c.FinishedAt = nil
			delete(c.Run, "finished_at")
		}
	}
	switch event {
	case alerts.EventDelayed:
		c.Threshold = spec.DelayThreshold
	case alerts.EventStalled:
		c.Threshold = spec.StallThreshold
	case alerts.EventRecovered:
		c.RecoveredFrom = []alerts.Event{alerts.EventDelayed}
	}
	return c
}

// sampleStatus is the sample run's status for each event it is previewed as.
var sampleStatus = map[alerts.Event]string{
	alerts.EventSucceeded: "succeeded", alerts.EventCanceled: "canceled", alerts.EventPaused: "paused",
	alerts.EventDelayed: "running", alerts.EventStalled: "paused", alerts.EventRecovered: "succeeded",
	alerts.EventResolved: "succeeded",
}

// openedRule is a stored rule with its secret-bearing fields opened.
type openedRule struct {
	spec alerts.RuleSpec
	// problems says which fields could not be opened, by field.
	problems fieldErrors
}

// open opens a stored rule's URL, secrets and header values (and, when t
// is not zero, its TLS material) with the daemon's rule opener, filing
// each value that cannot be used under its field.
func (a *API) open(c supabase.AlertConfig, t supabase.ConfigTLS) openedRule {
	return openWith(a.opts.Opener, c, t)
}

// openWith is open with opener o.
func openWith(o *rulerow.Opener, c supabase.AlertConfig, t supabase.ConfigTLS) openedRule {
	opened := openedRule{problems: fieldErrors{}}
	var err error
	opened.spec, err = o.Open(rulerow.Spec(c), t)
	for _, e := range unjoin(err) {
		var fe *alerts.FieldError
		if errors.As(e, &fe) {
			opened.problems.add(fe.Field, "%s", fe.Err)
		} else {
			opened.problems.add("rule", "%s", e)
		}
	}
	return opened
}

// unjoin lists the errors err joins (err itself when it joins none).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ruleView is a rule as the API returns it: no secret in clear, the URL
// redacted unless revealed.
type ruleView struct {
	ID                    string       `json:"id"`
	ProjectID             *string      `json:"project_id"`
	WorkflowSlug          *string      `json:"workflow_slug"`
	Name                  string       `json:"name"`
	Enabled               bool         `json:"enabled"`
	Events                []string     `json:"events"`
	DelayThresholdSeconds *int         `json:"delay_threshold_seconds"`
	StallThresholdSeconds *int         `json:"stall_threshold_seconds"`
	WebhookURL            string       `json:"webhook_url"`
	WebhookURLRevealed    bool         `json:"webhook_url_revealed"`
	SigningSecrets        []secretInfo `json:"signing_secrets"`
	SecretCount           int          `json:"secret_count"`
	MeshHookSignature     bool         `json:"meshhook_signature"`
	CustomHeaderNames     []string     `json:"custom_header_names"`
	PayloadTemplate       *string      `json:"payload_template"`
	ThrottleMax           *int         `json:"throttle_max"`
	ThrottleWindowSeconds *int         `json:"throttle_window_seconds"`
	DisabledReason        *string      `json:"disabled_reason"`
	Destination           string       `json:"destination"`
	// RoutingKey describes a pagerduty rule's routing key (its
	// fingerprint, never the key); null for other destinations.
	RoutingKey *secretInfo `json:"routing_key"`
	// Problems lists, by field, why the daemon cannot use the rule as
	// stored (for example a template that no longer compiles); empty when
	// it is usable.
	Problems  map[string]string `json:"problems"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// view renders a stored rule; reveal shows the webhook URL in clear. It
// never renders the rule's templates (see storedProblems).
func (a *API) view(c supabase.AlertConfig, reveal bool) ruleView {
	o := a.open(c, supabase.ConfigTLS{})
	v := ruleView{
		ID: c.ID, ProjectID: optString(c.ProjectID), WorkflowSlug: optString(c.WorkflowSlug), Name: c.Name,
		Enabled: c.Enabled, Events: c.Events, DelayThresholdSeconds: optInt(c.DelayThresholdSeconds),
		StallThresholdSeconds: optInt(c.StallThresholdSeconds), MeshHookSignature: c.MeshHookSignature,
		PayloadTemplate: optString(c.PayloadTemplate), ThrottleMax: optInt(c.ThrottleMax),
		ThrottleWindowSeconds: optInt(c.ThrottleWindowSeconds), DisabledReason: optString(c.DisabledReason),
		SigningSecrets: make([]secretInfo, 0, len(c.SigningSecrets)), SecretCount: len(c.SigningSecrets),
		CustomHeaderNames: make([]string, 0, len(c.CustomHeaders)), Problems: map[string]string{},
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if v.Events == nil {
		v.Events = []string{}
	}
	v.Destination = string(alerts.DestinationWebhook)
	if c.Destination != "" {
		v.Destination = c.Destination
	}
	if c.RoutingKey != "" {
		k := a.describeSecret(c.RoutingKey)
		v.RoutingKey = &k
	}
	if reveal && o.problems["webhook_url"] == "" {
		v.WebhookURL, v.WebhookURLRevealed = o.spec.WebhookURL, true
	} else {
		v.WebhookURL = a.redactedURL(c.WebhookURL)
	}
	for _, s := range c.SigningSecrets {
		v.SigningSecrets = append(v.SigningSecrets, a.describeSecret(s))
	}
	for name := range c.CustomHeaders {
		v.CustomHeaderNames = append(v.CustomHeaderNames, name)
	}
	sort.Strings(v.CustomHeaderNames)
	problems := o.problems
	if len(problems) == 0 {
		problems = a.storedProblems(c, o.spec)
	}
	for f, why := range problems {
		v.Problems[f] = why
	}
	return v
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optInt(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
