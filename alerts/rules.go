package alerts

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
)

// RuleSpec is an alert rule as stored in alert_configs, with secret-bearing
// fields already opened (decrypted).
type RuleSpec struct {
	ID                string
	ProjectID         string
	WorkflowSlug      string
	Name              string
	Enabled           bool
	Events            []string
	DelayThreshold    time.Duration
	StallThreshold    time.Duration
	WebhookURL        string
	Secrets           []string
	MeshHookSignature bool
	Headers           map[string]string
	PayloadTemplate   string
	ThrottleMax       int
	ThrottleWindow    time.Duration
	// TLS is the rule's own trust anchor and client identity for its
	// endpoint, opened; nil when it has none.
	TLS *TLSMaterial
	// Destination is where alerts go and so which body they carry ("" is
	// DestinationWebhook).
	Destination Destination
	// RoutingKey is a pagerduty rule's routing (integration) key, opened.
	RoutingKey string
	// CreatedAt is when the rule was created: it never fires for changes
	// that happened before it existed (catch-up after a fresh install or a
	// long outage must not replay history into a new rule).
	CreatedAt time.Time
}

// TLSMaterial is a rule's custom trust anchor and client identity (mTLS),
// PEM-encoded. Empty fields are not used.
type TLSMaterial struct {
	CAPEM   string // trust only these CAs for the rule's endpoint
	CertPEM string // client certificate chain
	KeyPEM  string // client private key
}

// Rule is a validated, compiled RuleSpec. A daemon caches every rule of
// every project it serves, so a Rule is kept small: strings that many rules
// have in common (project, workflow) are shared, events are a bit set, and
// templates are shared with every other rule of the same source. Spec
// rebuilds the RuleSpec when one is needed.
type Rule struct {
	id, name   string
	scope      unique.Handle[scopeKey] // project and workflow
	url        string                  // webhook_url, as stored
	urlT       *Template               // nil: url is static
	payload    *Template               // nil: the default payload
	secrets    []string
	secret     [1]string // secrets' backing array for the usual single secret
	headers    map[string]string
	tls        *TLSMaterial
	created    int64 // unix nanoseconds; see createdNanos
	delay      time.Duration
	stall      time.Duration
	window     time.Duration // throttle window
	max        int32         // throttle max
	dest       Destination   // "" is the webhook
	routingKey string        // pagerduty only
	events     eventSet
	enabled    bool
	meshhook   bool
}

// ID is the rule's id.
func (r *Rule) ID() string { return r.id }

// Name is the rule's name.
func (r *Rule) Name() string { return r.name }

// ProjectID is the project the rule is scoped to ("" for every project).
func (r *Rule) ProjectID() string { return r.scope.Value().project }

// WorkflowSlug is the workflow the rule is scoped to ("" for the whole project).
func (r *Rule) WorkflowSlug() string { return r.scope.Value().slug }

// Enabled reports whether the rule is enabled.
func (r *Rule) Enabled() bool { return r.enabled }

// Secrets are the rule's signing secrets (shared: do not modify).
func (r *Rule) Secrets() []string { return r.secrets }

// Headers are the rule's custom headers (shared: do not modify).
func (r *Rule) Headers() map[string]string { return r.headers }

// TLS is the rule's own TLS material for its endpoint (shared: do not
// modify); nil when it has none.
func (r *Rule) TLS() *TLSMaterial { return r.tls }

// MeshHookSignature reports whether alerts also carry MeshHook's X-Signature.
func (r *Rule) MeshHookSignature() bool { return r.meshhook }

// CreatedAt is when the rule was created (zero when unknown).
func (r *Rule) CreatedAt() time.Time {
	if r.created == unknownCreated {
		return time.Time{}
	}
	return time.Unix(0, r.created).UTC()
}

// unknownCreated stands for a zero CreatedAt, whose UnixNano is undefined.
const unknownCreated = math.MinInt64

// createdNanos is t as a Rule holds it.
func createdNanos(t time.Time) int64 {
	if t.IsZero() {
		return unknownCreated
	}
	return t.UnixNano()
}

// ThrottleMax and ThrottleWindow are the rule's throttle (zero: none).
func (r *Rule) ThrottleMax() int { return int(r.max) }

// ThrottleWindow is the window ThrottleMax counts alerts over.
func (r *Rule) ThrottleWindow() time.Duration { return r.window }

// Spec rebuilds the rule's spec. Its events are in AllEvents order, and its
// slices and map are shared with the rule: do not modify them.
func (r *Rule) Spec() RuleSpec {
	s := RuleSpec{
		ID: r.id, ProjectID: r.ProjectID(), WorkflowSlug: r.WorkflowSlug(), Name: r.name, Enabled: r.enabled,
		Events: r.events.names(), DelayThreshold: r.delay, StallThreshold: r.stall, WebhookURL: r.url,
		Secrets: r.secrets, MeshHookSignature: r.meshhook, Headers: r.headers, TLS: r.tls,
		Destination: r.dest, RoutingKey: r.routingKey,
		ThrottleMax: int(r.max), ThrottleWindow: r.window, CreatedAt: r.CreatedAt(),
	}
	if r.payload != nil {
		s.PayloadTemplate = r.payload.src
	}
	return s
}

// Wants reports whether the rule fires on e.
func (r *Rule) Wants(e Event) bool { return r.events.has(e) }

// Threshold is the rule's threshold for a timer-driven event: the delay
// threshold for delayed, the stall threshold for stalled, zero otherwise.
func (r *Rule) Threshold(e Event) time.Duration {
	switch e {
	case EventDelayed:
		return r.delay
	case EventStalled:
		return r.stall
	}
	return 0
}

// Throttled reports whether the rule limits its alerts per workflow.
func (r *Rule) Throttled() bool { return r.max > 0 && r.window > 0 }

// maxThrottle bounds throttle_max to what a Rule holds.
const maxThrottle = 1<<31 - 1

// FieldError is what is wrong with one field of a rule, named as the
// alert_configs column ("throttle" for the throttle_max and
// throttle_window_seconds pair). Its text is "field: why". CompileRule
// returns them joined; Rule.Render returns one.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

func fieldError(field, why string) error { return &FieldError{Field: field, Err: errors.New(why)} }

func fieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// CompileRule validates a spec and checks its templates against a sample
// context, so a broken rule is rejected when it is loaded, not when it fires.
// Each problem is a *FieldError.
func CompileRule(spec RuleSpec) (*Rule, error) {
	var errs []error
	r := &Rule{
		id: spec.ID, name: spec.Name, scope: unique.Make(scopeKey{spec.ProjectID, spec.WorkflowSlug}),
		url: spec.WebhookURL, secrets: spec.Secrets, headers: spec.Headers, tls: spec.TLS, created: createdNanos(spec.CreatedAt),
		delay: spec.DelayThreshold, stall: spec.StallThreshold, window: spec.ThrottleWindow,
		max: int32(min(max(spec.ThrottleMax, 0), maxThrottle)), enabled: spec.Enabled, meshhook: spec.MeshHookSignature,
		routingKey: spec.RoutingKey,
	}
	if len(spec.Headers) == 0 {
		r.headers = nil
	}
	if d, err := ParseDestination(string(spec.Destination)); err != nil {
		errs = append(errs, &FieldError{Field: "destination", Err: err})
	} else if d != DestinationWebhook {
		r.dest = d
	}
	switch {
	case r.Destination().NeedsRoutingKey() && spec.RoutingKey == "":
		errs = append(errs, fieldErrorf("routing_key", "required for the %s destination", r.Destination()))
	case r.Destination().NeedsRoutingKey():
		if err := CheckRoutingKey(spec.RoutingKey); err != nil {
			errs = append(errs, &FieldError{Field: "routing_key", Err: err})
		}
	case spec.RoutingKey != "":
		errs = append(errs, fieldErrorf("routing_key", "only the pagerduty destination takes a routing key"))
	}
	if len(spec.Headers) > 0 && r.Destination() != DestinationWebhook {
		// A vendor's hook authenticates by its URL or routing key: headers
		// meant for a webhook receiver (a token, say) must not reach it.
		errs = append(errs, fieldErrorf("custom_headers", "only the webhook destination sends custom headers, not %s", r.Destination()))
	}
	if strings.TrimSpace(spec.WebhookURL) == "" {
		spec.WebhookURL = r.Destination().DefaultURL()
		r.url = spec.WebhookURL
	}

	if spec.ID == "" {
		errs = append(errs, fieldError("id", "required"))
	}
	if len(spec.Events) == 0 {
		errs = append(errs, fieldError("events", "at least one event is required"))
	}
	events, evErrs := parseEvents(spec.Events)
	r.events = events
	errs = append(errs, evErrs...)
	if spec.DelayThreshold < 0 {
		errs = append(errs, fieldErrorf("delay_threshold_seconds", "must be > 0, got %s", spec.DelayThreshold))
	} else if r.events.has(EventDelayed) && spec.DelayThreshold == 0 {
		errs = append(errs, fieldError("delay_threshold_seconds", "required and > 0 for the delayed event"))
	}
	if spec.StallThreshold < 0 {
		errs = append(errs, fieldErrorf("stall_threshold_seconds", "must be > 0, got %s", spec.StallThreshold))
	} else if r.events.has(EventStalled) && spec.StallThreshold == 0 {
		errs = append(errs, fieldError("stall_threshold_seconds", "required and > 0 for the stalled event"))
	}
	if r.events.has(EventRecovered) && !r.events.has(EventDelayed) && !r.events.has(EventStalled) {
		errs = append(errs, fieldError("events", "recovered follows a delayed or stalled alert of the same rule; list delayed or stalled too"))
	}
	if r.events.has(EventResolved) && !r.events.has(EventFailed) {
		errs = append(errs, fieldError("events", "resolved follows a failed alert of the same rule; list failed too"))
	}
	if err := checkDestinationEvents(r.Destination(), r.events); err != nil {
		errs = append(errs, err)
	}
	switch {
	case spec.ThrottleMax < 0 || (spec.ThrottleMax > 0 && spec.ThrottleWindow <= 0) || spec.ThrottleWindow < 0:
		errs = append(errs, fieldError("throttle", "throttle_max needs a throttle_window_seconds > 0"))
	case spec.ThrottleMax > maxThrottle:
		errs = append(errs, fieldErrorf("throttle_max", "at most %d, got %d", maxThrottle, spec.ThrottleMax))
	}
	if u, err := internTemplate(kindURL, spec.WebhookURL); err != nil {
		errs = append(errs, &FieldError{Field: "webhook_url", Err: err})
	} else if !u.IsStatic() {
		// A template's source is the template's: shared by every rule of
		// that source, or (split) sliced by its literal text.
		r.urlT, r.url = u, u.src
	}
	r.packStrings()
	if spec.PayloadTemplate != "" {
		if p, err := internTemplate(kindPayload, canonical(spec.PayloadTemplate)); err != nil {
			errs = append(errs, &FieldError{Field: "payload_template", Err: err})
		} else {
			r.payload = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// packStrings copies the rule's own strings (id, name, static URL, secrets)
// into one allocation and points the rule at the copies: a large cache then
// holds one string per rule instead of four or more, each rounded up to its
// size class and scattered among the garbage the rule was decoded from.
func (r *Rule) packStrings() {
	secrets := r.secrets
	switch len(secrets) {
	case 0:
		r.secrets = nil
	case 1:
		r.secret[0] = secrets[0]
		r.secrets = r.secret[:]
	default:
		r.secrets = slices.Clone(secrets)
	}
	url := r.url
	if r.urlT != nil {
		url = "" // the template's
	}
	n := len(r.id) + len(r.name) + len(url)
	for _, s := range r.secrets {
		n += len(s)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(r.id)
	b.WriteString(r.name)
	b.WriteString(url)
	for _, s := range r.secrets {
		b.WriteString(s)
	}
	all := b.String()
	next := func(s string) string {
		out := all[:len(s)]
		all = all[len(s):]
		return out
	}
	r.id, r.name = next(r.id), next(r.name)
	if r.urlT == nil {
		r.url = next(r.url)
	}
	for i, s := range r.secrets {
		r.secrets[i] = next(s)
	}
}

// parseEvents is the set of the named events, with an error for each name
// that is not an event.
func parseEvents(names []string) (eventSet, []error) {
	var set eventSet
	var errs []error
	for _, s := range names {
		e, err := ParseEvent(s)
		if err != nil {
			errs = append(errs, &FieldError{Field: "events", Err: err})
			continue
		}
		set |= eventBit(e)
	}
	return set, errs
}

// same reports whether the compiled rule r describes spec, a freshly read
// one (events compare as sets, the order they are listed in does not matter).
func (r *Rule) same(spec RuleSpec) bool {
	events, errs := parseEvents(spec.Events)
	if len(errs) > 0 {
		return false
	}
	payload := ""
	if r.payload != nil {
		payload = r.payload.src
	}
	headers := spec.Headers
	if len(headers) == 0 {
		headers = nil
	}
	return r.id == spec.ID && r.ProjectID() == spec.ProjectID && r.WorkflowSlug() == spec.WorkflowSlug &&
		r.name == spec.Name && r.enabled == spec.Enabled && r.events == events && len(spec.Events) > 0 &&
		r.delay == spec.DelayThreshold && r.stall == spec.StallThreshold && r.url == specURL(spec) &&
		slices.Equal(r.secrets, spec.Secrets) && r.meshhook == spec.MeshHookSignature &&
		maps.Equal(r.headers, headers) && payload == spec.PayloadTemplate && int(r.max) == spec.ThrottleMax &&
		r.window == spec.ThrottleWindow && r.created == createdNanos(spec.CreatedAt) && sameTLS(r.tls, spec.TLS) &&
		r.Destination() == orWebhook(spec.Destination) && r.routingKey == spec.RoutingKey
}

// specURL is the URL a rule compiled from spec posts to (or renders from).
func specURL(spec RuleSpec) string {
	if strings.TrimSpace(spec.WebhookURL) == "" {
		return orWebhook(spec.Destination).DefaultURL()
	}
	return spec.WebhookURL
}

// orWebhook is d, or the webhook when d is empty.
func orWebhook(d Destination) Destination {
	if d == "" {
		return DestinationWebhook
	}
	return d
}

func sameTLS(a, b *TLSMaterial) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func canonical(v string) string {
	if v == "" {
		return ""
	}
	return unique.Make(v).Value()
}

// Render produces the target URL and body of one alert.
func (r *Rule) Render(c *Context) (url string, body []byte, err error) {
	url = strings.TrimSpace(r.url)
	if r.urlT != nil {
		if url, err = r.urlT.RenderURL(c); err != nil {
			return "", nil, &FieldError{Field: "webhook_url", Err: err}
		}
	}
	standIn := ""
	if r.Destination().NeedsRoutingKey() {
		standIn = newKeyStandIn()
	}
	c.RoutingKey = standIn
	c.DedupKey = DedupKey(c.Rule.ID, c.RunID, c.Workflow, c.Event)
	if r.payload == nil {
		body, err = RenderPreset(r.Destination(), c)
	} else {
		body, err = r.payload.RenderJSON(c)
	}
	if err != nil {
		return "", nil, &FieldError{Field: "payload_template", Err: err}
	}
	if standIn != "" {
		// Stored and shown with the placeholder where the key goes, and
		// nowhere else (see RoutingKeyPlaceholder).
		c.RoutingKey = RoutingKeyPlaceholder
		body = markRoutingKey(body, standIn)
	}
	return url, body, nil
}

// SampleContext is the context templates are checked against at load time
// (and previewed against in the API and UI).
func SampleContext() *Context {
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	finished := started.Add(90 * time.Second)
	return &Context{
		Type: "workflow_run.failed", Event: EventFailed, OccurredAt: finished,
		Run: map[string]any{
			"id": "00000000-0000-4000-8000-000000000001", "project_id": "00000000-0000-4000-8000-0000000000aa",
			"workflow_id": "00000000-0000-4000-8000-0000000000bb", "status": "failed",
			"started_at": started.Format(time.RFC3339), "finished_at": finished.Format(time.RFC3339),
		},
		RunID: "00000000-0000-4000-8000-000000000001", Status: "failed",
		Workflow:  WorkflowInfo{ID: "00000000-0000-4000-8000-0000000000bb", Slug: "sample-workflow", Name: "Sample workflow", Version: 1},
		Project:   ProjectInfo{ID: "00000000-0000-4000-8000-0000000000aa"},
		Rule:      RuleInfo{ID: "00000000-0000-4000-8000-0000000000cc", Name: "Sample rule"},
		StartedAt: &started, FinishedAt: &finished, Duration: 90 * time.Second,
		LinkBase: "https://meshhook.example.com", Link: "https://meshhook.example.com/runs/00000000-0000-4000-8000-000000000001",
	}
}

// RuleSet is the cache of compiled rules, indexed by scope (project,
// workflow) so that matching a run costs O(rules that can match it). It is
// safe for concurrent use.
type RuleSet struct {
	mu       sync.RWMutex
	byID     map[string]*Rule
	byScope  map[scopeKey][]*Rule
	rejected map[string]string // rule id -> why it was rejected
	version  uint64            // bumped on every change
	// deleted records the rules deleted while a Reload is built (by
	// another goroutine: the sender disabling a rule whose endpoint is
	// gone), so that its Commit does not bring back a copy read before.
	deleted map[string]struct{}
	timed   int // enabled rules that want delayed or stalled
	// loaded is set once a full load (Reload) committed: until then an
	// empty cache means "not read yet", not "no rules".
	loaded atomic.Bool
}

// Loaded reports whether the rules were loaded in full at least once.
func (rs *RuleSet) Loaded() bool { return rs.loaded.Load() }

// timedEvents are the events that come from timers, not from changes.
var timedEvents = eventBit(EventDelayed) | eventBit(EventStalled)

// isTimed reports whether r needs the run timers.
func (r *Rule) isTimed() bool { return r.enabled && r.events&timedEvents != 0 }

// HasTimed reports whether any enabled rule alerts on delayed or stalled,
// the events that need every running and paused run tracked.
func (s *RuleSet) HasTimed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.timed > 0
}

type scopeKey struct{ project, slug string }

// NewRuleSet returns an empty set.
func NewRuleSet() *RuleSet {
	return &RuleSet{byID: map[string]*Rule{}, byScope: map[scopeKey][]*Rule{}, rejected: map[string]string{}}
}

// Put adds or replaces a rule. A rule that fails to compile is removed and
// its error returned (and kept for Rejected). A spec the cached rule already
// describes leaves the set as it is.
func (s *RuleSet) Put(spec RuleSpec) error {
	if old, ok := s.Get(spec.ID); ok && old.same(spec) {
		return nil // a change that changed nothing the cache holds (or one seen twice)
	}
	r, err := CompileRule(spec)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.removeLocked(spec.ID)
	if err != nil {
		s.rejected[spec.ID] = err.Error()
		return err
	}
	delete(s.rejected, spec.ID)
	s.addLocked(r)
	return nil
}

func (s *RuleSet) addLocked(r *Rule) {
	if r.isTimed() {
		s.timed++
	}
	s.byID[r.id] = r
	k := r.scope.Value()
	s.byScope[k] = append(s.byScope[k], r)
}

// Reject removes a rule and records why it cannot be used (for example a
// change record that does not decode).
func (s *RuleSet) Reject(id string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.removeLocked(id)
	s.rejected[id] = err.Error()
}

// Delete removes a rule.
func (s *RuleSet) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.removeLocked(id)
	delete(s.rejected, id)
	if s.deleted != nil {
		s.deleted[id] = struct{}{}
	}
}

func (s *RuleSet) removeLocked(id string) {
	old, ok := s.byID[id]
	if !ok {
		return
	}
	delete(s.byID, id)
	if old.isTimed() {
		s.timed--
	}
	k := old.scope.Value()
	rules := s.byScope[k]
	for i, r := range rules {
		if r == old {
			last := len(rules) - 1
			rules[i] = rules[last]
			rules[last] = nil
			rules = rules[:last]
			break
		}
	}
	if len(rules) == 0 {
		delete(s.byScope, k)
	} else {
		s.byScope[k] = rules
	}
}

// Replace swaps the whole set for a fresh snapshot and returns the specs that
// were rejected, by id. A rule whose spec did not change is kept as it is,
// so a periodic reload (or the one after subscribing) compiles only what
// changed and does not build a second copy of a large cache.
func (s *RuleSet) Replace(specs []RuleSpec) map[string]error {
	r := s.Reload()
	for _, sp := range specs {
		r.Add(sp)
	}
	return r.Commit()
}

// Reload starts building a fresh snapshot of the set from specs added one
// at a time (as they are read), which Commit then swaps in. Until then the
// set serves its current rules. Like Replace, it keeps unchanged rules.
func (s *RuleSet) Reload() *Reload {
	s.mu.Lock()
	s.deleted = map[string]struct{}{} // Commit drops what is deleted from here on
	s.mu.Unlock()
	return &Reload{set: s, byID: make(map[string]*Rule, s.Len()), rejected: map[string]error{}}
}

// Reload is a snapshot of a RuleSet being built; see RuleSet.Reload.
type Reload struct {
	set      *RuleSet
	byID     map[string]*Rule
	rejected map[string]error
}

// Add compiles spec into the snapshot (or keeps the current rule when spec
// has not changed). A later spec with the same id replaces an earlier one.
func (r *Reload) Add(spec RuleSpec) {
	r.set.mu.RLock()
	old := r.set.byID[spec.ID]
	r.set.mu.RUnlock()
	delete(r.rejected, spec.ID)
	if old != nil && old.same(spec) {
		r.byID[spec.ID] = old
		return
	}
	rule, err := CompileRule(spec)
	if err != nil {
		r.rejected[spec.ID] = err
		delete(r.byID, spec.ID)
		return
	}
	r.byID[spec.ID] = rule
}

// Reject records that the rule id cannot be used, and why. A later Add of
// the same id replaces it.
func (r *Reload) Reject(id string, err error) {
	delete(r.byID, id)
	r.rejected[id] = err
}

// Commit swaps the snapshot in and returns the specs that were rejected, by
// id. The Reload must not be used afterwards.
func (r *Reload) Commit() map[string]error {
	byScope := make(map[scopeKey][]*Rule)
	timed := 0
	for _, rule := range r.byID {
		k := rule.scope.Value()
		byScope[k] = append(byScope[k], rule)
		if rule.isTimed() {
			timed++
		}
	}
	reasons := make(map[string]string, len(r.rejected))
	for id, err := range r.rejected {
		reasons[id] = err.Error()
	}
	s := r.set
	s.mu.Lock()
	defer s.mu.Unlock()
	// A rule deleted while the snapshot was read stays deleted: the copy
	// the snapshot holds may have been read before.
	for id := range s.deleted {
		if rule, ok := r.byID[id]; ok {
			delete(r.byID, id)
			k := rule.scope.Value()
			byScope[k] = slices.DeleteFunc(byScope[k], func(x *Rule) bool { return x == rule })
			if len(byScope[k]) == 0 {
				delete(byScope, k)
			}
			if rule.isTimed() {
				timed--
			}
		}
	}
	s.deleted = nil
	s.version++
	s.byID, s.byScope, s.rejected, s.timed = r.byID, byScope, reasons, timed
	s.loaded.Store(true)
	return r.rejected
}

// Len is the number of usable rules.
func (s *RuleSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
}

// Version changes whenever the set changes.
func (s *RuleSet) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

// Rejected returns why each rejected rule was rejected, by rule id.
func (s *RuleSet) Rejected() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.rejected)
}

// Get returns a rule by id.
func (s *RuleSet) Get(id string) (*Rule, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.byID[id]
	return r, ok
}

// Match returns the enabled rules that apply to a run of project/slug and
// want event e: rules for the whole project and rules for that workflow.
// A rule with no project applies to runs of any project (tables without a
// project column).
func (s *RuleSet) Match(project, slug string, e Event) []*Rule {
	return s.MatchAppend(nil, project, slug, e)
}

// MatchAppend is Match appending to dst, so a caller can reuse one buffer.
func (s *RuleSet) MatchAppend(dst []*Rule, project, slug string, e Event) []*Rule {
	bit := eventBit(e)
	s.mu.RLock()
	defer s.mu.RUnlock()
	add := func(k scopeKey) {
		for _, r := range s.byScope[k] {
			if r.enabled && r.events&bit != 0 {
				dst = append(dst, r)
			}
		}
	}
	add(scopeKey{project, ""})
	if slug != "" {
		add(scopeKey{project, slug})
	}
	if project != "" {
		add(scopeKey{"", ""})
		if slug != "" {
			add(scopeKey{"", slug})
		}
	}
	return dst
}
