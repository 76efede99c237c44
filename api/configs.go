package api

import (
	"cmp"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/meshhook/meshhook-alerts/alerts"
	"github.com/meshhook/meshhook-alerts/internal/rulerow"
	"github.com/meshhook/meshhook-alerts/internal/seal"
	"github.com/meshhook/meshhook-alerts/sender"
	"github.com/meshhook/meshhook-alerts/supabase"
)

// maxListedRules caps the rules one listing returns.
const maxListedRules = 1000

// casTries bounds how often a read-modify-write of a rule is retried when
// the rule changed concurrently.
const casTries = 3

// saveResponse is the answer to POST /api/alerts/config.
type saveResponse struct {
	Rule ruleView `json:"rule"`
	// SigningSecret is the secret the API generated for a new rule, shown
	// this once; absent when the request gave its own secrets.
	SigningSecret string `json:"signing_secret,omitempty"`
}

// saveRule creates a rule, or replaces one when the body has an id.
func (a *API) saveRule(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in ruleInput
	if err := decodeBody(r, &in, false, a.opts.MaxBodyBytes); err != nil {
		return err
	}
	fe := fieldErrors{}
	a.checkShape(&in, p, fe)
	if _, badID := fe["id"]; badID {
		return fe.err() // no rule to compare with
	}
	// The rule is built and compiled even when its shape has problems, so
	// that one answer names every field that is wrong; a field refused as
	// given keeps that reason alone (compiling it again adds only noise).
	shape := maps.Clone(fe)
	ctx := p.ctx(r.Context())
	for try := 1; ; try++ {
		var cur *supabase.AlertConfig
		if in.isUpdate() {
			c, err := a.opts.Store.GetAlertConfig(ctx, *in.ID)
			if supabase.IsNotFound(err) {
				return notFound("rule " + *in.ID)
			}
			if err != nil {
				return err
			}
			cur = &c
		}
		row, generated, err := a.buildWrite(&in, cur, fe)
		if err != nil {
			return err
		}
		maps.Copy(fe, shape)
		if err := fe.err(); err != nil {
			return err
		}
		var saved supabase.AlertConfig
		if cur == nil {
			saved, err = a.opts.Store.InsertAlertConfig(ctx, row)
		} else {
			saved, err = a.opts.Store.UpdateAlertConfig(ctx, cur.ID, row, cur.UpdatedAt, row.Enabled && cur.DisabledReason != "")
		}
		switch {
		case errors.Is(err, supabase.ErrStale) && try < casTries:
			continue
		case supabase.IsForeignKeyViolation(err) || (supabase.IsAuth(err) && !isAuthStatus(err, http.StatusUnauthorized)):
			return fieldErrors{"project_id": "no such project, or it is not yours"}.err()
		case supabase.IsCheckViolation(err):
			return fieldErrors{"rule": "the database refused the rule: " + storeMessage(err)}.err()
		case err != nil:
			return err
		}
		status := http.StatusOK
		if cur == nil {
			status = http.StatusCreated
		}
		a.noteSaved(saved) // buildWrite compiled and rendered it
		writeJSON(w, status, saveResponse{Rule: a.view(saved, false), SigningSecret: generated})
		return nil
	}
}

// buildWrite turns a request into the row to store: values given in clear
// are checked and sealed, values omitted on update keep what is stored,
// and a new rule without secrets gets a generated one (returned in clear).
// Problems are filed in fe; err is for failures of the daemon itself.
func (a *API) buildWrite(in *ruleInput, cur *supabase.AlertConfig, fe fieldErrors) (row supabase.AlertConfigWrite, generated string, err error) {
	row = supabase.AlertConfigWrite{
		ProjectID: deref(in.ProjectID), WorkflowSlug: strings.TrimSpace(deref(in.WorkflowSlug)), Name: strings.TrimSpace(in.Name),
		Enabled: in.Enabled == nil || *in.Enabled, Events: in.Events, MeshHookSignature: in.MeshHookSignature,
		DelayThresholdSeconds: int(deref(in.DelayThresholdSeconds)), StallThresholdSeconds: int(deref(in.StallThresholdSeconds)),
		PayloadTemplate: deref(in.PayloadTemplate), ThrottleMax: int(deref(in.ThrottleMax)),
		ThrottleWindowSeconds: int(deref(in.ThrottleWindowSeconds)),
	}
	var stored openedRule
	if cur != nil {
		stored = openWith(a.keeper, *cur, supabase.ConfigTLS{})
	}
	// The rule as it will be stored (re-enabling it clears
	// disabled_reason); its URL, secrets and headers are filled in clear
	// below.
	next := supabase.AlertConfig{
		ProjectID: row.ProjectID, WorkflowSlug: row.WorkflowSlug, Name: row.Name, Enabled: row.Enabled, Events: row.Events,
		DelayThresholdSeconds: row.DelayThresholdSeconds, StallThresholdSeconds: row.StallThresholdSeconds,
		PayloadTemplate: row.PayloadTemplate, ThrottleMax: row.ThrottleMax, ThrottleWindowSeconds: row.ThrottleWindowSeconds,
		MeshHookSignature: row.MeshHookSignature,
	}
	if cur != nil {
		next.ID = cur.ID
	}
	// The destination: as given, else (on update) as stored, and the
	// fields that depend on it checked against it (checkShape could not).
	dest := in.destination()
	destFE := fieldErrors{} // like checkShape's, they stand alone
	if in.Destination == nil && cur != nil {
		dest = alerts.DestinationWebhook
		if cur.Destination != "" {
			dest = alerts.Destination(cur.Destination)
		}
		checkDestinationFields(in, dest, destFE)
	}
	row.Destination, next.Destination = string(dest), string(dest)
	spec := rulerow.Spec(next)

	// A pagerduty rule's routing key: sealed when given, else kept.
	switch {
	case !dest.NeedsRoutingKey():
	case in.RoutingKey != nil:
		spec.RoutingKey = strings.TrimSpace(*in.RoutingKey)
		if row.RoutingKey, err = a.sealValue("routing_key", spec.RoutingKey); err != nil {
			return row, "", err
		}
	case cur == nil || cur.RoutingKey == "":
		// CompileRule says it is required.
	case stored.problems["routing_key"] != "":
		fe.add("routing_key", "the stored key cannot be opened (%s); give it again", stored.problems["routing_key"])
	default:
		spec.RoutingKey = stored.spec.RoutingKey
		if row.RoutingKey, err = a.keepSealed("routing_key", cur.RoutingKey); err != nil {
			return row, "", err
		}
	}

	// The webhook URL.
	switch {
	case in.WebhookURL != nil:
		spec.WebhookURL = strings.TrimSpace(*in.WebhookURL)
		if row.WebhookURL, err = a.sealValue("webhook_url", spec.WebhookURL); err != nil {
			return row, "", err
		}
	case cur == nil:
		// A new rule without a URL: checkShape said it is required.
	case stored.problems["webhook_url"] != "":
		fe.add("webhook_url", "the stored URL cannot be opened (%s); give it again", stored.problems["webhook_url"])
	default:
		spec.WebhookURL = stored.spec.WebhookURL
		if row.WebhookURL, err = a.keepSealed("webhook_url", cur.WebhookURL); err != nil {
			return row, "", err
		}
	}
	// A kept routing key goes only to the host it was given for: a new
	// URL elsewhere needs the key again, or an update (then a test send)
	// would hand it to whoever the new URL names.
	if dest.NeedsRoutingKey() && in.RoutingKey == nil && in.WebhookURL != nil && cur != nil && cur.RoutingKey != "" &&
		stored.problems["webhook_url"] == "" {
		was, now := endpointHost(dest, stored.spec.WebhookURL), endpointHost(dest, spec.WebhookURL)
		if was != now {
			fe.add("routing_key", "give the routing key again: the URL moves from %s to %s, and the stored key goes only to the host it was given for", was, now)
		}
	}

	// Signing secrets.
	var plain []string
	switch {
	case in.SigningSecrets != nil && len(*in.SigningSecrets) > 0:
		plain = *in.SigningSecrets
	case cur == nil && dest == alerts.DestinationWebhook:
		// Presets' receivers verify no signature: they get none.
		if generated, err = sender.GenerateSecret(); err != nil {
			return row, "", err
		}
		plain = []string{generated}
	}
	for _, s := range plain {
		sealed, err := a.sealValue("signing_secrets", strings.TrimSpace(s))
		if err != nil {
			return row, "", err
		}
		row.SigningSecrets = append(row.SigningSecrets, sealed)
	}
	if plain == nil && cur != nil {
		for _, s := range cur.SigningSecrets {
			kept, err := a.keepSealed("signing_secrets", s)
			if err != nil {
				return row, "", err
			}
			row.SigningSecrets = append(row.SigningSecrets, kept)
		}
	}

	// Custom headers, for webhooks only: a rule moving to a preset drops
	// its stored ones (given ones are refused by CompileRule).
	keep := cur
	if dest != alerts.DestinationWebhook && in.CustomHeaders == nil {
		keep = nil
	}
	if err := a.mergeHeaders(in, keep, &row, &spec, fe); err != nil {
		return row, "", err
	}
	a.compile(spec, fe)
	maps.Copy(fe, destFE)
	return row, generated, nil
}

// mergeHeaders fills row's and spec's headers: given values are sealed, a
// null value keeps the stored one, omitted custom_headers keep them all.
func (a *API) mergeHeaders(in *ruleInput, cur *supabase.AlertConfig, row *supabase.AlertConfigWrite, spec *alerts.RuleSpec, fe fieldErrors) error {
	row.CustomHeaders, spec.Headers = map[string]string{}, map[string]string{}
	var stored map[string]string
	if cur != nil {
		stored = cur.CustomHeaders
	}
	if in.CustomHeaders == nil {
		for name, v := range stored {
			if err := a.keepHeader(name, v, row, spec, fe); err != nil {
				return err
			}
		}
		return nil
	}
	seen := map[string]string{}
	for name, v := range in.CustomHeaders {
		lower := strings.ToLower(name)
		if prev, dup := seen[lower]; dup {
			fe.add("custom_headers", "%q and %q name the same header", prev, name)
			continue
		}
		seen[lower] = name
		if v != nil {
			sealed, err := a.sealValue("custom_headers", *v)
			if err != nil {
				return err
			}
			row.CustomHeaders[name], spec.Headers[name] = sealed, *v
			continue
		}
		storedName, ok := "", false
		for sn := range stored {
			if strings.EqualFold(sn, name) {
				storedName, ok = sn, true
				break
			}
		}
		if !ok {
			fe.add("custom_headers", "%q is null but has no stored value to keep; give its value", name)
			continue
		}
		if err := a.keepHeader(name, stored[storedName], row, spec, fe); err != nil {
			return err
		}
	}
	return nil
}

// endpointHost is the host (and port) a rule of dest posts to when its
// webhook_url is raw: the destination's default for an empty one, the
// raw text itself when it does not parse (a template).
func endpointHost(dest alerts.Destination, raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = dest.DefaultURL()
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// keepHeader keeps a stored header value (sealing one stored in clear).
func (a *API) keepHeader(name, v string, row *supabase.AlertConfigWrite, spec *alerts.RuleSpec, fe fieldErrors) error {
	plain, err := a.opts.Opener.OpenValue(v)
	if err != nil {
		fe.add("custom_headers", "the stored value of %q cannot be opened (%v); give it again", name, err)
		return nil
	}
	kept, err := a.keepSealed("custom_headers", v)
	if err != nil {
		return err
	}
	row.CustomHeaders[name], spec.Headers[name] = kept, plain
	return nil
}

// keepSealed returns a stored value to write back: as is when sealed,
// sealed now when it was stored in clear.
func (a *API) keepSealed(field, stored string) (string, error) {
	if seal.IsSealed(stored) {
		return stored, nil
	}
	return a.sealValue(field, stored)
}

// rulesResponse is a list of rules.
type rulesResponse struct {
	Rules []ruleView `json:"rules"`
	// Truncated is set when more rules matched than one listing returns.
	Truncated bool `json:"truncated"`
}

// listRules answers GET /api/alerts/config: the rules the caller may see,
// optionally of one project, one workflow (with the project's
// whole-project rules, which apply to it too) or one id.
func (a *API) listRules(w http.ResponseWriter, r *http.Request, p *principal) error {
	q := r.URL.Query()
	f := supabase.ConfigFilter{ID: q.Get("id"), ProjectID: q.Get("project_id"), WorkflowSlug: q.Get("workflow_slug"), ProjectWide: true}
	if f.ID != "" && !isUUID(f.ID) {
		return badRequest("id", "must be a UUID")
	}
	if f.ProjectID != "" && !isUUID(f.ProjectID) {
		return badRequest("project_id", "must be a UUID")
	}
	reveal, err := queryBool(r, "reveal_url")
	if err != nil {
		return err
	}
	return a.answerRules(w, r, p, f, reveal, nil)
}

// workflowView describes the workflow a rule listing is for.
type workflowView struct {
	ID        *string `json:"id"`
	ProjectID *string `json:"project_id"`
	Slug      string  `json:"slug"`
	Name      *string `json:"name"`
	Version   *int    `json:"version"`
}

// workflowRulesResponse is the answer to GET /api/alerts/config/{id}.
type workflowRulesResponse struct {
	Workflow  workflowView `json:"workflow"`
	Rules     []ruleView   `json:"rules"`
	Truncated bool         `json:"truncated"`
}

// workflowRules answers GET /api/alerts/config/{id}: the rules that apply
// to a workflow, given as a workflow_definitions id (any version: the rules
// cover every version of the workflow's slug) or as a slug with
// ?project_id=.
func (a *API) workflowRules(w http.ResponseWriter, r *http.Request, p *principal) error {
	ref := r.PathValue("id")
	reveal, err := queryBool(r, "reveal_url")
	if err != nil {
		return err
	}
	wf, f, err := a.resolveWorkflow(r, p, ref, r.URL.Query().Get("project_id"))
	if err != nil {
		return err
	}
	f.ProjectWide = true
	return a.answerRules(w, r, p, f, reveal, &wf)
}

// resolveWorkflow turns a workflow reference — a workflow_definitions id,
// or a slug with an optional project id — into the project and slug that
// rules and alerts are keyed by.
func (a *API) resolveWorkflow(r *http.Request, p *principal, ref, projectID string) (workflowView, supabase.ConfigFilter, error) {
	if projectID != "" && !isUUID(projectID) {
		return workflowView{}, supabase.ConfigFilter{}, badRequest("project_id", "must be a UUID")
	}
	if isUUID(ref) {
		d, found, err := a.opts.Store.GetWorkflowDefinition(p.ctx(r.Context()), ref)
		switch {
		case err != nil && !supabase.IsNotFound(err):
			return workflowView{}, supabase.ConfigFilter{}, err
		case !found:
			return workflowView{}, supabase.ConfigFilter{}, notFound("workflow " + ref)
		}
		return workflowView{ID: &d.ID, ProjectID: optString(d.ProjectID), Slug: d.Slug, Name: optString(d.Name), Version: &d.Version},
			supabase.ConfigFilter{ProjectID: d.ProjectID, NoProject: d.ProjectID == "", WorkflowSlug: d.Slug}, nil
	}
	fe := fieldErrors{}
	checkText(fe, "workflow", ref, maxSlugLen, "a workflow_definitions id or a workflow slug")
	if err := fe.err(); err != nil {
		return workflowView{}, supabase.ConfigFilter{}, badRequest("workflow", "%s", fe["workflow"])
	}
	if projectID == "" && !p.operator {
		return workflowView{}, supabase.ConfigFilter{}, badRequest("project_id", "required with a workflow slug")
	}
	return workflowView{ProjectID: optString(projectID), Slug: ref},
		supabase.ConfigFilter{ProjectID: projectID, NoProject: projectID == "", WorkflowSlug: ref}, nil
}

// answerRules lists the rules matching f, oldest first.
func (a *API) answerRules(w http.ResponseWriter, r *http.Request, p *principal, f supabase.ConfigFilter, reveal bool, wf *workflowView) error {
	found, err := a.opts.Store.FindAlertConfigs(p.ctx(r.Context()), f, maxListedRules+1)
	if err != nil {
		return err
	}
	truncated := len(found) > maxListedRules
	if truncated {
		found = found[:maxListedRules]
	}
	slices.SortFunc(found, func(x, y supabase.AlertConfig) int {
		return cmp.Or(x.CreatedAt.Compare(y.CreatedAt), cmp.Compare(x.ID, y.ID))
	})
	views := make([]ruleView, len(found))
	for i, c := range found {
		views[i] = a.view(c, reveal)
	}
	if wf != nil {
		writeJSON(w, http.StatusOK, workflowRulesResponse{Workflow: *wf, Rules: views, Truncated: truncated})
		return nil
	}
	writeJSON(w, http.StatusOK, rulesResponse{Rules: views, Truncated: truncated})
	return nil
}

// deleteRule answers DELETE /api/alerts/config/{id}. The rule's alerts and
// their attempts are deleted with it.
func (a *API) deleteRule(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("id")
	if !isUUID(id) {
		return badRequest("id", "must be a UUID")
	}
	if err := a.opts.Store.DeleteAlertConfig(p.ctx(r.Context()), id); err != nil {
		if supabase.IsNotFound(err) {
			return notFound("rule " + id)
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// secretInput is the optional body of POST /api/alerts/config/{id}/secrets.
type secretInput struct {
	// Secret is a whsec_ secret to add; empty generates one.
	Secret string `json:"secret"`
}

// secretResponse is the answer to adding a secret.
type secretResponse struct {
	// SigningSecret is the added secret in clear, shown this once.
	SigningSecret string   `json:"signing_secret"`
	Fingerprint   string   `json:"fingerprint"`
	Rule          ruleView `json:"rule"`
}

// ruleResponse wraps one rule.
type ruleResponse struct {
	Rule ruleView `json:"rule"`
}

// addSecret answers POST /api/alerts/config/{id}/secrets: the first half of
// a rotation. The new secret signs every delivery next to the old ones
// (receivers accept any matching signature) until the old one is retired.
func (a *API) addSecret(w http.ResponseWriter, r *http.Request, p *principal) error {
	id := r.PathValue("id")
	if !isUUID(id) {
		return badRequest("id", "must be a UUID")
	}
	var in secretInput
	if err := decodeBody(r, &in, true, a.opts.MaxBodyBytes); err != nil {
		return err
	}
	plain := strings.TrimSpace(in.Secret)
	if plain != "" {
		fe := fieldErrors{}
		checkSecrets(fe, "secret", []string{plain})
		if err := fe.err(); err != nil {
			return err
		}
	} else {
		var err error
		if plain, err = sender.GenerateSecret(); err != nil {
			return err
		}
	}
	fp := fingerprint(plain)
	sealed, err := a.sealValue("signing_secrets", plain)
	if err != nil {
		return err
	}
	saved, err := a.editSecrets(r, p, id, func(stored []string) ([]string, error) {
		if len(stored) >= maxSecrets {
			return nil, &Error{Status: http.StatusConflict, Code: "too_many_secrets",
				Message: "the rule already has " + strconv.Itoa(len(stored)) + " secrets; retire one first"}
		}
		for _, s := range stored {
			if a.describeSecret(s).Fingerprint == fp {
				return nil, &Error{Status: http.StatusConflict, Code: "duplicate_secret", Message: "the rule already has this secret"}
			}
		}
		return append(slices.Clone(stored), sealed), nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, secretResponse{SigningSecret: plain, Fingerprint: fp, Rule: a.view(saved, false)})
	return nil
}

// retireSecret answers DELETE /api/alerts/config/{id}/secrets/{fingerprint}:
// the second half of a rotation. The last secret cannot be retired.
func (a *API) retireSecret(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, fp := r.PathValue("id"), strings.ToLower(r.PathValue("fingerprint"))
	if !isUUID(id) {
		return badRequest("id", "must be a UUID")
	}
	saved, err := a.editSecrets(r, p, id, func(stored []string) ([]string, error) {
		i := slices.IndexFunc(stored, func(s string) bool { return a.describeSecret(s).Fingerprint == fp })
		switch {
		case i < 0:
			return nil, notFound("secret " + fp)
		case len(stored) == 1:
			return nil, &Error{Status: http.StatusConflict, Code: "last_secret",
				Message: "a rule keeps at least one signing secret: add the new one first, then retire this one"}
		}
		return slices.Delete(slices.Clone(stored), i, i+1), nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ruleResponse{Rule: a.view(saved, false)})
	return nil
}

// editSecrets applies edit to a rule's stored secrets with a
// compare-and-set on updated_at, retrying on concurrent changes.
func (a *API) editSecrets(r *http.Request, p *principal, id string, edit func(stored []string) ([]string, error)) (supabase.AlertConfig, error) {
	ctx := p.ctx(r.Context())
	for try := 1; ; try++ {
		cur, err := a.opts.Store.GetAlertConfig(ctx, id)
		if supabase.IsNotFound(err) {
			return supabase.AlertConfig{}, notFound("rule " + id)
		}
		if err != nil {
			return supabase.AlertConfig{}, err
		}
		next, err := edit(cur.SigningSecrets)
		if err != nil {
			return supabase.AlertConfig{}, err
		}
		saved, err := a.opts.Store.SetAlertConfigSecrets(ctx, id, next, cur.UpdatedAt)
		if errors.Is(err, supabase.ErrStale) && try < casTries {
			continue
		}
		if supabase.IsNotFound(err) {
			return supabase.AlertConfig{}, notFound("rule " + id)
		}
		return saved, err
	}
}

// queryBool reads a boolean query parameter (absent: false).
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest(name, "must be true or false, got %q", v)
	}
	return b, nil
}

// isAuthStatus reports whether err is a store error with this HTTP status.
func isAuthStatus(err error, status int) bool {
	var e *supabase.Error
	return errors.As(err, &e) && e.Status == status
}

// storeMessage is the database's message of a store error.
func storeMessage(err error) string {
	var e *supabase.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "unknown error"
}
