package alerts

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
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
	// CreatedAt is when the rule was created: it never fires for changes
	// that happened before it existed (catch-up after a fresh install or a
	// long outage must not replay history into a new rule).
	CreatedAt time.Time
}

// Rule is a validated, compiled RuleSpec. Its templates are shared with
// every other rule of the same source.
type Rule struct {
	Spec    RuleSpec
	events  eventSet
	url     *Template
	payload *Template // nil: the default payload
}

// Wants reports whether the rule fires on e.
func (r *Rule) Wants(e Event) bool { return r.events.has(e) }

// Threshold is the rule's threshold for a timer-driven event: the delay
// threshold for delayed, the stall threshold for stalled, zero otherwise.
func (r *Rule) Threshold(e Event) time.Duration {
	switch e {
	case EventDelayed:
		return r.Spec.DelayThreshold
	case EventStalled:
		return r.Spec.StallThreshold
	}
	return 0
}

// Throttled reports whether the rule limits its alerts per workflow.
func (r *Rule) Throttled() bool { return r.Spec.ThrottleMax > 0 && r.Spec.ThrottleWindow > 0 }

// CompileRule validates a spec and checks its templates against a sample
// context, so a broken rule is rejected when it is loaded, not when it fires.
func CompileRule(spec RuleSpec) (*Rule, error) {
	var errs []error
	if len(spec.Headers) == 0 {
		spec.Headers = nil
	}
	r := &Rule{Spec: spec}
	if spec.ID == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if len(spec.Events) == 0 {
		errs = append(errs, errors.New("events: at least one event is required"))
	}
	for _, s := range spec.Events {
		e, err := ParseEvent(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("events: %w", err))
			continue
		}
		r.events |= eventBit(e)
	}
	if spec.DelayThreshold < 0 {
		errs = append(errs, fmt.Errorf("delay_threshold_seconds: must be > 0, got %s", spec.DelayThreshold))
	} else if r.events.has(EventDelayed) && spec.DelayThreshold == 0 {
		errs = append(errs, errors.New("delay_threshold_seconds: required and > 0 for the delayed event"))
	}
	if spec.StallThreshold < 0 {
		errs = append(errs, fmt.Errorf("stall_threshold_seconds: must be > 0, got %s", spec.StallThreshold))
	} else if r.events.has(EventStalled) && spec.StallThreshold == 0 {
		errs = append(errs, errors.New("stall_threshold_seconds: required and > 0 for the stalled event"))
	}
	if r.events.has(EventRecovered) && !r.events.has(EventDelayed) && !r.events.has(EventStalled) {
		errs = append(errs, errors.New("events: recovered follows a delayed or stalled alert of the same rule; list delayed or stalled too"))
	}
	if spec.ThrottleMax < 0 || (spec.ThrottleMax > 0 && spec.ThrottleWindow <= 0) || spec.ThrottleWindow < 0 {
		errs = append(errs, errors.New("throttle: throttle_max needs a throttle_window_seconds > 0"))
	}
	if u := internTemplate(kindURL, spec.WebhookURL); u.checkErr != nil {
		errs = append(errs, fmt.Errorf("webhook_url: %w", u.checkErr))
	} else {
		r.url = u
	}
	if spec.PayloadTemplate != "" {
		if p := internTemplate(kindPayload, spec.PayloadTemplate); p.checkErr != nil {
			errs = append(errs, fmt.Errorf("payload_template: %w", p.checkErr))
		} else {
			r.payload = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.Spec.share()
	return r, nil
}

// share makes the spec's strings that many rules usually have in common
// (project, workflow, events, payload template) point at one canonical copy
// each, so that a large rule cache holds them once. Canonical copies are
// weakly held: they go when no rule uses them. Values that are usually
// distinct per rule (URLs, secrets, header values) are left alone:
// canonicalizing them would cost more than it saves.
func (s *RuleSpec) share() {
	s.ProjectID = canonical(s.ProjectID)
	s.WorkflowSlug = canonical(s.WorkflowSlug)
	s.PayloadTemplate = canonical(s.PayloadTemplate)
	s.Events = canonicalEvents(s.Events)
}

// sameSpec reports whether a compiled rule's spec (a) and a freshly read
// one (b) describe the same rule.
func sameSpec(a, b RuleSpec) bool {
	return a.ID == b.ID && a.ProjectID == b.ProjectID && a.WorkflowSlug == b.WorkflowSlug && a.Name == b.Name &&
		a.Enabled == b.Enabled && slices.Equal(a.Events, b.Events) && a.DelayThreshold == b.DelayThreshold &&
		a.StallThreshold == b.StallThreshold && a.WebhookURL == b.WebhookURL && slices.Equal(a.Secrets, b.Secrets) &&
		a.MeshHookSignature == b.MeshHookSignature && maps.Equal(a.Headers, b.Headers) &&
		a.PayloadTemplate == b.PayloadTemplate && a.ThrottleMax == b.ThrottleMax &&
		a.ThrottleWindow == b.ThrottleWindow && a.CreatedAt.Equal(b.CreatedAt)
}

func canonical(v string) string {
	if v == "" {
		return ""
	}
	return unique.Make(v).Value()
}

// eventLists holds one shared, read-only slice per distinct event list.
var eventLists sync.Map // strings.Join(events, ",") -> []string

func canonicalEvents(evs []string) []string {
	if len(evs) == 0 {
		return evs
	}
	k := strings.Join(evs, ",")
	if v, ok := eventLists.Load(k); ok {
		return v.([]string)
	}
	shared := make([]string, len(evs))
	for i, e := range evs {
		shared[i] = canonical(e)
	}
	v, _ := eventLists.LoadOrStore(k, shared)
	return v.([]string)
}

// Render produces the target URL and body of one alert.
func (r *Rule) Render(c *Context) (url string, body []byte, err error) {
	url, err = r.url.RenderURL(c)
	if err != nil {
		return "", nil, fmt.Errorf("webhook_url: %w", err)
	}
	if r.payload == nil {
		body, err = c.Default()
	} else {
		body, err = r.payload.RenderJSON(c)
	}
	if err != nil {
		return "", nil, fmt.Errorf("payload_template: %w", err)
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
}

type scopeKey struct{ project, slug string }

// NewRuleSet returns an empty set.
func NewRuleSet() *RuleSet {
	return &RuleSet{byID: map[string]*Rule{}, byScope: map[scopeKey][]*Rule{}, rejected: map[string]string{}}
}

// Put adds or replaces a rule. A rule that fails to compile is removed and
// its error returned (and kept for Rejected).
func (s *RuleSet) Put(spec RuleSpec) error {
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
	s.byID[r.Spec.ID] = r
	k := scopeKey{r.Spec.ProjectID, r.Spec.WorkflowSlug}
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
}

func (s *RuleSet) removeLocked(id string) {
	old, ok := s.byID[id]
	if !ok {
		return
	}
	delete(s.byID, id)
	k := scopeKey{old.Spec.ProjectID, old.Spec.WorkflowSlug}
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
	byID := make(map[string]*Rule, len(specs))
	rejected := map[string]error{}
	for _, sp := range specs {
		s.mu.RLock()
		old := s.byID[sp.ID]
		s.mu.RUnlock()
		if old != nil && sameSpec(old.Spec, sp) {
			delete(rejected, sp.ID)
			byID[sp.ID] = old
			continue
		}
		r, err := CompileRule(sp)
		if err != nil {
			rejected[sp.ID] = err
			delete(byID, sp.ID)
			continue
		}
		delete(rejected, sp.ID)
		byID[sp.ID] = r
	}
	byScope := make(map[scopeKey][]*Rule, len(byID))
	for _, r := range byID {
		k := scopeKey{r.Spec.ProjectID, r.Spec.WorkflowSlug}
		byScope[k] = append(byScope[k], r)
	}
	reasons := make(map[string]string, len(rejected))
	for id, err := range rejected {
		reasons[id] = err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	s.byID, s.byScope, s.rejected = byID, byScope, reasons
	return rejected
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
			if r.Spec.Enabled && r.events&bit != 0 {
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
