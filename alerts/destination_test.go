package alerts

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/destinations")

// presetContext is the context of an alert of event e: full has every
// optional field (workflow name, link, duration, project, throttling
// count), minimal none of them.
func presetContext(e Event, full bool) *Context {
	occurred := time.Date(2026, 1, 2, 3, 5, 35, 0, time.UTC)
	c := &Context{
		Type: "workflow_run." + string(e), Event: e, OccurredAt: occurred,
		RunID: "00000000-0000-4000-8000-000000000001", Status: map[Event]string{
			EventSucceeded: "completed", EventFailed: "failed", EventCanceled: "cancelled", EventPaused: "paused",
			EventDelayed: "running", EventStalled: "paused", EventRecovered: "completed", EventResolved: "completed",
		}[e],
		Workflow: WorkflowInfo{Slug: "billing"},
		Rule:     RuleInfo{ID: "00000000-0000-4000-8000-0000000000cc", Name: "Billing <ops> & friends"},
	}
	switch e {
	case EventDelayed, EventStalled:
		c.Threshold = 15 * time.Minute
	case EventRecovered:
		c.RecoveredFrom = []Event{EventDelayed}
	}
	if full {
		started := occurred.Add(-90 * time.Second)
		c.StartedAt, c.Duration = &started, 90*time.Second
		c.Workflow = WorkflowInfo{ID: "00000000-0000-4000-8000-0000000000bb", Slug: "billing", Name: "Billing *run* @everyone <!here> <users/all>", Version: 3}
		c.Project = ProjectInfo{ID: "00000000-0000-4000-8000-0000000000aa"}
		c.LinkBase = "https://meshhook.example.com"
		c.Link = c.LinkBase + "/runs/" + c.RunID
		c.SuppressedCount = 2
		if e == EventRecovered {
			c.RecoveredFrom = []Event{EventDelayed, EventStalled}
		}
	}
	return c
}

// presetRule compiles a rule of destination d that lists every event.
func presetRule(t *testing.T, d Destination) *Rule {
	t.Helper()
	s := RuleSpec{ID: "00000000-0000-4000-8000-0000000000cc", Name: "Billing <ops> & friends", Enabled: true,
		Events:         []string{"succeeded", "failed", "canceled", "paused", "delayed", "stalled", "recovered", "resolved"},
		DelayThreshold: 15 * time.Minute, StallThreshold: 15 * time.Minute,
		WebhookURL: "https://hooks.example.com/x", Destination: d}
	if d == DestinationPagerDuty {
		s.WebhookURL, s.RoutingKey = "", "R0UT1NGKEY0123456789abcdefABCDEF"
		s.Events = []string{"failed", "delayed", "stalled", "recovered", "resolved"}
	}
	r, err := CompileRule(s)
	require.NoError(t, err)
	return r
}

func TestPresetBodiesMatchGoldenFilesAndVendorRules(t *testing.T) {
	validators := map[Destination]func(t *testing.T, c *Context, body map[string]any){
		DestinationSlack: validateSlack, DestinationDiscord: validateDiscord, DestinationTeams: validateTeams,
		DestinationGoogleChat: validateGoogleChat, DestinationPagerDuty: validatePagerDuty,
	}
	for _, d := range AllDestinations {
		if d == DestinationWebhook {
			continue
		}
		r := presetRule(t, d)
		for _, e := range AllEvents {
			if !r.Wants(e) {
				continue // pagerduty: refused (TestPagerDutyRefusesEventsNothingResolves)
			}
			for _, full := range []bool{true, false} {
				name := string(e) + map[bool]string{true: "_full", false: "_minimal"}[full]
				t.Run(string(d)+"/"+name, func(t *testing.T) {
					c := presetContext(e, full)
					url, body, err := r.Render(c)
					require.NoError(t, err)
					if d == DestinationPagerDuty {
						assert.Equal(t, PagerDutyEventsURL, url)
					}
					var pretty any
					require.NoError(t, json.Unmarshal(body, &pretty), "the body is JSON")
					golden := filepath.Join("testdata", "destinations", string(d), name+".json")
					var indented bytes.Buffer
					require.NoError(t, json.Indent(&indented, body, "", "  "))
					out := append(indented.Bytes(), '\n')
					if *update {
						require.NoError(t, os.MkdirAll(filepath.Dir(golden), 0o755))
						require.NoError(t, os.WriteFile(golden, out, 0o644))
					}
					want, err := os.ReadFile(golden)
					require.NoError(t, err, "run go test ./alerts -run TestPresetBodies -update to write it")
					assert.Equal(t, string(want), string(out))
					validators[d](t, c, pretty.(map[string]any))
				})
			}
		}
	}
}

// The checks below are the vendors' documented required fields and
// limits, as docs/destinations.md cites them.

func str(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	v, ok := m[key].(string)
	require.Truef(t, ok, "%q is a string in %v", key, m)
	return v
}

func arr(t *testing.T, m map[string]any, key string) []any {
	t.Helper()
	v, ok := m[key].([]any)
	require.Truef(t, ok, "%q is an array in %v", key, m)
	return v
}

func object(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.Truef(t, ok, "%v is an object", v)
	return m
}

var hexColor = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// validateSlack: a message needs text (the notification, and the fallback
// when blocks are shown); a header block's plain_text is at most 150
// characters, a section has at most 10 fields of at most 2000 characters,
// a message at most 50 blocks; an attachment's color is a hex colour; a
// button's url is at most 3000 characters. User text is escaped (&, <, >).
func validateSlack(t *testing.T, c *Context, b map[string]any) {
	text := str(t, b, "text")
	require.NotEmpty(t, text)
	assert.NotContains(t, text, "<ops>", "escaped")
	att := arr(t, b, "attachments")
	require.Len(t, att, 1)
	a := object(t, att[0])
	assert.Regexp(t, hexColor, str(t, a, "color"))
	assert.NotEmpty(t, str(t, a, "fallback"))
	blocks := arr(t, a, "blocks")
	assert.LessOrEqual(t, len(blocks), 50)
	types := map[string]bool{}
	for _, raw := range blocks {
		blk := object(t, raw)
		typ := str(t, blk, "type")
		types[typ] = true
		switch typ {
		case "header":
			txt := object(t, blk["text"])
			assert.Equal(t, "plain_text", txt["type"])
			assert.LessOrEqual(t, utf8.RuneCountInString(str(t, txt, "text")), 150)
		case "section":
			fields := arr(t, blk, "fields")
			assert.LessOrEqual(t, len(fields), 10)
			for _, f := range fields {
				fo := object(t, f)
				assert.Equal(t, "mrkdwn", fo["type"])
				assert.LessOrEqual(t, utf8.RuneCountInString(str(t, fo, "text")), 2000)
			}
		case "actions":
			for _, el := range arr(t, blk, "elements") {
				eo := object(t, el)
				assert.Equal(t, "button", eo["type"])
				assert.LessOrEqual(t, len(str(t, eo, "url")), 3000)
			}
		case "context":
			assert.NotEmpty(t, arr(t, blk, "elements"))
		default:
			t.Errorf("unexpected block type %q", typ)
		}
	}
	assert.True(t, types["header"] && types["section"], "a header and the facts")
	assert.Equal(t, c.Link != "", types["actions"], "a button exactly when there is a run link")
}

// validateDiscord: one of content, embeds (here both); at most 10 embeds;
// title ≤ 256, description ≤ 4096, ≤ 25 fields of name ≤ 256 and value ≤
// 1024, footer text ≤ 2048, all embed text ≤ 6000; color an integer;
// timestamp ISO 8601; content ≤ 2000. Mentions are off.
func validateDiscord(t *testing.T, c *Context, b map[string]any) {
	assert.LessOrEqual(t, utf8.RuneCountInString(str(t, b, "content")), 2000)
	embeds := arr(t, b, "embeds")
	require.Len(t, embeds, 1)
	e := object(t, embeds[0])
	total := utf8.RuneCountInString(str(t, e, "title"))
	assert.LessOrEqual(t, total, 256)
	color, ok := e["color"].(float64)
	require.True(t, ok, "color is a number")
	assert.True(t, color >= 0 && color <= 0xffffff)
	_, err := time.Parse(time.RFC3339, str(t, e, "timestamp"))
	assert.NoError(t, err)
	fields := arr(t, e, "fields")
	assert.LessOrEqual(t, len(fields), 25)
	for _, f := range fields {
		fo := object(t, f)
		n, v := str(t, fo, "name"), str(t, fo, "value")
		assert.NotEmpty(t, n)
		assert.NotEmpty(t, v)
		assert.LessOrEqual(t, utf8.RuneCountInString(n), 256)
		assert.LessOrEqual(t, utf8.RuneCountInString(v), 1024)
		total += utf8.RuneCountInString(n) + utf8.RuneCountInString(v)
	}
	footer := str(t, object(t, e["footer"]), "text")
	assert.LessOrEqual(t, utf8.RuneCountInString(footer), 2048)
	total += utf8.RuneCountInString(footer)
	assert.LessOrEqual(t, total, 6000)
	if c.Link != "" {
		assert.Equal(t, c.Link, e["url"])
	} else {
		assert.NotContains(t, e, "url")
	}
	assert.Equal(t, map[string]any{"parse": []any{}}, b["allowed_mentions"])
}

// validateTeams: a message whose attachments hold one Adaptive Card:
// contentType application/vnd.microsoft.card.adaptive, content of type
// AdaptiveCard with a version and a body; TextBlocks have text, a FactSet
// facts of title and value, Action.OpenUrl a url.
func validateTeams(t *testing.T, c *Context, b map[string]any) {
	assert.Equal(t, "message", b["type"])
	att := arr(t, b, "attachments")
	require.Len(t, att, 1)
	a := object(t, att[0])
	assert.Equal(t, "application/vnd.microsoft.card.adaptive", a["contentType"])
	card := object(t, a["content"])
	assert.Equal(t, "AdaptiveCard", card["type"])
	assert.Regexp(t, `^1\.[0-6]$`, str(t, card, "version"))
	for _, raw := range arr(t, card, "body") {
		el := object(t, raw)
		switch str(t, el, "type") {
		case "TextBlock":
			assert.NotEmpty(t, str(t, el, "text"))
		case "FactSet":
			for _, f := range arr(t, el, "facts") {
				fo := object(t, f)
				assert.NotEmpty(t, str(t, fo, "title"))
				str(t, fo, "value")
			}
		default:
			t.Errorf("unexpected element %v", el["type"])
		}
	}
	actions, _ := card["actions"].([]any)
	assert.Equal(t, c.Link != "", len(actions) == 1)
	for _, raw := range actions {
		ao := object(t, raw)
		assert.Equal(t, "Action.OpenUrl", ao["type"])
		assert.Equal(t, c.Link, ao["url"])
	}
}

// validateGoogleChat: text and/or cardsV2; each card has a cardId and a
// card with sections of widgets; a decoratedText has text; a button has
// text and an onClick; the header title is set. HTML is escaped.
func validateGoogleChat(t *testing.T, c *Context, b map[string]any) {
	assert.NotEmpty(t, str(t, b, "text"))
	cards := arr(t, b, "cardsV2")
	require.Len(t, cards, 1)
	cv := object(t, cards[0])
	assert.NotEmpty(t, str(t, cv, "cardId"))
	card := object(t, cv["card"])
	assert.NotEmpty(t, str(t, object(t, card["header"]), "title"))
	buttons := 0
	for _, s := range arr(t, card, "sections") {
		for _, w := range arr(t, object(t, s), "widgets") {
			wo := object(t, w)
			switch {
			case wo["decoratedText"] != nil:
				txt := str(t, object(t, wo["decoratedText"]), "text")
				assert.NotEmpty(t, txt)
				assert.NotContains(t, txt, "<ops>")
			case wo["buttonList"] != nil:
				for _, btn := range arr(t, object(t, wo["buttonList"]), "buttons") {
					bo := object(t, btn)
					assert.NotEmpty(t, str(t, bo, "text"))
					assert.Equal(t, c.Link, object(t, object(t, bo["onClick"])["openLink"])["url"])
					buttons++
				}
			default:
				t.Errorf("unexpected widget %v", wo)
			}
		}
	}
	assert.Equal(t, c.Link != "", buttons == 1)
}

// validatePagerDuty: routing_key and event_action (trigger, acknowledge,
// resolve) always; dedup_key ≤ 255 (required to resolve); a trigger needs
// payload.summary (≤ 1024), payload.source and payload.severity
// (critical, error, warning, info); timestamp ISO 8601; links have href.
func validatePagerDuty(t *testing.T, c *Context, b map[string]any) {
	assert.Equal(t, RoutingKeyPlaceholder, b["routing_key"], "the stored body never holds the key")
	key := str(t, b, "dedup_key")
	assert.LessOrEqual(t, len(key), 255)
	assert.Equal(t, DedupKey(c.Rule.ID, c.RunID, c.Workflow, c.Event), key)
	switch str(t, b, "event_action") {
	case "resolve":
		assert.True(t, endsCondition(c.Event))
	case "trigger":
		assert.False(t, endsCondition(c.Event))
		p := object(t, b["payload"])
		summary := str(t, p, "summary")
		assert.NotEmpty(t, summary)
		assert.LessOrEqual(t, utf8.RuneCountInString(summary), 1024)
		assert.NotEmpty(t, str(t, p, "source"))
		assert.Contains(t, []string{"critical", "error", "warning", "info"}, str(t, p, "severity"))
		_, err := time.Parse(time.RFC3339, str(t, p, "timestamp"))
		assert.NoError(t, err)
		for _, l := range func() []any { v, _ := b["links"].([]any); return v }() {
			assert.NotEmpty(t, str(t, object(t, l), "href"))
		}
	default:
		t.Errorf("bad event_action %v", b["event_action"])
	}
}

func TestDedupKeyIsStablePerRuleAndWorkflowOrRun(t *testing.T) {
	wf := WorkflowInfo{ID: "w1", Slug: "billing"}
	failed := DedupKey("r", "run1", wf, EventFailed)
	assert.Equal(t, failed, DedupKey("r", "run2", wf, EventFailed), "failures of a workflow share an incident")
	assert.Equal(t, failed, DedupKey("r", "run3", wf, EventResolved), "the next success resolves it")
	assert.NotEqual(t, failed, DedupKey("r2", "run1", wf, EventFailed), "per rule")
	assert.NotEqual(t, failed, DedupKey("r", "run1", WorkflowInfo{Slug: "etl"}, EventFailed), "per workflow")
	delayed := DedupKey("r", "run1", wf, EventDelayed)
	assert.Equal(t, delayed, DedupKey("r", "run1", wf, EventRecovered), "recovered resolves the run's condition")
	assert.NotEqual(t, delayed, DedupKey("r", "run2", wf, EventDelayed))
	long := DedupKey("r", strings.Repeat("x", 400), wf, EventStalled)
	assert.LessOrEqual(t, len(long), 255)
	assert.Equal(t, long, DedupKey("r", strings.Repeat("x", 400), wf, EventStalled))
}

func TestRoutingKeyIsFilledOnlyWhenSent(t *testing.T) {
	r := presetRule(t, DestinationPagerDuty)
	_, body, err := r.Render(presetContext(EventFailed, true))
	require.NoError(t, err)
	assert.NotContains(t, string(body), "R0UT1NGKEY", "rendered (and stored) without the key")
	sent := r.FillSecrets(body)
	assert.Contains(t, string(sent), `"routing_key":"R0UT1NGKEY0123456789abcdefABCDEF"`)
	assert.NotContains(t, string(sent), RoutingKeyPlaceholder)

	// A user's template writes the key with {{json .RoutingKey}}.
	s := r.Spec()
	s.PayloadTemplate = `{"routing_key": {{json .RoutingKey}}, "event_action": "trigger", "dedup_key": {{json .DedupKey}}, "payload": {"summary": "x", "source": "y", "severity": "info"}}`
	custom, err := CompileRule(s)
	require.NoError(t, err)
	_, body, err = custom.Render(presetContext(EventFailed, false))
	require.NoError(t, err)
	assert.NotContains(t, string(body), "R0UT1NGKEY")
	assert.Contains(t, string(custom.FillSecrets(body)), `"routing_key": "R0UT1NGKEY0123456789abcdefABCDEF"`)

	webhook := presetRule(t, DestinationSlack)
	assert.Equal(t, body, webhook.FillSecrets(body), "other destinations fill nothing")
}

func TestPayloadTemplateOverridesPresetBody(t *testing.T) {
	s := presetRule(t, DestinationSlack).Spec()
	s.PayloadTemplate = `{"text": {{json .Workflow.Slug}}}`
	r, err := CompileRule(s)
	require.NoError(t, err)
	_, body, err := r.Render(presetContext(EventFailed, true))
	require.NoError(t, err)
	assert.JSONEq(t, `{"text":"billing"}`, string(body))
}

func TestDestinationRuleValidation(t *testing.T) {
	base := RuleSpec{ID: "r", Name: "n", Enabled: true, Events: []string{"failed"}, WebhookURL: "https://hooks.example.com/x"}
	for _, c := range []struct {
		name   string
		change func(*RuleSpec)
		want   string // "" compiles
	}{
		{"webhook by default", func(*RuleSpec) {}, ""},
		{"unknown destination", func(s *RuleSpec) { s.Destination = "fax" }, "destination: unknown destination"},
		{"pagerduty needs a key", func(s *RuleSpec) { s.Destination, s.WebhookURL = DestinationPagerDuty, "" }, "routing_key: required"},
		{"pagerduty key shape", func(s *RuleSpec) { s.Destination, s.RoutingKey = DestinationPagerDuty, "no spaces please" }, "routing_key: must be"},
		{"pagerduty key of 31", func(s *RuleSpec) {
			s.Destination, s.RoutingKey = DestinationPagerDuty, "R0UT1NGKEY0123456789abcdefABCDE"
		}, "routing_key: must be exactly 32 letters and digits, the Integration Key of a PagerDuty Events API v2 integration (got 31 characters)"},
		{"pagerduty key of 33", func(s *RuleSpec) {
			s.Destination, s.RoutingKey = DestinationPagerDuty, "R0UT1NGKEY0123456789abcdefABCDEFG"
		}, "routing_key: must be exactly 32"},
		{"pagerduty key of 8", func(s *RuleSpec) { s.Destination, s.RoutingKey = DestinationPagerDuty, "R0UT1NGK" }, "routing_key: must be exactly 32"},
		{"pagerduty key with a dash", func(s *RuleSpec) {
			s.Destination, s.RoutingKey = DestinationPagerDuty, "R0UT1NGKEY0123456789abcdef-BCDEF"
		}, "routing_key: must be exactly 32"},
		{"pagerduty default url", func(s *RuleSpec) {
			s.Destination, s.RoutingKey, s.WebhookURL = DestinationPagerDuty, "R0UT1NGKEY0123456789abcdefABCDEF", ""
		}, ""},
		{"key only for pagerduty", func(s *RuleSpec) { s.Destination, s.RoutingKey = DestinationSlack, "R0UT1NGKEY01234567" }, "routing_key: only"},
		{"slack needs a url", func(s *RuleSpec) { s.Destination, s.WebhookURL = DestinationSlack, "" }, "webhook_url"},
		{"headers only for webhooks", func(s *RuleSpec) {
			s.Destination, s.Headers = DestinationSlack, map[string]string{"Authorization": "Bearer internal"}
		}, "custom_headers: only the webhook destination sends custom headers, not slack"},
		{"webhook headers", func(s *RuleSpec) { s.Headers = map[string]string{"Authorization": "Bearer internal"} }, ""},
		{"resolved needs failed", func(s *RuleSpec) { s.Events = []string{"succeeded", "resolved"} }, "events: resolved follows a failed alert"},
		{"resolved with failed", func(s *RuleSpec) { s.Events = []string{"failed", "resolved"} }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := base
			c.change(&s)
			_, err := CompileRule(s)
			if c.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

func TestRuleSetKeepsAnUnchangedPresetRule(t *testing.T) {
	set := NewRuleSet()
	s := RuleSpec{ID: "r", Name: "n", Enabled: true, Events: []string{"failed"}, Destination: DestinationPagerDuty,
		RoutingKey: "R0UT1NGKEY0123456789abcdefABCDEF"}
	require.NoError(t, set.Put(s))
	before, _ := set.Get("r")
	require.NoError(t, set.Put(s))
	after, _ := set.Get("r")
	assert.Same(t, before, after, "an empty pagerduty URL is its default, not a change")
	s.RoutingKey = "ANOTHERKEY0123456789abcdefABCDEF"
	require.NoError(t, set.Put(s))
	changed, _ := set.Get("r")
	assert.NotSame(t, before, changed)
	assert.Equal(t, fmt.Sprint(DestinationPagerDuty), string(changed.Destination()))
}

func TestPagerDutyRefusesEventsNothingResolves(t *testing.T) {
	base := RuleSpec{ID: "r", Name: "n", Enabled: true, Destination: DestinationPagerDuty,
		RoutingKey: "R0UT1NGKEY0123456789abcdefABCDEF"}
	for _, e := range []Event{EventSucceeded, EventCanceled, EventPaused} {
		t.Run(string(e), func(t *testing.T) {
			s := base
			s.Events = []string{"failed", "resolved", string(e)}
			_, err := CompileRule(s)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "events", fe.Field)
			assert.Contains(t, fe.Error(), "does not send "+string(e))

			s.Destination, s.RoutingKey, s.WebhookURL = DestinationSlack, "", "https://hooks.example.com/x"
			_, err = CompileRule(s)
			assert.NoError(t, err, "chat presets take it")
		})
	}
	// What a pagerduty rule may list, it can close: every trigger has a
	// resolve of the same rule on the same dedup_key.
	r := presetRule(t, DestinationPagerDuty)
	ends := map[Event]Event{EventFailed: EventResolved, EventDelayed: EventRecovered, EventStalled: EventRecovered}
	for _, e := range AllEvents {
		if !r.Wants(e) || endsCondition(e) {
			continue
		}
		end, ok := ends[e]
		require.Truef(t, ok, "%s triggers an incident that no event resolves", e)
		assert.True(t, r.Wants(end))
		c := presetContext(e, true)
		assert.Equal(t, DedupKey(c.Rule.ID, c.RunID, c.Workflow, e), DedupKey(c.Rule.ID, c.RunID, c.Workflow, end))
	}
}

func TestRoutingKeyCannotBeForgedByData(t *testing.T) {
	const key = "R0UT1NGKEY0123456789abcdefABCDEF"
	forged := RoutingKeyPlaceholder
	pd := presetRule(t, DestinationPagerDuty)
	s := pd.Spec()
	s.PayloadTemplate = `{"routing_key": {{json .RoutingKey}}, "event_action": "trigger", "dedup_key": {{json .DedupKey}},
		"payload": {"summary": {{json .Workflow.Name}}, "source": {{json .Run.note}}, "severity": "info"}}`
	templated, err := CompileRule(s)
	require.NoError(t, err)
	for name, r := range map[string]*Rule{"preset": pd, "template": templated} {
		t.Run(name, func(t *testing.T) {
			c := presetContext(EventFailed, true)
			c.Workflow.Name = forged
			c.Run = map[string]any{"note": forged}
			_, stored, err := r.Render(c)
			require.NoError(t, err)
			assert.NotContains(t, string(stored), key)
			assert.Equal(t, 1, strings.Count(string(stored), `"`+RoutingKeyPlaceholder+`"`), "one placeholder, where the key goes: %s", stored)

			sent := r.FillSecrets(stored)
			assert.Equal(t, 1, strings.Count(string(sent), key), "the key goes in once: %s", sent)
			var body struct {
				RoutingKey string `json:"routing_key"`
				Payload    struct {
					Summary, Source string
				} `json:"payload"`
			}
			require.NoError(t, json.Unmarshal(sent, &body))
			assert.Equal(t, key, body.RoutingKey)
			assert.Contains(t, body.Payload.Summary, forged, "the data is sent as it was")
			var shown map[string]any
			require.NoError(t, json.Unmarshal(stored, &shown), "the stored body is JSON")
			assert.Equal(t, RoutingKeyPlaceholder, shown["routing_key"])
		})
	}

	// A preset body is filled at its top-level routing_key only, even
	// when other members hold the placeholder.
	body := []byte(`{"payload":{"summary":"[sealed routing_key]"},"routing_key":"[sealed routing_key]","x":["[sealed routing_key]"]}`)
	assert.Equal(t, `{"payload":{"summary":"[sealed routing_key]"},"routing_key":"`+key+`","x":["[sealed routing_key]"]}`,
		string(pd.FillSecrets(body)))
	other := []byte(`{"routing_key":"mine","summary":"[sealed routing_key]"}`)
	assert.Equal(t, string(other), string(pd.FillSecrets(other)), "no top-level placeholder: nothing filled")
}

// strings collects every string of a JSON value with its path.
func jsonStrings(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case string:
		out[path] = x
	case []any:
		for i, e := range x {
			jsonStrings(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	case map[string]any:
		for k, e := range x {
			jsonStrings(path+"."+k, e, out)
		}
	}
}

// TestChatPresetsMentionNobody renders a run whose workflow and rule are
// named with every vendor's mention syntax: no preset notifies anybody.
func TestChatPresetsMentionNobody(t *testing.T) {
	const name = "Billing <!channel> <!here> <!everyone> <@U123> <users/all> <users/123> @everyone @here <at>Ops</at> & co"
	for _, d := range []Destination{DestinationSlack, DestinationDiscord, DestinationTeams, DestinationGoogleChat} {
		t.Run(string(d), func(t *testing.T) {
			r := presetRule(t, d)
			for _, e := range AllEvents {
				c := presetContext(e, true)
				c.Workflow.Name, c.Rule.Name = name, name
				_, raw, err := r.Render(c)
				require.NoError(t, err)
				var body map[string]any
				require.NoError(t, json.Unmarshal(raw, &body))
				texts := map[string]string{}
				jsonStrings("", body, texts)
				switch d {
				case DestinationSlack:
					// Slack parses <…> (mentions, links) and & in text and
					// mrkdwn; a plain_text header shows its text as is.
					for path, s := range texts {
						if strings.HasSuffix(path, ".url") || strings.HasSuffix(path, ".type") {
							continue
						}
						plain := strings.Contains(path, "blocks[0].text.text") // the header, plain_text
						if plain {
							continue
						}
						for _, m := range []string{"<!channel>", "<!here>", "<!everyone>", "<@U123>"} {
							assert.NotContainsf(t, s, m, "%s %s", e, path)
						}
						assert.NotRegexpf(t, `&[^a-z#]`, s, "& escaped in %s %s", e, path)
					}
					assert.Contains(t, texts[".text"], "&lt;!channel&gt;")
				case DestinationDiscord:
					assert.Equal(t, map[string]any{"parse": []any{}}, body["allowed_mentions"], "no @everyone, role or user pings")
				case DestinationTeams:
					// <at>…</at> mentions only with an msteams.entities entry.
					assert.NotContains(t, string(raw), `"msteams"`)
					assert.NotContains(t, string(raw), `"mention"`)
				case DestinationGoogleChat:
					// The message text mentions with <users/…>; card
					// widgets read HTML; a card header is plain text and
					// cards mention nobody.
					for path, s := range texts {
						if strings.HasSuffix(path, ".url") || strings.Contains(path, ".header.") {
							continue
						}
						assert.NotContainsf(t, s, "<users/", "%s %s", e, path)
					}
					assert.Contains(t, texts[".text"], "&lt;users/all&gt;", "the message text is escaped too")
				}
			}
		})
	}
}
