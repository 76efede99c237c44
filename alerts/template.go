package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/template"
	"time"
)

// MaxPayloadBytes caps a rendered payload.
const MaxPayloadBytes = 256 << 10

// renderTimeout bounds how long one template may take to render.
const renderTimeout = 250 * time.Millisecond

// Context is what URL and payload templates see. Its JSON form (with lower
// snake_case keys) is also the default payload's building block.
type Context struct {
	Type       string         // e.g. "workflow_run.failed"
	Event      Event          // the condition that fired
	OccurredAt time.Time      // when the change that fired it was committed (or the condition began)
	Run        map[string]any // every column of the run row, as received
	RunID      string
	Status     string
	Workflow   WorkflowInfo
	Project    ProjectInfo
	Rule       RuleInfo
	StartedAt  *time.Time
	FinishedAt *time.Time
	Duration   time.Duration // finished (or occurred) minus started; zero when unknown
	LinkBase   string        // alerts.link_base_url from config
	Link       string        // LinkBase + "/runs/" + RunID when LinkBase is set
	// Threshold is the rule's delay or stall threshold for delayed and
	// stalled alerts; zero otherwise.
	Threshold time.Duration
	// RecoveredFrom lists, for a recovered alert, the conditions (delayed,
	// stalled) the rule had alerted that ended.
	RecoveredFrom []Event
	// SuppressedCount is how many alerts of this rule and workflow were
	// suppressed by throttling since the previous one was sent.
	SuppressedCount int
	// RoutingKey stands for a pagerduty rule's routing key, else is "":
	// while the body renders, a random stand-in that Render turns into
	// RoutingKeyPlaceholder (the key itself is filled in when the alert is
	// sent), RoutingKeyPlaceholder afterwards.
	RoutingKey string
	// DedupKey is the alert's PagerDuty dedup_key (see DedupKey).
	DedupKey string

	budget *budget // the allowance of the render in progress
}

// WorkflowInfo describes the run's workflow.
type WorkflowInfo struct {
	ID      string `json:"id,omitempty"`
	Slug    string `json:"slug,omitempty"`
	Name    string `json:"name,omitempty"`
	Version int    `json:"version,omitempty"`
}

// ProjectInfo describes the run's project.
type ProjectInfo struct {
	ID string `json:"id,omitempty"`
}

// RuleInfo describes the rule that fired.
type RuleInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// DefaultPayload is the body sent when a rule has no payload template. Its
// schema is stable and documented in docs/rules.md ("The default payload").
type DefaultPayload struct {
	Type            string         `json:"type"`
	Event           Event          `json:"event"`
	OccurredAt      string         `json:"occurred_at"`
	Run             map[string]any `json:"run"`
	Workflow        WorkflowInfo   `json:"workflow"`
	Project         ProjectInfo    `json:"project"`
	Rule            RuleInfo       `json:"rule"`
	DurationSeconds *float64       `json:"duration_seconds,omitempty"`
	Link            string         `json:"link,omitempty"`
	// ThresholdSeconds is the rule's threshold (delayed and stalled only).
	ThresholdSeconds *float64 `json:"threshold_seconds,omitempty"`
	// RecoveredFrom lists the conditions that ended (recovered only).
	RecoveredFrom []Event `json:"recovered_from,omitempty"`
	// SuppressedCount is how many alerts of this rule and workflow were
	// suppressed by throttling since the previous one was sent.
	SuppressedCount int `json:"suppressed_count"`
}

// RenderDefault renders the default payload of c. It is a function, not a
// method of Context, so that templates cannot call it.
func RenderDefault(c *Context) ([]byte, error) {
	p := DefaultPayload{
		Type: c.Type, Event: c.Event, OccurredAt: c.OccurredAt.UTC().Format(time.RFC3339Nano),
		Run: c.Run, Workflow: c.Workflow, Project: c.Project, Rule: c.Rule, Link: c.Link,
		RecoveredFrom: c.RecoveredFrom, SuppressedCount: c.SuppressedCount,
	}
	if p.Run == nil {
		p.Run = map[string]any{}
	}
	if c.Duration > 0 {
		s := c.Duration.Seconds()
		p.DurationSeconds = &s
	}
	if c.Threshold > 0 {
		s := c.Threshold.Seconds()
		p.ThresholdSeconds = &s
	}
	return json.Marshal(p)
}

// Template is a parsed URL or payload template. Templates are immutable and
// shared: rules with the same source share one parse tree (see
// internTemplate), and a static source (no "{{") is never parsed.
type Template struct {
	src string
	t   *template.Template // nil for a static or a split source
	// segs, when set, is the source split at its top-level actions: each
	// action is a template shared by every source that has it, so rules
	// whose URLs differ only in their literal text (one per customer, say)
	// do not each carry a parse tree. Literal text is a slice of src.
	segs []segment
	// checked is set when the template passed its check against
	// SampleContext in internTemplate.
	checked bool
}

// ParseTemplate parses a template; name is used in error messages.
func ParseTemplate(name, src string) (*Template, error) {
	if isStaticSource(src) {
		return &Template{src: src}, nil
	}
	t, err := parseRaw(name, src)
	if err != nil {
		return nil, err
	}
	if err := bound(t); err != nil {
		return nil, fmt.Errorf("template: %s: %w", name, err)
	}
	return &Template{src: src, t: t}, nil
}

// parseRaw parses src as it is written, without the rewrite that bounds
// its rendering (see bound): for splitting a source into its actions.
func parseRaw(name, src string) (*template.Template, error) {
	if len(src) > maxSourceBytes {
		return nil, fmt.Errorf("template is %d bytes, at most %d are allowed", len(src), maxSourceBytes)
	}
	return template.New(name).Option("missingkey=zero").Funcs(funcs).Parse(src)
}

func isStaticSource(src string) bool { return !strings.Contains(src, "{{") }

// segment is literal text, or one action rendered by a shared template.
type segment struct {
	text string
	act  *Template
}

// IsStatic reports whether the template has no actions (renders to itself).
func (t *Template) IsStatic() bool { return t.t == nil && t.segs == nil }

// execute writes the template's output for c to w.
func (t *Template) execute(w io.Writer, c *Context) error {
	if t.segs == nil {
		return t.t.Execute(w, c)
	}
	for _, sg := range t.segs {
		if sg.act == nil {
			if _, err := io.WriteString(w, sg.text); err != nil {
				return err
			}
			continue
		}
		if err := sg.act.t.Execute(w, c); err != nil {
			return err
		}
	}
	return nil
}

// name is the template's name in errors.
func (t *Template) name() string {
	if t.t != nil {
		return t.t.Name()
	}
	if len(t.segs) > 0 {
		for _, sg := range t.segs {
			if sg.act != nil {
				return sg.act.t.Name()
			}
		}
	}
	return "template"
}

// Render executes the template within its budget (see bound): on the
// caller's goroutine, with its output capped at MaxPayloadBytes, its loops
// and string building bounded and a deadline of renderTimeout.
func (t *Template) Render(c *Context) ([]byte, error) {
	if t.IsStatic() {
		if len(t.src) > MaxPayloadBytes {
			return nil, errTooLarge
		}
		return []byte(t.src), nil
	}
	out := &cappedBuffer{max: MaxPayloadBytes}
	rc := *c
	rc.budget = &budget{deadline: time.Now().Add(renderTimeout)}
	if err := t.execute(out, &rc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// RenderJSON renders a payload template and checks the result is valid JSON.
func (t *Template) RenderJSON(c *Context) ([]byte, error) {
	b, err := t.Render(c)
	if err != nil {
		return nil, err
	}
	if t.IsStatic() && t.checked {
		return b, nil // validated once when interned
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("payload template rendered invalid JSON (use the json function for values): %s", excerpt(b, 120))
	}
	return b, nil
}

// RenderURL renders a URL template and checks the result is an absolute http(s) URL.
func (t *Template) RenderURL(c *Context) (string, error) {
	b, err := t.Render(c)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if err := CheckWebhookURL(s); err != nil {
		return "", err
	}
	return s, nil
}

// CheckWebhookURL validates a rendered webhook URL's shape (not its safety:
// the sender guards the address it dials).
func CheckWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("webhook URL does not parse: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("webhook URL must be http(s), got scheme %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("webhook URL has no host")
	}
	return nil
}

var errTooLarge = fmt.Errorf("rendered output exceeds %d bytes", MaxPayloadBytes)

// cappedBuffer fails writes past max, which stops template execution.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}

func excerpt(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
