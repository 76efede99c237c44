package alerts

import (
	"errors"
	"fmt"
	"sync"
	"time"
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

// Rule is a validated, compiled RuleSpec.
type Rule struct {
	Spec    RuleSpec
	events  map[Event]bool
	url     *Template
	payload *Template // nil: the default payload
}

// Wants reports whether the rule fires on e.
func (r *Rule) Wants(e Event) bool { return r.events[e] }

// CompileRule validates a spec and parses its templates against a sample
// context, so a broken rule is rejected when it is loaded, not when it fires.
func CompileRule(spec RuleSpec) (*Rule, error) {
	var errs []error
	r := &Rule{Spec: spec, events: map[Event]bool{}}
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
		r.events[e] = true
	}
	if r.events[EventDelayed] && spec.DelayThreshold <= 0 {
		errs = append(errs, errors.New("delay_threshold_seconds: required and > 0 for the delayed event"))
	}
	if r.events[EventStalled] && spec.StallThreshold <= 0 {
		errs = append(errs, errors.New("stall_threshold_seconds: required and > 0 for the stalled event"))
	}
	if spec.ThrottleMax < 0 || (spec.ThrottleMax > 0 && spec.ThrottleWindow <= 0) {
		errs = append(errs, errors.New("throttle: throttle_max needs a throttle_window_seconds > 0"))
	}
	sample := SampleContext()
	if u, err := ParseTemplate("webhook_url", spec.WebhookURL); err != nil {
		errs = append(errs, fmt.Errorf("webhook_url: %w", err))
	} else if _, err := u.RenderURL(sample); err != nil {
		errs = append(errs, fmt.Errorf("webhook_url: %w", err))
	} else {
		r.url = u
	}
	if spec.PayloadTemplate != "" {
		if p, err := ParseTemplate("payload_template", spec.PayloadTemplate); err != nil {
			errs = append(errs, fmt.Errorf("payload_template: %w", err))
		} else if _, err := p.RenderJSON(sample); err != nil {
			errs = append(errs, fmt.Errorf("payload_template: %w", err))
		} else {
			r.payload = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
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

// RuleSet is the cache of compiled rules, indexed by scope so that matching a
// run costs O(rules that can match it).
type RuleSet struct {
	mu       sync.RWMutex
	byID     map[string]*Rule
	byScope  map[scopeKey]map[string]*Rule
	rejected map[string]error
}

type scopeKey struct{ project, slug string }

// NewRuleSet returns an empty set.
func NewRuleSet() *RuleSet {
	return &RuleSet{byID: map[string]*Rule{}, byScope: map[scopeKey]map[string]*Rule{}, rejected: map[string]error{}}
}

// Put adds or replaces a rule. A rule that fails to compile is removed and
// its error returned (and kept for Rejected).
func (s *RuleSet) Put(spec RuleSpec) error {
	r, err := CompileRule(spec)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(spec.ID)
	if err != nil {
		s.rejected[spec.ID] = err
		return err
	}
	delete(s.rejected, spec.ID)
	s.byID[spec.ID] = r
	k := scopeKey{spec.ProjectID, spec.WorkflowSlug}
	m := s.byScope[k]
	if m == nil {
		m = map[string]*Rule{}
		s.byScope[k] = m
	}
	m[spec.ID] = r
	return nil
}

// Delete removes a rule.
func (s *RuleSet) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	if m := s.byScope[k]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(s.byScope, k)
		}
	}
}

// Replace swaps the whole set for a fresh snapshot and returns the specs that
// were rejected, by id.
func (s *RuleSet) Replace(specs []RuleSpec) map[string]error {
	fresh := NewRuleSet()
	for _, sp := range specs {
		_ = fresh.Put(sp)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID, s.byScope, s.rejected = fresh.byID, fresh.byScope, fresh.rejected
	out := make(map[string]error, len(s.rejected))
	for k, v := range s.rejected {
		out[k] = v
	}
	return out
}

// Len is the number of usable rules.
func (s *RuleSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byID)
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Rule
	add := func(k scopeKey) {
		for _, r := range s.byScope[k] {
			if r.Spec.Enabled && r.events[e] {
				out = append(out, r)
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
	return out
}
